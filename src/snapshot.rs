//! `Snapshot`: one opened database file (memory-mapped, or bytes in memory) and the lookups on
//! it. A `Database` serves the newest good snapshot of its file; everything that reads bytes is
//! here.
//!
//! Opening is O(1) in the file size: find the metadata marker in the file's tail, decode the
//! metadata map and the section directory, check every section's bounds, and keep zero-copy
//! views of the tree, data section and indexes. Lookups read the bytes in place. Damaged bytes
//! surface as `Err` from the lookup that reads them (`validate` finds them all up front).

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::entry::mask;
use crate::error::{Error, Result};
use crate::format::{self, Directory, MatchMode, SectionInfo};
use crate::glob::index::GlobIndex;
use crate::literal::LiteralTable;
use crate::mmdb::metadata::{parse_metadata, Metadata};
use crate::mmdb::stride::StrideIndex;
use crate::mmdb::tree::{RecordAt, SearchTree};
use crate::readers::{ReaderRegistry, ReaderState};
use crate::sigbus;
use crate::validate::{self, ValidationLevel, ValidationReport};
use crate::value::Value;

/// What kind of entry produced a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Ip,
    Literal,
    Glob,
}

impl EntryKind {
    /// `"ip"`, `"literal"` or `"glob"`, as in the CLI's JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Ip => "ip",
            EntryKind::Literal => "literal",
            EntryKind::Glob => "glob",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What matched: the entry text, or for an IP match what is needed to name its network.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Source<'a> {
    /// Literal and glob text: UTF-8 unless the file is damaged (shown lossily then), which
    /// strict validation checks; lookups do not check it per match.
    Literal(&'a [u8]),
    Glob(&'a [u8]),
    /// `at` finds the record's code in the file's prefix table (matchy files; read only when the
    /// network is asked for: it is a cache miss of its own); `depth` is the tree depth of the
    /// hit: in IPv6 bits for IPv6 trees (IPv4 queries count from where the IPv4 subtree
    /// starts), in IPv4 bits for IPv4 trees.
    Net {
        query: IpAddr,
        at: RecordAt,
        depth: u8,
    },
}

/// One matching entry, borrowing the snapshot it came from. [`crate::Match`] wraps it with
/// the pin that keeps the snapshot alive. Small on purpose (it is returned by every lookup):
/// the value and the network are made from `views` when asked for.
#[derive(Clone, Copy)]
pub(crate) struct RawMatch<'a> {
    views: &'a Views<'a>,
    source: Source<'a>,
    /// Offset of the entry's data in the data section.
    data: usize,
}

impl<'a> RawMatch<'a> {
    fn literal(v: &'a Views<'a>, hit: crate::literal::LiteralHit<'a>) -> RawMatch<'a> {
        RawMatch {
            views: v,
            source: Source::Literal(hit.key),
            data: hit.data_offset as usize,
        }
    }

    fn glob(v: &'a Views<'a>, hit: crate::glob::index::GlobHit<'a>) -> RawMatch<'a> {
        RawMatch {
            views: v,
            source: Source::Glob(hit.pattern),
            data: hit.data_offset as usize,
        }
    }

    pub fn kind(&self) -> EntryKind {
        match self.source {
            Source::Literal(_) => EntryKind::Literal,
            Source::Glob(_) => EntryKind::Glob,
            Source::Net { .. } => EntryKind::Ip,
        }
    }

    /// The entry as inserted: a network in CIDR form (`10.0.0.0/8`), the literal, or the glob.
    /// For a plain `.mmdb` file (which does not record inserted networks) the network is the
    /// tree leaf that answered, as other MaxMind DB readers report it.
    pub fn entry(&self) -> Cow<'a, str> {
        match self.source {
            Source::Literal(s) | Source::Glob(s) => String::from_utf8_lossy(s),
            Source::Net { .. } => {
                let (addr, len) = self
                    .network()
                    .unwrap_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
                Cow::Owned(format!("{addr}/{len}"))
            }
        }
    }

    /// The network of an IP match (address with host bits cleared, prefix length).
    pub fn network(&self) -> Option<(IpAddr, u8)> {
        let Source::Net { query, at, depth } = self.source else {
            return None;
        };
        let v6_tree = self.views.tree.ip_version() == 6;
        let code = self.views.tree.prefix_code(at);
        let low32 = |ip: IpAddr| match ip {
            IpAddr::V4(a) => a,
            IpAddr::V6(a) => Ipv4Addr::from(u128::from(a) as u32),
        };
        let as_v6 = |ip: IpAddr| match ip {
            // IPv4 entries of an IPv6 tree live at ::a.b.c.d.
            IpAddr::V4(a) => Ipv6Addr::from(u128::from(u32::from(a))),
            IpAddr::V6(a) => a,
        };
        Some(match code {
            1..=129 => {
                let len = code - 1;
                (mask(IpAddr::V6(as_v6(query)), len), len)
            }
            130..=162 => {
                let len = code - 130;
                (mask(IpAddr::V4(low32(query)), len), len)
            }
            // No prefix table (plain .mmdb): the tree leaf, in the query's family (as other
            // readers report it), except that an IPv4 query answered above the IPv4 subtree of
            // an IPv6 tree (depth < 96) gets the IPv6 network that answered.
            _ if v6_tree && query.is_ipv4() && depth >= 96 => {
                (mask(IpAddr::V4(low32(query)), depth - 96), depth - 96)
            }
            _ if v6_tree => (mask(IpAddr::V6(as_v6(query)), depth), depth),
            // An IPv4 tree answers ::ffff:a.b.c.d as a.b.c.d.
            _ => (mask(IpAddr::V4(low32(query)), depth), depth),
        })
    }

    /// The entry's data, decoded lazily.
    pub fn value(&self) -> Value<'a> {
        Value::new(self.views.data, self.data, self.views.data_offset)
    }
}

impl fmt::Debug for RawMatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Match")
            .field("kind", &self.kind())
            .field("entry", &self.entry())
            .field("value", &self.value())
            .finish()
    }
}

