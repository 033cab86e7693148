//! The cache root on disk: path builders, atomic publication and cross-process locks.
//!
//! This module is the only code that knows directory names:
//!
//! ```text
//! <root>/
//!   index.db                     SQLite index (WAL mode; index.db-wal, index.db-shm beside it)
//!   blobs/sha256/<hex>           content-addressed manifests and configs
//!   layers/sha256/<hex>.erofs    one EROFS image per distinct layer, named by its diff_id
//!   fsmeta/sha256/<hex>.erofs    merged metadata EROFS per manifest, named by manifest digest
//!   vmdk/sha256/<hex>.vmdk       VMDK descriptor per manifest (fsmeta + layers as one disk)
//!   tmp/                         work in progress (one folder per load), reclaimed by prune
//!   locks/gc.lock                shared by loads, exclusive for remove and prune
//!   locks/layers/<hh>.lock       serializes conversion of layers whose diff_id starts with hh
//! ```
//!
//! Invariants: a file under `blobs/`, `layers/`, `fsmeta/` or `vmdk/` is only ever created by
//! renaming a complete, fsynced file from `tmp/` (so it is whole or absent); a blob's name is
//! the sha256 of its bytes, a layer image's the sha256 of the uncompressed tar it was made from.

mod lock;

pub use lock::{CacheLock, LockMode};

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::oci::Digest;

/// Name of the SQLite index file.
const INDEX_FILE: &str = "index.db";
/// Folder of content-addressed blobs, one sub-folder per digest algorithm.
const BLOBS_DIR: &str = "blobs";
/// Folder of layer EROFS images.
const LAYERS_DIR: &str = "layers";
/// Folder of per-manifest merged metadata EROFS images.
const FSMETA_DIR: &str = "fsmeta";
/// Folder of per-manifest VMDK descriptors.
const VMDK_DIR: &str = "vmdk";
/// The digest algorithm folder under each artifact folder.
const ALGORITHM_DIR: &str = "sha256";
/// Suffix of EROFS images.
pub const EROFS_SUFFIX: &str = ".erofs";
/// Suffix of VMDK descriptors.
pub const VMDK_SUFFIX: &str = ".vmdk";
/// Layer conversion locks are striped over this many files (by the diff_id's first byte), so
/// lock files do not grow with the number of layers; two layers sharing a stripe only wait.
const LAYER_LOCK_STRIPES: usize = 256;
/// Folder of work in progress.
const TMP_DIR: &str = "tmp";
/// Folder of lock files.
const LOCKS_DIR: &str = "locks";
/// The lock that loads hold shared and remove/prune hold exclusive.
const GC_LOCK: &str = "gc.lock";

