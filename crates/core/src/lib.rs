//! ocicache core: a local OCI image cache for microVM sandboxes.
//!
//! The crate is usable from Rust alone. [`Cache`] is the façade (load, get, list, inspect,
//! remove, prune, acquire/release uses); modules below it own one concern each:
//!
//! - [`oci`]: pure types and parsing (digest, reference, media type, platform, config);
//! - [`archive`]: `docker save` and OCI layout import, verified while staging;
//! - [`erofs`]: EROFS format, metadata writer and tar-to-EROFS layer conversion;
//! - [`store`]: the cache root's layout, atomic publication, cross-process locks;
//! - [`index`]: the SQLite index (the only module with SQL);
//! - [`vmdk`]: VMDK descriptors stitching fsmeta and layer images into one disk;
//! - [`gc`]: the file sweep and byte measurement shared by remove and prune;
//! - [`budget`]: the bound on the bytes a load writes;
//! - `sys`: the few platform differences (positioned reads, folder fsync, allocated bytes),
//!   the only code behind `cfg(unix)` / `cfg(windows)`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod archive;
mod artifacts;
pub mod budget;
pub mod codec;
pub mod erofs;
pub mod error;
pub mod gc;
pub mod image;
pub mod index;
pub mod layer;
pub mod oci;
pub mod store;
mod sys;
pub mod tar;
pub mod vmdk;

pub use error::{ERROR_CODES, Error, Result};
pub use image::*;
