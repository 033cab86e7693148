//! Pulls from a real CNCF distribution registry (`docker-registry` on 127.0.0.1, images pushed
//! with `skopeo copy`), with htpasswd auth and TLS, through a pull-through mirror, and through a
//! fault-injecting proxy (cut, stalled, altered and redirected downloads, 5xx and 429 answers).
//! What a pull publishes is compared with what a load of the same image publishes (the load
//! tests check those files against the kernel, erofs-utils, qemu-img and umoci), and once with
//! the kernel directly.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::registry::*;
use common::*;
use ocicache_core::cancel::Cancel;
use ocicache_core::oci::Platform;
use ocicache_core::progress::{Progress, ProgressEvent};
use ocicache_core::registry::{Credentials, RegistryConfig, RegistryOptions};
use ocicache_core::{
    AcquireOptions, Cache, Holder, LoadOptions, PullOptions, PullPolicy, RepairOptions,
    VerifyOptions,
};

/// Pull options for a plain-HTTP registry on 127.0.0.1, no mirrors, quick retries.
fn insecure() -> PullOptions {
    insecure_pull(None)
}

/// An OCI layout folder holding `image` tagged `t`, and its `oci:` transport.
fn layout_of(image: &BuiltImage) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut layout = OciLayout::new();
    layout.add_image(image, &[(REF_NAME, "t")]);
    layout.write_dir(dir.path());
    let source = format!("oci:{}:t", dir.path().display());
    (dir, source)
}

/// Every file under `root/<kind>/sha256`, by name, with its bytes.
fn artifacts(root: &Path, kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = root.join(kind).join("sha256");
    let mut out: Vec<(String, Vec<u8>)> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Events a pull reports, as short strings.
fn recorder() -> (Progress, Arc<Mutex<Vec<ProgressEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (
        Progress::new(move |e: &ProgressEvent| sink.lock().unwrap().push(e.clone())),
        events,
    )
}

fn kind(e: &ProgressEvent) -> &'static str {
    match e {
        ProgressEvent::Resolving { .. } => "resolving",
        ProgressEvent::Resolved { .. } => "resolved",
        ProgressEvent::LayerCached(_) => "layer-cached",
        ProgressEvent::LayerDownload { .. } => "layer-download",
        ProgressEvent::LayerVerified(_) => "layer-verified",
        ProgressEvent::LayerConverted { .. } => "layer-converted",
        ProgressEvent::Stitched { .. } => "stitched",
        ProgressEvent::Done { .. } => "done",
    }
}