/// Paths inside one cache root.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// A layout rooted at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite index.
    pub fn index_db(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    /// The folder holding sha256 blobs.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join(BLOBS_DIR).join("sha256")
    }

    /// The file of one blob.
    pub fn blob(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// The folder of layer EROFS images.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join(LAYERS_DIR).join(ALGORITHM_DIR)
    }

    /// The EROFS image of the layer with this `diff_id`.
    pub fn layer(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir()
            .join(format!("{}{EROFS_SUFFIX}", diff_id.hex()))
    }

    /// The folder of fsmeta images.
    pub fn fsmeta_dir(&self) -> PathBuf {
        self.root.join(FSMETA_DIR).join(ALGORITHM_DIR)
    }

    /// The fsmeta image of a manifest.
    pub fn fsmeta(&self, manifest: &Digest) -> PathBuf {
        self.fsmeta_dir()
            .join(format!("{}{EROFS_SUFFIX}", manifest.hex()))
    }

    /// The folder of VMDK descriptors.
    pub fn vmdk_dir(&self) -> PathBuf {
        self.root.join(VMDK_DIR).join(ALGORITHM_DIR)
    }

    /// The VMDK descriptor of a manifest.
    pub fn vmdk(&self, manifest: &Digest) -> PathBuf {
        self.vmdk_dir()
            .join(format!("{}{VMDK_SUFFIX}", manifest.hex()))
    }

    /// How a VMDK descriptor names `artifact` (a path under this root): relative to the
    /// descriptor's folder (`vmdk/sha256/`), which is how qemu resolves extent paths, so the cache
    /// root can move.
    pub fn relative_to_vmdk(&self, artifact: &Path) -> String {
        let rel = artifact.strip_prefix(&self.root).unwrap_or(artifact);
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        format!("../../{}", parts.join("/"))
    }

    /// The lock guarding conversion of the layer with this `diff_id` (one of
    /// [`LAYER_LOCK_STRIPES`] files).
    pub fn layer_lock(&self, diff_id: &Digest) -> PathBuf {
        let stripe = diff_id.hex().get(..2).unwrap_or("00").to_owned();
        const { assert!(LAYER_LOCK_STRIPES == 256, "two hex digits name the stripe") };
        self.root
            .join(LOCKS_DIR)
            .join(LAYERS_DIR)
            .join(format!("{stripe}.lock"))
    }

    /// The folder of work in progress.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    /// The lock file that serializes garbage collection against loads.
    pub fn gc_lock(&self) -> PathBuf {
        self.root.join(LOCKS_DIR).join(GC_LOCK)
    }

    /// Creates the folders of the layout (idempotent).
    pub fn ensure(&self) -> Result<()> {
        for dir in [
            self.blobs_dir(),
            self.layers_dir(),
            self.fsmeta_dir(),
            self.vmdk_dir(),
            self.tmp_dir(),
            self.root.join(LOCKS_DIR).join(LAYERS_DIR),
        ] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        Ok(())
    }

    /// A fresh folder under `tmp/` for one operation; removed when dropped. The name starts with
    /// `prefix` so a person can tell what left it behind.
    pub fn staging_dir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .at(&tmp)
    }
}

/// Moves a complete file from `tmp/` to `dest` atomically: fsync the file, rename, fsync the
/// destination folder. When `dest` already exists its content is kept (content-addressed files
/// with the same name have the same bytes) and `staged` is left for its folder's cleanup.
///
/// Returns whether `dest` was created by this call. Safe to call concurrently for the same
/// `dest` from several processes: the rename is atomic, so readers see one whole file.
pub fn publish_file(staged: &Path, dest: &Path) -> Result<bool> {
    if dest.exists() {
        return Ok(false);
    }
    File::open(staged).and_then(|f| f.sync_all()).at(staged)?;
    fs::rename(staged, dest).at(dest)?;
    if let Some(dir) = dest.parent() {
        sync_dir(dir)?;
    }
    Ok(true)
}

/// Writes `bytes` to a new temporary file in `dir` and returns its path (not yet published).
pub fn write_staged(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, bytes).at(&path)?;
    Ok(path)
}

/// fsyncs a folder so that renames and unlinks in it are durable.
/// (Nothing on Windows: see [`crate::sys::sync_dir`].)
pub fn sync_dir(dir: &Path) -> Result<()> {
    crate::sys::sync_dir(dir).at(dir)
}

/// The platform cache folder for ocicache: `$OCICACHE_HOME`, else `$XDG_CACHE_HOME/ocicache` or
/// `~/.cache/ocicache` on Linux, `~/Library/Caches/ocicache` on macOS and
/// `%LOCALAPPDATA%\ocicache` on Windows.
pub fn default_root() -> Option<PathBuf> {
    match std::env::var_os("OCICACHE_HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home)),
        _ => dirs::cache_dir().map(|d| d.join("ocicache")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_is_atomic_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.ensure().unwrap();
        let staging = layout.staging_dir("t-").unwrap();
        let a = write_staged(staging.path(), "a", b"hello").unwrap();
        let dest = layout.blob(&Digest::of_bytes(b"hello"));
        assert!(publish_file(&a, &dest).unwrap());
        let b = write_staged(staging.path(), "b", b"hello").unwrap();
        assert!(!publish_file(&b, &dest).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        drop(staging);
        assert_eq!(fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);
    }
}
