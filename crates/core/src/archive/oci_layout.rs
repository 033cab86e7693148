//! Import of an OCI Image Layout (OCI image spec `image-layout.md`), tarred or not, including
//! `docker save` archives of Docker 25 and later, which are layouts with a `manifest.json` too.
//!
//! Each entry of `index.json` is an image. An entry that is an index (multi-platform image) is
//! resolved to the manifest for the requested platform, recursively; entries for
//! `unknown/unknown` (BuildKit attestations) are skipped. Names come from the entry's
//! annotations and, for Docker archives, from `manifest.json`'s `RepoTags`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::archive::docker::references_of;
use crate::archive::files::{Files, read_verified};
use crate::archive::layer::ArchiveLayer;
use crate::archive::{DOCKER_MANIFEST_FILE, INDEX_FILE, OCI_LAYOUT_FILE};
use crate::archive::{add_names, check_layer_count, digest_in_name, require_metadata};
use crate::error::{Error, Result};
use crate::oci::docker::parse_docker_manifest;
use crate::oci::{
    ConfigInfo, Descriptor, Digest, Platform, Reference, media_type, parse_index,
    parse_layout_file, parse_manifest,
};
use crate::source::{Blob, ImageSource, LayerSource};

/// Annotation with the full reference of an image (containerd, Docker 25+ `docker save`).
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI annotation naming a reference; in practice usually only the tag (`1`, `latest`).
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Nesting of indexes followed before giving up; real images nest at most twice (index.json,
/// then a multi-platform index). The limit stops reference cycles.
const MAX_INDEX_DEPTH: usize = 8;
/// The OS and architecture BuildKit gives attestation manifests.
const UNKNOWN_PLATFORM: &str = "unknown";
/// Longest tag of the distribution spec's tag grammar.
const MAX_TAG_LEN: usize = 128;

/// Every image of the layout `src`.
pub(crate) fn read_layout(src: &dyn Files, platform: &Platform) -> Result<Vec<ImageSource>> {
    parse_layout_file(&require_metadata(src, OCI_LAYOUT_FILE)?)?;
    let index = parse_index(&require_metadata(src, INDEX_FILE)?, INDEX_FILE)?;
    let mut images: Vec<ImageSource> = Vec::new();
    for (entry, manifest) in select_manifests(src, &index.manifests, platform)? {
        let (mut references, bare_tags) = names_from_annotations(&entry.annotations);
        // A name in digest form resolves only to the manifest of that digest (get, inspect and
        // remove look digest references up by manifest): one naming another manifest could
        // never be used, so it names nothing, like any other annotation that is no name.
        references.retain(|r| r.digest().is_none_or(|d| *d == manifest.digest));
        match images
            .iter_mut()
            .find(|i| i.manifest.descriptor.digest == manifest.digest)
        {
            Some(read) => add_names(read, references, bare_tags),
            None => {
                let mut image = read_image(src, &manifest)?;
                add_names(&mut image, references, bare_tags);
                images.push(image);
            }
        }
    }
    add_repo_tags(src, &mut images)?;
    Ok(images)
}

/// Adds the `RepoTags` of a Docker 25+ archive's `manifest.json` to the images of the same
/// config. From a stream, the file may be still to come (Docker writes it after `index.json`):
/// then it is read when the stream is finished, and this runs again.
pub(crate) fn add_repo_tags(src: &dyn Files, images: &mut [ImageSource]) -> Result<()> {
    let repo_tags = docker_repo_tags(src)?;
    for image in images {
        for (config, references) in &repo_tags {
            if *config == image.config.descriptor.digest {
                add_names(image, references.clone(), Vec::new());
            }
        }
    }
    Ok(())
}

/// `RepoTags` of a Docker 25+ archive's `manifest.json`, by config digest (its `Config` is
/// `blobs/sha256/<hex>`).
fn docker_repo_tags(src: &dyn Files) -> Result<Vec<(Digest, Vec<Reference>)>> {
    let Some(bytes) = src.read_optional_metadata(DOCKER_MANIFEST_FILE)? else {
        return Ok(Vec::new());
    };
    let mut tags = Vec::new();
    for entry in parse_docker_manifest(&bytes)? {
        if let Some(config) = digest_in_name(&entry.config) {
            tags.push((config, references_of(entry.repo_tags.as_deref())?));
        }
    }
    Ok(tags)
}

/// The manifests to import, each with the top-level entry it came from, in index order.
fn select_manifests(
    src: &dyn Files,
    entries: &[Descriptor],
    platform: &Platform,
) -> Result<Vec<(Descriptor, Descriptor)>> {
    let mut chosen = Vec::new();
    let mut groups_done: Vec<(Option<&String>, Option<&String>)> = Vec::new();
    for entry in entries {
        let picked = match &entry.platform {
            Some(p) if is_unknown(p) => continue,
            None => entry,
            // Entries for several platforms under one name are one multi-platform image:
            // take the best match of the group, once.
            Some(_) => {
                let key = name_key(entry);
                if groups_done.contains(&key) {
                    continue;
                }
                groups_done.push(key);
                let group: Vec<&Descriptor> = entries
                    .iter()
                    .filter(|e| {
                        e.platform.as_ref().is_some_and(|p| !is_unknown(p)) && name_key(e) == key
                    })
                    .collect();
                pick_platform(&group, platform)?
            }
        };
        for manifest in expand(src, picked, platform, 0)? {
            chosen.push((entry.clone(), manifest));
        }
    }
    Ok(chosen)
}

fn name_key(d: &Descriptor) -> (Option<&String>, Option<&String>) {
    (
        d.annotations.get(CONTAINERD_NAME),
        d.annotations.get(REF_NAME),
    )
}

fn is_unknown(p: &Platform) -> bool {
    p.os == UNKNOWN_PLATFORM && p.architecture == UNKNOWN_PLATFORM
}

/// The best entry for `wanted` among entries that all name a platform: an exact variant match
/// first, else the first match.
fn pick_platform<'a>(candidates: &[&'a Descriptor], wanted: &Platform) -> Result<&'a Descriptor> {
    let platform_of = |d: &&'a Descriptor| d.platform.clone().unwrap_or_default();
    let matching: Vec<&'a Descriptor> = candidates
        .iter()
        .copied()
        .filter(|d| wanted.matches(&platform_of(d)))
        .collect();
    let exact = matching
        .iter()
        .copied()
        .find(|d| platform_of(d).variant == wanted.variant);
    exact
        .or_else(|| matching.first().copied())
        .ok_or_else(|| Error::PlatformNotFound {
            wanted: wanted.to_string(),
            available: candidates
                .iter()
                .map(|d| platform_of(d).to_string())
                .collect(),
        })
}

