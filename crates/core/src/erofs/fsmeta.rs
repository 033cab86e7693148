//! fsmeta: one image's merged root filesystem as a metadata-only EROFS whose regular files
//! point, chunk by chunk, into the layer images.
//!
//! The merge follows OCI layer semantics bottom to top: a later layer's entry replaces an
//! earlier one; a whiteout (a character device 0:0, as the layer writer stores `.wh.` names)
//! deletes the path below it; a directory marked `trusted.overlay.opaque=y` hides everything
//! below it; a directory's metadata comes from the topmost layer that lists it (a directory a
//! layer only creates implicitly keeps the metadata from below); hardlink groups stay groups.
//! Whiteouts and opaque markers do not appear in the result.
//!
//! The image lists the layers as extra devices in layer order (device id 1 = bottom layer), each
//! slot with its block count and `mapped_blkaddr` (where the layer starts when fsmeta and the
//! layers are concatenated, as the VMDK does). It is built from the layer images alone, and the
//! same layers give the same bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::format::{BLOCK_SIZE, DeviceSlot, IMPLICIT_DIR_PERMS, OPAQUE_XATTR, mode};
use super::reader::{ImageReader, read_tree};
use super::writer::{self, Content, ImageOptions, Node, NodeId, ROOT, Tree};
use crate::error::{Error, IoContext, Result};
use crate::oci::Digest;

/// Most layers an image may have: fsmeta names each layer by a 16-bit device id (device 0 is
/// fsmeta itself). `load` refuses larger images as soon as it has read the manifest, before
/// staging any layer.
pub const MAX_LAYERS: usize = u16::MAX as usize;

/// One layer image, bottom to top.
#[derive(Debug, Clone)]
pub struct LayerImage {
    /// The layer's EROFS image.
    pub path: PathBuf,
    /// Its diff_id (the device slot's tag).
    pub diff_id: Digest,
}

/// A built fsmeta image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fsmeta {
    /// Size of the fsmeta image in bytes.
    pub size: u64,
    /// Its content hash ([`crate::hash`]).
    pub hash: String,
    /// Size of each layer image in bytes, bottom to top.
    pub layer_sizes: Vec<u64>,
}

/// Builds the fsmeta image of `layers` at `dest` (created or truncated, fsynced).
///
/// Errors: [`Error::CorruptCache`] when a layer image is unreadable or not one ocicache wrote
/// (regular files must be block-aligned): every image the layer converter accepts reads back;
/// [`Error::Unsupported`] beyond the format's limits (more than [`MAX_LAYERS`] layers, blocks
/// beyond 2^32).
pub fn build_fsmeta(layers: &[LayerImage], dest: &Path, uuid: [u8; 16]) -> Result<Fsmeta> {
    let mut merged = empty_root();
    let mut layer_sizes = Vec::with_capacity(layers.len());
    // One layer's tree in memory at a time.
    for (i, layer) in layers.iter().enumerate() {
        let image = ImageReader::open(&layer.path)?;
        if image.len() % BLOCK_SIZE != 0 {
            return Err(Error::CorruptCache {
                reason: format!("{} is not a whole number of blocks", layer.path.display()),
            });
        }
        layer_sizes.push(image.len());
        merge_into(&mut merged, &read_tree(&image)?, i)?;
    }
    let slots = |meta_blocks: u64| -> Result<Vec<DeviceSlot>> {
        let mut at = meta_blocks;
        let mut out = Vec::with_capacity(layers.len());
        for (layer, size) in layers.iter().zip(&layer_sizes) {
            let blocks = size / BLOCK_SIZE;
            out.push(DeviceSlot {
                tag: layer.diff_id.hex().as_bytes().to_vec(),
                blocks: u32::try_from(blocks).map_err(too_big)?,
                mapped_blkaddr: u32::try_from(at).map_err(too_big)?,
            });
            at += blocks;
        }
        Ok(out)
    };
    // Lay out once to learn fsmeta's own size (the device table does not change it), then
    // again with the real mapped addresses.
    let mut options = ImageOptions {
        data_blocks: 0,
        devices: slots(0)?,
        uuid,
    };
    let first = writer::write_metadata(&merged, &options)?;
    options.devices = slots(first.blocks)?;
    let meta = writer::write_metadata(&merged, &options)?;
    let mut file = File::create(dest).at(dest)?;
    file.write_all(&meta.block0).at(dest)?;
    file.write_all(&meta.tail).at(dest)?;
    file.sync_all().at(dest)?;
    // Hashed in the order the content hash takes a file: what follows block 0, then block 0.
    let mut hash = crate::hash::ContentHasher::new();
    hash.update(&meta.tail);
    hash.update(&meta.block0);
    Ok(Fsmeta {
        size: meta.blocks * BLOCK_SIZE,
        hash: hash.finish(),
        layer_sizes,
    })
}

