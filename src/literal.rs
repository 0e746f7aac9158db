//! The exact-string section ("literals"): a build-once hash table answering "which entry has
//! exactly this key?" for domains, hashes, URLs and e-mail addresses, up to millions per file.
//! It owns the section's on-disk layout, its builder, its zero-allocation reader (single and
//! batched, prefetching lookups) and its strict validator.
//!
//! # Design
//!
//! One hash per key ([`key_hash`], ASCII-folded in case-insensitive databases), a 1-byte
//! fingerprint array probed linearly (a miss usually costs one cache line), and a full-key
//! compare on a fingerprint match. Slots are placed in order of their home slot (the layout
//! Robin Hood hashing converges to), so every probe run is contiguous, probe lengths are as
//! short as linear probing allows, and the largest displacement is stored so no lookup probes
//! further. A lookup reads the first eight fingerprints of its run as one word (matches and the
//! run's end found without a branch per slot).
//!
//! Key records sit in the pool in slot order, and each slot holds its record's offset in 4
//! bytes (8 only for pools past 4 GiB). A hit waits for the fingerprint and slot lines (fetched
//! together), then its record's line or two. (Version 1 had 8-byte slots, records in insertion
//! order and 8-byte record headers: 9 MB more for 1M keys, at the same lookup speed. A
//! directory per group of 8 slots, walking the records before a slot's own, made the table
//! smaller still but cost hits an extra line or more, worse the longer the keys.)
//! `lookup_batch` overlaps these memory waits across a group of keys with software prefetches.
//!
//! # Section layout (little-endian; offsets relative to the section start, which is 8-aligned)
//!
//! ```text
//! offset  size  field
//!      0     4  magic b"MXLT"
//!      4     4  crc32 (IEEE, as crc32fast) of section bytes [8, section_len)
//!      8     2  version = 3
//!     10     2  flags: bit 0 = case-insensitive (keys hashed/compared ASCII-folded);
//!                 bit 1 = wide slots (8 bytes), set iff 48 + P > 2^32 - 1; other bits 0
//!     12     4  entry_count n (u32, at most 2^30)
//!     16     4  max_probe: largest (slot - home slot) of any entry
//!     20     4  reserved, 0
//!     24     8  home_slots S: 0 if n == 0, else ceil(3n / 2) (load factor 2/3)
//!     32     8  table_slots T: max(S, last occupied slot + 1), so S <= T <= S + n
//!     40     8  pool_len P: bytes of key records
//!     48     P  key pool: n records, one per occupied slot, in slot order, each
//!                 u32 data_offset (into the MMDB data section),
//!                 u8 len8: the key length if below 255, else 255 followed by u32 key_len,
//!                 the key's bytes: UTF-8 exactly as inserted (original case)
//!   align8(48 + P) = SLOTS
//!  SLOTS   wT  slots, w = 4 (8 if wide): section offset of the slot's record, 0 if empty
//!   align8(SLOTS + wT) = FP
//!     FP    T  fingerprints: one byte per slot, 0 = empty
//!   align8(FP + T) = section_len
//! ```
//! All padding bytes are zero.
//!
//! With `h = key_hash(key, fold)`:
//! * home slot: `((h & 0xFFFF_FFFF) * S) >> 32`;
//! * fingerprint: the top byte `h >> 56`, with 0 replaced by 1.
//!
//! Entries are numbered 0..n in slot order and sorted strictly by (`h & 0xFFFF_FFFF`, `h >> 32`,
//! key bytes (ASCII-folded when folding)), hence by home slot, with equal keys impossible. Entry
//! 0 sits in its home slot and entry `i+1` in slot `max(home(i+1), slot(i) + 1)`, so every slot
//! between an entry's home and its own slot is occupied. Lookup probes slots
//! `home ..= min(home + max_probe, T - 1)` in order, stopping at the first empty slot; on a
//! fingerprint match it compares the slot's record's key with the query (byte equality, or ASCII-case-insensitive equality when folding); it returns the
//! first equal one. Everything follows from the key set, and `check` insists on it.

use crate::bytes;
use crate::error::{Error, Result};
use crate::hash::{fold_byte, key_hash};
use std::cmp::Ordering;

pub use crate::mmdb::tree_builder::KeepDuplicate;

/// (kept entry_id, dropped entry_id) for every duplicate key the builder dropped.
pub type DuplicatePairs = Vec<(u32, u32)>;

const MAGIC: [u8; 4] = *b"MXLT";
const VERSION: u16 = 3;
const FLAG_FOLD: u16 = 1;
const FLAG_WIDE: u16 = 2;
const HEADER_LEN: usize = 48;
/// `len8` value announcing a u32 key length.
const LONG_KEY: u8 = 255;
/// Keeps `home_slots` below 2^32 (the home slot is a 32x32-bit fast range) and entry ids in u32.
const MAX_ENTRIES: usize = 1 << 30;
/// Keys per group in `lookup_batch` (16, 32 and 64 measured alike).
const BATCH_GROUP: usize = 32;
/// Fingerprints a lookup reads as one word before probing byte by byte.
const WINDOW: usize = 8;
/// The high bit of each byte of a word.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Number of home slots for `n` entries (load factor 2/3).
fn home_slots_for(n: usize) -> u64 {
    (n as u64 * 3).div_ceil(2)
}

#[inline]
fn home_slot(hash: u64, home_slots: u64) -> usize {
    (((hash & 0xFFFF_FFFF) * home_slots) >> 32) as usize
}

#[inline]
fn fingerprint(hash: u64) -> u8 {
    ((hash >> 56) as u8).max(1)
}

/// Byte equality first, even when folding: keys and queries mostly agree in case, and the word
/// compare is cheaper than the byte-by-byte case-insensitive one. Inlined: the call cost more
/// than the compare.
#[inline(always)]
fn keys_equal(stored: &[u8], query: &[u8], fold: bool) -> bool {
    bytes::slices_equal(stored, query) || (fold && stored.eq_ignore_ascii_case(query))
}

fn cmp_keys(a: &[u8], b: &[u8], fold: bool) -> Ordering {
    a.iter()
        .map(|&x| fold_byte(x, fold))
        .cmp(b.iter().map(|&x| fold_byte(x, fold)))
}

/// Bytes before the key in a record whose key is `key_len` bytes long.
#[inline]
fn record_header_len(key_len: usize) -> usize {
    if key_len < usize::from(LONG_KEY) {
        5
    } else {
        9
    }
}

/// Appends a record (the section's encoding, also used by the builder's staging pool).
fn push_record(pool: &mut Vec<u8>, key: &[u8], data_offset: u32) {
    pool.extend_from_slice(&data_offset.to_le_bytes());
    match u8::try_from(key.len()) {
        Ok(len8) if len8 < LONG_KEY => pool.push(len8),
        _ => {
            pool.push(LONG_KEY);
            pool.extend_from_slice(&(key.len() as u32).to_le_bytes());
        }
    }
    pool.extend_from_slice(key);
}

/// The record at `at` in `pool`: (key, data_offset, offset just past the record), or `None`
/// if it runs past the end.
#[inline(always)]
fn read_record(pool: &[u8], at: usize) -> Option<(&[u8], u32, usize)> {
    let head = pool.get(at..at.checked_add(5)?)?;
    let data_offset = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let (key_len, key_at) = if head[4] != LONG_KEY {
        (usize::from(head[4]), at + 5)
    } else {
        read_long_key_len(pool, at)?
    };
    let end = key_at.checked_add(key_len)?;
    Some((pool.get(key_at..end)?, data_offset, end))
}

/// (key length, key offset) of a record at `at` holding a key of 255 bytes or more.
#[inline(never)]
fn read_long_key_len(pool: &[u8], at: usize) -> Option<(usize, usize)> {
    let len = pool.get(at + 5..at.checked_add(9)?)?;
    let key_len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    Some((key_len, at + 9))
}

/// Whether record offsets up to `pool_end` need 8-byte slots. (Tests force wide slots to
/// exercise them without building a 4 GiB pool.)
fn needs_wide_slots(pool_end: usize) -> bool {
    #[cfg(test)]
    if tests::FORCE_WIDE.with(|force| force.get()) {
        return true;
    }
    pool_end > u32::MAX as usize
}

