//! Partial downloads under `tmp/`: the bytes of a layer blob downloaded so far, kept across
//! processes so that the next pull of the same blob continues where the last one stopped.
//!
//! ```text
//! tmp/
//!   partial-sha256-<hex>    a prefix of blob sha256:<hex>, locked by the pull appending to it
//! ```
//!
//! The files sit directly in `tmp/`, not in a folder of their own: a folder would have to be
//! created and removed again, and its removal (when the last partial goes) could race a pull
//! creating a partial in it. The name carries the digest's algorithm, as the artifact folders'
//! `sha256/` level does.
//!
//! Locking: a partial is locked (`flock`, `LockFileEx`; exclusive) on the file itself by the
//! one download appending to it, for as long as that download's pull may still read it. The
//! lock is taken with `try_lock` in short steps, so a pull waiting for another's download stays
//! cancellable. Whoever deletes a partial (the pull that used it, prune) holds its lock while
//! it unlinks it; a pull that opened the name just before the unlink and locks the unlinked
//! file afterwards sees that the name no longer leads to its file ([`crate::sys::same_file`])
//! and starts again, so two pulls never append to one partial, and prune never deletes one in
//! use.
//!
//! Age: prune reclaims a partial only when its lock is free and its last write (mtime) is at
//! least [`PARTIAL_MAX_AGE`] old. A partial is not fsynced: its bytes are checked against the
//! blob's digest when the next pull has read them all, and a partial whose bytes do not match
//! is deleted.

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, Metadata, OpenOptions};

use super::Folder;
use crate::error::{Error, IoContext, Result};
use crate::oci::{Digest, is_sha256_hex};

/// How old (since its last write) a partial download no pull holds must be before prune
/// reclaims it: a day, so that a pull interrupted by a reboot, a lost network or a Ctrl-C is
/// resumed by the next pull the same day, and an abandoned one does not stay for ever.
/// Shorter makes prune take back downloads a pull would still have resumed; longer keeps
/// abandoned bytes longer.
pub const PARTIAL_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The name prefix of a partial download in `tmp/`; the blob digest's hex follows.
const PARTIAL_PREFIX: &str = "partial-sha256-";

/// How often a pull waiting for a partial's lock tries again (and looks at its cancellation).
const LOCK_POLL: Duration = Duration::from_millis(50);

/// The name in `tmp/` of the partial download of `digest`.
fn partial_name(digest: &Digest) -> String {
    format!("{PARTIAL_PREFIX}{}", digest.hex())
}

/// Whether `name` (an entry of `tmp/`) is named like a partial download.
pub fn is_partial_name(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_prefix(PARTIAL_PREFIX))
        .is_some_and(is_sha256_hex)
}

/// Options opening a partial download for reading and appending, never through a symlink.
fn partial_options(create: bool) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .follow(FollowSymlinks::No);
    o
}

/// The partial downloads of a cache: its `tmp/` folder as a handle that outlives the
/// [`super::Root`] it came from (download threads hold it). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Partials {
    dir: Arc<Dir>,
    path: PathBuf,
}

impl Partials {
    /// The partials of the folder `tmp` (the cache's `tmp/`).
    pub(super) fn new(tmp: &Folder) -> Result<Partials> {
        Ok(Partials {
            dir: Arc::new(tmp.dir().try_clone().at(tmp.path())?),
            path: tmp.path().to_owned(),
        })
    }

