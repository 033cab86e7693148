//! `verify` and `repair`: the index's records of each image against its files, through
//! [`crate::check`]; and the quick check `boot_disk` runs before it hands out paths.
//!
//! Repair rebuilds a damaged or missing fsmeta image or VMDK descriptor from the layer images
//! (the builders are deterministic: the same layers give the same bytes, so the rebuilt file
//! is byte for byte the one the load wrote). A damaged or missing layer image cannot be
//! rebuilt from the cache (its blob is not kept): it is taken away (so that the next load or
//! pull of an image with that layer converts it again, rather than skipping it as cached), and
//! every image listing it is marked broken, which `boot_disk` refuses with
//! [`Error::CorruptCache`] until a load of the image clears the mark. Where an image came from
//! a registry (its origin is recorded) and [`RepairOptions::refetch`] allows it, the layer is
//! fetched again from there instead (`Cache::refetch_image`), by the manifest's digest.
//!
//! Locking: both hold the GC lock shared (no prune deletes what they read); repair takes the
//! artifact locks of what it deletes or rebuilds (a load of the same image waits, and then
//! finds the file rebuilt, or missing and converts it), and releases a layer's before fetching
//! it again (the fetch's ingest takes it, as a pull's does).

use std::collections::HashMap;

use super::{Cache, resolve};
use crate::check::{self, Checked, Expect, Recorded};
use crate::erofs::LayerImage;
use crate::error::{Error, Result};
use crate::index::{Index, ManifestArtifacts, stored_digest};
use crate::ingest::{self, Published};
use crate::oci::{Digest, familiar_from_canonical};
use crate::store::{LockMode, Root, StagingPurpose};
use crate::vmdk::{self, Extent};
use crate::{
    ArtifactKind, CheckReport, FetchError, ImageCheck, Problem, ProblemKind, RepairOptions,
    VerifyOptions,
};

/// What the index records of one image, to check its files against.
struct ImageRecord {
    manifest: Digest,
    references: Vec<String>,
    blobs: Vec<(Digest, Option<u64>)>,
    /// Distinct layers, bottom to top: diff_id, recorded size and hash.
    layers: Vec<(Digest, Option<u64>, Option<String>)>,
    /// Every layer of the manifest in order (a layer may be listed twice).
    order: Vec<Digest>,
    artifacts: ManifestArtifacts,
}

impl ImageRecord {
    fn read(ix: &Index, manifest: &str) -> Result<Option<ImageRecord>> {
        let Some(artifacts) = ix.artifacts_of(manifest)? else {
            return Ok(None);
        };
        let mut references: Vec<String> = ix
            .refs_of(manifest)?
            .into_iter()
            .map(|r| familiar_from_canonical(&r.reference).to_owned())
            .collect();
        if references.is_empty() {
            let uses: Vec<String> = ix
                .uses(Some(manifest))?
                .into_iter()
                .map(|u| u.reference)
                .collect();
            references = super::untagged_names(manifest, &uses)
                .iter()
                .map(|n| familiar_from_canonical(n).to_owned())
                .collect();
        }
        let mut blobs = vec![(
            stored_digest(manifest)?,
            ix.blob_size(manifest)?.map(|s| s as u64),
        )];
        if let Some(config) = ix.config_digest_of(manifest)? {
            let size = ix.blob_size(&config)?.map(|s| s as u64);
            blobs.push((stored_digest(&config)?, size));
        }
        let mut layers: Vec<(Digest, Option<u64>, Option<String>)> = Vec::new();
        let mut order = Vec::new();
        for l in ix.layers_of(manifest)? {
            let diff_id = stored_digest(&l.diff_id)?;
            order.push(diff_id.clone());
            if !layers.iter().any(|(d, _, _)| *d == diff_id) {
                layers.push((diff_id, l.erofs_size.map(|s| s as u64), l.erofs_hash));
            }
        }
        Ok(Some(ImageRecord {
            manifest: stored_digest(manifest)?,
            references,
            blobs,
            layers,
            order,
            artifacts,
        }))
    }

