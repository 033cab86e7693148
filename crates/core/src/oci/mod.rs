//! Pure OCI types and parsing: digests, references, media types, platforms, and the parts of
//! manifests and configs the cache records. Input is bytes, never a path.

mod config;
mod digest;
pub mod media_type;
mod platform;
mod reference;

pub use config::ConfigInfo;
pub use digest::{Digest, HashingReader, HashingWriter, is_sha256_hex};
pub use platform::Platform;
pub use reference::{Reference, familiar_from_canonical};
