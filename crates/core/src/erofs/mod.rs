//! EROFS images: the on-disk format ([`format`]), the metadata writer ([`writer`]), a reader
//! ([`reader`]), and the merged per-image metadata image ([`fsmeta`]). Turning a layer's tar
//! into an image is [`crate::layer`]'s, above this module.
//!
//! A layer image is a plain, uncompressed EROFS with 4 KiB blocks: file data first (block
//! aligned, so that fsmeta images can point chunks at it; sparse files as chunks whose holes
//! take no block), then shared xattrs, inodes with inline directory and symlink tails, and the
//! remaining directory blocks. The rules that map a tar onto it are in `docs/cache-layout.md`.

pub mod format;
pub mod fsmeta;
pub mod reader;
pub mod writer;

pub use format::MAX_PATH_DEPTH;
pub use fsmeta::{Fsmeta, LayerImage, MAX_LAYERS, build_fsmeta};

use crate::oci::Digest;

/// Bytes of the volume uuid (`erofs_super_block.uuid`).
const UUID_BYTES: usize = 16;

/// The volume uuid of the image named by `digest` (a layer's `diff_id`, a manifest's digest for
/// its fsmeta): its first 16 bytes, so the same content always gets the same uuid and the
/// same image bytes.
pub fn volume_uuid(digest: &Digest) -> [u8; UUID_BYTES] {
    digest.leading_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
#[allow(
    clippy::type_complexity,
    reason = "generated test data as plain tuples"
)]
mod round_trip {
    //! Property test: a random tree written by [`writer`] reads back identically through
    //! [`reader`] (metadata, names, xattrs, file block runs, chunk maps with holes, implicit
    //! marks, hardlinks).
    use std::collections::BTreeMap;
    use std::io::Write;

    use proptest::prelude::*;

    use super::format::{BLOCK_SIZE, IMPLICIT_DIR_PERMS, mode};
    use super::reader::{ImageReader, read_tree};
    use super::writer::{Content, ImageOptions, Node, Tree, write_metadata};

