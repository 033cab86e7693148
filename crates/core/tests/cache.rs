//! Behaviour of the `Cache` façade on real archives: what load records, what remove and prune
//! delete (checked against the disk), uses, failure atomicity and concurrent use of one root.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use ocicache_core::{Cache, CacheOptions, Holder, LoadOptions};

fn image(seed: &str, shared_base: bool) -> BuiltImage {
    let base = LayerSpec::file(Compression::Gzip, "etc/base", "the shared base layer\n");
    let own = LayerSpec::file(
        Compression::Gzip,
        &format!("app/{seed}"),
        &format!("content of {seed}\n"),
    );
    let layers = if shared_base {
        vec![base, own]
    } else {
        vec![own]
    };
    ImageSpec::new("amd64", layers).with_cmd(seed).build()
}

/// Writes an OCI layout tar holding `images` named by containerd annotations.
fn layout_tar(dir: &Path, name: &str, images: &[(&BuiltImage, &str)]) -> PathBuf {
    let mut layout = OciLayout::new();
    for (img, reference) in images {
        layout.add_image(img, &[(CONTAINERD_NAME, reference)]);
    }
    let path = dir.join(name);
    fs::write(&path, layout.to_tar()).unwrap();
    path
}

/// Every file under `root` except the index and locks, with its size.
fn files(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    for rel in tree_listing(root, &root.join("locks")) {
        let meta = fs::symlink_metadata(root.join(&rel)).unwrap();
        let name = rel.to_string_lossy();
        if meta.is_file() && !name.starts_with("index.db") {
            out.insert(rel, meta.len());
        }
    }
    out
}

/// The EROFS image of a layer.
fn layer_file(root: &Path, diff_id: &str) -> PathBuf {
    root.join("layers/sha256")
        .join(format!("{}.erofs", hex_of(diff_id)))
}

fn bytes(root: &Path) -> u64 {
    files(root).values().sum()
}

#[test]
fn load_records_what_the_image_says() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let a = image("a", true);
    let src = layout_tar(work.path(), "a.tar", &[(&a, "example.com/app:1")]);
    let cache = open(&root);
    let handles = cache
        .load(
            &src,
            &LoadOptions {
                tag: Some("app:extra".into()),
                platform: None,
                ..Default::default()
            },
        )
        .unwrap();
    let refs: Vec<_> = handles.iter().map(|h| h.reference.as_str()).collect();
    assert_eq!(refs, ["example.com/app:1", "app:extra"]);

    let d = cache.inspect("example.com/app:1").unwrap();
    assert_eq!(
        d.handle.manifest_digest.as_deref(),
        Some(a.manifest_digest.as_str())
    );
    assert_eq!(d.handle.layer_count, 2);
    assert_eq!(d.handle.architecture.as_deref(), Some("amd64"));
    let config = d.config.unwrap();
    assert_eq!(config.digest, a.config_digest);
    assert_eq!(config.cmd, Some(vec!["a".to_string()]));
    for (i, (got, want)) in d.layers.iter().zip(&a.layers).enumerate() {
        assert_eq!(got.position, i as u32);
        assert_eq!(got.diff_id, want.diff_id);
        assert_eq!(got.blob_digest, want.digest);
        assert_eq!(got.media_type, want.media_type);
        assert_eq!(got.compressed_size_bytes, want.blob.len() as u64);
        // The layer is kept as its EROFS image, named by diff_id; the blob is not kept.
        let erofs = layer_file(&root, &want.diff_id);
        assert_eq!(
            got.erofs_size_bytes,
            Some(fs::metadata(&erofs).unwrap().len())
        );
        assert!(
            !root
                .join("blobs/sha256")
                .join(hex_of(&want.digest))
                .exists()
        );
    }
    // sizeBytes is exactly the files of the image on disk.
    assert_eq!(d.handle.size_bytes, Some(bytes(&root)));
    // Any spelling finds it; a digest reference too.
    assert_eq!(
        cache.get("docker.io/library/app:extra").unwrap().reference,
        "app:extra"
    );
    let by_digest = cache
        .get(&format!("example.com/app@{}", a.manifest_digest))
        .unwrap();
    assert_eq!(
        by_digest.reference,
        format!("example.com/app@{}", a.manifest_digest)
    );
    assert_eq!(
        cache.get("example.com/app:2").unwrap_err().code(),
        "IMAGE_NOT_FOUND"
    );
    // tmp/ is empty after a load.
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn remove_deletes_exactly_what_only_that_image_used() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let (a, b) = (image("a", true), image("b", true));
    let src = layout_tar(
        work.path(),
        "ab.tar",
        &[(&a, "example.com/a:1"), (&b, "example.com/b:1")],
    );
    let cache = open(&root);
    cache.load(&src, &LoadOptions::default()).unwrap();
    let before = bytes(&root);
    let report = cache.remove("example.com/a:1", false).unwrap();
    let after = bytes(&root);
    assert_eq!(report.image_refs_removed, 1);
    assert_eq!(report.manifests_removed, 1);
    assert_eq!(report.layers_removed, 1, "only the unshared layer goes");
    assert_eq!(report.bytes_reclaimed, Some(before - after));
    let blob = |d: &str| root.join("blobs/sha256").join(hex_of(d));
    assert!(!blob(&a.manifest_digest).exists());
    assert!(!blob(&a.config_digest).exists());
    assert!(!layer_file(&root, &a.layers[1].diff_id).exists());
    assert!(
        layer_file(&root, &a.layers[0].diff_id).exists(),
        "the base layer b still uses stays"
    );
    assert!(cache.inspect("example.com/b:1").is_ok());
    assert_eq!(
        cache.remove("example.com/a:1", false).unwrap_err().code(),
        "IMAGE_NOT_FOUND"
    );
}