/// The cache holds no reference and no layer image, and `tmp/` is empty.
fn assert_untouched(root: &Path, cache: &Cache) {
    assert!(cache.list().unwrap().is_empty());
    assert!(artifacts(root, "layers").is_empty());
    assert!(artifacts(root, "fsmeta").is_empty());
    let tmp: Vec<PathBuf> = fs::read_dir(root.join("tmp"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "tmp/ holds {tmp:?}");
}

/// The partial download of blob `digest` in `root`'s `tmp/`.
fn partial_path(root: &Path, digest: &str) -> PathBuf {
    root.join("tmp")
        .join(format!("partial-sha256-{}", hex_of(digest)))
}

/// The cache holds no reference and no layer image, and `tmp/` holds nothing but the partial
/// downloads of `blobs`, each with some bytes; returns their sizes.
fn assert_only_partials(root: &Path, cache: &Cache, blobs: &[&str]) -> Vec<u64> {
    assert!(cache.list().unwrap().is_empty());
    assert!(artifacts(root, "layers").is_empty());
    assert!(artifacts(root, "fsmeta").is_empty());
    let mut tmp: Vec<PathBuf> = fs::read_dir(root.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    tmp.sort();
    let mut want: Vec<PathBuf> = blobs.iter().map(|b| partial_path(root, b)).collect();
    want.sort();
    assert_eq!(tmp, want, "tmp/ holds only the partial downloads");
    blobs
        .iter()
        .map(|b| {
            let len = fs::metadata(partial_path(root, b)).unwrap().len();
            assert!(len > 0, "an empty partial of {b} is left");
            len
        })
        .collect()
}

/// The layers pushed as gzip (as built), zstd (`skopeo --dest-compress-format zstd`) and
/// uncompressed (`--dest-decompress`) pull into the same layer images as a load of the layout;
/// the gzip push, whose manifest is the layout's, gives the same fsmeta and VMDK too; a pull
/// reports every step.
#[test]
fn pulls_publish_what_a_load_publishes_for_gzip_zstd_and_plain_layers() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let image = ImageSpec::sample(Compression::Gzip, "pull-compressions").build();
    let (dir, source) = layout_of(&image);
    registry.push(&source, "app/gzip:1", &["--preserve-digests"]);
    registry.push(&source, "app/zstd:1", &["--dest-compress-format", "zstd"]);
    registry.push(&source, "app/plain:1", &["--dest-decompress"]);

    let loaded = tempfile::tempdir().unwrap();
    open(loaded.path())
        .load(
            dir.path(),
            &LoadOptions {
                tag: Some("load/me:1".into()),
                ..LoadOptions::default()
            },
        )
        .unwrap();
    let want_layers = artifacts(loaded.path(), "layers");
    assert_eq!(want_layers.len(), 2);

    for name in ["app/gzip:1", "app/zstd:1", "app/plain:1"] {
        let root = tempfile::tempdir().unwrap();
        let cache = open(root.path());
        let (sink, events) = recorder();
        let reference = format!("{}/{name}", registry.host);
        let handle = cache
            .pull(
                &reference,
                &PullOptions {
                    progress: Some(sink),
                    ..insecure()
                },
            )
            .unwrap_or_else(|e| panic!("{name}: [{}] {e}", e.code()));
        assert_eq!(handle.reference, reference);
        assert_eq!(handle.layer_count, 2);
        assert!(handle.last_used_at.is_some(), "a fresh pull is a use");
        assert_eq!(artifacts(root.path(), "layers"), want_layers, "{name}");
        if name == "app/gzip:1" {
            assert_eq!(
                handle.manifest_digest.as_deref(),
                Some(&*image.manifest_digest)
            );
            assert_eq!(
                artifacts(root.path(), "fsmeta"),
                artifacts(loaded.path(), "fsmeta")
            );
            assert_eq!(
                artifacts(root.path(), "vmdk"),
                artifacts(loaded.path(), "vmdk")
            );
        }
        let disk = cache.boot_disk(&reference).unwrap();
        assert!(disk.vmdk.is_file());
        let events = events.lock().unwrap();
        let kinds: Vec<&str> = events.iter().map(kind).collect();
        assert_eq!(kinds.first(), Some(&"resolving"), "{kinds:?}");
        assert_eq!(kinds[1], "resolved");
        assert_eq!(kinds.last(), Some(&"done"));
        for k in [
            "layer-download",
            "layer-verified",
            "layer-converted",
            "stitched",
        ] {
            assert!(kinds.contains(&k), "{name}: no {k} in {kinds:?}");
        }
        assert!(!kinds.contains(&"layer-cached"));
    }
}

/// The pulled layers, stacked by the kernel (overlayfs over EROFS mounts), hold what umoci
/// unpacks from the pushed image.
#[test]
fn a_pulled_image_mounts_as_umoci_unpacks_it() {
    if !registry_tools()
        || !require_tool("umoci")
        || !oracles::require_root("mounting EROFS images")
    {
        return;
    }
    let registry = Registry::start();
    let umoci = oracles::UmociImage::new();
    let spec = ImageSpec::sample(Compression::None, "pull-mount");
    for layer in &spec.layers {
        umoci.add_layer(&layer.tar());
    }
    registry.push(&format!("oci:{}", umoci.image()), "mount/me:1", &[]);
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let reference = format!("{}/mount/me:1", registry.host);
    cache.pull(&reference, &insecure()).unwrap();
    let disk = cache.boot_disk(&reference).unwrap();
    let mounts: Vec<oracles::Mount> = disk
        .layers
        .iter()
        .map(|l| oracles::mount_erofs(l))
        .collect();
    // overlayfs takes the top layer first.
    let lowers: Vec<&Path> = mounts.iter().rev().map(|m| m.path()).collect();
    let merged = oracles::mount_overlay(&lowers);
    let unpacked = umoci.unpack();
    tree::compare(
        &tree::scan(&unpacked.root),
        &tree::scan(merged.path()),
        &tree::CompareOptions::labeled("umoci unpack vs overlay of pulled layers")
            .skip_meta("")
            // Folders the fixture's tars only imply: umoci and overlayfs each invent metadata.
            .skip_meta("app")
            .skip_meta("bin")
            .skip_meta("etc")
            .no_dir_nlink(),
    );
    drop(merged);
    drop(mounts);
}

/// An index of two platforms (`skopeo copy --all`) gives each platform its manifest; a platform
/// it lacks is PLATFORM_NOT_FOUND listing those it has. A Docker schema 2 image (`--format
/// v2s2`) pulls with its media type.
#[test]
fn platforms_of_an_index_and_docker_schema_2() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let amd = ImageSpec::sample(Compression::Gzip, "multi-amd").build();
    let arm = ImageSpec::new(
        "arm64",
        vec![LayerSpec::file(Compression::Gzip, "arch", "arm64\n")],
    )
    .build();
    let dir = tempfile::tempdir().unwrap();
    let mut layout = OciLayout::new();
    layout.add_multi_platform(&[&amd, &arm], &[(REF_NAME, "t")], true);
    layout.write_dir(dir.path());
    registry.push(
        &format!("oci:{}:t", dir.path().display()),
        "multi/app:1",
        &["--all", "--preserve-digests"],
    );
    let reference = format!("{}/multi/app:1", registry.host);
    for (platform, want) in [("linux/amd64", &amd), ("linux/arm64", &arm)] {
        let root = tempfile::tempdir().unwrap();
        let handle = open(root.path())
            .pull(
                &reference,
                &PullOptions {
                    platform: Some(Platform::parse(platform).unwrap()),
                    ..insecure()
                },
            )
            .unwrap();
        assert_eq!(
            handle.manifest_digest.as_deref(),
            Some(&*want.manifest_digest)
        );
        assert_eq!(format!("linux/{}", handle.architecture.unwrap()), platform);
    }
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let err = cache
        .pull(
            &reference,
            &PullOptions {
                platform: Some(Platform::parse("linux/s390x").unwrap()),
                ..insecure()
            },
        )
        .unwrap_err();
    assert_eq!(err.code(), "PLATFORM_NOT_FOUND");
    assert_eq!(
        err.details()[1].1,
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_untouched(root.path(), &cache);

    let (_d, source) = layout_of(&amd);
    registry.push(&source, "docker/app:1", &["--format", "v2s2"]);
    let reference = format!("{}/docker/app:1", registry.host);
    cache.pull(&reference, &insecure()).unwrap();
    let detail = cache.inspect(&reference).unwrap();
    assert_eq!(detail.layers[0].media_type, mt::DOCKER_LAYER_GZIP);
}

/// `if-missing` makes no request for a cached reference and refreshes `lastUsedAt`; `always`
/// asks for the manifest again and downloads no layer it has (layer-cached events); `never`
/// fails for an uncached one. A digest reference pulls and verifies; a missing tag or
/// repository is IMAGE_NOT_FOUND with the registry's code. Nothing is left behind by a failure.
#[test]
fn policies_cached_layers_digests_and_missing_images() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.host, "127.0.0.1");
    let image = ImageSpec::sample(Compression::Gzip, "policies").build();
    let (_d, source) = layout_of(&image);
    registry.push(&source, "pol/app:1", &["--preserve-digests"]);
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let reference = format!("{}/pol/app:1", proxy.host);
    let never = PullOptions {
        policy: PullPolicy::Never,
        ..insecure()
    };
    assert_eq!(
        cache.pull(&reference, &never).unwrap_err().code(),
        "IMAGE_NOT_FOUND"
    );
    assert!(proxy.seen().is_empty());
    let first = cache.pull(&reference, &insecure()).unwrap();
    let blobs = |seen: &[Seen]| seen.iter().filter(|s| s.path.contains("/blobs/")).count();
    assert_eq!(blobs(&proxy.seen()), 3, "config and two layers");
    let requests = proxy.seen().len();
    std::thread::sleep(Duration::from_millis(5));
    let again = cache.pull(&reference, &insecure()).unwrap();
    assert_eq!(proxy.seen().len(), requests, "if-missing asks nothing");
    assert!(again.last_used_at > first.last_used_at);
    assert_eq!(
        cache.pull(&reference, &never).unwrap().manifest_digest,
        first.manifest_digest
    );

    let (sink, events) = recorder();
    cache
        .pull(
            &reference,
            &PullOptions {
                policy: PullPolicy::Always,
                progress: Some(sink),
                ..insecure()
            },
        )
        .unwrap();
    let seen = proxy.seen();
    let new: Vec<&Seen> = seen[requests..].iter().collect();
    assert!(
        new.iter()
            .all(|s| !s.path.contains(&image.layers[0].digest)),
        "{new:?}"
    );
    let kinds: Vec<&str> = events.lock().unwrap().iter().map(kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "layer-cached").count(),
        2,
        "{kinds:?}"
    );

    // By digest, into another cache: verified against the digest.
    let other = tempfile::tempdir().unwrap();
    let by_digest = format!("{}/pol/app@{}", registry.host, image.manifest_digest);
    let handle = open(other.path()).pull(&by_digest, &insecure()).unwrap();
    assert_eq!(handle.reference, by_digest);
    assert_eq!(open(other.path()).get(&by_digest).unwrap().layer_count, 2);

    // Distribution 2.8 answers MANIFEST_UNKNOWN for a missing repository too.
    for (missing, code) in [
        ("pol/app:nope", "MANIFEST_UNKNOWN"),
        ("no/such:1", "MANIFEST_UNKNOWN"),
    ] {
        let empty = tempfile::tempdir().unwrap();
        let c = open(empty.path());
        let err = c
            .pull(&format!("{}/{missing}", registry.host), &insecure())
            .unwrap_err();
        assert_eq!(err.code(), "IMAGE_NOT_FOUND", "{missing}: {err}");
        let details = err.details();
        assert!(
            details.contains(&("registryCode", serde_json::json!(code))),
            "{missing}: {details:?}"
        );
        assert_untouched(empty.path(), &c);
    }
}

