//! Building the cache's derived artifacts during `load`: one EROFS image per distinct layer,
//! then per manifest an fsmeta image and a VMDK descriptor over those layer images.
//!
//! Everything is built in the load's staging folder first: layers are converted in parallel,
//! then each manifest's fsmeta and VMDK are built from the layer images (the staged ones, or
//! those already under `layers/`). Only when every artifact of the load is built are they
//! published ([`publish`]), so a bad layer, a layer nested too deep or an image over a format
//! limit leaves nothing outside `tmp/`. A layer whose image already exists (by `diff_id`) is
//! reused without reading its blob; so are an existing fsmeta and VMDK.
//!
//! Locking: a load holds the artifact locks ([`lock_artifacts`]) of every digest it names (its
//! layers' `diff_id`s, its manifests and configs) from its first look at the disk until its
//! index rows are committed or it has taken back what it published ([`Published::undo`]). The
//! locks are striped files under `locks/layers/` (by the digest's first byte, shared by every
//! kind of artifact), taken in sorted order so two loads cannot deadlock. So concurrent loads
//! of the same layer convert it once, and no load starts using a file that another load may
//! still delete because its commit failed.
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

/// Takes the artifact locks of `digests` (exclusive, in sorted order), for the artifacts they
/// name: a layer image by `diff_id`; a blob, fsmeta and VMDK by manifest digest; a blob by
/// config digest. Released when the returned locks are dropped.
///
/// Never call it while holding artifact locks: two locks of one stripe conflict even within one
/// thread.
pub(crate) fn lock_artifacts<'a>(
    layout: &Layout,
    digests: impl IntoIterator<Item = &'a Digest>,
) -> Result<Vec<CacheLock>> {
    let stripes: BTreeSet<PathBuf> = digests.into_iter().map(|d| layout.layer_lock(d)).collect();
    let mut locks = Vec::with_capacity(stripes.len());
    for stripe in &stripes {
        locks.push(CacheLock::acquire(stripe, LockMode::Exclusive)?);
    }
    Ok(locks)
}

/// A file built in the staging folder, and where it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staged {
    /// The complete file under `tmp/`.
    pub from: PathBuf,
    /// Its place in the cache.
    pub to: PathBuf,
}

/// The layer images of a load, each either already under `layers/` or converted into the
/// staging folder.
#[derive(Debug, Default)]
pub(crate) struct PreparedLayers {
    /// Each layer's image size, by `diff_id`.
    pub sizes: HashMap<Digest, u64>,
    /// Where each layer's image can be read now, by `diff_id`.
    readable: HashMap<Digest, PathBuf>,
    /// The converted images, to publish.
    pub staged: Vec<Staged>,
}

impl PreparedLayers {
    /// The images of `diff_ids` (bottom to top) at the paths they can be read from now.
    pub(crate) fn images(&self, diff_ids: &[Digest]) -> Result<Vec<LayerImage>> {
        diff_ids
            .iter()
            .map(|d| {
                let path = self.readable.get(d).ok_or_else(|| {
                    Error::internal(format!("layer {d} was not prepared with its image"))
                })?;
                Ok(LayerImage {
                    path: path.clone(),
                    diff_id: d.clone(),
                })
            })
            .collect()
    }
}

