//! Zero-copy decoding of the MaxMind DB data-section encoding: control bytes, pointers, scalar
//! payloads, skipping whole values, and the strict recursive checker the validator uses.
//!
//! Every function takes the slice being decoded (the data section, or the metadata section),
//! an offset into it, and `base`, the absolute file offset of the slice's first byte: pointers
//! are relative to the slice, errors name absolute file offsets.
//!
//! Encoding (MaxMind DB spec v2.0, "Output Data Section"; multi-byte numbers big-endian):
//!
//! ```text
//! control byte  TTTSSSSS   TTT = type 1..=7; 0 = extended: the next byte holds type - 7
//! [ext type]    one byte, only when TTT = 0: 1 int32, 2 uint64, 3 uint128, 4 array,
//!               7 boolean, 8 float (5 data cache container and 6 end marker are rejected)
//! [size bytes]  SSSSS < 29: size = SSSSS; 29: 29 + next byte; 30: 285 + next 2 bytes;
//!               31: 65,821 + next 3 bytes
//! payload       `size` bytes; for maps/arrays `size` is the element count (a map holds
//!               key, value, key, value ...), for booleans it is the value (no payload)
//!
//! pointer       001SSVVV: SS = 0: VVV.b0 (11 bits); 1: VVV.b0.b1 + 2,048;
//!               2: VVV.b0.b1.b2 + 526,336; 3: b0.b1.b2.b3 (VVV ignored)
//! ```
//!
//! Type-specific payload rules enforced here: double = 8 bytes, float = 4, uint16 <= 2,
//! uint32 and int32 <= 4 (int32 is sign-extended only at 4 bytes), uint64 <= 8, uint128 <= 16,
//! boolean size 0 or 1, strings valid UTF-8 (checked when read), map keys strings.
//!
//! Resource limits: a pointer may not point to a pointer; at most [`MAX_DEPTH`] maps/arrays nest
//! (pointer cycles run into this limit); a map/array claiming more elements than bytes remain
//! (each element needs at least one byte) is rejected before anything is allocated.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::value::ValueKind;

/// Most maps/arrays that may enclose one another (libmaxminddb's limit).
pub const MAX_DEPTH: usize = 512;

/// Largest payload size (or element count) a control byte can express.
pub const MAX_SIZE: usize = 65_821 + 0xFF_FFFF;

/// A decoded, non-pointer field header. For strings, bytes and numbers the payload range
/// `payload..payload + size` is in bounds; for maps/arrays `size` is the element count, for
/// booleans the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub kind: ValueKind,
    pub size: usize,
    /// Offset of the first byte after the header (the payload, or the first element).
    pub payload: usize,
    /// Offset of the control byte.
    pub start: usize,
}

impl Field {
    /// Offset just past a scalar field (for maps/arrays: just past the header).
    #[inline]
    pub fn scalar_end(&self) -> usize {
        match self.kind {
            ValueKind::Map | ValueKind::Array | ValueKind::Bool => self.payload,
            _ => self.payload + self.size,
        }
    }

    /// The payload bytes of a string/bytes/number field (empty for others).
    #[inline]
    pub fn payload_bytes<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        match self.kind {
            ValueKind::Map | ValueKind::Array | ValueKind::Bool => &[],
            // In bounds: checked by `read_ctrl`.
            _ => data
                .get(self.payload..self.payload + self.size)
                .unwrap_or(&[]),
        }
    }
}

/// What a control byte introduces: a pointer (target offset, offset after the pointer) or a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctrl {
    Pointer { target: usize, next: usize },
    Field(Field),
}

#[cold]
pub(crate) fn corrupt(base: u64, off: usize, what: impl Into<String>) -> Error {
    Error::corrupt(base.saturating_add(off as u64), what)
}

#[inline]
fn be_uint(b: &[u8]) -> usize {
    b.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize)
}

