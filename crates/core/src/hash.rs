//! Content hashes of the artifacts ocicache writes (layer EROFS images, fsmeta images, VMDK
//! descriptors), recorded in the index when they are written and compared by
//! [`crate::check`]'s full verification. Blobs need none: their digest is their name.
//!
//! The hash is BLAKE3 (`blake3:<hex>`), chosen for speed: on one core it runs at 3.8 times
//! SHA-256 with SHA-NI (BENCHMARKS.md), so hashing while writing costs next to nothing and a
//! full verification is bound by the disk.
//!
//! What is hashed: the file's bytes with its first [`ROTATED_PREFIX`] bytes moved to the end
//! (`file[4096..] ‖ file[..4096]`). An EROFS image's writer streams the data blocks first and
//! writes block 0 (the superblock, which depends on everything after it) last, so this order
//! is the order the bytes are written in: the hash is computed while writing, with no extra
//! read pass. A file of at most one block (a small VMDK descriptor) is hashed as it is.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Bytes at the front of a file that are hashed after the rest: one EROFS block (block 0).
pub const ROTATED_PREFIX: usize = 4096;
/// The algorithm's name in a recorded hash.
const PREFIX: &str = "blake3:";
/// Read buffer of [`hash_reader`].
const READ_BUFFER: usize = 256 * 1024;

/// An incremental content hash, fed in hashing order.
#[derive(Debug, Default, Clone)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    /// A new hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The hash as recorded: `blake3:<hex>`.
    pub fn finish(&self) -> String {
        format!("{PREFIX}{}", self.0.finalize().to_hex())
    }
}

/// The content hash of a whole file's bytes.
pub fn content_hash(bytes: &[u8]) -> String {
    let split = bytes.len().min(ROTATED_PREFIX);
    let mut h = ContentHasher::new();
    h.update(&bytes[split..]);
    h.update(&bytes[..split]);
    h.finish()
}

/// The content hash and length of everything `reader` yields, read once front to back (the
/// prefix is held in memory until the end).
pub fn hash_reader(mut reader: impl Read) -> io::Result<(String, u64)> {
    let mut prefix = vec![0u8; ROTATED_PREFIX];
    let mut filled = 0;
    while filled < ROTATED_PREFIX {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    prefix.truncate(filled);
    let mut h = ContentHasher::new();
    let mut len = filled as u64;
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                h.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    h.update(&prefix);
    Ok((h.finish(), len))
}

/// A writer that hashes every byte in the order it reaches the file. Its writer must write
/// the file from [`ROTATED_PREFIX`] to the end in order, then the prefix, for the result to be
/// the file's [`content_hash`] (an EROFS image's writer does).
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: ContentHasher,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: ContentHasher::new(),
        }
    }

    /// The inner writer and the hash of what was written.
    pub fn finish(self) -> (W, String) {
        (self.inner, self.hasher.finish())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Seek> Seek for HashingWriter<W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The streaming hash, the in-memory hash and a writer fed in rotated order agree, for
    /// files shorter than, equal to and longer than the prefix.
    #[test]
    fn the_three_ways_of_hashing_agree() {
        for len in [0usize, 1, 4095, 4096, 4097, 3 * 4096 + 17, 600_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let want = content_hash(&bytes);
            assert!(want.starts_with("blake3:") && want.len() == 7 + 64);
            assert_eq!(hash_reader(&bytes[..]).unwrap(), (want.clone(), len as u64));
            let split = len.min(ROTATED_PREFIX);
            let mut w = HashingWriter::new(io::Cursor::new(Vec::new()));
            w.seek(SeekFrom::Start(split as u64)).unwrap();
            w.write_all(&bytes[split..]).unwrap();
            w.seek(SeekFrom::Start(0)).unwrap();
            w.write_all(&bytes[..split]).unwrap();
            let (cursor, got) = w.finish();
            assert_eq!(got, want, "len {len}");
            assert_eq!(cursor.into_inner(), bytes);
        }
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
