//! Integrity at rest: every kind of artifact damaged in several ways (truncated, a byte flipped
//! in its data and in its metadata, replaced by another valid image, deleted), what `verify`
//! finds quick and full, that `boot_disk` refuses, and what `repair` restores (fsmeta and VMDK
//! byte for byte) or marks broken (layers) until a load brings the layer back.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use ocicache_core::{
    ArtifactKind, Cache, CheckReport, LoadOptions, ProblemKind, RepairOptions, VerifyOptions,
};

const A: &str = "example.com/a:1";
const B: &str = "example.com/b:1";

fn image(seed: &str, files: usize) -> BuiltImage {
    let base = LayerSpec::file(Compression::Gzip, "etc/base", "the shared base layer\n");
    let mut entries = Vec::new();
    for i in 0..files {
        entries.push(FileEntry::new(
            &format!("app/{seed}/{i}"),
            format!("content {i} of {seed}\n").repeat(300 + i),
        ));
    }
    let own = LayerSpec::new(Compression::Gzip, entries);
    ImageSpec::new("amd64", vec![base, own])
        .with_cmd(seed)
        .build()
}

/// A cache holding images A and B (which share their base layer), and the archives.
struct Fixture {
    _work: tempfile::TempDir,
    root: PathBuf,
    cache: Cache,
    a: BuiltImage,
    b: BuiltImage,
    a_tar: PathBuf,
}

fn fixture() -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let (a, b) = (image("a", 3), image("b", 5));
    let mut layout = OciLayout::new();
    layout.add_image(&a, &[(CONTAINERD_NAME, A)]);
    let a_tar = work.path().join("a.tar");
    fs::write(&a_tar, layout.to_tar()).unwrap();
    let mut layout = OciLayout::new();
    layout.add_image(&b, &[(CONTAINERD_NAME, B)]);
    let b_tar = work.path().join("b.tar");
    fs::write(&b_tar, layout.to_tar()).unwrap();
    let cache = open(&root);
    cache.load(&a_tar, &LoadOptions::default()).unwrap();
    cache.load(&b_tar, &LoadOptions::default()).unwrap();
    Fixture {
        _work: work,
        root,
        cache,
        a,
        b,
        a_tar,
    }
}

impl Fixture {
    fn layer(&self, img: &BuiltImage, i: usize) -> PathBuf {
        self.root
            .join("layers/sha256")
            .join(format!("{}.erofs", hex_of(&img.layers[i].diff_id)))
    }
    fn fsmeta(&self, img: &BuiltImage) -> PathBuf {
        self.root
            .join("fsmeta/sha256")
            .join(format!("{}.erofs", hex_of(&img.manifest_digest)))
    }
    fn vmdk(&self, img: &BuiltImage) -> PathBuf {
        self.root
            .join("vmdk/sha256")
            .join(format!("{}.vmdk", hex_of(&img.manifest_digest)))
    }
    fn verify(&self, full: bool) -> CheckReport {
        self.cache.verify(Some(A), &VerifyOptions { full }).unwrap()
    }
}

/// The kinds of the problems of the report's only image, with the artifact and path.
fn problems(report: &CheckReport) -> Vec<(ProblemKind, ArtifactKind, PathBuf)> {
    assert_eq!(report.images.len(), 1);
    report.images[0]
        .problems
        .iter()
        .map(|p| (p.kind, p.artifact, p.path.clone()))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate,
    FlipData,
    FlipSuperblock,
    FlipMetadata,
    Replace,
    Delete,
}

/// Byte offset of the first inode (the metadata after the data) of an EROFS image.
fn meta_offset(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    let meta_blkaddr = u32::from_le_bytes(bytes[1024 + 40..1024 + 44].try_into().unwrap());
    u64::from(meta_blkaddr) * 4096
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn is_vmdk(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "vmdk")
}

/// Damages `path` (replacing it with `other` for `Replace`).
fn damage(path: &Path, how: Damage, other: &Path) {
    match how {
        Damage::Truncate => {
            let len = fs::metadata(path).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }
        // A VMDK descriptor is text: a byte of an extent line, a byte of its header.
        Damage::FlipData if is_vmdk(path) => flip(path, fs::metadata(path).unwrap().len() - 20),
        Damage::FlipMetadata if is_vmdk(path) => flip(path, 2),
        // 100 bytes into block 1, the first file's data.
        Damage::FlipData => flip(path, 4096 + 100),
        // The volume uuid in the superblock, which its checksum covers.
        Damage::FlipSuperblock => flip(path, 1024 + 50),
        Damage::FlipMetadata => flip(path, meta_offset(path) + 2),
        Damage::Replace => {
            fs::copy(other, path).unwrap();
        }
        Damage::Delete => fs::remove_file(path).unwrap(),
    }
}

