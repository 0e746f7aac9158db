//! Writing the MaxMind DB data-section encoding: [`encode`] gives the canonical pointer-free
//! bytes of one value (metadata), [`DataSectionWriter`] builds a whole data section with
//! deduplication through pointers.
//!
//! Canonical encoding (byte layout as in [`super::decode`]): the smallest size field that holds
//! the length (inline < 29, then 1, 2, 3 extra bytes); integers with leading zero bytes dropped
//! (0 has an empty payload), except negative int32s, which take all 4 bytes; doubles 8 bytes,
//! floats 4; booleans as size 0/1 without payload; maps and arrays as element count followed by
//! the elements (maps: key, value, key, value, ... in the order given). No pointers.
//!
//! Data section deduplication (deterministic: depends only on the sequence of inserted values):
//! * A top-level value whose canonical encoding equals an earlier written value (top-level or
//!   nested) is not written again; [`DataSectionWriter::insert`] returns the earlier offset.
//! * Inside a value being written, every string (map keys included), bytes, map or array whose
//!   canonical encoding equals a value written earlier is replaced by a pointer to the earliest
//!   copy when the pointer is strictly shorter than the canonical encoding; numbers and booleans
//!   are always written inline. A pointer takes 2 bytes below offset 2,048, 3 below 526,336,
//!   4 below 134,744,064, else 5; a string of n < 29 bytes takes n + 1. So a repeated string (or
//!   map key) of 5+ bytes is always stored once, of 4 bytes if its first copy is in the first
//!   134 MB, of 3 bytes in the first 526 KB, of 2 bytes in the first 2 KB; repeated sub-maps
//!   (e.g. a country's `names`) are stored once.
//! * Pointers always target a non-pointer encoding, so a pointer never points to a pointer.
//!
//! Memory: the written bytes plus one hash-table entry (64-bit content hash -> offset, about
//! 20 bytes) per distinct top-level value and per distinct nested string/bytes/map/array of 3+
//! encoded bytes. Equality is never decided by the hash alone: a candidate is confirmed by
//! walking the written bytes (following their pointers) against the canonical encoding.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::data::DataValue;
use crate::error::{Error, Result};
use crate::hash::key_hash;
use crate::mmdb::decode::{self, Ctrl, MAX_DEPTH, MAX_SIZE};
use crate::value::ValueKind;

/// Type numbers of the spec.
const T_STRING: u8 = 2;
const T_DOUBLE: u8 = 3;
const T_BYTES: u8 = 4;
const T_UINT16: u8 = 5;
const T_UINT32: u8 = 6;
const T_MAP: u8 = 7;
const T_INT32: u8 = 8;
const T_UINT64: u8 = 9;
const T_UINT128: u8 = 10;
const T_ARRAY: u8 = 11;
const T_BOOL: u8 = 14;
const T_FLOAT: u8 = 15;

/// Largest data section whose every offset fits a 32-bit pointer.
const MAX_SECTION_LEN: u64 = 1 << 32;

fn write_header(out: &mut Vec<u8>, type_num: u8, size: usize) -> Result<()> {
    let (bits, extra): (u8, usize) = match size {
        0..=28 => (size as u8, 0),
        29..=284 => (29, 1),
        285..=65_820 => (30, 2),
        _ if size <= MAX_SIZE => (31, 3),
        _ => {
            return Err(Error::Build(format!(
                "value of size {size} exceeds the MaxMind DB limit of {MAX_SIZE} bytes/elements"
            )))
        }
    };
    if type_num <= 7 {
        out.push((type_num << 5) | bits);
    } else {
        out.push(bits);
        out.push(type_num - 7);
    }
    let rest = size - [0, 29, 285, 65_821][extra];
    out.extend_from_slice(&rest.to_be_bytes()[std::mem::size_of::<usize>() - extra..]);
    Ok(())
}

/// An unsigned integer given as big-endian bytes, leading zero bytes dropped.
fn write_uint(out: &mut Vec<u8>, type_num: u8, be: &[u8]) -> Result<()> {
    let skip = be.iter().take_while(|&&b| b == 0).count();
    write_header(out, type_num, be.len() - skip)?;
    out.extend_from_slice(&be[skip..]);
    Ok(())
}

