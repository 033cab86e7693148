//! Cross-process advisory locks on files in `locks/` (`flock` on Unix, `LockFileEx` on Windows,
//! through `std::fs::File::lock`). Locks are released when the guard drops or the process dies,
//! so a killed process never leaves the cache locked. Lock files are opened beneath the `locks/`
//! handle and never through a symlink.

use std::fs::File;

use super::Entry;
use crate::error::{IoContext, Result};

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once (loads).
    Shared,
    /// One holder, no shared holders (remove, prune).
    Exclusive,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    file: File,
}

impl CacheLock {
    /// Blocks until the lock file `entry` (created when missing) is held in `mode`. Each call
    /// opens its own file description, so two guards in one process exclude each other like two
    /// processes do. A symlink or a folder at `entry` is
    /// [`crate::Error::CorruptCacheEntry`].
    pub fn acquire(entry: &Entry<'_>, mode: LockMode) -> Result<Self> {
        let file = entry.open_lock_file()?;
        match mode {
            LockMode::Shared => file.lock_shared(),
            LockMode::Exclusive => file.lock(),
        }
        .at(&entry.path())?;
        Ok(CacheLock { file })
    }
}

impl Drop for CacheLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it prompt.
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_shared_within_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let folder = super::super::Folder::open_ambient(dir.path()).unwrap();
        let shared = CacheLock::acquire(&folder.entry("l"), LockMode::Shared).unwrap();
        let _shared2 = CacheLock::acquire(&folder.entry("l"), LockMode::Shared).unwrap();
        let probe = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(
            probe.try_lock().is_err(),
            "exclusive must wait for shared holders"
        );
        drop(shared);
        drop(_shared2);
        assert!(probe.try_lock().is_ok());
    }
}