/// One image of one big-ish layer (so a cut falls mid-blob), pushed to `registry` as `name`.
fn push_big(registry: &Registry, name: &str, seed: &str) -> BuiltImage {
    let image = ImageSpec::new(
        "amd64",
        vec![LayerSpec::new(
            Compression::Gzip,
            vec![FileEntry::new("data/blob", pattern(600_000, 11))],
        )],
    )
    .with_cmd(seed)
    .build();
    let (_d, source) = layout_of(&image);
    registry.push(&source, name, &["--preserve-digests"]);
    image
}

/// Through the fault proxy: a connection cut mid-blob is resumed with `Range`; 500 and 429
/// (with `Retry-After`) are retried; a 429 that does not pass is REGISTRY_RATE_LIMITED with its
/// retry time; altered bytes are DIGEST_MISMATCH; a stalled download that is cancelled rejects
/// with ABORTED within a second. Every failure leaves the cache as it was.
#[test]
fn faults_resume_retry_and_fail_cleanly() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.host, "127.0.0.1");
    let image = push_big(&registry, "fault/app:1", "faults");
    let layer = image.layers[0].digest.clone();
    let reference = format!("{}/fault/app:1", proxy.host);

    // Cut twice mid-blob, 500 once on the manifest, 429 once on the config: all recovered.
    proxy.fault(&layer, Fault::Cut { after: 100_000 }, 2);
    proxy.fault(
        "/manifests/",
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        1,
    );
    proxy.fault(
        &image.config_digest,
        Fault::Status {
            status: 429,
            retry_after: Some(1),
        },
        1,
    );
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let started = Instant::now();
    cache.pull(&reference, &insecure()).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let ranges: Vec<String> = proxy
        .seen()
        .iter()
        .filter(|s| s.path.contains(&layer))
        .filter_map(|s| s.headers.get("range").cloned())
        .collect();
    assert_eq!(ranges.len(), 2, "two resumed downloads: {ranges:?}");
    assert!(
        ranges
            .iter()
            .all(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "{ranges:?}"
    );
    assert_eq!(artifacts(root.path(), "layers").len(), 1);

    // Failures, each into an empty cache.
    let fresh = || {
        let root = tempfile::tempdir().unwrap();
        let cache = open(root.path());
        (root, cache)
    };
    proxy.fault(&layer, Fault::Alter { offset: 5000 }, 1);
    let (root, cache) = fresh();
    let err = cache.pull(&reference, &insecure()).unwrap_err();
    assert_eq!(err.code(), "DIGEST_MISMATCH", "{err}");
    assert_untouched(root.path(), &cache);

    proxy.fault(
        &image.config_digest,
        Fault::Status {
            status: 429,
            retry_after: Some(60),
        },
        1,
    );
    let (root, cache) = fresh();
    let err = cache.pull(&reference, &insecure()).unwrap_err();
    assert_eq!(err.code(), "REGISTRY_RATE_LIMITED", "{err}");
    assert!(
        err.details()
            .contains(&("retryAfterSeconds", serde_json::json!(60)))
    );
    assert_untouched(root.path(), &cache);

    proxy.fault(
        "/manifests/",
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        3,
    );
    let (root, cache) = fresh();
    let err = cache.pull(&reference, &insecure()).unwrap_err();
    assert_eq!(err.code(), "REGISTRY_UNAVAILABLE", "{err}");
    assert_untouched(root.path(), &cache);

    proxy.fault(
        &layer,
        Fault::Stall {
            after: 50_000,
            for_how_long: Duration::from_secs(20),
        },
        1,
    );
    let (root, cache) = fresh();
    let cancel = Cancel::new();
    let c = cancel.clone();
    let (sink, events) = recorder();
    let started = Arc::new(Mutex::new(None));
    let s = started.clone();
    // Cancel once the stalled download has reported bytes.
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, ProgressEvent::LayerDownload { .. }))
            {
                std::thread::sleep(Duration::from_millis(300));
                *s.lock().unwrap() = Some(Instant::now());
                c.cancel();
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let err = cache
        .pull(
            &reference,
            &PullOptions {
                cancel: Some(cancel),
                progress: Some(sink),
                ..insecure()
            },
        )
        .unwrap_err();
    let stopped = Instant::now();
    watcher.join().unwrap();
    assert_eq!(err.code(), "ABORTED", "{err}");
    let cancelled_at = started.lock().unwrap().expect("the watcher cancelled");
    assert!(
        stopped - cancelled_at < Duration::from_secs(1),
        "{:?}",
        stopped - cancelled_at
    );
    // Nothing published; the bytes downloaded stay, for the next pull to resume.
    assert_only_partials(root.path(), &cache, &[&layer]);
}