/// Byte offsets of each section part, derived from the header counts.
#[derive(Debug, Clone, Copy)]
struct Layout {
    pool_end: usize,
    slots: usize,
    slot_width: usize,
    fingerprints: usize,
    end: usize,
    wide: bool,
}

impl Layout {
    fn new(table_slots: usize, pool_len: usize) -> Option<Layout> {
        let pool_end = HEADER_LEN.checked_add(pool_len)?;
        let wide = needs_wide_slots(pool_end);
        let slot_width = if wide { 8 } else { 4 };
        let slots = pool_end.checked_add(7)? & !7;
        let fingerprints = slots
            .checked_add(table_slots.checked_mul(slot_width)?)?
            .checked_add(7)?
            & !7;
        let end = fingerprints.checked_add(table_slots)?.checked_add(7)? & !7;
        Some(Layout {
            pool_end,
            slots,
            slot_width,
            fingerprints,
            end,
            wide,
        })
    }
}

/// A key waiting to be placed: its hash and the offset of its record in the staging pool.
#[derive(Clone, Copy)]
struct PendingKey {
    hash: u64,
    offset: u64,
    entry_id: u32,
}

/// Marks a dropped duplicate until it is removed.
const DROPPED: u64 = u64::MAX;

/// Collects keys and writes the literal section. Memory: the key records in one staging pool
/// plus 24 bytes per key, no per-key allocation; writing the section copies the records into
/// slot order.
pub struct LiteralTableBuilder {
    fold: bool,
    /// Records in insertion order (the section's record encoding).
    staging: Vec<u8>,
    keys: Vec<PendingKey>,
    error: Option<Error>,
}

impl LiteralTableBuilder {
    pub fn new(fold: bool) -> Self {
        LiteralTableBuilder {
            fold,
            staging: Vec::new(),
            keys: Vec::new(),
            error: None,
        }
    }

    /// Adds `key` for the entry `entry_id`, whose data sits at `data_offset` in the data section.
    /// Problems (a key longer than 4 GiB, too many keys) are reported by [`Self::finish`].
    pub fn add(&mut self, key: &str, data_offset: u32, entry_id: u32) {
        if self.error.is_some() {
            return;
        }
        if u32::try_from(key.len()).is_err() {
            self.error = Some(Error::Build(format!(
                "literal key of {} bytes is longer than 4 GiB",
                key.len()
            )));
            return;
        }
        if self.keys.len() >= MAX_ENTRIES {
            self.error = Some(Error::Build(format!(
                "more than {MAX_ENTRIES} literal keys"
            )));
            return;
        }
        let offset = self.staging.len() as u64;
        push_record(&mut self.staging, key.as_bytes(), data_offset);
        self.keys.push(PendingKey {
            hash: key_hash(key.as_bytes(), self.fold),
            offset,
            entry_id,
        });
    }

    /// Writes the section. Duplicate = equal keys (ASCII-folded when folding); `keep` chooses
    /// which one stays. Returns the section bytes (the same input always gives the same bytes)
    /// and every (kept entry_id, dropped entry_id) pair, sorted by dropped then kept id.
    pub fn finish(self, keep: KeepDuplicate) -> Result<(Vec<u8>, DuplicatePairs)> {
        let LiteralTableBuilder {
            fold,
            staging,
            mut keys,
            error,
        } = self;
        if let Some(e) = error {
            return Err(e);
        }
        // Sorting by the low hash half first sorts by home slot (a monotone function of it) and
        // groups equal hashes; `drop_duplicates` then orders each group by key.
        keys.sort_unstable_by_key(|k| (k.hash.rotate_left(32), k.offset));
        let duplicates = drop_duplicates(&staging, &mut keys, fold, keep);
        Ok((write_tables(staging, keys, fold)?, duplicates))
    }
}

/// Writes the section for `keys` (in entry order, records in `staging`): header, records in
/// slot order, slots, fingerprints.
fn write_tables(staging: Vec<u8>, keys: Vec<PendingKey>, fold: bool) -> Result<Vec<u8>> {
    let n = keys.len();
    let home_slots = home_slots_for(n);
    let record_len = |k: &PendingKey| {
        let (_, _, end) = read_record(&staging, k.offset as usize).expect("staged record");
        end - k.offset as usize
    };

    // First pass: where the last entry lands, how far any entry is displaced, pool size.
    let mut max_probe = 0usize;
    let mut next_free = 0usize;
    let mut pool_len = 0usize;
    for k in &keys {
        let home = home_slot(k.hash, home_slots);
        let slot = home.max(next_free);
        max_probe = max_probe.max(slot - home);
        next_free = slot + 1;
        pool_len += record_len(k);
    }
    let table_slots = (home_slots as usize).max(next_free);
    let layout = Layout::new(table_slots, pool_len)
        .ok_or_else(|| Error::Build("literal section too large".into()))?;

    let mut section = vec![0u8; layout.end];
    let mut at = HEADER_LEN;
    let mut next_free = 0usize;
    for k in &keys {
        let slot = home_slot(k.hash, home_slots).max(next_free);
        next_free = slot + 1;
        let len = record_len(k);
        let from = k.offset as usize;
        section[at..at + len].copy_from_slice(&staging[from..from + len]);
        let slot_at = layout.slots + slot * layout.slot_width;
        if layout.wide {
            section[slot_at..slot_at + 8].copy_from_slice(&(at as u64).to_le_bytes());
        } else {
            section[slot_at..slot_at + 4].copy_from_slice(&(at as u32).to_le_bytes());
        }
        section[layout.fingerprints + slot] = fingerprint(k.hash);
        at += len;
    }
    debug_assert_eq!(at, layout.pool_end);
    drop(staging);
    drop(keys);

    section[0..4].copy_from_slice(&MAGIC);
    section[8..10].copy_from_slice(&VERSION.to_le_bytes());
    let flags = if fold { FLAG_FOLD } else { 0 } | if layout.wide { FLAG_WIDE } else { 0 };
    section[10..12].copy_from_slice(&flags.to_le_bytes());
    section[12..16].copy_from_slice(&(n as u32).to_le_bytes());
    section[16..20].copy_from_slice(&(max_probe as u32).to_le_bytes());
    section[24..32].copy_from_slice(&home_slots.to_le_bytes());
    section[32..40].copy_from_slice(&(table_slots as u64).to_le_bytes());
    section[40..48].copy_from_slice(&(pool_len as u64).to_le_bytes());
    let crc = crc32fast::hash(&section[8..]);
    section[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(section)
}

/// The key bytes of the record at `offset` in the builder's staging pool.
fn pool_key(staging: &[u8], offset: u64) -> &[u8] {
    read_record(staging, offset as usize)
        .expect("staged record")
        .0
}

/// Removes duplicate keys from `keys` (sorted by hash) and orders keys with equal hashes by
/// (folded) key bytes. Returns (kept, dropped) entry id pairs. Dropped records stay in the
/// staging pool; `write_tables` copies only the kept ones.
fn drop_duplicates(
    staging: &[u8],
    keys: &mut Vec<PendingKey>,
    fold: bool,
    keep: KeepDuplicate,
) -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    let mut start = 0;
    while start < keys.len() {
        let hash = keys[start].hash;
        let end = start + keys[start..].partition_point(|k| k.hash == hash);
        if end - start > 1 {
            let group = &mut keys[start..end];
            group.sort_by(|a, b| {
                cmp_keys(
                    pool_key(staging, a.offset),
                    pool_key(staging, b.offset),
                    fold,
                )
                .then(a.offset.cmp(&b.offset))
            });
            let mut run = 0;
            while run < group.len() {
                let first_key = pool_key(staging, group[run].offset);
                let run_end = run
                    + group[run..]
                        .iter()
                        .position(|k| !keys_equal(first_key, pool_key(staging, k.offset), fold))
                        .unwrap_or(group.len() - run);
                let kept = match keep {
                    KeepDuplicate::First => run,
                    KeepDuplicate::Last => run_end - 1,
                };
                let kept_id = group[kept].entry_id;
                for i in (run..run_end).filter(|&i| i != kept) {
                    pairs.push((kept_id, group[i].entry_id));
                    group[i].offset = DROPPED;
                }
                run = run_end;
            }
        }
        start = end;
    }
    if !pairs.is_empty() {
        keys.retain(|k| k.offset != DROPPED);
        pairs.sort_unstable_by_key(|&(kept, dropped)| (dropped, kept));
    }
    pairs
}

