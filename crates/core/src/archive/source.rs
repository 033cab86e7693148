//! Where an import's files come from ([`Source`]: a tar archive or a layout directory), and how
//! they land in the staging folder ([`Staging`]).
//!
//! Staging folder layout (owned by the caller, who deletes it):
//!
//! ```text
//! <staging>/
//!   incoming-<n>    a file being copied (left behind only by a failed copy)
//!   sha256-<hex>    a complete file, named by the sha256 of its bytes
//! ```
//!
//! Every staged file is hashed while it is written, then renamed to its digest, so the same
//! content is staged once whatever its member names.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::archive::StagedBlob;
use crate::budget::WriteBudget;
use crate::codec::COPY_BUFFER_SIZE;
use crate::error::{Error, IoContext, Result};
use crate::oci::{Digest, HashingWriter};

/// Largest JSON file (index, manifest, config, `manifest.json`) read into memory. Real ones are
/// a few KiB (configs with long histories reach a few hundred); the cap bounds memory on hostile
/// input, and raising it only costs memory.
pub(crate) const MAX_METADATA_SIZE: u64 = 16 * 1024 * 1024;

/// Prefix of files being copied into the staging folder.
const INCOMING_PREFIX: &str = "incoming-";
/// Prefix of complete staged files, followed by the sha256 hex.
const STAGED_PREFIX: &str = "sha256-";

/// Files of an image archive or layout, by member name (relative to the archive root, `/`
/// separated).
pub(crate) trait Source: Sync {
    /// Whether a regular file `name` exists.
    fn contains(&self, name: &str) -> Result<bool>;

    /// Reads a small file (JSON metadata), at most [`MAX_METADATA_SIZE`] bytes; `None` when
    /// absent.
    fn read_metadata(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// The file `name`, staged and hashed; `None` when absent. Staging the same name twice
    /// returns the same file.
    fn stage(&self, name: &str) -> Result<Option<StagedBlob>>;
}

/// Reads a staged file into memory, refusing files above [`MAX_METADATA_SIZE`].
pub(crate) fn read_staged_metadata(blob: &StagedBlob, what: &str) -> Result<Vec<u8>> {
    check_metadata_size(blob.size, what)?;
    fs::read(&blob.path).at(&blob.path)
}

/// Opens `path` for reading if it is a regular file, else fails with
/// [`Error::InvalidArchive`] naming what it is. The open never blocks: without `O_NONBLOCK`
/// opening a FIFO waits for a writer forever, and the type is checked on the open file, so a
/// path swapped for a FIFO or a device (`/dev/zero` streams forever) after a `stat` is refused
/// too. `O_NONBLOCK` changes nothing for reads of a regular file.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOCTTY: opening a terminal device must not make it the process's terminal.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = options.open(path).at(path)?;
    let file_type = file.metadata().at(path)?.file_type();
    if !file_type.is_file() {
        return Err(not_a_file(path, file_type));
    }
    Ok(file)
}

/// The [`Error::InvalidArchive`] of a source that is neither a regular file nor a directory.
pub(crate) fn not_a_file(path: &Path, file_type: fs::FileType) -> Error {
    Error::invalid_archive(format!(
        "{} is {}, not a regular file or a directory",
        path.display(),
        file_kind(file_type)
    ))
}

fn file_kind(file_type: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symlink"
    } else {
        "a special file"
    }
}

/// Fails when a metadata file of `size` bytes is over [`MAX_METADATA_SIZE`].
pub(crate) fn check_metadata_size(size: u64, what: &str) -> Result<()> {
    if size > MAX_METADATA_SIZE {
        return Err(Error::invalid_archive(format!(
            "{what} is {size} bytes, over the {MAX_METADATA_SIZE}-byte limit for metadata"
        )));
    }
    Ok(())
}

/// The staging folder: copies files in while hashing them, charging every byte to the load's
/// [`WriteBudget`] before writing it.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
    next: AtomicU64,
    budget: WriteBudget,
}

impl Staging {
    /// Stages into `dir`, an existing folder, within `budget`.
    pub(crate) fn new(dir: &Path, budget: WriteBudget) -> Self {
        Staging {
            dir: dir.to_owned(),
            next: AtomicU64::new(0),
            budget,
        }
    }

    /// Copies `reader` to a staged file while hashing it. Read errors go through `read_error`
    /// (the caller knows whether they mean a corrupt archive or a failing disk); write errors
    /// are [`Error::Io`] on the staged file; [`Error::LimitExceeded`] when the budget runs out
    /// (nothing past it is written).
    pub(crate) fn stage_reader(
        &self,
        mut reader: impl Read,
        buf: &mut [u8],
        read_error: impl Fn(io::Error) -> Error,
    ) -> Result<StagedBlob> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let incoming = self.dir.join(format!("{INCOMING_PREFIX}{n}"));
        let mut writer = HashingWriter::new(File::create(&incoming).at(&incoming)?);
        loop {
            let len = match reader.read(buf) {
                Ok(0) => break,
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            self.budget.charge(len as u64)?;
            writer.write_all(&buf[..len]).at(&incoming)?;
        }
        let (file, digest, size) = writer.finish();
        drop(file); // the caller fsyncs when it publishes
        self.settle(incoming, digest, size)
    }

    /// Stages bytes built in memory (a synthesized manifest).
    pub(crate) fn stage_bytes(&self, bytes: &[u8]) -> Result<StagedBlob> {
        let mut buf = vec![0u8; bytes.len().clamp(1, COPY_BUFFER_SIZE)];
        // Reading a slice cannot fail.
        self.stage_reader(bytes, &mut buf, |e| Error::internal(e.to_string()))
    }

    /// Renames a complete incoming file to its digest, or drops it when that content is
    /// already staged.
    fn settle(&self, incoming: PathBuf, digest: Digest, size: u64) -> Result<StagedBlob> {
        let path = self.dir.join(format!("{STAGED_PREFIX}{}", digest.hex()));
        if path.exists() {
            fs::remove_file(&incoming).at(&incoming)?;
        } else {
            // Two threads staging the same content may both rename here; the bytes are equal,
            // so whichever lands last is as good.
            fs::rename(&incoming, &path).at(&path)?;
        }
        Ok(StagedBlob { digest, size, path })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn same_content_is_staged_once() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path(), WriteBudget::unlimited());
        let a = staging.stage_bytes(b"hello").unwrap();
        let b = staging
            .stage_reader(&b"hello"[..], &mut [0u8; 2], |e| {
                Error::internal(e.to_string())
            })
            .unwrap();
        assert_eq!(a.path, b.path);
        assert_eq!(a.digest, Digest::of_bytes(b"hello"));
        assert_eq!(a.size, 5);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
