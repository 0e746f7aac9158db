//! The glob index section: finds, for a query, the few globs worth running the matcher on.
//!
//! Each glob is filed under ONE anchor, a literal piece every matching text must contain at a
//! known place:
//!
//! * a **prefix** anchor: the first `ℓ` bytes of the glob's leading literal (`evil-*`), or
//! * a **suffix** anchor: the last `ℓ` bytes of its trailing literal (`*.evil.com`), where `ℓ` is
//!   a length class (every length 1 to 16, then 20, 24, 32, 40, 48, 64) not above the literal's
//!   length: short literals (most domains) are filed whole, so few globs share a key, and a
//!   query probes only the lengths the section lists (see pruning below), or
//! * an **infix** anchor: a gram from one of its literal runs (`*mal*ware*`): a 4-byte window,
//!   or a whole run shorter than 4 bytes.
//!
//! Globs without any literal byte (`*`, `?*`, `[a-z]*`) are verified for every query.
//!
//! The builder counts, over all globs, how many share each candidate key and each check (see
//! below), and files each glob where a query reaching it does the least work: prefix or suffix
//! at the largest class unless very many globs share that literal (`*[0-9].com`), a gram
//! otherwise: a rare one whose check reaches past it (see `choose_gram`). Then it drops
//! (kind, length) shapes that fewer than 1 glob in 500 use, moving their globs to a shape that
//! stays, since every query pays one probe per shape.
//!
//! A query hashes its prefixes and suffixes and its grams (one rolling window), only at the
//! shapes the section lists. A prefix or suffix shape is hashed and probed only if the query's
//! byte at the cut (the key's last byte for a prefix, its first for a suffix) is in the shape's
//! *edge filter*, the set of those bytes over its keys: keys cut at a delimiter (`.evil.com`)
//! make most lengths skip. Each gram is first tested against a small bitmap (at most 16 KiB,
//! stays in L1), each hash against a Bloom filter (at most 128 KiB, one 64-bit word per key,
//! stays in L2), and only then are records touched.
//!
//! Records of anchored globs are sorted by key and split into directory buckets by the key's
//! top bits (about 4 globs per bucket; the directory, 4 bytes per bucket, stays in L2), so a
//! probe reads the directory and then the records themselves: one trip to memory, not a
//! table and then a record. Every record carries a 32-bit *check*: the hash of a longer piece
//! of its literal (the whole prefix/suffix literal up to 64 bytes; for a gram, up to 32 bytes
//! of its run from the gram on) and that piece's length. Globs that share a truncated key
//! (`*.kalomi.com` and `*.xylomi.com` both under `lomi.com`) are told apart by comparing checks
//! with the query's own hash of the same piece; only globs passing their check are verified
//! with [`glob_match`](super::pattern::glob_match), in ascending id order.
//!
//! # Hashes
//!
//! Bytes are ASCII-lowercased first when the database is case-insensitive.
//! * prefix hash of `t[0..ℓ]`: `key_hash(t[0..ℓ]) ^ 0x7072_6566_6978_2e31`
//!   (`crate::hash::key_hash`, the literal section's hash);
//! * suffix hash of the last `ℓ` bytes of `t`: `key_hash(t[n-ℓ..n]) ^ 0x7375_6666_6978_2e31`;
//! * infix hash of a gram or check span `g`: `Fnv::new(0x696e_6669_7878_2e31)`
//!   (`crate::hash::Fnv`) fed `g` in order, `finish(g.len())`;
//! * check of an `n`-byte piece (1..=64) whose hash (of the anchor's kind) is `h`:
//!   `(n - 1) << 26 | h >> 38` (u32). Prefix anchors check the first `n` bytes, suffix anchors
//!   the last `n`, grams the `n` bytes starting where the gram starts;
//! * gram bitmap bit of a gram `g` of `k` bytes (1..=4): `x = g[0] | g[1] << 8 | .. |
//!   k << 32` (u64), `bit = (x × 0x9E37_79B9_7F4A_7C15 mod 2^64) >> (64 - log2(64 G))`;
//! * Bloom: a key hash `h` sets, in u64 word `(h >> 40) & (W - 1)`, the bits
//!   `(h >> 6i) & 63` for `i` in `0..6`.
//!
//! # Section layout (little-endian; offsets from the section start, which is 8-aligned)
//!
//! ```text
//! off size  field
//!   0   8   magic "MXYGLOB\0"
//!   8   4   version = 3
//!  12   4   flags: bit 0 = case-insensitive (ASCII folded); other bits 0
//!  16   4   glob_count N
//!  20   4   always_count A        globs verified for every query (no literal byte)
//!  24   4   bucket_count B        directory buckets, >= 1
//!  28   4   bloom_words W         a power of two, 1..=2^24
//!  32   4   bloom_k               bits per key, = 6
//!  36   4   gram_filter_words G   a power of two, 1..=2^24
//!  40   4   records_len           bytes of the records region
//!  44   4   reserved, 0
//!  48   8   prefix_lengths        bit ℓ-1 set: some prefix anchor has ℓ bytes
//!  56   8   suffix_lengths        same for suffix anchors
//!  64   8   infix_lengths         same for grams; only bits 0..=3
//!  72   4   bloom_off             = 96 + 32E, E = bits set in prefix_lengths and suffix_lengths
//!  76   4   gram_filter_off       = bloom_off + 8W
//!  80   4   directory_off         = gram_filter_off + 8G
//!  84   4   index_off             = directory_off + 4(B + 1)
//!  88   4   records_off           = index_off + 4N
//!  92   4   section_len           = records_off + records_len, rounded up to 8 (< 2^31)
//!  96       edge filters: E × 32 bytes, one per prefix length (ascending), then one per
//!           suffix length (ascending): byte b is in the filter if bit (b & 7) of its byte
//!           b >> 3 is set; exactly the bytes at the cut of that shape's keys
//!       ... bloom: W × u64
//!       ... gram filter: G × u64; filter bit b is bit (b & 63) of word b >> 6
//!       ... directory: B + 1 × u32 record offsets. Entry i: the first anchored record whose
//!           key's bucket, (key × B) >> 64 (128-bit product), is i or more; entry B (and any
//!           entry past the last anchored record): the end of the anchored records
//!       ... index: N × u32 record offset of glob id 0, 1, ...
//!       ... records, back to back, no padding: the N - A anchored globs ascending by (key,
//!           glob id), then the A others ascending by glob id. Each: {u64 key hash, u32 check,
//!           u32 glob id, u32 data_offset, u32 pattern_len, u16 head, u16 tail, pattern
//!           (UTF-8)}; key and check are 0 for the globs verified for every query.
//!           head/tail: the pattern's first `head` bytes are literal (no wildcard or escape),
//!           as are its last `tail` bytes, after its last wildcard (0 if they hold an escape);
//!           both 0 if either exceeds 65535. The matcher compares them in place and runs its
//!           backtracking loop on the middle only.
//!       ... 0-7 zero bytes.
//! ```
//!
//! A probe for key `h` scans the records from directory entry `(h × B) >> 64` to the next
//! entry, stopping at the first key above `h`. Every glob appears exactly once, under a key
//! and check a text it matches is guaranteed to produce at a listed shape (whose edge filter
//! holds the byte at its cut), or among the A. [`GlobIndex::check`] verifies exactly that,
//! plus the canonical order and directory, byte-exact Bloom filter, gram bitmap and edge
//! filters, so files from builders with other anchor heuristics stay valid.

use crate::bytes;
use crate::error::{Error, Result};
use crate::hash::{fold_byte, key_hash, Fnv};

use super::pattern::{
    ascii_lowercase_word, glob_match_split, literal_edges, literal_runs, validate, LiteralRun,
};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

pub use crate::mmdb::tree_builder::KeepDuplicate;

const MAGIC: [u8; 8] = *b"MXYGLOB\0";
const VERSION: u32 = 3;
const HEADER_LEN: usize = 96;
/// One edge filter: a 256-bit set of bytes.
const EDGE_FILTER_LEN: usize = 32;
/// A record's fixed part: key hash, check, glob id, data offset, pattern length, literal head
/// and tail lengths.
const RECORD_HEAD: usize = 28;
const FLAG_FOLD: u32 = 1;
/// Anchored globs per directory bucket, on average: the directory (4 bytes per bucket) stays in
/// L2 for 100K globs, and a probe reads a record or two, mostly from one or two cache lines.
const GLOBS_PER_BUCKET: usize = 4;
/// Record offsets (and so the section) stay below this: candidates pack them into a u32.
const MAX_SECTION_LEN: usize = 1 << 31;

