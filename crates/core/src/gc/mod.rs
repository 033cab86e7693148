//! The file sweep shared by `remove` and `prune`, and byte measurement.
//!
//! Reachability is decided in the index ([`crate::index::Index::collect_garbage`]); this module
//! only deletes files after the index has committed, so a crash between the two leaves orphan
//! files and never an index row naming a missing file. [`reconcile`] finds those orphans (files
//! under `blobs/`, `layers/`, `fsmeta/` and `vmdk/` that no row names, and leftovers under
//! `tmp/`) and is run by prune while it holds the exclusive GC lock, so no load is writing at
//! the time.
//!
//! Deletion stays inside the cache root: every folder is a handle of a [`Root`] (opened without
//! following symlinks), and files are measured (`lstat`) and unlinked by name relative to it.
//! Only regular files are deleted from the artifact folders; anything else found where a file is
//! expected (a directory, a symlink, a device) is left in place and reported in
//! [`Swept::warnings`], so a stray entry never stops a sweep after the index committed. Under
//! `tmp/`, files and symlinks are unlinked (a symlink as a link, never followed), except partial
//! downloads a pull holds or that are younger than [`crate::store::PARTIAL_MAX_AGE`], and folders
//! named like the cache's staging folders (`load-*`, `rebuild-*`) are emptied and removed
//! beneath their own handles, never crossing into another file system; other folders there are
//! left and reported.

use std::ffi::{OsStr, OsString};
use std::io::ErrorKind;
use std::path::Path;

use cap_fs_ext::DirExt;
use cap_std::fs::{Dir, Metadata};

use crate::error::{Error, IoContext, Result};
use crate::index::{Collected, LiveArtifacts, stored_digest};
use crate::oci::{Digest, is_sha256_hex};
use crate::store::{
    EROFS_SUFFIX, Folder, Root, StagingPurpose, VMDK_SUFFIX, is_partial_name, reclaim_partial,
};

pub mod plan;

pub use plan::{Plan, Planned, plan};

/// What a sweep deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Files (or folders under `tmp/`) deleted.
    pub removed: u64,
    /// Apparent bytes of what was deleted, measured just before deletion.
    pub bytes: u64,
    /// Allocated bytes (`st_blocks * 512`; the apparent size where the platform has no such
    /// figure).
    pub allocated: u64,
    /// Entries that vanished before they could be measured (deleted by someone else).
    pub already_gone: u64,
    /// Entries left in place because they are not what the cache deletes there (a directory
    /// or a symlink where an artifact file is expected, a folder in `tmp/` the cache did not
    /// make), one line each naming the path.
    pub warnings: Vec<String>,
}

impl Swept {
    /// Adds another sweep's counts. A warning already listed is not repeated (the sweep of
    /// collected files and the reconciliation after it meet the same stray entry).
    pub fn add(&mut self, other: &Swept) {
        self.removed += other.removed;
        self.bytes += other.bytes;
        self.allocated += other.allocated;
        self.already_gone += other.already_gone;
        for warning in &other.warnings {
            if !self.warnings.contains(warning) {
                self.warnings.push(warning.clone());
            }
        }
    }

    /// Counts a deleted (or, in a dry run, deletable) file.
    fn count(&mut self, meta: &Metadata) {
        self.removed += 1;
        self.bytes += meta.len();
        self.allocated += crate::sys::allocated_bytes(meta);
    }
}

/// The warning for an entry a sweep leaves in place.
fn left_in_place(path: &Path, found: &str, why: &str) -> String {
    format!("{} is {found}{why}; left in place", path.display())
}

