//! The MaxMind DB v2 container: the data-section encoding (decode/encode), the metadata block,
//! and the binary search tree for IP networks (reader and builder). Everything here follows the
//! MaxMind DB spec, so files matchy writes are read by libmaxminddb and the `maxminddb` crate.

pub mod decode;
pub mod encode;
pub mod metadata;
pub(crate) mod stride;
pub mod tree;
pub mod tree_builder;
