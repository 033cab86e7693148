//! The one tar reader of the crate, for layer blobs and for the image archives that carry them:
//! POSIX ustar, GNU and PAX headers, read once, front to back, with nothing buffered beyond one
//! entry's metadata. Depends on nothing but [`crate::error`].
//!
//! Written for fidelity rather than reused from the `tar` crate, whose PAX parser splits records
//! at newlines: binary xattr values (a `security.capability` with a 0x0a byte) and names with
//! newlines must survive. Handled: PAX `x` records by their length prefix (`path`, `linkpath`,
//! `size`, `uid`, `gid`, `mtime` with nanoseconds, `SCHILY.xattr.*`, `SCHILY.devmajor/devminor`),
//! GNU long names and link names (`L`, `K`), old GNU sparse files (`S`: the map of data
//! segments, at most [`MAX_SPARSE_SEGMENTS`], with the segments' data following),
//! base-256 numbers, and the ustar `prefix` field. Global PAX headers (`g`) are skipped. PAX
//! sparse files (`GNU.sparse.*`) are refused as [`Error::Unsupported`]. Entry types the reader
//! does not know are [`Kind::Other`]: a layer refuses them, an archive ignores them.
//!
//! The reader counts the bytes it consumed, so every entry knows where its data starts
//! ([`Entry::offset`]); over a seekable input ([`TarReader::seekable`]) it seeks past data it
//! is not asked for instead of reading it, which indexes an archive in one pass over its
//! headers.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

use crate::error::{Error, Result};

/// A tar block (POSIX `ustar`): headers are one block, data is padded to whole blocks.
pub const BLOCK_SIZE: usize = 512;
/// [`BLOCK_SIZE`] as the `u64` offsets are counted in.
const BLOCK: u64 = BLOCK_SIZE as u64;
/// PAX record prefix carrying an xattr.
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";
/// Largest metadata payload read into memory (a PAX header, a GNU long name); real ones are a
/// few hundred bytes, big xattrs a few KiB.
const MAX_META: u64 = 16 * 1024 * 1024;
/// Most data segments an old GNU sparse map may list for one file, beyond which the layer is
/// refused as invalid: the map is held in memory (16 bytes a segment, so at most 16 MiB) while
/// the file is converted. GNU tar lists one segment per run of data; real sparse files (disk
/// images, databases, core dumps) have a few thousand at most.
pub const MAX_SPARSE_SEGMENTS: usize = 1 << 20;

/// One PAX record: key and value.
type PaxRecord = (Vec<u8>, Vec<u8>);

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file (`0`, NUL, `7`, and GNU sparse `S`).
    File,
    /// Hard link (`1`).
    Link,
    /// Symbolic link (`2`).
    Symlink,
    /// Character device (`3`).
    Char,
    /// Block device (`4`).
    Block,
    /// Directory (`5`, GNU dump directory `D`).
    Dir,
    /// FIFO (`6`).
    Fifo,
    /// Any other type flag (a GNU volume label `V`, a multi-volume continuation `M`, a vendor
    /// extension): its data is skipped like a file's.
    Other(u8),
}

/// One tar entry with every extension applied.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Type.
    pub kind: Kind,
    /// Path as stored (not normalized).
    pub path: Vec<u8>,
    /// Link target (hard and symbolic links).
    pub link: Vec<u8>,
    /// Permission bits and higher bits as stored.
    pub mode: u64,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Seconds and nanoseconds.
    pub mtime: (i64, u32),
    /// Device numbers.
    pub dev: (u32, u32),
    /// Xattrs from PAX records.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Size of the file as extracted (the real size of a sparse file).
    pub size: u64,
    /// Data segments of a sparse file (offset, length), in order; `None` for a plain file.
    pub sparse: Option<Vec<(u64, u64)>>,
    /// Bytes of data stored in the archive for this entry (for a sparse file, its segments
    /// back to back).
    pub stored: u64,
    /// Where the stored data starts, in bytes from the start of the input.
    pub offset: u64,
}

/// Reads entries from a tar stream.
pub struct TarReader<R> {
    inner: R,
    /// Data bytes of the current entry not yet read, then its padding.
    remaining: u64,
    padding: u64,
    ended: bool,
    /// Bytes consumed from `inner` (read or skipped).
    position: u64,
    /// Skips `n` bytes of `inner`, returning how many there were.
    skip: fn(&mut R, u64) -> io::Result<u64>,
}

