//! Layer staging: each blob copied and checked against its descriptor, its compression detected
//! from content, several layers at once on rayon's pool. The uncompressed stream is hashed into
//! its `diff_id` and compared with the config's `rootfs.diff_ids` when the layer is converted to
//! EROFS ([`crate::erofs::convert_layer`]), so each layer is decompressed once.
//!
//! The media type only has to name a layer; the bytes decide the decompressor, as containerd
//! and Docker do, so a gzip layer labelled `tar` still verifies.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use rayon::prelude::*;

use crate::archive::StagedBlob;
use crate::archive::source::{Source, TrackedReader};
use crate::error::{Error, IoContext, Result};
use crate::oci::{Digest, media_type};

/// gzip member header (RFC 1952 `ID1 ID2`).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// zstd frame magic number (RFC 8878 section 3.1.1).
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// bzip2 stream header (`BZh`).
const BZIP2_MAGIC: &[u8] = b"BZh";
/// xz stream header.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
/// A tar block (POSIX `ustar`): headers are one block.
const TAR_BLOCK: usize = 512;
/// OCI zstd layer media type, used when synthesizing a manifest for a zstd layer.
pub(crate) const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How a stream is compressed, as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// No known magic: taken as plain tar.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Detects compression from the first bytes of a stream. bzip2 and xz (which `docker load`
    /// reads but no image spec allows for layers) are [`Error::Unsupported`].
    pub(crate) fn sniff(head: &[u8]) -> Result<Self> {
        // A valid tar header wins: a plain tar's first name may spell a magic (`BZh9...`).
        if crate::erofs::tar::is_header(head) {
            return Ok(Compression::None);
        }
        if head.starts_with(GZIP_MAGIC) {
            Ok(Compression::Gzip)
        } else if head.starts_with(ZSTD_MAGIC) {
            Ok(Compression::Zstd)
        } else if head.starts_with(BZIP2_MAGIC) || head.starts_with(XZ_MAGIC) {
            Err(Error::Unsupported {
                what: "bzip2 or xz compression (only gzip and zstd)".into(),
            })
        } else {
            Ok(Compression::None)
        }
    }

    /// The Docker (or, for zstd, OCI) layer media type for this compression.
    pub(crate) fn docker_media_type(self) -> &'static str {
        match self {
            Compression::None => media_type::DOCKER_LAYER_TAR,
            Compression::Gzip => media_type::DOCKER_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
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
    let mut reader = BufReader::with_capacity(TAR_BLOCK, tracked);
    let head = reader
        .fill_buf()
        .map_err(|e| failure.classify(path, &format!("layer {index}"), e))?;
    Compression::sniff(head)
}

/// The compression of the source file `path`, from its first bytes (`head`).
pub(crate) fn sniff_file_head(head: &[u8], path: &Path) -> Result<Compression> {
    Compression::sniff(head).map_err(|e| match e {
        Error::Unsupported { what } => Error::Unsupported {
            what: format!("{what} of {}", path.display()),
        },
        other => other,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn sniff_table() {
        let cases: &[(&[u8], Option<Compression>)] = &[
            (&[0x1f, 0x8b, 8, 0], Some(Compression::Gzip)),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0], Some(Compression::Zstd)),
            (b"ustar", Some(Compression::None)),
            (b"", Some(Compression::None)),
            (b"BZh91AY", None),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0], None),
        ];
        for (head, want) in cases {
            assert_eq!(Compression::sniff(head).ok(), *want, "{head:?}");
        }
    }
}
