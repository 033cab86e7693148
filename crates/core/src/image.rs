//! The façade the bindings call: [`Cache`] with load, get, list, inspect, remove, prune and
//! sandbox/snapshot uses.
//!
//! Locking: `load` holds the cache's GC lock shared from staging until its index rows are
//! committed; `remove` and `prune` hold it exclusive, so they never delete a file a load in
//! any process is about to name, and never see a half-written `tmp/` folder as garbage. A load
//! also holds the artifact locks of every digest it names (see the `artifacts` module) from its
//! first look at the disk until it committed or took back its files. Within a process the index
//! connection is behind a mutex and held only for SQL (and, in a load, while the files are
//! published inside the transaction).
//!
//! Crash safety: files are published before index rows name them (a load's rows commit after
//! its files are published), and index rows are deleted before their files; a killed process
//! leaves orphan files at worst, which the next prune reclaims. A load that fails without being
//! killed leaves nothing: it deletes the files it published before its commit failed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::archive::{self, StagedBlob, StagedImage, StagedLayer};
use crate::artifacts::{self, ImageArtifacts, Published, Staged};
use crate::budget::WriteBudget;
use crate::erofs::LayerImage;
use crate::error::{Error, Result};
use crate::gc::{self, Planned, Reconciled};
use crate::index::{
    self, Candidate, CandidateFilter, ConfigRow, HandleRow, Index, LayerRow, NewBlob, NewImage,
    Removal, UseRow, stored_digest,
};
use crate::oci::{Digest, Platform, Reference, familiar_from_canonical};
use crate::store::{self, Layout, LockMode, Root, StagingDir, StagingPurpose};

/// Where a cache's methods are served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The cache on this machine's disk (the default).
    Local,
    /// A remote cache service. Not available in this build: every method fails with
    /// [`Error::Unsupported`] and touches no files.
    Cloud {
        /// The service URL.
        url: String,
    },
}

impl Backend {
    /// `OCICACHE_BACKEND=cloud` (with `OCICACHE_CLOUD_URL`) selects the cloud backend; anything
    /// else, or nothing, the local one.
    pub fn from_env() -> Backend {
        match std::env::var("OCICACHE_BACKEND").as_deref() {
            Ok("cloud") => Backend::Cloud {
                url: std::env::var("OCICACHE_CLOUD_URL").unwrap_or_default(),
            },
            _ => Backend::Local,
        }
    }
}

/// Options of [`Cache::open`].
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// The cache root; `None` means [`store::default_root`].
    pub root: Option<PathBuf>,
    /// The backend; `None` means [`Backend::from_env`].
    pub backend: Option<Backend>,
}

/// A read-only view of one cached reference.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHandle {
    /// Familiar form (`busybox:latest`, `ghcr.io/org/app:v1`, `busybox@sha256:...`).
    pub reference: String,
    /// The manifest the reference points to.
    pub manifest_digest: Option<String>,
    /// From the image config.
    pub architecture: Option<String>,
    /// From the image config.
    pub os: Option<String>,
    /// From the image config.
    pub variant: Option<String>,
    /// Layers in the manifest.
    pub layer_count: u32,
    /// Bytes on disk of everything this image needs: its manifest and config blobs and each
    /// distinct layer's stored file. Layers shared with other images count fully here.
    pub size_bytes: Option<u64>,
    /// Milliseconds since the epoch when the reference was created or re-pointed.
    pub created_at: Option<i64>,
    /// Milliseconds since the epoch when a use last acquired the reference.
    pub last_used_at: Option<i64>,
}

/// One cached reference as [`Cache::list_each`] hands it out: the fields of an [`ImageHandle`],
/// borrowed from the index row being read (no allocation per reference).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageHandleRef<'a> {
    /// Familiar form (`busybox:latest`, `ghcr.io/org/app:v1`).
    pub reference: &'a str,
    /// The manifest the reference points to.
    pub manifest_digest: &'a str,
    /// From the image config.
    pub architecture: &'a str,
    /// From the image config.
    pub os: &'a str,
    /// From the image config.
    pub variant: Option<&'a str>,
    /// Layers in the manifest.
    pub layer_count: u32,
    /// As [`ImageHandle::size_bytes`].
    pub size_bytes: Option<u64>,
    /// Milliseconds since the epoch when the reference was created or re-pointed.
    pub created_at: i64,
    /// Milliseconds since the epoch when a use last acquired the reference.
    pub last_used_at: Option<i64>,
}

