//! Conversions between core types and the `#[napi(object)]` structs JavaScript sees.

use std::collections::HashMap;

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

/// What `listRows` and `diskUsageRows` return: many rows in two values, read by
/// `src/internal/rows.ts`. `text` is a JSON array of the rows' strings, `numbers` their numbers,
/// both in row order; a null number is NaN.
#[napi(object)]
pub struct NativeRows {
    /// JSON array of strings.
    pub text: String,
    /// The rows' numbers.
    pub numbers: Float64Array,
}

/// Rows being written: strings into one JSON array, numbers into one vector, each manifest
/// once (rows name it by its position, in the order they first name it: a manifest first
/// named by a row is written right after that row's own fields).
pub(crate) struct Rows {
    text: Vec<u8>,
    numbers: Vec<f64>,
    manifests: HashMap<String, u32>,
}

impl Rows {
    fn new() -> Rows {
        let mut text = Vec::with_capacity(ROWS_BUFFER);
        text.push(b'[');
        Rows {
            text,
            numbers: Vec::with_capacity(ROWS_BUFFER / 8),
            manifests: HashMap::new(),
        }
    }

    fn string(&mut self, s: &str) -> core::Result<()> {
        if self.text.len() > 1 {
            self.text.push(b',');
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

    /// The text (the array closed) and the numbers.
    pub(crate) fn finish(mut self) -> core::Result<(String, Vec<f64>)> {
        self.text.push(b']');
        let text = String::from_utf8(self.text)
            .map_err(|e| core::Error::internal(format!("JSON text: {e}")))?;
        Ok((text, self.numbers))
    }
}

/// The JS values of finished rows (on the JS thread: the typed array takes the vector without
/// copying it).
pub(crate) fn native_rows((text, numbers): (String, Vec<f64>)) -> NativeRows {
    NativeRows {
        text,
        numbers: Float64Array::new(numbers),
    }
}

/// Bytes the text of a [`Rows`] starts with (grown as needed).
const ROWS_BUFFER: usize = 64 * 1024;

/// A null-or-number field: NaN for null.
fn nullable(v: Option<i64>) -> f64 {
    v.map_or(f64::NAN, |v| v as f64)
}

/// Every reference, newest first, as `listRows` returns them, written while the core reads the
/// rows (no value per row). Per reference:
///
/// ```text
/// numbers: manifest, createdAtMs, lastUsedAtMs | NaN
///          and, if it is the first to name its manifest: layerCount, sizeBytes | NaN, hasVariant
/// strings: reference
///          and, if it is the first to name its manifest: digest, architecture, os, variant if any
/// ```
///
/// Strings in one JSON array and numbers in a typed array: `JSON.parse` of strings alone takes
/// a third of the time of the same rows as arrays, and numbers need no parsing.
pub(crate) fn list_rows(cache: &core::Cache) -> core::Result<Rows> {
    let mut rows = Rows::new();
    cache.list_each(|h| {
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
        Ok(())
    })?;
    Ok(rows)
}

/// Bytes on disk as `diskUsageRows` returns them, like [`list_rows`]. Per reference, in
/// reference order:
///
/// ```text
/// numbers: manifest, reclaimableBytes
///          and, if it is the first to name its manifest: sharedBytes, exclusiveBytes
/// strings: reference
///          and, if it is the first to name its manifest: digest
/// ```
///
/// then, as the last seven numbers: layers, fsmeta, vmdk, blobs, index, temporary, total.
pub(crate) fn disk_usage_rows(cache: &core::Cache) -> core::Result<Rows> {
    let mut rows = Rows::new();
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
        Ok(())
    })?;
    for v in [
        d.layers,
        d.fsmeta,
        d.vmdk,
        d.blobs,
        d.index,
        d.temporary,
        d.total,
    ] {
        rows.number(v as f64);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows name their manifest by its position, and the first to name one carries its fields;
    /// strings are JSON-escaped, null numbers NaN.
    #[test]
    fn rows_name_each_manifest_once_by_position() {
        let mut rows = Rows::new();
        for (reference, digest, used) in [
            ("a:1", "sha256:aa", Some(5)),
            ("b:\"1\"", "sha256:bb", None),
            ("a:2", "sha256:aa", Some(6)),
        ] {
            let (m, first) = rows.manifest(digest);
            rows.number(f64::from(m));
            rows.number(nullable(used));
            rows.string(reference).unwrap();
            if first {
                rows.string(digest).unwrap();
            }
        }
        let (text, numbers) = rows.finish().unwrap();
        assert_eq!(text, r#"["a:1","sha256:aa","b:\"1\"","sha256:bb","a:2"]"#);
        assert_eq!(numbers[..3], [0.0, 5.0, 1.0]);
        assert!(numbers[3].is_nan());
        assert_eq!(numbers[4..], [0.0, 6.0]);
        assert_eq!(Rows::new().finish().unwrap(), ("[]".to_owned(), Vec::new()));
    }
}
