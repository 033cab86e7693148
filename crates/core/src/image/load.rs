//! `load`: an archive or OCI layout folder, read through [`crate::archive`], into the cache
//! through the ingest pipeline ([`crate::ingest`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{Cache, handle_from_row, now_ms};
use crate::archive::{self, StagedBlob, StagedImage, StagedLayer};
use crate::artifacts::{self, ImageArtifacts, Published, Staged};
use crate::budget::WriteBudget;
use crate::error::{Error, Result};
use crate::index::{ConfigRow, LayerRow, NewBlob, NewImage};
use crate::oci::{Digest, Platform, Reference};
use crate::store::{LockMode, Root, StagingDir, StagingPurpose};
use crate::{ImageHandle, LoadOptions};

impl Cache {
    /// Imports every image of an archive or OCI layout folder and returns a handle per
    /// reference, in archive order. Everything that can be checked is checked before anything
    /// is published: the index is opened first, every blob, digest and layer is verified, every
    /// layer image, fsmeta and VMDK is built in the load's folder under `tmp/`, and the index
    /// rows of all images are written in one transaction, which commits only once the files are
    /// published. On any failure (bad input, a full disk, a damaged index) the cache is exactly
    /// as it was: no file outside `tmp/` is new, `tmp/` is cleaned, the index is unchanged.
    /// What the load writes is bounded by `options.max_uncompressed_bytes` (or its default):
    /// past it, the load stops with [`Error::LimitExceeded`], before writing the byte that would
    /// pass it.
    ///
    /// `source` must be a regular file or a directory: a FIFO, a device or a socket is
    /// [`Error::InvalidArchive`], refused without being opened (see
    /// [`archive::stage_archive`]). Running out of space is [`Error::NoSpace`], naming the
    /// path under the cache root being written. A folder of the root, a lock file or a layer
    /// image it reuses that is a symlink is [`Error::CorruptCacheEntry`], before anything is
    /// written through it (see [`Root::open`]).
    ///
    /// Loading an image that is already cached only adds references. Concurrent loads (of
    /// any process) are safe; remove and prune wait for them.
    pub fn load(&self, source: &Path, options: &LoadOptions) -> Result<Vec<ImageHandle>> {
        self.local()?;
        let tag = match &options.tag {
            Some(t) => {
                let r = Reference::parse(t)?;
                if r.digest().is_some() {
                    return Err(Error::InvalidReference {
                        input: t.clone(),
                        reason: "a tag to add cannot be a digest reference".into(),
                    });
                }
                Some(r)
            }
            None => None,
        };
        let platform = options.platform.clone().unwrap_or_else(Platform::host);
        if options.max_uncompressed_bytes == Some(0) {
            return Err(Error::InvalidArgument {
                name: "max_uncompressed_bytes".into(),
                reason: "must be at least 1".into(),
            });
        }
        // The root's folders are opened as handles (a symlink among them is refused), and a
        // damaged index, or one of a newer schema, fails the load before anything is staged.
        let root = self.open_root()?;
        let budget = match options.max_uncompressed_bytes {
            Some(limit) => WriteBudget::new(limit),
            None => WriteBudget::free_space(self.layout.root())?,
        };
        let _lock = root.lock_gc(LockMode::Shared)?;
        let staging = root.staging_dir(StagingPurpose::Load)?;
        // Whatever fails names paths under the cache's `tmp/`, never the `/proc/self/fd` path
        // the staging folder is worked in by.
        self.load_staged(&root, &staging, source, &platform, tag.as_ref(), &budget)
            .map_err(|e| staging.describe(e))
    }