const PREFIX_SEED: u64 = 0x7072_6566_6978_2e31;
const SUFFIX_SEED: u64 = 0x7375_6666_6978_2e31;
const INFIX_SEED: u64 = 0x696e_6669_7878_2e31;
const GRAM_FILTER_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

/// Prefix and suffix keys are cut to one of these lengths: a query probes at most this many
/// lengths per side. Globs the cut makes share a key are told apart by their checks.
const LENGTH_CLASSES: [usize; 22] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 24, 32, 40, 48, 64,
];
/// Longest piece hashed for a check (and for prefix/suffix keys): shape masks have 64 bits.
const MAX_PIECE: usize = 64;
/// Longest gram; the gram bitmap packs a gram into 4 bytes.
const MAX_GRAM: usize = 4;
/// A gram's check covers at most this many bytes of its run, starting at the gram.
const MAX_GRAM_SPAN: usize = 32;
const BLOOM_K: u32 = 6;
const BLOOM_BITS_PER_KEY: usize = 20;
/// 128 KiB: stays in L2 beside the directory and record lines queries bring in (measured:
/// 256 KiB gets evicted by them, 64 KiB lets too many false positives through).
const BLOOM_MAX_WORDS: usize = 1 << 14;
const GRAM_FILTER_BITS_PER_GRAM: usize = 16;
/// 16 KiB: stays in L1.
const GRAM_FILTER_MAX_WORDS: usize = 1 << 11;
const READER_MAX_WORDS: u32 = 1 << 24;
/// Anchor costs (see `choose_anchors`): a verification costs this many check comparisons...
const VERIFY_WEIGHT: u64 = 8;
/// ...and a gram anchor this much on top, for being probed at every query position.
const INFIX_BASE: u64 = 64;
/// Globs that may share a gram key before [`choose_gram`] stops preferring it for its check.
const SHARED_GRAM_LIMIT: u64 = 32;
/// Queries up to this long are ASCII-folded once into a stack buffer before hashing (a small
/// buffer for the common short query, so it costs little to set up).
const FOLD_BUFFER: usize = 256;
const SHORT_FOLD_BUFFER: usize = 64;
/// A shape used by fewer than 1 in this many anchored globs is dropped if its globs can move.
const PRUNE_RATIO: usize = 500;
/// Candidates gathered on the stack before spilling to the heap.
const INLINE_CANDIDATES: usize = 16;

// Header field offsets.
const H_VERSION: usize = 8;
const H_FLAGS: usize = 12;
const H_GLOBS: usize = 16;
const H_ALWAYS: usize = 20;
const H_BUCKETS: usize = 24;
const H_BLOOM_WORDS: usize = 28;
const H_BLOOM_K: usize = 32;
const H_GRAM_WORDS: usize = 36;
const H_RECORDS_LEN: usize = 40;
const H_RESERVED: usize = 44;
const H_PREFIX_MASK: usize = 48;
const H_SUFFIX_MASK: usize = 56;
const H_INFIX_MASK: usize = 64;
const H_BLOOM_OFF: usize = 72;
const H_GRAM_OFF: usize = 76;
const H_DIRECTORY_OFF: usize = 80;
const H_INDEX_OFF: usize = 84;
const H_RECORDS_OFF: usize = 88;
const H_SECTION_LEN: usize = 92;

// ---------------------------------------------------------------------------------------------
// Hashes shared by the writer, the reader and `check`. Builder-side inputs are already folded.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Prefix = 0,
    Suffix = 1,
    Infix = 2,
}

/// The key (or check hash) of the prefix `piece`. Prefix and suffix pieces are hashed whole,
/// sixteen bytes per multiply, and only at the lengths a query probes (see `collect_as`).
#[inline]
fn prefix_key(piece: &[u8], fold: bool) -> u64 {
    key_hash(piece, fold) ^ PREFIX_SEED
}

/// The key (or check hash) of the suffix `piece` (its bytes in text order).
#[inline]
fn suffix_key(piece: &[u8], fold: bool) -> u64 {
    key_hash(piece, fold) ^ SUFFIX_SEED
}

#[inline]
fn gram_key(piece: &[u8], fold: bool) -> u64 {
    let mut h = Fnv::new(INFIX_SEED);
    piece.iter().for_each(|&b| h.push(fold_byte(b, fold)));
    h.finish(piece.len())
}

#[inline]
fn pack_check(len: usize, hash: u64) -> u32 {
    ((len as u32 - 1) << 26) | (hash >> 38) as u32
}

#[inline]
fn check_len(check: u32) -> usize {
    (check >> 26) as usize + 1
}

/// The last prefix (or suffix) check a query computed, by piece length: the globs of a bucket
/// mostly share their length, and a check costs a hash of up to 64 bytes.
#[derive(Default)]
struct CheckMemo(Cell<(usize, u32)>);

impl CheckMemo {
    /// The check of the `n`-byte piece (n >= 1), from `compute` unless it was the last asked.
    #[inline]
    fn get(&self, n: usize, compute: impl FnOnce() -> u32) -> u32 {
        let (len, check) = self.0.get();
        if len == n {
            return check;
        }
        let check = compute();
        self.0.set((n, check));
        check
    }
}

/// Gram bytes (folded) packed for the gram bitmap: little-endian bytes, length in bits 32..35.
#[inline]
fn gram_code(gram: &[u8]) -> u64 {
    let mut x = (gram.len() as u64) << 32;
    for (i, &b) in gram.iter().enumerate() {
        x |= (b as u64) << (8 * i);
    }
    x
}

#[inline]
fn gram_filter_bit(code: u64, words: usize) -> usize {
    let log2_bits = (words * 64).trailing_zeros();
    (code.wrapping_mul(GRAM_FILTER_MUL) >> (64 - log2_bits)) as usize
}

/// The directory bucket of a key: `(hash × B) >> 64`, so ascending hashes fill ascending buckets.
#[inline]
fn bucket_of(hash: u64, bucket_count: usize) -> usize {
    ((hash as u128 * bucket_count as u128) >> 64) as usize
}

/// The shortest length a (non-zero) shape mask lists.
#[inline]
fn shortest(mask: u64) -> usize {
    mask.trailing_zeros() as usize + 1
}

#[inline]
fn bloom_word_index(hash: u64, words: usize) -> usize {
    ((hash >> 40) as usize) & (words - 1)
}

/// The `BLOOM_K` bits a key sets in its Bloom word.
#[inline]
fn bloom_bits(hash: u64) -> u64 {
    let bit = |i: u32| 1u64 << ((hash >> (6 * i)) & 63);
    bit(0) | bit(1) | bit(2) | bit(3) | bit(4) | bit(5)
}

fn build_bloom(hashes: impl Iterator<Item = u64>, words: usize) -> Vec<u64> {
    let mut bloom = vec![0u64; words];
    for h in hashes {
        bloom[bloom_word_index(h, words)] |= bloom_bits(h);
    }
    bloom
}

/// The edge filters of the prefix and suffix shapes `edges` lists (kind, length, edge byte of
/// one key), in section order: prefix shapes by ascending length, then suffix shapes.
fn build_edge_filters(edges: impl Iterator<Item = (Kind, usize, u8)>) -> Vec<u8> {
    let mut filters: BTreeMap<(Kind, usize), [u8; EDGE_FILTER_LEN]> = BTreeMap::new();
    for (kind, len, byte) in edges {
        filters.entry((kind, len)).or_default()[byte as usize >> 3] |= 1 << (byte & 7);
    }
    filters.into_values().flatten().collect()
}

/// The directory of anchored records given as (key, record offset) in record order: entry `i`
/// is the first record in bucket `i` or later, `anchored_end` if none.
fn build_directory(
    anchored: impl Iterator<Item = (u64, usize)>,
    anchored_end: usize,
    bucket_count: usize,
) -> Vec<usize> {
    let mut directory = Vec::with_capacity(bucket_count + 1);
    for (key, at) in anchored {
        while directory.len() <= bucket_of(key, bucket_count) {
            directory.push(at);
        }
    }
    directory.resize(bucket_count + 1, anchored_end);
    directory
}

fn build_gram_filter(codes: impl Iterator<Item = u64>, words: usize) -> Vec<u64> {
    let mut filter = vec![0u64; words];
    for code in codes {
        let bit = gram_filter_bit(code, words);
        filter[bit >> 6] |= 1 << (bit & 63);
    }
    filter
}

