//! A bounds-checked reader of uncompressed EROFS images: superblock, inodes, xattrs,
//! directories, symlinks, and the ocicache note. It reads what ocicache writes (layer and
//! fsmeta images) and the plain, inline and chunk-based layouts in general, but not compressed
//! images.
//!
//! Used to rebuild an fsmeta image from layer images alone ([`read_tree`]), and by tests.
//! Every offset is checked against the image size; malformed input gives
//! [`Error::CorruptCache`], never a panic.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use super::format::{
    self, BLOCK_SIZE, CHUNK_FORMAT_BLKBITS_MASK, CHUNK_FORMAT_INDEXES, CHUNK_INDEX_SIZE,
    COMPACT_INODE_SIZE, DIRENT_SIZE, DataLayout, DeviceSlot, EXTENDED_INODE_SIZE, FORMAT_EXTENDED,
    INODE_SLOT, NULL_ADDR, SuperBlock, XATTR_IBODY_HEADER_SIZE, align_up, le_u16, le_u32, le_u64,
    mode,
};
use super::writer::{Content, NOTE_MAGIC, Node, NodeId, ROOT, Tree};
use crate::error::{Error, IoContext, Result};

/// Deepest directory nesting accepted (guards against loops in a corrupt image). Above the
/// layer converter's [`format::MAX_PATH_DEPTH`], so an image ocicache wrote never trips it:
/// only a damaged image does.
const MAX_DEPTH: usize = 2 * format::MAX_PATH_DEPTH;

/// An open image.
pub struct ImageReader {
    path: PathBuf,
    file: File,
    len: u64,
    sb: SuperBlock,
    /// Bytes from `cached_from` to the end of the image, read once: the metadata of images
    /// ocicache writes lies after the file data.
    cached_from: u64,
    cached: Vec<u8>,
}

/// A mapped chunk of a chunk-based file: device id (0 = this image) and first block.
pub type Chunk = (u16, u64);

/// A parsed inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// Node id.
    pub nid: u64,
    /// `st_mode`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Seconds.
    pub mtime: i64,
    /// Nanoseconds.
    pub mtime_nsec: u32,
    /// Link count.
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// Data layout.
    pub layout: DataLayout,
    /// `i_u`: raw block address, device number or chunk format.
    pub i_u: u32,
    /// Xattrs, full names.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Byte offset (in the image) right after the inode and its xattrs: inline data or chunk
    /// indexes start here.
    pub body: u64,
}