/// Deletes the regular files `names` of `folder` in parallel, measuring each from the `lstat`
/// it needs anyway; with `delete` false only measures (a dry run). Files already gone are
/// counted as such, not as errors, so a sweep can be repeated after a crash. An entry that is
/// not a regular file (a directory, a symlink) is left in place and reported in
/// [`Swept::warnings`]. The folder is fsynced once at the end.
pub fn sweep_files<N: AsRef<OsStr> + Sync>(
    folder: &Folder,
    names: &[N],
    delete: bool,
) -> Result<Swept> {
    use rayon::prelude::*;
    let dir = folder.dir();
    let sweep = || {
        names
            .par_chunks(SWEEP_CHUNK)
            .map(|chunk| {
                let mut out = Swept::default();
                for name in chunk {
                    let name = name.as_ref();
                    let path = || folder.path().join(name);
                    let meta = match dir.symlink_metadata(name) {
                        Ok(meta) => meta,
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            out.already_gone += 1;
                            continue;
                        }
                        Err(e) => return Err(Error::io(path(), e)),
                    };
                    if !meta.is_file() {
                        let found = crate::store::kind_of(&meta);
                        out.warnings
                            .push(left_in_place(&path(), found, ", not a regular file"));
                        continue;
                    }
                    if delete {
                        match dir.remove_file(name) {
                            Ok(()) => {}
                            Err(e) if e.kind() == ErrorKind::NotFound => {
                                out.already_gone += 1;
                                continue;
                            }
                            // Replaced by a folder since the lstat: leave it, like any folder.
                            Err(e) if e.kind() == ErrorKind::IsADirectory => {
                                out.warnings.push(left_in_place(
                                    &path(),
                                    "a directory",
                                    ", not a regular file",
                                ));
                                continue;
                            }
                            Err(e) => return Err(Error::io(path(), e)),
                        }
                    }
                    out.count(&meta);
                }
                Ok(out)
            })
            .collect::<Vec<Result<Swept>>>()
    };
    let results = match sweep_pool() {
        Some(pool) => pool.install(sweep),
        None => sweep(),
    };
    let mut out = Swept::default();
    for r in results {
        out.add(&r?);
    }
    if delete && !names.is_empty() {
        folder.sync()?;
    }
    Ok(out)
}

/// Files per parallel work item of a sweep: large enough to amortize scheduling, small enough
/// to keep every sweep thread busy to the end.
const SWEEP_CHUNK: usize = 64;

/// Threads that sweeps delete on. Unlinking is bound by the file system, not the CPU: on ext4
/// an unlink waits for the journal and inode-table locks, so many more threads than cores keep
/// it busy (measured: deleting the same files with 64 threads takes 0.65x the time of one thread
/// per core; see BENCHMARKS.md, prune).
const SWEEP_THREADS: usize = 32;

/// The pool sweeps run on, made on first use; `None` (use rayon's global pool) if the threads
/// cannot be started.
fn sweep_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(SWEEP_THREADS)
            .thread_name(|i| format!("ocicache-sweep-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Deletes the files of what `collected` removed from the index (blobs, layer images, and the
/// fsmeta and VMDK of each manifest), or only measures them when `delete` is false.
pub fn sweep_collected(root: &Root, collected: &Collected, delete: bool) -> Result<Reconciled> {
    // A digest that does not parse means a damaged index: CORRUPT_CACHE, not bad input.
    let name = |digest: &str, entry: fn(&Root, &Digest) -> String| {
        stored_digest(digest).map(|d| entry(root, &d))
    };
    let blobs = (collected.blobs.iter())
        .map(|(d, _)| name(d, |r, d| r.blob(d).name().to_owned()))
        .collect::<Result<Vec<_>>>()?;
    let layers = (collected.layers.iter())
        .map(|d| name(d, |r, d| r.layer(d).name().to_owned()))
        .collect::<Result<Vec<_>>>()?;
    let fsmeta = (collected.manifests.iter())
        .map(|d| name(d, |r, d| r.fsmeta(d).name().to_owned()))
        .collect::<Result<Vec<_>>>()?;
    let vmdk = (collected.manifests.iter())
        .map(|d| name(d, |r, d| r.vmdk(d).name().to_owned()))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Reconciled {
        swept: sweep_files(root.blobs(), &blobs, delete)?,
        ..Reconciled::default()
    };
    out.swept.add(&sweep_files(root.layers(), &layers, delete)?);
    let f = sweep_files(root.fsmeta_dir(), &fsmeta, delete)?;
    let v = sweep_files(root.vmdk_dir(), &vmdk, delete)?;
    out.fsmeta = f.removed;
    out.vmdk = v.removed;
    out.swept.add(&f);
    out.swept.add(&v);
    Ok(out)
}

/// Apparent bytes under `folder` (every file, without following symlinks).
pub fn folder_size(folder: &Folder) -> Result<u64> {
    fn walk(dir: &Dir, path: &Path, depth: usize) -> Result<u64> {
        let mut total = 0;
        for entry in dir.entries().at(path)? {
            let name = entry.at(path)?.file_name();
            let meta = match dir.symlink_metadata(&name) {
                Ok(meta) => meta,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(path.join(&name), e)),
            };
            if !meta.is_dir() {
                total += meta.len();
            } else if depth < MAX_TMP_DEPTH {
                match dir.open_dir_nofollow(&name) {
                    Ok(child) => total += walk(&child, &path.join(&name), depth + 1)?,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(path.join(&name), e)),
                }
            }
        }
        Ok(total)
    }
    walk(folder.dir(), folder.path(), 0)
}

