//! Conversions between core types and the `#[napi(object)]` structs JavaScript sees.

use napi::bindgen_prelude::Float64Array;
use napi_derive::napi;
use ocicache_core as core;

/// Options of `NativeCache.open`.
#[napi(object)]
#[derive(Default)]
pub struct NativeCacheOptions {
    /// Cache root; default `$OCICACHE_HOME` or the platform cache folder.
    pub root: Option<String>,
    /// Backend; default from `OCICACHE_BACKEND`.
    pub backend: Option<NativeBackend>,
}

/// `{ kind: "local" }` or `{ kind: "cloud", url }`.
#[napi(object)]
pub struct NativeBackend {
    /// `local` or `cloud`.
    pub kind: String,
    /// Service URL for `cloud`.
    pub url: Option<String>,
}

/// `{ kind: "sandbox" | "snapshot", id }`.
#[napi(object)]
pub struct NativeHolder {
    /// `sandbox` or `snapshot`.
    pub kind: String,
    /// The holder's id.
    pub id: String,
}

/// A cached reference.
#[napi(object)]
pub struct NativeImageHandle {
    /// Familiar reference.
    pub reference: String,
    /// Manifest digest.
    pub manifest_digest: Option<String>,
    /// Architecture.
    pub architecture: Option<String>,
    /// OS.
    pub os: Option<String>,
    /// Variant.
    pub variant: Option<String>,
    /// Layers.
    pub layer_count: u32,
    /// Bytes on disk.
    pub size_bytes: Option<f64>,
    /// Milliseconds since the epoch.
    pub created_at_ms: Option<f64>,
    /// Milliseconds since the epoch.
    pub last_used_at_ms: Option<f64>,
    /// False for a manifest no reference names that a use holds (`reference` is then
    /// `repository@digest`).
    pub tagged: bool,
}

/// The config fields `inspect` shows; absent fields are null. (TypeScript:
/// `ImageConfigDetail`.)
#[napi(object, use_nullable = true)]
pub struct NativeImageConfig {
    /// The config blob's digest (`sha256:...`).
    pub digest: String,
    /// `Env`, as `NAME=value` strings.
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
    #[napi(ts_type = "Record<string, unknown>")]
    pub labels: Option<serde_json::Map<String, serde_json::Value>>,
    /// `StopSignal`.
    pub stop_signal: Option<String>,
    /// `ExposedPorts`: the ports the image says it listens on (`80/tcp`, `53/udp`), sorted.
    /// This field and the four after it are read from the config blob when the image is
    /// inspected; a field of the wrong type there is null, as if absent.
    pub exposed_ports: Option<Vec<String>>,
    /// `Volumes`: the container paths the image declares as volumes, sorted.
    pub volumes: Option<Vec<String>>,
    /// The config's `created`, when the image was built (not when it was loaded), in
    /// milliseconds since the Unix epoch; null when absent or not an RFC 3339 date-time.
    pub created_ms: Option<f64>,
    /// The config's `author`.
    pub author: Option<String>,
    /// The config's `history`, oldest first; null when absent or not an array of objects.
    #[napi(ts_type = "ReadonlyArray<Readonly<NativeImageHistory>>")]
    pub history: Option<Vec<NativeImageHistory>>,
}

/// One step of an image's build history. (TypeScript: `ImageHistoryEntry`.)
#[napi(object, use_nullable = true)]
pub struct NativeImageHistory {
    /// When, in milliseconds since the Unix epoch.
    pub created_ms: Option<f64>,
    /// `created_by`: the command that made it.
    pub created_by: Option<String>,
    /// `author`.
    pub author: Option<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `empty_layer`: the step made no layer.
    pub empty_layer: bool,
}

/// One layer of an image. (TypeScript: `ImageLayerDetail`.)
#[napi(object, use_nullable = true)]
pub struct NativeImageLayer {
    /// Digest of the uncompressed layer tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// Digest of the layer blob as distributed (compressed or not).
    pub blob_digest: String,
    /// The layer descriptor's media type.
    pub media_type: String,
    /// Size of the layer blob as distributed, in bytes.
    pub compressed_size_bytes: f64,
    /// Size in bytes of the layer's EROFS image, the form the cache keeps the layer in (one image
    /// per distinct `diffId`, shared by every image with that layer; the blob is not kept): a
    /// multiple of the 4096-byte block size. Null only for a layer recorded by an older cache
    /// version and not converted since; loading an image with that layer converts it.
    pub erofs_size_bytes: Option<f64>,
    /// Position in the image, 0 being the bottom layer.
    pub position: u32,
}

/// What inspect returns.
#[napi(object, use_nullable = true)]
pub struct NativeImageDetail {
    /// The handle.
    pub handle: NativeImageHandle,
    /// The config, or null when none is recorded.
    pub config: Option<NativeImageConfig>,
    /// Layers bottom to top.
    pub layers: Vec<NativeImageLayer>,
    /// The registry repository the image was last pulled from, or null (only loaded).
    pub origin: Option<String>,
}

