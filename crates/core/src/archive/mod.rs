//! Import of image archives for `load`: `docker save` archives (legacy and OCI-style), OCI Image
//! Layout archives (tar, optionally gzip-compressed) and OCI Image Layout directories.
//!
//! [`stage_archive`] reads the source once, copies every blob it needs into a staging folder
//! under the cache's `tmp/`, and verifies everything before returning: blob digests, config
//! digests, each layer's uncompressed digest against the config's `rootfs.diff_ids`, media
//! types, and member names. Nothing outside the staging folder is written, so a failure leaves
//! the cache as it was (the caller deletes the staging folder).
//!
//! Security: member names with `..` components or absolute paths are rejected, and so are
//! symlinks (in an archive or a layout directory) that point outside the source.
//!
//! Inside: `tarball` (a tar, streamed once) and `layout_dir` (a layout folder) are the two
//! sources of files; `oci_layout` and `docker` read images out of them; `layer` verifies layers
//! in parallel; `descriptor` parses the JSON documents; `member` resolves tar names and links;
//! `source` stages files into the staging folder, named `sha256-<hex>` by content.

mod docker;
mod layer;
mod layout_dir;
mod member;
mod oci_layout;
mod source;
mod tarball;

use std::fs;
use std::path::{Path, PathBuf};

use crate::budget::WriteBudget;
use crate::erofs::MAX_LAYERS;
use crate::error::{Error, IoContext, Result};
use crate::oci::{ConfigInfo, Digest, Platform, Reference};

use layout_dir::DirSource;
use source::{Source, Staging};
use tarball::TarSource;

/// Marks an OCI Image Layout and holds its version.
const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The image index of an OCI Image Layout.
const INDEX_FILE: &str = "index.json";
/// Docker's list of images in a `docker save` archive.
const DOCKER_MANIFEST_FILE: &str = "manifest.json";

/// A verified blob copied into the staging folder.
#[derive(Debug, Clone)]
pub struct StagedBlob {
    /// sha256 of the file's bytes (verified).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// The staged file, inside the staging folder.
    pub path: PathBuf,
}

/// A verified layer.
#[derive(Debug, Clone)]
pub struct StagedLayer {
    /// The blob as stored in the archive (compressed or not).
    pub blob: StagedBlob,
    /// The descriptor's media type (one of [`crate::oci::media_type::LAYERS`]).
    pub media_type: String,
    /// sha256 of the uncompressed tar (verified against `rootfs.diff_ids`).
    pub diff_id: Digest,
}

/// One image of the archive, fully verified.
#[derive(Debug, Clone)]
pub struct StagedImage {
    /// Repository-qualified references the archive gives it (`RepoTags`,
    /// `io.containerd.image.name`, or a `org.opencontainers.image.ref.name` that is a full
    /// reference), normalized, without duplicates, in archive order.
    pub references: Vec<Reference>,
    /// `org.opencontainers.image.ref.name` values that are only a tag (`1`, `latest`): they name
    /// no repository, so the caller's `tag` option must name the image.
    pub bare_tags: Vec<String>,
    /// The manifest blob. For a legacy `docker save` archive, which has none, this is a Docker
    /// v2 schema 2 manifest synthesized deterministically from `manifest.json`.
    pub manifest: StagedBlob,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The config blob.
    pub config: StagedBlob,
    /// The parsed config.
    pub config_info: ConfigInfo,
    /// Layers bottom to top.
    pub layers: Vec<StagedLayer>,
}

/// Stages and verifies every image of `source` for `platform`.
///
/// `source` is a regular file (tar, or gzip- or zstd-compressed tar, detected by content) or an
/// OCI Image Layout directory; anything else (a FIFO, a device, a socket) is
/// [`Error::InvalidArchive`] without being opened, so a load never blocks on a FIFO nor reads a
/// device forever. `staging` is an existing empty folder on the cache's filesystem, owned by the
/// caller. For an index with several platform manifests, only the one matching `platform` is
/// taken; [`crate::Error::PlatformNotFound`] when none matches.
///
/// A tar is read once, start to end, and all its regular files are staged (named
/// `sha256-<hex>` by content, so a blob used twice is staged once); a directory's blobs are
/// staged as they are needed. Layers are verified in parallel. Errors: malformed input is
/// [`Error::InvalidArchive`] (also a blob whose size differs from its descriptor's), content
/// that does not match its digest is [`Error::DigestMismatch`], an invalid `RepoTags` entry is
/// [`Error::InvalidReference`], bzip2 or xz compression is [`Error::Unsupported`]. On failure,
/// partial files may remain in `staging` and nowhere else.
pub fn stage_archive(
    source: &Path,
    staging: &Path,
    platform: &Platform,
) -> crate::Result<Vec<StagedImage>> {
    stage_archive_within(source, staging, platform, &WriteBudget::unlimited())
}