impl ImageHandleRef<'_> {
    /// The owned handle.
    pub fn to_handle(&self) -> ImageHandle {
        ImageHandle {
            reference: self.reference.to_owned(),
            manifest_digest: Some(self.manifest_digest.to_owned()),
            architecture: Some(self.architecture.to_owned()),
            os: Some(self.os.to_owned()),
            variant: self.variant.map(str::to_owned),
            layer_count: self.layer_count,
            size_bytes: self.size_bytes,
            created_at: Some(self.created_at),
            last_used_at: self.last_used_at,
        }
    }
}

/// The config fields `inspect` shows; absent fields stay `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfigDetail {
    /// Config digest.
    pub digest: String,
    /// `Env`.
    pub env: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User`.
    pub user: Option<String>,
    /// `Labels`.
    pub labels: Option<serde_json::Map<String, serde_json::Value>>,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLayerDetail {
    /// Uncompressed digest (`rootfs.diff_ids`).
    pub diff_id: String,
    /// Digest of the layer blob as distributed.
    pub blob_digest: String,
    /// The descriptor's media type.
    pub media_type: String,
    /// The descriptor's size.
    pub compressed_size_bytes: u64,
    /// Size of the layer's EROFS image, once built.
    pub erofs_size_bytes: Option<u64>,
    /// 0 = bottom.
    pub position: u32,
}

/// What `inspect` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDetail {
    /// The reference's handle.
    pub handle: ImageHandle,
    /// The config, when recorded.
    pub config: Option<ImageConfigDetail>,
    /// Layers bottom to top.
    pub layers: Vec<ImageLayerDetail>,
}

/// What `prune` (and the sweep behind `remove`) reclaimed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImagePruneReport {
    /// References deleted.
    pub image_refs_removed: u64,
    /// Manifests deleted.
    pub manifests_removed: u64,
    /// Distinct layers (by diff_id) deleted: those the index dropped, plus orphan layer
    /// images (no index row names them, e.g. left by an interrupted load) found on disk.
    pub layers_removed: u64,
    /// fsmeta images deleted.
    pub fsmeta_removed: u64,
    /// VMDK descriptors deleted.
    pub vmdk_removed: u64,
    /// Measured bytes of the files actually deleted (a dry run: that would be deleted);
    /// `None` only when files were due for deletion and none could be measured.
    pub bytes_reclaimed: Option<u64>,
    /// Allocated bytes of those files (`st_blocks`; the apparent size where the platform has
    /// no such figure).
    pub allocated_bytes_reclaimed: Option<u64>,
    /// The cache's size before: recorded artifact sizes, the index files, and the orphans and
    /// `tmp/` leftovers this run found.
    pub bytes_before: u64,
    /// `bytes_before` minus what was reclaimed.
    pub bytes_after: u64,
    /// Each reference removed, in removal order (least recently used first), with the
    /// recorded bytes its removal freed (0 when another reference keeps its manifest).
    pub removed: Vec<PrunedReference>,
    /// Whether nothing was changed (a dry run).
    pub dry_run: bool,
    /// Entries the sweep left in place because they are not what the cache deletes there (a
    /// directory or a symlink where an artifact file belongs, a folder under `tmp/` the cache
    /// did not make), one line each naming the path. The rest of the prune went on.
    pub warnings: Vec<String>,
}

/// One reference a prune or remove took away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunedReference {
    /// Familiar form of the reference.
    pub reference: String,
    /// Its manifest.
    pub manifest_digest: String,
    /// Recorded bytes freed by removing it.
    pub bytes_freed: u64,
}

/// Options of [`Cache::prune_with`]. The default prunes every reference no use pins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Compute the report without changing anything.
    pub dry_run: bool,
    /// Only references last used (never used: created) before this time, ms since the epoch.
    pub older_than_ms: Option<i64>,
    /// References kept (any spelling; a digest reference keeps every reference of its
    /// repository to that manifest). Names not in the cache are ignored.
    pub keep: Vec<String>,
    /// Evict least recently used unused references until the cache is at most this many
    /// bytes; without it every candidate goes.
    pub max_bytes: Option<u64>,
    /// References created or used within this many milliseconds are kept.
    pub grace_period_ms: i64,
}

/// Options of [`Cache::acquire_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquireOptions {
    /// The use expires this many milliseconds after acquiring; `None` = never.
    pub ttl_ms: Option<u64>,
}