    /// Opens the partial download of `digest` (created empty when there is none) and locks it,
    /// waiting while another download holds it; `wait` is called before every attempt and
    /// ends the wait with its error (a cancelled pull). A symlink or a folder at its name is
    /// [`Error::CorruptCacheEntry`]. The partial stays locked until the returned value drops.
    pub fn open(&self, digest: &Digest, wait: impl Fn() -> Result<()>) -> Result<PartialBlob> {
        let name = partial_name(digest);
        let path = self.path.join(&name);
        let folder_entry = |e: io::Error| {
            let found = self.dir.symlink_metadata(&name).ok();
            match found {
                Some(meta) if !meta.is_file() => Error::CorruptCacheEntry {
                    path: path.clone(),
                    found: super::kind_of(&meta),
                    expected: "a regular file",
                },
                _ => Error::io(path.clone(), e),
            }
        };
        loop {
            wait()?;
            let file = self
                .dir
                .open_with(&name, &partial_options(true))
                .map_err(folder_entry)?
                .into_std();
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    drop(file);
                    std::thread::sleep(LOCK_POLL);
                    continue;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
            }
            // Unlinked (by the pull that finished with it, or prune) between the open and the
            // lock: the lock guards a file no name leads to. Open the name again.
            match self.dir.symlink_metadata(&name) {
                Ok(meta) if crate::sys::same_file(&file, &meta).at(&path)? => {}
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(path, e)),
            }
            return Ok(PartialBlob {
                dir: self.dir.clone(),
                name,
                path,
                file,
            });
        }
    }

    /// Deletes the partial download of `digest` when there is one and no download holds it
    /// (a leftover of a pull killed after it published the layer). Returns whether it did.
    pub fn discard_idle(&self, digest: &Digest) -> Result<bool> {
        let name = partial_name(digest);
        Ok(self.take_idle(OsStr::new(&name), None, true)?.is_some())
    }

    /// The partial `name`, measured, when no download holds it and (with `max_age`) its last
    /// write is at least that old; with `delete` it is unlinked, under its lock. `None` when
    /// it is held, too young, gone, or not a regular file.
    fn take_idle(
        &self,
        name: &OsStr,
        max_age: Option<Duration>,
        delete: bool,
    ) -> Result<Option<Metadata>> {
        let path = self.path.join(name);
        let file = match self.dir.open_with(name, &partial_options(false)) {
            Ok(file) => file.into_std(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            // A symlink (refused by the no-follow open) or a folder: not a partial.
            Err(_) => return Ok(None),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
        }
        let meta = match self.dir.symlink_metadata(name) {
            Ok(meta) if meta.is_file() && crate::sys::same_file(&file, &meta).at(&path)? => meta,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        if let Some(max_age) = max_age {
            let written = meta.modified().at(&path)?.into_std();
            // A last write in the future (a clock set back) is young.
            let age = SystemTime::now()
                .duration_since(written)
                .unwrap_or(Duration::ZERO);
            if age < max_age {
                return Ok(None);
            }
        }
        if delete {
            match self.dir.remove_file(name) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Ok(Some(meta))
    }
}

/// What prune does with the entry `name` of `tmp` (a regular file named like a partial
/// download, see [`is_partial_name`]): reclaims it (`Some`, measured just before it is
/// unlinked; in a dry run only measured) when no download holds its lock and its last write
/// is at least [`PARTIAL_MAX_AGE`] old; else leaves it (`None`).
pub fn reclaim_partial(tmp: &Folder, name: &OsStr, delete: bool) -> Result<Option<Metadata>> {
    Partials::new(tmp)?.take_idle(name, Some(PARTIAL_MAX_AGE), delete)
}

/// One partial download, open and locked (released when dropped).
#[derive(Debug)]
pub struct PartialBlob {
    dir: Arc<Dir>,
    name: String,
    path: PathBuf,
    file: std::fs::File,
}

impl PartialBlob {
    /// Its path under the cache root, for errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes it holds.
    pub fn bytes_held(&self) -> Result<u64> {
        Ok(self.file.metadata().at(&self.path)?.len())
    }

    /// Reads up to `buf.len()` bytes at `offset` (0 at its end).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        crate::sys::read_at(&self.file, buf, offset)
    }

    /// Writes `bytes` at `offset` (the download appends: `offset` is its length).
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        crate::sys::write_all_at(&self.file, bytes, offset).at(&self.path)
    }

    /// Empties it (its bytes cannot be a prefix of the blob).
    pub fn clear(&self) -> Result<()> {
        self.file.set_len(0).at(&self.path)
    }

    /// Unlinks it by name beneath the `tmp/` handle; the name leads to this file, since it is
    /// locked (see the module docs). Already gone is fine.
    pub fn remove(&self) -> Result<()> {
        match self.dir.remove_file(&self.name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(self.path.clone(), e)),
        }
    }
}

