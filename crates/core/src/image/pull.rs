//! `pull`: an image from a registry ([`crate::registry`]) into the cache through the ingest
//! pipeline ([`crate::ingest`]), and `acquire` that pulls when needed and pins in the same
//! transaction.

use super::uses::new_use;
use super::{Cache, handle_for, handle_from_row, now_ms, resolve};
use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::index::{HandleRow, UseRow};
use crate::ingest::{self, IngestOptions};
use crate::oci::{Digest, Platform, Reference};
use crate::progress::{Progress, ProgressEvent, emit};
use crate::registry::{self, Downloads, RegistryOptions};
use crate::store::{LockMode, StagingPurpose};
use crate::{AcquireOptions, Holder, ImageHandle, ImageUse, use_from_row};

/// When a pull asks the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Only when the reference is not cached (no request at all when it is).
    #[default]
    IfMissing,
    /// Always resolves the reference in the registry, and moves a tag whose manifest changed.
    Always,
    /// Never: [`Error::ImageNotFound`] when the reference is not cached.
    Never,
}

impl PullPolicy {
    /// Parses `if-missing`, `always` or `never`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "if-missing" => Ok(PullPolicy::IfMissing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(Error::InvalidArgument {
                name: "policy".into(),
                reason: format!("expected \"if-missing\", \"always\" or \"never\", got {other:?}"),
            }),
        }
    }
}

/// Options of [`Cache::pull`].
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to take from an index; `None`: the host's.
    pub platform: Option<Platform>,
    /// When to ask the registry.
    pub policy: PullPolicy,
    /// Credentials, TLS, plain HTTP, mirrors, retries.
    pub registry: RegistryOptions,
    /// Stops the pull ([`Error::Aborted`], nothing published).
    pub cancel: Option<Cancel>,
    /// Receives the pull's events.
    pub progress: Option<Progress>,
    /// The most bytes the pull may write (see [`crate::LoadOptions::max_uncompressed_bytes`]).
    pub max_uncompressed_bytes: Option<u64>,
}

impl Cache {
    /// Pulls `reference` (a tag or a digest reference) from its registry and returns its
    /// handle. With [`PullPolicy::IfMissing`] a cached reference is returned without a request;
    /// with [`PullPolicy::Never`] an uncached one is [`Error::ImageNotFound`]. A pull of a cached
    /// reference refreshes its `last_used_at`.
    ///
    /// What is downloaded: the manifest (for an index, the platform's), the config, and the
    /// blob of every layer whose `diff_id` has no EROFS image in the cache (those get a
    /// `LayerCached` event and are not downloaded). Each blob is downloaded into its partial
    /// file under `tmp/` (on a pool of [`RegistryOptions::concurrent_downloads`] threads) and
    /// converted as it arrives, in one pass that checks its digest and `diff_id` and writes its
    /// EROFS image under `tmp/`; then the files and index rows are published as a load
    /// publishes them: nothing is published unless every digest matched, and on any failure, a
    /// cancellation included, nothing is published. A pull cancelled, failing on the network
    /// ([`Error::RegistryUnavailable`], [`Error::RegistryRateLimited`]) or killed leaves its
    /// partial downloads for the next pull to continue with `Range`; after any other failure
    /// the cache is exactly as it was (see [`crate::registry::Downloads::finish`]).
    ///
    /// Concurrent pulls of one image in several processes convert each layer once (the
    /// per-digest artifact locks) and both succeed; `remove` and `prune` wait for a running
    /// pull's commit (the GC lock, shared).
    pub fn pull(&self, reference: &str, options: &PullOptions) -> Result<ImageHandle> {
        self.pull_impl(reference, options, None)
            .map(|(handle, _)| handle)
    }

    /// `acquire` that pulls first when the reference is not cached (by `pull`'s options):
    /// the use is recorded in the transaction that records the pulled reference, so no prune
    /// in any process can delete the image between the pull and the pin. A cached reference
    /// is acquired as [`Cache::acquire_with`] does (resolved and pinned in one transaction);
    /// if a prune removes it first, it is pulled again.
    pub fn acquire_pulling(
        &self,
        reference: &str,
        holder: Holder,
        options: &AcquireOptions,
        pull: &PullOptions,
    ) -> Result<ImageUse> {
        match self.acquire_with(reference, holder.clone(), options) {
            Err(Error::ImageNotFound { .. }) if pull.policy != PullPolicy::Never => {}
            other => return other,
        }
        let r = Reference::parse(reference)?;
        let now = now_ms();
        let row = new_use(&holder, options, r.canonical(), String::new(), now)?;
        let mut pull = pull.clone();
        // The reference was not cached a moment ago: ask the registry.
        pull.policy = PullPolicy::Always;
        let (_, recorded) = self.pull_impl(reference, &pull, Some(row))?;
        let recorded =
            recorded.ok_or_else(|| Error::internal("a pull with a use recorded no use"))?;
        use_from_row(recorded, now)
    }