/// A registry that redirects blob downloads to another host (a CDN): the download follows the
/// redirect, and the registry's credentials are not sent to that host.
#[test]
fn redirects_to_another_host_carry_no_credentials() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start_with(RegistrySetup {
        users: vec![("u".into(), "p".into())],
        ..RegistrySetup::default()
    });
    let image = ImageSpec::sample(Compression::Gzip, "redirect").build();
    let (_d, source) = layout_of(&image);
    registry.push(
        &source,
        "redir/app:1",
        &["--preserve-digests", "--dest-creds", "u:p"],
    );
    let front = FaultProxy::start(&registry.host, "127.0.0.1");
    // The other host: blob storage without auth (a second registry holding the same blobs),
    // on another loopback address.
    let storage = Registry::start();
    storage.push(&source, "redir/app:1", &["--preserve-digests"]);
    let cdn = FaultProxy::start(&storage.host, "127.0.0.2");
    front.fault(
        &image.layers[0].digest,
        Fault::Redirect {
            to: format!("http://{}", cdn.host),
        },
        1,
    );
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let basic = PullOptions {
        registry: RegistryOptions {
            credentials: Some(Credentials::Basic {
                username: "u".into(),
                password: "p".into(),
            }),
            ..insecure().registry
        },
        ..insecure()
    };
    cache
        .pull(&format!("{}/redir/app:1", front.host), &basic)
        .unwrap();
    let at_cdn = cdn.seen();
    assert_eq!(at_cdn.len(), 1, "{at_cdn:?}");
    assert!(at_cdn[0].path.ends_with(&image.layers[0].digest));
    assert!(
        !at_cdn[0].headers.contains_key("authorization"),
        "credentials sent to another host: {at_cdn:?}"
    );
    // The registry itself got them.
    assert!(front.seen().iter().any(|s| {
        s.headers
            .get("authorization")
            .is_some_and(|a| a.starts_with("Basic "))
    }));
}

/// htpasswd (basic) auth: the right password pulls, a wrong one and none are
/// REGISTRY_UNAUTHORIZED. TLS with a CA made by the test: trusted through `caCerts`, and
/// REGISTRY_TLS without it.
#[test]
fn basic_auth_and_tls() {
    if !registry_tools() || !require_tool("htpasswd") || !require_tool("openssl") {
        return;
    }
    let ca = TestCa::new();
    let registry = Registry::start_with(RegistrySetup {
        users: vec![("alice".into(), "secret".into())],
        tls: Some(ca.clone()),
        ..RegistrySetup::default()
    });
    let image = ImageSpec::sample(Compression::Gzip, "auth").build();
    let (_d, source) = layout_of(&image);
    registry.push(&source, "auth/app:1", &["--dest-creds", "alice:secret"]);
    let reference = format!("{}/auth/app:1", registry.host);
    let with = |credentials: Option<Credentials>, ca_certs: Option<String>| PullOptions {
        registry: RegistryOptions {
            insecure: false,
            credentials,
            ca_certs,
            ..insecure().registry
        },
        ..insecure()
    };
    let basic = |p: &str| {
        Some(Credentials::Basic {
            username: "alice".into(),
            password: p.into(),
        })
    };
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let err = cache
        .pull(&reference, &with(basic("secret"), None))
        .unwrap_err();
    assert_eq!(err.code(), "REGISTRY_TLS", "{err}");
    let err = cache
        .pull(&reference, &with(basic("wrong"), Some(ca.pem())))
        .unwrap_err();
    assert_eq!(err.code(), "REGISTRY_UNAUTHORIZED", "{err}");
    let err = cache
        .pull(
            &reference,
            &with(Some(Credentials::Token("nope".into())), Some(ca.pem())),
        )
        .unwrap_err();
    assert_eq!(err.code(), "REGISTRY_UNAUTHORIZED", "{err}");
    assert_untouched(root.path(), &cache);
    let handle = cache
        .pull(&reference, &with(basic("secret"), Some(ca.pem())))
        .unwrap();
    assert_eq!(handle.layer_count, 2);
    let err = cache
        .pull(&reference, &with(None, Some("not pem".into())))
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
}

