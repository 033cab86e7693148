//! `remove`, `prune` and `disk_usage`: what goes is decided in the index, in the transaction
//! that deletes ([`crate::index::Index::collect_planned`]); the files go afterwards
//! ([`crate::gc`]).

use std::collections::HashSet;

use super::{Cache, now_ms, resolve};
use crate::error::{Error, Result};
use crate::gc::{self, Planned, Reconciled};
use crate::index::{self, Candidate, CandidateFilter, Index, Removal};
use crate::oci::{Reference, familiar_from_canonical};
use crate::store::{LockMode, Root};
use crate::{
    DiskUsage, ImageDiskUsage, ImageDiskUsageRef, ImagePruneReport, PruneOptions, PrunedReference,
};

impl Cache {
    /// Removes `reference` (every reference of that repository pointing at the manifest, for
    /// a digest reference). Without `force`, fails with [`Error::ImageInUse`] while an
    /// unexpired use pins the manifest. Then the manifest, config and layers nothing else names
    /// are deleted from the index and from disk; data a use still pins stays until the use is
    /// released (or expires) and a later prune or remove collects it. Returns what was
    /// reclaimed.
    ///
    /// The reference is resolved, its holders checked and the removal planned inside the
    /// transaction that deletes (holding the exclusive GC lock): a use acquired concurrently
    /// in any process either makes this fail with [`Error::ImageInUse`] (or, with `force`,
    /// keeps the pinned data) or is refused with [`Error::ImageNotFound`].
    pub fn remove(&self, reference: &str, force: bool) -> Result<ImagePruneReport> {
        self.local()?;
        let root = self.open_root()?;
        let _lock = root.lock_gc(LockMode::Exclusive)?;
        let now = now_ms();
        // Resolution, the holder check and the plan run in the transaction that deletes, so an
        // acquire in another process either is seen here or finds the reference gone.
        let (collected, (before, freed)) = self.index()?.collect_planned(now, false, |ix| {
            let resolved = resolve(ix, reference)?;
            let manifest = resolved.manifest().to_owned();
            // A manifest only uses hold has no reference to remove.
            let rows: Vec<_> = resolved.rows.into_iter().filter(|r| r.tagged).collect();
            if !force {
                let holders: Vec<String> = ix
                    .uses(Some(&manifest))?
                    .iter()
                    .filter(|u| u.expires_at.is_none_or(|t| t > now))
                    .map(|u| format!("{}:{}", u.holder_kind, u.holder_id))
                    .collect();
                if !holders.is_empty() {
                    return Err(Error::ImageInUse {
                        reference: reference.to_owned(),
                        holders,
                    });
                }
            }
            let before = recorded_size(&root, ix)?;
            let graph = ix.size_graph(now)?;
            let planned = gc::plan(&graph, rows.iter().map(Candidate::from_row), before, None);
            let references = planned.reference_ids();
            Ok((Removal { graph, references }, (before, planned.references)))
        })?;
        let swept = gc::sweep_collected(&root, &collected, true)?;
        Ok(report(&collected, &swept, before, freed, false))
    }

    /// Removes every reference no unexpired use pins, then every manifest, config and layer
    /// nothing names, their files, files no index row names, and leftovers in `tmp/`. The same
    /// as [`Cache::prune_with`] with default options.
    pub fn prune(&self) -> Result<ImagePruneReport> {
        self.prune_with(&PruneOptions::default())
    }