    fn pull_impl(
        &self,
        reference: &str,
        options: &PullOptions,
        use_row: Option<UseRow>,
    ) -> Result<(ImageHandle, Option<UseRow>)> {
        self.local()?;
        let r = Reference::parse(reference)?;
        if options.max_uncompressed_bytes == Some(0) {
            return Err(Error::InvalidArgument {
                name: "max_uncompressed_bytes".into(),
                reason: "must be at least 1".into(),
            });
        }
        options.registry.validate()?;
        let cancel = options.cancel.clone().unwrap_or_default();
        cancel.check("the pull")?;
        let now = now_ms();
        if use_row.is_none() && options.policy != PullPolicy::Always {
            let mut ix = self.index()?;
            match resolve(&ix, reference) {
                Ok(mut resolved) => {
                    let touched: Vec<String> = resolved
                        .rows
                        .iter()
                        .filter(|row| row.tagged)
                        .map(|row| row.reference.clone())
                        .collect();
                    ix.touch(&touched, now)?;
                    // The handle shows the last use just recorded.
                    for row in resolved.rows.iter_mut().filter(|row| row.tagged) {
                        row.last_used_at = Some(now);
                    }
                    let manifest_digest = crate::index::stored_digest(resolved.manifest())?;
                    emit(
                        options.progress.as_ref(),
                        ProgressEvent::Done { manifest_digest },
                    );
                    return Ok((handle_for(resolved), None));
                }
                Err(e) if options.policy == PullPolicy::Never => return Err(e),
                Err(_) => {}
            }
        }
        let (manifest_digest, row, recorded) =
            self.fetch_and_commit(&r, options, Some(&r), use_row, &cancel)?;
        let row = row.ok_or_else(|| Error::internal("a pulled reference is not in the index"))?;
        let mut handle = handle_from_row(row);
        if r.digest().is_some() {
            handle.reference = r.familiar();
        }
        emit(
            options.progress.as_ref(),
            ProgressEvent::Done { manifest_digest },
        );
        Ok((handle, recorded))
    }

    /// Fetches the image `manifest` again from `origin` (the registry repository it was pulled
    /// from) by digest, for a repair: whatever of it the cache lacks (a layer image the repair
    /// took away) is downloaded, converted and published as a pull does, and its rows are
    /// recorded again (new layer hashes, the broken mark cleared) without adding a reference.
    /// The caller holds no artifact lock of the image (the ingest takes them), and has
    /// validated `registry` (`Cache::repair` does, once for every image).
    pub(super) fn refetch_image(
        &self,
        origin: &str,
        manifest: &Digest,
        registry: &RegistryOptions,
    ) -> Result<()> {
        let r = Reference::parse(&format!("{origin}@{manifest}"))?;
        let options = PullOptions {
            policy: PullPolicy::Always,
            registry: registry.clone(),
            ..Default::default()
        };
        let (fetched, _, _) =
            self.fetch_and_commit(&r, &options, None, None, &Cancel::default())?;
        if fetched != *manifest {
            return Err(Error::internal(
                "a fetch by digest resolved another manifest",
            ));
        }
        Ok(())
    }

    /// Resolves `r` in its registry, builds what the cache lacks of it and commits its rows,
    /// naming it `name` (`None`: no reference) and recording `use_row` in the same transaction.
    /// Returns the manifest digest, the row of the reference recorded (read before the GC lock
    /// is released, so no prune can take it first) and the use recorded.
    fn fetch_and_commit(
        &self,
        r: &Reference,
        options: &PullOptions,
        name: Option<&Reference>,
        use_row: Option<UseRow>,
        cancel: &Cancel,
    ) -> Result<(Digest, Option<HandleRow>, Option<UseRow>)> {
        cancel.check("the pull")?;
        let platform = options.platform.clone().unwrap_or_else(Platform::host);
        emit(
            options.progress.as_ref(),
            ProgressEvent::Resolving {
                reference: r.canonical(),
            },
        );
        let client = registry::client_for(r, &options.registry, cancel.clone())?;
        let root = self.open_root()?;
        let budget = self.write_budget(options.max_uncompressed_bytes)?;
        let downloads = Downloads::new(
            root.partials()?,
            budget.clone(),
            options.registry.concurrent_downloads,
        );
        let resolved = registry::resolve(&client, r, &platform, &downloads)?;
        let source = resolved.source;
        let manifest_digest = source.manifest.descriptor.digest.clone();
        emit(
            options.progress.as_ref(),
            ProgressEvent::Resolved {
                manifest_digest: manifest_digest.clone(),
                platform: resolved.platform.to_string(),
                layers: source.layers.len(),
                total_bytes: source.layers.iter().map(|l| l.descriptor().size).sum(),
            },
        );
        let _lock = root.lock_gc(LockMode::Shared)?;
        let staging = root.staging_dir(StagingPurpose::Load)?;
        let ingest = IngestOptions {
            budget,
            cancel: cancel.clone(),
            progress: options.progress.clone(),
        };
        let images = std::slice::from_ref(&source);
        let result = (|| {
            let prepared = ingest::prepare(&root, &staging, images, &ingest)?;
            cancel.check("the pull")?;
            let mut ix = self.index()?;
            let use_row = use_row.map(|mut u| {
                u.manifest_digest = manifest_digest.to_string();
                u
            });
            let names: Vec<Reference> = name.into_iter().cloned().collect();
            let (references, recorded) = prepared.commit_with_use(
                std::slice::from_ref(&names),
                &mut ix,
                &staging,
                now_ms(),
                use_row.as_ref(),
            )?;
            let row = match references.first() {
                Some(canonical) => ix.get(canonical)?,
                None => None,
            };
            Ok((row, recorded))
        })()
        .map_err(|e| staging.describe(e));
        // The partials go after a commit and after failures that will not pass; they stay
        // for the next pull after a cancellation or a registry failure. Failing to delete one
        // does not undo a commit, nor hide the pull's own error: it stays for prune.
        let _ = downloads.finish(&result);
        let (row, recorded) = result?;
        Ok((manifest_digest, row, recorded))
    }
}