/// Deepest folder level under `tmp/` that is walked: the cache's staging folders are two deep
/// at most; a deeper tree (made by someone else) is left rather than risk the stack.
const MAX_TMP_DEPTH: usize = 64;

/// Kinds of artifact files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactKind {
    /// `blobs/sha256/<hex>`.
    Blob,
    /// `layers/sha256/<hex>.erofs`.
    Layer,
    /// `fsmeta/sha256/<hex>.erofs`.
    Fsmeta,
    /// `vmdk/sha256/<hex>.vmdk`.
    Vmdk,
}

/// Files on disk that the index does not name: under `blobs/`, `layers/`, `fsmeta/` and
/// `vmdk/`, every file whose name is not that of a live artifact (including stray names), and
/// the leftovers under `tmp/`. With `delete` they are removed and measured; without, only
/// measured (a dry run). Entries that are not files are left and reported (see the module
/// docs). Must run under the exclusive GC lock. Returns the total and the layer image, fsmeta
/// and VMDK counts (for the report).
pub fn reconcile(root: &Root, live: &LiveArtifacts, delete: bool) -> Result<Reconciled> {
    let mut out = Reconciled::default();
    let dirs = [
        (ArtifactKind::Blob, root.blobs(), "", &live.blobs),
        (
            ArtifactKind::Layer,
            root.layers(),
            EROFS_SUFFIX,
            &live.layers,
        ),
        (
            ArtifactKind::Fsmeta,
            root.fsmeta_dir(),
            EROFS_SUFFIX,
            &live.manifests,
        ),
        (
            ArtifactKind::Vmdk,
            root.vmdk_dir(),
            VMDK_SUFFIX,
            &live.manifests,
        ),
    ];
    for (kind, folder, suffix, names) in dirs {
        // Orphans named like an artifact of their folder (counted by kind in the report) and
        // stray names (reclaimed and measured, not counted).
        let (mut orphans, mut strays): (Vec<OsString>, Vec<OsString>) = (Vec::new(), Vec::new());
        for entry in folder.dir().entries().at(folder.path())? {
            let name = entry.at(folder.path())?.file_name();
            let hex = name.to_str().and_then(|n| n.strip_suffix(suffix));
            if hex.is_some_and(|hex| names.contains(&format!("sha256:{hex}"))) {
                continue;
            }
            if hex.is_some_and(is_sha256_hex) {
                orphans.push(name);
            } else {
                strays.push(name);
            }
        }
        let swept = sweep_files(folder, &orphans, delete)?;
        match kind {
            ArtifactKind::Layer => out.layers += swept.removed,
            ArtifactKind::Fsmeta => out.fsmeta += swept.removed,
            ArtifactKind::Vmdk => out.vmdk += swept.removed,
            ArtifactKind::Blob => {}
        }
        out.swept.add(&swept);
        out.swept.add(&sweep_files(folder, &strays, delete)?);
    }
    let tmp = reconcile_tmp(root.tmp(), delete)?;
    out.swept.add(&tmp);
    Ok(out)
}

/// What [`reconcile`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Everything, all kinds together.
    pub swept: Swept,
    /// Layer images among them: files named `<sha256 hex>.erofs` under `layers/` (stray names
    /// are reclaimed but not counted as layers).
    pub layers: u64,
    /// fsmeta images among them (likewise well-named).
    pub fsmeta: u64,
    /// VMDK descriptors among them.
    pub vmdk: u64,
}