#[test]
fn uses_pin_images_through_remove_and_prune() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let a = image("a", false);
    let src = layout_tar(work.path(), "a.tar", &[(&a, "example.com/a:1")]);
    let cache = open(&root);
    cache.load(&src, &LoadOptions::default()).unwrap();
    let u = cache
        .acquire("example.com/a:1", Holder::Sandbox("sb-1".into()))
        .unwrap();
    assert_eq!(
        cache
            .acquire("example.com/a:1", Holder::Sandbox("sb-1".into()))
            .unwrap()
            .id,
        u.id
    );
    assert!(cache.get("example.com/a:1").unwrap().last_used_at.is_some());
    match cache.remove("example.com/a:1", false).unwrap_err() {
        ocicache_core::Error::ImageInUse { holders, .. } => assert_eq!(holders, ["sandbox:sb-1"]),
        other => panic!("unexpected {other}"),
    }
    let before = bytes(&root);
    let report = cache.remove("example.com/a:1", true).unwrap();
    assert_eq!(
        (report.image_refs_removed, report.manifests_removed),
        (1, 0)
    );
    assert_eq!(bytes(&root), before, "force keeps the data a use pins");
    assert_eq!(cache.prune().unwrap().manifests_removed, 0);
    assert_eq!(cache.uses(None).unwrap().len(), 1);
    cache.release(&u.id).unwrap();
    cache.release(&u.id).unwrap();
    let report = cache.prune().unwrap();
    assert_eq!((report.manifests_removed, report.layers_removed), (1, 1));
    assert_eq!(report.bytes_reclaimed, Some(before));
    assert_eq!(bytes(&root), 0);
}

#[test]
fn prune_reclaims_orphans_and_tmp_leftovers_and_counts_them() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let a = image("a", false);
    let src = layout_tar(work.path(), "a.tar", &[(&a, "example.com/a:1")]);
    let cache = open(&root);
    cache.load(&src, &LoadOptions::default()).unwrap();
    cache
        .acquire("example.com/a:1", Holder::Snapshot("snap".into()))
        .unwrap();
    // What a killed load leaves: a published blob no row names, and its staging folder.
    fs::write(
        root.join("blobs/sha256").join("0".repeat(64)),
        vec![7u8; 5000],
    )
    .unwrap();
    fs::create_dir_all(root.join("tmp/load-dead/m")).unwrap();
    fs::write(root.join("tmp/load-dead/m/0"), vec![1u8; 3000]).unwrap();
    // A layer image published by a load killed before its index commit, and a stray name.
    fs::write(
        layer_file(&root, &format!("sha256:{}", "1".repeat(64))),
        vec![0u8; 4096],
    )
    .unwrap();
    fs::write(root.join("layers/sha256/stray"), vec![0u8; 10]).unwrap();
    let before = bytes(&root);
    let report = cache.prune().unwrap();
    assert_eq!(
        report.image_refs_removed, 0,
        "a used image keeps its references"
    );
    assert_eq!(report.bytes_reclaimed, Some(8000 + 4096 + 10));
    assert_eq!(
        report.layers_removed, 1,
        "the orphan layer image counts as a layer, the stray name only in bytes"
    );
    assert_eq!(bytes(&root), before - 8000 - 4096 - 10);
    for l in &a.layers {
        assert!(layer_file(&root, &l.diff_id).exists(), "a used layer stays");
    }
    assert!(cache.inspect("example.com/a:1").is_ok());
}

