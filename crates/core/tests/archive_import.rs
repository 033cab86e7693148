//! `archive::open_archive` against fixture archives: every format and compression, names,
//! platform selection, and every kind of bad input. Errors are checked by code, never by
//! message, and every failure is checked to have written nothing outside the staging folder.
//!
//! Opening an archive checks its manifests and configs; a layer's blob digest, size and
//! `diff_id` are checked when it is read and converted to EROFS, so [`Env::stage`] reads every
//! layer through its source (`common::read`) and converts it into the staging folder too, as
//! `load` does.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::read::{ReadBlob, ReadImage, read_archive};
use common::*;
use ocicache_core::Result;
use ocicache_core::budget::WriteBudget;
use ocicache_core::layer::{ConvertOptions, convert_layer_from};
use ocicache_core::oci::{Digest, Platform};

/// A scratch root holding the source (`input/`) and the staging folder (`staging/`).
struct Env {
    root: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("staging")).unwrap();
        fs::create_dir(root.path().join("input")).unwrap();
        Env { root }
    }

    fn staging(&self) -> PathBuf {
        self.root.path().join("staging")
    }

    fn input(&self) -> PathBuf {
        self.root.path().join("input")
    }

    /// Reads `source` for `platform`, checking that nothing changed outside `staging/` (where
    /// a stream's members may be spooled) and that every blob read hashes to its digest.
    fn stage(&self, source: &Path, platform: &str) -> Result<Vec<ReadImage>> {
        let before = tree_listing(self.root.path(), &self.staging());
        let result = read_archive(source, &self.staging(), &parse_platform(platform))
            .and_then(|images| self.convert(images));
        assert_eq!(
            tree_listing(self.root.path(), &self.staging()),
            before,
            "files changed outside staging"
        );
        if let Ok(images) = &result {
            for image in images {
                for blob in read_blobs(image) {
                    assert_eq!(Digest::of_bytes(&blob.bytes), blob.digest);
                    assert_eq!(blob.bytes.len() as u64, blob.size);
                }
            }
        }
        result
    }

    /// Converts every layer read into the staging folder, checking its blob digest and
    /// `diff_id`.
    fn convert(&self, images: Vec<ReadImage>) -> Result<Vec<ReadImage>> {
        for image in &images {
            for layer in &image.layers {
                let dest = self
                    .staging()
                    .join(format!("{}.erofs", layer.diff_id.hex()));
                let options = ConvertOptions {
                    blob_digest: Some(layer.blob.digest.clone()),
                    diff_id: Some(layer.diff_id.clone()),
                };
                convert_layer_from(
                    layer.blob.bytes.as_slice(),
                    Path::new("layer"),
                    &dest,
                    &options,
                    &WriteBudget::unlimited(),
                )?;
            }
        }
        Ok(images)
    }

    /// Writes `bytes` as `input/archive.tar` and reads it.
    fn stage_bytes(&self, bytes: &[u8], platform: &str) -> Result<Vec<ReadImage>> {
        let path = self.input().join("archive.tar");
        fs::write(&path, bytes).unwrap();
        self.stage(&path, platform)
    }

    /// Writes `layout` as the folder `input/layout` and reads it.
    fn stage_dir(&self, layout: &OciLayout, platform: &str) -> Result<Vec<ReadImage>> {
        let dir = self.input().join("layout");
        fs::create_dir(&dir).unwrap();
        layout.write_dir(&dir);
        self.stage(&dir, platform)
    }
}

fn parse_platform(s: &str) -> Platform {
    let parts: Vec<&str> = s.split('/').collect();
    Platform {
        os: parts[0].into(),
        architecture: parts[1].into(),
        variant: parts.get(2).map(|v| (*v).into()),
    }
}

fn read_blobs(image: &ReadImage) -> Vec<&ReadBlob> {
    let mut blobs = vec![&image.manifest, &image.config];
    blobs.extend(image.layers.iter().map(|l| &l.blob));
    blobs
}

const AMD64: &str = "linux/amd64";

fn stage_bytes(bytes: &[u8]) -> Result<Vec<ReadImage>> {
    Env::new().stage_bytes(bytes, AMD64)
}

fn code_of(result: Result<Vec<ReadImage>>) -> &'static str {
    match result {
        Ok(images) => panic!("expected an error, staged {} image(s)", images.len()),
        Err(e) => {
            if std::env::var_os("SHOW_ERRORS").is_some() {
                eprintln!("ERR {}: {e}", e.code());
            }
            e.code()
        }
    }
}

