//! Tooling for `bench/prune.mjs` (issue 5): generates large caches over a shared-layer pattern,
//! runs prune, the unlink floor, and list/disk-usage latency against bare SQLite queries.
//!
//! ```text
//! prune_bench gen-load   ROOT REFERENCES   real path: an OCI layout, Cache::load, Cache::acquire
//! prune_bench gen-fast   ROOT REFERENCES   fast path: files and index rows written directly
//! prune_bench gen-layout DIR REFERENCES    the same images as an OCI image layout (for umoci)
//! prune_bench gen-docker FILE REFERENCES   the same images as a `docker save` archive (podman)
//! prune_bench compare    ROOT_A ROOT_B     same files (names, sizes) and rows (times and use ids aside)?
//! prune_bench prune      ROOT [--dry-run]  Cache::prune_with, timed in-process; JSON report
//! prune_bench floor      LIST [THREADS]    lstat + unlink of each path of LIST (one a line),
//!                                          then fsync of their folders, timed; 1 thread default
//! prune_bench latency    ROOT [RUNS]       list and disk_usage against bare queries, medians
//!                                          (and disk_usage's per-reference figures alone)
//! prune_bench list       ROOT              one Cache::list (for its peak RSS), timed
//! prune_bench usage      ROOT              one Cache::disk_usage (for its peak RSS), timed
//! ```
//!
//! The pattern (every image has [`TAGS`] references, so REFERENCES / 2 images):
//! - [`BASE_LAYERS`] base layers shared by every image (48, 24 and 12 files of 64 B to 16 KiB);
//! - per group of [`GROUP`] images, [`MID_LAYERS`] mid layers (16 and 8 files) shared by the group;
//! - per image one unique top layer: 3 files and a whiteout of a mid-layer file;
//! - every [`PIN_EVERY`]th image is used by a sandbox (`uses` row), so a bare prune keeps it.
//!
//! Layers are uncompressed tars (OCI `layer.v1.tar`, so a blob's digest is its diff_id), every
//! file mtime [`MTIME`]. The same images come out of every `gen-*` command.
//!
//! The fast path writes what `load` would write, with the core's own code for every artifact:
//! each layer tar goes through [`convert_layer`] (the converter `load` uses), each image's
//! fsmeta through [`build_fsmeta`] and its VMDK through [`vmdk::descriptor`] (same uuid and CID
//! as `load`), manifest and config blobs byte for byte, paths from [`Layout`]; `Index::open`
//! creates the schema, then every row (`blobs`, `configs`, `manifests`, `layers`,
//! `manifest_layers`, `image_refs`, `uses`) is inserted in one transaction, with the values
//! `load` records (sizes, `disk_size`, `total_size`, canonical references, config columns from
//! `ConfigInfo::parse`). What it skips: staging in `tmp/`, digest checks, per-file fsync and
//! one transaction per image. Creation times are spread over 30 days (oldest image first) and
//! a third of the references have a `last_used_at`, so LRU eviction has something to order.
//! `compare` checks a fast-path cache against a `gen-load` one of the same size.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::error::Error as StdError;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ocicache_core::erofs::{LayerImage, build_fsmeta};
use ocicache_core::index::{ConfigRow, Index, LayerRow, NewBlob, NewImage, UseRow};
use ocicache_core::layer::{ConvertOptions, convert_layer};
use ocicache_core::oci::{ConfigInfo, Digest, Reference};
use ocicache_core::store::{Layout, sync_dir};
use ocicache_core::vmdk::{self, Extent};
use ocicache_core::{Cache, CacheOptions, Holder, LoadOptions, PruneOptions};
use rayon::prelude::*;
use rusqlite::{Connection, params};
use sha2::{Digest as _, Sha256};

mod common;

type Res<T> = std::result::Result<T, Box<dyn StdError + Send + Sync>>;

