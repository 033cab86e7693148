//! Layer verification: compression detected from content, the uncompressed stream hashed into
//! its `diff_id` and compared with the config's `rootfs.diff_ids` (OCI image spec `config.md`),
//! several layers at once on rayon's pool.
//!
//! The media type only has to name a layer; the bytes decide the decompressor, as containerd
//! and Docker do, so a gzip layer labelled `tar` still verifies.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::archive::StagedBlob;
use crate::archive::source::{COPY_BUFFER_SIZE, Source, TrackedReader};
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
/// The header checksum field, octal, at bytes 148..156 of a tar header.
const TAR_CHECKSUM_FIELD: std::ops::Range<usize> = 148..156;
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
    let (compression, diff_id) = diff_id_of(&blob, index)?;
    expected.verify(&diff_id, || format!("layer {index} diff_id"))?;
    Ok(VerifiedLayer {
        blob,
        compression,
        diff_id,
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

/// Detects the blob's compression and computes its `diff_id`, checking that the uncompressed
/// stream starts like a tar. An uncompressed blob's `diff_id` is its own digest.
fn diff_id_of(blob: &StagedBlob, index: usize) -> Result<(Compression, Digest)> {
    let path = blob.path.as_path();
    let file = File::open(path).at(path)?;
    let (tracked, failure) = TrackedReader::new(file);
    let mut reader = BufReader::with_capacity(COPY_BUFFER_SIZE, tracked);
    let what = format!("layer {index}");
    let head = reader
        .fill_buf()
        .map_err(|e| failure.classify(path, &what, e))?;
    let compression = Compression::sniff(head)?;
    let (diff_id, first_block) = match compression {
        Compression::None => {
            let mut block = Vec::with_capacity(TAR_BLOCK);
            (&mut reader)
                .take(TAR_BLOCK as u64)
                .read_to_end(&mut block)
                .map_err(|e| failure.classify(path, &what, e))?;
            (blob.digest.clone(), block)
        }
        Compression::Gzip => hash_stream(flate2::bufread::MultiGzDecoder::new(reader))
            .map_err(|e| failure.classify(path, &format!("{what} gzip stream"), e))?,
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| failure.classify(path, &what, e))?;
            hash_stream(decoder)
                .map_err(|e| failure.classify(path, &format!("{what} zstd stream"), e))?
        }
    };
    if !starts_like_tar(&first_block) {
        return Err(Error::invalid_archive(format!(
            "{what} is not a tar archive"
        )));
    }
    Ok((compression, diff_id))
}

/// Hashes a whole stream; returns its digest and its first [`TAR_BLOCK`] bytes.
fn hash_stream(mut reader: impl Read) -> std::io::Result<(Digest, Vec<u8>)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER_SIZE];
    let mut first_block = Vec::with_capacity(TAR_BLOCK);
    loop {
        let len = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..len];
        if first_block.len() < TAR_BLOCK {
            let take = (TAR_BLOCK - first_block.len()).min(len);
            first_block.extend_from_slice(&chunk[..take]);
        }
        hasher.update(chunk);
    }
    Ok((Digest::from_hasher(hasher), first_block))
}

/// Whether a stream starting with `block` can be a tar: empty (no members), an end-of-archive
/// block of zeros, or a header whose checksum (POSIX `ustar` `chksum`: the byte sum with the
/// field itself counted as spaces) is right.
fn starts_like_tar(block: &[u8]) -> bool {
    if block.is_empty() {
        return true;
    }
    if block.len() < TAR_BLOCK {
        return false;
    }
    if block.iter().all(|b| *b == 0) {
        return true;
    }
    let field = &block[TAR_CHECKSUM_FIELD];
    let spaces = TAR_CHECKSUM_FIELD.len() as u64 * u64::from(b' ');
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .filter(|(i, _)| !TAR_CHECKSUM_FIELD.contains(i))
        .map(|(_, b)| u64::from(*b))
        .sum::<u64>()
        + spaces;
    // Some old writers summed signed chars.
    let signed: i64 = block
        .iter()
        .enumerate()
        .filter(|(i, _)| !TAR_CHECKSUM_FIELD.contains(i))
        .map(|(_, b)| i64::from(*b as i8))
        .sum::<i64>()
        + spaces as i64;
    match parse_octal(field) {
        Some(sum) => sum == unsigned || i64::try_from(sum).is_ok_and(|s| s == signed),
        None => false,
    }
}

/// Parses a tar numeric field: octal digits, padded with spaces or NULs.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 8).ok()
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

    #[test]
    fn tar_start_table() {
        let mut header = tar::Header::new_gnu();
        header.set_path("a").unwrap();
        header.set_size(0);
        header.set_cksum();
        let mut bad = header.as_bytes().to_vec();
        bad[0] = b'b';
        let cases: &[(&[u8], bool)] = &[
            (&[], true),
            (&[0u8; TAR_BLOCK], true),
            (header.as_bytes(), true),
            (&bad, false),
            (b"hello world", false),
            (&[b'x'; TAR_BLOCK], false),
        ];
        for (block, want) in cases {
            assert_eq!(
                starts_like_tar(block),
                *want,
                "{:?}",
                &block[..block.len().min(8)]
            );
        }
    }
}
