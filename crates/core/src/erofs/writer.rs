//! The metadata writer: a [`Tree`] in, the bytes of an uncompressed EROFS image's metadata out.
//!
//! Pure: no I/O. Regular-file data is not the writer's business; a file names where its data
//! already is (a block run of the image being written, or chunks on this image or on extra
//! devices, a chunk with no data being a hole), and the writer lays out everything else after
//! it (chunk indexes follow their inode in the meta area):
//!
//! ```text
//! block 0                 superblock at byte 1024, then the device table if it fits
//! blocks 1..D             file data (written by the caller before the metadata; D may be 0)
//! device table            when more than 23 slots: blocks of its own
//! xattr area              shared xattrs (xattr_blkaddr), absent when no xattr repeats
//! meta area               inodes from meta_blkaddr; nid 0 holds the ocicache note header,
//!                         the root directory is nid 1; directory and symlink tails inline
//! blocks after meta       directory blocks and symlinks that do not fit inline, the note
//! ```
//!
//! Invariants: the same tree gives the same bytes; no inode has nid 0 (the kernel reports nid as
//! `st_ino`, and `ls` hides entries whose inode number is 0); an inline tail never crosses a
//! block boundary, together with its inode; directory entries are sorted bytewise, `.` and `..`
//! included, over the whole directory, as the kernel's binary search needs.

use std::collections::{BTreeMap, HashMap};

use super::format::{
    self, BLOCK_SIZE, CHUNK_FORMAT_INDEXES, CHUNK_INDEX_SIZE, COMPACT_INODE_SIZE, DIRENT_SIZE,
    DataLayout, DeviceSlot, EXTENDED_INODE_SIZE, FORMAT_EXTENDED, INCOMPAT_CHUNKED_FILE,
    INCOMPAT_DEVICE_TABLE, INODE_SLOT, SUPER_OFFSET, SUPER_SIZE, SuperBlock, XATTR_ALIGN,
    XATTR_ENTRY_HEADER_SIZE, XATTR_IBODY_HEADER_SIZE, align_up, blocks_for, mode, put_u16, put_u32,
    put_u64,
};
use crate::error::{Error, Result};

/// Index of a node in [`Tree::nodes`].
pub type NodeId = usize;

/// The root directory's node id.
pub const ROOT: NodeId = 0;

/// Magic of the note header ocicache keeps at nid 0 (unreachable from the root).
pub const NOTE_MAGIC: &[u8; 8] = b"OCICACHE";
/// Version of the note layout.
pub const NOTE_VERSION: u32 = 1;

/// A file system tree to write.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// All nodes; [`ROOT`] is the root directory. Nodes no directory reaches are not written.
    pub nodes: Vec<Node>,
}

/// One inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
    /// Extended attributes: full name (`user.x`) to value, sorted by name.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// What the inode holds.
    pub content: Content,
    /// A directory that no tar entry listed (created because something below it was): the
    /// fsmeta merge keeps a lower layer's metadata for it. Recorded in the note.
    pub implicit: bool,
}

/// What an inode holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Directory entries, by name (without `.` and `..`).
    Dir(BTreeMap<Vec<u8>, NodeId>),
    /// A regular file whose data is a run of blocks of this image.
    File {
        /// Size in bytes.
        size: u64,
        /// First block of the data (any value when `size` is 0).
        blkaddr: u64,
    },
    /// A regular file whose data lies on an extra device, one contiguous run.
    DeviceFile {
        /// Size in bytes.
        size: u64,
        /// Device id (1 = first extra device).
        device: u16,
        /// First block of the data on that device.
        blkaddr: u64,
    },
    /// A regular file stored as chunks of `2^chunk_bits` bytes, each either a run of blocks on
    /// `device` (0 = this image, else an extra device) or a hole that reads as zeros and costs
    /// no block (`None`, stored as `EROFS_NULL_ADDR`). Sparse files of a layer, and their
    /// merged view in fsmeta.
    Chunked {
        /// Size in bytes.
        size: u64,
        /// log2 of the chunk size: at least [`format::BLOCK_BITS`], at most
        /// [`format::MAX_CHUNK_BITS`].
        chunk_bits: u8,
        /// Device of every mapped chunk.
        device: u16,
        /// First block of each chunk, `size.div_ceil(2^chunk_bits)` of them; `None` for a
        /// hole.
        chunks: Vec<Option<u64>>,
    },
    /// Symbolic link target.
    Symlink(Vec<u8>),
    /// Character or block device number (`major`, `minor`).
    Device(u32, u32),
    /// FIFO or socket.
    Special,
}

impl Node {
    /// A directory with no entries.
    pub fn dir(perms: u32) -> Self {
        Node {
            mode: mode::IFDIR | (perms & mode::PERMS),
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            xattrs: BTreeMap::new(),
            content: Content::Dir(BTreeMap::new()),
            implicit: false,
        }
    }

    /// An implicit directory ([`Node::implicit`]): [`format::IMPLICIT_DIR_PERMS`], root-owned,
    /// mtime 0, no entries.
    pub fn implicit_dir() -> Self {
        Node {
            implicit: true,
            ..Node::dir(format::IMPLICIT_DIR_PERMS)
        }
    }

    /// Whether the node is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir(_))
    }

    fn size(&self, dir_size: u64) -> u64 {
        match &self.content {
            Content::Dir(_) => dir_size,
            Content::File { size, .. }
            | Content::DeviceFile { size, .. }
            | Content::Chunked { size, .. } => *size,
            Content::Symlink(t) => t.len() as u64,
            Content::Device(..) | Content::Special => 0,
        }
    }
}

