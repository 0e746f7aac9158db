//! The MaxMind DB metadata block at the end of the file: finding it, reading and checking the
//! required keys, and writing it.
//!
//! Layout (MaxMind DB spec v2.0, "Database Metadata"):
//!
//! ```text
//! ... [\xAB\xCD\xEF "MaxMind.com" (14 bytes)][metadata map, data-section encoding] EOF
//! ```
//!
//! The LAST occurrence of the marker starts the metadata; marker plus map are at most 128 KiB.
//! Pointers inside the metadata map are relative to the first byte after the marker. Keys:
//! `node_count` (uint32), `record_size` (uint16: 24, 28 or 32), `ip_version` (uint16: 4 or 6),
//! `binary_format_major_version` (uint16: 2), `binary_format_minor_version` (uint16),
//! `build_epoch` (uint64), `database_type` (string), optional `languages` (array of strings)
//! and `description` (map of language -> string). Integers are accepted in any unsigned type
//! whose value fits the documented width. Other keys are kept, readable through
//! [`Metadata::map`].

use crate::data::DataValue;
use crate::error::{Error, Result};
use crate::mmdb::encode::encode_map;
use crate::value::{Value, ValueKind};

/// Starts the metadata block.
pub const METADATA_MARKER: &[u8; 14] = b"\xAB\xCD\xEFMaxMind.com";

/// Largest metadata block (marker included) the spec allows; only this tail is searched.
pub const METADATA_MAX_LEN: usize = 128 * 1024;

/// Offset of the first byte after the last metadata marker, searching only the last 128 KiB.
pub fn find_metadata_start(file: &[u8]) -> Result<usize> {
    let window_start = file.len().saturating_sub(METADATA_MAX_LEN);
    let window = &file[window_start..];
    let mut end = window.len();
    // Reverse search for the marker's first byte, then compare the rest.
    while let Some(i) = rfind_byte(&window[..end], METADATA_MARKER[0]) {
        if window[i..].starts_with(METADATA_MARKER) {
            return Ok(window_start + i + METADATA_MARKER.len());
        }
        end = i;
    }
    Err(Error::corrupt(
        file.len(),
        "no MaxMind DB metadata marker in the last 128 KiB: not a MaxMind DB (or matchy) file",
    ))
}

/// Position of the last `needle` in `hay`, eight bytes at a time.
fn rfind_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * needle as u64;
    let mut end = hay.len();
    while end >= 8 {
        let chunk: [u8; 8] = hay[end - 8..end].try_into().unwrap_or([0; 8]);
        let x = u64::from_le_bytes(chunk) ^ pattern;
        // Nonzero iff some byte of x is zero, i.e. some byte equals `needle`.
        if x.wrapping_sub(ONES) & !x & HIGH != 0 {
            break;
        }
        end -= 8;
    }
    hay[..end].iter().rposition(|&b| b == needle)
}

/// The parsed metadata of a database.
#[derive(Clone, Debug)]
pub struct Metadata<'a> {
    pub node_count: u32,
    pub record_size: u16,
    pub ip_version: u16,
    pub binary_format_major_version: u16,
    pub binary_format_minor_version: u16,
    pub build_epoch: u64,
    pub database_type: &'a str,
    /// Empty when the key is absent.
    pub languages: Vec<&'a str>,
    /// (language, text) in file order; empty when the key is absent.
    pub description: Vec<(&'a str, &'a str)>,
    /// The whole metadata map, unknown keys included.
    pub map: Value<'a>,
    /// Offset of the metadata marker in the file (the end of the data section and any
    /// extension sections).
    pub start: usize,
}

impl Metadata<'_> {
    /// Size of the search tree in bytes.
    pub fn search_tree_size(&self) -> u64 {
        self.node_count as u64 * self.record_size as u64 / 4
    }

    /// Offset of the data section in the file (after the tree and the 16-byte separator).
    pub fn data_section_start(&self) -> u64 {
        self.search_tree_size() + 16
    }
}

#[cold]
fn bad(offset: usize, what: String) -> Error {
    Error::corrupt(offset, format!("metadata: {what}"))
}

