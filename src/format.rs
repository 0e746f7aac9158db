//! The container around the MaxMind DB parts: where matchy's extension sections live and how the
//! metadata points at them. docs/FORMAT.md is the byte-level description; this module is the
//! one place that writes and reads the `matchy` metadata keys.
//!
//! ```text
//! [search tree][16 zero bytes][data section][zero padding to 8][ip_prefixes][literals][globs]
//! [\xAB\xCD\xEFMaxMind.com][metadata map ..., "matchy": {...}, "matchy_file_crc32": uint32]
//! ```
//! Every extension section starts at a file offset that is a multiple of 8. The `matchy`
//! metadata map lists every section (including the tree and the data section) with its absolute
//! 64-bit offset, length and CRC-32; `matchy_file_crc32` is the last key of the metadata map,
//! written as a 4-byte uint32, so it occupies the file's last 4 bytes and covers every byte
//! before them.

use crate::data::DataValue;
use crate::error::{Error, Result};
use crate::value::Value;

/// Version of the matchy extension layout; readers refuse versions they do not know.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// Metadata key holding the matchy directory.
pub(crate) const MATCHY_KEY: &str = "matchy";
/// Metadata key holding the whole-file CRC; always the metadata map's last entry.
pub(crate) const FILE_CRC_KEY: &str = "matchy_file_crc32";

pub(crate) const SECTION_TREE: &str = "tree";
pub(crate) const SECTION_DATA: &str = "data";
pub(crate) const SECTION_IP_PREFIXES: &str = "ip_prefixes";
pub(crate) const SECTION_LITERALS: &str = "literals";
pub(crate) const SECTION_GLOBS: &str = "globs";

/// How strings and globs compare, chosen at build time and stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchMode {
    /// Bytes compare exactly.
    #[default]
    CaseSensitive,
    /// ASCII letters compare without case (`A-Z` == `a-z`); non-ASCII compares exactly.
    CaseInsensitive,
}

impl MatchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMode::CaseSensitive => "case_sensitive",
            MatchMode::CaseInsensitive => "case_insensitive",
        }
    }
    pub(crate) fn folds(self) -> bool {
        self == MatchMode::CaseInsensitive
    }
}

/// One entry of the section directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionInfo {
    pub name: String,
    /// Absolute file offset of the first byte.
    pub offset: u64,
    pub length: u64,
    /// CRC-32 (IEEE) of the section's bytes.
    pub crc32: u32,
}

/// The decoded `matchy` metadata map.
#[derive(Debug, Clone)]
pub(crate) struct Directory {
    pub match_mode: MatchMode,
    pub ip_count: u64,
    pub literal_count: u64,
    pub glob_count: u64,
    pub sections: Vec<SectionInfo>,
}

impl Directory {
    pub fn section(&self, name: &str) -> Option<&SectionInfo> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn to_value(&self) -> DataValue {
        let sections = self
            .sections
            .iter()
            .map(|s| {
                DataValue::Map(vec![
                    ("name".into(), DataValue::String(s.name.clone())),
                    ("offset".into(), DataValue::Uint64(s.offset)),
                    ("length".into(), DataValue::Uint64(s.length)),
                    ("crc32".into(), DataValue::Uint32(s.crc32)),
                ])
            })
            .collect();
        DataValue::Map(vec![
            ("format_version".into(), DataValue::Uint64(FORMAT_VERSION)),
            (
                "match_mode".into(),
                DataValue::String(self.match_mode.as_str().into()),
            ),
            (
                "entries".into(),
                DataValue::Map(vec![
                    ("ip".into(), DataValue::Uint64(self.ip_count)),
                    ("literal".into(), DataValue::Uint64(self.literal_count)),
                    ("glob".into(), DataValue::Uint64(self.glob_count)),
                ]),
            ),
            ("sections".into(), DataValue::Array(sections)),
        ])
    }

    /// Read the directory from the metadata map: `Ok(None)` for a plain MaxMind DB file.
    pub fn from_metadata(map: Value<'_>, meta_offset: usize) -> Result<Option<Directory>> {
        let Some(m) = map.get(&[MATCHY_KEY])? else {
            return Ok(None);
        };
        let bad =
            |what: String| Error::corrupt(meta_offset, format!("metadata key \"matchy\": {what}"));
        let u64_at = |v: Value<'_>, key: &str| -> Result<u64> {
            v.get(&[key])?
                .ok_or_else(|| bad(format!("missing {key:?}")))?
                .as_u64()
                .map_err(|e| bad(format!("{key:?}: {e}")))
        };
        let version = u64_at(m, "format_version")?;
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version} is not supported (this matchy reads version {FORMAT_VERSION})"
            )));
        }
        let mode = m
            .get(&["match_mode"])?
            .ok_or_else(|| bad("missing \"match_mode\"".into()))?
            .as_str()?;
        let match_mode = match mode {
            "case_sensitive" => MatchMode::CaseSensitive,
            "case_insensitive" => MatchMode::CaseInsensitive,
            other => return Err(bad(format!("unknown match_mode {other:?}"))),
        };
        let entries = m
            .get(&["entries"])?
            .ok_or_else(|| bad("missing \"entries\"".into()))?;
        let mut sections = Vec::new();
        let list = m
            .get(&["sections"])?
            .ok_or_else(|| bad("missing \"sections\"".into()))?;
        for s in list.array_iter()? {
            let s = s?;
            let name = s
                .get(&["name"])?
                .ok_or_else(|| bad("section without \"name\"".into()))?
                .as_str()?
                .to_string();
            let crc = u64_at(s, "crc32")?;
            sections.push(SectionInfo {
                offset: u64_at(s, "offset")?,
                length: u64_at(s, "length")?,
                crc32: u32::try_from(crc)
                    .map_err(|_| bad(format!("section {name}: crc32 {crc} is not 32-bit")))?,
                name,
            });
        }
        Ok(Some(Directory {
            match_mode,
            ip_count: u64_at(entries, "ip")?,
            literal_count: u64_at(entries, "literal")?,
            glob_count: u64_at(entries, "glob")?,
            sections,
        }))
    }
}