/// Ensures every layer of `layers` has an EROFS image: an existing one under `layers/`, or one
/// converted now (in parallel) from its staged blob into `staging`, every byte written charged
/// to `budget` ([`Error::LimitExceeded`] when it would pass). Nothing is published.
///
/// The caller holds the artifact locks of every `diff_id` (see [`lock_artifacts`]) and the GC
/// lock (shared) until the index names the layers or the load gave up.
pub(crate) fn prepare_layers(
    layout: &Layout,
    staging: &Path,
    layers: &[&StagedLayer],
    budget: &WriteBudget,
) -> Result<PreparedLayers> {
    // One staged layer per diff_id, the lowest position first (for the error to report).
    let mut wanted: BTreeMap<&Digest, &StagedLayer> = BTreeMap::new();
    for layer in layers {
        wanted.entry(&layer.diff_id).or_insert(layer);
    }
    let mut prepared = PreparedLayers::default();
    let mut missing = Vec::new();
    for (diff_id, layer) in &wanted {
        let path = layout.layer(diff_id);
        match existing_size(&path)? {
            Some(size) => {
                prepared.sizes.insert((*diff_id).clone(), size);
                prepared.readable.insert((*diff_id).clone(), path);
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
    for result in converted {
        let (diff_id, staged, size) = result?;
        prepared.staged.push(Staged {
            from: staged.clone(),
            to: layout.layer(&diff_id),
        });
        prepared.sizes.insert(diff_id.clone(), size);
        prepared.readable.insert(diff_id, staged);
    }
    Ok(prepared)
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

/// A manifest's fsmeta image and VMDK descriptor: their sizes, and those built now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageArtifacts {
    /// fsmeta bytes.
    pub fsmeta: u64,
    /// VMDK descriptor bytes.
    pub vmdk: u64,
    /// What was built in the staging folder, to publish in this order (fsmeta first: the
    /// descriptor names it).
    pub staged: Vec<Staged>,
}

/// Ensures the manifest's fsmeta image and VMDK descriptor exist or are built, from `layers`
/// (bottom to top, at paths they can be read from now): when absent from the cache, each is
/// built in `staging`, not published. The same layers always give the same bytes, so an
/// fsmeta or VMDK that exists (even one a killed load left) is as good as a new one.
///
/// The caller holds the manifest's artifact lock (see [`lock_artifacts`]).
pub(crate) fn prepare_image(
    layout: &Layout,
    staging: &Path,
    manifest: &Digest,
    layers: &[LayerImage],
) -> Result<ImageArtifacts> {
    let fsmeta_path = layout.fsmeta(manifest);
    let vmdk_path = layout.vmdk(manifest);
    let mut staged = Vec::new();
    let fsmeta = match existing_size(&fsmeta_path)? {
        Some(size) => size,
        None => {
            let built_at = staging.join(format!("fsmeta-{}.erofs", manifest.hex()));
            let mut uuid = [0u8; 16];
            if let Ok(bytes) = hex::decode(&manifest.hex()[..32]) {
                uuid.copy_from_slice(&bytes);
            }
            let built = build_fsmeta(layers, &built_at, uuid)?;
            staged.push(Staged {
                from: built_at,
                to: fsmeta_path.clone(),
            });
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
            for layer in layers {
                let size = existing_size(&layer.path)?.ok_or_else(|| Error::CorruptCache {
                    reason: format!("layer image {} is missing", layer.path.display()),
                })?;
                extents.push(Extent {
                    path: layout.relative_to_vmdk(&layout.layer(&layer.diff_id)),
                    size,
                });
            }
            let cid = u32::from_str_radix(&manifest.hex()[..8], 16).unwrap_or(0);
            let text = vmdk::descriptor(&extents, cid)?;
            let built_at = store::write_staged(
                staging,
                &format!("vmdk-{}.vmdk", manifest.hex()),
                text.as_bytes(),
            )?;
            staged.push(Staged {
                from: built_at,
                to: vmdk_path,
            });
            text.len() as u64
        }
    };
    Ok(ImageArtifacts {
        fsmeta,
        vmdk,
        staged,
    })
}

/// The files one [`publish`] call created, so that a load failing before its index rows
/// commit can take them back.
#[derive(Debug, Default)]
pub(crate) struct Published {
    created: Vec<PathBuf>,
}

/// Publishes `files` in order ([`store::publish_file`]: fsync, rename, fsync the folder); a
/// destination that already exists is kept (content-addressed and deterministic files of one
/// name have the same bytes). Records in `published` every file it creates, also when it fails
/// part way.
///
/// The caller holds the artifact locks of every destination.
pub(crate) fn publish(files: &[Staged], published: &mut Published) -> Result<()> {
    for file in files {
        match store::publish_file(&file.from, &file.to) {
            Ok(true) => published.created.push(file.to.clone()),
            Ok(false) => {}
            Err(e) => {
                // The rename may have happened before the folder's fsync failed.
                if !file.from.exists() && file.to.exists() {
                    published.created.push(file.to.clone());
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

impl Published {
    /// Deletes the files created, newest first, and fsyncs their folders: for a load whose
    /// index rows did not commit. No index row names these files, and the caller still holds
    /// their artifact locks, so no other load can have started to count on them. Best effort:
    /// a file that cannot be deleted stays an orphan, which the next prune reclaims.
    pub(crate) fn undo(self) {
        let mut folders = BTreeSet::new();
        for path in self.created.iter().rev() {
            if fs::remove_file(path).is_ok()
                && let Some(folder) = path.parent()
            {
                folders.insert(folder.to_path_buf());
            }
        }
        for folder in folders {
            let _ = store::sync_dir(&folder);
        }
    }
}
