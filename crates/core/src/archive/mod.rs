//! Image archives for `load`, read as lazy image sources ([`crate::source`]): `docker save`
//! archives (legacy and OCI-style), OCI Image Layout archives (tar, optionally gzip- or
//! zstd-compressed) and OCI Image Layout directories.
//!
//! [`open_archive`] reads the archive's metadata (index, manifests, configs, `manifest.json`)
//! and verifies it: digests and sizes of manifests and configs, media types, member names,
//! layer counts. Layer blobs are not read: each layer is a source the ingest pipeline opens
//! only if the cache lacks its `diff_id`, and the pipeline checks the blob's digest, size and
//! `diff_id` in the one pass that converts it. How each kind of source is read:
//!
//! - a plain tar file is indexed in one pass over its headers, then read in place by offset
//!   (`tarball`): nothing is copied;
//! - a layout folder is read in place (`layout_dir`);
//! - a compressed tar, or standard input ([`open_stream`]), is read front to back once
//!   (`stream`): members that come before the metadata that says what they are are spooled into
//!   the staging folder, and layers that come after it are converted as the stream reaches
//!   them.
//!
//! Nothing outside the staging folder is written, so a failure leaves the cache as it was (the
//! caller deletes the staging folder). Security: member names with `..` components or absolute
//! paths are rejected, and so are symlinks (in an archive or a layout directory) that point
//! outside the source.
//!
//! Inside: `files` is what the readers of images see of a source (files by member name, blobs
//! to open later); `oci_layout` and `docker` read images out of them; `members` resolves tar
//! names and links; `layer` is a layer as a [`LayerSource`](crate::source::LayerSource).

mod docker;
mod files;
pub(crate) use files::MAX_METADATA_SIZE;
mod layer;
mod layout_dir;
pub(crate) mod members;
mod oci_layout;
mod stream;
mod tarball;

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::budget::WriteBudget;
use crate::cancel::Cancel;
use crate::codec::Compression;
use crate::erofs::MAX_LAYERS;
use crate::error::{Error, IoContext, Result};
use crate::oci::{Digest, Platform, Reference};
use crate::source::ImageSource;

use files::{Files, Spool, open_regular};
use layout_dir::DirFiles;
use stream::StreamFiles;
use tarball::TarFiles;

/// Marks an OCI Image Layout and holds its version.
const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The image index of an OCI Image Layout.
const INDEX_FILE: &str = "index.json";
/// Docker's list of images in a `docker save` archive.
const DOCKER_MANIFEST_FILE: &str = "manifest.json";

/// How an archive is read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The platform to take from a multi-platform index.
    pub platform: Platform,
    /// Charged with every byte spooled into the staging folder.
    pub budget: WriteBudget,
    /// Stops a stream's reads once set.
    pub cancel: Cancel,
}

impl ReadOptions {
    /// For `platform`, without a bound or a way to cancel (tests and tools).
    pub fn new(platform: Platform) -> Self {
        ReadOptions {
            platform,
            budget: WriteBudget::unlimited(),
            cancel: Cancel::new(),
        }
    }
}

/// An archive whose images were read, their layers still to open. The images' layer sources
/// hold the archive (its file, its stream, its spooled files) open while they live.
pub struct Archive {
    images: Vec<ImageSource>,
    stream: Option<StreamFiles>,
    /// Whether the images are a layout's whose `manifest.json` may still come in the stream.
    repo_tags_pending: bool,
}

impl Archive {
    /// The images, in archive order (never empty).
    pub fn images(&self) -> &[ImageSource] {
        &self.images
    }

    /// Whether the images' names are final: always for an archive read in place or a folder;
    /// for a stream, once [`Archive::finish`] has read it to its end (a Docker 25 archive's
    /// `manifest.json`, whose `RepoTags` name images too, comes after its `index.json`).
    pub fn names_final(&self) -> bool {
        !self.repo_tags_pending
    }

    /// Reads what is left of a stream up to its end-of-archive blocks, checking a compressed
    /// stream's trailer, and adds the names of a `manifest.json` found on the way (nothing to
    /// do for a file read in place or a folder). Call it once the layers are read.
    pub fn finish(&mut self) -> Result<()> {
        let Some(stream) = &self.stream else {
            return Ok(());
        };
        stream.finish()?;
        if self.repo_tags_pending {
            oci_layout::add_repo_tags(stream, &mut self.images)?;
            self.repo_tags_pending = false;
        }
        Ok(())
    }
}