/// A pull-through mirror (a second registry proxying the first), configured as the origin's
/// mirror: two caches pull through it and the origin serves each blob once; with the mirror
/// down the pull falls back to the origin.
#[test]
fn mirrors_are_tried_first_and_fall_back_to_the_origin() {
    if !registry_tools() {
        return;
    }
    let origin = Registry::start();
    let image = ImageSpec::sample(Compression::Gzip, "mirror").build();
    let (_d, source) = layout_of(&image);
    origin.push(&source, "mir/app:1", &["--preserve-digests"]);
    let counted = FaultProxy::start(&origin.host, "127.0.0.1");
    let mirror = Registry::start_with(RegistrySetup {
        proxy_of: Some(format!("http://{}", counted.host)),
        ..RegistrySetup::default()
    });
    let config = |mirror_url: &str| {
        RegistryConfig::parse(
            format!(
                r#"{{"registries": {{"{}": {{"mirrors": ["{mirror_url}"]}}}}}}"#,
                counted.host
            )
            .as_bytes(),
            "test",
        )
        .unwrap()
    };
    let through = |mirror_url: &str| PullOptions {
        registry: RegistryOptions {
            config: Some(config(mirror_url)),
            ..insecure().registry
        },
        ..insecure()
    };
    let reference = format!("{}/mir/app:1", counted.host);
    let blob_gets = || {
        counted
            .seen()
            .iter()
            .filter(|s| s.method == "GET" && s.path.contains("/blobs/"))
            .count()
    };
    let first = tempfile::tempdir().unwrap();
    open(first.path())
        .pull(&reference, &through(&mirror.url()))
        .unwrap();
    assert!(blob_gets() > 0, "the mirror fetched from the origin");
    // Distribution 2.8's proxy fetches a blob twice the first time: once to serve it and once,
    // in the background, to store it. Wait for the stores (config and two layers).
    let deadline = Instant::now() + Duration::from_secs(10);
    while blob_gets() < 2 * 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = blob_gets();
    let second = tempfile::tempdir().unwrap();
    open(second.path())
        .pull(&reference, &through(&mirror.url()))
        .unwrap();
    assert_eq!(
        blob_gets(),
        before,
        "the second cache is served by the mirror alone"
    );
    assert!(
        counted.seen().iter().all(|s| s
            .headers
            .get("user-agent")
            .is_none_or(|a| !a.starts_with("ocicache"))
            || s.path.contains("/manifests/")),
        "ocicache itself fetched no blob from the origin"
    );
    // A mirror that is down: the origin serves the pull.
    let down = format!("http://127.0.0.1:{}", free_port());
    let root = tempfile::tempdir().unwrap();
    open(root.path()).pull(&reference, &through(&down)).unwrap();
}

/// `acquire` with pull: the use is recorded with the reference, and a prune right after keeps
/// the image; two caches on one root pulling one image at once both succeed, converting each
/// layer once.
#[test]
fn acquire_pulling_pins_and_concurrent_pulls_share_the_work() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let image = ImageSpec::sample(Compression::Gzip, "acquire").build();
    let (_d, source) = layout_of(&image);
    registry.push(&source, "acq/app:1", &["--preserve-digests"]);
    let reference = format!("{}/acq/app:1", registry.host);
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let used = cache
        .acquire_pulling(
            &reference,
            Holder::Sandbox("vm-1".into()),
            &AcquireOptions::default(),
            &insecure(),
        )
        .unwrap();
    assert_eq!(used.manifest_digest, image.manifest_digest);
    cache.remove(&reference, true).unwrap();
    cache.prune().unwrap();
    assert_eq!(
        artifacts(root.path(), "layers").len(),
        2,
        "the use pins the layers"
    );
    let never = PullOptions {
        policy: PullPolicy::Never,
        ..insecure()
    };
    let err = cache
        .acquire_pulling(
            &reference,
            Holder::Sandbox("vm-2".into()),
            &AcquireOptions::default(),
            &never,
        )
        .unwrap_err();
    assert_eq!(err.code(), "IMAGE_NOT_FOUND");

    let shared = tempfile::tempdir().unwrap();
    let path = shared.path().to_path_buf();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (path, reference) = (path.clone(), reference.clone());
            std::thread::spawn(move || open(&path).pull(&reference, &insecure()))
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(artifacts(shared.path(), "layers").len(), 2);
    assert_eq!(open(shared.path()).list().unwrap().len(), 1);
}

/// Regression-style proof of resume across pulls: a pull cancelled while a blob downloads
/// leaves only the bytes it got, in `tmp/partial-sha256-<hex>`; the next pull (waiting for the
/// stalled download of the first to let go of the partial's lock) asks for the rest with
/// `Range: bytes=<held>-`, is sent only the bytes it lacked, verifies the whole blob and
/// publishes the same layer image as a pull from scratch, and leaves `tmp/` empty.
#[test]
fn a_cancelled_pull_leaves_a_partial_that_the_next_pull_resumes() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.host, "127.0.0.1");
    let image = push_big(&registry, "resume/app:1", "resume");
    let layer = image.layers[0].clone();
    assert!(layer.blob.len() > 150_000, "{}", layer.blob.len());
    let reference = format!("{}/resume/app:1", proxy.host);
    proxy.fault(
        &layer.digest,
        Fault::Stall {
            after: 100_000,
            for_how_long: Duration::from_secs(1),
        },
        1,
    );
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let cancel = Cancel::new();
    let (sink, events) = recorder();
    let c = cancel.clone();
    let watcher = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let downloading = (events.lock().unwrap().iter())
                .any(|e| matches!(e, ProgressEvent::LayerDownload { .. }));
            if downloading {
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        c.cancel();
    });
    let err = cache
        .pull(
            &reference,
            &PullOptions {
                cancel: Some(cancel),
                progress: Some(sink),
                ..insecure()
            },
        )
        .unwrap_err();
    watcher.join().unwrap();
    assert_eq!(err.code(), "ABORTED", "{err}");
    let held = assert_only_partials(root.path(), &cache, &[&layer.digest])[0];
    assert!(held <= 100_000, "{held}");
    let on_disk = fs::read(partial_path(root.path(), &layer.digest)).unwrap();
    assert_eq!(on_disk, layer.blob[..held as usize], "a prefix of the blob");

    let sent_before = proxy.body_bytes(&layer.digest);
    let requests_before = proxy.seen().len();
    cache.pull(&reference, &insecure()).unwrap();
    let ranges: Vec<Option<String>> = proxy.seen()[requests_before..]
        .iter()
        .filter(|s| s.path.contains(&layer.digest))
        .map(|s| s.headers.get("range").cloned())
        .collect();
    assert_eq!(ranges, vec![Some(format!("bytes={held}-"))]);
    assert_eq!(
        proxy.body_bytes(&layer.digest) - sent_before,
        layer.blob.len() as u64 - held,
        "only the bytes the partial lacked are sent"
    );
    let fresh = tempfile::tempdir().unwrap();
    open(fresh.path())
        .pull(&format!("{}/resume/app:1", registry.host), &insecure())
        .unwrap();
    assert_eq!(
        artifacts(root.path(), "layers"),
        artifacts(fresh.path(), "layers")
    );
    let tmp: Vec<_> = fs::read_dir(root.path().join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "the partial is gone after the commit");
}

