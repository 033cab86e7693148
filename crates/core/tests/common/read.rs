//! Reading an archive as `load` does, through the public archive API, with every layer blob
//! read through its source: what the archive tests assert on.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use ocicache_core::Result;
use ocicache_core::archive::{ReadOptions, open_archive};
use ocicache_core::oci::{ConfigInfo, Digest, Platform, Reference};
use ocicache_core::source::ImageSource;

/// A blob as read: its digest and size (computed from the bytes) and the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBlob {
    pub digest: Digest,
    pub size: u64,
    pub bytes: Vec<u8>,
}

impl ReadBlob {
    fn of(bytes: Vec<u8>) -> Self {
        ReadBlob {
            digest: Digest::of_bytes(&bytes),
            size: bytes.len() as u64,
            bytes,
        }
    }
}

/// A layer: its blob as read through its source, its media type, its `diff_id`.
#[derive(Debug, Clone)]
pub struct ReadLayer {
    pub blob: ReadBlob,
    pub media_type: String,
    pub diff_id: Digest,
}

/// One image of an archive, every blob read.
#[derive(Debug, Clone)]
pub struct ReadImage {
    pub references: Vec<Reference>,
    pub bare_tags: Vec<String>,
    pub manifest: ReadBlob,
    pub manifest_media_type: String,
    pub config: ReadBlob,
    pub config_info: ConfigInfo,
    pub layers: Vec<ReadLayer>,
}

/// Reads every image of `source` for `platform` with [`open_archive`] (spooling into `spool`),
/// then every layer blob through its source, each distinct blob once, in the order the
/// pipeline opens them (after saying which it wants). The digests and sizes the source's
/// descriptors state are checked against the bytes read: a mismatch is returned as the error
/// the pipeline would report, `DIGEST_MISMATCH` or `INVALID_ARCHIVE`.
pub fn read_archive(source: &Path, spool: &Path, platform: &Platform) -> Result<Vec<ReadImage>> {
    let mut archive = open_archive(source, spool, &ReadOptions::new(platform.clone()))?;
    for image in archive.images() {
        for layer in &image.layers {
            layer.want();
        }
    }
    let mut read: HashMap<Digest, ReadBlob> = HashMap::new();
    let mut out = Vec::new();
    for image in archive.images() {
        out.push(read_image(image, &mut read)?);
    }
    // A stream's last members may name the images too.
    archive.finish()?;
    for (image, source) in out.iter_mut().zip(archive.images()) {
        image.references = source.references.clone();
        image.bare_tags = source.bare_tags.clone();
    }
    Ok(out)
}

fn read_image(image: &ImageSource, read: &mut HashMap<Digest, ReadBlob>) -> Result<ReadImage> {
    let mut layers = Vec::new();
    for (i, layer) in image.layers.iter().enumerate() {
        let d = layer.descriptor();
        let blob = match read.get(&d.digest) {
            Some(blob) => blob.clone(),
            None => {
                let opened = layer.open()?;
                let mut bytes = Vec::new();
                let mut reader = opened.reader;
                reader
                    .read_to_end(&mut bytes)
                    .map_err(|e| ocicache_core::codec::unwrap_error(e, &opened.path))?;
                let blob = ReadBlob::of(bytes);
                read.insert(d.digest.clone(), blob.clone());
                blob
            }
        };
        if blob.digest != d.digest {
            return Err(ocicache_core::Error::DigestMismatch {
                what: format!("layer {i} blob"),
                expected: d.digest.to_string(),
                actual: blob.digest.to_string(),
            });
        }
        if blob.size != d.size {
            return Err(ocicache_core::Error::invalid_archive(format!(
                "layer {i} blob is {} bytes, its descriptor says {}",
                blob.size, d.size
            )));
        }
        layers.push(ReadLayer {
            blob,
            media_type: d.media_type.clone(),
            diff_id: layer.diff_id().clone(),
        });
    }
    let manifest = ReadBlob::of(image.manifest.bytes.clone());
    let config = ReadBlob::of(image.config.bytes.clone());
    assert_eq!(manifest.digest, image.manifest.descriptor.digest);
    assert_eq!(config.digest, image.config.descriptor.digest);
    Ok(ReadImage {
        references: image.references.clone(),
        bare_tags: image.bare_tags.clone(),
        manifest,
        manifest_media_type: image.manifest.descriptor.media_type.clone(),
        config,
        config_info: image.config_info.clone(),
        layers,
    })
}
