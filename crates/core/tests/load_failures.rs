//! Loads that fail, and what they leave: nothing. Each test is named after a defect it guards
//! against, and checks the cache after the failure against a snapshot taken before it: every
//! path outside `tmp/` and `locks/` with its size, the bytes of `index.db`, what `list` returns,
//! and an empty `tmp/`.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::oracles::{mount_erofs, require_root, run};
use common::tmpfs::Tmpfs;
use common::*;
use ocicache_core::erofs::MAX_PATH_DEPTH;
use ocicache_core::{Cache, Error, ImageHandle, LoadOptions};
use serde_json::json;

/// A one-layer image whose content (and so every digest) depends on `seed`.
fn image(seed: &str) -> BuiltImage {
    ImageSpec::new(
        "amd64",
        vec![LayerSpec::file(
            Compression::Gzip,
            &format!("app/{seed}"),
            &format!("content of {seed}\n"),
        )],
    )
    .with_cmd(seed)
    .build()
}

/// Writes an OCI layout tar of `images`, each named by a containerd annotation.
fn layout_tar(dir: &Path, name: &str, images: &[(&BuiltImage, &str)]) -> PathBuf {
    let mut layout = OciLayout::new();
    for (img, reference) in images {
        layout.add_image(img, &[(CONTAINERD_NAME, reference)]);
    }
    let path = dir.join(name);
    fs::write(&path, layout.to_tar()).unwrap();
    path
}

/// What a failed load must leave unchanged.
#[derive(Debug, PartialEq)]
struct State {
    /// Every path outside `tmp/` and `locks/` but the index (size for files, `None` for
    /// folders).
    paths: BTreeMap<PathBuf, Option<u64>>,
    /// The bytes of `index.db`. Its WAL and shared-memory files are left out: SQLite manages
    /// them, for readers too.
    index: Vec<u8>,
    listed: Vec<ImageHandle>,
}

fn state(root: &Path, cache: &Cache) -> State {
    let mut paths = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let name = rel.to_string_lossy().into_owned();
            if name == "tmp" || name == "locks" || name.starts_with("index.db") {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
                paths.insert(rel, None);
            } else {
                paths.insert(rel, Some(meta.len()));
            }
        }
    }
    State {
        paths,
        index: fs::read(root.join("index.db")).unwrap_or_default(),
        listed: cache.list().unwrap(),
    }
}

/// Entries left under `tmp/`.
fn tmp_entries(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root.join("tmp"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// Asserts that the load of `source` fails with `code` and leaves the cache as `before`.
fn fails_cleanly(cache: &Cache, root: &Path, source: &Path, code: &str, before: &State) -> Error {
    let err = cache.load(source, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.code(), code, "{}: {err}", source.display());
    assert_eq!(
        &state(root, cache),
        before,
        "{} changed the cache",
        source.display()
    );
    assert_eq!(tmp_entries(root), Vec::<PathBuf>::new(), "tmp/ is cleaned");
    err
}

/// A cache with one image loaded, and its state.
fn loaded_cache(work: &Path) -> (PathBuf, Cache, State) {
    let root = work.join("cache");
    let cache = open(&root);
    let good = image("good");
    cache
        .load(
            &layout_tar(work, "good.tar", &[(&good, "example.com/good:1")]),
            &LoadOptions::default(),
        )
        .unwrap();
    let before = state(&root, &cache);
    (root, cache, before)
}

/// Runs `f` on another thread and waits at most `secs` for it: a load that never returns
/// fails the test instead of hanging it (the stuck thread ends with the test process).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("did not return within {secs} s"))
}

/// Running out of disk mid-load was a plain `IO` error (or worse, left files behind): now it
/// is `NO_SPACE`, `tmp/` is cleaned and the cache is as it was; a load that fits still works.
#[test]
fn a_load_that_runs_out_of_space_is_no_space_and_changes_nothing() {
    if !require_root("tmpfs mounts") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let fs8 = Tmpfs::mount(8 << 20);
    let root = fs8.path().join("cache");
    let cache = open(&root);
    let small = image("small");
    cache
        .load(
            &layout_tar(work.path(), "small.tar", &[(&small, "example.com/small:1")]),
            &LoadOptions::default(),
        )
        .unwrap();
    let before = state(&root, &cache);
    // Too big to stage: 12 MiB of incompressible layer data.
    let big = ImageSpec::new(
        "amd64",
        vec![LayerSpec::new(
            Compression::None,
            vec![FileEntry::new("big", pattern(12 << 20, 1))],
        )],
    )
    .build();
    // Small to stage, too big to convert: 24 MiB of zeros, gzip-compressed.
    let expands = ImageSpec::new(
        "amd64",
        vec![LayerSpec::new(
            Compression::Gzip,
            vec![FileEntry::new("zeros", vec![0u8; 24 << 20])],
        )],
    )
    .build();
    for (name, img) in [("big.tar", &big), ("expands.tar", &expands)] {
        let src = layout_tar(work.path(), name, &[(img, "example.com/too-big:1")]);
        let err = fails_cleanly(&cache, &root, &src, "NO_SPACE", &before);
        let details: BTreeMap<_, _> = err.details().into_iter().collect();
        let path = details["path"].as_str().unwrap();
        assert!(path.starts_with(root.to_str().unwrap()), "{name}: {path}");
        assert_eq!(details["errno"], json!(28), "{name}: ENOSPC");
    }
    let other = image("other");
    let handles = cache
        .load(
            &layout_tar(work.path(), "other.tar", &[(&other, "example.com/other:1")]),
            &LoadOptions::default(),
        )
        .unwrap();
    assert_eq!(handles[0].reference, "example.com/other:1");
    assert_eq!(cache.list().unwrap().len(), 2);
    assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new());
}

