//! Import of legacy `docker save` archives (Docker before 25):
//!
//! ```text
//! manifest.json         [{"Config": "<hex>.json", "RepoTags": [...], "Layers": ["<id>/layer.tar", ...]}]
//! <hex>.json            the image config, named by its sha256
//! <id>/layer.tar        a layer (often uncompressed; may be a symlink to another layer's file)
//! <id>/json, VERSION    v1 metadata, ignored
//! repositories          ignored: manifest.json's RepoTags say the same
//! ```
//!
//! These archives have no manifest blob, so one is synthesized (Docker v2 schema 2, the media
//! types following each layer's detected compression), deterministically: loading the same
//! archive twice gives the same manifest digest.

use crate::archive::layer::{LayerInput, docker_media_type, verify_layers};
use crate::archive::source::{Source, Staging, read_staged_metadata};
use crate::archive::{
    DOCKER_MANIFEST_FILE, StagedImage, StagedLayer, add_names, check_layer_count, digest_in_name,
    require_metadata,
};
use crate::error::{Error, Result};
use crate::oci::docker::{BlobRef, DockerEntry, parse_docker_manifest, synthesize_docker_manifest};
use crate::oci::{ConfigInfo, Reference, media_type};

/// Stages every image `manifest.json` lists. Entries that describe the same image (same
/// synthesized manifest) are merged, their tags combined.
pub(crate) fn stage_docker(src: &dyn Source, staging: &Staging) -> Result<Vec<StagedImage>> {
    let entries = parse_docker_manifest(&require_metadata(src, DOCKER_MANIFEST_FILE)?)?;
    let mut images: Vec<StagedImage> = Vec::new();
    for entry in &entries {
        let image = stage_entry(src, staging, entry)?;
        match images
            .iter_mut()
            .find(|i| i.manifest.digest == image.manifest.digest)
        {
            Some(staged) => add_names(staged, image.references, image.bare_tags),
            None => images.push(image),
        }
    }
    Ok(images)
}

fn stage_entry(src: &dyn Source, staging: &Staging, entry: &DockerEntry) -> Result<StagedImage> {
    let references = references_of(entry.repo_tags.as_deref())?;
    let what = format!("config {}", entry.config);
    let config = src
        .stage(&entry.config)?
        .ok_or_else(|| Error::invalid_archive(format!("{what}: member is missing")))?;
    if let Some(named) = digest_in_name(&entry.config) {
        named.verify(&config.digest, || what.clone())?;
    }
    let config_info = ConfigInfo::parse(&read_staged_metadata(&config, &what)?)?;
    check_layer_count(entry.layers.len(), config_info.diff_ids.len())?;
    let inputs: Vec<LayerInput> = entry
        .layers
        .iter()
        .map(|name| LayerInput {
            name: name.clone(),
            digest: digest_in_name(name),
            size: None,
        })
        .collect();
    let verified = verify_layers(src, &inputs, &config_info.diff_ids)?;
    let blob_refs: Vec<BlobRef<'_>> = verified
        .iter()
        .map(|v| {
            (
                docker_media_type(v.compression),
                v.blob.size,
                &v.blob.digest,
            )
        })
        .collect();
    let manifest_bytes = synthesize_docker_manifest(
        (media_type::DOCKER_CONFIG, config.size, &config.digest),
        &blob_refs,
    )?;
    let manifest = staging.stage_bytes(&manifest_bytes)?;
    let layers = verified
        .into_iter()
        .map(|v| StagedLayer {
            media_type: docker_media_type(v.compression).to_owned(),
            blob: v.blob,
            diff_id: v.diff_id,
        })
        .collect();
    Ok(StagedImage {
        references,
        bare_tags: Vec::new(),
        manifest,
        manifest_media_type: media_type::DOCKER_MANIFEST.to_owned(),
        config,
        config_info,
        layers,
    })
}

/// Parses `RepoTags` into normalized references, without duplicates. An invalid tag is
/// [`Error::InvalidReference`]; an entry in digest form (`name@sha256:...`, also
/// `name:tag@sha256:...`) is [`Error::InvalidArchive`] naming it: `RepoTags` name tags, and a
/// digest there need not be the manifest's (a legacy archive's manifest is synthesized), so such
/// a reference could never be resolved or removed.
pub(crate) fn references_of(repo_tags: Option<&[String]>) -> Result<Vec<Reference>> {
    let mut references: Vec<Reference> = Vec::new();
    for tag in repo_tags.unwrap_or_default() {
        let r = Reference::parse(tag)?;
        if r.digest().is_some() {
            return Err(Error::invalid_archive(format!(
                "RepoTags entry {tag:?} is a digest reference; RepoTags name tags"
            )));
        }
        if !references.contains(&r) {
            references.push(r);
        }
    }
    Ok(references)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn repo_tags_table() {
        let tags = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let ok: &[(&[&str], &[&str])] = &[
            (
                &["busybox:latest", "docker.io/library/busybox:latest"],
                &["docker.io/library/busybox:latest"],
            ),
            (
                &["example.com/app:v1", "app"],
                &["example.com/app:v1", "docker.io/library/app:latest"],
            ),
            (&[], &[]),
        ];
        for (input, want) in ok {
            let got: Vec<String> = references_of(Some(&tags(input)))
                .unwrap()
                .iter()
                .map(Reference::canonical)
                .collect();
            assert_eq!(got, *want, "{input:?}");
        }
        assert!(references_of(None).unwrap().is_empty());
        assert_eq!(
            references_of(Some(&tags(&["Bad:tag"]))).unwrap_err().code(),
            "INVALID_REFERENCE"
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        for entry in [format!("app@{digest}"), format!("app:1@{digest}")] {
            let err = references_of(Some(&tags(&["app:1", &entry]))).unwrap_err();
            assert_eq!(err.code(), "INVALID_ARCHIVE", "{entry}");
            assert!(err.to_string().contains(&entry), "names the entry: {err}");
        }
    }
}
