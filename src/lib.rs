//! matchy: one memory-mapped, immutable file answering three kinds of question at once:
//! which inserted IP network (v4/v6, longest prefix) holds an address, which exact strings equal
//! a query, and which glob patterns match it. Every entry carries typed data (maps, strings,
//! numbers) in MaxMind DB encoding, and the file is a valid MaxMind DB: `.mmdb` readers answer
//! its IP queries, and matchy opens standard `.mmdb` files too.
//!
//! ```no_run
//! let db = matchy::Database::from("threats.mxy").open()?;
//! for m in db.lookup("sub.evil.com")? {
//!     println!("{} {:?}", m.entry(), m.value().get(&["category"])?);
//! }
//! # Ok::<(), matchy::Error>(())
//! ```
//!
//! See `ARCHITECTURE.md` for the module map and `docs/FORMAT.md` for the file format.

#![deny(unsafe_op_in_unsafe_fn)]

mod bytes;
pub mod data;
mod entry;
mod error;
mod format;
pub mod glob;
mod hash;
mod literal;
pub mod mmdb;
mod value;

mod builder;
mod database;
mod readers;
mod reload;
mod sigbus;
mod snapshot;
mod validate;

pub use builder::{BuildStats, DatabaseBuilder, DuplicatePolicy};
pub use data::DataValue;
pub use database::{Database, Match, Matches, OpenOptions};
pub use entry::{parse_entry, Entry};
pub use error::{Error, Result};
pub use format::{MatchMode, SectionInfo};
pub use reload::{ReloadEvent, ReloadKind, ReloadStats};
pub use snapshot::{DatabaseInfo, EntryKind};
pub use validate::{validate_file, ValidationIssue, ValidationLevel, ValidationReport};
pub use value::{ArrayIter, MapIter, Value, ValueKind};

/// Internal entry points for the criterion benches in `benches/`; not a stable API.
#[doc(hidden)]
pub mod __bench {
    pub use crate::literal::bench_support::*;
}
