//! The one ingest pipeline: image sources in ([`crate::source`], from an archive now and a
//! registry later), published artifacts and one index transaction out.
//!
//! For every load, in this order (`prepare`, then `Prepared::commit`):
//!
//! 1. Take the artifact locks of every digest the images name (manifests, configs, layer
//!    `diff_id`s), all at once in sorted order ([`Root::lock_artifacts`]).
//! 2. For each distinct `diff_id`, look for its layer image under `layers/`: a cached layer is
//!    skipped, its blob neither opened, copied nor hashed (its `diff_id` comes from the verified
//!    config). Every other layer is opened once and streamed through its blob digest, its
//!    `diff_id` and the EROFS conversion in one pass ([`crate::layer::convert_layer_from`]),
//!    into the staging folder; layers of a source read in place convert several at once, those
//!    of a stream one at a time as the stream reaches them.
//! 3. Per manifest, build its fsmeta and VMDK from the layer images (unless cached), and stage
//!    its manifest and config blobs (unless cached).
//! 4. Write the index rows of every image in one transaction, publish the staged files inside
//!    it, and commit; if publishing or the commit fails, take back the files this load created
//!    (`Published::undo`) before the locks are released.
//!
//! Every byte written is charged to [`IngestOptions::budget`], every read checks
//! [`IngestOptions::cancel`]; a failure anywhere before the commit leaves the cache exactly as
//! it was (the staging folder is the caller's, deleted when it drops). Files are fsynced once:
//! by their writer (layer and fsmeta images) or when published (blobs, VMDK descriptors).
//!
//! Locking: the caller holds the GC lock shared from before the staging folder exists until
//! `Prepared::commit` returns; the artifact locks are held by `Prepared` from the first look
//! at `layers/` until it commits or drops.

mod artifacts;
mod layers;

pub(crate) use artifacts::{ImageArtifacts, Published, Staged, prepare_image, publish};

use std::collections::HashSet;

use crate::budget::WriteBudget;
use crate::cancel::Cancel;
use crate::error::Result;
use crate::index::{ConfigRow, Index, LayerRow, NewBlob, NewImage, UseRow};
use crate::oci::{Digest, Reference};
use crate::progress::{Progress, ProgressEvent, emit};
use crate::source::ImageSource;
use crate::store::{CacheLock, Root, StagingDir};

use layers::PreparedLayers;

/// What bounds and stops a load.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Charged with every byte written to the staging folder: layer images (holes excluded),
    /// the manifest and config blobs. The fsmeta image and VMDK descriptor, metadata built from
    /// the layer images, are not charged.
    pub budget: WriteBudget,
    /// Checked at every read of a blob and before the commit.
    pub cancel: Cancel,
    /// Receives the layer events (cached, read so far, verified, converted) and one
    /// `Stitched` per image.
    pub progress: Option<Progress>,
}

/// A load ready to commit: every file built in the staging folder, the index rows decided, the
/// artifact locks held.
pub(crate) struct Prepared<'r> {
    _locks: Vec<CacheLock>,
    files: Vec<Staged<'r>>,
    records: Vec<NewImage>,
}

/// Builds everything `images` need that the cache lacks (steps 1 to 3 of the module docs).
pub(crate) fn prepare<'r>(
    root: &'r Root,
    staging: &StagingDir,
    images: &[ImageSource],
    options: &IngestOptions,
) -> Result<Prepared<'r>> {
    let locks = root.lock_artifacts(images.iter().flat_map(|i| {
        [&i.manifest.descriptor.digest, &i.config.descriptor.digest]
            .into_iter()
            .chain(&i.config_info.diff_ids)
    }))?;
    let layers = layers::prepare_layers(root, staging, images, options)?;
    let mut files = layers.staged.clone();
    let mut staged_blobs = HashSet::new();
    for image in images {
        for blob in [&image.manifest, &image.config] {
            let digest = &blob.descriptor.digest;
            if staged_blobs.insert(digest.clone()) && root.blob(digest).file_size()?.is_none() {
                options.budget.charge(blob.bytes.len() as u64)?;
                files.push(Staged {
                    from: staging.write(&format!("blob-{}", digest.hex()), &blob.bytes)?,
                    to: root.blob(digest),
                    synced: false,
                });
            }
        }
    }
    let mut records = Vec::with_capacity(images.len());
    for image in images {
        let built = prepare_image(
            root,
            staging,
            &image.manifest.descriptor.digest,
            &layers.images(&image.config_info.diff_ids)?,
            &layers.sizes,
        )?;
        files.extend(built.staged.iter().cloned());
        emit(
            options.progress.as_ref(),
            ProgressEvent::Stitched {
                manifest_digest: image.manifest.descriptor.digest.clone(),
                fsmeta_bytes: built.fsmeta,
                vmdk_bytes: built.vmdk,
            },
        );
        records.push(new_image(image, &layers, &built));
    }
    options.cancel.check("the load")?;
    Ok(Prepared {
        _locks: locks,
        files,
        records,
    })
}