/// Find, decode and check the metadata of `file`.
pub fn parse_metadata<'a>(file: &'a [u8]) -> Result<Metadata<'a>> {
    let meta_start = find_metadata_start(file)?;
    let marker = meta_start - METADATA_MARKER.len();
    let section = &file[meta_start..];
    let map = Value::new(section, 0, meta_start as u64);
    let kind = map.kind()?;
    if kind != ValueKind::Map {
        return Err(bad(meta_start, format!("is a {kind}, not a map")));
    }

    let field = |key: &str| -> Result<Option<Value<'a>>> { map.get(&[key]) };
    let required = |key: &str| -> Result<Value<'a>> {
        field(key)?.ok_or_else(|| bad(meta_start, format!("required key {key:?} is missing")))
    };
    let uint = |key: &str, max: u64| -> Result<u64> {
        let v = required(key)?;
        match v.as_u64() {
            Ok(n) if n <= max => Ok(n),
            Ok(n) => Err(bad(
                meta_start,
                format!("{key} = {n} does not fit its type (at most {max})"),
            )),
            Err(Error::Decode(why)) => Err(bad(meta_start, format!("{key}: {why}"))),
            Err(e) => Err(e),
        }
    };
    let string = |v: Value<'a>, what: &str| -> Result<&'a str> {
        v.as_str().map_err(|e| match e {
            Error::Decode(why) => bad(meta_start, format!("{what}: {why}")),
            e => e,
        })
    };

    let node_count = uint("node_count", u32::MAX as u64)? as u32;
    let record_size = uint("record_size", u16::MAX as u64)? as u16;
    if !matches!(record_size, 24 | 28 | 32) {
        return Err(bad(
            meta_start,
            format!("record_size {record_size} is not supported (24, 28 or 32)"),
        ));
    }
    let ip_version = uint("ip_version", u16::MAX as u64)? as u16;
    if !matches!(ip_version, 4 | 6) {
        return Err(bad(
            meta_start,
            format!("ip_version {ip_version} is neither 4 nor 6"),
        ));
    }
    let major = uint("binary_format_major_version", u16::MAX as u64)? as u16;
    if major != 2 {
        return Err(bad(
            meta_start,
            format!("binary format major version {major} is not supported (2)"),
        ));
    }
    let minor = uint("binary_format_minor_version", u16::MAX as u64)? as u16;
    let build_epoch = uint("build_epoch", u64::MAX)?;
    let database_type = string(required("database_type")?, "database_type")?;

    let mut languages = Vec::new();
    if let Some(v) = field("languages")? {
        let items = v.array_iter().map_err(|e| match e {
            Error::Decode(why) => bad(meta_start, format!("languages: {why}")),
            e => e,
        })?;
        for item in items {
            languages.push(string(item?, "languages")?);
        }
    }
    let mut description = Vec::new();
    if let Some(v) = field("description")? {
        let entries = v.map_iter().map_err(|e| match e {
            Error::Decode(why) => bad(meta_start, format!("description: {why}")),
            e => e,
        })?;
        for entry in entries {
            let (lang, text) = entry?;
            description.push((lang, string(text, "description")?));
        }
    }

    let tree_end = node_count as u64 * record_size as u64 / 4 + 16;
    if tree_end > marker as u64 {
        return Err(bad(
            meta_start,
            format!(
                "search tree of {node_count} nodes ({record_size}-bit records) and separator \
                 need {tree_end} bytes but the metadata starts at byte {marker}"
            ),
        ));
    }

    Ok(Metadata {
        node_count,
        record_size,
        ip_version,
        binary_format_major_version: major,
        binary_format_minor_version: minor,
        build_epoch,
        database_type,
        languages,
        description,
        map,
        start: marker,
    })
}

/// Append the metadata block (marker, then `entries` as a map in the order given) to `out`.
/// The caller supplies the keys (see the module docs for the required ones). Errors, leaving
/// `out` unchanged, when the block would exceed the 128 KiB readers search.
pub fn write_metadata(out: &mut Vec<u8>, entries: &[(String, DataValue)]) -> Result<()> {
    let len = out.len();
    out.extend_from_slice(METADATA_MARKER);
    if let Err(e) = encode_map(entries, out) {
        out.truncate(len);
        return Err(e);
    }
    if out.len() - len > METADATA_MAX_LEN {
        let size = out.len() - len;
        out.truncate(len);
        return Err(Error::Build(format!(
            "metadata block of {size} bytes exceeds the {METADATA_MAX_LEN}-byte limit"
        )));
    }
    Ok(())
}
