//! `load`: an archive, an OCI layout folder or standard input, read through [`crate::archive`]
//! as image sources, into the cache through the ingest pipeline ([`crate::ingest`]).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Cache, handle_from_row, now_ms};
use crate::archive::{self, ReadOptions};
use crate::error::{Error, Result};
use crate::ingest::{self, IngestOptions};
use crate::oci::{Platform, Reference};
use crate::source::ImageSource;
use crate::store::{LockMode, Root, StagingDir, StagingPurpose};
use crate::{ImageHandle, LoadOptions};

/// Where a load reads its archive from.
enum Input<'a> {
    /// A file or folder.
    Path(&'a Path),
    /// A stream read front to back, and what errors call it.
    Stream(Box<dyn Read + Send>, PathBuf),
}

/// What errors call standard input.
const STDIN_NAME: &str = "standard input";

impl Cache {
    /// Imports every image of an archive or OCI layout folder and returns a handle per
    /// reference, in archive order. Everything that can be checked is checked before anything
    /// is published: the index is opened first, the archive's manifests and configs are
    /// verified, every layer the cache lacks is converted (its blob digest and `diff_id`
    /// checked in the same pass), every fsmeta and VMDK is built in the load's folder under
    /// `tmp/`, and the index rows of all images are written in one transaction, which commits
    /// only once the files are published. A layer whose image is cached is not read at all. On
    /// any failure (bad input, a full disk, a damaged index, a cancelled load) the cache is
    /// exactly as it was: no file outside `tmp/` is new, `tmp/` is cleaned, the index is
    /// unchanged. What the load writes is bounded by `options.max_uncompressed_bytes` (or its
    /// default): past it, the load stops with [`Error::LimitExceeded`], before writing the byte
    /// that would pass it.
    ///
    /// `source` must be a regular file or a directory: a FIFO, a device or a socket is
    /// [`Error::InvalidArchive`], refused without being opened (see
    /// [`archive::open_archive`]). Running out of space is [`Error::NoSpace`], naming the
    /// path under the cache root being written. A folder of the root, a lock file or a layer
    /// image it reuses that is a symlink is [`Error::CorruptCacheEntry`], before anything is
    /// written through it (see [`Root::open`]). Setting `options.cancel` stops the load with
    /// [`Error::Aborted`] at its next read.
    ///
    /// Loading an image that is already cached only adds references. Concurrent loads (of
    /// any process) are safe; remove and prune wait for them.
    pub fn load(&self, source: &Path, options: &LoadOptions) -> Result<Vec<ImageHandle>> {
        self.load_input(Input::Path(source), options)
    }

    /// [`Cache::load`] of an archive read from `input`, front to back, once (never copied
    /// whole: members that come before the archive's metadata are spooled into the load's
    /// folder under `tmp/`, see [`archive::open_stream`]). `name` is what errors call it.
    pub fn load_stream(
        &self,
        input: Box<dyn Read + Send>,
        name: &str,
        options: &LoadOptions,
    ) -> Result<Vec<ImageHandle>> {
        self.load_input(Input::Stream(input, PathBuf::from(name)), options)
    }

    /// [`Cache::load_stream`] of the process's standard input. A cancelled load stops waiting
    /// for input within a tenth of a second.
    pub fn load_stdin(&self, options: &LoadOptions) -> Result<Vec<ImageHandle>> {
        let cancel = options.cancel.clone().unwrap_or_default();
        let mut options = options.clone();
        options.cancel = Some(cancel.clone());
        let stdin = crate::sys::Stdin::new(move || {
            cancel.check("the load").map_err(crate::codec::wrap_error)
        });
        self.load_input(
            Input::Stream(Box::new(stdin), PathBuf::from(STDIN_NAME)),
            &options,
        )
    }