/// Reads the images of `source` for `options.platform`.
///
/// `source` is a regular file (tar, or gzip- or zstd-compressed tar, detected by content) or an
/// OCI Image Layout directory; anything else (a FIFO, a device, a socket) is
/// [`Error::InvalidArchive`] without being opened, so a load never blocks on a FIFO nor reads a
/// device forever. `spool` is an existing empty folder on the cache's filesystem, owned by the
/// caller, where a compressed archive's members are spooled when they must be (see the module
/// docs). For an index with several platform manifests, only the one matching the platform is
/// taken; [`Error::PlatformNotFound`] when none matches.
///
/// Errors: malformed input is [`Error::InvalidArchive`] (also a blob whose size differs from
/// its descriptor's), a manifest or config that does not match its digest is
/// [`Error::DigestMismatch`], an invalid `RepoTags` entry is [`Error::InvalidReference`], bzip2
/// or xz compression is [`Error::Unsupported`], an image of more than [`MAX_LAYERS`] layers too.
/// On failure, files may remain in `spool` and nowhere else.
pub fn open_archive(source: &Path, spool: &Path, options: &ReadOptions) -> Result<Archive> {
    // A stat never blocks; anything but a directory or a regular file (a FIFO would block the
    // open, a device like /dev/zero never ends) is refused before it is opened.
    let file_type = fs::metadata(source).at(source)?.file_type();
    if file_type.is_dir() {
        let src = DirFiles::open(source)?;
        if !(src.contains(OCI_LAYOUT_FILE)? && src.contains(INDEX_FILE)?) {
            return Err(Error::invalid_archive(format!(
                "{} is not an OCI image layout: it lacks {OCI_LAYOUT_FILE} or {INDEX_FILE}",
                source.display()
            )));
        }
        let images = oci_layout::read_layout(&src, &options.platform)?;
        return archive(images, None, false, source);
    }
    if !file_type.is_file() {
        return Err(files::not_a_file(source, file_type));
    }
    let file = open_regular(source)?;
    let len = file.metadata().at(source)?.len();
    let mut head = vec![0u8; crate::tar::BLOCK_SIZE.min(len as usize)];
    crate::sys::read_exact_at(&file, &mut head, 0).at(source)?;
    match Compression::sniff_named(&head, source)? {
        Compression::None => {
            let src = TarFiles::index(file, source, len)?;
            let (images, _) = read_images(&src, source, &options.platform)?;
            archive(images, None, false, source)
        }
        _ => open_stream(Box::new(file), source, spool, options),
    }
}

/// [`open_archive`] of an archive read from `input` (standard input), named `name` in errors:
/// read front to back once, never copied whole (see the module docs for what is spooled).
pub fn open_stream(
    input: Box<dyn Read + Send>,
    name: &Path,
    spool: &Path,
    options: &ReadOptions,
) -> Result<Archive> {
    let src = StreamFiles::open(
        input,
        name,
        Spool::new(spool, options.budget.clone()),
        options.cancel.clone(),
    )?;
    let (images, layout) = read_images(&src, name, &options.platform)?;
    src.end_metadata()?;
    let pending = layout && !src.complete();
    archive(images, Some(src), pending, name)
}

/// The images of a tar archive: an OCI layout (Docker 25's `docker save` included) or a legacy
/// `docker save` archive; and whether it is a layout.
fn read_images(
    src: &dyn Files,
    name: &Path,
    platform: &Platform,
) -> Result<(Vec<ImageSource>, bool)> {
    if src.contains(OCI_LAYOUT_FILE)? && src.contains(INDEX_FILE)? {
        Ok((oci_layout::read_layout(src, platform)?, true))
    } else if src.contains(DOCKER_MANIFEST_FILE)? {
        Ok((docker::read_docker(src)?, false))
    } else {
        Err(Error::invalid_archive(format!(
            "{} holds neither {INDEX_FILE} nor {DOCKER_MANIFEST_FILE}",
            name.display()
        )))
    }
}

fn archive(
    images: Vec<ImageSource>,
    stream: Option<StreamFiles>,
    repo_tags_pending: bool,
    name: &Path,
) -> Result<Archive> {
    if images.is_empty() {
        return Err(Error::invalid_archive(format!(
            "{} holds no image",
            name.display()
        )));
    }
    Ok(Archive {
        images,
        stream,
        repo_tags_pending,
    })
}

/// Reads a metadata file that must exist.
fn require_metadata(src: &dyn Files, name: &str) -> Result<Vec<u8>> {
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
fn add_names(image: &mut ImageSource, references: Vec<Reference>, bare_tags: Vec<String>) {
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
