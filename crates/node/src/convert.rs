//! Conversions between core types and the `#[napi(object)]` structs JavaScript sees.

use std::collections::HashMap;

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
}

/// Config fields.
#[napi(object)]
pub struct NativeImageConfig {
    /// Config digest.
    pub digest: String,
    /// Env.
    pub env: Option<Vec<String>>,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// WorkingDir.
    pub working_dir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Labels.
    pub labels: Option<serde_json::Map<String, serde_json::Value>>,
    /// StopSignal.
    pub stop_signal: Option<String>,
}

/// A layer.
#[napi(object)]
pub struct NativeImageLayer {
    /// Uncompressed digest.
    pub diff_id: String,
    /// Blob digest.
    pub blob_digest: String,
    /// Media type.
    pub media_type: String,
    /// Descriptor size.
    pub compressed_size_bytes: f64,
    /// EROFS size.
    pub erofs_size_bytes: Option<f64>,
    /// 0 = bottom.
    pub position: u32,
}

/// What inspect returns.
#[napi(object)]
pub struct NativeImageDetail {
    /// The handle.
    pub handle: NativeImageHandle,
    /// The config.
    pub config: Option<NativeImageConfig>,
    /// Layers bottom to top.
    pub layers: Vec<NativeImageLayer>,
}

/// What prune and remove reclaimed.
#[napi(object)]
pub struct NativePruneReport {
    /// References deleted.
    pub image_refs_removed: f64,
    /// Manifests deleted.
    pub manifests_removed: f64,
    /// Layers deleted.
    pub layers_removed: f64,
    /// fsmeta images deleted.
    pub fsmeta_removed: f64,
    /// VMDK descriptors deleted.
    pub vmdk_removed: f64,
    /// Measured bytes deleted.
    pub bytes_reclaimed: Option<f64>,
    /// Measured allocated bytes deleted.
    pub allocated_bytes_reclaimed: Option<f64>,
    /// The cache's size before.
    pub bytes_before: f64,
    /// The cache's size after.
    pub bytes_after: f64,
    /// References removed, least recently used first.
    pub removed: Vec<NativePrunedReference>,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Entries left in place because they are not what the cache deletes there, one line each
    /// naming the path.
    pub warnings: Vec<String>,
}

/// One removed reference.
#[napi(object)]
pub struct NativePrunedReference {
    /// Familiar reference.
    pub reference: String,
    /// Its manifest.
    pub manifest_digest: String,
    /// Recorded bytes its removal freed.
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

/// The files a VM boots an image from.
#[napi(object)]
pub struct NativeBootDisk {
    /// VMDK descriptor.
    pub vmdk: String,
    /// fsmeta image.
    pub fsmeta: String,
    /// Layer images, bottom to top.
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

pub(crate) fn load_options_from(o: NativeLoadOptions) -> core::Result<core::LoadOptions> {
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
    })
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
    }
}