/// What a quick and a full verify find for a damage (`None`: quick finds nothing).
fn expected(how: Damage) -> (Option<&'static [ProblemKind]>, &'static [ProblemKind]) {
    use ProblemKind::*;
    match how {
        Damage::Truncate => (Some(&[Size]), &[Size]),
        Damage::FlipData => (None, &[Hash]),
        Damage::FlipSuperblock => (Some(&[Superblock]), &[Superblock]),
        Damage::FlipMetadata => (None, &[Hash]),
        // Another image of another size, or of the same size naming another volume.
        Damage::Replace => (Some(&[Size, WrongImage]), &[Size, WrongImage]),
        Damage::Delete => (Some(&[Missing]), &[Missing]),
    }
}

const ALL: [Damage; 6] = [
    Damage::Truncate,
    Damage::FlipData,
    Damage::FlipSuperblock,
    Damage::FlipMetadata,
    Damage::Replace,
    Damage::Delete,
];

#[test]
fn a_sound_cache_verifies_clean_quick_and_full_and_full_reads_every_byte() {
    let f = fixture();
    let all = f.cache.verify(None, &VerifyOptions { full: true }).unwrap();
    assert_eq!(all.images.len(), 2);
    assert_eq!(all.problems, 0, "{all:?}");
    let report = f.verify(true);
    let check = &report.images[0];
    assert_eq!(check.manifest_digest, f.a.manifest_digest);
    assert_eq!(check.references, [A]);
    assert_eq!(
        check.artifacts,
        2 + 2 + 2,
        "two blobs, two layers, fsmeta, VMDK"
    );
    let on_disk: u64 = [
        f.layer(&f.a, 0),
        f.layer(&f.a, 1),
        f.fsmeta(&f.a),
        f.vmdk(&f.a),
    ]
    .iter()
    .map(|p| fs::metadata(p).unwrap().len())
    .sum::<u64>()
        + (f.a.manifest.len() + f.a.config.len()) as u64;
    // Every byte, and the superblocks and the descriptor once more by the quick check first.
    let vmdk = fs::metadata(f.vmdk(&f.a)).unwrap().len();
    assert_eq!(check.bytes_read, on_disk + 3 * 4096 + vmdk);
    assert_eq!(f.verify(false).problems, 0);
    // The cache's own repair finds nothing to do.
    let repaired = f.cache.repair(None, &RepairOptions::default()).unwrap();
    assert_eq!(repaired.problems, 0);
    assert!(repaired.images.iter().all(|i| i.repaired.is_empty()));
}

