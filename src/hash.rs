//! The hash functions stored in the file format. They are part of the format (docs/FORMAT.md
//! defines them bit by bit): changing one changes every file, so they never change silently.
//!
//! * [`key_hash`] hashes a whole key (literal strings, glob prefix and suffix anchors), 16 bytes
//!   per multiply.
//! * [`Fnv`] is the byte-at-a-time hash of glob grams (a few bytes each).
//!
//! Both fold ASCII `A-Z` to `a-z` when the database is case-insensitive; other bytes (including
//! all non-ASCII UTF-8) are hashed as they are. So hashing folded text unfolded gives the same
//! hash (the glob index folds short queries once, up front).

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

const KEY_SEED: u64 = 0xa076_1d64_78bd_642f;
const KEY_MIX: u64 = 0xe703_7ed1_a0b4_28db;
/// The 128-bit product of `a` and `b`, its two halves xored: one multiply mixes 16 bytes.
#[inline(always)]
fn mum(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// Hash of a whole key, 16 bytes per multiply: `h = len ^ 0xa0761d6478bd642f`; for each 16-byte
/// chunk, read as little-endian u64 words `a`, `b` (the last chunk zero-padded, ASCII-folded
/// with `fold`): `h = mum(a ^ 0xe7037ed1a0b428db, b ^ h)`, where `mum(x, y)` xors the two halves
/// of the 128-bit product; result `fmix64(h)`. The lookups it starts wait on it: against a
/// multiply per 8 bytes its chain of dependent multiplies is half as long, and keys of 16 bytes
/// or more read their last chunk without a branch on its length (one the CPU cannot predict
/// when query lengths vary).
#[inline]
pub fn key_hash(key: &[u8], fold: bool) -> u64 {
    if fold {
        key_hash_as::<true>(key)
    } else {
        key_hash_as::<false>(key)
    }
}

#[inline(always)]
fn key_hash_as<const FOLD: bool>(key: &[u8]) -> u64 {
    let folded = |w: u64| if FOLD { fold_word(w) } else { w };
    let n = key.len();
    let mut h = (n as u64) ^ KEY_SEED;
    let mut chunks = key.chunks_exact(16);
    for c in &mut chunks {
        let words = u128::from_le_bytes(c.try_into().unwrap());
        let (a, b) = (words as u64, (words >> 64) as u64);
        h = mum(folded(a) ^ KEY_MIX, folded(b) ^ h);
    }
    let r = chunks.remainder().len();
    if r > 0 {
        let words = if n >= 16 {
            // The key's last 16 bytes, shifted so that only the remainder's are left.
            u128::from_le_bytes(key[n - 16..].try_into().unwrap()) >> (8 * (16 - r))
        } else {
            short_key_words(key)
        };
        let (a, b) = (words as u64, (words >> 64) as u64);
        h = mum(folded(a) ^ KEY_MIX, folded(b) ^ h);
    }
    fmix64(h)
}

/// The zero-padded little-endian u128 of a key of 1..=15 bytes, from overlapping reads (a copy
/// into a stack buffer stalls on the wide read back).
#[inline(always)]
fn short_key_words(key: &[u8]) -> u128 {
    let n = key.len();
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&key[at..at + 8]);
        u64::from_le_bytes(w)
    };
    if n >= 8 {
        let high = if n > 8 {
            word(n - 8) >> (8 * (16 - n))
        } else {
            0
        };
        u128::from(word(0)) | (u128::from(high) << 64)
    } else if n >= 4 {
        let lo = u64::from(u32::from_le_bytes([key[0], key[1], key[2], key[3]]));
        let hi = u64::from(u32::from_le_bytes([
            key[n - 4],
            key[n - 3],
            key[n - 2],
            key[n - 1],
        ]));
        u128::from(lo | (hi << ((n - 4) * 8)))
    } else {
        u128::from(
            u64::from(key[0])
                | (u64::from(key[n / 2]) << (n / 2 * 8))
                | (u64::from(key[n - 1]) << ((n - 1) * 8)),
        )
    }
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

    /// The definition, straight: zero-padded 16-byte chunks.
    fn key_hash_by_definition(key: &[u8], fold: bool) -> u64 {
        let mut h = (key.len() as u64) ^ KEY_SEED;
        for c in key.chunks(16) {
            let mut buf = [0u8; 16];
            for (b, &x) in buf.iter_mut().zip(c) {
                *b = fold_byte(x, fold);
            }
            let a = u64::from_le_bytes(buf[..8].try_into().unwrap());
            let b = u64::from_le_bytes(buf[8..].try_into().unwrap());
            h = mum(a ^ KEY_MIX, b ^ h);
        }
        fmix64(h)
    }

    #[test]
    fn key_hash_follows_its_definition() {
        // The tail assembly must give exactly the zero-padded words the format defines.
        let text = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        for len in 0..text.len() {
            for fold in [false, true] {
                let key = &text[..len];
                assert_eq!(
                    key_hash(key, fold),
                    key_hash_by_definition(key, fold),
                    "length {len}"
                );
            }
        }
    }

    #[test]
    fn key_hash_folds_ascii_only_and_mixes_length() {
        assert_eq!(key_hash(b"Evil.COM", true), key_hash(b"evil.com", true));
        assert_eq!(key_hash(b"Evil.COM", true), key_hash(b"evil.com", false));
        assert_ne!(key_hash(b"Evil.COM", false), key_hash(b"evil.com", false));
        assert_ne!(
            key_hash("É".as_bytes(), true),
            key_hash("é".as_bytes(), true)
        );
        // Length is mixed in: zero padding cannot make two keys collide.
        assert_ne!(key_hash(b"a", false), key_hash(b"a\0", false));
        // Every bit of the result depends on the input (the Bloom filter and the glob checks
        // use high and low bits alike): one flipped input bit flips about half of them.
        let base = key_hash(b"www.example.com/path", false);
        for bit in 0..8 * 20 {
            let mut key = *b"www.example.com/path";
            key[bit / 8] ^= 1 << (bit % 8);
            let flipped = (key_hash(&key, false) ^ base).count_ones();
            assert!((12..=52).contains(&flipped), "bit {bit}: {flipped} bits");
        }
    }
}
