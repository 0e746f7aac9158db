//! Reading the MaxMind DB binary search tree: longest-prefix lookups of IP addresses
//! ([`SearchTree::lookup`]) and strict whole-tree validation ([`SearchTree::check`]).
//! The tree is the first part of the file, so every offset named in an error is a file offset.
//!
//! # On-disk layout (MaxMind DB spec, "Binary Search Tree Section")
//!
//! `node_count` nodes, node `i` at byte `i * record_size / 4`; each node holds a left record
//! (followed for a 0 bit) and a right record (1 bit), unsigned big-endian:
//!
//! ```text
//! 24-bit records, 6 bytes/node: [L23..L16][L15..L8][L7..L0][R23..R16][R15..R8][R7..R0]
//! 28-bit records, 7 bytes/node: [L23..L16][L15..L8][L7..L0][L27..L24|R27..R24][R23..R16][R15..R8][R7..R0]
//! 32-bit records, 8 bytes/node: [L31..L24][L23..L16][L15..L8][L7..L0][R31..R24]..[R7..R0]
//! ```
//!
//! (in the 28-bit layout the middle byte carries the top nibble of the left record in its high
//! half and the top nibble of the right record in its low half). A record value `v` means:
//!
//! * `v < node_count`: go on at node `v` with the next address bit (the root is node 0);
//! * `v == node_count`: the address is not in the database;
//! * `node_count < v < node_count + 16`: invalid (would point into the 16-byte separator);
//! * `v >= node_count + 16`: data at data-section offset `v - node_count - 16`.
//!
//! The first address bit is the most significant one. An IPv4 tree (`ip_version` 4) is 32 bits
//! deep at most, an IPv6 tree 128. In an IPv6 tree IPv4 addresses live at `::a.b.c.d`, i.e. under
//! the node reached by 96 zero bits (the "IPv4 subtree"); writers commonly alias other prefixes
//! (`::ffff:0:0/96`, `2002::/16`) to that same node, so a node may be reachable more than once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;

pub use super::stride::CodeAt;
use super::stride::StrideIndex;
use crate::error::{Error, Result};

/// Size of the all-zero separator between the tree and the data section; record values
/// `node_count + 1 ..= node_count + 15` would point into it.
pub const DATA_SECTION_SEPARATOR_LEN: u32 = 16;

/// A read-only view of a MaxMind DB search tree, with its [`TreeIndex`] (built on the first
/// lookup when made by [`new`](Self::new), so opening stays O(1): the tables' first touches of
/// the mapped tree cost page faults; borrowed when made by [`with_index`](Self::with_index)).
#[derive(Clone, Debug)]
pub struct SearchTree<'a> {
    tree: &'a [u8],
    /// The file's prefix table (matchy files), copied into the index's leaves; may be empty.
    prefixes: &'a [u8],
    node_count: u32,
    record_size: u16,
    ip_version: u16,
    index: LazyIndex<'a>,
}

#[derive(Clone, Debug)]
enum LazyIndex<'a> {
    Borrowed(&'a TreeIndex),
    Lazy(OnceLock<TreeIndex>),
}

/// What lookups precompute about a tree, owning no tree bytes (so a database can keep it next
/// to its memory map): where the IPv4 and IPv4-mapped subtrees start, a jump table that
/// replaces the first [`JUMP_BITS`] steps of an IPv6 lookup from the root by one table read
/// (both built at once: at most 2^13 record reads), and a slot for the `StrideIndex` of the
/// IPv4 subtree, which IPv4 lookups read instead of walking once it is built. That one reads
/// every record of the subtree (about 60 ms and 9 MB for GeoLite2-Country's 1.6M-node tree), so
/// it is built only after [`STRIDE_AFTER_LOOKUPS`] IPv4 lookups (a one-off query never pays for
/// it), or when asked ([`SearchTree::build_ip_index`]); lookups never wait for it, they walk
/// until it is ready. Build a `TreeIndex` once per opened database; [`SearchTree::with_index`]
/// then makes a view in O(1).
#[derive(Clone)]
pub struct TreeIndex {
    tree_len: usize,
    node_count: u32,
    record_size: u16,
    ip_version: u16,
    /// Where `::/96` leads: IPv4 lookups start here (in an IPv4 tree, the root).
    ipv4: Subtree,
    /// Where `::ffff:0:0/96` leads (IPv6 trees; usually aliased to the IPv4 subtree).
    mapped: Subtree,
    /// Lookups in the IPv4 subtree, once built (if `ipv4` is a node).
    ipv4_stride: LazyStride,
    /// IPv6 lookups from the root after their first `JUMP_BITS` bits (IPv6 trees).
    root_jump: Box<JumpTable>,
}

impl std::fmt::Debug for TreeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeIndex")
            .field("node_count", &self.node_count)
            .field("record_size", &self.record_size)
            .field("ip_version", &self.ip_version)
            .field("ipv4", &self.ipv4)
            .field("mapped", &self.mapped)
            .finish_non_exhaustive()
    }
}

impl TreeIndex {
    /// Indexes `tree_bytes` (exactly the tree: `node_count * record_size / 4` bytes). Fails on
    /// a record size other than 24/28/32, an IP version other than 4/6, zero nodes, or a length
    /// mismatch; damage inside the tree is left for lookups and `check` to report.
    pub fn new(
        tree_bytes: &[u8],
        node_count: u32,
        record_size: u16,
        ip_version: u16,
    ) -> Result<TreeIndex> {
        check_shape(tree_bytes, node_count, record_size, ip_version)?;
        Ok(TreeIndex::build(
            tree_bytes,
            node_count,
            record_size,
            ip_version,
        ))
    }

    /// [`new`](Self::new) for a shape already checked.
    fn build(tree_bytes: &[u8], node_count: u32, record_size: u16, ip_version: u16) -> TreeIndex {
        let tree = Shape {
            tree: tree_bytes,
            node_count,
            record_size,
        };
        let (mut ipv4, mut mapped, root_jump) = if ip_version == 6 {
            let root_jump = tree.jump_table(0);
            (
                tree.follow_96_bits(0),
                tree.follow_96_bits(0xFFFF),
                root_jump,
            )
        } else {
            let root = Subtree::Node {
                node: 0,
                indexed: false,
            };
            (root, root, Box::new([JumpEntry::default(); 1 << JUMP_BITS]))
        };
        if let Subtree::Node {
            node: ipv4,
            indexed,
        } = &mut ipv4
        {
            *indexed = true;
            if let Subtree::Node { node, indexed } = &mut mapped {
                *indexed = *node == *ipv4;
            }
        }
        TreeIndex {
            tree_len: tree_bytes.len(),
            node_count,
            record_size,
            ip_version,
            ipv4,
            mapped,
            ipv4_stride: LazyStride::default(),
            root_jump,
        }
    }
}

/// IPv4 lookups on a snapshot before its stride index is built (see [`TreeIndex`]).
pub const STRIDE_AFTER_LOOKUPS: u32 = 1000;

/// The IPv4 stride index of a [`TreeIndex`], built on demand by one thread while the others
/// walk. `cell` holds `None` if the tree could not be indexed.
#[derive(Default)]
struct LazyStride {
    cell: OnceLock<Option<StrideIndex>>,
    lookups: AtomicU32,
    building: AtomicBool,
}

impl Clone for LazyStride {
    fn clone(&self) -> Self {
        LazyStride {
            cell: self.cell.clone(),
            ..LazyStride::default()
        }
    }
}

/// Rejects what no tree can be: bad record size or IP version, no nodes, wrong length.
fn check_shape(
    tree_bytes: &[u8],
    node_count: u32,
    record_size: u16,
    ip_version: u16,
) -> Result<()> {
    if !matches!(record_size, 24 | 28 | 32) {
        return Err(Error::corrupt(
            0,
            format!("search tree record size {record_size} is not 24, 28 or 32 bits"),
        ));
    }
    if !matches!(ip_version, 4 | 6) {
        return Err(Error::corrupt(
            0,
            format!("search tree IP version {ip_version} is not 4 or 6"),
        ));
    }
    if node_count == 0 {
        return Err(Error::corrupt(0, "search tree has no nodes (node_count 0)"));
    }
    let expected = u64::from(node_count) * u64::from(record_size) / 4;
    if tree_bytes.len() as u64 != expected {
        return Err(Error::corrupt(
            0,
            format!(
                "search tree of {node_count} nodes with {record_size}-bit records needs \
                 {expected} bytes, got {}",
                tree_bytes.len()
            ),
        ));
    }
    Ok(())
}