/// References per image.
const TAGS: [&str; 2] = ["1.0", "latest"];
/// Base layers, shared by every image, and their file counts.
const BASE_LAYERS: [usize; 3] = [48, 24, 12];
/// Images per group; a group shares its mid layers.
const GROUP: usize = 50;
/// Mid layers per group, and their file counts.
const MID_LAYERS: [usize; 2] = [16, 8];
/// Every PIN_EVERY-th image has a sandbox use.
const PIN_EVERY: usize = 10;
/// mtime of every tar entry.
const MTIME: u64 = 1_700_000_000;
/// Creation times are spread over this span (ms) before the generation time.
const SPAN_MS: i64 = 30 * 24 * 3600 * 1000;
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |s: &str| s.parse::<usize>().map_err(|e| format!("{s}: {e}"));
    let result: Res<()> = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen-load", root, refs] => count(refs)
            .map_err(Into::into)
            .and_then(|n| gen_load(Path::new(root), n)),
        ["gen-fast", root, refs] => count(refs)
            .map_err(Into::into)
            .and_then(|n| gen_fast(Path::new(root), n)),
        ["gen-layout", dir, refs] => count(refs)
            .map_err(Into::into)
            .and_then(|n| gen_layout(Path::new(dir), n)),
        ["gen-docker", file, refs] => count(refs)
            .map_err(Into::into)
            .and_then(|n| gen_docker(Path::new(file), n)),
        ["compare", a, b] => compare(Path::new(a), Path::new(b)),
        ["prune", root] => prune(Path::new(root), false),
        ["prune", root, "--dry-run"] => prune(Path::new(root), true),
        ["floor", list] => floor(Path::new(list), 1),
        ["floor", list, threads] => count(threads)
            .map_err(Into::into)
            .and_then(|t| floor(Path::new(list), t)),
        ["list", root] => once(Path::new(root), |c| Ok(c.list()?.len())),
        ["usage", root] => once(Path::new(root), |c| Ok(c.disk_usage()?.images.len())),
        ["latency", root] => latency(Path::new(root), 11),
        ["latency", root, runs] => count(runs)
            .map_err(Into::into)
            .and_then(|r| latency(Path::new(root), r)),
        _ => {
            eprintln!("usage: see the header of crates/core/examples/prune_bench.rs");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The pattern

/// A layer of the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum LayerId {
    Base(usize),
    Mid(usize, usize),
    Top(usize),
}

/// A small deterministic PRNG (splitmix64).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Log-uniform size between 64 B and `max`.
    fn size(&mut self, max: u64) -> usize {
        let span = (max as f64 / 64.0).ln();
        (64.0 * (span * (self.next() % 10_000) as f64 / 10_000.0).exp()) as usize
    }
    /// Text-like bytes (so that they look like configs and scripts, not noise).
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&[u8]; 8] = [
            b"layer ",
            b"image ",
            b"cache ",
            b"export ",
            b"PATH=/usr/bin ",
            b"0x1f ",
            b"{\"k\":1} ",
            b"\n",
        ];
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            out.extend_from_slice(WORDS[(self.next() % 8) as usize]);
        }
        out.truncate(len);
        out
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(size);
    h
}

/// The tar of one layer.
fn layer_tar(id: LayerId) -> Res<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str| -> Res<()> {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, path, std::io::empty())?;
        Ok(())
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, body: &[u8]| -> Res<()> {
        let mut h = header(tar::EntryType::Regular, mode, body.len() as u64);
        b.append_data(&mut h, path, body)?;
        Ok(())
    };
    match id {
        LayerId::Base(k) => {
            let mut rng = Rng::new(k as u64);
            let dirs = [
                "etc",
                "usr",
                "usr/bin",
                "usr/lib",
                "usr/share",
                "usr/share/doc",
            ];
            for d in dirs {
                dir(&mut b, &format!("{d}/"))?;
            }
            for j in 0..BASE_LAYERS[k] {
                let (d, mode) = [
                    ("usr/bin", 0o755),
                    ("usr/lib", 0o644),
                    ("etc", 0o644),
                    ("usr/share/doc", 0o644),
                ][j % 4];
                let len = rng.size(16 * 1024);
                file(&mut b, &format!("{d}/base{k}-{j}"), mode, &rng.bytes(len))?;
            }
        }
        LayerId::Mid(g, k) => {
            let mut rng = Rng::new(((g as u64) << 8) | (k as u64 + 16));
            let top = if k == 0 {
                format!("opt/runtime{g}")
            } else {
                format!("opt/deps{g}")
            };
            dir(&mut b, "opt/")?;
            dir(&mut b, &format!("{top}/"))?;
            for j in 0..MID_LAYERS[k] {
                let len = rng.size(8 * 1024);
                file(&mut b, &format!("{top}/file{j}"), 0o644, &rng.bytes(len))?;
            }
        }
        LayerId::Top(i) => {
            let mut rng = Rng::new(((i as u64) << 8) | 255);
            let g = i / GROUP;
            dir(&mut b, "app/")?;
            let len = 1024 + rng.size(4 * 1024);
            file(&mut b, "app/server", 0o755, &rng.bytes(len))?;
            file(
                &mut b,
                "app/config.json",
                0o644,
                format!("{{\"image\":{i},\"group\":{g}}}\n").as_bytes(),
            )?;
            file(
                &mut b,
                "app/VERSION",
                0o644,
                format!("1.0.{i}\n").as_bytes(),
            )?;
            // A whiteout of a lower file, as `RUN rm` leaves.
            file(
                &mut b,
                &format!("opt/deps{g}/.wh.file{}", i % MID_LAYERS[1]),
                0o644,
                b"",
            )?;
        }
    }
    Ok(b.into_inner()?)
}

