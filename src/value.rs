//! [`Value`]: the public, lazily decoded view of one value in a database's data section. A
//! `Value` is three words (slice, offset, base); nothing is decoded until asked for, walking a
//! path only reads the headers of the maps on the way, and strings are borrowed from the file.
//! Decoding errors on damaged bytes are `Error::Corrupt` with the file offset; asking for the
//! wrong type is `Error::Decode`.

use std::fmt::{self, Write as _};

use serde::de::{self, value::BorrowedStrDeserializer};

use crate::data::DataValue;
use crate::error::{Error, Result};
use crate::mmdb::decode::{self, check_depth, Field};

/// The MaxMind DB type of a value (pointers are followed, so never seen here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
// A full-word discriminant: decoded headers that pass through the stack are then stored and
// reloaded at the same width (a byte store read back as a word stalls store forwarding;
// measured 2x on path lookups: ~300 ns -> ~140 ns for a 3-key path through pointers).
#[repr(u64)]
pub enum ValueKind {
    Map,
    Array,
    String,
    Double,
    Bytes,
    Uint16,
    Uint32,
    Int32,
    Uint64,
    Uint128,
    Bool,
    Float,
}

impl ValueKind {
    /// The type's name as the MaxMind DB spec spells it (`"uint32"`, `"map"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Map => "map",
            ValueKind::Array => "array",
            ValueKind::String => "utf8_string",
            ValueKind::Double => "double",
            ValueKind::Bytes => "bytes",
            ValueKind::Uint16 => "uint16",
            ValueKind::Uint32 => "uint32",
            ValueKind::Int32 => "int32",
            ValueKind::Uint64 => "uint64",
            ValueKind::Uint128 => "uint128",
            ValueKind::Bool => "boolean",
            ValueKind::Float => "float",
        }
    }

    fn is_unsigned(self) -> bool {
        matches!(
            self,
            ValueKind::Uint16 | ValueKind::Uint32 | ValueKind::Uint64 | ValueKind::Uint128
        )
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A lazily decoded value borrowed from a database (or metadata) section.
#[derive(Clone, Copy)]
pub struct Value<'a> {
    data: &'a [u8],
    /// Offset of the value's control byte in `data` (may hold a pointer, followed when read).
    offset: usize,
    /// Absolute file offset of `data[0]`, for error messages.
    base: u64,
}

#[cold]
fn mismatch(want: &str, found: ValueKind) -> Error {
    Error::Decode(format!("expected {want}, found {found}"))
}

impl<'a> Value<'a> {
    /// The value whose control byte (or pointer) is at `offset` in `data`, a slice starting at
    /// absolute file offset `base`.
    pub(crate) fn new(data: &'a [u8], offset: usize, base: u64) -> Value<'a> {
        Value { data, offset, base }
    }

    /// Offset of this value's control byte (or pointer) in its section.
    #[allow(dead_code)]
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    #[inline]
    fn field(&self) -> Result<Field> {
        decode::resolve(self.data, self.offset, self.base)
    }

    /// The type of the value.
    pub fn kind(&self) -> Result<ValueKind> {
        Ok(self.field()?.kind)
    }

    /// Walk `path` from this value: map keys select map entries; on an array a path element that
    /// parses as an index selects that element. `Ok(None)` when a key or index is missing or the
    /// path descends into a scalar.
    pub fn get(&self, path: &[&str]) -> Result<Option<Value<'a>>> {
        let (data, base) = (self.data, self.base);
        let mut pos = self.offset;
        for step in path {
            let f = decode::resolve(data, pos, base)?;
            pos = match f.kind {
                ValueKind::Map => match find_key(data, &f, step.as_bytes(), base)? {
                    Some(p) => p,
                    None => return Ok(None),
                },
                ValueKind::Array => {
                    let index = match step.parse::<usize>() {
                        Ok(i) if i < f.size => i,
                        _ => return Ok(None),
                    };
                    let mut p = f.payload;
                    for _ in 0..index {
                        p = decode::skip(data, p, base)?;
                    }
                    p
                }
                _ => return Ok(None),
            };
        }
        Ok(Some(Value::new(data, pos, base)))
    }

