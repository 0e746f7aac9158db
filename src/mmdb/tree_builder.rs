//! Building the MaxMind DB binary search tree (layout: see [`super::tree`]) from IP networks,
//! with longest-prefix-wins semantics whatever the insertion order, plus the per-record
//! "prefix table" that tells a reader which inserted network a data record comes from.
//!
//! # What the tree answers
//!
//! * An address gets the data of the longest inserted network containing it.
//! * IPv4 networks in an IPv6 tree live under `::/96` (so `::a.b.c.d` finds them), and after
//!   building, the `::ffff:0:0/96` record is made to point at the same IPv4 subtree (so the
//!   IPv4-mapped `::ffff:a.b.c.d` finds them too, as MaxMind's own databases do). Exception: if
//!   an IPv6 network inside (or equal to) `::ffff:0:0/96` was inserted, that region is left
//!   exactly as inserted and no alias is made. An IPv6 network that covers `::ffff:0:0/96`
//!   without covering `::/96` (prefix length 81..=95) is shadowed there by the alias: mapped
//!   addresses answer like their IPv4 address.
//! * An IPv6 network covering `::/96` (e.g. `::/0`) answers the IPv4 addresses no IPv4 network
//!   covers (it is an ordinary shorter prefix of them).
//! * An IPv4 network `a.b.c.d/L` and the IPv6 network `::a.b.c.d/(96+L)` occupy the same place
//!   in an IPv6 tree and count as the same network for duplicate detection.
//!
//! # Node numbering
//!
//! In blocks, so that a lookup's path stays together in memory, which is what decides lookup
//! speed once the tree outgrows the CPU caches (breadth-first order would put every level of a
//! path in a different place). A block is a node and its descendants down to a fixed height:
//! 12 levels for the root's block and for the block of the IPv4 subtree's root in an IPv6 tree
//! (the levels the reader's jump tables cover), 3 levels (7 nodes, about a cache line)
//! elsewhere. Blocks are laid out depth-first, left before right: the root's block first (root
//! = node 0), then each block hanging below it, each followed by everything below it, before
//! the next one. Inside a block, nodes go breadth-first, left before right. A chain of nodes
//! leading to a lone long network is therefore consecutive. The aliased IPv4 subtree is
//! numbered where the walk first reaches it, on the `::/96` path (left of `::ffff:0:0/96`
//! where they part). The record size is the smallest of 24/28/32
//! bits that holds `node_count + 16 + data_section_len`. No node has two data records from the
//! same inserted network (such a node would be redundant), except a root set by a `/0` network.
//!
//! # Prefix table
//!
//! `BuiltTree::prefix_table` has 2 bytes per node, `[2*i]` for node `i`'s left record and
//! `[2*i+1]` for its right one: 0 if the record is not data, else the inserted network the data
//! comes from: an IPv6 network of length `L` as `L + 1` (1..=129), an IPv4 network of length
//! `L` as `130 + L` (130..=162). See [`decode_prefix_code`].

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// In-memory records are `u32`: 0 is "empty" (no record points back at the root, node 0), a
/// value with the top bit set is a leaf holding a network slot, anything else a node index.
const EMPTY: u32 = 0;
const LEAF: u32 = 1 << 31;
/// Node indexes and network slots stay below the leaf tag bit.
const MAX_INDEX: usize = LEAF as usize - 1;

/// An inserted network that made it into the tree (duplicates do not get their own slot).
#[derive(Clone, Copy, Debug)]
struct Network {
    data_offset: u32,
    entry_id: u32,
    /// Prefix length in tree bits (IPv4 in an IPv6 tree: 96 + L).
    tree_len: u8,
    /// Prefix-table code (see module docs).
    code: u8,
}

/// A later insertion of the network held by `slot`.
#[derive(Clone, Copy, Debug)]
struct Duplicate {
    slot: u32,
    data_offset: u32,
    entry_id: u32,
    /// Its own prefix code: `::1.2.3.0/120` duplicates `1.2.3.0/24` but reports differently.
    code: u8,
}

/// Which of several insertions of the same network supplies its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepDuplicate {
    First,
    Last,
}

/// A finished search tree, ready to be written at file offset 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltTree {
    /// The tree bytes (`node_count * record_size / 4`).
    pub bytes: Vec<u8>,
    pub node_count: u32,
    pub record_size: u16,
    pub ip_version: u16,
    /// 2 bytes per node: the inserted network each data record comes from (module docs).
    pub prefix_table: Vec<u8>,
    /// (kept entry_id, dropped entry_id) for every network inserted more than once.
    pub duplicates: Vec<(u32, u32)>,
}

/// The inserted network a prefix-table code stands for: `(ip_version, prefix_len)`, or `None`
/// for 0 (not data) and codes no builder writes.
pub fn decode_prefix_code(code: u8) -> Option<(u16, u8)> {
    match code {
        1..=129 => Some((6, code - 1)),
        130..=162 => Some((4, code - 130)),
        _ => None,
    }
}

/// Collects networks and turns them into a [`BuiltTree`]. Memory: 8 bytes per tree node and
/// 12 per distinct network while inserting, plus a map entry per network that has longer
/// networks nested inside it.
#[derive(Debug)]
pub struct TreeBuilder {
    ip_version: u16,
    nodes: Vec<[u32; 2]>,
    networks: Vec<Network>,
    /// node -> slot of the network whose range is exactly that node's range. Needed to spot a
    /// duplicate whose first copy is no longer a leaf anywhere (longer networks cover it all).
    owners: HashMap<u32, u32>,
    duplicates: Vec<Duplicate>,
    forced_record_size: Option<u16>,
    /// An IPv6 network inside `::ffff:0:0/96` was inserted: no IPv4-mapped alias.
    mapped_region_used: bool,
    /// Reused stack for filling subtrees.
    scratch: Vec<u32>,
    /// (top, other) block heights of the node numbering; tests and benchmarks vary them.
    block_heights: (u32, u32),
    /// The node 96 zero bits down in an IPv6 tree, once it exists (nodes are never replaced):
    /// IPv4 insertions start there instead of walking 96 levels.
    ipv4_root: Option<u32>,
}

impl TreeBuilder {
    /// A builder for an IPv4 (`4`) or IPv6 (`6`) tree; any other version makes `insert` and
    /// `finish` fail. Pick 6 if any IPv6 network will be inserted.
    pub fn new(ip_version: u16) -> Self {
        TreeBuilder {
            ip_version,
            nodes: vec![[EMPTY, EMPTY]],
            networks: Vec::new(),
            owners: HashMap::new(),
            duplicates: Vec::new(),
            forced_record_size: None,
            mapped_region_used: false,
            scratch: Vec::new(),
            block_heights: (TOP_BLOCK_HEIGHT, BLOCK_HEIGHT),
            ipv4_root: None,
        }
    }

