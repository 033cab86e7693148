//! Cross-process advisory locks on files in `locks/` (`flock` on Unix, `LockFileEx` on Windows,
//! through `std::fs::File::lock`). Locks are released when the guard drops or the process dies,
//! so a killed process never leaves the cache locked. Lock files are opened beneath the `locks/`
//! handle and never through a symlink.
//!
//! A lock is tried first; when another holder has it, the caller's [`LockWait`] sink (if any) is
//! told which lock is about to be waited for, and only then does the call block. A command-line
//! tool prints a line there instead of hanging silently.

use std::fs::{File, TryLockError};
use std::path::PathBuf;
use std::sync::Arc;

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

impl LockMode {
    /// `shared` or `exclusive`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        }
    }
}

/// A lock about to be waited for: another holder (another process, or another operation of
/// this one) has it in a mode that excludes `mode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockWaitEvent {
    /// The lock file (`locks/gc.lock`, `locks/layers/<hh>.lock`).
    pub path: PathBuf,
    /// The mode asked for.
    pub mode: LockMode,
}

/// Where [`LockWaitEvent`]s go: a function called on the thread that is about to block, which
/// must return at once. Clones share the function.
#[derive(Clone)]
pub struct LockWait(Arc<dyn Fn(&LockWaitEvent) + Send + Sync>);

impl LockWait {
    /// A sink calling `f` with every event.
    pub fn new(f: impl Fn(&LockWaitEvent) + Send + Sync + 'static) -> Self {
        LockWait(Arc::new(f))
    }

    /// Hands `event` to the sink.
    pub fn emit(&self, event: &LockWaitEvent) {
        (self.0)(event);
    }
}

impl std::fmt::Debug for LockWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockWait")
    }
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct CacheLock {
    file: File,
}

impl CacheLock {
    /// Blocks until the lock file `entry` (created when missing) is held in `mode`. The lock is
    /// tried first; when it is held elsewhere, `wait` (when given) is told before the call
    /// blocks, once per call. Each call opens its own file description, so two guards in one
    /// process exclude each other like two processes do. A symlink or a folder at `entry` is
    /// [`crate::Error::CorruptCacheEntry`].
    pub fn acquire(entry: &Entry<'_>, mode: LockMode, wait: Option<&LockWait>) -> Result<Self> {
        let file = entry.open_lock_file()?;
        let tried = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match tried {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                if let Some(wait) = wait {
                    wait.emit(&LockWaitEvent {
                        path: entry.path(),
                        mode,
                    });
                }
                match mode {
                    LockMode::Shared => file.lock_shared(),
                    LockMode::Exclusive => file.lock(),
                }
                .at(&entry.path())?;
            }
            Err(TryLockError::Error(e)) => return Err(e).at(&entry.path()),
        }
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
    use std::sync::Mutex;

    #[test]
    fn exclusive_excludes_shared_within_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let folder = super::super::Folder::open_ambient(dir.path()).unwrap();
        let shared = CacheLock::acquire(&folder.entry("l"), LockMode::Shared, None).unwrap();
        let _shared2 = CacheLock::acquire(&folder.entry("l"), LockMode::Shared, None).unwrap();
        let probe = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(
            probe.try_lock().is_err(),
            "exclusive must wait for shared holders"
        );
        drop(shared);
        drop(_shared2);
        assert!(probe.try_lock().is_ok());
    }

    /// A lock free or shareable is taken without a word; a lock held exclusively elsewhere is
    /// reported once, before the call blocks, and the call returns when the holder lets go.
    #[test]
    fn a_lock_held_elsewhere_is_reported_before_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let folder = super::super::Folder::open_ambient(dir.path()).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let wait = LockWait::new(move |e| seen.lock().unwrap().push(e.clone()));
        let shared = CacheLock::acquire(&folder.entry("l"), LockMode::Shared, Some(&wait)).unwrap();
        let again = CacheLock::acquire(&folder.entry("l"), LockMode::Shared, Some(&wait)).unwrap();
        assert!(
            events.lock().unwrap().is_empty(),
            "shared with shared waits for nothing"
        );
        drop((shared, again));

        let held = CacheLock::acquire(&folder.entry("l"), LockMode::Exclusive, None).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let wait = wait.clone();
            let folder = super::super::Folder::open_ambient(dir.path()).unwrap();
            std::thread::spawn(move || {
                let lock = CacheLock::acquire(&folder.entry("l"), LockMode::Shared, Some(&wait));
                tx.send(()).unwrap();
                lock.map(drop)
            })
        };
        // The waiter reports, then blocks while the lock is held.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while events.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(
            *events.lock().unwrap(),
            vec![LockWaitEvent {
                path: dir.path().join("l"),
                mode: LockMode::Shared
            }]
        );
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the waiter must block while the lock is held"
        );
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap().unwrap();
        assert_eq!(events.lock().unwrap().len(), 1);
    }
}
