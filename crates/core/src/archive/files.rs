//! The files of an archive or layout, by member name ([`Files`]), and the blobs among them
//! ([`BlobFile`]): a range of a tar read in place, a file of a layout folder, a file spooled
//! into the staging folder.
//!
//! Spool folder layout (the load's staging folder, owned by the caller, who deletes it):
//!
//! ```text
//! <staging>/
//!   spool-<n>    a member of a stream, copied while hashed, before the archive's metadata
//!                said what it is (see `stream`)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::budget::WriteBudget;
use crate::codec::{COPY_BUFFER_SIZE, NamedReader};
use crate::error::{Error, IoContext, Result};
use crate::oci::{Descriptor, Digest, HashingReader, HashingWriter};
use crate::source::BlobReader;

/// Largest JSON file (index, manifest, config, `manifest.json`) read into memory. Real ones are
/// a few KiB (configs with long histories reach a few hundred); the cap bounds memory on hostile
/// input, and raising it only costs memory.
pub(crate) const MAX_METADATA_SIZE: u64 = 16 * 1024 * 1024;

/// Prefix of spooled files in the staging folder.
const SPOOL_PREFIX: &str = "spool-";

/// The files of an archive or layout, by member name (relative to the archive root, `/`
/// separated; symlinks and hard links followed inside the archive).
pub(crate) trait Files: Sync {
    /// Whether a regular file `name` exists. A source read front to back reads on until it
    /// finds it (or ends), keeping what it passes.
    fn contains(&self, name: &str) -> Result<bool>;

    /// Reads a small file (JSON metadata), at most [`MAX_METADATA_SIZE`] bytes; `None` when
    /// absent. Reads on like [`Files::contains`].
    fn read_metadata(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// [`Files::read_metadata`] of a file that may be absent, without reading on for it: a
    /// source read front to back answers from what it has seen, and keeps the file if it comes
    /// later ([`Files::complete`] says whether an answer of `None` is final).
    fn read_optional_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.read_metadata(name)
    }

    /// Whether every member was seen (always, for a source read in place).
    fn complete(&self) -> bool {
        true
    }

    /// The regular file `name` as a blob to open later; `None` when absent. A source read front
    /// to back does not read on for it: a member not seen yet is a blob to come (absent only
    /// when the stream ends without it).
    fn blob(&self, name: &str) -> Result<Option<Arc<dyn BlobFile>>>;

    /// [`Files::blob`], read on until the member is seen, so that its size is known.
    fn settled_blob(&self, name: &str) -> Result<Option<Arc<dyn BlobFile>>> {
        self.blob(name)
    }
}

/// A blob of an archive or layout.
pub(crate) trait BlobFile: Send + Sync {
    /// Its size, when known (a member of a stream not reached yet has none).
    fn size(&self) -> Option<u64>;

    /// Its digest, when it was computed already (a spooled file was hashed as it was written).
    fn known_digest(&self) -> Option<Digest> {
        None
    }

    /// See [`crate::source::LayerSource::sequence`].
    fn sequence(&self) -> Option<u64> {
        None
    }

    /// See [`crate::source::LayerSource::want`].
    fn want(&self) {}

    /// Opens it at its first byte.
    fn open(&self) -> Result<BlobReader<'_>>;
}

/// Reads a blob whole, refusing one above [`MAX_METADATA_SIZE`] (`what` names it).
pub(crate) fn read_small(blob: &dyn BlobFile, what: &str) -> Result<Vec<u8>> {
    if let Some(size) = blob.size() {
        check_metadata_size(size, what)?;
    }
    let opened = blob.open()?;
    let mut bytes = Vec::new();
    // Bounded even if the file grew since it was measured.
    opened
        .reader
        .take(MAX_METADATA_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::codec::unwrap_error(e, &opened.path))?;
    check_metadata_size(bytes.len() as u64, what)?;
    Ok(bytes)
}

/// Reads a small blob (an index, a manifest, a config) whole, checked against its descriptor
/// (`what` names it): its digest ([`Error::DigestMismatch`]), then its size
/// ([`Error::InvalidArchive`]), then the limit for metadata. A blob over the limit is hashed to
/// its end but never held.
pub(crate) fn read_verified(blob: &dyn BlobFile, d: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let opened = blob.open()?;
    let path = opened.path;
    let mut hashing = HashingReader::new(opened.reader);
    let mut bytes = Vec::new();
    (&mut hashing)
        .take(MAX_METADATA_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| crate::codec::unwrap_error(e, &path))?;
    if bytes.len() as u64 > MAX_METADATA_SIZE {
        bytes = Vec::new();
        io::copy(&mut hashing, &mut io::sink())
            .map_err(|e| crate::codec::unwrap_error(e, &path))?;
    }
    let (digest, size) = hashing.finish();
    d.digest.verify(&digest, || what.to_owned())?;
    if size != d.size {
        return Err(Error::invalid_archive(format!(
            "{what} is {size} bytes but its descriptor says {}",
            d.size
        )));
    }
    check_metadata_size(size, what)?;
    Ok(bytes)
}

