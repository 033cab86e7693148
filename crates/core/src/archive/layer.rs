//! The layers of an archive's images as [`LayerSource`]s: the descriptor (from the manifest, or
//! for a legacy `docker save` archive from the member itself), the `diff_id` from the verified
//! config, and the member, opened when the pipeline converts it.

use std::sync::Arc;

use crate::archive::files::BlobFile;
use crate::codec::Compression;
use crate::error::Result;
use crate::oci::{Descriptor, Digest, media_type};
use crate::source::{BlobReader, LayerSource};

/// OCI zstd layer media type, used when synthesizing a manifest for a zstd layer.
pub(crate) const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The Docker (or, for zstd, OCI) layer media type for a compression.
pub(crate) fn docker_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => media_type::DOCKER_LAYER_TAR,
        Compression::Gzip => media_type::DOCKER_LAYER_GZIP,
        Compression::Zstd => OCI_LAYER_ZSTD,
    }
}

/// A layer of an archive.
pub(crate) struct ArchiveLayer {
    pub(crate) descriptor: Descriptor,
    pub(crate) diff_id: Digest,
    pub(crate) blob: Arc<dyn BlobFile>,
}

impl LayerSource for ArchiveLayer {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn diff_id(&self) -> &Digest {
        &self.diff_id
    }

    fn sequence(&self) -> Option<u64> {
        self.blob.sequence()
    }

    fn want(&self) {
        self.blob.want();
    }

    fn open(&self) -> Result<BlobReader<'_>> {
        self.blob.open()
    }
}