/// What a database is: metadata, counts and layout (for `matchy inspect`).
#[derive(Debug, Clone)]
pub struct DatabaseInfo {
    /// `"matchy"` for files with matchy's extension sections, `"mmdb"` for plain MaxMind DB files.
    pub format: &'static str,
    pub database_type: String,
    pub description: Vec<(String, String)>,
    pub languages: Vec<String>,
    pub build_epoch: u64,
    pub ip_version: u16,
    pub record_size: u16,
    pub node_count: u32,
    pub match_mode: MatchMode,
    /// Entry counts; `None` for plain `.mmdb` files, which do not record them.
    pub ip_count: Option<u64>,
    pub literal_count: Option<u64>,
    pub glob_count: Option<u64>,
    pub file_size: u64,
    pub tree_size: u64,
    pub data_section_size: u64,
    pub metadata_offset: u64,
    /// Every section with its absolute offset, length and CRC (empty for plain `.mmdb` files).
    pub sections: Vec<SectionInfo>,
}

/// Which file a snapshot was read from: what the reload watcher compares to decide whether the
/// path now names a different file (rename, symlink swap) or the same file changed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub inode: u64,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch (not whole seconds: two writes within
    /// one second must still differ).
    pub mtime_ns: i128,
}

impl FileIdentity {
    pub(crate) fn of(meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            dev: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    /// The identity of the file `path` names now (following symlinks).
    pub(crate) fn of_path(path: &Path) -> std::io::Result<FileIdentity> {
        std::fs::metadata(path).map(|m| FileIdentity::of(&m))
    }

    /// Same inode, different size or mtime: the file was written in place.
    pub(crate) fn modified_in_place(&self, now: &FileIdentity) -> bool {
        self.dev == now.dev && self.inode == now.inode && self != now
    }
}

/// One opened database file. Immutable; shared between threads.
pub(crate) struct Snapshot {
    // Field order matters: `views` borrows `backing` and must be dropped first.
    views: Views<'static>,
    info: DatabaseInfo,
    identity: Option<FileIdentity>,
    /// The file was found modified in place after this snapshot mapped it (by the watcher, or
    /// by a SIGBUS on a truncated page): lookups refuse to read the mapping. Boxed: the SIGBUS
    /// guard holds its address.
    poisoned: Box<AtomicBool>,
    /// Unregisters the mapping from the SIGBUS guard; dropped before `backing`.
    _sigbus: Option<sigbus::Guard>,
    /// The threads reading this snapshot, for releasing its mapping once it is replaced.
    readers: ReaderRegistry,
    backing: Backing,
}

impl Snapshot {
    /// Map (or, with `in_memory`, read) the file at `path` and check its structure.
    pub fn open(path: &Path, in_memory: bool) -> Result<Snapshot> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        let backing = if in_memory {
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(|e| Error::io(path, e))?;
            Backing::Owned(bytes.into_boxed_slice())
        } else {
            // SAFETY: the mapping is read-only and private to this snapshot. Database files are
            // replaced by rename, never written in place (README); the reload watcher detects
            // in-place writes and poisons the snapshot. Every read of the mapping is
            // bounds-checked against its length.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            // Lookups read the file at random: with 2 MiB pages most of them are spared a TLB
            // miss (5-9% off a literal lookup in a 1M-key file). The kernel maps huge pages where
            // the page cache holds 2 MiB folios (files read from disk after this advice, or
            // written in aligned 2 MiB pieces as the builder does); a hint: failure is fine.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            Backing::Mapped(map)
        };
        let shown = path.display().to_string();
        Snapshot::with_backing(backing, Some(FileIdentity::of(&meta))).map_err(|e| match e {
            Error::Corrupt { offset, what } => Error::Corrupt {
                offset,
                what: format!("{shown}: {what}"),
            },
            other => other,
        })
    }