/// Bytes on disk, by kind and per reference (see [`Cache::disk_usage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Layer EROFS images.
    pub layers: u64,
    /// fsmeta images.
    pub fsmeta: u64,
    /// VMDK descriptors.
    pub vmdk: u64,
    /// Manifest and config blobs.
    pub blobs: u64,
    /// The SQLite index (with its WAL and shared-memory files).
    pub index: u64,
    /// Work in progress and leftovers under `tmp/`.
    pub temporary: u64,
    /// Sum of the above.
    pub total: u64,
    /// Per reference, sorted by canonical reference.
    pub images: Vec<ImageDiskUsage>,
}

/// One reference's share of the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDiskUsage {
    /// Familiar form of the reference.
    pub reference: String,
    /// Its manifest.
    pub manifest_digest: String,
    /// Bytes of artifacts its manifest shares with other manifests (layers, config).
    pub shared_bytes: u64,
    /// Bytes only its manifest uses (manifest, fsmeta, VMDK, unshared config and layers).
    pub exclusive_bytes: u64,
    /// What removing this reference and pruning would reclaim: the exclusive bytes when it is
    /// its manifest's only reference and no unexpired use pins it, else 0.
    pub reclaimable_bytes: u64,
}

/// One reference's share of the cache as [`Cache::disk_usage_each`] hands it out: the fields
/// of an [`ImageDiskUsage`], borrowed from the index row being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageDiskUsageRef<'a> {
    /// Familiar form of the reference.
    pub reference: &'a str,
    /// Its manifest.
    pub manifest_digest: &'a str,
    /// As [`ImageDiskUsage::shared_bytes`].
    pub shared_bytes: u64,
    /// As [`ImageDiskUsage::exclusive_bytes`].
    pub exclusive_bytes: u64,
    /// As [`ImageDiskUsage::reclaimable_bytes`].
    pub reclaimable_bytes: u64,
}

/// The files a VM boots an image from (see [`Cache::boot_disk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDisk {
    /// The VMDK descriptor: fsmeta, then each layer image, as FLAT extents.
    pub vmdk: PathBuf,
    /// The merged metadata EROFS image.
    pub fsmeta: PathBuf,
    /// Layer EROFS images, bottom to top (fsmeta's extra devices, in slot order).
    pub layers: Vec<PathBuf>,
}

/// Who holds a use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A running sandbox.
    Sandbox(String),
    /// A snapshot.
    Snapshot(String),
}

impl Holder {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Holder::Sandbox(id) => ("sandbox", id),
            Holder::Snapshot(id) => ("snapshot", id),
        }
    }
}

/// A sandbox or snapshot pinning an image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageUse {
    /// Opaque id, for [`Cache::release`].
    pub id: String,
    /// Familiar form of the reference acquired.
    pub reference: String,
    /// The pinned manifest.
    pub manifest_digest: String,
    /// The holder.
    pub holder: Holder,
    /// Milliseconds since the epoch.
    pub since: i64,
    /// When the use stops pinning the image (ms since the epoch); `None` = never.
    pub expires_at: Option<i64>,
    /// Whether it has expired (it then pins nothing; release it or let prune ignore it).
    pub expired: bool,
}