/// The manifest descriptors an index entry stands for: itself when it is a manifest, the
/// platform's manifest(s) of a nested index.
fn expand(
    src: &dyn Files,
    d: &Descriptor,
    platform: &Platform,
    depth: usize,
) -> Result<Vec<Descriptor>> {
    let mt = d.media_type.as_str();
    if media_type::MANIFESTS.contains(&mt) {
        return Ok(vec![d.clone()]);
    }
    if !media_type::INDEXES.contains(&mt) {
        return Err(Error::invalid_archive(format!(
            "unknown media type {mt:?} for index entry {}",
            d.digest
        )));
    }
    if depth >= MAX_INDEX_DEPTH {
        return Err(Error::invalid_archive(format!(
            "indexes nest deeper than {MAX_INDEX_DEPTH} levels"
        )));
    }
    let what = format!("index {}", d.digest);
    let nested = parse_index(&read_blob(src, d, &what)?, &what)?;
    let candidates: Vec<&Descriptor> = nested
        .manifests
        .iter()
        .filter(|e| !e.platform.as_ref().is_some_and(is_unknown))
        .collect();
    let with_platform: Vec<&Descriptor> = candidates
        .iter()
        .copied()
        .filter(|e| e.platform.is_some())
        .collect();
    if with_platform.is_empty() {
        let mut all = Vec::new();
        for e in candidates {
            all.extend(expand(src, e, platform, depth + 1)?);
        }
        return Ok(all);
    }
    expand(
        src,
        pick_platform(&with_platform, platform)?,
        platform,
        depth + 1,
    )
}