    pub fn from_bytes(bytes: Box<[u8]>) -> Result<Snapshot> {
        Snapshot::with_backing(Backing::Owned(bytes), None)
    }

    fn with_backing(backing: Backing, identity: Option<FileIdentity>) -> Result<Snapshot> {
        let bytes = backing.bytes();
        // SAFETY: `bytes` points into memory owned by `backing` (a heap allocation or a mapping),
        // which does not move when `backing` moves and is neither freed nor written while the
        // Snapshot lives. The 'static views are only handed out re-borrowed for `&self`
        // (see `views`), and the field order drops them before `backing`.
        let file: &'static [u8] =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        let (views, info) = open_views(file)?;
        let poisoned = Box::new(AtomicBool::new(false));
        let guard = match &backing {
            Backing::Mapped(m) => Some(sigbus::register(m.as_ptr(), m.len(), &poisoned)),
            Backing::Owned(_) => None,
        };
        Ok(Snapshot {
            views,
            info,
            identity,
            poisoned,
            _sigbus: guard,
            readers: ReaderRegistry::default(),
            backing,
        })
    }

    /// Builds the in-memory IPv4 index now (lookups would after a thousand IPv4 queries).
    pub fn build_ip_index(&self) {
        self.views.tree.build_ip_index();
    }

    pub fn ip_index_built(&self) -> bool {
        self.views.tree.ip_index_built()
    }

    /// A new reader of this snapshot, counting one use; `None` once its mapping was released.
    pub fn add_reader(&self) -> Option<Arc<ReaderState>> {
        self.readers.add()
    }

    /// For a snapshot no longer served, after a [`process_barrier`](crate::readers::process_barrier):
    /// if no thread uses it (lookups, results) and nothing else holds it, replaces its mapping
    /// by zero pages, so the replaced file is unmapped although idle threads still hold their
    /// pins. `others`: references the caller knows of besides its own and the pins'. True when
    /// nothing is left to release (released now or before, or not mapped).
    pub fn release_if_unused(self: &Arc<Self>, others: usize) -> bool {
        let Backing::Mapped(map) = &self.backing else {
            return true; // bytes in memory are freed with the snapshot itself
        };
        self.readers
            .release_if_unused(Arc::strong_count(self) - others, || {
                self.poison();
                // SAFETY: the mapping is ours, and no reader can use it: every pin is idle (no
                // lookup in progress, no result alive) and will find a new generation before it
                // reads again; nothing else holds the snapshot.
                unsafe { sigbus::map_zeros(map.as_ptr(), map.len()) };
            })
    }