impl Prepared<'_> {
    /// Step 4: the rows of every image in one transaction, image `i` named by `names[i]`, the
    /// files published inside it, the commit; on failure the files this load created are taken
    /// back, beneath the folder handles they were published through, and nothing is recorded.
    /// Then the artifact locks are released. Returns the canonical references recorded.
    pub(crate) fn commit(
        self,
        names: &[Vec<Reference>],
        ix: &mut Index,
        staging: &StagingDir,
        now: i64,
    ) -> Result<Vec<String>> {
        self.commit_with_use(names, ix, staging, now, None)
            .map(|(references, _)| references)
    }

    /// [`Prepared::commit`] that records `use_row` in the same transaction (a pull that pins
    /// what it pulls); returns the use recorded too.
    pub(crate) fn commit_with_use(
        mut self,
        names: &[Vec<Reference>],
        ix: &mut Index,
        staging: &StagingDir,
        now: i64,
        use_row: Option<&UseRow>,
    ) -> Result<(Vec<String>, Option<UseRow>)> {
        for (record, refs) in self.records.iter_mut().zip(names) {
            record.references = refs.iter().map(Reference::canonical).collect();
        }
        let mut published = Published::default();
        let recorded = match ix.insert_images_with_use(&self.records, now, use_row, || {
            publish(staging, &self.files, &mut published)
        }) {
            Ok(recorded) => recorded,
            Err(e) => {
                published.undo();
                return Err(e);
            }
        };
        let references = self
            .records
            .into_iter()
            .flat_map(|r| r.references)
            .collect();
        Ok((references, recorded))
    }
}

/// The rows of one image: its blobs, config, manifest (with the bytes on disk of everything it
/// uses: manifest and config blobs, each distinct layer image, fsmeta and VMDK) and layers; its
/// references are set when it commits.
fn new_image(
    image: &ImageSource,
    layers: &PreparedLayers<'_>,
    artifacts: &ImageArtifacts<'_>,
) -> NewImage {
    let (manifest, config) = (&image.manifest.descriptor, &image.config.descriptor);
    let c = &image.config_info;
    let blobs = vec![
        NewBlob {
            digest: manifest.digest.to_string(),
            size: manifest.size as i64,
            kind: "manifest",
        },
        NewBlob {
            digest: config.digest.to_string(),
            size: config.size as i64,
            kind: "config",
        },
    ];
    let mut seen: HashSet<&Digest> = HashSet::new();
    let mut disk = manifest.size + config.size + artifacts.fsmeta + artifacts.vmdk;
    for diff_id in &c.diff_ids {
        if seen.insert(diff_id) {
            disk += layers.sizes.get(diff_id).copied().unwrap_or(0);
        }
    }
    NewImage {
        blobs,
        config: ConfigRow::encode(&config.digest, c),
        manifest_digest: manifest.digest.to_string(),
        media_type: manifest.media_type.clone(),
        architecture: c.platform.architecture.clone(),
        os: c.platform.os.clone(),
        variant: c.platform.variant.clone(),
        total_size: (manifest.size
            + config.size
            + image
                .layers
                .iter()
                .map(|l| l.descriptor().size)
                .sum::<u64>()) as i64,
        disk_size: disk as i64,
        fsmeta_size: Some(artifacts.fsmeta as i64),
        vmdk_size: Some(artifacts.vmdk as i64),
        fsmeta_hash: artifacts.fsmeta_hash.clone(),
        vmdk_hash: artifacts.vmdk_hash.clone(),
        layers: image
            .layers
            .iter()
            .zip(&c.diff_ids)
            .enumerate()
            .map(|(i, (l, diff_id))| LayerRow {
                position: i as i64,
                diff_id: diff_id.to_string(),
                blob_digest: l.descriptor().digest.to_string(),
                media_type: l.descriptor().media_type.clone(),
                compressed_size: l.descriptor().size as i64,
                erofs_size: layers.sizes.get(diff_id).map(|s| *s as i64),
                erofs_hash: layers.hashes.get(diff_id).cloned(),
            })
            .collect(),
        references: Vec::new(),
        origin: image.origin.clone(),
    }
}
