//! The cache root opened as directory handles ([`Root`]), its folders ([`Folder`]), the files
//! in them ([`Entry`]) and staging folders under `tmp/` ([`StagingDir`]).
//!
//! Every handle is opened by one name relative to its parent's handle, never following a
//! symlink, starting from the root path the user gave (which may itself be a symlink). Once a
//! folder is open, renaming or replacing it on disk does not redirect what is done through its
//! handle: a writer of the root who swaps `tmp/` for a symlink while a load runs only makes the
//! load fail, never write elsewhere.
//!
//! Code that works by path (the archive reader, the EROFS converter) is given a staging folder's
//! [`StagingDir::path`]: on Linux `/proc/self/fd/<n>`, the open handle itself, which no rename
//! can redirect; elsewhere (or where `/proc` is not mounted) the folder's path under `tmp/`,
//! checked when it was created, with the race window that leaves (see `docs/cache-layout.md`).

use std::ffi::OsStr;
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, File, Metadata, OpenOptions};

use super::{
    ALGORITHM_DIR, BLOBS_DIR, CacheLock, FSMETA_DIR, GC_LOCK, INDEX_FILES, LAYERS_DIR, LOCKS_DIR,
    Layout, LockMode, LockWait, TMP_DIR, VMDK_DIR, blob_name, erofs_name, layer_lock_name,
    vmdk_name,
};
use crate::error::{Error, IoContext, Result};
use crate::oci::Digest;

/// What a cache folder is expected to be, for [`Error::CorruptCacheEntry`].
const A_DIRECTORY: &str = "a directory";
/// What a cache file is expected to be.
const A_REGULAR_FILE: &str = "a regular file";

/// How an entry of `meta` is described in errors and warnings (`a symlink`, `a directory`, ...).
pub(crate) fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symlink"
    } else if t.is_dir() {
        A_DIRECTORY
    } else if t.is_file() {
        A_REGULAR_FILE
    } else {
        "a special file"
    }
}

/// Options opening an existing file for reading, never through a symlink.
fn read_nofollow() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).follow(FollowSymlinks::No);
    o
}

/// One folder of the cache, open as a directory handle, with the path the cache shows for it.
#[derive(Debug)]
pub struct Folder {
    dir: Dir,
    path: PathBuf,
}

impl Folder {
    /// Opens `path`, following symlinks in it: only for the root the user gave, and for tests.
    pub(crate) fn open_ambient(path: &Path) -> Result<Folder> {
        let dir = Dir::open_ambient_dir(path, cap_std::ambient_authority()).at(path)?;
        Ok(Folder {
            dir,
            path: path.to_owned(),
        })
    }

    /// Opens the folder `name` beneath this one, creating it when missing; a symlink or a
    /// non-folder there is [`Error::CorruptCacheEntry`].
    fn child(&self, name: &str) -> Result<Folder> {
        let path = self.path.join(name);
        match self.dir.create_dir(name) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.entry(name).refusal(A_DIRECTORY, e)),
        }
        match self.dir.open_dir_nofollow(name) {
            Ok(dir) => Ok(Folder { dir, path }),
            Err(e) => Err(self.entry(name).refusal(A_DIRECTORY, e)),
        }
    }

    /// The handle.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The path the cache shows for this folder (in errors and reports).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry `name` of this folder.
    pub fn entry(&self, name: impl Into<String>) -> Entry<'_> {
        Entry {
            folder: self,
            name: name.into(),
        }
    }

    /// Opens the file `name` for reading, failing on a symlink rather than following it.
    pub(crate) fn open_file(&self, name: impl AsRef<Path>) -> io::Result<File> {
        self.dir.open_with(name, &read_nofollow())
    }

    /// fsyncs the folder so that renames and unlinks in it are durable (nothing on Windows:
    /// see [`crate::sys::sync_folder`]).
    pub fn sync(&self) -> Result<()> {
        crate::sys::sync_folder(&self.dir).at(&self.path)
    }

    /// A path that leads to this very folder for code that works by path: `/proc/self/fd/<n>`
    /// on Linux when it resolves to the handle (it cannot be redirected; see
    /// [`crate::sys::handle_path`]), else [`Folder::path`].
    fn access_path(&self) -> PathBuf {
        crate::sys::handle_path(&self.dir).unwrap_or_else(|| self.path.clone())
    }
}