/// The last write of a load is the index's (its WAL): a disk that fills up exactly then must
/// leave nothing either, although every artifact was already published. The free space is
/// searched for the largest amount a load does not fit in; every failing amount is checked.
#[test]
fn a_load_whose_commit_runs_out_of_space_takes_its_files_back() {
    if !require_root("tmpfs mounts") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let img = image("fits-barely");
    let src = layout_tar(work.path(), "a.tar", &[(&img, "example.com/a:1")]);
    const PAGE: u64 = 4096;
    // Loads with `free` bytes left on a fresh file system holding an empty cache; checks the
    // cache is unchanged when it fails. Returns the error's path on failure.
    let attempt = |free: u64| -> Option<String> {
        let fs = Tmpfs::mount(16 << 20);
        let root = fs.path().join("cache");
        let cache = open(&root);
        // Creates the cache and its index (a read-only list no longer creates anything).
        cache.prune().unwrap();
        let before = state(&root, &cache);
        fs.fill_leaving("filler", free);
        // No write budget: the default one (the free space) would refuse the load before it
        // reaches the commit, and this test is about the disk filling up at the commit itself.
        let options = LoadOptions {
            max_uncompressed_bytes: Some(u64::MAX),
            ..LoadOptions::default()
        };
        match cache.load(&src, &options) {
            Ok(_) => None,
            Err(err) => {
                assert_eq!(err.code(), "NO_SPACE", "with {free} bytes free: {err}");
                assert_eq!(state(&root, &cache), before, "with {free} bytes free");
                assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new());
                let details: BTreeMap<_, _> = err.details().into_iter().collect();
                Some(details["path"].as_str().unwrap().to_owned())
            }
        }
    };
    let (mut fails, mut fits) = (0u64, 512u64); // in pages
    assert!(
        attempt(fits * PAGE).is_none(),
        "2 MiB is enough for the image"
    );
    assert!(attempt(fails * PAGE).is_some());
    while fits - fails > 1 {
        let mid = (fails + fits) / 2;
        match attempt(mid * PAGE) {
            Some(_) => fails = mid,
            None => fits = mid,
        }
    }
    let last = attempt(fails * PAGE).unwrap();
    assert!(
        last.contains("index.db"),
        "with one page less than a load needs, the index's write fails ({last})"
    );
}

