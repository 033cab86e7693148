//! How a blob or an archive is compressed, told from its first bytes ([`Compression`]); the
//! decoders; the reader wrapper that tells a source's own failures from corrupt content
//! ([`TrackedReader`]); and the buffer size streams are copied with. Depends only on
//! [`crate::tar`] (a valid tar header wins over a magic number its first name could spell) and
//! [`crate::error`].
//!
//! The content decides, never a name or a media type, as containerd and Docker do: a gzip layer
//! labelled `tar` still loads.

use std::io::{self, BufRead, Read, Seek};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// Buffer for copies and decompression. Large reads keep the decompressors and sha256 busy;
/// below ~64 KiB, syscall and call overhead shows in `load` throughput.
pub const COPY_BUFFER_SIZE: usize = 256 * 1024;

/// gzip member header (RFC 1952 `ID1 ID2`).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// zstd frame magic number (RFC 8878 section 3.1.1).
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// bzip2 stream header (`BZh`).
const BZIP2_MAGIC: &[u8] = b"BZh";
/// xz stream header.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// How a stream is compressed, as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No known magic: taken as plain tar.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Detects compression from the first bytes of a stream (at least a tar block of them when
    /// the stream has that many). bzip2 and xz (which `docker load` reads but no image spec
    /// allows for layers) are [`Error::Unsupported`].
    pub fn sniff(head: &[u8]) -> Result<Self> {
        // A valid tar header wins: a plain tar's first name may spell a magic (`BZh9...`).
        if crate::tar::is_header(head) {
            return Ok(Compression::None);
        }
        if head.starts_with(GZIP_MAGIC) {
            Ok(Compression::Gzip)
        } else if head.starts_with(ZSTD_MAGIC) {
            Ok(Compression::Zstd)
        } else if head.starts_with(BZIP2_MAGIC) || head.starts_with(XZ_MAGIC) {
            Err(Error::Unsupported {
                what: "bzip2 or xz compression (only gzip and zstd)".into(),
            })
        } else {
            Ok(Compression::None)
        }
    }

    /// [`Compression::sniff`] of the file or stream `what` names, which an unsupported
    /// compression's error then names too.
    pub fn sniff_named(head: &[u8], what: &Path) -> Result<Self> {
        Compression::sniff(head).map_err(|e| match e {
            Error::Unsupported { what: text } => Error::Unsupported {
                what: format!("{text} of {}", what.display()),
            },
            other => other,
        })
    }

    /// The decoder of a stream compressed this way, reading `input` (positioned at the first
    /// byte). Errors are those of building a zstd decoder.
    pub fn decoder<'a, R: BufRead + Send + 'a>(
        self,
        input: R,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        })
    }
}

/// Chunks of decoded bytes a decoder thread runs ahead of its reader ([`decode_beside`]): with
/// [`COPY_BUFFER_SIZE`] each, 1 MiB per stream, whatever its size.
const DECODED_AHEAD: usize = 4;

/// Runs the decoder of `kind` over `input` on a thread of its own and hands `consume` a reader
/// of the decoded bytes, so that inflating a layer (the larger part of its conversion) and
/// what reads the result (hashing the tar, parsing it, writing the image) run on two cores at
/// once rather than one after the other. The decoder runs at most [`DECODED_AHEAD`] chunks
/// ahead. A read or decoding error reaches the reader as it happened; once `consume` returns,
/// the decoder stops at its next chunk (whatever `input` it did not read stays unread), and
/// the thread is joined before this returns. `Compression::None` runs no thread.
pub fn decode_beside<R, T>(
    kind: Compression,
    input: R,
    consume: impl FnOnce(&mut dyn Read) -> T,
) -> T
where
    R: BufRead + Send,
{
    use std::sync::mpsc::{Receiver, TryRecvError, channel, sync_channel};

    if kind == Compression::None {
        let mut input = input;
        return consume(&mut input);
    }
    /// The decoded bytes, a chunk at a time; spent chunks go back to be filled again.
    struct Chunks {
        full: Receiver<io::Result<Vec<u8>>>,
        spent: std::sync::mpsc::Sender<Vec<u8>>,
        current: Vec<u8>,
        at: usize,
        done: bool,
    }
    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            while self.at == self.current.len() {
                if self.done {
                    return Ok(0);
                }
                match self.full.recv() {
                    Ok(Ok(chunk)) => {
                        let spent = std::mem::replace(&mut self.current, chunk);
                        let _ = self.spent.send(spent);
                        self.at = 0;
                    }
                    Ok(Err(e)) => {
                        self.done = true;
                        return Err(e);
                    }
                    // The decoder reached the end (it sends nothing more and hangs up).
                    Err(_) => self.done = true,
                }
            }
            let n = buf.len().min(self.current.len() - self.at);
            buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }
    let (full_tx, full) = sync_channel::<io::Result<Vec<u8>>>(DECODED_AHEAD);
    let (spent, spent_rx) = channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut decoder = match kind.decoder(input) {
                Ok(d) => d,
                Err(e) => {
                    let _ = full_tx.send(Err(e));
                    return;
                }
            };
            loop {
                let mut chunk = match spent_rx.try_recv() {
                    Ok(chunk) => chunk,
                    Err(TryRecvError::Empty) => Vec::new(),
                    // The reader is gone: nobody wants more.
                    Err(TryRecvError::Disconnected) => return,
                };
                chunk.resize(COPY_BUFFER_SIZE, 0);
                let n = loop {
                    match decoder.read(&mut chunk) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        other => break other,
                    }
                };
                match n {
                    Ok(0) => return,
                    Ok(n) => {
                        chunk.truncate(n);
                        if full_tx.send(Ok(chunk)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        let mut chunks = Chunks {
            full,
            spent,
            current: Vec::new(),
            at: 0,
            done: false,
        };
        let out = consume(&mut chunks);
        // Hang up both channels: the decoder stops at its next chunk, and the scope joins it.
        drop(chunks);
        out
    })
}