impl ImageReader {
    /// Opens and checks the superblock (magic, block size, checksum).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        let mut reader = ImageReader {
            path: path.to_path_buf(),
            file,
            len,
            sb: SuperBlock::default(),
            cached_from: len,
            cached: Vec::new(),
        };
        let block0 = reader.read_at(0, BLOCK_SIZE as usize)?;
        reader.sb = SuperBlock::decode(&block0).map_err(|e| reader.corrupt(e))?;
        let meta_start = if reader.sb.xattr_blkaddr != 0 {
            u64::from(reader.sb.xattr_blkaddr.min(reader.sb.meta_blkaddr))
        } else {
            u64::from(reader.sb.meta_blkaddr)
        } * BLOCK_SIZE;
        if meta_start < len {
            reader.cached = reader.read_at(meta_start, (len - meta_start) as usize)?;
            reader.cached_from = meta_start;
        }
        Ok(reader)
    }

    /// The superblock.
    pub fn superblock(&self) -> &SuperBlock {
        &self.sb
    }

    /// Size of the image file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the image file is empty (never true for an opened image).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The device table.
    pub fn devices(&self) -> Result<Vec<DeviceSlot>> {
        let start = u64::from(self.sb.devt_slotoff) * format::DEVICE_SLOT_SIZE;
        let mut out = Vec::new();
        for i in 0..u64::from(self.sb.extra_devices) {
            let slot = self.read_at(start + i * format::DEVICE_SLOT_SIZE, 128)?;
            out.push(DeviceSlot::decode(&slot));
        }
        Ok(out)
    }

    fn corrupt(&self, what: impl std::fmt::Display) -> Error {
        Error::CorruptCache {
            reason: format!("{}: {what}", self.path.display()),
        }
    }

    /// Reads `len` bytes at `offset`, failing on reads past the end.
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|end| *end <= self.len)
            .ok_or_else(|| self.corrupt(format!("read of {len} bytes at {offset} past the end")))?;
        if offset >= self.cached_from {
            let at = (offset - self.cached_from) as usize;
            return Ok(self.cached[at..at + len].to_vec());
        }
        let _ = end;
        let mut buf = vec![0u8; len];
        crate::sys::read_exact_at(&self.file, &mut buf, offset).at(&self.path)?;
        Ok(buf)
    }

    fn nid_offset(&self, nid: u64) -> Result<u64> {
        nid.checked_mul(INODE_SLOT)
            .and_then(|o| o.checked_add(u64::from(self.sb.meta_blkaddr) * BLOCK_SIZE))
            .ok_or_else(|| self.corrupt(format!("nid {nid} out of range")))
    }

    /// Parses the inode `nid`.
    pub fn inode(&self, nid: u64) -> Result<Inode> {
        let at = self.nid_offset(nid)?;
        let head = self.read_at(at, COMPACT_INODE_SIZE as usize)?;
        let format_bits = le_u16(&head, 0);
        let layout = DataLayout::from_format(format_bits).ok_or_else(|| {
            self.corrupt(format!(
                "nid {nid}: unsupported data layout {format_bits:#x}"
            ))
        })?;
        let xattr_icount = le_u16(&head, 2);
        let mut inode = if format_bits & FORMAT_EXTENDED != 0 {
            let b = self.read_at(at, EXTENDED_INODE_SIZE as usize)?;
            Inode {
                nid,
                mode: u32::from(le_u16(&b, 4)),
                uid: le_u32(&b, 24),
                gid: le_u32(&b, 28),
                mtime: le_u64(&b, 32) as i64,
                mtime_nsec: le_u32(&b, 40),
                nlink: le_u32(&b, 44),
                size: le_u64(&b, 8),
                layout,
                i_u: le_u32(&b, 16),
                xattrs: BTreeMap::new(),
                body: at + EXTENDED_INODE_SIZE,
            }
        } else {
            let b = head;
            Inode {
                nid,
                mode: u32::from(le_u16(&b, 4)),
                uid: u32::from(le_u16(&b, 24)),
                gid: u32::from(le_u16(&b, 26)),
                // The kernel adds in time64_t, wrapping (it builds with -fno-strict-overflow).
                mtime: (self.sb.build_time as i64).wrapping_add(i64::from(le_u32(&b, 12))),
                mtime_nsec: self.sb.build_time_nsec,
                nlink: u32::from(le_u16(&b, 6)),
                size: u64::from(le_u32(&b, 8)),
                layout,
                i_u: le_u32(&b, 16),
                xattrs: BTreeMap::new(),
                body: at + COMPACT_INODE_SIZE,
            }
        };
        if xattr_icount > 0 {
            let size = XATTR_IBODY_HEADER_SIZE + (u64::from(xattr_icount) - 1) * 4;
            let body = self.read_at(inode.body, size as usize)?;
            inode.xattrs = self.parse_xattrs(&body, nid)?;
            inode.body += size;
        }
        Ok(inode)
    }

    fn parse_xattrs(&self, body: &[u8], nid: u64) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut out = BTreeMap::new();
        let shared = usize::from(body[4]);
        let mut at = XATTR_IBODY_HEADER_SIZE as usize;
        for _ in 0..shared {
            if at + 4 > body.len() {
                return Err(self.corrupt(format!("nid {nid}: shared xattr ids overflow")));
            }
            let id = le_u32(body, at);
            at += 4;
            let offset = u64::from(self.sb.xattr_blkaddr) * BLOCK_SIZE + u64::from(id) * 4;
            let head = self.read_at(offset, 4)?;
            let len = 4 + usize::from(head[0]) + usize::from(le_u16(&head, 2));
            let entry = self.read_at(offset, len)?;
            let (name, value, _) = self.xattr_entry(&entry, 0, nid)?;
            out.insert(name, value);
        }
        while at + 4 <= body.len() {
            let (name, value, next) = self.xattr_entry(body, at, nid)?;
            out.insert(name, value);
            at = next;
        }
        Ok(out)
    }

    fn xattr_entry(&self, b: &[u8], at: usize, nid: u64) -> Result<(Vec<u8>, Vec<u8>, usize)> {
        let name_len = usize::from(b[at]);
        let index = b[at + 1];
        let value_len = usize::from(le_u16(b, at + 2));
        let end = at + 4 + name_len + value_len;
        if end > b.len() {
            return Err(self.corrupt(format!("nid {nid}: xattr entry overflows")));
        }
        let suffix = &b[at + 4..at + 4 + name_len];
        let name = format::join_xattr_name(index, suffix)
            .ok_or_else(|| self.corrupt(format!("nid {nid}: unknown xattr prefix {index}")))?;
        let value = b[at + 4 + name_len..end].to_vec();
        Ok((name, value, align_up(end as u64, 4) as usize))
    }

    /// The data of a file, directory or symlink stored in this image (plain or inline layout),
    /// for small objects (directories and symlinks; tests read files through it too).
    pub fn data(&self, inode: &Inode) -> Result<Vec<u8>> {
        let size = usize::try_from(inode.size).map_err(|_| self.corrupt("size overflows"))?;
        match inode.layout {
            DataLayout::FlatPlain => {
                if size == 0 {
                    return Ok(Vec::new());
                }
                self.read_at(u64::from(inode.i_u) * BLOCK_SIZE, size)
            }
            DataLayout::FlatInline => {
                let full = size - size % BLOCK_SIZE as usize;
                let mut out = if full > 0 {
                    self.read_at(u64::from(inode.i_u) * BLOCK_SIZE, full)?
                } else {
                    Vec::new()
                };
                out.extend(self.read_at(inode.body, size - full)?);
                Ok(out)
            }
            DataLayout::ChunkBased => Err(self.corrupt(format!(
                "nid {}: chunk-based data lives on other devices",
                inode.nid
            ))),
        }
    }

    /// The first chunk of a chunk-based file: `(device id, block address)` (what fsmeta files
    /// hold: one chunk per file), with the chunk size in bits.
    pub fn first_chunk(&self, inode: &Inode) -> Result<(u16, u64, u32)> {
        let format_bits = inode.i_u as u16;
        if format_bits & CHUNK_FORMAT_INDEXES == 0 {
            return Err(self.corrupt(format!("nid {}: chunk format without indexes", inode.nid)));
        }
        let bits =
            u32::from(format::BLOCK_BITS) + u32::from(format_bits & CHUNK_FORMAT_BLKBITS_MASK);
        let at = align_up(inode.body, CHUNK_INDEX_SIZE);
        let b = self.read_at(at, CHUNK_INDEX_SIZE as usize)?;
        let blk = (u64::from(le_u16(&b, 0)) << 32) | u64::from(le_u32(&b, 4));
        Ok((le_u16(&b, 2), blk, bits))
    }

    /// Every chunk of a chunk-based file with chunk indexes: the chunk size in bits and, per
    /// chunk, `(device id, block address)` or `None` for a hole (`EROFS_NULL_ADDR`). The count
    /// is `ceil(size / chunk size)`; the indexes must lie inside the image.
    pub fn chunks(&self, inode: &Inode) -> Result<(u8, Vec<Option<Chunk>>)> {
        let format_bits = inode.i_u as u16;
        if format_bits & CHUNK_FORMAT_INDEXES == 0 {
            return Err(self.corrupt(format!("nid {}: chunk format without indexes", inode.nid)));
        }
        let bits = format::BLOCK_BITS + (format_bits & CHUNK_FORMAT_BLKBITS_MASK) as u8;
        let count = inode.size.div_ceil(1u64 << bits);
        let at = align_up(inode.body, CHUNK_INDEX_SIZE);
        let len = count
            .checked_mul(CHUNK_INDEX_SIZE)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.corrupt(format!("nid {}: chunk index overflows", inode.nid)))?;
        let bytes = self.read_at(at, len)?;
        let chunks = bytes
            .chunks_exact(CHUNK_INDEX_SIZE as usize)
            .map(|b| {
                (le_u32(b, 4) != NULL_ADDR).then(|| {
                    let blk = (u64::from(le_u16(b, 0)) << 32) | u64::from(le_u32(b, 4));
                    (le_u16(b, 2), blk)
                })
            })
            .collect();
        Ok((bits, chunks))
    }

    /// Directory entries (without `.` and `..`): name, nid, file type.
    pub fn read_dir(&self, inode: &Inode) -> Result<Vec<(Vec<u8>, u64)>> {
        if inode.mode & mode::IFMT != mode::IFDIR {
            return Err(self.corrupt(format!("nid {} is not a directory", inode.nid)));
        }
        let data = self.data(inode)?;
        let mut out = Vec::new();
        for block in data.chunks(BLOCK_SIZE as usize) {
            if block.len() < DIRENT_SIZE as usize {
                return Err(self.corrupt(format!("nid {}: short directory block", inode.nid)));
            }
            let first_nameoff = usize::from(le_u16(block, 8));
            if first_nameoff == 0
                || first_nameoff % DIRENT_SIZE as usize != 0
                || first_nameoff > block.len()
            {
                return Err(self.corrupt(format!("nid {}: bad directory block", inode.nid)));
            }
            let count = first_nameoff / DIRENT_SIZE as usize;
            for i in 0..count {
                let d = i * DIRENT_SIZE as usize;
                let nid = le_u64(block, d);
                let start = usize::from(le_u16(block, d + 8));
                let end = if i + 1 < count {
                    usize::from(le_u16(block, d + DIRENT_SIZE as usize + 8))
                } else {
                    let rest = &block[start.min(block.len())..];
                    start + rest.iter().position(|b| *b == 0).unwrap_or(rest.len())
                };
                if start > end || end > block.len() {
                    return Err(self.corrupt(format!("nid {}: bad directory entry", inode.nid)));
                }
                let name = &block[start..end];
                if name != b"." && name != b".." {
                    out.push((name.to_vec(), nid));
                }
            }
        }
        Ok(out)
    }

    /// The nids of directories that the ocicache note marks implicit (none for an image
    /// without a note).
    pub fn implicit_dirs(&self) -> Result<Vec<u64>> {
        let header = self.read_at(
            u64::from(self.sb.meta_blkaddr) * BLOCK_SIZE,
            INODE_SLOT as usize,
        )?;
        if &header[..8] != NOTE_MAGIC {
            return Ok(Vec::new());
        }
        let blkaddr = le_u64(&header, 16);
        let len = le_u64(&header, 24);
        if len == 0 {
            return Ok(Vec::new());
        }
        let start = blkaddr
            .checked_mul(BLOCK_SIZE)
            .ok_or_else(|| self.corrupt("note address overflows"))?;
        let bytes = self.read_at(
            start,
            usize::try_from(len).map_err(|_| self.corrupt("note too long"))?,
        )?;
        Ok(bytes.chunks_exact(8).map(|c| le_u64(c, 0)).collect())
    }
}

