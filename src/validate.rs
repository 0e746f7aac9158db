//! Validation of a database file, at two depths.
//!
//! * `Standard` — what opening checks (metadata, section bounds), plus every section's CRC-32
//!   and the entry counts against the indexes. Linear in the file size, no decoding.
//! * `Strict` — also the whole-file CRC, every search-tree node (reachability, records in
//!   range, no cycles), every literal and glob index entry (findable, in bounds, valid UTF-8 and
//!   valid globs), and every data value any of them references (pointers, UTF-8, nesting and
//!   size limits). Anything the builder writes passes; any flipped byte or truncation of a file
//!   it wrote fails.

use std::fmt;
use std::path::Path;

use crate::database::Database;
use crate::error::Error;
use crate::format::{self, SectionInfo};
use crate::mmdb::decode::ValueChecker;
use crate::mmdb::metadata::parse_metadata;
use crate::snapshot::Views;

/// How deep [`Database::validate`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationLevel {
    #[default]
    Standard,
    Strict,
}

impl ValidationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationLevel::Standard => "standard",
            ValidationLevel::Strict => "strict",
        }
    }
}

/// One problem found, with the absolute file offset where it was found when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationIssue {
    pub offset: Option<u64>,
    pub what: String,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "at byte {o}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl From<Error> for ValidationIssue {
    fn from(e: Error) -> Self {
        match e {
            Error::Corrupt { offset, what } => ValidationIssue {
                offset: Some(offset),
                what,
            },
            other => ValidationIssue {
                offset: None,
                what: other.to_string(),
            },
        }
    }
}

/// The outcome of a validation: errors make the file invalid, warnings do not.
#[derive(Debug, Clone, Default)]
pub struct ValidationReport {
    pub level: ValidationLevel,
    pub errors: Vec<ValidationIssue>,
    pub warnings: Vec<ValidationIssue>,
    /// Search-tree nodes walked (strict).
    pub nodes_checked: u64,
    /// Distinct data values decoded (strict).
    pub values_checked: u64,
    /// Literal and glob index entries checked (strict).
    pub index_entries_checked: u64,
}

impl ValidationReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
    fn error(&mut self, e: impl Into<ValidationIssue>) {
        self.errors.push(e.into());
    }
}

/// Open and validate the file at `path`. Never panics: a file that cannot be opened (missing,
/// garbage, truncated) is reported as an error in the report.
pub fn validate_file(path: impl AsRef<Path>, level: ValidationLevel) -> ValidationReport {
    match Database::from(path.as_ref()).open() {
        Ok(db) => db.validate(level),
        Err(e) => {
            let mut r = ValidationReport {
                level,
                ..Default::default()
            };
            r.error(e);
            r
        }
    }
}

pub(crate) fn validate_views(v: &Views<'_>, level: ValidationLevel) -> ValidationReport {
    let mut r = ValidationReport {
        level,
        ..Default::default()
    };
    match &v.directory {
        None => r.warnings.push(ValidationIssue {
            offset: None,
            what: "plain MaxMind DB file: it carries no checksums, so only its structure can be checked"
                .into(),
        }),
        Some(dir) => {
            check_section_layout(&dir.sections, v, &mut r);
            for s in &dir.sections {
                let Some(bytes) = section(v.file, s) else {
                    continue; // reported by check_section_layout
                };
                let crc = parallel_crc32(bytes);
                if crc != s.crc32 {
                    r.error(Error::corrupt(
                        s.offset,
                        format!(
                            "section {:?} ({} bytes) fails its checksum: CRC-32 {crc:#010x}, metadata says {:#010x}",
                            s.name, s.length, s.crc32
                        ),
                    ));
                }
            }
            let lit_len = v.literals.as_ref().map_or(0, |l| l.len() as u64);
            let glob_len = v.globs.as_ref().map_or(0, |g| g.len() as u64);
            for (kind, have, said) in [
                ("literal", lit_len, dir.literal_count),
                ("glob", glob_len, dir.glob_count),
            ] {
                if have != said {
                    r.error(Error::corrupt(
                        v.metadata_offset,
                        format!("metadata counts {said} {kind} entries but the {kind} index holds {have}"),
                    ));
                }
            }
        }
    }
    if level == ValidationLevel::Strict && r.is_ok() {
        strict(v, &mut r);
    }
    r
}

fn section<'a>(file: &'a [u8], s: &SectionInfo) -> Option<&'a [u8]> {
    let end = s.offset.checked_add(s.length)?;
    file.get(usize::try_from(s.offset).ok()?..usize::try_from(end).ok()?)
}

fn check_section_layout(sections: &[SectionInfo], v: &Views<'_>, r: &mut ValidationReport) {
    let known = [
        format::SECTION_TREE,
        format::SECTION_DATA,
        format::SECTION_IP_PREFIXES,
        format::SECTION_LITERALS,
        format::SECTION_GLOBS,
    ];
    let mut spans: Vec<(u64, u64, &str)> = Vec::new();
    for s in sections {
        if !known.contains(&s.name.as_str()) {
            r.warnings.push(ValidationIssue {
                offset: Some(s.offset),
                what: format!(
                    "unknown section {:?} (written by a newer matchy?) is ignored",
                    s.name
                ),
            });
        }
        match s.offset.checked_add(s.length) {
            Some(end) if end <= v.metadata_offset as u64 => spans.push((s.offset, end, &s.name)),
            _ => r.error(Error::corrupt(
                s.offset,
                format!(
                    "section {:?} ({} bytes) runs into the metadata",
                    s.name, s.length
                ),
            )),
        }
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            r.error(Error::corrupt(
                w[1].0,
                format!("sections {:?} and {:?} overlap", w[0].2, w[1].2),
            ));
        }
    }
}

