//! The one error type of the engine. Every failure names what was wrong and, for bytes read from
//! a database, the byte offset in the file (or section) where it was found.

use std::path::PathBuf;

/// Result alias used throughout matchy.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building, opening, validating or querying a database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The database bytes are damaged or not a database: `offset` is the byte offset in the file
    /// (for section-relative problems, the absolute file offset when known).
    #[error("corrupt database at byte offset {offset}: {what}")]
    Corrupt { offset: u64, what: String },

    /// A query the engine cannot answer (e.g. an IPv6 address against an IPv4-only database).
    #[error("invalid query {query:?}: {what}")]
    InvalidQuery { query: String, what: String },

    /// The builder was given input it cannot turn into a database.
    #[error("{0}")]
    Build(String),

    /// Decoding a value into a user type (serde) failed.
    #[error("cannot decode value: {0}")]
    Decode(String),
}

impl Error {
    /// A damaged-database error at `offset`.
    #[cold]
    pub fn corrupt(offset: impl TryInto<u64>, what: impl Into<String>) -> Error {
        Error::Corrupt {
            offset: offset.try_into().unwrap_or(u64::MAX),
            what: what.into(),
        }
    }

    /// An I/O error on `path`.
    #[cold]
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Shift the offset of a `Corrupt` error by `base` (turns a section-relative offset into a
    /// file offset); other errors pass through unchanged.
    pub fn at_base(self, base: u64) -> Error {
        match self {
            Error::Corrupt { offset, what } => Error::Corrupt {
                offset: offset.saturating_add(base),
                what,
            },
            other => other,
        }
    }
}

impl serde::de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::Decode(msg.to_string())
    }
}