/// Options of one image.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// Blocks 1..=data_blocks hold file data the caller wrote.
    pub data_blocks: u64,
    /// Extra devices, in device id order (device id 1 is the first).
    pub devices: Vec<DeviceSlot>,
    /// Volume uuid.
    pub uuid: [u8; 16],
}

/// The metadata of an image.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Block 0 (superblock and device table).
    pub block0: Vec<u8>,
    /// Bytes from block `1 + data_blocks` to the end of the image (a whole number of blocks).
    pub tail: Vec<u8>,
    /// Total blocks of the image.
    pub blocks: u64,
}

/// Where one reachable node goes.
#[derive(Debug, Clone)]
struct Placed {
    node: NodeId,
    /// Byte offset from the start of the meta area.
    offset: u64,
    extended: bool,
    nlink: u32,
    size: u64,
    xattr_size: u64,
    shared: Vec<u32>,
    layout: DataLayout,
    /// Blocks the data needs outside the inode (directory and symlink blocks).
    blocks: u64,
    /// First of those blocks, assigned after placement.
    blkaddr: u64,
}

/// Writes the metadata of `tree`, in five steps: `visit` the reachable nodes, `place` their
/// inodes in the meta area, lay out the areas after the file data (`Areas::lay_out`), `emit`
/// the bytes, and the `superblock` for block 0.
///
/// Errors: [`Error::Unsupported`] for xattr names EROFS cannot store (no known prefix), names
/// or values too long, or counts over the format's limits; [`Error::Internal`] when the tree is
/// malformed (the root is not a directory, or a directory is reached twice).
pub fn write_metadata(tree: &Tree, options: &ImageOptions) -> Result<Metadata> {
    let visit = visit(tree)?;
    let build_time = most_common_mtime(tree, &visit.order);
    let shared = SharedXattrs::collect(tree, &visit.order)?;
    let (mut placed, meta_len) = place(tree, &visit, &shared, build_time)?;
    let implicit = placed
        .iter()
        .filter(|p| tree.nodes[p.node].implicit)
        .count();
    let areas = Areas::lay_out(options, shared.area.len(), meta_len, &mut placed, implicit)?;
    let tail = emit(tree, &visit, &placed, &areas, &shared);
    let sb = superblock(options, &placed, &areas, &shared, build_time)?;
    Ok(Metadata {
        block0: sb.encode_block0(if areas.devt_in_block0 {
            &areas.devt
        } else {
            &[]
        }),
        tail,
        blocks: areas.total_blocks,
    })
}

/// The nodes reachable from the root, and how.
struct Visit {
    /// Visit order: breadth first from the root, entries in name order; each node once.
    order: Vec<NodeId>,
    /// The parent of each directory (the root is its own).
    parent: HashMap<NodeId, NodeId>,
    /// How many names each non-directory has (a hardlink group).
    links: HashMap<NodeId, u32>,
}

/// Walks the tree from the root. A directory has one parent; a non-directory may be reached by
/// several names (a hardlink group).
fn visit(tree: &Tree) -> Result<Visit> {
    if !tree.nodes.first().is_some_and(Node::is_dir) {
        return Err(Error::internal("EROFS tree root is not a directory"));
    }
    let mut order: Vec<NodeId> = vec![ROOT];
    let mut parent: HashMap<NodeId, NodeId> = HashMap::from([(ROOT, ROOT)]);
    let mut links: HashMap<NodeId, u32> = HashMap::new();
    let mut next = 0;
    while next < order.len() {
        let id = order[next];
        next += 1;
        let Content::Dir(children) = &tree.nodes[id].content else {
            continue;
        };
        for &child in children.values() {
            let node = tree
                .nodes
                .get(child)
                .ok_or_else(|| Error::internal("EROFS tree names a missing node"))?;
            if node.is_dir() {
                if parent.insert(child, id).is_some() {
                    return Err(Error::internal("EROFS tree reaches a directory twice"));
                }
                order.push(child);
            } else {
                let count = links.entry(child).or_insert(0);
                if *count == 0 {
                    order.push(child);
                }
                *count += 1;
            }
        }
    }
    Ok(Visit {
        order,
        parent,
        links,
    })
}

