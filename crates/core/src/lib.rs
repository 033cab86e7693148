//! ocicache core: a local OCI image cache for microVM sandboxes.
//!
//! The crate is usable from Rust alone. [`Cache`] is the façade (load, get, list, inspect,
//! remove, prune, acquire/release uses, boot disks); modules below it own one concern each and
//! depend only downwards (`scripts/module-graph.mjs` prints the graph and fails on a cycle), from
//! the bottom:
//!
//! - `sys`: the few platform differences (positioned reads, folder fsync, allocated bytes,
//!   non-blocking opens, standard input), the only code behind `cfg(unix)` / `cfg(windows)`;
//!   [`error`]: the one error type and its stable codes;
//! - [`tar`]: the one tar reader (layer blobs and image archives alike); [`oci`]: pure types and
//!   parsing (digest, reference, media type, platform, descriptor, manifest, index, config,
//!   docker `manifest.json`), input is bytes; [`budget`]: the bound on the bytes a load writes;
//!   [`hash`]: the content hash of artifacts at rest, computed while they are written;
//! - [`codec`]: compression sniffing, decoders, the tracked reader; [`erofs`]: the EROFS
//!   format, metadata writer, reader and the fsmeta merge; [`vmdk`]: VMDK descriptors;
//!   [`store`]: the cache root's layout, directory handles, atomic publication, locks, the index
//!   files' sizes; [`index`]: the SQLite index (the only module with SQL, and row encoding);
//!   [`source`]: what an image source hands the ingest pipeline (lazy layer sources);
//! - [`cancel`]: cancelling a running load; [`layer`]: tar stream to layer EROFS, hashing blob
//!   and `diff_id` in the same pass; [`gc`]: the file sweep and byte measurement of remove and
//!   prune; [`check`]: what verify, repair and boot disks check of the files against the index;
//! - [`archive`]: `docker save` archives, OCI layout archives and folders, and standard input,
//!   as image sources read in place or front to back; [`ingest`]: the one pipeline that turns
//!   image sources into published artifacts and one index transaction;
//! - [`image`]: the façade ([`Cache`]), one file per kind of operation;
//! - `fuzzing` (hidden, not API): the entry points of the fuzz targets in `fuzz/`, above all
//!   of it, so a parser that moves changes that file and never the targets.
//!
//! Where the operations to come go: `pull` is a `registry` module beside [`archive`] (the
//! distribution client: auth, manifests, blobs) whose image sources open each layer blob as an
//! HTTP body stream, fed to the same [`ingest`] pipeline by an `image/pull.rs`; `save` writes an archive from the cache through [`archive`], behind an
//! `image/save.rs`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod archive;
pub mod budget;
pub mod cancel;
pub mod check;
pub mod codec;
pub mod erofs;
pub mod error;
/// Entry points of the fuzz targets in `fuzz/`; not API.
#[doc(hidden)]
pub mod fuzzing;
pub mod gc;
pub mod hash;
pub mod image;
pub mod index;
pub mod ingest;
pub mod layer;
pub mod oci;
pub mod progress;
pub mod registry;
pub mod source;
pub mod store;
mod sys;
pub mod tar;
pub mod vmdk;

pub use error::{ERROR_CODES, Error, Result};
pub use image::*;
