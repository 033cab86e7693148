//! Pure OCI types and parsing: digests, references, media types, platforms, descriptors,
//! manifests and indexes, the `oci-layout` file, image configs, and Docker's `manifest.json`
//! (with the manifest synthesized for a legacy `docker save` archive). Input is bytes, never a
//! path.

mod config;
mod descriptor;
mod digest;
pub mod docker;
pub mod manifest;
pub mod media_type;
mod platform;
mod reference;

pub use config::{ConfigDescription, ConfigInfo, HistoryEntry, rfc3339_ms};
pub use descriptor::Descriptor;
pub use digest::{Digest, HashingReader, HashingWriter, is_sha256_hex};
pub use manifest::{ImageIndex, ImageManifest, parse_index, parse_layout_file, parse_manifest};
pub use platform::Platform;
pub use reference::{Reference, familiar_from_canonical};