/// The bare tree, for building a [`TreeIndex`].
pub(super) struct Shape<'a> {
    tree: &'a [u8],
    pub(super) node_count: u32,
    record_size: u16,
}

impl Shape<'_> {
    /// A record of a node known to be `< node_count` (`None` only if the length check failed).
    pub(super) fn record(&self, node: u32, side: u32) -> Option<u32> {
        match self.record_size {
            24 => Record24::read(self.tree, node, side),
            28 => Record28::read(self.tree, node, side),
            _ => Record32::read(self.tree, node, side),
        }
    }

    /// Follows the 96 bits `prefix` (the top 96 bits of an IPv6 address) from the root.
    fn follow_96_bits(&self, prefix: u128) -> Subtree {
        let mut node = 0u32;
        for depth in 0..96 {
            let side = (prefix >> (95 - depth)) as u32 & 1;
            let record = self.record(node, side).unwrap_or(self.node_count);
            if record >= self.node_count {
                return Subtree::Record {
                    record,
                    node,
                    side,
                    depth: depth + 1,
                };
            }
            node = record;
        }
        Subtree::Node {
            node,
            indexed: false,
        }
    }

    /// Walks the first `JUMP_BITS` bits of every address from `start` (a valid node index),
    /// one level at a time: entry `p` of level `d + 1` extends entry `p >> 1` of level `d` by
    /// bit `p & 1`. At most 2^(JUMP_BITS+1) record reads, whatever the tree size.
    fn jump_table(&self, start: u32) -> Box<JumpTable> {
        let mut table: Box<JumpTable> = Box::new([JumpEntry::default(); 1 << JUMP_BITS]);
        table[0] = JumpEntry {
            node: start,
            depth: 0,
        };
        for level in 0..JUMP_BITS {
            // Descending, so entry `p >> 1` of the previous level is read before it is replaced.
            for p in (0..2usize << level).rev() {
                let mut entry = table[p >> 1];
                if entry.depth == level {
                    match self.record(entry.node, p as u32 & 1) {
                        Some(record) if record < self.node_count => {
                            entry = JumpEntry {
                                node: record,
                                depth: level + 1,
                            }
                        }
                        _ => {} // a leaf or a damaged record: the walk takes it from here
                    }
                }
                table[p] = entry;
            }
        }
        table
    }
}

/// How many leading address bits a jump table resolves (2^12 entries of 8 bytes).
pub const JUMP_BITS: u32 = 12;

type JumpTable = [JumpEntry; 1 << JUMP_BITS];

/// Resume a lookup at `node`, `depth` bits into the address. Entries stop one record short of
/// a leaf or of anything invalid, so the ordinary walk produces every answer and every error.
#[derive(Clone, Copy, Debug, Default)]
struct JumpEntry {
    node: u32,
    depth: u32,
}

/// The end of a fixed 96-bit path from the root of an IPv6 tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subtree {
    /// The path leads to `node` (at depth 96); `indexed`: `ipv4_stride` indexes this node.
    Node { node: u32, indexed: bool },
    /// The path ended early at record `side` of `node`, `depth` bits down: that record answers
    /// every address under the path.
    Record {
        record: u32,
        node: u32,
        side: u32,
        depth: u32,
    },
}

impl Subtree {
    /// Depth of the subtree's start, in IPv6 bits.
    fn depth(self) -> u32 {
        match self {
            Subtree::Node { .. } => 96,
            Subtree::Record { depth, .. } => depth,
        }
    }
}

/// Where a lookup ended: a data record of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHit {
    /// Offset of the data in the data section (record value - node_count - 16).
    pub data_offset: usize,
    /// Which record held the data, for the file's prefix table.
    pub at: RecordAt,
    /// Prefix length of the tree leaf, in bits of the query's family: an IPv4 query in an IPv6
    /// tree counts from the IPv4 subtree (0 if the answer was found above it); an IPv6 query
    /// counts from the root (`::ffff:a.b.c.d` through the alias: 96 + the IPv4 depth).
    pub depth: u8,
}

/// Which record of the tree answered, as far as the prefix table (matchy files: the network
/// each record was inserted as) is concerned: [`SearchTree::prefix_code`] reads its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAt {
    /// Record `side` (0 left, 1 right) of `node`: its code is `prefixes[2 * node + side]`.
    Node { node: u32, side: u8 },
    /// Found through the IPv4 stride index, which keeps the code.
    Indexed(CodeAt),
}

/// What a successful [`SearchTree::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCheck {
    /// Every data-section offset some reachable record points at, sorted and deduplicated.
    pub data_offsets: Vec<usize>,
    /// Number of distinct nodes reachable from the root (== node_count when the check passes).
    pub reachable_nodes: u32,
}

impl<'a> SearchTree<'a> {
    /// A view of `tree_bytes` (exactly the tree: `node_count * record_size / 4` bytes) with
    /// its own [`TreeIndex`] (see there for the cost and the errors).
    pub fn new(
        tree_bytes: &'a [u8],
        node_count: u32,
        record_size: u16,
        ip_version: u16,
    ) -> Result<Self> {
        check_shape(tree_bytes, node_count, record_size, ip_version)?;
        Ok(SearchTree {
            tree: tree_bytes,
            prefixes: &[],
            node_count,
            record_size,
            ip_version,
            index: LazyIndex::Lazy(OnceLock::new()),
        })
    }

    /// A view of `tree_bytes` using an index built earlier from the same bytes: O(1). Fails if
    /// the length differs from the indexed tree's. An index of other bytes of the same length
    /// gives wrong answers or `Corrupt` errors, never a panic.
    #[inline]
    pub fn with_index(tree_bytes: &'a [u8], index: &'a TreeIndex) -> Result<Self> {
        if tree_bytes.len() != index.tree_len {
            return Err(Error::corrupt(
                0,
                format!(
                    "search tree of {} bytes does not match its index (built for {} bytes)",
                    tree_bytes.len(),
                    index.tree_len
                ),
            ));
        }
        Ok(SearchTree {
            tree: tree_bytes,
            prefixes: &[],
            node_count: index.node_count,
            record_size: index.record_size,
            ip_version: index.ip_version,
            index: LazyIndex::Borrowed(index),
        })
    }

    /// The index this view uses (clone it to keep it beyond the view); built on first use.
    #[inline]
    pub fn index(&self) -> &TreeIndex {
        match &self.index {
            LazyIndex::Borrowed(index) => index,
            LazyIndex::Lazy(cell) => cell.get_or_init(|| {
                TreeIndex::build(
                    self.tree,
                    self.node_count,
                    self.record_size,
                    self.ip_version,
                )
            }),
        }
    }

    /// Gives the view the file's prefix table (2 codes per node, see [`RecordAt`]): the stride
    /// index copies the codes when it is built. Call before the first lookup.
    pub fn with_prefix_table(mut self, prefixes: &'a [u8]) -> Self {
        self.prefixes = prefixes;
        self
    }

    pub fn node_count(&self) -> u32 {
        self.node_count
    }

    /// The prefix-table code of the record a hit came from (0 without a prefix table).
    pub fn prefix_code(&self, at: RecordAt) -> u8 {
        match at {
            RecordAt::Node { node, side } => self
                .prefixes
                .get(node as usize * 2 + side as usize)
                .copied()
                .unwrap_or(0),
            RecordAt::Indexed(code_at) => self
                .index()
                .ipv4_stride
                .cell
                .get()
                .and_then(Option::as_ref)
                .map_or(0, |stride| stride.code(code_at)),
        }
    }

    pub fn record_size(&self) -> u16 {
        self.record_size
    }

    /// Depth (in IPv6 bits) where IPv4 lookups start: 96 for the IPv4 subtree of an IPv6 tree,
    /// less when that path ended early in a record, 0 in IPv4 trees. `lookup_v4`'s hit depth
    /// counts from here.
    pub fn ipv4_start_depth(&self) -> u8 {
        if self.ip_version == 4 {
            0
        } else {
            self.index().ipv4.depth() as u8
        }
    }

