//! Entry points of the fuzz targets in `fuzz/` (cargo-fuzz, outside the workspace): one thin
//! function per family of parsers of untrusted bytes. The targets call only these, so they never
//! change when a parser moves to another module; this file does. Not API: hidden from the docs,
//! and free to change with the targets.
//!
//! Each entry point takes arbitrary bytes and must not panic, hang or allocate without bound
//! on any of them. Besides driving a parser the way the cache does, each one asserts what must
//! hold for every input, so a panic here is a finding:
//!
//! - errors are typed: only the codes a caller is told to expect (never `INTERNAL` or `IO`);
//! - round trips: a parsed reference re-parses to itself from its canonical and familiar forms,
//!   a parsed digest prints as its input, a manifest re-serialized parses to the same
//!   descriptors, a tree the EROFS writer wrote reads back identically;
//! - the tar reader gives the same entries and data when its stream trickles in a few bytes at
//!   a time, and a layer the converter accepted reads back and builds an fsmeta image.
//!
//! The converter and the EROFS reader take paths, so their entry points write the input to a
//! fresh folder under `/dev/shm` (memory, no disk writes per input) when it exists, else under
//! the temp dir, removed when the call returns.
//!
//! `cargo test` replays the checked-in corpus (`fuzz/corpus/<target>/`, which holds every
//! input a finding was fixed for) through these functions, so the corpus is a regression
//! suite on the stable toolchain too.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::archive::{digest_in_name, members};
use crate::codec::Compression;
use crate::erofs::format::{self, BLOCK_SIZE, mode};
use crate::erofs::reader::{ImageReader, read_tree};
use crate::erofs::writer::{Content, ImageOptions, Node, NodeId, ROOT, Tree, write_metadata};
use crate::erofs::{LayerImage, build_fsmeta};
use crate::error::{Error, Result};
use crate::image::{Backend, Cache, CacheOptions, LoadOptions};
use crate::layer::{ConvertOptions, convert_layer};
use crate::oci::docker::{self, BlobRef};
use crate::oci::manifest;
use crate::oci::{
    ConfigDescription, ConfigInfo, Descriptor, Digest, Reference, familiar_from_canonical,
    is_sha256_hex,
};
use crate::tar::{Entry, Kind, ReadError, TarReader};

/// Most bytes a tar stream may expand to (decompressed, or declared by entry sizes, sparse
/// files included) for the layer and archive entry points to convert or stage it: converting
/// writes every byte a tar declares, so a small compressed or sparse input could otherwise fill
/// the scratch folder, which is memory.
const EXPANSION_BUDGET: u64 = 64 * 1024 * 1024;
/// Most inodes the EROFS reader walk visits (an arbitrary image may name millions).
const MAX_WALK: usize = 4096;
/// Most nodes of a generated tree.
const MAX_TREE_NODES: usize = 512;

/// The tar reader of layer conversion, driven as the converter drives it: every entry, its data
/// read to the end (a sparse file segment by segment). The same input read through a stream
/// that returns a few bytes per read must give the same entries, data and outcome.
pub fn fuzz_tar(data: &[u8]) {
    let whole = read_tar(data);
    let trickled = read_tar(Trickle { data, reads: 0 });
    assert_eq!(
        whole, trickled,
        "short reads change what the tar reader returns"
    );
}