    /// Prunes with options (see [`PruneOptions`]): candidates, sizes, the plan and reachability
    /// are decided in the index, in one write transaction (so a use acquired concurrently in
    /// any process pins its references or finds them gone), which commits before any file is
    /// deleted; files are then deleted in
    /// parallel, and the disk is reconciled with the index (files no row names, `tmp/`
    /// leftovers). A dry run computes the same report without changing anything.
    ///
    /// Errors: [`Error::InvalidReference`] for a malformed `keep` entry;
    /// [`Error::InvalidArgument`] for a negative grace period.
    pub fn prune_with(&self, options: &PruneOptions) -> Result<ImagePruneReport> {
        self.local()?;
        if options.grace_period_ms < 0 {
            return Err(Error::InvalidArgument {
                name: "gracePeriodMs".into(),
                reason: "must not be negative".into(),
            });
        }
        for k in &options.keep {
            check_reference(k)?;
        }
        let root = self.open_root()?;
        let _lock = root.lock_gc(LockMode::Exclusive)?;
        let now = now_ms();
        let mut warnings = Vec::new();
        // The artifact folders are listed on another thread while the index decides: nothing
        // changes on disk while the exclusive GC lock is held until the commit.
        let (listing, (collected, (before, planned))) = gc::while_listing(&root, || {
            // Candidates, sizes and the plan are read in the transaction that deletes: a use
            // acquired in another process meanwhile either pins its reference here or is
            // recorded after the commit (and then finds the reference gone).
            self.index()?.collect_planned(now, options.dry_run, |ix| {
                let mut keep = HashSet::new();
                for input in &options.keep {
                    match resolve(ix, input) {
                        Ok(found) => keep.extend(found.rows.into_iter().map(|row| row.reference)),
                        Err(Error::ImageNotFound { .. }) => warnings.push(format!(
                            "--keep {input}: no cached image is named {}; it keeps nothing",
                            describe_reference(input)
                        )),
                        Err(e) => return Err(e),
                    }
                }
                let filter = CandidateFilter {
                    now,
                    older_than: options.older_than_ms,
                    grace_since: (options.grace_period_ms > 0)
                        .then(|| now.saturating_sub(options.grace_period_ms)),
                };
                let mut candidates = Vec::new();
                ix.prune_candidates(&filter, |c| {
                    if !keep.contains(&c.reference) {
                        candidates.push(c);
                    }
                    Ok(())
                })?;
                let before = recorded_size(&root, ix)?;
                let graph = ix.size_graph(now)?;
                let planned = gc::plan(&graph, candidates, before, options.max_bytes);
                let references = planned.reference_ids();
                Ok((Removal { graph, references }, (before, planned.references)))
            })
        })?;
        // The freed files start going at once; meanwhile this thread checkpoints the index (a
        // dry run changed nothing, not even the index files' sizes) and finds the orphans in
        // the listing: files that neither what the index keeps nor what it dropped names.
        let gc::SweptAndReconciled {
            collected: mut swept,
            reconciled,
        } = gc::sweep_and_reconcile(&root, &collected, listing, !options.dry_run, || {
            if options.dry_run {
                Ok(())
            } else {
                self.index()?.checkpoint()
            }
        })?;
        swept.swept.add(&reconciled.swept);
        swept.layers += reconciled.layers;
        swept.fsmeta += reconciled.fsmeta;
        swept.vmdk += reconciled.vmdk;
        // Orphans and `tmp/` are on disk but in no record: count them in the size before.
        let before = before + reconciled.swept.bytes;
        let mut report = report(&collected, &swept, before, planned, options.dry_run);
        warnings.append(&mut report.warnings);
        report.warnings = warnings;
        Ok(report)
    }

