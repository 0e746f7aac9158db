//! Owned, typed entry data as the builder takes it: the MaxMind DB data types, one variant each.
//! The reader never builds these; it hands out lazily decoded [`crate::Value`]s instead.

/// A typed value in MaxMind DB terms. Maps keep their insertion order (that order is written to
/// the file, so the same input always gives the same bytes).
#[derive(Debug, Clone, PartialEq)]
pub enum DataValue {
    String(String),
    Double(f64),
    Bytes(Vec<u8>),
    Uint16(u16),
    Uint32(u32),
    Map(Vec<(String, DataValue)>),
    Int32(i32),
    Uint64(u64),
    Uint128(u128),
    Array(Vec<DataValue>),
    Bool(bool),
    Float(f32),
}