/// Partials a killed pull left, written here by hand: a registry that ignores `Range` (200
/// with every byte) is read past the bytes the partial holds and the pull succeeds; a partial
/// holding the whole blob is converted without a blob request; one longer than the blob
/// starts again from byte 0; one whose bytes are wrong is DIGEST_MISMATCH and deleted, and the
/// pull after it succeeds; one the registry answers 416 for goes too. Prune keeps a young
/// partial and one a pull holds (locked), and reclaims one a day old, counting its bytes.
#[test]
fn partials_resume_with_or_without_range_and_go_when_wrong() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.host, "127.0.0.1");
    let image = push_big(&registry, "partial/app:1", "partials");
    let layer = image.layers[0].clone();
    let reference = format!("{}/partial/app:1", proxy.host);
    let fresh = || {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("tmp")).unwrap();
        root
    };
    let layer_requests = |from: usize| -> Vec<Option<String>> {
        proxy.seen()[from..]
            .iter()
            .filter(|s| s.path.contains(&layer.digest))
            .map(|s| s.headers.get("range").cloned())
            .collect()
    };
    let tmp_is_empty = |root: &Path| fs::read_dir(root.join("tmp")).unwrap().next().is_none();

    // A registry that ignores Range.
    let root = fresh();
    fs::write(
        partial_path(root.path(), &layer.digest),
        &layer.blob[..120_000],
    )
    .unwrap();
    proxy.fault(&layer.digest, Fault::IgnoreRange, 1);
    let (seen, sent) = (proxy.seen().len(), proxy.body_bytes(&layer.digest));
    let cache = open(root.path());
    cache.pull(&reference, &insecure()).unwrap();
    assert_eq!(layer_requests(seen), vec![Some("bytes=120000-".into())]);
    assert_eq!(
        proxy.body_bytes(&layer.digest) - sent,
        layer.blob.len() as u64,
        "the whole blob came back (200)"
    );
    assert_eq!(artifacts(root.path(), "layers").len(), 1);
    assert!(tmp_is_empty(root.path()));
    let want_layers = artifacts(root.path(), "layers");

    // The whole blob: no request for it.
    let root = fresh();
    fs::write(partial_path(root.path(), &layer.digest), &layer.blob).unwrap();
    let seen = proxy.seen().len();
    open(root.path()).pull(&reference, &insecure()).unwrap();
    assert_eq!(layer_requests(seen), Vec::<Option<String>>::new());
    assert_eq!(artifacts(root.path(), "layers"), want_layers);
    assert!(tmp_is_empty(root.path()));

    // Longer than the blob: not a prefix of it, so downloaded from the start.
    let root = fresh();
    let mut longer = layer.blob.clone();
    longer.extend_from_slice(b"trailing");
    fs::write(partial_path(root.path(), &layer.digest), &longer).unwrap();
    let seen = proxy.seen().len();
    open(root.path()).pull(&reference, &insecure()).unwrap();
    assert_eq!(layer_requests(seen), vec![None]);
    assert_eq!(artifacts(root.path(), "layers"), want_layers);

    // Wrong bytes: DIGEST_MISMATCH, the partial deleted, and the next pull succeeds.
    let root = fresh();
    let mut wrong = layer.blob[..120_000].to_vec();
    wrong[1000] ^= 0xff;
    fs::write(partial_path(root.path(), &layer.digest), &wrong).unwrap();
    let cache = open(root.path());
    let err = cache.pull(&reference, &insecure()).unwrap_err();
    assert_eq!(err.code(), "DIGEST_MISMATCH", "{err}");
    assert_untouched(root.path(), &cache);
    cache.pull(&reference, &insecure()).unwrap();
    assert_eq!(artifacts(root.path(), "layers"), want_layers);

    // A registry that answers 416 to the resume (it holds fewer bytes than the partial):
    // the pull fails as the blob does not match its descriptor, the partial is deleted, and
    // the next pull downloads from the start.
    let root = fresh();
    fs::write(
        partial_path(root.path(), &layer.digest),
        &layer.blob[..120_000],
    )
    .unwrap();
    proxy.fault(
        &layer.digest,
        Fault::Status {
            status: 416,
            retry_after: None,
        },
        1,
    );
    let cache = open(root.path());
    let err = cache.pull(&reference, &insecure()).unwrap_err();
    assert_eq!(err.code(), "INVALID_ARCHIVE", "{err}");
    assert!(err.to_string().contains("416"), "{err}");
    assert_untouched(root.path(), &cache);
    let seen = proxy.seen().len();
    cache.pull(&reference, &insecure()).unwrap();
    assert_eq!(layer_requests(seen), vec![None]);
    assert_eq!(artifacts(root.path(), "layers"), want_layers);

    // Prune and partials: young, held, a day old.
    let root = fresh();
    let cache = open(root.path());
    let digests = [
        "sha256:".to_owned() + &"a".repeat(64),
        "sha256:".to_owned() + &"b".repeat(64),
    ];
    let (young, old) = (
        partial_path(root.path(), &digests[0]),
        partial_path(root.path(), &digests[1]),
    );
    fs::write(&young, vec![1u8; 1000]).unwrap();
    fs::write(&old, vec![2u8; 3000]).unwrap();
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(24 * 3600 + 60);
    let held = fs::OpenOptions::new().write(true).open(&old).unwrap();
    held.set_modified(day_ago).unwrap();
    held.lock().unwrap();
    let report = cache.prune().unwrap();
    assert_eq!(report.bytes_reclaimed, Some(0), "{report:?}");
    assert!(young.exists() && old.exists());
    drop(held);
    let report = cache.prune().unwrap();
    assert_eq!(report.bytes_reclaimed, Some(3000), "{report:?}");
    assert!(young.exists() && !old.exists());
}