/// What a prune (or remove) reclaimed. (TypeScript: `ImagePruneReport`.)
#[napi(object, use_nullable = true)]
pub struct NativePruneReport {
    /// References deleted.
    pub image_refs_removed: f64,
    /// Manifests deleted.
    pub manifests_removed: f64,
    /// Distinct layer images (by `diff_id`) deleted: those whose last user went, and orphan
    /// layer images that no index row names (left by an interrupted load).
    pub layers_removed: f64,
    /// fsmeta images deleted.
    pub fsmeta_removed: f64,
    /// VMDK descriptors deleted.
    pub vmdk_removed: f64,
    /// Measured bytes of the files actually deleted (for a dry run: that would be deleted), from
    /// the `lstat` made just before each unlink, or null when files were due for deletion and
    /// none could be measured (another process deleted them first).
    pub bytes_reclaimed: Option<f64>,
    /// Allocated bytes of those files (`st_blocks * 512`; the apparent size where the platform
    /// has no such figure), or null when `bytesReclaimed` is.
    pub allocated_bytes_reclaimed: Option<f64>,
    /// The cache's size before: the recorded sizes of its artifacts, the index files, and the
    /// orphan files and `tmp/` leftovers this run found.
    pub bytes_before: f64,
    /// `bytesBefore` minus `bytesReclaimed`.
    pub bytes_after: f64,
    /// Each reference removed, least recently used first, with what removing it freed.
    #[napi(ts_type = "ReadonlyArray<Readonly<NativePrunedReference>>")]
    pub removed: Vec<NativePrunedReference>,
    /// Whether this was a dry run (nothing was changed).
    pub dry_run: bool,
    /// Entries the sweep left in place because they are not what the cache deletes there (a
    /// directory or a symlink where an artifact file belongs, a folder under `tmp/` the cache did
    /// not make), one line each naming the path; the rest of the prune went on. Empty normally.
    #[napi(ts_type = "ReadonlyArray<string>")]
    pub warnings: Vec<String>,
}

/// One reference a prune removed. (TypeScript: `PrunedReference`.)
#[napi(object)]
pub struct NativePrunedReference {
    /// Familiar form of the reference.
    pub reference: String,
    /// The manifest it pointed to.
    pub manifest_digest: String,
    /// Recorded bytes its removal freed: the manifest's own files when it was the manifest's
    /// last reference, plus the config and layers no other image uses; 0 when another reference
    /// or a use keeps the manifest.
    pub bytes_freed: f64,
}

/// Options of `NativeCache.prune`; absent fields take the core's defaults.
#[napi(object)]
#[derive(Default)]
pub struct NativePruneOptions {
    /// Report without changing anything.
    pub dry_run: Option<bool>,
    /// Only references last used (never used: created) before this time, ms since the epoch.
    pub older_than_ms: Option<f64>,
    /// References kept, any spelling.
    pub keep: Option<Vec<String>>,
    /// Evict least recently used references until the cache is at most this many bytes.
    pub max_bytes: Option<f64>,
    /// References created or used within this many milliseconds are kept.
    pub grace_period_ms: Option<f64>,
}

/// Options of `NativeCache.load`; absent fields take the core's defaults.
#[napi(object)]
#[derive(Default)]
pub struct NativeLoadOptions {
    /// One more reference for the first image.
    pub tag: Option<String>,
    /// The platform to take from an index, `os/architecture[/variant]`; default the host's.
    pub platform: Option<String>,
    /// The most bytes the load may write (a whole number, at least 1); default: the free space
    /// of the cache's file system less a reserve.
    pub max_uncompressed_bytes: Option<f64>,
}

/// Options of `NativeCache.acquire`.
#[napi(object)]
#[derive(Default)]
pub struct NativeAcquireOptions {
    /// The use expires this many milliseconds after acquiring.
    pub ttl_ms: Option<f64>,
}

/// A use.
#[napi(object)]
pub struct NativeImageUse {
    /// Use id.
    pub id: String,
    /// Familiar reference.
    pub reference: String,
    /// Pinned manifest.
    pub manifest_digest: String,
    /// The holder.
    pub holder: NativeHolder,
    /// Milliseconds since the epoch.
    pub since_ms: f64,
    /// When the use stops pinning, ms since the epoch; absent = never.
    pub expires_at_ms: Option<f64>,
    /// Whether it had expired when read.
    pub expired: bool,
}

/// The files a VM boots an image from. (TypeScript: `BootDisk`.)
#[napi(object)]
pub struct NativeBootDisk {
    /// The VMDK descriptor: fsmeta, then each layer image, as FLAT extents (relative paths).
    pub vmdk: String,
    /// The merged metadata (fsmeta) EROFS image.
    pub fsmeta: String,
    /// Layer EROFS images, bottom to top: fsmeta's extra devices, in slot order.
    #[napi(ts_type = "ReadonlyArray<string>")]
    pub layers: Vec<String>,
}

/// The largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A JS number that must be a whole number within the safe-integer range; with `signed`
/// false it must also not be negative.
fn whole(name: &str, value: f64, signed: bool) -> core::Result<f64> {
    let reason = if !value.is_finite() {
        "must be a finite number"
    } else if value.fract() != 0.0 {
        "must be a whole number"
    } else if value.abs() > MAX_SAFE_INTEGER {
        "must be a safe integer"
    } else if !signed && value < 0.0 {
        "must not be negative"
    } else {
        return Ok(value);
    };
    Err(core::Error::InvalidArgument {
        name: name.into(),
        reason: format!("{reason}, got {value}"),
    })
}

/// A limit in bytes: a whole number of at least 1.
pub(crate) fn byte_limit(name: &str, value: f64) -> core::Result<u64> {
    let v = whole(name, value, false)?;
    if v < 1.0 {
        return Err(core::Error::InvalidArgument {
            name: name.into(),
            reason: format!("must be at least 1, got {value}"),
        });
    }
    Ok(v as u64)
}