    /// Benchmarks only: other block heights for the node numbering (1, 1 = pre-order).
    #[cfg(test)]
    pub(crate) fn set_block_heights(&mut self, top: u32, other: u32) {
        self.block_heights = (top, other);
    }

    /// Tests only: use this record size (24, 28 or 32) instead of the smallest that fits;
    /// `finish` fails if it is too small.
    pub fn force_record_size(&mut self, bits: u16) {
        self.forced_record_size = Some(bits);
    }

    /// Inserts `addr/prefix_len` (host bits beyond the prefix are ignored) with data at
    /// `data_offset` in the data section; `entry_id` names the input entry in duplicate
    /// reports. Fails for an IPv6 network in an IPv4 tree or a prefix longer than the address.
    pub fn insert(
        &mut self,
        addr: IpAddr,
        prefix_len: u8,
        data_offset: u32,
        entry_id: u32,
    ) -> Result<()> {
        let (key, tree_len, code) = self.tree_key(addr, prefix_len)?;
        let network = Network {
            data_offset,
            entry_id,
            tree_len,
            code,
        };
        if tree_len == 0 {
            return self.place_at_node(0, network);
        }
        let ipv4_in_ipv6 = self.ip_version == 6 && addr.is_ipv4() && tree_len > 96;
        let (mut node, start_depth) = match self.ipv4_root {
            Some(ipv4_root) if ipv4_in_ipv6 => (ipv4_root, 96),
            _ => (0, 0),
        };
        for depth in start_depth..tree_len - 1 {
            let side = bit(key, depth);
            let record = self.nodes[node as usize][side];
            node = if is_node(record) {
                record
            } else {
                self.split(node, side, record, depth + 1)?
            };
        }
        let side = bit(key, tree_len - 1);
        let record = self.nodes[node as usize][side];
        if is_node(record) {
            return self.place_at_node(record, network);
        }
        if record != EMPTY {
            // A leaf at depth `tree_len` holds a network of length <= tree_len: equal means
            // the same network, shorter means ours is more specific.
            let held = record & !LEAF;
            if self.networks[held as usize].tree_len == tree_len {
                self.duplicates.push(Duplicate {
                    slot: held,
                    data_offset,
                    entry_id,
                    code,
                });
                return Ok(());
            }
        }
        let slot = self.add_network(network)?;
        self.nodes[node as usize][side] = LEAF | slot;
        if ipv4_in_ipv6 && self.ipv4_root.is_none() {
            self.ipv4_root = follow_zeros(&self.nodes, 96);
        }
        Ok(())
    }

    /// Builds the tree. `data_section_len` bounds the data offsets (each must be smaller) and
    /// sizes the records; `keep` says which insertion of a duplicated network supplies data.
    pub fn finish(mut self, data_section_len: usize, keep: KeepDuplicate) -> Result<BuiltTree> {
        self.check_ip_version()?;
        let duplicates = self.resolve_duplicates(keep);
        if self.ip_version == 6 && !self.mapped_region_used {
            self.install_ipv4_alias()?;
        }
        let TreeBuilder {
            ip_version,
            nodes,
            networks,
            forced_record_size,
            block_heights,
            ..
        } = self;

        let ipv4_root = if ip_version == 6 {
            follow_zeros(&nodes, 96)
        } else {
            None
        };
        let (number, node_count) = number_nodes(&nodes, ipv4_root, block_heights);
        let record_size = pick_record_size(node_count, data_section_len, forced_record_size)?;

        let node_bytes = usize::from(record_size / 4);
        let mut bytes = vec![0u8; node_count as usize * node_bytes];
        let mut prefix_table = vec![0u8; node_count as usize * 2];
        for (node, &out) in nodes.iter().zip(&number) {
            if out == UNNUMBERED {
                continue; // unreachable; nothing we build leaves such nodes, but never write them
            }
            let out = out as usize;
            let mut records = [0u32; 2];
            for (side, &record) in node.iter().enumerate() {
                records[side] = if record == EMPTY {
                    node_count
                } else if record & LEAF != 0 {
                    let network = networks[(record & !LEAF) as usize];
                    if network.data_offset as usize >= data_section_len {
                        return Err(Error::Build(format!(
                            "data offset {} of entry {} is past the end of the {}-byte data section",
                            network.data_offset, network.entry_id, data_section_len
                        )));
                    }
                    prefix_table[2 * out + side] = network.code;
                    // Fits: pick_record_size checked node_count + 16 + data_section_len.
                    node_count + 16 + network.data_offset
                } else {
                    number[record as usize]
                };
            }
            write_node(
                &mut bytes[out * node_bytes..][..node_bytes],
                record_size,
                records,
            );
        }
        Ok(BuiltTree {
            bytes,
            node_count,
            record_size,
            ip_version,
            prefix_table,
            duplicates,
        })
    }

    fn check_ip_version(&self) -> Result<()> {
        match self.ip_version {
            4 | 6 => Ok(()),
            v => Err(Error::Build(format!(
                "search tree IP version must be 4 or 6, not {v}"
            ))),
        }
    }

    /// The network as a left-aligned 128-bit key (host bits cleared), its length in tree bits,
    /// and its prefix-table code.
    fn tree_key(&mut self, addr: IpAddr, prefix_len: u8) -> Result<(u128, u8, u8)> {
        self.check_ip_version()?;
        let (key, tree_len, code) = match addr {
            IpAddr::V4(v4) => {
                if prefix_len > 32 {
                    return Err(Error::Build(format!(
                        "prefix length {prefix_len} of {v4} is longer than 32"
                    )));
                }
                let bits = u128::from(u32::from(v4));
                if self.ip_version == 4 {
                    (bits << 96, prefix_len, 130 + prefix_len)
                } else {
                    (bits, 96 + prefix_len, 130 + prefix_len)
                }
            }
            IpAddr::V6(v6) => {
                if self.ip_version == 4 {
                    return Err(Error::Build(format!(
                        "IPv6 network {v6}/{prefix_len} cannot go into an IPv4 search tree"
                    )));
                }
                if prefix_len > 128 {
                    return Err(Error::Build(format!(
                        "prefix length {prefix_len} of {v6} is longer than 128"
                    )));
                }
                (u128::from(v6), prefix_len, prefix_len + 1)
            }
        };
        let key = if tree_len == 0 {
            0
        } else {
            key & (u128::MAX << (128 - u32::from(tree_len)))
        };
        if matches!(addr, IpAddr::V6(_)) && tree_len >= 96 && key >> 32 == 0xFFFF {
            self.mapped_region_used = true;
        }
        Ok((key, tree_len, code))
    }