/// Per type number: the kind, the allowed size range, and the payload bytes each unit of size
/// needs (0 for booleans, whose size is the value; 2 for maps: a key and a value per pair).
#[derive(Clone, Copy)]
struct TypeRule {
    kind: ValueKind,
    min: usize,
    max: usize,
    unit: usize,
}

const fn rule(kind: ValueKind, min: usize, max: usize, unit: usize) -> Option<TypeRule> {
    Some(TypeRule {
        kind,
        min,
        max,
        unit,
    })
}

/// Indexed by type number (extended types already offset by 7). 0/1 (extended, pointer) are
/// handled before the lookup; 12/13 are the deprecated types readers need not support.
const TYPE_RULES: [Option<TypeRule>; 16] = [
    None,
    None,
    rule(ValueKind::String, 0, MAX_SIZE, 1),
    rule(ValueKind::Double, 8, 8, 1),
    rule(ValueKind::Bytes, 0, MAX_SIZE, 1),
    rule(ValueKind::Uint16, 0, 2, 1),
    rule(ValueKind::Uint32, 0, 4, 1),
    rule(ValueKind::Map, 0, MAX_SIZE, 2),
    rule(ValueKind::Int32, 0, 4, 1),
    rule(ValueKind::Uint64, 0, 8, 1),
    rule(ValueKind::Uint128, 0, 16, 1),
    rule(ValueKind::Array, 0, MAX_SIZE, 1),
    None,
    None,
    rule(ValueKind::Bool, 0, 1, 0),
    rule(ValueKind::Float, 4, 4, 1),
];

#[cold]
fn past_end(base: u64, off: usize, len: usize, what: &str) -> Error {
    corrupt(
        base,
        off,
        format!("{what} runs past the end of the section ({len} bytes)"),
    )
}

/// Decode the control byte(s) at `off` without following pointers.
// Always inlined in optimised builds: the decoded header then stays in registers instead of
// round-tripping through memory (measured 2x on path lookups). Debug builds keep ordinary
// inlining, whose frames stay small enough for 512 levels of recursion.
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline)]
pub(crate) fn read_ctrl(data: &[u8], off: usize, base: u64) -> Result<Ctrl> {
    let Some(&ctrl) = data.get(off) else {
        return Err(past_end(base, off, data.len(), "control byte"));
    };
    let mut pos = off + 1;
    let mut type_num = (ctrl >> 5) as usize;
    if type_num == 1 {
        let ss = ((ctrl >> 3) & 3) as usize;
        let high = (ctrl & 7) as usize;
        let len = ss + 1;
        let Some(b) = data.get(pos..pos + len) else {
            return Err(past_end(base, off, data.len(), "pointer"));
        };
        let target = match ss {
            0 => (high << 8) | be_uint(b),
            1 => ((high << 16) | be_uint(b)) + 2048,
            2 => ((high << 24) | be_uint(b)) + 526_336,
            _ => be_uint(b),
        };
        return Ok(Ctrl::Pointer {
            target,
            next: pos + len,
        });
    }
    if type_num == 0 {
        let Some(&ext) = data.get(pos) else {
            return Err(past_end(base, off, data.len(), "extended type byte"));
        };
        pos += 1;
        type_num = ext as usize + 7;
        if type_num < 8 {
            return Err(bad_type(base, off, type_num));
        }
    }
    let Some(rule) = TYPE_RULES.get(type_num).copied().flatten() else {
        return Err(bad_type(base, off, type_num));
    };
    let size_bits = (ctrl & 0x1f) as usize;
    let size = if size_bits < 29 {
        size_bits
    } else {
        let n = size_bits - 28;
        let Some(b) = data.get(pos..pos + n) else {
            return Err(past_end(base, off, data.len(), "size bytes"));
        };
        pos += n;
        [29, 285, 65_821][n - 1] + be_uint(b)
    };
    let remaining = data.len() - pos; // pos <= len: every byte before pos was read
    if size < rule.min || size > rule.max || size * rule.unit > remaining {
        return Err(bad_size(rule, size, remaining, base, off));
    }
    Ok(Ctrl::Field(Field {
        kind: rule.kind,
        size,
        payload: pos,
        start: off,
    }))
}

