//! The file sweep shared by `remove` and `prune`, and byte measurement.
//!
//! Reachability is decided in the index ([`crate::index::Index::collect_planned`]); this module
//! only deletes files after the index has committed, so a crash between the two leaves orphan
//! files and never an index row naming a missing file. [`reconcile`] finds those orphans (files
//! under `blobs/`, `layers/`, `fsmeta/` and `vmdk/` that no row names, and leftovers under
//! `tmp/`) and is run by prune while it holds the exclusive GC lock, so no load is writing at
//! the time. [`sweep_and_reconcile`] starts deleting the files the committed transaction freed
//! at once, on the sweep's threads, and lists the folders for orphans meanwhile.
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
use crate::index::{Collected, DigestBytes, LiveArtifacts};
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
    let mut out = sweep_folders(&[(folder, names)], delete)?;
    Ok(out.pop().unwrap_or_default())
}

/// [`sweep_files`] over several folders at once, in one parallel pass whose work alternates
/// between the folders: an unlink holds its folder's lock (ext4's `i_rwsem`), so threads
/// spread over several folders wait for each other less than threads in one. Each folder is
/// fsynced once at the end. Returns each folder's counts, in order.
pub fn sweep_folders<N: AsRef<OsStr> + Sync>(
    folders: &[(&Folder, &[N])],
    delete: bool,
) -> Result<Vec<Swept>> {
    use rayon::prelude::*;
    // Chunks of each folder, taken in turn from each.
    let mut chunks: Vec<(usize, &[N])> = Vec::new();
    let mut per_folder: Vec<std::slice::Chunks<'_, N>> = folders
        .iter()
        .map(|(_, names)| names.chunks(SWEEP_CHUNK))
        .collect();
    loop {
        let before = chunks.len();
        for (f, it) in per_folder.iter_mut().enumerate() {
            if let Some(chunk) = it.next() {
                chunks.push((f, chunk));
            }
        }
        if chunks.len() == before {
            break;
        }
    }
    let sweep = || {
        chunks
            .par_iter()
            .map(|&(f, chunk)| sweep_chunk(folders[f].0, chunk, delete).map(|s| (f, s)))
            .collect::<Vec<Result<(usize, Swept)>>>()
    };
    let results = match sweep_pool() {
        Some(pool) => pool.install(sweep),
        None => sweep(),
    };
    let mut out = vec![Swept::default(); folders.len()];
    for r in results {
        let (f, swept) = r?;
        out[f].add(&swept);
    }
    if delete {
        for (folder, names) in folders {
            if !names.is_empty() {
                folder.sync()?;
            }
        }
    }
    Ok(out)
}