/// Downloads run on a pool of their own: with six layers whose answers are held back a
/// moment, a pull has four blob downloads in flight at once by default (more than the two
/// conversions a two-core machine runs at once), and one with `concurrent_downloads: 1`.
#[test]
fn downloads_run_on_a_bounded_pool_of_their_own() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let layers: Vec<LayerSpec> = (0..6)
        .map(|i| LayerSpec::file(Compression::Gzip, &format!("l{i}"), &format!("layer {i}\n")))
        .collect();
    let image = ImageSpec::new("amd64", layers).build();
    let (_d, source) = layout_of(&image);
    registry.push(&source, "pool/app:1", &["--preserve-digests"]);
    for (limit, want) in [(None, 4), (Some(1), 1)] {
        let proxy = FaultProxy::start(&registry.host, "127.0.0.1");
        for layer in &image.layers {
            proxy.fault(
                &layer.digest,
                Fault::Delay {
                    for_how_long: Duration::from_millis(300),
                },
                1,
            );
        }
        let mut options = insecure();
        if let Some(limit) = limit {
            options.registry.concurrent_downloads = limit;
        }
        let root = tempfile::tempdir().unwrap();
        open(root.path())
            .pull(&format!("{}/pool/app:1", proxy.host), &options)
            .unwrap();
        assert_eq!(proxy.max_blobs_in_flight(), want, "limit {limit:?}");
        assert_eq!(artifacts(root.path(), "layers").len(), 6);
    }
}

