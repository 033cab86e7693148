//! A tar archive source (`docker save` output or a tarred OCI layout), read once from start to
//! end: every regular-file member is copied into the staging folder while it is hashed, and
//! links are recorded in the archive's own namespace ([`Members`]).
//!
//! The archive may be gzip- or zstd-compressed; the first bytes decide, never the file name.
//! Memory stays bounded: members stream through one [`COPY_BUFFER_SIZE`] buffer.
//!
//! Reading stops at the end-of-archive blocks: what follows is read only up to
//! [`MAX_TRAILER_BYTES`] (the rest of a tar record, a compressed stream's trailer), so a file
//! that goes on with zeros or garbage does not keep the load reading. Errors never quote the
//! file: a tar header's fields are reported as malformed, not printed, since the file may be
//! anything at all.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use tar::EntryType;

use crate::archive::StagedBlob;
use crate::archive::member::{Members, normalize_name};
use crate::archive::source::{Source, Staging, check_metadata_size, open_regular};
use crate::codec::{COPY_BUFFER_SIZE, Compression, ReadFailure, TrackedReader};
use crate::error::{Error, IoContext, Result};

/// What a failing read of the archive is reported as.
const WHAT: &str = "archive";
/// Bytes read after the end-of-archive blocks, at most. GNU tar pads an archive to a whole
/// record (10 KiB by default, 1 MiB at its largest blocking factors), and a gzip or zstd
/// trailer is a few bytes more; reading them lets the decompressor check its checksum. Beyond
/// this the rest of the file is ignored, as tar tools ignore it; raising it only costs reading
/// time on files padded with garbage.
const MAX_TRAILER_BYTES: u64 = 1024 * 1024;

/// A tar archive whose members are all staged.
#[derive(Debug)]
pub(crate) struct TarSource {
    members: Members,
}

impl TarSource {
    /// Reads the archive at `path`, staging every regular file into `staging`. `path` must be
    /// a regular file ([`open_regular`]).
    pub(crate) fn read(path: &Path, staging: &Staging) -> Result<Self> {
        let file = open_regular(path)?;
        let (tracked, failure) = TrackedReader::new(file);
        let mut buffered = BufReader::with_capacity(COPY_BUFFER_SIZE, tracked);
        let head = buffered
            .fill_buf()
            .map_err(|e| failure.classify(path, WHAT, e))?;
        let decoded: Box<dyn Read> = match Compression::sniff_named(head, path)? {
            Compression::None => Box::new(buffered),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered)
                    .map_err(|e| failure.classify(path, WHAT, e))?,
            ),
        };
        // A second tracker tells the decompressor's errors (whose messages describe the
        // stream, never quote it) from the tar parser's (which quote header fields).
        let (decoded, decode_failure) = TrackedReader::new(decoded);
        let errors = Errors {
            path,
            file: &failure,
            decoder: &decode_failure,
        };
        let mut archive = tar::Archive::new(decoded);
        let members = stage_members(&mut archive, &errors, staging)?;
        // The entries end at the first end-of-archive block. Read on a little, so that a
        // compressed stream's trailer (gzip CRC and length) is checked, but not to the end of
        // whatever follows.
        io::copy(
            &mut archive.into_inner().take(MAX_TRAILER_BYTES),
            &mut io::sink(),
        )
        .map_err(|e| errors.classify(e))?;
        Ok(TarSource { members })
    }
}

/// Classifies errors seen through the tar parser: the file's own failures are
/// [`Error::Io`], the decompressor's name the damaged stream, and anything else is the tar
/// parser's, reported without its text.
struct Errors<'a> {
    path: &'a Path,
    file: &'a ReadFailure,
    decoder: &'a ReadFailure,
}

impl Errors<'_> {
    /// `_seen` is the error as it came out of the tar parser: its text may quote header
    /// bytes, so only the trackers' records are used.
    fn classify(&self, _seen: io::Error) -> Error {
        if let Some(error) = self.file.take(self.path) {
            return error;
        }
        if let Some(stream) = self.decoder.take_raw() {
            return Error::invalid_archive(format!(
                "{} is a corrupt or truncated compressed stream: {stream}",
                self.path.display()
            ));
        }
        Error::invalid_archive(format!(
            "{} is not a tar archive, or its tar headers are corrupt or truncated",
            self.path.display()
        ))
    }
}

fn stage_members(
    archive: &mut tar::Archive<TrackedReader<Box<dyn Read>>>,
    errors: &Errors<'_>,
    staging: &Staging,
) -> Result<Members> {
    let read_error = |e: io::Error| errors.classify(e);
    let mut members = Members::default();
    let mut buf = vec![0u8; COPY_BUFFER_SIZE];
    for entry in archive.entries().map_err(read_error)? {
        let mut entry = entry.map_err(read_error)?;
        let name = normalize_name(&String::from_utf8_lossy(&entry.path_bytes()))?;
        let link_target = entry
            .link_name_bytes()
            .map(|t| String::from_utf8_lossy(&t).into_owned());
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                if name.is_empty() {
                    return Err(Error::invalid_archive(
                        "a file member is named as the archive root",
                    ));
                }
                let blob = staging.stage_reader(&mut entry, &mut buf, read_error)?;
                members.insert_file(name, blob);
            }
            EntryType::Symlink => {
                members.insert_symlink(name, &require_target(link_target, "symlink")?)?
            }
            EntryType::Link => {
                members.insert_hardlink(name, &require_target(link_target, "hard link")?)?
            }
            // Folders, devices, FIFOs and global headers carry nothing an image needs.
            _ => {}
        }
    }
    Ok(members)
}

fn require_target(target: Option<String>, kind: &str) -> Result<String> {
    target.ok_or_else(|| Error::invalid_archive(format!("{kind} member without a target")))
}

impl Source for TarSource {
    fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.members.resolve(name)?.is_some())
    }

    fn read_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(blob) = self.members.resolve(name)? else {
            return Ok(None);
        };
        check_metadata_size(blob.size, name)?;
        fs::read(&blob.path).at(&blob.path).map(Some)
    }

    fn stage(&self, name: &str) -> Result<Option<StagedBlob>> {
        Ok(self.members.resolve(name)?.cloned())
    }
}
