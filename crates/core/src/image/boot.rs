//! `boot_disk`: the files a VM boots an image from, after a quick check of them
//! (`image/check.rs`), rebuilding a missing fsmeta or VMDK from the layer images alone.

use std::path::PathBuf;

use super::{Cache, resolve};
use crate::BootDisk;
use crate::error::Result;
use crate::index::stored_digest;
use crate::store::LockMode;

impl Cache {
    /// The files a VM boots `reference` from: its VMDK descriptor (which stitches the fsmeta
    /// image and the layer images into one disk), the fsmeta image, and the layer images
    /// bottom to top (for a `device=` mount). A missing fsmeta or VMDK is rebuilt from the
    /// layer images alone. Pin the image with [`Cache::acquire`] while the files are in use.
    ///
    /// Before handing out paths it checks them quickly (as [`Cache::verify`] without `full`:
    /// existence, sizes, EROFS superblocks and the volumes they name, the VMDK text), so it
    /// never returns a damaged disk.
    ///
    /// `reference` is any form [`Cache::get`] takes, and `repository@digest` of a manifest a use
    /// holds after its tag moved on.
    ///
    /// Errors: [`Error::ImageNotFound`]; [`Error::CorruptCache`] when a layer image is missing
    /// (a version-1 cache whose layers were never converted, or one a repair took away: load
    /// the image again), when a file is damaged (run a repair), or when the image is marked
    /// broken (see [`Cache::repair`]);
    /// [`Error::CorruptCacheEntry`] when a folder of the root or one of these files is a
    /// symlink (or a folder), which is never handed out.
    pub fn boot_disk(&self, reference: &str) -> Result<BootDisk> {
        self.local()?;
        let root = self.open_root()?;
        let _lock = root.lock_gc(LockMode::Shared)?;
        let (manifest, diff_ids) = {
            let ix = self.index()?;
            let manifest = resolve(&ix, reference)?.manifest().to_owned();
            let diff_ids = ix
                .layers_of(&manifest)?
                .into_iter()
                .map(|l| stored_digest(&l.diff_id))
                .collect::<Result<Vec<_>>>()?;
            (stored_digest(&manifest)?, diff_ids)
        };
        // Never hand out a damaged disk: an image marked broken, a layer image missing or
        // damaged, or a fsmeta or VMDK damaged is refused (a missing one is rebuilt below).
        self.boot_check(&root, &manifest.to_string(), reference)?;
        let layers: Vec<PathBuf> = diff_ids.iter().map(|d| self.layout.layer(d)).collect();
        let fsmeta = self.layout.fsmeta(&manifest);
        let vmdk = self.layout.vmdk(&manifest);
        if root.fsmeta(&manifest).file_size()?.is_none()
            || root.vmdk(&manifest).file_size()?.is_none()
        {
            // A load of the same manifest may be publishing (and, failing, taking back) these
            // files: rebuild under the manifest's artifact lock, which that load holds.
            let _artifact_lock = root.lock_artifacts([&manifest])?;
            self.build_missing(&root, &manifest, &diff_ids)?;
        }
        Ok(BootDisk {
            vmdk,
            fsmeta,
            layers,
        })
    }
}