/// Deletes (or measures) the files `names` of `folder`, one after the other.
fn sweep_chunk<N: AsRef<OsStr>>(folder: &Folder, names: &[N], delete: bool) -> Result<Swept> {
    let dir = folder.dir();
    let mut out = Swept::default();
    for name in names {
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

/// File names of what `collected` removed from the index: blobs, layer images, and the fsmeta
/// and VMDK of each manifest.
struct CollectedNames {
    blobs: Vec<String>,
    layers: Vec<String>,
    fsmeta: Vec<String>,
    vmdk: Vec<String>,
}

impl CollectedNames {
    fn of(collected: &Collected) -> CollectedNames {
        let names = |digests: &mut dyn Iterator<Item = &DigestBytes>, suffix: &str| {
            digests
                .map(|d| {
                    let mut name = hex::encode(d);
                    name.push_str(suffix);
                    name
                })
                .collect::<Vec<_>>()
        };
        CollectedNames {
            blobs: names(&mut collected.blobs.iter().map(|(d, _)| d), ""),
            layers: names(&mut collected.layers.iter(), EROFS_SUFFIX),
            fsmeta: names(&mut collected.manifests.iter(), EROFS_SUFFIX),
            vmdk: names(&mut collected.manifests.iter(), VMDK_SUFFIX),
        }
    }

    /// Deletes (or measures) them, all folders in one pass.
    fn sweep(&self, root: &Root, delete: bool) -> Result<Reconciled> {
        let swept = sweep_folders(
            &[
                (root.blobs(), &self.blobs[..]),
                (root.layers(), &self.layers[..]),
                (root.fsmeta_dir(), &self.fsmeta[..]),
                (root.vmdk_dir(), &self.vmdk[..]),
            ],
            delete,
        )?;
        let mut out = Reconciled {
            fsmeta: swept[2].removed,
            vmdk: swept[3].removed,
            ..Reconciled::default()
        };
        for s in &swept {
            out.swept.add(s);
        }
        Ok(out)
    }
}

/// Deletes the files of what `collected` removed from the index (blobs, layer images, and the
/// fsmeta and VMDK of each manifest), or only measures them when `delete` is false.
pub fn sweep_collected(root: &Root, collected: &Collected, delete: bool) -> Result<Reconciled> {
    CollectedNames::of(collected).sweep(root, delete)
}

/// What [`sweep_and_reconcile`] did: the files of the collection, and the reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweptAndReconciled {
    /// The files the collection freed ([`sweep_collected`]).
    pub collected: Reconciled,
    /// Orphans, stray names and `tmp/` leftovers ([`reconcile`]).
    pub reconciled: Reconciled,
}

/// The names in the four artifact folders, as [`while_listing`] found them.
#[derive(Debug, Default)]
pub struct Listing {
    /// Per folder (in [`artifact_folders`] order): the digests that well-formed names spell
    /// (`<hex>`, `<hex>.erofs`, `<hex>.vmdk`), and every other name.
    folders: [(Vec<DigestBytes>, Vec<OsString>); 4],
}

impl Listing {
    /// Lists the artifact folders of `root`.
    fn of(root: &Root) -> Result<Listing> {
        let mut out = Listing::default();
        for (k, (_, folder, suffix)) in artifact_folders(root).into_iter().enumerate() {
            let (digests, strays) = &mut out.folders[k];
            for entry in folder.dir().entries().at(folder.path())? {
                let name = entry.at(folder.path())?.file_name();
                match name
                    .to_str()
                    .and_then(|n| n.strip_suffix(suffix))
                    .and_then(digest_of_hex)
                {
                    Some(d) => digests.push(d),
                    None => strays.push(name),
                }
            }
        }
        Ok(out)
    }

    /// The names neither `live` nor `going` (files being swept) holds: orphans named like an
    /// artifact of their folder (counted by kind in the report) and stray names (reclaimed
    /// and measured, not counted).
    fn unnamed(self, live: &LiveArtifacts, going: &LiveArtifacts) -> [Unnamed; 4] {
        let mut out: [Unnamed; 4] = Default::default();
        for (k, ((kind, suffix), (digests, strays))) in
            ARTIFACT_KINDS.into_iter().zip(self.folders).enumerate()
        {
            let (names, swept) = match kind {
                ArtifactKind::Blob => (&live.blobs, &going.blobs),
                ArtifactKind::Layer => (&live.layers, &going.layers),
                ArtifactKind::Fsmeta | ArtifactKind::Vmdk => (&live.manifests, &going.manifests),
            };
            out[k].orphans = digests
                .into_iter()
                .filter(|d| !names.contains(d) && !swept.contains(d))
                .map(|d| OsString::from(hex::encode(d) + suffix))
                .collect();
            out[k].strays = strays;
        }
        out
    }
}

/// Runs `body` (a collection's index transaction) while another thread lists the artifact
/// folders for [`sweep_and_reconcile`]. Only under the exclusive GC lock: no load or rebuild
/// adds a file meanwhile, and nothing is deleted before the transaction commits, so the
/// listing is what the disk holds when the transaction decides.
pub fn while_listing<T>(root: &Root, body: impl FnOnce() -> Result<T>) -> Result<(Listing, T)> {
    std::thread::scope(|s| {
        let listing = s.spawn(|| Listing::of(root));
        let out = body();
        let listing = listing
            .join()
            .unwrap_or_else(|_| Err(Error::internal("listing the cache's folders panicked")));
        let out = out?;
        Ok((listing?, out))
    })
}

/// Deletes the files of what `collected` removed from the index, then reconciles the disk with
/// the index: the collected files start being deleted at once on the sweep's threads, while
/// this thread runs `meanwhile` (a checkpoint of the index, say) and finds, in `listing`, the
/// names that neither [`Collected::kept`] nor the collection holds. Those orphans and the
/// `tmp/` leftovers are then swept. Must run under the exclusive GC lock that was held for the
/// listing and the collection's transaction, after that transaction committed (or, with
/// `delete` false, to measure a dry run).
pub fn sweep_and_reconcile(
    root: &Root,
    collected: &Collected,
    listing: Listing,
    delete: bool,
    meanwhile: impl FnOnce() -> Result<()>,
) -> Result<SweptAndReconciled> {
    let names = CollectedNames::of(collected);
    let (swept, found) = std::thread::scope(|s| {
        let sweeping = s.spawn(|| names.sweep(root, delete));
        let found = meanwhile().map(|()| {
            let going = LiveArtifacts {
                blobs: collected.blobs.iter().map(|(d, _)| *d).collect(),
                layers: collected.layers.iter().copied().collect(),
                manifests: collected.manifests.iter().copied().collect(),
            };
            listing.unnamed(&collected.kept, &going)
        });
        let swept = sweeping
            .join()
            .unwrap_or_else(|_| Err(Error::internal("the sweep panicked")));
        (swept, found)
    });
    let collected = swept?;
    let reconciled = sweep_unnamed(root, &found?, delete)?;
    Ok(SweptAndReconciled {
        collected,
        reconciled,
    })
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
    let found = Listing::of(root)?.unnamed(live, &LiveArtifacts::default());
    sweep_unnamed(root, &found, delete)
}

/// Names in one artifact folder that no row names: well-named orphans and stray names.
#[derive(Debug, Default)]
struct Unnamed {
    orphans: Vec<OsString>,
    strays: Vec<OsString>,
}

/// The kinds of the artifact folders and their files' suffixes, in [`artifact_folders`] order.
const ARTIFACT_KINDS: [(ArtifactKind, &str); 4] = [
    (ArtifactKind::Blob, ""),
    (ArtifactKind::Layer, EROFS_SUFFIX),
    (ArtifactKind::Fsmeta, EROFS_SUFFIX),
    (ArtifactKind::Vmdk, VMDK_SUFFIX),
];

/// The artifact folders with their kinds and suffixes.
fn artifact_folders(root: &Root) -> [(ArtifactKind, &Folder, &'static str); 4] {
    let folders = [
        root.blobs(),
        root.layers(),
        root.fsmeta_dir(),
        root.vmdk_dir(),
    ];
    let mut k = 0;
    folders.map(|folder| {
        let (kind, suffix) = ARTIFACT_KINDS[k];
        k += 1;
        (kind, folder, suffix)
    })
}

/// The stored digest a file name's hex spells: 64 lowercase hex digits, as the cache names
/// its files (any other spelling is a stray name).
fn digest_of_hex(hex: &str) -> Option<DigestBytes> {
    if !crate::oci::is_sha256_hex(hex) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// Deletes (or measures) what [`Listing::unnamed`] found, then the leftovers under `tmp/`.
fn sweep_unnamed(root: &Root, found: &[Unnamed; 4], delete: bool) -> Result<Reconciled> {
    let mut out = Reconciled::default();
    for ((kind, folder, _), unnamed) in artifact_folders(root).into_iter().zip(found) {
        let swept = sweep_files(folder, &unnamed.orphans, delete)?;
        match kind {
            ArtifactKind::Layer => out.layers += swept.removed,
            ArtifactKind::Fsmeta => out.fsmeta += swept.removed,
            ArtifactKind::Vmdk => out.vmdk += swept.removed,
            ArtifactKind::Blob => {}
        }
        out.swept.add(&swept);
        out.swept
            .add(&sweep_files(folder, &unnamed.strays, delete)?);
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
    use crate::oci::Digest;
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
