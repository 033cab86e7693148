//! Building the cache's derived artifacts during `load`: one EROFS image per distinct layer,
//! then per manifest an fsmeta image and a VMDK descriptor over those layer images.
//!
//! Layers are converted in parallel into the load's staging folder and published only when
//! every layer of the load converted: a bad layer leaves nothing under `layers/`. A layer whose
//! image already exists (by `diff_id`) is reused without reading its blob. Concurrent loads that
//! need the same layer converge on one file: each takes the layer's lock (striped files under
//! `locks/layers/`, taken in sorted order so two loads cannot deadlock), re-checks for the
//! image, and only then converts.
//!
//! Trust: a reused layer's `diff_id` comes from the image config, whose digest was verified; a
//! converted layer's `diff_id` is verified against its tar.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::archive::StagedLayer;
use crate::budget::WriteBudget;
use crate::erofs::{ConvertOptions, LayerImage, build_fsmeta, convert_layer_within};
use crate::error::{Error, IoContext, Result};
use crate::oci::Digest;
use crate::store::{self, CacheLock, Layout, LockMode};
use crate::vmdk::{self, Extent};

/// Ensures every layer of `layers` has its EROFS image under `layers/`, converting the missing
/// ones from their staged blobs (in `staging`), every byte written charged to `budget`. Returns
/// each layer's image size, by `diff_id`. Nothing is published unless every conversion
/// succeeded (a [`Error::LimitExceeded`] included).
///
/// The caller holds the GC lock (shared) until the index names the layers, so a prune cannot
/// collect an image published here before that.
pub(crate) fn prepare_layers(
    layout: &Layout,
    staging: &Path,
    layers: &[&StagedLayer],
    budget: &WriteBudget,
) -> Result<HashMap<Digest, u64>> {
    // One staged layer per diff_id, the lowest position first (for the error to report).
    let mut wanted: BTreeMap<&Digest, &StagedLayer> = BTreeMap::new();
    for layer in layers {
        wanted.entry(&layer.diff_id).or_insert(layer);
    }
    let stripes: BTreeSet<PathBuf> = wanted.keys().map(|d| layout.layer_lock(d)).collect();
    let mut locks = Vec::with_capacity(stripes.len());
    for stripe in &stripes {
        locks.push(CacheLock::acquire(stripe, LockMode::Exclusive)?);
    }
    let mut sizes = HashMap::new();
    let mut missing = Vec::new();
    for (diff_id, layer) in &wanted {
        match existing_size(&layout.layer(diff_id))? {
            Some(size) => {
                sizes.insert((*diff_id).clone(), size);
            }
            None => missing.push(*layer),
        }
    }
    let converted: Vec<Result<(Digest, PathBuf, u64)>> = missing
        .par_iter()
        .map(|layer| {
            let dest = staging.join(format!("layer-{}.erofs", layer.diff_id.hex()));
            let options = ConvertOptions {
                // The blob's digest was checked when it was staged.
                blob_digest: None,
                diff_id: Some(layer.diff_id.clone()),
            };
            let out = convert_layer_within(&layer.blob.path, &dest, &options, budget)?;
            Ok((layer.diff_id.clone(), dest, out.erofs_size))
        })
        .collect();
    let converted: Vec<(Digest, PathBuf, u64)> = converted.into_iter().collect::<Result<_>>()?;
    for (diff_id, staged, size) in converted {
        store::publish_file(&staged, &layout.layer(&diff_id))?;
        sizes.insert(diff_id, size);
    }
    drop(locks);
    Ok(sizes)
}

/// The size of an existing artifact file, `None` when absent.
fn existing_size(path: &Path) -> Result<Option<u64>> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
        Ok(_) => Err(Error::CorruptCache {
            reason: format!("{} is not a regular file", path.display()),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(path),
    }
}

/// Sizes of a manifest's fsmeta image and VMDK descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ImageArtifacts {
    /// fsmeta bytes.
    pub fsmeta: u64,
    /// VMDK descriptor bytes.
    pub vmdk: u64,
}

/// Ensures the manifest's fsmeta image and VMDK descriptor exist, building them from the layer
/// images (bottom to top) when absent; both are built in `staging` and published atomically,
/// fsmeta first. The same layers always give the same bytes, so concurrent builders of one
/// manifest publish identical files.
pub(crate) fn prepare_image(
    layout: &Layout,
    staging: &Path,
    manifest: &Digest,
    diff_ids: &[Digest],
) -> Result<ImageArtifacts> {
    let fsmeta_path = layout.fsmeta(manifest);
    let vmdk_path = layout.vmdk(manifest);
    let layers: Vec<LayerImage> = diff_ids
        .iter()
        .map(|d| LayerImage {
            path: layout.layer(d),
            diff_id: d.clone(),
        })
        .collect();
    let fsmeta = match existing_size(&fsmeta_path)? {
        Some(size) => size,
        None => {
            let staged = staging.join(format!("fsmeta-{}.erofs", manifest.hex()));
            let mut uuid = [0u8; 16];
            if let Ok(bytes) = hex::decode(&manifest.hex()[..32]) {
                uuid.copy_from_slice(&bytes);
            }
            let built = build_fsmeta(&layers, &staged, uuid)?;
            store::publish_file(&staged, &fsmeta_path)?;
            built.size
        }
    };
    let vmdk = match existing_size(&vmdk_path)? {
        Some(size) => size,
        None => {
            let mut extents = vec![Extent {
                path: layout.relative_to_vmdk(&fsmeta_path),
                size: fsmeta,
            }];
            for layer in &layers {
                let size = existing_size(&layer.path)?.ok_or_else(|| Error::CorruptCache {
                    reason: format!("layer image {} is missing", layer.path.display()),
                })?;
                extents.push(Extent {
                    path: layout.relative_to_vmdk(&layer.path),
                    size,
                });
            }
            let cid = u32::from_str_radix(&manifest.hex()[..8], 16).unwrap_or(0);
            let text = vmdk::descriptor(&extents, cid)?;
            let staged = store::write_staged(
                staging,
                &format!("vmdk-{}.vmdk", manifest.hex()),
                text.as_bytes(),
            )?;
            store::publish_file(&staged, &vmdk_path)?;
            text.len() as u64
        }
    };
    Ok(ImageArtifacts { fsmeta, vmdk })
}