fn canonical_refs(image: &ReadImage) -> Vec<String> {
    image.references.iter().map(|r| r.canonical()).collect()
}

/// Checks an image against what was built, except the manifest (synthesized for legacy).
fn assert_matches_built(image: &ReadImage, built: &BuiltImage) {
    assert_eq!(image.config.digest.to_string(), built.config_digest);
    assert_eq!(image.config.size, built.config.len() as u64);
    assert_eq!(image.layers.len(), built.layers.len());
    for (staged, want) in image.layers.iter().zip(&built.layers) {
        assert_eq!(staged.blob.digest.to_string(), want.digest);
        assert_eq!(staged.blob.size, want.blob.len() as u64);
        assert_eq!(staged.diff_id.to_string(), want.diff_id);
    }
    let diff_ids: Vec<String> = image
        .config_info
        .diff_ids
        .iter()
        .map(Digest::to_string)
        .collect();
    let want: Vec<String> = built.layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(diff_ids, want);
}

/// Checks an OCI-path image, manifest included.
fn assert_oci_image(image: &ReadImage, built: &BuiltImage) {
    assert_matches_built(image, built);
    assert_eq!(image.manifest.digest.to_string(), built.manifest_digest);
    assert_eq!(image.manifest_media_type, built.manifest_media_type);
    for (staged, want) in image.layers.iter().zip(&built.layers) {
        assert_eq!(staged.media_type, want.media_type);
    }
}

/// Legacy `docker save` archives.
mod archive_legacy {
    use super::*;

    #[test]
    fn legacy_archive_every_compression() {
        for layers in [Compression::None, Compression::Gzip, Compression::Zstd] {
            for outer_gzip in [false, true] {
                let built = ImageSpec::sample(layers, "legacy").build();
                let tree = legacy_docker_archive(
                    &[(&built, &["busybox:latest", "example.com/app:v1"])],
                    LegacyOptions::default(),
                );
                let bytes = if outer_gzip {
                    tree.to_tar_gz()
                } else {
                    tree.to_tar()
                };
                let env = Env::new();
                let images = env
                    .stage_bytes(&bytes, AMD64)
                    .unwrap_or_else(|e| panic!("{layers:?} gzip={outer_gzip}: {e}"));
                assert_eq!(images.len(), 1);
                let image = &images[0];
                assert_matches_built(image, &built);
                assert_eq!(
                    canonical_refs(image),
                    ["docker.io/library/busybox:latest", "example.com/app:v1"]
                );
                assert!(image.bare_tags.is_empty());
                assert_eq!(image.manifest_media_type, mt::DOCKER_MANIFEST);
                let want_type = match layers {
                    Compression::None => mt::DOCKER_LAYER,
                    Compression::Gzip => mt::DOCKER_LAYER_GZIP,
                    Compression::Zstd => mt::OCI_LAYER_ZSTD,
                };
                assert!(
                    image.layers.iter().all(|l| l.media_type == want_type),
                    "{layers:?}"
                );
                // The synthesized manifest describes exactly the blobs read.
                let manifest: serde_json::Value =
                    serde_json::from_slice(&image.manifest.bytes).unwrap();
                assert_eq!(manifest["schemaVersion"], 2);
                assert_eq!(manifest["mediaType"], mt::DOCKER_MANIFEST);
                assert_eq!(manifest["config"]["mediaType"], mt::DOCKER_CONFIG);
                assert_eq!(manifest["config"]["digest"], built.config_digest.as_str());
                assert_eq!(
                    manifest["layers"][1]["digest"],
                    built.layers[1].digest.as_str()
                );
                assert_eq!(manifest["layers"][1]["mediaType"], want_type);
            }
        }
    }

    #[test]
    fn legacy_synthesized_manifest_is_deterministic() {
        let built = ImageSpec::sample(Compression::None, "det").build();
        let bytes = legacy_docker_archive(&[(&built, &["a:1"])], LegacyOptions::default()).to_tar();
        let first = stage_bytes(&bytes).unwrap();
        let second = stage_bytes(&bytes).unwrap();
        assert_eq!(first[0].manifest.digest, second[0].manifest.digest);
    }

