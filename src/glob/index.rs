//! The glob index section: finds, for a query, the few globs worth running the matcher on.
//!
//! Each glob is filed under ONE anchor, a literal piece every matching text must contain at a
//! known place, picked at build time to be rare among all globs:
//!
//! * a **prefix** anchor: the first `ℓ` bytes of the glob's leading literal (`evil-*`), or
//! * a **suffix** anchor: the last `ℓ` bytes of its trailing literal (`*.evil.com`), where `ℓ` is
//!   the largest length class (1, 2, 3, 4, 6, 8, 12, 16, 24, 32) not longer than the literal, or
//! * an **infix** anchor: a gram of at most 4 bytes from one of its literal runs (`*mal*ware*`).
//!
//! Globs without any literal byte (`*`, `?*`, `[a-z]*`) are checked for every query. A query
//! hashes its prefixes (one forward pass), its suffixes (one backward pass) and its grams, but
//! only at the (kind, length) shapes some glob uses; each hash is tested against a Bloom filter
//! (L2-sized) before the hash table is touched, and the ids found are verified with
//! [`glob_match`] in ascending id order.
//!
//! # Anchor hashes
//!
//! All are [`Fnv`] hashes of bytes ASCII-lowercased when the database is case-insensitive:
//! prefix `Fnv::new(PREFIX_SEED)` fed `text[0..ℓ]` in order, `finish(ℓ)`; suffix
//! `Fnv::new(SUFFIX_SEED)` fed `text[n-ℓ..n]` from the LAST byte to the first, `finish(ℓ)`;
//! infix `Fnv::new(INFIX_SEED)` fed the gram in order, `finish(len)`. Seeds: prefix
//! `0x7072_6566_6978_2e31`, suffix `0x7375_6666_6978_2e31`, infix `0x696e_6669_7878_2e31`.
//!
//! # Section layout (little-endian; offsets relative to the section start, which is 8-aligned)
//!
//! ```text
//! off size  field
//!   0   8   magic "MXYGLOB\0"
//!   8   4   version = 1
//!  12   4   flags: bit 0 = case-insensitive (ASCII folded); other bits 0
//!  16   4   glob_count N
//!  20   4   always_count A        globs verified for every query (no literal byte)
//!  24   4   slot_count S          hash table slots, a power of two, >= 1
//!  28   4   max_probe             longest linear-probe run of any key (0 if no keys)
//!  32   4   list_len L            u32 entries in the shared glob-id list
//!  36   4   bloom_words W         u64 words, a power of two in 1..=2^24
//!  40   4   bloom_k               bits set per key, 1..=6
//!  44   4   pool_len              bytes of pattern text
//!  48   8   prefix_lengths        bit ℓ-1 set: some glob has a prefix anchor of ℓ bytes
//!  56   8   suffix_lengths        same for suffix anchors
//!  64   8   infix_lengths         same for infix grams
//!  72   4   bloom_off             = 104
//!  76   4   slots_off             = bloom_off + 8W
//!  80   4   list_off              = slots_off + 16S
//!  84   4   always_off            = list_off + 4L
//!  88   4   records_off           = always_off + 4A
//!  92   4   pool_off              = records_off + 12N
//!  96   4   section_len           = pool_off + pool_len rounded up to 8
//! 100   4   reserved, 0
//! 104       bloom: W × u64. A key with hash h sets, in word (h >> 40) & (W-1), the bits
//!           (h >> 6i) & 63 for i in 0..bloom_k.
//!       ... slots: S × 16 bytes {u64 hash, u32 a, u32 count}. count 0: empty (all 16 bytes 0).
//!           count 1: a = the glob id. count >= 2: a = start in the list, ids list[a..a+count]
//!           ascending. A key lives at slot (h & (S-1)) + d (mod S), d < max_probe, with no
//!           empty slot in between (linear probing, keys inserted in ascending hash order).
//!       ... list: L × u32 glob ids, grouped per slot in ascending hash order.
//!       ... always: A × u32 glob ids, ascending.
//!       ... records: N × 12 bytes {u32 pattern_off (from section start), u32 pattern_len,
//!           u32 data_offset}; glob id = record index.
//!       ... pool: the patterns (UTF-8), back to back in id order; then 0-7 zero bytes.
//! ```
//!
//! Any glob appears exactly once: in the always list or under one slot whose hash is one a
//! matching text is guaranteed to produce at a shape the masks list. [`GlobIndex::check`]
//! verifies exactly that (plus a byte-exact Bloom filter), so files from builders with other
//! anchor heuristics stay valid.

use crate::bytes;
use crate::error::{Error, Result};
use crate::hash::{fold_byte, Fnv};

use super::pattern::{glob_match, literal_runs, validate, LiteralRun};
use std::collections::{BTreeMap, HashMap};

/// Which copy of a duplicated pattern survives.
// TODO(integrator): use tree_builder's
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeepDuplicate {
    #[default]
    First,
    Last,
}

const MAGIC: [u8; 8] = *b"MXYGLOB\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 104;
const SLOT_LEN: usize = 16;
const RECORD_LEN: usize = 12;
const FLAG_FOLD: u32 = 1;

const PREFIX_SEED: u64 = 0x7072_6566_6978_2e31;
const SUFFIX_SEED: u64 = 0x7375_6666_6978_2e31;
const INFIX_SEED: u64 = 0x696e_6669_7878_2e31;

/// Prefix and suffix anchors are cut to one of these lengths, so a query probes few shapes.
const LENGTH_CLASSES: [usize; 10] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32];
const MAX_GRAM: usize = 4;
const BLOOM_K: u32 = 6;
const BLOOM_MAX_K: u32 = 6;
const BLOOM_BITS_PER_KEY: usize = 20;
/// 256 KiB: stays in L2 next to the query's working set.
const BLOOM_MAX_WORDS: usize = 1 << 15;
const BLOOM_READER_MAX_WORDS: u32 = 1 << 24;
/// An infix anchor must be this many times rarer than the best prefix/suffix anchor to win:
/// a query probes every gram position but only one prefix or suffix per length.
const INFIX_PENALTY: u64 = 2;
/// Candidates gathered on the stack before spilling to the heap.
const INLINE_CANDIDATES: usize = 32;

// Header field offsets.
const H_VERSION: usize = 8;
const H_FLAGS: usize = 12;
const H_GLOBS: usize = 16;
const H_ALWAYS: usize = 20;
const H_SLOTS: usize = 24;
const H_MAX_PROBE: usize = 28;
const H_LIST: usize = 32;
const H_BLOOM_WORDS: usize = 36;
const H_BLOOM_K: usize = 40;
const H_POOL_LEN: usize = 44;
const H_PREFIX_MASK: usize = 48;
const H_SUFFIX_MASK: usize = 56;
const H_INFIX_MASK: usize = 64;
const H_BLOOM_OFF: usize = 72;
const H_SLOTS_OFF: usize = 76;
const H_LIST_OFF: usize = 80;
const H_ALWAYS_OFF: usize = 84;
const H_RECORDS_OFF: usize = 88;
const H_POOL_OFF: usize = 92;
const H_SECTION_LEN: usize = 96;
const H_RESERVED: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Prefix = 0,
    Suffix = 1,
    Infix = 2,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    kind: Kind,
    len: usize,
    hash: u64,
}

