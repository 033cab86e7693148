//! The cache root on disk: path builders, the root opened as directory handles, atomic
//! publication and cross-process locks.
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
//!   tmp/                         work in progress (load-* and rebuild-* folders), reclaimed by prune
//!   tmp/partial-sha256-<hex>     a partial blob download, resumed by the next pull (see partial.rs)
//!   locks/gc.lock                shared by loads, exclusive for remove and prune
//!   locks/layers/<hh>.lock       artifact locks (Root::lock_artifacts): a digest starting with hh
//! ```
//!
//! Invariants: a file under `blobs/`, `layers/`, `fsmeta/` or `vmdk/` is only ever created by
//! renaming a complete, fsynced file from `tmp/` (so it is whole or absent); a blob's name is
//! the sha256 of its bytes, a layer image's the sha256 of the uncompressed tar it was made from.
//!
//! Trust boundary: the root path the user gives may be a symlink (their choice), but nothing
//! beneath it is followed. [`Root::open`] opens the root and every folder above as directory
//! handles, refusing a folder that is a symlink (or not a folder) with
//! [`crate::Error::CorruptCacheEntry`]; files are then created, renamed, locked, measured and
//! deleted by name relative to those handles, with `O_NOFOLLOW` semantics, so a symlink planted
//! inside the root (or swapped in while an operation runs) can neither redirect a write nor a
//! delete out of the root. [`Layout`] only builds the paths the cache shows (in errors, in
//! [`crate::BootDisk`], in VMDK descriptors) and those that path-based readers use.

mod lock;
mod partial;
mod root;

pub use lock::{CacheLock, LockMode, LockWait, LockWaitEvent};
pub use partial::{PARTIAL_MAX_AGE, PartialBlob, Partials, is_partial_name, reclaim_partial};
pub(crate) use root::kind_of;
pub use root::{Entry, Folder, Root, StagingDir, StagingPurpose};

use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::oci::Digest;

/// Name of the SQLite index file.
const INDEX_FILE: &str = "index.db";
/// The index and the files SQLite keeps beside it in WAL mode.
const INDEX_FILES: [&str; 3] = [INDEX_FILE, "index.db-wal", "index.db-shm"];
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
/// Artifact locks are striped over this many files (by the digest's first byte), so lock
/// files do not grow with the number of artifacts; two digests sharing a stripe only wait.
const LAYER_LOCK_STRIPES: usize = 256;
/// Folder of work in progress.
const TMP_DIR: &str = "tmp";
/// Folder of lock files.
const LOCKS_DIR: &str = "locks";
/// The lock that loads hold shared and remove/prune hold exclusive.
const GC_LOCK: &str = "gc.lock";

/// The file name of a blob in `blobs/sha256/`.
fn blob_name(digest: &Digest) -> String {
    digest.hex().to_owned()
}

/// The file name of an EROFS image (a layer's, by diff_id, or an fsmeta's, by manifest).
fn erofs_name(digest: &Digest) -> String {
    format!("{}{EROFS_SUFFIX}", digest.hex())
}

/// The file name of a manifest's VMDK descriptor.
fn vmdk_name(manifest: &Digest) -> String {
    format!("{}{VMDK_SUFFIX}", manifest.hex())
}

/// The lock file (one of [`LAYER_LOCK_STRIPES`]) guarding the artifacts `digest` names (a
/// layer image by `diff_id`; a blob, fsmeta and VMDK by manifest digest; a blob by config).
fn layer_lock_name(digest: &Digest) -> String {
    const { assert!(LAYER_LOCK_STRIPES == 256, "two hex digits name the stripe") };
    let stripe = digest.hex().get(..2).unwrap_or("00");
    format!("{stripe}.lock")
}

/// Paths inside one cache root, as the cache shows them (the root as the user gave it). File
/// operations go through [`Root`], which opens these folders without following symlinks.
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
        self.root.join(BLOBS_DIR).join(ALGORITHM_DIR)
    }

    /// The file of one blob.
    pub fn blob(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(blob_name(digest))
    }

    /// The folder of layer EROFS images.
    pub fn layers_dir(&self) -> PathBuf {
        self.root.join(LAYERS_DIR).join(ALGORITHM_DIR)
    }

    /// The EROFS image of the layer with this `diff_id`.
    pub fn layer(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(erofs_name(diff_id))
    }

    /// The folder of fsmeta images.
    pub fn fsmeta_dir(&self) -> PathBuf {
        self.root.join(FSMETA_DIR).join(ALGORITHM_DIR)
    }

    /// The fsmeta image of a manifest.
    pub fn fsmeta(&self, manifest: &Digest) -> PathBuf {
        self.fsmeta_dir().join(erofs_name(manifest))
    }

    /// The folder of VMDK descriptors.
    pub fn vmdk_dir(&self) -> PathBuf {
        self.root.join(VMDK_DIR).join(ALGORITHM_DIR)
    }

    /// The VMDK descriptor of a manifest.
    pub fn vmdk(&self, manifest: &Digest) -> PathBuf {
        self.vmdk_dir().join(vmdk_name(manifest))
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

    /// The folder of work in progress.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    /// Creates the folders of the layout (idempotent), refusing symlinks among them (see
    /// [`Root::open`]).
    pub fn ensure(&self) -> Result<()> {
        Root::open(self).map(drop)
    }
}

/// Moves the complete file `staged` (a file directly inside `staging`) to `dest` atomically:
/// fsync the file (unless `synced`: its writer fsynced it already), rename it beneath the
/// folders' handles, fsync the destination folder. When
/// `dest` already exists as a regular file its content is kept (content-addressed files with
/// the same name have the same bytes) and `staged` is left for its folder's cleanup; when
/// `dest` is anything else (a symlink, a folder) the cache is corrupt
/// ([`crate::Error::CorruptCacheEntry`]) and nothing is moved.
///
/// Returns whether `dest` was created by this call. Safe to call concurrently for the same
/// `dest` from several processes: the rename is atomic, so readers see one whole file, and it
/// replaces a symlink swapped in meanwhile rather than following it.
pub fn publish_file(
    staging: &StagingDir,
    staged: &Path,
    dest: &Entry<'_>,
    synced: bool,
) -> Result<bool> {
    if dest.file_size()?.is_some() {
        return Ok(false);
    }
    let name = staging.name_of(staged)?;
    if !synced {
        staging
            .folder()
            .open_file(name)
            .and_then(|f| f.sync_all())
            .at(staged)?;
    }
    staging
        .folder()
        .dir()
        .rename(name, dest.folder().dir(), dest.name())
        .map_err(|e| crate::Error::io(dest.path(), e))?;
    dest.folder().sync()?;
    Ok(true)
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
    use std::fs;

    #[test]
    fn publish_is_atomic_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let root = Root::open(&layout).unwrap();
        let staging = root.staging_dir(StagingPurpose::Load).unwrap();
        let a = staging.write("a", b"hello").unwrap();
        let digest = Digest::of_bytes(b"hello");
        let dest = layout.blob(&digest);
        assert!(publish_file(&staging, &a, &root.blob(&digest), false).unwrap());
        let b = staging.write("b", b"hello").unwrap();
        assert!(!publish_file(&staging, &b, &root.blob(&digest), false).unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        drop(staging);
        assert_eq!(fs::read_dir(layout.tmp_dir()).unwrap().count(), 0);
    }
}