/// A file of the cache: its folder (an open handle) and its name in it.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    folder: &'a Folder,
    name: String,
}

impl Entry<'_> {
    /// The folder.
    pub fn folder(&self) -> &Folder {
        self.folder
    }

    /// The name in the folder.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path the cache shows for it.
    pub fn path(&self) -> PathBuf {
        self.folder.path.join(&self.name)
    }

    /// The size of the file, `None` when absent; anything but a regular file there (a symlink,
    /// a folder) is [`Error::CorruptCacheEntry`]. Never follows a symlink.
    pub fn file_size(&self) -> Result<Option<u64>> {
        match self.folder.dir.symlink_metadata(&self.name) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(meta) => Err(Error::CorruptCacheEntry {
                path: self.path(),
                found: kind_of(&meta),
                expected: A_REGULAR_FILE,
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(self.path(), e)),
        }
    }

    /// The error for a failed open of this entry as `expected`: [`Error::CorruptCacheEntry`]
    /// when something else is there (a symlink, most likely), else `err` as [`Error::Io`].
    pub(crate) fn refusal(&self, expected: &'static str, err: io::Error) -> Error {
        match self.folder.dir.symlink_metadata(&self.name) {
            Ok(meta) if kind_of(&meta) != expected => Error::CorruptCacheEntry {
                path: self.path(),
                found: kind_of(&meta),
                expected,
            },
            _ => Error::io(self.path(), err),
        }
    }

    /// Deletes the file by name beneath its folder's handle: a symlink there is unlinked as a
    /// link, never followed, and a folder is not removed (an error).
    pub(crate) fn remove_file(&self) -> Result<()> {
        self.folder
            .dir
            .remove_file(&self.name)
            .map_err(|e| Error::io(self.path(), e))
    }

    /// Opens (creating when missing) the file as a lock file, never through a symlink.
    pub(crate) fn open_lock_file(&self) -> Result<std::fs::File> {
        let mut options = OpenOptions::new();
        options
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .follow(FollowSymlinks::No);
        self.folder
            .dir
            .open_with(&self.name, &options)
            .map(File::into_std)
            .map_err(|e| self.refusal(A_REGULAR_FILE, e))
    }
}

/// The cache root, open as directory handles of its folders, each checked not to be a symlink.
///
/// Cheap to open (two system calls per folder); an operation opens it once and does all its
/// file work through it.
#[derive(Debug)]
pub struct Root {
    layout: Layout,
    top: Folder,
    blobs: Folder,
    layers: Folder,
    fsmeta: Folder,
    vmdk: Folder,
    tmp: Folder,
    locks: Folder,
    layer_locks: Folder,
    /// Told before a lock held elsewhere is waited for.
    lock_wait: Option<LockWait>,
}

impl Root {
    /// Opens the cache root of `layout`, creating the root and its folders when missing.
    ///
    /// The root path itself may be a symlink; every folder beneath it (`blobs/`,
    /// `blobs/sha256/`, `layers/`, ..., `tmp/`, `locks/`, `locks/layers/`) is opened without
    /// following symlinks, and one that is a symlink or not a folder fails with
    /// [`Error::CorruptCacheEntry`] naming it, before anything is written.
    pub fn open(layout: &Layout) -> Result<Root> {
        std::fs::create_dir_all(layout.root()).at(layout.root())?;
        let top = Folder::open_ambient(layout.root())?;
        let artifacts = |name: &str| top.child(name)?.child(ALGORITHM_DIR);
        let locks = top.child(LOCKS_DIR)?;
        Ok(Root {
            layout: layout.clone(),
            blobs: artifacts(BLOBS_DIR)?,
            layers: artifacts(LAYERS_DIR)?,
            fsmeta: artifacts(FSMETA_DIR)?,
            vmdk: artifacts(VMDK_DIR)?,
            tmp: top.child(TMP_DIR)?,
            layer_locks: locks.child(LAYERS_DIR)?,
            locks,
            top,
            lock_wait: None,
        })
    }

