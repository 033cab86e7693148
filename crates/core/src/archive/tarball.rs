//! A plain (uncompressed) tar archive in a regular file, read in place: one pass over its
//! headers indexes every member (seeking past member data, never reading or copying it), and
//! each member the load needs is then read by offset, several at once. Links are recorded in
//! the archive's own namespace ([`Members`]).
//!
//! Indexing stops at the end-of-archive blocks: what follows is never read, so a file that goes
//! on with zeros or garbage does not keep the load reading. Errors never quote the file: a tar
//! header that does not parse is reported as malformed, not printed, since the file may be
//! anything at all. A compressed archive, or standard input, cannot be read in place: see
//! `stream`.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::files::{BlobFile, FileRange, Files, read_small};
use crate::archive::members::Members;
use crate::codec::{ReadFailure, TrackedReader};
use crate::error::{Error, Result};
use crate::source::BlobReader;
use crate::tar::{self, ReadError, SparseContent, TarReader};

/// Header bytes read at once while indexing: a few headers (and no member data but the first
/// bytes of small members) per read.
const INDEX_BUFFER: usize = 16 * tar::BLOCK_SIZE;

/// A member's data: a range of the archive, or a sparse member's segments.
#[derive(Clone)]
enum Data {
    Range {
        offset: u64,
        size: u64,
    },
    Sparse {
        offset: u64,
        stored: u64,
        map: Vec<(u64, u64)>,
        size: u64,
    },
}

/// A tar archive read in place.
pub(crate) struct TarFiles {
    file: Arc<File>,
    path: PathBuf,
    members: Members<Data>,
}

impl TarFiles {
    /// Indexes the plain tar `file` (the archive at `path`, `len` bytes long).
    pub(crate) fn index(file: File, path: &Path, len: u64) -> Result<Self> {
        let file = Arc::new(file);
        let (tracked, failure) = TrackedReader::new(&*file);
        let mut tar = TarReader::seekable(BufReader::with_capacity(INDEX_BUFFER, tracked));
        let errors = Errors {
            path,
            file: &failure,
        };
        let mut members = Members::default();
        // Where the last member's data ends.
        let mut data_end = 0;
        loop {
            let entry = match tar.next_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => {
                    // Seeking past the end succeeds, so a member cut inside its padding only
                    // shows here: the reader went past the end. A member whose padding is
                    // missing whole at the very end is accepted, as a stream's is.
                    if tar.position() > len && data_end != len {
                        return Err(errors.malformed());
                    }
                    break;
                }
                Err(ReadError::Io(e)) => return Err(errors.classify(e)),
                Err(ReadError::Other(_)) => return Err(errors.malformed()),
            };
            // A seek past the end succeeds: the data must be there.
            data_end = entry.offset.saturating_add(entry.stored);
            if data_end > len {
                return Err(errors.malformed());
            }
            members.insert_entry(&entry, |_| {
                Ok(match &entry.sparse {
                    Some(map) => Data::Sparse {
                        offset: entry.offset,
                        stored: entry.stored,
                        map: map.clone(),
                        size: entry.size,
                    },
                    None => Data::Range {
                        offset: entry.offset,
                        size: entry.size,
                    },
                })
            })?;
        }
        Ok(TarFiles {
            file,
            path: path.to_owned(),
            members,
        })
    }

    fn blob_of(&self, data: &Data) -> Arc<dyn BlobFile> {
        match data {
            Data::Range { offset, size } => Arc::new(FileRange {
                file: Arc::clone(&self.file),
                path: self.path.clone(),
                offset: *offset,
                size: *size,
            }),
            Data::Sparse {
                offset,
                stored,
                map,
                size,
            } => Arc::new(SparseRange {
                stored: FileRange {
                    file: Arc::clone(&self.file),
                    path: self.path.clone(),
                    offset: *offset,
                    size: *stored,
                },
                map: map.clone(),
                size: *size,
            }),
        }
    }
}

/// Classifies errors seen while indexing: the file's own failures are [`Error::Io`], anything
/// else is the tar parser's, reported without its text (it may quote header bytes).
struct Errors<'a> {
    path: &'a Path,
    file: &'a ReadFailure,
}

impl Errors<'_> {
    fn classify(&self, _seen: io::Error) -> Error {
        match self.file.take(self.path) {
            Some(error) => error,
            None => self.malformed(),
        }
    }

    fn malformed(&self) -> Error {
        malformed(self.path)
    }
}

/// The error of an archive whose tar headers do not parse.
pub(crate) fn malformed(path: &Path) -> Error {
    Error::invalid_archive(format!(
        "{} is not a tar archive, or its tar headers are corrupt or truncated",
        path.display()
    ))
}

impl Files for TarFiles {
    fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.members.resolve(name)?.is_some())
    }

    fn read_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.members.resolve(name)? {
            Some(data) => read_small(&*self.blob_of(data), name).map(Some),
            None => Ok(None),
        }
    }

    fn blob(&self, name: &str) -> Result<Option<Arc<dyn BlobFile>>> {
        Ok(self.members.resolve(name)?.map(|data| self.blob_of(data)))
    }
}

/// A sparse member (an old GNU `S` entry), read in place: its stored segments with zeros for
/// the holes.
struct SparseRange {
    stored: FileRange,
    map: Vec<(u64, u64)>,
    size: u64,
}

impl BlobFile for SparseRange {
    fn size(&self) -> Option<u64> {
        Some(self.size)
    }

    fn open(&self) -> Result<BlobReader<'_>> {
        let stored = self.stored.open()?;
        Ok(BlobReader {
            reader: Box::new(SparseContent::new(
                stored.reader,
                self.map.clone(),
                self.size,
            )),
            path: stored.path,
        })
    }
}