// ---------------------------------------------------------------------------------------------
// Anchor selection.

/// Where a glob is filed: key hash, the shape a query probes it at, and its check.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    kind: Kind,
    len: usize,
    hash: u64,
    check: u32,
    /// The full hash behind `check`, to count globs a check cannot tell apart.
    check_hash: u64,
    /// For grams: the gram's bitmap code.
    gram_code: u64,
    /// For prefix and suffix anchors: the key's byte at the cut (see [`edge_byte`]).
    edge_byte: u8,
}

fn largest_class(n: usize) -> Option<usize> {
    LENGTH_CLASSES.iter().rev().copied().find(|&c| c <= n)
}

/// The prefix (or suffix) anchor of a glob whose leading (trailing) literal is `run`.
fn edge_anchor(run: &[u8], kind: Kind) -> Option<Anchor> {
    Some(edge_anchor_at(run, kind, largest_class(run.len())?))
}

/// The byte where a `len`-byte prefix (suffix) key of `run` was cut from the rest of the text:
/// its last (first) byte. The edge filter of the key's shape holds it, so a query probes that
/// shape only if its own byte there is one some key has (`*.evil.com` under `.evil.com`: only
/// queries with a `.` at that distance from the end).
fn edge_byte(run: &[u8], kind: Kind, len: usize) -> u8 {
    if kind == Kind::Prefix {
        run[len - 1]
    } else {
        run[run.len() - len]
    }
}

/// The prefix (or suffix) anchor keyed by `len` (<= `run.len()`) bytes of `run`.
fn edge_anchor_at(run: &[u8], kind: Kind, len: usize) -> Anchor {
    let whole = run.len().min(MAX_PIECE);
    let (hash, check_hash) = if kind == Kind::Prefix {
        (
            prefix_key(&run[..len], false),
            prefix_key(&run[..whole], false),
        )
    } else {
        let n = run.len();
        (
            suffix_key(&run[n - len..], false),
            suffix_key(&run[n - whole..], false),
        )
    };
    Anchor {
        kind,
        len,
        hash,
        check: pack_check(whole, check_hash),
        check_hash,
        gram_code: 0,
        edge_byte: edge_byte(run, kind, len),
    }
}

/// The gram anchor for the gram at `run[at..at + len]`.
fn gram_anchor(run: &[u8], at: usize, len: usize) -> Anchor {
    let span = &run[at..run.len().min(at + MAX_GRAM_SPAN)];
    let check_hash = gram_key(span, false);
    Anchor {
        kind: Kind::Infix,
        len,
        hash: gram_key(&run[at..at + len], false),
        check: pack_check(span.len(), check_hash),
        check_hash,
        gram_code: gram_code(&run[at..at + len]),
        edge_byte: 0,
    }
}

/// Each gram of a glob once: (key hash, run index, offset). A run longer than a gram gives its
/// 4-byte windows; a shorter run is one gram.
fn grams_of(runs: &[LiteralRun]) -> Vec<(u64, usize, usize)> {
    let mut grams: Vec<(u64, usize, usize)> = Vec::new();
    for (r, run) in runs.iter().enumerate() {
        let k = run.bytes.len().min(MAX_GRAM);
        for at in 0..=run.bytes.len() - k {
            grams.push((gram_key(&run.bytes[at..at + k], false), r, at));
        }
    }
    // Keep the first occurrence of each gram.
    grams.sort_by_key(|&(h, r, at)| (h, r, at));
    grams.dedup_by_key(|g| g.0);
    grams
}

/// Picks every glob's anchor (`None`: no literal byte, verify always).
///
/// The cost of an anchor estimates the work of a query that reaches its bucket: every glob
/// filed under the same key costs a check comparison, every glob whose check is the same costs
/// a verification (weighted [`VERIFY_WEIGHT`]). A gram costs [`INFIX_BASE`] more, since grams
/// are probed at every query position, and its check is assumed no better than the gram. So
/// globs go to their prefix or suffix unless those are shared by very many globs (`*[0-9].com`);
/// ties go to prefix, then suffix, then longer keys, then the smaller hash, so the choice
/// depends only on the patterns.
fn choose_anchors(all_runs: &[Vec<LiteralRun>]) -> Vec<Option<Anchor>> {
    let edges: Vec<[Option<Anchor>; 2]> = all_runs
        .iter()
        .map(|runs| {
            [
                runs.first()
                    .filter(|r| r.at_start)
                    .and_then(|r| edge_anchor(&r.bytes, Kind::Prefix)),
                runs.last()
                    .filter(|r| r.at_end)
                    .and_then(|r| edge_anchor(&r.bytes, Kind::Suffix)),
            ]
        })
        .collect();
    let grams: Vec<_> = all_runs.iter().map(|r| grams_of(r)).collect();
    let mut gram_anchors = Vec::with_capacity(all_runs.len());
    let mut key_counts: HashMap<u64, u64> = HashMap::new();
    let mut check_counts: HashMap<u64, u64> = HashMap::new();
    let mut gram_counts: HashMap<u64, u64> = HashMap::new();
    for a in edges.iter().flatten().flatten() {
        *key_counts.entry(a.hash).or_default() += 1;
        *check_counts.entry(a.check_hash).or_default() += 1;
    }
    for &(g, _, _) in grams.iter().flatten() {
        *gram_counts.entry(g).or_default() += 1;
    }
    type Rank = (u64, Kind, std::cmp::Reverse<usize>, u64);
    let mut anchors: Vec<Option<Anchor>> = edges
        .iter()
        .zip(&grams)
        .zip(all_runs)
        .map(|((edge, grams), runs)| {
            let mut best: Option<(Rank, Anchor)> = None;
            let mut offer = |cost: u64, a: Anchor| {
                let rank = (cost, a.kind, std::cmp::Reverse(a.len), a.hash);
                if best.as_ref().map_or(true, |(r, _)| rank < *r) {
                    best = Some((rank, a));
                }
            };
            for a in edge.iter().flatten() {
                offer(
                    key_counts[&a.hash] + VERIFY_WEIGHT * check_counts[&a.check_hash],
                    *a,
                );
            }
            let gram = choose_gram(grams, runs, &gram_counts).map(|&(g, r, at)| {
                let run = &runs[r].bytes;
                (
                    gram_counts[&g],
                    gram_anchor(run, at, run.len().min(MAX_GRAM)),
                )
            });
            if let Some((count, a)) = gram {
                offer(INFIX_BASE + VERIFY_WEIGHT * count, a);
            }
            gram_anchors.push(gram.map(|(_, a)| a));
            best.map(|(_, a)| a)
        })
        .collect();
    prune_shapes(&mut anchors, all_runs, &gram_anchors);
    anchors
}

/// A glob's gram anchor: the rarest of its grams whose check reaches past the gram (the check
/// hashes the run from the gram on), if at most [`SHARED_GRAM_LIMIT`] globs share it; else its
/// rarest gram. The rarest gram alone is often a run's last bytes (`0390` of `*mid20390*`),
/// whose check is the gram itself: every query holding those digits would verify the glob,
/// while `2039`, checked as `20390`, or `d203` (`d20390`) is reached by few.
fn choose_gram<'g>(
    grams: &'g [(u64, usize, usize)],
    runs: &[LiteralRun],
    gram_counts: &HashMap<u64, u64>,
) -> Option<&'g (u64, usize, usize)> {
    let rarest = |gram: &&(u64, usize, usize)| (gram_counts[&gram.0], gram.0);
    grams
        .iter()
        .filter(|&&(g, r, at)| {
            runs[r].bytes.len() - at > MAX_GRAM && gram_counts[&g] <= SHARED_GRAM_LIMIT
        })
        .min_by_key(rarest)
        .or_else(|| grams.iter().min_by_key(rarest))
}