    #[test]
    fn legacy_symlinked_duplicate_layer() {
        let same = LayerSpec::file(Compression::None, "a", "same");
        let built = ImageSpec::new("amd64", vec![same.clone(), same]).build();
        let tree = legacy_docker_archive(
            &[(&built, &["dup:1"])],
            LegacyOptions {
                symlink_duplicates: true,
            },
        );
        assert!(
            tree.members
                .iter()
                .any(|m| matches!(m.kind, MemberKind::Symlink(_))),
            "fixture has a symlink"
        );
        let images = stage_bytes(&tree.to_tar()).unwrap();
        assert_matches_built(&images[0], &built);
        assert_eq!(
            images[0].layers[0].blob, images[0].layers[1].blob,
            "the link reads the same member"
        );
    }

    #[test]
    fn legacy_hardlinked_layer() {
        let built = ImageSpec::sample(Compression::None, "hard").build();
        let mut tree = legacy_docker_archive(&[(&built, &["hard:1"])], LegacyOptions::default());
        let manifest: serde_json::Value =
            serde_json::from_slice(tree.file_mut("manifest.json")).unwrap();
        let layer1 = manifest[0]["Layers"][1].as_str().unwrap().to_owned();
        let bytes = std::mem::take(tree.file_mut(&layer1));
        tree.remove(&layer1)
            .file("store/blob", bytes)
            .hardlink(&layer1, "store/blob");
        let images = stage_bytes(&tree.to_tar()).unwrap();
        assert_matches_built(&images[0], &built);
    }

    #[test]
    fn legacy_several_images_share_blobs_and_merge_names() {
        let a = ImageSpec::sample(Compression::Gzip, "shared").build();
        let b = ImageSpec::sample(Compression::Gzip, "shared")
            .with_cmd("other")
            .build();
        let tree = legacy_docker_archive(
            &[(&a, &["a:1"]), (&b, &["b:1"]), (&a, &["a:2"])],
            LegacyOptions::default(),
        );
        let images = stage_bytes(&tree.to_tar()).unwrap();
        assert_eq!(images.len(), 2, "the third entry is the first image again");
        assert_eq!(
            canonical_refs(&images[0]),
            ["docker.io/library/a:1", "docker.io/library/a:2"]
        );
        assert_eq!(canonical_refs(&images[1]), ["docker.io/library/b:1"]);
        assert_eq!(
            images[0].layers[0].blob, images[1].layers[0].blob,
            "the shared layer is one member"
        );
    }

    #[test]
    fn legacy_image_saved_by_id_has_no_names() {
        let built = ImageSpec::sample(Compression::None, "noname").build();
        let tree = legacy_docker_archive(&[(&built, &[])], LegacyOptions::default());
        let images = stage_bytes(&tree.to_tar()).unwrap();
        assert!(images[0].references.is_empty() && images[0].bare_tags.is_empty());
    }
}

/// Docker 25+ `docker save` archives (OCI layouts with a `manifest.json`).
mod archive_docker25 {
    use super::*;

    #[test]
    fn docker25_archive_names_from_annotations_and_repo_tags() {
        let built = ImageSpec::sample(Compression::None, "d25")
            .docker_style()
            .build();
        let layout = docker25_layout(&[(&built, &["busybox:latest", "example.com/app:v1"])]);
        let images = stage_bytes(&layout.to_tar()).unwrap();
        assert_eq!(images.len(), 1);
        assert_oci_image(&images[0], &built);
        assert_eq!(
            canonical_refs(&images[0]),
            ["docker.io/library/busybox:latest", "example.com/app:v1"]
        );
        assert!(
            images[0].bare_tags.is_empty(),
            "ref.name is the containerd name's tag"
        );
    }
}

/// OCI Image Layouts, tarred or not.
mod archive_oci {
    use super::*;