/// Member name of a blob in a layout.
fn blob_name(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.hex())
}

/// Reads the small blob `d` describes (an index, a manifest, a config) and checks its digest
/// and size.
fn read_blob(src: &dyn Files, d: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let name = blob_name(&d.digest);
    let blob = src
        .settled_blob(&name)?
        .ok_or_else(|| Error::invalid_archive(format!("{what}: blob {name} is missing")))?;
    read_verified(&*blob, d, what)
}

/// Reads one image from its manifest descriptor: manifest and config verified, layers as
/// sources to open later (their blobs must exist, of their descriptors' sizes).
fn read_image(src: &dyn Files, d: &Descriptor) -> Result<ImageSource> {
    let what = format!("manifest {}", d.digest);
    let manifest_bytes = read_blob(src, d, &what)?;
    let manifest = parse_manifest(&manifest_bytes, &what)?;
    if let Some(own) = &manifest.media_type
        && *own != d.media_type
    {
        return Err(Error::invalid_archive(format!(
            "{what}: unknown media type {own:?} (its descriptor says {:?})",
            d.media_type
        )));
    }
    let config_type = manifest.config.media_type.as_str();
    if !media_type::CONFIGS.contains(&config_type) {
        return Err(Error::invalid_archive(format!(
            "{what}: unknown media type {config_type:?} for the config"
        )));
    }
    for (i, layer) in manifest.layers.iter().enumerate() {
        if !media_type::is_layer(&layer.media_type) {
            return Err(Error::invalid_archive(format!(
                "{what}: unknown media type {:?} for layer {i}",
                layer.media_type
            )));
        }
    }
    let config_what = format!("config {}", manifest.config.digest);
    let config_bytes = read_blob(src, &manifest.config, &config_what)?;
    let config_info = ConfigInfo::parse(&config_bytes)?;
    check_layer_count(manifest.layers.len(), config_info.diff_ids.len())?;
    let mut layers: Vec<Arc<dyn LayerSource>> = Vec::with_capacity(manifest.layers.len());
    for (i, (l, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config_info.diff_ids)
        .enumerate()
    {
        let name = blob_name(&l.digest);
        let blob = src.blob(&name)?.ok_or_else(|| {
            Error::invalid_archive(format!("layer {i}: member {name:?} is missing"))
        })?;
        if let Some(size) = blob.size()
            && size != l.size
        {
            return Err(Error::invalid_archive(format!(
                "layer {i} blob is {size} bytes but its descriptor says {}",
                l.size
            )));
        }
        layers.push(Arc::new(ArchiveLayer {
            descriptor: Descriptor::new(l.media_type.clone(), l.digest.clone(), l.size),
            diff_id: diff_id.clone(),
            blob,
        }));
    }
    Ok(ImageSource {
        references: Vec::new(),
        bare_tags: Vec::new(),
        origin: None,
        manifest: Blob {
            descriptor: Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size),
            bytes: manifest_bytes,
        },
        config: Blob {
            descriptor: Descriptor::new(
                manifest.config.media_type.clone(),
                manifest.config.digest.clone(),
                manifest.config.size,
            ),
            bytes: config_bytes,
        },
        config_info,
        layers,
    })
}

/// References and bare tags from an index entry's annotations. A `ref.name` with `/`, `:` or
/// `@` is a reference; one that is only a tag is a bare tag, unless `io.containerd.image.name`
/// already names the image (Docker writes the tag of that name there). Values that are neither
/// a valid reference nor a valid tag are ignored: annotations are free text.
fn names_from_annotations(annotations: &BTreeMap<String, String>) -> (Vec<Reference>, Vec<String>) {
    let mut references = Vec::new();
    let mut bare_tags = Vec::new();
    let full = annotations.get(CONTAINERD_NAME);
    if let Some(r) = full.and_then(|n| Reference::parse(n).ok()) {
        references.push(r);
    }
    if let Some(name) = annotations.get(REF_NAME) {
        if name.contains(['/', ':', '@']) {
            if let Ok(r) = Reference::parse(name)
                && !references.contains(&r)
            {
                references.push(r);
            }
        } else if full.is_none() && is_tag(name) {
            bare_tags.push(name.clone());
        }
    }
    (references, bare_tags)
}

