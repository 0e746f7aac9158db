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

impl DataValue {
    /// The MaxMind DB type this value is written as.
    pub fn kind(&self) -> crate::value::ValueKind {
        use crate::value::ValueKind as K;
        match self {
            DataValue::String(_) => K::String,
            DataValue::Double(_) => K::Double,
            DataValue::Bytes(_) => K::Bytes,
            DataValue::Uint16(_) => K::Uint16,
            DataValue::Uint32(_) => K::Uint32,
            DataValue::Map(_) => K::Map,
            DataValue::Int32(_) => K::Int32,
            DataValue::Uint64(_) => K::Uint64,
            DataValue::Uint128(_) => K::Uint128,
            DataValue::Array(_) => K::Array,
            DataValue::Bool(_) => K::Bool,
            DataValue::Float(_) => K::Float,
        }
    }

    /// The entries of a map, `None` for other types.
    pub fn as_map(&self) -> Option<&[(String, DataValue)]> {
        match self {
            DataValue::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The first value stored under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&DataValue> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

macro_rules! data_value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for DataValue {
            fn from(v: $t) -> DataValue {
                DataValue::$variant(v.into())
            }
        }
    )*};
}

data_value_from! {
    String => String,
    &str => String,
    f64 => Double,
    f32 => Float,
    u16 => Uint16,
    u32 => Uint32,
    i32 => Int32,
    u64 => Uint64,
    u128 => Uint128,
    bool => Bool,
    Vec<DataValue> => Array,
    Vec<(String, DataValue)> => Map,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::ValueKind;

    #[test]
    fn conversions_pick_the_matching_type() {
        assert_eq!(DataValue::from("x"), DataValue::String("x".into()));
        assert_eq!(DataValue::from(7u16).kind(), ValueKind::Uint16);
        assert_eq!(DataValue::from(7u32).kind(), ValueKind::Uint32);
        assert_eq!(DataValue::from(-7i32).kind(), ValueKind::Int32);
        assert_eq!(DataValue::from(7u64).kind(), ValueKind::Uint64);
        assert_eq!(DataValue::from(7u128).kind(), ValueKind::Uint128);
        assert_eq!(DataValue::from(1.5f64).kind(), ValueKind::Double);
        assert_eq!(DataValue::from(1.5f32).kind(), ValueKind::Float);
        assert_eq!(DataValue::from(true).kind(), ValueKind::Bool);
        let m = DataValue::from(vec![(
            "k".to_string(),
            DataValue::from(vec![DataValue::from(1u32)]),
        )]);
        assert_eq!(m.kind(), ValueKind::Map);
        assert_eq!(m.get("k").unwrap().kind(), ValueKind::Array);
        assert!(m.get("missing").is_none() && DataValue::from(1u16).get("k").is_none());
    }
}