/// A key found in the literal section: its text as inserted and its data section offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiteralHit<'a> {
    /// UTF-8 unless the file is damaged (strict validation checks it); not checked per lookup,
    /// where it cost more than the rest of a cached hit.
    pub key: &'a [u8],
    pub data_offset: u32,
}

/// Read access to a literal section (borrowed from the mapped file).
#[derive(Debug, Clone, Copy)]
pub struct LiteralTable<'a> {
    section: &'a [u8],
    /// The section up to the end of the pool.
    pool: &'a [u8],
    /// `table_slots` record offsets of 4 bytes (8 when `layout.wide`).
    slots: &'a [u8],
    /// `table_slots` bytes.
    fingerprints: &'a [u8],
    layout: Layout,
    fold: bool,
    entries: usize,
    max_probe: usize,
    home_slots: u64,
}

impl<'a> LiteralTable<'a> {
    /// Opens a section (exactly the bytes [`LiteralTableBuilder::finish`] wrote) in a database
    /// whose case-insensitivity is `fold`. O(1): checks the header and the table bounds only.
    pub fn new(section: &'a [u8], fold: bool) -> Result<Self> {
        let what = "literal section header";
        if bytes::slice(section, 0, 4, what)? != MAGIC {
            return Err(Error::corrupt(0, "literal section: bad magic"));
        }
        let version = bytes::u16_le(section, 8, what)?;
        if version != VERSION {
            return Err(Error::corrupt(
                8,
                format!(
                    "literal section: version {version}, this matchy reads version {VERSION} \
                     (rebuild the file)"
                ),
            ));
        }
        let flags = bytes::u16_le(section, 10, what)?;
        if flags & !(FLAG_FOLD | FLAG_WIDE) != 0 {
            return Err(Error::corrupt(
                10,
                format!("literal section: unknown flags {flags:#x}"),
            ));
        }
        if (flags & FLAG_FOLD != 0) != fold {
            return Err(Error::corrupt(
                10,
                "literal section case-sensitivity differs from the database's",
            ));
        }
        let entries = bytes::u32_le(section, 12, what)? as usize;
        let max_probe = bytes::u32_le(section, 16, what)? as usize;
        let reserved = bytes::u32_le(section, 20, what)?;
        let home_slots = bytes::u64_le(section, 24, what)?;
        let table_slots = bytes::u64_le(section, 32, what)?;
        let pool_len = bytes::u64_le(section, 40, what)?;
        if reserved != 0 {
            return Err(Error::corrupt(20, "literal section: reserved field not 0"));
        }
        if entries > MAX_ENTRIES || home_slots != home_slots_for(entries) {
            return Err(Error::corrupt(
                12,
                format!("literal section: {home_slots} home slots for {entries} entries"),
            ));
        }
        if table_slots < home_slots || table_slots > home_slots + entries as u64 {
            return Err(Error::corrupt(
                32,
                format!("literal section: {table_slots} slots for {home_slots} home slots"),
            ));
        }
        if max_probe > entries {
            return Err(Error::corrupt(
                16,
                format!("literal section: max probe {max_probe} > {entries} entries"),
            ));
        }
        let table_slots = bytes::to_usize(table_slots, 32, "literal table slots")?;
        let pool_len = bytes::to_usize(pool_len, 40, "literal pool length")?;
        let layout = Layout::new(table_slots, pool_len)
            .ok_or_else(|| Error::corrupt(40, "literal section: counts overflow"))?;
        if (flags & FLAG_WIDE != 0) != layout.wide {
            return Err(Error::corrupt(
                10,
                "literal section: wide-slots flag does not match the pool length",
            ));
        }
        if layout.end != section.len() {
            return Err(Error::corrupt(
                40,
                format!(
                    "literal section: counts do not match its length {}",
                    section.len()
                ),
            ));
        }
        Ok(LiteralTable {
            section,
            pool: &section[..layout.pool_end],
            slots: &section[layout.slots..layout.slots + table_slots * layout.slot_width],
            fingerprints: &section[layout.fingerprints..layout.fingerprints + table_slots],
            layout,
            fold,
            entries,
            max_probe,
            home_slots,
        })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries
    }

