//! Layer conversion: one pass over a layer blob (gzip, zstd or plain tar, told apart by
//! content) that computes its digest and its `diff_id` and writes an EROFS image, never
//! extracting anything to a host folder. Above [`crate::erofs`] (the format and its writer),
//! [`crate::tar`] (the reader) and [`crate::codec`] (the decoders).
//!
//! The blob is any reader ([`convert_layer_from`]): an archive member read in place, a spool
//! file, a download. File data streams straight into the image (blocks 1 onwards, each file a
//! block-aligned run, zero-padded; a GNU sparse file only its chunks that hold data, its holes
//! left unmapped), in tar order; the tree of entries stays in memory (its size grows with the
//! number of entries and sparse chunks, not with file sizes) and its metadata is written after
//! the data once the digests are known to be right. Every byte written may be charged to a
//! [`WriteBudget`]. Each byte of the blob is hashed once: a plain tar's digest is its
//! `diff_id`. A compressed blob is read, hashed and inflated on a thread of its own
//! ([`crate::codec::decode_beside`]), a few chunks ahead of the thread that hashes the tar,
//! parses it and writes the image, so one layer keeps two cores busy. See
//! `docs/cache-layout.md` for the tar-to-EROFS rules: path normalization, duplicates, hardlinks,
//! whiteouts, sparse files.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::budget::WriteBudget;
use crate::codec::{COPY_BUFFER_SIZE, Compression, NamedReader, TrackedReader, decode_beside};
use crate::erofs::format::{
    BLOCK_BITS, BLOCK_SIZE, CHUNK_INDEX_SIZE, MAX_CHUNK_BITS, MAX_NAME_LEN, OPAQUE_XATTR, mode,
};
use crate::erofs::volume_uuid;
use crate::erofs::writer::{self, Content, ImageOptions, Node, NodeId, ROOT, Tree};
use crate::error::{Error, IoContext, Result};
use crate::hash::HashingWriter;
use crate::oci::{Digest, HashingReader};
use crate::tar::{Entry, Kind, ReadError, TarReader};

pub use crate::erofs::format::MAX_PATH_DEPTH;

/// Prefix of an OCI whiteout file name.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The OCI opaque-directory marker.
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix of other `.wh..wh.` names (aufs bookkeeping, which carries no content).
const META_PREFIX: &[u8] = b".wh..wh.";
/// Write buffer of the image file.
const WRITE_BUFFER: usize = COPY_BUFFER_SIZE;
/// Bytes of an over-deep path quoted in its error.
const QUOTED_PATH_PREFIX: usize = 64;

/// What the caller expects of a layer.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// The blob's digest (as stored: compressed or not); checked when given.
    pub blob_digest: Option<Digest>,
    /// The uncompressed tar's digest (`rootfs.diff_ids`); checked when given.
    pub diff_id: Option<Digest>,
}

/// A converted layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedLayer {
    /// Digest of the blob as read.
    pub blob_digest: Digest,
    /// Size of the blob as read.
    pub blob_size: u64,
    /// How the blob was compressed.
    pub compressed: bool,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
    /// Size of the EROFS image written.
    pub erofs_size: u64,
    /// Content hash of the EROFS image written ([`crate::hash`]), computed as it was written.
    pub erofs_hash: String,
    /// Tar entries read (metadata records such as PAX headers not counted).
    pub entries: u64,
}

/// Converts the layer blob at `blob` into an EROFS image at `dest` (created or truncated, and
/// fsynced before returning).
///
/// Errors: [`Error::DigestMismatch`] when the blob or its uncompressed tar does not match
/// `options` (a blob that does not match its digest is reported as such even when its content
/// is also corrupt); [`Error::InvalidArchive`] for a corrupt or truncated stream, a malformed
/// tar header, a name over 255 bytes, a path deeper than [`MAX_PATH_DEPTH`], a hardlink to a
/// missing or directory target; and [`Error::Unsupported`] for bzip2/xz, PAX sparse files,
/// entry types other than files, links, directories, devices and FIFOs, or xattrs EROFS cannot
/// name. On error, `dest` may hold partial bytes: it belongs to the caller's staging area and
/// must not be published.
pub fn convert_layer(blob: &Path, dest: &Path, options: &ConvertOptions) -> Result<ConvertedLayer> {
    convert_layer_within(blob, dest, options, &WriteBudget::unlimited())
}