    #[test]
    fn oci_layout_every_form_and_compression() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            for form in ["tar", "tar.gz", "dir"] {
                let built = ImageSpec::sample(c, "oci").build();
                let mut layout = OciLayout::new();
                layout.add_image(&built, &[(REF_NAME, "1")]);
                let env = Env::new();
                let images = match form {
                    "tar" => env.stage_bytes(&layout.to_tar(), AMD64),
                    "tar.gz" => env.stage_bytes(&layout.to_tar_gz(), AMD64),
                    _ => env.stage_dir(&layout, AMD64),
                }
                .unwrap_or_else(|e| panic!("{c:?} {form}: {e}"));
                assert_eq!(images.len(), 1);
                assert_oci_image(&images[0], &built);
                assert!(images[0].references.is_empty());
                assert_eq!(images[0].bare_tags, ["1"]);
            }
        }
    }

    #[test]
    fn oci_layout_with_docker_media_types() {
        let built = ImageSpec::sample(Compression::Gzip, "dockertypes")
            .docker_style()
            .build();
        let mut layout = OciLayout::new();
        layout.add_image(&built, &[(REF_NAME, "example.com/app:v2")]);
        let images = stage_bytes(&layout.to_tar()).unwrap();
        assert_oci_image(&images[0], &built);
        assert_eq!(images[0].manifest_media_type, mt::DOCKER_MANIFEST);
        assert_eq!(canonical_refs(&images[0]), ["example.com/app:v2"]);
    }

    #[test]
    fn oci_annotation_names_table() {
        // (annotations, references, bare tags)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&[(REF_NAME, "1")], &[], &["1"]),
            (&[(REF_NAME, "v1.2")], &[], &["v1.2"]),
            (&[(REF_NAME, "busybox")], &[], &["busybox"]),
            (
                &[(REF_NAME, "example.com/app:v1")],
                &["example.com/app:v1"],
                &[],
            ),
            (
                &[(REF_NAME, "busybox:1.36")],
                &["docker.io/library/busybox:1.36"],
                &[],
            ),
            (
                &[
                    (CONTAINERD_NAME, "docker.io/library/busybox:latest"),
                    (REF_NAME, "latest"),
                ],
                &["docker.io/library/busybox:latest"],
                &[],
            ),
            (
                &[
                    (CONTAINERD_NAME, "ghcr.io/o/a:1"),
                    (REF_NAME, "ghcr.io/o/a:1"),
                ],
                &["ghcr.io/o/a:1"],
                &[],
            ),
            (&[], &[], &[]),
        ];
        for (annotations, refs, tags) in cases {
            let built = ImageSpec::sample(Compression::Gzip, "names").build();
            let mut layout = OciLayout::new();
            layout.add_image(&built, annotations);
            let images = stage_bytes(&layout.to_tar()).unwrap();
            assert_eq!(canonical_refs(&images[0]), *refs, "{annotations:?}");
            assert_eq!(images[0].bare_tags, *tags, "{annotations:?}");
        }
    }

    #[test]
    fn oci_layout_several_images_and_same_manifest_twice() {
        let a = ImageSpec::sample(Compression::Gzip, "a").build();
        let b = ImageSpec::sample(Compression::Zstd, "b").build();
        let mut layout = OciLayout::new();
        layout
            .add_image(&a, &[(REF_NAME, "1")])
            .add_image(&b, &[(REF_NAME, "example.com/b:1")])
            .add_image(&a, &[(REF_NAME, "2")]);
        let images = stage_bytes(&layout.to_tar()).unwrap();
        assert_eq!(images.len(), 2);
        assert_oci_image(&images[0], &a);
        assert_oci_image(&images[1], &b);
        assert_eq!(images[0].bare_tags, ["1", "2"]);
        assert_eq!(canonical_refs(&images[1]), ["example.com/b:1"]);
    }

    fn multi_platform_layout(attestation: bool) -> (OciLayout, BuiltImage, BuiltImage, BuiltImage) {
        let amd = ImageSpec::sample(Compression::Gzip, "amd").build();
        let arm64 = ImageSpec::new(
            "arm64",
            ImageSpec::sample(Compression::Gzip, "arm64").layers,
        )
        .with_variant("v8")
        .build();
        let armv7 = ImageSpec::new("arm", ImageSpec::sample(Compression::Zstd, "armv7").layers)
            .with_variant("v7")
            .build();
        let mut layout = OciLayout::new();
        layout.add_multi_platform(
            &[&amd, &arm64, &armv7],
            &[(CONTAINERD_NAME, "example.com/multi:1")],
            attestation,
        );
        (layout, amd, arm64, armv7)
    }

    #[test]
    fn multi_platform_index_selects_the_platform() {
        let (layout, amd, arm64, armv7) = multi_platform_layout(true);
        let cases: &[(&str, &BuiltImage)] = &[
            ("linux/amd64", &amd),
            ("linux/arm64", &arm64),
            ("linux/arm64/v8", &arm64),
            ("linux/arm/v7", &armv7),
            ("linux/arm", &armv7),
        ];
        for (platform, want) in cases {
            let images = Env::new().stage_bytes(&layout.to_tar(), platform).unwrap();
            assert_eq!(images.len(), 1, "{platform}");
            assert_oci_image(&images[0], want);
            assert_eq!(
                canonical_refs(&images[0]),
                ["example.com/multi:1"],
                "{platform}"
            );
        }
    }

    #[test]
    fn multi_platform_index_without_the_platform() {
        let (layout, ..) = multi_platform_layout(true);
        for platform in ["linux/s390x", "windows/amd64", "linux/arm/v6"] {
            let env = Env::new();
            assert_eq!(
                code_of(env.stage_bytes(&layout.to_tar(), platform)),
                "PLATFORM_NOT_FOUND",
                "{platform}"
            );
            assert_eq!(
                code_of(env.stage_dir(&layout, platform)),
                "PLATFORM_NOT_FOUND",
                "{platform}"
            );
        }
    }

    #[test]
    fn top_level_platform_entries_select_the_platform() {
        let amd = ImageSpec::sample(Compression::Gzip, "top-amd").build();
        let arm = ImageSpec::new(
            "arm64",
            ImageSpec::sample(Compression::Gzip, "top-arm").layers,
        )
        .build();
        let mut layout = OciLayout::new();
        layout
            .add_platform_image(&amd, &[(REF_NAME, "1")])
            .add_platform_image(&arm, &[(REF_NAME, "1")]);
        let images = Env::new()
            .stage_bytes(&layout.to_tar(), "linux/arm64")
            .unwrap();
        assert_eq!(images.len(), 1);
        assert_oci_image(&images[0], &arm);
        assert_eq!(
            code_of(Env::new().stage_bytes(&layout.to_tar(), "linux/ppc64le")),
            "PLATFORM_NOT_FOUND"
        );
    }

    #[test]
    fn layout_dir_resolves_symlinks_inside_it() {
        let built = ImageSpec::sample(Compression::Gzip, "inner-link").build();
        let mut layout = OciLayout::new();
        layout.add_image(&built, &[(REF_NAME, "1")]);
        let layer = hex_of(&built.layers[0].digest).to_owned();
        let bytes = layout.blobs.remove(&built.layers[0].digest).unwrap();
        layout
            .extra
            .file("store/layer", bytes)
            .symlink(&format!("blobs/sha256/{layer}"), "../../store/layer");
        let images = Env::new().stage_dir(&layout, AMD64).unwrap();
        assert_oci_image(&images[0], &built);
    }
}