    /// The text of a string value (borrowed from the file).
    pub fn as_str(&self) -> Result<&'a str> {
        let f = self.field()?;
        match f.kind {
            ValueKind::String => decode::read_str(self.data, &f, self.base),
            k => Err(mismatch("a string", k)),
        }
    }

    /// Any unsigned integer (uint16/32/64/128) whose value fits in `u64`.
    pub fn as_u64(&self) -> Result<u64> {
        let v = self.as_u128()?;
        u64::try_from(v)
            .map_err(|_| Error::Decode(format!("uint128 value {v} does not fit in u64")))
    }

    /// An int32, or an unsigned integer whose value fits in `i64`.
    pub fn as_i64(&self) -> Result<i64> {
        let f = self.field()?;
        match f.kind {
            ValueKind::Int32 => Ok(decode::read_i32(self.data, &f) as i64),
            k if k.is_unsigned() => {
                let v = decode::read_uint(self.data, &f);
                i64::try_from(v)
                    .map_err(|_| Error::Decode(format!("{k} value {v} does not fit in i64")))
            }
            k => Err(mismatch("an integer", k)),
        }
    }

    /// Any unsigned integer (uint16/32/64/128).
    pub fn as_u128(&self) -> Result<u128> {
        let f = self.field()?;
        match f.kind {
            k if k.is_unsigned() => Ok(decode::read_uint(self.data, &f)),
            k => Err(mismatch("an unsigned integer", k)),
        }
    }

    /// A double, or a float widened to `f64`.
    pub fn as_f64(&self) -> Result<f64> {
        let f = self.field()?;
        match f.kind {
            ValueKind::Double => Ok(decode::read_f64(self.data, &f)),
            ValueKind::Float => Ok(decode::read_f32(self.data, &f) as f64),
            k => Err(mismatch("a double or float", k)),
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Result<bool> {
        let f = self.field()?;
        match f.kind {
            ValueKind::Bool => Ok(f.size == 1),
            k => Err(mismatch("a boolean", k)),
        }
    }

    /// The payload of a bytes value (borrowed from the file).
    pub fn as_bytes(&self) -> Result<&'a [u8]> {
        let f = self.field()?;
        match f.kind {
            ValueKind::Bytes => Ok(f.payload_bytes(self.data)),
            k => Err(mismatch("bytes", k)),
        }
    }

    /// The entries of a map in file order. Values are not decoded: each is positioned by
    /// skipping over the previous one.
    pub fn map_iter(&self) -> Result<MapIter<'a>> {
        let f = self.field()?;
        match f.kind {
            ValueKind::Map => Ok(MapIter::new(self.data, self.base, &f)),
            k => Err(mismatch("a map", k)),
        }
    }

    /// The elements of an array in order, each positioned by skipping the previous one.
    pub fn array_iter(&self) -> Result<ArrayIter<'a>> {
        let f = self.field()?;
        match f.kind {
            ValueKind::Array => Ok(ArrayIter::new(self.data, self.base, &f)),
            k => Err(mismatch("an array", k)),
        }
    }

    /// Decode the whole value into an owned [`DataValue`].
    #[allow(clippy::wrong_self_convention)] // `&self` like every other accessor
    pub fn to_owned_value(&self) -> Result<DataValue> {
        owned_at(self.data, self.offset, self.base, 0).map(|(v, _)| v)
    }

    /// Append the value as compact JSON: strings escaped per RFC 8259, integers exact,
    /// doubles/floats in Rust's shortest round-trip form (`NaN`/infinities as `null`), bytes as
    /// an array of numbers, maps as objects in file order.
    pub fn write_json(&self, out: &mut String) -> Result<()> {
        let len = out.len();
        json_at(self.data, self.offset, self.base, 0, out)
            .map(|_| ())
            .inspect_err(|_| out.truncate(len))
    }

    /// The value as compact JSON (see [`Value::write_json`]).
    #[allow(clippy::wrong_self_convention)] // `&self` like every other accessor
    pub fn to_json(&self) -> Result<String> {
        let mut s = String::new();
        self.write_json(&mut s)?;
        Ok(s)
    }

    /// Deserialize into any serde type; `&'a str` and `&'a [u8]` fields borrow from the file.
    pub fn deserialize<T: de::Deserialize<'a>>(&self) -> Result<T> {
        T::deserialize(Deser {
            value: *self,
            depth: 0,
        })
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_json() {
            Ok(s) => f.write_str(&s),
            Err(e) => write!(f, "<undecodable value: {e}>"),
        }
    }
}

/// Position of the value stored under `key` in the map `f`, comparing raw key bytes (a key
/// equal to a `&str` is valid UTF-8, other keys need no check).
fn find_key(data: &[u8], f: &Field, key: &[u8], base: u64) -> Result<Option<usize>> {
    let mut pos = f.payload;
    for _ in 0..f.size {
        let (k, next) = decode::resolve_with_next(data, pos, base)?;
        if k.kind != ValueKind::String {
            return Err(decode::corrupt(
                base,
                pos,
                format!("map key is a {}, not a string", k.kind),
            ));
        }
        let value_pos = next.unwrap_or(k.scalar_end());
        if k.payload_bytes(data) == key {
            return Ok(Some(value_pos));
        }
        pos = decode::skip(data, value_pos, base)?;
    }
    Ok(None)
}

/// Iterator over a map's entries; see [`Value::map_iter`]. Stops after the first error.
#[derive(Clone)]
pub struct MapIter<'a> {
    data: &'a [u8],
    base: u64,
    /// The next key, or (when `at_value`) the previous entry's value, skipped on the next call.
    pos: usize,
    at_value: bool,
    remaining: usize,
}