fn bad(what: impl Into<String>) -> Error {
    Error::invalid_archive(format!("tar: {}", what.into()))
}

/// Skips by reading (any stream).
fn skip_by_reading<R: Read>(inner: &mut R, n: u64) -> io::Result<u64> {
    io::copy(&mut inner.take(n), &mut io::sink())
}

/// Skips by seeking. A seek past the end succeeds, so the caller checks the data it indexed
/// against the input's length.
fn skip_by_seeking<R: Read + Seek>(inner: &mut R, n: u64) -> io::Result<u64> {
    let by = i64::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    inner.seek(SeekFrom::Current(by))?;
    Ok(n)
}

impl<R: Read + Seek> TarReader<R> {
    /// Wraps a seekable input positioned at the first header (at offset 0): data that is not
    /// read is seeked past, so listing the entries reads their headers only.
    pub fn seekable(inner: R) -> Self {
        TarReader {
            skip: skip_by_seeking::<R>,
            ..TarReader::new(inner)
        }
    }
}

impl<R: Read> TarReader<R> {
    /// Wraps a stream positioned at the first header.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            ended: false,
            position: 0,
            skip: skip_by_reading::<R>,
        }
    }

    /// The stream, for draining what follows the end of the archive.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes consumed from the input so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next entry, or `None` at the end-of-archive marker (or a clean end of stream).
    /// Unread data of the previous entry is skipped. Read errors are returned as
    /// `Err(Err(io))` so the caller can tell a corrupt stream from a malformed header.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ReadError> {
        self.skip_rest()?;
        if self.ended {
            return Ok(None);
        }
        let mut pax: Vec<PaxRecord> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut header = [0u8; BLOCK_SIZE];
            if !self.read_block(&mut header)? {
                // A stream that ends without the end-of-archive blocks (some writers stop
                // there) ends the archive, unless metadata headers were left dangling.
                if !pax.is_empty() || long_name.is_some() || long_link.is_some() {
                    return Err(bad("archive ends after an extension header").into());
                }
                self.ended = true;
                return Ok(None);
            }
            if header.iter().all(|b| *b == 0) {
                self.ended = true;
                return Ok(None);
            }
            check_checksum(&header)?;
            let typeflag = header[156];
            let size = number(&header[124..136], "size")?;
            match typeflag {
                b'x' => {
                    let data = self.read_meta(size)?;
                    pax.extend(parse_pax(&data)?);
                    continue;
                }
                b'g' => {
                    self.read_meta(size)?;
                    continue;
                }
                b'L' => {
                    long_name = Some(trim_nul(self.read_meta(size)?));
                    continue;
                }
                b'K' => {
                    long_link = Some(trim_nul(self.read_meta(size)?));
                    continue;
                }
                _ => {}
            }
            let mut entry = self.build(&header, typeflag, size, pax, long_name, long_link)?;
            entry.offset = self.position;
            self.remaining = entry.stored;
            self.padding = pad(entry.stored);
            return Ok(Some(entry));
        }
    }

    fn build(
        &mut self,
        h: &[u8; BLOCK_SIZE],
        typeflag: u8,
        size: u64,
        pax: Vec<PaxRecord>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Entry, ReadError> {
        let kind = match typeflag {
            b'0' | 0 | b'7' | b'S' => Kind::File,
            b'1' => Kind::Link,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' | b'D' => Kind::Dir,
            b'6' => Kind::Fifo,
            other => Kind::Other(other),
        };
        let posix = &h[257..263] == b"ustar\0";
        let mut path = field(&h[0..100]).to_vec();
        if posix && h[345] != 0 {
            let mut full = field(&h[345..500]).to_vec();
            full.push(b'/');
            full.extend_from_slice(&path);
            path = full;
        }
        // Old writers (V7, early BSD tar) had no directory type and marked a directory as a
        // regular file whose name ends with `/`. Only a name from the header itself can be one
        // of theirs: a GNU long name or a PAX `path` comes from a newer writer, and Go's
        // archive/tar puts an ASCII-only rendering of a non-ASCII name in the header
        // (`names/` for `names/Ωμέγα`) next to the PAX `path` that names the file.
        let named_by_extension =
            long_name.is_some() || pax.iter().any(|(key, _)| key.as_slice() == b"path");
        let kind = if kind == Kind::File
            && matches!(typeflag, b'0' | 0)
            && !named_by_extension
            && path.ends_with(b"/")
        {
            Kind::Dir
        } else {
            kind
        };
        let mut entry = Entry {
            kind,
            path: long_name.unwrap_or(path),
            link: long_link.unwrap_or_else(|| field(&h[157..257]).to_vec()),
            mode: number(&h[100..108], "mode")?,
            uid: number(&h[108..116], "uid")?,
            gid: number(&h[116..124], "gid")?,
            mtime: (signed(&h[136..148], "mtime")?, 0),
            dev: (0, 0),
            xattrs: BTreeMap::new(),
            size,
            sparse: None,
            stored: size,
            offset: 0,
        };
        if matches!(kind, Kind::Char | Kind::Block) {
            entry.dev = (
                u32::try_from(number(&h[329..337], "devmajor")?).map_err(|_| bad("devmajor"))?,
                u32::try_from(number(&h[337..345], "devminor")?).map_err(|_| bad("devminor"))?,
            );
        }
        for (key, value) in pax {
            match key.as_slice() {
                b"path" => entry.path = value,
                b"linkpath" => entry.link = value,
                b"size" => {
                    let v = decimal(&value, "size")?;
                    entry.size = v;
                    entry.stored = v;
                }
                b"uid" => entry.uid = decimal(&value, "uid")?,
                b"gid" => entry.gid = decimal(&value, "gid")?,
                b"mtime" => entry.mtime = parse_pax_time(&value)?,
                b"SCHILY.devmajor" => {
                    entry.dev.0 =
                        u32::try_from(decimal(&value, "devmajor")?).map_err(|_| bad("devmajor"))?;
                }
                b"SCHILY.devminor" => {
                    entry.dev.1 =
                        u32::try_from(decimal(&value, "devminor")?).map_err(|_| bad("devminor"))?;
                }
                k if k.starts_with(b"GNU.sparse.") => {
                    return Err(Error::Unsupported {
                        what: "PAX-format sparse files (GNU.sparse records); write the layer with GNU format sparse files".into(),
                    }
                    .into());
                }
                k => {
                    if let Some(name) = k.strip_prefix(PAX_XATTR) {
                        entry.xattrs.insert(name.to_vec(), value);
                    }
                }
            }
        }
        // Old writers mark directories as regular files whose name ends with `/`: the whole
        // name, since a long name's header field holds only its first 100 bytes.
        if kind == Kind::File && matches!(typeflag, b'0' | 0) && entry.path.ends_with(b"/") {
            entry.kind = Kind::Dir;
        }
        if typeflag == b'S' {
            self.read_sparse_map(h, &mut entry)?;
        }
        if !matches!(entry.kind, Kind::File | Kind::Other(_)) {
            // Links, directories and devices store no data (a GNU dump directory's listing
            // is skipped).
            entry.size = 0;
        }
        Ok(entry)
    }

    /// Reads an old GNU sparse map: four slots in the header, more in extension blocks.
    fn read_sparse_map(
        &mut self,
        h: &[u8; BLOCK_SIZE],
        entry: &mut Entry,
    ) -> Result<(), ReadError> {
        let mut map = Vec::new();
        let mut push = |slot: &[u8]| -> Result<(), ReadError> {
            if slot.iter().all(|b| *b == 0) {
                return Ok(());
            }
            if map.len() == MAX_SPARSE_SEGMENTS {
                return Err(bad(format!(
                    "sparse map lists more than {MAX_SPARSE_SEGMENTS} segments"
                ))
                .into());
            }
            map.push((
                number(&slot[..12], "sparse offset")?,
                number(&slot[12..24], "sparse length")?,
            ));
            Ok(())
        };
        for i in 0..4 {
            push(&h[386 + i * 24..386 + (i + 1) * 24])?;
        }
        let mut extended = h[482] != 0;
        while extended {
            let mut block = [0u8; BLOCK_SIZE];
            if !self.read_block(&mut block)? {
                return Err(bad("sparse map is truncated").into());
            }
            for i in 0..21 {
                push(&block[i * 24..(i + 1) * 24])?;
            }
            extended = block[504] != 0;
        }
        let real = number(&h[483..495], "sparse real size")?;
        let mut end = 0u64;
        let mut stored = 0u64;
        for (offset, len) in &map {
            if *offset < end {
                return Err(bad("sparse map is out of order").into());
            }
            end = offset
                .checked_add(*len)
                .ok_or_else(|| bad("sparse map overflows"))?;
            stored += len;
        }
        if end > real || stored != entry.stored {
            return Err(bad("sparse map does not match the entry's sizes").into());
        }
        entry.size = real;
        entry.sparse = Some(map);
        Ok(())
    }

    /// Reads up to `buf.len()` bytes of the current entry's stored data; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends inside an entry's data",
            ));
        }
        self.remaining -= n as u64;
        self.position += n as u64;
        Ok(n)
    }

    /// Skips the current entry's unread data (which must be there) and its padding (which
    /// may be cut short at the very end of the stream: umoci 0.4 writes layers that end
    /// without the last padding and the end-of-archive blocks, and tar tools accept them).
    fn skip_rest(&mut self) -> Result<(), ReadError> {
        if self.remaining > 0 {
            let skip = self.remaining;
            let copied = (self.skip)(&mut self.inner, skip)?;
            self.position += copied;
            if copied != skip {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ends inside an entry's data",
                )));
            }
            self.remaining = 0;
        }
        if self.padding > 0 {
            let skip = self.padding;
            let copied = (self.skip)(&mut self.inner, skip)?;
            self.position += copied;
            self.padding = 0;
            if copied != skip {
                if copied == 0 {
                    self.ended = true;
                } else {
                    return Err(ReadError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the stream ends inside an entry's padding",
                    )));
                }
            }
        }
        Ok(())
    }

    /// Reads one block; `false` at a clean end of stream before it.
    fn read_block(&mut self, block: &mut [u8; BLOCK_SIZE]) -> Result<bool, ReadError> {
        let mut filled = 0;
        while filled < BLOCK_SIZE {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    return Err(ReadError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the stream ends inside a header",
                    )));
                }
                Ok(n) => {
                    filled += n;
                    self.position += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
        Ok(true)
    }

    /// Reads a metadata payload (and its padding).
    fn read_meta(&mut self, size: u64) -> Result<Vec<u8>, ReadError> {
        if size > MAX_META {
            return Err(bad(format!("extension header of {size} bytes")).into());
        }
        let mut data = vec![0u8; size as usize];
        self.inner.read_exact(&mut data)?;
        self.position += size;
        self.remaining = 0;
        self.padding = pad(size);
        self.skip_rest()?;
        Ok(data)
    }
}