#[cold]
fn bad_type(base: u64, off: usize, type_num: usize) -> Error {
    let what = match type_num {
        12 | 13 => {
            "deprecated data type (data cache container / end marker) is not supported".to_string()
        }
        _ => format!("invalid extended data type {type_num}"),
    };
    corrupt(base, off, what)
}

#[cold]
fn bad_size(rule: TypeRule, size: usize, remaining: usize, base: u64, off: usize) -> Error {
    let kind = rule.kind;
    let what = match kind {
        ValueKind::Map | ValueKind::Array => {
            format!("{kind} claims {size} elements but only {remaining} bytes remain")
        }
        _ if size < rule.min || size > rule.max => format!("{kind} with invalid size {size}"),
        _ => format!("{kind} of {size} bytes runs past the end ({remaining} bytes remain)"),
    };
    corrupt(base, off, what)
}

/// The field at `off`, following one pointer. Returns the field and, when `off` held a pointer,
/// the offset just past that pointer (where the enclosing container continues).
#[cfg_attr(not(debug_assertions), inline(always))]
#[cfg_attr(debug_assertions, inline)]
pub(crate) fn resolve_with_next(
    data: &[u8],
    off: usize,
    base: u64,
) -> Result<(Field, Option<usize>)> {
    match read_ctrl(data, off, base)? {
        Ctrl::Field(f) => Ok((f, None)),
        Ctrl::Pointer { target, next } => match read_ctrl(data, target, base) {
            Ok(Ctrl::Field(f)) => Ok((f, Some(next))),
            Ok(Ctrl::Pointer { .. }) => Err(corrupt(
                base,
                off,
                format!("pointer to offset {target} points to another pointer"),
            )),
            Err(_) if target >= data.len() => Err(corrupt(
                base,
                off,
                format!(
                    "pointer to offset {target} is past the end of the section ({} bytes)",
                    data.len()
                ),
            )),
            Err(e) => Err(e),
        },
    }
}

/// The field at `off`, following one pointer.
#[inline]
pub(crate) fn resolve(data: &[u8], off: usize, base: u64) -> Result<Field> {
    resolve_with_next(data, off, base).map(|(f, _)| f)
}

/// Offset just past the value at `off` without following pointers (a pointer ends after its own
/// bytes). Iterative: the number of values still to skip is bounded by the bytes left, so this
/// neither recurses nor loops forever on hostile input. Does not validate strings or pointer
/// targets.
pub(crate) fn skip(data: &[u8], off: usize, base: u64) -> Result<usize> {
    let mut pending: usize = 1;
    let mut pos = off;
    while pending > 0 {
        pending -= 1;
        match read_ctrl(data, pos, base)? {
            Ctrl::Pointer { next, .. } => pos = next,
            Ctrl::Field(f) => {
                pos = f.scalar_end();
                match f.kind {
                    ValueKind::Map => pending += 2 * f.size,
                    ValueKind::Array => pending += f.size,
                    _ => {}
                }
                if pending > data.len() - pos {
                    return Err(corrupt(
                        base,
                        f.start,
                        format!(
                            "{pending} values still expected but only {} bytes remain",
                            data.len() - pos
                        ),
                    ));
                }
            }
        }
    }
    Ok(pos)
}

/// The UTF-8 text of a string field.
#[inline]
pub(crate) fn read_str<'a>(data: &'a [u8], f: &Field, base: u64) -> Result<&'a str> {
    std::str::from_utf8(f.payload_bytes(data))
        .map_err(|e| corrupt(base, f.payload, format!("string is not valid UTF-8: {e}")))
}