/// The whole tree of an image ocicache wrote as a layer: regular files as
/// [`Content::File`] runs of this image's blocks (sparse files as [`Content::Chunked`] on this
/// image, holes kept), implicit directories marked. Hardlinked names
/// share one node.
pub fn read_tree(image: &ImageReader) -> Result<Tree> {
    let implicit: std::collections::HashSet<u64> = image.implicit_dirs()?.into_iter().collect();
    let mut tree = Tree::default();
    let mut by_nid: HashMap<u64, NodeId> = HashMap::new();
    let root_nid = u64::from(image.sb.root_nid);
    let root = image.inode(root_nid)?;
    tree.nodes.push(node_of(image, &root, &implicit)?);
    by_nid.insert(root_nid, ROOT);
    let mut stack = vec![(ROOT, root, 0usize)];
    while let Some((id, inode, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(image.corrupt("directory nesting too deep"));
        }
        let mut children = BTreeMap::new();
        for (name, nid) in image.read_dir(&inode)? {
            if let Some(&existing) = by_nid.get(&nid) {
                if tree.nodes[existing].is_dir() {
                    return Err(image.corrupt(format!("directory nid {nid} is linked twice")));
                }
                children.insert(name, existing);
                continue;
            }
            let child = image.inode(nid)?;
            let child_id = tree.nodes.len();
            tree.nodes.push(node_of(image, &child, &implicit)?);
            by_nid.insert(nid, child_id);
            if child.mode & mode::IFMT == mode::IFDIR {
                stack.push((child_id, child, depth + 1));
            }
            children.insert(name, child_id);
        }
        tree.nodes[id].content = Content::Dir(children);
    }
    Ok(tree)
}

