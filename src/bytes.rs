//! Bounds-checked little/big-endian reads from untrusted byte slices. Every read of a mapped file
//! goes through these (or through a slice whose bounds were checked once at open): an
//! out-of-range read is an `Error::Corrupt` naming the offset, never a panic.

use crate::error::{Error, Result};

/// The high bit (0x80) of each byte of `w` that equals `byte`, and no other bit: eight bytes
/// compared at once. Exact, unlike the shorter `(x - 0x01..) & !x & 0x80..`, which may also flag
/// bytes above a real match.
#[inline]
pub fn bytes_equal_to(w: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let x = w ^ (u64::from(byte) * 0x0101_0101_0101_0101);
    // The add sets a byte's high bit iff its low seven bits are not all zero (no carry leaves
    // the byte); `| x` adds the bytes whose own high bit is set. What stays clear is zero.
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// `a == b`. Slices of 8 to 32 bytes (most keys) are compared with two overlapping word loads
/// per side instead of a call to `memcmp`, which costs a hit ~35 instructions.
#[inline(always)]
pub fn slices_equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        16..=32 => {
            let word =
                |s: &[u8], at: usize| u128::from_le_bytes(s[at..at + 16].try_into().unwrap());
            (word(a, 0) ^ word(b, 0)) | (word(a, n - 16) ^ word(b, n - 16)) == 0
        }
        8..=15 => {
            let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
            (word(a, 0) ^ word(b, 0)) | (word(a, n - 8) ^ word(b, n - 8)) == 0
        }
        _ => a == b,
    }
}

/// `len` bytes at `off`, or a `Corrupt` error saying what was being read.
#[inline]
pub fn slice<'a>(buf: &'a [u8], off: usize, len: usize, what: &str) -> Result<&'a [u8]> {
    match off.checked_add(len) {
        Some(end) if end <= buf.len() => Ok(&buf[off..end]),
        _ => Err(Error::corrupt(
            off,
            format!(
                "{what}: {len} bytes at offset {off} run past the end ({} bytes)",
                buf.len()
            ),
        )),
    }
}

#[inline]
pub fn u16_le(buf: &[u8], off: usize, what: &str) -> Result<u16> {
    let b = slice(buf, off, 2, what)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

#[inline]
pub fn u32_le(buf: &[u8], off: usize, what: &str) -> Result<u32> {
    let b = slice(buf, off, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[inline]
pub fn u64_le(buf: &[u8], off: usize, what: &str) -> Result<u64> {
    let b = slice(buf, off, 8, what)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

/// A u64 from the file that must fit in `usize` (always true on 64-bit targets).
#[inline]
pub fn to_usize(v: u64, off: usize, what: &str) -> Result<usize> {
    usize::try_from(v)
        .map_err(|_| Error::corrupt(off, format!("{what}: {v} does not fit in memory")))
}

/// Round `n` up to the next multiple of 8 (section alignment).
#[inline]
pub const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::bytes_equal_to;

    #[test]
    fn bytes_equal_to_flags_exactly_the_equal_bytes() {
        // Every byte value against every needle, beside neighbours that provoke borrows and
        // carries (0x00, 0x01, 0x80, 0xFF) in both orders.
        for needle in 0..=255u8 {
            for b in 0..=255u8 {
                let bytes = [b, 0x00, b, 0x01, 0x80, b, 0xFF, needle];
                let expect = bytes.iter().enumerate().fold(0u64, |m, (i, &x)| {
                    m | (u64::from(x == needle) << (8 * i + 7))
                });
                assert_eq!(
                    bytes_equal_to(u64::from_le_bytes(bytes), needle),
                    expect,
                    "needle {needle:#x}, byte {b:#x}"
                );
            }
        }
    }
}