    pub fn views(&self) -> &Views<'_> {
        &self.views
    }

    pub fn info(&self) -> &DatabaseInfo {
        &self.info
    }

    pub fn identity(&self) -> Option<FileIdentity> {
        self.identity
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mapped(_))
    }

    pub fn poison(&self) {
        self.poisoned
            .store(true, std::sync::atomic::Ordering::Release);
    }

    #[inline]
    fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::InvalidQuery {
                query: String::new(),
                what: "the database file was modified in place (it must be replaced by rename); \
                       lookups are refused until a good file arrives"
                    .into(),
            });
        }
        Ok(())
    }

    pub fn validate(&self, level: ValidationLevel) -> ValidationReport {
        validate::validate_views(self.views(), level)
    }

    /// Every match of `query` in order (IP, literal, globs), handed to `f`. `ip` is `query` read
    /// as an address ([`parse_ip`]), which the caller needs first to route the query.
    #[inline]
    pub fn lookup_with<'s>(
        &'s self,
        query: &str,
        ip: Option<IpAddr>,
        mut f: impl FnMut(RawMatch<'s>),
    ) -> Result<()> {
        self.check_poison()?;
        let v = self.views();
        if let Some(ip) = ip {
            match self.lookup_ip(ip) {
                Ok(Some(m)) => f(m),
                Ok(None) | Err(Error::InvalidQuery { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let q = query.as_bytes();
        if let Some(lit) = &v.literals {
            if let Some(hit) = lit.lookup(q)? {
                f(RawMatch::literal(v, hit));
            }
        }
        if let Some(globs) = &v.globs {
            globs.for_each_match(q, |hit| f(RawMatch::glob(v, hit)))?;
        }
        // A SIGBUS during the lookup replaced what it read with zeros: refuse the answer.
        self.check_poison()
    }

    /// Whether the literal index alone answers queries that are not IP addresses (a file with
    /// literals and no globs): [`lookup_literal`](Self::lookup_literal) then gives what
    /// [`lookup_with`](Self::lookup_with) would, at most one match.
    #[inline]
    pub fn literals_answer_alone(&self) -> bool {
        self.views.literals.is_some() && self.views.globs.is_none()
    }

    /// The literal equal to `query`, if any.
    #[inline]
    pub fn lookup_literal(&self, query: &str) -> Result<Option<RawMatch<'_>>> {
        let v = self.views();
        let hit = match &v.literals {
            Some(lit) => lit.lookup(query.as_bytes()),
            None => Ok(None),
        };
        // Lookups on a file modified in place are refused. Checked after reading only (a
        // SIGBUS during or before this lookup replaced what it read with zeros), and before
        // the lookup's own error, which the zeros may explain.
        self.check_poison()?;
        Ok(hit?.map(|hit| RawMatch::literal(v, hit)))
    }

    /// [`lookup_with`](Self::lookup_with) for many queries; `f` gets each query's index. The
    /// literal probes of a group of queries overlap their memory waits (prefetching), which is
    /// where batches gain: a hit costs a few dependent cache misses.
    pub fn lookup_batch_with<'s>(
        &'s self,
        queries: &[&str],
        mut f: impl FnMut(usize, RawMatch<'s>),
    ) -> Result<()> {
        const GROUP: usize = 32;
        self.check_poison()?;
        let v = self.views();
        let mut keys: [&[u8]; GROUP] = [&[]; GROUP];
        let mut hits = [None; GROUP];
        for (g, chunk) in queries.chunks(GROUP).enumerate() {
            if let Some(lit) = &v.literals {
                for (k, q) in keys.iter_mut().zip(chunk) {
                    *k = q.as_bytes();
                }
                lit.lookup_batch(&keys[..chunk.len()], &mut hits[..chunk.len()])?;
            }
            for (j, q) in chunk.iter().enumerate() {
                let i = g * GROUP + j;
                if let Some(ip) = parse_ip(q) {
                    match self.lookup_ip(ip) {
                        Ok(Some(m)) => f(i, m),
                        Ok(None) | Err(Error::InvalidQuery { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                if let Some(hit) = hits[j].take() {
                    f(i, RawMatch::literal(v, hit));
                }
                if let Some(globs) = &v.globs {
                    globs.for_each_match(q.as_bytes(), |hit| f(i, RawMatch::glob(v, hit)))?;
                }
            }
        }
        self.check_poison()
    }

    /// This snapshot's IPv4 index once it is built, for callers that keep it at hand (a
    /// database's pins) and try [`lookup_v4_indexed`](Self::lookup_v4_indexed) first.
    pub fn ipv4_index(&self) -> Option<&StrideIndex> {
        self.views.tree.ipv4_index()
    }

    /// [`lookup_ip`](Self::lookup_ip) of an IPv4 address answered by this snapshot's IPv4 index
    /// (`index`, from [`ipv4_index`](Self::ipv4_index)) alone: no read of the file, so no
    /// poison check after it. `None` when the index cannot answer alone (the walk goes on in a
    /// damaged tree) or lookups are refused (modified in place): `lookup_ip` then says why.
    #[inline(always)]
    pub fn lookup_v4_indexed(
        &self,
        index: &StrideIndex,
        ip: Ipv4Addr,
    ) -> Option<Option<RawMatch<'_>>> {
        let hit = index.answer(u32::from(ip)).ok()?;
        if self.poisoned.load(Ordering::Relaxed) {
            return None;
        }
        Some(hit.map(|hit| RawMatch {
            views: &self.views,
            source: Source::Net {
                query: IpAddr::V4(ip),
                at: hit.at,
                depth: index.start_depth() + hit.depth,
            },
            data: hit.data_offset,
        }))
    }

    /// The IP network (longest prefix) holding `ip`, if any.
    #[inline]
    pub fn lookup_ip(&self, ip: IpAddr) -> Result<Option<RawMatch<'_>>> {
        let v = self.views();
        let (hit, depth_base) = match ip {
            // In an IPv6 tree, IPv4 lives under ::/96: express the depth in IPv6 bits.
            IpAddr::V4(a) => v.tree.lookup_v4_from_start(a)?,
            IpAddr::V6(a) => (v.tree.lookup_v6(a)?, 0),
        };
        let Some(hit) = hit else {
            return Ok(None);
        };
        // Checked after reading: a SIGBUS during the walk zeroed what it read.
        self.check_poison()?;
        Ok(Some(RawMatch {
            views: v,
            source: Source::Net {
                query: ip,
                at: hit.at,
                depth: depth_base + hit.depth,
            },
            data: hit.data_offset,
        }))
    }
}

enum Backing {
    Mapped(memmap2::Mmap),
    Owned(Box<[u8]>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(b) => b,
        }
    }
}

/// Zero-copy views into the file, all borrowing the same bytes.
pub(crate) struct Views<'a> {
    pub file: &'a [u8],
    pub tree: SearchTree<'a>,
    pub data: &'a [u8],
    pub data_offset: u64,
    pub prefixes: &'a [u8],
    pub literals: Option<LiteralTable<'a>>,
    pub globs: Option<GlobIndex<'a>>,
    pub directory: Option<Directory>,
    pub metadata_offset: usize,
}

/// An IP address query: cheap rejection first, since most string queries are not IPs. Most
/// domains, e-mails and URLs fail at their first byte, here; the rest is out of line, which
/// keeps the lookup's hot path short.
#[inline]
pub(crate) fn parse_ip(query: &str) -> Option<IpAddr> {
    match query.as_bytes().first() {
        Some(b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' | b':' | b'.') => parse_ip_further(query),
        _ => None,
    }
}

/// [`parse_ip`] for text that starts like an address.
#[inline(never)]
fn parse_ip_further(query: &str) -> Option<IpAddr> {
    let bytes = query.as_bytes();
    if bytes.len() > 45 {
        return None;
    }
    // The first eight bytes at once, and the rest one by one: IPv4 is digits and dots; IPv6
    // has colons, hex digits, and dots only for an embedded IPv4.
    let (mut colon, mut letter, rest) = match bytes.split_first_chunk::<8>() {
        Some((head, rest)) => {
            let (colon, letter) = ip_head(u64::from_le_bytes(*head), bytes.len())?;
            (colon, letter, rest)
        }
        None => (false, false, bytes),
    };
    for &c in rest {
        match c {
            b'0'..=b'9' | b'.' => {}
            b':' => colon = true,
            b'a'..=b'f' | b'A'..=b'F' => letter = true,
            _ => return None,
        }
    }
    if letter && !colon {
        return None;
    }
    query.parse().ok()
}

/// Whether a text of `len` bytes whose first eight are `head` (little-endian) may be an IP
/// address, judged without a branch per byte (a byte loop leaves at the first byte no address
/// has, a position that varies from query to query: a mispredicted branch each; and it read
/// hex hashes such as MD5 and SHA-1 to their end). `None` if one of the eight is not a digit,
/// `.`, `:` or hex letter, or if none of the first five is a colon while one of them is a
/// letter or the text is longer than 15 bytes: IPv4 has no letters and at most 15 bytes, and an
/// IPv6 address has a colon within its first five bytes (a group has at most four digits).
/// Otherwise whether the eight hold a colon, and a hex letter.
#[inline]
fn ip_head(head: u64, len: usize) -> Option<(bool, bool)> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const FIRST_FIVE: u64 = 0x0000_0080_8080_8080;
    let ones = |b: u8| u64::from(b) * 0x0101_0101_0101_0101;
    // Per byte, with the high bit clear: the high bit of `x + (0x80 - lo)` says `x >= lo`.
    let low7 = head & !HIGH;
    let at_least = |x: u64, lo: u8| (x + ones(0x80 - lo)) & HIGH;
    let between = |x: u64, lo: u8, hi: u8| at_least(x, lo) & !at_least(x, hi + 1);
    let digit_or_colon = between(low7, b'0', b':');
    let hex_letter = between(low7 | ones(0x20), b'a', b'f');
    let dot = crate::bytes::bytes_equal_to(head, b'.');
    let colon = crate::bytes::bytes_equal_to(head, b':');
    let address_byte = (digit_or_colon | hex_letter | dot) & !(head & HIGH);
    let may_be = address_byte == HIGH
        && (colon & FIRST_FIVE != 0 || (hex_letter & FIRST_FIVE == 0 && len <= 15));
    may_be.then_some((colon != 0, hex_letter != 0))
}

fn section_bytes<'a>(
    file: &'a [u8],
    dir: &Directory,
    name: &str,
    data_end: u64,
    metadata_offset: usize,
) -> Result<Option<&'a [u8]>> {
    let Some(s) = dir.section(name) else {
        return Ok(None);
    };
    let end = s.offset.checked_add(s.length);
    match end {
        Some(end) if s.offset >= data_end && end <= metadata_offset as u64 && s.offset % 8 == 0 => {
            Ok(Some(&file[s.offset as usize..end as usize]))
        }
        _ => Err(Error::corrupt(
            s.offset,
            format!(
                "section {name:?} ({} bytes at {}) is misplaced: it must be 8-byte aligned and lie between the data section (ends at {data_end}) and the metadata (at {metadata_offset})",
                s.length, s.offset
            ),
        )),
    }
}