#[test]
fn damaged_fsmeta_and_vmdk_are_found_refused_and_rebuilt_byte_for_byte() {
    for artifact in [ArtifactKind::Fsmeta, ArtifactKind::Vmdk] {
        for how in ALL {
            if artifact == ArtifactKind::Vmdk && matches!(how, Damage::FlipSuperblock) {
                continue; // a descriptor has no superblock
            }
            let case = format!("{artifact:?} {how:?}");
            let f = fixture();
            let (path, other) = match artifact {
                ArtifactKind::Fsmeta => (f.fsmeta(&f.a), f.fsmeta(&f.b)),
                _ => (f.vmdk(&f.a), f.vmdk(&f.b)),
            };
            let before = fs::read(&path).unwrap();
            damage(&path, how, &other);
            let (quick, full) = expected(how);
            // A descriptor is compared as text in the quick check.
            let quick = match (artifact, how) {
                (ArtifactKind::Vmdk, Damage::FlipData | Damage::FlipMetadata) => {
                    Some(&[ProblemKind::WrongImage][..])
                }
                _ => quick,
            };
            let full = match (artifact, how) {
                (ArtifactKind::Vmdk, Damage::FlipData | Damage::FlipMetadata) => {
                    &[ProblemKind::WrongImage][..]
                }
                _ => full,
            };
            let found = problems(&f.verify(false));
            match quick {
                None => assert!(found.is_empty(), "{case}: quick found {found:?}"),
                Some(kinds) => {
                    assert_eq!(found.len(), 1, "{case}: {found:?}");
                    assert!(kinds.contains(&found[0].0), "{case}: {found:?}");
                    assert_eq!((found[0].1, &found[0].2), (artifact, &path), "{case}");
                }
            }
            let found = problems(&f.verify(true));
            assert_eq!(found.len(), 1, "{case}: {found:?}");
            assert!(full.contains(&found[0].0), "{case}: {found:?}");
            if quick.is_some() && !matches!(how, Damage::Delete) {
                let err = f.cache.boot_disk(A).unwrap_err();
                assert_eq!(err.code(), "CORRUPT_CACHE", "{case}: {err}");
            }
            // A dry run changes nothing.
            let dry = f
                .cache
                .repair(
                    Some(A),
                    &RepairOptions {
                        dry_run: true,
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(dry.images[0].repaired.len(), 1, "{case}: {dry:?}");
            assert_eq!(problems(&f.verify(true)).len(), 1, "{case}");
            let report = f.cache.repair(Some(A), &RepairOptions::default()).unwrap();
            assert_eq!(report.problems, 0, "{case}: {report:?}");
            assert_eq!(report.images[0].repaired.len(), 1, "{case}");
            assert_eq!(fs::read(&path).unwrap(), before, "{case}: byte for byte");
            assert_eq!(f.verify(true).problems, 0, "{case}");
            f.cache.boot_disk(A).unwrap();
            // B was never touched.
            let b = f
                .cache
                .verify(Some(B), &VerifyOptions { full: true })
                .unwrap();
            assert_eq!(b.problems, 0, "{case}");
        }
    }
}

#[test]
fn damaged_layers_are_found_reported_marked_broken_and_back_after_a_load() {
    for how in ALL {
        let case = format!("layer {how:?}");
        let f = fixture();
        // Layer 1 is A's own; layer 0 is shared with B.
        for (i, shared) in [(1, false), (0, true)] {
            let path = f.layer(&f.a, i);
            let other = f.layer(&f.b, 1);
            let before = fs::read(&path).unwrap();
            damage(&path, how, &other);
            let (quick, full) = expected(how);
            let found = problems(&f.verify(false));
            match quick {
                None => assert!(found.is_empty(), "{case}: quick found {found:?}"),
                Some(kinds) => {
                    assert_eq!(found.len(), 1, "{case}: {found:?}");
                    assert!(kinds.contains(&found[0].0), "{case}: {found:?}");
                    assert_eq!((found[0].1, &found[0].2), (ArtifactKind::Layer, &path));
                    let err = f.cache.boot_disk(A).unwrap_err();
                    assert_eq!(err.code(), "CORRUPT_CACHE", "{case}: {err}");
                }
            }
            let found = problems(&f.verify(true));
            assert_eq!(found.len(), 1, "{case}: {found:?}");
            assert!(full.contains(&found[0].0), "{case}: {found:?}");

            let report = f.cache.repair(Some(A), &RepairOptions::default()).unwrap();
            assert_eq!(
                report.problems, 1,
                "{case}: the layer cannot be rebuilt here"
            );
            assert!(report.images[0].broken.is_some(), "{case}");
            assert!(!path.exists(), "{case}: the damaged image is taken away");
            let err = f.cache.boot_disk(A).unwrap_err();
            assert_eq!(err.code(), "CORRUPT_CACHE", "{case}: {err}");
            // An image sharing the layer is marked too.
            let b = f.cache.boot_disk(B);
            assert_eq!(b.is_err(), shared, "{case} shared={shared}");
            // A load of the image converts the layer again and clears the mark.
            f.cache.load(&f.a_tar, &LoadOptions::default()).unwrap();
            assert_eq!(fs::read(&path).unwrap(), before, "{case}: byte for byte");
            f.cache.boot_disk(A).unwrap();
            assert_eq!(f.verify(true).problems, 0, "{case}");
            if shared {
                // B's mark goes with a repair that finds its files sound again.
                let b = f.cache.repair(Some(B), &RepairOptions::default()).unwrap();
                assert_eq!((b.problems, b.images[0].broken.as_deref()), (0, None));
                f.cache.boot_disk(B).unwrap();
            }
        }
    }
}

#[test]
fn verify_and_repair_of_a_root_that_does_not_exist_create_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("none");
    let cache = open(&root);
    let report = cache.verify(None, &VerifyOptions { full: true }).unwrap();
    assert_eq!((report.images.len(), report.problems), (0, 0));
    assert_eq!(
        cache
            .verify(Some("busybox"), &VerifyOptions::default())
            .unwrap_err()
            .code(),
        "IMAGE_NOT_FOUND"
    );
    assert!(cache.list().unwrap().is_empty());
    assert_eq!(cache.get("busybox").unwrap_err().code(), "IMAGE_NOT_FOUND");
    // Regression: with no index to look in, a malformed reference was IMAGE_NOT_FOUND.
    assert_eq!(
        cache.get("Bad Ref").unwrap_err().code(),
        "INVALID_REFERENCE"
    );
    assert_eq!(
        cache.inspect("Bad Ref").unwrap_err().code(),
        "INVALID_REFERENCE"
    );
    assert!(cache.uses(None).unwrap().is_empty());
    assert!(!root.exists(), "read-only operations create no cache");
}

#[test]
fn disk_usage_of_a_root_that_does_not_exist_is_zero_and_creates_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("none");
    let cache = open(&root);
    let usage = cache.disk_usage().unwrap();
    assert_eq!((usage.total, usage.images.len()), (0, 0));
    assert_eq!(
        cache
            .release_holder(&ocicache_core::Holder::Sandbox("s".into()))
            .unwrap(),
        0
    );
    assert!(!root.exists());
}