/// [`stage_archive`] charging every staged byte to `budget` before writing it:
/// [`Error::LimitExceeded`] when the archive's files would pass it.
pub fn stage_archive_within(
    source: &Path,
    staging: &Path,
    platform: &Platform,
    budget: &WriteBudget,
) -> crate::Result<Vec<StagedImage>> {
    let staging = Staging::new(staging, budget.clone());
    // A stat never blocks; anything but a directory or a regular file (a FIFO would block the
    // open, a device like /dev/zero never ends) is refused before it is opened.
    let file_type = fs::metadata(source).at(source)?.file_type();
    let images = if file_type.is_dir() {
        let src = DirSource::open(source, &staging)?;
        if !(src.contains(OCI_LAYOUT_FILE)? && src.contains(INDEX_FILE)?) {
            return Err(Error::invalid_archive(format!(
                "{} is not an OCI image layout: it lacks {OCI_LAYOUT_FILE} or {INDEX_FILE}",
                source.display()
            )));
        }
        oci_layout::stage_layout(&src, platform)?
    } else if !file_type.is_file() {
        return Err(source::not_a_file(source, file_type));
    } else {
        let src = TarSource::read(source, &staging)?;
        if src.contains(OCI_LAYOUT_FILE)? && src.contains(INDEX_FILE)? {
            oci_layout::stage_layout(&src, platform)?
        } else if src.contains(DOCKER_MANIFEST_FILE)? {
            docker::stage_docker(&src, &staging)?
        } else {
            return Err(Error::invalid_archive(format!(
                "{} holds neither {INDEX_FILE} nor {DOCKER_MANIFEST_FILE}",
                source.display()
            )));
        }
    };
    if images.is_empty() {
        return Err(Error::invalid_archive(format!(
            "{} holds no image",
            source.display()
        )));
    }
    Ok(images)
}

/// Reads a metadata file that must exist.
fn require_metadata(src: &dyn Source, name: &str) -> Result<Vec<u8>> {
    src.read_metadata(name)?
        .ok_or_else(|| Error::invalid_archive(format!("{name} is missing")))
}

/// Fails unless a manifest lists as many layers as its config has `diff_ids`, and no more than
/// an fsmeta image can stack ([`Error::Unsupported`] over [`MAX_LAYERS`]). Called right after
/// the manifest and config are parsed, before any layer is staged or converted.
fn check_layer_count(layers: usize, diff_ids: usize) -> Result<()> {
    if layers != diff_ids {
        return Err(Error::invalid_archive(format!(
            "image has {layers} layers but its config lists {diff_ids} diff_ids"
        )));
    }
    if layers > MAX_LAYERS {
        return Err(Error::Unsupported {
            what: format!("an image of {layers} layers (at most {MAX_LAYERS})"),
        });
    }
    Ok(())
}

/// The digest a member name spells, if its last component (less a `.json` suffix) is 64 hex
/// digits: `<hex>.json` configs of legacy archives and `blobs/sha256/<hex>` of newer ones.
pub(crate) fn digest_in_name(name: &str) -> Option<Digest> {
    let last = name.rsplit('/').next().unwrap_or(name);
    let stem = last.strip_suffix(".json").unwrap_or(last);
    Digest::parse(&format!("sha256:{stem}")).ok()
}

/// Adds names to an image, skipping those it already has.
fn add_names(image: &mut StagedImage, references: Vec<Reference>, bare_tags: Vec<String>) {
    for r in references {
        if !image.references.contains(&r) {
            image.references.push(r);
        }
    }
    for t in bare_tags {
        if !image.bare_tags.contains(&t) {
            image.bare_tags.push(t);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