/// Layers nested 5,000 or 50,000 directories deep failed as `CORRUPT_CACHE` (the fsmeta
/// builder's reader refused them) after their layer image and the blobs were published. Paths
/// of more than `MAX_PATH_DEPTH` components are bad input, refused while converting; a layer at
/// exactly that depth loads, and the kernel reads its deepest file.
#[test]
fn layers_nested_too_deep_are_invalid_archive_and_leave_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (root, cache, before) = loaded_cache(work.path());
    let nested = |depth: usize| -> BuiltImage {
        let mut path = vec!["d"; depth - 1].join("/");
        path.push_str("/f");
        // Named by a PAX `path` record, with only the file's own name in the USTAR field.
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("path", path.as_bytes())])
            .unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, b"deep\n".as_slice()).unwrap();
        let mut layer = LayerSpec::new(Compression::Gzip, Vec::new());
        layer.raw = Some(b.into_inner().unwrap());
        ImageSpec::new("amd64", vec![layer]).build()
    };
    for depth in [MAX_PATH_DEPTH + 1, 5_000, 50_000] {
        let img = nested(depth);
        let src = layout_tar(work.path(), "deep.tar", &[(&img, "example.com/deep:1")]);
        let err = fails_cleanly(&cache, &root, &src, "INVALID_ARCHIVE", &before);
        assert!(err.to_string().len() < 300, "the path is not quoted whole");
    }
    let img = nested(MAX_PATH_DEPTH);
    let src = layout_tar(work.path(), "max.tar", &[(&img, "example.com/deep:max")]);
    cache.load(&src, &LoadOptions::default()).unwrap();
    let disk = cache.boot_disk("example.com/deep:max").unwrap();
    if require_root("mounting the deepest layer") {
        let mount = mount_erofs(&disk.layers[0]);
        let deepest = format!("{}/f", vec!["d"; MAX_PATH_DEPTH - 1].join("/"));
        // Relative to the mount point: the path alone is PATH_MAX - 1 bytes.
        let out = run(Command::new("cat").arg(&deepest).current_dir(mount.path()));
        assert_eq!(out.stdout, b"deep\n");
    }
}

/// An image of 70,000 layers failed as `UNSUPPORTED` only after its layer image and 15 MB of
/// blobs were written: the layer count is checked right after the manifest and config are
/// parsed, before any layer is staged.
#[test]
fn images_over_the_layer_limit_are_refused_before_anything_is_written() {
    let work = tempfile::tempdir().unwrap();
    let (root, cache, before) = loaded_cache(work.path());
    const LAYERS: usize = 70_000;
    let layer = LayerSpec::file(Compression::None, "x", "one layer, many times\n").tar();
    let layer_digest = sha256(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": vec![&layer_digest; LAYERS]},
    }))
    .unwrap();
    let descriptor =
        json!({"mediaType": mt::OCI_LAYER, "digest": layer_digest, "size": layer.len()});
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::OCI_CONFIG, "digest": sha256(&config), "size": config.len()},
        "layers": vec![descriptor; LAYERS],
    }))
    .unwrap();
    let mut layout = OciLayout::new();
    layout.entries.push(json!({
        "mediaType": mt::OCI_MANIFEST,
        "digest": sha256(&manifest),
        "size": manifest.len(),
        "annotations": {CONTAINERD_NAME: "example.com/many:1"},
    }));
    for blob in [layer, config, manifest] {
        layout.blobs.insert(sha256(&blob), blob);
    }
    let dir = work.path().join("many");
    fs::create_dir(&dir).unwrap();
    layout.write_dir(&dir);
    let tar = work.path().join("many.tar");
    fs::write(&tar, layout.to_tar()).unwrap();
    for src in [&dir, &tar] {
        fails_cleanly(&cache, &root, src, "UNSUPPORTED", &before);
    }
}

