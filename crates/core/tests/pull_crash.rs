//! Crash safety and cross-process safety of pull, against a real registry (`docker-registry`)
//! behind a proxy that sends blobs at the speed of a slow link, so that kills land in the
//! middle of downloads.
//!
//! The test binary re-executes itself as worker processes (`OCICACHE_PULL_WORKER=pull|prune|
//! remove`) on one cache root. The tests run them concurrently and kill them with SIGKILL at
//! random moments (the seed is printed), then check that every remaining reference passes the
//! artifact checks, that a kill mid-download leaves a partial download the next pull resumes
//! (the proxy sees its `Range` request), and that a last prune returns the disk to exactly what
//! the index names.
#![allow(clippy::unwrap_used, reason = "tests")]
#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::registry::*;
use common::workers::*;
use common::*;
use ocicache_core::PullOptions;

const WORKER: &str = "OCICACHE_PULL_WORKER";
const ROOT: &str = "OCICACHE_PULL_WORKER_ROOT";
const REFS: &str = "OCICACHE_PULL_WORKER_REFS";

/// How fast the proxy sends blobs: the shared 2 MiB layer takes about half a second.
const LINK_BYTES_PER_SEC: usize = 4 << 20;

fn insecure() -> PullOptions {
    insecure_pull(None)
}

/// Three images sharing a 2 MiB base layer, each with its own layer, pushed to `registry`.
fn push_images(registry: &Registry) -> Vec<(String, BuiltImage)> {
    let base = LayerSpec::new(
        Compression::Gzip,
        vec![FileEntry::new(
            "usr/lib/base.bin",
            pseudo_random(2 << 20, 1),
        )],
    );
    (0..3u64)
        .map(|i| {
            let own = LayerSpec::new(
                Compression::Gzip,
                vec![FileEntry::new(
                    &format!("app/{i}.bin"),
                    pseudo_random((512 << 10) + i as usize * 4096, 10 + i),
                )],
            );
            let image = ImageSpec::new("amd64", vec![base.clone(), own])
                .with_cmd(&format!("app{i}"))
                .build();
            let dir = tempfile::tempdir().unwrap();
            let mut layout = OciLayout::new();
            layout.add_image(&image, &[(REF_NAME, "t")]);
            layout.write_dir(dir.path());
            let name = format!("crash/app{i}:1");
            registry.push(
                &format!("oci:{}:t", dir.path().display()),
                &name,
                &["--preserve-digests"],
            );
            (name, image)
        })
        .collect()
}

/// The worker entry point: does nothing unless started as a worker.
#[test]
fn worker_entry() {
    let Ok(role) = std::env::var(WORKER) else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT).unwrap());
    let refs: Vec<String> = std::env::var(REFS)
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect();
    let cache = open(&root);
    let mut i = 0usize;
    loop {
        match role.as_str() {
            "pull" => {
                cache.pull(&refs[i % refs.len()], &insecure()).unwrap();
            }
            "prune" => {
                cache.prune().unwrap();
            }
            "remove" => {
                let _ = cache.remove(&refs[i % refs.len()], false);
            }
            other => panic!("unknown worker role {other}"),
        }
        i += 1;
    }
}

fn spawn(role: &str, root: &Path, refs: &[String]) -> Child {
    worker_command(
        WORKER,
        role,
        &[(ROOT, root.as_os_str()), (REFS, refs.join(" ").as_ref())],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap()
}

/// The partial downloads in `root`'s `tmp/`: (blob digest hex, bytes held).
fn partials(root: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = fs::read_dir(root.join("tmp")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix("partial-sha256-")?.to_owned();
            Some((hex, e.metadata().unwrap().len()))
        })
        .collect()
}

/// Partials a pull would resume: some bytes but not the whole blob, of a layer whose image is
/// not cached.
fn resumable(root: &Path, images: &[(String, BuiltImage)]) -> Vec<(String, u64)> {
    partials(root)
        .into_iter()
        .filter(|(hex, len)| {
            images.iter().flat_map(|(_, i)| &i.layers).any(|l| {
                hex_of(&l.digest) == hex
                    && *len > 0
                    && *len < l.blob.len() as u64
                    && !root
                        .join("layers/sha256")
                        .join(format!("{}.erofs", hex_of(&l.diff_id)))
                        .exists()
            })
        })
        .collect()
}

/// The `Range` values of blob requests the proxy saw from request `from` on: (path, range).
fn ranges(proxy: &FaultProxy, from: usize) -> Vec<(String, String)> {
    proxy.seen()[from..]
        .iter()
        .filter(|s| s.path.contains("/blobs/"))
        .filter_map(|s| Some((s.path.clone(), s.headers.get("range")?.clone())))
        .collect()
}