/// Reads every inode, directory, xattr, chunk index and symlink target of any image ocicache
/// wrote (a layer or an fsmeta), checking that each file's data lies in this image or on a
/// device its device table names. Returns the number of inodes. What a full verification
/// re-parses.
pub fn walk_metadata(image: &ImageReader) -> Result<u64> {
    let devices = u64::from(image.sb.extra_devices);
    let blocks = image.len / BLOCK_SIZE;
    let root = image.inode(u64::from(image.sb.root_nid))?;
    let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::new();
    seen.insert(root.nid);
    let mut stack = vec![(root, 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(image.corrupt("directory nesting too deep"));
        }
        for (name, nid) in image.read_dir(&dir)? {
            if name == b"." || name == b".." || !seen.insert(nid) {
                continue;
            }
            let inode = image.inode(nid)?;
            match inode.mode & mode::IFMT {
                mode::IFDIR => stack.push((inode, depth + 1)),
                mode::IFREG if inode.size > 0 => match inode.layout {
                    DataLayout::FlatPlain => {
                        let end = u64::from(inode.i_u) + inode.size.div_ceil(BLOCK_SIZE);
                        if end > blocks {
                            return Err(image.corrupt(format!(
                                "nid {nid}: data beyond the image's {blocks} blocks"
                            )));
                        }
                    }
                    DataLayout::ChunkBased => {
                        for (device, _) in image.chunks(&inode)?.1.into_iter().flatten() {
                            if u64::from(device) > devices {
                                return Err(image.corrupt(format!(
                                    "nid {nid}: a chunk on device {device} of {devices}"
                                )));
                            }
                        }
                    }
                    _ => {
                        image.data(&inode)?;
                    }
                },
                mode::IFLNK => {
                    image.data(&inode)?;
                }
                _ => {}
            }
        }
    }
    Ok(seen.len() as u64)
}