/// Deletes (or measures) the leftovers under `tmp/`: every file and symlink (a symlink as a
/// link), and every staging folder the cache makes (`load-*`, `rebuild-*`) with its contents.
/// A partial download (`partial-sha256-<hex>`, see [`crate::store::Partials`]) goes only when
/// no pull holds its lock and its last write is [`crate::store::PARTIAL_MAX_AGE`] old.
/// Each top-level entry removed whole counts once in [`Swept::removed`]; its files' bytes count
/// in [`Swept::bytes`].
fn reconcile_tmp(tmp: &Folder, delete: bool) -> Result<Swept> {
    let mut out = Swept::default();
    let dev = crate::sys::device(&tmp.dir().dir_metadata().at(tmp.path())?);
    for entry in tmp.dir().entries().at(tmp.path())? {
        let name = entry.at(tmp.path())?.file_name();
        let path = tmp.path().join(&name);
        let meta = match tmp.dir().symlink_metadata(&name) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                out.already_gone += 1;
                continue;
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        if meta.is_file() && is_partial_name(&name) {
            // A partial download: only once no pull holds it and it is old enough.
            if let Some(meta) = reclaim_partial(tmp, &name, delete)? {
                out.count(&meta);
            }
            continue;
        }
        if !meta.is_dir() {
            if delete {
                // `remove_file_or_symlink`: Windows removes a link to a folder as a folder.
                match tmp.dir().remove_file_or_symlink(&name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        out.already_gone += 1;
                        continue;
                    }
                    Err(e) => return Err(Error::io(path, e)),
                }
            }
            out.count(&meta);
            continue;
        }
        if !StagingPurpose::is_staging_name(&name) {
            out.warnings.push(left_in_place(
                &path,
                "a directory",
                " the cache did not make",
            ));
            continue;
        }
        let mut tree = Swept::default();
        if remove_tree(tmp.dir(), &name, &path, dev, delete, 0, &mut tree)? {
            tree.removed = 1;
        }
        out.add(&tree);
    }
    Ok(out)
}

