//! Integrity at rest: what `verify` and `repair` (and `boot_disk`, before it hands out paths)
//! check of an image's files against what the index recorded when they were written. Beside
//! [`crate::gc`], which also compares the index with the disk; this module has no SQL: the
//! façade (`image/check.rs`) reads the records and acts on the findings.
//!
//! Per artifact (layer EROFS images, the fsmeta image, the VMDK descriptor, the manifest and
//! config blobs), looked at beneath the root's folder handles, never through a symlink:
//!
//! - quick: the file exists and is a regular file of the recorded size; an EROFS image's
//!   superblock parses (magic, block size, checksum), states that size, and names the volume
//!   of this image (the uuid derived from its `diff_id` or manifest digest: a sound image of
//!   something else swapped in is found); a VMDK descriptor is byte for byte the one its
//!   recorded extents give (a few KiB read);
//! - full: also every byte re-hashed against the content hash recorded when the file was
//!   written ([`crate::hash`]; a blob against its digest), and every EROFS image's metadata
//!   re-parsed with the project's reader ([`crate::erofs::reader::walk_metadata`]).
//!
//! Reading never changes anything; the caller holds the GC lock (shared), so no prune deletes
//! a file while it is read.

use std::io::Read;
use std::path::Path;

use crate::erofs::format::{BLOCK_SIZE, SuperBlock};
use crate::erofs::reader::{ImageReader, walk_metadata};
use crate::erofs::volume_uuid;
use crate::error::{Error, Result};
use crate::hash::hash_reader;
use crate::oci::{Digest, HashingReader};
use crate::store::Entry;

/// What the index recorded of one artifact.
#[derive(Debug, Clone)]
pub struct Recorded<'a> {
    /// Which artifact.
    pub kind: ArtifactKind,
    /// Its file beneath the root.
    pub entry: Entry<'a>,
    /// The recorded size (`None`: not recorded, not compared).
    pub size: Option<u64>,
    /// The recorded content hash (`None`: written before hashes were recorded; a full check
    /// then only re-parses).
    pub hash: Option<&'a str>,
    /// What it must be: an EROFS image of this volume, a VMDK descriptor of this text, or a
    /// blob of this digest.
    pub expect: Expect<'a>,
}

/// What an artifact's content must be.
#[derive(Debug, Clone)]
pub enum Expect<'a> {
    /// An EROFS image whose superblock names the volume of this digest.
    Erofs(&'a Digest),
    /// A VMDK descriptor of exactly this text (`None`: not known, not compared).
    Vmdk(Option<&'a str>),
    /// A blob whose sha256 digest is this.
    Blob(&'a Digest),
}

/// The outcome of checking one artifact: its problem, if any, and the bytes read.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// The first problem found (a damaged file usually shows several; one is enough to act).
    pub problem: Option<Problem>,
    /// Bytes read.
    pub bytes_read: u64,
}

/// Checks one artifact, quick or `full` (see the module docs). Only failures to read that are
/// not about the file itself (permissions, I/O errors) are errors.
pub fn check_artifact(a: &Recorded<'_>, full: bool) -> Result<Checked> {
    let path = a.entry.path();
    let problem = |kind: ProblemKind, expected: Option<String>, found: Option<String>| Checked {
        problem: Some(Problem {
            kind,
            artifact: a.kind,
            path: path.clone(),
            expected,
            found,
        }),
        bytes_read: 0,
    };
    let size = match a.entry.file_size() {
        Ok(Some(size)) => size,
        Ok(None) => return Ok(problem(ProblemKind::Missing, None, None)),
        Err(Error::CorruptCacheEntry { found, .. }) => {
            return Ok(problem(
                ProblemKind::NotAFile,
                Some("a regular file".into()),
                Some(found.into()),
            ));
        }
        Err(e) => return Err(e),
    };
    if let Some(want) = a.size.filter(|want| *want != size) {
        return Ok(problem(
            ProblemKind::Size,
            Some(format!("{want} bytes")),
            Some(format!("{size} bytes")),
        ));
    }
    let mut bytes_read = 0;
    match &a.expect {
        Expect::Erofs(volume) => {
            let mut block0 = vec![0u8; BLOCK_SIZE as usize];
            let read = read_prefix(&a.entry, &mut block0)?;
            bytes_read += read as u64;
            let sb = match SuperBlock::decode(&block0[..read]) {
                Ok(sb) => sb,
                Err(reason) => return Ok(problem(ProblemKind::Superblock, None, Some(reason))),
            };
            let stated = u64::from(sb.blocks) * BLOCK_SIZE;
            if stated != size {
                return Ok(problem(
                    ProblemKind::Size,
                    Some(format!("{stated} bytes (as its superblock states)")),
                    Some(format!("{size} bytes")),
                ));
            }
            let want = volume_uuid(volume);
            if sb.uuid != want {
                return Ok(problem(
                    ProblemKind::WrongImage,
                    Some(format!("volume {}", hex::encode(want))),
                    Some(format!("volume {}", hex::encode(sb.uuid))),
                ));
            }
        }
        Expect::Vmdk(Some(text)) => {
            let mut found = vec![0u8; size as usize];
            let read = read_prefix(&a.entry, &mut found)?;
            bytes_read += read as u64;
            if found[..read] != *text.as_bytes() {
                return Ok(problem(
                    ProblemKind::WrongImage,
                    Some("the descriptor of the recorded extents".into()),
                    Some(first_difference(text.as_bytes(), &found[..read])),
                ));
            }
        }
        Expect::Vmdk(None) | Expect::Blob(_) => {}
    }
    if !full {
        return Ok(Checked {
            problem: None,
            bytes_read,
        });
    }
    let file = open(&a.entry)?;
    match &a.expect {
        Expect::Blob(digest) => {
            let mut reader = HashingReader::new(file);
            std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| Error::io(&path, e))?;
            let (actual, len) = reader.finish();
            bytes_read += len;
            if actual != **digest {
                return Ok(Checked {
                    bytes_read,
                    ..problem(
                        ProblemKind::Hash,
                        Some(digest.to_string()),
                        Some(actual.to_string()),
                    )
                });
            }
        }
        Expect::Erofs(_) | Expect::Vmdk(_) => {
            let (actual, len) = hash_reader(file).map_err(|e| Error::io(&path, e))?;
            bytes_read += len;
            if let Some(want) = a.hash.filter(|want| **want != actual) {
                return Ok(Checked {
                    bytes_read,
                    ..problem(ProblemKind::Hash, Some(want.to_owned()), Some(actual))
                });
            }
        }
    }
    if let Expect::Erofs(_) = a.expect
        && let Err(e) = parse_erofs(&path)
    {
        return Ok(Checked {
            bytes_read,
            ..problem(ProblemKind::Metadata, None, Some(e.to_string()))
        });
    }
    Ok(Checked {
        problem: None,
        bytes_read,
    })
}

