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
    let mut end = hay.len();
    while end >= 8 {
        let chunk: [u8; 8] = hay[end - 8..end].try_into().unwrap_or([0; 8]);
        if crate::bytes::bytes_equal_to(u64::from_le_bytes(chunk), needle) != 0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmdb::decode::{check_value, skip};
    use crate::mmdb::encode::test_support::{same, tiny_mmdb, Typed};
    use proptest::prelude::*;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/maxmind-db");

    fn files(dir: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![Path::new(CORPUS).join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "mmdb") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// Every data offset the search tree refers to (read naively, node by node).
    fn tree_data_offsets(file: &[u8], m: &Metadata) -> Vec<usize> {
        let n = m.node_count as usize;
        let node_len = m.record_size as usize / 4;
        let mut out = Vec::new();
        for i in 0..n {
            let b = &file[i * node_len..(i + 1) * node_len];
            let be = |s: &[u8]| s.iter().fold(0usize, |a, &x| a << 8 | x as usize);
            let (l, r) = match m.record_size {
                24 => (be(&b[0..3]), be(&b[3..6])),
                28 => (
                    ((b[3] as usize & 0xf0) << 20) | be(&b[0..3]),
                    ((b[3] as usize & 0x0f) << 24) | be(&b[4..7]),
                ),
                _ => (be(&b[0..4]), be(&b[4..8])),
            };
            for rec in [l, r] {
                if let Some(off) = rec.checked_sub(n + 16) {
                    out.push(off);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn name_of(p: &Path) -> String {
        p.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// The data section of a parsed file and its absolute start.
    fn data_section<'a>(file: &'a [u8], m: &Metadata) -> (&'a [u8], u64) {
        let ds = m.data_section_start();
        (&file[ds as usize..m.start], ds)
    }

    /// Check every value of a data section, one after another from offset 0.
    fn scan(data: &[u8], base: u64) -> Result<usize> {
        let (mut pos, mut count) = (0, 0);
        while pos < data.len() {
            let end = check_value(data, pos, base)?;
            assert_eq!(skip(data, pos, base)?, end);
            let v = Value::new(data, pos, base);
            v.to_owned_value()?;
            v.to_json()?;
            pos = end;
            count += 1;
        }
        Ok(count)
    }

    #[test]
    fn every_test_database_parses_and_decodes() {
        let all = files("test-data");
        assert!(all.len() >= 40, "corpus missing: {}", all.len());
        for p in all {
            let name = name_of(&p);
            let file = std::fs::read(&p).unwrap();
            // node_count claims a tree larger than the file.
            if name == "GeoIP2-City-Test-Invalid-Node-Count.mmdb" {
                let err = parse_metadata(&file).unwrap_err().to_string();
                assert!(err.contains("search tree of 100000 nodes"), "{err}");
                continue;
            }
            let m = parse_metadata(&file).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(m.binary_format_major_version, 2);
            assert!(!m.database_type.is_empty(), "{name}");
            assert_eq!(&file[m.start..m.start + 14], METADATA_MARKER);
            let (data, base) = data_section(&file, &m);
            let records = tree_data_offsets(&file, &m);
            let broken: Vec<Error> = records
                .iter()
                .filter_map(|&o| check_value(data, o, base).err())
                .collect();
            match name.as_str() {
                // A double stored with 5 bytes / a pointer past the end of the data section.
                "GeoIP2-City-Test-Broken-Double-Format.mmdb"
                | "MaxMind-DB-test-broken-pointers-24.mmdb" => {
                    assert!(!broken.is_empty(), "{name}");
                    assert!(scan(data, base).is_err(), "{name}");
                    for e in broken {
                        // File offsets: in the data section, or where a bad record points.
                        let Error::Corrupt { offset, .. } = e else {
                            panic!("{e}")
                        };
                        assert!(offset >= base, "{name}: {offset}");
                    }
                }
                _ => {
                    assert!(broken.is_empty(), "{name}: {:?}", broken[0]);
                    assert!(scan(data, base).unwrap() >= 1, "{name}");
                }
            }
        }
    }

    /// Every record the reference reader finds decodes to exactly the same typed value here.
    #[test]
    fn records_match_the_reference_reader() {
        let mut checked = 0;
        for p in files("test-data") {
            let name = name_of(&p);
            if name.contains("Broken") || name.contains("Invalid") || name.contains("broken") {
                continue;
            }
            let file = std::fs::read(&p).unwrap();
            let m = parse_metadata(&file).unwrap();
            let (data, base) = data_section(&file, &m);
            let reader = maxminddb::Reader::from_source(file.clone()).unwrap();
            assert_eq!(reader.metadata().node_count, m.node_count);
            assert_eq!(reader.metadata().database_type, m.database_type);
            assert_eq!(reader.metadata().build_epoch, m.build_epoch);
            let options = maxminddb::WithinOptions::default();
            for item in reader.networks(options).unwrap() {
                let item = item.unwrap();
                let Some(offset) = item.offset() else {
                    continue;
                };
                let Typed(theirs) = item.decode::<Typed>().unwrap().unwrap();
                let ours = Value::new(data, offset, base).to_owned_value().unwrap();
                assert!(
                    same(&ours, &theirs),
                    "{name} @{offset}: {ours:?} != {theirs:?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn decoder_test_database_values() {
        let path = Path::new(CORPUS).join("test-data/MaxMind-DB-test-decoder.mmdb");
        let file = std::fs::read(path).unwrap();
        let m = parse_metadata(&file).unwrap();
        assert_eq!(m.database_type, "MaxMind DB Decoder Test");
        assert_eq!((m.ip_version, m.record_size, m.node_count), (6, 24, 426));
        assert_eq!(m.languages, ["en"]);
        assert_eq!(
            m.description,
            [(
                "en",
                "MaxMind DB Decoder Test database - contains every MaxMind DB data type"
            )]
        );
        let (data, base) = data_section(&file, &m);
        assert_eq!(scan(data, base).unwrap(), 3);
        // Find the record with the non-trivial values by walking the section.
        let mut pos = 0;
        let mut all = Vec::new();
        while pos < data.len() {
            all.push(Value::new(data, pos, base));
            pos = skip(data, pos, base).unwrap();
        }
        let v = *all
            .iter()
            .find(|v| {
                v.get(&["utf8_string"])
                    .unwrap()
                    .is_some_and(|s| !s.as_str().unwrap().is_empty())
            })
            .unwrap();
        let get = |p: &[&str]| v.get(p).unwrap().unwrap();
        assert_eq!(get(&["utf8_string"]).as_str().unwrap(), "unicode! ☯ - ♫");
        assert_eq!(get(&["double"]).kind().unwrap(), ValueKind::Double);
        assert_eq!(get(&["double"]).as_f64().unwrap(), 42.123456);
        assert_eq!(get(&["float"]).kind().unwrap(), ValueKind::Float);
        assert_eq!(get(&["float"]).as_f64().unwrap(), 1.1f32 as f64);
        assert_eq!(get(&["int32"]).as_i64().unwrap(), -268_435_456);
        assert_eq!(get(&["uint16"]).kind().unwrap(), ValueKind::Uint16);
        assert_eq!(get(&["uint16"]).as_u64().unwrap(), 100);
        assert_eq!(get(&["uint32"]).as_u64().unwrap(), 268_435_456);
        assert_eq!(
            get(&["uint64"]).as_u64().unwrap(),
            1_152_921_504_606_846_976
        );
        assert_eq!(get(&["uint128"]).as_u128().unwrap(), 1 << 120);
        assert!(get(&["boolean"]).as_bool().unwrap());
        assert_eq!(get(&["bytes"]).as_bytes().unwrap(), [0, 0, 0, 42]);
        assert_eq!(get(&["array", "2"]).as_u64().unwrap(), 3);
        assert_eq!(
            get(&["map", "mapX", "utf8_stringX"]).as_str().unwrap(),
            "hello"
        );
        assert_eq!(get(&["map", "mapX", "arrayX", "1"]).as_u64().unwrap(), 8);
        assert_eq!(
            v.to_json().unwrap(),
            concat!(
                r#"{"array":[1,2,3],"boolean":true,"bytes":[0,0,0,42],"double":42.123456,"#,
                r#""float":1.1,"int32":-268435456,"#,
                r#""map":{"mapX":{"arrayX":[7,8,9],"utf8_stringX":"hello"}},"#,
                r#""uint128":1329227995784915872903807060280344576,"uint16":100,"#,
                r#""uint32":268435456,"uint64":1152921504606846976,"#,
                r#""utf8_string":"unicode! ☯ - ♫"}"#
            )
        );
        // The record of maximum values: infinities render as null.
        let max = all.iter().find(|v| {
            v.get(&["uint128"])
                .unwrap()
                .is_some_and(|u| u.as_u128().unwrap() == u128::MAX)
        });
        let max = max.unwrap();
        assert_eq!(
            max.get(&["uint64"]).unwrap().unwrap().as_u64().unwrap(),
            u64::MAX
        );
        assert_eq!(
            max.get(&["int32"]).unwrap().unwrap().as_i64().unwrap(),
            i32::MAX as i64
        );
        assert_eq!(
            max.get(&["double"]).unwrap().unwrap().as_f64().unwrap(),
            f64::INFINITY
        );
        assert!(max.to_json().unwrap().contains(r#""double":null"#));
    }

    #[test]
    fn pointer_decoder_database_values() {
        let path = Path::new(CORPUS).join("test-data/MaxMind-DB-test-pointer-decoder.mmdb");
        let file = std::fs::read(path).unwrap();
        let m = parse_metadata(&file).unwrap();
        let (data, base) = data_section(&file, &m);
        assert_eq!(scan(data, base).unwrap(), 2);
        let v = Value::new(data, 0, base);
        let get = |p: &[&str]| v.get(p).unwrap().unwrap();
        assert_eq!(get(&["utf8_string"]).as_str().unwrap(), "unicode! ☯ - ♫");
        assert_eq!(get(&["mapXX", "arrayX", "3"]).as_u64().unwrap(), 10);
        assert_eq!(get(&["mapXX", "utf8_stringX"]).as_str().unwrap(), "hello");
        assert!(!get(&["booleanX"]).as_bool().unwrap());
        assert_eq!(get(&["arrayX"]).array_iter().unwrap().count(), 4);
        let keys: Vec<&str> = v.map_iter().unwrap().map(|e| e.unwrap().0).collect();
        assert_eq!(keys.len(), 15);
    }

    #[test]
    fn metadata_with_pointers_resolves_relative_to_the_metadata() {
        let path = Path::new(CORPUS).join("test-data/MaxMind-DB-test-metadata-pointers.mmdb");
        let file = std::fs::read(path).unwrap();
        let m = parse_metadata(&file).unwrap();
        assert_eq!(m.database_type, "Lots of pointers in metadata");
        assert_eq!(m.languages, ["en", "es", "zh"]);
        assert_eq!(m.description.len(), 3);
        assert!(m
            .description
            .iter()
            .all(|&(_, d)| d == "Lots of pointers in metadata"));
    }

    #[test]
    fn bad_data_gives_errors_not_panics() {
        let all = files("bad-data");
        assert!(all.len() >= 20);
        for p in all {
            let name = name_of(&p);
            let file = std::fs::read(&p).unwrap();
            let t = Instant::now();
            let outcome = parse_metadata(&file).and_then(|m| {
                let (data, base) = data_section(&file, &m);
                for o in tree_data_offsets(&file, &m) {
                    let v = Value::new(data, o, base);
                    check_value(data, o, base)?;
                    v.to_owned_value()?;
                    v.to_json()?;
                    v.deserialize::<serde_json::Value>()?;
                }
                scan(data, base)
            });
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "{name} took {:?}",
                t.elapsed()
            );
            let must_fail = [
                "deep-array-nesting",
                "deep-nesting",
                "oversized-array",
                "oversized-map",
                "metadata-marker-only",
                "offset-integer-overflow",
                "cyclic-data-structure",
                "invalid-bytes-length",
                "invalid-data-record-offset",
                "invalid-map-key-length",
                "invalid-string-length",
                "metadata-is-an-uint128",
                "unexpected-bytes",
                "bad-unicode-in-map-key",
            ];
            if must_fail.iter().any(|s| name.contains(s)) {
                let err = outcome.expect_err(&name);
                assert!(matches!(err, Error::Corrupt { .. }), "{name}: {err}");
            }
            // The rest are search-tree problems (not visible here) or, for the
            // uint64-max-epoch file, a valid database.
            if name.contains("uint64-max-epoch") {
                assert_eq!(parse_metadata(&file).unwrap().build_epoch, u64::MAX);
            }
        }
    }

    fn entries(overrides: &[(&str, Option<DataValue>)]) -> Vec<(String, DataValue)> {
        let s = |x: &str| DataValue::String(x.into());
        let mut e: Vec<(String, DataValue)> = vec![
            ("node_count".into(), DataValue::Uint32(0)),
            ("record_size".into(), DataValue::Uint16(24)),
            ("ip_version".into(), DataValue::Uint16(6)),
            ("binary_format_major_version".into(), DataValue::Uint16(2)),
            ("binary_format_minor_version".into(), DataValue::Uint16(0)),
            ("build_epoch".into(), DataValue::Uint64(1_700_000_000)),
            ("database_type".into(), s("matchy")),
            ("languages".into(), DataValue::Array(vec![s("en"), s("de")])),
            (
                "description".into(),
                DataValue::Map(vec![
                    ("en".into(), s("English")),
                    ("de".into(), s("Deutsch")),
                ]),
            ),
            ("matchy_extra".into(), DataValue::Uint32(7)),
        ];
        for (key, v) in overrides {
            e.retain(|(k, _)| k != key);
            if let Some(v) = v {
                e.push((key.to_string(), v.clone()));
            }
        }
        e
    }

    fn file_with(entries: &[(String, DataValue)]) -> Vec<u8> {
        let mut file = vec![0u8; 16]; // zero-node tree + separator
        write_metadata(&mut file, entries).unwrap();
        file
    }

    #[test]
    fn written_metadata_parses_back() {
        let file = file_with(&entries(&[]));
        let m = parse_metadata(&file).unwrap();
        assert_eq!((m.node_count, m.record_size, m.ip_version), (0, 24, 6));
        assert_eq!(
            (m.binary_format_major_version, m.binary_format_minor_version),
            (2, 0)
        );
        assert_eq!((m.build_epoch, m.database_type), (1_700_000_000, "matchy"));
        assert_eq!(m.languages, ["en", "de"]);
        assert_eq!(m.description, [("en", "English"), ("de", "Deutsch")]);
        assert_eq!(
            m.map
                .get(&["matchy_extra"])
                .unwrap()
                .unwrap()
                .as_u64()
                .unwrap(),
            7
        );
        assert_eq!((m.start, m.data_section_start()), (16, 16));
        // Optional keys may be absent; integer widths are lenient when the value fits.
        let file = file_with(&entries(&[
            ("languages", None),
            ("description", None),
            ("node_count", Some(DataValue::Uint64(1))),
            ("record_size", Some(DataValue::Uint32(28))),
        ]));
        let file = [vec![0u8; 7], file].concat();
        let m = parse_metadata(&file).unwrap();
        assert!(m.languages.is_empty() && m.description.is_empty());
        assert_eq!((m.node_count, m.record_size, m.start), (1, 28, 23));
        // The reference reader accepts what write_metadata wrote.
        let w = crate::mmdb::encode::DataSectionWriter::new();
        let mut section = w.into_bytes();
        section.push(0xe0); // one empty map at offset 0
        let reader = maxminddb::Reader::from_source(tiny_mmdb(&section, 0, 0)).unwrap();
        assert_eq!(reader.metadata().database_type, "matchy-test");
    }

    #[test]
    fn invalid_metadata_is_refused_with_a_reason() {
        let s = |x: &str| DataValue::String(x.into());
        type Case<'a> = (Vec<(&'a str, Option<DataValue>)>, &'a str);
        let cases: Vec<Case> = vec![
            (vec![("node_count", None)], "\"node_count\" is missing"),
            (
                vec![("database_type", None)],
                "\"database_type\" is missing",
            ),
            (vec![("build_epoch", None)], "\"build_epoch\" is missing"),
            (
                vec![("record_size", Some(DataValue::Uint16(20)))],
                "record_size 20",
            ),
            (
                vec![("ip_version", Some(DataValue::Uint16(5)))],
                "ip_version 5",
            ),
            (
                vec![("binary_format_major_version", Some(DataValue::Uint16(3)))],
                "major version 3",
            ),
            (
                vec![("node_count", Some(s("1")))],
                "node_count: expected an unsigned",
            ),
            (
                vec![("node_count", Some(DataValue::Uint64(1 << 32)))],
                "node_count = 4294967296",
            ),
            (
                vec![("node_count", Some(DataValue::Uint32(3)))],
                "search tree of 3 nodes",
            ),
            (
                vec![("database_type", Some(DataValue::Uint16(1)))],
                "database_type: expected",
            ),
            (
                vec![("languages", Some(s("en")))],
                "languages: expected an array",
            ),
            (
                vec![(
                    "languages",
                    Some(DataValue::Array(vec![DataValue::Bool(true)])),
                )],
                "languages: expected a string",
            ),
            (
                vec![("description", Some(s("x")))],
                "description: expected a map",
            ),
            (
                vec![(
                    "description",
                    Some(DataValue::Map(vec![("en".into(), DataValue::Uint16(1))])),
                )],
                "description: expected a string",
            ),
        ];
        for (overrides, want) in cases {
            let file = file_with(&entries(&overrides));
            let err = parse_metadata(&file).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains(want), "{want:?} not in {err}");
        }
        // Not a map at all.
        let mut file = METADATA_MARKER.to_vec();
        file.push(0x41);
        file.push(b'x');
        assert!(parse_metadata(&file)
            .unwrap_err()
            .to_string()
            .contains("not a map"));
        assert!(parse_metadata(b"").is_err());
        assert!(parse_metadata(b"no marker here").is_err());
    }

    #[test]
    fn the_last_marker_within_128_kib_counts() {
        let meta = file_with(&entries(&[]));
        // An earlier marker (e.g. inside the data) is ignored.
        let mut file = METADATA_MARKER.to_vec();
        file.extend_from_slice(&[0; 9]);
        let shift = file.len();
        file.extend_from_slice(&meta);
        assert_eq!(find_metadata_start(&file).unwrap(), shift + 16 + 14);
        // A marker starting exactly 128 KiB before the end is found; one byte earlier is not.
        for (pad, found) in [
            (METADATA_MAX_LEN - 14, true),
            (METADATA_MAX_LEN - 13, false),
        ] {
            let mut file = vec![0u8; 100];
            file.extend_from_slice(METADATA_MARKER);
            file.resize(file.len() + pad, 0xAB);
            assert_eq!(find_metadata_start(&file).is_ok(), found, "pad {pad}");
        }
        // A too-large metadata block is refused by the writer.
        let mut out = vec![1];
        let big = vec![("x".to_string(), DataValue::Bytes(vec![0; METADATA_MAX_LEN]))];
        assert!(matches!(
            write_metadata(&mut out, &big),
            Err(Error::Build(_))
        ));
        assert_eq!(out, [1]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn rfind_byte_matches_naive(hay in proptest::collection::vec(0xA8u8..0xB0, 0..100), needle in 0xA8u8..0xB0) {
            prop_assert_eq!(rfind_byte(&hay, needle), hay.iter().rposition(|&b| b == needle));
        }

        #[test]
        fn marker_search_matches_naive(
            chunks in proptest::collection::vec(
                prop_oneof![
                    Just(METADATA_MARKER.to_vec()),
                    Just(METADATA_MARKER[..7].to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..20),
                ],
                0..12,
            )
        ) {
            let file = chunks.concat();
            let naive = (0..file.len())
                .rev()
                .find(|&i| file[i..].starts_with(METADATA_MARKER))
                .map(|i| i + METADATA_MARKER.len());
            prop_assert_eq!(find_metadata_start(&file).ok(), naive);
            let _ = parse_metadata(&file);
        }
    }
}