/// [`convert_layer`] charging every byte of the image (file data, padding, metadata; never a
/// hole) to `budget` before writing it: [`Error::LimitExceeded`] as soon as the image would
/// pass it, with `dest` left partial (as for any error). Several conversions may share one
/// budget.
pub fn convert_layer_within(
    blob: &Path,
    dest: &Path,
    options: &ConvertOptions,
    budget: &WriteBudget,
) -> Result<ConvertedLayer> {
    let file = File::open(blob).at(blob)?;
    convert_layer_from(NamedReader::new(file, blob), blob, dest, options, budget)
}

/// [`convert_layer_within`] of a blob read from `blob`, from its first byte to its end, once.
/// `name` is what errors call the blob: a read error that the reader does not report as a core
/// error of its own ([`crate::codec::wrap_error`]) is [`Error::Io`] on `name`.
pub fn convert_layer_from(
    blob: impl Read + Send,
    name: &Path,
    dest: &Path,
    options: &ConvertOptions,
    budget: &WriteBudget,
) -> Result<ConvertedLayer> {
    let (tracked, failure) = TrackedReader::new(blob);
    let mut compressed = HashingReader::new(tracked);
    let corrupt = |e: io::Error| failure.classify(name, "layer", e);
    let converted = convert_stream(&mut compressed, &corrupt, dest, budget);
    let converted = match converted {
        Ok(converted) => converted,
        Err(e) => {
            // Content that does not match its digest is what went wrong, however its bytes
            // fail to convert: read the rest of the blob to tell.
            if let Some(want) = options
                .blob_digest
                .as_ref()
                .filter(|_| is_content_error(&e))
                && io::copy(&mut compressed, &mut io::sink()).is_ok()
            {
                let (actual, _) = compressed.finish();
                want.verify(&actual, || "layer blob".into())?;
            }
            return Err(e);
        }
    };
    io::copy(&mut compressed, &mut io::sink()).map_err(&corrupt)?;
    let (blob_digest, blob_size) = compressed.finish();
    // A plain tar is its own uncompressed stream: its digest is its diff_id, hashed once.
    let (diff_id, tar_size) = converted
        .tar
        .unwrap_or_else(|| (blob_digest.clone(), blob_size));
    if let Some(want) = &options.blob_digest {
        want.verify(&blob_digest, || "layer blob".into())?;
    }
    if let Some(want) = &options.diff_id {
        want.verify(&diff_id, || "layer diff_id".into())?;
    }
    let builder = converted.builder;
    if builder.entries == 0 && tar_size == 0 {
        // An empty stream is not a tar (a tar has at least its end-of-archive blocks).
        return Err(Error::invalid_archive("layer is empty, not a tar archive"));
    }
    let entries = builder.entries;
    let (erofs_size, erofs_hash) = builder.finish(volume_uuid(&diff_id))?;
    Ok(ConvertedLayer {
        blob_digest,
        blob_size,
        compressed: converted.kind != Compression::None,
        diff_id,
        tar_size,
        erofs_size,
        erofs_hash,
        entries,
    })
}

/// Whether a conversion failed because of what the blob holds (rather than the disk, the
/// budget, or the source itself).
fn is_content_error(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidArchive { .. } | Error::Unsupported { .. } | Error::DigestMismatch { .. }
    )
}

/// What [`convert_stream`] made: the image with its data written, the compression, and for a
/// compressed blob the uncompressed tar's digest and size (a plain blob's are its own).
struct Converted<'p> {
    builder: Builder<'p>,
    kind: Compression,
    tar: Option<(Digest, u64)>,
}

/// Decodes `blob` (on a thread of its own when it is compressed: [`decode_beside`]), reads its
/// tar to the end (and whatever follows), writing the file data into `dest`.
fn convert_stream<'p, R: Read + Send>(
    blob: &mut R,
    corrupt: &dyn Fn(io::Error) -> Error,
    dest: &'p Path,
    budget: &'p WriteBudget,
) -> Result<Converted<'p>> {
    let mut buffered = BufReader::with_capacity(COPY_BUFFER_SIZE, blob);
    let head = buffered.fill_buf().map_err(corrupt)?;
    let kind = Compression::sniff(head)?;
    // A plain tar is read as it is: its digest is taken below it, once.
    decode_beside(kind, buffered, |decoded| {
        convert_tar(decoded, kind, corrupt, dest, budget)
    })
}

