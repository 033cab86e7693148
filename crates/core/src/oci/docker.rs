//! Docker's `manifest.json` of a `docker save` archive, and the Docker v2 schema 2 manifest the
//! cache synthesizes for a legacy archive (which has none), from bytes and to bytes.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::oci::manifest::SCHEMA_VERSION;
use crate::oci::{Digest, media_type};

/// One entry of Docker's `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct DockerEntry {
    /// Member name of the config.
    #[serde(rename = "Config")]
    pub config: String,
    /// Tags to apply (`null` for an image saved by ID).
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    /// Member names of the layers, bottom to top.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// Parses Docker's `manifest.json`.
pub fn parse_docker_manifest(bytes: &[u8]) -> Result<Vec<DockerEntry>> {
    serde_json::from_slice(bytes).map_err(|e| Error::malformed_json("manifest.json", &e))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SynthesizedManifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: SynthesizedDescriptor<'a>,
    layers: Vec<SynthesizedDescriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SynthesizedDescriptor<'a> {
    media_type: &'a str,
    size: u64,
    digest: String,
}

/// A blob as the synthesized manifest lists it: media type, size, digest.
pub type BlobRef<'a> = (&'a str, u64, &'a Digest);

/// Builds the Docker v2 schema 2 manifest of a legacy archive's image. Deterministic: the same
/// config and layers give the same bytes (fixed field order, compact JSON).
pub fn synthesize_docker_manifest(config: BlobRef<'_>, layers: &[BlobRef<'_>]) -> Result<Vec<u8>> {
    let manifest = SynthesizedManifest {
        schema_version: SCHEMA_VERSION,
        media_type: media_type::DOCKER_MANIFEST,
        config: descriptor(config),
        layers: layers.iter().copied().map(descriptor).collect(),
    };
    serde_json::to_vec(&manifest)
        .map_err(|e| Error::internal(format!("serializing a manifest: {e}")))
}

fn descriptor((media_type, size, digest): BlobRef<'_>) -> SynthesizedDescriptor<'_> {
    SynthesizedDescriptor {
        media_type,
        size,
        digest: digest.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;
    use crate::oci::manifest::parse_manifest;

    #[test]
    fn synthesized_manifest_is_deterministic() {
        let config = Digest::of_bytes(b"config");
        let layer = Digest::of_bytes(b"layer");
        let bytes = synthesize_docker_manifest(
            (media_type::DOCKER_CONFIG, 6, &config),
            &[(media_type::DOCKER_LAYER_TAR, 5, &layer)],
        )
        .unwrap();
        let expected = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#,
                r#""config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":6,"digest":"{}"}},"#,
                r#""layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","size":5,"digest":"{}"}}]}}"#
            ),
            config, layer
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        let parsed = parse_manifest(&bytes, "synthesized").unwrap();
        assert_eq!(parsed.layers[0].digest, layer);
    }
}