/// Tar-to-EROFS conversion of a layer blob (plain, gzip or zstd). An accepted layer's image
/// must have the size reported, read back through the EROFS reader, and build an fsmeta image.
pub fn fuzz_layer(data: &[u8]) {
    if !within_budget(data) {
        return;
    }
    let dir = Scratch::new();
    let blob = dir.write("blob", data);
    let dest = dir.path("layer.erofs");
    let Some(layer) = typed(
        convert_layer(&blob, &dest, &ConvertOptions::default()),
        &["INVALID_ARCHIVE", "UNSUPPORTED"],
    ) else {
        return;
    };
    assert_eq!(layer.blob_size, data.len() as u64);
    assert_eq!(layer.blob_digest, Digest::of_bytes(data));
    let on_disk = fs::metadata(&dest).map(|m| m.len()).ok();
    assert_eq!(on_disk, Some(layer.erofs_size), "reported image size");
    assert_eq!(layer.erofs_size % BLOCK_SIZE, 0);
    let image = match ImageReader::open(&dest) {
        Ok(image) => image,
        Err(e) => panic!("the reader refuses a converted layer: {e}"),
    };
    if let Err(e) = read_tree(&image) {
        panic!("the reader refuses a converted layer's tree: {e}");
    }
    let fsmeta = dir.path("fsmeta.erofs");
    let layers = [LayerImage {
        path: dest,
        diff_id: layer.diff_id,
    }];
    if let Err(e) = build_fsmeta(&layers, &fsmeta, [0; 16]) {
        panic!("fsmeta of a converted layer fails: {e}");
    }
    match ImageReader::open(&fsmeta).and_then(|f| f.devices()) {
        Ok(devices) => assert_eq!(devices.len(), 1, "fsmeta device table"),
        Err(e) => panic!("the reader refuses an fsmeta image: {e}"),
    }
}

/// The JSON documents of an archive: image index, image manifest, `oci-layout`, Docker's
/// `manifest.json` (with the member names and tags it holds) and image config, each parser on
/// the same bytes. A parsed manifest re-serialized (as legacy archives synthesize one) parses
/// to the same descriptors.
pub fn fuzz_oci_json(data: &[u8]) {
    const JSON_ERRORS: &[&str] = &["INVALID_ARCHIVE", "UNSUPPORTED"];
    if let Some(index) = typed(manifest::parse_index(data, "index.json"), JSON_ERRORS) {
        for d in &index.manifests {
            for value in d.annotations.values() {
                check_reference(value);
            }
        }
    }
    if let Some(manifest) = typed(manifest::parse_manifest(data, "manifest"), JSON_ERRORS) {
        fn blob(d: &Descriptor) -> (&str, u64, Digest) {
            (d.media_type.as_str(), d.size, d.digest.clone())
        }
        let config = blob(&manifest.config);
        let layers: Vec<_> = manifest.layers.iter().map(blob).collect();
        let layer_refs: Vec<BlobRef<'_>> = layers.iter().map(|(m, s, d)| (*m, *s, d)).collect();
        let bytes =
            docker::synthesize_docker_manifest((config.0, config.1, &config.2), &layer_refs)
                .unwrap_or_else(|e| panic!("serializing a parsed manifest: {e}"));
        let again = manifest::parse_manifest(&bytes, "synthesized")
            .unwrap_or_else(|e| panic!("a serialized manifest does not parse: {e}"));
        assert_eq!(blob(&again.config), config, "config descriptor round trip");
        let again: Vec<_> = again.layers.iter().map(blob).collect();
        assert_eq!(again, layers, "layer descriptors round trip");
    }
    typed(manifest::parse_layout_file(data), JSON_ERRORS);
    if let Some(entries) = typed(docker::parse_docker_manifest(data), JSON_ERRORS) {
        for entry in &entries {
            for name in std::iter::once(&entry.config).chain(&entry.layers) {
                check_member_name(name);
                if let Some(d) = digest_in_name(name) {
                    assert!(name.contains(d.hex()), "digest {d} is not in {name:?}");
                }
            }
            for tag in entry.repo_tags.iter().flatten() {
                check_reference(tag);
            }
        }
    }
    if let Some(config) = typed(ConfigInfo::parse(data), JSON_ERRORS) {
        assert!(!config.platform.os.is_empty() && !config.platform.architecture.is_empty());
    }
    // What inspect reads from the config blob: any JSON object describes (fields of the wrong
    // type left out), the key lists come sorted, and a date is one RFC 3339 accepts.
    if let Some(d) = typed(ConfigDescription::parse(data), JSON_ERRORS) {
        for keys in [&d.exposed_ports, &d.volumes].into_iter().flatten() {
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "unsorted keys {keys:?}"
            );
        }
        if let Ok(serde_json::Value::Object(top)) = serde_json::from_slice(data) {
            let created = top.get("created").and_then(serde_json::Value::as_str);
            assert_eq!(d.created, created.and_then(crate::oci::rfc3339_ms));
        } else {
            panic!("a description of a document that is no JSON object");
        }
    }
}