    #[derive(Debug, Clone)]
    enum Leaf {
        File(u64),
        /// A chunked file: size, chunk bits above the block, and which chunks hold data.
        Sparse(u64, u8, Vec<bool>),
        Symlink(Vec<u8>),
        Device(u32, u32),
        Fifo,
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop::num::u8::ANY.prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
            1..40,
        )
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
    }

    fn leaf() -> impl Strategy<Value = Leaf> {
        prop_oneof![
            (0u64..20_000).prop_map(Leaf::File),
            (
                1u64..200_000,
                0u8..3,
                prop::collection::vec(any::<bool>(), 64)
            )
                .prop_map(|(size, bits, mapped)| Leaf::Sparse(size, bits, mapped)),
            prop::collection::vec(1u8..=255, 1..300).prop_map(Leaf::Symlink),
            (0u32..4096, 0u32..1_000_000).prop_map(|(a, b)| Leaf::Device(a, b)),
            Just(Leaf::Fifo),
        ]
    }

    fn meta() -> impl Strategy<Value = (u32, u32, u32, i64, u32, Vec<(u8, Vec<u8>)>)> {
        (
            0u32..0o7777,
            prop_oneof![Just(0u32), 0u32..70_000, Just(u32::MAX - 1)],
            prop_oneof![Just(0u32), 0u32..70_000],
            prop_oneof![Just(1_700_000_000i64), -5_000_000_000i64..5_000_000_000],
            prop_oneof![Just(0u32), 0u32..1_000_000_000],
            prop::collection::vec(
                (0u8..3, prop::collection::vec(prop::num::u8::ANY, 0..40)),
                0..4,
            ),
        )
    }

    prop_compose! {
        fn tree()(entries in prop::collection::vec(
            (prop::collection::vec(name(), 1..4), leaf(), meta(), any::<bool>()), 1..60)) -> Vec<(Vec<Vec<u8>>, Leaf, (u32, u32, u32, i64, u32, Vec<(u8, Vec<u8>)>), bool)> {
            entries
        }
    }

    fn build(
        entries: &[(
            Vec<Vec<u8>>,
            Leaf,
            (u32, u32, u32, i64, u32, Vec<(u8, Vec<u8>)>),
            bool,
        )],
    ) -> (Tree, u64) {
        let mut tree = Tree {
            nodes: vec![Node::dir(IMPLICIT_DIR_PERMS)],
        };
        let mut next_block = 1u64;
        for (path, leaf, (perms, uid, gid, mtime, nsec, xattrs), implicit) in entries {
            let mut at = 0;
            for (i, comp) in path.iter().enumerate() {
                let last = i + 1 == path.len();
                let Content::Dir(children) = &tree.nodes[at].content else {
                    break;
                };
                if let Some(&c) = children.get(comp) {
                    if tree.nodes[c].is_dir() && !last {
                        at = c;
                        continue;
                    }
                    break; // name taken: skip this entry
                }
                let mut node = Node::dir(*perms);
                node.uid = *uid;
                node.gid = *gid;
                node.mtime = *mtime;
                node.mtime_nsec = *nsec;
                node.implicit = !last && *implicit;
                let prefixes: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];
                for (p, v) in xattrs {
                    let mut n = prefixes[usize::from(*p)].to_vec();
                    n.extend_from_slice(b"k");
                    node.xattrs.insert(n, v.clone());
                }
                if last {
                    let (bits, content) = match leaf {
                        Leaf::File(size) => {
                            let c = Content::File {
                                size: *size,
                                blkaddr: if *size > 0 { next_block } else { 0 },
                            };
                            next_block += size.div_ceil(BLOCK_SIZE);
                            (mode::IFREG, c)
                        }
                        Leaf::Sparse(size, extra, mapped) => {
                            let bits = super::format::BLOCK_BITS + extra;
                            let count = size.div_ceil(1 << bits) as usize;
                            let chunks = (0..count)
                                .map(|i| {
                                    mapped.get(i).copied().unwrap_or(false).then(|| {
                                        let at = next_block;
                                        next_block += 1 << extra;
                                        at
                                    })
                                })
                                .collect();
                            let c = Content::Chunked {
                                size: *size,
                                chunk_bits: bits,
                                device: 0,
                                chunks,
                            };
                            (mode::IFREG, c)
                        }
                        Leaf::Symlink(t) => (mode::IFLNK, Content::Symlink(t.clone())),
                        Leaf::Device(a, b) => (mode::IFCHR, Content::Device(*a, *b)),
                        Leaf::Fifo => (mode::IFIFO, Content::Special),
                    };
                    node.mode = bits | (perms & mode::PERMS);
                    node.content = content;
                }
                tree.nodes.push(node);
                let id = tree.nodes.len() - 1;
                if let Content::Dir(children) = &mut tree.nodes[at].content {
                    children.insert(comp.clone(), id);
                }
                at = id;
            }
        }
        (tree, next_block - 1)
    }

    /// The tree as comparable data: path -> (node without ids, dirs as sorted names).
    fn flatten(
        tree: &Tree,
    ) -> BTreeMap<
        Vec<u8>,
        (
            u32,
            u32,
            u32,
            i64,
            u32,
            BTreeMap<Vec<u8>, Vec<u8>>,
            String,
            bool,
        ),
    > {
        let mut out = BTreeMap::new();
        let mut stack = vec![(Vec::new(), 0usize)];
        while let Some((path, id)) = stack.pop() {
            let n = &tree.nodes[id];
            let content = match &n.content {
                Content::Dir(children) => {
                    for (name, &c) in children {
                        let mut p = path.clone();
                        p.push(b'/');
                        p.extend_from_slice(name);
                        stack.push((p, c));
                    }
                    "dir".to_string()
                }
                other => format!("{other:?}"),
            };
            out.insert(
                path,
                (
                    n.mode,
                    n.uid,
                    n.gid,
                    n.mtime,
                    n.mtime_nsec,
                    n.xattrs.clone(),
                    content,
                    n.implicit && n.is_dir(),
                ),
            );
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn tree_to_erofs_to_tree(entries in tree()) {
            let (tree, data_blocks) = build(&entries);
            let meta = write_metadata(&tree, &ImageOptions { data_blocks, ..Default::default() }).unwrap();
            let mut file = tempfile::NamedTempFile::new().unwrap();
            file.write_all(&meta.block0).unwrap();
            file.write_all(&vec![0u8; (data_blocks * BLOCK_SIZE) as usize]).unwrap();
            file.write_all(&meta.tail).unwrap();
            file.flush().unwrap();
            let image = ImageReader::open(file.path()).unwrap();
            prop_assert_eq!(image.len(), meta.blocks * BLOCK_SIZE);
            let back = read_tree(&image).unwrap();
            prop_assert_eq!(flatten(&back), flatten(&tree));
        }
    }
}