fn layers_of(i: usize) -> Vec<LayerId> {
    let g = i / GROUP;
    let mut out: Vec<LayerId> = (0..BASE_LAYERS.len()).map(LayerId::Base).collect();
    out.extend((0..MID_LAYERS.len()).map(|k| LayerId::Mid(g, k)));
    out.push(LayerId::Top(i));
    out
}

fn shared_layers(images: usize) -> Vec<LayerId> {
    let groups = images.div_ceil(GROUP);
    let mut out: Vec<LayerId> = (0..BASE_LAYERS.len()).map(LayerId::Base).collect();
    for g in 0..groups {
        out.extend((0..MID_LAYERS.len()).map(|k| LayerId::Mid(g, k)));
    }
    out
}

fn images_for(references: usize) -> usize {
    references.div_ceil(TAGS.len()).max(1)
}

/// References of image `i`, as written in archives.
fn references_of(i: usize) -> Vec<String> {
    TAGS.iter()
        .map(|t| format!("registry.example/team{}/app{i}:{t}", i / GROUP))
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A layer tar and its digest.
struct Tar {
    bytes: Vec<u8>,
    hex: String,
}

fn tar_of(id: LayerId) -> Res<Tar> {
    let bytes = layer_tar(id)?;
    let hex = sha256_hex(&bytes);
    Ok(Tar { bytes, hex })
}

/// Config and manifest blobs of image `i` given its layers' (digest hex, size), bottom to top.
fn image_blobs(i: usize, layers: &[(String, u64)]) -> Res<(Vec<u8>, Vec<u8>)> {
    let g = i / GROUP;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2025-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", format!("APP=app{i}")],
            "Cmd": ["/app/server"],
            "WorkingDir": "/app",
            "Labels": { "org.example.team": format!("team{g}") }
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|(h, _)| format!("sha256:{h}")).collect::<Vec<_>>()
        }
    });
    let config = serde_json::to_vec(&config)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": format!("sha256:{}", sha256_hex(&config)), "size": config.len() },
        "layers": layers.iter().map(|(h, s)| serde_json::json!({
            "mediaType": LAYER_TYPE, "digest": format!("sha256:{h}"), "size": s
        })).collect::<Vec<_>>()
    });
    Ok((config, serde_json::to_vec(&manifest)?))
}

fn digest(hex: &str) -> Res<Digest> {
    Ok(Digest::parse(&format!("sha256:{hex}"))?)
}

// ---------------------------------------------------------------------------------------------
// Archives

/// Writes the images of `references` as an OCI image layout at `dir`. Returns the image count.
fn write_layout(dir: &Path, references: usize) -> Res<usize> {
    let images = images_for(references);
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let shared: Vec<(LayerId, (String, u64))> = shared_layers(images)
        .into_par_iter()
        .map(|id| -> Res<_> {
            let t = tar_of(id)?;
            fs::write(blobs.join(&t.hex), &t.bytes)?;
            Ok((id, (t.hex, t.bytes.len() as u64)))
        })
        .collect::<Res<_>>()?;
    let shared: BTreeMap<LayerId, (String, u64)> = shared.into_iter().collect();
    let entries: Vec<Vec<serde_json::Value>> = (0..images)
        .into_par_iter()
        .map(|i| -> Res<_> {
            let top = tar_of(LayerId::Top(i))?;
            fs::write(blobs.join(&top.hex), &top.bytes)?;
            let mut layers: Vec<(String, u64)> = layers_of(i)
                .iter()
                .filter_map(|id| shared.get(id).cloned())
                .collect();
            layers.push((top.hex, top.bytes.len() as u64));
            let (config, manifest) = image_blobs(i, &layers)?;
            fs::write(blobs.join(sha256_hex(&config)), &config)?;
            let m = sha256_hex(&manifest);
            fs::write(blobs.join(&m), &manifest)?;
            Ok(references_of(i)
                .into_iter()
                .map(|r| {
                    serde_json::json!({
                        "mediaType": MANIFEST_TYPE,
                        "digest": format!("sha256:{m}"),
                        "size": manifest.len(),
                        "annotations": { "org.opencontainers.image.ref.name": r }
                    })
                })
                .collect())
        })
        .collect::<Res<_>>()?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries.into_iter().flatten().collect::<Vec<_>>()
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(images)
}