/// Strings from untrusted documents: image references (`RepoTags`, annotations, user input),
/// digests, and archive member names.
pub fn fuzz_names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_reference(text);
    check_member_name(text);
    if let Some(d) = typed(Digest::parse(text), &["INVALID_ARCHIVE", "UNSUPPORTED"]) {
        assert_eq!(d.to_string(), text, "a digest prints as parsed");
        assert!(is_sha256_hex(d.hex()));
    }
}

/// The EROFS reader on arbitrary bytes: superblock, device table, note, the whole tree as fsmeta
/// rebuilding reads it, and a walk over every inode the root reaches (directories, inline and
/// plain data, chunk indexes). Every failure must be `CORRUPT_CACHE`.
pub fn fuzz_erofs_reader(data: &[u8]) {
    const CORRUPT: &[&str] = &["CORRUPT_CACHE"];
    // Every mutation of a checksummed superblock would stop at the checksum: fix it, so the
    // fields behind it are fuzzed too.
    let mut data = data.to_vec();
    let sb = format::SUPER_OFFSET;
    if data.len() >= BLOCK_SIZE as usize
        && format::le_u32(&data, sb) == format::MAGIC
        && format::le_u32(&data, sb + 8) & format::COMPAT_SB_CHKSUM != 0
    {
        let sum = format::superblock_checksum(&data);
        data[sb + 4..sb + 8].copy_from_slice(&sum.to_le_bytes());
    }
    let dir = Scratch::new();
    let path = dir.write("image.erofs", &data);
    let Some(image) = typed(ImageReader::open(&path), CORRUPT) else {
        return;
    };
    typed(image.devices(), CORRUPT);
    typed(image.implicit_dirs(), CORRUPT);
    typed(read_tree(&image), CORRUPT);
    let root = u64::from(image.superblock().root_nid);
    let mut queue = VecDeque::from([root]);
    let mut seen = HashSet::from([root]);
    while let Some(nid) = queue.pop_front() {
        let Some(inode) = typed(image.inode(nid), CORRUPT) else {
            continue;
        };
        match inode.mode & mode::IFMT {
            mode::IFDIR => {
                for (_, child) in typed(image.read_dir(&inode), CORRUPT).unwrap_or_default() {
                    if seen.len() < MAX_WALK && seen.insert(child) {
                        queue.push_back(child);
                    }
                }
            }
            _ if inode.layout == format::DataLayout::ChunkBased => {
                typed(image.first_chunk(&inode), CORRUPT);
            }
            _ => {
                typed(image.data(&inode), CORRUPT);
            }
        }
    }
}

/// A tree generated from the bytes, written by the EROFS writer and read back by the reader,
/// must come back identical: metadata, names, xattrs, file block runs, symlink targets, device
/// numbers, implicit marks and hardlink groups. The writer may refuse a tree only as
/// `UNSUPPORTED` (something EROFS cannot store).
pub fn fuzz_erofs_round_trip(data: &[u8]) {
    let (tree, data_blocks) = generate_tree(data);
    let options = ImageOptions {
        data_blocks,
        ..ImageOptions::default()
    };
    let Some(meta) = typed(write_metadata(&tree, &options), &["UNSUPPORTED"]) else {
        return;
    };
    let mut bytes = meta.block0;
    bytes.resize(((1 + data_blocks) * BLOCK_SIZE) as usize, 0);
    bytes.extend_from_slice(&meta.tail);
    assert_eq!(bytes.len() as u64, meta.blocks * BLOCK_SIZE, "image size");
    let dir = Scratch::new();
    let path = dir.write("image.erofs", &bytes);
    let back = ImageReader::open(&path)
        .and_then(|image| read_tree(&image))
        .unwrap_or_else(|e| panic!("the reader refuses what the writer wrote: {e}"));
    assert_eq!(flatten(&back), flatten(&tree), "tree round trip");
}

