//! References and pins: digest prefixes and bare digests resolve everywhere a reference does,
//! a manifest a use holds stays reachable and listed after its tag moved or went, `tag`,
//! releasing a holder's uses, and `keep` entries that name nothing.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use ocicache_core::{AcquireOptions, Holder, ListOptions, LoadOptions, PruneOptions};

fn archive(dir: &Path, seed: &str, reference: &str) -> (BuiltImage, PathBuf) {
    let img = ImageSpec::new(
        "amd64",
        vec![LayerSpec::file(
            Compression::Gzip,
            &format!("app/{seed}"),
            seed,
        )],
    )
    .with_cmd(seed)
    .build();
    let mut layout = OciLayout::new();
    layout.add_image(&img, &[(CONTAINERD_NAME, reference)]);
    let path = dir.join(format!("{seed}.tar"));
    fs::write(&path, layout.to_tar()).unwrap();
    (img, path)
}

#[test]
fn digest_prefixes_and_bare_digests_resolve_for_every_operation() {
    let work = tempfile::tempdir().unwrap();
    let cache = open(&work.path().join("cache"));
    let (a, a_tar) = archive(work.path(), "a", "example.com/a:1");
    cache.load(&a_tar, &LoadOptions::default()).unwrap();
    let digest = a.manifest_digest.clone();
    let hex = hex_of(&digest).to_owned();
    for input in [
        digest.as_str(),
        &hex[..12],
        &hex[..20],
        &hex,
        &format!("sha256:{}", &hex[..12]),
    ] {
        let h = cache.get(input).unwrap();
        assert_eq!(
            h.manifest_digest.as_deref(),
            Some(digest.as_str()),
            "{input}"
        );
        assert_eq!(h.reference, "example.com/a:1", "{input}");
        assert_eq!(cache.inspect(input).unwrap().layers.len(), 1);
        assert_eq!(cache.uses(Some(input)).unwrap().len(), 0);
        cache.boot_disk(input).unwrap();
    }
    // Too short, a digest of nothing cached.
    assert_eq!(cache.get(&hex[..11]).unwrap_err().code(), "IMAGE_NOT_FOUND");
    let other = format!("sha256:{}", "0".repeat(64));
    assert_eq!(cache.get(&other).unwrap_err().code(), "IMAGE_NOT_FOUND");
    let u = cache
        .acquire(&hex[..12], Holder::Sandbox("sb".into()))
        .unwrap();
    assert_eq!(
        (u.reference.as_str(), u.manifest_digest.as_str()),
        ("example.com/a:1", digest.as_str())
    );
    cache.release(&u.id).unwrap();
    cache.remove(&hex[..12], false).unwrap();
    assert!(cache.list().unwrap().is_empty());
}

#[test]
fn a_pinned_manifest_whose_tag_moved_stays_reachable_and_listed() {
    let work = tempfile::tempdir().unwrap();
    let cache = open(&work.path().join("cache"));
    let (one, one_tar) = archive(work.path(), "one", "example.com/app:latest");
    let (two, two_tar) = archive(work.path(), "two", "example.com/app:latest");
    cache.load(&one_tar, &LoadOptions::default()).unwrap();
    let pinned = cache
        .acquire("example.com/app:latest", Holder::Sandbox("sb-42".into()))
        .unwrap();
    // The tag moves to another manifest.
    cache.load(&two_tar, &LoadOptions::default()).unwrap();
    assert_eq!(cache.list().unwrap().len(), 1);
    let all = cache.list_with(&ListOptions { all: true }).unwrap();
    assert_eq!(all.len(), 2);
    let untagged = &all[1];
    assert!(!untagged.tagged && all[0].tagged);
    let by_digest = format!("example.com/app@{}", one.manifest_digest);
    assert_eq!(untagged.reference, by_digest);
    assert_eq!(
        untagged.manifest_digest.as_deref(),
        Some(one.manifest_digest.as_str())
    );
    // Reachable by digest, by bare digest and by prefix; it boots what was pinned.
    for input in [
        by_digest.as_str(),
        one.manifest_digest.as_str(),
        &hex_of(&one.manifest_digest)[..12],
    ] {
        let h = cache.get(input).unwrap();
        assert_eq!(
            h.manifest_digest.as_deref(),
            Some(one.manifest_digest.as_str()),
            "{input}"
        );
        let disk = cache.boot_disk(input).unwrap();
        assert!(
            disk.fsmeta
                .to_string_lossy()
                .contains(hex_of(&one.manifest_digest))
        );
    }
    assert_eq!(cache.uses(Some(&by_digest)).unwrap(), vec![pinned.clone()]);
    // Another repository does not reach it by digest.
    let other = format!("example.com/other@{}", one.manifest_digest);
    assert_eq!(cache.get(&other).unwrap_err().code(), "IMAGE_NOT_FOUND");
    // The tag goes too (with force): still reachable, and remove of it without force is refused.
    cache.remove("example.com/app:latest", true).unwrap();
    assert_eq!(
        cache.get(&by_digest).unwrap().manifest_digest,
        untagged.manifest_digest
    );
    assert_eq!(
        cache.remove(&by_digest, false).unwrap_err().code(),
        "IMAGE_IN_USE"
    );
    // Releasing the holder's uses lets prune take it.
    assert_eq!(
        cache
            .release_holder(&Holder::Sandbox("sb-42".into()))
            .unwrap(),
        1
    );
    assert_eq!(
        cache
            .release_holder(&Holder::Sandbox("sb-42".into()))
            .unwrap(),
        0
    );
    cache.prune().unwrap();
    assert!(
        cache
            .list_with(&ListOptions { all: true })
            .unwrap()
            .is_empty()
    );
    let _ = two;
}