    #[cfg(test)] // entry-order access: used by the tests' cross-checks only
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The entry whose key equals `query` (ASCII-case-insensitively when folding). Allocates
    /// nothing.
    #[inline]
    pub fn lookup(&self, query: &[u8]) -> Result<Option<LiteralHit<'a>>> {
        self.lookup_hashed(query, key_hash(query, self.fold))
    }

    /// Looks up many keys at once: `out[i]` = `lookup(keys[i])`. Works in groups of 32 keys and
    /// four passes per group (hash and fetch fingerprints; find the first candidate slot and
    /// fetch it; fetch its record; compare), so the memory waits of a group overlap instead of
    /// adding up. (A rolling per-key pipeline measured no faster; groups of 16 alike.)
    ///
    /// # Panics
    /// If `keys` and `out` differ in length.
    pub fn lookup_batch(&self, keys: &[&[u8]], out: &mut [Option<LiteralHit<'a>>]) -> Result<()> {
        assert_eq!(keys.len(), out.len(), "lookup_batch: keys and out differ");
        let mut hashes = [0u64; BATCH_GROUP];
        // The first fingerprint match of each key's probe run, and its record's offset.
        let mut candidates = [None; BATCH_GROUP];
        let mut records = [None; BATCH_GROUP];
        for (keys, out) in keys.chunks(BATCH_GROUP).zip(out.chunks_mut(BATCH_GROUP)) {
            // Each pass starts the loads the next pass needs, for the whole group, so one group's
            // cache misses are in flight together. Misses usually end in the first pass.
            for (key, hash) in keys.iter().zip(hashes.iter_mut()) {
                *hash = key_hash(key, self.fold);
                prefetch(self.fingerprints, home_slot(*hash, self.home_slots));
            }
            for (&hash, candidate) in hashes.iter().zip(candidates.iter_mut()).take(keys.len()) {
                *candidate = self.first_candidate(hash);
                if let Some(slot) = *candidate {
                    prefetch(self.slots, slot * self.layout.slot_width);
                }
            }
            for ((key, candidate), record) in keys.iter().zip(&candidates).zip(&mut records) {
                *record = candidate.and_then(|slot| self.slot_offset(slot).ok());
                if let Some(at) = *record {
                    prefetch(self.section, at);
                    prefetch(self.section, record_last_byte(at, key.len()));
                }
            }
            for ((((key, &hash), candidate), record), out) in keys
                .iter()
                .zip(&hashes)
                .zip(&candidates)
                .zip(&records)
                .zip(out.iter_mut())
            {
                // No fingerprint match before the run ended: lookup_hashed would say the same.
                // The first candidate's key usually is the query; anything else (a fingerprint
                // collision, a damaged record) goes the single lookup's way.
                *out = match (candidate, record.map(|at| self.record(at))) {
                    (None, _) => None,
                    (Some(_), Some(Ok((stored, data_offset, _))))
                        if keys_equal(stored, key, self.fold) =>
                    {
                        Some(LiteralHit {
                            key: stored,
                            data_offset,
                        })
                    }
                    (Some(_), _) => self.lookup_hashed(key, hash)?,
                };
            }
        }
        Ok(())
    }

    #[cfg(test)] // entry-order access: used by the tests' cross-checks only
    /// The entry with index `entry` (0..len, in slot order).
    pub fn get(&self, entry: u32) -> Result<LiteralHit<'a>> {
        if entry as usize >= self.entries {
            return Err(Error::corrupt(
                0,
                format!("literal entry {entry} out of range ({})", self.entries),
            ));
        }
        self.iter().nth(entry as usize).unwrap_or_else(|| {
            Err(Error::corrupt(
                HEADER_LEN,
                format!("literal entry {entry} missing from the pool"),
            ))
        })
    }

    #[cfg(test)] // entry-order access: used by the tests' cross-checks only
    /// Every entry, in entry (slot, pool) order; stops after the first damaged record.
    pub fn iter(&self) -> impl Iterator<Item = Result<LiteralHit<'a>>> + 'a {
        let table = *self;
        let mut at = HEADER_LEN;
        std::iter::from_fn(move || {
            if at >= table.layout.pool_end {
                return None;
            }
            match table.record(at) {
                Ok((key, data_offset, end)) => {
                    at = end;
                    Some(Ok(LiteralHit { key, data_offset }))
                }
                Err(e) => {
                    at = table.layout.pool_end;
                    Some(Err(e))
                }
            }
        })
        .take(self.entries)
    }

    /// Strict validation of the whole section against a data section of `data_len` bytes:
    /// checksum, padding, every record in the pool and in bounds and the records tiling it in
    /// slot order, empty slots zero, every key valid UTF-8 and found by lookup at its
    /// own slot (so no duplicates), fingerprints and probe bound consistent with the key hashes,
    /// every data offset < `data_len`. Returns the data offsets of entries 0..len.
    pub fn check(&self, data_len: usize) -> Result<Vec<u32>> {
        let section = self.section;
        let stored_crc = bytes::u32_le(section, 4, "literal checksum")?;
        if crc32fast::hash(&section[8..]) != stored_crc {
            return Err(Error::corrupt(4, "literal section checksum mismatch"));
        }
        let table_slots = self.fingerprints.len();
        let layout = self.layout;
        for (from, to) in [
            (layout.pool_end, layout.slots),
            (layout.slots + self.slots.len(), layout.fingerprints),
            (layout.fingerprints + table_slots, layout.end),
        ] {
            if let Some(at) = section[from..to].iter().position(|&b| b != 0) {
                return Err(Error::corrupt(
                    from + at,
                    "literal section: padding not zero",
                ));
            }
        }

        let mut data_offsets = Vec::with_capacity(self.entries);
        let mut max_displacement = 0usize;
        // Where the next record (slot order) starts.
        let mut at = HEADER_LEN;
        // The previous entry (slot order): its slot, sort key and key bytes.
        let mut previous: Option<(usize, u64, &[u8])> = None;
        for slot in 0..table_slots {
            let slot_at = layout.slots + slot * layout.slot_width;
            let offset = self.slot_offset(slot)?;
            if self.fingerprints[slot] == 0 {
                if offset != 0 {
                    return Err(Error::corrupt(slot_at, "literal slot: empty slot not zero"));
                }
                continue;
            }
            if offset != at {
                return Err(Error::corrupt(
                    slot_at,
                    "literal slot: records not in slot order, or not tiling the pool",
                ));
            }
            let entry = data_offsets.len();
            if entry >= self.entries {
                return Err(Error::corrupt(
                    layout.fingerprints + slot,
                    "literal table: more occupied slots than entries",
                ));
            }
            let (key, data_offset, end) = read_record(self.pool, at)
                .ok_or_else(|| Error::corrupt(at, "literal record runs past the pool"))?;
            if (key.len() >= usize::from(LONG_KEY)) != (section[at + 4] == LONG_KEY) {
                return Err(Error::corrupt(
                    at + 4,
                    "literal record: key length not in its shortest form",
                ));
            }
            let key_text = std::str::from_utf8(key)
                .map_err(|_| Error::corrupt(end - key.len(), "literal key is not UTF-8"))?;
            let hash = key_hash(key, self.fold);
            if fingerprint(hash) != self.fingerprints[slot] {
                return Err(Error::corrupt(
                    layout.fingerprints + slot,
                    format!("literal fingerprint does not match key {key_text:?}"),
                ));
            }
            // Entries strictly increase in (sort key, folded key), so equal keys (which hash
            // alike) would be neighbours: one comparison per entry rules out duplicates.
            let sort_key = hash.rotate_left(32);
            let home = home_slot(hash, self.home_slots);
            let expected_slot = match previous {
                None => home,
                Some((previous_slot, previous_sort_key, previous_key)) => {
                    let order = previous_sort_key
                        .cmp(&sort_key)
                        .then_with(|| cmp_keys(previous_key, key, self.fold));
                    if order != Ordering::Less {
                        return Err(Error::corrupt(
                            at,
                            format!("literal key {key_text:?} out of order or stored twice"),
                        ));
                    }
                    home.max(previous_slot + 1)
                }
            };
            // The placement rule makes every slot from home to here occupied, so lookup's probe
            // (which stops at an empty slot or after max_probe) reaches this one.
            if slot != expected_slot || slot - home > self.max_probe {
                return Err(Error::corrupt(
                    layout.fingerprints + slot,
                    format!("literal key {key_text:?} is not where its hash places it"),
                ));
            }
            previous = Some((slot, sort_key, key));
            if data_offset as usize >= data_len {
                return Err(Error::corrupt(
                    at,
                    format!("literal data offset {data_offset} outside the data section"),
                ));
            }
            max_displacement = max_displacement.max(slot - home);
            data_offsets.push(data_offset);
            at = end;
        }
        if data_offsets.len() != self.entries || at != layout.pool_end {
            return Err(Error::corrupt(
                12,
                format!(
                    "literal table: {} occupied slots and {} pool bytes for {} entries and {} bytes",
                    data_offsets.len(),
                    at - HEADER_LEN,
                    self.entries,
                    layout.pool_end - HEADER_LEN
                ),
            ));
        }
        if max_displacement != self.max_probe {
            return Err(Error::corrupt(
                16,
                "literal section: max probe is not exact",
            ));
        }
        let last_occupied = previous.map(|(slot, _, _)| slot);
        if table_slots as u64 != self.home_slots && last_occupied != Some(table_slots - 1) {
            return Err(Error::corrupt(
                32,
                "literal section: table has trailing slots",
            ));
        }
        Ok(data_offsets)
    }

    #[inline(always)]
    fn lookup_hashed(&self, query: &[u8], hash: u64) -> Result<Option<LiteralHit<'a>>> {
        let run = self.probe_run(hash);
        // The slot line is fetched together with the fingerprints rather than after them: a hit
        // then waits for two memory reads in a row (fingerprint and slot, key record) instead
        // of three.
        prefetch(self.slots, run.home * self.layout.slot_width);
        for slot in run {
            if let Some(hit) = self.verify(slot, query)? {
                return Ok(Some(hit));
            }
        }
        Ok(None)
    }

    /// The slots of `hash`'s probe run whose fingerprint matches, in order. The first
    /// [`WINDOW`] fingerprints are read as one word (when the table has that many from the home
    /// slot on): their matches before the run ends are found without a branch per slot, whose
    /// exit, at a random probe length, the CPU cannot predict. Longer runs go on byte by byte.
    #[inline(always)]
    fn probe_run(&self, hash: u64) -> ProbeRun<'a> {
        let fp = fingerprint(hash);
        let home = home_slot(hash, self.home_slots);
        let end = home
            .saturating_add(self.max_probe)
            .saturating_add(1)
            .min(self.fingerprints.len());
        let mut run = ProbeRun {
            fingerprints: self.fingerprints,
            fp,
            home,
            window: 0,
            next: home,
            end,
        };
        let word = home
            .checked_add(WINDOW)
            .and_then(|window_end| self.fingerprints.get(home..window_end))
            .and_then(|window| window.try_into().ok())
            .map(u64::from_le_bytes);
        if let (Some(word), true) = (word, home < end) {
            let in_run = match end - home {
                n if n >= WINDOW => u64::MAX,
                n => (1u64 << (8 * n)) - 1,
            };
            let stops = (bytes::bytes_equal_to(word, 0) | !in_run) & HIGH;
            // Every bit below the first stop (all of them if the run goes on past the window).
            let before_stop = (stops & stops.wrapping_neg()).wrapping_sub(1);
            run.window = bytes::bytes_equal_to(word, fp) & before_stop;
            run.next = if stops != 0 { end } else { home + WINDOW };
        }
        run
    }

    /// The entry in `slot` if its key equals `query`.
    #[inline(always)]
    fn verify(&self, slot: usize, query: &[u8]) -> Result<Option<LiteralHit<'a>>> {
        let at = self.slot_offset(slot)?;
        // A matching record ends query.len() bytes after its header: fetch its last line
        // together with its first instead of one after the other.
        prefetch(self.section, record_last_byte(at, query.len()));
        let (key, data_offset, _) = self.record(at)?;
        Ok(keys_equal(key, query, self.fold).then_some(LiteralHit { key, data_offset }))
    }

    /// The first slot whose fingerprint matches `hash`, if the probe run has one.
    #[inline]
    fn first_candidate(&self, hash: u64) -> Option<usize> {
        self.probe_run(hash).next()
    }

    /// The section offset of `slot`'s record.
    #[inline(always)]
    fn slot_offset(&self, slot: usize) -> Result<usize> {
        let what = "literal slot";
        let offset = if self.layout.wide {
            bytes::u64_le(self.slots, slot * 8, what)?
        } else {
            u64::from(bytes::u32_le(self.slots, slot * 4, what)?)
        };
        bytes::to_usize(offset, self.layout.slots, what)
    }

    /// (key, data offset, offset past the record) of the record at section offset `at`.
    #[inline(always)]
    fn record(&self, at: usize) -> Result<(&'a [u8], u32, usize)> {
        read_record(self.pool, at)
            .ok_or_else(|| Error::corrupt(at, "literal key record runs past the pool"))
    }
}