impl<'a> MapIter<'a> {
    fn new(data: &'a [u8], base: u64, f: &Field) -> MapIter<'a> {
        MapIter {
            data,
            base,
            pos: f.payload,
            at_value: false,
            remaining: f.size,
        }
    }

    fn step(&mut self) -> Result<(&'a str, Value<'a>)> {
        if self.at_value {
            self.pos = decode::skip(self.data, self.pos, self.base)?;
        }
        let (key, value_pos) = decode::read_key(self.data, self.pos, self.base)?;
        self.pos = value_pos;
        self.at_value = true;
        self.remaining -= 1;
        Ok((key, Value::new(self.data, value_pos, self.base)))
    }
}

impl<'a> Iterator for MapIter<'a> {
    type Item = Result<(&'a str, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let item = self.step();
        if item.is_err() {
            self.remaining = 0;
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// Iterator over an array's elements; see [`Value::array_iter`]. Stops after the first error.
#[derive(Clone)]
pub struct ArrayIter<'a> {
    data: &'a [u8],
    base: u64,
    /// The next element, or (when `at_value`) the previous one, skipped on the next call.
    pos: usize,
    at_value: bool,
    remaining: usize,
}

impl<'a> ArrayIter<'a> {
    fn new(data: &'a [u8], base: u64, f: &Field) -> ArrayIter<'a> {
        ArrayIter {
            data,
            base,
            pos: f.payload,
            at_value: false,
            remaining: f.size,
        }
    }
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Result<Value<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        if self.at_value {
            match decode::skip(self.data, self.pos, self.base) {
                Ok(p) => self.pos = p,
                Err(e) => {
                    self.remaining = 0;
                    return Some(Err(e));
                }
            }
        }
        self.at_value = true;
        self.remaining -= 1;
        Some(Ok(Value::new(self.data, self.pos, self.base)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// Capacity to reserve for `claimed` elements: the claim is bounded by the bytes left, not by
/// memory, so reserve little and let the vector grow with what actually decodes.
fn capacity_hint(claimed: usize) -> usize {
    claimed.min(256)
}

/// Decode the value at `off` (following a pointer); returns it and the offset just past it.
fn owned_at(data: &[u8], off: usize, base: u64, depth: usize) -> Result<(DataValue, usize)> {
    let (f, next) = decode::resolve_with_next(data, off, base)?;
    let (value, end) = match f.kind {
        ValueKind::Map => {
            check_depth(depth, base, f.start)?;
            let mut entries = Vec::with_capacity(capacity_hint(f.size));
            let mut pos = f.payload;
            for _ in 0..f.size {
                let (key, value_pos) = decode::read_key(data, pos, base)?;
                let (v, end) = owned_at(data, value_pos, base, depth + 1)?;
                entries.push((key.to_owned(), v));
                pos = end;
            }
            (DataValue::Map(entries), pos)
        }
        ValueKind::Array => {
            check_depth(depth, base, f.start)?;
            let mut items = Vec::with_capacity(capacity_hint(f.size));
            let mut pos = f.payload;
            for _ in 0..f.size {
                let (v, end) = owned_at(data, pos, base, depth + 1)?;
                items.push(v);
                pos = end;
            }
            (DataValue::Array(items), pos)
        }
        kind => {
            let v = match kind {
                ValueKind::String => DataValue::String(decode::read_str(data, &f, base)?.into()),
                ValueKind::Double => DataValue::Double(decode::read_f64(data, &f)),
                ValueKind::Float => DataValue::Float(decode::read_f32(data, &f)),
                ValueKind::Bytes => DataValue::Bytes(f.payload_bytes(data).to_vec()),
                ValueKind::Uint16 => DataValue::Uint16(decode::read_uint(data, &f) as u16),
                ValueKind::Uint32 => DataValue::Uint32(decode::read_uint(data, &f) as u32),
                ValueKind::Uint64 => DataValue::Uint64(decode::read_uint(data, &f) as u64),
                ValueKind::Uint128 => DataValue::Uint128(decode::read_uint(data, &f)),
                ValueKind::Int32 => DataValue::Int32(decode::read_i32(data, &f)),
                _ => DataValue::Bool(f.size == 1),
            };
            (v, f.scalar_end())
        }
    };
    Ok((value, next.unwrap_or(end)))
}

/// Append `s` as a JSON string literal (escapes as serde_json writes them).
pub(crate) fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn write_json_float(out: &mut String, v: f64, debug: &dyn fmt::Debug) {
    if v.is_finite() {
        let _ = write!(out, "{debug:?}");
    } else {
        out.push_str("null");
    }
}

/// Write the value at `off` as JSON; returns the offset just past it.
fn json_at(data: &[u8], off: usize, base: u64, depth: usize, out: &mut String) -> Result<usize> {
    let (f, next) = decode::resolve_with_next(data, off, base)?;
    let end = match f.kind {
        ValueKind::Map => {
            check_depth(depth, base, f.start)?;
            out.push('{');
            let mut pos = f.payload;
            for i in 0..f.size {
                if i > 0 {
                    out.push(',');
                }
                let (key, value_pos) = decode::read_key(data, pos, base)?;
                write_json_str(out, key);
                out.push(':');
                pos = json_at(data, value_pos, base, depth + 1, out)?;
            }
            out.push('}');
            pos
        }
        ValueKind::Array => {
            check_depth(depth, base, f.start)?;
            out.push('[');
            let mut pos = f.payload;
            for i in 0..f.size {
                if i > 0 {
                    out.push(',');
                }
                pos = json_at(data, pos, base, depth + 1, out)?;
            }
            out.push(']');
            pos
        }
        kind => {
            match kind {
                ValueKind::String => write_json_str(out, decode::read_str(data, &f, base)?),
                ValueKind::Double => {
                    let v = decode::read_f64(data, &f);
                    write_json_float(out, v, &v);
                }
                ValueKind::Float => {
                    let v = decode::read_f32(data, &f);
                    write_json_float(out, v as f64, &v);
                }
                ValueKind::Bytes => {
                    out.push('[');
                    for (i, b) in f.payload_bytes(data).iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{b}");
                    }
                    out.push(']');
                }
                ValueKind::Int32 => {
                    let _ = write!(out, "{}", decode::read_i32(data, &f));
                }
                ValueKind::Bool => out.push_str(if f.size == 1 { "true" } else { "false" }),
                _ => {
                    let _ = write!(out, "{}", decode::read_uint(data, &f));
                }
            }
            f.scalar_end()
        }
    };
    Ok(next.unwrap_or(end))
}

/// The serde deserializer behind [`Value::deserialize`]; `depth` counts enclosing maps/arrays
/// so recursive target types cannot follow a pointer cycle forever.
struct Deser<'a> {
    value: Value<'a>,
    depth: usize,
}

impl<'a> Deser<'a> {
    fn child(&self, value: Value<'a>) -> Deser<'a> {
        Deser {
            value,
            depth: self.depth + 1,
        }
    }
}

impl<'de> de::Deserializer<'de> for Deser<'de> {
    type Error = Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let Value { data, base, .. } = self.value;
        let f = self.value.field()?;
        match f.kind {
            ValueKind::String => visitor.visit_borrowed_str(decode::read_str(data, &f, base)?),
            ValueKind::Double => visitor.visit_f64(decode::read_f64(data, &f)),
            ValueKind::Float => visitor.visit_f32(decode::read_f32(data, &f)),
            // As a sequence of numbers (what `to_json` writes, and what self-describing targets
            // such as `serde_json::Value` accept); `&[u8]` targets get the borrowed bytes
            // through `deserialize_bytes`.
            ValueKind::Bytes => visitor.visit_seq(de::value::SeqDeserializer::<_, Error>::new(
                f.payload_bytes(data).iter().copied(),
            )),
            ValueKind::Uint16 => visitor.visit_u16(decode::read_uint(data, &f) as u16),
            ValueKind::Uint32 => visitor.visit_u32(decode::read_uint(data, &f) as u32),
            ValueKind::Uint64 => visitor.visit_u64(decode::read_uint(data, &f) as u64),
            ValueKind::Uint128 => visitor.visit_u128(decode::read_uint(data, &f)),
            ValueKind::Int32 => visitor.visit_i32(decode::read_i32(data, &f)),
            ValueKind::Bool => visitor.visit_bool(f.size == 1),
            ValueKind::Map => {
                check_depth(self.depth, base, f.start)?;
                visitor.visit_map(MapAccess {
                    iter: MapIter::new(data, base, &f),
                    value: None,
                    parent: &self,
                })
            }
            ValueKind::Array => {
                check_depth(self.depth, base, f.start)?;
                visitor.visit_seq(SeqAccess {
                    iter: ArrayIter::new(data, base, &f),
                    parent: &self,
                })
            }
        }
    }

    /// Bytes values are borrowed from the file; anything else as `deserialize_any`.
    fn deserialize_bytes<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let f = self.value.field()?;
        match f.kind {
            ValueKind::Bytes => visitor.visit_borrowed_bytes(f.payload_bytes(self.value.data)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    /// A value that is present is `Some`; absence is a missing map key.
    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_some(self)
    }

    /// Skipped without decoding (the enclosing map/array positions the next value by skipping).
    fn deserialize_ignored_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    /// A string names a unit variant; a one-entry map `{variant: content}` any variant.
    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let Value { data, base, .. } = self.value;
        let f = self.value.field()?;
        match f.kind {
            ValueKind::String => {
                let s = decode::read_str(data, &f, base)?;
                let d = BorrowedStrDeserializer::<'de, Error>::new(s);
                visitor.visit_enum(d)
            }
            ValueKind::Map if f.size == 1 => {
                check_depth(self.depth, base, f.start)?;
                let (variant, content) = match MapIter::new(data, base, &f).next() {
                    Some(entry) => entry?,
                    None => unreachable!("map of size 1 yields one entry"),
                };
                visitor.visit_enum(EnumAccess {
                    variant,
                    content: self.child(content),
                })
            }
            k => Err(mismatch("a string or a one-entry map (an enum)", k)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct MapAccess<'a, 'p> {
    iter: MapIter<'a>,
    value: Option<Value<'a>>,
    parent: &'p Deser<'a>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'de, '_> {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.iter.next() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry?;
                self.value = Some(value);
                let d = BorrowedStrDeserializer::<'de, Error>::new(key);
                seed.deserialize(d).map(Some)
            }
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        match self.value.take() {
            Some(v) => seed.deserialize(self.parent.child(v)),
            None => Err(Error::Decode("map value requested before its key".into())),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.iter.size_hint().1
    }
}

struct SeqAccess<'a, 'p> {
    iter: ArrayIter<'a>,
    parent: &'p Deser<'a>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'de, '_> {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>> {
        match self.iter.next() {
            None => Ok(None),
            Some(v) => seed.deserialize(self.parent.child(v?)).map(Some),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.iter.size_hint().1
    }
}

struct EnumAccess<'a> {
    variant: &'a str,
    content: Deser<'a>,
}

impl<'de> de::EnumAccess<'de> for EnumAccess<'de> {
    type Error = Error;
    type Variant = Deser<'de>;

    fn variant_seed<V: de::DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Deser<'de>)> {
        let d = BorrowedStrDeserializer::<'de, Error>::new(self.variant);
        Ok((seed.deserialize(d)?, self.content))
    }
}

impl<'de> de::VariantAccess<'de> for Deser<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }

    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: de::Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self, visitor)
    }

    fn struct_variant<V: de::Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmdb::decode::{check_value, skip};
    use crate::mmdb::encode::test_support::same;
    use crate::mmdb::encode::{encode, DataSectionWriter};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The serde_json rendering oracle; None for values JSON cannot hold exactly here.
    fn to_serde_json(v: &DataValue) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match v {
            DataValue::String(s) => J::String(s.clone()),
            DataValue::Double(_) | DataValue::Float(_) => return None,
            DataValue::Bytes(b) => J::Array(b.iter().map(|&x| J::from(x)).collect()),
            DataValue::Uint16(x) => J::from(*x),
            DataValue::Uint32(x) => J::from(*x),
            DataValue::Int32(x) => J::from(*x),
            DataValue::Uint64(x) => J::from(*x),
            DataValue::Uint128(x) => J::from(u64::try_from(*x).ok()?),
            DataValue::Bool(x) => J::from(*x),
            DataValue::Array(items) => {
                J::Array(items.iter().map(to_serde_json).collect::<Option<_>>()?)
            }
            DataValue::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    m.insert(k.clone(), to_serde_json(v)?);
                }
                J::Object(m)
            }
        })
    }

    fn arb_scalar() -> impl Strategy<Value = DataValue> {
        prop_oneof![
            "[a-c]{0,3}".prop_map(DataValue::String),
            "\\PC{0,40}".prop_map(DataValue::String),
            "[ -~\n\t\u{1}\"\\\\]{25,300}".prop_map(DataValue::String),
            any::<f64>().prop_map(DataValue::Double),
            any::<f32>().prop_map(DataValue::Float),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(DataValue::Bytes),
            prop_oneof![Just(0u16), any::<u16>()].prop_map(DataValue::Uint16),
            prop_oneof![0..300u32, any::<u32>()].prop_map(DataValue::Uint32),
            prop_oneof![-300..300i32, any::<i32>()].prop_map(DataValue::Int32),
            prop_oneof![0..70_000u64, any::<u64>()].prop_map(DataValue::Uint64),
            prop_oneof![Just(0u128), 0..(1u128 << 70), any::<u128>()].prop_map(DataValue::Uint128),
            any::<bool>().prop_map(DataValue::Bool),
        ]
    }

    /// Random trees; maps have sorted unique keys (so serde_json renders them identically).
    fn arb_value() -> impl Strategy<Value = DataValue> {
        arb_scalar().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(DataValue::Array),
                proptest::collection::btree_map("[a-e]{1,4}", inner, 0..6)
                    .prop_map(|m| DataValue::Map(m.into_iter().collect())),
            ]
        })
    }

    fn write_all(values: &[DataValue]) -> (Vec<u8>, Vec<u32>) {
        let mut w = DataSectionWriter::new();
        let offsets = values.iter().map(|v| w.insert(v).unwrap()).collect();
        (w.into_bytes(), offsets)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn data_section_round_trips(values in proptest::collection::vec(arb_value(), 1..6)) {
            let mut w = DataSectionWriter::new();
            let offsets: Vec<u32> = values.iter().map(|v| w.insert(v).unwrap()).collect();
            // Re-inserting equal values (in reverse order) returns the same offsets and writes
            // nothing.
            let len = w.len();
            for (v, &off) in values.iter().zip(&offsets).rev() {
                prop_assert_eq!(w.insert(&v.clone()).unwrap(), off);
            }
            prop_assert_eq!(w.len(), len);
            let section = w.into_bytes();
            for (v, &off) in values.iter().zip(&offsets) {
                let value = Value::new(&section, off as usize, 100);
                let back = value.to_owned_value().unwrap();
                prop_assert!(same(&back, v), "{:?} != {:?}", back, v);
                let end = check_value(&section, off as usize, 100).unwrap();
                prop_assert_eq!(skip(&section, off as usize, 100).unwrap(), end);
                // Equal values get equal offsets; different values different ones.
                for (w2, &off2) in values.iter().zip(&offsets) {
                    prop_assert_eq!(same(v, w2), off == off2);
                }
                let json = value.to_json().unwrap();
                if let Some(j) = to_serde_json(v) {
                    prop_assert_eq!(&json, &serde_json::to_string(&j).unwrap());
                }
                // The JSON is valid and serde sees the same structure.
                let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
                if let Some(j) = to_serde_json(v) {
                    prop_assert_eq!(&parsed, &j);
                    let via_serde: serde_json::Value = value.deserialize().unwrap();
                    prop_assert_eq!(&via_serde, &j);
                }
            }
        }

        #[test]
        fn canonical_encoding_round_trips(v in arb_value()) {
            let mut out = vec![0xAA];
            encode(&v, &mut out).unwrap();
            let value = Value::new(&out, 1, 0);
            prop_assert!(same(&value.to_owned_value().unwrap(), &v));
            prop_assert_eq!(check_value(&out, 1, 0).unwrap(), out.len());
        }

        #[test]
        fn floats_render_as_round_trip_json(d in any::<f64>(), f in any::<f32>()) {
            let (section, offs) = write_all(&[DataValue::Double(d), DataValue::Float(f)]);
            let dj = Value::new(&section, offs[0] as usize, 0).to_json().unwrap();
            let fj = Value::new(&section, offs[1] as usize, 0).to_json().unwrap();
            // Valid JSON numbers that parse back exactly (Rust's parser is exact; serde_json's
            // default one is not).
            prop_assert!(serde_json::from_str::<serde_json::Value>(&dj).is_ok());
            prop_assert!(serde_json::from_str::<serde_json::Value>(&fj).is_ok());
            if d.is_finite() {
                prop_assert_eq!(dj.parse::<f64>().unwrap().to_bits(), d.to_bits());
            } else {
                prop_assert_eq!(dj, "null");
            }
            if f.is_finite() {
                prop_assert_eq!(fj.parse::<f32>().unwrap().to_bits(), f.to_bits());
            } else {
                prop_assert_eq!(fj, "null");
            }
        }

    }

    proptest! {
        // Every cut of every case is decoded several ways: fewer cases keep this quick.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn truncated_and_flipped_encodings_never_panic(v in arb_value(), flip in any::<(usize, u8)>()) {
            let (section, offs) = write_all(&[v]);
            let off = offs[0] as usize;
            let exercise = |data: &[u8]| {
                let value = Value::new(data, off.min(data.len()), 0);
                let _ = value.to_owned_value();
                let _ = value.to_json();
                let _ = value.deserialize::<serde_json::Value>();
                let _ = value.get(&["a", "0", "b"]);
                let _ = check_value(data, off.min(data.len()), 0);
                if let Ok(it) = value.map_iter() {
                    for e in it { let _ = e.map(|(_, v)| v.kind()); }
                }
                if let Ok(it) = value.array_iter() {
                    for e in it { let _ = e.map(|v| v.as_u64()); }
                }
            };
            for cut in 0..section.len() {
                let data = &section[..cut];
                exercise(data);
                // A truncated value never decodes as the full one would claim: any value whose
                // bytes run past the cut is an error.
                if off < cut {
                    if let Ok(end) = check_value(data, off, 0) {
                        prop_assert!(end <= cut);
                    }
                }
            }
            let mut flipped = section.clone();
            if !flipped.is_empty() {
                let i = flip.0 % flipped.len();
                flipped[i] ^= flip.1 | 1;
                exercise(&flipped);
            }
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..120)) {
            for off in 0..data.len() {
                let value = Value::new(&data, off, 0);
                let _ = value.to_owned_value();
                let _ = value.to_json();
                let _ = value.deserialize::<serde_json::Value>();
                let _ = value.get(&["a"]);
                let _ = format!("{value:?}");
            }
        }
    }

    fn sample() -> DataValue {
        let s = |x: &str| DataValue::String(x.into());
        DataValue::Map(vec![
            ("name".into(), s("Tōkyō \"quoted\" \\ \n\t\u{1}")),
            ("geoname_id".into(), DataValue::Uint32(1_850_147)),
            ("big".into(), DataValue::Uint128(1 << 120)),
            ("neg".into(), DataValue::Int32(-268_435_456)),
            ("lat".into(), DataValue::Double(35.6895)),
            ("small".into(), DataValue::Float(1.1)),
            ("flag".into(), DataValue::Bool(true)),
            ("raw".into(), DataValue::Bytes(vec![0, 0, 0, 42])),
            ("u64".into(), DataValue::Uint64(u64::MAX)),
            ("u16".into(), DataValue::Uint16(100)),
            (
                "tags".into(),
                DataValue::Array(vec![s("a"), s("bb"), s("ccc")]),
            ),
            (
                "names".into(),
                DataValue::Map(vec![("en".into(), s("Tokyo")), ("ja".into(), s("東京"))]),
            ),
            (
                "location".into(),
                DataValue::Map(vec![
                    ("latitude".into(), DataValue::Double(35.6895)),
                    ("time_zone".into(), s("Asia/Tokyo")),
                ]),
            ),
            ("kind".into(), s("City")),
            (
                "shape".into(),
                DataValue::Map(vec![("Circle".into(), DataValue::Double(2.5))]),
            ),
            (
                "ignored".into(),
                DataValue::Map(vec![("deep".into(), DataValue::Array(vec![s("x")]))]),
            ),
        ])
    }

    #[test]
    fn accessors_and_paths() {
        let (section, offs) = write_all(&[sample()]);
        let v = Value::new(&section, offs[0] as usize, 0);
        assert_eq!(v.kind().unwrap(), ValueKind::Map);
        let get = |p: &[&str]| v.get(p).unwrap().unwrap();
        assert_eq!(get(&["names", "ja"]).as_str().unwrap(), "東京");
        assert_eq!(get(&["tags", "2"]).as_str().unwrap(), "ccc");
        assert_eq!(get(&["tags", "0"]).as_str().unwrap(), "a");
        assert!(v.get(&["tags", "3"]).unwrap().is_none());
        assert!(v.get(&["tags", "x"]).unwrap().is_none());
        assert!(v.get(&["nope"]).unwrap().is_none());
        assert!(v.get(&["geoname_id", "x"]).unwrap().is_none());
        assert_eq!(v.get(&[]).unwrap().unwrap().kind().unwrap(), ValueKind::Map);
        assert_eq!(get(&["geoname_id"]).as_u64().unwrap(), 1_850_147);
        assert_eq!(get(&["geoname_id"]).as_i64().unwrap(), 1_850_147);
        assert_eq!(get(&["u16"]).as_u64().unwrap(), 100);
        assert_eq!(get(&["u64"]).as_u64().unwrap(), u64::MAX);
        assert!(matches!(get(&["u64"]).as_i64(), Err(Error::Decode(_))));
        assert_eq!(get(&["neg"]).as_i64().unwrap(), -268_435_456);
        assert!(matches!(get(&["neg"]).as_u64(), Err(Error::Decode(_))));
        assert_eq!(get(&["big"]).as_u128().unwrap(), 1 << 120);
        assert!(matches!(get(&["big"]).as_u64(), Err(Error::Decode(_))));
        assert_eq!(get(&["lat"]).as_f64().unwrap(), 35.6895);
        assert_eq!(get(&["small"]).as_f64().unwrap(), 1.1f32 as f64);
        assert!(get(&["flag"]).as_bool().unwrap());
        assert_eq!(get(&["raw"]).as_bytes().unwrap(), &[0, 0, 0, 42]);
        match get(&["names"]).as_str() {
            Err(Error::Decode(m)) => assert!(m.contains("found map"), "{m}"),
            other => panic!("{other:?}"),
        }
        let keys: Vec<&str> = get(&["names"])
            .map_iter()
            .unwrap()
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(keys, ["en", "ja"]);
        let tags: Vec<&str> = get(&["tags"])
            .array_iter()
            .unwrap()
            .map(|e| e.unwrap().as_str().unwrap())
            .collect();
        assert_eq!(tags, ["a", "bb", "ccc"]);
        assert!(get(&["tags"]).map_iter().is_err());
        assert_eq!(get(&["kind"]).kind().unwrap(), ValueKind::String);
        assert_eq!(format!("{:?}", get(&["tags"])), r#"["a","bb","ccc"]"#);
    }

    #[test]
    fn json_rendering() {
        let (section, offs) = write_all(&[sample()]);
        let json = Value::new(&section, offs[0] as usize, 0).to_json().unwrap();
        assert_eq!(
            json,
            concat!(
                r#"{"name":"Tōkyō \"quoted\" \\ \n\t\u0001","geoname_id":1850147,"#,
                r#""big":1329227995784915872903807060280344576,"neg":-268435456,"#,
                r#""lat":35.6895,"small":1.1,"flag":true,"raw":[0,0,0,42],"#,
                r#""u64":18446744073709551615,"u16":100,"tags":["a","bb","ccc"],"#,
                r#""names":{"en":"Tokyo","ja":"東京"},"#,
                r#""location":{"latitude":35.6895,"time_zone":"Asia/Tokyo"},"kind":"City","#,
                r#""shape":{"Circle":2.5},"ignored":{"deep":["x"]}}"#
            )
        );
        let mut out = String::from("prefix");
        let bad = [0xe1u8, 0x41]; // map whose key runs off the end
        assert!(Value::new(&bad, 0, 0).write_json(&mut out).is_err());
        assert_eq!(out, "prefix");
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    enum Kind {
        City,
        Country,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    enum Shape {
        Circle(f64),
        Square { side: f64 },
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Location<'a> {
        latitude: f64,
        time_zone: &'a str,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Record<'a> {
        name: &'a str,
        geoname_id: u32,
        big: u128,
        neg: i32,
        lat: f64,
        small: f32,
        flag: bool,
        raw: &'a [u8],
        u64: u64,
        u16: u64,
        #[serde(borrow)]
        tags: Vec<&'a str>,
        #[serde(borrow)]
        names: BTreeMap<&'a str, &'a str>,
        #[serde(borrow)]
        location: Location<'a>,
        #[serde(borrow)]
        maybe_location: Option<Location<'a>>,
        missing: Option<u32>,
        kind: Kind,
        shape: Shape,
    }

    #[test]
    fn serde_borrows_from_the_section() {
        let mut sample = sample();
        if let DataValue::Map(m) = &mut sample {
            let loc = m.iter().find(|(k, _)| k == "location").unwrap().1.clone();
            m.push(("maybe_location".into(), loc));
        }
        let (section, offs) = write_all(&[sample]);
        let v = Value::new(&section, offs[0] as usize, 0);
        let r: Record = v.deserialize().unwrap();
        let range = section.as_ptr_range();
        assert!(range.contains(&r.name.as_ptr()) && range.contains(&r.tags[2].as_ptr()));
        assert_eq!(r.name, "Tōkyō \"quoted\" \\ \n\t\u{1}");
        assert_eq!(
            (r.geoname_id, r.big, r.neg),
            (1_850_147, 1 << 120, -268_435_456)
        );
        assert_eq!((r.lat, r.small, r.flag), (35.6895, 1.1, true));
        assert_eq!(r.raw, &[0, 0, 0, 42]);
        assert_eq!((r.u64, r.u16), (u64::MAX, 100));
        assert_eq!(r.tags, ["a", "bb", "ccc"]);
        assert_eq!(r.names[&"ja"], "東京");
        assert_eq!(
            r.location,
            Location {
                latitude: 35.6895,
                time_zone: "Asia/Tokyo"
            }
        );
        assert_eq!(r.maybe_location.as_ref(), Some(&r.location));
        assert_eq!(r.missing, None);
        assert_eq!(r.kind, Kind::City);
        assert_eq!(r.shape, Shape::Circle(2.5));

        // Type mismatches are Decode errors.
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Wrong {
            names: u32,
        }
        assert!(matches!(v.deserialize::<Wrong>(), Err(Error::Decode(_))));
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Narrow {
            geoname_id: u16,
        }
        assert!(matches!(v.deserialize::<Narrow>(), Err(Error::Decode(_))));
        let square = DataValue::Map(vec![(
            "Square".into(),
            DataValue::Map(vec![("side".into(), DataValue::Double(3.0))]),
        )]);
        let (section, offs) = write_all(&[square]);
        let shape: Shape = Value::new(&section, offs[0] as usize, 0)
            .deserialize()
            .unwrap();
        assert_eq!(shape, Shape::Square { side: 3.0 });
    }

    #[test]
    fn ignored_values_are_not_decoded() {
        // {"a": 1, "junk": <map whose key is not a string>}: ignoring "junk" never reads it.
        let data = [
            0xe2, 0x41, b'a', 0xc1, 1, 0x44, b'j', b'u', b'n', b'k', 0xe1, 0xc1, 1, 0xc1, 2,
        ];
        #[derive(serde::Deserialize)]
        struct A {
            a: u32,
        }
        let v = Value::new(&data, 0, 0);
        assert_eq!(v.deserialize::<A>().unwrap().a, 1);
        assert!(v.to_json().is_err());
        assert!(check_value(&data, 0, 0).is_err());
    }

    #[test]
    fn pointer_cycles_are_errors_everywhere() {
        // [0] map of 1: "a" -> pointer to 0.
        let data = [0xe1, 0x41, b'a', 0x20, 0x00];
        let v = Value::new(&data, 0, 50);
        assert!(v.to_owned_value().is_err());
        let err = v.to_json().unwrap_err();
        assert!(matches!(err, Error::Corrupt { offset: 50.., .. }), "{err}");
        // A cyclic value is still lazily walkable.
        assert!(v.get(&["a", "a", "a"]).unwrap().is_some());
        // serde into a recursive type stops at the depth limit too (run with room for the
        // recursion of debug builds).
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let v = Value::new(&data, 0, 0);
                assert!(v.deserialize::<serde_json::Value>().is_err());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn duplicate_keys_and_big_sizes_round_trip() {
        let v = DataValue::Map(vec![
            ("k".into(), DataValue::Uint32(1)),
            ("k".into(), DataValue::Uint32(2)),
            ("s".into(), DataValue::String("x".repeat(70_000))),
            ("b".into(), DataValue::Bytes(vec![7; 300])),
            (
                "a".into(),
                DataValue::Array(vec![DataValue::Bool(false); 29]),
            ),
        ]);
        let (section, offs) = write_all(std::slice::from_ref(&v));
        let value = Value::new(&section, offs[0] as usize, 0);
        assert_eq!(value.to_owned_value().unwrap(), v);
        assert_eq!(value.get(&["k"]).unwrap().unwrap().as_u64().unwrap(), 1);
    }
}