#[test]
fn failed_loads_leave_the_cache_exactly_as_it_was() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let good = image("good", true);
    let cache = open(&root);
    cache
        .load(
            &layout_tar(work.path(), "g.tar", &[(&good, "example.com/g:1")]),
            &LoadOptions::default(),
        )
        .unwrap();
    let before = (files(&root), cache.list().unwrap());
    let faulty = |faults: Faults| {
        ImageSpec::new("amd64", vec![LayerSpec::file(Compression::Gzip, "x", "y")])
            .with_faults(faults)
            .build()
    };
    let cases: Vec<(&str, BuiltImage, &str)> = vec![
        (
            "diff_id",
            faulty(Faults {
                wrong_diff_id: Some(0),
                ..Faults::default()
            }),
            "DIGEST_MISMATCH",
        ),
        (
            "layer count",
            faulty(Faults {
                extra_diff_id: true,
                ..Faults::default()
            }),
            "INVALID_ARCHIVE",
        ),
        (
            "media type",
            faulty(Faults {
                layer_media_type: Some("application/x-nope".into()),
                ..Faults::default()
            }),
            "INVALID_ARCHIVE",
        ),
        (
            "truncated",
            faulty(Faults {
                truncated_layer_blob: Some(0),
                ..Faults::default()
            }),
            "INVALID_ARCHIVE",
        ),
    ];
    for (what, img, code) in cases {
        let src = layout_tar(
            work.path(),
            "bad.tar",
            &[
                (&good, "example.com/also-good:1"),
                (&img, "example.com/bad:1"),
            ],
        );
        let err = cache.load(&src, &LoadOptions::default()).unwrap_err();
        assert_eq!(err.code(), code, "{what}: {err}");
        assert_eq!(
            (files(&root), cache.list().unwrap()),
            before,
            "{what} changed the cache"
        );
    }
    // An OCI layout whose only name is a bare tag needs `tag`.
    let mut layout = OciLayout::new();
    layout.add_image(&good, &[(REF_NAME, "1")]);
    let src = work.path().join("bare.tar");
    fs::write(&src, layout.to_tar()).unwrap();
    assert_eq!(
        cache
            .load(&src, &LoadOptions::default())
            .unwrap_err()
            .code(),
        "REFERENCE_REQUIRED"
    );
    assert_eq!((files(&root), cache.list().unwrap()), before);
    let h = cache
        .load(
            &src,
            &LoadOptions {
                tag: Some("example.com/named:1".into()),
                platform: None,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(h[0].reference, "example.com/named:1");
}

#[test]
fn cloud_backend_touches_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("never");
    let cache = Cache::open(CacheOptions {
        root: Some(root.clone()),
        backend: Some(ocicache_core::Backend::Cloud {
            url: "https://cache.invalid".into(),
        }),
    })
    .unwrap();
    assert_eq!(cache.list().unwrap_err().code(), "UNSUPPORTED");
    assert_eq!(cache.prune().unwrap_err().code(), "UNSUPPORTED");
    assert_eq!(cache.get("busybox").unwrap_err().code(), "UNSUPPORTED");
    assert!(!root.exists());
}

