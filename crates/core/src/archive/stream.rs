//! A tar archive that cannot be read in place, read once from front to back: standard input, or
//! a compressed archive (gzip or zstd, told from its first bytes, never its name).
//!
//! Members are read in the order the archive has them. Until the archive's metadata is known
//! (its `index.json`, `oci-layout` and the manifests and configs they lead to, or
//! `manifest.json` and its configs), every regular member passed on the way is **spooled** into
//! the staging folder, hashed as it is copied, since what it is only shows later: `docker save`
//! and most OCI archives write their blobs before `index.json`/`manifest.json`, so from a pipe
//! their layers are spooled (and, being files then, are converted several at once). Once the
//! metadata is known ([`StreamFiles::end_metadata`]), a layer the load needs that is still to
//! come is converted straight from the stream when it comes, and every other member is skipped
//! unread; a needed layer passed while another is read is spooled. A legacy `docker save`
//! archive's layers are always spooled: its synthesized manifest needs their sizes and
//! compression before any layer is converted.
//!
//! Errors never quote the archive: a tar header that does not parse is reported as malformed.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::archive::files::{BlobFile, Files, PathFile, Spool, open_regular, read_small};
use crate::archive::members::{Members, normalize_name};
use crate::archive::tarball::malformed;
use crate::cancel::{Cancel, CancelReader};
use crate::codec::{
    COPY_BUFFER_SIZE, Compression, NamedReader, ReadFailure, TrackedReader, wrap_error,
};
use crate::error::{Error, Result};
use crate::source::BlobReader;
use crate::tar::{Entry, Kind, ReadError, SparseContent, TarReader};

/// Bytes read after the end-of-archive blocks, at most. GNU tar pads an archive to a whole
/// record (10 KiB by default, 1 MiB at its largest blocking factors), and a gzip or zstd
/// trailer is a few bytes more; reading them lets the decompressor check its checksum. Beyond
/// this the rest of the input is ignored, as tar tools ignore it; raising it only costs reading
/// time on input padded with garbage.
const MAX_TRAILER_BYTES: u64 = 1024 * 1024;

type Tar = TarReader<Box<dyn Read + Send>>;

/// An archive read front to back.
#[derive(Clone)]
pub(crate) struct StreamFiles {
    shared: Arc<Shared>,
}

struct Shared {
    /// What errors name: the archive's path, or `standard input`.
    name: PathBuf,
    spool: Spool,
    /// Failures of the input itself, and of the decompressor.
    input: ReadFailure,
    decoder: ReadFailure,
    state: Mutex<State>,
}

struct State {
    /// The reader, positioned at the next header; `None` while a member reader has it.
    tar: Option<Tar>,
    ended: bool,
    members: Members<Seen>,
    /// Members the load will open: kept (spooled) when passed.
    wanted: HashSet<String>,
    /// Whether the metadata is known: from now on only wanted members are spooled.
    streaming: bool,
}

/// A regular member that was passed.
#[derive(Clone)]
enum Seen {
    Spooled(Arc<PathFile>),
    /// Passed unread (not wanted), or read from the stream by a member reader.
    Gone,
}

impl StreamFiles {
    /// Starts reading `input` (named `name` in errors), spooling into `spool`; gives up with
    /// [`Error::Aborted`] at its next read once `cancel` is set.
    pub(crate) fn open(
        input: Box<dyn Read + Send>,
        name: &Path,
        spool: Spool,
        cancel: Cancel,
    ) -> Result<Self> {
        let named = NamedReader::new(CancelReader::new(input, cancel), name);
        let (tracked, input_failure) = TrackedReader::new(named);
        let mut buffered = BufReader::with_capacity(COPY_BUFFER_SIZE, tracked);
        let head = match buffered.fill_buf() {
            Ok(head) => head,
            Err(e) => return Err(input_failure.classify(name, "archive", e)),
        };
        let kind = Compression::sniff_named(head, name)?;
        let decoded = kind
            .decoder(buffered)
            .map_err(|e| input_failure.classify(name, "archive", e))?;
        let (decoded, decoder_failure) = TrackedReader::new(decoded);
        let decoded: Box<dyn Read + Send> = Box::new(decoded);
        Ok(StreamFiles {
            shared: Arc::new(Shared {
                name: name.to_owned(),
                spool,
                input: input_failure,
                decoder: decoder_failure,
                state: Mutex::new(State {
                    tar: Some(TarReader::new(decoded)),
                    ended: false,
                    members: Members::default(),
                    wanted: HashSet::new(),
                    streaming: false,
                }),
            }),
        })
    }