fn gen_layout(dir: &Path, references: usize) -> Res<()> {
    let start = Instant::now();
    let images = write_layout(dir, references)?;
    println!(
        "{{\"seconds\":{:.3},\"images\":{images}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A `docker save` archive (legacy layout: `manifest.json`, `<hex>.json`, `<hex>/layer.tar`).
fn gen_docker(file: &Path, references: usize) -> Res<()> {
    let start = Instant::now();
    let images = images_for(references);
    let mut b = tar::Builder::new(std::io::BufWriter::new(fs::File::create(file)?));
    let add = |b: &mut tar::Builder<_>, name: &str, body: &[u8]| -> Res<()> {
        let mut h = header(tar::EntryType::Regular, 0o644, body.len() as u64);
        b.append_data(&mut h, name, body)?;
        Ok(())
    };
    let mut shared = BTreeMap::new();
    for id in shared_layers(images) {
        let t = tar_of(id)?;
        add(&mut b, &format!("{}/layer.tar", t.hex), &t.bytes)?;
        shared.insert(id, (t.hex, t.bytes.len() as u64));
    }
    let mut manifest = Vec::new();
    for i in 0..images {
        let top = tar_of(LayerId::Top(i))?;
        add(&mut b, &format!("{}/layer.tar", top.hex), &top.bytes)?;
        let mut layers: Vec<(String, u64)> = layers_of(i)
            .iter()
            .filter_map(|id| shared.get(id).cloned())
            .collect();
        layers.push((top.hex, top.bytes.len() as u64));
        let (config, _) = image_blobs(i, &layers)?;
        let config_name = format!("{}.json", sha256_hex(&config));
        add(&mut b, &config_name, &config)?;
        manifest.push(serde_json::json!({
            "Config": config_name,
            "RepoTags": references_of(i),
            "Layers": layers.iter().map(|(h, _)| format!("{h}/layer.tar")).collect::<Vec<_>>()
        }));
    }
    add(&mut b, "manifest.json", &serde_json::to_vec(&manifest)?)?;
    b.into_inner()?.flush()?;
    println!(
        "{{\"seconds\":{:.3},\"images\":{images}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Caches

fn open_cache(root: &Path) -> Res<Cache> {
    Ok(Cache::open(CacheOptions {
        root: Some(root.to_path_buf()),
        backend: None,
    })?)
}

/// The real path: an OCI layout, one `Cache::load` of every image, then `Cache::acquire` of
/// every pinned image.
fn gen_load(root: &Path, references: usize) -> Res<()> {
    let start = Instant::now();
    let layout = tempfile::Builder::new()
        .prefix("prune-bench-layout-")
        .tempdir_in(root.parent().unwrap_or(Path::new(".")))?;
    let images = write_layout(layout.path(), references)?;
    let cache = open_cache(root)?;
    let load = Instant::now();
    cache.load(layout.path(), &LoadOptions::default())?;
    let load_seconds = load.elapsed().as_secs_f64();
    for i in (0..images).step_by(PIN_EVERY) {
        cache.acquire(&references_of(i)[0], Holder::Sandbox(format!("sb-{i}")))?;
    }
    drop(cache);
    checkpoint(root)?;
    println!(
        "{{\"seconds\":{:.3},\"loadSeconds\":{load_seconds:.3},\"images\":{images}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Moves the index's WAL into the database file, so that copies of the cache start alike.
fn checkpoint(root: &Path) -> Res<()> {
    let conn = Connection::open(Layout::new(root).index_db())?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// One layer image written by the fast path.
#[derive(Clone)]
struct Built {
    diff_id: String,
    tar_size: u64,
    erofs_size: u64,
}

/// Converts a layer tar into `layers/` with the converter `load` uses.
fn build_layer(layout: &Layout, scratch: &Path, tar: &Tar) -> Res<Built> {
    let staged = scratch.join(format!("{}.tar", tar.hex));
    fs::write(&staged, &tar.bytes)?;
    let dest = layout.layer(&digest(&tar.hex)?);
    let converted = convert_layer(&staged, &dest, &ConvertOptions::default())?;
    fs::remove_file(&staged)?;
    Ok(Built {
        diff_id: format!("sha256:{}", tar.hex),
        tar_size: tar.bytes.len() as u64,
        erofs_size: converted.erofs_size,
    })
}

/// Everything the index records for one image of the fast path.
struct ImageRows {
    index: usize,
    manifest: String,
    manifest_size: u64,
    config: String,
    config_size: u64,
    info: ConfigInfo,
    layers: Vec<Built>,
    fsmeta_size: u64,
    vmdk_size: u64,
}

fn build_image(
    layout: &Layout,
    scratch: &Path,
    i: usize,
    shared: &BTreeMap<LayerId, Built>,
) -> Res<ImageRows> {
    let top = build_layer(layout, scratch, &tar_of(LayerId::Top(i))?)?;
    let mut layers: Vec<Built> = layers_of(i)
        .iter()
        .filter_map(|id| shared.get(id).cloned())
        .collect();
    layers.push(top);
    let sizes: Vec<(String, u64)> = layers
        .iter()
        .map(|l| {
            (
                l.diff_id.trim_start_matches("sha256:").to_owned(),
                l.tar_size,
            )
        })
        .collect();
    let (config, manifest) = image_blobs(i, &sizes)?;
    let config_hex = sha256_hex(&config);
    let manifest_hex = sha256_hex(&manifest);
    fs::write(layout.blob(&digest(&config_hex)?), &config)?;
    fs::write(layout.blob(&digest(&manifest_hex)?), &manifest)?;
    // fsmeta and VMDK exactly as artifacts::prepare_image builds them.
    let m = digest(&manifest_hex)?;
    let images: Vec<LayerImage> = layers
        .iter()
        .map(|l| -> Res<LayerImage> {
            let d = Digest::parse(&l.diff_id)?;
            Ok(LayerImage {
                path: layout.layer(&d),
                diff_id: d,
            })
        })
        .collect::<Res<_>>()?;
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&hex::decode(&manifest_hex[..32])?);
    let fsmeta_path = layout.fsmeta(&m);
    let fsmeta = build_fsmeta(&images, &fsmeta_path, uuid)?;
    let mut extents = vec![Extent {
        path: layout.relative_to_vmdk(&fsmeta_path),
        size: fsmeta.size,
    }];
    for (image, l) in images.iter().zip(&layers) {
        extents.push(Extent {
            path: layout.relative_to_vmdk(&image.path),
            size: l.erofs_size,
        });
    }
    let cid = u32::from_str_radix(&manifest_hex[..8], 16)?;
    let text = vmdk::descriptor(&extents, cid)?;
    fs::write(layout.vmdk(&m), text.as_bytes())?;
    Ok(ImageRows {
        index: i,
        manifest: format!("sha256:{manifest_hex}"),
        manifest_size: manifest.len() as u64,
        config: format!("sha256:{config_hex}"),
        config_size: config.len() as u64,
        info: ConfigInfo::parse(&config)?,
        layers,
        fsmeta_size: fsmeta.size,
        vmdk_size: text.len() as u64,
    })
}

/// The fast path (see the module header).
fn gen_fast(root: &Path, references: usize) -> Res<()> {
    let start = Instant::now();
    let images = images_for(references);
    let layout = Layout::new(root);
    layout.ensure()?;
    let scratch = tempfile::Builder::new()
        .prefix("gen-")
        .tempdir_in(layout.tmp_dir())?;
    let shared: Vec<(LayerId, Built)> = shared_layers(images)
        .into_par_iter()
        .map(|id| -> Res<_> { Ok((id, build_layer(&layout, scratch.path(), &tar_of(id)?)?)) })
        .collect::<Res<_>>()?;
    let shared: BTreeMap<LayerId, Built> = shared.into_iter().collect();
    let rows: Vec<ImageRows> = (0..images)
        .into_par_iter()
        .map(|i| build_image(&layout, scratch.path(), i, &shared))
        .collect::<Res<_>>()?;
    drop(scratch);
    let files_seconds = start.elapsed().as_secs_f64();

    // The rows go through the index's own code (`Index::insert_images`, the call `load`
    // makes), all images in one transaction; then the times of the pattern are set.
    let now = now_ms();
    let mut records = Vec::with_capacity(rows.len());
    for r in &rows {
        let c = &r.info;
        let mut seen = HashSet::new();
        let mut disk = r.manifest_size + r.config_size + r.fsmeta_size + r.vmdk_size;
        for l in &r.layers {
            if seen.insert(&l.diff_id) {
                disk += l.erofs_size;
            }
        }
        let total =
            r.manifest_size + r.config_size + r.layers.iter().map(|l| l.tar_size).sum::<u64>();
        let references = references_of(r.index)
            .iter()
            .map(|name| Reference::parse(name).map(|r| r.canonical()))
            .collect::<Result<Vec<_>, _>>()?;
        records.push(NewImage {
            blobs: vec![
                NewBlob {
                    digest: r.manifest.clone(),
                    size: r.manifest_size as i64,
                    kind: "manifest",
                },
                NewBlob {
                    digest: r.config.clone(),
                    size: r.config_size as i64,
                    kind: "config",
                },
            ],
            config: ConfigRow::encode(&Digest::parse(&r.config)?, c),
            manifest_digest: r.manifest.clone(),
            media_type: MANIFEST_TYPE.into(),
            architecture: c.platform.architecture.clone(),
            os: c.platform.os.clone(),
            variant: c.platform.variant.clone(),
            total_size: total as i64,
            disk_size: disk as i64,
            fsmeta_size: Some(r.fsmeta_size as i64),
            vmdk_size: Some(r.vmdk_size as i64),
            // Stand-ins of the length a load records (the index never reads their value).
            fsmeta_hash: Some(stand_in_hash(&r.manifest)),
            vmdk_hash: Some(stand_in_hash(&r.manifest)),
            layers: r
                .layers
                .iter()
                .enumerate()
                .map(|(position, l)| LayerRow {
                    position: position as i64,
                    diff_id: l.diff_id.clone(),
                    blob_digest: l.diff_id.clone(),
                    media_type: LAYER_TYPE.into(),
                    compressed_size: l.tar_size as i64,
                    erofs_size: Some(l.erofs_size as i64),
                    erofs_hash: Some(stand_in_hash(&l.diff_id)),
                })
                .collect(),
            references,
            origin: None,
        });
    }
    let mut index = Index::open(&layout.index_db())?;
    index.insert_images(&records, now, || Ok(()))?;
    for (r, record) in rows.iter().zip(&records) {
        let i = r.index;
        if i % PIN_EVERY == 0 {
            let mut id = [0u8; 16];
            use_id(&mut id, i);
            index.add_use(
                &UseRow {
                    id: hex::encode(id),
                    holder_kind: "sandbox".into(),
                    holder_id: format!("sb-{i}"),
                    reference: record.references[0].clone(),
                    manifest_digest: r.manifest.clone(),
                    since: now,
                    expires_at: None,
                },
                &[],
            )?;
        }
    }
    drop(index);
    // Creation times spread over SPAN_MS, oldest image first; a third of the references were
    // used a while after they were created; a pinned image's first reference was just acquired.
    let mut conn = Connection::open(layout.index_db())?;
    let tx = conn.transaction()?;
    {
        let mut reference = tx.prepare(
            "UPDATE image_refs SET created_at = ?2, last_used_at = ?3 WHERE reference = ?1",
        )?;
        let mut artifacts =
            tx.prepare("UPDATE blobs SET created_at = ?2 WHERE digest = unhex(substr(?1, 8))")?;
        let mut manifest = tx.prepare(
            "UPDATE manifests SET created_at = ?2 WHERE id = (SELECT id FROM blobs WHERE digest = unhex(substr(?1, 8)))",
        )?;
        let mut layer = tx.prepare(
            "UPDATE layers SET created_at = min(created_at, ?2) WHERE diff_id = unhex(substr(?1, 8))",
        )?;
        let mut first_layer = tx.prepare("UPDATE layers SET created_at = ?1")?;
        first_layer.execute([now])?;
        for (r, record) in rows.iter().zip(&records) {
            let i = r.index;
            let created = now - SPAN_MS + (SPAN_MS * i as i64) / images as i64;
            let pinned = i % PIN_EVERY == 0;
            for (k, canonical) in record.references.iter().enumerate() {
                let used = if pinned && k == 0 {
                    Some(now)
                } else if (i + k) % 3 == 0 {
                    Some(created + SPAN_MS / 10)
                } else {
                    None
                };
                reference.execute(params![canonical, created, used])?;
            }
            artifacts.execute(params![r.manifest, created])?;
            artifacts.execute(params![r.config, created])?;
            manifest.execute(params![r.manifest, created])?;
            for l in &r.layers {
                layer.execute(params![l.diff_id, created])?;
            }
        }
    }
    tx.commit()?;
    drop(conn);
    checkpoint(root)?;
    println!(
        "{{\"seconds\":{:.3},\"filesSeconds\":{files_seconds:.3},\"images\":{images}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A use id: unique per image (the load path draws random ones; ids are not compared).
fn use_id(out: &mut [u8; 16], i: usize) {
    let mut rng = Rng::new(0x5eed_0000 ^ i as u64);
    out[..8].copy_from_slice(&rng.next().to_le_bytes());
    out[8..].copy_from_slice(&rng.next().to_le_bytes());
}

/// Files under the four artifact folders: name and size.
fn artifact_files(root: &Path) -> Res<BTreeSet<(String, u64)>> {
    let layout = Layout::new(root);
    let mut out = BTreeSet::new();
    for dir in [
        layout.blobs_dir(),
        layout.layers_dir(),
        layout.fsmeta_dir(),
        layout.vmdk_dir(),
    ] {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let rel = entry.path().strip_prefix(root)?.display().to_string();
            out.insert((rel, entry.metadata()?.len()));
        }
    }
    Ok(out)
}

/// Index rows, times and use ids aside.
fn index_rows(root: &Path) -> Res<BTreeSet<String>> {
    let conn = Connection::open_with_flags(
        Layout::new(root).index_db(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    // Digests as text and rows joined by digest: row ids depend on the order of insertion.
    let queries = [
        "SELECT 'blobs', lower(hex(digest)), size, kind FROM blobs",
        "SELECT 'configs', lower(hex(b.digest)), env, cmd, entrypoint, working_dir, user, labels, stop_signal, manifest_count
         FROM configs c JOIN blobs b ON b.id = c.id",
        "SELECT 'manifests', lower(hex(b.digest)), t.media_type, architecture, os, variant, layer_count,
                lower(hex(cb.digest)), total_size, disk_size, fsmeta_size, vmdk_size, shared_bytes, exclusive_bytes
         FROM manifests m JOIN blobs b ON b.id = m.id JOIN blobs cb ON cb.id = m.config_id
             JOIN media_types t ON t.id = m.media_type_id",
        "SELECT 'layers', lower(hex(diff_id)), erofs_size, manifest_count FROM layers",
        "SELECT 'manifest_layers', lower(hex(b.digest)), position, lower(hex(l.diff_id)), lower(hex(blob_digest)),
                t.media_type, compressed_size
         FROM manifest_layers ml JOIN blobs b ON b.id = ml.manifest_id JOIN layers l ON l.id = ml.layer_id
             JOIN media_types t ON t.id = ml.media_type_id",
        "SELECT 'image_refs', reference, lower(hex(b.digest)) FROM image_refs r JOIN blobs b ON b.id = r.manifest_id",
        "SELECT 'uses', holder_kind, holder_id, reference, lower(hex(b.digest)), expires_at
         FROM uses u JOIN blobs b ON b.id = u.manifest_id",
    ];
    let mut out = BTreeSet::new();
    for q in queries {
        let mut stmt = conn.prepare(q)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let mut line = Vec::with_capacity(columns);
            for c in 0..columns {
                line.push(format!("{:?}", row.get_ref(c)?));
            }
            out.insert(line.join("|"));
        }
    }
    Ok(out)
}

fn compare(a: &Path, b: &Path) -> Res<()> {
    let (fa, fb) = (artifact_files(a)?, artifact_files(b)?);
    let (ra, rb) = (index_rows(a)?, index_rows(b)?);
    let files_differ: Vec<_> = fa.symmetric_difference(&fb).take(5).collect();
    let rows_differ: Vec<_> = ra.symmetric_difference(&rb).take(5).collect();
    println!(
        "{{\"files\":{},\"rows\":{},\"identical\":{},\"firstDifferences\":{:?}}}",
        fa.len(),
        ra.len(),
        files_differ.is_empty() && rows_differ.is_empty(),
        files_differ
            .iter()
            .map(|f| format!("{f:?}"))
            .chain(rows_differ.iter().map(|r| r.to_string()))
            .collect::<Vec<_>>()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurements

fn prune(root: &Path, dry_run: bool) -> Res<()> {
    let cache = open_cache(root)?;
    let start = Instant::now();
    let r = cache.prune_with(&PruneOptions {
        dry_run,
        ..PruneOptions::default()
    })?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"seconds\":{seconds:.6},\"imageRefsRemoved\":{},\"manifestsRemoved\":{},\"layersRemoved\":{},\"fsmetaRemoved\":{},\"vmdkRemoved\":{},\"bytesReclaimed\":{},\"bytesBefore\":{},\"bytesAfter\":{}}}",
        r.image_refs_removed,
        r.manifests_removed,
        r.layers_removed,
        r.fsmeta_removed,
        r.vmdk_removed,
        r.bytes_reclaimed.unwrap_or(0),
        r.bytes_before,
        r.bytes_after
    );
    Ok(())
}

/// One call of `call` on the cache at `root`, timed; prints its time and rows. Run under
/// `/usr/bin/time` for the peak RSS of a process that makes only that call.
fn once(root: &Path, call: impl FnOnce(&Cache) -> Res<usize>) -> Res<()> {
    let cache = open_cache(root)?;
    let start = Instant::now();
    let rows = call(&cache)?;
    let seconds = start.elapsed().as_secs_f64();
    println!("{{\"seconds\":{seconds:.6},\"rows\":{rows}}}");
    Ok(())
}

/// The floor: lstat and unlink each listed file, then fsync each folder once (the durability
/// prune gives its unlinks); with THREADS > 1 the list is cut into chunks unlinked in parallel.
fn floor(list: &Path, threads: usize) -> Res<()> {
    let text = fs::read_to_string(list)?;
    let paths: Vec<PathBuf> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    let unlink = |chunk: &[PathBuf]| -> std::io::Result<u64> {
        let mut bytes = 0;
        for p in chunk {
            bytes += fs::symlink_metadata(p)?.len();
            fs::remove_file(p)?;
        }
        Ok(bytes)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()?;
    let start = Instant::now();
    let bytes: u64 = if threads <= 1 {
        unlink(&paths)?
    } else {
        pool.install(|| {
            paths
                .par_chunks(256)
                .map(unlink)
                .collect::<std::io::Result<Vec<u64>>>()
        })?
        .into_iter()
        .sum()
    };
    let unlinked = start.elapsed().as_secs_f64();
    let dirs: BTreeSet<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    for d in dirs {
        sync_dir(d)?;
    }
    println!(
        "{{\"seconds\":{:.6},\"unlinkSeconds\":{unlinked:.6},\"files\":{},\"bytes\":{bytes}}}",
        start.elapsed().as_secs_f64(),
        paths.len()
    );
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `Cache::list` and `Cache::disk_usage` against bare queries of the same rows, interleaved.
fn latency(root: &Path, runs: usize) -> Res<()> {
    let cache = open_cache(root)?;
    let conn = Connection::open_with_flags(
        Layout::new(root).index_db(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let list_floor = || -> Res<usize> { Ok(common::list_rows(&conn)?.len()) };
    // The same rows and totals disk_usage reads, by the same queries.
    let usage_floor = || -> Res<usize> { Ok(common::usage_rows(&conn, now_ms())?.0.len()) };
    let index = Index::open(&Layout::new(root).index_db())?;
    let usage_core = || -> Res<usize> {
        let mut n = 0;
        index.image_usage(now_ms(), |_| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    };
    let mut samples: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut run = |name: &'static str, f: &dyn Fn() -> Res<usize>, keep: bool| -> Res<()> {
        let start = Instant::now();
        let n = f()?;
        if keep {
            samples
                .entry(name)
                .or_default()
                .push(start.elapsed().as_secs_f64() * 1e3);
        }
        counts.insert(name, n);
        Ok(())
    };
    let list = || -> Res<usize> { Ok(cache.list()?.len()) };
    let usage = || -> Res<usize> { Ok(cache.disk_usage()?.images.len()) };
    for i in 0..=runs {
        // Interleaved, the first round a warm-up.
        run("list", &list, i > 0)?;
        run("listFloor", &list_floor, i > 0)?;
        run("diskUsage", &usage, i > 0)?;
        run("usageFloor", &usage_floor, i > 0)?;
        run("usageCore", &usage_core, i > 0)?;
    }
    let out: Vec<String> = samples
        .into_iter()
        .map(|(k, v)| format!("\"{k}Ms\":{:.3},\"{k}Rows\":{}", median(v), counts[k]))
        .collect();
    println!("{{{}}}", out.join(","));
    Ok(())
}

/// A content hash of the length a load records (`blake3:` and 64 hex digits), made from a
/// digest: the index stores hashes without reading them, so only their size matters here.
fn stand_in_hash(digest: &str) -> String {
    digest.replacen("sha256:", "blake3:", 1)
}
