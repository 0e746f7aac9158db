//! An in-memory multibit index over the IPv4 subtree of a search tree, so that an IPv4 lookup
//! reads a direct table, at most three small nodes and one small leaf instead of following up
//! to 32 dependent tree records (each a likely cache miss in a large tree).
//!
//! The shape is a "poptrie" (Asai and Ohara, SIGCOMM 2015): a direct table indexed by the first
//! `direct_bits` address bits, then nodes of [`STRIDE`] bits. A node has two 64-bit maps: which
//! of its 64 children are nodes, and where a run of equal leaves starts; children and leaf ids
//! are stored contiguously, so the child for slot `i` is found by counting the set bits at or
//! below `i` (a popcount). A node is one 64-byte cache line: the two maps, where its children
//! and leaf runs start, and the leaf ids of up to 20 (or 10) runs themselves, so that a lookup
//! ending in a node (most do) waits for one line of the index rather than two (the node, then
//! its entry in the leaf-id array, which only nodes with more runs are read through). The nodes
//! live in memory advised for 2 MiB pages, which spares most lookups a TLB miss as well.
//!
//! A leaf is what the walk would have returned: the tree record and its depth. Leaves are stored
//! once each (GeoLite2-Country has about 19,000 distinct ones) and the direct table and nodes
//! hold their ids, so the leaf a lookup ends with is read from a small, hot table. The prefix-
//! table code of each leaf slot (matchy files: the network the record was inserted as) is kept
//! in arrays parallel to the direct table and the leaf ids, read only when a match's network is
//! asked for ([`CodeAt`]), so that codes do not multiply the distinct leaves. Where the walk
//! would fail (a path longer than 32 bits, a record that cannot be read), the leaf says "resume
//! the walk at this node" and the walk reports the error. A damaged tree that would make the
//! index larger than the tree itself (shared nodes multiplying the paths) gets no index, and
//! lookups walk.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::encode::PassThrough;
use super::tree::{RecordAt, Shape, TreeHit, DATA_SECTION_SEPARATOR_LEN};
use crate::hash::fmix64;

/// Address bits one node consumes.
pub(super) const STRIDE: u32 = 6;

/// Direct-table entries with this bit set are leaf ids; others are node indexes.
const LEAF_TAG: u32 = 1 << 31;

/// How a walk from the subtree's start ends for one address range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// [`ANSWER`](Self::ANSWER): `record` (`>= node_count`) answers, "not found" or a data
    /// pointer. [`RESUME`](Self::RESUME): the walk resumes at node `record`.
    pub kind: u8,
    /// Address bits consumed when the record was read, counting from the subtree's start (for
    /// a resume leaf: bits consumed on arriving at the node).
    pub depth: u8,
    pub record: u32,
}

impl Leaf {
    pub const ANSWER: u8 = 0;
    pub const RESUME: u8 = 1;

    fn resume(node: u32, depth: u32) -> Leaf {
        Leaf {
            kind: Leaf::RESUME,
            depth: depth as u8,
            record: node,
        }
    }
}

/// Where a lookup's prefix-table code is kept (read by the index when the network is asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeAt(u32);

impl CodeAt {
    /// Set for a direct-table slot, clear for a position in `leaf_ids`.
    const DIRECT: u32 = 1 << 31;
}

/// The leaf id of each leaf run, in 2 bytes when there are few distinct leaves (most files:
/// GeoLite2-Country has about 19,000), which halves the array lookups miss in.
#[derive(Clone, Debug)]
enum LeafIds {
    Narrow(Box<[u16]>),
    Wide(Box<[u32]>),
}

impl LeafIds {
    fn new(ids: Vec<u32>, distinct: usize) -> LeafIds {
        if distinct <= 1 << 16 {
            LeafIds::Narrow(ids.into_iter().map(|id| id as u16).collect())
        } else {
            LeafIds::Wide(ids.into_boxed_slice())
        }
    }

    #[inline(always)]
    fn get(&self, run: usize) -> usize {
        match self {
            LeafIds::Narrow(ids) => usize::from(ids[run]),
            LeafIds::Wide(ids) => ids[run] as usize,
        }
    }
}