/// Places every inode in the meta area, in visit order: offsets, sizes, layouts (inline tails
/// that never cross a block, chunk indexes after their inode). Returns the placements and the
/// length of the meta area in bytes. nid 0 is the note header, so no inode gets it.
fn place(
    tree: &Tree,
    visit: &Visit,
    shared: &SharedXattrs,
    build_time: (i64, u32),
) -> Result<(Vec<Placed>, u64)> {
    let mut placed: Vec<Placed> = Vec::with_capacity(visit.order.len());
    let mut offset = INODE_SLOT; // nid 0 is the note header
    for &id in &visit.order {
        let node = &tree.nodes[id];
        let dir_size = match &node.content {
            Content::Dir(children) => dir_size(children.keys().map(Vec::as_slice)),
            _ => 0,
        };
        let size = node.size(dir_size);
        if let Content::Device(major, minor) = node.content
            && (major > format::MAX_DEV_MAJOR || minor > format::MAX_DEV_MINOR)
        {
            return Err(Error::Unsupported {
                what: format!(
                    "device number {major}:{minor} (EROFS and Linux hold 12-bit majors and 20-bit minors)"
                ),
            });
        }
        let nlink = match &node.content {
            Content::Dir(children) => {
                let subdirs = children
                    .values()
                    .filter(|c| tree.nodes[**c].is_dir())
                    .count();
                2 + subdirs as u64
            }
            _ => u64::from(visit.links.get(&id).copied().unwrap_or(1)),
        };
        let nlink = u32::try_from(nlink).map_err(|_| Error::Unsupported {
            what: "more than 2^32 hard links".into(),
        })?;
        let extended = node.uid > u32::from(u16::MAX)
            || node.gid > u32::from(u16::MAX)
            || nlink > u32::from(u16::MAX)
            || size > u64::from(u32::MAX)
            || (node.mtime, node.mtime_nsec) != build_time;
        let inode_size = if extended {
            EXTENDED_INODE_SIZE
        } else {
            COMPACT_INODE_SIZE
        };
        let (node_shared, xattr_size) = shared.inode_xattrs(node)?;
        let head = inode_size + xattr_size;
        let (layout, tail, blocks) = match &node.content {
            Content::Dir(_) | Content::Symlink(_) => {
                let tail = size % BLOCK_SIZE;
                if tail > 0 && head + tail <= BLOCK_SIZE {
                    (DataLayout::FlatInline, tail, size / BLOCK_SIZE)
                } else {
                    (DataLayout::FlatPlain, 0, blocks_for(size))
                }
            }
            Content::DeviceFile { .. } | Content::Chunked { .. } => (DataLayout::ChunkBased, 0, 0),
            _ => (DataLayout::FlatPlain, 0, 0),
        };
        let mut start = align_up(offset, INODE_SLOT);
        if layout == DataLayout::FlatInline && start % BLOCK_SIZE + head + tail > BLOCK_SIZE {
            start = align_up(start, BLOCK_SIZE);
        }
        let mut end = start + head + tail;
        if layout == DataLayout::ChunkBased && size > 0 {
            end = align_up(start + head, CHUNK_INDEX_SIZE)
                + chunk_count(&node.content)? * CHUNK_INDEX_SIZE;
        }
        offset = end;
        placed.push(Placed {
            node: id,
            offset: start,
            extended,
            nlink,
            size,
            xattr_size,
            shared: node_shared,
            layout,
            blocks,
            blkaddr: 0,
        });
    }
    Ok((placed, offset))
}

/// Chunk indexes of a chunk-based file: its chunk map's length, or one for a file on an extra
/// device (one chunk covers it).
fn chunk_count(content: &Content) -> Result<u64> {
    match content {
        Content::Chunked {
            size,
            chunk_bits,
            chunks,
            ..
        } => {
            if !(format::BLOCK_BITS..=format::MAX_CHUNK_BITS).contains(chunk_bits)
                || chunks.len() as u64 != size.div_ceil(1 << chunk_bits)
            {
                return Err(Error::internal(
                    "EROFS chunked file: chunk size or count does not match its size",
                ));
            }
            Ok(chunks.len() as u64)
        }
        _ => Ok(1),
    }
}

/// Where each area after the file data goes, in blocks:
/// `[device table][xattr area][meta area][directory and symlink blocks][note]`.
struct Areas {
    /// The device table's slots, encoded.
    devt: Vec<u8>,
    /// Whether the device table fits in block 0 after the superblock (up to 23 slots).
    devt_in_block0: bool,
    /// `devt_slotoff`.
    devt_slotoff: u16,
    /// The first block after the file data.
    first_block: u64,
    xattr_blkaddr: u64,
    meta_blkaddr: u64,
    note_blkaddr: u64,
    /// The note's nids of implicit directories, in bytes.
    note_len: u64,
    total_blocks: u64,
}

impl Areas {
    /// Lays the areas out after `options.data_blocks` of file data, and gives each placed
    /// inode with blocks of its own their first block.
    fn lay_out(
        options: &ImageOptions,
        xattr_len: usize,
        meta_len: u64,
        placed: &mut [Placed],
        implicit: usize,
    ) -> Result<Areas> {
        // The device table follows the superblock in block 0 when it fits, else it gets
        // blocks of its own right after the data: the kernel reads it wherever
        // `devt_slotoff` points.
        let mut devt = Vec::new();
        for slot in &options.devices {
            slot.encode(&mut devt);
        }
        let first_block = 1 + options.data_blocks;
        let devt_in_block0 = (SUPER_OFFSET + SUPER_SIZE + devt.len()) as u64 <= BLOCK_SIZE;
        let devt_blocks = if devt_in_block0 {
            0
        } else {
            blocks_for(devt.len() as u64)
        };
        let devt_slotoff = if devt_in_block0 {
            (SUPER_OFFSET + SUPER_SIZE) as u64 / format::DEVICE_SLOT_SIZE
        } else {
            first_block * BLOCK_SIZE / format::DEVICE_SLOT_SIZE
        };
        let devt_slotoff = u16::try_from(devt_slotoff).map_err(|_| Error::Unsupported {
            what: "a device table beyond 8 MiB".into(),
        })?;
        let xattr_blkaddr = first_block + devt_blocks;
        let meta_blkaddr = xattr_blkaddr + blocks_for(xattr_len as u64);
        let mut next_block = meta_blkaddr + blocks_for(meta_len);
        for p in placed.iter_mut().filter(|p| p.blocks > 0) {
            p.blkaddr = next_block;
            next_block += p.blocks;
        }
        let note_blkaddr = next_block;
        let note_len = implicit as u64 * 8;
        next_block += blocks_for(note_len);
        Ok(Areas {
            devt,
            devt_in_block0,
            devt_slotoff,
            first_block,
            xattr_blkaddr,
            meta_blkaddr,
            note_blkaddr,
            note_len,
            total_blocks: next_block,
        })
    }
}