fn open_views(file: &[u8]) -> Result<(Views<'_>, DatabaseInfo)> {
    let meta: Metadata<'_> = parse_metadata(file)?;
    let marker = meta.start;
    let tree_size = u64::from(meta.node_count) * u64::from(meta.record_size) / 4;
    if tree_size + 16 > marker as u64 {
        return Err(Error::corrupt(
            marker,
            format!(
                "metadata says the search tree is {tree_size} bytes ({} nodes of {} bits) but the metadata starts at byte {marker}",
                meta.node_count, meta.record_size
            ),
        ));
    }
    let tree_bytes = &file[..tree_size as usize];
    let tree = SearchTree::new(
        tree_bytes,
        meta.node_count,
        meta.record_size,
        meta.ip_version,
    )?;
    let directory = Directory::from_metadata(meta.map, marker)?;
    let data_offset = tree_size + 16;
    let (data, prefixes, literals, globs, fold) = match &directory {
        None => (
            &file[data_offset as usize..marker],
            &[][..],
            None,
            None,
            false,
        ),
        Some(dir) => {
            let d = dir.section(format::SECTION_DATA).ok_or_else(|| {
                Error::corrupt(
                    marker,
                    "metadata key \"matchy\": no \"data\" section listed",
                )
            })?;
            let data_end = d
                .offset
                .checked_add(d.length)
                .filter(|&e| e <= marker as u64);
            let Some(data_end) = data_end.filter(|_| d.offset == data_offset) else {
                return Err(Error::corrupt(
                    d.offset,
                    format!(
                        "data section ({} bytes at {}) must start right after the tree separator (at {data_offset}) and end before the metadata (at {marker})",
                        d.length, d.offset
                    ),
                ));
            };
            let fold = dir.match_mode.folds();
            let prefixes = section_bytes(file, dir, format::SECTION_IP_PREFIXES, data_end, marker)?
                .unwrap_or(&[]);
            if !prefixes.is_empty() && prefixes.len() as u64 != u64::from(meta.node_count) * 2 {
                return Err(Error::corrupt(
                    dir.section(format::SECTION_IP_PREFIXES)
                        .map_or(0, |s| s.offset),
                    format!(
                        "ip_prefixes section has {} bytes, expected 2 per tree node ({})",
                        prefixes.len(),
                        u64::from(meta.node_count) * 2
                    ),
                ));
            }
            let literals =
                match section_bytes(file, dir, format::SECTION_LITERALS, data_end, marker)? {
                    Some(b) => Some(LiteralTable::new(b, fold).map_err(|e| {
                        e.at_base(
                            dir.section(format::SECTION_LITERALS)
                                .map_or(0, |s| s.offset),
                        )
                    })?),
                    None => None,
                };
            let globs = match section_bytes(file, dir, format::SECTION_GLOBS, data_end, marker)? {
                Some(b) => Some(GlobIndex::new(b, fold).map_err(|e| {
                    e.at_base(dir.section(format::SECTION_GLOBS).map_or(0, |s| s.offset))
                })?),
                None => None,
            };
            (
                &file[data_offset as usize..data_end as usize],
                prefixes,
                literals,
                globs,
                fold,
            )
        }
    };
    let info = DatabaseInfo {
        format: if directory.is_some() {
            "matchy"
        } else {
            "mmdb"
        },
        database_type: meta.database_type.to_string(),
        description: meta
            .description
            .iter()
            .map(|(l, t)| (l.to_string(), t.to_string()))
            .collect(),
        languages: meta.languages.iter().map(|l| l.to_string()).collect(),
        build_epoch: meta.build_epoch,
        ip_version: meta.ip_version,
        record_size: meta.record_size,
        node_count: meta.node_count,
        match_mode: if fold {
            MatchMode::CaseInsensitive
        } else {
            MatchMode::CaseSensitive
        },
        ip_count: directory.as_ref().map(|d| d.ip_count),
        literal_count: directory.as_ref().map(|d| d.literal_count),
        glob_count: directory.as_ref().map(|d| d.glob_count),
        file_size: file.len() as u64,
        tree_size,
        data_section_size: data.len() as u64,
        metadata_offset: marker as u64,
        sections: directory
            .as_ref()
            .map(|d| d.sections.clone())
            .unwrap_or_default(),
    };
    Ok((
        Views {
            file,
            tree: tree.with_prefix_table(prefixes),
            data,
            data_offset,
            prefixes,
            literals,
            globs,
            directory,
            metadata_offset: marker,
        },
        info,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hashes_domains_and_addresses_are_told_apart() {
        for q in [
            "d41d8cd98f00b204e9800998ecf8427e",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "deadbeefcafe",
            "cdn12.example.com",
            "abcd",
            "fe80",
            "1.2.3.4.5",
        ] {
            assert_eq!(parse_ip(q), None, "{q}");
        }
        for q in [
            "1.2.3.4",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "FE80::abcd:1",
            "2001:db8::8a2e:370:7334",
            "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
            "::ffff:10.1.2.3",
            "1:2:3:4:5:6:1.2.3.4",
        ] {
            assert_eq!(parse_ip(q), q.parse().ok(), "{q}");
            assert!(parse_ip(q).is_some(), "{q}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The cheap rejections never turn away an address the full parser accepts.
        #[test]
        fn parse_ip_agrees_with_the_standard_parser(q in "[0-9a-fA-F.:xz\\u{e9}]{0,46}") {
            prop_assert_eq!(parse_ip(&q), q.parse::<IpAddr>().ok());
        }

        #[test]
        fn parse_ip_agrees_on_addresses(v6 in any::<u128>(), v4 in any::<u32>(), upper in any::<bool>()) {
            for ip in [IpAddr::V6(v6.into()), IpAddr::V4(v4.into())] {
                let text = ip.to_string();
                let text = if upper { text.to_uppercase() } else { text };
                prop_assert_eq!(parse_ip(&text), Some(ip));
            }
            // Uncompressed, groups with and without leading zeros: the colon comes last.
            let groups: Vec<String> = (0..8)
                .map(|i| {
                    let g = (v6 >> (112 - 16 * i)) as u16;
                    if (v4 >> i) & 1 == 1 { format!("{g:04x}") } else { format!("{g:x}") }
                })
                .collect();
            let text = groups.join(":");
            prop_assert_eq!(parse_ip(&text), Some(IpAddr::V6(v6.into())), "{}", text);
        }
    }
}