fn strict(v: &Views<'_>, r: &mut ValidationReport) {
    // A file that ends with our CRC entry was written by matchy even if its directory key was
    // damaged (which makes it look like a plain .mmdb): check the CRC whenever it is there.
    if v.directory.is_some() || has_file_crc_entry(v.file) {
        if let Err(e) = check_file_crc(v.file) {
            r.error(e);
            return;
        }
        if v.directory.is_none() {
            r.error(Error::corrupt(
                v.metadata_offset,
                "the file carries a matchy checksum but its \"matchy\" metadata key is missing",
            ));
            return;
        }
    }
    let mut offsets: Vec<usize> = Vec::new();
    match v.tree.check(v.data.len()) {
        Ok(c) => {
            r.nodes_checked = u64::from(c.reachable_nodes);
            offsets.extend(c.data_offsets);
        }
        Err(e) => r.error(e),
    }
    if !v.prefixes.is_empty() {
        if let Some(i) = v.prefixes.iter().position(|&c| c > 162) {
            let base = v
                .directory
                .as_ref()
                .and_then(|d| d.section(format::SECTION_IP_PREFIXES))
                .map_or(0, |s| s.offset);
            r.error(Error::corrupt(
                base + i as u64,
                format!(
                    "ip_prefixes byte {} is not a prefix code (0..=162)",
                    v.prefixes[i]
                ),
            ));
        }
    }
    let base_of = |name: &str| {
        v.directory
            .as_ref()
            .and_then(|d| d.section(name))
            .map_or(0, |s| s.offset)
    };
    if let Some(lit) = &v.literals {
        match lit.check(v.data.len()) {
            Ok(offs) => {
                r.index_entries_checked += offs.len() as u64;
                offsets.extend(offs.into_iter().map(|o| o as usize));
            }
            Err(e) => r.error(e.at_base(base_of(format::SECTION_LITERALS))),
        }
    }
    if let Some(globs) = &v.globs {
        match globs.check(v.data.len()) {
            Ok(offs) => {
                r.index_entries_checked += offs.len() as u64;
                offsets.extend(offs.into_iter().map(|o| o as usize));
            }
            Err(e) => r.error(e.at_base(base_of(format::SECTION_GLOBS))),
        }
    }
    offsets.sort_unstable();
    offsets.dedup();
    // One checker for all values: shared sub-values (pointer targets) are walked once.
    let mut checker = ValueChecker::new();
    for &off in &offsets {
        if let Err(e) = checker.check(v.data, off, v.data_offset) {
            r.error(e);
            if r.errors.len() >= 20 {
                break;
            }
        }
    }
    r.values_checked = offsets.len() as u64;
    if let Err(e) = parse_metadata(v.file) {
        r.error(e);
    }
}

/// CRC-32 of `bytes`, large inputs split across cores (the partial CRCs combine exactly):
/// checksumming is most of the time a reload spends before the swap.
fn parallel_crc32(bytes: &[u8]) -> u32 {
    const MIN_PART: usize = 4 << 20;
    let cores = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let parts = (bytes.len() / MIN_PART).clamp(1, cores);
    if parts == 1 {
        return crc32fast::hash(bytes);
    }
    let chunk = bytes.len().div_ceil(parts);
    let hashers: Vec<crc32fast::Hasher> = std::thread::scope(|scope| {
        let handles: Vec<_> = bytes
            .chunks(chunk)
            .map(|c| {
                scope.spawn(move || {
                    let mut h = crc32fast::Hasher::new();
                    h.update(c);
                    h
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("crc thread"))
            .collect()
    });
    let mut all = crc32fast::Hasher::new();
    for h in &hashers {
        all.combine(h);
    }
    all.finalize()
}

/// The whole-file CRC: the metadata map's last entry is `matchy_file_crc32` as a 4-byte uint32
/// (control byte 0xC4), i.e. the file's last five bytes; it covers every byte before its value.
fn has_file_crc_entry(file: &[u8]) -> bool {
    let n = file.len();
    let key = format::FILE_CRC_KEY.as_bytes();
    n >= key.len() + 5 && file[n - 5] == 0xC4 && &file[n - 5 - key.len()..n - 5] == key
}

fn check_file_crc(file: &[u8]) -> Result<(), Error> {
    let n = file.len();
    if !has_file_crc_entry(file) {
        return Err(Error::corrupt(
            n.saturating_sub(5),
            "the file does not end with the matchy_file_crc32 metadata entry (truncated or rewritten?)",
        ));
    }
    let stored = u32::from_be_bytes([file[n - 4], file[n - 3], file[n - 2], file[n - 1]]);
    let actual = parallel_crc32(&file[..n - 4]);
    if stored != actual {
        return Err(Error::corrupt(
            n - 4,
            format!("whole-file checksum mismatch: CRC-32 {actual:#010x}, stored {stored:#010x}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parallel_crc_equals_serial() {
        let bytes: Vec<u8> = (0..(9u32 << 20) + 12345)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [0, 1, 4 << 20, (8 << 20) + 1, bytes.len()] {
            assert_eq!(
                super::parallel_crc32(&bytes[..len]),
                crc32fast::hash(&bytes[..len]),
                "{len}"
            );
        }
    }
}
