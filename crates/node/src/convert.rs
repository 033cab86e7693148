//! Conversions between core types and the `#[napi(object)]` structs JavaScript sees.

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
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeImageHandle {
    /// Familiar reference.
    pub reference: String,
    /// Manifest digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// Architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// OS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Layers.
    pub layer_count: u32,
    /// Bytes on disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<f64>,
    /// Milliseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at_ms: Option<f64>,
    /// Milliseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
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
    }
}
