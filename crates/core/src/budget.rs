//! A bound on the bytes one load writes to disk ([`WriteBudget`]), and its default
//! ([`default_load_limit`]).
//!
//! A load writes these files into its staging folder under `tmp/`: the layer images it
//! converts (file data, holes excluded, and metadata), the manifest and config blobs, and the
//! members it must spool from a stream (decompressed when the archive itself is compressed;
//! see [`crate::archive`]). All are charged to one budget, shared by every layer converting at
//! once, *before* each write, so the bound holds on disk at every moment rather than being
//! checked after the fact. The fsmeta image and VMDK descriptor built
//! after the layers are metadata only (a small fraction of the layer images) and are not
//! charged: failing there would leave the layers already published.
//!
//! Once a charge fails, the budget stays spent: every later charge fails too, so layers
//! converting in parallel stop at their next write.
//!
//! How a spent budget is reported depends on where its limit came from: a limit the caller set
//! is [`Error::LimitExceeded`]; the default limit, which stands for the free space of the
//! cache's file system ([`WriteBudget::free_space`]), is [`Error::NoSpace`] (with `ENOSPC`): the
//! load needs more room than the disk has, and says so before it fills the disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};

/// At most this much free space is kept back by the default limit.
pub const MAX_RESERVE: u64 = 1 << 30;
/// The default limit keeps back `1 / RESERVE_DIVISOR` of the file system (at most
/// [`MAX_RESERVE`]), so that a load never fills the disk the host runs on.
pub const RESERVE_DIVISOR: u64 = 100;

/// What a load's budget bounds, as [`Error::LimitExceeded`] names it.
const WHAT: &str = "bytes written by the load";

/// Bytes one operation may still write; cheap to clone (clones share the count).
#[derive(Debug, Clone)]
pub struct WriteBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: AtomicU64,
    /// `Some(root)` when the limit is the free space on `root`'s file system.
    free_space_of: Option<PathBuf>,
}

impl WriteBudget {
    /// A budget of `limit` bytes, set by the caller: going over is [`Error::LimitExceeded`].
    pub fn new(limit: u64) -> Self {
        WriteBudget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicU64::new(0),
                free_space_of: None,
            }),
        }
    }

    /// The default budget of a load into the cache at `root` ([`default_load_limit`]): going
    /// over is [`Error::NoSpace`] naming `root`, since the limit is the disk's free space.
    pub fn free_space(root: &Path) -> Result<Self> {
        Ok(WriteBudget {
            inner: Arc::new(Inner {
                limit: default_load_limit(root)?,
                used: AtomicU64::new(0),
                free_space_of: Some(root.to_owned()),
            }),
        })
    }

    /// A budget no write exhausts (conversions outside a load, rebuilds).
    pub fn unlimited() -> Self {
        WriteBudget::new(u64::MAX)
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes charged so far (past the limit once a charge failed).
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Charges `bytes` that the caller is about to write. Fails with
    /// [`Error::LimitExceeded`] (or, for [`WriteBudget::free_space`], [`Error::NoSpace`]) when
    /// the total would pass the limit; the caller must then not write them. Safe to call from
    /// several threads at once.
    pub fn charge(&self, bytes: u64) -> Result<()> {
        let before = self
            .inner
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_add(bytes))
            })
            .unwrap_or_else(|used| used);
        if before.saturating_add(bytes) > self.inner.limit {
            if let Some(root) = &self.inner.free_space_of {
                return Err(Error::NoSpace {
                    path: root.clone(),
                    source: crate::sys::no_space(),
                });
            }
            return Err(Error::LimitExceeded {
                limit: self.inner.limit,
                what: WHAT.into(),
            });
        }
        Ok(())
    }
}

/// The limit of a load into a cache whose root is `root` when the caller sets none: the space
/// available to this process on `root`'s file system at the start of the load, minus a reserve
/// of 1% of the file system (at most 1 GiB). A load that fits the disk is never stopped by it,
/// short of that reserve; one that would fill the disk fails with [`Error::NoSpace`] before it
/// does (see [`WriteBudget::free_space`]).
pub fn default_load_limit(root: &Path) -> Result<u64> {
    let stats = fs4::statvfs(root).at(root)?;
    let reserve = (stats.total_space() / RESERVE_DIVISOR).min(MAX_RESERVE);
    Ok(stats.available_space().saturating_sub(reserve))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_then_stays_spent() {
        let budget = WriteBudget::new(10);
        let shared = budget.clone();
        budget.charge(4).unwrap();
        shared.charge(6).unwrap();
        assert_eq!(budget.used(), 10);
        let err = budget.charge(1).unwrap_err();
        assert_eq!(err.code(), "LIMIT_EXCEEDED");
        assert!(matches!(err, Error::LimitExceeded { limit: 10, .. }));
        assert!(shared.charge(0).is_err(), "spent for every clone");
        WriteBudget::unlimited().charge(u64::MAX).unwrap();
    }

    /// The default limit stands for the disk's free space: passing it is NO_SPACE (ENOSPC on
    /// the cache root), not LIMIT_EXCEEDED, which names a limit the caller set.
    #[test]
    fn the_default_budget_runs_out_as_no_space() {
        let dir = tempfile::tempdir().unwrap();
        let budget = WriteBudget::free_space(dir.path()).unwrap();
        let err = budget.charge(budget.limit() + 1).unwrap_err();
        assert_eq!(err.code(), "NO_SPACE");
        let details: std::collections::BTreeMap<_, _> = err.details().into_iter().collect();
        assert_eq!(details["path"], dir.path().to_string_lossy().as_ref());
        assert_eq!(
            details["errno"],
            crate::sys::no_space().raw_os_error().unwrap()
        );
    }

    #[test]
    fn default_limit_is_below_the_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let limit = default_load_limit(dir.path()).unwrap();
        let stats = fs4::statvfs(dir.path()).unwrap();
        assert!(limit <= stats.available_space());
        assert!(stats.available_space() - limit <= MAX_RESERVE);
    }
}