    pub fn ip_version(&self) -> u16 {
        self.ip_version
    }

    /// The data record of the longest tree prefix containing `ip`, `Ok(None)` if the tree says
    /// "not found". An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) in an IPv4 tree is looked up
    /// as `a.b.c.d`; any other IPv6 address in an IPv4 tree is an `InvalidQuery`. Damaged trees
    /// give `Corrupt` (a record into the separator, a node index out of range, a path longer
    /// than the address), never a wrong hit.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Result<Option<TreeHit>> {
        match ip {
            IpAddr::V4(v4) => self.lookup_v4(v4),
            IpAddr::V6(v6) => self.lookup_v6(v6),
        }
    }

    /// [`lookup`](Self::lookup) for an IPv4 address.
    #[inline]
    pub fn lookup_v4(&self, ip: Ipv4Addr) -> Result<Option<TreeHit>> {
        let index = self.index();
        self.lookup_in_subtree(index, index.ipv4, u32::from(ip))
    }

    /// [`lookup_v4`](Self::lookup_v4) plus [`ipv4_start_depth`](Self::ipv4_start_depth), with
    /// one look at the index (the hot path of IPv4 queries).
    #[inline]
    pub fn lookup_v4_from_start(&self, ip: Ipv4Addr) -> Result<(Option<TreeHit>, u8)> {
        let index = self.index();
        let start = if self.ip_version == 4 {
            0
        } else {
            index.ipv4.depth() as u8
        };
        Ok((
            self.lookup_in_subtree(index, index.ipv4, u32::from(ip))?,
            start,
        ))
    }

    /// [`lookup`](Self::lookup) for an IPv6 address.
    #[inline]
    pub fn lookup_v6(&self, ip: Ipv6Addr) -> Result<Option<TreeHit>> {
        if self.ip_version == 4 {
            return match ip.to_ipv4_mapped() {
                Some(v4) => self.lookup_v4(v4),
                None => Err(ipv6_in_ipv4_tree(ip)),
            };
        }
        let key = u128::from(ip);
        // `::a.b.c.d` and `::ffff:a.b.c.d` skip their 96-bit paths (found in `new`).
        let top = key >> 32;
        let index = self.index();
        if top == 0 || top == 0xFFFF {
            let subtree = if top == 0 { index.ipv4 } else { index.mapped };
            let hit = self.lookup_in_subtree(index, subtree, key as u32)?;
            return Ok(hit.map(|hit| TreeHit {
                depth: hit.depth + subtree.depth() as u8,
                ..hit
            }));
        }
        let JumpEntry { node, depth } = index.root_jump[(key >> (128 - JUMP_BITS)) as usize];
        let key = key << depth;
        match self.record_size {
            24 => self.walk::<Record24, u128>(node, key, depth),
            28 => self.walk::<Record28, u128>(node, key, depth),
            _ => self.walk::<Record32, u128>(node, key, depth),
        }
    }

    /// Looks up the last 32 bits of an address in a subtree; the hit's depth counts from the
    /// subtree (0 if the subtree is a record).
    #[inline(always)]
    fn lookup_in_subtree(
        &self,
        index: &TreeIndex,
        subtree: Subtree,
        key: u32,
    ) -> Result<Option<TreeHit>> {
        let (node, depth) = match subtree {
            Subtree::Record {
                record, node, side, ..
            } => return self.leaf(record, node, side, 0),
            Subtree::Node {
                node,
                indexed: false,
            } => (node, 0),
            Subtree::Node { node, .. } => match self.stride(index) {
                Some(stride) => match stride.answer(key) {
                    Ok(hit) => return Ok(hit),
                    Err(resume) => (resume.record, u32::from(resume.depth)),
                },
                None => (node, 0),
            },
        };
        self.walk_v4(node, key << depth, depth)
    }

    /// [`walk`](Self::walk) of the last bits of an IPv4 address (after the stride index, or
    /// without one), one specialisation per record size.
    #[inline]
    fn walk_v4(&self, node: u32, key: u32, depth: u32) -> Result<Option<TreeHit>> {
        match self.record_size {
            24 => self.walk::<Record24, u32>(node, key, depth),
            28 => self.walk::<Record28, u32>(node, key, depth),
            _ => self.walk::<Record32, u32>(node, key, depth),
        }
    }

    /// The IPv4 stride index if built; counts the lookup and builds it at the threshold if not.
    #[inline(always)]
    fn stride<'i>(&self, index: &'i TreeIndex) -> Option<&'i StrideIndex> {
        match index.ipv4_stride.cell.get() {
            Some(built) => built.as_ref(),
            None => self.count_towards_stride(index),
        }
    }

    #[cold]
    fn count_towards_stride<'i>(&self, index: &'i TreeIndex) -> Option<&'i StrideIndex> {
        // While another thread builds it, one plain load: no shared read-modify-write per lookup.
        if index.ipv4_stride.building.load(Ordering::Relaxed) {
            return None;
        }
        let seen = index.ipv4_stride.lookups.fetch_add(1, Ordering::Relaxed);
        if seen + 1 >= STRIDE_AFTER_LOOKUPS {
            self.build_stride(index)
        } else {
            None
        }
    }

    /// Builds the stride index unless it is built, or being built by another thread (which this
    /// one does not wait for).
    fn build_stride<'i>(&self, index: &'i TreeIndex) -> Option<&'i StrideIndex> {
        let lazy = &index.ipv4_stride;
        if let Some(built) = lazy.cell.get() {
            return built.as_ref();
        }
        let Subtree::Node {
            node,
            indexed: true,
        } = index.ipv4
        else {
            return None;
        };
        if lazy.building.swap(true, Ordering::AcqRel) {
            return None;
        }
        let shape = Shape {
            tree: self.tree,
            node_count: self.node_count,
            record_size: self.record_size,
        };
        let start_depth = self.ipv4_start_depth();
        let _ = lazy
            .cell
            .set(StrideIndex::build(&shape, self.prefixes, node, start_depth));
        lazy.cell.get().and_then(Option::as_ref)
    }

    /// Builds the IPv4 stride index now, in this thread (the reload watcher does, after a swap,
    /// when the snapshot it replaced had one: the workload looks up IPs).
    pub fn build_ip_index(&self) {
        self.build_stride(self.index());
    }

    /// Whether IPv4 lookups read the stride index yet.
    pub fn ip_index_built(&self) -> bool {
        let index = self.index();
        index.ipv4_stride.cell.get().is_some_and(Option::is_some)
    }

    /// The IPv4 stride index once built (see [`TreeIndex`]), for callers that keep it at hand
    /// and ask it first ([`StrideIndex::answer`]).
    #[inline]
    pub(crate) fn ipv4_index(&self) -> Option<&StrideIndex> {
        self.index().ipv4_stride.cell.get()?.as_ref()
    }

    /// A one-line summary of the IPv4 stride index (sizes, where lookups end), for tuning.
    #[doc(hidden)]
    pub fn ip_index_summary(&self) -> Option<String> {
        self.ipv4_index().map(StrideIndex::debug_summary)
    }

    /// The hot loop: one specialisation per (record size, address width). `node` is a valid node
    /// index on entry, `depth` address bits are consumed and `key` holds the rest, most
    /// significant first.
    #[inline(always)]
    fn walk<R: RecordLayout, K: AddressBits>(
        &self,
        mut node: u32,
        mut key: K,
        mut depth: u32,
    ) -> Result<Option<TreeHit>> {
        let tree = self.tree;
        let node_count = self.node_count;
        loop {
            let side = key.top_bit();
            key = key.shift_left_one();
            // `node < node_count` holds here and `new` checked the tree length, so the read is in
            // bounds; `read` still checks and we report rather than trust.
            let Some(record) = R::read(tree, node, side) else {
                return Err(self.node_out_of_bounds(node));
            };
            depth += 1;
            if record >= node_count {
                return self.leaf(record, node, side, depth);
            }
            if depth == K::BITS {
                return Err(self.path_too_long(node, side));
            }
            node = record;
        }
    }

    /// Interprets a record that is not a node index (`record >= node_count`).
    #[inline(always)]
    fn leaf(&self, record: u32, node: u32, side: u32, depth: u32) -> Result<Option<TreeHit>> {
        let past_nodes = record - self.node_count;
        if past_nodes == 0 {
            return Ok(None);
        }
        match past_nodes.checked_sub(DATA_SECTION_SEPARATOR_LEN) {
            Some(data_offset) => Ok(Some(TreeHit {
                data_offset: data_offset as usize,
                at: RecordAt::Node {
                    node,
                    side: side as u8,
                },
                depth: depth as u8,
            })),
            None => Err(self.points_into_separator(node, side, record)),
        }
    }

    /// Validates the whole tree against a data section of `data_section_len` bytes: every node
    /// reachable from the root, every record a node index, "not found", or data inside the data
    /// section, no path longer than the address width (32 or 128 bits, counting every path
    /// through nodes shared by aliases). Memory: two bitsets of `node_count` bits, one of
    /// `data_section_len` bits, the returned offsets, and 5 bytes per node reached more than once.
    pub fn check(&self, data_section_len: usize) -> Result<TreeCheck> {
        let width: u32 = if self.ip_version == 4 { 32 } else { 128 };
        let node_count = self.node_count;
        let mut reached = BitSet::new(node_count);
        let mut shared = BitSet::new(node_count);
        let mut any_shared = false;
        // One bit per data-section byte: 1/8 of the data section, and no sorting.
        let mut data_records = BitSet::new(u32::try_from(data_section_len).unwrap_or(u32::MAX));
        let mut reachable_nodes = 0u32;
        // Depth-first, marking a node when it is pushed: the stack holds at most one pending
        // sibling per level, so it stays below 2 * width entries.
        let mut stack: Vec<(u32, u32)> = vec![(0, 0)];
        reached.insert(0);
        while let Some((node, depth)) = stack.pop() {
            reachable_nodes += 1;
            for side in 0..2 {
                let record = self.record(node, side)?;
                if record < node_count {
                    if depth + 1 >= width {
                        return Err(self.path_too_long(node, side));
                    }
                    if reached.insert(record) {
                        stack.push((record, depth + 1));
                    } else {
                        shared.insert(record);
                        any_shared = true;
                    }
                    continue;
                }
                let past_nodes = record - node_count;
                if past_nodes == 0 {
                    continue;
                }
                let Some(data_offset) = past_nodes.checked_sub(DATA_SECTION_SEPARATOR_LEN) else {
                    return Err(self.points_into_separator(node, side, record));
                };
                if data_offset as usize >= data_section_len {
                    return Err(Error::corrupt(
                        self.record_offset(node, side),
                        format!(
                            "search tree record {record} of node {node} points at data offset \
                             {data_offset}, past the end of the {data_section_len}-byte data section"
                        ),
                    ));
                }
                data_records.insert(data_offset);
            }
        }
        if let Some(unreached) = reached.first_missing() {
            return Err(Error::corrupt(
                u64::from(unreached) * u64::from(self.record_size) / 4,
                format!("search tree node {unreached} is not reachable from the root"),
            ));
        }
        if any_shared {
            self.check_shared_depths(&shared, width)?;
        }
        Ok(TreeCheck {
            data_offsets: data_records.iter().map(|o| o as usize).collect(),
            reachable_nodes,
        })
    }

    /// The first pass checked path lengths only along the first path to each node. Nodes
    /// reached again (aliases) may sit deeper on other paths, so compute the tree height
    /// (longest path from the root, in bits) with the heights of shared nodes memoised. Every
    /// other node has exactly one parent, so each node is expanded at most once; a cycle shows
    /// up as a path longer than `width`.
    fn check_shared_depths(&self, shared: &BitSet, width: u32) -> Result<()> {
        let shared_nodes: Vec<u32> = shared.iter().collect();
        let mut shared_heights: Vec<u8> = vec![0; shared_nodes.len()]; // 0 = not yet known
        let memo_index = |node: u32| {
            if shared.contains(node) {
                shared_nodes.binary_search(&node).ok()
            } else {
                None
            }
        };

        struct Frame {
            node: u32,
            depth: u32,
            next_side: u32,
            height: u32,
        }
        let mut frames = vec![Frame {
            node: 0,
            depth: 0,
            next_side: 0,
            height: 1,
        }];
        while let Some(top) = frames.last_mut() {
            if top.next_side == 2 {
                let (node, height) = (top.node, top.height);
                frames.pop();
                if let Some(i) = memo_index(node) {
                    shared_heights[i] = height as u8;
                }
                if let Some(parent) = frames.last_mut() {
                    parent.height = parent.height.max(height + 1);
                }
                continue;
            }
            let (node, depth, side) = (top.node, top.depth, top.next_side);
            top.next_side += 1;
            let record = self.record(node, side)?;
            if record >= self.node_count {
                continue; // a leaf: the frame's height already counts this node's own bit
            }
            if let Some(i) = memo_index(record) {
                let known = u32::from(shared_heights[i]);
                if known != 0 {
                    if depth + 1 + known > width {
                        return Err(self.path_too_long(node, side));
                    }
                    top.height = top.height.max(known + 1);
                    continue;
                }
            }
            if depth + 1 >= width {
                return Err(self.path_too_long(node, side));
            }
            frames.push(Frame {
                node: record,
                depth: depth + 1,
                next_side: 0,
                height: 1,
            });
        }
        Ok(())
    }

    /// One record, read with bounds checks and a match on the record size: for the cold paths.
    fn record(&self, node: u32, side: u32) -> Result<u32> {
        if node >= self.node_count {
            return Err(self.node_out_of_bounds(node));
        }
        let shape = Shape {
            tree: self.tree,
            node_count: self.node_count,
            record_size: self.record_size,
        };
        shape
            .record(node, side)
            .ok_or_else(|| self.node_out_of_bounds(node))
    }

    /// File offset of the first byte of a record (the shared middle byte for a 28-bit right one).
    fn record_offset(&self, node: u32, side: u32) -> u64 {
        u64::from(node) * u64::from(self.record_size) / 4
            + u64::from(side) * u64::from(self.record_size / 8)
    }

    #[cold]
    fn node_out_of_bounds(&self, node: u32) -> Error {
        Error::corrupt(
            u64::from(node) * u64::from(self.record_size) / 4,
            format!(
                "search tree node {node} lies outside the tree of {} nodes",
                self.node_count
            ),
        )
    }

    #[cold]
    fn path_too_long(&self, node: u32, side: u32) -> Error {
        let width = if self.ip_version == 4 { 32 } else { 128 };
        Error::corrupt(
            self.record_offset(node, side),
            format!("search tree path through node {node} is longer than the {width}-bit address"),
        )
    }

    #[cold]
    fn points_into_separator(&self, node: u32, side: u32, record: u32) -> Error {
        Error::corrupt(
            self.record_offset(node, side),
            format!(
                "search tree record {record} of node {node} points into the data section \
                 separator (node_count {})",
                self.node_count
            ),
        )
    }
}