/// Every query probes every shape some glob uses, so a shape few globs use costs more than it
/// saves: move those globs to shapes that stay (a shorter cut of the same literal, the other
/// end, or their gram; their checks keep verification as rare as before) and drop the shape.
/// Shapes are tried from the least used; one stays if any of its globs has nowhere to go.
fn prune_shapes(
    anchors: &mut [Option<Anchor>],
    all_runs: &[Vec<LiteralRun>],
    gram_anchors: &[Option<Anchor>],
) {
    let shape = |a: &Anchor| (a.kind, a.len);
    let mut usage: BTreeMap<(Kind, usize), usize> = BTreeMap::new();
    for a in anchors.iter().flatten() {
        *usage.entry(shape(a)).or_default() += 1;
    }
    let anchored: usize = usage.values().sum();
    let mut by_usage: Vec<((Kind, usize), usize)> = usage.iter().map(|(&k, &v)| (k, v)).collect();
    by_usage.sort_by_key(|&(shape, count)| (count, shape));
    for (victim, count) in by_usage {
        if count * PRUNE_RATIO >= anchored {
            break;
        }
        let keep = |s: (Kind, usize)| s != victim && usage.contains_key(&s);
        let mut moves = Vec::with_capacity(count);
        for (i, a) in anchors.iter().enumerate() {
            let Some(a) = a.filter(|a| shape(a) == victim) else {
                continue;
            };
            let runs = &all_runs[i];
            // The same end cut shorter, then the other end, then the gram.
            let edge = |kind: Kind| {
                let run = if kind == Kind::Prefix {
                    runs.first().filter(|r| r.at_start)
                } else {
                    runs.last().filter(|r| r.at_end)
                }?;
                let len = LENGTH_CLASSES
                    .iter()
                    .rev()
                    .copied()
                    .find(|&c| c <= run.bytes.len() && keep((kind, c)))?;
                Some(edge_anchor_at(&run.bytes, kind, len))
            };
            let other = if a.kind == Kind::Suffix {
                Kind::Prefix
            } else {
                Kind::Suffix
            };
            let alternative = [a.kind, other]
                .into_iter()
                .filter(|&k| k != Kind::Infix)
                .find_map(edge)
                .or_else(|| gram_anchors[i].filter(|g| keep(shape(g))));
            match alternative {
                Some(alt) => moves.push((i, alt)),
                None => break,
            }
        }
        if moves.len() == count {
            usage.remove(&victim);
            for (i, alt) in moves {
                anchors[i] = Some(alt);
                *usage.entry(shape(&alt)).or_default() += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writer.

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
    /// Returns the section bytes (deterministic) and every (kept entry_id, dropped entry_id),
    /// in the order the dropped copies were added.
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
        let keys: Vec<String> = self.entries.iter().map(|e| key_of(&e.pattern)).collect();
        // Which add() index survives for each distinct key.
        let mut survivor: HashMap<&str, usize> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let s = survivor.entry(key).or_insert(i);
            if keep == KeepDuplicate::Last {
                *s = i;
            }
        }
        let mut kept = Vec::with_capacity(survivor.len());
        let mut dropped = Vec::new();
        for (i, (e, key)) in self.entries.iter().zip(&keys).enumerate() {
            let s = survivor[key.as_str()];
            if s == i {
                kept.push((e.pattern.as_bytes(), e.data_offset));
            } else {
                dropped.push((self.entries[s].entry_id, e.entry_id));
            }
        }
        Ok((write_section(&kept, fold)?, dropped))
    }
}

/// Writes the section for `globs` (pattern, data_offset) in id order.
fn write_section(globs: &[(&[u8], u32)], fold: bool) -> Result<Vec<u8>> {
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
    // (key hash, glob id, check) of every anchored glob, in record order.
    let mut anchored: Vec<(u64, usize, u32)> = Vec::new();
    let mut always = Vec::new();
    let mut gram_codes = Vec::new();
    let mut edges = Vec::new();
    for (id, anchor) in anchors.iter().enumerate() {
        match anchor {
            Some(a) => {
                masks[a.kind as usize] |= 1 << (a.len - 1);
                anchored.push((a.hash, id, a.check));
                if a.kind == Kind::Infix {
                    gram_codes.push(a.gram_code);
                } else {
                    edges.push((a.kind, a.len, a.edge_byte));
                }
            }
            None => always.push(id),
        }
    }
    anchored.sort_unstable();
    let mut keys: Vec<u64> = anchored.iter().map(|a| a.0).collect();
    keys.dedup();
    let bucket_count = anchored.len().div_ceil(GLOBS_PER_BUCKET).max(1);
    let bloom_words = (keys.len() * BLOOM_BITS_PER_KEY)
        .div_ceil(64)
        .next_power_of_two()
        .clamp(1, BLOOM_MAX_WORDS);
    let gram_words = (gram_codes.len() * GRAM_FILTER_BITS_PER_GRAM)
        .div_ceil(64)
        .next_power_of_two()
        .clamp(1, GRAM_FILTER_MAX_WORDS);
    let edge_filters = build_edge_filters(edges.into_iter());

    let bloom_off = HEADER_LEN + edge_filters.len();
    let gram_off = bloom_off + bloom_words * 8;
    let directory_off = gram_off + gram_words * 8;
    let index_off = directory_off + (bucket_count + 1) * 4;
    let records_off = index_off + globs.len() * 4;
    // Records: anchored globs by (key, id), then the others by id.
    let order: Vec<(u64, usize, u32)> = anchored
        .iter()
        .copied()
        .chain(always.iter().map(|&id| (0, id, 0)))
        .collect();
    let mut record_offs = vec![0usize; globs.len()];
    let mut records_end = records_off;
    let mut anchored_end = records_off;
    for (k, &(_, id, _)) in order.iter().enumerate() {
        record_offs[id] = records_end;
        records_end += RECORD_HEAD + globs[id].0.len();
        if k < anchored.len() {
            anchored_end = records_end;
        }
    }
    let directory = build_directory(
        anchored
            .iter()
            .map(|&(hash, id, _)| (hash, record_offs[id])),
        anchored_end,
        bucket_count,
    );
    let section_len = bytes::align8(records_end);
    if section_len >= MAX_SECTION_LEN {
        return Err(Error::Build("glob index section exceeds 2 GiB".into()));
    }
    let bloom = build_bloom(keys.into_iter(), bloom_words);
    let gram_filter = build_gram_filter(gram_codes.into_iter(), gram_words);

    let mut out = Vec::with_capacity(section_len);
    let put = |out: &mut Vec<u8>, v: usize| out.extend_from_slice(&(v as u32).to_le_bytes());
    out.extend_from_slice(&MAGIC);
    let flags = if fold { FLAG_FOLD as usize } else { 0 };
    for v in [
        VERSION as usize,
        flags,
        globs.len(),
        always.len(),
        bucket_count,
        bloom_words,
        BLOOM_K as usize,
        gram_words,
        records_end - records_off,
        0,
    ] {
        put(&mut out, v);
    }
    for m in masks {
        out.extend_from_slice(&m.to_le_bytes());
    }
    for v in [
        bloom_off,
        gram_off,
        directory_off,
        index_off,
        records_off,
        section_len,
    ] {
        put(&mut out, v);
    }
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(&edge_filters);
    for w in bloom.into_iter().chain(gram_filter) {
        out.extend_from_slice(&w.to_le_bytes());
    }
    for &off in directory.iter().chain(&record_offs) {
        put(&mut out, off);
    }
    for &(hash, id, check) in &order {
        let (pattern, data_offset) = globs[id];
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(&check.to_le_bytes());
        put(&mut out, id);
        out.extend_from_slice(&data_offset.to_le_bytes());
        put(&mut out, pattern.len());
        let (head, tail) = edge_hints(pattern);
        out.extend_from_slice(&head.to_le_bytes());
        out.extend_from_slice(&tail.to_le_bytes());
        out.extend_from_slice(pattern);
    }
    debug_assert_eq!(out.len(), records_end);
    out.resize(section_len, 0);
    Ok(out)
}

/// The literal head and tail lengths stored in a record, or (0, 0) if either exceeds u16.
fn edge_hints(pattern: &[u8]) -> (u16, u16) {
    let (head, tail) = literal_edges(pattern);
    match (u16::try_from(head), u16::try_from(tail)) {
        (Ok(head), Ok(tail)) => (head, tail),
        _ => (0, 0),
    }
}

// ---------------------------------------------------------------------------------------------
// Reader.

/// One glob that matched: its id, its pattern and the offset of its data in the data section.
#[derive(Debug, Clone, Copy)]
pub struct GlobHit<'a> {
    pub id: u32,
    /// The glob as inserted: UTF-8 unless the file is damaged (strict validation checks every
    /// pattern; lookups do not re-check the ones they return).
    pub pattern: &'a [u8],
    pub data_offset: u32,
}