/// Encoded length of a pointer to `target`.
pub(crate) fn pointer_len(target: u32) -> usize {
    match target {
        0..=2047 => 2,
        2048..=526_335 => 3,
        526_336..=134_744_063 => 4,
        _ => 5,
    }
}

/// Append the shortest pointer to `target` (an offset in the section).
pub(crate) fn write_pointer(out: &mut Vec<u8>, target: u32) {
    match pointer_len(target) {
        2 => out.extend_from_slice(&[0x20 | (target >> 8) as u8, target as u8]),
        3 => {
            let v = target - 2048;
            out.extend_from_slice(&[0x28 | (v >> 16) as u8, (v >> 8) as u8, v as u8]);
        }
        4 => {
            let v = target - 526_336;
            out.extend_from_slice(&[
                0x30 | (v >> 24) as u8,
                (v >> 16) as u8,
                (v >> 8) as u8,
                v as u8,
            ]);
        }
        _ => {
            out.push(0x38);
            out.extend_from_slice(&target.to_be_bytes());
        }
    }
}

/// Where one node (a value, or a map key) of a canonical encoding ends, in pre-order.
#[derive(Clone, Copy, Debug)]
struct Span {
    end: usize,
    /// Index of the next node that is not inside this one.
    next_node: usize,
}

fn open_node(spans: &mut Vec<Span>) -> usize {
    spans.push(Span {
        end: 0,
        next_node: 0,
    });
    spans.len() - 1
}

fn close_node(spans: &mut [Span], idx: usize, end: usize) {
    let next_node = spans.len();
    spans[idx] = Span { end, next_node };
}

fn check_encode_depth(depth: usize) -> Result<()> {
    if depth >= MAX_DEPTH {
        Err(Error::Build(format!(
            "value nests maps/arrays deeper than {MAX_DEPTH} levels"
        )))
    } else {
        Ok(())
    }
}

fn encode_str_node(s: &str, out: &mut Vec<u8>, spans: &mut Vec<Span>) -> Result<()> {
    let idx = open_node(spans);
    write_header(out, T_STRING, s.len())?;
    out.extend_from_slice(s.as_bytes());
    close_node(spans, idx, out.len());
    Ok(())
}

fn encode_map_node(
    entries: &[(String, DataValue)],
    out: &mut Vec<u8>,
    spans: &mut Vec<Span>,
    depth: usize,
) -> Result<()> {
    check_encode_depth(depth)?;
    let idx = open_node(spans);
    write_header(out, T_MAP, entries.len())?;
    for (key, value) in entries {
        encode_str_node(key, out, spans)?;
        encode_node(value, out, spans, depth + 1)?;
    }
    close_node(spans, idx, out.len());
    Ok(())
}

