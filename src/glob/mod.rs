//! Glob patterns: syntax and matching (`pattern`), and the anchored index section that finds the
//! few globs worth verifying for a query (`index`).

pub mod index;
pub mod pattern;