/// Flips one byte in the middle of the file at `path`.
fn flip_middle(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// A pulled image records its origin; `repair` fetches a damaged layer image again from there
/// (that blob alone among the layers, by the manifest's digest, adding no reference), byte for
/// byte the one the pull wrote; without registry access, or when the registry fails, the layer
/// is taken away and the image marked broken, with the failure in the report; a dry run
/// changes nothing; a loaded image has no origin.
#[test]
fn repair_fetches_a_damaged_layer_again_from_the_registry_it_was_pulled_from() {
    if !registry_tools() {
        return;
    }
    let registry = Registry::start();
    let proxy = FaultProxy::start(&registry.host, "127.0.0.1");
    let image = ImageSpec::sample(Compression::Gzip, "repair").build();
    let (_d, source) = layout_of(&image);
    registry.push(&source, "rep/app:1", &["--preserve-digests"]);
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let reference = format!("{}/rep/app:1", proxy.host);
    cache.pull(&reference, &insecure()).unwrap();
    let origin = format!("{}/rep/app", proxy.host);
    assert_eq!(
        cache.inspect(&reference).unwrap().origin,
        Some(origin.clone())
    );
    let layers = artifacts(root.path(), "layers");
    let (fsmeta, vmdk) = (
        artifacts(root.path(), "fsmeta"),
        artifacts(root.path(), "vmdk"),
    );
    let damaged = image.layers[1].clone();
    let path = root
        .path()
        .join("layers/sha256")
        .join(format!("{}.erofs", hex_of(&damaged.diff_id)));
    let fetch = || RepairOptions {
        refetch: Some(insecure().registry),
        ..Default::default()
    };

    // A dry run reports the fetch it would make and changes nothing.
    flip_middle(&path);
    let flipped = fs::read(&path).unwrap();
    let requests = proxy.seen().len();
    let report = cache
        .repair(
            Some(&reference),
            &RepairOptions {
                dry_run: true,
                ..fetch()
            },
        )
        .unwrap();
    let check = &report.images[0];
    assert_eq!(check.repaired.len(), 1, "{report:?}");
    assert_eq!(check.repaired[0].path, path);
    assert!(
        check.problems.is_empty() && check.broken.is_none(),
        "{report:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), flipped);
    assert_eq!(proxy.seen().len(), requests, "a dry run asks nothing");

    // The repair fetches that layer's blob again, and nothing else of the layers.
    let report = cache.repair(Some(&reference), &fetch()).unwrap();
    let check = &report.images[0];
    assert_eq!(check.repaired.len(), 1, "{report:?}");
    assert!(check.problems.is_empty(), "{report:?}");
    assert_eq!((&check.broken, &check.fetch_error), (&None, &None));
    assert_eq!(check.origin, Some(origin.clone()));
    let asked: Vec<String> = proxy.seen()[requests..]
        .iter()
        .map(|s| s.path.clone())
        .filter(|p| p.contains("/blobs/"))
        .collect();
    assert!(
        asked.iter().any(|p| p.ends_with(&damaged.digest)),
        "{asked:?}"
    );
    assert!(
        !asked.iter().any(|p| p.ends_with(&image.layers[0].digest)),
        "{asked:?}"
    );
    assert!(proxy.seen()[requests..].iter().any(|s| {
        s.path
            .ends_with(&format!("manifests/{}", image.manifest_digest))
    }));
    assert_eq!(artifacts(root.path(), "layers"), layers, "byte for byte");
    assert_eq!(artifacts(root.path(), "fsmeta"), fsmeta);
    assert_eq!(artifacts(root.path(), "vmdk"), vmdk);
    assert_eq!(cache.list().unwrap().len(), 1, "no reference added");
    let full = VerifyOptions { full: true };
    assert_eq!(cache.verify(None, &full).unwrap().problems, 0);
    cache.boot_disk(&reference).unwrap();
    assert!(
        cache.repair(None, &fetch()).unwrap().images[0]
            .repaired
            .is_empty(),
        "a second repair finds nothing"
    );

    // Without registry access: taken away, marked broken, the remedy named.
    flip_middle(&path);
    let report = cache.repair(None, &RepairOptions::default()).unwrap();
    let broken = report.images[0].broken.clone().unwrap();
    assert!(broken.contains("pull the image again"), "{broken}");
    assert!(!path.exists());
    assert_eq!(
        cache.boot_disk(&reference).unwrap_err().code(),
        "CORRUPT_CACHE"
    );
    // Then with it: the layer comes back and the mark goes.
    let report = cache.repair(None, &fetch()).unwrap();
    assert_eq!(report.images[0].broken, None, "{report:?}");
    assert_eq!(artifacts(root.path(), "layers"), layers);
    cache.boot_disk(&reference).unwrap();

    // An image loaded with the same layers has no origin of its own; the layer its pulled
    // sibling fetches back is sound for it too, in one fetch.
    let sibling = ImageSpec::sample(Compression::Gzip, "repair")
        .with_cmd("other")
        .build();
    let archive_dir = tempfile::tempdir().unwrap();
    let archive = archive_dir.path().join("image.tar");
    let mut layout = OciLayout::new();
    layout.add_image(&sibling, &[(REF_NAME, "local/app:1")]);
    fs::write(&archive, layout.to_tar()).unwrap();
    cache.load(&archive, &LoadOptions::default()).unwrap();
    assert_eq!(cache.inspect("local/app:1").unwrap().origin, None);
    flip_middle(&path);
    let requests = proxy.seen().len();
    let report = cache.repair(None, &fetch()).unwrap();
    assert_eq!(report.images.len(), 2);
    for check in &report.images {
        assert!(
            check.problems.is_empty() && check.broken.is_none(),
            "{report:?}"
        );
    }
    let repaired: usize = report.images.iter().map(|c| c.repaired.len()).sum();
    assert_eq!(repaired, 1, "{report:?}");
    let fetched = proxy.seen()[requests..]
        .iter()
        .filter(|s| s.path.ends_with(&damaged.digest))
        .count();
    assert_eq!(fetched, 1);
    assert_eq!(artifacts(root.path(), "layers"), layers);
    cache.boot_disk("local/app:1").unwrap();

    // The registry fails: the failure is reported, the layer taken away and both images
    // marked broken.
    flip_middle(&path);
    // Three attempts: the retries of insecure()'s policy.
    proxy.fault(
        &damaged.digest,
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        3,
    );
    let report = cache.repair(None, &fetch()).unwrap();
    let pulled = report.images.iter().find(|c| c.origin.is_some()).unwrap();
    let failed = pulled.fetch_error.clone().expect("a fetch error");
    assert_eq!(
        (failed.origin.as_str(), failed.code.as_str()),
        (origin.as_str(), "REGISTRY_UNAVAILABLE")
    );
    assert_eq!(pulled.problems.len(), 1, "{report:?}");
    let broken = pulled.broken.clone().unwrap();
    assert!(
        broken.contains(&origin) && broken.contains("REGISTRY_UNAVAILABLE"),
        "{broken}"
    );
    let loaded = report.images.iter().find(|c| c.origin.is_none()).unwrap();
    assert_eq!(loaded.fetch_error, None);
    assert!(
        loaded
            .broken
            .as_ref()
            .unwrap()
            .contains("load the image again"),
        "{report:?}"
    );
    assert!(!path.exists());
    // boot_disk gives each image the remedy of its own.
    for (name, remedy) in [
        (reference.as_str(), "REGISTRY_UNAVAILABLE"),
        ("local/app:1", "load the image again"),
    ] {
        let err = cache.boot_disk(name).unwrap_err();
        assert_eq!(err.code(), "CORRUPT_CACHE");
        assert!(err.to_string().contains(remedy), "{name}: {err}");
    }

    // Both images pulled, from two repositories, and the first one repaired cannot fetch: the
    // second brings the shared layer back from its own origin, and the first is repaired again
    // at the end (sound, the mark gone, its failed fetch still reported).
    let (_s, sibling_source) = layout_of(&sibling);
    registry.push(&sibling_source, "rep/sib:1", &["--preserve-digests"]);
    let sibling_ref = format!("{}/rep/sib:1", proxy.host);
    cache.pull(&sibling_ref, &insecure()).unwrap();
    assert_eq!(
        cache.inspect("local/app:1").unwrap().origin,
        Some(format!("{}/rep/sib", proxy.host)),
        "the same manifest, pulled: its origin is recorded"
    );
    // The pull converted the missing layer again (and cleared the sibling's mark).
    assert_eq!(artifacts(root.path(), "layers"), layers);
    flip_middle(&path);
    let first = std::cmp::min(&image.manifest_digest, &sibling.manifest_digest);
    let first_repo = if *first == image.manifest_digest {
        "rep/app"
    } else {
        "rep/sib"
    };
    proxy.fault(
        &format!("{first_repo}/blobs/{}", damaged.digest),
        Fault::Status {
            status: 500,
            retry_after: None,
        },
        3,
    );
    let report = cache.repair(None, &fetch()).unwrap();
    assert_eq!(report.images.len(), 2);
    assert_eq!(report.problems, 0, "{report:?}");
    let failed = report
        .images
        .iter()
        .find(|c| c.manifest_digest == *first)
        .unwrap();
    assert_eq!(
        failed.fetch_error.as_ref().map(|f| f.code.as_str()),
        Some("REGISTRY_UNAVAILABLE")
    );
    for check in &report.images {
        assert_eq!(check.broken, None, "{report:?}");
        assert!(check.repaired.iter().any(|p| p.path == path), "{report:?}");
    }
    assert_eq!(artifacts(root.path(), "layers"), layers);
    for name in [reference.as_str(), "local/app:1"] {
        cache.boot_disk(name).unwrap();
    }
}
