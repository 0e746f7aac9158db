//! The hash functions stored in the file format. They are part of the format (docs/FORMAT.md
//! defines them bit by bit): changing one changes every file, so they never change silently.
//!
//! * [`key_hash`] hashes a whole key (literal strings, glob prefix and suffix anchors), 8 bytes
//!   at a time.
//! * [`Fnv`] is the byte-at-a-time hash of glob grams (a few bytes each).
//!
//! Both fold ASCII `A-Z` to `a-z` when the database is case-insensitive; other bytes (including
//! all non-ASCII UTF-8) are hashed as they are.

const K_MUL: u64 = 0x9E37_79B9_7F4A_7C15;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Murmur3's 64-bit finaliser: spreads every input bit over every output bit.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// ASCII lower-casing of one byte when `fold` is set.
#[inline]
pub fn fold_byte(b: u8, fold: bool) -> u8 {
    if fold {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

/// ASCII lower-casing of 8 bytes at once (SWAR): bytes in `A-Z` gain 0x20, all others are kept.
#[inline]
pub(crate) fn fold_word(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !HIGH;
    let ge_a = low7.wrapping_add((0x80 - b'A' as u64) * ONES);
    let gt_z = low7.wrapping_add((0x7f - b'Z' as u64) * ONES);
    let upper = ge_a & !gt_z & !w & HIGH;
    w | (upper >> 2)
}

/// Hash of a whole key: `h = len * K`; for each 8-byte little-endian word `w` (the last one
/// zero-padded, folded if `fold`): `h = (h ^ w) * K; h ^= h >> 29`; result `fmix64(h)`.
#[inline]
pub fn key_hash(key: &[u8], fold: bool) -> u64 {
    let mut h = (key.len() as u64).wrapping_mul(K_MUL);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if fold {
            w = fold_word(w);
        }
        h = (h ^ w).wrapping_mul(K_MUL);
        h ^= h >> 29;
    }
    let rest = chunks.remainder();
    let n = rest.len();
    if n > 0 {
        // The zero-padded little-endian word of the last 1..=7 bytes, assembled from two
        // overlapping reads (a copy into a stack buffer stalls on the wide read back).
        let mut w = if n >= 4 {
            let lo = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
            let hi = u64::from(u32::from_le_bytes([
                rest[n - 4],
                rest[n - 3],
                rest[n - 2],
                rest[n - 1],
            ]));
            lo | (hi << ((n - 4) * 8))
        } else {
            u64::from(rest[0])
                | (u64::from(rest[n / 2]) << (n / 2 * 8))
                | (u64::from(rest[n - 1]) << ((n - 1) * 8))
        };
        if fold {
            w = fold_word(w);
        }
        h = (h ^ w).wrapping_mul(K_MUL);
        h ^= h >> 29;
    }
    fmix64(h)
}

/// Incremental FNV-1a (64-bit) over bytes fed one at a time, optionally ASCII-folded.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Fnv {
    /// Start a hash; `seed` separates key spaces (e.g. prefix vs suffix anchors).
    #[inline]
    pub fn new(seed: u64) -> Fnv {
        Fnv(FNV_OFFSET ^ seed)
    }
    #[inline]
    pub fn push(&mut self, b: u8) {
        self.0 = (self.0 ^ b as u64).wrapping_mul(FNV_PRIME);
    }
    /// The finished hash of everything pushed so far, with the count of bytes mixed in.
    #[inline]
    pub fn finish(&self, len: usize) -> u64 {
        fmix64(self.0 ^ (len as u64).wrapping_mul(K_MUL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_word_matches_bytewise_lowercase() {
        for b in 0u8..=255 {
            let w = u64::from_le_bytes([b, b'A', b'z', b'@', b'[', b'Z', 0xC3, b'`']);
            let expect = u64::from_le_bytes(
                [b, b'A', b'z', b'@', b'[', b'Z', 0xC3, b'`'].map(|x| x.to_ascii_lowercase()),
            );
            assert_eq!(fold_word(w), expect, "byte {b:#x}");
        }
    }

    #[test]
    fn tail_word_equals_zero_padding() {
        // The tail assembly must give exactly the zero-padded word the format defines.
        let text = b"abcdefghijklmnopqrstuvwxyzABCDEFG";
        for len in 0..text.len() {
            let key = &text[..len];
            let mut h = (len as u64).wrapping_mul(K_MUL);
            for c in key.chunks(8) {
                let mut buf = [0u8; 8];
                buf[..c.len()].copy_from_slice(c);
                h = (h ^ u64::from_le_bytes(buf)).wrapping_mul(K_MUL);
                h ^= h >> 29;
            }
            assert_eq!(key_hash(key, false), fmix64(h), "length {len}");
        }
    }

    #[test]
    fn key_hash_folds_ascii_only() {
        assert_eq!(key_hash(b"Evil.COM", true), key_hash(b"evil.com", true));
        assert_ne!(key_hash(b"Evil.COM", false), key_hash(b"evil.com", false));
        assert_ne!(
            key_hash("É".as_bytes(), true),
            key_hash("é".as_bytes(), true)
        );
        // Length is mixed in: zero padding cannot make two keys collide.
        assert_ne!(key_hash(b"a", false), key_hash(b"a\0", false));
    }
}