    /// Says the metadata is known: from now on a member is spooled only if the load wants it.
    pub(crate) fn end_metadata(&self) -> Result<()> {
        self.shared.lock()?.streaming = true;
        Ok(())
    }

    /// Reads the rest of the archive up to its end-of-archive blocks (skipping member data) and
    /// at most [`MAX_TRAILER_BYTES`] after them, so that a compressed stream's checksum is
    /// checked and a pipe's writer is not cut off.
    pub(crate) fn finish(&self) -> Result<()> {
        let mut state = self.shared.lock()?;
        let Some(mut tar) = state.tar.take() else {
            return Ok(());
        };
        if !state.ended {
            loop {
                match tar.next_entry() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => return Err(self.shared.read_error(e)),
                }
            }
            state.ended = true;
        }
        io::copy(
            &mut tar.into_inner().take(MAX_TRAILER_BYTES),
            &mut io::sink(),
        )
        .map_err(|e| self.shared.classify(e))?;
        Ok(())
    }

    /// Reads on until `name` resolves to a member, or the archive ends; the member, if any.
    fn settle(&self, name: &str) -> Result<Option<Seen>> {
        let mut state = self.shared.lock()?;
        loop {
            if let Some(seen) = state.members.resolve(name)? {
                return Ok(Some(seen.clone()));
            }
            if state.ended {
                return Ok(None);
            }
            let entry = self.shared.next(&mut state)?;
            if let Some(entry) = entry {
                self.shared.record(&mut state, entry)?;
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::internal("a thread reading the archive panicked"))
    }

    /// The next entry, or `None` at the end (then `state.ended`).
    fn next(&self, state: &mut State) -> Result<Option<Entry>> {
        let tar = state
            .tar
            .as_mut()
            .ok_or_else(|| Error::internal("the archive is read by two readers at once"))?;
        match tar.next_entry() {
            Ok(Some(entry)) => Ok(Some(entry)),
            Ok(None) => {
                state.ended = true;
                Ok(None)
            }
            Err(e) => Err(self.read_error(e)),
        }
    }

    /// Records an entry just read: a regular member is spooled (before the metadata is known, or
    /// when wanted) or passed; links are recorded.
    fn record(&self, state: &mut State, entry: Entry) -> Result<()> {
        let State {
            tar,
            members,
            wanted,
            streaming,
            ..
        } = state;
        members.insert_entry(&entry, |name| {
            Ok(if !*streaming || wanted.contains(name) {
                Seen::Spooled(Arc::new(self.spool_entry(tar, &entry)?))
            } else {
                Seen::Gone
            })
        })
    }

    /// Copies the current entry's content into the spool.
    fn spool_entry(&self, tar: &mut Option<Tar>, entry: &Entry) -> Result<PathFile> {
        let tar = tar
            .as_mut()
            .ok_or_else(|| Error::internal("the archive is read by two readers at once"))?;
        let data = EntryData { tar };
        let read_error = |e: io::Error| self.classify(e);
        match &entry.sparse {
            Some(map) => self.spool.copy(
                SparseContent::new(data, map.clone(), entry.size),
                read_error,
            ),
            None => self.spool.copy(data, read_error),
        }
    }

    fn read_error(&self, e: ReadError) -> Error {
        match e {
            ReadError::Io(e) => self.classify(e),
            // Names an entry type or a record the reader does not support, quoting nothing.
            ReadError::Other(e @ Error::Unsupported { .. }) => e,
            ReadError::Other(_) => malformed(&self.name),
        }
    }

    /// Classifies a read error: the input's own failure (or the error it carried), the
    /// decompressor's, else the tar parser's, reported without its text.
    fn classify(&self, _seen: io::Error) -> Error {
        if let Some(error) = self.input.take(&self.name) {
            return error;
        }
        if let Some(stream) = self.decoder.take_raw() {
            return Error::invalid_archive(format!(
                "{} is a corrupt or truncated compressed stream: {stream}",
                self.name.display()
            ));
        }
        malformed(&self.name)
    }
}

/// The current entry's stored data.
struct EntryData<'a> {
    tar: &'a mut Tar,
}

impl Read for EntryData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tar.read_data(buf)
    }
}

impl Files for StreamFiles {
    fn contains(&self, name: &str) -> Result<bool> {
        Ok(self.settle(name)?.is_some())
    }