/// A load into a cache whose index is damaged (garbage bytes, a schema from the future)
/// failed only after writing blobs and an fsmeta: the index is opened and checked first.
#[test]
fn a_damaged_index_fails_the_load_before_anything_is_written() {
    let work = tempfile::tempdir().unwrap();
    let (root, cache, _) = loaded_cache(work.path());
    drop(cache); // closes the index: its WAL is checkpointed into index.db
    let next = image("next");
    let src = layout_tar(work.path(), "next.tar", &[(&next, "example.com/next:1")]);
    let good_index = fs::read(root.join("index.db")).unwrap();

    let garbage: Vec<u8> = pattern(good_index.len(), 7);
    fs::write(root.join("index.db"), &garbage).unwrap();
    let before = (listing(&root), garbage.clone());
    let err = open(&root).load(&src, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.code(), "CORRUPT_CACHE", "{err}");
    assert_eq!(
        (listing(&root), fs::read(root.join("index.db")).unwrap()),
        before
    );
    assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new());

    fs::write(root.join("index.db"), &good_index).unwrap();
    {
        let conn = rusqlite::Connection::open(root.join("index.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = (listing(&root), fs::read(root.join("index.db")).unwrap());
    let err = open(&root).load(&src, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.code(), "CORRUPT_CACHE", "{err}");
    assert_eq!(
        (listing(&root), fs::read(root.join("index.db")).unwrap()),
        before
    );
    assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new());
}

/// Every file outside `tmp/` and `locks/` with its size, except SQLite's WAL and shared
/// memory (for caches whose index cannot be opened to list them).
fn listing(root: &Path) -> Vec<(PathBuf, u64)> {
    tree_listing(root, &root.join("locks"))
        .into_iter()
        .filter(|rel| !rel.starts_with("tmp") && !rel.to_string_lossy().starts_with("index.db-"))
        .map(|rel| {
            let len = fs::symlink_metadata(root.join(&rel)).unwrap().len();
            (rel, len)
        })
        .collect()
}

/// `load("/dev/zero")` read 266 GB at full CPU without stopping, and a FIFO without a writer
/// blocked forever: anything but a regular file or a directory is refused without being
/// opened (or read).
#[test]
#[cfg(unix)]
fn sources_that_are_not_files_or_folders_are_refused_without_blocking() {
    let work = tempfile::tempdir().unwrap();
    let (root, cache, _) = loaded_cache(work.path());
    drop(cache); // each load below opens the cache anew, as another process would
    let before = state(&root, &open(&root));
    let fifo = work.path().join("fifo");
    run(Command::new("mkfifo").arg(&fifo));
    let to_zero = work.path().join("zero-link");
    symlink("/dev/zero", &to_zero);
    for source in [PathBuf::from("/dev/zero"), fifo, to_zero] {
        let root2 = root.clone();
        let shown = source.display().to_string();
        let (err, after) = within(60, move || {
            let cache = open(&root2);
            let err = cache.load(&source, &LoadOptions::default()).unwrap_err();
            (err, state(&root2, &cache))
        });
        assert_eq!(err.code(), "INVALID_ARCHIVE", "{shown}: {err}");
        assert_eq!(after, before, "{shown}");
    }
    assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new());
}

/// The outer archive was read to its end, whatever followed the end-of-archive blocks: an
/// archive followed by 8 TiB of zeros (a sparse file) kept the load reading for as long as
/// reading them takes. Reading stops at the end-of-archive marker.
#[test]
fn the_archive_is_read_up_to_its_end_of_archive_marker() {
    let work = tempfile::tempdir().unwrap();
    let img = image("padded");
    let src = layout_tar(work.path(), "padded.tar", &[(&img, "example.com/padded:1")]);
    let file = fs::OpenOptions::new().write(true).open(&src).unwrap();
    let len = file.metadata().unwrap().len();
    file.set_len(len + (8 << 40)).unwrap();
    drop(file);
    let root = work.path().join("cache");
    let handles = within(60, move || {
        open(&root)
            .load(&src, &LoadOptions::default())
            .map(|h| h.len())
    });
    assert_eq!(handles.unwrap(), 1);
}

/// `RepoTags` in digest form (`name@sha256:...`, also `name:tag@sha256:...`) were accepted and
/// listed, but could never be resolved or removed: they are refused, naming the entry. An
/// annotation naming the image by its own manifest digest resolves through get, inspect and
/// remove; one naming another digest names nothing.
#[test]
fn digest_references_as_image_names_are_refused_or_resolve() {
    let work = tempfile::tempdir().unwrap();
    let (root, cache, before) = loaded_cache(work.path());
    let img = image("named-by-digest");
    let other = sha256(b"another manifest");
    for entry in [
        format!("example.com/app@{other}"),
        format!("example.com/app:1@{other}"),
        format!("example.com/app@{}", img.manifest_digest),
    ] {
        let tags: &[&str] = &[entry.as_str()];
        let archive = legacy_docker_archive(&[(&img, tags)], LegacyOptions::default());
        let src = work.path().join("legacy.tar");
        fs::write(&src, archive.to_tar()).unwrap();
        let err = fails_cleanly(&cache, &root, &src, "INVALID_ARCHIVE", &before);
        assert!(err.to_string().contains(&entry), "names the entry: {err}");
    }

    let elsewhere = format!("example.com/app@{other}");
    let src = layout_tar(work.path(), "other.tar", &[(&img, &elsewhere)]);
    fails_cleanly(&cache, &root, &src, "REFERENCE_REQUIRED", &before);

    let own = format!("example.com/app@{}", img.manifest_digest);
    let src = layout_tar(work.path(), "own.tar", &[(&img, &own)]);
    let handles = cache.load(&src, &LoadOptions::default()).unwrap();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].reference, own);
    assert_eq!(cache.get(&own).unwrap().reference, own);
    let detail = cache.inspect(&own).unwrap();
    assert_eq!(
        detail.handle.manifest_digest.as_deref(),
        Some(img.manifest_digest.as_str())
    );
    assert_eq!(detail.layers.len(), 1);
    assert!(cache.list().unwrap().iter().any(|h| h.reference == own));
    cache.remove(&own, false).unwrap();
    assert_eq!(cache.get(&own).unwrap_err().code(), "IMAGE_NOT_FOUND");
    assert_eq!(cache.list().unwrap(), before.listed);
}