#[inline]
fn prefix_hashes<F: FnMut(usize, u64) -> bool>(text: &[u8], fold: bool, mask: u64, mut each: F) {
    let limit = text.len().min(64 - mask.leading_zeros() as usize);
    let mut h = Fnv::new(PREFIX_SEED);
    for (i, &b) in text[..limit].iter().enumerate() {
        h.push(fold_byte(b, fold));
        if mask >> i & 1 != 0 && each(i + 1, h.finish(i + 1)) {
            return;
        }
    }
}

#[inline]
fn suffix_hashes<F: FnMut(usize, u64) -> bool>(text: &[u8], fold: bool, mask: u64, mut each: F) {
    let limit = text.len().min(64 - mask.leading_zeros() as usize);
    let mut h = Fnv::new(SUFFIX_SEED);
    for (i, &b) in text[text.len() - limit..].iter().rev().enumerate() {
        h.push(fold_byte(b, fold));
        if mask >> i & 1 != 0 && each(i + 1, h.finish(i + 1)) {
            return;
        }
    }
}

#[inline]
fn gram_hash(gram: &[u8], fold: bool) -> u64 {
    let mut h = Fnv::new(INFIX_SEED);
    for &b in gram {
        h.push(fold_byte(b, fold));
    }
    h.finish(gram.len())
}

#[inline]
fn bloom_word_index(hash: u64, words: usize) -> usize {
    ((hash >> 40) as usize) & (words - 1)
}

#[inline]
fn bloom_bits(hash: u64, k: u32) -> u64 {
    let mut bits = 0u64;
    for i in 0..k {
        bits |= 1u64 << ((hash >> (6 * i)) & 63);
    }
    bits
}

fn build_bloom(hashes: impl Iterator<Item = u64>, words: usize, k: u32) -> Vec<u64> {
    let mut bloom = vec![0u64; words];
    for h in hashes {
        bloom[bloom_word_index(h, words)] |= bloom_bits(h, k);
    }
    bloom
}

/// The candidate anchors of a glob: its prefix and suffix keys (at their length class) and the
/// grams of its literal runs (4-byte windows; a shorter run is one gram), as (hash, length).
fn candidate_anchors(runs: &[LiteralRun]) -> (Option<Anchor>, Option<Anchor>, Vec<(u64, usize)>) {
    let class_of = |n: usize| LENGTH_CLASSES.iter().rev().copied().find(|&c| c <= n);
    let edge = |run: Option<&LiteralRun>, kind: Kind| {
        let run = run?;
        let len = class_of(run.bytes.len())?;
        let mut hash = 0;
        let take = |_, h| {
            hash = h;
            true
        };
        if kind == Kind::Prefix {
            prefix_hashes(&run.bytes, false, 1 << (len - 1), take);
        } else {
            suffix_hashes(&run.bytes, false, 1 << (len - 1), take);
        }
        Some(Anchor { kind, len, hash })
    };
    let prefix = edge(runs.first().filter(|r| r.at_start), Kind::Prefix);
    let suffix = edge(runs.last().filter(|r| r.at_end), Kind::Suffix);
    let mut grams = Vec::new();
    for run in runs {
        let k = run.bytes.len().min(MAX_GRAM);
        grams.extend(run.bytes.windows(k).map(|w| (gram_hash(w, false), k)));
    }
    grams.sort_unstable();
    grams.dedup();
    (prefix, suffix, grams)
}

/// Picks every glob's anchor (`None`: no literal, verify always). Patterns are already folded
/// when the index folds, so hashing here never folds again. Deterministic: depends only on the
/// patterns, in order.
fn choose_anchors(all_runs: &[Vec<LiteralRun>]) -> Vec<Option<Anchor>> {
    let candidates: Vec<_> = all_runs.iter().map(|r| candidate_anchors(r)).collect();
    let mut edge_counts: HashMap<u64, u64> = HashMap::new();
    let mut gram_counts: HashMap<u64, u64> = HashMap::new();
    for (prefix, suffix, grams) in &candidates {
        for a in prefix.iter().chain(suffix.iter()) {
            *edge_counts.entry(a.hash).or_default() += 1;
        }
        for &(g, _) in grams {
            *gram_counts.entry(g).or_default() += 1;
        }
    }
    candidates
        .iter()
        .map(|(prefix, suffix, grams)| {
            // Cost = how many globs could share the key; ties go to prefix, then suffix, then
            // longer keys, then the smaller hash, so the choice is a pure function of the input.
            type Rank = (u64, Kind, std::cmp::Reverse<usize>, u64);
            let mut best: Option<(Rank, Anchor)> = None;
            let mut offer = |cost: u64, a: Anchor| {
                let rank = (cost, a.kind, std::cmp::Reverse(a.len), a.hash);
                if best.as_ref().map_or(true, |(r, _)| rank < *r) {
                    best = Some((rank, a));
                }
            };
            for a in prefix.iter().chain(suffix.iter()) {
                offer(edge_counts[&a.hash], *a);
            }
            let mut best_gram: Option<(u64, u64, usize)> = None;
            for &(g, len) in grams {
                let c = gram_counts[&g];
                if best_gram.map_or(true, |(bc, bh, _)| (c, g) < (bc, bh)) {
                    best_gram = Some((c, g, len));
                }
            }
            if let Some((count, hash, len)) = best_gram {
                offer(
                    count * INFIX_PENALTY,
                    Anchor {
                        kind: Kind::Infix,
                        len,
                        hash,
                    },
                );
            }
            best.map(|(_, a)| a)
        })
        .collect()
}

struct Pending {
    pattern: String,
    data_offset: u32,
    entry_id: u32,
}

/// Collects globs and writes the index section.
pub struct GlobIndexBuilder {
    fold: bool,
    entries: Vec<Pending>,
}

impl GlobIndexBuilder {
    pub fn new(fold: bool) -> Self {
        GlobIndexBuilder {
            fold,
            entries: Vec::new(),
        }
    }

    /// Adds a glob. `pattern` must be valid ([`validate`]); `entry_id` is the entry's global
    /// input order; `data_offset` points into the data section.
    pub fn add(&mut self, pattern: &str, data_offset: u32, entry_id: u32) -> Result<()> {
        validate(pattern).map_err(|e| Error::Build(format!("glob {pattern:?}: {e}")))?;
        self.entries.push(Pending {
            pattern: pattern.to_owned(),
            data_offset,
            entry_id,
        });
        Ok(())
    }