/// The merged tree of layer trees (bottom to top, as [`read_tree`] reads layer images): the
/// OCI merge of the module docs, each regular file pointing at its data on the device of the
/// layer it came from (device id `i + 1` for `layers[i]`).
///
/// Errors: [`Error::Unsupported`] beyond [`MAX_LAYERS`] layers.
pub fn merge_layers(layers: &[Tree]) -> Result<Tree> {
    let mut merged = empty_root();
    for (i, tree) in layers.iter().enumerate() {
        merge_into(&mut merged, tree, i)?;
    }
    Ok(merged)
}

/// The merge before its first layer: an empty root.
fn empty_root() -> Tree {
    Tree {
        nodes: vec![Node::dir(IMPLICIT_DIR_PERMS)],
    }
}

/// Merges `layer`, the layer at `position` (0 = bottom), into `merged`.
fn merge_into(merged: &mut Tree, layer: &Tree, position: usize) -> Result<()> {
    let device = u16::try_from(position + 1).map_err(|_| Error::Unsupported {
        what: format!("more than {MAX_LAYERS} layers"),
    })?;
    Merge {
        out: merged,
        layer,
        device,
        mapped: HashMap::new(),
    }
    .dir(ROOT, ROOT);
    Ok(())
}

fn too_big(_: std::num::TryFromIntError) -> Error {
    Error::Unsupported {
        what: "an image of 2^32 blocks or more".into(),
    }
}

/// Whether a layer node is a whiteout (a character device 0:0).
fn is_whiteout(node: &Node) -> bool {
    node.mode & mode::IFMT == mode::IFCHR && node.content == Content::Device(0, 0)
}

/// Merges one layer's tree into the result.
struct Merge<'a> {
    out: &'a mut Tree,
    layer: &'a Tree,
    device: u16,
    /// Layer node to result node, so hardlinked names stay one inode.
    mapped: HashMap<NodeId, NodeId>,
}