pub(crate) fn prune_options_from(o: NativePruneOptions) -> core::Result<core::PruneOptions> {
    Ok(core::PruneOptions {
        dry_run: o.dry_run.unwrap_or(false),
        // A time, so it may precede the epoch.
        older_than_ms: o
            .older_than_ms
            .map(|v| whole("olderThanMs", v, true).map(|v| v as i64))
            .transpose()?,
        keep: o.keep.unwrap_or_default(),
        max_bytes: o
            .max_bytes
            .map(|v| whole("maxBytes", v, false).map(|v| v as u64))
            .transpose()?,
        grace_period_ms: o
            .grace_period_ms
            .map(|v| whole("gracePeriodMs", v, false).map(|v| v as i64))
            .transpose()?
            .unwrap_or(0),
    })
}

/// The core's load options: `o` checked, and `cancel` to stop the load.
pub(crate) fn load_options_from(
    o: NativeLoadOptions,
    cancel: Option<core::cancel::Cancel>,
) -> core::Result<core::LoadOptions> {
    Ok(core::LoadOptions {
        tag: o.tag,
        platform: o
            .platform
            .as_deref()
            .map(core::oci::Platform::parse)
            .transpose()?,
        max_uncompressed_bytes: o
            .max_uncompressed_bytes
            .map(|v| byte_limit("maxUncompressedBytes", v))
            .transpose()?,
        cancel,
        progress: None,
    })
}

/// Options of `NativeCache.pull` (TypeScript: `PullOptions`, less `onProgress` and `signal`).
#[napi(object)]
#[derive(Default)]
pub struct NativePullOptions {
    /// `os/architecture[/variant]`; default the host's.
    pub platform: Option<String>,
    /// `if-missing` (default), `always` or `never`.
    pub policy: Option<String>,
    /// Credentials; default: the Docker config's, else anonymous.
    pub auth: Option<NativePullAuth>,
    /// Plain HTTP.
    pub insecure: Option<bool>,
    /// Extra trusted CA certificates, PEM.
    pub ca_certs: Option<String>,
}

/// `{ username, password }` or `{ token }`.
#[napi(object)]
pub struct NativePullAuth {
    /// User name (with `password`).
    pub username: Option<String>,
    /// Password (with `username`).
    pub password: Option<String>,
    /// A registry token (alone).
    pub token: Option<String>,
}

/// How a repair reaches the registry an image came from (TypeScript: `RepairOptions.pull`):
/// the registry part of `PullOptions`.
#[napi(object)]
#[derive(Default)]
pub struct NativeRegistryAccess {
    /// Credentials; default: the Docker config's, else anonymous.
    pub auth: Option<NativePullAuth>,
    /// Plain HTTP.
    pub insecure: Option<bool>,
    /// Extra trusted CA certificates, PEM.
    pub ca_certs: Option<String>,
}

pub(crate) fn registry_options_from(
    o: NativeRegistryAccess,
) -> core::Result<core::registry::RegistryOptions> {
    let credentials = match o.auth {
        None => None,
        Some(NativePullAuth {
            username: Some(username),
            password: Some(password),
            token: None,
        }) => Some(core::registry::Credentials::Basic { username, password }),
        Some(NativePullAuth {
            username: None,
            password: None,
            token: Some(token),
        }) => Some(core::registry::Credentials::Token(token)),
        Some(_) => {
            return Err(core::Error::InvalidArgument {
                name: "auth".into(),
                reason: "expected { username, password } or { token }".into(),
            });
        }
    };
    Ok(core::registry::RegistryOptions {
        credentials,
        insecure: o.insecure.unwrap_or(false),
        ca_certs: o.ca_certs,
        ..Default::default()
    })
}

pub(crate) fn pull_options_from(o: NativePullOptions) -> core::Result<core::PullOptions> {
    let registry = registry_options_from(NativeRegistryAccess {
        auth: o.auth,
        insecure: o.insecure,
        ca_certs: o.ca_certs,
    })?;
    Ok(core::PullOptions {
        platform: o
            .platform
            .as_deref()
            .map(core::oci::Platform::parse)
            .transpose()?,
        policy: o
            .policy
            .as_deref()
            .map(core::PullPolicy::parse)
            .transpose()?
            .unwrap_or_default(),
        registry,
        ..Default::default()
    })
}

/// One step of a pull or load (TypeScript: `PullProgress`, a union over `kind`). Layer events
/// carry `index`, `diffId`, `digest` and `size`.
#[napi(object)]
pub struct NativePullProgress {
    /// `resolving`, `resolved`, `layer-cached`, `layer-download`, `layer-verified`,
    /// `layer-converted`, `stitched` or `done`.
    pub kind: String,
    /// `resolving`: the reference.
    pub reference: Option<String>,
    /// `resolved`, `stitched`, `done`: the manifest's digest.
    pub manifest_digest: Option<String>,
    /// `resolved`: the platform.
    pub platform: Option<String>,
    /// `resolved`: the layer count.
    pub layer_count: Option<u32>,
    /// `resolved`: the layer blobs' compressed bytes.
    pub total_bytes: Option<f64>,
    /// Layer events: position, 0 at the bottom.
    pub index: Option<u32>,
    /// Layer events: the layer's `diff_id`.
    pub diff_id: Option<String>,
    /// Layer events: the blob's digest.
    pub digest: Option<String>,
    /// Layer events: the blob's size.
    pub size: Option<f64>,
    /// `layer-download`: bytes so far.
    pub bytes: Option<f64>,
    /// `layer-converted`: the EROFS image's bytes.
    pub erofs_bytes: Option<f64>,
    /// `stitched`: the fsmeta image's bytes.
    pub fsmeta_bytes: Option<f64>,
    /// `stitched`: the VMDK descriptor's bytes.
    pub vmdk_bytes: Option<f64>,
}