/// Invalid digests in the index (a damaged or edited index) were reported as bad input
/// (`INVALID_ARCHIVE`, from parsing them): they are `CORRUPT_CACHE`.
#[test]
fn invalid_digests_in_the_index_are_corrupt_cache() {
    let work = tempfile::tempdir().unwrap();
    let damage = |root: &Path| {
        let conn = rusqlite::Connection::open(root.join("index.db")).unwrap();
        // Schema 4 stores a diff_id once, as its 32 bytes (a CHECK refuses other lengths).
        conn.execute_batch(
            "PRAGMA ignore_check_constraints = ON;
             UPDATE layers SET diff_id = CAST('not-hex' AS BLOB);",
        )
        .unwrap();
    };
    type Op = fn(&Cache) -> Result<(), Error>;
    let ops: [(&str, Op); 3] = [
        ("boot_disk", |c| {
            c.boot_disk("example.com/good:1").map(|_| ())
        }),
        ("remove", |c| {
            c.remove("example.com/good:1", true).map(|_| ())
        }),
        ("prune", |c| c.prune().map(|_| ())),
    ];
    for (i, (what, op)) in ops.into_iter().enumerate() {
        let dir = work.path().join(format!("case{i}"));
        fs::create_dir(&dir).unwrap();
        let (root, cache, _) = loaded_cache(&dir);
        drop(cache);
        damage(&root);
        let err = op(&open(&root)).unwrap_err();
        assert_eq!(err.code(), "CORRUPT_CACHE", "{what}: {err}");
    }
}

/// Loading a file that is not an archive quoted its contents in the error (a tar header's
/// fields printed from a text file, a JSON error echoing a value): no message carries a byte
/// of such a file.
#[test]
fn errors_never_quote_a_file_that_is_not_an_archive() {
    let work = tempfile::tempdir().unwrap();
    let (root, cache, before) = loaded_cache(work.path());
    let secret = "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\npassword=hunter2-correct-horse\n";
    let fragments = [
        "wJalr",
        "K7MDENG",
        "EXAMPLEKEY",
        "hunter2",
        "AWS_SECRET",
        "password",
    ];
    let file = |name: &str, bytes: Vec<u8>| {
        let path = work.path().join(name);
        fs::write(&path, bytes).unwrap();
        path
    };
    let tar_of = |members: &[(&str, Vec<u8>)]| {
        let mut t = TarTree::default();
        for (name, bytes) in members {
            t.file(name, bytes.clone());
        }
        t.to_tar()
    };
    let json_secret = serde_json::to_vec(&json!([secret])).unwrap();
    let mut sources = vec![
        file("secret.txt", secret.repeat(20).into_bytes()),
        file("short.txt", secret.as_bytes().to_vec()),
        file("secret.gz", gzip(secret.repeat(20).as_bytes())),
        file(
            "text-manifest.tar",
            tar_of(&[("manifest.json", secret.as_bytes().to_vec())]),
        ),
        file(
            "json-manifest.tar",
            tar_of(&[("manifest.json", json_secret.clone())]),
        ),
        file(
            "layout.tar",
            tar_of(&[
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
                ("index.json", json_secret.clone()),
            ]),
        ),
        file(
            "digest.tar",
            tar_of(&[
                ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
                (
                    "index.json",
                    serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [
                        {"mediaType": mt::OCI_MANIFEST, "digest": secret, "size": 1}
                    ]}))
                    .unwrap(),
                ),
            ]),
        ),
    ];
    let dir = work.path().join("layout-dir");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("oci-layout"), secret).unwrap();
    fs::write(dir.join("index.json"), secret).unwrap();
    sources.push(dir);
    for src in &sources {
        let err = fails_cleanly(&cache, &root, src, "INVALID_ARCHIVE", &before);
        let shown = format!("{err} {:?}", err.details());
        for fragment in fragments {
            assert!(!shown.contains(fragment), "{}: {shown}", src.display());
        }
    }
}

