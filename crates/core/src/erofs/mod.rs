//! EROFS images: the on-disk format ([`format`]), the metadata writer ([`writer`]), layer
//! conversion from a tar stream ([`layer`]), a reader ([`reader`]), and the merged per-image
//! metadata image ([`fsmeta`]).
//!
//! A layer image is a plain, uncompressed EROFS with 4 KiB blocks: file data first (block
//! aligned, so that fsmeta images can point chunks at it), then shared xattrs, inodes with
//! inline directory and symlink tails, and the remaining directory blocks. The rules that map a
//! tar onto it are in `docs/cache-layout.md`.

pub mod format;
pub mod fsmeta;
pub mod layer;
pub mod reader;
pub mod tar;
pub mod writer;

pub use fsmeta::{Fsmeta, LayerImage, build_fsmeta};
pub use layer::{ConvertOptions, ConvertedLayer, convert_layer};