    /// Number of globs added so far (duplicates included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops duplicates (same pattern text, ASCII-folded when the index folds) and writes the
    /// section. Glob ids follow the order of `add` calls, a surviving copy keeping its own place.
    /// Returns the section bytes (deterministic) and every (kept entry_id, dropped entry_id).
    #[allow(clippy::type_complexity)]
    pub fn finish(self, keep: KeepDuplicate) -> Result<(Vec<u8>, Vec<(u32, u32)>)> {
        let fold = self.fold;
        let key_of = |p: &str| {
            if fold {
                p.to_ascii_lowercase()
            } else {
                p.to_owned()
            }
        };
        // Which add() index survives for each distinct key.
        let mut survivor: HashMap<String, usize> = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            let s = survivor.entry(key_of(&e.pattern)).or_insert(i);
            if keep == KeepDuplicate::Last {
                *s = i;
            }
        }
        let mut kept = Vec::with_capacity(survivor.len());
        let mut dropped = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let s = survivor[&key_of(&e.pattern)];
            if s == i {
                kept.push(e);
            } else {
                dropped.push((self.entries[s].entry_id, e.entry_id));
            }
        }
        let globs: Vec<(&[u8], u32)> = kept
            .iter()
            .map(|e| (e.pattern.as_bytes(), e.data_offset))
            .collect();
        Ok((write_section(&globs, fold)?, dropped))
    }
}

/// Writes the section for `globs` (pattern, data_offset) in id order.
fn write_section(globs: &[(&[u8], u32)], fold: bool) -> Result<Vec<u8>> {
    let too_big = || Error::Build("glob index section exceeds 4 GiB".into());
    let glob_count = u32::try_from(globs.len()).map_err(|_| too_big())?;
    let all_runs: Vec<Vec<LiteralRun>> = globs
        .iter()
        .map(|(p, _)| {
            literal_runs(p, fold).ok_or_else(|| {
                Error::Build(format!("invalid glob {:?}", String::from_utf8_lossy(p)))
            })
        })
        .collect::<Result<_>>()?;
    let anchors = choose_anchors(&all_runs);

    let mut masks = [0u64; 3];
    let mut groups: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let mut always = Vec::new();
    for (id, anchor) in anchors.iter().enumerate() {
        match anchor {
            Some(a) => {
                masks[a.kind as usize] |= 1 << (a.len - 1);
                groups.entry(a.hash).or_default().push(id as u32);
            }
            None => always.push(id as u32),
        }
    }

    // Hash table: load <= 2/3, keys placed in ascending hash order.
    let keys = groups.len();
    let slot_count = (keys * 3 / 2 + 1).next_power_of_two();
    let mut slots = vec![(0u64, 0u32, 0u32); slot_count];
    let mut list = Vec::new();
    let mut max_probe = 0usize;
    for (&hash, ids) in &groups {
        let payload = if ids.len() == 1 {
            ids[0]
        } else {
            let start = u32::try_from(list.len()).map_err(|_| too_big())?;
            list.extend_from_slice(ids);
            start
        };
        let mut i = hash as usize & (slot_count - 1);
        let mut probe = 1;
        while slots[i].2 != 0 {
            i = (i + 1) & (slot_count - 1);
            probe += 1;
        }
        slots[i] = (hash, payload, ids.len() as u32);
        max_probe = max_probe.max(probe);
    }
    let bloom_words = (keys * BLOOM_BITS_PER_KEY)
        .div_ceil(64)
        .next_power_of_two()
        .clamp(1, BLOOM_MAX_WORDS);
    let bloom = build_bloom(groups.keys().copied(), bloom_words, BLOOM_K);

    let pool_len: usize = globs.iter().map(|(p, _)| p.len()).sum();
    let bloom_off = HEADER_LEN;
    let slots_off = bloom_off + bloom_words * 8;
    let list_off = slots_off + slot_count * SLOT_LEN;
    let always_off = list_off + list.len() * 4;
    let records_off = always_off + always.len() * 4;
    let pool_off = records_off + globs.len() * RECORD_LEN;
    let section_len = bytes::align8(pool_off + pool_len);
    let u32_of = |v: usize| u32::try_from(v).map_err(|_| too_big());
    u32_of(section_len)?;

    let mut out = Vec::with_capacity(section_len);
    out.extend_from_slice(&MAGIC);
    for v in [
        VERSION as usize,
        if fold { FLAG_FOLD as usize } else { 0 },
        glob_count as usize,
        always.len(),
        slot_count,
        max_probe,
        list.len(),
        bloom_words,
        BLOOM_K as usize,
        pool_len,
    ] {
        out.extend_from_slice(&u32_of(v)?.to_le_bytes());
    }
    for m in masks {
        out.extend_from_slice(&m.to_le_bytes());
    }
    for v in [
        bloom_off,
        slots_off,
        list_off,
        always_off,
        records_off,
        pool_off,
        section_len,
        0,
    ] {
        out.extend_from_slice(&u32_of(v)?.to_le_bytes());
    }
    debug_assert_eq!(out.len(), HEADER_LEN);
    for w in bloom {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for (hash, a, count) in slots {
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
    }
    for id in list.iter().chain(&always) {
        out.extend_from_slice(&id.to_le_bytes());
    }
    let mut pattern_off = pool_off;
    for (p, data_offset) in globs {
        out.extend_from_slice(&u32_of(pattern_off)?.to_le_bytes());
        out.extend_from_slice(&u32_of(p.len())?.to_le_bytes());
        out.extend_from_slice(&data_offset.to_le_bytes());
        pattern_off += p.len();
    }
    for (p, _) in globs {
        out.extend_from_slice(p);
    }
    out.resize(section_len, 0);
    Ok(out)
}

/// One glob that matched: its id, its pattern and the offset of its data in the data section.
#[derive(Debug, Clone, Copy)]
pub struct GlobHit<'a> {
    pub id: u32,
    pub pattern: &'a str,
    pub data_offset: u32,
}

/// Read side of the section: borrows the mapped bytes, copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct GlobIndex<'a> {
    section: &'a [u8],
    fold: bool,
    glob_count: u32,
    bloom: &'a [u8],
    bloom_words: usize,
    bloom_k: u32,
    slots: &'a [u8],
    slot_mask: usize,
    max_probe: usize,
    list: &'a [u8],
    always: &'a [u8],
    records: &'a [u8],
    records_off: usize,
    masks: [u64; 3],
}

/// Ids gathered from the table for one query: on the stack unless there are many.
struct Candidates {
    inline: [u32; INLINE_CANDIDATES],
    len: usize,
    spill: Vec<u32>,
    /// Slots already taken, so a gram repeated in the query adds its ids once.
    seen_slots: [usize; 8],
    seen_len: usize,
}

impl Candidates {
    #[inline]
    fn new() -> Self {
        Candidates {
            inline: [0; INLINE_CANDIDATES],
            len: 0,
            spill: Vec::new(),
            seen_slots: [0; 8],
            seen_len: 0,
        }
    }

    #[inline]
    fn push(&mut self, id: u32) {
        if self.len < INLINE_CANDIDATES {
            self.inline[self.len] = id;
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(id);
        }
        self.len += 1;
    }

    /// True if `slot` was taken before (then the caller skips it).
    #[inline]
    fn already_took(&mut self, slot: usize) -> bool {
        if self.seen_slots[..self.seen_len].contains(&slot) {
            return true;
        }
        if self.seen_len < self.seen_slots.len() {
            self.seen_slots[self.seen_len] = slot;
            self.seen_len += 1;
        }
        false
    }