/// The value of an unsigned-integer field (uint16/32/64/128).
#[inline]
pub(crate) fn read_uint(data: &[u8], f: &Field) -> u128 {
    f.payload_bytes(data)
        .iter()
        .fold(0u128, |acc, &x| (acc << 8) | x as u128)
}

/// The value of an int32 field: 4-byte payloads are two's complement, shorter ones positive.
#[inline]
pub(crate) fn read_i32(data: &[u8], f: &Field) -> i32 {
    let v = read_uint(data, f) as u32;
    v as i32
}

/// The value of a double field.
#[inline]
pub(crate) fn read_f64(data: &[u8], f: &Field) -> f64 {
    f64::from_bits(read_uint(data, f) as u64)
}

/// The value of a float field.
#[inline]
pub(crate) fn read_f32(data: &[u8], f: &Field) -> f32 {
    f32::from_bits(read_uint(data, f) as u32)
}

/// The map key at `pos` (a string, or a pointer to one) and the offset just past it.
#[inline]
pub(crate) fn read_key(data: &[u8], pos: usize, base: u64) -> Result<(&str, usize)> {
    let (key, next) = resolve_with_next(data, pos, base)?;
    if key.kind != ValueKind::String {
        return Err(corrupt(
            base,
            pos,
            format!("map key is a {}, not a string", key.kind),
        ));
    }
    Ok((
        read_str(data, &key, base)?,
        next.unwrap_or(key.scalar_end()),
    ))
}

/// Error unless a map/array at `depth` enclosing containers may be entered.
#[inline]
pub(crate) fn check_depth(depth: usize, base: u64, off: usize) -> Result<()> {
    if depth >= MAX_DEPTH {
        Err(corrupt(
            base,
            off,
            format!("maps/arrays nested deeper than {MAX_DEPTH} levels (or a pointer cycle)"),
        ))
    } else {
        Ok(())
    }
}

/// Strictly check the whole value at `offset` (every pointer followed and in bounds, every
/// string valid UTF-8, map keys strings, depth and size limits) and return the offset just past
/// it (a pointer ends after its own bytes).
#[cfg(test)]
pub(crate) fn check_value(data: &[u8], offset: usize, base: u64) -> Result<usize> {
    ValueChecker::new().check(data, offset, base)
}

/// [`check_value`] with memory: pointer targets already checked are not walked again, so a
/// validator scanning a whole data section does linear work even when values share (or
/// pointers fan out to) the same sub-values. Use one checker per slice.
#[derive(Default)]
pub(crate) struct ValueChecker {
    /// Pointer target -> nesting height of the value there (maps/arrays on its deepest path).
    checked: HashMap<usize, usize>,
}

impl ValueChecker {
    pub fn new() -> ValueChecker {
        ValueChecker::default()
    }

    /// See [`check_value`].
    pub fn check(&mut self, data: &[u8], offset: usize, base: u64) -> Result<usize> {
        self.check_at(data, offset, base, 0).map(|(end, _)| end)
    }

    /// Returns (end offset, nesting height of the value).
    fn check_at(
        &mut self,
        data: &[u8],
        off: usize,
        base: u64,
        depth: usize,
    ) -> Result<(usize, usize)> {
        let (f, next) = resolve_with_next(data, off, base)?;
        if let Some(next) = next {
            let height = match self.checked.get(&f.start) {
                Some(&h) => h,
                None => {
                    let (_, h) = self.check_field(data, f, base, depth)?;
                    self.checked.insert(f.start, h);
                    h
                }
            };
            if depth + height > MAX_DEPTH {
                check_depth(MAX_DEPTH, base, off)?;
            }
            return Ok((next, height));
        }
        self.check_field(data, f, base, depth)
    }