    /// The VMDK descriptor the recorded sizes give, when every size is recorded.
    fn expected_vmdk(&self, root: &Root) -> Option<String> {
        let layout = root.layout();
        let mut extents = vec![Extent {
            path: layout.relative_to_vmdk(&layout.fsmeta(&self.manifest)),
            size: self.artifacts.fsmeta_size? as u64,
        }];
        for diff_id in &self.order {
            let size = self.layers.iter().find(|(d, _, _)| d == diff_id)?.1?;
            extents.push(Extent {
                path: layout.relative_to_vmdk(&layout.layer(diff_id)),
                size,
            });
        }
        vmdk::descriptor(&extents, vmdk::cid(&self.manifest)).ok()
    }
}

/// Results of layer checks shared by the images of one verify or repair: a layer used by
/// several images is read once, and its bytes count for the first image that lists it.
#[derive(Default)]
struct LayerChecks {
    /// Checked and counted by an image already.
    seen: HashMap<Digest, Checked>,
    /// Checked ahead (in parallel), not yet counted by any image.
    ahead: HashMap<Digest, Checked>,
}

impl LayerChecks {
    /// Checks every distinct layer image of `records` at once, one artifact per thread of
    /// rayon's pool (one per core): a full check reads and hashes whole images, and several
    /// streams keep both the disk and the cores busy where one would wait on each in turn.
    fn ahead(root: &Root, records: &[ImageRecord], full: bool) -> Result<LayerChecks> {
        use rayon::prelude::*;
        let mut distinct: Vec<&(Digest, Option<u64>, Option<String>)> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for layer in records.iter().flat_map(|r| &r.layers) {
            if names.insert(&layer.0) {
                distinct.push(layer);
            }
        }
        // The largest first, so that the last image read is a small one.
        distinct.sort_by_key(|(_, size, _)| std::cmp::Reverse(size.unwrap_or(0)));
        let ahead = distinct
            .into_par_iter()
            .map(|(diff_id, size, hash)| {
                check_layer(root, diff_id, *size, hash.as_deref(), full)
                    .map(|c| (diff_id.clone(), c))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(LayerChecks {
            seen: HashMap::new(),
            ahead,
        })
    }
}

fn check_layer(
    root: &Root,
    diff_id: &Digest,
    size: Option<u64>,
    hash: Option<&str>,
    full: bool,
) -> Result<Checked> {
    check::check_artifact(
        &Recorded {
            kind: ArtifactKind::Layer,
            entry: root.layer(diff_id),
            size,
            hash,
            expect: Expect::Erofs(diff_id),
        },
        full,
    )
}

/// The checks of one image's layer images, in order; results of layers shared with images
/// checked before (or checked ahead) come from `checks`.
fn check_layers(
    root: &Root,
    record: &ImageRecord,
    full: bool,
    checks: &mut LayerChecks,
) -> Result<Vec<Checked>> {
    let mut out = Vec::with_capacity(record.layers.len());
    for (diff_id, size, hash) in &record.layers {
        if let Some(done) = checks.seen.get(diff_id) {
            out.push(Checked {
                bytes_read: 0,
                ..done.clone()
            });
            continue;
        }
        let checked = match checks.ahead.remove(diff_id) {
            Some(checked) => checked,
            None => check_layer(root, diff_id, *size, hash.as_deref(), full)?,
        };
        checks.seen.insert(diff_id.clone(), checked.clone());
        out.push(checked);
    }
    Ok(out)
}

/// The checks of an image's fsmeta image and VMDK descriptor.
fn check_own(root: &Root, record: &ImageRecord, full: bool) -> Result<[Checked; 2]> {
    let vmdk_text = record.expected_vmdk(root);
    let a = &record.artifacts;
    Ok([
        check::check_artifact(
            &Recorded {
                kind: ArtifactKind::Fsmeta,
                entry: root.fsmeta(&record.manifest),
                size: a.fsmeta_size.map(|s| s as u64),
                hash: a.fsmeta_hash.as_deref(),
                expect: Expect::Erofs(&record.manifest),
            },
            full,
        )?,
        check::check_artifact(
            &Recorded {
                kind: ArtifactKind::Vmdk,
                entry: root.vmdk(&record.manifest),
                size: a.vmdk_size.map(|s| s as u64),
                hash: a.vmdk_hash.as_deref(),
                expect: Expect::Vmdk(vmdk_text.as_deref()),
            },
            full,
        )?,
    ])
}

/// Every check of one image: blobs, layers, fsmeta, VMDK.
fn check_image(
    root: &Root,
    record: &ImageRecord,
    full: bool,
    seen: &mut LayerChecks,
) -> Result<ImageCheck> {
    let mut checks = Vec::new();
    for (digest, size) in &record.blobs {
        checks.push(check::check_artifact(
            &Recorded {
                kind: ArtifactKind::Blob,
                entry: root.blob(digest),
                size: *size,
                hash: None,
                expect: Expect::Blob(digest),
            },
            full,
        )?);
    }
    checks.extend(check_layers(root, record, full, seen)?);
    checks.extend(check_own(root, record, full)?);
    Ok(ImageCheck {
        manifest_digest: record.manifest.to_string(),
        references: record.references.clone(),
        artifacts: checks.len() as u32,
        bytes_read: checks.iter().map(|c| c.bytes_read).sum(),
        problems: checks.into_iter().filter_map(|c| c.problem).collect(),
        repaired: Vec::new(),
        broken: record.artifacts.broken.clone(),
        origin: record.artifacts.origin.clone(),
        fetch_error: None,
    })
}

impl Cache {
    /// Checks the files of `reference` (any form [`Cache::get`] takes), or of every image,
    /// against what the index recorded when they were written: quick (existence, size, EROFS
    /// superblocks and the volumes they name, VMDK text) or, with `full`, also every byte
    /// re-hashed and every EROFS image's metadata re-parsed. Changes nothing. A cache that does
    /// not exist has no images (and is not created).
    ///
    /// Errors: [`Error::ImageNotFound`], [`Error::InvalidReference`] for `reference`;
    /// [`Error::Io`] when a file cannot be read for another reason than its damage.
    pub fn verify(&self, reference: Option<&str>, options: &VerifyOptions) -> Result<CheckReport> {
        self.local()?;
        let report = |images| report(images, options.full, true);
        if self.existing_index()?.is_none() {
            return missing_cache(reference).map(report);
        }
        let root = self.open_root()?;
        let _lock = root.lock_gc(LockMode::Shared)?;
        let records = self.records(reference)?;
        let mut seen = LayerChecks::ahead(&root, &records, options.full)?;
        let images = records
            .iter()
            .map(|r| check_image(&root, r, options.full, &mut seen))
            .collect::<Result<Vec<_>>>()?;
        Ok(report(images))
    }

    /// Verifies fully (as [`Cache::verify`] with `full`), then repairs what it can: a missing
    /// or damaged fsmeta image or VMDK descriptor is rebuilt from the layer images, byte for
    /// byte what the load wrote; a missing or damaged layer image is fetched again from the
    /// registry repository the image was pulled from (with [`RepairOptions::refetch`], for an
    /// image whose origin is recorded), or else taken away and every image listing it marked
    /// broken (`boot_disk` refuses it with [`Error::CorruptCache`] until the image is loaded or
    /// pulled again); a damaged blob is reported. An image marked broken whose files are all
    /// sound again loses the mark. The report lists per image what was repaired (or, with
    /// `dry_run`, would be) and the problems left, and why a fetch failed.
    ///
    /// An image marked broken early in a repair, for a layer that an image repaired after it
    /// then fetched back from its own origin, is repaired again at the end (its mark goes).
    /// Idempotent: a second repair finds nothing new to do. A killed repair leaves at worst a
    /// missing fsmeta, VMDK or layer image, which the next repair, load or pull rebuilds (and
    /// `boot_disk` refuses meanwhile, or rebuilds for the fsmeta and VMDK).
    pub fn repair(&self, reference: Option<&str>, options: &RepairOptions) -> Result<CheckReport> {
        self.local()?;
        let dry_run = options.dry_run;
        let report = |images| report(images, true, dry_run);
        if self.existing_index()?.is_none() {
            return missing_cache(reference).map(report);
        }
        if let Some(registry) = &options.refetch {
            registry.validate()?;
        }
        let root = self.open_root()?;
        let _lock = root.lock_gc(LockMode::Shared)?;
        let records = self.records(reference)?;
        let mut seen = LayerChecks::ahead(&root, &records, true)?;
        // Images that can fetch their damaged layers go first: a layer one brings back is
        // sound for the images after it, which then need neither a fetch nor a broken mark.
        let mut order: Vec<usize> = (0..records.len()).collect();
        if options.refetch.is_some() {
            order.sort_by_key(|&i| records[i].artifacts.origin.is_none());
        }
        let mut images: Vec<Option<ImageCheck>> = vec![None; records.len()];
        let mut marked = Vec::new();
        for i in order {
            let (checked, left) = self.repair_image(&root, &records[i], options, &mut seen)?;
            if !left.is_empty() && !dry_run {
                marked.push((i, left));
            }
            images[i] = Some(checked);
        }
        // An image marked broken for a layer that an image repaired after it brought back
        // (from its own origin) is repaired again now that the layer is sound: its fsmeta and
        // VMDK are rebuilt if need be, and the mark goes.
        for (i, left) in marked {
            let back = left.iter().all(|d| {
                d.as_ref()
                    .and_then(|d| seen.seen.get(d))
                    .is_some_and(|c| c.problem.is_none())
            });
            if !back {
                continue;
            }
            let Some(first) = images[i].take() else {
                continue;
            };
            let record = self.reread(&records[i])?;
            let again = RepairOptions {
                dry_run: false,
                refetch: None,
            };
            let (mut checked, _) = self.repair_image(&root, &record, &again, &mut seen)?;
            let mut repaired = first.repaired;
            repaired.extend(
                first
                    .problems
                    .into_iter()
                    .filter(|p| p.artifact == ArtifactKind::Layer),
            );
            repaired.extend(checked.repaired);
            checked.repaired = repaired;
            checked.artifacts = first.artifacts;
            checked.bytes_read += first.bytes_read;
            checked.fetch_error = first.fetch_error;
            images[i] = Some(checked);
        }
        Ok(report(images.into_iter().flatten().collect()))
    }

    /// Repairs one image (see [`Cache::repair`]); returns its check and the diff_ids of the
    /// damaged layers left (taken away, the image marked broken; `None` for a problem no layer
    /// of the record names).
    fn repair_image(
        &self,
        root: &Root,
        record: &ImageRecord,
        options: &RepairOptions,
        seen: &mut LayerChecks,
    ) -> Result<(ImageCheck, Vec<Option<Digest>>)> {
        let dry_run = options.dry_run;
        let mut checked = check_image(root, record, true, seen)?;
        let (layer_problems, rest): (Vec<Problem>, Vec<Problem>) =
            std::mem::take(&mut checked.problems)
                .into_iter()
                .partition(|p| p.artifact == ArtifactKind::Layer);
        let mut left = Vec::new();
        let mut own = Vec::new();
        for p in rest {
            match p.artifact {
                ArtifactKind::Fsmeta | ArtifactKind::Vmdk => own.push(p),
                _ => left.push(p),
            }
        }
        let damaged: Vec<(Problem, Option<Digest>)> = layer_problems
            .into_iter()
            .map(|p| {
                let diff_id = record
                    .layers
                    .iter()
                    .map(|(d, _, _)| d)
                    .find(|d| root.layer(d).path() == p.path)
                    .cloned();
                (p, diff_id)
            })
            .collect();
        let fetch_from = match (&options.refetch, &record.artifacts.origin) {
            (Some(registry), Some(origin)) if !damaged.is_empty() => Some((registry, origin)),
            _ => None,
        };
        let mut fresh = None;
        let layers_left = match fetch_from {
            None => damaged,
            Some(_) if dry_run => {
                checked.repaired.extend(damaged.into_iter().map(|(p, _)| p));
                Vec::new()
            }
            Some((registry, origin)) => {
                for diff_id in damaged.iter().filter_map(|(_, d)| d.as_ref()) {
                    let _locks = root.lock_artifacts([diff_id])?;
                    take_away(root, diff_id)?;
                }
                // Without the layer's artifact lock: the fetch's ingest takes it (a load
                // or pull of the layer meanwhile converts it, and the fetch skips it).
                match self.refetch_image(origin, &record.manifest, registry) {
                    Ok(()) => {
                        let again = self.reread(record)?;
                        let mut still = Vec::new();
                        for (p, diff_id) in damaged {
                            let layer = diff_id
                                .as_ref()
                                .and_then(|d| again.layers.iter().find(|(l, _, _)| l == d));
                            let sound = match layer {
                                Some((d, size, hash)) => {
                                    let c = check_layer(root, d, *size, hash.as_deref(), true)?;
                                    let sound = c.problem.is_none();
                                    seen.seen.insert(d.clone(), c);
                                    sound
                                }
                                None => false,
                            };
                            if sound {
                                checked.repaired.push(p);
                            } else {
                                still.push((p, diff_id));
                            }
                        }
                        checked.broken = again.artifacts.broken.clone();
                        fresh = Some(again);
                        still
                    }
                    Err(e) => {
                        checked.fetch_error = Some(FetchError {
                            origin: origin.clone(),
                            code: e.code().to_owned(),
                            message: e.to_string(),
                        });
                        damaged
                    }
                }
            }
        };
        let record = fresh.as_ref().unwrap_or(record);
        let left_ids: Vec<Option<Digest>> = layers_left.iter().map(|(_, d)| d.clone()).collect();
        if !layers_left.is_empty() {
            let (first, _) = &layers_left[0];
            let remedy = match (&checked.fetch_error, &record.artifacts.origin) {
                (Some(f), _) => format!(
                    "fetching it again from {} failed ({}); repair again once the registry answers, or load the image again",
                    f.origin, f.code
                ),
                (None, Some(_)) => {
                    "pull the image again, or repair with registry access".to_owned()
                }
                (None, None) => "load the image again".to_owned(),
            };
            let reason = format!(
                "layer image {} is damaged ({}); {remedy}",
                first.path.display(),
                first.kind.as_str()
            );
            if !dry_run {
                let own = record.manifest.to_string();
                for (_, diff_id) in &layers_left {
                    let Some(diff_id) = diff_id else { continue };
                    let _locks = root.lock_artifacts([diff_id])?;
                    take_away(root, diff_id)?;
                    let mut ix = self.index()?;
                    // The other images listing the layer get this reason until their own
                    // turn in this repair (or the next) gives theirs.
                    for m in ix.manifests_using_layer(&diff_id.to_string())? {
                        if m != own {
                            ix.mark_broken_unless_marked(&m, &reason)?;
                        }
                    }
                }
                self.index()?.set_broken(&own, Some(&reason))?;
                checked.broken = Some(reason);
            }
            // The fsmeta and VMDK are built from the layer images: not before they are back.
            left.extend(own);
            left.extend(layers_left.into_iter().map(|(p, _)| p));
        } else {
            if !own.is_empty() && !dry_run {
                self.rebuild(root, record, &own)?;
                // What was rebuilt is checked again; anything still wrong is left.
                for c in check_own(root, &self.reread(record)?, true)? {
                    left.extend(c.problem);
                }
            }
            checked
                .repaired
                .extend(own.into_iter().filter(|p| !left.contains(p)));
            if left.is_empty() && checked.broken.is_some() && !dry_run {
                self.index()?
                    .set_broken(&record.manifest.to_string(), None)?;
                checked.broken = None;
            }
        }
        checked.problems = left;
        Ok((checked, left_ids))
    }

    /// The records of `reference`'s manifest, or of every manifest.
    fn records(&self, reference: Option<&str>) -> Result<Vec<ImageRecord>> {
        let ix = self.index()?;
        let manifests = match reference {
            Some(text) => vec![resolve(&ix, text)?.manifest().to_owned()],
            None => ix.manifest_digests()?,
        };
        let mut out = Vec::with_capacity(manifests.len());
        for m in manifests {
            out.extend(ImageRecord::read(&ix, &m)?);
        }
        Ok(out)
    }

    fn reread(&self, record: &ImageRecord) -> Result<ImageRecord> {
        ImageRecord::read(&*self.index()?, &record.manifest.to_string())?.ok_or_else(|| {
            Error::ImageNotFound {
                reference: record.manifest.to_string(),
            }
        })
    }

    /// Takes away the damaged fsmeta and VMDK `problems` name, then builds what is missing from
    /// the layer images and records the new sizes and hashes, under the manifest's artifact
    /// lock.
    fn rebuild(&self, root: &Root, record: &ImageRecord, problems: &[Problem]) -> Result<()> {
        let manifest = &record.manifest;
        let _lock = root.lock_artifacts([manifest])?;
        for p in problems {
            let entry = match p.artifact {
                ArtifactKind::Fsmeta => root.fsmeta(manifest),
                _ => root.vmdk(manifest),
            };
            if p.kind != ProblemKind::Missing {
                entry.remove_file()?;
            }
        }
        self.build_missing(root, manifest, &record.order)
    }

    /// Builds the fsmeta image and VMDK descriptor of `manifest` when missing, from the layer
    /// images of `diff_ids` (bottom to top), and records them. The caller holds the manifest's
    /// artifact lock and the GC lock.
    pub(super) fn build_missing(
        &self,
        root: &Root,
        manifest: &Digest,
        diff_ids: &[Digest],
    ) -> Result<()> {
        let mut sizes = HashMap::with_capacity(diff_ids.len());
        for diff_id in diff_ids {
            let size = root
                .layer(diff_id)
                .file_size()?
                .ok_or_else(|| Error::CorruptCache {
                    reason: format!(
                        "layer image {} is missing; load the image again",
                        root.layout().layer(diff_id).display()
                    ),
                })?;
            sizes.insert(diff_id.clone(), size);
        }
        let staging = root.staging_dir(StagingPurpose::Rebuild)?;
        let images: Vec<LayerImage> = diff_ids
            .iter()
            .map(|diff_id| LayerImage {
                path: root.layout().layer(diff_id),
                diff_id: diff_id.clone(),
            })
            .collect();
        let built = ingest::prepare_image(root, &staging, manifest, &images, &sizes)
            .and_then(|built| {
                ingest::publish(&staging, &built.staged, &mut Published::default())?;
                Ok(built)
            })
            .map_err(|e| staging.describe(e))?;
        self.index()?.set_image_artifacts(
            &manifest.to_string(),
            (built.fsmeta as i64, built.fsmeta_hash.as_deref()),
            (built.vmdk as i64, built.vmdk_hash.as_deref()),
        )
    }

    /// The quick check of `boot_disk`: refuses an image marked broken, or whose layer images,
    /// fsmeta image or VMDK descriptor are damaged, with [`Error::CorruptCache`]; a missing
    /// fsmeta or VMDK is not a refusal (the caller rebuilds it).
    pub(super) fn boot_check(&self, root: &Root, manifest: &str, reference: &str) -> Result<()> {
        let record = {
            let ix = self.index()?;
            ImageRecord::read(&ix, manifest)?.ok_or_else(|| super::not_found(reference))?
        };
        if let Some(reason) = &record.artifacts.broken {
            return Err(Error::CorruptCache {
                reason: format!("{reference} is marked broken: {reason}"),
            });
        }
        // Something other than a regular file is refused as such (CorruptCacheEntry).
        for (diff_id, _, _) in &record.layers {
            root.layer(diff_id).file_size()?;
        }
        root.fsmeta(&record.manifest).file_size()?;
        root.vmdk(&record.manifest).file_size()?;
        let layers = check_layers(root, &record, false, &mut LayerChecks::default())?;
        let own = check_own(root, &record, false)?;
        let refuse = |p: &Problem| Error::CorruptCache {
            reason: match p.kind {
                ProblemKind::Missing => format!(
                    "layer image {} of {reference} is missing; load the image again",
                    p.path.display()
                ),
                kind => format!(
                    "{} {} of {reference} is damaged ({}); run `ocicache check --repair`",
                    p.artifact.as_str(),
                    p.path.display(),
                    kind.as_str()
                ),
            },
        };
        for c in &layers {
            if let Some(p) = &c.problem {
                return Err(refuse(p));
            }
        }
        for c in &own {
            if let Some(p) = c
                .problem
                .as_ref()
                .filter(|p| p.kind != ProblemKind::Missing)
            {
                return Err(refuse(p));
            }
        }
        Ok(())
    }
}

/// Deletes a damaged layer image (a symlink is unlinked, never followed; a folder stays, and
/// is reported again), so that the next load converts the layer again.
fn take_away(root: &Root, diff_id: &Digest) -> Result<()> {
    let entry = root.layer(diff_id);
    match entry.file_size() {
        Ok(Some(_)) | Err(Error::CorruptCacheEntry { .. }) => match entry.remove_file() {
            Ok(()) => entry.folder().sync(),
            Err(_) if entry.file_size().is_err() => Ok(()),
            Err(e) => Err(e),
        },
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The report of a verify or repair over `images`.
fn report(images: Vec<ImageCheck>, full: bool, dry_run: bool) -> CheckReport {
    CheckReport {
        problems: images.iter().map(|i| i.problems.len() as u32).sum(),
        images,
        full,
        dry_run,
    }
}

/// What a verify or repair finds in a cache that does not exist: nothing to check, unless a
/// reference was named.
fn missing_cache(reference: Option<&str>) -> Result<Vec<ImageCheck>> {
    match reference {
        Some(text) => Err(super::not_found(text)),
        None => Ok(Vec::new()),
    }
}