/// The bytes from the first block after the file data to the end of the image: the device table
/// (when not in block 0), the shared xattrs, the note header and the inodes with their inline
/// tails and chunk indexes, the directory and symlink blocks, and the note.
fn emit(
    tree: &Tree,
    visit: &Visit,
    placed: &[Placed],
    areas: &Areas,
    shared: &SharedXattrs,
) -> Vec<u8> {
    let nid_of: HashMap<NodeId, u64> = placed
        .iter()
        .map(|p| (p.node, p.offset / INODE_SLOT))
        .collect();
    let implicit: Vec<u64> = placed
        .iter()
        .filter(|p| tree.nodes[p.node].implicit)
        .map(|p| p.offset / INODE_SLOT)
        .collect();
    let base = areas.first_block * BLOCK_SIZE;
    let mut tail = vec![0u8; ((areas.total_blocks - areas.first_block) * BLOCK_SIZE) as usize];
    if !areas.devt_in_block0 {
        tail[..areas.devt.len()].copy_from_slice(&areas.devt);
    }
    let xattr_at = (areas.xattr_blkaddr * BLOCK_SIZE - base) as usize;
    tail[xattr_at..xattr_at + shared.area.len()].copy_from_slice(&shared.area);
    let meta_base = (areas.meta_blkaddr * BLOCK_SIZE - base) as usize;
    {
        let mut header = Vec::with_capacity(INODE_SLOT as usize);
        header.extend_from_slice(NOTE_MAGIC);
        put_u32(&mut header, NOTE_VERSION);
        put_u32(
            &mut header,
            u32::try_from(implicit.len()).unwrap_or(u32::MAX),
        );
        put_u64(&mut header, areas.note_blkaddr);
        put_u64(&mut header, areas.note_len);
        tail[meta_base..meta_base + header.len()].copy_from_slice(&header);
    }
    for (i, p) in placed.iter().enumerate() {
        let node = &tree.nodes[p.node];
        let data = match &node.content {
            Content::Dir(children) => {
                let own = nid_of[&p.node];
                let up = nid_of[&visit.parent[&p.node]];
                dir_bytes(tree, children, own, up, &nid_of)
            }
            Content::Symlink(target) => target.clone(),
            _ => Vec::new(),
        };
        let mut inode = Vec::with_capacity(128);
        encode_inode(&mut inode, node, p, i as u32 + 1, shared);
        let at = meta_base + p.offset as usize;
        let full = (p.blocks * BLOCK_SIZE) as usize;
        match p.layout {
            DataLayout::FlatInline => {
                inode.extend_from_slice(&data[full..]);
            }
            DataLayout::ChunkBased if p.size > 0 => {
                let pad = align_up(inode.len() as u64 + p.offset, CHUNK_INDEX_SIZE)
                    - p.offset
                    - inode.len() as u64;
                inode.resize(inode.len() + pad as usize, 0);
                match &node.content {
                    Content::DeviceFile {
                        device, blkaddr, ..
                    } => {
                        // One chunk covers the whole file (chunk bits chosen in encode_inode).
                        put_chunk_index(&mut inode, *device, Some(*blkaddr));
                    }
                    Content::Chunked { device, chunks, .. } => {
                        for chunk in chunks {
                            put_chunk_index(&mut inode, *device, *chunk);
                        }
                    }
                    _ => {}
                }
            }
            DataLayout::ChunkBased => {}
            DataLayout::FlatPlain => {}
        }
        tail[at..at + inode.len()].copy_from_slice(&inode);
        if p.blocks > 0 {
            let at = (p.blkaddr * BLOCK_SIZE - base) as usize;
            let n = full.min(data.len());
            tail[at..at + n].copy_from_slice(&data[..n]);
        }
    }
    let note_at = (areas.note_blkaddr * BLOCK_SIZE - base) as usize;
    for (i, nid) in implicit.iter().enumerate() {
        tail[note_at + i * 8..note_at + i * 8 + 8].copy_from_slice(&nid.to_le_bytes());
    }
    tail
}

/// The superblock of the image.
fn superblock(
    options: &ImageOptions,
    placed: &[Placed],
    areas: &Areas,
    shared: &SharedXattrs,
    build_time: (i64, u32),
) -> Result<SuperBlock> {
    let root_nid = placed
        .iter()
        .find(|p| p.node == ROOT)
        .map(|p| p.offset / INODE_SLOT)
        .and_then(|nid| u16::try_from(nid).ok())
        .ok_or_else(|| Error::internal("EROFS root nid does not fit 16 bits"))?;
    let mut feature_incompat = 0;
    if placed.iter().any(|p| p.layout == DataLayout::ChunkBased) {
        feature_incompat |= INCOMPAT_CHUNKED_FILE;
    }
    if !options.devices.is_empty() {
        feature_incompat |= INCOMPAT_DEVICE_TABLE;
    }
    let extra_devices = u16::try_from(options.devices.len()).map_err(|_| Error::Unsupported {
        what: "more than 65535 devices".into(),
    })?;
    Ok(SuperBlock {
        feature_compat: 0,
        feature_incompat,
        root_nid,
        inos: placed.len() as u64,
        build_time: build_time.0 as u64,
        build_time_nsec: build_time.1,
        blocks: u32::try_from(areas.total_blocks).map_err(|_| Error::Unsupported {
            what: "an image of 2^32 blocks or more".into(),
        })?,
        meta_blkaddr: u32::try_from(areas.meta_blkaddr).map_err(|_| Error::Unsupported {
            what: "metadata beyond 16 TiB".into(),
        })?,
        xattr_blkaddr: if shared.area.is_empty() {
            0
        } else {
            areas.xattr_blkaddr as u32
        },
        uuid: options.uuid,
        extra_devices,
        devt_slotoff: if options.devices.is_empty() {
            0
        } else {
            areas.devt_slotoff
        },
    })
}