/// An error while reading: the stream (the caller tells corrupt input from a failing file)
/// or anything else.
#[derive(Debug)]
pub enum ReadError {
    /// Reading the stream failed.
    Io(io::Error),
    /// Malformed or unsupported content.
    Other(Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<Error> for ReadError {
    fn from(e: Error) -> Self {
        ReadError::Other(e)
    }
}

/// Padding after `n` bytes of data, up to the next whole block.
pub fn pad(n: u64) -> u64 {
    (BLOCK - n % BLOCK) % BLOCK
}

/// A NUL-terminated header field.
fn field(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    &b[..end]
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Whether `block` is a tar header with a valid checksum (used to tell a plain tar from a
/// compressed stream whose magic bytes a file name could spell).
pub fn is_header(block: &[u8]) -> bool {
    let Ok(block) = <&[u8; BLOCK_SIZE]>::try_from(block.get(..BLOCK_SIZE).unwrap_or_default())
    else {
        return false;
    };
    !block.iter().all(|b| *b == 0) && check_checksum(block).is_ok()
}

/// POSIX header checksum: the byte sum with the checksum field read as spaces (some old
/// writers summed signed bytes; both are accepted).
fn check_checksum(h: &[u8; BLOCK_SIZE]) -> Result<(), Error> {
    let stored = number(&h[148..156], "checksum")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(bad("header checksum mismatch (not a tar, or corrupt)"))
    }
}

/// A numeric field: octal digits padded with spaces or NULs (blank reads as 0), or GNU
/// base-256 (first byte 0x80).
fn number(b: &[u8], what: &str) -> Result<u64, Error> {
    if b.first().is_some_and(|c| c & 0x80 != 0) {
        if b[0] == 0xff {
            return Err(bad(format!("negative {what}")));
        }
        let mut v: u64 = u64::from(b[0] & 0x7f);
        for c in &b[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(*c)))
                .ok_or_else(|| bad(format!("{what} overflows")))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = b
        .iter()
        .copied()
        .skip_while(|c| *c == b' ')
        .take_while(|c| *c != 0 && *c != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| bad(format!("{what} is not a number")))?;
    u64::from_str_radix(s, 8).map_err(|_| bad(format!("{what} is not a number")))
}

/// mtime may be negative in base-256.
fn signed(b: &[u8], what: &str) -> Result<i64, Error> {
    if b.first() == Some(&0xff) {
        let mut v: i64 = -1;
        for c in &b[1..] {
            v = v
                .checked_mul(256)
                .ok_or_else(|| bad(format!("{what} overflows")))?
                | i64::from(*c);
        }
        return Ok(v);
    }
    i64::try_from(number(b, what)?).map_err(|_| bad(format!("{what} overflows")))
}

fn decimal(v: &[u8], what: &str) -> Result<u64, Error> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("PAX {what} is not a number")))
}

