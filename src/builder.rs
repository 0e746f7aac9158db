//! `DatabaseBuilder`: turns entries (IP networks, literals, globs, each with typed data) into one
//! database file. Entries stream in; only compact per-entry records are kept (the data itself is
//! encoded and deduplicated into the data section as it arrives), and the indexes are built once
//! at the end. Writing is atomic: a temporary file in the target directory, fsync, rename, fsync
//! of the directory — an existing database is never written in place.

use std::fs::{self, File};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bytes::align8;
use crate::data::DataValue;
use crate::entry::{parse_entry, Entry};
use crate::error::{Error, Result};
use crate::format::{self, Directory, MatchMode, SectionInfo};
use crate::glob::index::GlobIndexBuilder;
use crate::literal::LiteralTableBuilder;
use crate::mmdb::encode::{encode, DataSectionWriter};
use crate::mmdb::metadata::METADATA_MARKER;
use crate::mmdb::tree_builder::{KeepDuplicate, TreeBuilder};

/// What to do when the same network, literal or glob is added twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicatePolicy {
    /// Refuse to build, naming both input lines (the default: never a silent shift).
    #[default]
    Error,
    /// Keep the first entry's data.
    First,
    /// Keep the last entry's data.
    Last,
}

/// Counts and sizes of a finished build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStats {
    pub ip: u64,
    pub literal: u64,
    pub glob: u64,
    /// Entries dropped by the `First`/`Last` duplicate policy.
    pub duplicates_dropped: u64,
    pub file_size: u64,
    pub data_section_size: u64,
    pub node_count: u32,
}

/// Builds a database; see the crate docs for an example.
pub struct DatabaseBuilder {
    match_mode: MatchMode,
    database_type: String,
    languages: Vec<String>,
    description: Vec<(String, String)>,
    on_duplicate: DuplicatePolicy,
    build_epoch: Option<u64>,
    record_size: Option<u16>,
    data: DataSectionWriter,
    v4: Vec<(u32, u8, u32, u32)>,
    v6: Vec<(u128, u8, u32, u32)>,
    literals: Option<LiteralTableBuilder>,
    globs: Option<GlobIndexBuilder>,
    literals_added: u64,
    globs_added: u64,
    /// Input line of each entry id (for duplicate reports); 0 when unknown.
    lines: Vec<u64>,
}

impl Default for DatabaseBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DatabaseBuilder {
    pub fn new() -> Self {
        DatabaseBuilder {
            match_mode: MatchMode::CaseSensitive,
            database_type: "matchy".to_string(),
            languages: Vec::new(),
            description: Vec::new(),
            on_duplicate: DuplicatePolicy::Error,
            build_epoch: None,
            record_size: None,
            data: DataSectionWriter::new(),
            v4: Vec::new(),
            v6: Vec::new(),
            literals: None,
            globs: None,
            literals_added: 0,
            globs_added: 0,
            lines: Vec::new(),
        }
    }

    /// Case sensitivity of literals and globs. Must be chosen before the first entry is added.
    pub fn match_mode(&mut self, mode: MatchMode) -> &mut Self {
        assert!(
            self.lines.is_empty(),
            "DatabaseBuilder::match_mode must be set before entries are added"
        );
        self.match_mode = mode;
        self
    }

    /// The metadata `database_type` (default `"matchy"`).
    pub fn database_type(&mut self, name: &str) -> &mut Self {
        self.database_type = name.to_string();
        self
    }

    /// A description in `language` (e.g. `"en"`); the language is added to `languages`.
    pub fn description(&mut self, language: &str, text: &str) -> &mut Self {
        self.description.retain(|(l, _)| l != language);
        self.description
            .push((language.to_string(), text.to_string()));
        if !self.languages.iter().any(|l| l == language) {
            self.languages.push(language.to_string());
        }
        self
    }

    pub fn on_duplicate(&mut self, policy: DuplicatePolicy) -> &mut Self {
        self.on_duplicate = policy;
        self
    }

    /// Fix the build timestamp (seconds since the epoch). Without it, `SOURCE_DATE_EPOCH` is
    /// used when set, else the current time. 0 is written as 1 (libmaxminddb refuses 0).
    pub fn build_epoch(&mut self, epoch: u64) -> &mut Self {
        self.build_epoch = Some(epoch);
        self
    }

    #[doc(hidden)]
    pub fn force_record_size(&mut self, bits: u16) -> &mut Self {
        self.record_size = Some(bits);
        self
    }