/// Several cache handles on one root (each with its own lock file descriptor and SQLite
/// connection, as separate processes have) load and prune at once; afterwards every listed
/// image is whole on disk.
#[test]
fn concurrent_loads_and_prunes_on_one_root_stay_consistent() {
    let work = tempfile::tempdir().unwrap();
    let root = Arc::new(work.path().join("cache"));
    let sources: Vec<PathBuf> = (0..3)
        .map(|i| {
            let img = image(&format!("c{i}"), true);
            layout_tar(
                work.path(),
                &format!("c{i}.tar"),
                &[(&img, &format!("example.com/c{i}:1"))],
            )
        })
        .collect();
    let sources = Arc::new(sources);
    let mut threads = Vec::new();
    for t in 0..4 {
        let (root, sources) = (root.clone(), sources.clone());
        threads.push(std::thread::spawn(move || {
            let cache = open(&root);
            for round in 0..8 {
                if t == 3 {
                    cache.prune().unwrap();
                } else {
                    cache
                        .load(
                            &sources[(t + round) % sources.len()],
                            &LoadOptions::default(),
                        )
                        .unwrap();
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let cache = open(&root);
    for h in cache.list().unwrap() {
        let d = cache.inspect(&h.reference).unwrap();
        let digest = d.handle.manifest_digest.unwrap();
        let mut needed = vec![
            root.join("blobs/sha256").join(hex_of(&digest)),
            root.join("blobs/sha256")
                .join(hex_of(&d.config.unwrap().digest)),
            root.join("fsmeta/sha256")
                .join(format!("{}.erofs", hex_of(&digest))),
            root.join("vmdk/sha256")
                .join(format!("{}.vmdk", hex_of(&digest))),
        ];
        needed.extend(d.layers.iter().map(|l| layer_file(&root, &l.diff_id)));
        for file in needed {
            assert!(file.is_file(), "{} lacks {}", h.reference, file.display());
        }
    }
    cache.prune().unwrap();
    assert_eq!(bytes(&root), 0);
}

#[test]
fn boot_disk_rebuilds_missing_fsmeta_and_vmdk_byte_for_byte() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let a = image("a", true);
    let src = layout_tar(work.path(), "a.tar", &[(&a, "example.com/a:1")]);
    let cache = open(&root);
    cache.load(&src, &LoadOptions::default()).unwrap();
    let disk = cache.boot_disk("example.com/a:1").unwrap();
    assert_eq!(disk.layers.len(), 2);
    for (path, layer) in disk.layers.iter().zip(&a.layers) {
        assert_eq!(path, &layer_file(&root, &layer.diff_id));
    }
    let before = (
        fs::read(&disk.fsmeta).unwrap(),
        fs::read(&disk.vmdk).unwrap(),
    );
    let size_before = cache.get("example.com/a:1").unwrap().size_bytes;
    fs::remove_file(&disk.fsmeta).unwrap();
    fs::remove_file(&disk.vmdk).unwrap();
    // Only the layer images are left to rebuild from: no blob of the layers exists.
    for layer in &a.layers {
        assert!(
            !root
                .join("blobs/sha256")
                .join(hex_of(&layer.digest))
                .exists()
        );
    }
    let again = cache.boot_disk("example.com/a:1").unwrap();
    assert_eq!(again, disk);
    assert_eq!(
        (
            fs::read(&disk.fsmeta).unwrap(),
            fs::read(&disk.vmdk).unwrap()
        ),
        before,
        "a rebuild gives the same bytes"
    );
    assert_eq!(
        cache.get("example.com/a:1").unwrap().size_bytes,
        size_before
    );
    assert_eq!(size_before, Some(bytes(&root)));
    assert_eq!(
        cache.boot_disk("example.com/nope:1").unwrap_err().code(),
        "IMAGE_NOT_FOUND"
    );
}

/// A layer tar of one GNU sparse file (`tar --format=gnu --sparse`) of `size` bytes holding a
/// few bytes at its start, its middle and its end; `None` (after the skip/fail gate) without
/// GNU tar.
fn sparse_layer_tar(dir: &Path, size: u64) -> Option<Vec<u8>> {
    if !require_tool("tar") {
        return None;
    }
    let src = dir.join("sparse-src");
    fs::create_dir_all(&src).unwrap();
    let file = src.join("bomb");
    let f = fs::File::create(&file).unwrap();
    f.set_len(size).unwrap();
    for at in [0, size / 2 + 12_345, size - 3] {
        std::os::unix::fs::FileExt::write_all_at(&f, b"abc", at).unwrap();
    }
    drop(f);
    let tar = dir.join("sparse.tar");
    let out = std::process::Command::new("tar")
        .args(["--format=gnu", "--sparse", "--numeric-owner", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("bomb")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    fs::remove_dir_all(&src).unwrap();
    Some(fs::read(&tar).unwrap())
}

/// What broke: nothing bounded what a load wrote, and a 6 KB archive (one GNU sparse file
/// declaring 64 GiB) filled the disk with zeros. Now holes cost nothing, and every load writes
/// at most `max_uncompressed_bytes` (by default the free space less a reserve), counted while
/// it writes, across all layers: over it, `LIMIT_EXCEEDED` and the cache exactly as before.
#[test]
fn loads_write_at_most_max_uncompressed_bytes() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let cache = open(&root);
    let with_limit = |limit: u64| LoadOptions {
        max_uncompressed_bytes: Some(limit),
        ..Default::default()
    };
    cache
        .load(
            &layout_tar(
                work.path(),
                "g.tar",
                &[(&image("good", true), "example.com/g:1")],
            ),
            &LoadOptions::default(),
        )
        .unwrap();
    let before = (files(&root), cache.list().unwrap());

    // Two dense layers of 3 MiB each (gzip-compressed to a few KiB): 6 MiB of layer data.
    let dense = |seed: &str| {
        let data: Vec<u8> = format!("{seed} ").into_bytes().repeat(3 << 20)[..3 << 20].to_vec();
        LayerSpec::new(Compression::Gzip, vec![FileEntry::new(seed, data)])
    };
    let big = ImageSpec::new("amd64", vec![dense("one"), dense("two")]).build();
    let src = layout_tar(work.path(), "big.tar", &[(&big, "example.com/big:1")]);
    for limit in [1, 64 << 10, 4 << 20, (6 << 20) - 1] {
        let err = cache.load(&src, &with_limit(limit)).unwrap_err();
        assert_eq!(err.code(), "LIMIT_EXCEEDED", "limit {limit}: {err}");
        assert!(
            matches!(err, ocicache_core::Error::LimitExceeded { limit: l, .. } if l == limit),
            "{err:?}"
        );
        assert_eq!(
            (files(&root), cache.list().unwrap()),
            before,
            "a load over {limit} bytes changed the cache"
        );
    }
    // Enough for both layer images and the staged archive files.
    cache.load(&src, &with_limit(8 << 20)).unwrap();
    assert!(cache.get("example.com/big:1").is_ok());
    assert_eq!(
        cache.load(&src, &with_limit(0)).unwrap_err().code(),
        "INVALID_ARGUMENT"
    );

    // The archive's own files count too: an uncompressed layer blob is staged as it is.
    let plain = ImageSpec::new(
        "amd64",
        vec![LayerSpec::new(
            Compression::None,
            vec![FileEntry::new("p", vec![7u8; 1 << 20])],
        )],
    )
    .build();
    let before = (files(&root), cache.list().unwrap());
    let src = layout_tar(work.path(), "plain.tar", &[(&plain, "example.com/plain:1")]);
    let err = cache.load(&src, &with_limit(1 << 19)).unwrap_err();
    assert_eq!(err.code(), "LIMIT_EXCEEDED", "{err}");
    assert_eq!((files(&root), cache.list().unwrap()), before);

    // The sparse bomb: a 64 GiB file in a 20 KiB tar loads (its holes cost nothing, so even a
    // 16 MiB limit holds it) into a layer image of a few MiB.
    let Some(bomb) = sparse_layer_tar(work.path(), 64 << 30) else {
        return;
    };
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    let mut layer = LayerSpec::new(Compression::Gzip, Vec::new());
    layer.raw = Some(bomb.clone());
    let img = ImageSpec::new("amd64", vec![layer]).build();
    let src = layout_tar(work.path(), "bomb.tar", &[(&img, "example.com/bomb:1")]);
    cache.load(&src, &with_limit(16 << 20)).unwrap();
    let image = layer_file(&root, &sha256(&bomb));
    let size = fs::metadata(&image).unwrap().len();
    assert!(size < 8 << 20, "the bomb's layer image is {size} bytes");
    // Loading it again under the default limit reuses the layer image.
    cache.load(&src, &LoadOptions::default()).unwrap();
}
