//! Layer staging: each blob copied and checked against its descriptor, its compression detected
//! from content, several layers at once on rayon's pool. The uncompressed stream is hashed into
//! its `diff_id` and compared with the config's `rootfs.diff_ids` when the layer is converted to
//! EROFS ([`crate::erofs::convert_layer`]), so each layer is decompressed once.
//!
//! The media type only has to name a layer; the bytes decide the decompressor, as containerd
//! and Docker do, so a gzip layer labelled `tar` still verifies.

use std::fs::File;
use std::io::{BufRead, BufReader};

use rayon::prelude::*;

use crate::archive::StagedBlob;
use crate::archive::source::Source;
use crate::codec::{Compression, TrackedReader};
use crate::error::{Error, IoContext, Result};
use crate::oci::{Digest, media_type};

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

/// What the metadata says a layer blob is.
#[derive(Debug, Clone)]
pub(crate) struct LayerInput {
    /// Member name of the blob.
    pub name: String,
    /// The blob's digest, when the metadata gives one.
    pub digest: Option<Digest>,
    /// The blob's size, when the metadata gives one.
    pub size: Option<u64>,
}

/// A layer whose blob and `diff_id` are verified.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedLayer {
    pub blob: StagedBlob,
    pub compression: Compression,
    pub diff_id: Digest,
}

/// Stages and verifies `inputs` against `diff_ids` (same length, checked by the caller), in
/// parallel. When several layers fail, the error of the lowest layer is reported.
pub(crate) fn verify_layers(
    src: &dyn Source,
    inputs: &[LayerInput],
    diff_ids: &[Digest],
) -> Result<Vec<VerifiedLayer>> {
    let results: Vec<Result<VerifiedLayer>> = inputs
        .par_iter()
        .zip(diff_ids.par_iter())
        .enumerate()
        .map(|(i, (input, diff_id))| verify_layer(src, i, input, diff_id))
        .collect();
    results.into_iter().collect()
}

fn verify_layer(
    src: &dyn Source,
    index: usize,
    input: &LayerInput,
    expected: &Digest,
) -> Result<VerifiedLayer> {
    let blob = src.stage(&input.name)?.ok_or_else(|| {
        Error::invalid_archive(format!("layer {index}: member {:?} is missing", input.name))
    })?;
    let what = format!("layer {index} blob");
    if let Some(digest) = &input.digest {
        digest.verify(&blob.digest, || what.clone())?;
    }
    if let Some(size) = input.size {
        check_size(&blob, size, &what)?;
    }
    let compression = compression_of(&blob, index)?;
    Ok(VerifiedLayer {
        blob,
        compression,
        diff_id: expected.clone(),
    })
}

/// Fails when a blob's size differs from its descriptor's. The digest already matched, so the
/// descriptor is what is wrong: [`Error::InvalidArchive`].
pub(crate) fn check_size(blob: &StagedBlob, size: u64, what: &str) -> Result<()> {
    if blob.size != size {
        return Err(Error::invalid_archive(format!(
            "{what} is {} bytes but its descriptor says {size}",
            blob.size
        )));
    }
    Ok(())
}

/// Detects the blob's compression from its first bytes. The `diff_id` is checked later, when
/// the layer is converted (one decompression, not two).
fn compression_of(blob: &StagedBlob, index: usize) -> Result<Compression> {
    let path = blob.path.as_path();
    let file = File::open(path).at(path)?;
    let (tracked, failure) = TrackedReader::new(file);
    let mut reader = BufReader::with_capacity(crate::tar::BLOCK_SIZE, tracked);
    let head = reader
        .fill_buf()
        .map_err(|e| failure.classify(path, &format!("layer {index}"), e))?;
    Compression::sniff(head)
}