#[test]
fn tag_points_a_new_reference_at_a_cached_manifest() {
    let work = tempfile::tempdir().unwrap();
    let cache = open(&work.path().join("cache"));
    let (a, a_tar) = archive(work.path(), "a", "example.com/a:1");
    let (b, b_tar) = archive(work.path(), "b", "example.com/b:1");
    cache.load(&a_tar, &LoadOptions::default()).unwrap();
    cache.load(&b_tar, &LoadOptions::default()).unwrap();
    let h = cache.tag("example.com/a:1", "mine:v1").unwrap();
    assert_eq!(h.reference, "mine:v1");
    assert_eq!(
        h.manifest_digest.as_deref(),
        Some(a.manifest_digest.as_str())
    );
    // Re-pointing an existing tag, from a digest prefix.
    let h = cache
        .tag(&hex_of(&b.manifest_digest)[..12], "mine:v1")
        .unwrap();
    assert_eq!(
        h.manifest_digest.as_deref(),
        Some(b.manifest_digest.as_str())
    );
    assert_eq!(cache.list().unwrap().len(), 3);
    assert_eq!(
        cache.tag("nope:1", "x:1").unwrap_err().code(),
        "IMAGE_NOT_FOUND"
    );
    let digest_target = format!("x@{}", a.manifest_digest);
    assert_eq!(
        cache.tag("mine:v1", &digest_target).unwrap_err().code(),
        "INVALID_REFERENCE"
    );
    assert_eq!(
        cache.tag("mine:v1", "Bad Name").unwrap_err().code(),
        "INVALID_REFERENCE"
    );
    assert_eq!(cache.list().unwrap().len(), 3);
}

#[test]
fn keep_entries_that_name_nothing_cached_are_warned_about() {
    let work = tempfile::tempdir().unwrap();
    let cache = open(&work.path().join("cache"));
    let (_, a_tar) = archive(work.path(), "a", "example.com/a:1");
    cache.load(&a_tar, &LoadOptions::default()).unwrap();
    let report = cache
        .prune_with(&PruneOptions {
            dry_run: true,
            keep: vec!["debian".into(), "example.com/a:1".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("debian:latest"),
        "{:?}",
        report.warnings
    );
    assert_eq!(report.image_refs_removed, 0, "example.com/a:1 is kept");
    let _ = AcquireOptions::default();
}

/// A manifest only uses hold has a row in disk usage (after the tagged ones, named as
/// `list_with(all)` names it): nothing reclaimable while a use pins it, its exclusive bytes once
/// the last use expired, which is what a prune then frees.
#[test]
fn disk_usage_has_a_row_for_a_manifest_only_uses_hold() {
    let work = tempfile::tempdir().unwrap();
    let cache = open(&work.path().join("cache"));
    let (one, one_tar) = archive(work.path(), "one", "example.com/app:latest");
    let (_two, two_tar) = archive(work.path(), "two", "example.com/app:latest");
    cache.load(&one_tar, &LoadOptions::default()).unwrap();
    cache
        .acquire("example.com/app:latest", Holder::Sandbox("sb-1".into()))
        .unwrap();
    cache
        .acquire_with(
            "example.com/app:latest",
            Holder::Snapshot("snap".into()),
            &AcquireOptions { ttl_ms: Some(300) },
        )
        .unwrap();
    cache.load(&two_tar, &LoadOptions::default()).unwrap();
    let usage = cache.disk_usage().unwrap();
    assert_eq!(usage.images.len(), 2);
    assert!(usage.images[0].tagged);
    let held = &usage.images[1];
    assert!(!held.tagged);
    assert_eq!(
        held.reference,
        format!("example.com/app@{}", one.manifest_digest)
    );
    assert_eq!(held.manifest_digest, one.manifest_digest);
    assert!(held.exclusive_bytes > 0);
    assert_eq!(held.reclaimable_bytes, 0, "pinned by sb-1");
    // Only the snapshot's use, which expires, is left.
    cache
        .release_holder(&Holder::Sandbox("sb-1".into()))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    let usage = cache.disk_usage().unwrap();
    let held = usage.images.iter().find(|i| !i.tagged).unwrap();
    assert_eq!(held.reclaimable_bytes, held.exclusive_bytes);
    let plan = cache
        .prune_with(&PruneOptions {
            dry_run: true,
            keep: vec!["example.com/app:latest".into()],
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(plan.manifests_removed, 1);
    assert_eq!(plan.bytes_reclaimed, Some(held.exclusive_bytes));
}