/// Deletes (or measures) the folder `name` of `parent` and everything in it, beneath handles
/// and without following symlinks (a symlink inside is unlinked as a link). A sub-folder on
/// another file system than `dev` (a mount point), or deeper than [`MAX_TMP_DEPTH`], is left
/// in place and reported, and so are the folders holding it. Returns whether the folder is
/// gone (or, in a dry run, would be). Bytes of the files deleted are added to `out`.
fn remove_tree(
    parent: &Dir,
    name: &OsStr,
    path: &Path,
    dev: Option<u64>,
    delete: bool,
    depth: usize,
    out: &mut Swept,
) -> Result<bool> {
    let dir = match parent.open_dir_nofollow(name) {
        Ok(dir) => dir,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            out.already_gone += 1;
            return Ok(false);
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let here = crate::sys::device(&dir.dir_metadata().at(path)?);
    if here != dev {
        out.warnings.push(left_in_place(
            path,
            "a directory",
            " on another file system (a mount point)",
        ));
        return Ok(false);
    }
    if depth >= MAX_TMP_DEPTH {
        out.warnings
            .push(left_in_place(path, "a directory", " nested too deep"));
        return Ok(false);
    }
    let mut complete = true;
    for entry in dir.entries().at(path)? {
        let child = entry.at(path)?.file_name();
        let child_path = path.join(&child);
        let meta = match dir.symlink_metadata(&child) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(child_path, e)),
        };
        if meta.is_dir() {
            complete &= remove_tree(&dir, &child, &child_path, dev, delete, depth + 1, out)?;
            continue;
        }
        if delete {
            match dir.remove_file_or_symlink(&child) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(child_path, e)),
            }
        }
        out.bytes += meta.len();
        out.allocated += crate::sys::allocated_bytes(&meta);
    }
    drop(dir);
    if delete && complete {
        match parent.remove_dir(name) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Layout;
    use std::fs;

    #[test]
    fn sweep_tolerates_missing_files_and_measures() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, vec![0u8; 1234]).unwrap();
        let folder = Folder::open_ambient(dir.path()).unwrap();
        let dry = sweep_files(&folder, &["a", "missing"], false).unwrap();
        assert!(a.exists());
        let s = sweep_files(&folder, &["a", "missing"], true).unwrap();
        assert_eq!(s, dry);
        assert_eq!((s.removed, s.bytes, s.already_gone), (1, 1234, 1));
        assert!(s.allocated >= 1234);
        assert!(!a.exists());
    }

    #[cfg(unix)]
    #[test]
    fn reconcile_never_follows_symlinks_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("precious"), b"keep").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let root = Root::open(&layout).unwrap();
        std::os::unix::fs::symlink(outside.path(), layout.tmp_dir().join("link")).unwrap();
        fs::write(layout.blobs_dir().join("orphan"), b"xx").unwrap();
        let dry = reconcile(&root, &LiveArtifacts::default(), false).unwrap();
        let real = reconcile(&root, &LiveArtifacts::default(), true).unwrap();
        assert_eq!(dry.swept.bytes, real.swept.bytes);
        assert_eq!(real.swept.removed, 2);
        assert_eq!(fs::read(outside.path().join("precious")).unwrap(), b"keep");
    }

    /// Regression: a prune that met a folder where it expected an artifact file failed with
    /// `IO ... Is a directory` after the index had committed. It is now left and reported.
    #[test]
    fn sweep_leaves_a_stray_directory_and_warns() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d.erofs")).unwrap();
        fs::write(dir.path().join("d.erofs/inner"), b"keep").unwrap();
        fs::write(dir.path().join("f.erofs"), b"go").unwrap();
        let folder = Folder::open_ambient(dir.path()).unwrap();
        let s = sweep_files(&folder, &["d.erofs", "f.erofs"], true).unwrap();
        assert_eq!((s.removed, s.bytes), (1, 2));
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(s.warnings[0].contains("d.erofs"), "{:?}", s.warnings);
        assert_eq!(fs::read(dir.path().join("d.erofs/inner")).unwrap(), b"keep");
    }

    /// Regression: prune emptied every folder under `tmp/`, whatever made it. Only the cache's
    /// own staging folders go now (with what is in them, links unlinked, never followed).
    #[cfg(unix)]
    #[test]
    fn reconcile_tmp_removes_only_staging_folders_and_never_follows_links() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("precious"), b"keep").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let root = Root::open(&layout).unwrap();
        let tmp = layout.tmp_dir();
        fs::create_dir_all(tmp.join("load-x/sub")).unwrap();
        fs::write(tmp.join("load-x/sub/part"), vec![1u8; 100]).unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.join("load-x/out")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.join("rebuild-y")).unwrap();
        fs::create_dir(tmp.join("someone-elses")).unwrap();
        fs::write(tmp.join("someone-elses/file"), b"mine").unwrap();
        let dry = reconcile_tmp(root.tmp(), false).unwrap();
        let real = reconcile_tmp(root.tmp(), true).unwrap();
        assert_eq!(dry, real);
        assert_eq!(real.removed, 2, "load-x and the rebuild-y link");
        assert!(real.bytes >= 100);
        assert_eq!(real.warnings.len(), 1, "{:?}", real.warnings);
        assert!(real.warnings[0].contains("someone-elses"));
        let left: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![OsString::from("someone-elses")]);
        assert_eq!(fs::read(outside.path().join("precious")).unwrap(), b"keep");
    }

    /// Partial downloads under `tmp/` go only when no pull holds them and their last write is
    /// a day old; what goes counts in the bytes.
    #[test]
    fn reconcile_tmp_keeps_held_and_young_partials() {
        use crate::store::PARTIAL_MAX_AGE;
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(&Layout::new(dir.path())).unwrap();
        let partials = root.partials().unwrap();
        let old = SystemTime::now() - PARTIAL_MAX_AGE - Duration::from_secs(1);
        let make = |seed: &[u8], age: Option<SystemTime>| {
            let digest = Digest::of_bytes(seed);
            let p = partials.open(&digest, || Ok(())).unwrap();
            p.write_at(&[1u8; 300], 0).unwrap();
            if let Some(t) = age {
                fs::File::options()
                    .write(true)
                    .open(p.path())
                    .unwrap()
                    .set_modified(t)
                    .unwrap();
            }
            p
        };
        let held_old = make(b"held", Some(old));
        drop(make(b"young", None));
        drop(make(b"old", Some(old)));
        let dry = reconcile_tmp(root.tmp(), false).unwrap();
        let real = reconcile_tmp(root.tmp(), true).unwrap();
        assert_eq!(dry, real);
        assert_eq!((real.removed, real.bytes), (1, 300));
        let mut left: Vec<_> = fs::read_dir(root.layout().tmp_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        let name = |seed: &[u8]| {
            OsString::from(format!("partial-sha256-{}", Digest::of_bytes(seed).hex()))
        };
        let mut want = vec![name(b"held"), name(b"young")];
        want.sort();
        assert_eq!(left, want);
        drop(held_old);
        assert_eq!(
            reconcile_tmp(root.tmp(), true).unwrap().removed,
            1,
            "released"
        );
    }
}