/// Bad input: every case fails with the right code and writes nothing outside staging.
mod archive_bad_input {
    use super::*;

    fn legacy_bytes(spec: ImageSpec) -> Vec<u8> {
        let built = spec.build();
        legacy_docker_archive(&[(&built, &["bad:1"])], LegacyOptions::default()).to_tar()
    }

    fn oci_layout_of(spec: ImageSpec) -> (OciLayout, BuiltImage) {
        let built = spec.build();
        let mut layout = OciLayout::new();
        layout.add_image(&built, &[(REF_NAME, "1")]);
        (layout, built)
    }

    fn oci_bytes(spec: ImageSpec) -> Vec<u8> {
        oci_layout_of(spec).0.to_tar()
    }

    fn sample() -> ImageSpec {
        ImageSpec::sample(Compression::Gzip, "bad")
    }

    #[test]
    fn truncated_archives() {
        let legacy = legacy_bytes(ImageSpec::sample(Compression::None, "trunc"));
        let oci = oci_bytes(sample());
        let oci_gz = oci_layout_of(sample()).0.to_tar_gz();
        for (name, bytes) in [("legacy", &legacy), ("oci", &oci), ("oci.gz", &oci_gz)] {
            for cut in [1, 100, 700, bytes.len() / 2, bytes.len() - 1100] {
                let code = code_of(stage_bytes(&bytes[..cut]));
                assert_eq!(
                    code,
                    "INVALID_ARCHIVE",
                    "{name} cut at {cut} of {}",
                    bytes.len()
                );
            }
        }
    }

    #[test]
    fn corrupt_gzip_archive() {
        let mut gz = oci_layout_of(sample()).0.to_tar_gz();
        let mid = gz.len() / 2;
        for b in &mut gz[mid..mid + 16] {
            *b ^= 0x55;
        }
        assert_eq!(code_of(stage_bytes(&gz)), "INVALID_ARCHIVE");
        let mut trailer = oci_layout_of(sample()).0.to_tar_gz();
        let crc = trailer.len() - 8; // gzip trailer: CRC32 then ISIZE
        trailer[crc] ^= 0xff;
        assert_eq!(code_of(stage_bytes(&trailer)), "INVALID_ARCHIVE");
    }