/// A load of several images committed each image in its own transaction, so a failure after
/// the first commit left the first image behind. All images of a load commit in one
/// transaction: a failure at the second image's rows (a trigger refusing them), or at the
/// commit itself (a deferred constraint the second image breaks, found only once every file
/// is published), leaves no reference and no file of the first.
#[test]
fn a_load_of_several_images_commits_in_one_transaction() {
    let work = tempfile::tempdir().unwrap();
    let (root, cache, before) = loaded_cache(work.path());
    let (first, second) = (image("first"), image("second"));
    let src = layout_tar(
        work.path(),
        "two.tar",
        &[
            (&first, "example.com/first:1"),
            (&second, "example.com/second:1"),
        ],
    );
    let second_ref = "'example.com/second:1'";
    let faults = [
        format!(
            "CREATE TRIGGER fail_second BEFORE INSERT ON image_refs
             WHEN NEW.reference = {second_ref}
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        ),
        format!(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TRIGGER fail_second AFTER INSERT ON image_refs
             WHEN NEW.reference = {second_ref}
             BEGIN INSERT INTO child VALUES (42); END;"
        ),
    ];
    let undo = "DROP TRIGGER fail_second; DROP TABLE IF EXISTS child; DROP TABLE IF EXISTS parent;";
    for fault in &faults {
        let conn = rusqlite::Connection::open(root.join("index.db")).unwrap();
        conn.execute_batch(fault).unwrap();
        let err = cache.load(&src, &LoadOptions::default()).unwrap_err();
        assert_eq!(err.code(), "INDEX", "{fault}: {err}");
        let after = state(&root, &cache);
        assert_eq!(
            after.paths, before.paths,
            "no file of the first image stays: {fault}"
        );
        assert_eq!(
            after.listed, before.listed,
            "no reference of the first image: {fault}"
        );
        assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new());
        conn.execute_batch(undo).unwrap();
    }
    let handles = cache.load(&src, &LoadOptions::default()).unwrap();
    assert_eq!(handles.len(), 2);
}

/// Issue 11: an archive of two images whose second is corrupt (its layer does not match its
/// `diff_id`, or is not a tar at all) left the first image behind when images were recorded
/// one by one. Every layer of a load converts before any row is written, and all images commit
/// in one transaction: no reference, row or file of the first stays, whether the archive is a
/// tar read in place, a compressed stream, or a legacy `docker save` archive.
#[test]
fn an_archive_whose_second_image_is_corrupt_leaves_no_reference_of_the_first() {
    let work = tempfile::tempdir().unwrap();
    let (root, cache, before) = loaded_cache(work.path());
    let first = image("first-of-two");
    let second = |faults: Faults, raw: Option<Vec<u8>>| {
        let mut spec = ImageSpec::new(
            "amd64",
            vec![LayerSpec::file(Compression::Gzip, "app/second", "second\n")],
        )
        .with_cmd("second")
        .with_faults(faults);
        spec.layers[0].raw = raw;
        spec.build()
    };
    let cases = [
        (
            second(
                Faults {
                    wrong_diff_id: Some(0),
                    ..Faults::default()
                },
                None,
            ),
            "DIGEST_MISMATCH",
        ),
        (
            second(
                Faults::default(),
                Some(b"just some text, not a tar archive".repeat(20)),
            ),
            "INVALID_ARCHIVE",
        ),
    ];
    for (bad, code) in &cases {
        let mut layout = OciLayout::new();
        layout
            .add_image(&first, &[(CONTAINERD_NAME, "example.com/first:1")])
            .add_image(bad, &[(CONTAINERD_NAME, "example.com/second:1")]);
        let legacy = legacy_docker_archive(
            &[
                (&first, &["example.com/first:1"]),
                (bad, &["example.com/second:1"]),
            ],
            LegacyOptions::default(),
        );
        let sources = [
            ("two.tar", layout.to_tar()),
            ("two.tar.gz", layout.to_tar_gz()),
            ("two-legacy.tar", legacy.to_tar()),
        ];
        for (name, bytes) in sources {
            let src = work.path().join(name);
            fs::write(&src, bytes).unwrap();
            fails_cleanly(&cache, &root, &src, code, &before);
            assert_eq!(
                cache.get("example.com/first:1").unwrap_err().code(),
                "IMAGE_NOT_FOUND",
                "{name}: no reference of the first image"
            );
            for layer in &first.layers {
                let file = root
                    .join("layers/sha256")
                    .join(format!("{}.erofs", hex_of(&layer.diff_id)));
                assert!(!file.exists(), "{name}: no layer image of the first image");
            }
        }
    }
}