pub(crate) fn detail(d: core::ImageDetail) -> NativeImageDetail {
    NativeImageDetail {
        handle: handle(d.handle),
        config: d.config.map(|c| NativeImageConfig {
            digest: c.digest,
            env: c.env,
            cmd: c.cmd,
            entrypoint: c.entrypoint,
            working_dir: c.working_dir,
            user: c.user,
            labels: c.labels,
            stop_signal: c.stop_signal,
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

/// The totals of `diskUsageJson`.
#[derive(serde::Serialize)]
struct UsageTotalsJson {
    layers: u64,
    fsmeta: u64,
    vmdk: u64,
    blobs: u64,
    index: u64,
    temporary: u64,
    total: u64,
}

/// A JSON array written into one buffer element by element, as the core hands them out.
struct JsonArray {
    out: Vec<u8>,
    empty: bool,
}

impl JsonArray {
    fn new() -> JsonArray {
        let mut out = Vec::with_capacity(JSON_BUFFER);
        out.push(b'[');
        JsonArray { out, empty: true }
    }

    fn push(&mut self, value: &impl serde::Serialize) -> core::Result<()> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        serde_json::to_writer(&mut self.out, value).map_err(json_error)
    }

    /// The array's text.
    fn close(mut self) -> Vec<u8> {
        self.out.push(b']');
        self.out
    }
}

/// Bytes a JSON buffer starts with (grown as needed).
const JSON_BUFFER: usize = 64 * 1024;

fn json_error(e: serde_json::Error) -> core::Error {
    core::Error::internal(format!("serializing to JSON: {e}"))
}

/// The manifests of the rows written so far, each once: rows name a manifest by its position
/// in the `manifests` array (most references share their manifest with another).
struct Manifests {
    array: JsonArray,
    positions: HashMap<String, u32>,
}

impl Manifests {
    fn new() -> Manifests {
        Manifests {
            array: JsonArray::new(),
            positions: HashMap::new(),
        }
    }

    /// The position of manifest `digest`, whose row `row` writes when it is new.
    fn position<T: serde::Serialize>(
        &mut self,
        digest: &str,
        row: impl FnOnce() -> T,
    ) -> core::Result<u32> {
        if let Some(&p) = self.positions.get(digest) {
            return Ok(p);
        }
        let p = self.positions.len() as u32;
        self.array.push(&row())?;
        self.positions.insert(digest.to_owned(), p);
        Ok(p)
    }
}

/// `{"<first>":<a>,"<second>":<b>` and then `rest` (members of an object, each starting with a
/// comma, or nothing) and the closing brace, as a string.
fn json_object(
    first: (&str, Vec<u8>),
    second: (&str, Vec<u8>),
    rest: &[u8],
) -> core::Result<String> {
    let mut out = Vec::with_capacity(first.1.len() + second.1.len() + rest.len() + 32);
    for (k, (name, value)) in [first, second].into_iter().enumerate() {
        out.extend_from_slice(if k == 0 { b"{\"" } else { b",\"" });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(&value);
    }
    out.extend_from_slice(rest);
    out.push(b'}');
    String::from_utf8(out).map_err(|e| core::Error::internal(format!("JSON text: {e}")))
}

/// Every reference, newest first, as the text `listJson` returns, written while the core reads
/// the rows (one buffer, no value per row):
///
/// ```text
/// {"references": [[reference, manifest, createdAtMs, lastUsedAtMs | null], ...],
///  "manifests": [[digest, architecture, os, variant | null, layerCount, sizeBytes | null], ...]}
/// ```
///
/// `manifest` is a position in `manifests`, which lists each manifest once. Arrays rather than
/// objects, and each manifest once, make the text less than half as long as one object per
/// reference, and `JSON.parse` reads it in less than half the time.
pub(crate) fn list_json(cache: &core::Cache) -> core::Result<String> {
    let mut references = JsonArray::new();
    let mut manifests = Manifests::new();
    cache.list_each(|h| {
        let m = manifests.position(h.manifest_digest, || {
            (
                h.manifest_digest,
                h.architecture,
                h.os,
                h.variant,
                h.layer_count,
                h.size_bytes,
            )
        })?;
        references.push(&(h.reference, m, h.created_at, h.last_used_at))
    })?;
    json_object(
        ("references", references.close()),
        ("manifests", manifests.array.close()),
        b"",
    )
}

/// Bytes on disk as the text `diskUsageJson` returns, the rows written while the core reads
/// them (one buffer, no value per row), like [`list_json`]:
///
/// ```text
/// {"images": [[reference, manifest, reclaimableBytes], ...],
///  "manifests": [[digest, sharedBytes, exclusiveBytes], ...],
///  "layers": n, "fsmeta": n, "vmdk": n, "blobs": n, "index": n, "temporary": n, "total": n}
/// ```
pub(crate) fn disk_usage_json(cache: &core::Cache) -> core::Result<String> {
    let mut images = JsonArray::new();
    let mut manifests = Manifests::new();
    let d = cache.disk_usage_each(|i| {
        let m = manifests.position(i.manifest_digest, || {
            (i.manifest_digest, i.shared_bytes, i.exclusive_bytes)
        })?;
        images.push(&(i.reference, m, i.reclaimable_bytes))
    })?;
    let totals = serde_json::to_vec(&UsageTotalsJson {
        layers: d.layers,
        fsmeta: d.fsmeta,
        vmdk: d.vmdk,
        blobs: d.blobs,
        index: d.index,
        temporary: d.temporary,
        total: d.total,
    })
    .map_err(json_error)?;
    // `{"layers":…}` continues the object: a comma, then its members and closing brace.
    let mut rest = vec![b','];
    rest.extend_from_slice(
        totals
            .get(1..totals.len().saturating_sub(1))
            .unwrap_or_default(),
    );
    json_object(
        ("images", images.close()),
        ("manifests", manifests.array.close()),
        &rest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows name their manifest by its position among the manifests written so far, each
    /// written once; the object's members come out as the TypeScript side reads them.
    #[test]
    fn json_rows_name_each_manifest_once_by_position() {
        let mut references = JsonArray::new();
        let mut manifests = Manifests::new();
        for (reference, digest) in [
            ("a:1", "sha256:aa"),
            ("b:1", "sha256:bb"),
            ("a:2", "sha256:aa"),
        ] {
            let m = manifests
                .position(digest, || (digest, "amd64", None::<&str>))
                .unwrap();
            references.push(&(reference, m, Some(5))).unwrap();
        }
        let text = json_object(
            ("references", references.close()),
            ("manifests", manifests.array.close()),
            b",\"total\":3",
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{"references":[["a:1",0,5],["b:1",1,5],["a:2",0,5]],"manifests":[["sha256:aa","amd64",null],["sha256:bb","amd64",null]],"total":3}"#
        );
        let empty = json_object(
            ("images", JsonArray::new().close()),
            ("manifests", JsonArray::new().close()),
            b"",
        )
        .unwrap();
        assert_eq!(empty, r#"{"images":[],"manifests":[]}"#);
    }
}
