//! The ingest pipeline (issue 11): what a load reads and writes. A layer whose image is cached
//! is never read; an archive read in place is never copied; a stream spools only the members
//! that come before the metadata that says what they are; standard input and any reader load
//! through the same pipeline; a cancelled load leaves nothing. What a load writes is observed
//! through its write budget, which counts every byte written into `tmp/`.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use common::*;
use ocicache_core::LoadOptions;
use ocicache_core::cancel::Cancel;

fn limited(limit: u64) -> LoadOptions {
    LoadOptions {
        max_uncompressed_bytes: Some(limit),
        ..LoadOptions::default()
    }
}

/// A one-layer image of one file of `len` bytes (in a layer compressed as `c`), named by `seed`.
fn image(c: Compression, seed: &str, len: usize) -> BuiltImage {
    ImageSpec::new(
        "amd64",
        vec![LayerSpec::new(
            c,
            vec![FileEntry::new(&format!("data/{seed}"), pattern(len, 7))],
        )],
    )
    .with_cmd(seed)
    .build()
}

fn layout(img: &BuiltImage, reference: &str) -> OciLayout {
    let mut layout = OciLayout::new();
    layout.add_image(img, &[(CONTAINERD_NAME, reference)]);
    layout
}

fn write(dir: &Path, name: &str, bytes: Vec<u8>) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// The layer image of `diff_id` (`sha256:<hex>`) in the cache at `root`.
fn layer_file(root: &Path, diff_id: &str) -> PathBuf {
    root.join("layers/sha256")
        .join(format!("{}.erofs", hex_of(diff_id)))
}

/// Entries left under `tmp/`.
fn tmp_entries(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root.join("tmp"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// What broke: a load copied and hashed every layer blob of the archive into `tmp/` before it
/// looked for the layer images, so loading an image whose layers were all cached cost a copy of
/// the whole archive. A layer whose `diff_id` is cached is now skipped without its blob being
/// read at all: the proof is an archive whose cached layer's blob is garbage (of the right
/// size; its digest no longer matches), which loads, from a tar read in place, a compressed
/// stream and a layout folder alike, while the same garbage in a layer that is not cached fails
/// with `DIGEST_MISMATCH`.
#[test]
fn a_cached_layer_s_blob_is_never_read() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let cache = open(&root);
    let img = image(Compression::Gzip, "cached", 300_000);
    let good = write(
        work.path(),
        "good.tar",
        layout(&img, "example.com/a:1").to_tar(),
    );
    cache.load(&good, &LoadOptions::default()).unwrap();
    let garbled = |reference: &str| {
        let mut l = layout(&img, reference);
        let blob = l.blob_mut(&img.layers[0].digest);
        blob.iter_mut().for_each(|b| *b = !*b);
        l
    };
    let dir = work.path().join("layout-dir");
    fs::create_dir(&dir).unwrap();
    garbled("example.com/dir:1").write_dir(&dir);
    let sources = [
        write(
            work.path(),
            "in-place.tar",
            garbled("example.com/tar:1").to_tar(),
        ),
        write(
            work.path(),
            "stream.tar.gz",
            garbled("example.com/gz:1").to_tar_gz(),
        ),
        dir,
    ];
    for source in &sources {
        let handles = cache
            .load(source, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert_eq!(handles.len(), 1, "{}", source.display());
    }
    assert_eq!(cache.list().unwrap().len(), 4);
    // The same garbage where the layer is not cached.
    let fresh = open(&work.path().join("fresh"));
    let err = fresh
        .load(&sources[0], &LoadOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), "DIGEST_MISMATCH", "{err}");
}

/// What a load of `img` writes into `tmp/` without copying anything: its layer image, its
/// manifest and its config (the fsmeta image and VMDK descriptor are not counted).
fn written_without_copies(work: &Path, img: &BuiltImage) -> u64 {
    let probe = work.join("probe");
    let cache = open(&probe);
    let src = write(
        work,
        "probe.tar",
        layout(img, "example.com/probe:1").to_tar(),
    );
    cache.load(&src, &LoadOptions::default()).unwrap();
    let layer = fs::metadata(layer_file(&probe, &img.layers[0].diff_id))
        .unwrap()
        .len();
    layer + img.manifest.len() as u64 + img.config.len() as u64
}

/// What broke: every load copied the archive's members into `tmp/` (a 1 GiB layer blob cost
/// 1 GiB of writes before its conversion wrote the layer image), so a load needed twice the
/// room. A tar is now read in place and a layout folder too: a load writes its layer images,
/// manifests and configs, not a byte more, as a write budget of exactly that shows.
#[test]
fn a_load_read_in_place_writes_no_copy_of_its_blobs() {
    let work = tempfile::tempdir().unwrap();
    let img = image(Compression::None, "in-place", 1 << 20);
    let needed = written_without_copies(work.path(), &img);
    assert!(needed < (1 << 20) + (64 << 10), "{needed}");
    let tar = write(
        work.path(),
        "a.tar",
        layout(&img, "example.com/a:1").to_tar(),
    );
    let dir = work.path().join("dir");
    fs::create_dir(&dir).unwrap();
    layout(&img, "example.com/a:1").write_dir(&dir);
    for (i, source) in [tar, dir].iter().enumerate() {
        let root = work.path().join(format!("cache{i}"));
        let err = open(&root).load(source, &limited(needed - 1)).unwrap_err();
        assert_eq!(err.code(), "LIMIT_EXCEEDED", "{}: {err}", source.display());
        open(&root)
            .load(source, &limited(needed))
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new());
    }
}