/// Canonical encoding of `value`, recording each node's extent in `spans` (pre-order).
fn encode_node(
    value: &DataValue,
    out: &mut Vec<u8>,
    spans: &mut Vec<Span>,
    depth: usize,
) -> Result<()> {
    match value {
        DataValue::String(s) => return encode_str_node(s, out, spans),
        DataValue::Map(entries) => return encode_map_node(entries, out, spans, depth),
        _ => {}
    }
    let idx = open_node(spans);
    match value {
        DataValue::Double(v) => {
            write_header(out, T_DOUBLE, 8)?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        DataValue::Float(v) => {
            write_header(out, T_FLOAT, 4)?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        DataValue::Bytes(b) => {
            write_header(out, T_BYTES, b.len())?;
            out.extend_from_slice(b);
        }
        DataValue::Uint16(v) => write_uint(out, T_UINT16, &v.to_be_bytes())?,
        DataValue::Uint32(v) => write_uint(out, T_UINT32, &v.to_be_bytes())?,
        DataValue::Uint64(v) => write_uint(out, T_UINT64, &v.to_be_bytes())?,
        DataValue::Uint128(v) => write_uint(out, T_UINT128, &v.to_be_bytes())?,
        DataValue::Int32(v) if *v < 0 => {
            write_header(out, T_INT32, 4)?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        DataValue::Int32(v) => write_uint(out, T_INT32, &v.to_be_bytes())?,
        DataValue::Bool(v) => write_header(out, T_BOOL, *v as usize)?,
        DataValue::Array(items) => {
            check_encode_depth(depth)?;
            write_header(out, T_ARRAY, items.len())?;
            for item in items {
                encode_node(item, out, spans, depth + 1)?;
            }
        }
        DataValue::String(_) | DataValue::Map(_) => unreachable!("handled above"),
    }
    close_node(spans, idx, out.len());
    Ok(())
}

/// Append the canonical (smallest, pointer-free) encoding of `value`. On error (a string,
/// map or array larger than the format allows, or nesting deeper than 512) `out` is unchanged.
pub fn encode(value: &DataValue, out: &mut Vec<u8>) -> Result<()> {
    let len = out.len();
    encode_node(value, out, &mut Vec::new(), 0).inspect_err(|_| out.truncate(len))
}

/// [`encode`] of a map given as its entries (saves building a `DataValue::Map`).
pub fn encode_map(entries: &[(String, DataValue)], out: &mut Vec<u8>) -> Result<()> {
    let len = out.len();
    encode_map_node(entries, out, &mut Vec::new(), 0).inspect_err(|_| out.truncate(len))
}

/// `HashMap` hasher for keys that already are good 64-bit hashes.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type HashToOffset<V> = HashMap<u64, V, BuildHasherDefault<PassThrough>>;

/// Builds a data section, deduplicating by content (see the module docs).
pub struct DataSectionWriter {
    store: Store,
    /// Scratch: canonical encoding of the value being inserted and its node extents.
    canon: Vec<u8>,
    spans: Vec<Span>,
    /// Largest section allowed (32-bit offsets; lowered by tests).
    max_len: u64,
}

impl Default for DataSectionWriter {
    fn default() -> DataSectionWriter {
        DataSectionWriter {
            store: Store::default(),
            canon: Vec::new(),
            spans: Vec::new(),
            max_len: MAX_SECTION_LEN,
        }
    }
}

/// The written section and its content index.
#[derive(Default)]
struct Store {
    buf: Vec<u8>,
    /// Content hash of a canonical encoding -> offset of its first written copy.
    first: HashToOffset<u32>,
    /// Further offsets for hashes shared by different contents (64-bit collisions: rare).
    collisions: HashToOffset<Vec<u32>>,
}

impl Store {
    fn find(&self, hash: u64, canon: &[u8]) -> Option<u32> {
        let matches = |off: u32| canon_eq(&self.buf, off as usize, canon);
        if let Some(&off) = self.first.get(&hash) {
            if matches(off) {
                return Some(off);
            }
            if let Some(more) = self.collisions.get(&hash) {
                return more.iter().copied().find(|&o| matches(o));
            }
        }
        None
    }

    fn record(&mut self, hash: u64, off: u32) {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(off);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(hash).or_default().push(off)
            }
        }
    }

    /// Write node `idx` of `canon` (starting at `pos`); returns (next node index, end in canon).
    fn write_node(
        &mut self,
        canon: &[u8],
        spans: &[Span],
        idx: usize,
        pos: usize,
        top_hash: Option<u64>,
    ) -> (usize, usize) {
        let Span { end, next_node } = spans[idx];
        let bytes = &canon[pos..end];
        let hash = match top_hash {
            Some(h) => Some(h),
            None if bytes.len() > 2 && is_shared_kind(bytes) => {
                let h = key_hash(bytes, false);
                if let Some(target) = self.find(h, bytes) {
                    if pointer_len(target) < bytes.len() {
                        write_pointer(&mut self.buf, target);
                        return (next_node, end);
                    }
                    // An earlier copy exists but is too far away to point to more cheaply;
                    // keep indexing the earlier (closer to offset 0) one.
                    None
                } else {
                    Some(h)
                }
            }
            None => None,
        };
        let here = self.buf.len() as u32;
        match decode::read_ctrl(canon, pos, 0) {
            Ok(Ctrl::Field(f)) if matches!(f.kind, ValueKind::Map | ValueKind::Array) => {
                self.buf.extend_from_slice(&canon[pos..f.payload]);
                let (mut i, mut p) = (idx + 1, f.payload);
                while p < end {
                    (i, p) = self.write_node(canon, spans, i, p, None);
                }
            }
            _ => self.buf.extend_from_slice(bytes),
        }
        if let Some(h) = hash {
            self.record(h, here);
        }
        (next_node, end)
    }
}

/// Whether a nested value of this canonical encoding is indexed for pointer reuse: strings
/// (map keys included), bytes, maps and arrays. Numbers are left out: at most 17 bytes, rarely
/// repeated outside maps that are shared whole, and indexing them would cost a table entry each.
fn is_shared_kind(canon: &[u8]) -> bool {
    match canon {
        [ctrl, ..] if matches!(ctrl >> 5, T_STRING | T_BYTES | T_MAP) => true,
        [ctrl, ext, ..] => ctrl >> 5 == 0 && *ext == T_ARRAY - 7,
        _ => false,
    }
}

/// Whether the value at `off` in the written section (pointers followed) encodes exactly the
/// canonical bytes `canon`.
fn canon_eq(section: &[u8], off: usize, canon: &[u8]) -> bool {
    matches!(eq_at(section, off, canon, 0), Some((_, end)) if end == canon.len())
}

/// Parallel walk of a written value and a canonical encoding; returns both end offsets.
fn eq_at(section: &[u8], s: usize, canon: &[u8], c: usize) -> Option<(usize, usize)> {
    let cf = match decode::read_ctrl(canon, c, 0).ok()? {
        Ctrl::Field(f) => f,
        Ctrl::Pointer { .. } => return None,
    };
    let (sf, s_next) = decode::resolve_with_next(section, s, 0).ok()?;
    if sf.kind != cf.kind || sf.size != cf.size {
        return None;
    }
    let (s_end, c_end) = match cf.kind {
        ValueKind::Map | ValueKind::Array => {
            let n = if cf.kind == ValueKind::Map {
                2 * cf.size
            } else {
                cf.size
            };
            let (mut sp, mut cp) = (sf.payload, cf.payload);
            for _ in 0..n {
                (sp, cp) = eq_at(section, sp, canon, cp)?;
            }
            (sp, cp)
        }
        _ => {
            if sf.payload_bytes(section) != cf.payload_bytes(canon) {
                return None;
            }
            (sf.scalar_end(), cf.scalar_end())
        }
    };
    Some((s_next.unwrap_or(s_end), c_end))
}

impl DataSectionWriter {
    pub fn new() -> DataSectionWriter {
        DataSectionWriter::default()
    }

    /// Add `value` (unless an equal value was written before) and return its offset in the
    /// data section. Errors, leaving the section unchanged, when the value cannot be encoded or
    /// the section would outgrow 32-bit offsets.
    pub fn insert(&mut self, value: &DataValue) -> Result<u32> {
        self.canon.clear();
        self.spans.clear();
        encode_node(value, &mut self.canon, &mut self.spans, 0)?;
        let hash = key_hash(&self.canon, false);
        if let Some(off) = self.store.find(hash, &self.canon) {
            return Ok(off);
        }
        // Pointers only ever shorten a value, so the canonical length bounds the growth.
        if (self.store.buf.len() + self.canon.len()) as u64 > self.max_len {
            return Err(Error::Build(format!(
                "data section would exceed {} bytes, the limit of 32-bit offsets",
                self.max_len
            )));
        }
        let off = self.store.buf.len() as u32;
        self.store
            .write_node(&self.canon, &self.spans, 0, 0, Some(hash));
        Ok(off)
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.store.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.buf.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.store.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.store.buf
    }
}

/// Test helpers shared by the mmdb and value tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::mmdb::metadata::write_metadata;
    use std::fmt;

    /// Builds a `DataValue` from any serde deserializer, keeping MaxMind DB types apart (so the
    /// reference reader's typed output can be compared exactly).
    pub(crate) struct Typed(pub DataValue);

    impl<'de> serde::Deserialize<'de> for Typed {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Typed, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Typed;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an MMDB value")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Bool(v)))
                }
                fn visit_i32<E>(self, v: i32) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Int32(v)))
                }
                fn visit_u16<E>(self, v: u16) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Uint16(v)))
                }
                fn visit_u32<E>(self, v: u32) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Uint32(v)))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Uint64(v)))
                }
                fn visit_u128<E>(self, v: u128) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Uint128(v)))
                }
                fn visit_f32<E>(self, v: f32) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Float(v)))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Double(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Typed, E> {
                    Ok(Typed(DataValue::String(v.into())))
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Typed, E> {
                    Ok(Typed(DataValue::Bytes(v.into())))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Typed, A::Error> {
                    let mut items = Vec::new();
                    while let Some(Typed(v)) = a.next_element()? {
                        items.push(v);
                    }
                    Ok(Typed(DataValue::Array(items)))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Typed, A::Error> {
                    let mut entries = Vec::new();
                    while let Some((k, Typed(v))) = a.next_entry::<String, Typed>()? {
                        entries.push((k, v));
                    }
                    Ok(Typed(DataValue::Map(entries)))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A minimal IPv4 .mmdb: one node whose left record (0.0.0.0/1) points to `left` and right
    /// record (128.0.0.0/1) to `right`, offsets in `section`.
    pub(crate) fn tiny_mmdb(section: &[u8], left: u32, right: u32) -> Vec<u8> {
        let mut file = Vec::new();
        for off in [left, right] {
            let record = 1 + 16 + off;
            file.extend_from_slice(&record.to_be_bytes()[1..]);
        }
        file.extend_from_slice(&[0; 16]);
        file.extend_from_slice(section);
        let s = |x: &str| DataValue::String(x.into());
        write_metadata(
            &mut file,
            &[
                ("node_count".into(), DataValue::Uint32(1)),
                ("record_size".into(), DataValue::Uint16(24)),
                ("ip_version".into(), DataValue::Uint16(4)),
                ("binary_format_major_version".into(), DataValue::Uint16(2)),
                ("binary_format_minor_version".into(), DataValue::Uint16(0)),
                ("build_epoch".into(), DataValue::Uint64(1_700_000_000)),
                ("database_type".into(), s("matchy-test")),
                ("languages".into(), DataValue::Array(vec![s("en")])),
                (
                    "description".into(),
                    DataValue::Map(vec![("en".into(), s("test"))]),
                ),
            ],
        )
        .unwrap();
        file
    }

    /// Equality with floats compared bit for bit (so NaN equals itself).
    pub(crate) fn same(a: &DataValue, b: &DataValue) -> bool {
        match (a, b) {
            (DataValue::Double(x), DataValue::Double(y)) => x.to_bits() == y.to_bits(),
            (DataValue::Float(x), DataValue::Float(y)) => x.to_bits() == y.to_bits(),
            (DataValue::Array(x), DataValue::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
            }
            (DataValue::Map(x), DataValue::Map(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|((k, p), (l, q))| k == l && same(p, q))
            }
            _ => a == b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{same, tiny_mmdb, Typed};
    use super::*;
    use crate::value::Value;
    use proptest::prelude::*;

    fn enc(v: DataValue) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&v, &mut out).unwrap();
        out
    }

    #[test]
    fn canonical_bytes() {
        use DataValue::*;
        assert_eq!(enc(Uint32(0)), [0xc0]);
        assert_eq!(enc(Uint32(255)), [0xc1, 0xff]);
        assert_eq!(enc(Uint32(256)), [0xc2, 1, 0]);
        assert_eq!(enc(Uint16(0x1234)), [0xa2, 0x12, 0x34]);
        assert_eq!(enc(Int32(5)), [0x01, 0x01, 5]);
        assert_eq!(enc(Int32(0)), [0x00, 0x01]);
        assert_eq!(enc(Int32(-1)), [0x04, 0x01, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(enc(Int32(i32::MAX)), [0x04, 0x01, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(
            enc(Uint64(1 << 60)),
            [0x08, 0x02, 0x10, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(enc(Uint128(0x010203)), [0x03, 0x03, 1, 2, 3]);
        assert_eq!(enc(Bool(true)), [0x01, 0x07]);
        assert_eq!(enc(Bool(false)), [0x00, 0x07]);
        assert_eq!(enc(Float(1.0)), [0x04, 0x08, 0x3f, 0x80, 0, 0]);
        assert_eq!(enc(Double(0.5)), [0x68, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(enc(Map(vec![])), [0xe0]);
        assert_eq!(enc(Array(vec![])), [0x00, 0x04]);
        assert_eq!(enc(Bytes(vec![9])), [0x81, 9]);
        assert_eq!(
            enc(Map(vec![("a".into(), String("b".into()))])),
            [0xe1, 0x41, b'a', 0x41, b'b']
        );
        // Size-field boundaries (spec examples: 80 -> 29 + 51, 13,392 -> 285 + 13,107).
        let header = |n: usize| enc(String("x".repeat(n)))[..].to_vec();
        assert_eq!(header(28)[0], 0x5c);
        assert_eq!(header(29)[..2], [0x5d, 0]);
        assert_eq!(header(80)[..2], [0x5d, 51]);
        assert_eq!(header(284)[..2], [0x5d, 255]);
        assert_eq!(header(285)[..3], [0x5e, 0, 0]);
        assert_eq!(header(13_392)[..3], [0x5e, 0x33, 0x33]);
        assert_eq!(header(65_820)[..3], [0x5e, 0xff, 0xff]);
        assert_eq!(header(65_821)[..4], [0x5f, 0, 0, 0]);
        assert_eq!(header(MAX_SIZE)[..4], [0x5f, 0xff, 0xff, 0xff]);
        // Extended types put the size bytes after the type byte.
        assert_eq!(enc(Array(vec![Bool(true); 30]))[..3], [0x1d, 0x04, 1]);
        let mut out = vec![1, 2];
        assert!(matches!(
            encode(&String("x".repeat(MAX_SIZE + 1)), &mut out),
            Err(Error::Build(_))
        ));
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let nest = |n: usize| {
            let mut v = DataValue::Array(vec![]);
            for _ in 1..n {
                v = DataValue::Array(vec![v]);
            }
            v
        };
        let mut w = DataSectionWriter::new();
        let off = w.insert(&nest(MAX_DEPTH)).unwrap();
        assert!(Value::new(w.as_bytes(), off as usize, 0).to_json().is_ok());
        let len = w.len();
        assert!(matches!(
            w.insert(&nest(MAX_DEPTH + 1)),
            Err(Error::Build(_))
        ));
        assert_eq!(w.len(), len);
    }

    #[test]
    fn repeated_keys_strings_and_submaps_become_pointers() {
        let names = DataValue::Map(vec![
            ("en".into(), DataValue::String("Germany".into())),
            ("de".into(), DataValue::String("Deutschland".into())),
        ]);
        let record = |city: &str| {
            DataValue::Map(vec![
                ("city".into(), DataValue::String(city.into())),
                (
                    "country".into(),
                    DataValue::Map(vec![
                        ("iso_code".into(), DataValue::String("DE".into())),
                        ("names".into(), names.clone()),
                    ]),
                ),
            ])
        };
        let mut w = DataSectionWriter::new();
        let first = w.insert(&record("Berlin")).unwrap();
        let one = w.len();
        let second = w.insert(&record("Hamburg")).unwrap();
        let two = w.len() - one;
        // The second record is the map header, the "city" key as a pointer (2 bytes), the new
        // string, then one pointer to the shared "country" map.
        assert_eq!(two, 1 + 2 + 8 + 2 + 2, "{two} bytes vs {one}");
        assert_eq!(w.insert(&record("Berlin")).unwrap(), first);
        let section = w.into_bytes();
        for (off, city) in [(first, "Berlin"), (second, "Hamburg")] {
            let v = Value::new(&section, off as usize, 0);
            assert_eq!(v.to_owned_value().unwrap(), record(city));
            assert_eq!(
                v.get(&["country", "names", "de"])
                    .unwrap()
                    .unwrap()
                    .as_str()
                    .unwrap(),
                "Deutschland"
            );
        }
    }

    #[test]
    fn outgrowing_32_bit_offsets_is_an_error() {
        let mut w = DataSectionWriter {
            max_len: 100,
            ..DataSectionWriter::default()
        };
        let big = DataValue::Bytes(vec![1; 60]);
        assert_eq!(w.insert(&big).unwrap(), 0);
        let len = w.len();
        let err = w.insert(&DataValue::Bytes(vec![2; 60])).unwrap_err();
        assert!(matches!(err, Error::Build(_)), "{err}");
        assert_eq!(w.len(), len);
        // Duplicates still resolve, and smaller values still fit.
        assert_eq!(w.insert(&big).unwrap(), 0);
        assert!(w.insert(&DataValue::Bytes(vec![3; 30])).is_ok());
    }

    #[test]
    fn pointer_encoding_follows_the_spec() {
        for target in [
            0u32,
            2047,
            2048,
            526_335,
            526_336,
            134_744_063,
            134_744_064,
            u32::MAX,
        ] {
            let mut out = Vec::new();
            write_pointer(&mut out, target);
            assert_eq!(out.len(), pointer_len(target));
            match decode::read_ctrl(&out, 0, 0).unwrap() {
                Ctrl::Pointer { target: t, next } => {
                    assert_eq!((t, next), (target as usize, out.len()))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn far_strings_are_inlined_when_a_pointer_would_not_be_shorter() {
        let mut w = DataSectionWriter::new();
        w.insert(&DataValue::String("US".into())).unwrap();
        // "US" costs 3 bytes; a pointer to offset 0 costs 2: the repeat is a pointer.
        let off = w
            .insert(&DataValue::Array(vec![DataValue::String("US".into())]))
            .unwrap();
        assert_eq!(&w.as_bytes()[off as usize..], [0x01, 0x04, 0x20, 0x00]);
        // Past offset 2,048 a pointer costs 3 bytes: a 2-byte string is written again.
        w.insert(&DataValue::Bytes(vec![0; 3000])).unwrap();
        let off = w
            .insert(&DataValue::Array(vec![DataValue::String("XY".into())]))
            .unwrap();
        let off2 = w
            .insert(&DataValue::Array(vec![
                DataValue::String("XY".into()),
                DataValue::Bool(true),
            ]))
            .unwrap();
        assert_eq!(
            &w.as_bytes()[off as usize..off2 as usize],
            [0x01, 0x04, 0x42, b'X', b'Y']
        );
        assert_eq!(
            &w.as_bytes()[off2 as usize..][..5],
            [0x02, 0x04, 0x42, b'X', b'Y']
        );
    }

    #[test]
    fn hash_collisions_are_resolved_by_content() {
        // Force two different values under one hash: the index must not confuse them.
        let mut w = DataSectionWriter::new();
        let a = w.insert(&DataValue::String("alpha".into())).unwrap();
        let b_canon = enc(DataValue::String("bravo".into()));
        let a_hash = key_hash(&enc(DataValue::String("alpha".into())), false);
        assert_eq!(w.store.find(a_hash, &b_canon), None);
        let b = w.store.buf.len() as u32;
        w.store.buf.extend_from_slice(&b_canon);
        w.store.record(a_hash, b);
        assert_eq!(w.store.find(a_hash, &b_canon), Some(b));
        assert_eq!(
            w.store
                .find(a_hash, &enc(DataValue::String("alpha".into()))),
            Some(a)
        );
    }

    fn arb_value() -> impl Strategy<Value = DataValue> {
        let leaf = prop_oneof![
            "[a-d]{0,4}".prop_map(DataValue::String),
            "\\PC{0,30}".prop_map(DataValue::String),
            any::<f64>().prop_map(DataValue::Double),
            any::<f32>().prop_map(DataValue::Float),
            proptest::collection::vec(any::<u8>(), 0..10).prop_map(DataValue::Bytes),
            any::<u16>().prop_map(DataValue::Uint16),
            prop_oneof![0..300u32, any::<u32>()].prop_map(DataValue::Uint32),
            any::<i32>().prop_map(DataValue::Int32),
            any::<u64>().prop_map(DataValue::Uint64),
            any::<u128>().prop_map(DataValue::Uint128),
            any::<bool>().prop_map(DataValue::Bool),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(DataValue::Array),
                proptest::collection::btree_map("[a-d]{1,4}", inner, 0..6)
                    .prop_map(|m| DataValue::Map(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// The reference reader (the `maxminddb` crate) reads what the writer wrote, pointers
        /// and all.
        #[test]
        fn reference_reader_agrees(values in proptest::collection::vec(arb_value(), 1..5)) {
            let mut w = DataSectionWriter::new();
            let offsets: Vec<u32> = values.iter().map(|v| w.insert(v).unwrap()).collect();
            let (left, right) = (offsets[0], offsets[offsets.len() - 1]);
            let file = tiny_mmdb(w.as_bytes(), left, right);
            let reader = maxminddb::Reader::from_source(file).unwrap();
            reader.verify().unwrap();
            for (ip, v) in [("1.2.3.4", &values[0]), ("200.1.1.1", &values[values.len() - 1])] {
                let found = reader.lookup(ip.parse().unwrap()).unwrap();
                let Typed(theirs) = found.decode::<Typed>().unwrap().unwrap();
                prop_assert!(same(&theirs, v), "{:?} != {:?}", theirs, v);
            }
        }
    }
}