/// Read side of the section: borrows the mapped bytes, copies nothing.
#[derive(Clone, Copy)]
pub struct GlobIndex<'a> {
    section: &'a [u8],
    fold: bool,
    glob_count: u32,
    /// The edge filter of each prefix shape, then each suffix shape ([`EDGE_FILTER_LEN`] bytes).
    edge_filters: &'a [u8],
    bloom: &'a [u8],
    bloom_words: usize,

    gram_filter: &'a [u8],
    gram_words: usize,
    /// 64 - log2(gram filter bits).
    gram_shift: u32,
    /// B + 1 record offsets: where each bucket's records start, then where the anchored
    /// records end.
    directory: &'a [u8],
    bucket_count: usize,
    /// glob id -> record offset.
    record_index: &'a [u8],
    /// Offsets of the records of the globs verified for every query: from the end of the
    /// anchored records to the end of the records region.
    always_start: usize,
    always_end: usize,
    masks: [u64; 3],
}

impl std::fmt::Debug for GlobIndex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobIndex")
            .field("globs", &self.glob_count)
            .field("fold", &self.fold)
            .field("section_bytes", &self.section.len())
            .finish_non_exhaustive()
    }
}

/// Globs gathered for one query, as `glob id << 32 | record offset` (so that ascending is glob
/// id order): on the stack unless there are many.
struct Candidates {
    inline: [u64; INLINE_CANDIDATES],
    len: usize,
    spill: Vec<u64>,
}

impl Candidates {
    #[inline]
    fn new() -> Self {
        Candidates {
            inline: [0; INLINE_CANDIDATES],
            len: 0,
            spill: Vec::new(),
        }
    }

    #[inline]
    fn push(&mut self, id: u32, record: usize) {
        let c = (id as u64) << 32 | record as u64;
        if self.len < INLINE_CANDIDATES {
            // A gram repeated in the query finds the same globs again: keep the stack copy
            // duplicate-free so repetitive queries do not spill.
            if !self.inline[..self.len].contains(&c) {
                self.inline[self.len] = c;
                self.len += 1;
            }
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.inline);
            }
            self.spill.push(c);
        }
    }

    /// The candidates in glob id order, each once.
    fn sorted(&mut self) -> &[u64] {
        let ids: &mut [u64] = if self.spill.is_empty() {
            &mut self.inline[..self.len]
        } else {
            &mut self.spill
        };
        ids.sort_unstable();
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

/// A record as stored: see the layout in the module doc.
struct Record<'a> {
    key: u64,
    id: u32,
    data_offset: u32,
    /// Literal head and tail lengths of the pattern (hints for the matcher).
    edges: (usize, usize),
    pattern: &'a [u8],
}

impl Record<'_> {
    /// Where the next record starts.
    fn end(&self, at: usize) -> usize {
        at + RECORD_HEAD + self.pattern.len()
    }
}

fn pattern_str(record: usize, pattern: &[u8]) -> Result<&str> {
    std::str::from_utf8(pattern).map_err(|_| Error::corrupt(record, "glob pattern is not UTF-8"))
}