    /// Entries added so far.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Add an entry whose kind is detected from its text (see [`parse_entry`]).
    pub fn add(&mut self, entry: &str, data: DataValue) -> Result<()> {
        self.add_at(entry, data, 0)
    }

    /// Like [`add`](Self::add), remembering the input line for error messages.
    pub fn add_at(&mut self, entry: &str, data: DataValue, line: u64) -> Result<()> {
        let parsed = parse_entry(entry).map_err(|e| Error::Build(at_line(line, &e)))?;
        self.add_entry_at(parsed, data, line)
    }

    /// Add an entry whose kind is already decided.
    pub fn add_entry(&mut self, entry: Entry, data: DataValue) -> Result<()> {
        self.add_entry_at(entry, data, 0)
    }

    fn add_entry_at(&mut self, entry: Entry, data: DataValue, line: u64) -> Result<()> {
        let id = u32::try_from(self.lines.len())
            .map_err(|_| Error::Build("more than 4294967295 entries".into()))?;
        let offset = self.data.insert(&data).map_err(|e| match e {
            Error::Build(m) => Error::Build(at_line(line, &m)),
            other => other,
        })?;
        let fold = self.match_mode.folds();
        match entry {
            Entry::Ip {
                addr: IpAddr::V4(a),
                prefix_len,
            } => self.v4.push((u32::from(a), prefix_len, offset, id)),
            Entry::Ip {
                addr: IpAddr::V6(a),
                prefix_len,
            } => self.v6.push((u128::from(a), prefix_len, offset, id)),
            Entry::Literal(s) => {
                self.literals
                    .get_or_insert_with(|| LiteralTableBuilder::new(fold))
                    .add(&s, offset, id);
                self.literals_added += 1;
            }
            Entry::Glob(g) => {
                self.globs
                    .get_or_insert_with(|| GlobIndexBuilder::new(fold))
                    .add(&g, offset, id)
                    .map_err(|e| Error::Build(at_line(line, &e.to_string())))?;
                self.globs_added += 1;
            }
        }
        self.lines.push(line);
        Ok(())
    }

    /// Build the whole file in memory.
    pub fn build(self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_into(&mut out)?;
        Ok(out)
    }

    /// Build and write atomically to `path`: the old file (if any) stays untouched unless the
    /// complete new file was written and synced.
    pub fn write_to(self, path: impl AsRef<Path>) -> Result<BuildStats> {
        let path = path.as_ref();
        let tmp = TempFile::create(path)?;
        let mut w = AlignedChunkWriter::new(&tmp.file);
        let stats = self.write_into(&mut w).map_err(|e| match e {
            Error::Io { source, .. } => Error::io(path, source),
            other => other,
        })?;
        w.flush().map_err(|e| Error::io(path, e))?;
        drop(w);
        tmp.persist(path)?;
        Ok(stats)
    }

    /// Build and stream the file into `out`.
    pub fn write_into(self, out: &mut impl Write) -> Result<BuildStats> {
        let keep = match self.on_duplicate {
            DuplicatePolicy::Last => KeepDuplicate::Last,
            _ => KeepDuplicate::First,
        };
        let mut duplicates: Vec<(u32, u32)> = Vec::new();
        let data = self.data.into_bytes();

        // The search tree (IPv6 as soon as one IPv6 network is present).
        let ip_count = (self.v4.len() + self.v6.len()) as u64;
        let mut tree = TreeBuilder::new(if self.v6.is_empty() { 4 } else { 6 });
        if let Some(bits) = self.record_size {
            tree.force_record_size(bits);
        }
        for &(a, len, off, id) in &self.v4 {
            tree.insert(IpAddr::V4(Ipv4Addr::from(a)), len, off, id)?;
        }
        drop(self.v4);
        for &(a, len, off, id) in &self.v6 {
            tree.insert(IpAddr::V6(Ipv6Addr::from(a)), len, off, id)?;
        }
        drop(self.v6);
        let tree = tree.finish(data.len(), keep)?;
        duplicates.extend_from_slice(&tree.duplicates);

        let mut finish_strings = |dups: Vec<(u32, u32)>, added: u64| {
            let kept = added - dups.len() as u64;
            duplicates.extend(dups);
            kept
        };
        let (literals, literal_count) = match self.literals {
            Some(b) => {
                let (bytes, dups) = b.finish(keep)?;
                (Some(bytes), finish_strings(dups, self.literals_added))
            }
            None => (None, 0),
        };
        let (globs, glob_count) = match self.globs {
            Some(b) => {
                let (bytes, dups) = b.finish(keep)?;
                (Some(bytes), finish_strings(dups, self.globs_added))
            }
            None => (None, 0),
        };

        if !duplicates.is_empty() && self.on_duplicate == DuplicatePolicy::Error {
            duplicates.sort_unstable_by_key(|&(a, b)| (a.min(b), a.max(b)));
            let line = |id: u32| self.lines.get(id as usize).copied().unwrap_or(0);
            let shown: Vec<String> = duplicates
                .iter()
                .take(5)
                .map(|&(a, b)| {
                    let (first, second) = (a.min(b), a.max(b));
                    match (line(first), line(second)) {
                        (0, _) | (_, 0) => format!("entries #{} and #{}", first + 1, second + 1),
                        (l1, l2) => format!("lines {l1} and {l2}"),
                    }
                })
                .collect();
            let more = duplicates.len().saturating_sub(shown.len());
            return Err(Error::Build(format!(
                "{} duplicate entr{} (same network, literal or glob twice): {}{}; \
                 choose which one wins with --on-duplicate first|last",
                duplicates.len(),
                if duplicates.len() == 1 { "y" } else { "ies" },
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                },
            )));
        }