/// The slots of one probe run whose fingerprint matches (see [`LiteralTable::probe_run`]).
struct ProbeRun<'a> {
    fingerprints: &'a [u8],
    fp: u8,
    home: usize,
    /// Matches among the first `WINDOW` slots not yet returned: bit `8i + 7` for `home + i`.
    window: u64,
    /// The next slot to test byte by byte, up to `end` (`end` once the run has ended).
    next: usize,
    end: usize,
}

impl Iterator for ProbeRun<'_> {
    type Item = usize;

    #[inline(always)]
    fn next(&mut self) -> Option<usize> {
        if self.window != 0 {
            let slot = self.home + self.window.trailing_zeros() as usize / 8;
            self.window &= self.window - 1;
            return Some(slot);
        }
        if self.next < self.end {
            return self.next_past_window();
        }
        None
    }
}

impl ProbeRun<'_> {
    /// Runs longer than the window, and homes near the table's end: byte by byte, out of line
    /// (rare, and kept out of the lookup's hot path).
    #[inline(never)]
    fn next_past_window(&mut self) -> Option<usize> {
        while self.next < self.end {
            let slot = self.next;
            self.next += 1;
            match self.fingerprints[slot] {
                0 => self.next = self.end,
                f if f == self.fp => return Some(slot),
                _ => {}
            }
        }
        None
    }
}

/// The last byte of a record at `at` whose key is `key_len` bytes long.
#[inline]
fn record_last_byte(at: usize, key_len: usize) -> usize {
    at.saturating_add(record_header_len(key_len) - 1 + key_len)
}

/// Asks the CPU to start loading the cache line holding `bytes[index]` (no-op out of bounds or
/// on targets without a stable prefetch instruction).
#[inline(always)]
fn prefetch(bytes: &[u8], index: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(byte) = bytes.get(index) {
        // SAFETY: a prefetch is only a hint: it reads nothing into the program, cannot fault,
        // and the address is in bounds of a live slice anyway.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                byte as *const u8 as *const i8,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, index);
}

/// Throughput harness for `benches/literal.rs` and the ignored release-mode test. The integrator
/// re-exports it as `matchy::__bench` (the module itself is private).
#[doc(hidden)]
pub mod bench_support {
    use super::{KeepDuplicate, LiteralTable, LiteralTableBuilder};

    /// splitmix64: a deterministic generator, so benchmark inputs are the same every run.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    /// A domain-like key of 8..40 bytes, unique per `i` (the decimal `i` is part of it).
    pub(crate) fn bench_key(i: u64, out: &mut String) {
        use std::fmt::Write;
        const WORDS: [&str; 8] = [
            "mail", "cdn", "login", "update", "secure", "api", "static", "track",
        ];
        const TLDS: [&str; 6] = ["com", "net", "org", "io", "ru", "info"];
        let mut r = Rng(i);
        let r1 = r.next();
        out.clear();
        let _ = write!(
            out,
            "{}{}.{:x}-{}.{}",
            WORDS[(r1 % 8) as usize],
            i,
            r1 >> 40,
            WORDS[((r1 >> 8) % 8) as usize],
            TLDS[((r1 >> 16) % 6) as usize]
        );
    }

    /// A built literal section and a shuffled query list with a given share of hits.
    pub struct LiteralLookupBench {
        section: Vec<u8>,
        queries: Vec<Box<[u8]>>,
    }

    /// `keys` domain-like keys (case-insensitive table) and `keys` queries of which
    /// `hit_percent` % are present keys (randomly chosen) and the rest absent look-alikes.
    pub fn literal_lookup_setup(keys: usize, hit_percent: u32) -> LiteralLookupBench {
        let mut builder = LiteralTableBuilder::new(true);
        let mut key = String::new();
        for i in 0..keys as u64 {
            bench_key(i, &mut key);
            builder.add(&key, i as u32, i as u32);
        }
        let (section, _) = builder.finish(KeepDuplicate::First).expect("bench build");
        let mut rng = Rng(0x5EED);
        let queries = (0..keys)
            .map(|_| {
                let hit = rng.next() % 100 < hit_percent as u64;
                let i = rng.next() % keys as u64;
                bench_key(if hit { i } else { i + keys as u64 }, &mut key);
                key.as_bytes().into()
            })
            .collect();
        LiteralLookupBench { section, queries }
    }

    impl LiteralLookupBench {
        pub fn query_count(&self) -> usize {
            self.queries.len()
        }

        fn table(&self) -> LiteralTable<'_> {
            LiteralTable::new(&self.section, true).expect("bench section")
        }

        /// Looks the queries up one by one; returns the hit count.
        pub fn lookup_each(&self) -> usize {
            let table = self.table();
            self.queries
                .iter()
                .filter(|q| table.lookup(q).expect("bench lookup").is_some())
                .count()
        }

        /// Looks the queries up with `lookup_batch`, 256 at a time; returns the hit count.
        pub fn lookup_batched(&self) -> usize {
            const CHUNK: usize = 256;
            let table = self.table();
            let mut keys: [&[u8]; CHUNK] = [&[]; CHUNK];
            let mut out = [None; CHUNK];
            let mut hits = 0;
            for chunk in self.queries.chunks(CHUNK) {
                for (k, q) in keys.iter_mut().zip(chunk) {
                    *k = q;
                }
                let n = chunk.len();
                table
                    .lookup_batch(&keys[..n], &mut out[..n])
                    .expect("bench lookup");
                hits += out[..n].iter().filter(|o| o.is_some()).count();
            }
            hits
        }
    }
}

#[cfg(test)]
mod tests {
    use super::bench_support::{bench_key, literal_lookup_setup, Rng};
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::hint::black_box;

    fn build(keys: &[(&str, u32)], fold: bool, keep: KeepDuplicate) -> (Vec<u8>, Vec<(u32, u32)>) {
        let mut b = LiteralTableBuilder::new(fold);
        for (id, (key, data)) in keys.iter().enumerate() {
            b.add(key, *data, id as u32);
        }
        b.finish(keep).unwrap()
    }

    fn folded(key: &str, fold: bool) -> Vec<u8> {
        key.bytes().map(|b| fold_byte(b, fold)).collect()
    }