    fn add_network(&mut self, network: Network) -> Result<u32> {
        if self.networks.len() >= MAX_INDEX {
            return Err(Error::Build("too many networks for one search tree".into()));
        }
        self.networks.push(network);
        Ok(self.networks.len() as u32 - 1)
    }

    /// Replaces the empty or leaf `record` (record `side` of `parent`, covering a range of
    /// `record_depth` bits) by a new node whose two halves both keep `record`.
    fn split(&mut self, parent: u32, side: usize, record: u32, record_depth: u8) -> Result<u32> {
        if self.nodes.len() >= MAX_INDEX {
            return Err(Error::Build("too many search tree nodes".into()));
        }
        let child = self.nodes.len() as u32;
        self.nodes.push([record, record]);
        if record != EMPTY {
            let held = record & !LEAF;
            if self.networks[held as usize].tree_len == record_depth {
                self.owners.insert(child, held);
            }
        }
        self.nodes[parent as usize][side] = child;
        Ok(child)
    }

    /// Inserts a network whose range is exactly `node`'s range: every empty record and every
    /// leaf of a shorter network below `node` gets it; longer networks keep theirs.
    fn place_at_node(&mut self, node: u32, network: Network) -> Result<()> {
        if let Some(&held) = self.owners.get(&node) {
            self.duplicates.push(Duplicate {
                slot: held,
                data_offset: network.data_offset,
                entry_id: network.entry_id,
                code: network.code,
            });
            return Ok(());
        }
        let slot = self.add_network(network)?;
        self.owners.insert(node, slot);
        let leaf = LEAF | slot;
        // Depth-first: at most one pending sibling per level, so the stack stays small.
        let mut stack = std::mem::take(&mut self.scratch);
        stack.clear();
        stack.push(node);
        while let Some(current) = stack.pop() {
            for side in 0..2 {
                let record = self.nodes[current as usize][side];
                if is_node(record) {
                    stack.push(record);
                } else if record == EMPTY
                    || self.networks[(record & !LEAF) as usize].tree_len < network.tree_len
                {
                    self.nodes[current as usize][side] = leaf;
                }
            }
        }
        self.scratch = stack;
        Ok(())
    }

    /// Applies `keep` to the recorded duplicates and lists (kept, dropped) entry ids, grouped by
    /// network in first-insertion order, then in insertion order.
    fn resolve_duplicates(&mut self, keep: KeepDuplicate) -> Vec<(u32, u32)> {
        let mut duplicates = std::mem::take(&mut self.duplicates);
        duplicates.sort_by_key(|d| d.slot); // stable: insertion order within a network
        let mut pairs = Vec::with_capacity(duplicates.len());
        for group in duplicates.chunk_by(|a, b| a.slot == b.slot) {
            let network = &mut self.networks[group[0].slot as usize];
            match keep {
                KeepDuplicate::First => {
                    pairs.extend(group.iter().map(|d| (network.entry_id, d.entry_id)));
                }
                KeepDuplicate::Last => {
                    let (winner, earlier) = group.split_last().expect("chunks are not empty");
                    pairs.push((winner.entry_id, network.entry_id));
                    pairs.extend(earlier.iter().map(|d| (winner.entry_id, d.entry_id)));
                    network.data_offset = winner.data_offset;
                    network.entry_id = winner.entry_id;
                    network.code = winner.code;
                }
            }
        }
        pairs
    }

    /// Points the `::ffff:0:0/96` record at whatever `::/96` leads to (the IPv4 subtree node,
    /// or the leaf / empty record reached above it). A node target is then reachable twice.
    fn install_ipv4_alias(&mut self) -> Result<()> {
        let mut node = 0u32;
        let mut target = None;
        for _ in 0..96 {
            let record = self.nodes[node as usize][0];
            if !is_node(record) {
                target = Some(record);
                break;
            }
            node = record;
        }
        let target = target.unwrap_or(node);

        let mapped: u128 = 0xFFFF << 32;
        let mut node = 0u32;
        for depth in 0..95u8 {
            let side = bit(mapped, depth);
            let record = self.nodes[node as usize][side];
            if is_node(record) {
                node = record;
            } else if record == target {
                return Ok(()); // the mapped range already answers like ::/96
            } else {
                node = self.split(node, side, record, depth + 1)?;
            }
        }
        let record = &mut self.nodes[node as usize][bit(mapped, 95)];
        if is_node(*record) {
            // Only a network inside ::ffff:0:0/96 creates a node here, and that disables the
            // alias before we get here; never orphan a subtree.
            return Ok(());
        }
        *record = target;
        Ok(())
    }
}

/// Marks a node that `number_nodes` has not (yet) numbered.
const UNNUMBERED: u32 = u32::MAX;
/// Height of the blocks at the root and at the IPv4 subtree: the levels the readers' jump
/// tables cover, kept together so building a table reads one small contiguous region.
const TOP_BLOCK_HEIGHT: u32 = 12;
/// Height of every other block: 7 nodes, one 64-byte cache line or two.
const BLOCK_HEIGHT: u32 = 3;

/// Output node numbers (module docs, "Node numbering") for every in-memory node reachable from
/// the root, and how many there are. A node reached twice (the IPv4 alias target) keeps its
/// first number.
fn number_nodes(
    nodes: &[[u32; 2]],
    ipv4_root: Option<u32>,
    (top_height, block_height): (u32, u32),
) -> (Vec<u32>, u32) {
    let mut number = vec![UNNUMBERED; nodes.len()];
    let mut next = 0u32;
    // Block roots still to lay out, the next one on top.
    let mut blocks: Vec<u32> = vec![0];
    let mut level_order: Vec<u32> = Vec::new();
    while let Some(root) = blocks.pop() {
        if number[root as usize] != UNNUMBERED {
            continue;
        }
        let height = if root == 0 || Some(root) == ipv4_root {
            top_height
        } else {
            block_height
        };
        // Breadth-first inside the block; what is left in `level_order` after `height` levels
        // are the roots of the blocks below, left to right.
        level_order.clear();
        level_order.push(root);
        let mut level_start = 0;
        for _ in 0..height {
            let level_end = level_order.len();
            for i in level_start..level_end {
                let node = level_order[i];
                if number[node as usize] != UNNUMBERED {
                    continue; // queued twice in this block (the alias target)
                }
                number[node as usize] = next;
                next += 1;
                for child in nodes[node as usize] {
                    if is_node(child) && number[child as usize] == UNNUMBERED {
                        level_order.push(child);
                    }
                }
            }
            level_start = level_end;
        }
        blocks.extend(level_order[level_start..].iter().rev());
    }
    (number, next)
}

/// The node reached from the root by `bits` left records, if they are all nodes.
fn follow_zeros(nodes: &[[u32; 2]], bits: u32) -> Option<u32> {
    let mut node = 0u32;
    for _ in 0..bits {
        node = nodes[node as usize][0];
        if !is_node(node) {
            return None;
        }
    }
    Some(node)
}