    /// The ids, ascending, each once.
    fn sorted(&mut self) -> &[u32] {
        let ids: &mut [u32] = if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        };
        if ids.len() > 1 {
            ids.sort_unstable();
        }
        let mut kept = ids.len().min(1);
        for i in 1..ids.len() {
            if ids[i] != ids[kept - 1] {
                ids[kept] = ids[i];
                kept += 1;
            }
        }
        &ids[..kept]
    }
}

impl<'a> GlobIndex<'a> {
    /// Opens the section: checks the header and that every table lies inside `section`. O(1).
    pub fn new(section: &'a [u8], fold: bool) -> Result<Self> {
        let header = bytes::slice(section, 0, HEADER_LEN, "glob index header")?;
        if header[..8] != MAGIC {
            return Err(Error::corrupt(0, "glob index: bad magic"));
        }
        let u32_at = |off: usize, what: &str| bytes::u32_le(header, off, what);
        let version = u32_at(H_VERSION, "glob index version")?;
        if version != VERSION {
            return Err(Error::corrupt(
                H_VERSION,
                format!("glob index: unsupported version {version}"),
            ));
        }
        let flags = u32_at(H_FLAGS, "glob index flags")?;
        if flags & !FLAG_FOLD != 0 {
            return Err(Error::corrupt(
                H_FLAGS,
                format!("glob index: unknown flags {flags:#x}"),
            ));
        }
        if (flags & FLAG_FOLD != 0) != fold {
            return Err(Error::corrupt(
                H_FLAGS,
                "glob index case sensitivity differs from the database's",
            ));
        }
        let glob_count = u32_at(H_GLOBS, "glob count")?;
        let always_count = u32_at(H_ALWAYS, "always count")? as usize;
        let slot_count = u32_at(H_SLOTS, "slot count")? as usize;
        let max_probe = u32_at(H_MAX_PROBE, "max probe")? as usize;
        let list_len = u32_at(H_LIST, "list length")? as usize;
        let bloom_words = u32_at(H_BLOOM_WORDS, "bloom words")?;
        let bloom_k = u32_at(H_BLOOM_K, "bloom k")?;
        let section_len = u32_at(H_SECTION_LEN, "section length")? as usize;
        if section_len != section.len() {
            return Err(Error::corrupt(
                H_SECTION_LEN,
                format!(
                    "glob index: header says {section_len} bytes, section has {}",
                    section.len()
                ),
            ));
        }
        if !slot_count.is_power_of_two() || max_probe > slot_count {
            return Err(Error::corrupt(H_SLOTS, "glob index: bad slot count"));
        }
        if !bloom_words.is_power_of_two() || bloom_words > BLOOM_READER_MAX_WORDS {
            return Err(Error::corrupt(H_BLOOM_WORDS, "glob index: bad bloom size"));
        }
        if !(1..=BLOOM_MAX_K).contains(&bloom_k) {
            return Err(Error::corrupt(H_BLOOM_K, "glob index: bad bloom k"));
        }
        let table = |off_field: usize, count: usize, unit: usize, what: &str| {
            let off = u32_at(off_field, what)? as usize;
            let len = count
                .checked_mul(unit)
                .ok_or_else(|| Error::corrupt(off_field, format!("{what}: size overflows")))?;
            bytes::slice(section, off, len, what)
        };
        let bloom = table(H_BLOOM_OFF, bloom_words as usize, 8, "glob bloom filter")?;
        let slots = table(H_SLOTS_OFF, slot_count, SLOT_LEN, "glob hash table")?;
        let list = table(H_LIST_OFF, list_len, 4, "glob id list")?;
        let always = table(H_ALWAYS_OFF, always_count, 4, "glob always list")?;
        let records = table(
            H_RECORDS_OFF,
            glob_count as usize,
            RECORD_LEN,
            "glob records",
        )?;
        let mask_at = |off| bytes::u64_le(header, off, "glob shape mask");
        Ok(GlobIndex {
            section,
            fold,
            glob_count,
            bloom,
            bloom_words: bloom_words as usize,
            bloom_k,
            slots,
            slot_mask: slot_count - 1,
            max_probe,
            list,
            always,
            records,
            records_off: u32_at(H_RECORDS_OFF, "records offset")? as usize,
            masks: [
                mask_at(H_PREFIX_MASK)?,
                mask_at(H_SUFFIX_MASK)?,
                mask_at(H_INFIX_MASK)?,
            ],
        })
    }

    /// Number of globs (duplicates already dropped).
    pub fn len(&self) -> usize {
        self.glob_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.glob_count == 0
    }