    /// What the table must answer: folded key -> (kept id), plus the (kept, dropped) pairs.
    fn oracle(
        keys: &[(String, u32)],
        fold: bool,
        keep: KeepDuplicate,
    ) -> (HashMap<Vec<u8>, usize>, DuplicatePairs) {
        let mut ids: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (id, (key, _)) in keys.iter().enumerate() {
            ids.entry(folded(key, fold)).or_default().push(id);
        }
        let mut kept = HashMap::new();
        let mut pairs = Vec::new();
        for (key, group) in ids {
            let k = match keep {
                KeepDuplicate::First => group[0],
                KeepDuplicate::Last => *group.last().unwrap(),
            };
            pairs.extend(
                group
                    .iter()
                    .filter(|&&d| d != k)
                    .map(|&d| (k as u32, d as u32)),
            );
            kept.insert(key, k);
        }
        pairs.sort_by_key(|&(k, d)| (d, k));
        (kept, pairs)
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-cA-C]{0,3}",
            4 => "[a-zA-Z0-9.éÉ-]{0,24}",
            1 => "\\PC{0,12}",
            1 => "[a-zA-Z]{60,300}",
        ]
    }

    fn key_set() -> impl Strategy<Value = Vec<(String, u32)>> {
        prop::collection::vec((key_strategy(), any::<u32>()), 0..120).prop_flat_map(|keys| {
            // Add case variants and exact repeats of some keys to make duplicates likely.
            let n = keys.len();
            (
                Just(keys),
                prop::collection::vec((0..n.max(1), any::<bool>()), 0..n / 2 + 1),
            )
                .prop_map(|(mut keys, extra)| {
                    if !keys.is_empty() {
                        for (i, upper) in extra {
                            let (k, d) = keys[i].clone();
                            let k = if upper { k.to_ascii_uppercase() } else { k };
                            keys.push((k, d.wrapping_add(1)));
                        }
                    }
                    keys
                })
        })
    }

    fn keep_strategy() -> impl Strategy<Value = KeepDuplicate> {
        prop_oneof![Just(KeepDuplicate::First), Just(KeepDuplicate::Last)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_hashmap_oracle(
            keys in key_set(),
            probes in prop::collection::vec(key_strategy(), 0..40),
            fold in any::<bool>(),
            keep in keep_strategy(),
        ) {
            let mut b = LiteralTableBuilder::new(fold);
            for (id, (key, data)) in keys.iter().enumerate() {
                b.add(key, *data, id as u32);
            }
            let (section, pairs) = b.finish(keep).unwrap();
            let (expect, expect_pairs) = oracle(&keys, fold, keep);
            prop_assert_eq!(&pairs, &expect_pairs);

            let table = LiteralTable::new(&section, fold).unwrap();
            prop_assert_eq!(table.len(), expect.len());
            prop_assert_eq!(table.is_empty(), expect.is_empty());
            let offsets = table.check(u32::MAX as usize).unwrap();
            prop_assert_eq!(offsets.len(), expect.len());

            // Every inserted key (any variant) finds the kept entry, text as inserted.
            for (key, _) in &keys {
                let id = expect[&folded(key, fold)];
                let hit = table.lookup(key.as_bytes()).unwrap();
                prop_assert_eq!(hit, Some(LiteralHit { key: keys[id].0.as_bytes(), data_offset: keys[id].1 }));
                if fold {
                    let upper = key.to_ascii_uppercase();
                    prop_assert_eq!(table.lookup(upper.as_bytes()).unwrap(), hit);
                }
            }
            for probe in &probes {
                let hit = table.lookup(probe.as_bytes()).unwrap();
                match expect.get(&folded(probe, fold)) {
                    Some(&id) => prop_assert_eq!(hit.map(|h| h.key), Some(keys[id].0.as_bytes())),
                    None => prop_assert_eq!(hit, None),
                }
            }
            // Not UTF-8 queries simply miss.
            prop_assert_eq!(table.lookup(b"\xff\xfe").unwrap(), None);

            // get/iter enumerate exactly the kept entries, agreeing with check's offsets.
            let all: Vec<_> = table.iter().collect::<Result<_>>().unwrap();
            prop_assert_eq!(all.len(), expect.len());
            for (i, hit) in all.iter().enumerate() {
                prop_assert_eq!(table.get(i as u32).unwrap(), *hit);
                prop_assert_eq!(offsets[i], hit.data_offset);
                prop_assert_eq!(table.lookup(hit.key).unwrap(), Some(*hit));
            }
            prop_assert!(table.get(all.len() as u32).is_err());

            // Batched lookups agree with single ones.
            let queries: Vec<&[u8]> = keys.iter().map(|(k, _)| k.as_bytes())
                .chain(probes.iter().map(|p| p.as_bytes())).collect();
            let mut out = vec![None; queries.len()];
            table.lookup_batch(&queries, &mut out).unwrap();
            for (q, o) in queries.iter().zip(&out) {
                prop_assert_eq!(*o, table.lookup(q).unwrap());
            }

            // Deterministic output.
            let mut again = LiteralTableBuilder::new(fold);
            for (id, (key, data)) in keys.iter().enumerate() {
                again.add(key, *data, id as u32);
            }
            prop_assert_eq!(again.finish(keep).unwrap().0, section);
        }

        #[test]
        fn random_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..400),
                                    fold in any::<bool>(), magic in any::<bool>()) {
            if magic && bytes.len() >= 12 {
                bytes[0..4].copy_from_slice(&MAGIC);
                bytes[8..10].copy_from_slice(&VERSION.to_le_bytes());
                bytes[10..12].copy_from_slice(&(fold as u16).to_le_bytes());
            }
            exercise(&bytes, fold);
        }

        #[test]
        fn mutated_headers_never_panic(
            edits in prop::collection::vec((0..HEADER_LEN, any::<u8>()), 1..6),
            fix_crc in any::<bool>(),
        ) {
            let (mut section, _) = small_section(true);
            for (at, byte) in edits {
                section[at] = byte;
            }
            if fix_crc {
                let crc = crc32fast::hash(&section[8..]);
                section[4..8].copy_from_slice(&crc.to_le_bytes());
            }
            exercise(&section, true);
        }
    }

    /// Runs every reader entry point on `bytes`; they may fail but must not panic or hang.
    fn exercise(bytes: &[u8], fold: bool) -> bool {
        let Ok(table) = LiteralTable::new(bytes, fold) else {
            return false;
        };
        for q in [&b""[..], b"a", b"evil.com", b"EVIL.COM", b"\xff"] {
            let _ = table.lookup(q);
        }
        let mut out = [None; 3];
        let _ = table.lookup_batch(&[b"a", b"b", b"evil.com"], &mut out);
        for i in 0..table.len().min(300) as u32 {
            let _ = table.get(i);
        }
        let _ = table.get(u32::MAX);
        let _ = table.iter().take(1000).count();
        table.check(1000).is_ok()
    }

    thread_local! {
        /// Makes this thread's builders and readers use 8-byte slots.
        pub(super) static FORCE_WIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    fn small_keys() -> Vec<(String, u32)> {
        let mut keys: Vec<(String, u32)> = (0..40)
            .map(|i| (format!("host{i}.Example.com"), i * 3))
            .collect();
        keys.push((String::new(), 7));
        keys.push(("ÄÖÜ.de".into(), 8));
        keys.push(("x".repeat(100), 9));
        keys.push(("y".repeat(300), 10)); // a length of 255 or more takes the long form
        keys
    }

    fn small_section(fold: bool) -> (Vec<u8>, Vec<(String, u32)>) {
        let keys = small_keys();
        let refs: Vec<(&str, u32)> = keys.iter().map(|(k, d)| (k.as_str(), *d)).collect();
        (build(&refs, fold, KeepDuplicate::First).0, keys)
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (section, _) = small_section(true);
        assert_eq!(
            LiteralTable::new(&section, true)
                .unwrap()
                .check(200)
                .unwrap()
                .len(),
            44
        );
        for len in 0..section.len() {
            assert!(
                LiteralTable::new(&section[..len], true).is_err(),
                "len {len}"
            );
        }
        let mut longer = section.clone();
        longer.extend_from_slice(&[0; 8]);
        assert!(LiteralTable::new(&longer, true).is_err());
    }

    #[test]
    fn other_versions_are_refused_with_a_way_out() {
        let (mut section, _) = small_section(true);
        section[8..10].copy_from_slice(&1u16.to_le_bytes());
        let err = LiteralTable::new(&section, true).unwrap_err().to_string();
        assert!(
            err.contains("version 1, this matchy reads version 3 (rebuild the file)"),
            "{err}"
        );
    }

    #[test]
    fn wrong_case_mode_is_an_error() {
        let (section, _) = small_section(true);
        assert!(LiteralTable::new(&section, false).is_err());
        let (section, _) = small_section(false);
        assert!(LiteralTable::new(&section, true).is_err());
    }

    #[test]
    fn check_catches_every_bit_flip() {
        check_catches_every_bit_flip_in(small_section(true).0);
    }

    #[test]
    fn wide_slots_work_and_are_checked() {
        FORCE_WIDE.with(|f| f.set(true));
        let (section, keys) = small_section(true);
        let table = LiteralTable::new(&section, true).unwrap();
        assert!(table.layout.wide);
        assert_eq!(table.check(200).unwrap().len(), keys.len());
        for (key, data) in &keys {
            let hit = table
                .lookup(key.to_uppercase().as_bytes())
                .unwrap()
                .unwrap();
            assert_eq!((hit.key, hit.data_offset), (key.as_bytes(), *data));
        }
        assert_eq!(table.lookup(b"host40.example.com").unwrap(), None);
        check_catches_every_bit_flip_in(section.clone());
        check_catches_structural_flips_in(&section);
        let big = bench_section(20_000);
        let table = LiteralTable::new(&big, true).unwrap();
        assert_eq!(table.check(60_000).unwrap().len(), 20_000);
        FORCE_WIDE.with(|f| f.set(false));
        // Wide slots where 4-byte ones reach are not the one layout the keys allow.
        let err = LiteralTable::new(&section, true).unwrap_err().to_string();
        assert!(err.contains("wide-slots flag"), "{err}");
        let narrow = small_section(true).0;
        assert!(narrow.len() < section.len());
    }

    fn check_catches_every_bit_flip_in(section: Vec<u8>) {
        for at in 0..section.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut flipped = section.clone();
                flipped[at] ^= bit;
                assert!(
                    !exercise(&flipped, true),
                    "flip {bit:#x} at {at} not caught"
                );
            }
        }
    }

    /// Byte positions of the key bytes and data offsets of every record: changes there keep the
    /// structure intact, so only the checksum (or a hash mismatch) can notice them.
    fn payload_positions(section: &[u8]) -> Vec<bool> {
        let mut payload = vec![false; section.len()];
        let table = LiteralTable::new(section, true).unwrap();
        let mut at = HEADER_LEN;
        while at < table.layout.pool_end {
            let (key, _, end) = read_record(section, at).unwrap();
            payload[at..at + 4].fill(true);
            payload[end - key.len()..end].fill(true);
            at = end;
        }
        payload
    }

    #[test]
    fn check_catches_structural_flips_even_with_a_valid_checksum() {
        check_catches_structural_flips_in(&small_section(true).0);
    }

    fn check_catches_structural_flips_in(section: &[u8]) {
        let payload = payload_positions(section);
        for at in 8..section.len() {
            if payload[at] {
                continue;
            }
            for bit in 0..8 {
                let mut flipped = section.to_vec();
                flipped[at] ^= 1 << bit;
                let crc = crc32fast::hash(&flipped[8..]);
                flipped[4..8].copy_from_slice(&crc.to_le_bytes());
                assert!(
                    !exercise(&flipped, true),
                    "flip bit {bit} at {at} not caught"
                );
            }
        }
    }

    #[test]
    fn check_catches_key_changes_with_a_valid_checksum() {
        // A changed key byte alters the key's hash: its fingerprint or home slot no longer fit
        // (a 1-in-256-per-probe chance to slip through; fixed input, so this is deterministic).
        let (section, _) = small_section(true);
        let payload = payload_positions(&section);
        let mut caught = 0;
        let mut total = 0;
        for at in (8..section.len()).filter(|&a| payload[a]) {
            let mut flipped = section.clone();
            flipped[at] ^= 0x02;
            let crc = crc32fast::hash(&flipped[8..]);
            flipped[4..8].copy_from_slice(&crc.to_le_bytes());
            total += 1;
            caught += !exercise(&flipped, true) as usize;
        }
        // Data offset changes below data_len are legal; key bytes (the vast majority) are caught.
        assert!(caught * 10 >= total * 8, "{caught} of {total}");
    }

    /// A section laid out by the normal writer but from keys that skipped deduplication and
    /// may be in any order.
    fn raw_section(keys: &[&str], fold: bool) -> Vec<u8> {
        let mut b = LiteralTableBuilder::new(fold);
        for (i, key) in keys.iter().enumerate() {
            b.add(key, i as u32, i as u32);
        }
        let mut pending = b.keys;
        pending.sort_by_key(|k| k.hash.rotate_left(32)); // stable: insertion order among equals
        write_tables(b.staging, pending, fold).unwrap()
    }

    #[test]
    fn check_rejects_duplicates_and_misordered_keys() {
        let fine = raw_section(&["a", "b", "c"], true);
        assert!(LiteralTable::new(&fine, true).unwrap().check(10).is_ok());
        for keys in [&["a", "b", "a"][..], &["x", "X"], &["q", "q", "q"]] {
            let section = raw_section(keys, true);
            let table = LiteralTable::new(&section, true).unwrap();
            let err = table.check(10).unwrap_err().to_string();
            assert!(err.contains("stored twice"), "{keys:?}: {err}");
            // Lookups still answer (the first of the equal keys).
            assert!(table.lookup(keys[0].as_bytes()).unwrap().is_some());
        }
        // Case variants are distinct keys in a case-sensitive table.
        let section = raw_section(&["x", "X"], false);
        assert!(LiteralTable::new(&section, false)
            .unwrap()
            .check(10)
            .is_ok());
        // Keys sharing a home slot must be in hash order.
        let home_of = |k: &str| home_slot(key_hash(k.as_bytes(), false), home_slots_for(2));
        let names: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
        let (a, b) = names
            .iter()
            .flat_map(|a| names.iter().map(move |b| (a, b)))
            .find(|(a, b)| {
                let (ha, hb) = (key_hash(a.as_bytes(), false), key_hash(b.as_bytes(), false));
                home_of(a) == home_of(b) && ha.rotate_left(32) < hb.rotate_left(32)
            })
            .unwrap();
        let mut builder = LiteralTableBuilder::new(false);
        builder.add(b, 0, 0);
        builder.add(a, 1, 1);
        let section = write_tables(builder.staging, builder.keys, false).unwrap();
        let err = LiteralTable::new(&section, false)
            .unwrap()
            .check(10)
            .unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }

    #[test]
    fn check_rejects_out_of_range_data() {
        let (section, _) = small_section(false);
        let table = LiteralTable::new(&section, false).unwrap();
        assert!(table.check(121).is_ok()); // largest data offset is 39 * 3 = 117
        assert!(table.check(117).is_err());
    }

    #[test]
    fn empty_table() {
        let (section, pairs) = build(&[], true, KeepDuplicate::First);
        assert!(pairs.is_empty());
        assert_eq!(section.len(), HEADER_LEN);
        let table = LiteralTable::new(&section, true).unwrap();
        assert!(table.is_empty());
        assert_eq!(table.lookup(b"").unwrap(), None);
        assert_eq!(table.lookup(b"x").unwrap(), None);
        assert!(table.get(0).is_err());
        assert!(table.check(0).unwrap().is_empty());
    }

    #[test]
    fn case_folding_is_ascii_only() {
        let (section, pairs) = build(
            &[
                ("Evil.COM", 1),
                ("évil.com", 2),
                ("ÉVIL.COM", 3),
                ("evil.com", 4),
            ],
            true,
            KeepDuplicate::Last,
        );
        assert_eq!(pairs, vec![(3, 0)]);
        let table = LiteralTable::new(&section, true).unwrap();
        let hit = |q: &str| {
            table
                .lookup(q.as_bytes())
                .unwrap()
                .map(|h| (std::str::from_utf8(h.key).unwrap(), h.data_offset))
        };
        assert_eq!(hit("EVIL.com"), Some(("evil.com", 4)));
        assert_eq!(hit("ÉVIL.com"), Some(("ÉVIL.COM", 3)));
        assert_eq!(hit("éVIL.com"), Some(("évil.com", 2)));
        assert_eq!(hit("evil.co"), None);

        let (section, pairs) = build(
            &[("Evil.COM", 1), ("evil.com", 2)],
            false,
            KeepDuplicate::First,
        );
        assert!(pairs.is_empty());
        let table = LiteralTable::new(&section, false).unwrap();
        assert_eq!(table.lookup(b"EVIL.COM").unwrap(), None);
        assert_eq!(table.lookup(b"Evil.COM").unwrap().unwrap().data_offset, 1);
    }

    #[test]
    fn many_duplicates_compact_the_pool() {
        let mut keys = Vec::new();
        for round in 0..5u32 {
            for i in 0..500u32 {
                let key = if round % 2 == 0 {
                    format!("k{i}")
                } else {
                    format!("K{i}")
                };
                keys.push((key, round * 1000 + i));
            }
        }
        let refs: Vec<(&str, u32)> = keys.iter().map(|(k, d)| (k.as_str(), *d)).collect();
        for keep in [KeepDuplicate::First, KeepDuplicate::Last] {
            let (section, pairs) = build(&refs, true, keep);
            assert_eq!(pairs.len(), 2000);
            let table = LiteralTable::new(&section, true).unwrap();
            assert_eq!(table.len(), 500);
            table.check(10_000).unwrap();
            let hit = table.lookup(b"k7").unwrap().unwrap();
            match keep {
                KeepDuplicate::First => assert_eq!((hit.key, hit.data_offset), (&b"k7"[..], 7)),
                KeepDuplicate::Last => assert_eq!((hit.key, hit.data_offset), (&b"k7"[..], 4007)),
            }
        }
    }

    #[test]
    fn probe_runs_longer_than_the_word_window_find_every_key() {
        // 50K keys at load 2/3 give probe runs well past the eight fingerprints read as one
        // word: the byte-by-byte continuation must find what lies beyond, and stop at misses.
        let n = 50_000u64;
        let section = bench_section(n);
        let table = LiteralTable::new(&section, true).unwrap();
        let mut key = String::new();
        assert!(table.max_probe > WINDOW, "max probe {}", table.max_probe);
        let mut found_past_window = 0;
        for i in 0..n {
            bench_key(i, &mut key);
            let hash = key_hash(key.as_bytes(), true);
            let home = home_slot(hash, table.home_slots);
            let hit = table.lookup(key.to_ascii_uppercase().as_bytes()).unwrap();
            assert_eq!(
                hit.map(|h| (h.key, h.data_offset)),
                Some((key.as_bytes(), i as u32 * 3)),
                "{key}"
            );
            let slot = table.first_candidate(hash).unwrap();
            assert!(slot >= home && slot <= home + table.max_probe);
            found_past_window += usize::from(slot >= home + WINDOW);
        }
        assert!(found_past_window > 0);
        for i in n..2 * n {
            bench_key(i, &mut key);
            assert_eq!(table.lookup(key.as_bytes()).unwrap(), None, "{key}");
        }
    }

    /// A case-insensitive section of `n` distinct `bench_key`s, key `i` with data offset `3i`.
    fn bench_section(n: u64) -> Vec<u8> {
        let mut b = LiteralTableBuilder::new(true);
        let mut key = String::new();
        for i in 0..n {
            bench_key(i, &mut key);
            b.add(&key, i as u32 * 3, i as u32);
        }
        let (section, pairs) = b.finish(KeepDuplicate::First).unwrap();
        assert!(pairs.is_empty());
        section
    }

    #[test]
    fn large_table_agrees_with_batch() {
        let n = 50_000u64;
        let section = bench_section(n);
        let table = LiteralTable::new(&section, true).unwrap();
        assert_eq!(table.check(3 * n as usize).unwrap().len(), n as usize);
        let mut key = String::new();
        let mut rng = Rng(1);
        let queries: Vec<String> = (0..5000)
            .map(|_| {
                bench_key(rng.next() % (2 * n), &mut key);
                key.to_ascii_uppercase()
            })
            .collect();
        let refs: Vec<&[u8]> = queries.iter().map(|q| q.as_bytes()).collect();
        let mut out = vec![None; refs.len()];
        table.lookup_batch(&refs, &mut out).unwrap();
        let mut hits = 0;
        for (q, o) in refs.iter().zip(&out) {
            assert_eq!(*o, table.lookup(q).unwrap());
            hits += o.is_some() as usize;
        }
        assert!(hits > 2000 && hits < 3000, "{hits}");
    }

    fn peak_rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Nanoseconds this thread has spent on a CPU (excludes time other processes had the core).
    fn thread_cpu_ns() -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        stat.split_whitespace().next()?.parse().ok()
    }

    /// Best of 5 runs of `f` over `n` queries: (lookups/s by wall clock, lookups/s by CPU time).
    fn best_rate(n: usize, f: impl Fn() -> usize) -> (f64, f64) {
        let (mut wall, mut cpu) = (0f64, 0f64);
        for _ in 0..5 {
            let (t, c) = (std::time::Instant::now(), thread_cpu_ns());
            black_box(f());
            wall = wall.max(n as f64 / t.elapsed().as_secs_f64());
            if let (Some(c0), Some(c1)) = (c, thread_cpu_ns()) {
                cpu = cpu.max(n as f64 * 1e9 / (c1 - c0).max(1) as f64);
            }
        }
        (wall / 1e6, cpu / 1e6)
    }

    /// `cargo test --release --lib literal -- --ignored --nocapture --test-threads 1`
    #[test]
    #[ignore]
    fn throughput_1m_keys() {
        for hit_percent in [50, 0, 100] {
            let bench = literal_lookup_setup(1_000_000, hit_percent);
            let n = bench.query_count();
            let hits = bench.lookup_each();
            assert_eq!(hits, bench.lookup_batched());
            let (each_wall, each_cpu) = best_rate(n, || bench.lookup_each());
            let (batch_wall, batch_cpu) = best_rate(n, || bench.lookup_batched());
            println!(
                "1M keys, {hit_percent:3}% hits: lookup {each_wall:5.1} M/s ({each_cpu:5.1} M/s of \
                 CPU time), lookup_batch {batch_wall:5.1} M/s ({batch_cpu:5.1} M/s of CPU time)"
            );
        }
    }

    #[test]
    #[ignore]
    fn build_10m_keys() {
        let cpu_s = |from: Option<u64>| match (from, thread_cpu_ns()) {
            (Some(a), Some(b)) => (b - a) as f64 / 1e9,
            _ => f64::NAN,
        };
        // Reset the peak-RSS mark so it measures the build, not earlier tests.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = peak_rss_kib();
        let (t, c) = (std::time::Instant::now(), thread_cpu_ns());
        let mut b = LiteralTableBuilder::new(true);
        let mut key = String::new();
        let mut key_bytes = 0usize;
        for i in 0..10_000_000u64 {
            bench_key(i, &mut key);
            key_bytes += key.len();
            b.add(&key, i as u32, i as u32);
        }
        let added = t.elapsed();
        let (section, pairs) = b.finish(KeepDuplicate::First).unwrap();
        let built = t.elapsed();
        let built_cpu = cpu_s(c);
        assert!(pairs.is_empty());
        println!(
            "10M keys ({:.0} MB of key text): add (incl. generating keys) {:.2?}, total build \
             {:.2?} ({built_cpu:.2} s CPU), section {:.0} MB, peak RSS {:.0} MB (was {:.0} MB)",
            key_bytes as f64 / 1e6,
            added,
            built,
            section.len() as f64 / 1e6,
            peak_rss_kib() as f64 / 1024.0,
            before as f64 / 1024.0
        );
        let (t, c) = (std::time::Instant::now(), thread_cpu_ns());
        let table = LiteralTable::new(&section, true).unwrap();
        table.check(10_000_000).unwrap();
        println!(
            "check of 10M keys: {:.2?} ({:.2} s CPU)",
            t.elapsed(),
            cpu_s(c)
        );
    }
}