    /// This root, telling `wait` before any of its locks is waited for (see
    /// [`CacheLock::acquire`]).
    pub fn with_lock_wait(mut self, wait: Option<LockWait>) -> Root {
        self.lock_wait = wait;
        self
    }

    /// The path of the SQLite index, for [`crate::index::Index::open`], after checking that
    /// `index.db` and its `-wal` and `-shm` files are regular files or absent (a symlink there
    /// is [`Error::CorruptCacheEntry`]). SQLite opens files by path; `Index::open` tells it not
    /// to follow a symlink at `index.db` and SQLite opens the other two with `O_NOFOLLOW`, so a
    /// symlink swapped in after this check makes the open fail rather than follow it.
    pub fn index_db(&self) -> Result<PathBuf> {
        for name in INDEX_FILES {
            self.top.entry(name).file_size()?;
        }
        Ok(self.layout.index_db())
    }

    /// Bytes of the index files (`index.db` and SQLite's `-wal` and `-shm` files beside it, the
    /// only names of them the cache knows), measured without following symlinks; a file that is
    /// absent (or cannot be measured) counts 0.
    pub fn index_bytes(&self) -> u64 {
        INDEX_FILES
            .iter()
            .filter_map(|name| self.top.dir.symlink_metadata(name).ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// The paths of this root.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `blobs/sha256/`.
    pub fn blobs(&self) -> &Folder {
        &self.blobs
    }

    /// `layers/sha256/`.
    pub fn layers(&self) -> &Folder {
        &self.layers
    }

    /// `fsmeta/sha256/`.
    pub fn fsmeta_dir(&self) -> &Folder {
        &self.fsmeta
    }

    /// `vmdk/sha256/`.
    pub fn vmdk_dir(&self) -> &Folder {
        &self.vmdk
    }

    /// `tmp/`.
    pub fn tmp(&self) -> &Folder {
        &self.tmp
    }

    /// The partial downloads in `tmp/` ([`super::Partials`]), as a handle of their own.
    pub fn partials(&self) -> Result<super::Partials> {
        super::Partials::new(&self.tmp)
    }

    /// The file of one blob.
    pub fn blob(&self, digest: &Digest) -> Entry<'_> {
        self.blobs.entry(blob_name(digest))
    }

    /// The EROFS image of the layer with this `diff_id`.
    pub fn layer(&self, diff_id: &Digest) -> Entry<'_> {
        self.layers.entry(erofs_name(diff_id))
    }