    /// The glob with this id.
    pub fn get(&self, id: u32) -> Result<GlobHit<'a>> {
        let (pattern, data_offset) = self.record(id)?;
        let pattern = std::str::from_utf8(pattern)
            .map_err(|_| Error::corrupt(self.record_pos(id), "glob pattern is not UTF-8"))?;
        Ok(GlobHit {
            id,
            pattern,
            data_offset,
        })
    }

    /// Section offset of glob `id`'s record (where errors about it point).
    fn record_pos(&self, id: u32) -> usize {
        self.records_off + id as usize * RECORD_LEN
    }

    /// (pattern bytes, data offset) of glob `id`.
    #[inline]
    fn record(&self, id: u32) -> Result<(&'a [u8], u32)> {
        if id >= self.glob_count {
            return Err(Error::corrupt(
                0,
                format!("glob index refers to glob {id} of {}", self.glob_count),
            ));
        }
        let rec = bytes::slice(
            self.records,
            id as usize * RECORD_LEN,
            RECORD_LEN,
            "glob record",
        )?;
        let word = |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
        let pattern = bytes::slice(
            self.section,
            word(0) as usize,
            word(4) as usize,
            "glob pattern",
        )?;
        Ok((pattern, word(8)))
    }

    #[inline]
    fn bloom_may_contain(&self, hash: u64) -> bool {
        let at = bloom_word_index(hash, self.bloom_words) * 8;
        let Some(w) = self.bloom.get(at..at + 8) else {
            return false;
        };
        let word = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        let bits = bloom_bits(hash, self.bloom_k);
        word & bits == bits
    }

    /// (slot index, a, count) of the key `hash`, if present.
    #[inline]
    fn find_slot(&self, hash: u64) -> Option<(usize, u32, u32)> {
        let mut i = hash as usize & self.slot_mask;
        for _ in 0..self.max_probe {
            let s = self.slots.get(i * SLOT_LEN..i * SLOT_LEN + SLOT_LEN)?;
            let count = u32::from_le_bytes([s[12], s[13], s[14], s[15]]);
            if count == 0 {
                return None;
            }
            let h = u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
            if h == hash {
                return Some((i, u32::from_le_bytes([s[8], s[9], s[10], s[11]]), count));
            }
            i = (i + 1) & self.slot_mask;
        }
        None
    }

    #[inline]
    fn probe(&self, hash: u64, out: &mut Candidates) -> Result<()> {
        if self.bloom_may_contain(hash) {
            self.take_slot(hash, out)?;
        }
        Ok(())
    }

    #[inline(never)]
    fn take_slot(&self, hash: u64, out: &mut Candidates) -> Result<()> {
        let Some((slot, a, count)) = self.find_slot(hash) else {
            return Ok(());
        };
        if out.already_took(slot) {
            return Ok(());
        }
        if count == 1 {
            out.push(a);
            return Ok(());
        }
        let ids = bytes::slice(
            self.list,
            a as usize * 4,
            count as usize * 4,
            "glob id list",
        )?;
        for id in ids.chunks_exact(4) {
            out.push(u32::from_le_bytes([id[0], id[1], id[2], id[3]]));
        }
        Ok(())
    }

    fn collect(&self, query: &[u8], out: &mut Candidates) -> Result<()> {
        let fold = self.fold;
        let mut failure = None;
        let [prefix_mask, suffix_mask, infix_mask] = self.masks;
        let mut probe = |_, h| match self.probe(h, out) {
            Ok(()) => false,
            Err(e) => {
                failure = Some(e);
                true
            }
        };
        if prefix_mask != 0 {
            prefix_hashes(query, fold, prefix_mask, &mut probe);
        }
        if suffix_mask != 0 {
            suffix_hashes(query, fold, suffix_mask, &mut probe);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let mut lengths = infix_mask;
        while lengths != 0 {
            let k = lengths.trailing_zeros() as usize + 1;
            lengths &= lengths - 1;
            if k > query.len() {
                break;
            }
            for gram in query.windows(k) {
                self.probe(gram_hash(gram, fold), out)?;
            }
        }
        Ok(())
    }

    #[inline]
    fn verify(&self, id: u32, query: &[u8], f: &mut impl FnMut(GlobHit<'a>)) -> Result<()> {
        let (pattern, data_offset) = self.record(id)?;
        if glob_match(pattern, query, self.fold) {
            let pattern = std::str::from_utf8(pattern)
                .map_err(|_| Error::corrupt(self.record_pos(id), "glob pattern is not UTF-8"))?;
            f(GlobHit {
                id,
                pattern,
                data_offset,
            });
        }
        Ok(())
    }

    /// Calls `f` for every glob matching `query`, in ascending id order, each once. Allocates
    /// nothing unless more than a few dozen globs are candidates.
    pub fn for_each_match(&self, query: &[u8], mut f: impl FnMut(GlobHit<'a>)) -> Result<()> {
        let mut candidates = Candidates::new();
        self.collect(query, &mut candidates)?;
        let ids = candidates.sorted();
        let always_count = self.always.len() / 4;
        let always_at = |i: usize| {
            let b = &self.always[i * 4..i * 4 + 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        let (mut ai, mut ci) = (0, 0);
        loop {
            let id = match (ai < always_count, ids.get(ci)) {
                (false, None) => break,
                (false, Some(&c)) => {
                    ci += 1;
                    c
                }
                (true, None) => {
                    ai += 1;
                    always_at(ai - 1)
                }
                (true, Some(&c)) => {
                    let a = always_at(ai);
                    if a <= c {
                        ai += 1;
                    }
                    if c <= a {
                        ci += 1;
                    }
                    a.min(c)
                }
            };
            self.verify(id, query, &mut f)?;
        }
        Ok(())
    }

    /// Strict validation: records in bounds and tiling the pool, patterns valid UTF-8 globs,
    /// data offsets below `data_len`, every glob reachable (in the always list or under a key a
    /// matching text produces at a listed shape), each exactly once, table invariants, a
    /// byte-exact Bloom filter and canonical table placement. Returns every glob's data offset,
    /// in id order.
    pub fn check(&self, data_len: usize) -> Result<Vec<u32>> {
        let s = self.section;
        let hdr = |off: usize| bytes::u32_le(s, off, "glob index header");
        let n = self.glob_count as usize;
        let bloom_words = self.bloom_words;
        let slot_count = self.slot_mask + 1;
        let list_len = self.list.len() / 4;
        let always_count = self.always.len() / 4;
        let pool_len = hdr(H_POOL_LEN)? as usize;

        // Canonical placement: every byte of the section is accounted for.
        let bloom_off = HEADER_LEN;
        let slots_off = bloom_off + bloom_words * 8;
        let list_off = slots_off + slot_count * SLOT_LEN;
        let always_off = list_off + list_len * 4;
        let records_off = always_off + always_count * 4;
        let pool_off = records_off + n * RECORD_LEN;
        let section_len = bytes::align8(pool_off + pool_len);
        for (field, want) in [
            (H_BLOOM_OFF, bloom_off),
            (H_SLOTS_OFF, slots_off),
            (H_LIST_OFF, list_off),
            (H_ALWAYS_OFF, always_off),
            (H_RECORDS_OFF, records_off),
            (H_POOL_OFF, pool_off),
            (H_SECTION_LEN, section_len),
            (H_RESERVED, 0),
        ] {
            if hdr(field)? as usize != want {
                return Err(Error::corrupt(
                    field,
                    format!(
                        "glob index header field is {}, expected {want}",
                        hdr(field)?
                    ),
                ));
            }
        }
        let tail = bytes::slice(
            s,
            pool_off + pool_len,
            section_len - pool_off - pool_len,
            "glob padding",
        )?;
        if tail.iter().any(|&b| b != 0) {
            return Err(Error::corrupt(
                pool_off + pool_len,
                "glob index padding is not zero",
            ));
        }

        // Records tile the pool in id order; patterns are valid globs.
        let mut data_offsets = Vec::with_capacity(n);
        let mut runs = Vec::with_capacity(n);
        let mut next_pattern = pool_off;
        for id in 0..self.glob_count {
            let at = self.record_pos(id);
            let rec = bytes::slice(s, at, RECORD_LEN, "glob record")?;
            let word = |i: usize| u32::from_le_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
            let (off, len, data_offset) = (word(0) as usize, word(4) as usize, word(8));
            if off != next_pattern {
                return Err(Error::corrupt(
                    at,
                    format!("glob {id}: pattern at {off}, expected {next_pattern}"),
                ));
            }
            let pattern = bytes::slice(s, off, len, "glob pattern")?;
            if off + len > pool_off + pool_len {
                return Err(Error::corrupt(
                    at,
                    format!("glob {id}: pattern runs past the pool"),
                ));
            }
            next_pattern = off + len;
            let text = std::str::from_utf8(pattern)
                .map_err(|_| Error::corrupt(off, format!("glob {id}: pattern is not UTF-8")))?;
            validate(text)
                .map_err(|e| Error::corrupt(off + e.position, format!("glob {id}: {e}")))?;
            if data_offset as usize >= data_len {
                return Err(Error::corrupt(
                    at + 8,
                    format!("glob {id}: data offset {data_offset} beyond the data section ({data_len} bytes)"),
                ));
            }
            data_offsets.push(data_offset);
            runs.push(literal_runs(pattern, self.fold).unwrap_or_default());
        }
        if next_pattern != pool_off + pool_len {
            return Err(Error::corrupt(
                H_POOL_LEN,
                "glob pattern pool has unreferenced bytes",
            ));
        }

        // Every glob exactly once, each under a key its matching texts produce.
        let mut seen = vec![false; n];
        let mut mark = |id: u32, at: usize| -> Result<()> {
            match seen.get_mut(id as usize) {
                None => Err(Error::corrupt(
                    at,
                    format!("glob index lists glob {id} of {n}"),
                )),
                Some(true) => Err(Error::corrupt(
                    at,
                    format!("glob index lists glob {id} twice"),
                )),
                Some(s) => {
                    *s = true;
                    Ok(())
                }
            }
        };
        let mut used_masks = [0u64; 3];
        let mut hashes = Vec::new();
        let mut list_taken = 0usize;
        let mut longest_probe = 0usize;
        for i in 0..slot_count {
            let at = slots_off + i * SLOT_LEN;
            let slot = bytes::slice(s, at, SLOT_LEN, "glob slot")?;
            let hash = bytes::u64_le(slot, 0, "glob slot")?;
            let a = bytes::u32_le(slot, 8, "glob slot")?;
            let count = bytes::u32_le(slot, 12, "glob slot")?;
            if count == 0 {
                if hash != 0 || a != 0 {
                    return Err(Error::corrupt(at, "empty glob slot is not zeroed"));
                }
                continue;
            }
            let home = hash as usize & self.slot_mask;
            let distance = i.wrapping_sub(home) & self.slot_mask;
            for d in 0..distance {
                let j = (home + d) & self.slot_mask;
                if bytes::u32_le(s, slots_off + j * SLOT_LEN + 12, "glob slot")? == 0 {
                    return Err(Error::corrupt(
                        at,
                        "glob slot unreachable: empty slot on its probe path",
                    ));
                }
            }
            longest_probe = longest_probe.max(distance + 1);
            hashes.push(hash);
            let ids: Vec<(u32, usize)> = if count == 1 {
                vec![(a, at + 8)]
            } else {
                let start = a as usize;
                let b = bytes::slice(self.list, start * 4, count as usize * 4, "glob id list")
                    .map_err(|e| e.at_base(list_off as u64))?;
                list_taken += count as usize;
                b.chunks_exact(4)
                    .enumerate()
                    .map(|(k, c)| {
                        (
                            u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                            list_off + (start + k) * 4,
                        )
                    })
                    .collect()
            };
            for w in ids.windows(2) {
                if w[0].0 >= w[1].0 {
                    return Err(Error::corrupt(w[1].1, "glob id list is not ascending"));
                }
            }
            for (id, id_at) in ids {
                mark(id, id_at)?;
                let shape =
                    reachable_shape(&runs[id as usize], hash, self.masks).ok_or_else(|| {
                        Error::corrupt(
                            at,
                            format!("glob {id} is filed under a key its matches never produce"),
                        )
                    })?;
                used_masks[shape.0 as usize] |= 1 << (shape.1 - 1);
            }
        }
        if longest_probe != self.max_probe {
            return Err(Error::corrupt(
                H_MAX_PROBE,
                format!(
                    "glob index max probe is {}, tables need {longest_probe}",
                    self.max_probe
                ),
            ));
        }
        if list_taken != list_len {
            return Err(Error::corrupt(
                H_LIST,
                "glob id list has entries no slot uses",
            ));
        }
        hashes.sort_unstable();
        if hashes.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::corrupt(
                slots_off,
                "glob hash table holds a key twice",
            ));
        }
        let mut previous = None;
        for i in 0..always_count {
            let at = always_off + i * 4;
            let id = bytes::u32_le(s, at, "glob always list")?;
            if previous.is_some_and(|p| p >= id) {
                return Err(Error::corrupt(at, "glob always list is not ascending"));
            }
            previous = Some(id);
            mark(id, at)?;
        }
        if let Some(id) = seen.iter().position(|&s| !s) {
            return Err(Error::corrupt(
                0,
                format!("glob {id} cannot be found through the index"),
            ));
        }
        for (kind, field) in [(0, H_PREFIX_MASK), (1, H_SUFFIX_MASK), (2, H_INFIX_MASK)] {
            if used_masks[kind] != self.masks[kind] {
                return Err(Error::corrupt(
                    field,
                    "glob shape mask lists shapes no key uses",
                ));
            }
        }
        let bloom = build_bloom(hashes.iter().copied(), bloom_words, self.bloom_k);
        for (i, w) in bloom.iter().enumerate() {
            let at = bloom_off + i * 8;
            if bytes::u64_le(s, at, "glob bloom filter")? != *w {
                return Err(Error::corrupt(
                    at,
                    "glob bloom filter does not match the hash table",
                ));
            }
        }
        Ok(data_offsets)
    }
}

/// The (kind, length) shape, among those `masks` lists, at which every text the glob with
/// literal `runs` matches produces `hash`; `None` if there is none.
fn reachable_shape(runs: &[LiteralRun], hash: u64, masks: [u64; 3]) -> Option<(Kind, usize)> {
    let mut found = None;
    if let Some(r) = runs.first().filter(|r| r.at_start) {
        prefix_hashes(&r.bytes, false, masks[0], |len, h| {
            if h == hash {
                found = Some((Kind::Prefix, len));
            }
            found.is_some()
        });
    }
    if let Some(r) = runs.last().filter(|r| r.at_end).filter(|_| found.is_none()) {
        suffix_hashes(&r.bytes, false, masks[1], |len, h| {
            if h == hash {
                found = Some((Kind::Suffix, len));
            }
            found.is_some()
        });
    }
    if found.is_some() {
        return found;
    }
    let mut lengths = masks[2];
    while lengths != 0 {
        let k = lengths.trailing_zeros() as usize + 1;
        lengths &= lengths - 1;
        for r in runs {
            if r.bytes.windows(k).any(|w| gram_hash(w, false) == hash) {
                return Some((Kind::Infix, k));
            }
        }
    }
    None
}

// Shape masks have one bit per length 1..=64.
const _: () = assert!(LENGTH_CLASSES[LENGTH_CLASSES.len() - 1] <= 64 && MAX_GRAM <= 64);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(globs: &[&str], fold: bool) -> Vec<u8> {
        let mut b = GlobIndexBuilder::new(fold);
        for (i, g) in globs.iter().enumerate() {
            b.add(g, i as u32 * 10, i as u32).unwrap();
        }
        b.finish(KeepDuplicate::First).unwrap().0
    }

    fn matches(index: &GlobIndex, query: &str) -> Vec<u32> {
        let mut out = Vec::new();
        index
            .for_each_match(query.as_bytes(), |hit| out.push(hit.id))
            .unwrap();
        out
    }

    fn brute(globs: &[&str], query: &str, fold: bool) -> Vec<u32> {
        (0..globs.len() as u32)
            .filter(|&i| glob_match(globs[i as usize].as_bytes(), query.as_bytes(), fold))
            .collect()
    }

    /// splitmix64: deterministic test data without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    #[derive(Clone)]
    enum Tok {
        Lit(String),
        Star,
        Any,
        /// Class text (between the brackets) and characters it contains.
        Class(&'static str, &'static [char]),
    }

    const WORDS: &[&str] = &[
        "a",
        "ab",
        "com",
        "evil",
        "x",
        "mal",
        "ware",
        "host",
        "net",
        "é",
        "Ex",
        "x*y",
        "b]c",
        "co",
        "moc",
        ".",
        "-",
        "sub.domain",
        "zz",
    ];
    const TLDS: &[&str] = &["com", "net", "org", "io", "Co"];
    const CLASSES: &[(&str, &[char])] = &[
        ("0-9", &['0', '5', '9']),
        ("a-c", &['a', 'B', 'c']),
        ("!a-z", &['0', '.', 'é']),
        ("]x", &[']', 'x']),
        ("é-ü", &['é', 'ü']),
    ];

    fn lit(s: &str) -> Tok {
        Tok::Lit(s.to_string())
    }

    fn random_glob(rng: &mut Rng) -> Vec<Tok> {
        let w = |rng: &mut Rng| lit(rng.pick(WORDS));
        let tld = |rng: &mut Rng| lit(&format!(".{}", rng.pick(TLDS)));
        let class = |rng: &mut Rng| {
            let (body, members) = rng.pick(CLASSES);
            Tok::Class(body, members)
        };
        match rng.below(13) {
            0 => vec![Tok::Star, lit("."), w(rng), tld(rng)],
            1 => vec![w(rng), lit("-"), Tok::Star],
            2 => vec![Tok::Star, w(rng), Tok::Star, w(rng), Tok::Star],
            3 => vec![w(rng), Tok::Any, w(rng), tld(rng)],
            4 => vec![
                lit("host"),
                class(rng),
                class(rng),
                lit("."),
                w(rng),
                tld(rng),
            ],
            5 => vec![Tok::Star, w(rng), lit(".exe")],
            6 => vec![if rng.below(2) == 0 {
                Tok::Star
            } else {
                Tok::Any
            }],
            7 => vec![class(rng), Tok::Star],
            8 => {
                let long: String = (0..300 + rng.below(40))
                    .map(|i| (b'a' + (i % 7) as u8) as char)
                    .collect();
                vec![lit(&long), Tok::Star, w(rng)]
            }
            9 => vec![Tok::Star, class(rng), lit(".com")],
            10 => vec![w(rng)],
            _ => {
                let n = 1 + rng.below(5);
                (0..n)
                    .map(|_| match rng.below(6) {
                        0 => Tok::Star,
                        1 => Tok::Any,
                        2 => class(rng),
                        _ => w(rng),
                    })
                    .collect()
            }
        }
    }

    fn render(toks: &[Tok]) -> String {
        let mut s = String::new();
        for t in toks {
            match t {
                Tok::Lit(l) => {
                    for c in l.chars() {
                        if "*?[]\\".contains(c) {
                            s.push('\\');
                        }
                        s.push(c);
                    }
                }
                Tok::Star => s.push('*'),
                Tok::Any => s.push('?'),
                Tok::Class(body, _) => {
                    s.push('[');
                    s.push_str(body);
                    s.push(']');
                }
            }
        }
        s
    }

    fn instantiate(toks: &[Tok], rng: &mut Rng, fold: bool) -> String {
        let mut s = String::new();
        for t in toks {
            match t {
                Tok::Lit(l) if fold && rng.below(2) == 0 => s.push_str(&l.to_ascii_uppercase()),
                Tok::Lit(l) => s.push_str(l),
                Tok::Star => {
                    if rng.below(3) != 0 {
                        s.push_str(rng.pick(WORDS));
                    }
                }
                Tok::Any => s.push(rng.pick(&['a', 'é', '.', '1', '€'])),
                Tok::Class(_, members) => s.push(rng.pick(members)),
            }
        }
        s
    }

    fn random_query(rng: &mut Rng) -> String {
        let n = rng.below(5);
        (0..n)
            .map(|_| rng.pick(WORDS))
            .collect::<Vec<_>>()
            .join(rng.pick(&["", ".", "-"]))
            + if rng.below(2) == 0 {
                rng.pick(&[".com", ".exe", ".net", ""])
            } else {
                ""
            }
    }

    fn check_against_brute_force(seed: u64, glob_count: usize, query_count: usize, fold: bool) {
        let mut rng = Rng(seed);
        let toks: Vec<Vec<Tok>> = (0..glob_count).map(|_| random_glob(&mut rng)).collect();
        let texts: Vec<String> = toks.iter().map(|t| render(t)).collect();
        // Dedup the way the builder does, so ids line up.
        let mut unique: Vec<&str> = Vec::new();
        let mut unique_toks = Vec::new();
        for (t, tk) in texts.iter().zip(&toks) {
            let key = |s: &str| {
                if fold {
                    s.to_ascii_lowercase()
                } else {
                    s.to_string()
                }
            };
            if !unique.iter().any(|u| key(u) == key(t)) {
                unique.push(t);
                unique_toks.push(tk.clone());
            }
        }
        let section = build(&unique, fold);
        let index = GlobIndex::new(&section, fold).unwrap();
        assert_eq!(index.len(), unique.len());
        let offsets = index.check(unique.len() * 10 + 1).unwrap();
        assert_eq!(
            offsets,
            (0..unique.len() as u32).map(|i| i * 10).collect::<Vec<_>>()
        );
        for _ in 0..query_count {
            let query = if !unique.is_empty() && rng.below(2) == 0 {
                instantiate(&unique_toks[rng.below(unique_toks.len())], &mut rng, fold)
            } else {
                random_query(&mut rng)
            };
            assert_eq!(
                matches(&index, &query),
                brute(&unique, &query, fold),
                "query {query:?} fold {fold}"
            );
        }
    }

    #[test]
    fn finds_each_shape() {
        let globs = [
            "*.evil.com",
            "evil-*",
            "*mal*ware*",
            "x?z.com",
            "host[0-9][0-9].evil.com",
            "*.exe",
            "*",
            "?",
            "[a-z]*",
            "exact.example.org",
            "",
        ];
        let section = build(&globs, false);
        let index = GlobIndex::new(&section, false).unwrap();
        index.check(1000).unwrap();
        for q in [
            "www.evil.com",
            "evil-twin",
            "xmalxwarex",
            "xyz.com",
            "host42.evil.com",
            "setup.exe",
            "a",
            "",
            "exact.example.org",
            "EXACT.example.org",
            "nothing",
        ] {
            assert_eq!(matches(&index, q), brute(&globs, q, false), "{q}");
        }
        assert_eq!(matches(&index, "host42.evil.com"), vec![0, 4, 6, 8]);
        let hit = index.get(4).unwrap();
        assert_eq!(
            (hit.pattern, hit.data_offset),
            ("host[0-9][0-9].evil.com", 40)
        );
        assert!(index.get(11).is_err());
    }

    #[test]
    fn case_insensitive_index() {
        let globs = ["*.Evil.COM", "MAL*", "*ÉvIL*", "[A-C]x*"];
        let section = build(&globs, true);
        let index = GlobIndex::new(&section, true).unwrap();
        index.check(100).unwrap();
        assert_eq!(matches(&index, "www.EVIL.com"), vec![0]);
        assert_eq!(matches(&index, "malware"), vec![1]);
        assert_eq!(matches(&index, "xxÉVILxx"), vec![2]);
        assert_eq!(matches(&index, "xxévilxx"), Vec::<u32>::new());
        assert_eq!(matches(&index, "bX1"), vec![3]);
        assert!(GlobIndex::new(&section, false).is_err());
    }

    #[test]
    fn duplicates_keep_first_or_last() {
        let add_all = |fold: bool| {
            let mut b = GlobIndexBuilder::new(fold);
            for (i, g) in ["*.a", "b*", "*.A", "*.a", "c?"].iter().enumerate() {
                b.add(g, 100 + i as u32, 7 + i as u32).unwrap();
            }
            b
        };
        let (section, pairs) = add_all(false).finish(KeepDuplicate::First).unwrap();
        assert_eq!(pairs, vec![(7, 10)]);
        let index = GlobIndex::new(&section, false).unwrap();
        let all: Vec<_> = (0..index.len() as u32)
            .map(|i| index.get(i).unwrap())
            .collect();
        let summary: Vec<_> = all.iter().map(|h| (h.pattern, h.data_offset)).collect();
        assert_eq!(
            summary,
            vec![("*.a", 100), ("b*", 101), ("*.A", 102), ("c?", 104)]
        );

        let (section, pairs) = add_all(true).finish(KeepDuplicate::Last).unwrap();
        assert_eq!(pairs, vec![(10, 7), (10, 9)]);
        let index = GlobIndex::new(&section, true).unwrap();
        let summary: Vec<_> = (0..index.len() as u32)
            .map(|i| index.get(i).unwrap())
            .map(|h| (h.pattern, h.data_offset))
            .collect();
        assert_eq!(summary, vec![("b*", 101), ("*.a", 103), ("c?", 104)]);
        assert_eq!(matches(&index, "x.A"), vec![1]);

        let (_, pairs) = add_all(true).finish(KeepDuplicate::First).unwrap();
        assert_eq!(pairs, vec![(7, 9), (7, 10)]);
    }

    #[test]
    fn rejects_invalid_globs() {
        let mut b = GlobIndexBuilder::new(false);
        assert!(b.add("a[b", 0, 0).is_err());
        assert!(b.add("a\\", 0, 0).is_err());
        assert!(b.is_empty());
    }

    #[test]
    fn empty_index() {
        let section = build(&[], false);
        let index = GlobIndex::new(&section, false).unwrap();
        assert!(index.is_empty());
        assert_eq!(index.check(0).unwrap(), Vec::<u32>::new());
        assert_eq!(matches(&index, "anything"), Vec::<u32>::new());
    }

    #[test]
    fn build_is_deterministic() {
        let globs: Vec<String> = (0..500).map(|i| format!("*.d{i}.com")).collect();
        let refs: Vec<&str> = globs.iter().map(|s| s.as_str()).collect();
        assert_eq!(build(&refs, false), build(&refs, false));
    }

    #[test]
    fn many_candidates_spill_to_the_heap() {
        // Globs whose only literal is ".com" share one key: more than fit on the stack.
        let globs: Vec<String> = ('a'..='z')
            .chain('0'..='9')
            .flat_map(|c| [format!("*[{c}].com"), format!("*[!{c}].com")])
            .collect();
        let refs: Vec<&str> = globs.iter().map(|s| s.as_str()).collect();
        let section = build(&refs, false);
        let index = GlobIndex::new(&section, false).unwrap();
        index.check(10_000).unwrap();
        for q in ["x.com", "5.com", "é.com", ".com", "x.org", "aa.com"] {
            assert_eq!(matches(&index, q), brute(&refs, q, false), "{q}");
        }
    }

    #[test]
    fn repeated_grams_in_the_query_add_candidates_once() {
        let globs = ["*aaaa*", "*aaaa*b*", "*aaab*"];
        let section = build(&globs, false);
        let index = GlobIndex::new(&section, false).unwrap();
        let q = "a".repeat(500) + "b";
        assert_eq!(matches(&index, &q), vec![0, 1, 2]);
    }

    #[test]
    fn mixed_shapes_against_brute_force() {
        check_against_brute_force(1, 600, 600, false);
        check_against_brute_force(2, 600, 600, true);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn index_agrees_with_brute_force(seed in any::<u64>(), globs in 0usize..60, fold in any::<bool>()) {
            check_against_brute_force(seed, globs, 40, fold);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), fold in any::<bool>()) {
            let mut bytes = bytes;
            if bytes.len() >= 8 {
                bytes[..8].copy_from_slice(&MAGIC);
            }
            if let Ok(index) = GlobIndex::new(&bytes, fold) {
                let _ = index.check(1000);
                let _ = index.for_each_match(b"www.evil.com", |_| {});
                let _ = index.get(0);
            }
        }
    }

    fn sample_section(fold: bool) -> (Vec<u8>, Vec<&'static str>) {
        let globs = vec![
            "*.evil.com",
            "evil-*",
            "*mal*ware*",
            "x?z.com",
            "host[0-9][0-9].evil.com",
            "*.exe",
            "*",
            "[a-z]*",
            "*[0-9].com",
            "*[a].com",
            "ab*cd",
        ];
        (build(&globs, fold), globs)
    }

    fn exercise(section: &[u8], fold: bool) -> Option<Result<Vec<u32>>> {
        let index = GlobIndex::new(section, fold).ok()?;
        for q in ["www.evil.com", "host12.evil.com", "malware", "", "evil-x"] {
            let _ = index.for_each_match(q.as_bytes(), |_| {});
        }
        for id in 0..index.len() as u32 + 2 {
            let _ = index.get(id);
        }
        Some(index.check(1000))
    }

    #[test]
    fn truncations_fail_cleanly() {
        let (section, _) = sample_section(false);
        let pool_off = bytes::u32_le(&section, H_POOL_OFF, "").unwrap() as usize;
        for len in 0..section.len() {
            assert!(GlobIndex::new(&section[..len], false).is_err(), "len {len}");
            let mut padded = section[..len].to_vec();
            padded.resize(section.len(), 0);
            // Cutting into the pattern pool may leave valid, reachable patterns (the file
            // checksum catches that); cutting into the tables may not go unnoticed.
            let result = exercise(&padded, false);
            if len < pool_off {
                assert!(!matches!(result, Some(Ok(_))), "len {len}");
            }
        }
    }

    #[test]
    fn check_catches_every_flip_in_header_and_tables() {
        for fold in [false, true] {
            let (section, _) = sample_section(fold);
            let records_off = bytes::u32_le(&section, H_RECORDS_OFF, "").unwrap() as usize;
            let glob_count = bytes::u32_le(&section, H_GLOBS, "").unwrap() as usize;
            for pos in 0..section.len() {
                for bit in 0..8 {
                    let mut bad = section.clone();
                    bad[pos] ^= 1 << bit;
                    let result = exercise(&bad, fold);
                    let in_tables = pos < records_off;
                    let in_record_pattern_fields = pos >= records_off
                        && pos < records_off + glob_count * RECORD_LEN
                        && (pos - records_off) % RECORD_LEN < 8;
                    if in_tables || in_record_pattern_fields {
                        assert!(
                            !matches!(result, Some(Ok(_))),
                            "flip of bit {bit} at {pos} went unnoticed"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn corrupt_sections_never_hang_or_panic() {
        let (section, _) = sample_section(false);
        let mut rng = Rng(7);
        for _ in 0..2000 {
            let mut bad = section.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(bad.len());
                bad[at] = rng.next() as u8;
            }
            let _ = exercise(&bad, false);
        }
    }
}