/// Whether `s` matches the distribution spec's tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok
        && s.len() <= MAX_TAG_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn names_table() {
        // (io.containerd.image.name, ref.name, references, bare tags)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: &[Case<'_>] = &[
            (None, Some("1"), &[], &["1"]),
            (None, Some("latest"), &[], &["latest"]),
            (None, Some("v1.2"), &[], &["v1.2"]),
            (None, Some("busybox"), &[], &["busybox"]),
            (
                None,
                Some("example.com/app:v1"),
                &["example.com/app:v1"],
                &[],
            ),
            (
                None,
                Some("busybox:1.36"),
                &["docker.io/library/busybox:1.36"],
                &[],
            ),
            (None, Some("1.0+build"), &[], &[]),
            (None, Some("Bad/Name"), &[], &[]),
            (
                Some("docker.io/library/busybox:latest"),
                Some("latest"),
                &["docker.io/library/busybox:latest"],
                &[],
            ),
            (
                Some("busybox:latest"),
                Some("docker.io/library/busybox:latest"),
                &["docker.io/library/busybox:latest"],
                &[],
            ),
            (Some("ghcr.io/a/b:1"), None, &["ghcr.io/a/b:1"], &[]),
            (None, None, &[], &[]),
        ];
        for (containerd, ref_name, refs, tags) in cases {
            let mut annotations = BTreeMap::new();
            if let Some(c) = containerd {
                annotations.insert(CONTAINERD_NAME.to_owned(), (*c).to_owned());
            }
            if let Some(r) = ref_name {
                annotations.insert(REF_NAME.to_owned(), (*r).to_owned());
            }
            let (got_refs, got_tags) = names_from_annotations(&annotations);
            let got_refs: Vec<String> = got_refs.iter().map(Reference::canonical).collect();
            assert_eq!(got_refs, *refs, "{containerd:?} {ref_name:?}");
            assert_eq!(got_tags, *tags, "{containerd:?} {ref_name:?}");
        }
    }

    #[test]
    fn tag_grammar_table() {
        let long = "a".repeat(MAX_TAG_LEN + 1);
        for (s, want) in [
            ("1", true),
            ("_x", true),
            ("v1.2-rc", true),
            ("", false),
            (".x", false),
            ("-x", false),
            ("a+b", false),
            (long.as_str(), false),
        ] {
            assert_eq!(is_tag(s), want, "{s}");
        }
    }

    #[test]
    fn pick_platform_prefers_exact_variant() {
        let d = |p: &str, variant: Option<&str>| Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: Digest::of_bytes(p.as_bytes()),
            size: 1,
            annotations: BTreeMap::new(),
            platform: Some(Platform {
                os: "linux".into(),
                architecture: p.into(),
                variant: variant.map(Into::into),
            }),
        };
        let (v6, v7, amd) = (d("arm", Some("v6")), d("arm", Some("v7")), d("amd64", None));
        let all = [&v6, &v7, &amd];
        let want = |arch: &str, variant: Option<&str>| Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        };
        assert_eq!(
            pick_platform(&all, &want("arm", Some("v7")))
                .unwrap()
                .digest,
            v7.digest
        );
        assert_eq!(
            pick_platform(&all, &want("arm", None)).unwrap().digest,
            v6.digest
        );
        assert_eq!(
            pick_platform(&all, &want("amd64", Some("v2")))
                .unwrap()
                .digest,
            amd.digest
        );
        let err = pick_platform(&all, &want("s390x", None)).unwrap_err();
        assert_eq!(err.code(), "PLATFORM_NOT_FOUND");
    }
}