/// A load (`docker save` or OCI layout tar, plain or compressed) into a fresh cache, as
/// `Cache::load` does, for the host platform: once from the file (a plain tar is read in place,
/// a compressed one front to back) and once from a stream of its bytes (read front to back,
/// spooling what comes before the metadata). Bad archives must fail with a typed error, and both
/// ways must agree on whether the archive loads; either way the cache's `tmp/` folder is left
/// empty.
pub fn fuzz_archive(data: &[u8]) {
    const ARCHIVE_ERRORS: &[&str] = &[
        "INVALID_ARCHIVE",
        "UNSUPPORTED",
        "DIGEST_MISMATCH",
        "INVALID_REFERENCE",
        "PLATFORM_NOT_FOUND",
        "LIMIT_EXCEEDED",
    ];
    if !within_budget(data) {
        return;
    }
    let dir = Scratch::new();
    let source = dir.write("archive.tar", data);
    let options = LoadOptions {
        tag: Some("fuzz.example/image:1".into()),
        max_uncompressed_bytes: Some(EXPANSION_BUDGET),
        ..LoadOptions::default()
    };
    let load = |name: &str, stream: bool| {
        let root = dir.path(name);
        let cache = Cache::open(CacheOptions {
            root: Some(root.clone()),
            backend: Some(Backend::Local),
        })
        .unwrap_or_else(|e| panic!("opening a scratch cache: {e}"));
        let result = if stream {
            cache.load_stream(Box::new(io::Cursor::new(data.to_vec())), "fuzz", &options)
        } else {
            cache.load(&source, &options)
        };
        let loaded = match result {
            Ok(_) => true,
            Err(e) => {
                typed::<()>(Err(e), ARCHIVE_ERRORS);
                false
            }
        };
        let left: Vec<_> = fs::read_dir(root.join("tmp"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "a load leaves {left:?} in tmp/");
        loaded
    };
    let from_file = load("file", false);
    let from_stream = load("stream", true);
    assert_eq!(
        from_file, from_stream,
        "a stream and a file load differently"
    );
}

/// `Some(value)`, or `None` for an error whose code is one of `expected`; panics on any other.
fn typed<T>(result: Result<T>, expected: &[&str]) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) if expected.contains(&e.code()) => None,
        Err(e) => panic!(
            "unexpected error code {} (expected {expected:?}): {e}",
            e.code()
        ),
    }
}

fn check_reference(text: &str) {
    let Some(r) = typed(Reference::parse(text), &["INVALID_REFERENCE"]) else {
        return;
    };
    let canonical = r.canonical();
    let familiar = r.familiar();
    for form in [&canonical, &familiar] {
        match Reference::parse(form) {
            Ok(again) => assert_eq!(again, r, "{text:?} re-parsed from {form:?}"),
            Err(e) => panic!("{text:?} parses but its form {form:?} does not: {e}"),
        }
    }
    assert_eq!(familiar_from_canonical(&canonical), familiar, "{text:?}");
    if let Err(e) = r.with_tag("latest") {
        panic!("{text:?} parses but cannot take the tag latest: {e}");
    }
}

