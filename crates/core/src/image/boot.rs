//! `boot_disk`: the files a VM boots an image from, rebuilding a missing fsmeta or VMDK from
//! the layer images alone.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{Cache, resolve};
use crate::BootDisk;
use crate::erofs::LayerImage;
use crate::error::{Error, Result};
use crate::index::stored_digest;
use crate::ingest::{self, Published};
use crate::oci::Reference;
use crate::store::{LockMode, StagingPurpose};

impl Cache {
    /// The files a VM boots `reference` from: its VMDK descriptor (which stitches the fsmeta
    /// image and the layer images into one disk), the fsmeta image, and the layer images
    /// bottom to top (for a `device=` mount). A missing fsmeta or VMDK is rebuilt from the
    /// layer images alone. Pin the image with [`Cache::acquire`] while the files are in use.
    ///
    /// Errors: [`Error::ImageNotFound`]; [`Error::CorruptCache`] when a layer image is missing
    /// (a version-1 cache whose layers were never converted: load the image again);
    /// [`Error::CorruptCacheEntry`] when a folder of the root or one of these files is a
    /// symlink (or a folder), which is never handed out.
    pub fn boot_disk(&self, reference: &str) -> Result<BootDisk> {
        self.local()?;
        let r = Reference::parse(reference)?;
        let root = self.open_root()?;
        let _lock = root.lock_gc(LockMode::Shared)?;
        let (manifest, diff_ids) = {
            let ix = self.index()?;
            let rows = resolve(&ix, &r, reference)?;
            let manifest = rows[0].manifest_digest.clone();
            let diff_ids = ix
                .layers_of(&manifest)?
                .into_iter()
                .map(|l| stored_digest(&l.diff_id))
                .collect::<Result<Vec<_>>>()?;
            (stored_digest(&manifest)?, diff_ids)
        };
        let layers: Vec<PathBuf> = diff_ids.iter().map(|d| self.layout.layer(d)).collect();
        let mut sizes = HashMap::with_capacity(diff_ids.len());
        for (path, diff_id) in layers.iter().zip(&diff_ids) {
            // Measured beneath the `layers/` handle: a symlink there is CorruptCacheEntry.
            let Some(size) = root.layer(diff_id).file_size()? else {
                return Err(Error::CorruptCache {
                    reason: format!(
                        "layer image {} of {reference} is missing; load the image again",
                        path.display()
                    ),
                });
            };
            sizes.insert(diff_id.clone(), size);
        }
        let fsmeta = self.layout.fsmeta(&manifest);
        let vmdk = self.layout.vmdk(&manifest);
        if root.fsmeta(&manifest).file_size()?.is_none()
            || root.vmdk(&manifest).file_size()?.is_none()
        {
            // A load of the same manifest may be publishing (and, failing, taking back) these
            // files: rebuild under the manifest's artifact lock, which that load holds.
            let _artifact_lock = root.lock_artifacts([&manifest])?;
            let staging = root.staging_dir(StagingPurpose::Rebuild)?;
            let images: Vec<LayerImage> = diff_ids
                .iter()
                .zip(&layers)
                .map(|(diff_id, path)| LayerImage {
                    path: path.clone(),
                    diff_id: diff_id.clone(),
                })
                .collect();
            let built = ingest::prepare_image(&root, &staging, &manifest, &images, &sizes)
                .and_then(|built| {
                    ingest::publish(&staging, &built.staged, &mut Published::default())?;
                    Ok(built)
                })
                .map_err(|e| staging.describe(e))?;
            self.index()?.set_image_artifacts(
                &manifest.to_string(),
                built.fsmeta as i64,
                built.vmdk as i64,
            )?;
        }
        Ok(BootDisk {
            vmdk,
            fsmeta,
            layers,
        })
    }
}