/// Pullers killed at random moments, half the time with a pruner and a remover beside them:
/// every reference left passes the artifact checks; a kill in the middle of a download leaves
/// a partial that the next pull continues with `Range` from its length; after pulls of every
/// image no partial is left, and a prune leaves exactly what the index names.
#[test]
fn sigkill_during_pulls_and_prunes_never_breaks_the_cache_and_pulls_resume() {
    if std::env::var(WORKER).is_ok() || !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let images = push_images(&registry);
    let proxy = FaultProxy::start(&registry.host, "127.0.0.1");
    proxy.fault(
        "/blobs/",
        Fault::Throttle {
            bytes_per_sec: LINK_BYTES_PER_SEC,
        },
        usize::MAX,
    );
    let refs: Vec<String> = (images.iter())
        .map(|(name, _)| format!("{}/{name}", proxy.host))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let mut rng = Rng::seeded();
    let iterations = 10;
    let mut left_partials = 0;
    for i in 0..iterations {
        let puller = spawn("pull", &root, &refs);
        let others = if i % 2 == 0 {
            vec![spawn("prune", &root, &refs), spawn("remove", &root, &refs)]
        } else {
            Vec::new()
        };
        std::thread::sleep(Duration::from_millis(150 + rng.below(700)));
        kill(puller);
        for o in others {
            std::thread::sleep(Duration::from_millis(rng.below(30)));
            kill(o);
        }
        if !partials(&root).is_empty() {
            left_partials += 1;
        }
        check_artifacts(&root, false);
    }
    eprintln!("{left_partials} of {iterations} kills left partial downloads behind");

    // Everything must be downloaded again (the partials stay: they are young), and a kill
    // must land in the middle of a download.
    let cache = open(&root);
    for r in &refs {
        let _ = cache.remove(r, true);
    }
    cache.prune().unwrap();
    let mut tries = 0;
    while resumable(&root, &images).is_empty() {
        tries += 1;
        assert!(tries <= 15, "no kill landed in the middle of a download");
        let puller = spawn("pull", &root, &refs);
        std::thread::sleep(Duration::from_millis(200 + rng.below(400)));
        kill(puller);
    }
    let left = resumable(&root, &images);
    let seen = proxy.seen().len();
    for r in &refs {
        cache.pull(r, &insecure()).unwrap();
    }
    let asked = ranges(&proxy, seen);
    for (hex, len) in &left {
        assert!(
            asked
                .iter()
                .any(|(path, range)| path.contains(hex.as_str())
                    && *range == format!("bytes={len}-")),
            "the partial of {hex} ({len} bytes) was not resumed: {asked:?}"
        );
    }
    assert!(partials(&root).is_empty(), "{:?}", partials(&root));
    assert_eq!(check_artifacts(&root, false), refs.len());
    cache.prune().unwrap();
    assert_eq!(artifact_files(&root), live_files(&root));
}

/// Two pullers, a pruner and a remover in four processes on one root: every image listed at
/// any moment is whole; after they are killed, a prune leaves what the index names and the
/// partial downloads of the pushed blobs (young, so kept for the next pull), nothing else.
#[test]
fn concurrent_pulls_and_prunes_in_several_processes() {
    if std::env::var(WORKER).is_ok() || !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let images = push_images(&registry);
    let proxy = FaultProxy::start(&registry.host, "127.0.0.1");
    proxy.fault(
        "/blobs/",
        Fault::Throttle {
            bytes_per_sec: 4 * LINK_BYTES_PER_SEC,
        },
        usize::MAX,
    );
    let refs: Vec<String> = (images.iter())
        .map(|(name, _)| format!("{}/{name}", proxy.host))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let reversed: Vec<String> = refs.iter().rev().cloned().collect();
    let workers = vec![
        spawn("pull", &root, &refs),
        spawn("pull", &root, &reversed),
        spawn("prune", &root, &refs),
        spawn("remove", &root, &refs),
    ];
    check_while_running(&root, workers, Duration::from_secs(4));
    open(&root).prune().unwrap();
    let blobs: BTreeSet<String> = (images.iter())
        .flat_map(|(_, i)| &i.layers)
        .map(|l| format!("tmp/partial-sha256-{}", hex_of(&l.digest)))
        .collect();
    let (partial, rest): (BTreeSet<String>, BTreeSet<String>) = artifact_files(&root)
        .into_iter()
        .partition(|f| f.starts_with("tmp/partial-"));
    assert_eq!(rest, live_files(&root));
    assert!(partial.is_subset(&blobs), "{partial:?}");
}