fn check_member_name(text: &str) {
    let Some(name) = typed(members::normalize_name(text), &["INVALID_ARCHIVE"]) else {
        return;
    };
    assert_eq!(
        members::normalize_name(&name).ok().as_deref(),
        Some(name.as_str()),
        "normalizing {text:?} is not idempotent"
    );
    assert!(
        !name.starts_with('/')
            && !name
                .split('/')
                .any(|p| p == ".." || p == "." || p.is_empty())
            || name.is_empty(),
        "{text:?} normalizes to {name:?}"
    );
}

/// Whether the stream a layer or archive blob decodes to, and the sizes its tar entries
/// declare, stay within [`EXPANSION_BUDGET`].
fn within_budget(data: &[u8]) -> bool {
    let Ok(kind) = Compression::sniff(data) else {
        return true; // refused before anything is written
    };
    let decoded: Box<dyn Read + '_> = match kind {
        Compression::None => Box::new(data),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Compression::Zstd => match zstd::stream::read::Decoder::new(data) {
            Ok(d) => Box::new(d),
            Err(_) => return true,
        },
    };
    let mut limited = decoded.take(EXPANSION_BUDGET + 1);
    let mut tar = TarReader::new(BufReader::new(&mut limited));
    let mut declared = 0u64;
    while let Ok(Some(entry)) = tar.next_entry() {
        declared = declared.saturating_add(entry.size);
        if declared > EXPANSION_BUDGET {
            return false;
        }
    }
    drop(tar);
    let rest = io::copy(&mut limited, &mut io::sink()).unwrap_or(0);
    limited.limit() > 0 || rest == 0
}

/// One record of what the tar reader returned.
#[derive(Debug, PartialEq, Eq)]
enum TarEvent {
    Entry(String, Vec<u8>),
    End,
    Failed(String),
}

fn read_tar<R: Read>(input: R) -> Vec<TarEvent> {
    let mut tar = TarReader::new(BufReader::new(input));
    let mut events = Vec::new();
    loop {
        let entry = match tar.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                events.push(TarEvent::End);
                return events;
            }
            Err(e) => {
                events.push(TarEvent::Failed(read_error(&e)));
                return events;
            }
        };
        check_entry(&entry);
        let mut body = Vec::new();
        let segments = match &entry.sparse {
            Some(map) => map.iter().map(|(_, len)| Some(*len)).collect(),
            None => vec![None],
        };
        let mut failed = None;
        for want in segments {
            if let Err(e) = read_data(&mut tar, want, &mut body) {
                failed = Some(e);
                break;
            }
        }
        events.push(TarEvent::Entry(format!("{entry:?}"), body));
        if let Some(e) = failed {
            events.push(TarEvent::Failed(format!("{:?}", e.kind())));
            return events;
        }
    }
}

/// Reads `want` bytes of the current entry's data (all of it for `None`) into `out`.
fn read_data<R: Read>(
    tar: &mut TarReader<R>,
    want: Option<u64>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut left = want.unwrap_or(u64::MAX);
    while left > 0 {
        let step = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = tar.read_data(&mut buf[..step])?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        left -= n as u64;
    }
    if want.is_some() && left > 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// What holds for every entry the tar reader returns.
fn check_entry(entry: &Entry) {
    // An entry of a type the reader does not know keeps its data (an archive skips it, a layer
    // refuses it); every other kind but a file has none.
    if !matches!(entry.kind, Kind::File | Kind::Other(_)) {
        assert_eq!(entry.size, 0, "a {:?} entry with data", entry.kind);
    }
    if entry.kind != Kind::File {
        assert!(entry.sparse.is_none());
    }
    if let Some(map) = &entry.sparse {
        let mut end = 0u64;
        for &(offset, len) in map {
            assert!(offset >= end, "sparse segments out of order: {map:?}");
            end = offset + len;
        }
        assert!(end <= entry.size, "sparse segments past the file size");
    }
}

fn read_error(e: &ReadError) -> String {
    match e {
        ReadError::Io(e) => format!("io {:?}", e.kind()),
        ReadError::Other(e) => {
            assert!(
                matches!(e, Error::InvalidArchive { .. } | Error::Unsupported { .. }),
                "tar reader error {} ({e})",
                e.code()
            );
            e.code().to_owned()
        }
    }
}

/// A stream that returns 1 to 7 bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    reads: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let n = (1 + self.reads % 7).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A folder for one call's files, removed on drop.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new().prefix("ocicache-fuzz-").clone();
        let dir = if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        };
        Scratch(dir.unwrap_or_else(|e| panic!("creating a scratch folder: {e}")))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        if let Err(e) = fs::write(&path, bytes) {
            panic!("writing {}: {e}", path.display());
        }
        path
    }
}