    /// Bytes on disk by kind, from sizes recorded when artifacts were written (the index and
    /// `tmp/` are measured), and per reference its shared, exclusive and reclaimable bytes. A
    /// cache that does not exist is empty (and is not created).
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut images = Vec::new();
        let mut usage = self.disk_usage_each(|i| {
            images.push(ImageDiskUsage {
                reference: i.reference.to_owned(),
                manifest_digest: i.manifest_digest.to_owned(),
                shared_bytes: i.shared_bytes,
                exclusive_bytes: i.exclusive_bytes,
                reclaimable_bytes: i.reclaimable_bytes,
                tagged: i.tagged,
            });
            Ok(())
        })?;
        usage.images = images;
        Ok(usage)
    }

    /// [`Cache::disk_usage`] without building a value per reference: each reference's figures
    /// are handed to `each` as the index reads them, in reference order, borrowed from the row,
    /// then those of each manifest no reference names that a use holds (`tagged` false, named
    /// `repository@digest` as [`Cache::list_with`] names it); the returned [`DiskUsage`] has
    /// the totals and no `images`. An error of `each` stops the call and is returned.
    pub fn disk_usage_each(
        &self,
        mut each: impl FnMut(&ImageDiskUsageRef<'_>) -> Result<()>,
    ) -> Result<DiskUsage> {
        self.local()?;
        if self.existing_index()?.is_none() {
            // A cache that does not exist uses nothing, and reading it creates nothing.
            return Ok(DiskUsage {
                layers: 0,
                fsmeta: 0,
                vmdk: 0,
                blobs: 0,
                index: 0,
                temporary: 0,
                total: 0,
                images: Vec::new(),
            });
        }
        let root = self.open_root()?;
        let now = now_ms();
        let ix = self.index()?;
        let totals = ix.kind_totals()?;
        let mut text = [0u8; index::DIGEST_TEXT_LEN];
        ix.image_usage_each(now, |reference, digest, shared, exclusive, reclaimable| {
            each(&ImageDiskUsageRef {
                reference: familiar_from_canonical(reference),
                manifest_digest: index::digest_text_in(digest, &mut text)?,
                shared_bytes: shared,
                exclusive_bytes: exclusive,
                reclaimable_bytes: reclaimable,
                tagged: true,
            })
        })?;
        for (digest, refs) in ix.untagged_in_use()? {
            let Some(usage) = ix.manifest_usage(&digest, now)? else {
                continue;
            };
            for name in super::untagged_names(&digest, &refs) {
                each(&ImageDiskUsageRef {
                    reference: familiar_from_canonical(&name),
                    manifest_digest: &digest,
                    shared_bytes: usage.shared,
                    exclusive_bytes: usage.exclusive,
                    reclaimable_bytes: if usage.pinned { 0 } else { usage.exclusive },
                    tagged: false,
                })?;
            }
        }
        drop(ix);
        let index = root.index_bytes();
        let temporary = gc::folder_size(root.tmp()).unwrap_or(0);
        Ok(DiskUsage {
            layers: totals.layers,
            fsmeta: totals.fsmeta,
            vmdk: totals.vmdk,
            blobs: totals.blobs,
            index,
            temporary,
            total: totals.layers + totals.fsmeta + totals.vmdk + totals.blobs + index + temporary,
            images: Vec::new(),
        })
    }
}

/// Checks that `input` is a reference, a digest or a digest prefix [`super::resolve`] takes,
/// without looking it up: [`Error::InvalidReference`] otherwise.
fn check_reference(input: &str) -> Result<()> {
    if super::digest_prefix(input).is_some() {
        return Ok(());
    }
    Reference::parse(input).map(|_| ())
}

/// How a warning names what `input` means: its familiar form with the tag it defaults to
/// (`debian` is `debian:latest`).
fn describe_reference(input: &str) -> String {
    match Reference::parse(input) {
        Ok(r) if super::digest_prefix(input).is_none() => r.familiar(),
        _ => input.to_owned(),
    }
}

/// Recorded artifact bytes plus the index files.
fn recorded_size(root: &Root, ix: &Index) -> Result<u64> {
    let t = ix.kind_totals()?;
    Ok(t.layers + t.fsmeta + t.vmdk + t.blobs + root.index_bytes())
}

fn report(
    collected: &index::Collected,
    swept: &Reconciled,
    bytes_before: u64,
    planned: Vec<Planned>,
    dry_run: bool,
) -> ImagePruneReport {
    let measured_nothing = swept.swept.removed == 0 && swept.swept.already_gone > 0;
    ImagePruneReport {
        image_refs_removed: collected.image_refs.len() as u64,
        manifests_removed: collected.manifests.len() as u64,
        layers_removed: collected.layers.len() as u64 + swept.layers,
        fsmeta_removed: swept.fsmeta,
        vmdk_removed: swept.vmdk,
        bytes_reclaimed: if measured_nothing {
            None
        } else {
            Some(swept.swept.bytes)
        },
        allocated_bytes_reclaimed: if measured_nothing {
            None
        } else {
            Some(swept.swept.allocated)
        },
        bytes_before,
        bytes_after: bytes_before.saturating_sub(swept.swept.bytes),
        removed: planned
            .into_iter()
            .map(|p| PrunedReference {
                reference: familiar_from_canonical(&p.reference).to_owned(),
                manifest_digest: p.manifest_digest,
                bytes_freed: p.bytes_freed,
            })
            .collect(),
        dry_run,
        warnings: swept.swept.warnings.clone(),
    }
}