fn node_of(
    image: &ImageReader,
    inode: &Inode,
    implicit: &std::collections::HashSet<u64>,
) -> Result<Node> {
    let content = match inode.mode & mode::IFMT {
        mode::IFDIR => Content::Dir(BTreeMap::new()),
        mode::IFREG => match inode.layout {
            DataLayout::FlatPlain => Content::File {
                size: inode.size,
                blkaddr: u64::from(inode.i_u),
            },
            // A sparse file: chunks of this image's blocks and holes.
            DataLayout::ChunkBased if inode.size > 0 => {
                let (chunk_bits, found) = image.chunks(inode)?;
                let mut chunks = Vec::with_capacity(found.len());
                for chunk in found {
                    match chunk {
                        None => chunks.push(None),
                        Some((0, blkaddr)) => chunks.push(Some(blkaddr)),
                        Some((device, _)) => {
                            return Err(image.corrupt(format!(
                                "nid {}: a layer's chunk on device {device}",
                                inode.nid
                            )));
                        }
                    }
                }
                Content::Chunked {
                    size: inode.size,
                    chunk_bits,
                    device: 0,
                    chunks,
                }
            }
            _ => {
                return Err(image.corrupt(format!(
                    "nid {}: regular file data is not block-aligned (layout {:?})",
                    inode.nid, inode.layout
                )));
            }
        },
        mode::IFLNK => Content::Symlink(image.data(inode)?),
        mode::IFCHR | mode::IFBLK => {
            let (major, minor) = format::decode_dev(inode.i_u);
            Content::Device(major, minor)
        }
        mode::IFIFO | mode::IFSOCK => Content::Special,
        other => {
            return Err(image.corrupt(format!("nid {}: unknown file type {other:#o}", inode.nid)));
        }
    };
    Ok(Node {
        mode: inode.mode,
        uid: inode.uid,
        gid: inode.gid,
        mtime: inode.mtime,
        mtime_nsec: inode.mtime_nsec,
        xattrs: inode.xattrs.clone(),
        content,
        implicit: implicit.contains(&inode.nid),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::erofs::format::{SUPER_OFFSET, superblock_checksum};
    use crate::erofs::writer::{ImageOptions, write_metadata};

    /// An image file of `tree` (no file data), and its bytes.
    fn image(tree: &Tree, devices: Vec<DeviceSlot>) -> (tempfile::NamedTempFile, Vec<u8>) {
        let meta = write_metadata(
            tree,
            &ImageOptions {
                devices,
                ..Default::default()
            },
        )
        .unwrap();
        let mut bytes = meta.block0.clone();
        bytes.extend_from_slice(&meta.tail);
        (written(&bytes), bytes)
    }

    fn written(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        f
    }

    fn sample() -> Tree {
        let mut tree = Tree {
            nodes: vec![Node::dir(0o755), Node::implicit_dir()],
        };
        tree.nodes.push(Node {
            mode: mode::IFLNK | 0o777,
            content: Content::Symlink(b"target".to_vec()),
            ..Node::dir(0)
        });
        if let Content::Dir(c) = &mut tree.nodes[ROOT].content {
            c.insert(b"implicit".to_vec(), 1);
            c.insert(b"link".to_vec(), 2);
        }
        tree
    }

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let (file, _) = image(&sample(), Vec::new());
        let reader = ImageReader::open(file.path()).unwrap();
        let tree = read_tree(&reader).unwrap();
        let Content::Dir(root) = &tree.nodes[ROOT].content else {
            panic!("root is a directory")
        };
        let implicit = &tree.nodes[root[b"implicit".as_slice()]];
        assert!(implicit.implicit && implicit.is_dir());
        assert_eq!(
            tree.nodes[root[b"link".as_slice()]].content,
            Content::Symlink(b"target".to_vec())
        );
        assert_eq!(reader.implicit_dirs().unwrap().len(), 1);
        assert!(reader.devices().unwrap().is_empty());
    }

    /// Malformed images are `CORRUPT_CACHE`, never a panic: too short, a wrong magic, a
    /// superblock whose checksum does not match, a node id past the end, a directory read of
    /// a symlink.
    #[test]
    fn damaged_images_are_corrupt_cache() {
        let (_, good) = image(&sample(), Vec::new());
        let damaged = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            edit(&mut bytes);
            written(&bytes)
        };
        let cases: Vec<(&str, tempfile::NamedTempFile)> = vec![
            ("short", damaged(&|b| b.truncate(100))),
            ("magic", damaged(&|b| b[format::SUPER_OFFSET] ^= 0xff)),
            ("checksum", damaged(&|b| b[format::SUPER_OFFSET + 40] ^= 1)),
        ];
        for (what, file) in cases {
            let err = ImageReader::open(file.path()).err().unwrap();
            assert_eq!(err.code(), "CORRUPT_CACHE", "{what}: {err}");
        }
        let (file, _) = image(&sample(), Vec::new());
        let reader = ImageReader::open(file.path()).unwrap();
        assert_eq!(reader.inode(1 << 40).unwrap_err().code(), "CORRUPT_CACHE");
        let root = reader
            .inode(u64::from(reader.superblock().root_nid))
            .unwrap();
        let link_nid = reader
            .read_dir(&root)
            .unwrap()
            .into_iter()
            .find(|(name, _)| name == b"link")
            .unwrap()
            .1;
        let link = reader.inode(link_nid).unwrap();
        assert_eq!(reader.read_dir(&link).unwrap_err().code(), "CORRUPT_CACHE");
        assert_eq!(
            reader.read_at(reader.len() - 1, 2).unwrap_err().code(),
            "CORRUPT_CACHE"
        );
    }

    /// A layer image holds its own data: a chunk on another device is not a layer's, and
    /// `read_tree` refuses it (an fsmeta image is not a layer).
    #[test]
    fn a_chunk_on_another_device_is_not_a_layer_s() {
        let mut tree = Tree {
            nodes: vec![Node::dir(0o755)],
        };
        tree.nodes.push(Node {
            mode: mode::IFREG | 0o644,
            content: Content::DeviceFile {
                size: 10,
                device: 1,
                blkaddr: 0,
            },
            ..Node::dir(0)
        });
        if let Content::Dir(c) = &mut tree.nodes[ROOT].content {
            c.insert(b"f".to_vec(), 1);
        }
        let slot = DeviceSlot {
            tag: b"layer".to_vec(),
            blocks: 1,
            mapped_blkaddr: 1,
        };
        let (file, _) = image(&tree, vec![slot.clone()]);
        let reader = ImageReader::open(file.path()).unwrap();
        assert_eq!(reader.devices().unwrap(), vec![slot]);
        let err = read_tree(&reader).unwrap_err();
        assert_eq!(err.code(), "CORRUPT_CACHE", "{err}");
    }

    /// Found by the `erofs_reader` fuzz target (once it fixed up superblock checksums): a
    /// compact inode's mtime (`build_time` plus the inode's offset) overflowed when
    /// `build_time` was near `i64::MAX`, and the reader, which never panics, panicked. It wraps
    /// as the kernel does.
    #[test]
    fn compact_inode_mtime_near_i64_max_does_not_overflow() {
        let tree = Tree {
            nodes: vec![Node::dir(0o755)],
        };
        let meta = write_metadata(&tree, &ImageOptions::default()).unwrap();
        let mut image = meta.block0;
        image.extend_from_slice(&meta.tail);
        let sb = SuperBlock::decode(&image).unwrap();
        let root = (u64::from(sb.meta_blkaddr) * BLOCK_SIZE + u64::from(sb.root_nid) * INODE_SLOT)
            as usize;
        assert_eq!(
            le_u16(&image, root) & FORMAT_EXTENDED,
            0,
            "a compact root inode"
        );
        image[SUPER_OFFSET + 24..SUPER_OFFSET + 32].copy_from_slice(&i64::MAX.to_le_bytes());
        image[root + 12..root + 16].copy_from_slice(&1u32.to_le_bytes());
        let sum = superblock_checksum(&image);
        image[SUPER_OFFSET + 4..SUPER_OFFSET + 8].copy_from_slice(&sum.to_le_bytes());
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &image).unwrap();
        let reader = ImageReader::open(file.path()).unwrap();
        let inode = reader.inode(u64::from(sb.root_nid)).unwrap();
        assert_eq!(inode.mtime, i64::MIN);
    }
}