#[inline]
fn is_node(record: u32) -> bool {
    record != EMPTY && record & LEAF == 0
}

/// Bit `depth` (0 = most significant) of a left-aligned key, as a record side.
#[inline]
fn bit(key: u128, depth: u8) -> usize {
    ((key >> (127 - u32::from(depth))) & 1) as usize
}

/// The smallest record size holding every record value (`forced` if given and large enough).
fn pick_record_size(node_count: u32, data_section_len: usize, forced: Option<u16>) -> Result<u16> {
    let largest = u64::from(node_count) + 16 + data_section_len as u64;
    let fits = |bits: u16| largest < 1u64 << bits;
    match forced {
        Some(bits) if !matches!(bits, 24 | 28 | 32) => Err(Error::Build(format!(
            "record size {bits} is not 24, 28 or 32 bits"
        ))),
        Some(bits) if !fits(bits) => Err(Error::Build(format!(
            "{node_count} nodes and a {data_section_len}-byte data section do not fit \
             {bits}-bit records"
        ))),
        Some(bits) => Ok(bits),
        None => [24, 28, 32].into_iter().find(|&b| fits(b)).ok_or_else(|| {
            Error::Build(format!(
                "{node_count} search tree nodes plus a {data_section_len}-byte data section \
                 exceed what 32-bit records can address"
            ))
        }),
    }
}