    fn read_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.settle(name)? {
            Some(Seen::Spooled(file)) => read_small(&*file, name).map(Some),
            Some(Seen::Gone) => Err(Error::internal(format!(
                "{name} was passed before it was asked for"
            ))),
            None => Ok(None),
        }
    }

    fn read_optional_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let mut state = self.shared.lock()?;
        match state.members.resolve(name)? {
            Some(Seen::Spooled(file)) => {
                let file = file.clone();
                drop(state);
                read_small(&*file, name).map(Some)
            }
            Some(Seen::Gone) => Ok(None),
            None => {
                // Kept when it comes; read again once the stream is finished.
                if !state.ended {
                    state.wanted.insert(normalize_name(name)?);
                }
                Ok(None)
            }
        }
    }

    fn complete(&self) -> bool {
        self.shared.lock().is_ok_and(|s| s.ended)
    }

    fn blob(&self, name: &str) -> Result<Option<Arc<dyn BlobFile>>> {
        let state = self.shared.lock()?;
        match state.members.resolve(name)? {
            Some(Seen::Spooled(file)) => Ok(Some(file.clone() as Arc<dyn BlobFile>)),
            None if state.ended => Ok(None),
            _ => Ok(Some(Arc::new(Pending {
                files: self.clone(),
                name: normalize_name(name)?,
            }))),
        }
    }

    fn settled_blob(&self, name: &str) -> Result<Option<Arc<dyn BlobFile>>> {
        match self.settle(name)? {
            Some(Seen::Spooled(file)) => Ok(Some(file as Arc<dyn BlobFile>)),
            Some(Seen::Gone) => Err(Error::internal(format!(
                "{name} was passed before it was asked for"
            ))),
            None => Ok(None),
        }
    }
}

/// A member still to come in the stream (or spooled since).
struct Pending {
    files: StreamFiles,
    name: String,
}

impl Pending {
    fn spooled(&self) -> Option<Arc<PathFile>> {
        let state = self.files.shared.lock().ok()?;
        match state.members.resolve(&self.name).ok()? {
            Some(Seen::Spooled(file)) => Some(file.clone()),
            _ => None,
        }
    }
}

impl BlobFile for Pending {
    fn size(&self) -> Option<u64> {
        self.spooled().map(|f| f.size)
    }

    fn known_digest(&self) -> Option<crate::oci::Digest> {
        self.spooled().and_then(|f| f.digest.clone())
    }

    fn sequence(&self) -> Option<u64> {
        // Still to come: read in the order the load asks, one at a time.
        self.spooled().is_none().then_some(0)
    }

    fn want(&self) {
        if let Ok(mut state) = self.files.shared.lock() {
            state.wanted.insert(self.name.clone());
        }
    }

    fn open(&self) -> Result<BlobReader<'_>> {
        let shared = &self.files.shared;
        let mut state = shared.lock()?;
        loop {
            match state.members.resolve(&self.name)? {
                Some(Seen::Spooled(file)) => {
                    let path = file.path.clone();
                    drop(state);
                    let spooled = open_regular(&path)?;
                    return Ok(BlobReader {
                        reader: Box::new(NamedReader::new(spooled, &path)),
                        path,
                    });
                }
                Some(Seen::Gone) => {
                    return Err(Error::internal(format!(
                        "member {} was read already",
                        self.name
                    )));
                }
                None if state.ended => {
                    return Err(Error::invalid_archive(format!(
                        "member {:?} is missing",
                        self.name
                    )));
                }
                None => {}
            }
            let Some(entry) = shared.next(&mut state)? else {
                continue;
            };
            let is_this = entry.kind == Kind::File
                && entry.sparse.is_none()
                && normalize_name(&String::from_utf8_lossy(&entry.path))? == self.name;
            if !is_this {
                shared.record(&mut state, entry)?;
                continue;
            }
            // This member, read straight from the stream: whoever asks for it later finds it
            // gone, and the reader gives the stream back when dropped.
            state.members.insert_file(self.name.clone(), Seen::Gone);
            let tar = state.tar.take();
            return Ok(BlobReader {
                reader: Box::new(StreamMember { shared, tar }),
                path: shared.name.clone(),
            });
        }
    }
}

/// A member's data read straight from the stream; gives the stream back when dropped.
struct StreamMember<'a> {
    shared: &'a Shared,
    tar: Option<Tar>,
}

impl Read for StreamMember<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tar) = self.tar.as_mut() else {
            return Ok(0);
        };
        tar.read_data(buf)
            .map_err(|e| wrap_error(self.shared.classify(e)))
    }
}

impl Drop for StreamMember<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.tar = self.tar.take();
        }
    }
}