/// Leaf ids a node holds itself, so that a lookup ending in it reads one cache line: 24 bytes of
/// node and 40 of ids fill 64: 20 ids below 2^16 or 10 of 4 bytes (files whose entries each have
/// data of their own have more distinct leaves), and most nodes have fewer runs
/// (GeoLite2-Country: 4.9 on average).
const INLINE_IDS: usize = 20;

/// The top bits of `Node::first_leaf`: whether `Node::inline` holds the node's leaf ids, as
/// 2-byte ids ([`INLINE_NARROW`]) or as 4-byte ids in pairs of halves, low half first
/// ([`INLINE_WIDE`]). The rest is the position in `leaf_ids`.
const INLINE_BITS: u32 = 0b11 << 30;
const INLINE_NARROW: u32 = 0b10 << 30;
const INLINE_WIDE: u32 = 0b11 << 30;

/// One cache line: a lookup that ends in a node reads nothing else but the (small, hot) leaf.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Node {
    /// Bit `i`: child `i` is a node (`first_child + rank`), else a leaf.
    children: u64,
    /// Bit `i`: leaf slot `i` differs from the previous leaf slot, in its leaf or its code
    /// (starts a run in `leaf_ids`).
    leaf_runs: u64,
    first_child: u32,
    /// Position of the node's first run in `leaf_ids` (and `run_codes`), with
    /// [`INLINE_BITS`] saying whether and how `inline` holds the ids too.
    first_leaf: u32,
    /// The leaf ids of the node's runs, when they fit.
    inline: [u16; INLINE_IDS],
}

impl Node {
    /// The leaf id of run `rank` (from 0) of this node, if the node holds it.
    #[inline(always)]
    fn inline_id(&self, rank: usize) -> Option<usize> {
        match self.first_leaf & INLINE_BITS {
            INLINE_NARROW => self.inline.get(rank).map(|&id| usize::from(id)),
            INLINE_WIDE => {
                let halves = self.inline.get(2 * rank..2 * rank + 2)?;
                Some(usize::from(halves[0]) | usize::from(halves[1]) << 16)
            }
            _ => None,
        }
    }