    fn load_input(&self, input: Input<'_>, options: &LoadOptions) -> Result<Vec<ImageHandle>> {
        self.local()?;
        let tag = match &options.tag {
            Some(t) => {
                let r = Reference::parse(t)?;
                if r.digest().is_some() {
                    return Err(Error::InvalidReference {
                        input: t.clone(),
                        reason: "a tag to add cannot be a digest reference".into(),
                    });
                }
                Some(r)
            }
            None => None,
        };
        let platform = options.platform.clone().unwrap_or_else(Platform::host);
        if options.max_uncompressed_bytes == Some(0) {
            return Err(Error::InvalidArgument {
                name: "max_uncompressed_bytes".into(),
                reason: "must be at least 1".into(),
            });
        }
        let cancel = options.cancel.clone().unwrap_or_default();
        cancel.check("the load")?;
        // The root's folders are opened as handles (a symlink among them is refused), and a
        // damaged index, or one of a newer schema, fails the load before anything is staged.
        let root = self.open_root()?;
        let budget = self.write_budget(options.max_uncompressed_bytes)?;
        let _lock = root.lock_gc(LockMode::Shared)?;
        let staging = root.staging_dir(StagingPurpose::Load)?;
        let read = ReadOptions {
            platform,
            budget: budget.clone(),
            cancel: cancel.clone(),
        };
        let ingest = IngestOptions {
            budget,
            cancel,
            progress: options.progress.clone(),
        };
        // Whatever fails names paths under the cache's `tmp/`, never the `/proc/self/fd` path
        // the staging folder is worked in by.
        self.load_staged(&root, &staging, input, &read, &ingest, tag.as_ref())
            .map_err(|e| staging.describe(e))
    }

    /// The body of a load, once the root is open, the GC lock held (shared) and the staging
    /// folder made: reads the archive's images, prepares every artifact in `staging`, then
    /// writes the index rows and publishes the files in one transaction (taking the files back
    /// if it does not commit).
    fn load_staged(
        &self,
        root: &Root,
        staging: &StagingDir,
        input: Input<'_>,
        read: &ReadOptions,
        ingest: &IngestOptions,
        tag: Option<&Reference>,
    ) -> Result<Vec<ImageHandle>> {
        let mut archive = match input {
            Input::Path(source) => archive::open_archive(source, staging.path(), read)?,
            Input::Stream(reader, name) => {
                archive::open_stream(reader, &name, staging.path(), read)?
            }
        };
        if archive.names_final() {
            // An image no name names fails before anything is converted.
            name_images(archive.images(), tag)?;
        }
        let prepared = ingest::prepare(root, staging, archive.images(), ingest)?;
        archive.finish()?;
        let named = name_images(archive.images(), tag)?;
        ingest.cancel.check("the load")?;
        let mut ix = self.index()?;
        let references = prepared.commit(&named, &mut ix, staging, now_ms())?;
        let mut out = Vec::new();
        for r in &references {
            if let Some(row) = ix.get(r)? {
                out.push(handle_from_row(row));
            }
        }
        Ok(out)
    }
}

/// Decides the references of each image; fails before anything is converted when an image
/// would have none.
fn name_images(images: &[ImageSource], tag: Option<&Reference>) -> Result<Vec<Vec<Reference>>> {
    let mut named = Vec::with_capacity(images.len());
    for (i, image) in images.iter().enumerate() {
        let mut refs = image.references.clone();
        if let Some(t) = tag.filter(|t| i == 0 && !refs.contains(t)) {
            refs.push(t.clone());
        }
        if refs.is_empty() {
            let available = images
                .iter()
                .map(|im| {
                    let names: Vec<String> = im
                        .references
                        .iter()
                        .map(Reference::familiar)
                        .chain(im.bare_tags.iter().map(|t| format!("ref.name {t:?}")))
                        .collect();
                    if names.is_empty() {
                        im.manifest.descriptor.digest.to_string()
                    } else {
                        format!("{} ({})", im.manifest.descriptor.digest, names.join(", "))
                    }
                })
                .collect();
            return Err(Error::ReferenceRequired { available });
        }
        named.push(refs);
    }
    Ok(named)
}