/// Reads the image's whole metadata tree (every inode, directory and xattr).
fn parse_erofs(path: &Path) -> Result<()> {
    let image = ImageReader::open(path)?;
    walk_metadata(&image).map(|_| ())
}

fn open(entry: &Entry<'_>) -> Result<std::fs::File> {
    entry
        .folder()
        .open_file(entry.name())
        .map(cap_std::fs::File::into_std)
        .map_err(|e| entry.refusal("a regular file", e))
}

/// Fills `buf` from the start of the file as far as it goes; returns the bytes read.
fn read_prefix(entry: &Entry<'_>, buf: &mut [u8]) -> Result<usize> {
    let mut file = open(entry)?;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(entry.path(), e)),
        }
    }
    Ok(filled)
}

/// Where two texts first differ, for a problem's `found`.
fn first_difference(want: &[u8], found: &[u8]) -> String {
    let at = want
        .iter()
        .zip(found)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(found.len()));
    format!("a descriptor that differs from byte {at} on")
}

/// What is checked: which artifact of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// A layer's EROFS image (`layers/sha256/<diff_id hex>.erofs`).
    Layer,
    /// The manifest's merged metadata image.
    Fsmeta,
    /// The manifest's VMDK descriptor.
    Vmdk,
    /// The manifest or config blob.
    Blob,
}

impl ArtifactKind {
    /// `layer`, `fsmeta`, `vmdk` or `blob`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Layer => "layer",
            ArtifactKind::Fsmeta => "fsmeta",
            ArtifactKind::Vmdk => "vmdk",
            ArtifactKind::Blob => "blob",
        }
    }
}

/// What is wrong with an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The file is not there.
    Missing,
    /// Something other than a regular file is there (a symlink, a folder).
    NotAFile,
    /// Its size is not the recorded one (or not the one its superblock states).
    Size,
    /// Its EROFS superblock does not parse (magic, block size, checksum).
    Superblock,
    /// A sound image of something else (its volume uuid or VMDK text names another image).
    WrongImage,
    /// Its content does not match the hash recorded when it was written (or, for a blob, its
    /// digest).
    Hash,
    /// Its EROFS metadata does not parse with the project's reader.
    Metadata,
}

impl ProblemKind {
    /// `missing`, `not-a-file`, `size`, `superblock`, `wrong-image`, `hash` or `metadata`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Missing => "missing",
            ProblemKind::NotAFile => "not-a-file",
            ProblemKind::Size => "size",
            ProblemKind::Superblock => "superblock",
            ProblemKind::WrongImage => "wrong-image",
            ProblemKind::Hash => "hash",
            ProblemKind::Metadata => "metadata",
        }
    }
}

/// One problem with one artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// Which artifact.
    pub artifact: ArtifactKind,
    /// Its path.
    pub path: std::path::PathBuf,
    /// What was expected (a size, a hash, a volume), when it can be told.
    pub expected: Option<String>,
    /// What was found, when it can be told.
    pub found: Option<String>,
}