/// The most common `(mtime, nsec)` among the nodes (ties broken by the smaller time): it goes in
/// the superblock, and every node with that time and small ids gets a compact inode.
fn most_common_mtime(tree: &Tree, order: &[NodeId]) -> (i64, u32) {
    let mut counts: HashMap<(i64, u32), usize> = HashMap::new();
    for &id in order {
        let n = &tree.nodes[id];
        *counts.entry((n.mtime, n.mtime_nsec)).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(t, _)| t)
        .unwrap_or((0, 0))
}

/// Size of a directory with these entry names (without `.` and `..`), packed as the kernel
/// reads it: per block, dirents then names; a name never crosses a block.
pub fn dir_size<'a>(names: impl Iterator<Item = &'a [u8]>) -> u64 {
    let mut full = 0u64;
    let mut used = 0u64;
    let dots: [&[u8]; 2] = [b".", b".."];
    for name in dots.into_iter().chain(names) {
        let len = DIRENT_SIZE + name.len() as u64;
        if used + len > BLOCK_SIZE {
            full += BLOCK_SIZE;
            used = 0;
        }
        used += len;
    }
    full + used
}

/// The directory's bytes: entries (with `.` and `..`) sorted bytewise, packed into blocks.
fn dir_bytes(
    tree: &Tree,
    children: &BTreeMap<Vec<u8>, NodeId>,
    own: u64,
    up: u64,
    nid_of: &HashMap<NodeId, u64>,
) -> Vec<u8> {
    let mut entries: Vec<(&[u8], u64, u8)> = Vec::with_capacity(children.len() + 2);
    entries.push((b".", own, format::dirent_file_type(mode::IFDIR)));
    entries.push((b"..", up, format::dirent_file_type(mode::IFDIR)));
    for (name, id) in children {
        entries.push((
            name,
            nid_of[id],
            format::dirent_file_type(tree.nodes[*id].mode),
        ));
    }
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        // Take as many entries as fit one block.
        let mut used = 0u64;
        let mut j = i;
        while j < entries.len() {
            let len = DIRENT_SIZE + entries[j].0.len() as u64;
            if used + len > BLOCK_SIZE {
                break;
            }
            used += len;
            j += 1;
        }
        let block_start = out.len();
        let mut nameoff = (j - i) as u64 * DIRENT_SIZE;
        for (name, nid, ft) in &entries[i..j] {
            put_u64(&mut out, *nid);
            put_u16(&mut out, nameoff as u16);
            out.push(*ft);
            out.push(0);
            nameoff += name.len() as u64;
        }
        for (name, _, _) in &entries[i..j] {
            out.extend_from_slice(name);
        }
        if j < entries.len() {
            out.resize(block_start + BLOCK_SIZE as usize, 0);
        }
        i = j;
    }
    out
}

fn encode_inode(out: &mut Vec<u8>, node: &Node, p: &Placed, ino: u32, shared: &SharedXattrs) {
    let mut format = (p.layout as u16) << 1;
    if p.extended {
        format |= FORMAT_EXTENDED;
    }
    let xattr_icount: u16 = if p.xattr_size == 0 {
        0
    } else {
        ((p.xattr_size - XATTR_IBODY_HEADER_SIZE) / 4 + 1) as u16
    };
    let i_u: u32 = match &node.content {
        Content::Device(major, minor) => format::encode_dev(*major, *minor),
        Content::File { size, blkaddr } if *size > 0 => *blkaddr as u32,
        Content::DeviceFile { size, .. } => u32::from(chunk_format(*size)),
        Content::Chunked { chunk_bits, .. } => u32::from(
            CHUNK_FORMAT_INDEXES
                | (u16::from(chunk_bits - format::BLOCK_BITS) & format::CHUNK_FORMAT_BLKBITS_MASK),
        ),
        _ if p.blocks > 0 => p.blkaddr as u32,
        _ => 0,
    };
    let mode = node.mode as u16;
    if p.extended {
        put_u16(out, format);
        put_u16(out, xattr_icount);
        put_u16(out, mode);
        put_u16(out, 0);
        put_u64(out, p.size);
        put_u32(out, i_u);
        put_u32(out, ino);
        put_u32(out, node.uid);
        put_u32(out, node.gid);
        put_u64(out, node.mtime as u64);
        put_u32(out, node.mtime_nsec);
        put_u32(out, p.nlink);
        out.resize(out.len() + 16, 0);
    } else {
        put_u16(out, format);
        put_u16(out, xattr_icount);
        put_u16(out, mode);
        put_u16(out, p.nlink as u16);
        put_u32(out, p.size as u32);
        put_u32(out, 0); // mtime offset from build_time: compact inodes have exactly build_time
        put_u32(out, i_u);
        put_u32(out, ino);
        put_u16(out, node.uid as u16);
        put_u16(out, node.gid as u16);
        put_u32(out, 0);
    }
    if p.xattr_size > 0 {
        put_u32(out, 0); // h_name_filter: unused without the xattr filter feature
        out.push(p.shared.len() as u8);
        out.extend_from_slice(&[0u8; 7]);
        for id in &p.shared {
            put_u32(out, *id);
        }
        for (name, value) in &node.xattrs {
            if shared
                .ids
                .get(&(name.clone(), value.clone()))
                .is_some_and(|id| p.shared.contains(id))
            {
                continue;
            }
            encode_xattr_entry(out, name, value);
        }
    }
}

