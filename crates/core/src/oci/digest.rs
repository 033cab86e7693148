//! Content digests (`sha256:<hex>`), parsed strictly and computed while streaming.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// Length of a sha256 digest in lowercase hex.
const SHA256_HEX_LEN: usize = 64;

/// A sha256 content digest, as the OCI image spec's `digest` grammar writes it.
///
/// Only sha256 is accepted: it is the only algorithm the OCI spec requires registries and
/// layouts to support, and the cache names files by it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Whether `hex` is the hex part of a sha256 digest as stored: 64 lowercase hex digits.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == SHA256_HEX_LEN
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Longest algorithm name quoted in an error; registered ones are a few characters.
const MAX_ALGORITHM_LEN: usize = 32;

/// Whether `s` matches the OCI digest grammar's `algorithm` (`[a-z0-9]+([+._-][a-z0-9]+)*`),
/// within [`MAX_ALGORITHM_LEN`].
fn is_algorithm(s: &str) -> bool {
    let component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    s.len() <= MAX_ALGORITHM_LEN && s.split(['+', '.', '_', '-']).all(component)
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    ///
    /// The text may come from any file (a document that only looks like a manifest), so the
    /// error never quotes it: only an algorithm that is spelled like one is named.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |reason: &str| Error::invalid_archive(format!("invalid digest: {reason}"));
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| bad("missing algorithm"))?;
        if algorithm != "sha256" {
            if !is_algorithm(algorithm) {
                return Err(bad("malformed algorithm"));
            }
            return Err(Error::Unsupported {
                what: format!("digest algorithm {algorithm:?} (only sha256)"),
            });
        }
        if !is_sha256_hex(hex) {
            return Err(bad("expected 64 lowercase hex digits"));
        }
        Ok(Digest {
            hex: hex.to_owned(),
        })
    }

    /// Builds a digest from a finished hasher.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Digest {
            hex: hex::encode(hasher.finalize()),
        }
    }

    /// The sha256 of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The hex part, which names the blob file.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first `N` bytes of the digest (`N` at most 32), from which the cache derives the
    /// identifiers its images carry (an EROFS volume uuid, a VMDK content id), so that the same
    /// content always gives the same bytes.
    pub fn leading_bytes<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        // Invariant: `hex` is 64 lowercase hex digits (checked when parsed or computed).
        if let Ok(bytes) = hex::decode(self.hex.get(..2 * N).unwrap_or_default()) {
            out[..bytes.len()].copy_from_slice(&bytes);
        }
        out
    }

    /// The algorithm (always `sha256`).
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }

    /// Fails with [`Error::DigestMismatch`] unless `actual` equals `self`.
    pub fn verify(&self, actual: &Digest, what: impl FnOnce() -> String) -> Result<()> {
        if self == actual {
            Ok(())
        } else {
            Err(Error::DigestMismatch {
                what: what(),
                expected: self.to_string(),
                actual: actual.to_string(),
            })
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and byte count of everything read so far.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The inner writer, the digest and the byte count of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&good).map(|d| d.to_string()).ok(), Some(good));
        for (input, code) in [
            ("sha256:abc", "INVALID_ARCHIVE"),
            ("abc", "INVALID_ARCHIVE"),
            (&*format!("sha256:{}", "A".repeat(64)), "INVALID_ARCHIVE"),
            (&*format!("sha512:{}", "a".repeat(128)), "UNSUPPORTED"),
            ("blake3:abc", "UNSUPPORTED"),
            ("AWS_SECRET=x:abc", "INVALID_ARCHIVE"),
        ] {
            assert_eq!(
                Digest::parse(input).map(|_| ()).unwrap_err().code(),
                code,
                "{input}"
            );
        }
    }

    /// An invalid digest was quoted whole in the error, so a document that only looked like a
    /// manifest leaked its values into messages.
    #[test]
    fn invalid_digests_are_not_quoted() {
        for input in [
            "Hunter2",
            "sha256:Hunter2",
            "Hunter2:Hunter2",
            "sha256:Hunter2:x",
        ] {
            let err = Digest::parse(input).unwrap_err().to_string();
            assert!(!err.contains("Hunter2"), "{err}");
        }
    }

    #[test]
    fn leading_bytes_are_the_digest_s_first_bytes() {
        let d = Digest::parse(&format!("sha256:0102abff{}", "0".repeat(56))).unwrap();
        assert_eq!(d.leading_bytes::<4>(), [0x01, 0x02, 0xab, 0xff]);
        assert_eq!(d.leading_bytes::<16>()[..4], [0x01, 0x02, 0xab, 0xff]);
    }

    #[test]
    fn known_value() {
        assert_eq!(
            Digest::of_bytes(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