/// Reads generator choices from fuzz input; zeros once it runs out.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A valid directory entry name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`.
    fn name(&mut self) -> Vec<u8> {
        let len = usize::from(self.byte() % 24) + 1;
        let len = if self.byte() == 0xff { 255 } else { len };
        let mut name: Vec<u8> = self
            .bytes(len)
            .into_iter()
            .map(|b| if b == b'/' || b == 0 { b'_' } else { b })
            .collect();
        if name.is_empty() || name == b"." || name == b".." {
            name.push(b'n');
        }
        name
    }
}

/// A tree from generator choices, and the data blocks its files use (blocks 1 onwards, as the
/// layer converter lays them out).
fn generate_tree(data: &[u8]) -> (Tree, u64) {
    const PREFIXES: [&[u8]; 5] = [
        b"user.",
        b"trusted.",
        b"security.",
        b"system.posix_acl_access",
        b"unknown.",
    ];
    let mut c = Choices(data);
    let mut tree = Tree {
        nodes: vec![Node::dir(0o755)],
    };
    let mut dirs: Vec<NodeId> = vec![ROOT];
    let mut linkable: Vec<NodeId> = Vec::new();
    let mut next_block = 1u64;
    while !c.0.is_empty() && tree.nodes.len() < MAX_TREE_NODES {
        let op = c.byte();
        let parent = dirs[usize::from(c.byte()) % dirs.len()];
        let name = c.name();
        if child_of(&tree, parent, &name).is_some() {
            continue;
        }
        if op % 8 == 7 && !linkable.is_empty() {
            let target = linkable[usize::from(c.byte()) % linkable.len()];
            set_child(&mut tree, parent, name, target);
            continue;
        }
        let content = match op % 8 {
            0 | 1 => Content::Dir(BTreeMap::new()),
            2 | 3 => {
                let size = u64::from(c.u32() % (256 * 1024));
                let blkaddr = if size > 0 { next_block } else { 0 };
                next_block += size.div_ceil(BLOCK_SIZE);
                Content::File { size, blkaddr }
            }
            4 => {
                let len = usize::from(c.byte()) * 16 + usize::from(c.byte() % 16) + 1;
                let mut target = c.bytes(len.min(4095));
                if target.is_empty() {
                    target.push(b't');
                }
                Content::Symlink(target)
            }
            5 => Content::Device(c.u32(), c.u32()),
            _ => Content::Special,
        };
        let type_bits = match &content {
            Content::Dir(_) => mode::IFDIR,
            Content::File { .. } | Content::DeviceFile { .. } | Content::Chunked { .. } => {
                mode::IFREG
            }
            Content::Symlink(_) => mode::IFLNK,
            Content::Device(..) if op & 0x80 != 0 => mode::IFBLK,
            Content::Device(..) => mode::IFCHR,
            Content::Special if op & 0x80 != 0 => mode::IFSOCK,
            Content::Special => mode::IFIFO,
        };
        let flags = c.byte();
        let mut node = Node::dir(0);
        node.mode = type_bits | (u32::from(u16::from_le_bytes([c.byte(), c.byte()])) & mode::PERMS);
        node.uid = if flags & 1 != 0 { c.u32() } else { 0 };
        node.gid = if flags & 2 != 0 { c.u32() } else { 0 };
        if flags & 4 != 0 {
            node.mtime = c.u64() as i64;
            node.mtime_nsec = c.u32();
        }
        for _ in 0..(flags >> 5) {
            let mut xattr = PREFIXES[usize::from(c.byte()) % PREFIXES.len()].to_vec();
            let suffix_len = usize::from(c.byte() % 16);
            xattr.extend(c.bytes(suffix_len));
            let value_len = usize::from(c.byte()) * usize::from(c.byte() % 4 + 1);
            node.xattrs.insert(xattr, c.bytes(value_len));
        }
        node.implicit = matches!(content, Content::Dir(_)) && flags & 8 != 0;
        let is_dir = matches!(content, Content::Dir(_));
        node.content = content;
        tree.nodes.push(node);
        let id = tree.nodes.len() - 1;
        set_child(&mut tree, parent, name, id);
        if is_dir {
            dirs.push(id);
        } else {
            linkable.push(id);
        }
    }
    (tree, next_block - 1)
}

