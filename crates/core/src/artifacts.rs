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

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::archive::StagedLayer;
use crate::erofs::{ConvertOptions, LayerImage, build_fsmeta, convert_layer};
use crate::error::{Error, Result};
use crate::oci::Digest;
use crate::store::{self, Root, StagingDir};
use crate::vmdk::{self, Extent};

/// Ensures every layer of `layers` has its EROFS image under `layers/`, converting the missing
/// ones from their staged blobs (in `staging`). Returns each layer's image size, by `diff_id`.
///
/// The caller holds the GC lock (shared) until the index names the layers, so a prune cannot
/// collect an image published here before that.
pub(crate) fn prepare_layers(
    root: &Root,
    staging: &StagingDir,
    layers: &[&StagedLayer],
) -> Result<HashMap<Digest, u64>> {
    // One staged layer per diff_id, the lowest position first (for the error to report).
    let mut wanted: BTreeMap<&Digest, &StagedLayer> = BTreeMap::new();
    for layer in layers {
        wanted.entry(&layer.diff_id).or_insert(layer);
    }
    let locks = root.lock_layers(wanted.keys().copied())?;
    let mut sizes = HashMap::new();
    let mut missing = Vec::new();
    for (diff_id, layer) in &wanted {
        match root.layer(diff_id).file_size()? {
            Some(size) => {
                sizes.insert((*diff_id).clone(), size);
            }
            None => missing.push(*layer),
        }
    }
    let converted: Vec<Result<(Digest, PathBuf, u64)>> = missing
        .par_iter()
        .map(|layer| {
            let dest = staging
                .path()
                .join(format!("layer-{}.erofs", layer.diff_id.hex()));
            let options = ConvertOptions {
                // The blob's digest was checked when it was staged.
                blob_digest: None,
                diff_id: Some(layer.diff_id.clone()),
            };
            let out = convert_layer(&layer.blob.path, &dest, &options)?;
            Ok((layer.diff_id.clone(), dest, out.erofs_size))
        })
        .collect();
    let converted: Vec<(Digest, PathBuf, u64)> = converted.into_iter().collect::<Result<_>>()?;
    for (diff_id, staged, size) in converted {
        store::publish_file(staging, &staged, &root.layer(&diff_id))?;
        sizes.insert(diff_id, size);
    }
    drop(locks);
    Ok(sizes)
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
    root: &Root,
    staging: &StagingDir,
    manifest: &Digest,
    diff_ids: &[Digest],
) -> Result<ImageArtifacts> {
    let layout = root.layout();
    let fsmeta_path = layout.fsmeta(manifest);
    // Layer images are read by path: reading cannot write or delete anything, and a VM reads
    // them by path through the descriptor anyway (see docs/cache-layout.md, trust model).
    let layers: Vec<LayerImage> = diff_ids
        .iter()
        .map(|d| LayerImage {
            path: layout.layer(d),
            diff_id: d.clone(),
        })
        .collect();
    let fsmeta = match root.fsmeta(manifest).file_size()? {
        Some(size) => size,
        None => {
            let staged = staging
                .path()
                .join(format!("fsmeta-{}.erofs", manifest.hex()));
            let mut uuid = [0u8; 16];
            if let Ok(bytes) = hex::decode(&manifest.hex()[..32]) {
                uuid.copy_from_slice(&bytes);
            }
            let built = build_fsmeta(&layers, &staged, uuid)?;
            store::publish_file(staging, &staged, &root.fsmeta(manifest))?;
            built.size
        }
    };
    let vmdk = match root.vmdk(manifest).file_size()? {
        Some(size) => size,
        None => {
            let mut extents = vec![Extent {
                path: layout.relative_to_vmdk(&fsmeta_path),
                size: fsmeta,
            }];
            for (layer, diff_id) in layers.iter().zip(diff_ids) {
                let size = root
                    .layer(diff_id)
                    .file_size()?
                    .ok_or_else(|| Error::CorruptCache {
                        reason: format!("layer image {} is missing", layer.path.display()),
                    })?;
                extents.push(Extent {
                    path: layout.relative_to_vmdk(&layer.path),
                    size,
                });
            }
            let cid = u32::from_str_radix(&manifest.hex()[..8], 16).unwrap_or(0);
            let text = vmdk::descriptor(&extents, cid)?;
            let staged =
                staging.write(&format!("vmdk-{}.vmdk", manifest.hex()), text.as_bytes())?;
            store::publish_file(staging, &staged, &root.vmdk(manifest))?;
            text.len() as u64
        }
    };
    Ok(ImageArtifacts { fsmeta, vmdk })
}
