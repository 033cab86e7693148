//! The cache root is a trust boundary. A folder or file inside the root that is a symlink
//! (planted by mistake, by a backup tool, or by someone who may write the cache but not the
//! rest of the host) used to redirect the cache's writes and deletes: with `tmp/` a symlink,
//! prune emptied the other folder; with `layers/` or `fsmeta/sha256` a symlink, prune deleted
//! `*.erofs` files there; load, bootDisk and opening the cache wrote layer images, blobs, locks,
//! fsmeta and `index.db` through such links. And a stray folder where the sweep expected a file
//! stopped a prune halfway, after its index transaction had committed.
//!
//! Each test plants the thing, runs the operations, and checks that files outside the root are
//! untouched (names, sizes, contents) and that the operation failed with `CORRUPT_CACHE` naming
//! the path, or (for entries the sweep meets) that it went on and reported them.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use ocicache_core::{Error, LoadOptions};

fn image(seed: &str) -> BuiltImage {
    let base = LayerSpec::file(Compression::Gzip, "etc/base", "the shared base layer\n");
    let own = LayerSpec::file(
        Compression::Gzip,
        &format!("app/{seed}"),
        &format!("content of {seed}\n"),
    );
    ImageSpec::new("amd64", vec![base, own])
        .with_cmd(seed)
        .build()
}

/// Writes an OCI layout tar holding `img` named `reference`.
fn layout_tar(dir: &Path, name: &str, img: &BuiltImage, reference: &str) -> PathBuf {
    let mut layout = OciLayout::new();
    layout.add_image(img, &[(CONTAINERD_NAME, reference)]);
    let path = dir.join(name);
    fs::write(&path, layout.to_tar()).unwrap();
    path
}

/// Every entry under `dir` (relative path, then kind, size and content), never following a
/// symlink; a missing `dir` is empty.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return out;
    };
    if !meta.is_dir() {
        out.insert(
            PathBuf::new(),
            ("file".into(), meta.len(), fs::read(dir).unwrap()),
        );
        return out;
    }
    for rel in tree_listing(dir, Path::new("/nonexistent")) {
        let path = dir.join(&rel);
        let meta = fs::symlink_metadata(&path).unwrap();
        let entry = if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            (
                "symlink".into(),
                0,
                target.into_os_string().into_encoded_bytes(),
            )
        } else if meta.is_dir() {
            ("dir".into(), 0, Vec::new())
        } else {
            ("file".into(), meta.len(), fs::read(&path).unwrap())
        };
        out.insert(rel, entry);
    }
    out
}

/// The path an error names when it is `CORRUPT_CACHE` about one file or folder of the cache.
fn corrupt_path(err: &Error) -> Option<PathBuf> {
    if err.code() != "CORRUPT_CACHE" {
        return None;
    }
    err.details()
        .into_iter()
        .find(|(name, _)| *name == "path")
        .and_then(|(_, v)| v.as_str().map(PathBuf::from))
}