/// Wraps the reader of a source and remembers its own failures, so that an error surfacing
/// through a decompressor or the tar parser can be told apart: a failure of the source itself
/// is [`Error::Io`] (or the core error the source reported, see [`wrap_error`]), anything else
/// means the content is corrupt.
pub struct TrackedReader<R> {
    inner: R,
    failure: Arc<Mutex<Option<io::Error>>>,
}

impl<R: Read> TrackedReader<R> {
    /// Wraps `inner`; the returned handle classifies errors seen downstream.
    pub fn new(inner: R) -> (Self, ReadFailure) {
        let failure = Arc::new(Mutex::new(None));
        (
            TrackedReader {
                inner,
                failure: Arc::clone(&failure),
            },
            ReadFailure { failure },
        )
    }
}

impl<R: Read> Read for TrackedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                let kind = e.kind();
                if let Ok(mut slot) = self.failure.lock() {
                    *slot = Some(e);
                }
                Err(io::Error::new(kind, "reading the source failed"))
            }
            other => other,
        }
    }
}

impl<R: Seek> Seek for TrackedReader<R> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        self.inner.seek(to).inspect_err(|e| {
            if let Ok(mut slot) = self.failure.lock() {
                *slot = Some(io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

/// The failure record of a [`TrackedReader`].
pub struct ReadFailure {
    failure: Arc<Mutex<Option<io::Error>>>,
}

impl ReadFailure {
    /// The tracked reader's own error, if it failed (taken: asked again, `None`), as a core
    /// error: the one the source wrapped ([`wrap_error`]), else [`Error::Io`] on `path`.
    pub fn take(&self, path: &Path) -> Option<Error> {
        Some(unwrap_error(self.take_raw()?, path))
    }

    /// The tracked reader's own error as it failed (taken: asked again, `None`).
    pub fn take_raw(&self) -> Option<io::Error> {
        self.failure.lock().ok()?.take()
    }

    /// Maps an error seen while reading through the tracked reader: the source's own failure
    /// when it failed (see [`ReadFailure::take`]), else [`Error::InvalidArchive`] saying `what`
    /// is corrupt.
    pub fn classify(&self, path: &Path, what: &str, err: io::Error) -> Error {
        match self.take(path) {
            Some(error) => error,
            None => Error::invalid_archive(format!("{what} is corrupt or truncated: {err}")),
        }
    }
}

/// A core error carried through a reader's `io::Error`, so that a source can report a failure
/// as what it is (an I/O error on the archive's path, a cancelled load) to whoever reads it
/// through decoders.
#[derive(Debug)]
struct Carried(Error);

impl std::fmt::Display for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Carried {}

/// Wraps a core error into an `io::Error` (of kind `Other`), for a reader to return; see
/// [`unwrap_error`].
pub fn wrap_error(error: Error) -> io::Error {
    io::Error::other(Carried(error))
}

/// The core error an `io::Error` carries ([`wrap_error`]), else [`Error::io`] on `path`.
pub fn unwrap_error(err: io::Error, path: &Path) -> Error {
    if !err.get_ref().is_some_and(|e| e.is::<Carried>()) {
        return Error::io(path, err);
    }
    match err.into_inner().map(|inner| inner.downcast::<Carried>()) {
        Some(Ok(carried)) => carried.0,
        // Checked just above.
        _ => Error::internal("a carried error was lost"),
    }
}

/// A reader of a file or stream that names `path` in its errors: every read error is reported
/// as [`Error::Io`] (or [`Error::NoSpace`]) on `path`, carried ([`wrap_error`]).
pub struct NamedReader<R> {
    inner: R,
    path: std::path::PathBuf,
}

impl<R: Read> NamedReader<R> {
    /// Wraps `inner`, whose errors are about `path`.
    pub fn new(inner: R, path: impl Into<std::path::PathBuf>) -> Self {
        NamedReader {
            inner,
            path: path.into(),
        }
    }
}

impl<R: Read> Read for NamedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted
                || e.get_ref().is_some_and(|e| e.is::<Carried>())
            {
                e
            } else {
                wrap_error(Error::io(&self.path, e))
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn sniff_table() {
        let cases: &[(&[u8], Option<Compression>)] = &[
            (&[0x1f, 0x8b, 8, 0], Some(Compression::Gzip)),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0], Some(Compression::Zstd)),
            (b"ustar", Some(Compression::None)),
            (b"", Some(Compression::None)),
            (b"BZh91AY", None),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0, 0], None),
        ];
        for (head, want) in cases {
            assert_eq!(Compression::sniff(head).ok(), *want, "{head:?}");
        }
    }

    #[test]
    fn tracked_reader_tells_file_failures_from_corruption() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let (mut reader, failure) = TrackedReader::new(Failing);
        let err = reader.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(
            failure.classify(Path::new("x"), "archive", err).code(),
            "IO"
        );
        let corrupt = io::Error::new(io::ErrorKind::InvalidData, "bad gzip");
        assert_eq!(
            failure.classify(Path::new("x"), "archive", corrupt).code(),
            "INVALID_ARCHIVE"
        );
    }

    /// A source reports its failure as a core error (here a cancelled load) through decoders
    /// and tracked readers, and it arrives as that error, not as an I/O error.
    #[test]
    fn carried_errors_arrive_as_themselves() {
        struct Cancelled;
        impl Read for Cancelled {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(wrap_error(Error::Aborted {
                    what: "load".into(),
                }))
            }
        }
        let (mut reader, failure) = TrackedReader::new(NamedReader::new(Cancelled, "/a"));
        let err = reader.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(
            failure.classify(Path::new("/b"), "x", err).code(),
            "ABORTED"
        );
        let mut named = NamedReader::new(
            std::io::Cursor::new(Vec::new()).chain(FailingIo),
            "/archive.tar",
        );
        let err = named.read(&mut [0u8; 4]).unwrap_err();
        match unwrap_error(err, Path::new("/other")) {
            Error::Io { path, .. } => assert_eq!(path, Path::new("/archive.tar")),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    struct FailingIo;
    impl Read for FailingIo {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("gone"))
        }
    }

    /// Counts the bytes read from it.
    struct Counted<'a> {
        inner: &'a [u8],
        read: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
            Ok(n)
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Pseudo-random bytes (they do not compress away).
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// The decoded bytes arrive whole and in order, through reads of any size; a plain stream
    /// is handed over as it is.
    #[test]
    fn decode_beside_hands_over_every_byte_in_order() {
        let data = noise(3 * COPY_BUFFER_SIZE + 12_345);
        let packed = gzip(&data);
        let got = decode_beside(Compression::Gzip, io::BufReader::new(&packed[..]), |r| {
            let mut out = Vec::new();
            let mut buf = [0u8; 1000];
            loop {
                match r.read(&mut buf).unwrap() {
                    0 => break out,
                    n => out.extend_from_slice(&buf[..n]),
                }
            }
        });
        assert!(got == data);
        let plain = decode_beside(Compression::None, &data[..], |r| {
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            out
        });
        assert!(plain == data);
    }

    /// A corrupt or truncated stream is an error at the reader, after the bytes before it;
    /// the reader stays at its end.
    #[test]
    fn decode_beside_reports_a_truncated_stream() {
        let data = noise(2 * COPY_BUFFER_SIZE);
        let packed = gzip(&data);
        let cut = &packed[..packed.len() / 2];
        decode_beside(Compression::Gzip, io::BufReader::new(cut), |r| {
            let mut out = Vec::new();
            let err = r.read_to_end(&mut out).unwrap_err();
            assert!(!out.is_empty() && data.starts_with(&out), "{err}");
            assert_eq!(r.read(&mut [0u8; 10]).unwrap(), 0);
        });
        let err = decode_beside(Compression::Zstd, &b"not zstd at all"[..], |r| {
            r.read(&mut [0u8; 10]).unwrap_err()
        });
        assert!(!err.to_string().is_empty());
    }

    /// A reader that stops early stops the decoder: it returns, and the decoder has read a
    /// bounded amount of the input ahead of it, not the rest.
    #[test]
    fn decode_beside_stops_when_the_reader_stops() {
        let data = noise(64 * COPY_BUFFER_SIZE);
        let packed = gzip(&data);
        let read = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let input = io::BufReader::new(Counted {
            inner: &packed,
            read: read.clone(),
        });
        let first = decode_beside(Compression::Gzip, input, |r| {
            let mut buf = [0u8; 100];
            r.read_exact(&mut buf).unwrap();
            buf
        });
        assert_eq!(first[..], data[..100]);
        let consumed = read.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            consumed < packed.len() / 4,
            "the decoder read {consumed} of {} bytes",
            packed.len()
        );
    }
}