    #[test]
    fn corrupt_compressed_layers() {
        for c in [Compression::Gzip, Compression::Zstd] {
            let faults = Faults {
                truncated_layer_blob: Some(1),
                ..Faults::default()
            };
            let spec = ImageSpec::sample(c, "corrupt-layer").with_faults(faults);
            assert_eq!(
                code_of(stage_bytes(&oci_bytes(spec.clone()))),
                "INVALID_ARCHIVE",
                "{c:?} oci"
            );
            assert_eq!(
                code_of(stage_bytes(&legacy_bytes(spec))),
                "INVALID_ARCHIVE",
                "{c:?} legacy"
            );
        }
    }

    #[test]
    fn layer_that_is_not_a_tar() {
        for c in [Compression::None, Compression::Gzip] {
            let mut spec = ImageSpec::sample(c, "not-tar");
            spec.layers[0].raw = Some(b"just some text, not a tar archive".repeat(20));
            assert_eq!(
                code_of(stage_bytes(&oci_bytes(spec.clone()))),
                "INVALID_ARCHIVE",
                "{c:?}"
            );
            assert_eq!(
                code_of(stage_bytes(&legacy_bytes(spec))),
                "INVALID_ARCHIVE",
                "{c:?}"
            );
        }
    }

    #[test]
    fn neither_index_nor_manifest() {
        let mut tree = TarTree::default();
        tree.file("hello.txt", "hi");
        assert_eq!(code_of(stage_bytes(&tree.to_tar())), "INVALID_ARCHIVE");
        assert_eq!(code_of(stage_bytes(b"")), "INVALID_ARCHIVE");
        assert_eq!(
            code_of(stage_bytes(
                b"this is not a tar file at all, just text that goes on"
                    .repeat(20)
                    .as_slice()
            )),
            "INVALID_ARCHIVE"
        );
    }

    #[test]
    fn malformed_manifest_json() {
        let built = sample().build();
        let cases: &[&[u8]] = &[
            b"not json",
            b"{}",
            b"[{\"Config\": 1}]",
            b"[{\"Config\": \"missing.json\", \"RepoTags\": null, \"Layers\": []}]",
            b"[]",
        ];
        for manifest in cases {
            let mut tree = legacy_docker_archive(&[(&built, &["a:1"])], LegacyOptions::default());
            *tree.file_mut("manifest.json") = manifest.to_vec();
            let code = code_of(stage_bytes(&tree.to_tar()));
            assert_eq!(
                code,
                "INVALID_ARCHIVE",
                "{}",
                String::from_utf8_lossy(manifest)
            );
        }
    }

    #[test]
    fn legacy_missing_layer_member() {
        let built = sample().build();
        let mut tree = legacy_docker_archive(&[(&built, &["a:1"])], LegacyOptions::default());
        let manifest: serde_json::Value =
            serde_json::from_slice(tree.file_mut("manifest.json")).unwrap();
        tree.remove(manifest[0]["Layers"][0].as_str().unwrap());
        assert_eq!(code_of(stage_bytes(&tree.to_tar())), "INVALID_ARCHIVE");
    }

    #[test]
    fn malformed_index_json_and_layout_file() {
        // (index.json, oci-layout), None keeping the valid one
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
        let cases: &[Case<'_>] = &[
            (Some(b"not json"), None),
            (Some(b"{\"schemaVersion\": 2}"), None),
            (Some(b"{\"schemaVersion\": 1, \"manifests\": []}"), None),
            (Some(b"{\"schemaVersion\": 2, \"manifests\": []}"), None),
            (None, Some(b"not json")),
            (None, Some(b"{}")),
        ];
        for (index, oci_layout) in cases {
            let (mut layout, _) = oci_layout_of(sample());
            if let Some(i) = index {
                layout.index_override = Some(Some(i.to_vec()));
            }
            if let Some(l) = oci_layout {
                layout.oci_layout = Some(l.to_vec());
            }
            let env = Env::new();
            assert_eq!(
                code_of(env.stage_bytes(&layout.to_tar(), AMD64)),
                "INVALID_ARCHIVE",
                "{index:?} {oci_layout:?}"
            );
            assert_eq!(
                code_of(env.stage_dir(&layout, AMD64)),
                "INVALID_ARCHIVE",
                "{index:?} {oci_layout:?}"
            );
        }
    }