        // Lay the file out: tree, separator, data, then 8-aligned extension sections.
        let tree_len = tree.bytes.len() as u64;
        let data_offset = tree_len + 16;
        let mut next = align8((data_offset + data.len() as u64) as usize) as u64;
        let mut sections = vec![
            SectionInfo {
                name: format::SECTION_TREE.into(),
                offset: 0,
                length: tree_len,
                crc32: crc32fast::hash(&tree.bytes),
            },
            SectionInfo {
                name: format::SECTION_DATA.into(),
                offset: data_offset,
                length: data.len() as u64,
                crc32: crc32fast::hash(&data),
            },
        ];
        let mut extension: Vec<&[u8]> = Vec::new();
        let ip_prefixes = (ip_count > 0).then_some(tree.prefix_table.as_slice());
        for (name, bytes) in [
            (format::SECTION_IP_PREFIXES, ip_prefixes),
            (format::SECTION_LITERALS, literals.as_deref()),
            (format::SECTION_GLOBS, globs.as_deref()),
        ] {
            if let Some(bytes) = bytes {
                sections.push(SectionInfo {
                    name: name.into(),
                    offset: next,
                    length: bytes.len() as u64,
                    crc32: crc32fast::hash(bytes),
                });
                extension.push(bytes);
                next = align8((next + bytes.len() as u64) as usize) as u64;
            }
        }
        let dropped = duplicates.len() as u64;
        let dir = Directory {
            match_mode: self.match_mode,
            ip_count: ip_count - tree.duplicates.len() as u64,
            literal_count,
            glob_count,
            sections,
        };

        // libmaxminddb refuses a build_epoch of 0 ("invalid metadata"), and SOURCE_DATE_EPOCH=0 is
        // common in reproducible builds: write it as 1.
        let epoch = self.build_epoch.unwrap_or_else(build_epoch_now).max(1);
        let mut meta = vec![
            (
                "binary_format_major_version".to_string(),
                DataValue::Uint16(2),
            ),
            (
                "binary_format_minor_version".to_string(),
                DataValue::Uint16(0),
            ),
            ("build_epoch".to_string(), DataValue::Uint64(epoch)),
            (
                "database_type".to_string(),
                DataValue::String(self.database_type),
            ),
            (
                "description".to_string(),
                DataValue::Map(
                    self.description
                        .into_iter()
                        .map(|(l, t)| (l, DataValue::String(t)))
                        .collect(),
                ),
            ),
            ("ip_version".to_string(), DataValue::Uint16(tree.ip_version)),
            (
                "languages".to_string(),
                DataValue::Array(self.languages.into_iter().map(DataValue::String).collect()),
            ),
            ("node_count".to_string(), DataValue::Uint32(tree.node_count)),
            (
                "record_size".to_string(),
                DataValue::Uint16(tree.record_size),
            ),
            (format::MATCHY_KEY.to_string(), dir.to_value()),
            // Placeholder with all four bytes set so the encoder writes a 4-byte uint32; the
            // real CRC replaces those bytes (the file's last four) below.
            (
                format::FILE_CRC_KEY.to_string(),
                DataValue::Uint32(u32::MAX),
            ),
        ];
        let mut meta_bytes = Vec::with_capacity(1024);
        meta_bytes.extend_from_slice(METADATA_MARKER);
        encode(&DataValue::Map(std::mem::take(&mut meta)), &mut meta_bytes)?;
        let n = meta_bytes.len();
        debug_assert_eq!(&meta_bytes[n - 5..], &[0xC4, 0xFF, 0xFF, 0xFF, 0xFF]);