/// [`convert_stream`] of the decoded stream.
fn convert_tar<'p>(
    decoded: &mut dyn Read,
    kind: Compression,
    corrupt: &dyn Fn(io::Error) -> Error,
    dest: &'p Path,
    budget: &'p WriteBudget,
) -> Result<Converted<'p>> {
    let mut tar_stream = TarStream::new(decoded, kind != Compression::None);
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dest)
        .at(dest)?;
    let mut builder = Builder::new(out, dest, budget)?;
    let mut tar = TarReader::new(BufReader::with_capacity(COPY_BUFFER_SIZE, &mut tar_stream));
    loop {
        let entry = match tar.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(ReadError::Io(e)) => return Err(corrupt(e)),
            Err(ReadError::Other(e)) => return Err(e),
        };
        builder.add(entry, &mut tar).map_err(|e| match e {
            AddError::Read(e) => corrupt(e),
            AddError::Other(e) => e,
        })?;
    }
    // Drain what the reader buffered and what follows: the diff_id covers every byte.
    io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(corrupt)?;
    // Hash what follows the end-of-archive blocks too: the diff_id covers every byte.
    io::copy(&mut tar_stream, &mut io::sink()).map_err(corrupt)?;
    Ok(Converted {
        builder,
        kind,
        tar: tar_stream.finish(),
    })
}

/// The uncompressed tar stream, hashed and counted when it is not the blob itself.
struct TarStream<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
}

impl<R: Read> TarStream<R> {
    fn new(inner: R, hashed: bool) -> Self {
        TarStream {
            inner,
            hasher: hashed.then(Sha256::new),
            count: 0,
        }
    }

    /// The digest and size of the stream, when it was hashed.
    fn finish(self) -> Option<(Digest, u64)> {
        let count = self.count;
        self.hasher.map(|h| (Digest::from_hasher(h), count))
    }
}

impl<R: Read> Read for TarStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// An error while adding an entry: reading the stream (classified by the caller) or anything
/// else.
enum AddError {
    Read(io::Error),
    Other(Error),
}

impl From<Error> for AddError {
    fn from(e: Error) -> Self {
        AddError::Other(e)
    }
}

/// The image being built: the data written so far and the tree.
struct Builder<'p> {
    /// The image file; every byte written is hashed in write order ([`crate::hash`]).
    out: BufWriter<HashingWriter<File>>,
    path: &'p Path,
    /// Charged before every write.
    budget: &'p WriteBudget,
    /// Next free data block.
    next_block: u64,
    tree: Tree,
    /// Nodes that are whiteouts (character devices 0:0 made from `.wh.` names).
    whiteouts: HashSet<NodeId>,
    /// Directories that get `trusted.overlay.opaque=y`.
    opaque: HashSet<NodeId>,
    entries: u64,
    /// Copy buffer for file data.
    buffer: Vec<u8>,
}