/// Options of [`Cache::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// One more reference for the first image (a tag reference, not a digest).
    pub tag: Option<String>,
    /// The platform to pick from an index; `None` means the host's.
    pub platform: Option<Platform>,
    /// The most bytes the load may write to disk: the archive's files as staged and the layer
    /// images it converts (holes excluded), counted while they are written, across all
    /// layers. `None`: the space available on the cache's file system when the load starts,
    /// minus a reserve of 1% of the file system, at most 1 GiB
    /// ([`crate::budget::default_load_limit`]). Going over a limit set here fails the load with
    /// [`Error::LimitExceeded`]; going over the default, which stands for the free space, with
    /// [`Error::NoSpace`]. At least 1.
    pub max_uncompressed_bytes: Option<u64>,
}

/// One cache root (or a remote backend).
pub struct Cache {
    layout: Layout,
    backend: Backend,
    index: Mutex<Option<Index>>,
}

impl Cache {
    /// Opens a cache. Nothing is created or read until the first operation.
    pub fn open(options: CacheOptions) -> Result<Self> {
        let backend = options.backend.unwrap_or_else(Backend::from_env);
        let root = match options.root {
            Some(root) => root,
            None => store::default_root().ok_or_else(|| Error::InvalidArgument {
                name: "root".into(),
                reason: "no OCICACHE_HOME and no platform cache folder; pass a root".into(),
            })?,
        };
        Ok(Cache {
            layout: Layout::new(root),
            backend,
            index: Mutex::new(None),
        })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// The backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

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

    /// The handle of `reference` (any spelling; a digest reference matches a cached manifest
    /// that some reference of the same repository points to).
    pub fn get(&self, reference: &str) -> Result<ImageHandle> {
        self.local()?;
        let r = Reference::parse(reference)?;
        let ix = self.index()?;
        let rows = resolve(&ix, &r, reference)?;
        Ok(handle_for(&r, rows))
    }

    /// Every cached reference, newest first.
    pub fn list(&self) -> Result<Vec<ImageHandle>> {
        let mut out = Vec::new();
        self.list_each(|h| {
            out.push(h.to_handle());
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Cache::list`] without building a value per reference: each is handed to `each` as the
    /// index reads it, newest first, borrowed from the row (for a caller that serializes the
    /// list at once, such as the binding's one JSON buffer per call). An error of `each` stops
    /// the listing and is returned. Holds the cache's index connection throughout.
    pub fn list_each(&self, mut each: impl FnMut(&ImageHandleRef<'_>) -> Result<()>) -> Result<()> {
        self.local()?;
        let ix = self.index()?;
        let mut digest = [0u8; index::DIGEST_TEXT_LEN];
        ix.list_each(|row| {
            each(&ImageHandleRef {
                reference: familiar_from_canonical(row.reference),
                manifest_digest: index::digest_text_in(row.manifest_digest, &mut digest)?,
                architecture: row.architecture,
                os: row.os,
                variant: row.variant,
                layer_count: row.layer_count as u32,
                size_bytes: row.disk_size.map(|s| s as u64),
                created_at: row.created_at,
                last_used_at: row.last_used_at,
            })
        })
    }

    /// The handle, config and layers (bottom to top) of `reference`.
    pub fn inspect(&self, reference: &str) -> Result<ImageDetail> {
        self.local()?;
        let r = Reference::parse(reference)?;
        let ix = self.index()?;
        let rows = resolve(&ix, &r, reference)?;
        let handle = handle_for(&r, rows);
        let manifest = handle.manifest_digest.clone().unwrap_or_default();
        let config = ix.config_of(&manifest)?.map(config_detail).transpose()?;
        let layers = ix
            .layers_of(&manifest)?
            .into_iter()
            .map(layer_detail)
            .collect();
        Ok(ImageDetail {
            handle,
            config,
            layers,
        })
    }

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
            let built = artifacts::prepare_image(&root, &staging, &manifest, &images, &sizes)
                .and_then(|built| {
                    artifacts::publish(&staging, &built.staged, &mut Published::default())?;
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
        let r = Reference::parse(reference)?;
        let root = self.open_root()?;
        let _lock = root.lock_gc(LockMode::Exclusive)?;
        let now = now_ms();
        // Resolution, the holder check and the plan run in the transaction that deletes, so an
        // acquire in another process either is seen here or finds the reference gone.
        let (collected, (before, freed)) = self.index()?.collect_planned(now, false, |ix| {
            let rows = resolve(ix, &r, reference)?;
            let manifest = rows[0].manifest_digest.clone();
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
            let before = self.recorded_size(ix)?;
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
        let keep_refs = options
            .keep
            .iter()
            .map(|k| Reference::parse(k).map(|r| (r, k.as_str())))
            .collect::<Result<Vec<_>>>()?;
        let root = self.open_root()?;
        let _lock = root.lock_gc(LockMode::Exclusive)?;
        let now = now_ms();
        // The artifact folders are listed on another thread while the index decides: nothing
        // changes on disk while the exclusive GC lock is held until the commit.
        let (listing, (collected, (before, planned))) = gc::while_listing(&root, || {
            // Candidates, sizes and the plan are read in the transaction that deletes: a use
            // acquired in another process meanwhile either pins its reference here or is
            // recorded after the commit (and then finds the reference gone).
            self.index()?.collect_planned(now, options.dry_run, |ix| {
                let mut keep = HashSet::new();
                for (r, input) in &keep_refs {
                    match resolve(ix, r, input) {
                        Ok(rows) => keep.extend(rows.into_iter().map(|row| row.reference)),
                        Err(Error::ImageNotFound { .. }) => {}
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
                let before = self.recorded_size(ix)?;
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
        Ok(report(&collected, &swept, before, planned, options.dry_run))
    }

    /// Bytes on disk by kind, from sizes recorded when artifacts were written (the index and
    /// `tmp/` are measured), and per reference its shared, exclusive and reclaimable bytes.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut images = Vec::new();
        let mut usage = self.disk_usage_each(|i| {
            images.push(ImageDiskUsage {
                reference: i.reference.to_owned(),
                manifest_digest: i.manifest_digest.to_owned(),
                shared_bytes: i.shared_bytes,
                exclusive_bytes: i.exclusive_bytes,
                reclaimable_bytes: i.reclaimable_bytes,
            });
            Ok(())
        })?;
        usage.images = images;
        Ok(usage)
    }

    /// [`Cache::disk_usage`] without building a value per reference: each reference's figures
    /// are handed to `each` as the index reads them, in reference order, borrowed from the row;
    /// the returned [`DiskUsage`] has the totals and no `images`. An error of `each` stops the
    /// call and is returned.
    pub fn disk_usage_each(
        &self,
        mut each: impl FnMut(&ImageDiskUsageRef<'_>) -> Result<()>,
    ) -> Result<DiskUsage> {
        self.local()?;
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
            })
        })?;
        drop(ix);
        let index = self.index_bytes()?;
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

    /// Recorded artifact bytes plus the index files.
    fn recorded_size(&self, ix: &Index) -> Result<u64> {
        let t = ix.kind_totals()?;
        Ok(t.layers + t.fsmeta + t.vmdk + t.blobs + self.index_bytes()?)
    }

    /// Bytes of `index.db` and its WAL and shared-memory files.
    fn index_bytes(&self) -> Result<u64> {
        let db = self.layout.index_db();
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            if let Ok(meta) = std::fs::symlink_metadata(PathBuf::from(name)) {
                total += meta.len();
            }
        }
        Ok(total)
    }

    /// Records that `holder` uses `reference`: its manifest (and so its layers) stays until
    /// the use is released, even if its references are removed. Refreshes the reference's
    /// `last_used_at`. Acquiring twice for the same holder and manifest returns the same use.
    pub fn acquire(&self, reference: &str, holder: Holder) -> Result<ImageUse> {
        self.acquire_with(reference, holder, &AcquireOptions::default())
    }

    /// [`Cache::acquire`] with options: with `ttl_ms` the use stops pinning the image that long
    /// after this call, unless the holder acquires again (which renews it), so a holder that
    /// died does not pin the image forever. Expired uses are listed with `expired` set.
    ///
    /// Concurrent callers: the reference is resolved and the use recorded in one write
    /// transaction, so against a [`Cache::remove`] or [`Cache::prune`] in any process the use
    /// either comes first (and pins the manifest, its config and layers, and for prune its
    /// references) or fails with [`Error::ImageNotFound`]; a returned use always names a
    /// manifest that is in the index with its files.
    pub fn acquire_with(
        &self,
        reference: &str,
        holder: Holder,
        options: &AcquireOptions,
    ) -> Result<ImageUse> {
        self.local()?;
        if options.ttl_ms == Some(0) {
            return Err(Error::InvalidArgument {
                name: "ttlMs".into(),
                reason: "must be positive".into(),
            });
        }
        let r = Reference::parse(reference)?;
        let (kind, holder_id) = holder.parts();
        if holder_id.is_empty() {
            return Err(Error::InvalidArgument {
                name: "holder".into(),
                reason: "the holder id is empty".into(),
            });
        }
        let id = random_id()?;
        let now = now_ms();
        // The reference is resolved in the transaction that records the use: a remove or
        // prune in another process either commits first (and this fails with ImageNotFound)
        // or sees the use.
        let row = self.index()?.add_use_with(|ix| {
            let rows = resolve(ix, &r, reference)?;
            let row = UseRow {
                id,
                holder_kind: kind.into(),
                holder_id: holder_id.into(),
                reference: r.canonical(),
                manifest_digest: rows[0].manifest_digest.clone(),
                since: now,
                expires_at: options
                    .ttl_ms
                    .map(|ttl| now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX))),
            };
            let touch: Vec<String> = rows.into_iter().map(|row| row.reference).collect();
            Ok((row, touch))
        })?;
        use_from_row(row, now)
    }

    /// Ends a use. Releasing an unknown or already released use does nothing.
    pub fn release(&self, id: &str) -> Result<()> {
        self.local()?;
        let mut ix = self.index()?;
        ix.remove_use(id)?;
        Ok(())
    }

    /// Current uses, of one reference's manifest or of all, oldest first.
    pub fn uses(&self, reference: Option<&str>) -> Result<Vec<ImageUse>> {
        self.local()?;
        let ix = self.index()?;
        let manifest = match reference {
            Some(text) => {
                let r = Reference::parse(text)?;
                Some(resolve(&ix, &r, text)?.swap_remove(0).manifest_digest)
            }
            None => None,
        };
        let now = now_ms();
        ix.uses(manifest.as_deref())?
            .into_iter()
            .map(|row| use_from_row(row, now))
            .collect()
    }

    fn local(&self) -> Result<()> {
        match &self.backend {
            Backend::Local => Ok(()),
            Backend::Cloud { url } => Err(Error::Unsupported {
                what: format!(
                    "the cloud backend ({}) is not available in this version; configure the local backend",
                    if url.is_empty() { "no url" } else { url }
                ),
            }),
        }
    }

    /// The cache root opened as directory handles (folders created, none a symlink), with the
    /// index opened first when it was not: an operation refuses a corrupt cache before it
    /// writes anything.
    fn open_root(&self) -> Result<Root> {
        let root = Root::open(&self.layout)?;
        drop(self.index()?);
        Ok(root)
    }

    /// The index, opened (and the layout created) on first use.
    fn index(&self) -> Result<IndexGuard<'_>> {
        let mut guard = self
            .index
            .lock()
            .map_err(|_| Error::internal("index mutex poisoned"))?;
        if guard.is_none() {
            let root = Root::open(&self.layout)?;
            *guard = Some(Index::open(&root.index_db()?)?);
        }
        Ok(IndexGuard(guard))
    }
}

/// The open index of a [`Cache`], locked for this thread.
struct IndexGuard<'a>(MutexGuard<'a, Option<Index>>);

impl std::ops::Deref for IndexGuard<'_> {
    type Target = Index;
    fn deref(&self) -> &Index {
        // Invariant: `Cache::index` fills the option before building the guard.
        self.0
            .as_ref()
            .expect("index opened before the guard is built")
    }
}

impl std::ops::DerefMut for IndexGuard<'_> {
    fn deref_mut(&mut self) -> &mut Index {
        self.0
            .as_mut()
            .expect("index opened before the guard is built")
    }
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
    let json = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| serde_json::Value::from(v.clone()).to_string())
    };
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
        config: ConfigRow {
            digest: image.config.digest.to_string(),
            env: json(&c.env),
            cmd: json(&c.cmd),
            entrypoint: json(&c.entrypoint),
            working_dir: c.working_dir.clone(),
            user: c.user.clone(),
            labels: c
                .labels
                .as_ref()
                .map(|l| serde_json::Value::Object(l.clone()).to_string()),
            stop_signal: c.stop_signal.clone(),
        },
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

/// The rows a reference names: one for a tag reference, every reference of the repository
/// pointing at the digest for a digest reference.
fn resolve(ix: &Index, r: &Reference, input: &str) -> Result<Vec<HandleRow>> {
    let rows = match r.digest() {
        Some(d) => ix.find_by_digest(&r.name(), &d.to_string())?,
        None => ix.get(&r.canonical())?.into_iter().collect(),
    };
    if rows.is_empty() {
        return Err(Error::ImageNotFound {
            reference: input.to_owned(),
        });
    }
    Ok(rows)
}

fn handle_for(r: &Reference, rows: Vec<HandleRow>) -> ImageHandle {
    let created = rows.iter().map(|row| row.created_at).max();
    let used = rows.iter().filter_map(|row| row.last_used_at).max();
    let mut handle = handle_from_row(
        rows.into_iter()
            .next()
            .expect("resolve returns at least one row"),
    );
    if r.digest().is_some() {
        handle.reference = r.familiar();
        handle.created_at = created;
        handle.last_used_at = used;
    }
    handle
}

fn handle_from_row(row: HandleRow) -> ImageHandle {
    ImageHandle {
        reference: familiar_from_canonical(&row.reference).to_owned(),
        manifest_digest: Some(row.manifest_digest),
        architecture: Some(row.architecture),
        os: Some(row.os),
        variant: row.variant,
        layer_count: row.layer_count as u32,
        size_bytes: row.disk_size.map(|s| s as u64),
        created_at: Some(row.created_at),
        last_used_at: row.last_used_at,
    }
}

fn config_detail(row: ConfigRow) -> Result<ImageConfigDetail> {
    let corrupt = |field: &str| Error::CorruptCache {
        reason: format!("config {} has malformed {field}", row.digest),
    };
    let list = |v: &Option<String>, field: &str| -> Result<Option<Vec<String>>> {
        v.as_deref()
            .map(|s| serde_json::from_str(s).map_err(|_| corrupt(field)))
            .transpose()
    };
    Ok(ImageConfigDetail {
        env: list(&row.env, "env")?,
        cmd: list(&row.cmd, "cmd")?,
        entrypoint: list(&row.entrypoint, "entrypoint")?,
        labels: row
            .labels
            .as_deref()
            .map(|s| serde_json::from_str(s).map_err(|_| corrupt("labels")))
            .transpose()?,
        digest: row.digest,
        working_dir: row.working_dir,
        user: row.user,
        stop_signal: row.stop_signal,
    })
}

fn layer_detail(row: LayerRow) -> ImageLayerDetail {
    ImageLayerDetail {
        diff_id: row.diff_id,
        blob_digest: row.blob_digest,
        media_type: row.media_type,
        compressed_size_bytes: row.compressed_size as u64,
        erofs_size_bytes: row.erofs_size.map(|s| s as u64),
        position: row.position as u32,
    }
}

fn use_from_row(row: UseRow, now: i64) -> Result<ImageUse> {
    let holder = match row.holder_kind.as_str() {
        "sandbox" => Holder::Sandbox(row.holder_id),
        "snapshot" => Holder::Snapshot(row.holder_id),
        other => {
            return Err(Error::CorruptCache {
                reason: format!("use {} has holder kind {other:?}", row.id),
            });
        }
    };
    Ok(ImageUse {
        id: row.id,
        reference: familiar_from_canonical(&row.reference).to_owned(),
        manifest_digest: row.manifest_digest,
        holder,
        since: row.since,
        expires_at: row.expires_at,
        expired: row.expires_at.is_some_and(|t| t <= now),
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Number of random bytes in a use id (128 bits: unguessable and collision-free in practice).
const USE_ID_BYTES: usize = 16;

fn random_id() -> Result<String> {
    let mut bytes = [0u8; USE_ID_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}
