//! Image manifests and indexes (OCI image spec `manifest.md`, `image-index.md`; Docker image
//! manifest v2 schema 2 and manifest lists, which share their shape), and the `oci-layout`
//! file (`image-layout.md`), parsed from bytes.
//!
//! Only the fields the cache needs are kept; unknown fields are ignored as the specs require.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::oci::descriptor::RawDescriptor;
use crate::oci::{Descriptor, media_type};

/// The `schemaVersion` of image manifests and indexes (both OCI and Docker v2 schema 2).
pub const SCHEMA_VERSION: u32 = 2;

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone)]
pub struct ImageIndex {
    /// `manifests`, in order.
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
pub struct ImageManifest {
    /// The manifest's own `mediaType` field, when present.
    pub media_type: Option<String>,
    /// `config`.
    pub config: Descriptor,
    /// `layers`, bottom to top.
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

fn check_schema_version(version: u32, what: &str) -> Result<()> {
    if version != SCHEMA_VERSION {
        return Err(Error::invalid_archive(format!(
            "{what} has schemaVersion {version}, expected {SCHEMA_VERSION}"
        )));
    }
    Ok(())
}

/// Parses an image index (`what` names it in errors); its own `mediaType`, when present, must
/// be an index type.
pub fn parse_index(bytes: &[u8], what: &str) -> Result<ImageIndex> {
    let raw: RawIndex =
        serde_json::from_slice(bytes).map_err(|e| Error::malformed_json(what, &e))?;
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

/// Parses an image manifest (`what` names it in errors).
pub fn parse_manifest(bytes: &[u8], what: &str) -> Result<ImageManifest> {
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| Error::malformed_json(what, &e))?;
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
pub fn parse_layout_file(bytes: &[u8]) -> Result<()> {
    let raw: RawLayoutFile =
        serde_json::from_slice(bytes).map_err(|e| Error::malformed_json("oci-layout", &e))?;
    if raw.image_layout_version.is_empty() {
        return Err(Error::invalid_archive(
            "oci-layout has an empty imageLayoutVersion",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;
    use crate::oci::docker::parse_docker_manifest;

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
}