/// Appends one `erofs_inode_chunk_index`: `startblk_hi` (u16), `device_id` (u16), `startblk_lo`
/// (u32); a hole is `EROFS_NULL_ADDR` in `startblk_lo` on device 0, which the kernel reads as
/// an unmapped extent (zeros).
fn put_chunk_index(out: &mut Vec<u8>, device: u16, blkaddr: Option<u64>) {
    match blkaddr {
        Some(blkaddr) => {
            put_u16(out, (blkaddr >> 32) as u16);
            put_u16(out, device);
            put_u32(out, blkaddr as u32);
        }
        None => {
            put_u16(out, 0);
            put_u16(out, 0);
            put_u32(out, format::NULL_ADDR);
        }
    }
}

/// `erofs_inode_chunk_info.format` for a file stored as one chunk: chunk bits are
/// `ceil(log2(size))`, at least one block.
fn chunk_format(size: u64) -> u16 {
    let bits = (64 - size.saturating_sub(1).leading_zeros()) as u16;
    let bits = bits.max(u16::from(format::BLOCK_BITS));
    CHUNK_FORMAT_INDEXES
        | ((bits - u16::from(format::BLOCK_BITS)) & format::CHUNK_FORMAT_BLKBITS_MASK)
}

/// Appends one xattr entry, padded to 4 bytes. The name was checked by [`entry_size`].
fn encode_xattr_entry(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let (index, suffix) = format::split_xattr_name(name).unwrap_or((0, name));
    out.push(suffix.len() as u8);
    out.push(index);
    put_u16(out, value.len() as u16);
    out.extend_from_slice(suffix);
    out.extend_from_slice(value);
    let len = out.len() as u64;
    out.resize(align_up(len, XATTR_ALIGN) as usize, 0);
}

/// Size of an xattr entry on disk, or why EROFS cannot store it.
fn entry_size(name: &[u8], value: &[u8]) -> Result<u64> {
    let Some((_, suffix)) = format::split_xattr_name(name) else {
        return Err(Error::Unsupported {
            what: format!(
                "xattr {:?}: EROFS stores only user., trusted., security., lustre. and POSIX ACL names",
                String::from_utf8_lossy(name)
            ),
        });
    };
    if suffix.len() > usize::from(u8::MAX) || value.len() > usize::from(u16::MAX) {
        return Err(Error::Unsupported {
            what: format!(
                "xattr {:?}: name or value too long",
                String::from_utf8_lossy(name)
            ),
        });
    }
    Ok(align_up(
        XATTR_ENTRY_HEADER_SIZE + suffix.len() as u64 + value.len() as u64,
        XATTR_ALIGN,
    ))
}

/// Xattrs (name and value) that several inodes carry, stored once in the shared area.
struct SharedXattrs {
    ids: HashMap<(Vec<u8>, Vec<u8>), u32>,
    area: Vec<u8>,
}

impl SharedXattrs {
    /// Most shared xattrs one inode may reference (`h_shared_count` is a u8).
    const MAX_PER_INODE: usize = u8::MAX as usize;

    fn collect(tree: &Tree, order: &[NodeId]) -> Result<Self> {
        let mut counts: BTreeMap<(&[u8], &[u8]), usize> = BTreeMap::new();
        for &id in order {
            for (name, value) in &tree.nodes[id].xattrs {
                entry_size(name, value)?;
                *counts.entry((name, value)).or_insert(0) += 1;
            }
        }
        let mut ids = HashMap::new();
        let mut area = Vec::new();
        for ((name, value), count) in counts {
            if count < 2 {
                continue;
            }
            let size = entry_size(name, value)?;
            // Keep each entry inside one block.
            let in_block = area.len() as u64 % BLOCK_SIZE;
            if in_block + size > BLOCK_SIZE {
                area.resize(align_up(area.len() as u64, BLOCK_SIZE) as usize, 0);
            }
            let id =
                u32::try_from(area.len() as u64 / XATTR_ALIGN).map_err(|_| Error::Unsupported {
                    what: "too many shared xattrs".into(),
                })?;
            encode_xattr_entry(&mut area, name, value);
            ids.insert((name.to_vec(), value.to_vec()), id);
        }
        Ok(SharedXattrs { ids, area })
    }