    #[test]
    fn missing_index_json_or_blobs() {
        let (mut no_index, _) = oci_layout_of(sample());
        no_index.index_override = Some(None);
        let (mut no_layer, built) = oci_layout_of(sample());
        no_layer.blobs.remove(&built.layers[1].digest);
        let (mut no_config, built) = oci_layout_of(sample());
        no_config.blobs.remove(&built.config_digest);
        for (name, layout) in [
            ("no index", no_index),
            ("no layer", no_layer),
            ("no config", no_config),
        ] {
            let env = Env::new();
            assert_eq!(
                code_of(env.stage_bytes(&layout.to_tar(), AMD64)),
                "INVALID_ARCHIVE",
                "{name}"
            );
            assert_eq!(
                code_of(env.stage_dir(&layout, AMD64)),
                "INVALID_ARCHIVE",
                "{name}"
            );
        }
    }

    #[test]
    fn blobs_not_matching_their_digest() {
        let which: &[&str] = &["config", "layer", "manifest"];
        for what in which {
            let (mut layout, built) = oci_layout_of(sample());
            let digest = match *what {
                "config" => built.config_digest.clone(),
                "layer" => built.layers[0].digest.clone(),
                _ => built.manifest_digest.clone(),
            };
            let blob = layout.blob_mut(&digest);
            let last = blob.len() - 1;
            blob[last] ^= 1;
            let env = Env::new();
            assert_eq!(
                code_of(env.stage_bytes(&layout.to_tar(), AMD64)),
                "DIGEST_MISMATCH",
                "{what}"
            );
            assert_eq!(
                code_of(env.stage_dir(&layout, AMD64)),
                "DIGEST_MISMATCH",
                "{what}"
            );
        }
        let wrong_digest = Faults {
            wrong_layer_digest: Some(1),
            ..Faults::default()
        };
        assert_eq!(
            code_of(stage_bytes(&oci_bytes(sample().with_faults(wrong_digest)))),
            "DIGEST_MISMATCH"
        );
    }

    #[test]
    fn legacy_config_not_matching_its_name() {
        let built = sample().build();
        let mut tree = legacy_docker_archive(&[(&built, &["a:1"])], LegacyOptions::default());
        let config = format!("{}.json", hex_of(&built.config_digest));
        let bytes = tree.file_mut(&config);
        bytes.insert(1, b' '); // still valid JSON, another digest
        assert_eq!(code_of(stage_bytes(&tree.to_tar())), "DIGEST_MISMATCH");
    }

    #[test]
    fn blob_size_not_matching_descriptor() {
        let faults = Faults {
            wrong_layer_size: Some(0),
            ..Faults::default()
        };
        assert_eq!(
            code_of(stage_bytes(&oci_bytes(sample().with_faults(faults)))),
            "INVALID_ARCHIVE"
        );
    }

