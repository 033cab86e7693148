//! Prune options ([`PruneOptions`]), expiring uses and disk usage, checked against the disk:
//! every report's `bytes_reclaimed` is the drop in artifact bytes the test measures itself, a
//! dry run reports exactly what the real prune right after does, and eviction by size frees a
//! shared layer only with its last user.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use ocicache_core::{AcquireOptions, Cache, Holder, ImagePruneReport, LoadOptions, PruneOptions};

/// The lifetime of expiring uses in these tests: long enough that a loaded machine checks a
/// use before it expires, short enough to wait for.
const TTL_MS: u64 = 1000;

/// How long the tests leave between "old" and "recent" references, twice the age and grace
/// thresholds they use, so a loaded machine still falls on the right side of each.
const AGE_GAP_MS: u64 = 1000;

/// Sleeps until the clock reads at least `t` (ms since the epoch).
fn sleep_until(t: i64) {
    let now = now_ms();
    if t > now {
        sleep(Duration::from_millis((t - now) as u64));
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn gzip_layer(path: &str, content: &str, repeat: usize) -> LayerSpec {
    LayerSpec::file(Compression::Gzip, path, &content.repeat(repeat))
}

fn base_layer() -> LayerSpec {
    gzip_layer("etc/base", "shared by every image\n", 40)
}

fn mid_layer() -> LayerSpec {
    gzip_layer("usr/lib/mid", "shared by a group\n", 300)
}

/// An image with `layers` and a command of its own (so its own config and manifest).
fn image(cmd: &str, layers: Vec<LayerSpec>) -> BuiltImage {
    ImageSpec::new("amd64", layers).with_cmd(cmd).build()
}

/// An image of the base layer and a top layer of its own.
fn simple(name: &str) -> BuiltImage {
    image(
        name,
        vec![
            base_layer(),
            gzip_layer(&format!("app/{name}"), &format!("{name} only\n"), 100),
        ],
    )
}

/// Loads each `(image, reference)` from an OCI layout tar of its own, so each reference gets
/// its own `created_at`.
fn load_each(cache: &Cache, dir: &Path, images: &[(&BuiltImage, &str)]) {
    for (i, (img, reference)) in images.iter().enumerate() {
        let mut layout = OciLayout::new();
        layout.add_image(img, &[(CONTAINERD_NAME, reference)]);
        let path = dir.join(format!("{}-{i}.tar", hex_of(&img.manifest_digest)));
        fs::write(&path, layout.to_tar()).unwrap();
        cache.load(&path, &LoadOptions::default()).unwrap();
    }
}

/// Loads several images from one OCI layout tar.
fn load_together(cache: &Cache, dir: &Path, images: &[(&BuiltImage, &str)]) {
    let mut layout = OciLayout::new();
    for (img, reference) in images {
        layout.add_image(img, &[(CONTAINERD_NAME, reference)]);
    }
    let path = dir.join("together.tar");
    fs::write(&path, layout.to_tar()).unwrap();
    cache.load(&path, &LoadOptions::default()).unwrap();
}

/// Acquires and releases a use: refreshes the reference's `last_used_at`.
fn touch(cache: &Cache, reference: &str) {
    let u = cache
        .acquire(reference, Holder::Sandbox(format!("touch-{reference}")))
        .unwrap();
    cache.release(&u.id).unwrap();
}

/// Every artifact file (`blobs/`, `layers/`, `fsmeta/`, `vmdk/`, `tmp/`) with its size.
fn artifacts(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    for dir in ["blobs", "layers", "fsmeta", "vmdk", "tmp"] {
        let top = root.join(dir);
        if !top.exists() {
            continue;
        }
        for rel in tree_listing(&top, Path::new("")) {
            let meta = fs::symlink_metadata(top.join(&rel)).unwrap();
            if meta.is_file() {
                out.insert(Path::new(dir).join(rel), meta.len());
            }
        }
    }
    out
}

fn artifact_bytes(root: &Path) -> u64 {
    artifacts(root).values().sum()
}

fn index_bytes(root: &Path) -> u64 {
    ["index.db", "index.db-wal", "index.db-shm"]
        .iter()
        .filter_map(|name| fs::metadata(root.join(name)).ok())
        .map(|m| m.len())
        .sum()
}

fn bytes_under(root: &Path, dir: &str) -> u64 {
    artifacts(root)
        .iter()
        .filter(|(p, _)| p.starts_with(dir))
        .map(|(_, s)| s)
        .sum()
}

fn size(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().len()
}

fn layer_file(root: &Path, diff_id: &str) -> PathBuf {
    root.join("layers/sha256")
        .join(format!("{}.erofs", hex_of(diff_id)))
}

/// The files of `img` (manifest, config, fsmeta, VMDK, layers), except the layers listed in
/// `shared`.
fn own_files(root: &Path, img: &BuiltImage, shared: &[&str]) -> Vec<PathBuf> {
    let hex = hex_of(&img.manifest_digest);
    let mut out = vec![
        root.join("blobs/sha256").join(hex),
        root.join("blobs/sha256").join(hex_of(&img.config_digest)),
        root.join("fsmeta/sha256").join(format!("{hex}.erofs")),
        root.join("vmdk/sha256").join(format!("{hex}.vmdk")),
    ];
    for l in &img.layers {
        if !shared.contains(&l.diff_id.as_str()) {
            out.push(layer_file(root, &l.diff_id));
        }
    }
    out
}

fn own_bytes(root: &Path, img: &BuiltImage, shared: &[&str]) -> u64 {
    own_files(root, img, shared).iter().map(|p| size(p)).sum()
}

fn removed_refs(r: &ImagePruneReport) -> Vec<&str> {
    r.removed.iter().map(|p| p.reference.as_str()).collect()
}

fn refs(cache: &Cache) -> Vec<String> {
    let mut v: Vec<String> = cache
        .list()
        .unwrap()
        .into_iter()
        .map(|h| h.reference)
        .collect();
    v.sort();
    v
}

/// A dry run with `opts` (which must change nothing on disk or in the index), then the real
/// prune: the reports must agree, and the real one's bytes must be the measured drop.
fn dry_then_real(cache: &Cache, root: &Path, opts: PruneOptions) -> ImagePruneReport {
    let disk = artifacts(root);
    let listed = refs(cache);
    let dry = cache
        .prune_with(&PruneOptions {
            dry_run: true,
            ..opts.clone()
        })
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(artifacts(root), disk, "a dry run changes no file");
    assert_eq!(refs(cache), listed, "a dry run changes no reference");
    let before = artifact_bytes(root);
    let real = cache.prune_with(&opts).unwrap();
    assert_eq!(
        real,
        ImagePruneReport {
            dry_run: false,
            ..dry
        }
    );
    assert_eq!(
        real.bytes_reclaimed,
        Some(before - artifact_bytes(root)),
        "reclaimed bytes are the measured drop"
    );
    assert_eq!(
        real.bytes_after,
        real.bytes_before - real.bytes_reclaimed.unwrap()
    );
    real
}

/// alpha and beta sharing the base layer, loaded in that order.
fn alpha_beta(dir: &Path) -> (Cache, PathBuf, BuiltImage, BuiltImage) {
    let root = dir.join("cache");
    let cache = open(&root);
    let alpha = simple("alpha");
    let beta = simple("beta");
    load_each(
        &cache,
        dir,
        &[
            (&alpha, "example.com/team/alpha:1.0"),
            (&beta, "beta:latest"),
        ],
    );
    (cache, root, alpha, beta)
}

#[test]
fn prune_without_options_keeps_its_meaning_and_reports_sizes_per_reference() {
    let work = tempfile::tempdir().unwrap();
    let (cache, root, alpha, beta) = alpha_beta(work.path());
    let base = base_layer().tar();
    let base_id = sha256(&base);
    let alpha_own = own_bytes(&root, &alpha, &[&base_id]);
    let all = artifact_bytes(&root);
    let before = all + index_bytes(&root);

    let dry = cache
        .prune_with(&PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        })
        .unwrap();
    let report = cache.prune().unwrap();
    assert_eq!(
        report,
        ImagePruneReport {
            dry_run: false,
            ..dry
        }
    );
    assert_eq!(report.image_refs_removed, 2);
    assert_eq!(report.manifests_removed, 2);
    assert_eq!(report.layers_removed, 3);
    assert_eq!(report.fsmeta_removed, 2);
    assert_eq!(report.vmdk_removed, 2);
    assert_eq!(report.bytes_reclaimed, Some(all));
    assert!(report.allocated_bytes_reclaimed.unwrap() > 0);
    assert_eq!(report.bytes_before, before);
    assert_eq!(report.bytes_after, before - all);
    assert_eq!(artifact_bytes(&root), 0);
    // Least recently used first; alpha leaves the shared base layer to beta, whose removal
    // frees it.
    assert_eq!(
        removed_refs(&report),
        ["example.com/team/alpha:1.0", "beta:latest"]
    );
    assert_eq!(report.removed[0].manifest_digest, alpha.manifest_digest);
    assert_eq!(report.removed[0].bytes_freed, alpha_own);
    assert_eq!(report.removed[1].manifest_digest, beta.manifest_digest);
    assert_eq!(report.removed[1].bytes_freed, all - alpha_own);
}

#[test]
fn dry_run_equals_the_real_prune_for_every_option() {
    let cases = [
        PruneOptions::default(),
        PruneOptions {
            keep: vec!["beta".into()],
            ..PruneOptions::default()
        },
        PruneOptions {
            older_than_ms: Some(now_ms() + 60_000),
            ..PruneOptions::default()
        },
        PruneOptions {
            grace_period_ms: 60_000,
            ..PruneOptions::default()
        },
        PruneOptions {
            max_bytes: Some(0),
            ..PruneOptions::default()
        },
        PruneOptions {
            max_bytes: Some(u64::MAX),
            ..PruneOptions::default()
        },
    ];
    for opts in cases {
        let work = tempfile::tempdir().unwrap();
        let (cache, root, _, _) = alpha_beta(work.path());
        dry_then_real(&cache, &root, opts);
    }
}

#[test]
fn orphans_and_tmp_leftovers_count_in_bytes_before_and_reclaimed_not_in_removed() {
    let work = tempfile::tempdir().unwrap();
    let (cache, root, _, _) = alpha_beta(work.path());
    let orphan = b"an orphan blob no index row names\n";
    fs::write(
        root.join("blobs/sha256").join(hex_of(&sha256(orphan))),
        orphan,
    )
    .unwrap();
    fs::create_dir_all(root.join("tmp/load-stale")).unwrap();
    fs::write(root.join("tmp/load-stale/part"), vec![0u8; 3000]).unwrap();
    let before = artifact_bytes(&root) + index_bytes(&root);
    let report = dry_then_real(
        &cache,
        &root,
        PruneOptions {
            keep: vec!["beta".into(), "example.com/team/alpha:1.0".into()],
            ..PruneOptions::default()
        },
    );
    assert!(report.removed.is_empty());
    assert_eq!(report.bytes_reclaimed, Some(orphan.len() as u64 + 3000));
    assert_eq!(report.bytes_before, before);
}

#[test]
fn older_than_selects_by_last_use_or_creation() {
    let work = tempfile::tempdir().unwrap();
    let (cache, root, _, _) = alpha_beta(work.path());
    sleep(Duration::from_millis(20));
    let cutoff = now_ms();
    sleep(Duration::from_millis(20));
    touch(&cache, "beta");
    let report = dry_then_real(
        &cache,
        &root,
        PruneOptions {
            older_than_ms: Some(cutoff),
            ..PruneOptions::default()
        },
    );
    assert_eq!(removed_refs(&report), ["example.com/team/alpha:1.0"]);
    assert_eq!(refs(&cache), ["beta:latest"]);
    // A cutoff before everything selects nothing.
    let none = cache
        .prune_with(&PruneOptions {
            older_than_ms: Some(0),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(none.image_refs_removed, 0);
}

#[test]
fn keep_accepts_any_spelling_and_digest_references() {
    let work = tempfile::tempdir().unwrap();
    let alpha_digest = simple("alpha").manifest_digest;
    let beta_digest = simple("beta").manifest_digest;
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec!["beta".into()], vec!["beta:latest"]),
        (
            vec!["docker.io/library/beta:latest".into()],
            vec!["beta:latest"],
        ),
        (vec!["library/beta".into()], vec!["beta:latest"]),
        (vec![format!("beta@{beta_digest}")], vec!["beta:latest"]),
        (
            vec![format!("example.com/team/alpha@{alpha_digest}")],
            vec!["example.com/team/alpha:1.0"],
        ),
        (
            vec!["beta".into(), "example.com/team/alpha:1.0".into()],
            vec!["beta:latest", "example.com/team/alpha:1.0"],
        ),
        // Not cached, or another repository's digest reference: ignored.
        (
            vec!["missing:1".into(), format!("gamma@{beta_digest}")],
            vec![],
        ),
    ];
    for (i, (keep, kept)) in cases.into_iter().enumerate() {
        let dir = work.path().join(i.to_string());
        fs::create_dir_all(&dir).unwrap();
        let (cache, root, _, _) = alpha_beta(&dir);
        let report = dry_then_real(
            &cache,
            &root,
            PruneOptions {
                keep: keep.clone(),
                ..PruneOptions::default()
            },
        );
        assert_eq!(refs(&cache), kept, "keep {keep:?}");
        assert_eq!(report.image_refs_removed, 2 - kept.len() as u64);
    }
}

#[test]
fn keep_of_a_digest_reference_keeps_every_reference_of_its_repository_to_that_manifest() {
    let work = tempfile::tempdir().unwrap();
    let (cache, root, _, beta) = alpha_beta(work.path());
    load_each(&cache, work.path(), &[(&beta, "beta:v2")]);
    let report = dry_then_real(
        &cache,
        &root,
        PruneOptions {
            keep: vec![format!("beta@{}", beta.manifest_digest)],
            ..PruneOptions::default()
        },
    );
    assert_eq!(removed_refs(&report), ["example.com/team/alpha:1.0"]);
    assert_eq!(refs(&cache), ["beta:latest", "beta:v2"]);
    // Keeping one tag removes the other, which frees nothing: the manifest stays.
    let report = dry_then_real(
        &cache,
        &root,
        PruneOptions {
            keep: vec!["beta:v2".into()],
            ..PruneOptions::default()
        },
    );
    assert_eq!(removed_refs(&report), ["beta:latest"]);
    assert_eq!(report.removed[0].bytes_freed, 0);
    assert_eq!(report.bytes_reclaimed, Some(0));
    assert!(own_files(&root, &beta, &[]).iter().all(|p| p.exists()));
}

#[test]
fn a_malformed_keep_entry_or_a_negative_grace_period_is_refused_before_anything_changes() {
    let work = tempfile::tempdir().unwrap();
    let (cache, root, _, _) = alpha_beta(work.path());
    let disk = artifacts(&root);
    let err = cache
        .prune_with(&PruneOptions {
            keep: vec!["beta".into(), "Not A Ref".into()],
            ..PruneOptions::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_REFERENCE");
    let err = cache
        .prune_with(&PruneOptions {
            grace_period_ms: -1,
            ..PruneOptions::default()
        })
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert_eq!(artifacts(&root), disk);
    assert_eq!(refs(&cache).len(), 2);
}

#[test]
fn grace_period_keeps_references_created_or_used_within_it() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let cache = open(&root);
    let (old, fresh, used) = (simple("old"), simple("fresh"), simple("used"));
    load_each(
        &cache,
        work.path(),
        &[(&old, "example.com/old:1"), (&used, "example.com/used:1")],
    );
    sleep(Duration::from_millis(AGE_GAP_MS));
    load_each(&cache, work.path(), &[(&fresh, "example.com/fresh:1")]);
    touch(&cache, "example.com/used:1");
    let report = dry_then_real(
        &cache,
        &root,
        PruneOptions {
            grace_period_ms: AGE_GAP_MS as i64 / 2,
            ..PruneOptions::default()
        },
    );
    assert_eq!(removed_refs(&report), ["example.com/old:1"]);
    assert_eq!(refs(&cache), ["example.com/fresh:1", "example.com/used:1"]);
}

/// p, q, r and s over a shared-layer pattern (`base` in all, `mid` in p and q), used in the
/// order p, r, q, s (least recently used first).
struct Lru {
    cache: Cache,
    root: PathBuf,
    images: BTreeMap<&'static str, BuiltImage>,
    base: String,
    mid: String,
}

fn lru(dir: &Path) -> Lru {
    let root = dir.join("cache");
    let cache = open(&root);
    let mut images = BTreeMap::new();
    for (name, with_mid) in [("p", true), ("q", true), ("r", false), ("s", false)] {
        let top = gzip_layer(&format!("app/{name}"), &format!("{name} only\n"), 100);
        let layers = if with_mid {
            vec![base_layer(), mid_layer(), top]
        } else {
            vec![base_layer(), top]
        };
        images.insert(name, image(name, layers));
    }
    let named: Vec<(String, &BuiltImage)> = images
        .iter()
        .map(|(name, img)| (format!("example.com/{name}:1"), img))
        .collect();
    let pairs: Vec<(&BuiltImage, &str)> = named.iter().map(|(r, img)| (*img, r.as_str())).collect();
    load_together(&cache, dir, &pairs);
    for name in ["p", "r", "q", "s"] {
        sleep(Duration::from_millis(5));
        touch(&cache, &format!("example.com/{name}:1"));
    }
    Lru {
        cache,
        root,
        images,
        base: sha256(&base_layer().tar()),
        mid: sha256(&mid_layer().tar()),
    }
}

#[test]
fn max_bytes_evicts_least_recently_used_first_and_frees_a_shared_layer_with_its_last_user() {
    let work = tempfile::tempdir().unwrap();
    let t = lru(work.path());
    let (base, mid) = (t.base.as_str(), t.mid.as_str());
    let own_p = own_bytes(&t.root, &t.images["p"], &[base, mid]);
    let own_q = own_bytes(&t.root, &t.images["q"], &[base, mid]);
    let own_r = own_bytes(&t.root, &t.images["r"], &[base]);
    let mid_bytes = size(&layer_file(&t.root, mid));
    let stored = artifact_bytes(&t.root);
    let before = stored + index_bytes(&t.root);

    // Removing p is just enough: one eviction, and mid stays for q.
    let dry = t
        .cache
        .prune_with(&PruneOptions {
            dry_run: true,
            max_bytes: Some(before - own_p),
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(dry.bytes_before, before);
    assert_eq!(removed_refs(&dry), ["example.com/p:1"]);
    assert_eq!(dry.removed[0].bytes_freed, own_p);
    assert_eq!(dry.bytes_after, before - own_p);

    // Less than p and r free: q goes too, and with it mid (its last user), never base.
    let max = before - own_p - own_r - 1;
    let report = dry_then_real(
        &t.cache,
        &t.root,
        PruneOptions {
            max_bytes: Some(max),
            ..PruneOptions::default()
        },
    );
    assert_eq!(
        removed_refs(&report),
        ["example.com/p:1", "example.com/r:1", "example.com/q:1"]
    );
    let freed: Vec<u64> = report.removed.iter().map(|p| p.bytes_freed).collect();
    assert_eq!(freed, [own_p, own_r, own_q + mid_bytes]);
    assert_eq!(report.bytes_reclaimed, Some(freed.iter().sum()));
    assert!(report.bytes_after <= max);
    assert_eq!(report.layers_removed, 4);
    assert!(!layer_file(&t.root, mid).exists());
    assert!(layer_file(&t.root, base).exists());
    assert_eq!(refs(&t.cache), ["example.com/s:1"]);
    // What is left on disk is what the report says is left, minus the index.
    assert_eq!(
        artifact_bytes(&t.root),
        report.bytes_after - (before - stored)
    );
}

#[test]
fn max_bytes_never_evicts_a_pinned_image_or_a_kept_one() {
    let work = tempfile::tempdir().unwrap();
    let t = lru(work.path());
    let before = artifact_bytes(&t.root) + index_bytes(&t.root);
    let fits = dry_then_real(
        &t.cache,
        &t.root,
        PruneOptions {
            max_bytes: Some(before),
            ..PruneOptions::default()
        },
    );
    assert!(fits.removed.is_empty());

    let own_r = own_bytes(&t.root, &t.images["r"], &[&t.base]);
    let first = dry_then_real(
        &t.cache,
        &t.root,
        PruneOptions {
            max_bytes: Some(before - 1),
            keep: vec!["example.com/p:1".into()],
            ..PruneOptions::default()
        },
    );
    assert_eq!(removed_refs(&first), ["example.com/r:1"]);
    assert_eq!(first.removed[0].bytes_freed, own_r);

    let u = t
        .cache
        .acquire("example.com/s:1", Holder::Sandbox("running".into()))
        .unwrap();
    let report = dry_then_real(
        &t.cache,
        &t.root,
        PruneOptions {
            max_bytes: Some(0),
            ..PruneOptions::default()
        },
    );
    assert_eq!(
        removed_refs(&report),
        ["example.com/p:1", "example.com/q:1"]
    );
    assert!(report.bytes_after > 0, "the pinned image stays");
    assert!(
        own_files(&t.root, &t.images["s"], &[])
            .iter()
            .all(|p| p.exists())
    );
    t.cache.release(&u.id).unwrap();
}

#[test]
fn a_use_with_a_ttl_pins_until_it_expires_then_is_listed_expired_and_ignored() {
    let work = tempfile::tempdir().unwrap();
    let (cache, root, _, beta) = alpha_beta(work.path());
    let ttl = |ms| AcquireOptions { ttl_ms: Some(ms) };
    let u = cache
        .acquire_with("beta", Holder::Sandbox("short".into()), &ttl(TTL_MS))
        .unwrap();
    assert_eq!(u.expires_at, Some(u.since + TTL_MS as i64));
    assert!(!u.expired);
    assert_eq!(
        cache.remove("beta", false).unwrap_err().code(),
        "IMAGE_IN_USE"
    );
    let dry = cache
        .prune_with(&PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        })
        .unwrap();
    assert_eq!(removed_refs(&dry), ["example.com/team/alpha:1.0"]);
    assert!(now_ms() < u.expires_at.unwrap(), "the machine was too slow");

    sleep_until(u.expires_at.unwrap() + 50);
    let listed = cache.uses(Some("beta")).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].expired);
    assert_eq!(listed[0].expires_at, u.expires_at);
    let usage = cache.disk_usage().unwrap();
    let row = usage
        .images
        .iter()
        .find(|i| i.manifest_digest == beta.manifest_digest)
        .unwrap();
    assert_eq!(
        row.reclaimable_bytes, row.exclusive_bytes,
        "an expired use pins nothing"
    );
    let report = dry_then_real(&cache, &root, PruneOptions::default());
    assert_eq!(
        removed_refs(&report),
        ["example.com/team/alpha:1.0", "beta:latest"]
    );
    assert!(
        cache.uses(None).unwrap().is_empty(),
        "the expired use goes with its image"
    );
}

#[test]
fn remove_ignores_an_expired_use_and_acquiring_again_renews_the_expiry() {
    let work = tempfile::tempdir().unwrap();
    let (cache, _root, _, _) = alpha_beta(work.path());
    let ttl = |ms| AcquireOptions { ttl_ms: Some(ms) };
    let holder = || Holder::Snapshot("renewing".into());
    let first = cache.acquire_with("beta", holder(), &ttl(TTL_MS)).unwrap();
    sleep(Duration::from_millis(TTL_MS / 2));
    let renewed = cache.acquire_with("beta", holder(), &ttl(TTL_MS)).unwrap();
    assert_eq!(
        renewed.id, first.id,
        "the same holder and manifest share one use"
    );
    let (first_end, renewed_end) = (first.expires_at.unwrap(), renewed.expires_at.unwrap());
    assert!(renewed_end >= first_end + TTL_MS as i64 / 2);
    // Past the first expiry, before the renewed one: still pinned.
    sleep_until(first_end + 50);
    assert!(!cache.uses(None).unwrap()[0].expired);
    assert_eq!(
        cache.remove("beta", false).unwrap_err().code(),
        "IMAGE_IN_USE"
    );
    assert!(
        now_ms() < renewed_end,
        "the machine was too slow to check the renewal"
    );
    sleep_until(renewed_end + 50);
    assert!(cache.uses(None).unwrap()[0].expired);
    let report = cache.remove("beta", false).unwrap();
    assert_eq!(report.image_refs_removed, 1);
    assert_eq!(removed_refs(&report), ["beta:latest"]);

    let err = cache
        .acquire_with("example.com/team/alpha:1.0", holder(), &ttl(0))
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    // Without a ttl, acquiring again makes the use permanent.
    cache
        .acquire_with("example.com/team/alpha:1.0", holder(), &ttl(50))
        .unwrap();
    let permanent = cache
        .acquire("example.com/team/alpha:1.0", holder())
        .unwrap();
    assert_eq!(permanent.expires_at, None);
    sleep(Duration::from_millis(100));
    assert_eq!(cache.prune().unwrap().image_refs_removed, 0);
}

#[test]
fn disk_usage_matches_the_disk_by_kind_and_splits_shared_and_exclusive_bytes() {
    let work = tempfile::tempdir().unwrap();
    let (cache, root, alpha, beta) = alpha_beta(work.path());
    fs::create_dir_all(root.join("tmp/load-crashed")).unwrap();
    fs::write(root.join("tmp/load-crashed/blob"), vec![0u8; 5000]).unwrap();
    let usage = cache.disk_usage().unwrap();
    assert_eq!(usage.layers, bytes_under(&root, "layers"));
    assert_eq!(usage.fsmeta, bytes_under(&root, "fsmeta"));
    assert_eq!(usage.vmdk, bytes_under(&root, "vmdk"));
    assert_eq!(usage.blobs, bytes_under(&root, "blobs"));
    assert_eq!(usage.temporary, 5000);
    assert_eq!(usage.index, index_bytes(&root));
    assert_eq!(usage.total, artifact_bytes(&root) + index_bytes(&root));

    let base = sha256(&base_layer().tar());
    let base_bytes = size(&layer_file(&root, &base));
    let rows: Vec<(&str, &str, u64, u64, u64)> = usage
        .images
        .iter()
        .map(|i| {
            (
                i.reference.as_str(),
                i.manifest_digest.as_str(),
                i.shared_bytes,
                i.exclusive_bytes,
                i.reclaimable_bytes,
            )
        })
        .collect();
    let alpha_own = own_bytes(&root, &alpha, &[&base]);
    let beta_own = own_bytes(&root, &beta, &[&base]);
    assert_eq!(
        rows,
        [
            (
                "beta:latest",
                beta.manifest_digest.as_str(),
                base_bytes,
                beta_own,
                beta_own
            ),
            (
                "example.com/team/alpha:1.0",
                alpha.manifest_digest.as_str(),
                base_bytes,
                alpha_own,
                alpha_own
            ),
        ]
    );

    // Another reference to beta's manifest, and a use of alpha: nothing is reclaimable.
    load_each(&cache, work.path(), &[(&beta, "beta:v2")]);
    let u = cache
        .acquire("example.com/team/alpha:1.0", Holder::Sandbox("pin".into()))
        .unwrap();
    let usage = cache.disk_usage().unwrap();
    assert!(usage.images.iter().all(|i| i.reclaimable_bytes == 0));
    assert_eq!(usage.images.len(), 3);
    cache.release(&u.id).unwrap();

    // What a reference's removal reclaims is what disk usage said.
    let usage = cache.disk_usage().unwrap();
    let alpha_row = usage
        .images
        .iter()
        .find(|i| i.reference == "example.com/team/alpha:1.0")
        .unwrap();
    let report = cache.remove("example.com/team/alpha:1.0", false).unwrap();
    assert_eq!(report.bytes_reclaimed, Some(alpha_row.reclaimable_bytes));
}