/// Fills `dir` with decoys named like everything the cache writes or deletes in its folders.
fn decoys(dir: &Path) {
    let hex = |c: char| c.to_string().repeat(64);
    fs::create_dir_all(dir.join("sha256/sub")).unwrap();
    fs::create_dir_all(dir.join("load-decoy/inner")).unwrap();
    for (name, bytes) in [
        (hex('0'), b"blob-like".to_vec()),
        (format!("{}.erofs", hex('1')), vec![1u8; 4096]),
        (
            format!("{}.vmdk", hex('2')),
            b"# Disk DescriptorFile".to_vec(),
        ),
        ("stray".into(), b"stray".to_vec()),
        ("gc.lock".into(), b"not a lock".to_vec()),
        ("00.lock".into(), b"not a lock either".to_vec()),
        ("load-decoy/inner/part".into(), vec![2u8; 3000]),
        (format!("sha256/{}", hex('3')), b"nested blob-like".to_vec()),
        (format!("sha256/{}.erofs", hex('4')), vec![3u8; 4096]),
        (format!("sha256/{}.vmdk", hex('5')), b"nested vmdk".to_vec()),
        ("sha256/sub/deep".into(), b"deep".to_vec()),
    ] {
        fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A cache at `<work>/cache` holding `example.com/a:1`, whose fsmeta and VMDK are deleted so
/// that a boot disk rebuilds them; and the archive of a second image, to load.
struct Fixture {
    work: tempfile::TempDir,
    root: PathBuf,
    other: PathBuf,
}

fn fixture() -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let a = image("a");
    let src = layout_tar(work.path(), "a.tar", &a, "example.com/a:1");
    let other = layout_tar(work.path(), "b.tar", &image("b"), "example.com/b:1");
    let cache = open(&root);
    cache.load(&src, &LoadOptions::default()).unwrap();
    let disk = cache.boot_disk("example.com/a:1").unwrap();
    fs::remove_file(&disk.fsmeta).unwrap();
    fs::remove_file(&disk.vmdk).unwrap();
    Fixture { work, root, other }
}

/// Runs every operation on a fresh `Cache` (so the index is opened again) and returns each
/// one's outcome: `Ok(())` or the error.
fn every_operation(f: &Fixture) -> Vec<(&'static str, Result<(), Error>)> {
    vec![
        ("open", open(&f.root).list().map(drop)),
        (
            "load",
            open(&f.root)
                .load(&f.other, &LoadOptions::default())
                .map(drop),
        ),
        (
            "boot disk",
            open(&f.root).boot_disk("example.com/a:1").map(drop),
        ),
        ("disk usage", open(&f.root).disk_usage().map(drop)),
        (
            "remove",
            open(&f.root).remove("example.com/a:1", true).map(drop),
        ),
        ("prune", open(&f.root).prune().map(drop)),
    ]
}

/// Moves `<root>/<rel>` out of the root and puts a symlink to `target` in its place.
fn plant(f: &Fixture, rel: &str, target: &Path) {
    let path = f.root.join(rel);
    let aside = f
        .work
        .path()
        .join(format!("aside-{}", rel.replace('/', "-")));
    fs::rename(&path, &aside).unwrap();
    symlink(target, &path).unwrap();
}

/// Regression: a cache folder that is a symlink to another folder redirected the cache's
/// writes and deletes there (prune emptied a symlinked `tmp/`, deleted `*.erofs` files through
/// `layers/` and `fsmeta/sha256`; load, bootDisk and open wrote through the links). Every
/// operation now fails with CORRUPT_CACHE naming the folder, and the other folder is untouched.
#[test]
fn a_symlinked_cache_folder_never_redirects_writes_or_deletes() {
    for rel in [
        "tmp",
        "layers",
        "layers/sha256",
        "fsmeta/sha256",
        "vmdk/sha256",
        "blobs/sha256",
        "blobs",
        "locks",
        "locks/layers",
    ] {
        let f = fixture();
        let outside = f.work.path().join("outside");
        decoys(&outside);
        plant(&f, rel, &outside);
        let before = snapshot(&outside);
        for (op, outcome) in every_operation(&f) {
            let err = outcome.expect_err(&format!("{op} with {rel} a symlink"));
            assert_eq!(
                corrupt_path(&err),
                Some(f.root.join(rel)),
                "{op} with {rel} a symlink: {err}"
            );
        }
        assert_eq!(
            snapshot(&outside),
            before,
            "{rel}: the decoys are untouched"
        );
    }
}

/// Regression: `index.db` (or its WAL or shared-memory file) as a symlink made opening the
/// cache read and write the file it points to. Every operation now fails with CORRUPT_CACHE
/// naming the file, which stays as it was.
#[test]
fn a_symlinked_index_file_is_refused() {
    for name in ["index.db", "index.db-wal", "index.db-shm"] {
        let f = fixture();
        let outside = f.work.path().join("outside.db");
        let path = f.root.join(name);
        if path.exists() {
            fs::copy(&path, &outside).unwrap();
            plant(&f, name, &outside);
        } else {
            fs::write(&outside, b"decoy").unwrap();
            symlink(&outside, &path).unwrap();
        }
        let before = snapshot(&outside);
        for (op, outcome) in every_operation(&f) {
            let err = outcome.expect_err(&format!("{op} with {name} a symlink"));
            assert_eq!(
                corrupt_path(&err),
                Some(path.clone()),
                "{op} with {name} a symlink: {err}"
            );
        }
        assert_eq!(snapshot(&outside), before, "{name}: the decoy is untouched");
    }
}

/// Regression: a lock file that is a symlink was opened (and a dangling one created) through
/// the link. Load and prune now fail with CORRUPT_CACHE naming the lock file.
#[test]
fn a_symlinked_lock_file_is_refused() {
    let f = fixture();
    let cache = open(&f.root);
    // The stripes loading the other image takes: one per layer, by the diff_id's first byte.
    let b = image("b");
    let stripes = b.layers.iter().map(|l| {
        f.root
            .join("locks/layers")
            .join(format!("{}.lock", &hex_of(&l.diff_id)[..2]))
    });
    for lock in [f.root.join("locks/gc.lock")].into_iter().chain(stripes) {
        let created = f.work.path().join("created-through-the-link");
        let _ = fs::remove_file(&lock);
        symlink(&created, &lock).unwrap();
        let err = open(&f.root)
            .load(&f.other, &LoadOptions::default())
            .unwrap_err();
        assert_eq!(corrupt_path(&err), Some(lock.clone()), "{err}");
        if lock.ends_with("gc.lock") {
            let err = cache.prune().unwrap_err();
            assert_eq!(corrupt_path(&err), Some(lock.clone()), "{err}");
        }
        assert!(!created.exists(), "nothing is created through {lock:?}");
        fs::remove_file(&lock).unwrap();
    }
    open(&f.root)
        .load(&f.other, &LoadOptions::default())
        .unwrap();
}

/// Regression: a layer image or fsmeta that is a symlink to a file elsewhere was handed out
/// by bootDisk (and the VM would have read the other file). It is now CORRUPT_CACHE naming it.
#[test]
fn a_symlinked_artifact_file_is_refused() {
    let f = fixture();
    let cache = open(&f.root);
    let disk = cache.boot_disk("example.com/a:1").unwrap();
    for artifact in [disk.layers[0].clone(), disk.fsmeta.clone()] {
        let outside = f.work.path().join("outside.erofs");
        fs::rename(&artifact, &outside).unwrap();
        symlink(&outside, &artifact).unwrap();
        let before = snapshot(&outside);
        let err = open(&f.root).boot_disk("example.com/a:1").unwrap_err();
        assert_eq!(corrupt_path(&err), Some(artifact.clone()), "{err}");
        assert_eq!(snapshot(&outside), before);
        fs::remove_file(&artifact).unwrap();
        fs::rename(&outside, &artifact).unwrap();
    }
    // A load that needs the layer refuses a symlink there too.
    let layer = disk.layers[0].clone();
    let outside = f.work.path().join("outside.erofs");
    fs::rename(&layer, &outside).unwrap();
    symlink(&outside, &layer).unwrap();
    let err = open(&f.root)
        .load(&f.other, &LoadOptions::default())
        .unwrap_err();
    assert_eq!(corrupt_path(&err), Some(layer), "{err}");
}

/// The `tmp/` sweep, rewritten beneath handles, still treats a symlink inside `tmp/` as a
/// leftover link: removed as a link, never followed, so what it points to stays.
#[test]
fn prune_removes_a_symlink_in_tmp_without_following_it() {
    let f = fixture();
    let outside = f.work.path().join("outside");
    decoys(&outside);
    let before = snapshot(&outside);
    symlink(&outside, f.root.join("tmp/load-link")).unwrap();
    symlink(outside.join("stray"), f.root.join("tmp/file-link")).unwrap();
    let report = open(&f.root).prune().unwrap();
    assert_eq!(snapshot(&outside), before);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(fs::read_dir(f.root.join("tmp")).unwrap().count(), 0);
}

/// Regression: a stray folder named like an artifact stopped prune with `IO ... Is a
/// directory` after the index had committed (the image was already removed). Prune now skips
/// it, reports it in `warnings`, and reclaims the rest; symlinks named like artifacts are
/// left the same way (never followed).
#[test]
fn prune_skips_stray_folders_named_like_artifacts_and_reports_them() {
    let f = fixture();
    let cache = open(&f.root);
    let disk = cache.boot_disk("example.com/a:1").unwrap();
    let detail = cache.inspect("example.com/a:1").unwrap();
    let manifest_blob = f
        .root
        .join("blobs/sha256")
        .join(hex_of(detail.handle.manifest_digest.as_deref().unwrap()));
    // Collected artifacts (the image goes) replaced by folders...
    let collected = [
        manifest_blob,
        disk.layers[1].clone(),
        disk.fsmeta.clone(),
        disk.vmdk.clone(),
    ];
    for path in &collected {
        fs::remove_file(path).unwrap();
        fs::create_dir(path).unwrap();
        fs::write(path.join("inside"), b"kept").unwrap();
    }
    // ...and orphans the reconciliation meets: a folder and a symlink named like artifacts.
    let outside = f.work.path().join("outside");
    decoys(&outside);
    let orphan_dir = f
        .root
        .join(format!("fsmeta/sha256/{}.erofs", "6".repeat(64)));
    fs::create_dir(&orphan_dir).unwrap();
    let orphan_link = f
        .root
        .join(format!("layers/sha256/{}.erofs", "7".repeat(64)));
    symlink(
        outside.join(format!("{}.erofs", "1".repeat(64))),
        &orphan_link,
    )
    .unwrap();
    let before = snapshot(&outside);

    let dry = cache.prune_with(&ocicache_core::PruneOptions {
        dry_run: true,
        ..Default::default()
    });
    let report = cache.prune().unwrap();
    assert_eq!(
        dry.unwrap().warnings,
        report.warnings,
        "a dry run warns the same"
    );
    assert_eq!(report.image_refs_removed, 1);
    assert_eq!(report.manifests_removed, 1);
    let mut warned: Vec<PathBuf> = collected.to_vec();
    warned.extend([orphan_dir.clone(), orphan_link.clone()]);
    assert_eq!(report.warnings.len(), warned.len(), "{:?}", report.warnings);
    for path in &warned {
        let shown = path.to_string_lossy();
        assert!(
            report.warnings.iter().any(|w| w.contains(shown.as_ref())),
            "{shown} in {:?}",
            report.warnings
        );
        assert!(
            fs::symlink_metadata(path).is_ok(),
            "{shown} is left in place"
        );
    }
    assert_eq!(snapshot(&outside), before);
    // Everything else is reclaimed: the index is empty and only the warned entries remain.
    assert!(cache.list().unwrap().is_empty());
    let mut left: Vec<PathBuf> = Vec::new();
    for dir in [
        "blobs/sha256",
        "layers/sha256",
        "fsmeta/sha256",
        "vmdk/sha256",
        "tmp",
    ] {
        for entry in fs::read_dir(f.root.join(dir)).unwrap() {
            left.push(entry.unwrap().path());
        }
    }
    left.sort();
    warned.sort();
    assert_eq!(left, warned);
}
