//! `open_archive`, each layer blob read through its source, on archives written by real tools:
//! an OCI layout built by `umoci` (tarred and as a folder), and the `docker-archive` `skopeo`
//! converts it to. Skipped with a visible message when the tools are missing, except on CI.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::read::{ReadImage, read_archive};
use common::require_tool;
use ocicache_core::oci::Platform;

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds `<root>/layout` with umoci: image tag `1`, one layer holding `etc/hello`.
fn umoci_layout(root: &Path) -> String {
    let src = root.join("rootfs-src");
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/hello"), "hello from umoci\n").unwrap();
    let layout = root.join("layout");
    let layout = layout.to_str().unwrap();
    let image = format!("{layout}:1");
    run("umoci", &["init", "--layout", layout]);
    run("umoci", &["new", "--image", &image]);
    run(
        "umoci",
        &["insert", "--image", &image, src.to_str().unwrap(), "/"],
    );
    layout.to_owned()
}

fn stage(source: &Path, staging: &Path) -> Vec<ReadImage> {
    read_archive(source, staging, &Platform::host())
        .unwrap_or_else(|e| panic!("{}: {e}", source.display()))
}

#[test]
fn archive_from_umoci_layout_tar_and_dir() {
    if !require_tool("umoci") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let layout = umoci_layout(root.path());
    let tar_path = root.path().join("layout.tar");
    let mut builder = tar::Builder::new(fs::File::create(&tar_path).unwrap());
    builder.append_dir_all(".", &layout).unwrap();
    builder.into_inner().unwrap();

    for source in [tar_path.as_path(), Path::new(&layout)] {
        let staging = tempfile::tempdir_in(root.path()).unwrap();
        let images = stage(source, staging.path());
        assert_eq!(images.len(), 1, "{}", source.display());
        let image = &images[0];
        assert_eq!(image.bare_tags, ["1"]);
        assert!(image.references.is_empty());
        assert_eq!(image.layers.len(), 1);
        assert_eq!(
            image.config_info.diff_ids,
            [image.layers[0].diff_id.clone()]
        );
        assert_eq!(
            image.layers[0].media_type,
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }
}

#[test]
fn archive_from_skopeo_docker_archive() {
    if !require_tool("umoci") || !require_tool("skopeo") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let layout = umoci_layout(root.path());
    let out = root.path().join("docker.tar");
    let dest = format!("docker-archive:{}:example.com/app:v1", out.display());
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "-q",
            &format!("oci:{layout}:1"),
            &dest,
        ],
    );

    let oci_staging = tempfile::tempdir_in(root.path()).unwrap();
    let oci = stage(Path::new(&layout), oci_staging.path());
    let staging = tempfile::tempdir_in(root.path()).unwrap();
    let images = stage(&out, staging.path());
    assert_eq!(images.len(), 1);
    let image = &images[0];
    let refs: Vec<String> = image.references.iter().map(|r| r.canonical()).collect();
    assert_eq!(refs, ["example.com/app:v1"]);
    assert!(image.bare_tags.is_empty());
    assert_eq!(
        image.manifest_media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // skopeo keeps the config and decompresses the layer: same image, same diff_ids.
    assert_eq!(image.config.digest, oci[0].config.digest);
    assert_eq!(image.layers[0].diff_id, oci[0].layers[0].diff_id);
}

/// `inspect` shows what an umoci-built config says beside the index's fields: ExposedPorts,
/// Volumes, the image's own `created` and `author`, and its history, read from the config blob;
/// a config blob damaged on disk leaves those out and the rest of inspect stands.
#[test]
fn inspect_shows_ports_volumes_author_created_and_history_from_the_config() {
    if !require_tool("umoci") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let layout = umoci_layout(root.path());
    let image = format!("{layout}:1");
    run(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.exposedports=8080/tcp",
            "--config.exposedports=53/udp",
            "--config.volume=/data",
            "--config.volume=/cache",
            "--config.env=MODE=test",
            "--config.cmd=/bin/app",
            "--author=Ann <ann@example.com>",
            "--created=2024-05-01T12:00:00Z",
            "--history.created_by=/bin/sh -c make install",
            "--history.author=Bob",
            "--history.comment=build step",
            "--history.created=2024-05-01T14:30:00.250+02:00",
        ],
    );
    let cache = ocicache_core::Cache::open(ocicache_core::CacheOptions {
        root: Some(root.path().join("cache")),
        backend: None,
    })
    .unwrap();
    let options = ocicache_core::LoadOptions {
        tag: Some("example.com/described:1".into()),
        ..Default::default()
    };
    cache.load(Path::new(&layout), &options).unwrap();
    let d = cache.inspect("example.com/described:1").unwrap();
    let c = d.config.clone().unwrap();
    // The seed fields, from the index, as before.
    assert_eq!(c.cmd, Some(vec!["/bin/app".to_owned()]));
    assert!(c.env.as_ref().unwrap().contains(&"MODE=test".to_owned()));
    // The config blob's own fields.
    assert_eq!(
        c.exposed_ports,
        Some(vec!["53/udp".to_owned(), "8080/tcp".to_owned()])
    );
    assert_eq!(
        c.volumes,
        Some(vec!["/cache".to_owned(), "/data".to_owned()])
    );
    assert_eq!(c.author.as_deref(), Some("Ann <ann@example.com>"));
    assert_eq!(c.created, Some(1_714_564_800_000));
    let history = c.history.unwrap();
    // umoci records one entry for the layer it inserted and one for this config change.
    let last = history.last().unwrap();
    assert_eq!(last.created_by.as_deref(), Some("/bin/sh -c make install"));
    assert_eq!(last.author.as_deref(), Some("Bob"));
    assert_eq!(last.comment.as_deref(), Some("build step"));
    assert_eq!(last.created, Some(1_714_566_600_250));
    assert!(last.empty_layer);
    assert_eq!(
        history.iter().filter(|h| !h.empty_layer).count(),
        d.layers.len(),
        "{history:?}"
    );

    // The config blob damaged on disk: inspect still answers, without the blob's fields.
    let blob = root
        .path()
        .join("cache/blobs/sha256")
        .join(c.digest.strip_prefix("sha256:").unwrap());
    fs::write(&blob, b"\x00 not json").unwrap();
    let damaged = cache.inspect("example.com/described:1").unwrap();
    let dc = damaged.config.unwrap();
    assert_eq!(dc.cmd, Some(vec!["/bin/app".to_owned()]));
    assert_eq!(
        (
            dc.exposed_ports,
            dc.volumes,
            dc.author,
            dc.created,
            dc.history
        ),
        (None, None, None, None, None)
    );
    assert_eq!(damaged.layers, d.layers);
}