impl<'p> Builder<'p> {
    fn new(file: File, path: &'p Path, budget: &'p WriteBudget) -> Result<Self> {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, HashingWriter::new(file));
        // Block 0 is written last; data starts at block 1.
        out.seek(SeekFrom::Start(BLOCK_SIZE)).at(path)?;
        let root = Node::implicit_dir();
        Ok(Builder {
            out,
            path,
            budget,
            next_block: 1,
            tree: Tree { nodes: vec![root] },
            whiteouts: HashSet::new(),
            opaque: HashSet::new(),
            entries: 0,
            buffer: vec![0; COPY_BUFFER_SIZE],
        })
    }

    fn add<R: Read>(&mut self, entry: Entry, tar: &mut TarReader<R>) -> Result<(), AddError> {
        self.entries += 1;
        let raw_path = entry.path;
        let path = normalize(&raw_path)?;
        let uid = id32(entry.uid, "uid", &raw_path)?;
        let gid = id32(entry.gid, "gid", &raw_path)?;
        let perms = (entry.mode & u64::from(mode::PERMS)) as u32;
        let base = |type_bits: u32, content: Content| Node {
            mode: type_bits | perms,
            uid,
            gid,
            mtime: entry.mtime.0,
            mtime_nsec: entry.mtime.1,
            xattrs: entry.xattrs.clone(),
            content,
            implicit: false,
        };
        let node = match entry.kind {
            Kind::File => match &entry.sparse {
                Some(map) if entry.size > 0 => {
                    let content = self.write_sparse(tar, map, entry.size, &raw_path)?;
                    base(mode::IFREG, content)
                }
                _ => {
                    let blkaddr = self.next_block;
                    let size = entry.size;
                    let copied = self.copy_data(tar)?;
                    if copied != size {
                        return Err(truncated(&raw_path).into());
                    }
                    let pad = (BLOCK_SIZE - size % BLOCK_SIZE) % BLOCK_SIZE;
                    self.write_zeros(pad)?;
                    self.next_block += size.div_ceil(BLOCK_SIZE);
                    base(mode::IFREG, Content::File { size, blkaddr })
                }
            },
            Kind::Dir => base(mode::IFDIR, Content::Dir(BTreeMap::new())),
            Kind::Symlink => {
                let target = entry.link.clone();
                if target.is_empty() || target.len() >= BLOCK_SIZE as usize {
                    return Err(Error::invalid_archive(format!(
                        "symlink {:?} has an empty or over-long target",
                        String::from_utf8_lossy(&raw_path)
                    ))
                    .into());
                }
                // Symlink permissions mean nothing on Linux and read as 0777 once extracted,
                // whatever the header says.
                let mut node = base(mode::IFLNK, Content::Symlink(target));
                node.mode = mode::IFLNK | 0o777;
                node
            }
            Kind::Char => base(mode::IFCHR, Content::Device(entry.dev.0, entry.dev.1)),
            Kind::Block => base(mode::IFBLK, Content::Device(entry.dev.0, entry.dev.1)),
            Kind::Fifo => base(mode::IFIFO, Content::Special),
            Kind::Link => {
                return Ok(self.link(&path, &raw_path, &entry.link)?);
            }
            Kind::Other(typeflag) => {
                return Err(Error::Unsupported {
                    what: format!("tar entry type {:?}", typeflag as char),
                }
                .into());
            }
        };
        Ok(self.place(&path, &raw_path, node)?)
    }

    /// Writes a sparse file's data segments (`map`, in order, not overlapping) as a chunked
    /// file: a chunk that holds data is a run of blocks (its bytes outside the segments zero),
    /// a chunk that holds none is a hole and costs no block. The chunk size is chosen from the
    /// map before any byte is written ([`sparse_chunk_bits`]).
    fn write_sparse<R: Read>(
        &mut self,
        tar: &mut TarReader<R>,
        map: &[(u64, u64)],
        size: u64,
        raw_path: &[u8],
    ) -> Result<Content, AddError> {
        let bits = sparse_chunk_bits(size, map).ok_or_else(|| {
            Error::invalid_archive(format!(
                "sparse file {:?} declares {size} bytes, beyond what EROFS can index",
                String::from_utf8_lossy(raw_path)
            ))
        })?;
        let chunk = 1u64 << bits;
        let count = size.div_ceil(chunk);
        let mut chunks: Vec<Option<u64>> = vec![None; count as usize];
        // The chunk being written: its index, the file offset written up to, and the file
        // offset its blocks end at.
        let mut open: Option<(u64, u64, u64)> = None;
        for &(offset, len) in map {
            let end = offset + len;
            let mut at = offset;
            while at < end {
                let index = at >> bits;
                match open {
                    Some((i, written, _)) if i == index => self.write_zeros(at - written)?,
                    _ => {
                        if let Some((_, written, blocks_end)) = open {
                            self.write_zeros(blocks_end - written)?;
                        }
                        let start = index << bits;
                        let blocks = (size - start).min(chunk).div_ceil(BLOCK_SIZE);
                        chunks[index as usize] = Some(self.next_block);
                        self.next_block += blocks;
                        self.write_zeros(at - start)?;
                        open = Some((index, at, start + blocks * BLOCK_SIZE));
                    }
                }
                let stop = end.min((index + 1) << bits);
                let copied = self.copy_data(&mut tar.take_data(stop - at))?;
                if copied != stop - at {
                    return Err(truncated(raw_path).into());
                }
                at = stop;
                if let Some(o) = &mut open {
                    o.1 = at;
                }
            }
        }
        if let Some((_, written, blocks_end)) = open {
            self.write_zeros(blocks_end - written)?;
        }
        Ok(Content::Chunked {
            size,
            chunk_bits: bits,
            device: 0,
            chunks,
        })
    }

    /// Writes `n` zero bytes of file data.
    fn write_zeros(&mut self, mut n: u64) -> Result<(), AddError> {
        while n > 0 {
            let step = n.min(ZEROS.len() as u64) as usize;
            self.budget.charge(step as u64)?;
            self.out.write_all(&ZEROS[..step]).at(self.path)?;
            n -= step as u64;
        }
        Ok(())
    }

    /// Streams an entry's data to the image; read errors are the stream's, write errors the
    /// image file's.
    fn copy_data(&mut self, entry: &mut impl DataSource) -> Result<u64, AddError> {
        let mut copied = 0u64;
        loop {
            let n = match entry.read_data(&mut self.buffer) {
                Ok(0) => return Ok(copied),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AddError::Read(e)),
            };
            self.budget.charge(n as u64)?;
            self.out.write_all(&self.buffer[..n]).at(self.path)?;
            copied += n as u64;
        }
    }

    /// Puts `node` at `path`, applying whiteout names and the later-entry-wins rule.
    fn place(&mut self, path: &[Vec<u8>], raw: &[u8], node: Node) -> Result<()> {
        let Some((name, dirs)) = path.split_last() else {
            // The root itself (`./`, `/`).
            if !node.is_dir() {
                return Err(Error::invalid_archive(format!(
                    "tar entry {:?} names the root but is not a directory",
                    String::from_utf8_lossy(raw)
                )));
            }
            self.update_dir(ROOT, node);
            return Ok(());
        };
        let parent = self.make_dirs(dirs);
        if name.as_slice() == OPAQUE_MARKER {
            self.opaque.insert(parent);
            return Ok(());
        }
        if name.starts_with(META_PREFIX) {
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            check_name(hidden, raw)?;
            let existing = self.child(parent, hidden);
            match existing {
                // A real entry of this layer wins over its whiteout; a directory made here also
                // hides what lower layers had under that name.
                Some(id) if !self.whiteouts.contains(&id) => {
                    if self.tree.nodes[id].is_dir() {
                        self.opaque.insert(id);
                    }
                }
                _ => {
                    let mut wh = node;
                    wh.mode = mode::IFCHR;
                    wh.content = Content::Device(0, 0);
                    wh.xattrs.clear();
                    let id = self.push(wh);
                    self.whiteouts.insert(id);
                    self.set_child(parent, hidden.to_vec(), id);
                }
            }
            return Ok(());
        }
        check_name(name, raw)?;
        match self.child(parent, name) {
            Some(id) if self.tree.nodes[id].is_dir() && node.is_dir() => {
                self.update_dir(id, node);
            }
            existing => {
                let replaces_whiteout = existing.is_some_and(|id| self.whiteouts.contains(&id));
                let is_dir = node.is_dir();
                let id = self.push(node);
                if is_dir && replaces_whiteout {
                    self.opaque.insert(id);
                }
                self.set_child(parent, name.clone(), id);
            }
        }
        Ok(())
    }

    /// Adds a hardlink at `path` to the node at `target` (a path of this layer).
    fn link(&mut self, path: &[Vec<u8>], raw: &[u8], target: &[u8]) -> Result<()> {
        let want = normalize(target)?;
        let found = self.lookup(&want).filter(|id| !self.whiteouts.contains(id));
        let Some(id) = found else {
            return Err(Error::invalid_archive(format!(
                "hardlink {:?} points to {:?}, which the layer does not hold",
                String::from_utf8_lossy(raw),
                String::from_utf8_lossy(target)
            )));
        };
        if self.tree.nodes[id].is_dir() {
            return Err(Error::invalid_archive(format!(
                "hardlink {:?} points to a directory",
                String::from_utf8_lossy(raw)
            )));
        }
        let Some((name, dirs)) = path.split_last() else {
            return Err(Error::invalid_archive("a hardlink names the root"));
        };
        check_name(name, raw)?;
        if name.starts_with(WHITEOUT_PREFIX) {
            return Err(Error::invalid_archive(format!(
                "hardlink {:?} has a whiteout name",
                String::from_utf8_lossy(raw)
            )));
        }
        let parent = self.make_dirs(dirs);
        if self.child(parent, name) == Some(id) {
            return Ok(());
        }
        self.set_child(parent, name.clone(), id);
        Ok(())
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.tree.nodes.push(node);
        self.tree.nodes.len() - 1
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &self.tree.nodes[dir].content {
            Content::Dir(children) => children.get(name).copied(),
            _ => None,
        }
    }

    fn set_child(&mut self, dir: NodeId, name: Vec<u8>, id: NodeId) {
        if let Content::Dir(children) = &mut self.tree.nodes[dir].content {
            children.insert(name, id);
        }
    }

    fn lookup(&self, path: &[Vec<u8>]) -> Option<NodeId> {
        let mut at = ROOT;
        for name in path {
            at = self.child(at, name)?;
        }
        Some(at)
    }

    /// Walks `dirs` from the root, creating missing directories (implicit: 0755, root-owned,
    /// mtime 0) and replacing non-directories in the way, as extracting the tar would.
    fn make_dirs(&mut self, dirs: &[Vec<u8>]) -> NodeId {
        let mut at = ROOT;
        for name in dirs {
            at = match self.child(at, name) {
                Some(id) if self.tree.nodes[id].is_dir() => id,
                existing => {
                    let dir = Node::implicit_dir();
                    let replaces_whiteout = existing.is_some_and(|id| self.whiteouts.contains(&id));
                    let id = self.push(dir);
                    if replaces_whiteout {
                        self.opaque.insert(id);
                    }
                    self.set_child(at, name.clone(), id);
                    id
                }
            };
        }
        at
    }

    /// A later directory entry for an existing directory: its metadata wins, entries stay.
    fn update_dir(&mut self, id: NodeId, node: Node) {
        let dir = &mut self.tree.nodes[id];
        dir.mode = node.mode;
        dir.uid = node.uid;
        dir.gid = node.gid;
        dir.mtime = node.mtime;
        dir.mtime_nsec = node.mtime_nsec;
        dir.xattrs = node.xattrs;
        dir.implicit = false;
    }

    /// Writes the metadata after the data, zeros to the last block's end, and block 0 in
    /// front; fsyncs. Returns the image size and its content hash (block 0 written last, so
    /// the hash of the bytes in write order is [`crate::hash::content_hash`] of the file).
    fn finish(mut self, uuid: [u8; 16]) -> Result<(u64, String)> {
        for id in std::mem::take(&mut self.opaque) {
            let (name, value) = OPAQUE_XATTR;
            self.tree.nodes[id]
                .xattrs
                .insert(name.to_vec(), value.to_vec());
        }
        let meta = writer::write_metadata(
            &self.tree,
            &ImageOptions {
                data_blocks: self.next_block - 1,
                devices: Vec::new(),
                uuid,
            },
        )?;
        let path = self.path;
        // Block 0 and the metadata; the data blocks were charged as they were written.
        self.budget
            .charge(meta.tail.len() as u64 + meta.block0.len() as u64)?;
        self.out.write_all(&meta.tail).at(path)?;
        let size = meta.blocks * BLOCK_SIZE;
        // Zeros to the end written (not left to set_len) so that they are hashed before block 0.
        let written = BLOCK_SIZE * self.next_block + meta.tail.len() as u64;
        let mut pad = size.saturating_sub(written);
        while pad > 0 {
            let step = pad.min(ZEROS.len() as u64) as usize;
            self.out.write_all(&ZEROS[..step]).at(path)?;
            pad -= step as u64;
        }
        self.out.seek(SeekFrom::Start(0)).at(path)?;
        debug_assert_eq!(meta.block0.len(), crate::hash::ROTATED_PREFIX);
        self.out.write_all(&meta.block0).at(path)?;
        let (file, hash) = self
            .out
            .into_inner()
            .map_err(|e| Error::io(path, e.into_error()))?
            .finish();
        file.set_len(size).at(path)?;
        file.sync_all().at(path)?;
        Ok((size, hash))
    }
}