/// An operation is about to wait for a lock another holder has (TypeScript: `LockWaitEvent`).
#[napi(object)]
pub struct NativeLockWait {
    /// The lock file, inside the cache's `locks/` folder.
    pub lock: String,
    /// `shared` or `exclusive`: the mode waited for.
    pub mode: String,
}

pub(crate) fn lock_wait_event(e: &core::store::LockWaitEvent) -> NativeLockWait {
    NativeLockWait {
        lock: e.path.to_string_lossy().into_owned(),
        mode: e.mode.as_str().to_owned(),
    }
}

pub(crate) fn progress_event(e: &core::progress::ProgressEvent) -> NativePullProgress {
    use core::progress::ProgressEvent as E;
    let mut out = NativePullProgress {
        kind: String::new(),
        reference: None,
        manifest_digest: None,
        platform: None,
        layer_count: None,
        total_bytes: None,
        index: None,
        diff_id: None,
        digest: None,
        size: None,
        bytes: None,
        erofs_bytes: None,
        fsmeta_bytes: None,
        vmdk_bytes: None,
    };
    let layer = |out: &mut NativePullProgress, l: &core::progress::LayerEvent| {
        out.index = Some(l.index as u32);
        out.diff_id = Some(l.diff_id.to_string());
        out.digest = Some(l.digest.to_string());
        out.size = Some(l.size as f64);
    };
    let kind = match e {
        E::Resolving { reference } => {
            out.reference = Some(reference.clone());
            "resolving"
        }
        E::Resolved {
            manifest_digest,
            platform,
            layers,
            total_bytes,
        } => {
            out.manifest_digest = Some(manifest_digest.to_string());
            out.platform = Some(platform.clone());
            out.layer_count = Some(*layers as u32);
            out.total_bytes = Some(*total_bytes as f64);
            "resolved"
        }
        E::LayerCached(l) => {
            layer(&mut out, l);
            "layer-cached"
        }
        E::LayerDownload {
            layer: l, bytes, ..
        } => {
            layer(&mut out, l);
            out.bytes = Some(*bytes as f64);
            "layer-download"
        }
        E::LayerVerified(l) => {
            layer(&mut out, l);
            "layer-verified"
        }
        E::LayerConverted {
            layer: l,
            erofs_bytes,
        } => {
            layer(&mut out, l);
            out.erofs_bytes = Some(*erofs_bytes as f64);
            "layer-converted"
        }
        E::Stitched {
            manifest_digest,
            fsmeta_bytes,
            vmdk_bytes,
        } => {
            out.manifest_digest = Some(manifest_digest.to_string());
            out.fsmeta_bytes = Some(*fsmeta_bytes as f64);
            out.vmdk_bytes = Some(*vmdk_bytes as f64);
            "stitched"
        }
        E::Done { manifest_digest } => {
            out.manifest_digest = Some(manifest_digest.to_string());
            "done"
        }
    };
    out.kind = kind.to_owned();
    out
}

pub(crate) fn acquire_options_from(o: NativeAcquireOptions) -> core::Result<core::AcquireOptions> {
    Ok(core::AcquireOptions {
        ttl_ms: o
            .ttl_ms
            .map(|v| whole("ttlMs", v, false).map(|v| v as u64))
            .transpose()?,
    })
}

pub(crate) fn backend_from(b: NativeBackend) -> core::Result<core::Backend> {
    match b.kind.as_str() {
        "local" => Ok(core::Backend::Local),
        "cloud" => Ok(core::Backend::Cloud {
            url: b.url.unwrap_or_default(),
        }),
        other => Err(core::Error::InvalidArgument {
            name: "backend".into(),
            reason: format!("unknown backend {other:?} (expected \"local\" or \"cloud\")"),
        }),
    }
}

pub(crate) fn holder_from(h: NativeHolder) -> core::Result<core::Holder> {
    match h.kind.as_str() {
        "sandbox" => Ok(core::Holder::Sandbox(h.id)),
        "snapshot" => Ok(core::Holder::Snapshot(h.id)),
        other => Err(core::Error::InvalidArgument {
            name: "holder".into(),
            reason: format!("unknown holder kind {other:?} (expected sandbox or snapshot)"),
        }),
    }
}

pub(crate) fn handle(h: core::ImageHandle) -> NativeImageHandle {
    NativeImageHandle {
        reference: h.reference,
        manifest_digest: h.manifest_digest,
        architecture: h.architecture,
        os: h.os,
        variant: h.variant,
        layer_count: h.layer_count,
        size_bytes: h.size_bytes.map(|v| v as f64),
        created_at_ms: h.created_at.map(|v| v as f64),
        last_used_at_ms: h.last_used_at.map(|v| v as f64),
        tagged: h.tagged,
    }
}