/// The first `len` bytes of a blob (fewer if it is shorter).
pub(crate) fn read_head(blob: &dyn BlobFile, len: usize) -> Result<Vec<u8>> {
    let opened = blob.open()?;
    let mut head = Vec::with_capacity(len);
    opened
        .reader
        .take(len as u64)
        .read_to_end(&mut head)
        .map_err(|e| crate::codec::unwrap_error(e, &opened.path))?;
    Ok(head)
}

/// The digest of a blob, read to its end (or the one computed when it was spooled).
pub(crate) fn digest_of(blob: &dyn BlobFile) -> Result<Digest> {
    if let Some(digest) = blob.known_digest() {
        return Ok(digest);
    }
    let opened = blob.open()?;
    let mut hashing = HashingReader::new(opened.reader);
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|e| crate::codec::unwrap_error(e, &opened.path))?;
    Ok(hashing.finish().0)
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

/// Opens `path` for reading if it is a regular file, else fails with
/// [`Error::InvalidArchive`] naming what it is. The open never blocks (see
/// [`crate::sys::open_nonblocking`]), and the type is checked on the open file, so a path
/// swapped for a FIFO or a device (`/dev/zero` streams forever) after a `stat` is refused too.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let file = crate::sys::open_nonblocking(path).at(path)?;
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
        crate::sys::file_kind(file_type)
    ))
}

/// A range of a file, read in place with positioned reads (any number of readers at once).
pub(crate) struct FileRange {
    pub(crate) file: Arc<File>,
    /// What errors name: the archive.
    pub(crate) path: PathBuf,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

impl BlobFile for FileRange {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn open(&self) -> Result<BlobReader<'_>> {
        let range = RangeReader {
            file: &self.file,
            at: self.offset,
            end: self.offset + self.size,
        };
        Ok(BlobReader {
            reader: Box::new(NamedReader::new(range, &self.path)),
            path: self.path.clone(),
        })
    }
}

/// Reads `[at, end)` of a file with positioned reads.
struct RangeReader<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.end - self.at).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        // The file was measured when it was indexed: a range past its end means it shrank.
        crate::sys::read_exact_at(self.file, &mut buf[..want], self.at)?;
        self.at += want as u64;
        Ok(want)
    }
}

/// A regular file, opened by path when read (a file of a layout folder, a spooled member).
#[derive(Debug)]
pub(crate) struct PathFile {
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    /// Its digest, when it was hashed as it was written.
    pub(crate) digest: Option<Digest>,
}

impl BlobFile for PathFile {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn known_digest(&self) -> Option<Digest> {
        self.digest.clone()
    }

    fn open(&self) -> Result<BlobReader<'_>> {
        let file = open_regular(&self.path)?;
        Ok(BlobReader {
            reader: Box::new(NamedReader::new(file, &self.path)),
            path: self.path.clone(),
        })
    }
}

/// The staging folder as a spool: copies members in while hashing them, charging every byte to
/// the load's [`WriteBudget`] before writing it.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    next: AtomicU64,
    budget: WriteBudget,
}

impl Spool {
    /// Spools into `dir`, an existing folder, within `budget`.
    pub(crate) fn new(dir: &Path, budget: WriteBudget) -> Self {
        Spool {
            dir: dir.to_owned(),
            next: AtomicU64::new(0),
            budget,
        }
    }

    /// Copies `reader` to a new spool file while hashing it. Read errors go through
    /// `read_error` (the caller knows whether they mean a corrupt archive or a failing disk);
    /// write errors are [`Error::Io`] on the spool file; [`Error::LimitExceeded`] when the budget
    /// runs out (nothing past it is written).
    pub(crate) fn copy(
        &self,
        mut reader: impl Read,
        read_error: impl Fn(io::Error) -> Error,
    ) -> Result<PathFile> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{SPOOL_PREFIX}{n}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .at(&path)?;
        let mut writer = HashingWriter::new(file);
        let mut buf = vec![0u8; COPY_BUFFER_SIZE];
        loop {
            let len = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_error(e)),
            };
            self.budget.charge(len as u64)?;
            writer.write_all(&buf[..len]).at(&path)?;
        }
        let (_, digest, size) = writer.finish();
        Ok(PathFile {
            path,
            size,
            digest: Some(digest),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn spooled_files_are_hashed_and_charged() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path(), WriteBudget::new(8));
        let file = spool
            .copy(&b"hello"[..], |e| Error::internal(e.to_string()))
            .unwrap();
        assert_eq!(file.digest, Some(Digest::of_bytes(b"hello")));
        assert_eq!(read_small(&file, "x").unwrap(), b"hello");
        let err = spool
            .copy(&b"world"[..], |e| Error::internal(e.to_string()))
            .unwrap_err();
        assert_eq!(err.code(), "LIMIT_EXCEEDED");
    }

    #[test]
    fn ranges_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        fs::write(&path, b"0123456789").unwrap();
        let range = FileRange {
            file: Arc::new(File::open(&path).unwrap()),
            path: path.clone(),
            offset: 3,
            size: 4,
        };
        let mut two = (range.open().unwrap(), range.open().unwrap());
        let mut a = String::new();
        two.0.reader.read_to_string(&mut a).unwrap();
        let mut b = String::new();
        two.1.reader.read_to_string(&mut b).unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("3456", "3456"));
    }
}
