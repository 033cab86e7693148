//! What an image source hands the ingest pipeline ([`crate::ingest`]): per image its names, its
//! manifest and config (read and verified, small enough to hold), and per layer a
//! [`LayerSource`]: the layer's descriptor, its `diff_id`, and a way to open its blob. Opening is
//! lazy: the pipeline opens only the layers whose `diff_id` the cache does not hold, so a cached
//! layer's blob is never read.
//!
//! [`crate::archive`] implements it for `docker save` archives and OCI image layouts (a tar read
//! in place, a stream read front to back, a folder); a registry client implements it for
//! downloads, its `open` returning the blob's HTTP body. The pipeline wraps every reader it is
//! given (cancellation, and later progress), so a source needs neither.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;
use crate::oci::{ConfigInfo, Descriptor, Digest, Reference};

/// A small blob read whole and verified against its descriptor: a manifest or a config.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Its descriptor (for a manifest, `media_type` is the manifest's media type).
    pub descriptor: Descriptor,
    /// Its bytes, which hash to `descriptor.digest`.
    pub bytes: Vec<u8>,
}

/// One image a source holds.
#[derive(Clone)]
pub struct ImageSource {
    /// Repository-qualified references the source gives it (`RepoTags`,
    /// `io.containerd.image.name`, a `org.opencontainers.image.ref.name` that is a full
    /// reference), normalized, without duplicates, in source order.
    pub references: Vec<Reference>,
    /// `org.opencontainers.image.ref.name` values that are only a tag (`1`, `latest`): they name
    /// no repository, so the caller must name the image.
    pub bare_tags: Vec<String>,
    /// The manifest. For a legacy `docker save` archive, which has none, a Docker v2 schema 2
    /// manifest synthesized deterministically from its `manifest.json`.
    pub manifest: Blob,
    /// The config blob.
    pub config: Blob,
    /// The parsed config; `diff_ids` has one entry per layer.
    pub config_info: ConfigInfo,
    /// Layers bottom to top.
    pub layers: Vec<Arc<dyn LayerSource>>,
    /// The registry repository (`registry/repository`) the image was pulled from; `None` for
    /// an archive.
    pub origin: Option<String>,
}

impl std::fmt::Debug for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageSource")
            .field("references", &self.references)
            .field("manifest", &self.manifest.descriptor.digest)
            .field("layers", &self.layers.len())
            .finish()
    }
}

/// One layer of an image: what the manifest says of its blob, its `diff_id`, and how to read
/// the blob.
pub trait LayerSource: Send + Sync {
    /// The blob's descriptor as the manifest gives it (digest, size, media type). The pipeline
    /// checks the blob it reads against it.
    fn descriptor(&self) -> &Descriptor;

    /// The uncompressed tar's digest (`rootfs.diff_ids` of the verified config).
    fn diff_id(&self) -> &Digest;

    /// For a source read front to back, where this blob comes in it: the pipeline then opens such
    /// layers one at a time, in this order. `None` (the default): the blob can be opened in any
    /// order, several at once.
    fn sequence(&self) -> Option<u64> {
        None
    }

    /// Says the pipeline will open this layer. It calls it for every layer it opens before it
    /// opens the first, so a source read front to back keeps these blobs when it must pass them
    /// and skips every other one.
    fn want(&self) {}

    /// Opens the blob, positioned at its first byte. The reader's own failures should carry
    /// the core error they are ([`crate::codec::wrap_error`]); any other read error is reported
    /// as an I/O error on [`BlobReader::path`].
    fn open(&self) -> Result<BlobReader<'_>>;
}

/// An open blob.
pub struct BlobReader<'a> {
    /// The blob's bytes, as stored (compressed or not).
    pub reader: Box<dyn Read + Send + 'a>,
    /// What errors reading it name: the archive, the layout's blob file, the spool file.
    pub path: PathBuf,
}