    /// The fsmeta image of a manifest.
    pub fn fsmeta(&self, manifest: &Digest) -> Entry<'_> {
        self.fsmeta.entry(erofs_name(manifest))
    }

    /// The VMDK descriptor of a manifest.
    pub fn vmdk(&self, manifest: &Digest) -> Entry<'_> {
        self.vmdk.entry(vmdk_name(manifest))
    }

    /// Blocks until `locks/gc.lock` is held in `mode` (shared by loads and boot disks,
    /// exclusive for remove and prune); the root's [`LockWait`] is told first when another
    /// holder has it.
    pub fn lock_gc(&self, mode: LockMode) -> Result<CacheLock> {
        CacheLock::acquire(&self.locks.entry(GC_LOCK), mode, self.lock_wait.as_ref())
    }

    /// Blocks until the artifact locks of `digests` are held exclusively, for the artifacts
    /// they name: a layer image by `diff_id`; a blob, fsmeta and VMDK by manifest digest; a
    /// blob by config digest. Artifacts share striped lock files beneath the `locks/layers/`
    /// handle (`<hh>.lock`, by the digest's first byte, never through a symlink), taken once
    /// each in sorted order so two callers cannot deadlock. Released when the returned locks
    /// are dropped. The root's [`LockWait`] is told before each one held elsewhere is waited
    /// for.
    ///
    /// Never call it while holding artifact locks: two locks of one stripe conflict even
    /// within one thread.
    pub fn lock_artifacts<'d>(
        &self,
        digests: impl IntoIterator<Item = &'d Digest>,
    ) -> Result<Vec<CacheLock>> {
        let stripes: std::collections::BTreeSet<String> =
            digests.into_iter().map(layer_lock_name).collect();
        stripes
            .into_iter()
            .map(|name| {
                CacheLock::acquire(
                    &self.layer_locks.entry(name),
                    LockMode::Exclusive,
                    self.lock_wait.as_ref(),
                )
            })
            .collect()
    }

    /// A fresh folder under `tmp/` for one operation, removed (beneath the `tmp/` handle) when
    /// dropped. Its name starts with the purpose's prefix, which is how prune recognizes the
    /// cache's own leftovers.
    pub fn staging_dir(&self, purpose: StagingPurpose) -> Result<StagingDir> {
        const ATTEMPTS: usize = 16;
        let tmp = self.tmp.dir.try_clone().at(&self.tmp.path)?;
        for _ in 0..ATTEMPTS {
            let mut random = [0u8; STAGING_RANDOM_BYTES];
            getrandom::fill(&mut random)
                .map_err(|e| Error::internal(format!("no randomness: {e}")))?;
            let name = format!("{}{}", purpose.prefix(), hex::encode(random));
            match self.tmp.dir.create_dir(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(self.tmp.path.join(&name), e)),
            }
            let dir = self
                .tmp
                .dir
                .open_dir_nofollow(&name)
                .map_err(|e| self.tmp.entry(name.as_str()).refusal(A_DIRECTORY, e))?;
            let folder = Folder {
                dir,
                path: self.tmp.path.join(&name),
            };
            let access = folder.access_path();
            return Ok(StagingDir {
                tmp,
                folder,
                name,
                access,
            });
        }
        Err(Error::internal("no free staging folder name under tmp/"))
    }
}

/// Random bytes in a staging folder's name (hex-encoded after the prefix).
const STAGING_RANDOM_BYTES: usize = 8;

/// What a staging folder under `tmp/` is for; its prefix names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StagingPurpose {
    /// A load (`load-*`).
    Load,
    /// A boot disk rebuilding fsmeta and VMDK (`rebuild-*`).
    Rebuild,
}

impl StagingPurpose {
    /// Every purpose.
    pub const ALL: [StagingPurpose; 2] = [StagingPurpose::Load, StagingPurpose::Rebuild];

    /// The folder name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            StagingPurpose::Load => "load-",
            StagingPurpose::Rebuild => "rebuild-",
        }
    }

    /// Whether `name` (an entry of `tmp/`) is named like a staging folder the cache makes.
    pub fn is_staging_name(name: &OsStr) -> bool {
        name.to_str().is_some_and(|n| {
            StagingPurpose::ALL.iter().any(|p| {
                n.strip_prefix(p.prefix())
                    .is_some_and(|rest| !rest.is_empty())
            })
        })
    }
}

/// A folder under `tmp/` owned by one operation; deleted when dropped.
pub struct StagingDir {
    tmp: Dir,
    folder: Folder,
    name: String,
    access: PathBuf,
}

impl std::fmt::Debug for StagingDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingDir")
            .field("path", &self.folder.path)
            .field("access", &self.access)
            .finish()
    }
}

impl StagingDir {
    /// The path code that works by path uses for this folder (see the module docs): files
    /// created under it land in this very folder.
    pub fn path(&self) -> &Path {
        &self.access
    }