/// Where file data comes from: a whole entry, or one segment of a sparse entry.
trait DataSource {
    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

impl<R: Read> DataSource for TarReader<R> {
    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TarReader::read_data(self, buf)
    }
}

/// At most `left` bytes of the current entry's data.
struct Segment<'a, R> {
    tar: &'a mut TarReader<R>,
    left: u64,
}

impl<R: Read> DataSource for Segment<'_, R> {
    fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.tar.read_data(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

trait TakeData<R> {
    fn take_data(&mut self, len: u64) -> Segment<'_, R>;
}

impl<R: Read> TakeData<R> for TarReader<R> {
    fn take_data(&mut self, len: u64) -> Segment<'_, R> {
        Segment {
            tar: self,
            left: len,
        }
    }
}

/// The most chunks one sparse file may have: its chunk index (8 bytes a chunk) stays within
/// 8 MiB, and every size up to 2^63 bytes still fits at the largest chunk size.
pub const MAX_SPARSE_CHUNKS: u64 = 1 << 20;

/// The chunk size (log2) for a sparse file of `size` bytes whose data segments are `map`: the
/// one that writes the fewest bytes, counting the chunk index (8 bytes a chunk) and the whole
/// blocks of every chunk that holds data, among the sizes the format encodes that need at most
/// [`MAX_SPARSE_CHUNKS`] chunks; of equal costs, the smaller chunk. `None` for a size no chunk
/// size indexes (over 2^63 bytes). Deterministic: the same map always gives the same layout.
pub fn sparse_chunk_bits(size: u64, map: &[(u64, u64)]) -> Option<u8> {
    let mut best: Option<(u64, u8)> = None;
    for bits in BLOCK_BITS..=MAX_CHUNK_BITS {
        let chunk = 1u64 << bits;
        let count = size.div_ceil(chunk);
        if count > MAX_SPARSE_CHUNKS {
            continue;
        }
        let last = count.saturating_sub(1);
        // Bytes on disk of chunk `i`: whole blocks, the last chunk cut at the file's end.
        let bytes_of = |i: u64| (size - (i << bits)).min(chunk).div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
        let mut cost = count * CHUNK_INDEX_SIZE;
        // Chunks already counted: those up to `counted` (segments are in order).
        let mut counted: Option<u64> = None;
        for &(offset, len) in map {
            if len == 0 {
                continue;
            }
            let first = (offset >> bits).max(counted.map_or(0, |c| c + 1));
            let end = (offset + len - 1) >> bits;
            if first > end {
                continue;
            }
            let mut n = end - first + 1;
            if end == last {
                cost = cost.saturating_add(bytes_of(last));
                n -= 1;
            }
            cost = cost.saturating_add(n.saturating_mul(chunk));
            counted = Some(end);
        }
        if best.is_none_or(|(c, _)| cost < c) {
            best = Some((cost, bits));
        }
    }
    best.map(|(_, bits)| bits)
}

