//! What the façade's methods take and return: options, handles, details and reports (plain
//! data, no behaviour), and how index rows become them.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::index::{ConfigRow, HandleRow, LayerRow, UseRow};
use crate::oci::{Platform, familiar_from_canonical};

pub use crate::check::{ArtifactKind, Problem, ProblemKind};

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

/// Options of [`crate::Cache::open`].
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// The cache root; `None` means [`crate::store::default_root`].
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
    /// False for a manifest no reference names that a use still holds (its tag moved or was
    /// removed with `force`): `reference` is then `repository@digest`, which resolves.
    pub tagged: bool,
}

/// One cached reference as [`crate::Cache::list_each`] hands it out: the fields of an
/// [`ImageHandle`], borrowed from the index row being read (no allocation per
/// reference).
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
    /// As [`ImageHandle::tagged`].
    pub tagged: bool,
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
            tagged: self.tagged,
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
    /// `ExposedPorts` (`80/tcp`, `53/udp`), sorted; read from the config blob (see
    /// [`crate::oci::ConfigDescription`] for what a field of the wrong type gives).
    pub exposed_ports: Option<Vec<String>>,
    /// `Volumes` (container paths), sorted; from the config blob.
    pub volumes: Option<Vec<String>>,
    /// The config's `created`: when the image was built (not when it was loaded), in
    /// milliseconds since the Unix epoch; from the config blob.
    pub created: Option<i64>,
    /// The config's `author`; from the config blob.
    pub author: Option<String>,
    /// The config's `history`, oldest first; from the config blob.
    pub history: Option<Vec<ImageHistoryDetail>>,
}

/// One step of an image's build history (a config's `history` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageHistoryDetail {
    /// When, in milliseconds since the Unix epoch.
    pub created: Option<i64>,
    /// The command that made it.
    pub created_by: Option<String>,
    /// Who.
    pub author: Option<String>,
    /// A comment.
    pub comment: Option<String>,
    /// The step made no layer.
    pub empty_layer: bool,
}

impl ImageConfigDetail {
    /// Fills the fields read from the config blob.
    pub(crate) fn describe(&mut self, d: crate::oci::ConfigDescription) {
        self.exposed_ports = d.exposed_ports;
        self.volumes = d.volumes;
        self.created = d.created;
        self.author = d.author;
        self.history = d.history.map(|h| {
            h.into_iter()
                .map(|e| ImageHistoryDetail {
                    created: e.created,
                    created_by: e.created_by,
                    author: e.author,
                    comment: e.comment,
                    empty_layer: e.empty_layer,
                })
                .collect()
        });
    }
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
    /// The registry repository (`registry/repository`) the manifest was last pulled from, which
    /// `repair` fetches a damaged layer from again; `None` for an image only ever loaded.
    pub origin: Option<String>,
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

/// Options of [`crate::Cache::prune_with`]. The default prunes every reference no use pins.
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

/// Options of [`crate::Cache::acquire_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcquireOptions {
    /// The use expires this many milliseconds after acquiring; `None` = never.
    pub ttl_ms: Option<u64>,
}

/// Bytes on disk, by kind and per reference (see [`crate::Cache::disk_usage`]).
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
    /// its manifest's only reference and no unexpired use pins it, else 0. For an untagged
    /// manifest (`tagged` false), what a prune would reclaim of it: its exclusive bytes once
    /// every use holding it has expired, else 0.
    pub reclaimable_bytes: u64,
    /// False for a manifest no reference names that a use holds (as [`ImageHandle::tagged`]):
    /// `reference` is then `repository@digest`.
    pub tagged: bool,
}

/// One reference's share of the cache as [`crate::Cache::disk_usage_each`] hands it out: the
/// fields of an [`ImageDiskUsage`], borrowed from the index row being read.
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
    /// As [`ImageDiskUsage::tagged`].
    pub tagged: bool,
}

/// The files a VM boots an image from (see [`crate::Cache::boot_disk`]).
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
    /// The holder's kind (`sandbox` or `snapshot`) and id, as the index records them.
    pub(crate) fn parts(&self) -> (&'static str, &str) {
        match self {
            Holder::Sandbox(id) => ("sandbox", id),
            Holder::Snapshot(id) => ("snapshot", id),
        }
    }
}

/// A sandbox or snapshot pinning an image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageUse {
    /// Opaque id, for [`crate::Cache::release`].
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