    /// The folder's path under the cache's `tmp/`, as shown to people.
    pub fn display_path(&self) -> &Path {
        &self.folder.path
    }

    /// The folder's handle.
    pub(crate) fn folder(&self) -> &Folder {
        &self.folder
    }

    /// Writes `bytes` to the file `name` in this folder (created or truncated, never through a
    /// symlink) and returns its [`StagingDir::path`]-based path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.access.join(name);
        let mut options = OpenOptions::new();
        options
            .write(true)
            .create(true)
            .truncate(true)
            .follow(FollowSymlinks::No);
        let mut file = self.folder.dir.open_with(name, &options).at(&path)?;
        file.write_all(bytes).at(&path)?;
        Ok(path)
    }

    /// The name in this folder of `staged`, a path made from [`StagingDir::path`].
    pub(crate) fn name_of<'p>(&self, staged: &'p Path) -> Result<&'p OsStr> {
        match (staged.parent(), staged.file_name()) {
            (Some(parent), Some(name)) if parent == self.access => Ok(name),
            _ => Err(Error::internal(format!(
                "{} is not a file of the staging folder {}",
                staged.display(),
                self.access.display()
            ))),
        }
    }

    /// Whether `staged`, a file of this folder (a path made from [`StagingDir::path`]), is
    /// still there (measured beneath the handle, without following a symlink).
    pub(crate) fn holds(&self, staged: &Path) -> bool {
        self.name_of(staged)
            .is_ok_and(|name| self.folder.dir.symlink_metadata(name).is_ok())
    }

    /// `error` with every path under [`StagingDir::path`] shown under
    /// [`StagingDir::display_path`] instead (`/proc/self/fd/<n>/x` means nothing to a person):
    /// the path of an [`Error::Io`], [`Error::NoSpace`] or [`Error::CorruptCacheEntry`], and
    /// paths quoted in the text of the other variants (a corrupt staged image, an unsupported
    /// layer). A variant added to [`Error`] that carries a path or text needs a line here.
    pub fn describe(&self, error: Error) -> Error {
        if self.access == self.folder.path {
            return error;
        }
        let path = |path: PathBuf| match path.strip_prefix(&self.access) {
            Ok(rest) => self.folder.path.join(rest),
            Err(_) => path,
        };
        let text = |text: String| self.describe_text(text);
        match error {
            Error::Io { path: p, source } => Error::Io {
                path: path(p),
                source,
            },
            Error::NoSpace { path: p, source } => Error::NoSpace {
                path: path(p),
                source,
            },
            Error::CorruptCacheEntry {
                path: p,
                found,
                expected,
            } => Error::CorruptCacheEntry {
                path: path(p),
                found,
                expected,
            },
            Error::CorruptCache { reason } => Error::CorruptCache {
                reason: text(reason),
            },
            Error::InvalidArchive { reason } => Error::InvalidArchive {
                reason: text(reason),
            },
            Error::Unsupported { what } => Error::Unsupported { what: text(what) },
            Error::Internal { reason } => Error::Internal {
                reason: text(reason),
            },
            Error::DigestMismatch {
                what,
                expected,
                actual,
            } => Error::DigestMismatch {
                what: text(what),
                expected,
                actual,
            },
            Error::LimitExceeded { limit, what } => Error::LimitExceeded {
                limit,
                what: text(what),
            },
            other => other,
        }
    }

    /// `text` with each occurrence of [`StagingDir::path`] (as a whole path component: the
    /// string `/proc/self/fd/1` is not a prefix of `/proc/self/fd/12`) replaced by
    /// [`StagingDir::display_path`].
    fn describe_text(&self, text: String) -> String {
        let access = self.access.to_string_lossy();
        let shown = self.folder.path.to_string_lossy();
        if access.is_empty() || !text.contains(access.as_ref()) {
            return text;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(access.as_ref()) {
            let after = &rest[at + access.len()..];
            out.push_str(&rest[..at]);
            if after.starts_with(|c: char| c.is_ascii_digit()) {
                out.push_str(&access);
            } else {
                out.push_str(&shown);
            }
            rest = after;
        }
        out.push_str(rest);
        out
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        // By name beneath the `tmp/` handle: a symlink swapped in for the folder is removed as a
        // link, never followed. A failure leaves a leftover that the next prune reclaims.
        let _ = self.tmp.remove_dir_all(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_recognized() {
        for (name, ok) in [
            ("load-0a1b", true),
            ("rebuild-ff", true),
            ("load-", false),
            ("loader", false),
            ("other", false),
        ] {
            assert_eq!(
                StagingPurpose::is_staging_name(OsStr::new(name)),
                ok,
                "{name}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn folders_that_are_symlinks_are_refused_by_name() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        Root::open(&layout).unwrap();
        std::fs::remove_dir(layout.tmp_dir()).unwrap();
        std::os::unix::fs::symlink(outside.path(), layout.tmp_dir()).unwrap();
        match Root::open(&layout) {
            Err(Error::CorruptCacheEntry { path, found, .. }) => {
                assert_eq!((path, found), (layout.tmp_dir(), "a symlink"));
            }
            other => panic!("expected CorruptCacheEntry, got {other:?}"),
        }
    }

    #[test]
    fn staging_paths_lead_into_the_staging_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(&Layout::new(dir.path())).unwrap();
        let staging = root.staging_dir(StagingPurpose::Rebuild).unwrap();
        std::fs::write(staging.path().join("x"), b"1").unwrap();
        assert_eq!(
            std::fs::read(staging.display_path().join("x")).unwrap(),
            b"1"
        );
        let shown = staging.describe(Error::io(staging.path().join("x"), io::Error::other("e")));
        match shown {
            Error::Io { path, .. } => assert_eq!(path, staging.display_path().join("x")),
            other => panic!("expected Io, got {other:?}"),
        }
        let display = staging.display_path().to_owned();
        drop(staging);
        assert!(!display.exists());
    }

    /// Regression: a load that ran out of space while staging or converting reported
    /// `NO_SPACE` with the `/proc/self/fd/<n>` path it worked in (only `IO` errors were
    /// translated), and a corrupt staged image or an unsupported staged layer quoted that path
    /// in its message. Every path an error carries or quotes now names the folder under `tmp/`.
    #[test]
    fn staging_errors_never_name_the_proc_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(&Layout::new(dir.path())).unwrap();
        let staging = root.staging_dir(StagingPurpose::Load).unwrap();
        let (access, shown) = (staging.path().to_owned(), staging.display_path().to_owned());
        if cfg!(target_os = "linux") {
            assert!(access.starts_with("/proc/self/fd/"), "{}", access.display());
        }
        let full = staging.describe(Error::io(
            access.join("layer-1.erofs"),
            io::Error::from(ErrorKind::StorageFull),
        ));
        match full {
            Error::NoSpace { path, .. } => assert_eq!(path, shown.join("layer-1.erofs")),
            other => panic!("expected NoSpace, got {other:?}"),
        }
        let quoted = |text: String| {
            let described = staging.describe(Error::CorruptCache { reason: text });
            match described {
                Error::CorruptCache { reason } => reason,
                other => panic!("expected CorruptCache, got {other:?}"),
            }
        };
        let a = access.display();
        assert_eq!(
            quoted(format!("{a}/fsmeta-1.erofs: bad superblock")),
            format!("{}/fsmeta-1.erofs: bad superblock", shown.display())
        );
        // Another descriptor's path that merely starts with the same digits is left alone.
        assert_eq!(quoted(format!("{a}7/x")), format!("{a}7/x"));
        match staging.describe(Error::Unsupported {
            what: format!("bzip2 compression of {a}/staged-ab"),
        }) {
            Error::Unsupported { what } => assert_eq!(
                what,
                format!("bzip2 compression of {}/staged-ab", shown.display())
            ),
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
}