fn truncated(raw_path: &[u8]) -> Error {
    Error::invalid_archive(format!(
        "layer tar is truncated in {:?}",
        String::from_utf8_lossy(raw_path)
    ))
}

/// Zeros for padding a file's last block.
static ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

/// Splits a tar path into components inside the image root: empty components and `.` are
/// dropped, a leading `/` is ignored, and `..` removes the previous component but never climbs
/// above the root (as securejoin and umoci do). Directory components longer than 255 bytes are
/// refused here, the last component by the caller, and so are paths of more than
/// [`MAX_PATH_DEPTH`] components.
pub fn normalize(raw: &[u8]) -> Result<Vec<Vec<u8>>> {
    if raw.contains(&0) {
        return Err(Error::invalid_archive(format!(
            "tar path {:?} contains a NUL byte",
            String::from_utf8_lossy(raw)
        )));
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(name.to_vec()),
        }
    }
    if out.len() > MAX_PATH_DEPTH {
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(QUOTED_PATH_PREFIX)]);
        return Err(Error::invalid_archive(format!(
            "tar path {shown:?}... is nested {} levels deep (at most {MAX_PATH_DEPTH})",
            out.len()
        )));
    }
    // Directories must be valid names; the last component is checked by the caller, since a
    // whiteout `.wh.<name>` may exceed 255 bytes while `<name>` fits.
    if let Some((_, dirs)) = out.split_last() {
        for dir in dirs {
            check_name(dir, raw)?;
        }
    }
    Ok(out)
}