/// Parses PAX records: `<len> <key>=<value>\n`, where `len` counts the whole record, so values
/// may hold any byte, newlines included.
fn parse_pax(mut data: &[u8]) -> Result<Vec<PaxRecord>, Error> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|b| *b == 0) {
            break;
        }
        let space = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad("malformed PAX record"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|len| *len > space + 1 && *len <= data.len())
            .ok_or_else(|| bad("malformed PAX record length"))?;
        let record = &data[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or_else(|| bad("PAX record does not end with a newline"))?;
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| bad("PAX record without '='"))?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// Parses a PAX time (`1700000000.123456789`, possibly negative) into seconds and
/// nanoseconds (the fraction truncated to nanoseconds).
pub fn parse_pax_time(value: &[u8]) -> Result<(i64, u32)> {
    let bad = || {
        Error::invalid_archive(format!(
            "malformed PAX mtime {:?}",
            String::from_utf8_lossy(value)
        ))
    };
    let text = std::str::from_utf8(value).map_err(|_| bad())?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: i64 = whole.parse().map_err(|_| bad())?;
    let mut nanos: u32 = 0;
    for (i, digit) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    if !negative {
        return Ok((secs, nanos));
    }
    // -1.25 is 1.25 s before the epoch: seconds -2, nanoseconds 750000000.
    if nanos == 0 {
        Ok((-secs, 0))
    } else {
        Ok((-secs - 1, 1_000_000_000 - nanos))
    }
}

