//! The JSON documents of an archive, parsed from bytes: OCI descriptors, image indexes and
//! manifests (OCI image spec `descriptor.md`, `image-index.md`, `manifest.md`), the
//! `oci-layout` file (`image-layout.md`), Docker's `manifest.json`, and the Docker v2 schema 2
//! manifest synthesized for legacy archives.
//!
//! Only the fields the import needs are kept; unknown fields are ignored as the specs require.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::oci::{Digest, Platform, media_type};

/// The `schemaVersion` of image manifests and indexes (both OCI and Docker v2 schema 2).
const SCHEMA_VERSION: u32 = 2;

/// A content descriptor.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
    pub platform: Option<Platform>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl RawDescriptor {
    fn into_descriptor(self) -> Result<Descriptor> {
        Ok(Descriptor {
            media_type: self.media_type,
            digest: Digest::parse(&self.digest)?,
            size: self.size,
            annotations: self.annotations.unwrap_or_default(),
            platform: self.platform.map(|p| Platform {
                os: p.os,
                architecture: p.architecture,
                variant: p.variant.filter(|v| !v.is_empty()),
            }),
        })
    }
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone)]
pub(crate) struct ImageIndex {
    pub manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    manifests: Vec<RawDescriptor>,
}

/// An image manifest (OCI or Docker v2 schema 2).
#[derive(Debug, Clone)]
pub(crate) struct ImageManifest {
    /// The manifest's own `mediaType` field, when present.
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    config: RawDescriptor,
    layers: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLayoutFile {
    image_layout_version: String,
}

/// One entry of Docker's `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DockerEntry {
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

fn malformed(what: &str, e: serde_json::Error) -> Error {
    Error::malformed_json(what, &e)
}

fn check_schema_version(version: u32, what: &str) -> Result<()> {
    if version != SCHEMA_VERSION {
        return Err(Error::invalid_archive(format!(
            "{what} has schemaVersion {version}, expected {SCHEMA_VERSION}"
        )));
    }
    Ok(())
}

/// Parses an image index; its own `mediaType`, when present, must be an index type.
pub(crate) fn parse_index(bytes: &[u8], what: &str) -> Result<ImageIndex> {
    let raw: RawIndex = serde_json::from_slice(bytes).map_err(|e| malformed(what, e))?;
    check_schema_version(raw.schema_version, what)?;
    if let Some(mt) = &raw.media_type
        && !media_type::INDEXES.contains(&mt.as_str())
    {
        return Err(Error::invalid_archive(format!(
            "{what}: unknown media type {mt:?} for an index"
        )));
    }
    let manifests = raw
        .manifests
        .into_iter()
        .map(RawDescriptor::into_descriptor)
        .collect::<Result<_>>()?;
    Ok(ImageIndex { manifests })
}

/// Parses an image manifest.
pub(crate) fn parse_manifest(bytes: &[u8], what: &str) -> Result<ImageManifest> {
    let raw: RawManifest = serde_json::from_slice(bytes).map_err(|e| malformed(what, e))?;
    check_schema_version(raw.schema_version, what)?;
    Ok(ImageManifest {
        media_type: raw.media_type,
        config: raw.config.into_descriptor()?,
        layers: raw
            .layers
            .into_iter()
            .map(RawDescriptor::into_descriptor)
            .collect::<Result<_>>()?,
    })
}

/// Checks the `oci-layout` file: a JSON object with an `imageLayoutVersion`.
pub(crate) fn parse_layout_file(bytes: &[u8]) -> Result<()> {
    let raw: RawLayoutFile =
        serde_json::from_slice(bytes).map_err(|e| malformed("oci-layout", e))?;
    if raw.image_layout_version.is_empty() {
        return Err(Error::invalid_archive(
            "oci-layout has an empty imageLayoutVersion",
        ));
    }
    Ok(())
}

/// Parses Docker's `manifest.json`.
pub(crate) fn parse_docker_manifest(bytes: &[u8]) -> Result<Vec<DockerEntry>> {
    serde_json::from_slice(bytes).map_err(|e| malformed("manifest.json", e))
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
pub(crate) type BlobRef<'a> = (&'a str, u64, &'a Digest);

/// Builds the Docker v2 schema 2 manifest of a legacy archive's image. Deterministic: the same
/// config and layers give the same bytes (fixed field order, compact JSON).
pub(crate) fn synthesize_docker_manifest(
    config: BlobRef<'_>,
    layers: &[BlobRef<'_>],
) -> Result<Vec<u8>> {
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

/// The digest a member name spells, if its last component (less a `.json` suffix) is 64 hex
/// digits: `<hex>.json` configs of legacy archives and `blobs/sha256/<hex>` of newer ones.
pub(crate) fn digest_in_name(name: &str) -> Option<Digest> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let stem = last.strip_suffix(".json").unwrap_or(last);
    Digest::parse(&format!("sha256:{stem}")).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_index_with_platforms_and_annotations() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{HEX}","size":7,
              "platform":{{"os":"linux","architecture":"arm","variant":"v7"}},
              "annotations":{{"org.opencontainers.image.ref.name":"1"}}}}]}}"#
        );
        let index = parse_index(json.as_bytes(), "index.json").unwrap();
        let d = &index.manifests[0];
        assert_eq!(d.platform.as_ref().unwrap().to_string(), "linux/arm/v7");
        assert_eq!(d.annotations["org.opencontainers.image.ref.name"], "1");
        assert_eq!(d.size, 7);
    }

    #[test]
    fn rejects_bad_documents() {
        let d = format!(r#"{{"mediaType":"x","digest":"sha256:{HEX}","size":1}}"#);
        let cases: Vec<(&str, String)> = vec![
            ("index", "not json".into()),
            ("index", r#"{"schemaVersion":1,"manifests":[]}"#.into()),
            (
                "index",
                r#"{"schemaVersion":2,"mediaType":"text/plain","manifests":[]}"#.into(),
            ),
            (
                "index",
                r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"md5:1","size":1}]}"#
                    .into(),
            ),
            (
                "manifest",
                format!(r#"{{"schemaVersion":2,"layers":[{d}]}}"#),
            ),
            (
                "manifest",
                format!(
                    r#"{{"schemaVersion":2,"config":{d},"layers":[{{"digest":"sha256:{HEX}"}}]}}"#
                ),
            ),
            ("layout", r#"{"imageLayoutVersion":""}"#.into()),
            ("layout", "{}".into()),
            ("docker", r#"{"Config":"a"}"#.into()),
        ];
        for (kind, json) in cases {
            let bytes = json.as_bytes();
            let result = match kind {
                "index" => parse_index(bytes, "index").map(|_| ()),
                "manifest" => parse_manifest(bytes, "manifest").map(|_| ()),
                "layout" => parse_layout_file(bytes),
                _ => parse_docker_manifest(bytes).map(|_| ()),
            };
            assert!(result.is_err(), "{kind}: {json}");
        }
    }

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

    #[test]
    fn digest_in_name_table() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        let cases: &[(String, Option<&Digest>)] = &[
            (format!("{HEX}.json"), Some(&d)),
            (format!("blobs/sha256/{HEX}"), Some(&d)),
            (format!("{HEX}/layer.tar"), None),
            ("manifest.json".into(), None),
        ];
        for (name, want) in cases {
            assert_eq!(digest_in_name(name).as_ref(), *want, "{name}");
        }
    }
}