#[cold]
fn ipv6_in_ipv4_tree(ip: Ipv6Addr) -> Error {
    Error::InvalidQuery {
        query: ip.to_string(),
        what: "the database is IPv4-only; only IPv4 and IPv4-mapped (::ffff:a.b.c.d) addresses \
               can be looked up"
            .into(),
    }
}

/// How one record size is read. `read` returns `None` only when the node lies outside `tree`,
/// which `SearchTree::new`'s length check plus `node < node_count` rule out.
trait RecordLayout {
    fn read(tree: &[u8], node: u32, side: u32) -> Option<u32>;
}

/// Four big-endian bytes at `offset`.
#[inline(always)]
fn be_u32_at(tree: &[u8], offset: usize) -> Option<u32> {
    let bytes: [u8; 4] = tree.get(offset..offset + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

struct Record24;
impl RecordLayout for Record24 {
    #[inline(always)]
    fn read(tree: &[u8], node: u32, side: u32) -> Option<u32> {
        // A 4-byte window inside the 6-byte node: bytes 0..4 (left record in the top three)
        // or 2..6 (right record in the bottom three).
        let word = be_u32_at(tree, node as usize * 6 + side as usize * 2)?;
        Some((word >> ((1 - side) * 8)) & 0x00FF_FFFF)
    }
}

struct Record28;
impl RecordLayout for Record28 {
    #[inline(always)]
    fn read(tree: &[u8], node: u32, side: u32) -> Option<u32> {
        // Left: bytes 0..4, the shared byte's high nibble on top. Right: bytes 3..7, the shared
        // byte's low nibble on top. Both are computed so the choice is a select, not a branch
        // on an unpredictable address bit.
        let word = be_u32_at(tree, node as usize * 7 + side as usize * 3)?;
        let left = (word >> 8) | ((word & 0xF0) << 20);
        let right = word & 0x0FFF_FFFF;
        Some(if side == 0 { left } else { right })
    }
}

struct Record32;
impl RecordLayout for Record32 {
    #[inline(always)]
    fn read(tree: &[u8], node: u32, side: u32) -> Option<u32> {
        be_u32_at(tree, node as usize * 8 + side as usize * 4)
    }
}

/// An address as a bit string consumed from the most significant end.
trait AddressBits: Copy {
    const BITS: u32;
    fn top_bit(self) -> u32;
    fn shift_left_one(self) -> Self;
}

impl AddressBits for u32 {
    const BITS: u32 = 32;
    #[inline(always)]
    fn top_bit(self) -> u32 {
        self >> 31
    }
    #[inline(always)]
    fn shift_left_one(self) -> Self {
        self << 1
    }
}

impl AddressBits for u128 {
    const BITS: u32 = 128;
    #[inline(always)]
    fn top_bit(self) -> u32 {
        (self >> 127) as u32
    }
    #[inline(always)]
    fn shift_left_one(self) -> Self {
        self << 1
    }
}

/// A fixed-size set of node indexes, one bit each.
struct BitSet {
    words: Vec<u64>,
    len: u32,
}

impl BitSet {
    fn new(len: u32) -> Self {
        BitSet {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    /// Adds `i`; true if it was not there yet.
    fn insert(&mut self, i: u32) -> bool {
        let word = &mut self.words[i as usize / 64];
        let bit = 1u64 << (i % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }

    fn contains(&self, i: u32) -> bool {
        self.words[i as usize / 64] & (1u64 << (i % 64)) != 0
    }

    /// The smallest index below `len` not in the set.
    fn first_missing(&self) -> Option<u32> {
        self.words.iter().enumerate().find_map(|(w, &word)| {
            let i = w as u32 * 64 + (!word).trailing_zeros();
            (word != u64::MAX && i < self.len).then_some(i)
        })
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                Some(w as u32 * 64 + bit)
            })
        })
    }
}

#[cfg(test)]
impl SearchTree<'_> {
    /// Raw record access for other modules' tests.
    pub(crate) fn lookup_record_for_tests(&self, node: u32, side: u32) -> u32 {
        self.record(node, side).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmdb::tree_builder::tests::{build, view, Net};
    use crate::mmdb::tree_builder::KeepDuplicate;
    use proptest::prelude::*;

    const CORPUS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/maxmind-db/test-data"
    );

    /// (tree bytes, data section length, node_count, record_size, ip_version) of an .mmdb file,
    /// the shape read through the `maxminddb` crate's metadata parser.
    fn split_mmdb(file: &[u8]) -> Option<(usize, usize, u32, u16, u16)> {
        let marker = b"\xAB\xCD\xEFMaxMind.com";
        let marker_at = file.windows(marker.len()).rposition(|w| w == marker)?;
        let reader = maxminddb::Reader::from_source(file.to_vec()).ok()?;
        let m = reader.metadata();
        let tree_len = m.node_count as usize * m.record_size as usize / 4;
        let data_len = marker_at.checked_sub(tree_len + 16)?;
        Some((
            tree_len,
            data_len,
            m.node_count,
            m.record_size,
            m.ip_version,
        ))
    }

    fn corpus_files() -> Vec<(String, Vec<u8>)> {
        let mut paths: Vec<_> = std::fs::read_dir(CORPUS)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "mmdb"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    }

    /// Every corpus file: `check` passes exactly on the intact ones, and every lookup (first and
    /// last address of each network, IPv4 forms, random addresses) gives the same
    /// data offset and prefix length as the `maxminddb` crate.
    #[test]
    fn corpus_matches_maxminddb() {
        let mut checked = 0;
        for (name, file) in corpus_files() {
            // Its metadata node count is wrong: maxminddb refuses it, and the metadata parser
            // (not this module) is what must catch it.
            if name == "GeoIP2-City-Test-Invalid-Node-Count.mmdb" {
                assert!(split_mmdb(&file).is_none());
                continue;
            }
            let (tree_len, data_len, nc, rs, v) = split_mmdb(&file).unwrap();
            let tree = SearchTree::new(&file[..tree_len], nc, rs, v).unwrap();
            tree.build_ip_index();
            let reader = maxminddb::Reader::from_source(file.clone()).unwrap();
            let broken = name.contains("broken-pointers") || name.contains("broken-search-tree");
            let check = tree.check(data_len);
            assert_eq!(check.is_err(), broken, "{name}: {check:?}");
            if broken {
                continue;
            }
            let check = check.unwrap();
            assert_eq!(check.reachable_nodes, nc, "{name}");

            let mut queries: Vec<IpAddr> = Vec::new();
            let mut offsets = Vec::new();
            let options = maxminddb::WithinOptions::default().include_aliased_networks();
            for item in reader.networks(options).unwrap() {
                let item = item.unwrap();
                offsets.extend(item.offset());
                let net = item.network().unwrap();
                queries.extend([net.network(), net.broadcast()]);
            }
            offsets.sort_unstable();
            offsets.dedup();
            assert_eq!(check.data_offsets, offsets, "{name}");
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            for _ in 0..500 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                queries.push(IpAddr::V4((x as u32).into()));
                queries.push(IpAddr::V6(
                    (u128::from(x) << 64 | u128::from(x >> 3)).into(),
                ));
            }
            for ip in queries {
                let mut forms = vec![ip];
                if let IpAddr::V6(v6) = ip {
                    let bits = u128::from(v6);
                    if bits >> 32 == 0 || bits >> 32 == 0xFFFF {
                        forms.push(IpAddr::V4((bits as u32).into()));
                    }
                }
                for ip in forms {
                    let theirs = reader.lookup(ip);
                    let ours = tree.lookup(ip);
                    let (Ok(theirs), Ok(ours)) = (theirs, ours) else {
                        // Only an IPv6 query against an IPv4 tree fails, on both sides
                        // (maxminddb also refuses IPv4-mapped ones, which we answer).
                        assert!(v == 4 && ip.is_ipv6(), "{name} {ip}");
                        continue;
                    };
                    assert_eq!(ours.map(|h| h.data_offset), theirs.offset(), "{name} {ip}");
                    if let (Some(hit), Ok(net)) = (ours, theirs.network()) {
                        if net.is_ipv4() == ip.is_ipv4() {
                            assert_eq!(hit.depth, net.prefix(), "{name} {ip}");
                        }
                    }
                }
            }
            checked += 1;
        }
        assert!(checked >= 30, "{checked}");
    }

    #[test]
    fn corpus_known_answers() {
        let file = std::fs::read(format!("{CORPUS}/MaxMind-DB-test-ipv4-28.mmdb")).unwrap();
        let (tree_len, _, nc, rs, v) = split_mmdb(&file).unwrap();
        let tree = SearchTree::new(&file[..tree_len], nc, rs, v).unwrap();
        let depth = |s: &str| tree.lookup(s.parse().unwrap()).unwrap().map(|h| h.depth);
        // 1.1.1.1/32, 1.1.1.2/31, 1.1.1.4/30, 1.1.1.8/29, 1.1.1.16/28, 1.1.1.32/32.
        assert_eq!(depth("1.1.1.1"), Some(32));
        assert_eq!(depth("1.1.1.3"), Some(31));
        assert_eq!(depth("1.1.1.7"), Some(30));
        assert_eq!(depth("1.1.1.15"), Some(29));
        assert_eq!(depth("1.1.1.31"), Some(28));
        assert_eq!(depth("1.1.1.32"), Some(32));
        assert_eq!(depth("1.1.1.33"), None);
        assert_eq!(depth("::ffff:1.1.1.3"), Some(31));
        assert!(tree.lookup("::1.1.1.3".parse().unwrap()).is_err());

        // IPv4 lookups in an IPv6 tree without IPv4 data stop above the IPv4 subtree.
        let file = std::fs::read(format!("{CORPUS}/MaxMind-DB-no-ipv4-search-tree.mmdb")).unwrap();
        let (tree_len, _, nc, rs, v) = split_mmdb(&file).unwrap();
        let tree = SearchTree::new(&file[..tree_len], nc, rs, v).unwrap();
        let hit = tree.lookup("1.1.1.1".parse().unwrap()).unwrap().unwrap();
        assert_eq!(hit.depth, 0);
    }

    // ---- damaged trees ----

    /// A 24-bit tree from raw records.
    fn tree24(records: &[[u32; 2]]) -> Vec<u8> {
        records
            .iter()
            .flat_map(|r| {
                let (l, r) = (r[0].to_be_bytes(), r[1].to_be_bytes());
                [l[1], l[2], l[3], r[1], r[2], r[3]]
            })
            .collect()
    }

    fn corrupt_offset(e: Error) -> u64 {
        match e {
            Error::Corrupt { offset, .. } => offset,
            other => panic!("expected Corrupt, got {other}"),
        }
    }

    #[test]
    fn new_rejects_bad_shapes() {
        let bytes = tree24(&[[1, 1]]);
        assert!(SearchTree::new(&bytes, 1, 24, 4).is_ok());
        assert!(SearchTree::new(&bytes, 2, 24, 4).is_err());
        assert!(SearchTree::new(&bytes, 1, 28, 4).is_err());
        assert!(SearchTree::new(&bytes, 1, 20, 4).is_err());
        assert!(SearchTree::new(&bytes, 1, 24, 5).is_err());
        assert!(SearchTree::new(&[], 0, 24, 4).is_err());
    }

    /// A chain deeper than 32 bits (node i's left record leads to node i + 1) is indexed, and
    /// the index hands the overlong path back to the walk, which reports it.
    #[test]
    fn index_resumes_the_walk_on_overlong_paths() {
        let n = 40u32;
        let records: Vec<[u32; 2]> = (0..n)
            .map(|i| [if i + 1 < n { i + 1 } else { n }, n + 16 + i])
            .collect();
        let bytes = tree24(&records);
        let tree = SearchTree::new(&bytes, n, 24, 4).unwrap();
        tree.build_ip_index();
        assert!(tree.ip_index_built());
        let hit = tree.lookup_v4(Ipv4Addr::new(0, 0, 1, 0)).unwrap().unwrap();
        assert_eq!((hit.data_offset, hit.depth), (23, 24));
        let err = tree.lookup_v4(Ipv4Addr::UNSPECIFIED).unwrap_err();
        let walked = tree.walk::<Record24, u32>(0, 0, 0).unwrap_err();
        assert_eq!(err.to_string(), walked.to_string());
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[test]
    fn borrowed_index_answers_like_an_owned_one() {
        let nets = [
            (Net::V4(0x0A00_0000, 8), 1u32),
            (Net::V4(0x0A01_0000, 16), 2),
            (Net::V6(0x2001_0db8 << 96, 32), 3),
        ];
        let built = build(6, &nets, None, 5, KeepDuplicate::First);
        let index = TreeIndex::new(&built.bytes, built.node_count, built.record_size, 6).unwrap();
        let owned = view(&built);
        for ip in [
            "10.1.2.3",
            "10.2.3.4",
            "::ffff:10.1.0.1",
            "::10.9.9.9",
            "2001:db8::1",
            "::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let borrowed = SearchTree::with_index(&built.bytes, &index)
                .unwrap()
                .with_prefix_table(&built.prefix_table);
            borrowed.build_ip_index();
            assert_eq!(
                borrowed.lookup(ip).unwrap(),
                owned.lookup(ip).unwrap(),
                "{ip}"
            );
        }
        assert!(SearchTree::with_index(&built.bytes[..6], &index).is_err());
        let index4 = TreeIndex::new(&tree24(&[[1, 1]]), 1, 24, 4).unwrap();
        assert!(SearchTree::with_index(&built.bytes, &index4).is_err());
    }

    #[test]
    fn record_into_separator_is_an_error() {
        // Node 0: left -> data offset 0 (record 17), right -> record 5, inside the separator.
        let bytes = tree24(&[[17, 5]]);
        let tree = SearchTree::new(&bytes, 1, 24, 4).unwrap();
        assert_eq!(
            tree.lookup("1.0.0.0".parse().unwrap())
                .unwrap()
                .unwrap()
                .data_offset,
            0
        );
        let err = tree.lookup("128.0.0.0".parse().unwrap()).unwrap_err();
        assert_eq!(corrupt_offset(err), 3);
        assert_eq!(corrupt_offset(tree.check(10).unwrap_err()), 3);
        // In an IPv6 tree, the same record met on the way to the IPv4 subtree.
        let bytes = tree24(&[[5, 1]]);
        let tree = SearchTree::new(&bytes, 1, 24, 6).unwrap();
        assert_eq!(
            corrupt_offset(tree.lookup("1.2.3.4".parse().unwrap()).unwrap_err()),
            0
        );
    }

    #[test]
    fn data_past_the_data_section_fails_check() {
        let bytes = tree24(&[[1 + 16 + 9, 1 + 16 + 10]]);
        let tree = SearchTree::new(&bytes, 1, 24, 4).unwrap();
        assert_eq!(corrupt_offset(tree.check(10).unwrap_err()), 3);
        assert_eq!(tree.check(11).unwrap().data_offsets, vec![9, 10]);
    }

    #[test]
    fn cycles_and_overlong_paths_are_errors() {
        // Node 1 points back at the root: lookups run out of bits, check sees a long path.
        let bytes = tree24(&[[1, 2], [0, 2]]);
        let tree = SearchTree::new(&bytes, 2, 24, 4).unwrap();
        assert!(tree.lookup("0.0.0.0".parse().unwrap()).is_err());
        assert!(tree.check(0).is_err());
        let tree6 = SearchTree::new(&bytes, 2, 24, 6).unwrap();
        assert!(tree6.lookup("::".parse().unwrap()).is_err());
        assert!(tree6.lookup("0.0.0.0".parse().unwrap()).is_err());
        assert!(tree6.check(0).is_err());
        // A chain of 32 nodes is as deep as an IPv4 tree can be; 33 is too deep.
        for (n, ok) in [(32u32, true), (33, false)] {
            let mut recs: Vec<[u32; 2]> = (1..n).map(|i| [i, n]).collect();
            recs.push([n, n + 16]);
            let bytes = tree24(&recs);
            let tree = SearchTree::new(&bytes, n, 24, 4).unwrap();
            assert_eq!(tree.check(1).is_ok(), ok, "{n}");
            assert_eq!(tree.lookup("0.0.0.0".parse().unwrap()).is_ok(), ok, "{n}");
            assert_eq!(tree.lookup("128.0.0.1".parse().unwrap()).unwrap(), None);
        }
    }

    #[test]
    fn shared_nodes_are_checked_on_every_path() {
        // Node 3 (a 30-node chain, 31 bits tall) is reached from depth 1 and from depth 2:
        // only the second path is too long for an IPv4 tree. The first DFS visit is the
        // shallow one, so only the shared-height pass can see it.
        let chain = 30;
        let nc = 3 + chain;
        let mut recs = vec![[1, 3], [2, nc], [3, nc]];
        for i in 0..chain {
            let next = if i + 1 == chain { nc + 16 } else { 4 + i };
            recs.push([next, nc]);
        }
        let bytes = tree24(&recs);
        let tree = SearchTree::new(&bytes, nc, 24, 4).unwrap();
        let err = tree.check(1).unwrap_err();
        assert!(err.to_string().contains("longer than the 32-bit"), "{err}");
        // The same shape with one level less is fine, and nodes count once.
        let nc = 3 + chain - 1;
        let mut recs = vec![[1, 3], [2, nc], [3, nc]];
        for i in 0..chain - 1 {
            let next = if i + 2 == chain { nc + 16 } else { 4 + i };
            recs.push([next, nc]);
        }
        let bytes = tree24(&recs);
        let tree = SearchTree::new(&bytes, nc, 24, 4).unwrap();
        assert_eq!(tree.check(1).unwrap().reachable_nodes, nc);
    }

    #[test]
    fn unreachable_node_is_reported() {
        let bytes = tree24(&[[1, 3], [3, 3], [3, 3]]);
        let tree = SearchTree::new(&bytes, 3, 24, 4).unwrap();
        let err = tree.check(0).unwrap_err();
        assert_eq!(corrupt_offset(err), 12);
    }

    #[test]
    fn node_index_beyond_a_24_bit_record_cannot_be_read_out_of_bounds() {
        // node_count larger than the records can address: every record is a node index.
        let bytes = vec![0xFF; 6];
        let tree = SearchTree::new(&bytes, 1, 24, 4).unwrap();
        assert!(tree.lookup("1.2.3.4".parse().unwrap()).unwrap().is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Garbage in: every call returns, no panic.
        #[test]
        fn random_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..400),
            record_size in prop::sample::select(vec![24u16, 28, 32, 20]),
            ip_version in prop::sample::select(vec![4u16, 6, 5]),
            node_count_hint in any::<u32>(),
            exact_len in any::<bool>(),
            queries in prop::collection::vec(any::<u128>(), 8),
            data_len in 0usize..64,
        ) {
            let node_bytes = usize::from(record_size / 4);
            let node_count = if exact_len {
                (bytes.len() / node_bytes.max(1)) as u32
            } else {
                node_count_hint % 100
            };
            let bytes = if exact_len { &bytes[..node_count as usize * node_bytes] } else { &bytes[..] };
            if let Ok(tree) = SearchTree::new(bytes, node_count, record_size, ip_version) {
                let checked = tree.check(data_len).is_ok();
                for q in queries {
                    for ip in [IpAddr::V6(q.into()), IpAddr::V4((q as u32).into())] {
                        let result = tree.lookup(ip);
                        if checked && (ip.is_ipv4() || ip_version == 6) {
                            let hit = result.unwrap();
                            prop_assert!(hit.is_none_or(|h| h.data_offset < data_len));
                        }
                    }
                }
            }
        }

        /// The stride index answers exactly like the plain walk, on any tree: deep ones,
        /// cyclic ones (overlong paths), records into the separator, shared nodes.
        #[test]
        fn index_answers_like_the_walk(
            records in prop::collection::vec([0u32..80, 0u32..80], 1..64),
            queries in prop::collection::vec(any::<u32>(), 64),
        ) {
            let node_count = records.len() as u32;
            let bytes = tree24(&records);
            let tree = SearchTree::new(&bytes, node_count, 24, 4).unwrap();
            tree.build_ip_index();
            let indexed = tree.ip_index_built();
            for key in queries.into_iter().chain([0, u32::MAX, 0x8000_0000]) {
                let by_index = tree.lookup_v4(key.into());
                let by_walk = tree.walk::<Record24, u32>(0, key, 0);
                let summary = |r: Result<Option<TreeHit>>| match r {
                    Ok(hit) => Ok(hit.map(|h| (h.data_offset, h.depth))),
                    Err(e) => Err(e.to_string()),
                };
                prop_assert_eq!(summary(by_index), summary(by_walk), "key {:#x} indexed {}", key, indexed);
            }
        }

        /// A damaged built tree: whatever `check` accepts answers every lookup without error
        /// and inside the data section, and records pointing past the data are caught.
        #[test]
        fn flipped_bytes_are_caught_or_harmless(
            nets in prop::collection::vec((any::<u32>(), 8u8..=32), 1..30),
            record_size in prop::sample::select(vec![24u16, 28, 32]),
            version in prop::sample::select(vec![4u16, 6]),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            queries in prop::collection::vec(any::<u128>(), 16),
        ) {
            let inserted: Vec<(Net, u32)> =
                nets.iter().enumerate().map(|(i, &(a, l))| (Net::V4(a, l), i as u32)).collect();
            let data_len = nets.len();
            let mut built = build(version, &inserted, Some(record_size), data_len, KeepDuplicate::First);
            for (at, xor) in flips {
                let i = at.index(built.bytes.len());
                built.bytes[i] ^= xor;
            }
            let tree = view(&built);
            let checked = tree.check(data_len);
            let queries = queries.iter().flat_map(|&q| {
                [IpAddr::V4((q as u32).into()), IpAddr::V6(q.into())]
            });
            for ip in queries {
                let result = tree.lookup(ip);
                if checked.is_ok() && (version == 6 || ip.is_ipv4()) {
                    let hit = result.unwrap();
                    prop_assert!(hit.is_none_or(|h| h.data_offset < data_len));
                }
            }
            // Point some record past the data section: check must say so.
            let node = (queries_len_hint(&built) % built.node_count as usize) as u32;
            let past = built.node_count + 16 + data_len as u32 + 5;
            let mut bytes = built.bytes.clone();
            set_record(&mut bytes, record_size, node, 1, past);
            let damaged = SearchTree::new(&bytes, built.node_count, record_size, version).unwrap();
            prop_assert!(damaged.check(data_len).is_err());
        }
    }

    fn queries_len_hint(built: &crate::mmdb::tree_builder::BuiltTree) -> usize {
        built.bytes.iter().map(|&b| b as usize).sum()
    }

    fn set_record(bytes: &mut [u8], record_size: u16, node: u32, side: u32, value: u32) {
        let node_bytes = usize::from(record_size / 4);
        let n = &mut bytes[node as usize * node_bytes..][..node_bytes];
        let v = value.to_be_bytes();
        match (record_size, side) {
            (24, 0) => n[..3].copy_from_slice(&v[1..]),
            (24, _) => n[3..].copy_from_slice(&v[1..]),
            (28, 0) => {
                n[..3].copy_from_slice(&v[1..]);
                n[3] = (n[3] & 0x0F) | (v[0] << 4);
            }
            (28, _) => {
                n[4..].copy_from_slice(&v[1..]);
                n[3] = (n[3] & 0xF0) | (v[0] & 0x0F);
            }
            (_, 0) => n[..4].copy_from_slice(&v),
            (_, _) => n[4..].copy_from_slice(&v),
        }
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use crate::mmdb::tree_builder::tests::mmdb_file;
    use crate::mmdb::tree_builder::{KeepDuplicate, TreeBuilder};
    use std::hint::black_box;
    use std::time::Instant;

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Wall nanoseconds of one call. The machine is shared, so callers keep the minimum of many
    /// interleaved runs: the run nobody interrupted.
    fn run_time<F: FnMut() -> usize>(mut f: F) -> f64 {
        let t = Instant::now();
        black_box(f());
        t.elapsed().as_nanos() as f64
    }

    /// Best of 15 interleaved runs of each side: (ours, theirs) in lookups per second.
    fn race(
        queries: &[IpAddr],
        tree: &SearchTree<'_>,
        reader: &maxminddb::Reader<Vec<u8>>,
    ) -> (f64, f64) {
        let (mut ours, mut theirs) = (f64::MAX, f64::MAX);
        for _ in 0..15 {
            ours = ours.min(run_time(|| {
                let mut sum = 0usize;
                for &ip in queries {
                    if let Some(hit) = tree.lookup(black_box(ip)).unwrap() {
                        sum += hit.data_offset;
                    }
                }
                sum
            }));
            theirs = theirs.min(run_time(|| {
                let mut sum = 0usize;
                for &ip in queries {
                    if let Some(off) = reader.lookup(black_box(ip)).unwrap().offset() {
                        sum += off;
                    }
                }
                sum
            }));
        }
        let n = queries.len() as f64 * 1e9;
        (n / ours, n / theirs)
    }

    fn report(label: &str, (ours, theirs): (f64, f64)) {
        println!(
            "  {label:>22}: matchy {:6.1} M lookups/s, maxminddb {:6.1} M lookups/s ({:.2}x)",
            ours / 1e6,
            theirs / 1e6,
            ours / theirs
        );
    }

    fn run(version: u16, slash32: usize, slash24: usize, layout: (u32, u32)) {
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        let t = Instant::now();
        let mut b = TreeBuilder::new(version);
        b.set_block_heights(layout.0, layout.1);
        let mut inserted = Vec::new();
        for i in 0..slash32 + slash24 {
            let a = xorshift(&mut x) as u32;
            let len = if i < slash32 { 32 } else { 24 };
            inserted.push(a);
            b.insert(IpAddr::V4(a.into()), len, (i % 1000) as u32, i as u32)
                .unwrap();
        }
        let built = b.finish(1000, KeepDuplicate::First).unwrap();
        let build_time = t.elapsed();
        let file = mmdb_file(&built, 1000);
        let tree =
            SearchTree::new(&built.bytes, built.node_count, built.record_size, version).unwrap();
        let reader = maxminddb::Reader::from_source(file).unwrap();
        println!(
            "v{version} tree: {} nodes, {}-bit records, {} KB, built in {:?} (wall)",
            built.node_count,
            built.record_size,
            built.bytes.len() >> 10,
            build_time
        );
        let t = Instant::now();
        for _ in 0..100 {
            black_box(
                SearchTree::new(&built.bytes, built.node_count, built.record_size, version)
                    .unwrap(),
            );
        }
        println!(
            "  SearchTree::new: {:.1} us",
            t.elapsed().as_secs_f64() * 1e4
        );
        for (label, hit_share) in [("random v4", 0u64), ("v4 in networks", 1)] {
            let queries: Vec<IpAddr> = (0..500_000)
                .map(|i| {
                    let r = xorshift(&mut x);
                    let a = if hit_share != 0 && i % hit_share == 0 {
                        inserted[(r as usize >> 8) % inserted.len()] ^ (r as u32 & 0xFF)
                    } else {
                        r as u32
                    };
                    IpAddr::V4(a.into())
                })
                .collect();
            report(label, race(&queries, &tree, &reader));
        }
        // A view per lookup over a kept index, as a database holding a memory map would do.
        let index = tree.index().clone();
        let queries: Vec<IpAddr> = (0..500_000)
            .map(|_| IpAddr::V4((xorshift(&mut x) as u32).into()))
            .collect();
        let (mut shared, mut per_lookup) = (f64::MAX, f64::MAX);
        for _ in 0..15 {
            shared = shared.min(run_time(|| {
                let view = SearchTree::with_index(&built.bytes, &index).unwrap();
                queries
                    .iter()
                    .filter(|&&ip| view.lookup(ip).unwrap().is_some())
                    .count()
            }));
            per_lookup = per_lookup.min(run_time(|| {
                queries
                    .iter()
                    .filter(|&&ip| {
                        let view = SearchTree::with_index(&built.bytes, &index).unwrap();
                        view.lookup(black_box(ip)).unwrap().is_some()
                    })
                    .count()
            }));
        }
        println!(
            "  random v4, one view: {:.1} M/s; a view per lookup: {:.1} M/s",
            queries.len() as f64 / shared * 1e3,
            queries.len() as f64 / per_lookup * 1e3
        );
    }

    /// An IPv6 tree of random /48s and /64s under 2000::/4 plus IPv4 /24s, queried with IPv6
    /// addresses inside its networks.
    fn run_v6(networks: usize, layout: (u32, u32)) {
        let mut x = 0x0DDB_A11C_AFE5_F00Du64;
        let mut b = TreeBuilder::new(6);
        b.set_block_heights(layout.0, layout.1);
        let mut inserted = Vec::new();
        for i in 0..networks {
            let r = u128::from(xorshift(&mut x)) << 64 | u128::from(xorshift(&mut x));
            let (addr, len) = match i % 3 {
                0 => ((0x2 << 124) | (r >> 4), 48),
                1 => ((0x2 << 124) | (r >> 4), 64),
                _ => (r & 0xFFFF_FFFF, 96 + 24),
            };
            inserted.push(addr);
            b.insert(IpAddr::V6(addr.into()), len, (i % 1000) as u32, i as u32)
                .unwrap();
        }
        let built = b.finish(1000, KeepDuplicate::First).unwrap();
        let tree = SearchTree::new(&built.bytes, built.node_count, built.record_size, 6).unwrap();
        let reader = maxminddb::Reader::from_source(mmdb_file(&built, 1000)).unwrap();
        println!("v6 tree of v6 networks: {} nodes", built.node_count);
        let queries: Vec<IpAddr> = (0..500_000)
            .map(|_| {
                let r = xorshift(&mut x);
                IpAddr::V6((inserted[r as usize % inserted.len()] ^ u128::from(r as u16)).into())
            })
            .collect();
        report("v6 in networks", race(&queries, &tree, &reader));
    }

    /// `cargo test --release --lib mmdb::tree::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn lookup_speed() {
        let layout = (12, 3);
        run(4, 1_000, 500, layout);
        run(4, 100_000, 50_000, layout);
        run(6, 100_000, 50_000, layout);
        run_v6(100_000, layout);
    }

    /// Deterministic stand-in for cache misses: distinct 64-byte lines a lookup touches below the
    /// jump table, per layout (block heights), for the same networks and queries.
    #[test]
    #[ignore]
    fn layout_lines_touched() {
        let mut x = 0x1234_5678_9ABC_DEF1u64;
        let nets: Vec<(u32, u8)> = (0..150_000)
            .map(|i| (xorshift(&mut x) as u32, if i < 100_000 { 32 } else { 24 }))
            .collect();
        let queries: Vec<u32> = (0..200_000)
            .map(|_| {
                let r = xorshift(&mut x);
                nets[(r as usize >> 8) % nets.len()].0 ^ (r as u32 & 0xFF)
            })
            .collect();
        for layout in [(1u32, 1u32), (12, 1), (12, 2), (12, 3), (12, 4), (12, 6)] {
            let mut b = TreeBuilder::new(4);
            b.set_block_heights(layout.0, layout.1);
            for (i, &(a, len)) in nets.iter().enumerate() {
                b.insert(IpAddr::V4(a.into()), len, i as u32 % 1000, i as u32)
                    .unwrap();
            }
            let t = b.finish(1000, KeepDuplicate::First).unwrap();
            let tree = SearchTree::new(&t.bytes, t.node_count, t.record_size, 4).unwrap();
            let (mut lines, mut steps) = (0usize, 0usize);
            let mut touched = Vec::new();
            for &q in &queries {
                touched.clear();
                let mut node = 0u32;
                for depth in 0..32 {
                    if depth >= JUMP_BITS {
                        touched.push(node as usize * 6 / 64);
                        steps += 1;
                    }
                    let record = tree.record(node, (q >> (31 - depth)) & 1).unwrap();
                    if record >= t.node_count {
                        break;
                    }
                    node = record;
                }
                touched.dedup();
                lines += touched.len();
            }
            println!(
                "layout {layout:?}: {:.2} lines / lookup over {:.2} nodes",
                lines as f64 / queries.len() as f64,
                steps as f64 / queries.len() as f64
            );
        }
    }

    fn peak_rss_mb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    }

    /// The builder at scale: 10 million random /32s and /24s.
    #[test]
    #[ignore]
    fn build_ten_million() {
        let mut x = 0x5EED_0000_1234_5678u64;
        let before = peak_rss_mb();
        let t = Instant::now();
        let mut b = TreeBuilder::new(6);
        for i in 0..10_000_000u32 {
            let a = xorshift(&mut x) as u32;
            let len = if i % 2 == 0 { 32 } else { 24 };
            b.insert(IpAddr::V4(a.into()), len, i % 1_000_000, i)
                .unwrap();
        }
        let inserted = t.elapsed();
        let built = b.finish(1_000_000, KeepDuplicate::First).unwrap();
        println!(
            "10M networks: {} nodes, {}-bit records, {} duplicates; insert {:?}, finish {:?}, \
             peak RSS {} MB (+{} MB)",
            built.node_count,
            built.record_size,
            built.duplicates.len(),
            inserted,
            t.elapsed() - inserted,
            peak_rss_mb(),
            peak_rss_mb() - before
        );
        let t = Instant::now();
        let tree = SearchTree::new(&built.bytes, built.node_count, built.record_size, 6).unwrap();
        let check = tree.check(1_000_000).unwrap();
        println!(
            "check: {:?}, {} offsets",
            t.elapsed(),
            check.data_offsets.len()
        );
    }
}