/// Writes one node's two records in the MaxMind DB layout for `record_size`.
fn write_node(out: &mut [u8], record_size: u16, [left, right]: [u32; 2]) {
    match record_size {
        24 => {
            out[..3].copy_from_slice(&left.to_be_bytes()[1..]);
            out[3..].copy_from_slice(&right.to_be_bytes()[1..]);
        }
        28 => {
            out[..3].copy_from_slice(&left.to_be_bytes()[1..]);
            out[3] = (((left >> 24) as u8) << 4) | ((right >> 24) as u8 & 0x0F);
            out[4..].copy_from_slice(&right.to_be_bytes()[1..]);
        }
        _ => {
            out[..4].copy_from_slice(&left.to_be_bytes());
            out[4..].copy_from_slice(&right.to_be_bytes());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mmdb::tree::{RecordAt, SearchTree, TreeHit};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// An input network as the tests think of it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Net {
        V4(u32, u8),
        V6(u128, u8),
    }

    impl Net {
        fn addr(self) -> IpAddr {
            match self {
                Net::V4(a, _) => IpAddr::V4(Ipv4Addr::from(a)),
                Net::V6(a, _) => IpAddr::V6(Ipv6Addr::from(a)),
            }
        }
        fn len(self) -> u8 {
            match self {
                Net::V4(_, l) | Net::V6(_, l) => l,
            }
        }
        fn code(self) -> u8 {
            match self {
                Net::V4(_, l) => 130 + l,
                Net::V6(_, l) => l + 1,
            }
        }
        /// (left-aligned key, length) in the tree of `ip_version`.
        fn tree_position(self, ip_version: u16) -> (u128, u32) {
            let (key, len) = match (self, ip_version) {
                (Net::V4(a, l), 4) => (u128::from(a) << 96, u32::from(l)),
                (Net::V4(a, l), _) => (u128::from(a), 96 + u32::from(l)),
                (Net::V6(a, l), _) => (a, u32::from(l)),
            };
            (mask(key, len), len)
        }
    }

    fn mask(key: u128, len: u32) -> u128 {
        if len == 0 {
            0
        } else {
            key & (u128::MAX << (128 - len))
        }
    }

    /// Naive longest-prefix oracle over deduplicated networks: (data_offset, prefix code).
    pub(crate) struct Oracle {
        ip_version: u16,
        nets: Vec<(Net, u32)>,
        mapped_used: bool,
    }

    impl Oracle {
        /// Keeps the first of each tree position (KeepDuplicate::First), like the builder.
        pub(crate) fn new(ip_version: u16, inserted: &[(Net, u32)]) -> Oracle {
            let mut nets: Vec<(Net, u32)> = Vec::new();
            for &(net, off) in inserted {
                let pos = net.tree_position(ip_version);
                if !nets.iter().any(|(n, _)| n.tree_position(ip_version) == pos) {
                    nets.push((net, off));
                }
            }
            let mapped_used = nets.iter().any(
                |(n, _)| matches!(n, Net::V6(a, l) if *l >= 96 && mask(*a, 96) == 0xFFFF << 32),
            );
            Oracle {
                ip_version,
                nets,
                mapped_used,
            }
        }

        /// Longest inserted network containing tree key `q`.
        fn longest(&self, q: u128) -> Option<(u32, u8)> {
            self.nets
                .iter()
                .filter(|(n, _)| {
                    let (key, len) = n.tree_position(self.ip_version);
                    mask(q, len) == key
                })
                .max_by_key(|(n, _)| n.tree_position(self.ip_version).1)
                .map(|&(n, off)| (off, n.code()))
        }

        pub(crate) fn v4(&self, a: u32) -> Option<(u32, u8)> {
            if self.ip_version == 4 {
                self.longest(u128::from(a) << 96)
            } else {
                self.longest(u128::from(a))
            }
        }

        pub(crate) fn v6(&self, q: u128) -> Option<(u32, u8)> {
            if q >> 32 == 0xFFFF && (self.ip_version == 4 || !self.mapped_used) {
                return self.v4(q as u32);
            }
            self.longest(q)
        }
    }

    pub(crate) fn build(
        ip_version: u16,
        inserted: &[(Net, u32)],
        record_size: Option<u16>,
        data_len: usize,
        keep: KeepDuplicate,
    ) -> BuiltTree {
        let mut b = TreeBuilder::new(ip_version);
        if let Some(bits) = record_size {
            b.force_record_size(bits);
        }
        for (i, &(net, off)) in inserted.iter().enumerate() {
            b.insert(net.addr(), net.len(), off, i as u32).unwrap();
        }
        b.finish(data_len, keep).unwrap()
    }

    /// A view of `built` whose IPv4 lookups go through the stride index (the walk is compared
    /// with it in `tree::tests`).
    pub(crate) fn view(built: &BuiltTree) -> SearchTree<'_> {
        let tree = SearchTree::new(
            &built.bytes,
            built.node_count,
            built.record_size,
            built.ip_version,
        )
        .unwrap()
        .with_prefix_table(&built.prefix_table);
        tree.build_ip_index();
        tree
    }

    fn answer(tree: &SearchTree<'_>, hit: Option<TreeHit>) -> Option<(u32, u8)> {
        hit.map(|h| {
            let code = tree.prefix_code(h.at);
            (h.data_offset as u32, code)
        })
    }

    /// No node below the root has both records holding data from the same network.
    fn assert_no_redundant_nodes(built: &BuiltTree) {
        let tree = view(built);
        for node in 1..built.node_count {
            let a = tree.lookup_record_for_tests(node, 0);
            let b = tree.lookup_record_for_tests(node, 1);
            assert!(
                !(a == b && a > built.node_count),
                "node {node} has two identical data records {a}"
            );
        }
    }

    // ---- minimal MaxMind DB writer, to let the `maxminddb` crate read our trees ----

    fn ctrl(out: &mut Vec<u8>, kind: u8, size: usize) {
        assert!(size < 29);
        if kind <= 7 {
            out.push(kind << 5 | size as u8);
        } else {
            out.push(size as u8);
            out.push(kind - 7);
        }
    }
    fn str_(out: &mut Vec<u8>, s: &str) {
        ctrl(out, 2, s.len());
        out.extend_from_slice(s.as_bytes());
    }
    fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        ctrl(out, kind, 8 - skip);
        out.extend_from_slice(&bytes[skip..]);
    }

    /// tree + separator + `data_len` bytes of data (each byte a 0-length map, decodable) +
    /// metadata.
    pub(crate) fn mmdb_file(built: &BuiltTree, data_len: usize) -> Vec<u8> {
        let mut f = built.bytes.clone();
        f.extend_from_slice(&[0; 16]);
        f.extend(std::iter::repeat_n(0xE0u8, data_len));
        f.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        ctrl(&mut f, 7, 9);
        str_(&mut f, "binary_format_major_version");
        uint(&mut f, 5, 2);
        str_(&mut f, "binary_format_minor_version");
        uint(&mut f, 5, 0);
        str_(&mut f, "build_epoch");
        uint(&mut f, 9, 1_700_000_000);
        str_(&mut f, "database_type");
        str_(&mut f, "matchy-test");
        str_(&mut f, "description");
        ctrl(&mut f, 7, 1);
        str_(&mut f, "en");
        str_(&mut f, "test");
        str_(&mut f, "ip_version");
        uint(&mut f, 5, u64::from(built.ip_version));
        str_(&mut f, "languages");
        ctrl(&mut f, 11, 0);
        str_(&mut f, "node_count");
        uint(&mut f, 6, u64::from(built.node_count));
        str_(&mut f, "record_size");
        uint(&mut f, 5, u64::from(built.record_size));
        f
    }

    /// Our answer and depth must equal maxminddb's offset and network prefix.
    fn assert_same_as_maxminddb(
        reader: &maxminddb::Reader<Vec<u8>>,
        tree: &SearchTree<'_>,
        ip: IpAddr,
    ) {
        let ours = tree.lookup(ip).unwrap();
        let theirs = reader.lookup(ip).unwrap();
        assert_eq!(ours.map(|h| h.data_offset), theirs.offset(), "{ip}");
        if let Some(hit) = ours {
            let net = theirs.network().unwrap();
            // maxminddb reports an IPv6 network for an IPv4 query answered above the IPv4
            // subtree; we report depth 0 there.
            if net.is_ipv4() == ip.is_ipv4() {
                assert_eq!(hit.depth, net.prefix(), "{ip}");
            }
        }
    }

    // ---- hand cases ----

    #[test]
    fn index_with_more_than_65536_distinct_leaves_answers_like_maxminddb() {
        // Every network its own data: the index's leaf ids take 4 bytes, held in pairs of
        // halves by the nodes that have few runs (and read from the leaf-id array otherwise).
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let inserted: Vec<(Net, u32)> = (0..70_000u32)
            .map(|i| {
                let addr = 0x0A00_0000 | (next() as u32 & 0x00FF_FFFF);
                let len = 20 + (next() % 13) as u8;
                (Net::V4(addr & (u32::MAX << (32 - len)), len), i * 3 + 1)
            })
            .collect();
        let data_len = inserted.len() * 3 + 2;
        let built = build(4, &inserted, Some(32), data_len, KeepDuplicate::First);
        let tree = view(&built);
        assert!(tree.ip_index_built());
        let reader = maxminddb::Reader::from_source(mmdb_file(&built, data_len)).unwrap();
        for (i, &(net, _)) in inserted.iter().enumerate() {
            let Net::V4(addr, _) = net else {
                unreachable!()
            };
            for q in [
                addr,
                addr | (next() as u32 & 0xFF),
                0x0A00_0000 | (i as u32 * 239),
            ] {
                assert_same_as_maxminddb(&reader, &tree, IpAddr::V4(q.into()));
            }
        }
    }

    #[test]
    fn longer_prefix_wins_in_any_order() {
        for order in [[0usize, 1], [1, 0]] {
            let nets = [
                (Net::V4(0x0A00_0000, 8), 10u32),
                (Net::V4(0x0A01_0000, 16), 20u32),
            ];
            let inserted: Vec<_> = order.iter().map(|&i| nets[i]).collect();
            for version in [4, 6] {
                let built = build(version, &inserted, None, 100, KeepDuplicate::First);
                let tree = view(&built);
                let q = |s: &str| answer(&tree, tree.lookup(s.parse().unwrap()).unwrap());
                assert_eq!(q("10.1.2.3"), Some((20, 146)));
                assert_eq!(q("10.2.3.4"), Some((10, 138)));
                assert_eq!(q("11.0.0.0"), None);
                let hit = tree.lookup("10.1.2.3".parse().unwrap()).unwrap().unwrap();
                assert_eq!(hit.depth, 16);
                if version == 6 {
                    assert_eq!(q("::10.1.2.3"), Some((20, 146)));
                    assert_eq!(q("::ffff:10.2.3.4"), Some((10, 138)));
                    assert_eq!(q("2001:db8::1"), None);
                    let hit = tree.lookup("::ffff:10.1.2.3".parse().unwrap()).unwrap();
                    assert_eq!(hit.unwrap().depth, 96 + 16);
                }
                assert_eq!(tree.check(100).unwrap().reachable_nodes, built.node_count);
            }
        }
    }

    #[test]
    fn ipv6_default_route_covers_uncovered_ipv4() {
        let inserted = [
            (Net::V4(0x0102_0300, 24), 5u32),
            (Net::V6(0, 0), 1u32),
            (Net::V6(0x2001_0db8 << 96, 32), 9u32),
        ];
        let built = build(6, &inserted, None, 20, KeepDuplicate::First);
        let tree = view(&built);
        let q = |s: &str| answer(&tree, tree.lookup(s.parse().unwrap()).unwrap());
        assert_eq!(q("1.2.3.4"), Some((5, 154)));
        assert_eq!(q("::ffff:1.2.3.4"), Some((5, 154)));
        assert_eq!(q("::1.2.3.4"), Some((5, 154)));
        assert_eq!(q("8.8.8.8"), Some((1, 1)));
        assert_eq!(q("::ffff:8.8.8.8"), Some((1, 1)));
        assert_eq!(q("2001:db8::1"), Some((9, 33)));
        assert_eq!(q("2001:db9::1"), Some((1, 1)));
        // The IPv4 subtree is shared by ::/96 and ::ffff:0:0/96 and the check accepts that.
        let check = tree.check(20).unwrap();
        assert_eq!(check.reachable_nodes, built.node_count);
        assert_eq!(check.data_offsets, vec![1, 5, 9]);
    }

    #[test]
    fn only_ipv6_default_route_answers_ipv4_from_the_root() {
        let built = build(6, &[(Net::V6(0, 0), 3)], None, 10, KeepDuplicate::First);
        assert_eq!(built.node_count, 1);
        let tree = view(&built);
        let hit = tree.lookup("1.2.3.4".parse().unwrap()).unwrap().unwrap();
        assert_eq!(
            (hit.data_offset, tree.prefix_code(hit.at), hit.depth),
            (3, 1, 0)
        );
        let hit = tree.lookup("ffff::".parse().unwrap()).unwrap().unwrap();
        assert_eq!(
            (hit.data_offset, hit.at, hit.depth),
            (3, RecordAt::Node { node: 0, side: 1 }, 1)
        );
        assert_eq!(built.prefix_table, vec![1, 1]);
    }

    #[test]
    fn mapped_networks_disable_the_alias() {
        let inserted = [
            (Net::V4(0x0102_0300, 24), 5u32),
            (Net::V6((0xFFFF << 32) | 0x0102_0000, 112), 7u32),
        ];
        let built = build(6, &inserted, None, 20, KeepDuplicate::First);
        let tree = view(&built);
        let q = |s: &str| answer(&tree, tree.lookup(s.parse().unwrap()).unwrap());
        assert_eq!(q("1.2.3.4"), Some((5, 154)));
        assert_eq!(q("::ffff:1.2.3.4"), Some((7, 113)));
        assert_eq!(q("::ffff:1.3.0.0"), None);
        assert_eq!(tree.check(20).unwrap().reachable_nodes, built.node_count);
    }

    #[test]
    fn ipv6_query_in_ipv4_tree() {
        let built = build(
            4,
            &[(Net::V4(0x0102_0304, 32), 0)],
            None,
            1,
            KeepDuplicate::First,
        );
        let tree = view(&built);
        let err = tree.lookup("2001:db8::1".parse().unwrap()).unwrap_err();
        assert!(matches!(err, Error::InvalidQuery { .. }), "{err}");
        assert!(err.to_string().contains("IPv4-only"), "{err}");
        let hit = tree
            .lookup("::ffff:1.2.3.4".parse().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!((hit.data_offset, hit.depth), (0, 32));
        assert_eq!(tree.prefix_code(hit.at), 162);
        assert_eq!(
            tree.lookup("::ffff:1.2.3.5".parse().unwrap()).unwrap(),
            None
        );
        // An IPv6 network cannot go into an IPv4 tree.
        let mut b = TreeBuilder::new(4);
        assert!(b.insert("::1".parse().unwrap(), 128, 0, 0).is_err());
    }

    #[test]
    fn empty_tree_is_one_node_saying_not_found() {
        for version in [4, 6] {
            let built = TreeBuilder::new(version)
                .finish(0, KeepDuplicate::First)
                .unwrap();
            assert_eq!(built.node_count, 1);
            assert_eq!(built.record_size, 24);
            assert_eq!(built.bytes, vec![0, 0, 1, 0, 0, 1]);
            assert_eq!(built.prefix_table, vec![0, 0]);
            let tree = view(&built);
            assert_eq!(tree.lookup("1.2.3.4".parse().unwrap()).unwrap(), None);
            if version == 6 {
                assert_eq!(tree.lookup("::1".parse().unwrap()).unwrap(), None);
            }
            let check = tree.check(0).unwrap();
            assert_eq!((check.reachable_nodes, check.data_offsets.len()), (1, 0));
        }
    }

    #[test]
    fn extreme_prefix_lengths() {
        let inserted = [
            (Net::V4(0, 0), 1u32),
            (Net::V4(0xFFFF_FFFF, 32), 2u32),
            (Net::V6(u128::MAX, 128), 3u32),
            (Net::V6(1, 128), 4u32),
        ];
        let built = build(6, &inserted, None, 10, KeepDuplicate::First);
        let tree = view(&built);
        let q = |s: &str| answer(&tree, tree.lookup(s.parse().unwrap()).unwrap());
        assert_eq!(q("0.0.0.0"), Some((1, 130)));
        assert_eq!(q("255.255.255.254"), Some((1, 130)));
        assert_eq!(q("255.255.255.255"), Some((2, 162)));
        assert_eq!(q("::ffff:255.255.255.255"), Some((2, 162)));
        assert_eq!(q("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Some((3, 129)));
        assert_eq!(q("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), None);
        // ::1 is inside ::/96, where 0.0.0.0/0 lives, but is longer.
        assert_eq!(q("::1"), Some((4, 129)));
        assert_eq!(q("0.0.0.1"), Some((4, 129)));
        let hit = tree.lookup("0.0.0.1".parse().unwrap()).unwrap().unwrap();
        assert_eq!(hit.depth, 32);
        tree.check(10).unwrap();

        let v4 = build(
            4,
            &[(Net::V4(0, 0), 0), (Net::V4(0x0A00_0001, 32), 1)],
            None,
            2,
            KeepDuplicate::First,
        );
        let tree = view(&v4);
        let q = |s: &str| answer(&tree, tree.lookup(s.parse().unwrap()).unwrap());
        assert_eq!(q("9.9.9.9"), Some((0, 130)));
        assert_eq!(q("10.0.0.1"), Some((1, 162)));
        assert_eq!(q("10.0.0.0"), Some((0, 130)));
    }

    #[test]
    fn host_bits_are_masked_and_bad_prefixes_rejected() {
        let built = build(
            4,
            &[(Net::V4(0x0A01_0203, 8), 4)],
            None,
            5,
            KeepDuplicate::First,
        );
        let tree = view(&built);
        let hit = tree.lookup("10.200.0.0".parse().unwrap()).unwrap().unwrap();
        assert_eq!((hit.data_offset, hit.depth), (4, 8));
        let mut b = TreeBuilder::new(6);
        assert!(b.insert("1.2.3.4".parse().unwrap(), 33, 0, 0).is_err());
        assert!(b.insert("::".parse().unwrap(), 129, 0, 0).is_err());
        let mut b = TreeBuilder::new(5);
        assert!(b.insert("1.2.3.4".parse().unwrap(), 3, 0, 0).is_err());
        assert!(TreeBuilder::new(5).finish(0, KeepDuplicate::First).is_err());
    }

    #[test]
    fn duplicates_are_reported_and_keep_decides() {
        // 10/8 three times, the second after 10.0/9 and 10.128/9 hid it entirely; 1.2.3.0/24
        // once as IPv4 and once as ::1.2.3.0/120 (the same place in an IPv6 tree).
        let inserted = [
            (Net::V4(0x0A00_0000, 8), 1u32),
            (Net::V4(0x0A00_0000, 9), 2),
            (Net::V4(0x0A80_0000, 9), 3),
            (Net::V4(0x0AFF_0000, 8), 4),
            (Net::V4(0x0102_0300, 24), 5),
            (Net::V6(0x0102_0300, 120), 6),
            (Net::V4(0x0A00_0000, 8), 7),
        ];
        let first = build(6, &inserted, None, 10, KeepDuplicate::First);
        assert_eq!(first.duplicates, vec![(0, 3), (0, 6), (4, 5)]);
        let last = build(6, &inserted, None, 10, KeepDuplicate::Last);
        assert_eq!(last.duplicates, vec![(6, 0), (6, 3), (5, 4)]);
        let q = |b: &BuiltTree, s: &str| {
            let tree = view(b);
            answer(&tree, tree.lookup(s.parse().unwrap()).unwrap())
        };
        assert_eq!(q(&first, "1.2.3.4"), Some((5, 154)));
        assert_eq!(q(&last, "1.2.3.4"), Some((6, 121)));
        assert_eq!(q(&first, "10.1.1.1"), Some((2, 139)));
        // A 10/8 leaf still exists in the other tree when /9s do not cover it.
        let simple = [
            (Net::V4(0x0A00_0000, 8), 1u32),
            (Net::V4(0x0A00_0000, 8), 2),
        ];
        let b = build(4, &simple, None, 5, KeepDuplicate::Last);
        assert_eq!(q(&b, "10.0.0.1"), Some((2, 138)));
        assert_eq!(b.duplicates, vec![(1, 0)]);
        let b = build(4, &simple, None, 5, KeepDuplicate::First);
        assert_eq!(q(&b, "10.0.0.1"), Some((1, 138)));
        // /0 duplicates, at the root.
        let zero = [(Net::V6(0, 0), 1u32), (Net::V6(5, 0), 2)];
        let b = build(6, &zero, None, 5, KeepDuplicate::Last);
        assert_eq!(b.duplicates, vec![(1, 0)]);
        assert_eq!(q(&b, "1.1.1.1"), Some((2, 1)));
    }

    #[test]
    fn record_size_is_the_smallest_that_fits() {
        let nets = [(Net::V4(0x0102_0304, 32), 0u32)];
        let b = build(
            4,
            &nets,
            None,
            (1 << 24) - 16 - 32 - 1,
            KeepDuplicate::First,
        );
        assert_eq!((b.node_count, b.record_size), (32, 24));
        let b = build(4, &nets, None, (1 << 24) - 16 - 32, KeepDuplicate::First);
        assert_eq!(b.record_size, 28);
        let b = build(4, &nets, None, 1 << 28, KeepDuplicate::First);
        assert_eq!(b.record_size, 32);
        let mut tb = TreeBuilder::new(4);
        tb.insert("1.2.3.4".parse().unwrap(), 32, 0, 0).unwrap();
        assert!(tb.finish(1 << 32, KeepDuplicate::First).is_err());
        let mut tb = TreeBuilder::new(4);
        tb.force_record_size(24);
        assert!(tb.finish(1 << 24, KeepDuplicate::First).is_err());
        // A data offset past the data section is the caller's bug, reported.
        let mut tb = TreeBuilder::new(4);
        tb.insert("1.2.3.4".parse().unwrap(), 32, 10, 0).unwrap();
        assert!(tb.finish(10, KeepDuplicate::First).is_err());
    }

    #[test]
    fn record_layouts_match_the_spec_bytes() {
        // Node 0's right record is node 1 and node 1's records are data; big values exercise the
        // 28-bit middle nibble.
        for bits in [24u16, 28, 32] {
            let data_len = match bits {
                24 => 1000,
                28 => 0x00F0_0000 + 1000,
                _ => 0x0F00_0000 + 1000,
            };
            let off = data_len as u32 - 1;
            let nets = [(Net::V4(0x8000_0000, 2), off), (Net::V4(0xC000_0000, 2), 0)];
            let built = build(4, &nets, Some(bits), data_len, KeepDuplicate::First);
            assert_eq!(built.node_count, 2);
            let (l, r): (u32, u32) = (2 + 16 + off, 2 + 16);
            let expected: Vec<u8> = match bits {
                24 => vec![
                    0,
                    0,
                    2,
                    0,
                    0,
                    1,
                    (l >> 16) as u8,
                    (l >> 8) as u8,
                    l as u8,
                    0,
                    0,
                    r as u8,
                ],
                28 => vec![
                    0,
                    0,
                    2,
                    0,
                    0,
                    0,
                    1,
                    (l >> 16) as u8,
                    (l >> 8) as u8,
                    l as u8,
                    ((l >> 24) as u8) << 4,
                    0,
                    0,
                    r as u8,
                ],
                _ => [2u32, 1, l, r]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
            };
            assert_eq!(built.bytes, expected, "{bits}-bit");
            let tree = view(&built);
            let hit = tree.lookup("128.0.0.1".parse().unwrap()).unwrap().unwrap();
            assert_eq!(
                (hit.data_offset, tree.prefix_code(hit.at), hit.depth),
                (off as usize, built.prefix_table[2], 2)
            );
            let reader = maxminddb::Reader::from_source(mmdb_file(&built, data_len)).unwrap();
            for ip in ["128.0.0.1", "192.1.1.1", "1.1.1.1"] {
                assert_same_as_maxminddb(&reader, &tree, ip.parse().unwrap());
            }
        }
    }

    // ---- property tests against the oracle ----

    fn v4_net() -> impl Strategy<Value = Net> {
        // A few hot /8s so networks overlap; all lengths.
        (
            prop::sample::select(vec![0u32, 10, 172, 255]),
            any::<u32>(),
            0u8..=32,
        )
            .prop_map(|(top, rest, len)| Net::V4((top << 24) | (rest & 0x00FF_FFFF), len))
    }

    fn v6_net() -> impl Strategy<Value = Net> {
        // Around ::/96 (interacting with IPv4), ::ffff:0:0/96 (rarely: disables the alias),
        // 2001:db8::/32 and anywhere.
        let top = prop::sample::select(vec![
            0u128,
            0,
            0,
            0xFFFF << 32,
            0x2001_0db8 << 96,
            0x2001_0db8 << 96,
            u128::MAX,
        ]);
        (top, any::<u128>(), 0u8..=128, any::<u8>()).prop_map(|(top, rest, len, pick)| {
            let addr = match top {
                0 => rest & u128::from(u32::MAX) | if pick % 4 == 0 { rest } else { 0 },
                t if t == 0xFFFF << 32 => t | (rest & 0xFFFF_FFFF),
                t if t == u128::MAX => rest,
                t => t | (rest >> 32),
            };
            let len = if top == 0xFFFF << 32 {
                len.max(96)
            } else {
                len
            };
            Net::V6(addr, len)
        })
    }

    /// Query addresses: inside inserted networks (with random host bits) and random ones.
    fn queries_for(nets: &[Net], seeds: &[u128]) -> Vec<u128> {
        let mut out = Vec::new();
        for (i, &seed) in seeds.iter().enumerate() {
            if nets.is_empty() || i % 3 == 0 {
                out.push(seed);
                continue;
            }
            let net = nets[i % nets.len()];
            let (key, len) = match net {
                Net::V4(a, l) => (u128::from(a) << 96, u32::from(l)),
                Net::V6(a, l) => (a, u32::from(l)),
            };
            let host = if len == 128 { 0 } else { seed >> len };
            let addr = mask(key, len) | host;
            out.push(match net {
                Net::V4(..) => addr >> 96,
                Net::V6(..) => addr,
            });
        }
        out
    }

    /// Builds the networks with each record size and compares every kind of query with the
    /// oracle and with maxminddb.
    fn check_against_oracle(
        version: u16,
        nets: &[Net],
        seeds: &[u128],
    ) -> Result<(), TestCaseError> {
        for record_size in [24, 28, 32] {
            check_against_oracle_with(version, nets, seeds, record_size)?;
        }
        Ok(())
    }

    fn check_against_oracle_with(
        version: u16,
        nets: &[Net],
        seeds: &[u128],
        record_size: u16,
    ) -> Result<(), TestCaseError> {
        let inserted: Vec<(Net, u32)> = nets
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, i as u32 * 3 + 1))
            .collect();
        let data_len = nets.len() * 3 + 2;
        let built = build(
            version,
            &inserted,
            Some(record_size),
            data_len,
            KeepDuplicate::First,
        );
        let oracle = Oracle::new(version, &inserted);
        let tree = view(&built);
        let reader = maxminddb::Reader::from_source(mmdb_file(&built, data_len)).unwrap();
        let check = tree.check(data_len).unwrap();
        prop_assert_eq!(check.reachable_nodes, built.node_count);
        assert_no_redundant_nodes(&built);
        let mut offsets_seen = Vec::new();
        for q in queries_for(nets, seeds) {
            let v4 = q as u32;
            let hit = tree.lookup(IpAddr::V4(v4.into())).unwrap();
            prop_assert_eq!(
                answer(&tree, hit),
                oracle.v4(v4),
                "v4 {}",
                Ipv4Addr::from(v4)
            );
            if let Some(h) = hit {
                prop_assert!(h.depth <= 32);
                offsets_seen.push(h.data_offset);
            }
            assert_same_as_maxminddb(&reader, &tree, IpAddr::V4(v4.into()));
            let mapped = Ipv4Addr::from(v4).to_ipv6_mapped();
            let hit = tree.lookup(IpAddr::V6(mapped)).unwrap();
            prop_assert_eq!(answer(&tree, hit), oracle.v6(mapped.into()), "{}", mapped);
            if version == 6 {
                assert_same_as_maxminddb(&reader, &tree, IpAddr::V6(mapped));
                let compat = Ipv6Addr::from(u128::from(v4));
                let hit = tree.lookup(IpAddr::V6(compat)).unwrap();
                prop_assert_eq!(answer(&tree, hit), oracle.v4(v4), "{}", compat);
                let v6 = Ipv6Addr::from(q);
                let hit = tree.lookup(IpAddr::V6(v6)).unwrap();
                prop_assert_eq!(answer(&tree, hit), oracle.v6(q), "{}", v6);
                assert_same_as_maxminddb(&reader, &tree, IpAddr::V6(v6));
                if let Some(h) = hit {
                    offsets_seen.push(h.data_offset);
                }
            }
        }
        for off in offsets_seen {
            prop_assert!(check.data_offsets.binary_search(&off).is_ok());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn ipv4_tree_matches_oracle(
            nets in prop::collection::vec(v4_net(), 0..40),
            seeds in prop::collection::vec(any::<u128>(), 40),
        ) {
            check_against_oracle(4, &nets, &seeds)?;
        }

        #[test]
        fn ipv4_in_ipv6_tree_matches_oracle(
            nets in prop::collection::vec(v4_net(), 0..40),
            seeds in prop::collection::vec(any::<u128>(), 40),
        ) {
            check_against_oracle(6, &nets, &seeds)?;
        }

        #[test]
        fn ipv6_tree_matches_oracle(
            nets in prop::collection::vec(v6_net(), 0..40),
            seeds in prop::collection::vec(any::<u128>(), 40),
        ) {
            check_against_oracle(6, &nets, &seeds)?;
        }

        #[test]
        fn mixed_tree_matches_oracle(
            nets in prop::collection::vec(prop_oneof![v4_net(), v6_net()], 0..60),
            seeds in prop::collection::vec(any::<u128>(), 60),
        ) {
            check_against_oracle(6, &nets, &seeds)?;
        }

        #[test]
        fn output_is_deterministic_and_order_independent_in_answers(
            nets in prop::collection::vec(prop_oneof![v4_net(), v6_net()], 0..30),
            seeds in prop::collection::vec(any::<u128>(), 30),
        ) {
            // Distinct positions, so insertion order cannot matter for answers.
            let mut unique: Vec<(Net, u32)> = Vec::new();
            for (i, n) in nets.iter().enumerate() {
                if !unique.iter().any(|(m, _)| m.tree_position(6) == n.tree_position(6)) {
                    unique.push((*n, i as u32));
                }
            }
            let a = build(6, &unique, None, 100, KeepDuplicate::First);
            let b = build(6, &unique, None, 100, KeepDuplicate::First);
            prop_assert_eq!(&a, &b);
            let mut reversed = unique.clone();
            reversed.reverse();
            let r = build(6, &reversed, None, 100, KeepDuplicate::First);
            // The same trie shape whatever the order.
            prop_assert_eq!(&a.bytes, &r.bytes);
            prop_assert_eq!(&a.prefix_table, &r.prefix_table);
            let (ta, tr) = (view(&a), view(&r));
            for q in seeds {
                let ip = IpAddr::V6(q.into());
                prop_assert_eq!(ta.lookup(ip).unwrap(), tr.lookup(ip).unwrap());
            }
        }
    }
}
