//! The C ABI for matchy (`libmatchy`). Placeholder until the C ABI issue lands: the crate exists
//! so that the workspace layout (`ffi/`, `include/`) is fixed from the start.