/// The layout as a tree with its members reordered: `metadata_first` puts `oci-layout`,
/// `index.json`, the manifest and the config before the layer blob; otherwise the layer blob
/// comes first, as `docker save` and skopeo write their archives.
fn ordered(img: &BuiltImage, metadata_first: bool) -> TarTree {
    let mut tree = layout(img, "example.com/s:1").tree();
    let layer = format!("blobs/sha256/{}", hex_of(&img.layers[0].digest));
    let (layers, rest): (Vec<_>, Vec<_>) = tree.members.into_iter().partition(|m| m.name == layer);
    tree.members = if metadata_first {
        rest.into_iter().chain(layers).collect()
    } else {
        layers.into_iter().chain(rest).collect()
    };
    tree
}

/// A compressed archive (or standard input) cannot be read in place: a member that comes
/// before the metadata that says what it is must be spooled into `tmp/` (and counts against
/// the budget), but a layer that comes after it is converted straight from the stream and
/// costs no copy. The metadata files themselves (`oci-layout`, `index.json`, manifest, config)
/// are spooled as they come. A plain tar of either order is read in place.
#[test]
fn a_stream_spools_only_what_comes_before_its_metadata() {
    let work = tempfile::tempdir().unwrap();
    let img = image(Compression::None, "stream", 1 << 20);
    let needed = written_without_copies(work.path(), &img);
    let blob = img.layers[0].blob.len() as u64;
    let l = layout(&img, "example.com/s:1");
    let metadata = l.oci_layout.as_ref().unwrap().len()
        + l.index_json().unwrap().len()
        + img.manifest.len()
        + img.config.len();
    let spooled = needed + metadata as u64;
    let cases = [
        (
            "metadata first, gzip",
            ordered(&img, true).to_tar_gz(),
            spooled,
        ),
        (
            "blobs first, gzip",
            ordered(&img, false).to_tar_gz(),
            spooled + blob,
        ),
        (
            "blobs first, in place",
            ordered(&img, false).to_tar(),
            needed,
        ),
    ];
    for (i, (what, bytes, writes)) in cases.into_iter().enumerate() {
        let src = write(work.path(), &format!("s{i}.tar"), bytes);
        let root = work.path().join(format!("cache{i}"));
        let err = open(&root).load(&src, &limited(writes - 1)).unwrap_err();
        assert_eq!(err.code(), "LIMIT_EXCEEDED", "{what}: {err}");
        open(&root)
            .load(&src, &limited(writes))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new(), "{what}");
    }
}

/// A reader that hands out `bytes` in small pieces and sets `cancel` once `at` bytes are out.
struct Trickle {
    bytes: io::Cursor<Vec<u8>>,
    at: u64,
    cancel: Option<Cancel>,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.bytes.position() >= self.at
            && let Some(cancel) = self.cancel.take()
        {
            cancel.cancel();
        }
        let n = buf.len().min(4096);
        self.bytes.read(&mut buf[..n])
    }
}

/// `load_stream` loads an archive from any reader (what `ocicache load` does with standard
/// input), plain or compressed, in either member order; a load cancelled half way through its
/// stream fails with `ABORTED` and leaves the cache and `tmp/` as they were.
#[test]
fn streams_load_and_a_cancelled_load_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let cache = open(&root);
    let img = image(Compression::Gzip, "piped", 400_000);
    for (i, bytes) in [
        ordered(&img, true).to_tar(),
        ordered(&img, false).to_tar_gz(),
        legacy_docker_archive(
            &[(&img, &["example.com/legacy:1"])],
            LegacyOptions::default(),
        )
        .to_tar(),
    ]
    .into_iter()
    .enumerate()
    {
        let reader = Trickle {
            bytes: io::Cursor::new(bytes),
            at: u64::MAX,
            cancel: None,
        };
        let handles = cache
            .load_stream(Box::new(reader), "a pipe", &LoadOptions::default())
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(handles.len(), 1, "case {i}");
    }
    let listed = cache.list().unwrap();
    let other = image(Compression::Gzip, "cancelled", 400_000);
    let bytes = ordered(&other, false).to_tar_gz();
    let cancel = Cancel::new();
    let reader = Trickle {
        at: bytes.len() as u64 / 2,
        bytes: io::Cursor::new(bytes),
        cancel: Some(cancel.clone()),
    };
    let options = LoadOptions {
        cancel: Some(cancel),
        ..LoadOptions::default()
    };
    let err = cache
        .load_stream(Box::new(reader), "a pipe", &options)
        .unwrap_err();
    assert_eq!(err.code(), "ABORTED", "{err}");
    assert_eq!(cache.list().unwrap(), listed);
    assert!(!layer_file(&root, &other.layers[0].diff_id).exists());
    assert_eq!(tmp_entries(&root), Vec::<PathBuf>::new());
}