    /// Copies the node's leaf ids into `inline` if they fit.
    fn hold_ids(&mut self, ids: &[u32]) {
        if ids.len() <= INLINE_IDS && ids.iter().all(|&id| id <= u32::from(u16::MAX)) {
            for (inline, &id) in self.inline.iter_mut().zip(ids) {
                *inline = id as u16;
            }
            self.first_leaf |= INLINE_NARROW;
        } else if ids.len() <= INLINE_IDS / 2 {
            for (halves, &id) in self.inline.chunks_exact_mut(2).zip(ids) {
                halves.copy_from_slice(&[id as u16, (id >> 16) as u16]);
            }
            self.first_leaf |= INLINE_WIDE;
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct StrideIndex {
    /// The tree's, to tell "not found" and data records apart in [`answer`](Self::answer).
    node_count: u32,
    /// Depth of the subtree's start in the tree (96 in IPv6 trees), for callers that report
    /// depths from the root.
    start_depth: u8,
    direct_bits: u32,
    direct: Box<[u32]>,
    nodes: Box<[Node]>,
    leaf_ids: LeafIds,
    leaves: Box<[Leaf]>,
    /// Prefix-table codes parallel to `direct` and `leaf_ids` (empty without a prefix table).
    direct_codes: Box<[u8]>,
    run_codes: Box<[u8]>,
}

impl StrideIndex {
    /// Indexes the 32-bit subtree under `start` (a node index `< node_count`); `prefixes` is the
    /// file's prefix table (2 codes per node) or empty; `start_depth` where `start` is in the
    /// tree. `None` if the tree is too damaged to index within the size of the tree.
    pub(super) fn build(
        tree: &Shape<'_>,
        prefixes: &[u8],
        start: u32,
        start_depth: u8,
    ) -> Option<StrideIndex> {
        // A small tree needs no 2^16 table (256 KiB) to be fast.
        let direct_bits = if tree.node_count > 1 << 14 { 16 } else { 8 };
        let mut b = Builder {
            tree,
            prefixes,
            nodes: Vec::new(),
            leaf_ids: Vec::new(),
            run_codes: Vec::new(),
            leaves: Vec::new(),
            ids: HashMap::default(),
            // In an undamaged tree each index node stands for a distinct tree node and each leaf
            // run for a distinct record, so these bounds are never reached.
            node_budget: tree.node_count as usize,
            leaf_budget: 2 * tree.node_count as usize + (1 << direct_bits),
        };
        let mut slots: Vec<Slot> = vec![0; 1 << direct_bits];
        b.fill(start, 0, 0, 0, direct_bits, &mut slots);
        let mut direct = Vec::with_capacity(slots.len());
        let mut direct_codes =
            Vec::with_capacity(if prefixes.is_empty() { 0 } else { slots.len() });
        for slot in slots {
            let (entry, code) = if slot & NODE_SLOT != 0 {
                let at = b.reserve_nodes(1)?;
                b.nodes[at] = b.node(slot as u32, direct_bits)?;
                (at as u32, 0)
            } else {
                (LEAF_TAG | b.leaf_id(slot)?, (slot >> CODE_SHIFT) as u8)
            };
            direct.push(entry);
            if !prefixes.is_empty() {
                direct_codes.push(code);
            }
        }
        Some(StrideIndex {
            node_count: tree.node_count,
            start_depth,
            direct_bits,
            direct: direct.into_boxed_slice(),
            nodes: huge_page_copy(&b.nodes),
            leaf_ids: LeafIds::new(b.leaf_ids, b.leaves.len()),
            leaves: b.leaves.into_boxed_slice(),
            direct_codes: direct_codes.into_boxed_slice(),
            run_codes: b.run_codes.into_boxed_slice(),
        })
    }

    /// The leaf answering `key` (an IPv4 address), and where its prefix-table code is.
    #[inline(always)]
    pub(super) fn lookup(&self, key: u32) -> (Leaf, CodeAt) {
        let slot = key >> (32 - self.direct_bits);
        let entry = self.direct[slot as usize];
        if entry & LEAF_TAG != 0 {
            return (
                self.leaves[(entry & !LEAF_TAG) as usize],
                CodeAt(CodeAt::DIRECT | slot),
            );
        }
        let mut node = &self.nodes[entry as usize];
        // The unread bits at the top, zeros below: a stride reaching past bit 32 was built
        // with the same zero padding.
        let mut rest = (u64::from(key) << 32) << self.direct_bits;
        loop {
            let slot = (rest >> (64 - STRIDE)) as u32;
            let upto = u64::MAX >> (63 - slot);
            if node.children >> slot & 1 != 0 {
                let rank = (node.children & upto).count_ones() as usize;
                node = &self.nodes[node.first_child as usize + rank - 1];
                rest <<= STRIDE;
            } else {
                let rank = (node.leaf_runs & upto).count_ones();
                let run = (node.first_leaf & !INLINE_BITS) + rank - 1;
                let id = node
                    .inline_id(rank as usize - 1)
                    .unwrap_or_else(|| self.leaf_ids.get(run as usize));
                return (self.leaves[id], CodeAt(run));
            }
        }
    }

    /// What the tree says for `key`, if the index knows it alone: `Ok(None)` "not found",
    /// `Ok(Some(hit))` data (the depth counted from the subtree's start). `Err(leaf)`: a
    /// [`Leaf::RESUME`] leaf, where the walk must go on (and report the damage it meets).
    #[inline(always)]
    pub(crate) fn answer(&self, key: u32) -> Result<Option<TreeHit>, Leaf> {
        let (leaf, code_at) = self.lookup(key);
        if leaf.kind != Leaf::ANSWER {
            return Err(leaf);
        }
        // Records into the separator were made resume leaves: this is "not found" or data.
        let past_nodes = leaf.record - self.node_count;
        Ok(past_nodes
            .checked_sub(DATA_SECTION_SEPARATOR_LEN)
            .map(|data_offset| TreeHit {
                data_offset: data_offset as usize,
                at: RecordAt::Indexed(code_at),
                depth: leaf.depth,
            }))
    }

    /// Depth of the indexed subtree's start in the tree: 96 in IPv6 trees, 0 in IPv4 trees.
    #[inline(always)]
    pub(crate) fn start_depth(&self) -> u8 {
        self.start_depth
    }

    /// The prefix-table code of a lookup's leaf slot (0 without a prefix table).
    pub(super) fn code(&self, at: CodeAt) -> u8 {
        let codes = if at.0 & CodeAt::DIRECT != 0 {
            &self.direct_codes
        } else {
            &self.run_codes
        };
        codes
            .get((at.0 & !CodeAt::DIRECT) as usize)
            .copied()
            .unwrap_or(0)
    }
}

impl StrideIndex {
    /// Table sizes and the share of the address space answered at each level (0: the direct
    /// table, k: the k-th node), for tuning.
    pub(super) fn debug_summary(&self) -> String {
        let mut ends = [0f64; 8];
        let direct_share = 1.0 / self.direct.len() as f64;
        for &entry in self.direct.iter() {
            if entry & LEAF_TAG != 0 {
                ends[0] += direct_share;
            } else {
                self.node_ends(entry as usize, 1, direct_share, &mut ends);
            }
        }
        let leaf_id_bytes = match &self.leaf_ids {
            LeafIds::Narrow(ids) => ids.len() * 2,
            LeafIds::Wide(ids) => ids.len() * 4,
        };
        format!(
            "direct 2^{} ({} KiB), {} nodes ({} with inline ids, {} KiB), {} leaf runs ({} KiB), \
             {} leaves, codes {} KiB; address space ending per level: {:.3?}",
            self.direct_bits,
            self.direct.len() * 4 / 1024,
            self.nodes.len(),
            self.nodes
                .iter()
                .filter(|n| n.first_leaf & INLINE_BITS != 0)
                .count(),
            self.nodes.len() * std::mem::size_of::<Node>() / 1024,
            match &self.leaf_ids {
                LeafIds::Narrow(ids) => ids.len(),
                LeafIds::Wide(ids) => ids.len(),
            },
            leaf_id_bytes / 1024,
            self.leaves.len(),
            (self.direct_codes.len() + self.run_codes.len()) / 1024,
            ends
        )
    }

    fn node_ends(&self, node: usize, level: usize, share: f64, ends: &mut [f64; 8]) {
        let n = self.nodes[node];
        let slot_share = share / 64.0;
        let mut rank = 0;
        for i in 0..64 {
            if n.children >> i & 1 != 0 {
                self.node_ends(n.first_child as usize + rank, level + 1, slot_share, ends);
                rank += 1;
            } else {
                ends[level.min(7)] += slot_share;
            }
        }
    }
}

/// A copy of `items` in memory the kernel may back with 2 MiB pages (transparent huge pages
/// in `madvise` mode): lookups read the index at random, and with 4 KiB pages a multi-megabyte
/// table also misses the TLB on most of them. Only the 2 MiB-aligned interior of the copy can
/// be advised (at least 2 MiB of a table of 4 MiB or more).
fn huge_page_copy<T: Copy>(items: &[T]) -> Box<[T]> {
    const HUGE: usize = 2 << 20;
    if std::mem::size_of_val(items) < 2 * HUGE {
        return items.into();
    }
    let mut copy: Vec<T> = Vec::with_capacity(items.len());
    #[cfg(target_os = "linux")]
    {
        let start = copy.as_ptr() as usize;
        let end = start + copy.capacity() * std::mem::size_of::<T>();
        let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if to > from {
            // SAFETY: advice about pages of this vector's own buffer, not yet written;
            // MADV_HUGEPAGE changes no contents and fails harmlessly where unsupported.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    copy.extend_from_slice(items);
    // Capacity is the length: no reallocation (which would lose the advice).
    copy.into_boxed_slice()
}

/// A slot while building, packed so that slots fill and compare as words: a tree node to index
/// next ([`NODE_SLOT`] set, node in the low 32 bits), or a leaf and its prefix-table code
/// (record: bits 0..32, depth: 32..40, kind: 40..48, code: 48..56).
type Slot = u64;
const NODE_SLOT: Slot = 1 << 63;
const CODE_SHIFT: u32 = 48;

fn leaf_slot(leaf: Leaf, code: u8) -> Slot {
    u64::from(leaf.record)
        | u64::from(leaf.depth) << 32
        | u64::from(leaf.kind) << 40
        | u64::from(code) << CODE_SHIFT
}

/// The leaf of a leaf slot, without its code.
fn slot_leaf(slot: Slot) -> Leaf {
    Leaf {
        record: slot as u32,
        depth: (slot >> 32) as u8,
        kind: (slot >> 40) as u8,
    }
}

struct Builder<'t> {
    tree: &'t Shape<'t>,
    prefixes: &'t [u8],
    nodes: Vec<Node>,
    leaf_ids: Vec<u32>,
    run_codes: Vec<u8>,
    leaves: Vec<Leaf>,
    /// Leaf slot without code (as the fmix64 bijection of it) -> leaf id.
    ids: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    node_budget: usize,
    leaf_budget: usize,
}

impl Builder<'_> {
    /// Sets the slots under tree node `node` (reached after `depth` address bits, `rel` bits
    /// into a stride of `bits`, along the stride-relative path `prefix`).
    fn fill(&self, node: u32, depth: u32, rel: u32, prefix: usize, bits: u32, slots: &mut [Slot]) {
        let node_count = self.tree.node_count;
        for side in 0..2 {
            let (path, depth, rel) = (prefix << 1 | side as usize, depth + 1, rel + 1);
            let resume = leaf_slot(Leaf::resume(node, depth - 1), 0);
            let slot = match self.tree.record(node, side) {
                None => resume,
                // Into the separator: the walk reports it, with the record's offset.
                Some(record)
                    if record > node_count && record - node_count < DATA_SECTION_SEPARATOR_LEN =>
                {
                    resume
                }
                Some(record) if record >= node_count => leaf_slot(
                    Leaf {
                        kind: Leaf::ANSWER,
                        depth: depth as u8,
                        record,
                    },
                    self.prefixes
                        .get(node as usize * 2 + side as usize)
                        .copied()
                        .unwrap_or(0),
                ),
                // A node below bit 32: the walk reports the overlong path.
                Some(_) if depth == 32 => resume,
                Some(record) if rel == bits => NODE_SLOT | u64::from(record),
                Some(record) => {
                    self.fill(record, depth, rel, path, bits, slots);
                    continue;
                }
            };
            // Past bit 32 the remaining stride bits are padding: every padded slot is this one.
            slots[path << (bits - rel)..(path + 1) << (bits - rel)].fill(slot);
        }
    }

    /// The index node for the stride starting at tree node `node`, `depth` bits down.
    fn node(&mut self, node: u32, depth: u32) -> Option<Node> {
        let mut slots = [0 as Slot; 1 << STRIDE];
        self.fill(node, depth, 0, 0, STRIDE, &mut slots);
        let mut out = Node {
            first_leaf: self.leaf_ids.len() as u32,
            ..Node::default()
        };
        let mut previous = NODE_SLOT; // no leaf slot equals it
        let mut child_nodes = [0u32; 1 << STRIDE];
        let mut children = 0;
        for (i, &slot) in slots.iter().enumerate() {
            if slot & NODE_SLOT != 0 {
                out.children |= 1 << i;
                child_nodes[children] = slot as u32;
                children += 1;
            } else if slot != previous {
                // Run positions leave the top two bits of `first_leaf` free (`INLINE_BITS`).
                if self.leaf_ids.len() >= self.leaf_budget.min(1 << 30) {
                    return None;
                }
                let id = self.leaf_id(slot)?;
                self.leaf_ids.push(id);
                if !self.prefixes.is_empty() {
                    self.run_codes.push((slot >> CODE_SHIFT) as u8);
                }
                out.leaf_runs |= 1 << i;
                previous = slot;
            }
        }
        out.hold_ids(&self.leaf_ids[out.first_leaf as usize..]);
        // Children are contiguous: reserve them all, then fill each (depth first).
        let first = self.reserve_nodes(children)?;
        out.first_child = first as u32;
        for (k, &child) in child_nodes[..children].iter().enumerate() {
            self.nodes[first + k] = self.node(child, depth + STRIDE)?;
        }
        Some(out)
    }

    /// The id of a leaf slot's leaf in the table of distinct leaves.
    fn leaf_id(&mut self, slot: Slot) -> Option<u32> {
        let next = self.leaves.len() as u32;
        // fmix64 is a bijection: distinct leaves keep distinct keys.
        let key = fmix64(slot & !(0xFF << CODE_SHIFT));
        let id = *self.ids.entry(key).or_insert(next);
        if id == next {
            if next >= LEAF_TAG {
                return None;
            }
            self.leaves.push(slot_leaf(slot));
        }
        Some(id)
    }

    fn reserve_nodes(&mut self, n: usize) -> Option<usize> {
        let at = self.nodes.len();
        if at + n > self.node_budget || at + n >= LEAF_TAG as usize {
            return None;
        }
        self.nodes.resize(at + n, Node::default());
        Some(at)
    }
}