    /// The shared ids a node references and its inline xattr size (0 without xattrs).
    fn inode_xattrs(&self, node: &Node) -> Result<(Vec<u32>, u64)> {
        if node.xattrs.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let mut shared = Vec::new();
        let mut size = XATTR_IBODY_HEADER_SIZE;
        for (name, value) in &node.xattrs {
            match self.ids.get(&(name.clone(), value.clone())) {
                Some(id) if shared.len() < Self::MAX_PER_INODE => {
                    shared.push(*id);
                    size += 4;
                }
                _ => size += entry_size(name, value)?,
            }
        }
        if (size - XATTR_IBODY_HEADER_SIZE) / 4 + 1 > u64::from(u16::MAX) {
            return Err(Error::Unsupported {
                what: "xattrs over 256 KiB on one inode".into(),
            });
        }
        Ok((shared, size))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    /// A tree of `entries` (path components, node) under a root directory.
    fn tree_of(entries: Vec<(Vec<&str>, Node)>) -> Tree {
        let mut tree = Tree {
            nodes: vec![Node::dir(0o755)],
        };
        for (path, node) in entries {
            let mut at = ROOT;
            for (i, name) in path.iter().enumerate() {
                let existing = match &tree.nodes[at].content {
                    Content::Dir(c) => c.get(name.as_bytes()).copied(),
                    _ => None,
                };
                at = match existing {
                    Some(id) => id,
                    None => {
                        let n = if i + 1 == path.len() {
                            node.clone()
                        } else {
                            Node::dir(0o755)
                        };
                        tree.nodes.push(n);
                        let id = tree.nodes.len() - 1;
                        if let Content::Dir(c) = &mut tree.nodes[at].content {
                            c.insert(name.as_bytes().to_vec(), id);
                        }
                        id
                    }
                };
            }
        }
        tree
    }

    fn file(size: u64, blkaddr: u64) -> Node {
        Node {
            mode: mode::IFREG | 0o644,
            content: Content::File { size, blkaddr },
            ..Node::dir(0)
        }
    }

    fn symlink(target: &[u8]) -> Node {
        Node {
            mode: mode::IFLNK | 0o777,
            content: Content::Symlink(target.to_vec()),
            ..Node::dir(0)
        }
    }

    #[test]
    fn the_root_is_nid_1_and_no_inode_is_nid_0() {
        let tree = tree_of(vec![
            (vec!["a"], file(5, 1)),
            (vec!["d", "b"], symlink(b"a")),
        ]);
        let v = visit(&tree).unwrap();
        let shared = SharedXattrs::collect(&tree, &v.order).unwrap();
        let (placed, _) = place(&tree, &v, &shared, (0, 0)).unwrap();
        assert_eq!(placed[0].node, ROOT);
        assert_eq!(
            placed[0].offset / INODE_SLOT,
            1,
            "the root follows the note header"
        );
        assert!(placed.iter().all(|p| p.offset >= INODE_SLOT));
        let meta = write_metadata(
            &tree,
            &ImageOptions {
                data_blocks: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let sb = SuperBlock::decode(&meta.block0).unwrap();
        assert_eq!(sb.root_nid, 1);
        assert_eq!(sb.inos, 4);
        assert_eq!(meta.blocks, 1 + 1 + meta.tail.len() as u64 / BLOCK_SIZE);
    }

    /// An inline tail and its inode share one block: an inode that would make its tail cross a
    /// block boundary starts on the next block.
    #[test]
    fn inline_tails_never_cross_a_block() {
        let mut entries = Vec::new();
        for i in 0..40 {
            let target = vec![b'x'; 100 + i * 50];
            entries.push((vec![format!("l{i:02}")], symlink(&target)));
        }
        let owned: Vec<(Vec<String>, Node)> = entries;
        let tree = tree_of(
            owned
                .iter()
                .map(|(p, n)| (p.iter().map(String::as_str).collect(), n.clone()))
                .collect(),
        );
        let v = visit(&tree).unwrap();
        let shared = SharedXattrs::collect(&tree, &v.order).unwrap();
        let (placed, _) = place(&tree, &v, &shared, (0, 0)).unwrap();
        let mut inline = 0;
        for p in placed.iter().filter(|p| p.layout == DataLayout::FlatInline) {
            inline += 1;
            let head = if p.extended {
                EXTENDED_INODE_SIZE
            } else {
                COMPACT_INODE_SIZE
            };
            let tail = p.size % BLOCK_SIZE;
            assert!(
                p.offset % BLOCK_SIZE + head + p.xattr_size + tail <= BLOCK_SIZE,
                "{p:?}"
            );
        }
        assert!(inline > 30, "most symlinks are inline ({inline})");
    }

    #[test]
    fn the_device_table_leaves_block_0_beyond_23_slots() {
        let tree = tree_of(vec![]);
        for (slots, in_block0) in [(0, true), (23, true), (24, false)] {
            let devices = (0..slots)
                .map(|i| DeviceSlot {
                    tag: vec![b'a'; 64],
                    blocks: 1,
                    mapped_blkaddr: i,
                })
                .collect();
            let options = ImageOptions {
                data_blocks: 3,
                devices,
                ..Default::default()
            };
            let v = visit(&tree).unwrap();
            let shared = SharedXattrs::collect(&tree, &v.order).unwrap();
            let (mut placed, meta_len) = place(&tree, &v, &shared, (0, 0)).unwrap();
            let areas = Areas::lay_out(&options, 0, meta_len, &mut placed, 0).unwrap();
            assert_eq!(areas.devt_in_block0, in_block0, "{slots} slots");
            let sb = superblock(&options, &placed, &areas, &shared, (0, 0)).unwrap();
            assert_eq!(sb.extra_devices, slots as u16);
            if in_block0 {
                assert_eq!(
                    areas.xattr_blkaddr, 4,
                    "{slots} slots: right after the data"
                );
            } else {
                assert_eq!(
                    u64::from(sb.devt_slotoff) * format::DEVICE_SLOT_SIZE,
                    4 * BLOCK_SIZE
                );
                assert_eq!(
                    areas.xattr_blkaddr,
                    4 + 1,
                    "the table takes a block after the data"
                );
            }
        }
    }

    #[test]
    fn dir_size_table() {
        // `.` and `..` are 12 + 1 and 12 + 2 bytes; a name never crosses a block.
        let name = vec![b'n'; 200];
        let cases: &[(usize, u64)] = &[(0, 27), (1, 27 + 212), (19, 27 + 19 * 212)];
        for (count, want) in cases {
            let names = vec![name.as_slice(); *count];
            assert_eq!(dir_size(names.into_iter()), *want, "{count} names");
        }
        let names = vec![name.as_slice(); 20];
        // 19 names fill 4055 bytes; the 20th starts the second block.
        assert_eq!(dir_size(names.into_iter()), BLOCK_SIZE + 212);
    }

    #[test]
    fn directory_entries_are_sorted_across_blocks() {
        let names: Vec<String> = (0..400).rev().map(|i| format!("entry-{i:04}")).collect();
        let tree = tree_of(
            names
                .iter()
                .map(|n| (vec![n.as_str()], file(0, 0)))
                .collect(),
        );
        let v = visit(&tree).unwrap();
        let Content::Dir(children) = &tree.nodes[ROOT].content else {
            unreachable!()
        };
        let nid_of: HashMap<NodeId, u64> = v.order.iter().map(|id| (*id, *id as u64 + 1)).collect();
        let bytes = dir_bytes(&tree, children, 1, 1, &nid_of);
        assert!(bytes.len() as u64 > 2 * BLOCK_SIZE);
        let mut seen: Vec<Vec<u8>> = Vec::new();
        for block in bytes.chunks(BLOCK_SIZE as usize) {
            let first = usize::from(u16::from_le_bytes([block[8], block[9]]));
            let count = first / DIRENT_SIZE as usize;
            for i in 0..count {
                let start = usize::from(u16::from_le_bytes([block[i * 12 + 8], block[i * 12 + 9]]));
                let end = if i + 1 < count {
                    usize::from(u16::from_le_bytes([block[i * 12 + 20], block[i * 12 + 21]]))
                } else {
                    start
                        + block[start..]
                            .iter()
                            .position(|b| *b == 0)
                            .unwrap_or(block.len() - start)
                };
                seen.push(block[start..end].to_vec());
            }
        }
        assert_eq!(seen.len(), 402);
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "bytewise order, `.` and `..` included");
    }

    #[test]
    fn chunk_format_covers_a_file_with_one_chunk() {
        for (size, extra_bits) in [
            (1u64, 0u16),
            (4096, 0),
            (4097, 1),
            (1 << 20, 8),
            ((1 << 20) + 1, 9),
        ] {
            assert_eq!(
                chunk_format(size),
                CHUNK_FORMAT_INDEXES | extra_bits,
                "size {size}"
            );
        }
    }

    #[test]
    fn malformed_trees_are_internal_errors() {
        let options = ImageOptions::default();
        let not_dir = Tree {
            nodes: vec![file(0, 0)],
        };
        assert_eq!(
            write_metadata(&not_dir, &options).unwrap_err().code(),
            "INTERNAL"
        );
        let mut twice = tree_of(vec![(vec!["a", "x"], file(0, 0))]);
        let a = match &twice.nodes[ROOT].content {
            Content::Dir(c) => c[b"a".as_slice()],
            _ => unreachable!(),
        };
        if let Content::Dir(c) = &mut twice.nodes[ROOT].content {
            c.insert(b"b".to_vec(), a);
        }
        assert_eq!(
            write_metadata(&twice, &options).unwrap_err().code(),
            "INTERNAL"
        );
        let bad_chunks = tree_of(vec![(
            vec!["s"],
            Node {
                mode: mode::IFREG | 0o644,
                content: Content::Chunked {
                    size: 10_000,
                    chunk_bits: 12,
                    device: 0,
                    chunks: vec![None],
                },
                ..Node::dir(0)
            },
        )]);
        assert_eq!(
            write_metadata(&bad_chunks, &options).unwrap_err().code(),
            "INTERNAL"
        );
        let bad_xattr = tree_of(vec![(
            vec!["f"],
            Node {
                xattrs: [(b"os2.x".to_vec(), b"v".to_vec())].into_iter().collect(),
                ..file(0, 0)
            },
        )]);
        assert_eq!(
            write_metadata(&bad_xattr, &options).unwrap_err().code(),
            "UNSUPPORTED"
        );
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes_and_shares_repeated_xattrs() {
        let cap = (b"security.capability".to_vec(), vec![1u8, 0, 0, 2]);
        let with_cap = |n: Node| Node {
            xattrs: [cap.clone()].into_iter().collect(),
            ..n
        };
        let tree = tree_of(vec![
            (vec!["a"], with_cap(file(10, 1))),
            (vec!["b"], with_cap(file(10, 2))),
            (vec!["c"], file(10, 3)),
        ]);
        let options = ImageOptions {
            data_blocks: 3,
            ..Default::default()
        };
        let one = write_metadata(&tree, &options).unwrap();
        let two = write_metadata(&tree, &options).unwrap();
        assert_eq!((&one.block0, &one.tail), (&two.block0, &two.tail));
        let v = visit(&tree).unwrap();
        let shared = SharedXattrs::collect(&tree, &v.order).unwrap();
        assert_eq!(
            shared.ids.len(),
            1,
            "an xattr two inodes carry is stored once"
        );
        assert!(SuperBlock::decode(&one.block0).unwrap().xattr_blkaddr > 0);
    }

    fn tree_with_device(major: u32, minor: u32) -> Tree {
        let mut dev = Node::dir(0);
        dev.mode = mode::IFCHR | 0o600;
        dev.content = Content::Device(major, minor);
        let mut root = Node::dir(0o755);
        root.content = Content::Dir(BTreeMap::from([(b"dev".to_vec(), 1)]));
        Tree {
            nodes: vec![root, dev],
        }
    }

    /// Found by the `erofs_round_trip` fuzz target: device numbers over 12-bit majors or
    /// 20-bit minors were masked by `encode_dev` and read back as another device (31291:0 as
    /// 2619:0); they are refused now.
    #[test]
    fn device_numbers_beyond_rdev_are_refused_not_truncated() {
        let options = ImageOptions::default();
        for (major, minor) in [(31_291, 0), (0, 0x10_0000), (u32::MAX, u32::MAX)] {
            let err = write_metadata(&tree_with_device(major, minor), &options).unwrap_err();
            assert_eq!(err.code(), "UNSUPPORTED", "{major}:{minor}");
        }
        write_metadata(
            &tree_with_device(format::MAX_DEV_MAJOR, format::MAX_DEV_MINOR),
            &options,
        )
        .unwrap();
    }
}