/// One problem with one artifact. (TypeScript: `CheckProblem`.)
#[napi(object, use_nullable = true)]
pub struct NativeCheckProblem {
    /// `missing`, `not-a-file`, `size`, `superblock`, `wrong-image`, `hash` or `metadata`.
    pub kind: String,
    /// `layer`, `fsmeta`, `vmdk` or `blob`.
    pub artifact: String,
    /// The file.
    pub path: String,
    /// What was expected (a size, a hash, a volume), when it can be told.
    pub expected: Option<String>,
    /// What was found, when it can be told.
    pub found: Option<String>,
}

/// Integrity of one image's files. (TypeScript: `ImageCheck`.)
#[napi(object, use_nullable = true)]
pub struct NativeImageCheck {
    /// The manifest (`sha256:...`).
    pub manifest_digest: String,
    /// Its references, familiar form (`repository@digest` for a manifest only uses hold).
    pub references: Vec<String>,
    /// Artifacts checked: manifest and config blobs, layer images, fsmeta, VMDK.
    pub artifacts: u32,
    /// Bytes read (a full check reads every byte).
    pub bytes_read: f64,
    /// Problems found (verify) or left (repair); empty when the image is sound.
    pub problems: Vec<NativeCheckProblem>,
    /// Problems a repair fixed (or, in a dry run, would fix).
    pub repaired: Vec<NativeCheckProblem>,
    /// Why the image is marked broken (`bootDisk` refuses it), or null.
    pub broken: Option<String>,
    /// The registry repository the image was last pulled from, or null (only loaded).
    pub origin: Option<String>,
    /// Why a repair could not fetch its damaged layers from `origin`, or null.
    pub fetch_error: Option<NativeFetchError>,
}

/// Why a repair could not fetch an image's damaged layers again. (TypeScript: `FetchError`.)
#[napi(object)]
pub struct NativeFetchError {
    /// The registry repository asked.
    pub origin: String,
    /// The error's stable code (`REGISTRY_UNAVAILABLE`, `REGISTRY_UNAUTHORIZED`, ...).
    pub code: String,
    /// The error's message.
    pub message: String,
}

/// What `verify` or `repair` found. (TypeScript: `CheckReport`.)
#[napi(object)]
pub struct NativeCheckReport {
    /// One entry per manifest checked, by digest.
    pub images: Vec<NativeImageCheck>,
    /// Whether every byte was re-hashed and every EROFS image re-parsed.
    pub full: bool,
    /// Whether nothing was changed (a verify, or a repair's dry run).
    pub dry_run: bool,
    /// Problems found (verify) or left (repair) over every image.
    pub problems: u32,
}

fn problem(p: core::Problem) -> NativeCheckProblem {
    NativeCheckProblem {
        kind: p.kind.as_str().into(),
        artifact: p.artifact.as_str().into(),
        path: p.path.to_string_lossy().into_owned(),
        expected: p.expected,
        found: p.found,
    }
}

pub(crate) fn check_report(r: core::CheckReport) -> NativeCheckReport {
    NativeCheckReport {
        images: r
            .images
            .into_iter()
            .map(|i| NativeImageCheck {
                manifest_digest: i.manifest_digest,
                references: i.references,
                artifacts: i.artifacts,
                bytes_read: i.bytes_read as f64,
                problems: i.problems.into_iter().map(problem).collect(),
                repaired: i.repaired.into_iter().map(problem).collect(),
                broken: i.broken,
                origin: i.origin,
                fetch_error: i.fetch_error.map(|f| NativeFetchError {
                    origin: f.origin,
                    code: f.code,
                    message: f.message,
                }),
            })
            .collect(),
        full: r.full,
        dry_run: r.dry_run,
        problems: r.problems,
    }
}

pub(crate) fn detail(d: core::ImageDetail) -> NativeImageDetail {
    NativeImageDetail {
        handle: handle(d.handle),
        origin: d.origin,
        config: d.config.map(|c| NativeImageConfig {
            digest: c.digest,
            env: c.env,
            cmd: c.cmd,
            entrypoint: c.entrypoint,
            working_dir: c.working_dir,
            user: c.user,
            labels: c.labels,
            stop_signal: c.stop_signal,
            exposed_ports: c.exposed_ports,
            volumes: c.volumes,
            created_ms: c.created.map(|v| v as f64),
            author: c.author,
            history: c.history.map(|h| {
                h.into_iter()
                    .map(|e| NativeImageHistory {
                        created_ms: e.created.map(|v| v as f64),
                        created_by: e.created_by,
                        author: e.author,
                        comment: e.comment,
                        empty_layer: e.empty_layer,
                    })
                    .collect()
            }),
        }),
        layers: d
            .layers
            .into_iter()
            .map(|l| NativeImageLayer {
                diff_id: l.diff_id,
                blob_digest: l.blob_digest,
                media_type: l.media_type,
                compressed_size_bytes: l.compressed_size_bytes as f64,
                erofs_size_bytes: l.erofs_size_bytes.map(|v| v as f64),
                position: l.position,
            })
            .collect(),
    }
}