// Fixed-layout reads inside slices whose bounds were already checked (exact-size chunks,
// tables validated by `GlobIndex::new`); untrusted offsets go through `crate::bytes`.
#[inline]
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl<'a> GlobIndex<'a> {
    /// Opens the section: checks the header and that every table lies inside `section`. O(1).
    pub fn new(section: &'a [u8], fold: bool) -> Result<Self> {
        let header = bytes::slice(section, 0, HEADER_LEN, "glob index header")?;
        if header[..8] != MAGIC {
            return Err(Error::corrupt(0, "glob index: bad magic"));
        }
        let field = |off: usize| le_u32(header, off);
        let version = field(H_VERSION);
        if version != VERSION {
            return Err(Error::corrupt(
                H_VERSION,
                format!(
                    "glob index: section version {version}, this matchy reads version {VERSION} \
                     (rebuild the file with this matchy)"
                ),
            ));
        }
        let flags = field(H_FLAGS);
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
        let glob_count = field(H_GLOBS);
        let always_count = field(H_ALWAYS);
        let bucket_count = field(H_BUCKETS) as usize;
        let bloom_words = field(H_BLOOM_WORDS);
        let bloom_k = field(H_BLOOM_K);
        let gram_words = field(H_GRAM_WORDS);
        let section_len = field(H_SECTION_LEN) as usize;
        if section_len != section.len() {
            return Err(Error::corrupt(
                H_SECTION_LEN,
                format!(
                    "glob index: header says {section_len} bytes, section has {}",
                    section.len()
                ),
            ));
        }
        if glob_count as usize >= MAX_SECTION_LEN / RECORD_HEAD {
            return Err(Error::corrupt(H_GLOBS, "glob index: too many globs"));
        }
        if always_count > glob_count {
            return Err(Error::corrupt(
                H_ALWAYS,
                "glob index: more unanchored globs than globs",
            ));
        }
        if bucket_count == 0 {
            return Err(Error::corrupt(H_BUCKETS, "glob index: no directory bucket"));
        }
        for (words, at) in [(bloom_words, H_BLOOM_WORDS), (gram_words, H_GRAM_WORDS)] {
            if !words.is_power_of_two() || words > READER_MAX_WORDS {
                return Err(Error::corrupt(at, "glob index: bad filter size"));
            }
        }
        if bloom_k != BLOOM_K {
            return Err(Error::corrupt(
                H_BLOOM_K,
                format!("glob index: Bloom filter with {bloom_k} bits per key, expected {BLOOM_K}"),
            ));
        }
        let masks = [
            le_u64(header, H_PREFIX_MASK),
            le_u64(header, H_SUFFIX_MASK),
            le_u64(header, H_INFIX_MASK),
        ];
        if masks[2] >> MAX_GRAM != 0 {
            return Err(Error::corrupt(
                H_INFIX_MASK,
                "glob index: gram longer than 4",
            ));
        }
        let table = |off_field: usize, count: usize, unit: usize, what: &str| {
            bytes::slice(section, field(off_field) as usize, count * unit, what)
        };
        let edge_shapes = (masks[0].count_ones() + masks[1].count_ones()) as usize;
        let directory = table(H_DIRECTORY_OFF, bucket_count + 1, 4, "glob directory")?;
        // The globs verified for every query: the records after the anchored ones.
        let records_end = field(H_RECORDS_OFF) as usize + field(H_RECORDS_LEN) as usize;
        let always_start = le_u32(directory, bucket_count * 4) as usize;
        if always_start > records_end || records_end > section_len {
            return Err(Error::corrupt(
                H_DIRECTORY_OFF,
                "glob index: records region out of bounds",
            ));
        }
        Ok(GlobIndex {
            section,
            fold,
            glob_count,
            edge_filters: bytes::slice(
                section,
                HEADER_LEN,
                edge_shapes * EDGE_FILTER_LEN,
                "glob edge filters",
            )?,
            bloom: table(H_BLOOM_OFF, bloom_words as usize, 8, "glob bloom filter")?,
            bloom_words: bloom_words as usize,

            gram_filter: table(H_GRAM_OFF, gram_words as usize, 8, "glob gram filter")?,
            gram_words: gram_words as usize,
            gram_shift: 64 - (gram_words * 64).trailing_zeros(),
            directory,
            bucket_count,
            record_index: table(H_INDEX_OFF, glob_count as usize, 4, "glob record index")?,
            always_start,
            always_end: records_end,
            masks,
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
        let at = id as usize * 4;
        let Some(off) = self.record_index.get(at..at + 4) else {
            return Err(Error::corrupt(
                0,
                format!("no glob {id}: the index has {}", self.glob_count),
            ));
        };
        let off = le_u32(off, 0) as usize;
        let record = self.record(off)?;
        if record.id != id {
            return Err(Error::corrupt(
                off,
                format!("glob record of glob {id} says it is glob {}", record.id),
            ));
        }
        Ok(GlobHit {
            id,
            pattern: pattern_str(off, record.pattern)?.as_bytes(),
            data_offset: record.data_offset,
        })
    }

    /// The record at section offset `off`.
    #[inline]
    fn record(&self, off: usize) -> Result<Record<'a>> {
        let head = bytes::slice(self.section, off, RECORD_HEAD, "glob record")?;
        let pattern = bytes::slice(
            self.section,
            off + RECORD_HEAD,
            le_u32(head, 20) as usize,
            "glob pattern",
        )?;
        Ok(Record {
            key: le_u64(head, 0),
            id: le_u32(head, 12),
            data_offset: le_u32(head, 16),
            edges: (
                u16::from_le_bytes([head[24], head[25]]) as usize,
                u16::from_le_bytes([head[26], head[27]]) as usize,
            ),
            pattern,
        })
    }

    #[inline]
    fn bloom_may_contain(&self, hash: u64) -> bool {
        let at = bloom_word_index(hash, self.bloom_words) * 8;
        let Some(w) = self.bloom.get(at..at + 8) else {
            return false;
        };
        let bits = bloom_bits(hash);
        le_u64(w, 0) & bits == bits
    }

    /// Whether some key of the `shape`-th prefix or suffix shape has `byte` at its edge.
    #[inline]
    fn edge_filter_has(&self, shape: usize, byte: u8) -> bool {
        self.edge_filters
            .get(shape * EDGE_FILTER_LEN + (byte >> 3) as usize)
            .is_some_and(|&f| f >> (byte & 7) & 1 != 0)
    }

    #[inline]
    fn gram_filter_has(&self, code: u64) -> bool {
        let bit = (code.wrapping_mul(GRAM_FILTER_MUL) >> self.gram_shift) as usize;
        self.gram_filter
            .get((bit >> 6) * 8 + (bit & 63) / 8)
            .is_some_and(|&byte| byte >> (bit & 7) & 1 != 0)
    }

    /// Adds the globs filed under `hash` whose check `passes`. The Bloom test is inlined into
    /// the hashing loops; the records are rarely reached.
    #[inline(always)]
    fn probe(&self, hash: u64, out: &mut Candidates, passes: impl Fn(u32) -> bool) -> Result<()> {
        if !self.bloom_may_contain(hash) {
            return Ok(());
        }
        self.probe_records(hash, out, passes)
    }

    /// Scans the key's directory bucket: records sorted by key, so the scan stops at the first
    /// larger key. Offsets only grow, so a damaged directory costs at most one pass over the
    /// records region.
    #[inline(never)]
    fn probe_records(
        &self,
        hash: u64,
        out: &mut Candidates,
        passes: impl Fn(u32) -> bool,
    ) -> Result<()> {
        let b = bucket_of(hash, self.bucket_count) * 4;
        let Some(bounds) = self.directory.get(b..b + 8) else {
            return Ok(());
        };
        let (mut at, end) = (le_u32(bounds, 0) as usize, le_u32(bounds, 4) as usize);
        while at < end {
            // Only the fixed part: the pattern is read if the glob is verified.
            let head = bytes::slice(self.section, at, RECORD_HEAD, "glob record")?;
            let key = le_u64(head, 0);
            if key >= hash {
                if key > hash {
                    break;
                }
                if passes(le_u32(head, 8)) {
                    out.push(le_u32(head, 12), at);
                }
            }
            at += RECORD_HEAD + le_u32(head, 20) as usize;
        }
        Ok(())
    }

    fn collect(&self, query: &[u8], out: &mut Candidates) -> Result<()> {
        // Hashing folds every byte it reads, and bytes are read several times (prefixes,
        // suffixes, grams, checks): fold a short query once, up front, instead.
        if !self.fold {
            return self.collect_as::<false>(query, out);
        }
        if query.len() <= SHORT_FOLD_BUFFER {
            self.collect_folded::<SHORT_FOLD_BUFFER>(query, out)
        } else if query.len() <= FOLD_BUFFER {
            self.collect_folded::<FOLD_BUFFER>(query, out)
        } else {
            self.collect_as::<true>(query, out)
        }
    }

    /// `collect` on a copy of `query` (at most `N` bytes) folded on the stack.
    #[inline(always)]
    fn collect_folded<const N: usize>(&self, query: &[u8], out: &mut Candidates) -> Result<()> {
        let mut folded = [0u8; N];
        folded[..query.len()].copy_from_slice(query);
        // Eight bytes at a time: bytes in A-Z gain 0x20, all others stay.
        for chunk in folded[..query.len().next_multiple_of(8).min(N)].chunks_exact_mut(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            chunk.copy_from_slice(&ascii_lowercase_word(u64::from_le_bytes(w)).to_le_bytes());
        }
        self.collect_as::<false>(&folded[..query.len()], out)
    }

    #[inline(always)]
    fn collect_as<const FOLD: bool>(&self, query: &[u8], out: &mut Candidates) -> Result<()> {
        let fold = FOLD;
        let [prefix_mask, suffix_mask, infix_mask] = self.masks;
        // Prefixes and suffixes: at each listed length whose edge filter has the query's byte
        // at the cut, hash the piece and probe. A check as long as the key is the key itself.
        // (Written out for each end: one generic loop for both measured ~40 instructions a
        // query more, the key hash then called out of line.)
        if prefix_mask != 0 && query.len() >= shortest(prefix_mask) {
            let checks = CheckMemo::default();
            let mut lengths = prefix_mask;
            for shape in 0.. {
                let len = lengths.trailing_zeros() as usize + 1;
                if lengths == 0 || len > query.len() {
                    break;
                }
                lengths &= lengths - 1;
                if !self.edge_filter_has(shape, fold_byte(query[len - 1], fold)) {
                    continue;
                }
                let key = prefix_key(&query[..len], fold);
                self.probe(key, out, |check| {
                    let n = check_len(check);
                    let ours = if n == len {
                        pack_check(n, key)
                    } else if n <= query.len() {
                        checks.get(n, || pack_check(n, prefix_key(&query[..n], fold)))
                    } else {
                        return false;
                    };
                    ours == check
                })?;
            }
        }
        if suffix_mask != 0 && query.len() >= shortest(suffix_mask) {
            let checks = CheckMemo::default();
            let mut lengths = suffix_mask;
            for shape in prefix_mask.count_ones() as usize.. {
                let len = lengths.trailing_zeros() as usize + 1;
                if lengths == 0 || len > query.len() {
                    break;
                }
                lengths &= lengths - 1;
                let piece = &query[query.len() - len..];
                if !self.edge_filter_has(shape, fold_byte(piece[0], fold)) {
                    continue;
                }
                let key = suffix_key(piece, fold);
                self.probe(key, out, |check| {
                    let n = check_len(check);
                    let ours = if n == len {
                        pack_check(n, key)
                    } else if n <= query.len() {
                        checks.get(n, || {
                            pack_check(n, suffix_key(&query[query.len() - n..], fold))
                        })
                    } else {
                        return false;
                    };
                    ours == check
                })?;
            }
        }
        // Grams: one rolling window over the query; each gram length the index uses is tested
        // against the gram bitmap (cheap, L1) before anything is hashed.
        let mut lengths = infix_mask;
        while lengths != 0 {
            let k = lengths.trailing_zeros() as usize + 1;
            lengths &= lengths - 1;
            if k > query.len() {
                break;
            }
            let shift = 32 - 8 * k as u32;
            let tag = (k as u64) << 32;
            // The last k query bytes, newest in the top byte.
            let mut window = 0u32;
            for &b in &query[..k - 1] {
                window = (window >> 8) | (fold_byte(b, fold) as u32) << 24;
            }
            for (start, &b) in query[k - 1..].iter().enumerate() {
                window = (window >> 8) | (fold_byte(b, fold) as u32) << 24;
                if !self.gram_filter_has((window >> shift) as u64 | tag) {
                    continue;
                }
                self.probe(gram_key(&query[start..start + k], fold), out, |check| {
                    let n = check_len(check);
                    query
                        .get(start..start + n)
                        .is_some_and(|span| pack_check(n, gram_key(span, fold)) == check)
                })?;
            }
        }
        Ok(())
    }

    #[inline]
    fn verify(&self, r: Record<'a>, query: &[u8], f: &mut impl FnMut(GlobHit<'a>)) {
        let (head, tail) = r.edges;
        if glob_match_split(r.pattern, head, tail, query, self.fold) {
            f(GlobHit {
                id: r.id,
                pattern: r.pattern,
                data_offset: r.data_offset,
            });
        }
    }

    /// Calls `f` for every glob matching `query`, in ascending id order, each once. Allocates
    /// nothing unless more than a few dozen globs are candidates.
    pub fn for_each_match(&self, query: &[u8], mut f: impl FnMut(GlobHit<'a>)) -> Result<()> {
        let mut candidates = Candidates::new();
        self.collect(query, &mut candidates)?;
        let mut found = candidates
            .sorted()
            .iter()
            .map(|&c| ((c >> 32) as u32, c as u32 as usize))
            .peekable();
        // Merge, by glob id, the candidates with the globs verified for every query (whose
        // records lie in id order after the anchored ones).
        let mut at = self.always_start;
        while at < self.always_end {
            let always = self.record(at)?;
            while let Some(&(id, off)) = found.peek() {
                if id > always.id {
                    break;
                }
                found.next();
                // (A damaged file may list a glob both ways: verify it once.)
                if id < always.id {
                    self.verify(self.record(off)?, query, &mut f);
                }
            }
            at = always.end(at);
            self.verify(always, query, &mut f);
        }
        for (_, off) in found {
            self.verify(self.record(off)?, query, &mut f);
        }
        Ok(())
    }

    /// A one-line summary of the index shape (keys, largest bucket, probe shapes), for tuning.
    #[doc(hidden)]
    pub fn debug_summary(&self) -> String {
        // Globs per key, from a walk over the anchored records (sorted by key).
        let (mut keys, mut largest, mut squares, mut always) = (0usize, 0usize, 0usize, 0usize);
        let (mut at, mut run, mut last) = (le_u32(self.directory, 0) as usize, 0usize, None);
        let mut tally = |run: usize| {
            keys += (run > 0) as usize;
            largest = largest.max(run);
            squares += run * run;
        };
        while let Ok(r) = self.record(at) {
            if at >= self.always_start {
                always += 1;
            } else if last == Some(r.key) {
                run += 1;
            } else {
                tally(run);
                (run, last) = (1, Some(r.key));
            }
            at = r.end(at);
        }
        tally(run);
        let lengths =
            |m: u64| -> Vec<u32> { (0..64).filter(|i| m >> i & 1 != 0).map(|i| i + 1).collect() };
        format!(
            "{} globs, {always} always, {keys} keys in {} directory buckets, largest key bucket \
             {largest}, mean key bucket of a glob {:.2}, bloom {} KiB, gram filter {} KiB, \
             prefix lengths {:?}, suffix lengths {:?}, gram lengths {:?}",
            self.glob_count,
            self.bucket_count,
            squares as f64 / (self.glob_count as f64).max(1.0),
            self.bloom_words / 128,
            self.gram_words / 128,
            lengths(self.masks[0]),
            lengths(self.masks[1]),
            lengths(self.masks[2]),
        )
    }

    /// Strict validation: records in bounds and tiling the region in canonical order,
    /// patterns valid UTF-8 globs, data offsets below `data_len`, every glob once (among the
    /// always-verified, or under a key and check a text it matches produces at a listed
    /// shape), the index and directory pointing where they must, byte-exact Bloom filter, gram
    /// bitmap and edge filters, canonical placement.
    /// Returns every glob's data offset, in id order.
    pub fn check(&self, data_len: usize) -> Result<Vec<u32>> {
        let s = self.section;
        let field = |off: usize| le_u32(s, off) as usize;
        let n = self.glob_count as usize;
        let always_count = field(H_ALWAYS);
        let anchored = n - always_count;

        // Canonical placement: every byte of the section is accounted for.
        let bloom_off = HEADER_LEN + self.edge_filters.len();
        let gram_off = bloom_off + self.bloom_words * 8;
        let directory_off = gram_off + self.gram_words * 8;
        let index_off = directory_off + self.directory.len();
        let records_off = index_off + n * 4;
        let records_end = records_off + field(H_RECORDS_LEN);
        for (at, want) in [
            (H_RESERVED, 0),
            (H_BLOOM_OFF, bloom_off),
            (H_GRAM_OFF, gram_off),
            (H_DIRECTORY_OFF, directory_off),
            (H_INDEX_OFF, index_off),
            (H_RECORDS_OFF, records_off),
            (H_SECTION_LEN, bytes::align8(records_end)),
        ] {
            if field(at) != want {
                return Err(Error::corrupt(
                    at,
                    format!("glob index header field is {}, expected {want}", field(at)),
                ));
            }
        }
        if s[records_end..].iter().any(|&b| b != 0) {
            return Err(Error::corrupt(
                records_end,
                "glob index padding is not zero",
            ));
        }

        // Records lie back to back: the anchored ones by (key, id), then the others by id,
        // every glob once, where the index says; patterns are valid globs filed under a key
        // and check their matches produce, at a listed shape.
        let mut data_offsets = vec![0u32; n];
        let mut seen = vec![false; n];
        let mut anchored_records = Vec::with_capacity(anchored);
        let mut anchored_end = records_off;
        let mut used_masks = [0u64; 3];
        let mut keys = Vec::new();
        let mut gram_codes = Vec::new();
        let mut edges = Vec::new();
        let mut previous: Option<(u64, u32)> = None;
        let mut next = records_off;
        for k in 0..n {
            let head = bytes::slice(&s[..records_end], next, RECORD_HEAD, "glob record")?;
            let (key, check, id, data_offset, len) = (
                le_u64(head, 0),
                le_u32(head, 8),
                le_u32(head, 12),
                le_u32(head, 16),
                le_u32(head, 20) as usize,
            );
            match seen.get_mut(id as usize) {
                None => return Err(Error::corrupt(next + 12, format!("glob {id} of {n}"))),
                Some(true) => {
                    return Err(Error::corrupt(
                        next + 12,
                        format!("glob {id} has two records"),
                    ))
                }
                Some(seen) => *seen = true,
            }
            let index_at = index_off + id as usize * 4;
            if field(index_at) != next {
                return Err(Error::corrupt(
                    index_at,
                    format!(
                        "glob {id}: index says record at {}, it is at {next}",
                        field(index_at)
                    ),
                ));
            }
            // No padding between records: a wrong length shifts every later record.
            let record = bytes::slice(&s[..records_end], next, RECORD_HEAD + len, "glob record")?;
            let text = std::str::from_utf8(&record[RECORD_HEAD..])
                .map_err(|_| Error::corrupt(next, format!("glob {id}: pattern is not UTF-8")))?;
            validate(text).map_err(|e| {
                Error::corrupt(next + RECORD_HEAD + e.position, format!("glob {id}: {e}"))
            })?;
            let (head_len, tail_len) = edge_hints(text.as_bytes());
            if record[24..28] != [head_len.to_le_bytes(), tail_len.to_le_bytes()].concat() {
                return Err(Error::corrupt(
                    next + 24,
                    format!("glob {id}: wrong literal head/tail lengths"),
                ));
            }
            if data_offset as usize >= data_len {
                return Err(Error::corrupt(
                    next + 16,
                    format!(
                        "glob {id}: data offset {data_offset} beyond the data section \
                         ({data_len} bytes)"
                    ),
                ));
            }
            data_offsets[id as usize] = data_offset;
            let order = if k < anchored { (key, id) } else { (0, id) };
            if k != anchored && previous.is_some_and(|p| p >= order) {
                return Err(Error::corrupt(
                    next,
                    format!("glob {id}: records out of order"),
                ));
            }
            previous = Some(order);
            if k < anchored {
                anchored_records.push((key, next));
                let runs = literal_runs(text.as_bytes(), self.fold).unwrap_or_default();
                let (kind, len, code) =
                    reachable_shape(&runs, key, check, self.masks).ok_or_else(|| {
                        Error::corrupt(
                            next,
                            format!(
                                "glob {id} is filed under a key or check its matches never \
                                 produce"
                            ),
                        )
                    })?;
                used_masks[kind as usize] |= 1 << (len - 1);
                match kind {
                    Kind::Infix => gram_codes.extend(code),
                    Kind::Prefix => edges.push((kind, len, edge_byte(&runs[0].bytes, kind, len))),
                    Kind::Suffix => {
                        let run = &runs[runs.len() - 1].bytes;
                        edges.push((kind, len, edge_byte(run, kind, len)))
                    }
                }
                keys.push(key);
            } else if key != 0 || check != 0 {
                return Err(Error::corrupt(
                    next,
                    format!("glob {id} is verified for every query but has a key"),
                ));
            }
            next += record.len();
            if k < anchored {
                anchored_end = next;
            }
        }
        let directory = build_directory(
            anchored_records.into_iter(),
            anchored_end,
            self.bucket_count,
        );
        if next != records_end {
            return Err(Error::corrupt(
                H_RECORDS_LEN,
                "glob records region has bytes no record uses",
            ));
        }
        for (i, &want) in directory.iter().enumerate() {
            let at = directory_off + i * 4;
            if field(at) != want {
                return Err(Error::corrupt(
                    at,
                    format!(
                        "glob directory bucket {i} starts at {}, expected {want}",
                        field(at)
                    ),
                ));
            }
        }
        for (kind, at) in [(0, H_PREFIX_MASK), (1, H_SUFFIX_MASK), (2, H_INFIX_MASK)] {
            if used_masks[kind] != self.masks[kind] {
                return Err(Error::corrupt(
                    at,
                    "glob shape mask lists shapes no key uses",
                ));
            }
        }
        if build_edge_filters(edges.into_iter()) != self.edge_filters {
            return Err(Error::corrupt(
                HEADER_LEN,
                "glob edge filters do not match the keys",
            ));
        }
        keys.dedup();
        let bloom = build_bloom(keys.into_iter(), self.bloom_words);
        let gram_filter = build_gram_filter(gram_codes.into_iter(), self.gram_words);
        for (i, w) in bloom.iter().chain(&gram_filter).enumerate() {
            let at = bloom_off + i * 8;
            if le_u64(s, at) != *w {
                return Err(Error::corrupt(at, "glob filters do not match the records"));
            }
        }
        Ok(data_offsets)
    }
}

/// The (kind, length) shape among those `masks` lists at which every text the glob with
/// literal `runs` matches produces key `hash` and, with it, a piece whose check is `check`; for
/// grams also the gram's bitmap code. `None` if there is none.
fn reachable_shape(
    runs: &[LiteralRun],
    hash: u64,
    check: u32,
    masks: [u64; 3],
) -> Option<(Kind, usize, Option<u64>)> {
    let n = check_len(check);
    let lengths = |mask: u64| (1..=64).filter(move |&len| mask >> (len - 1) & 1 != 0);
    // The listed length, if any, at which `key` of the run's first `len` bytes is `hash`.
    let edge = |run: &[u8], mask: u64, key: &dyn Fn(usize) -> u64| {
        lengths(mask).find(|&len| len <= run.len() && key(len) == hash)
    };
    if let Some(p) = runs.first().filter(|r| r.at_start).map(|r| &r.bytes[..]) {
        if n <= p.len() && pack_check(n, prefix_key(&p[..n], false)) == check {
            if let Some(len) = edge(p, masks[0], &|len| prefix_key(&p[..len], false)) {
                return Some((Kind::Prefix, len, None));
            }
        }
    }
    if let Some(p) = runs.last().filter(|r| r.at_end).map(|r| &r.bytes[..]) {
        if n <= p.len() && pack_check(n, suffix_key(&p[p.len() - n..], false)) == check {
            if let Some(len) = edge(p, masks[1], &|len| suffix_key(&p[p.len() - len..], false)) {
                return Some((Kind::Suffix, len, None));
            }
        }
    }
    for k in lengths(masks[2]) {
        for run in runs {
            let r = &run.bytes;
            for at in 0..(r.len() + 1).saturating_sub(k.max(n)) {
                if gram_key(&r[at..at + k], false) == hash
                    && pack_check(n, gram_key(&r[at..at + n], false)) == check
                {
                    return Some((Kind::Infix, k, Some(gram_code(&r[at..at + k]))));
                }
            }
        }
    }
    None
}

// Shape masks have one bit per length 1..=64.
const _: () = assert!(LENGTH_CLASSES[LENGTH_CLASSES.len() - 1] <= MAX_PIECE && MAX_PIECE == 64);

#[cfg(test)]
mod tests {
    use super::super::pattern::glob_match;
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
    fn word_lowercase_matches_bytewise() {
        for b in 0u8..=255 {
            let bytes = [b, b'A', b'z', b'@', b'[', b'Z', 0xC3, b'`'];
            let want = u64::from_le_bytes(bytes.map(|x| x.to_ascii_lowercase()));
            assert_eq!(
                ascii_lowercase_word(u64::from_le_bytes(bytes)),
                want,
                "{b:#x}"
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
            (&b"host[0-9][0-9].evil.com"[..], 40)
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
            vec![
                (&b"*.a"[..], 100),
                (&b"b*"[..], 101),
                (&b"*.A"[..], 102),
                (&b"c?"[..], 104)
            ]
        );

        let (section, pairs) = add_all(true).finish(KeepDuplicate::Last).unwrap();
        assert_eq!(pairs, vec![(10, 7), (10, 9)]);
        let index = GlobIndex::new(&section, true).unwrap();
        let summary: Vec<_> = (0..index.len() as u32)
            .map(|i| index.get(i).unwrap())
            .map(|h| (h.pattern, h.data_offset))
            .collect();
        assert_eq!(
            summary,
            vec![(&b"b*"[..], 101), (&b"*.a"[..], 103), (&b"c?"[..], 104)]
        );
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
    fn rarely_used_shapes_are_dropped() {
        // 1000 suffixes of 12 bytes share one probe length; a lone 17-byte suffix would add a
        // second one for every query, so it is cut to 12 bytes instead.
        let mut globs: Vec<String> = (0..1000).map(|i| format!("*.dom{i:04}.com")).collect();
        globs.push("*.longer-name.com".into());
        let refs: Vec<&str> = globs.iter().map(|s| s.as_str()).collect();
        let section = build(&refs, false);
        let index = GlobIndex::new(&section, false).unwrap();
        index.check(100_000).unwrap();
        assert_eq!(index.masks, [0, 1 << 11, 0]);
        assert_eq!(matches(&index, "www.longer-name.com"), vec![1000]);
        assert_eq!(matches(&index, "x.dom0042.com"), vec![42]);
        assert_eq!(matches(&index, "x.shorter-name.com"), Vec::<u32>::new());
    }

    #[test]
    fn gram_anchors_prefer_a_check_longer_than_the_gram() {
        // Each glob's rarest gram is its run's last four digits, whose check would be those
        // digits alone; filed there, every query holding them (`a.m1039048.com` holds `0390`)
        // would verify the glob. Filed under a shared gram checked beyond itself, none does.
        let globs = ["*mid20390*dle*", "*mid20391*dle*", "*mid20392*dle*"];
        let section = build(&globs, false);
        let index = GlobIndex::new(&section, false).unwrap();
        index.check(10_000).unwrap();
        for q in ["a.m1039048.com", "x0391x", "0392", "mid0390dle"] {
            let mut candidates = Candidates::new();
            index.collect(q.as_bytes(), &mut candidates).unwrap();
            assert_eq!(candidates.sorted(), &[] as &[u64], "{q}");
        }
        assert_eq!(matches(&index, "xmid20391-dle"), vec![1]);
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
    fn a_section_of_another_version_asks_for_a_rebuild() {
        let (mut section, _) = sample_section(false);
        section[H_VERSION..H_VERSION + 4].copy_from_slice(&1u32.to_le_bytes());
        let err = GlobIndex::new(&section, false).unwrap_err().to_string();
        assert!(
            err.contains("version 1") && err.contains("rebuild"),
            "{err}"
        );
    }

    #[test]
    fn truncations_fail_cleanly() {
        let (section, _) = sample_section(false);
        let records_off = bytes::u32_le(&section, H_RECORDS_OFF, "").unwrap() as usize;
        for len in 0..section.len() {
            assert!(GlobIndex::new(&section[..len], false).is_err(), "len {len}");
            let mut padded = section[..len].to_vec();
            padded.resize(section.len(), 0);
            // Cutting into the patterns may leave valid, reachable patterns (the file
            // checksum catches that); cutting into the tables may not go unnoticed.
            let result = exercise(&padded, false);
            if len < records_off {
                assert!(!matches!(result, Some(Ok(_))), "len {len}");
            }
        }
    }

    #[test]
    fn check_catches_every_flip_in_header_and_tables() {
        for fold in [false, true] {
            let (section, _) = sample_section(fold);
            let records_off = bytes::u32_le(&section, H_RECORDS_OFF, "").unwrap() as usize;
            let index_off = bytes::u32_le(&section, H_INDEX_OFF, "").unwrap() as usize;
            // Record key, check, id, pattern length and literal edge fields (all but the
            // data offset).
            let record_fields: Vec<usize> = (index_off..records_off)
                .step_by(4)
                .map(|at| bytes::u32_le(&section, at, "").unwrap() as usize)
                .flat_map(|rec| (rec..rec + 16).chain(rec + 20..rec + RECORD_HEAD))
                .collect();
            for pos in 0..section.len() {
                for bit in 0..8 {
                    let mut bad = section.clone();
                    bad[pos] ^= 1 << bit;
                    let result = exercise(&bad, fold);
                    let in_tables = pos < records_off;
                    let in_record_pattern_fields = record_fields.contains(&pos);
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