/// Options of [`crate::Cache::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// One more reference for the first image (a tag reference, not a digest).
    pub tag: Option<String>,
    /// The platform to pick from an index; `None` means the host's.
    pub platform: Option<Platform>,
    /// The most bytes the load may write to disk: the layer images it converts (holes
    /// excluded), the manifest and config blobs, and the members a stream must spool, counted
    /// while they are written, across all layers. `None`: the space available on the cache's
    /// file system when the load starts, minus a reserve of 1% of the file system, at most
    /// 1 GiB ([`crate::budget::default_load_limit`]). Going over a limit set here fails the load with
    /// [`Error::LimitExceeded`]; going over the default, which stands for the free space, with
    /// [`Error::NoSpace`]. At least 1.
    pub max_uncompressed_bytes: Option<u64>,
    /// Stops the load at its next read once set: [`Error::Aborted`], and the cache as it was.
    pub cancel: Option<crate::cancel::Cancel>,
    /// Receives the layer events of the load ([`crate::progress::ProgressEvent`]: cached,
    /// read so far, verified, converted) and one `Stitched` per image.
    pub progress: Option<crate::progress::Progress>,
}

pub(crate) fn handle_from_row(row: HandleRow) -> ImageHandle {
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
        tagged: row.tagged,
    }
}

pub(crate) fn config_detail(row: ConfigRow) -> Result<ImageConfigDetail> {
    Ok(ImageConfigDetail {
        env: row.env()?,
        cmd: row.cmd()?,
        entrypoint: row.entrypoint()?,
        labels: row.labels()?,
        digest: row.digest,
        working_dir: row.working_dir,
        user: row.user,
        stop_signal: row.stop_signal,
        exposed_ports: None,
        volumes: None,
        created: None,
        author: None,
        history: None,
    })
}

pub(crate) fn layer_detail(row: LayerRow) -> ImageLayerDetail {
    ImageLayerDetail {
        diff_id: row.diff_id,
        blob_digest: row.blob_digest,
        media_type: row.media_type,
        compressed_size_bytes: row.compressed_size as u64,
        erofs_size_bytes: row.erofs_size.map(|s| s as u64),
        position: row.position as u32,
    }
}

pub(crate) fn use_from_row(row: UseRow, now: i64) -> Result<ImageUse> {
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

/// Options of [`crate::Cache::list_with`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Also list the manifests no reference names that a use holds (`tagged` false).
    pub all: bool,
}

/// Options of [`crate::Cache::verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Also re-hash every artifact against the hash recorded when it was written and re-parse
    /// the EROFS metadata of every image (reads every byte); the quick check only looks at
    /// existence, size, the EROFS superblock (and the volume it names) and the VMDK text.
    pub full: bool,
}

/// Options of [`crate::Cache::repair`].
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Report what would be repaired; change nothing.
    pub dry_run: bool,
    /// Fetch a damaged layer image again from the registry repository its image was pulled
    /// from, through these options (credentials, TLS, plain HTTP, mirrors); `None`: never ask a
    /// registry (the layer is taken away and its images marked broken, as for a loaded image).
    pub refetch: Option<crate::registry::RegistryOptions>,
}

/// Why a repair could not fetch an image's damaged layers again.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchError {
    /// The registry repository asked (the image's origin).
    pub origin: String,
    /// The error's stable code (`REGISTRY_UNAVAILABLE`, `REGISTRY_UNAUTHORIZED`, ...).
    pub code: String,
    /// The error's message.
    pub message: String,
}

/// Integrity of one image's artifacts (see [`crate::Cache::verify`] and
/// [`crate::Cache::repair`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCheck {
    /// The manifest.
    pub manifest_digest: String,
    /// Its references, familiar form (`repository@digest` for a manifest only uses hold).
    pub references: Vec<String>,
    /// Artifacts checked: manifest and config blobs, layer images, fsmeta, VMDK.
    pub artifacts: u32,
    /// Bytes read and hashed (a full check reads every byte).
    pub bytes_read: u64,
    /// Problems found (verify) or left (repair); empty when the image is sound.
    pub problems: Vec<Problem>,
    /// Problems a repair fixed (or, in a dry run, would fix).
    pub repaired: Vec<Problem>,
    /// Why the image is marked broken (`boot_disk` refuses it), if it is.
    pub broken: Option<String>,
    /// The registry repository the image was last pulled from (`None`: only loaded).
    pub origin: Option<String>,
    /// Why a repair could not fetch its damaged layers from `origin`, when it tried and failed.
    pub fetch_error: Option<FetchError>,
}

/// A report of [`crate::Cache::verify`] or [`crate::Cache::repair`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// One entry per manifest checked, by digest.
    pub images: Vec<ImageCheck>,
    /// Whether artifacts were re-hashed and re-parsed.
    pub full: bool,
    /// Whether nothing was changed (a verify, or a repair's dry run).
    pub dry_run: bool,
    /// Problems found (verify) or left (repair) over every image.
    pub problems: u32,
}