    #[test]
    fn diff_id_mismatch() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let faults = Faults {
                wrong_diff_id: Some(1),
                ..Faults::default()
            };
            let spec = ImageSpec::sample(c, "diffid").with_faults(faults);
            assert_eq!(
                code_of(stage_bytes(&legacy_bytes(spec.clone()))),
                "DIGEST_MISMATCH",
                "{c:?} legacy"
            );
            assert_eq!(
                code_of(stage_bytes(&oci_bytes(spec))),
                "DIGEST_MISMATCH",
                "{c:?} oci"
            );
        }
    }

    #[test]
    fn layer_count_disagrees_with_diff_ids() {
        let faults = Faults {
            extra_diff_id: true,
            ..Faults::default()
        };
        let spec = sample().with_faults(faults);
        assert_eq!(
            code_of(stage_bytes(&legacy_bytes(spec.clone()))),
            "INVALID_ARCHIVE"
        );
        assert_eq!(code_of(stage_bytes(&oci_bytes(spec))), "INVALID_ARCHIVE");
    }

    #[test]
    fn unknown_media_types() {
        let x = Some("application/x-unknown".to_owned());
        let cases = [
            Faults {
                layer_media_type: x.clone(),
                ..Faults::default()
            },
            Faults {
                config_media_type: x.clone(),
                ..Faults::default()
            },
            Faults {
                manifest_media_type: x.clone(),
                ..Faults::default()
            },
        ];
        for faults in cases {
            let code = code_of(stage_bytes(&oci_bytes(
                sample().with_faults(faults.clone()),
            )));
            assert_eq!(code, "INVALID_ARCHIVE", "{faults:?}");
        }
        let (mut layout, _) = oci_layout_of(sample());
        layout.entries[0]["mediaType"] = serde_json::json!("application/x-unknown");
        assert_eq!(
            code_of(stage_bytes(&layout.to_tar())),
            "INVALID_ARCHIVE",
            "index entry"
        );
    }

    #[test]
    fn unsafe_member_names() {
        let names = ["../evil", "/evil", "blobs/../../evil", "./../evil"];
        for name in names {
            for base in ["legacy", "oci"] {
                let env = Env::new();
                let mut tree = match base {
                    "legacy" => {
                        let built = sample().build();
                        legacy_docker_archive(&[(&built, &["a:1"])], LegacyOptions::default())
                    }
                    _ => oci_layout_of(sample()).0.tree(),
                };
                tree.file(name, "pwned");
                let code = code_of(env.stage_bytes(&tree.to_tar(), AMD64));
                assert_eq!(code, "INVALID_ARCHIVE", "{base} {name}");
                assert!(!env.root.path().join("evil").exists());
            }
        }
    }

    #[test]
    fn symlinks_pointing_outside() {
        for target in ["../../../etc/passwd", "/etc/passwd", "../.."] {
            let built = sample().build();
            let mut tree = legacy_docker_archive(&[(&built, &["a:1"])], LegacyOptions::default());
            let manifest: serde_json::Value =
                serde_json::from_slice(tree.file_mut("manifest.json")).unwrap();
            let layer = manifest[0]["Layers"][0].as_str().unwrap().to_owned();
            tree.remove(&layer).symlink(&layer, target);
            assert_eq!(
                code_of(stage_bytes(&tree.to_tar())),
                "INVALID_ARCHIVE",
                "{target}"
            );
        }
        let mut hard =
            legacy_docker_archive(&[(&sample().build(), &["a:1"])], LegacyOptions::default());
        hard.hardlink("x", "../outside");
        assert_eq!(
            code_of(stage_bytes(&hard.to_tar())),
            "INVALID_ARCHIVE",
            "hard link"
        );
    }

    #[test]
    fn layout_dir_symlink_pointing_outside() {
        let env = Env::new();
        let outside = env.root.path().join("outside-blob");
        let (mut layout, built) = oci_layout_of(sample());
        let bytes = layout.blobs.remove(&built.layers[0].digest).unwrap();
        fs::write(&outside, bytes).unwrap();
        layout.extra.symlink(
            &format!("blobs/sha256/{}", hex_of(&built.layers[0].digest)),
            outside.to_str().unwrap(),
        );
        assert_eq!(code_of(env.stage_dir(&layout, AMD64)), "INVALID_ARCHIVE");
        // The same as a relative link, and for index.json itself.
        let env = Env::new();
        let (mut layout, _) = oci_layout_of(sample());
        let index = layout.index_json().unwrap();
        fs::write(env.input().join("index.json"), index).unwrap();
        layout.index_override = Some(None);
        layout.extra.symlink("index.json", "../index.json");
        assert_eq!(code_of(env.stage_dir(&layout, AMD64)), "INVALID_ARCHIVE");
    }

    #[test]
    fn directory_that_is_not_an_image() {
        let env = Env::new();
        let empty = env.input().join("empty");
        fs::create_dir(&empty).unwrap();
        assert_eq!(code_of(env.stage(&empty, AMD64)), "INVALID_ARCHIVE");
        let legacy = env.input().join("legacy");
        fs::create_dir(&legacy).unwrap();
        legacy_docker_archive(&[(&sample().build(), &["a:1"])], LegacyOptions::default())
            .write_dir(&legacy);
        assert_eq!(code_of(env.stage(&legacy, AMD64)), "INVALID_ARCHIVE");
    }

    #[test]
    fn missing_source_is_io() {
        let env = Env::new();
        assert_eq!(
            code_of(env.stage(&env.input().join("nope.tar"), AMD64)),
            "IO"
        );
    }

    #[test]
    fn oversized_metadata() {
        // Over the 16 MiB cap on JSON read into memory, even if it would parse.
        let mut padded = vec![b' '; 17 << 20];
        padded.extend_from_slice(b"[]");
        let mut tree =
            legacy_docker_archive(&[(&sample().build(), &["a:1"])], LegacyOptions::default());
        *tree.file_mut("manifest.json") = padded;
        assert_eq!(code_of(stage_bytes(&tree.to_tar())), "INVALID_ARCHIVE");
    }

    #[test]
    fn invalid_repo_tag() {
        let built = sample().build();
        let tree = legacy_docker_archive(&[(&built, &["Not A Tag"])], LegacyOptions::default());
        assert_eq!(code_of(stage_bytes(&tree.to_tar())), "INVALID_REFERENCE");
    }
}