fn check_name(name: &[u8], raw: &[u8]) -> Result<()> {
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid_archive(format!(
            "tar path {:?} has a name of {} bytes (at most {MAX_NAME_LEN})",
            String::from_utf8_lossy(raw),
            name.len()
        )));
    }
    if name.is_empty() {
        return Err(Error::invalid_archive(format!(
            "tar path {:?} has an empty whiteout name",
            String::from_utf8_lossy(raw)
        )));
    }
    Ok(())
}

fn id32(value: u64, what: &str, raw: &[u8]) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::invalid_archive(format!(
            "tar entry {:?} has {what} {value}, over 32 bits",
            String::from_utf8_lossy(raw)
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    fn parts(p: &str) -> Vec<String> {
        normalize(p.as_bytes())
            .unwrap()
            .into_iter()
            .map(|c| String::from_utf8(c).unwrap())
            .collect()
    }

    #[test]
    fn normalize_table() {
        let cases: &[(&str, &[&str])] = &[
            ("a/b", &["a", "b"]),
            ("./a//b/", &["a", "b"]),
            ("/etc/passwd", &["etc", "passwd"]),
            ("../../etc/passwd", &["etc", "passwd"]),
            ("a/../../b", &["b"]),
            ("a/./b/../c", &["a", "c"]),
            ("./", &[]),
            ("", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(parts(input), *want, "{input}");
        }
        let mut long_dir = vec![b'a'; 256];
        long_dir.extend_from_slice(b"/x");
        assert!(normalize(&long_dir).is_err());
        assert!(normalize(&[b'a'; 255]).is_ok());
        assert!(normalize(b"a\0b").is_err());
        let deep = |n: usize| vec!["a"; n].join("/").into_bytes();
        assert_eq!(
            normalize(&deep(MAX_PATH_DEPTH)).unwrap().len(),
            MAX_PATH_DEPTH
        );
        let err = normalize(&deep(MAX_PATH_DEPTH + 1)).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARCHIVE");
        assert!(
            err.to_string().len() < 200,
            "the path is not quoted whole: {err}"
        );
        // `..` components count after they are applied.
        let mut back = deep(MAX_PATH_DEPTH + 1);
        back.extend_from_slice(b"/..");
        assert_eq!(normalize(&back).unwrap().len(), MAX_PATH_DEPTH);
    }

    #[test]
    fn sparse_chunk_bits_table() {
        const GIB: u64 = 1 << 30;
        // (size, map, chunk bits): dense data takes one chunk (the smallest that covers it: ties
        // go to the smaller chunk); scattered bytes in a big file balance the index against the
        // zeros of each data chunk; a map of no data holds one hole.
        type Case<'a> = (u64, &'a [(u64, u64)], u8);
        let cases: &[Case] = &[
            (10_000, &[(0, 10_000)], 14),
            (64 * GIB, &[(0, 5), (32 * GIB, 6), (64 * GIB - 3, 3)], 19),
            (20 << 20, &[(0, 4), (1 << 20, 512), (19 << 20, 3000)], 13),
            (1 << 20, &[(1 << 20, 0)], 20),
        ];
        for (size, map, want) in cases {
            assert_eq!(sparse_chunk_bits(*size, map), Some(*want), "{size} {map:?}");
        }
        // Every size up to 2^63 has a chunk size within the chunk cap; beyond, none.
        assert_eq!(sparse_chunk_bits(1 << 63, &[]), Some(MAX_CHUNK_BITS));
        assert_eq!(sparse_chunk_bits(u64::MAX, &[]), None);
    }

    /// Found by the `layer` fuzz target's oracle: a layer with directories nested deeper than
    /// the EROFS reader accepts converted, and then building its fsmeta failed as
    /// `CORRUPT_CACHE`. Conversion refuses paths of more than [`MAX_PATH_DEPTH`] components as
    /// bad input (`INVALID_ARCHIVE`), far below the reader's limit; the deepest accepted tree
    /// reads back.
    #[test]
    fn directories_nested_beyond_the_reader_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let convert = |depth: usize| {
            let mut builder = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            let path = format!("{}f", "a/".repeat(depth));
            builder.append_data(&mut header, path, &b"x"[..]).unwrap();
            let blob = dir.path().join(format!("{depth}.tar"));
            std::fs::write(&blob, builder.into_inner().unwrap()).unwrap();
            let dest = dir.path().join(format!("{depth}.erofs"));
            convert_layer(&blob, &dest, &ConvertOptions::default()).map(|_| dest)
        };
        // `depth` folders and a file: `depth + 1` path components.
        let err = convert(MAX_PATH_DEPTH).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARCHIVE");
        let dest = convert(MAX_PATH_DEPTH - 1).unwrap();
        let image = crate::erofs::reader::ImageReader::open(&dest).unwrap();
        crate::erofs::reader::read_tree(&image).unwrap();
    }
}