impl Drop for PartialBlob {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it prompt.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Layout, Root};

    fn partials() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(&Layout::new(dir.path())).unwrap();
        (dir, root)
    }

    #[test]
    fn partial_names_are_recognized() {
        let digest = Digest::of_bytes(b"x");
        assert!(is_partial_name(OsStr::new(&partial_name(&digest))));
        for name in [
            "partial-sha256-",
            "partial-sha256-00",
            "partial-x",
            "load-1",
        ] {
            assert!(!is_partial_name(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn a_partial_is_held_by_one_download_and_reopened_with_its_bytes() {
        let (_dir, root) = partials();
        let partials = root.partials().unwrap();
        let digest = Digest::of_bytes(b"blob");
        let held = partials.open(&digest, || Ok(())).unwrap();
        held.write_at(b"abc", 0).unwrap();
        // A second open waits; its wait function ends the wait.
        let tries = std::cell::Cell::new(0);
        let err = partials
            .open(&digest, || {
                tries.set(tries.get() + 1);
                if tries.get() > 2 {
                    Err(Error::Aborted {
                        what: "the test".into(),
                    })
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert_eq!(err.code(), "ABORTED");
        assert!(!partials.discard_idle(&digest).unwrap(), "held");
        drop(held);
        let again = partials.open(&digest, || Ok(())).unwrap();
        assert_eq!(again.bytes_held().unwrap(), 3);
        let mut buf = [0u8; 8];
        assert_eq!(again.read_at(&mut buf, 1).unwrap(), 2);
        assert_eq!(&buf[..2], b"bc");
        drop(again);
        assert!(partials.discard_idle(&digest).unwrap());
        assert_eq!(
            std::fs::read_dir(root.layout().tmp_dir()).unwrap().count(),
            0
        );
    }

    /// A download that locked a partial another process had just unlinked would append to a
    /// file no name leads to: the open sees it and opens the name again.
    #[test]
    fn a_partial_unlinked_while_another_download_waits_is_opened_again() {
        let (_dir, root) = partials();
        let partials = root.partials().unwrap();
        let digest = Digest::of_bytes(b"blob");
        let first = partials.open(&digest, || Ok(())).unwrap();
        first.write_at(b"old", 0).unwrap();
        let waiting = {
            let (partials, digest) = (partials.clone(), digest.clone());
            std::thread::spawn(move || partials.open(&digest, || Ok(())).unwrap())
        };
        std::thread::sleep(LOCK_POLL * 3);
        first.remove().unwrap();
        drop(first);
        let second = waiting.join().unwrap();
        assert_eq!(second.bytes_held().unwrap(), 0, "a new, empty partial");
        second.write_at(b"new", 0).unwrap();
        let on_disk = std::fs::read(root.layout().tmp_dir().join(partial_name(&digest)));
        assert_eq!(
            on_disk.unwrap(),
            b"new",
            "the name leads to the locked file"
        );

        // The check itself: an open file and a new file at its old name differ.
        let tmp = root.layout().tmp_dir();
        let kept = std::fs::File::create(tmp.join("f")).unwrap();
        std::fs::remove_file(tmp.join("f")).unwrap();
        std::fs::write(tmp.join("f"), b"").unwrap();
        let meta = root.tmp().dir().symlink_metadata("f").unwrap();
        assert!(!crate::sys::same_file(&kept, &meta).unwrap());
    }

    #[test]
    fn prune_takes_only_idle_partials_older_than_the_age() {
        let (_dir, root) = partials();
        let partials = root.partials().unwrap();
        let digest = Digest::of_bytes(b"blob");
        let name = partial_name(&digest);
        let held = partials.open(&digest, || Ok(())).unwrap();
        held.write_at(&[7u8; 100], 0).unwrap();
        let old = SystemTime::now() - PARTIAL_MAX_AGE - Duration::from_secs(60);
        held.file.set_modified(old).unwrap();
        assert!(
            reclaim_partial(root.tmp(), OsStr::new(&name), true)
                .unwrap()
                .is_none(),
            "held"
        );
        drop(held);
        let dry = reclaim_partial(root.tmp(), OsStr::new(&name), false).unwrap();
        assert_eq!(dry.map(|m| m.len()), Some(100));
        let real = reclaim_partial(root.tmp(), OsStr::new(&name), true).unwrap();
        assert_eq!(real.map(|m| m.len()), Some(100));
        assert_eq!(
            std::fs::read_dir(root.layout().tmp_dir()).unwrap().count(),
            0
        );

        let young = partials.open(&digest, || Ok(())).unwrap();
        young.write_at(b"x", 0).unwrap();
        drop(young);
        assert!(
            reclaim_partial(root.tmp(), OsStr::new(&name), true)
                .unwrap()
                .is_none(),
            "young"
        );
    }
}