pub(crate) fn prune_report(r: core::ImagePruneReport) -> NativePruneReport {
    NativePruneReport {
        image_refs_removed: r.image_refs_removed as f64,
        manifests_removed: r.manifests_removed as f64,
        layers_removed: r.layers_removed as f64,
        fsmeta_removed: r.fsmeta_removed as f64,
        vmdk_removed: r.vmdk_removed as f64,
        bytes_reclaimed: r.bytes_reclaimed.map(|v| v as f64),
        allocated_bytes_reclaimed: r.allocated_bytes_reclaimed.map(|v| v as f64),
        bytes_before: r.bytes_before as f64,
        bytes_after: r.bytes_after as f64,
        removed: r
            .removed
            .into_iter()
            .map(|p| NativePrunedReference {
                reference: p.reference,
                manifest_digest: p.manifest_digest,
                bytes_freed: p.bytes_freed as f64,
            })
            .collect(),
        dry_run: r.dry_run,
        warnings: r.warnings,
    }
}

fn path_string(p: std::path::PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn boot_disk(b: core::BootDisk) -> NativeBootDisk {
    NativeBootDisk {
        vmdk: path_string(b.vmdk),
        fsmeta: path_string(b.fsmeta),
        layers: b.layers.into_iter().map(path_string).collect(),
    }
}

pub(crate) fn image_use(u: core::ImageUse) -> NativeImageUse {
    let (kind, id) = match u.holder {
        core::Holder::Sandbox(id) => ("sandbox", id),
        core::Holder::Snapshot(id) => ("snapshot", id),
    };
    NativeImageUse {
        id: u.id,
        reference: u.reference,
        manifest_digest: u.manifest_digest,
        holder: NativeHolder {
            kind: kind.into(),
            id,
        },
        since_ms: u.since as f64,
        expires_at_ms: u.expires_at.map(|v| v as f64),
        expired: u.expired,
    }
}

/// One chunk of the rows `listRows` and `diskUsageRows` stream (`NativeRowStream.next`), read by
/// `src/internal/rows.ts`. `text` is a JSON array of the chunk's strings, `numbers` their
/// numbers, both in row order, then the count of the chunk's rows that are tagged (they come
/// first); a null number is NaN. Rows name their manifest by its position over the whole
/// stream; the first row to name one carries its fields. The last chunk says so and may carry
/// trailing numbers (`diskUsageRows`: its totals).
#[napi(object)]
pub struct NativeRows {
    /// JSON array of strings.
    pub text: String,
    /// The rows' numbers.
    pub numbers: Float64Array,
    /// Whether this is the stream's last chunk.
    pub last: bool,
}

/// A finished chunk of [`Rows`], before it becomes JS values on the JS thread.
#[derive(Debug, PartialEq)]
pub(crate) struct Chunk {
    pub(crate) text: String,
    pub(crate) numbers: Vec<f64>,
    pub(crate) last: bool,
}

/// Rows being written: strings into one JSON array, numbers into one vector, each manifest
/// once (rows name it by its position, in the order they first name it: a manifest first
/// named by a row is written right after that row's own fields). Each full chunk goes to
/// `send`, so that JS reads it while the core reads the next rows: the first of
/// `chunk_rows.first` rows, each next one twice the size of the one before, up to
/// `chunk_rows.most`.
pub(crate) struct Rows<S: FnMut(Chunk) -> core::Result<()>> {
    text: Vec<u8>,
    numbers: Vec<f64>,
    manifests: rustc_hash::FxHashMap<String, u32>,
    /// Rows in the chunk being written, and how many of them are tagged.
    rows: usize,
    tagged: u32,
    /// Rows in the chunk being written when it is sent, and at most.
    limit: usize,
    most: usize,
    send: S,
}

/// How many rows the chunks of a [`Rows`] hold: `first`, then twice as many each time up to
/// `most`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkRows {
    pub(crate) first: usize,
    pub(crate) most: usize,
}

impl ChunkRows {
    /// Chunks of `n` rows each.
    pub(crate) fn fixed(n: usize) -> ChunkRows {
        ChunkRows { first: n, most: n }
    }
}

impl<S: FnMut(Chunk) -> core::Result<()>> Rows<S> {
    pub(crate) fn new(chunk_rows: ChunkRows, send: S) -> Rows<S> {
        let most = chunk_rows.most.max(1);
        let mut rows = Rows {
            text: Vec::new(),
            numbers: Vec::new(),
            manifests: rustc_hash::FxHashMap::default(),
            rows: 0,
            tagged: 0,
            limit: chunk_rows.first.clamp(1, most),
            most,
            send,
        };
        rows.start();
        rows
    }

    /// Fresh buffers for the next chunk.
    fn start(&mut self) {
        self.text = Vec::with_capacity(ROWS_BUFFER);
        self.text.push(b'[');
        self.numbers = Vec::with_capacity(ROWS_BUFFER / 8);
        self.rows = 0;
        self.tagged = 0;
    }

