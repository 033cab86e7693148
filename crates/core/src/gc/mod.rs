//! The file sweep shared by `remove` and `prune`, and byte measurement.
//!
//! Reachability is decided in the index ([`crate::index::Index::collect_garbage`]); this module
//! only deletes files after the index has committed, so a crash between the two leaves orphan
//! files and never an index row naming a missing file. [`reconcile`] finds those orphans (files
//! under `blobs/`, `layers/`, `fsmeta/` and `vmdk/` that no row names, and anything under `tmp/`) and is run by prune while it
//! holds the exclusive GC lock, so no load is writing at the time.
//!
//! Deletion never follows symlinks (sizes come from `symlink_metadata`, and `remove_dir_all`
//! does not traverse links) and never leaves the cache root: every path is built by
//! [`crate::store::Layout`].

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::index::LiveArtifacts;
use crate::oci::is_sha256_hex;
use crate::store::{EROFS_SUFFIX, Layout, VMDK_SUFFIX};

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
}

impl Swept {
    /// Adds another sweep's counts.
    pub fn add(&mut self, other: &Swept) {
        self.removed += other.removed;
        self.bytes += other.bytes;
        self.allocated += other.allocated;
        self.already_gone += other.already_gone;
    }
}

/// Deletes `paths` (files) in parallel, measuring each from the `lstat` it needs anyway; with
/// `delete` false only measures (a dry run). Files already gone are counted as such, not as
/// errors, so a sweep can be repeated after a crash. The folders are fsynced once at the end.
pub fn sweep_files(paths: &[PathBuf], delete: bool) -> Result<Swept> {
    use rayon::prelude::*;
    let sweep = || {
        paths
            .par_chunks(SWEEP_CHUNK)
            .map(|chunk| {
                let mut out = Swept::default();
                for path in chunk {
                    match fs::symlink_metadata(path) {
                        Ok(meta) => {
                            if delete {
                                match fs::remove_file(path) {
                                    Ok(()) => {}
                                    Err(e) if e.kind() == ErrorKind::NotFound => {
                                        out.already_gone += 1;
                                        continue;
                                    }
                                    Err(e) => return Err(crate::Error::io(path, e)),
                                }
                            }
                            out.removed += 1;
                            out.bytes += meta.len();
                            out.allocated += crate::sys::allocated_bytes(&meta);
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => out.already_gone += 1,
                        Err(e) => return Err(crate::Error::io(path, e)),
                    }
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
    if delete {
        let dirs: HashSet<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
        for dir in dirs {
            crate::store::sync_dir(dir)?;
        }
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

/// Size in bytes of a file or folder tree, without following symlinks.
pub fn tree_size(path: &Path) -> Result<u64> {
    Ok(tree_sizes(path)?.0)
}

/// Apparent and allocated bytes of a file or folder tree, without following symlinks.
pub fn tree_sizes(path: &Path) -> Result<(u64, u64)> {
    let meta = fs::symlink_metadata(path).at(path)?;
    if !meta.is_dir() {
        return Ok((meta.len(), crate::sys::allocated_bytes(&meta)));
    }
    let mut total = (0, 0);
    for entry in fs::read_dir(path).at(path)? {
        let entry = entry.at(path)?;
        let (a, b) = tree_sizes(&entry.path())?;
        total.0 += a;
        total.1 += b;
    }
    Ok(total)
}

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
/// every entry under `tmp/`. With `delete` they are removed and measured; without, only
/// measured (a dry run). Must run under the exclusive GC lock. Returns the total and the
/// layer image, fsmeta and VMDK counts (for the report).
pub fn reconcile(layout: &Layout, live: &LiveArtifacts, delete: bool) -> Result<Reconciled> {
    let mut out = Reconciled::default();
    let dirs = [
        (ArtifactKind::Blob, layout.blobs_dir(), "", &live.blobs),
        (
            ArtifactKind::Layer,
            layout.layers_dir(),
            EROFS_SUFFIX,
            &live.layers,
        ),
        (
            ArtifactKind::Fsmeta,
            layout.fsmeta_dir(),
            EROFS_SUFFIX,
            &live.manifests,
        ),
        (
            ArtifactKind::Vmdk,
            layout.vmdk_dir(),
            VMDK_SUFFIX,
            &live.manifests,
        ),
    ];
    for (kind, dir, suffix, names) in dirs {
        // Orphans named like an artifact of their folder (counted by kind in the report) and
        // stray names (reclaimed and measured, not counted).
        let (mut orphans, mut strays) = (Vec::new(), Vec::new());
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries {
                let entry = entry.at(&dir)?;
                let name = entry.file_name();
                let hex = name.to_str().and_then(|n| n.strip_suffix(suffix));
                if hex.is_some_and(|hex| names.contains(&format!("sha256:{hex}"))) {
                    continue;
                }
                if hex.is_some_and(is_sha256_hex) {
                    orphans.push(entry.path());
                } else {
                    strays.push(entry.path());
                }
            }
        }
        let swept = sweep_files(&orphans, delete)?;
        match kind {
            ArtifactKind::Layer => out.layers += swept.removed,
            ArtifactKind::Fsmeta => out.fsmeta += swept.removed,
            ArtifactKind::Vmdk => out.vmdk += swept.removed,
            ArtifactKind::Blob => {}
        }
        out.swept.add(&swept);
        out.swept.add(&sweep_files(&strays, delete)?);
    }
    let out_swept = &mut out.swept;
    let tmp = layout.tmp_dir();
    let out_tmp = reconcile_tmp(&tmp, delete)?;
    out_swept.add(&out_tmp);
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

/// Deletes (or measures) every entry under `tmp/`.
fn reconcile_tmp(tmp: &Path, delete: bool) -> Result<Swept> {
    let mut out = Swept::default();
    if let Ok(entries) = fs::read_dir(tmp) {
        for entry in entries {
            let path = entry.at(tmp)?.path();
            let (size, alloc) = match tree_sizes(&path) {
                Ok(size) => size,
                Err(_) => {
                    out.already_gone += 1;
                    continue;
                }
            };
            if delete {
                let meta = fs::symlink_metadata(&path).at(&path)?;
                let result = if meta.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                match result {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        out.already_gone += 1;
                        continue;
                    }
                    Err(e) => return Err(crate::Error::io(&path, e)),
                }
            }
            out.removed += 1;
            out.bytes += size;
            out.allocated += alloc;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_tolerates_missing_files_and_measures() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        fs::write(&a, vec![0u8; 1234]).unwrap();
        let dry = sweep_files(&[a.clone(), dir.path().join("missing")], false).unwrap();
        assert!(a.exists());
        let s = sweep_files(&[a.clone(), dir.path().join("missing")], true).unwrap();
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
        layout.ensure().unwrap();
        std::os::unix::fs::symlink(outside.path(), layout.tmp_dir().join("link")).unwrap();
        fs::write(layout.blobs_dir().join("orphan"), b"xx").unwrap();
        let dry = reconcile(&layout, &LiveArtifacts::default(), false).unwrap();
        let real = reconcile(&layout, &LiveArtifacts::default(), true).unwrap();
        assert_eq!(dry.swept.bytes, real.swept.bytes);
        assert_eq!(real.swept.removed, 2);
        assert_eq!(fs::read(outside.path().join("precious")).unwrap(), b"keep");
    }
}