impl Merge<'_> {
    /// Merges the layer's directory `layer_dir` into `out_dir`, and everything below it. Without
    /// recursion: a layer may nest [`super::format::MAX_PATH_DEPTH`] directories, and loads run
    /// on threads with small stacks. Directories are independent of each other, so the order in
    /// which they are merged does not change the result.
    fn dir(&mut self, out_dir: NodeId, layer_dir: NodeId) {
        let mut pending = vec![(out_dir, layer_dir)];
        while let Some((out_dir, layer_dir)) = pending.pop() {
            self.one_dir(out_dir, layer_dir, &mut pending);
        }
    }

    /// Merges one directory's own metadata and entries; its subdirectories go to `pending`.
    fn one_dir(&mut self, out_dir: NodeId, layer_dir: NodeId, pending: &mut Vec<(NodeId, NodeId)>) {
        let ldir = &self.layer.nodes[layer_dir];
        let (opaque_name, opaque_value) = OPAQUE_XATTR;
        if ldir.xattrs.get(opaque_name).map(Vec::as_slice) == Some(opaque_value)
            && let Content::Dir(children) = &mut self.out.nodes[out_dir].content
        {
            children.clear();
        }
        if !ldir.implicit {
            let mut xattrs = ldir.xattrs.clone();
            xattrs.remove(opaque_name);
            let o = &mut self.out.nodes[out_dir];
            o.mode = ldir.mode;
            o.uid = ldir.uid;
            o.gid = ldir.gid;
            o.mtime = ldir.mtime;
            o.mtime_nsec = ldir.mtime_nsec;
            o.xattrs = xattrs;
        }
        let Content::Dir(entries) = &ldir.content else {
            return;
        };
        for (name, &lchild) in entries {
            let lnode = &self.layer.nodes[lchild];
            if is_whiteout(lnode) {
                self.remove(out_dir, name);
                continue;
            }
            if lnode.is_dir() {
                let target = match self.child(out_dir, name) {
                    Some(id) if self.out.nodes[id].is_dir() => id,
                    _ => {
                        let mut fresh = lnode.clone();
                        fresh.content = Content::Dir(Default::default());
                        fresh.implicit = false;
                        fresh.xattrs.remove(opaque_name);
                        let id = self.push(fresh);
                        self.insert(out_dir, name.clone(), id);
                        id
                    }
                };
                pending.push((target, lchild));
            } else {
                let id = match self.mapped.get(&lchild) {
                    Some(id) => *id,
                    None => {
                        let mut node = lnode.clone();
                        match &mut node.content {
                            Content::File { size, blkaddr } if *size > 0 => {
                                node.content = Content::DeviceFile {
                                    size: *size,
                                    device: self.device,
                                    blkaddr: *blkaddr,
                                };
                            }
                            // A sparse file keeps its chunks, now on the layer's device; its
                            // holes stay holes.
                            Content::Chunked { device, .. } => *device = self.device,
                            _ => {}
                        }
                        let id = self.push(node);
                        self.mapped.insert(lchild, id);
                        id
                    }
                };
                self.insert(out_dir, name.clone(), id);
            }
        }
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.out.nodes.push(node);
        self.out.nodes.len() - 1
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &self.out.nodes[dir].content {
            Content::Dir(c) => c.get(name).copied(),
            _ => None,
        }
    }

    fn insert(&mut self, dir: NodeId, name: Vec<u8>, id: NodeId) {
        if let Content::Dir(c) = &mut self.out.nodes[dir].content {
            c.insert(name, id);
        }
    }

    fn remove(&mut self, dir: NodeId, name: &[u8]) {
        if let Content::Dir(c) = &mut self.out.nodes[dir].content {
            c.remove(name);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A layer tree built from paths: `/` separated, a trailing `/` for a directory.
    struct Layer(Tree);

    impl Layer {
        fn new() -> Self {
            Layer(Tree {
                nodes: vec![Node::implicit_dir()],
            })
        }

        fn at(&mut self, path: &str, node: Node) -> NodeId {
            let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
            let mut at = ROOT;
            for (i, name) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                let found = match &self.0.nodes[at].content {
                    Content::Dir(c) => c.get(name.as_bytes()).copied(),
                    _ => None,
                };
                at = match found {
                    Some(id) if !last => id,
                    _ => {
                        let n = if last {
                            node.clone()
                        } else {
                            Node::implicit_dir()
                        };
                        self.0.nodes.push(n);
                        let id = self.0.nodes.len() - 1;
                        if let Content::Dir(c) = &mut self.0.nodes[at].content {
                            c.insert(name.as_bytes().to_vec(), id);
                        }
                        id
                    }
                };
            }
            at
        }

        fn link(&mut self, path: &str, target: NodeId) {
            let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
            let mut parent = ROOT;
            for name in dir.split('/').filter(|n| !n.is_empty()) {
                parent = match &self.0.nodes[parent].content {
                    Content::Dir(c) => c[name.as_bytes()],
                    _ => unreachable!("{dir} is a folder of the layer"),
                };
            }
            if let Content::Dir(c) = &mut self.0.nodes[parent].content {
                c.insert(name.as_bytes().to_vec(), target);
            }
        }
    }

    fn file(blkaddr: u64) -> Node {
        Node {
            mode: mode::IFREG | 0o644,
            content: Content::File { size: 100, blkaddr },
            ..Node::dir(0)
        }
    }

    fn dir(perms: u32, uid: u32) -> Node {
        Node {
            uid,
            ..Node::dir(perms)
        }
    }

    fn whiteout() -> Node {
        Node {
            mode: mode::IFCHR,
            content: Content::Device(0, 0),
            ..Node::dir(0)
        }
    }

    fn opaque(perms: u32) -> Node {
        let (name, value) = OPAQUE_XATTR;
        Node {
            xattrs: [(name.to_vec(), value.to_vec())].into_iter().collect(),
            ..Node::dir(perms)
        }
    }

    /// The merged tree as path -> (mode, uid, content summary), and the node ids of names.
    fn listing(tree: &Tree) -> BTreeMap<String, (u32, u32, String)> {
        let mut out = BTreeMap::new();
        let mut stack = vec![(String::new(), ROOT)];
        while let Some((path, id)) = stack.pop() {
            let n = &tree.nodes[id];
            let summary = match &n.content {
                Content::Dir(c) => {
                    for (name, child) in c {
                        stack.push((format!("{path}/{}", String::from_utf8_lossy(name)), *child));
                    }
                    assert!(
                        !n.xattrs.contains_key(OPAQUE_XATTR.0),
                        "no opaque marker in {path}"
                    );
                    "dir".to_owned()
                }
                Content::DeviceFile {
                    device, blkaddr, ..
                } => format!("dev{device}@{blkaddr}"),
                other => format!("{other:?}"),
            };
            out.insert(path, (n.mode & mode::PERMS, n.uid, summary));
        }
        out
    }

    #[test]
    fn the_merge_follows_oci_layer_semantics() {
        let mut bottom = Layer::new();
        bottom.at("etc/", dir(0o750, 7));
        bottom.at("etc/passwd", file(1));
        bottom.at("etc/gone", file(2));
        bottom.at("opt/", dir(0o755, 0));
        bottom.at("opt/old", file(3));
        bottom.at("var/lib/x", file(4));
        bottom.at("replaced/", dir(0o700, 0));
        bottom.at("replaced/inside", file(5));
        let mut top = Layer::new();
        // `etc` only implicitly: its metadata stays the bottom layer's.
        top.at("etc/new", file(1));
        top.at("etc/gone", whiteout());
        top.at("opt/", opaque(0o711));
        top.at("opt/fresh", file(2));
        let hard = top.at("bin/tool", file(3));
        top.link("bin/alias", hard);
        top.at("replaced", file(4));
        let merged = merge_layers(&[bottom.0, top.0]).unwrap();
        let got = listing(&merged);
        let want: BTreeMap<String, (u32, u32, String)> = [
            ("", (0o755, 0, "dir")),
            ("/etc", (0o750, 7, "dir")),
            ("/etc/passwd", (0o644, 0, "dev1@1")),
            ("/etc/new", (0o644, 0, "dev2@1")),
            ("/opt", (0o711, 0, "dir")),
            ("/opt/fresh", (0o644, 0, "dev2@2")),
            ("/var", (0o755, 0, "dir")),
            ("/var/lib", (0o755, 0, "dir")),
            ("/var/lib/x", (0o644, 0, "dev1@4")),
            ("/bin", (0o755, 0, "dir")),
            ("/bin/tool", (0o644, 0, "dev2@3")),
            ("/bin/alias", (0o644, 0, "dev2@3")),
            ("/replaced", (0o644, 0, "dev2@4")),
        ]
        .into_iter()
        .map(|(p, (m, u, c))| (p.to_owned(), (m, u, c.to_owned())))
        .collect();
        assert_eq!(got, want);
        // The hardlinked names are one node.
        let bin = match &merged.nodes[ROOT].content {
            Content::Dir(c) => c[b"bin".as_slice()],
            _ => unreachable!(),
        };
        let Content::Dir(names) = &merged.nodes[bin].content else {
            unreachable!()
        };
        assert_eq!(names[b"tool".as_slice()], names[b"alias".as_slice()]);
    }

    #[test]
    fn a_sparse_file_keeps_its_holes_on_its_layer_s_device() {
        let mut layer = Layer::new();
        layer.at(
            "disk.img",
            Node {
                mode: mode::IFREG | 0o600,
                content: Content::Chunked {
                    size: 3 << 12,
                    chunk_bits: 12,
                    device: 0,
                    chunks: vec![Some(1), None, Some(2)],
                },
                ..Node::dir(0)
            },
        );
        let merged = merge_layers(&[Layer::new().0, layer.0]).unwrap();
        let listed = listing(&merged);
        assert!(
            listed["/disk.img"].2.contains("device: 2") && listed["/disk.img"].2.contains("None"),
            "{listed:?}"
        );
    }
}