        // Stream everything out, computing the whole-file CRC on the way.
        let mut w = CrcWriter {
            inner: out,
            crc: crc32fast::Hasher::new(),
            written: 0,
        };
        w.put(&tree.bytes)?;
        w.put(&[0u8; 16])?;
        w.put(&data)?;
        for (bytes, info) in extension.iter().zip(dir.sections.iter().skip(2)) {
            w.pad_to(info.offset)?;
            w.put(bytes)?;
        }
        w.put(&meta_bytes[..n - 4])?;
        let file_crc = w.crc.clone().finalize();
        w.put(&file_crc.to_be_bytes())?;

        Ok(BuildStats {
            ip: dir.ip_count,
            literal: dir.literal_count,
            glob: dir.glob_count,
            duplicates_dropped: dropped,
            file_size: w.written,
            data_section_size: data.len() as u64,
            node_count: tree.node_count,
        })
    }
}

fn at_line(line: u64, what: &str) -> String {
    if line == 0 {
        what.to_string()
    } else {
        format!("line {line}: {what}")
    }
}

/// Buffers output and hands it on in whole, aligned 2 MiB pieces (the last one shorter). Linux
/// keeps what a write brings into the page cache in folios no larger than the write, and maps a
/// file with 2 MiB pages only where it holds aligned 2 MiB folios: readers of a file written
/// this way get huge pages (fewer TLB misses on random lookups; see `Snapshot::open`) without
/// the file first leaving the cache. Elsewhere it is simply a buffered writer.
struct AlignedChunkWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> AlignedChunkWriter<W> {
    const CHUNK: usize = 2 << 20;

    fn new(inner: W) -> Self {
        AlignedChunkWriter {
            inner,
            buf: Vec::with_capacity(Self::CHUNK),
        }
    }
}

impl<W: Write> Write for AlignedChunkWriter<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if self.buf.is_empty() && bytes.len() >= Self::CHUNK {
            // A whole piece in the caller's buffer: no copy.
            self.inner.write_all(&bytes[..Self::CHUNK])?;
            return Ok(Self::CHUNK);
        }
        let n = bytes.len().min(Self::CHUNK - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == Self::CHUNK {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.inner.flush()
    }
}

struct CrcWriter<'a, W: Write> {
    inner: &'a mut W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> CrcWriter<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner
            .write_all(bytes)
            .map_err(|e| Error::io("<database output>", e))?;
        self.crc.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }
    fn pad_to(&mut self, offset: u64) -> Result<()> {
        debug_assert!(offset >= self.written && offset - self.written < 8);
        let pad = (offset - self.written) as usize;
        self.put(&[0u8; 8][..pad])
    }
}

fn build_epoch_now() -> u64 {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        return epoch;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A temporary file next to the destination, removed unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(dest: &Path) -> Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| {
                Error::io(
                    dest,
                    io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
                )
            })?
            .to_string_lossy()
            .into_owned();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        persisted: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                // Name what the user asked for, not our temporary name.
                Err(e) => return Err(Error::io(dest, e)),
            }
        }
    }

    fn persist(mut self, dest: &Path) -> Result<()> {
        self.file.sync_all().map_err(|e| Error::io(dest, e))?;
        fs::rename(&self.path, dest).map_err(|e| Error::io(dest, e))?;
        self.persisted = true;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // The rename is only durable once the directory entry is on disk.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AlignedChunkWriter;
    use std::io::{self, Write};

    /// Records the size of every write it receives.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        writes: Vec<usize>,
    }

    impl Write for Recorder {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.bytes.extend_from_slice(bytes);
            self.writes.push(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_goes_out_in_whole_aligned_pieces() {
        const CHUNK: usize = AlignedChunkWriter::<Recorder>::CHUNK;
        let mut expected = Vec::new();
        let mut w = AlignedChunkWriter::new(Recorder::default());
        // Small writes, a write larger than a piece from an unaligned position, and a piece
        // handed over whole from an aligned one.
        for (i, len) in [7, 100_000, 3 * CHUNK + 5, CHUNK - 100_012, CHUNK, 12]
            .into_iter()
            .enumerate()
        {
            let part: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            w.write_all(&part).unwrap();
            expected.extend_from_slice(&part);
        }
        w.flush().unwrap();
        let out = w.inner;
        assert_eq!(out.bytes, expected);
        let (last, whole) = out.writes.split_last().unwrap();
        assert!(whole.iter().all(|&n| n == CHUNK), "{:?}", out.writes);
        assert_eq!(*last, expected.len() % CHUNK);
    }
}