    /// The body of [`Cache::load`], once the root is open, the GC lock held (shared) and the
    /// staging folder made: stages `source`, builds every artifact in `staging`, then writes
    /// the index rows and publishes the files in one transaction (taking the files back if it
    /// does not commit).
    fn load_staged(
        &self,
        root: &Root,
        staging: &StagingDir,
        source: &Path,
        platform: &Platform,
        tag: Option<&Reference>,
        budget: &WriteBudget,
    ) -> Result<Vec<ImageHandle>> {
        let images = archive::stage_archive_within(source, staging.path(), platform, budget)?;
        if images.is_empty() {
            return Err(Error::invalid_archive("the archive holds no image"));
        }
        let named = name_images(&images, tag)?;
        let all_layers: Vec<&StagedLayer> = images.iter().flat_map(|i| &i.layers).collect();
        let _artifact_locks = root.lock_artifacts(
            images
                .iter()
                .flat_map(|i| [&i.manifest.digest, &i.config.digest])
                .chain(all_layers.iter().map(|l| &l.diff_id)),
        )?;
        let layers = artifacts::prepare_layers(root, staging, &all_layers, budget)?;
        let mut files = layers.staged.clone();
        for image in &images {
            for blob in blobs_of(image) {
                files.push(Staged {
                    from: blob.path.clone(),
                    to: root.blob(&blob.digest),
                });
            }
        }
        let mut records = Vec::with_capacity(images.len());
        for (image, refs) in images.iter().zip(&named) {
            let diff_ids: Vec<Digest> = image.layers.iter().map(|l| l.diff_id.clone()).collect();
            let built = artifacts::prepare_image(
                root,
                staging,
                &image.manifest.digest,
                &layers.images(&diff_ids)?,
                &layers.sizes,
            )?;
            files.extend(built.staged.iter().cloned());
            let canonical = refs.iter().map(Reference::canonical).collect();
            records.push(new_image(image, &layers.sizes, &built, canonical));
        }
        // Every file is built: write the rows, publish the files, then commit. A failure at
        // any step takes back the files this load created (they are still locked by it).
        let now = now_ms();
        let mut ix = self.index()?;
        let mut published = Published::default();
        if let Err(e) = ix.insert_images(&records, now, || {
            artifacts::publish(staging, &files, &mut published)
        }) {
            published.undo();
            return Err(e);
        }
        let mut out = Vec::new();
        for record in &records {
            for r in &record.references {
                if let Some(row) = ix.get(r)? {
                    out.push(handle_from_row(row));
                }
            }
        }
        Ok(out)
    }
}

/// Decides the references of each staged image; fails before anything is published when an
/// image would have none.
fn name_images(images: &[StagedImage], tag: Option<&Reference>) -> Result<Vec<Vec<Reference>>> {
    let mut named = Vec::with_capacity(images.len());
    for (i, image) in images.iter().enumerate() {
        let mut refs = image.references.clone();
        if let Some(t) = tag.filter(|t| i == 0 && !refs.contains(t)) {
            refs.push(t.clone());
        }
        if refs.is_empty() {
            let available = images
                .iter()
                .map(|im| {
                    let names: Vec<String> = im
                        .references
                        .iter()
                        .map(Reference::familiar)
                        .chain(im.bare_tags.iter().map(|t| format!("ref.name {t:?}")))
                        .collect();
                    if names.is_empty() {
                        im.manifest.digest.to_string()
                    } else {
                        format!("{} ({})", im.manifest.digest, names.join(", "))
                    }
                })
                .collect();
            return Err(Error::ReferenceRequired { available });
        }
        named.push(refs);
    }
    Ok(named)
}

/// The blobs a load keeps: manifest and config (layer blobs only feed their EROFS images).
fn blobs_of(image: &StagedImage) -> impl Iterator<Item = &StagedBlob> {
    [&image.manifest, &image.config].into_iter()
}

fn new_image(
    image: &StagedImage,
    layer_sizes: &HashMap<Digest, u64>,
    artifacts: &ImageArtifacts,
    references: Vec<String>,
) -> NewImage {
    let c = &image.config_info;
    let blobs = vec![
        NewBlob {
            digest: image.manifest.digest.to_string(),
            size: image.manifest.size as i64,
            kind: "manifest",
        },
        NewBlob {
            digest: image.config.digest.to_string(),
            size: image.config.size as i64,
            kind: "config",
        },
    ];
    let mut seen = HashSet::new();
    let mut disk = image.manifest.size + image.config.size + artifacts.fsmeta + artifacts.vmdk;
    for l in &image.layers {
        if seen.insert(l.diff_id.clone()) {
            disk += layer_sizes.get(&l.diff_id).copied().unwrap_or(0);
        }
    }
    NewImage {
        blobs,
        config: ConfigRow::encode(&image.config.digest, c),
        manifest_digest: image.manifest.digest.to_string(),
        media_type: image.manifest_media_type.clone(),
        architecture: c.platform.architecture.clone(),
        os: c.platform.os.clone(),
        variant: c.platform.variant.clone(),
        total_size: (image.manifest.size
            + image.config.size
            + image.layers.iter().map(|l| l.blob.size).sum::<u64>()) as i64,
        disk_size: disk as i64,
        fsmeta_size: Some(artifacts.fsmeta as i64),
        vmdk_size: Some(artifacts.vmdk as i64),
        layers: image
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerRow {
                position: i as i64,
                diff_id: l.diff_id.to_string(),
                blob_digest: l.blob.digest.to_string(),
                media_type: l.media_type.clone(),
                compressed_size: l.blob.size as i64,
                erofs_size: layer_sizes.get(&l.diff_id).map(|s| *s as i64),
            })
            .collect(),
        references,
    }
}