    fn string(&mut self, s: &str) -> core::Result<()> {
        if self.text.len() > 1 {
            self.text.push(b',');
        }
        // References and digests rarely hold anything JSON escapes: copy those as they are.
        if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.text.push(b'"');
            self.text.extend_from_slice(s.as_bytes());
            self.text.push(b'"');
            return Ok(());
        }
        serde_json::to_writer(&mut self.text, s)
            .map_err(|e| core::Error::internal(format!("serializing to JSON: {e}")))
    }

    fn number(&mut self, v: f64) {
        self.numbers.push(v);
    }

    /// The position of manifest `digest`, and whether this row is the first to name it (then
    /// the caller writes the manifest's fields next).
    fn manifest(&mut self, digest: &str) -> (u32, bool) {
        if let Some(&p) = self.manifests.get(digest) {
            return (p, false);
        }
        let p = self.manifests.len() as u32;
        self.manifests.insert(digest.to_owned(), p);
        (p, true)
    }

    /// Ends a row; sends the chunk when it is full.
    fn end_row(&mut self, tagged: bool) -> core::Result<()> {
        self.rows += 1;
        if tagged {
            self.tagged += 1;
        }
        if self.rows >= self.limit {
            self.send_chunk(false, &[])?;
            self.limit = (self.limit * 2).min(self.most);
        }
        Ok(())
    }

    /// Sends the chunk being written: its rows, their tagged count, then `tail`.
    fn send_chunk(&mut self, last: bool, tail: &[f64]) -> core::Result<()> {
        self.numbers.push(f64::from(self.tagged));
        self.numbers.extend_from_slice(tail);
        self.text.push(b']');
        let text = String::from_utf8(std::mem::take(&mut self.text))
            .map_err(|e| core::Error::internal(format!("JSON text: {e}")))?;
        let numbers = std::mem::take(&mut self.numbers);
        (self.send)(Chunk {
            text,
            numbers,
            last,
        })?;
        if !last {
            self.start();
        }
        Ok(())
    }

    /// Sends the last chunk (possibly of no rows), ending with `tail`.
    pub(crate) fn finish(mut self, tail: &[f64]) -> core::Result<()> {
        self.send_chunk(true, tail)
    }
}

/// The JS values of a chunk (on the JS thread: the typed array takes the vector without
/// copying it).
pub(crate) fn native_rows(chunk: Chunk) -> NativeRows {
    NativeRows {
        text: chunk.text,
        numbers: Float64Array::new(chunk.numbers),
        last: chunk.last,
    }
}

/// Bytes the text of a chunk starts with (grown as needed).
const ROWS_BUFFER: usize = 64 * 1024;

/// Rows per chunk by default: a first chunk small enough that JS starts on it within a
/// millisecond and reads each chunk while the core reads the next (the two overlap on two
/// cores, bench/prune.mjs), chunks growing to a size at which the await per chunk is noise. A
/// list of up to 1,024 rows is one chunk.
pub(crate) const CHUNK_ROWS: ChunkRows = ChunkRows {
    first: 1024,
    most: 8192,
};

/// A null-or-number field: NaN for null.
fn nullable(v: Option<i64>) -> f64 {
    v.map_or(f64::NAN, |v| v as f64)
}

/// Every reference, newest first (with `all`, then the manifests only uses hold), as `listRows`
/// streams them, written while the core reads the rows (no value per row). Per reference:
///
/// ```text
/// numbers: manifest, createdAtMs, lastUsedAtMs | NaN
///          and, if it is the first to name its manifest: layerCount, sizeBytes | NaN, hasVariant
/// strings: reference
///          and, if it is the first to name its manifest: digest, architecture, os, variant if any
/// ```
///
/// and each chunk ends with how many of its rows are tagged (the rows after those are not).
///
/// Strings in one JSON array and numbers in a typed array: `JSON.parse` of strings alone takes
/// a third of the time of the same rows as arrays, and numbers need no parsing.
pub(crate) fn list_rows<S: FnMut(Chunk) -> core::Result<()>>(
    cache: &core::Cache,
    options: &core::ListOptions,
    mut rows: Rows<S>,
) -> core::Result<()> {
    cache.list_each_with(options, |h| {
        let (m, first) = rows.manifest(h.manifest_digest);
        rows.number(f64::from(m));
        rows.number(h.created_at as f64);
        rows.number(nullable(h.last_used_at));
        rows.string(h.reference)?;
        if first {
            rows.number(f64::from(h.layer_count));
            rows.number(nullable(h.size_bytes.map(|v| v as i64)));
            rows.number(if h.variant.is_some() { 1.0 } else { 0.0 });
            rows.string(h.manifest_digest)?;
            rows.string(h.architecture)?;
            rows.string(h.os)?;
            if let Some(v) = h.variant {
                rows.string(v)?;
            }
        }
        rows.end_row(h.tagged)
    })?;
    rows.finish(&[])
}

