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

use std::sync::Arc;

use crate::archive::files::{Files, digest_of, read_head, read_small};
use crate::archive::layer::{ArchiveLayer, docker_media_type};
use crate::archive::{
    DOCKER_MANIFEST_FILE, add_names, check_layer_count, digest_in_name, require_metadata,
};
use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::oci::docker::{BlobRef, DockerEntry, parse_docker_manifest, synthesize_docker_manifest};
use crate::oci::{ConfigInfo, Descriptor, Digest, Reference, media_type};
use crate::source::{Blob, ImageSource, LayerSource};

/// Every image `manifest.json` lists. Entries that describe the same image (same synthesized
/// manifest) are merged, their tags combined.
pub(crate) fn read_docker(src: &dyn Files) -> Result<Vec<ImageSource>> {
    let entries = parse_docker_manifest(&require_metadata(src, DOCKER_MANIFEST_FILE)?)?;
    let mut images: Vec<ImageSource> = Vec::new();
    for entry in &entries {
        let image = read_entry(src, entry)?;
        match images
            .iter_mut()
            .find(|i| i.manifest.descriptor.digest == image.manifest.descriptor.digest)
        {
            Some(read) => add_names(read, image.references, image.bare_tags),
            None => images.push(image),
        }
    }
    Ok(images)
}

/// One image of `manifest.json`. Its manifest lists each layer with its compression (told from
/// its first bytes), its size and its digest: the one its name spells, else for a plain tar its
/// `diff_id` (a plain tar is its own uncompressed stream; the conversion checks both), else,
/// for a compressed layer, the digest of its bytes, which is computed here: the one case where
/// a layer blob is read twice, once here and once by its conversion (Docker itself always
/// writes these layers uncompressed).
fn read_entry(src: &dyn Files, entry: &DockerEntry) -> Result<ImageSource> {
    let references = references_of(entry.repo_tags.as_deref())?;
    let what = format!("config {}", entry.config);
    let config_file = src
        .settled_blob(&entry.config)?
        .ok_or_else(|| Error::invalid_archive(format!("{what}: member is missing")))?;
    let config_bytes = read_small(&*config_file, &what)?;
    let config_digest = Digest::of_bytes(&config_bytes);
    if let Some(named) = digest_in_name(&entry.config) {
        named.verify(&config_digest, || what.clone())?;
    }
    let config_info = ConfigInfo::parse(&config_bytes)?;
    check_layer_count(entry.layers.len(), config_info.diff_ids.len())?;
    let mut layers: Vec<Arc<dyn LayerSource>> = Vec::with_capacity(entry.layers.len());
    for (i, (name, diff_id)) in entry.layers.iter().zip(&config_info.diff_ids).enumerate() {
        let blob = src.settled_blob(name)?.ok_or_else(|| {
            Error::invalid_archive(format!("layer {i}: member {name:?} is missing"))
        })?;
        let size = blob
            .size()
            .ok_or_else(|| Error::internal(format!("layer {i}: member {name:?} has no size")))?;
        let compression = Compression::sniff(&read_head(&*blob, crate::tar::BLOCK_SIZE)?)?;
        let digest = match (digest_in_name(name), compression) {
            (Some(named), _) => named,
            (None, Compression::None) => diff_id.clone(),
            (None, _) => digest_of(&*blob)?,
        };
        layers.push(Arc::new(ArchiveLayer {
            descriptor: Descriptor::new(docker_media_type(compression), digest, size),
            diff_id: diff_id.clone(),
            blob,
        }));
    }
    let blob_refs: Vec<BlobRef<'_>> = layers
        .iter()
        .map(|l| {
            let d = l.descriptor();
            (d.media_type.as_str(), d.size, &d.digest)
        })
        .collect();
    let config_size = config_bytes.len() as u64;
    let manifest_bytes = synthesize_docker_manifest(
        (media_type::DOCKER_CONFIG, config_size, &config_digest),
        &blob_refs,
    )?;
    drop(blob_refs);
    Ok(ImageSource {
        references,
        bare_tags: Vec::new(),
        origin: None,
        manifest: Blob {
            descriptor: Descriptor::new(
                media_type::DOCKER_MANIFEST,
                Digest::of_bytes(&manifest_bytes),
                manifest_bytes.len() as u64,
            ),
            bytes: manifest_bytes,
        },
        config: Blob {
            descriptor: Descriptor::new(media_type::DOCKER_CONFIG, config_digest, config_size),
            bytes: config_bytes,
        },
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