/// The content of a sparse entry: its stored data (the segments of `map`, back to back, read
/// from `inner`) with zeros for the holes between them, `size` bytes in all. A map the reader
/// accepted is in order and adds up to the stored data.
pub struct SparseContent<R> {
    inner: R,
    map: std::vec::IntoIter<(u64, u64)>,
    size: u64,
    /// Offset in the content of the next byte read.
    at: u64,
    /// The segment being read: where it starts and how much of it is left.
    segment: Option<(u64, u64)>,
}

impl<R: Read> SparseContent<R> {
    /// The content of a sparse entry of `size` bytes whose segments are `map`, over its stored
    /// data.
    pub fn new(inner: R, map: Vec<(u64, u64)>, size: u64) -> Self {
        SparseContent {
            inner,
            map: map.into_iter(),
            size,
            at: 0,
            segment: None,
        }
    }
}

impl<R: Read> Read for SparseContent<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at >= self.size || buf.is_empty() {
                return Ok(0);
            }
            let (start, left) = match self.segment {
                Some((start, left)) if left > 0 => (start, left),
                _ => match self.map.next() {
                    Some(segment) => {
                        self.segment = Some(segment);
                        continue;
                    }
                    // Past the last segment: zeros up to the size.
                    None => (self.size, 0),
                },
            };
            if self.at < start {
                // A hole before the segment.
                let n = buf
                    .len()
                    .min(usize::try_from(start.min(self.size) - self.at).unwrap_or(usize::MAX));
                buf[..n].fill(0);
                self.at += n as u64;
                return Ok(n);
            }
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = self.inner.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ends inside a sparse entry's data",
                ));
            }
            self.segment = Some((start + n as u64, left - n as u64));
            self.at += n as u64;
            return Ok(n);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn pax_values_may_hold_newlines_and_any_byte() {
        let value = b"a\nb\xff\x00c";
        let key = b"SCHILY.xattr.user.x";
        let body_len = key.len() + 1 + value.len() + 1;
        // The length counts its own digits, the space, and the record.
        let mut len = body_len + 2;
        while len != body_len + 1 + len.to_string().len() {
            len = body_len + 1 + len.to_string().len();
        }
        let mut rec = format!("{len} ").into_bytes();
        rec.extend_from_slice(key);
        rec.push(b'=');
        rec.extend_from_slice(value);
        rec.push(b'\n');
        assert_eq!(rec.len(), len);
        let parsed = parse_pax(&rec).unwrap();
        assert_eq!(parsed, [(key.to_vec(), value.to_vec())]);
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"8 path=x\n").is_err(), "length one short");
        assert_eq!(
            parse_pax(b"9 path=x\n").unwrap(),
            [(b"path".to_vec(), b"x".to_vec())]
        );
    }

    /// Found while writing a test for deep layers: a regular file whose long name (GNU `L` or
    /// PAX `path`) has a `/` as its 100th byte became a directory, because the old-writer rule
    /// (a regular file named `dir/` is a directory) read the truncated header field.
    #[test]
    fn long_name_with_a_slash_at_byte_100_stays_a_file() {
        let path = format!("{}/file", "d".repeat(99));
        for gnu in [true, false] {
            let mut builder = tar::Builder::new(Vec::new());
            let mut header = if gnu {
                tar::Header::new_gnu()
            } else {
                tar::Header::new_ustar()
            };
            header.set_size(1);
            header.set_mode(0o644);
            if gnu {
                builder.append_data(&mut header, &path, &b"x"[..]).unwrap();
            } else {
                // PAX `path` record, header name truncated to 100 bytes as writers do.
                let record = format!("path={path}\n");
                let len = record.len() + 4;
                let pax = format!("{len} {record}");
                assert_eq!(pax.len(), len);
                let mut x = tar::Header::new_ustar();
                x.set_entry_type(tar::EntryType::XHeader);
                x.set_size(pax.len() as u64);
                x.set_path("PaxHeader").unwrap();
                x.set_cksum();
                builder.append(&x, pax.as_bytes()).unwrap();
                header
                    .as_old_mut()
                    .name
                    .copy_from_slice(&path.as_bytes()[..100]);
                header.set_cksum();
                builder.append(&header, &b"x"[..]).unwrap();
            }
            let bytes = builder.into_inner().unwrap();
            let mut reader = TarReader::new(bytes.as_slice());
            let entry = reader.next_entry().unwrap().unwrap();
            assert_eq!(entry.path, path.as_bytes(), "gnu: {gnu}");
            assert_eq!(entry.kind, Kind::File, "gnu: {gnu}");
            assert_eq!(entry.size, 1, "gnu: {gnu}");
        }
        let mut dir = [0u8; BLOCK_SIZE];
        dir[..4].copy_from_slice(b"old/");
        dir[156] = b'0';
        dir[148..156].copy_from_slice(b"        ");
        let sum: u32 = dir.iter().map(|b| u32::from(*b)).sum();
        dir[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        let entry = TarReader::new(&dir[..]).next_entry().unwrap().unwrap();
        assert_eq!(entry.kind, Kind::Dir, "a v7 directory is still one");
    }

    #[test]
    fn numbers_octal_blank_and_base256() {
        assert_eq!(number(b"0000755\0", "m").unwrap(), 0o755);
        assert_eq!(number(b"   755 \0", "m").unwrap(), 0o755);
        assert_eq!(number(b"\0\0\0\0\0\0\0\0", "m").unwrap(), 0);
        assert_eq!(
            number(&[0x80, 0, 0, 0, 0, 0x01, 0x11, 0x70], "uid").unwrap(),
            70000
        );
        assert!(number(b"12x4\0", "m").is_err());
        assert_eq!(signed(&[0xff; 12], "mtime").unwrap(), -1);
    }

    #[test]
    fn pax_time_table() {
        let cases: &[(&str, (i64, u32))] = &[
            ("1700000000", (1_700_000_000, 0)),
            ("1700000000.5", (1_700_000_000, 500_000_000)),
            ("1700000000.123456789123", (1_700_000_000, 123_456_789)),
            ("-1.25", (-2, 750_000_000)),
            ("-3", (-3, 0)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_pax_time(input.as_bytes()).unwrap(), *want, "{input}");
        }
        for bad in ["", "x", "1.x", ".5", "--1"] {
            assert!(parse_pax_time(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    /// A ustar header block for `name` of `size` bytes and type `typeflag`.
    fn header(name: &str, size: u64, typeflag: u8) -> [u8; BLOCK_SIZE] {
        let mut h = [0u8; BLOCK_SIZE];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn archive(members: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data, typeflag) in members {
            out.extend_from_slice(&header(name, data.len() as u64, *typeflag));
            out.extend_from_slice(data);
            out.resize(out.len() + pad(data.len() as u64) as usize, 0);
        }
        out.resize(out.len() + 2 * BLOCK_SIZE, 0);
        out
    }

    /// Every entry knows where its data starts, and a seekable reader lists entries without
    /// reading their data: the same entries and offsets as reading through, over a reader that
    /// fails any read of data bytes.
    #[test]
    fn offsets_and_seeking_past_data() {
        let bytes = archive(&[
            ("a", &[1u8; 700][..], b'0'),
            ("vol", &[2u8; 10][..], b'V'),
            ("b", &b"bee"[..], b'0'),
        ]);
        fn list<R: Read>(mut tar: TarReader<R>) -> Vec<(String, Kind, u64, u64)> {
            let mut out = Vec::new();
            while let Some(e) = tar.next_entry().map_err(|_| ()).unwrap() {
                out.push((
                    String::from_utf8(e.path).unwrap(),
                    e.kind,
                    e.offset,
                    e.stored,
                ));
            }
            out
        }
        let want = vec![
            ("a".to_owned(), Kind::File, 512, 700),
            ("vol".to_owned(), Kind::Other(b'V'), 512 * 4, 10),
            ("b".to_owned(), Kind::File, 512 * 6, 3),
        ];
        assert_eq!(list(TarReader::new(&bytes[..])), want);
        /// Reads headers only: a read that starts inside a member's data fails.
        struct HeadersOnly(std::io::Cursor<Vec<u8>>, Vec<(u64, u64)>);
        impl Read for HeadersOnly {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let at = self.0.position();
                if self
                    .1
                    .iter()
                    .any(|(start, end)| (*start..*end).contains(&at))
                {
                    return Err(io::Error::other("read data"));
                }
                self.0.read(buf)
            }
        }
        impl Seek for HeadersOnly {
            fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
                self.0.seek(to)
            }
        }
        let data = want.iter().map(|(_, _, at, len)| (*at, at + len)).collect();
        let seekable = HeadersOnly(std::io::Cursor::new(bytes.clone()), data);
        // One header per read: a larger read would run into the data.
        assert_eq!(
            list(TarReader::seekable(io::BufReader::with_capacity(
                BLOCK_SIZE, seekable
            ))),
            want
        );
        let mut tar = TarReader::new(&bytes[..]);
        tar.next_entry().map_err(|_| ()).unwrap();
        let mut first = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            let n = tar.read_data(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            first.extend_from_slice(&buf[..n]);
        }
        assert_eq!(first, vec![1u8; 700]);
        assert_eq!(tar.position(), 512 + 700);
    }

    #[test]
    fn sparse_content_fills_holes_with_zeros() {
        let stored = b"abcdefgh";
        let mut content = Vec::new();
        SparseContent::new(&stored[..], vec![(2, 3), (7, 0), (10, 5)], 20)
            .read_to_end(&mut content)
            .unwrap();
        let mut want = vec![0u8; 20];
        want[2..5].copy_from_slice(b"abc");
        want[10..15].copy_from_slice(b"defgh");
        assert_eq!(content, want);
        let mut short = Vec::new();
        let err = SparseContent::new(&b"ab"[..], vec![(0, 3)], 3)
            .read_to_end(&mut short)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