/// Bytes on disk as `diskUsageRows` streams them, like [`list_rows`]. Per reference, in
/// reference order:
///
/// ```text
/// numbers: manifest, reclaimableBytes
///          and, if it is the first to name its manifest: sharedBytes, exclusiveBytes
/// strings: reference
///          and, if it is the first to name its manifest: digest
/// ```
///
/// each chunk ending with how many of its rows are tagged (the rows after those are manifests
/// only uses hold), and the last chunk then with seven numbers: layers, fsmeta, vmdk, blobs,
/// index, temporary, total.
pub(crate) fn disk_usage_rows<S: FnMut(Chunk) -> core::Result<()>>(
    cache: &core::Cache,
    mut rows: Rows<S>,
) -> core::Result<()> {
    let d = cache.disk_usage_each(|i| {
        let (m, first) = rows.manifest(i.manifest_digest);
        rows.number(f64::from(m));
        rows.number(i.reclaimable_bytes as f64);
        rows.string(i.reference)?;
        if first {
            rows.number(i.shared_bytes as f64);
            rows.number(i.exclusive_bytes as f64);
            rows.string(i.manifest_digest)?;
        }
        rows.end_row(i.tagged)
    })?;
    rows.finish(&[
        d.layers as f64,
        d.fsmeta as f64,
        d.vmdk as f64,
        d.blobs as f64,
        d.index as f64,
        d.temporary as f64,
        d.total as f64,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks a [`Rows`] sends.
    fn chunks(
        chunk_rows: ChunkRows,
        write: impl FnOnce(&mut Rows<&mut dyn FnMut(Chunk) -> core::Result<()>>),
    ) -> Vec<Chunk> {
        let mut out = Vec::new();
        let mut send = |c: Chunk| {
            out.push(c);
            Ok(())
        };
        let mut rows: Rows<&mut dyn FnMut(Chunk) -> core::Result<()>> =
            Rows::new(chunk_rows, &mut send);
        write(&mut rows);
        rows.finish(&[7.0]).unwrap();
        out
    }

    /// Rows name their manifest by its position, and the first to name one carries its fields;
    /// strings are JSON-escaped, null numbers NaN; each chunk ends with its tagged count, the
    /// last with the tail too.
    #[test]
    fn rows_name_each_manifest_once_by_position() {
        let got = chunks(ChunkRows::fixed(10), |rows| {
            for (reference, digest, used, tagged) in [
                ("a:1", "sha256:aa", Some(5), true),
                ("b:\"1\"", "sha256:bb", None, true),
                ("a:2", "sha256:aa", Some(6), false),
            ] {
                let (m, first) = rows.manifest(digest);
                rows.number(f64::from(m));
                rows.number(nullable(used));
                rows.string(reference).unwrap();
                if first {
                    rows.string(digest).unwrap();
                }
                rows.end_row(tagged).unwrap();
            }
        });
        assert_eq!(got.len(), 1);
        let Chunk {
            text,
            numbers,
            last,
        } = &got[0];
        assert!(last);
        assert_eq!(text, r#"["a:1","sha256:aa","b:\"1\"","sha256:bb","a:2"]"#);
        assert_eq!(numbers[..3], [0.0, 5.0, 1.0]);
        assert!(numbers[3].is_nan());
        assert_eq!(numbers[4..], [0.0, 6.0, 2.0, 7.0]);
        assert_eq!(
            chunks(ChunkRows::fixed(10), |_| ()),
            [Chunk {
                text: "[]".into(),
                numbers: vec![0.0, 7.0],
                last: true
            }]
        );
        // Whatever a string holds, the text parses back to it.
        let odd = [
            "tab\there",
            "nl\n",
            "del\u{7f}",
            "é-ü",
            "back\\slash",
            "\u{1}",
            "",
        ];
        let got = chunks(ChunkRows::fixed(10), |rows| {
            for s in odd {
                rows.string(s).unwrap();
            }
        });
        let back: Vec<String> = serde_json::from_str(&got[0].text).unwrap();
        assert_eq!(back, odd);
    }

    /// A full chunk is sent as soon as its last row ends; manifest positions run on across
    /// chunks, and each chunk counts only its own tagged rows.
    #[test]
    fn rows_are_sent_in_chunks_of_the_given_size() {
        let got = chunks(ChunkRows::fixed(2), |rows| {
            for (reference, digest, tagged) in [
                ("a:1", "sha256:aa", true),
                ("b:1", "sha256:bb", true),
                ("c:1", "sha256:aa", true),
                ("d:1", "sha256:cc", false),
                ("e:1", "sha256:bb", false),
            ] {
                let (m, first) = rows.manifest(digest);
                rows.number(f64::from(m));
                rows.string(reference).unwrap();
                if first {
                    rows.string(digest).unwrap();
                }
                rows.end_row(tagged).unwrap();
            }
        });
        let text: Vec<&str> = got.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            text,
            [
                r#"["a:1","sha256:aa","b:1","sha256:bb"]"#,
                r#"["c:1","d:1","sha256:cc"]"#,
                r#"["e:1"]"#,
            ]
        );
        let numbers: Vec<&[f64]> = got.iter().map(|c| c.numbers.as_slice()).collect();
        assert_eq!(
            numbers,
            [&[0.0, 1.0, 2.0][..], &[0.0, 2.0, 1.0], &[1.0, 0.0, 7.0]]
        );
        let last: Vec<bool> = got.iter().map(|c| c.last).collect();
        assert_eq!(last, [false, false, true]);
    }

    /// A row count that fills the last chunk exactly still ends with a last (empty) chunk.
    #[test]
    fn a_full_last_chunk_is_followed_by_an_empty_last_one() {
        let got = chunks(ChunkRows::fixed(1), |rows| {
            rows.string("a:1").unwrap();
            rows.end_row(true).unwrap();
        });
        assert_eq!(
            got,
            [
                Chunk {
                    text: r#"["a:1"]"#.into(),
                    numbers: vec![1.0],
                    last: false
                },
                Chunk {
                    text: "[]".into(),
                    numbers: vec![0.0, 7.0],
                    last: true
                },
            ]
        );
    }

    /// Chunks grow from the first size, doubling, to the largest.
    #[test]
    fn chunks_double_from_the_first_size_to_the_largest() {
        let got = chunks(ChunkRows { first: 1, most: 4 }, |rows| {
            for _ in 0..12 {
                rows.string("r").unwrap();
                rows.end_row(true).unwrap();
            }
        });
        let sizes: Vec<usize> = got
            .iter()
            .map(|c| serde_json::from_str::<Vec<String>>(&c.text).unwrap().len())
            .collect();
        assert_eq!(sizes, [1, 2, 4, 4, 1]);
    }
}