fn child_of(tree: &Tree, dir: NodeId, name: &[u8]) -> Option<NodeId> {
    match &tree.nodes[dir].content {
        Content::Dir(children) => children.get(name).copied(),
        _ => None,
    }
}

fn set_child(tree: &mut Tree, dir: NodeId, name: Vec<u8>, id: NodeId) {
    if let Content::Dir(children) = &mut tree.nodes[dir].content {
        children.insert(name, id);
    }
}

/// A tree as comparable data: each path with its node (directories by their names) and the
/// first path of its hardlink group.
fn flatten(tree: &Tree) -> BTreeMap<Vec<u8>, (String, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut first_path: HashMap<NodeId, Vec<u8>> = HashMap::new();
    let mut stack = vec![(Vec::new(), ROOT)];
    let mut paths = Vec::new();
    while let Some((path, id)) = stack.pop() {
        if let Content::Dir(children) = &tree.nodes[id].content {
            for (name, &child) in children {
                let mut p = path.clone();
                p.push(b'/');
                p.extend_from_slice(name);
                stack.push((p, child));
            }
        }
        paths.push((path, id));
    }
    paths.sort();
    for (path, id) in paths {
        let n = &tree.nodes[id];
        let content = match &n.content {
            Content::Dir(children) => format!("dir {:?}", children.keys().collect::<Vec<_>>()),
            other => format!("{other:?}"),
        };
        let desc = format!(
            "{:o} {} {} {}.{} {:?} {content} implicit={}",
            n.mode,
            n.uid,
            n.gid,
            n.mtime,
            n.mtime_nsec,
            n.xattrs,
            n.implicit && n.is_dir()
        );
        let group = first_path.entry(id).or_insert_with(|| path.clone()).clone();
        out.insert(path, (desc, group));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target's name (its folder under `fuzz/corpus/`) and entry point.
    type Target = (&'static str, fn(&[u8]));

    /// Every target's checked-in corpus, seeds and fixed findings.
    #[test]
    fn corpus_replays() {
        let targets: &[Target] = &[
            ("tar", fuzz_tar),
            ("layer", fuzz_layer),
            ("oci_json", fuzz_oci_json),
            ("names", fuzz_names),
            ("erofs_reader", fuzz_erofs_reader),
            ("erofs_round_trip", fuzz_erofs_round_trip),
            ("archive", fuzz_archive),
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        for (target, run) in targets {
            let dir = root.join(target);
            let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            inputs.sort();
            assert!(!inputs.is_empty(), "{target} has no corpus");
            for input in inputs {
                let bytes = fs::read(&input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
                run(&bytes);
            }
        }
    }

    #[test]
    fn generated_trees_round_trip() {
        for seed in 0u32..64 {
            let bytes: Vec<u8> = (0..2048u32)
                .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97) >> 13) as u8)
                .collect();
            fuzz_erofs_round_trip(&bytes);
        }
    }
}