    fn check_field(
        &mut self,
        data: &[u8],
        f: Field,
        base: u64,
        depth: usize,
    ) -> Result<(usize, usize)> {
        match f.kind {
            ValueKind::String => {
                read_str(data, &f, base)?;
                Ok((f.scalar_end(), 0))
            }
            ValueKind::Map | ValueKind::Array => {
                check_depth(depth, base, f.start)?;
                let mut pos = f.payload;
                let mut height = 0;
                for _ in 0..f.size {
                    if f.kind == ValueKind::Map {
                        pos = read_key(data, pos, base)?.1;
                    }
                    let (end, h) = self.check_at(data, pos, base, depth + 1)?;
                    pos = end;
                    height = height.max(h);
                }
                Ok((pos, height + 1))
            }
            _ => Ok((f.scalar_end(), 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ptr_target(bytes: &[u8]) -> usize {
        match read_ctrl(bytes, 0, 0).unwrap() {
            Ctrl::Pointer { target, next } => {
                assert_eq!(next, bytes.len());
                target
            }
            other => panic!("not a pointer: {other:?}"),
        }
    }

    #[test]
    fn pointer_sizes_and_bases_follow_the_spec() {
        assert_eq!(ptr_target(&[0x20, 0x00]), 0);
        assert_eq!(ptr_target(&[0x27, 0xff]), 2047);
        assert_eq!(ptr_target(&[0x28, 0x00, 0x00]), 2048);
        assert_eq!(ptr_target(&[0x2f, 0xff, 0xff]), 2048 + 0x7ffff);
        assert_eq!(ptr_target(&[0x30, 0x00, 0x00, 0x00]), 526_336);
        assert_eq!(ptr_target(&[0x37, 0xff, 0xff, 0xff]), 526_336 + 0x7ff_ffff);
        // Size 3: the low three control bits are ignored, no base is added.
        assert_eq!(ptr_target(&[0x3f, 0x12, 0x34, 0x56, 0x78]), 0x1234_5678);
        assert_eq!(
            ptr_target(&[0x38, 0xff, 0xff, 0xff, 0xff]),
            u32::MAX as usize
        );
    }

    #[test]
    fn size_encodings_follow_the_spec() {
        let mut s = vec![0x5d, 51];
        s.extend(std::iter::repeat(b'a').take(80));
        match read_ctrl(&s, 0, 0).unwrap() {
            Ctrl::Field(f) => assert_eq!((f.kind, f.size, f.payload), (ValueKind::String, 80, 2)),
            _ => panic!(),
        }
        let mut s = vec![0x5e, 0x33, 0x33];
        s.resize(3 + 13_392, b'a');
        match read_ctrl(&s, 0, 0).unwrap() {
            Ctrl::Field(f) => assert_eq!(f.size, 13_392),
            _ => panic!(),
        }
        let mut s = vec![0x5f, 0x33, 0x33, 0x33];
        s.resize(4 + 3_421_264, b'a');
        match read_ctrl(&s, 0, 0).unwrap() {
            Ctrl::Field(f) => assert_eq!(f.size, 3_421_264),
            _ => panic!(),
        }
        // Extended type: uint128 of 3 bytes.
        match read_ctrl(&[0x03, 0x03, 1, 2, 3], 0, 0).unwrap() {
            Ctrl::Field(f) => {
                assert_eq!((f.kind, f.size), (ValueKind::Uint128, 3));
                assert_eq!(read_uint(&[0x03, 0x03, 1, 2, 3], &f), 0x010203);
            }
            _ => panic!(),
        }
    }

    #[test]
    fn invalid_headers_are_errors_with_file_offsets() {
        let cases: &[&[u8]] = &[
            &[0x00, 0x05],             // data cache container
            &[0x00, 0x06],             // end marker
            &[0x00, 0x00],             // extended type 7
            &[0x00, 0x09],             // extended type 16
            &[0x62, 0, 0],             // double of 2 bytes
            &[0x07, 0x08, 0, 0, 0, 0], // float of 7 bytes
            &[0xa3, 1, 2, 3],          // uint16 of 3 bytes
            &[0x02, 0x07],             // boolean "2"
            &[0x45, b'a'],             // string past the end
            &[0xe2, 0x41, b'a'],       // map of 2 pairs in 2 bytes
            &[0x04, 0x04, 0x43],       // array of 4 in 1 byte
            &[0x5d],                   // missing size byte
            &[0x28, 0x00],             // truncated pointer
        ];
        for bytes in cases {
            let mut shifted = vec![0u8; 3];
            shifted.extend_from_slice(bytes);
            let err = read_ctrl(&shifted, 3, 1000)
                .and_then(|_| skip(&shifted, 3, 1000))
                .unwrap_err();
            match err {
                Error::Corrupt { offset, .. } => assert!(offset >= 1003, "{bytes:?}: {offset}"),
                e => panic!("{e}"),
            }
        }
    }

    #[test]
    fn pointer_to_pointer_and_out_of_range_pointer_are_errors() {
        // [0] ptr -> 2, [2] ptr -> 4, [4] "a"
        let data = [0x20, 0x02, 0x20, 0x04, 0x41, b'a'];
        assert!(resolve(&data, 0, 0).is_err());
        assert_eq!(resolve(&data, 2, 0).unwrap().kind, ValueKind::String);
        assert!(resolve(&[0x20, 0x09], 0, 0).is_err());
        assert!(check_value(&data, 0, 0).is_err());
        assert_eq!(check_value(&data, 2, 0).unwrap(), 4);
    }

    #[test]
    fn pointer_cycles_end_at_the_depth_limit() {
        // [0] map of 1: key "a" -> pointer to 0.
        let data = [0xe1, 0x41, b'a', 0x20, 0x00];
        let err = check_value(&data, 0, 0).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
        // Skipping does not follow pointers, so it terminates.
        assert_eq!(skip(&data, 0, 0).unwrap(), 5);
    }

    #[test]
    fn depth_limit_is_512_containers() {
        for (n, ok) in [(MAX_DEPTH, true), (MAX_DEPTH + 1, false)] {
            let mut data: Vec<u8> = std::iter::repeat([0x01u8, 0x04])
                .take(n - 1)
                .flatten()
                .collect();
            data.extend_from_slice(&[0x00, 0x04]); // innermost: empty array
            assert_eq!(check_value(&data, 0, 0).is_ok(), ok, "depth {n}");
            assert_eq!(skip(&data, 0, 0).unwrap(), data.len());
        }
    }

    #[test]
    fn shared_pointer_targets_are_checked_once() {
        // A chain of 40 arrays each holding two pointers to the next: 2^40 paths, linear bytes.
        let mut data = Vec::new();
        let n = 40;
        for i in 0..n {
            let next = (i + 1) * 6;
            data.extend_from_slice(&[0x02, 0x04]);
            for _ in 0..2 {
                data.extend_from_slice(&[0x20 | (next >> 8) as u8, next as u8]);
            }
        }
        data.extend_from_slice(&[0x41, b'x']);
        assert_eq!(check_value(&data, 0, 0).unwrap(), 6);
    }

    #[test]
    fn oversized_containers_fail_fast() {
        // Map claiming 16,843,036 pairs followed by a few bytes.
        let data = [0xff, 0xff, 0xff, 0xff, 0x41, b'a', 0x41, b'b'];
        let t = std::time::Instant::now();
        assert!(read_ctrl(&data, 0, 0).is_err());
        assert!(skip(&data, 0, 0).is_err());
        assert!(check_value(&data, 0, 0).is_err());
        assert!(t.elapsed().as_millis() < 100);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut checker = ValueChecker::new();
            for off in 0..data.len() {
                let _ = read_ctrl(&data, off, 7);
                let _ = resolve(&data, off, 7);
                if let Ok(end) = skip(&data, off, 7) {
                    prop_assert!(end > off && end <= data.len());
                }
                if let Ok(end) = checker.check(&data, off, 7) {
                    prop_assert!(end > off && end <= data.len());
                    prop_assert_eq!(skip(&data, off, 7).unwrap(), end);
                }
            }
        }
    }
}
