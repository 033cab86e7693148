//! Test fixtures shared by the integration tests: images described in code ([`ImageSpec`],
//! [`LayerSpec`], [`FileEntry`]) built into blobs ([`BuiltImage`]), then written as
//!
//! - legacy `docker save` archives ([`legacy_docker_archive`]),
//! - Docker 25+ `docker save` archives, which are OCI layouts with a `manifest.json`
//!   ([`docker25_layout`]),
//! - OCI Image Layouts ([`OciLayout`]) as directories or tars (plain or gzip).
//!
//! Everything is deterministic (mtimes 0, fixed compression levels), and every builder returns
//! or exposes the digests tests assert on. Archives are [`TarTree`]s until serialized, and their
//! members, blobs and index entries are public fields, so a test corrupts exactly what it means
//! to (flip a blob byte, add a `../evil` member, change a media type) before writing.
//!
//! [`require_tool`] gates tests on external tools: it skips visibly locally and fails on CI.
//! With `OCICACHE_TEST_TIER=fast` ([`fast_tier`], `npm run test:fast`) every test that needs
//! an external tool, root or the network skips visibly, CI or not: the fast tier.

#![allow(dead_code, reason = "each test crate uses a subset of the fixtures")]
#![allow(
    clippy::unwrap_used,
    reason = "fixture failures should fail the test loudly"
)]

pub mod debian;
pub mod disk;
pub mod oracles;
pub mod read;
pub mod registry;
pub mod tar_body;
pub mod tmpfs;
pub mod token;
pub mod tree;
#[cfg(unix)]
pub mod workers;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Annotation with an image's full reference (containerd, Docker 25+).
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI annotation naming a reference (usually only a tag).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// OCI media types the fixtures write.
pub mod mt {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const IN_TOTO: &str = "application/vnd.in-toto+json";
}

/// The local cache at `root` (created on first use).
pub fn open(root: &Path) -> ocicache_core::Cache {
    ocicache_core::Cache::open(ocicache_core::CacheOptions {
        root: Some(root.to_path_buf()),
        backend: Some(ocicache_core::Backend::Local),
    })
    .unwrap()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<hex>` digest.
pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Compresses `data` (deterministically).
    pub fn apply(self, data: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => data.to_vec(),
            Compression::Gzip => gzip(data),
            Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
        }
    }
}

/// gzip of `data` (header mtime 0).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A file of a layer.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

impl FileEntry {
    /// A file with mode 0644.
    pub fn new(path: &str, content: impl Into<Vec<u8>>) -> Self {
        FileEntry {
            path: path.to_owned(),
            content: content.into(),
            mode: 0o644,
        }
    }

    /// The same file with another mode.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}

/// A layer: files and how its blob is compressed.
#[derive(Debug, Clone)]
pub struct LayerSpec {
    pub files: Vec<FileEntry>,
    pub compression: Compression,
    /// When set, the (uncompressed) layer bytes are these instead of a tar of `files`; to test
    /// layers that are not tars.
    pub raw: Option<Vec<u8>>,
}

impl LayerSpec {
    /// A layer with `files`.
    pub fn new(compression: Compression, files: Vec<FileEntry>) -> Self {
        LayerSpec {
            files,
            compression,
            raw: None,
        }
    }

    /// A layer with one file.
    pub fn file(compression: Compression, path: &str, content: &str) -> Self {
        LayerSpec::new(compression, vec![FileEntry::new(path, content)])
    }

    /// The uncompressed layer: a tar of the files (mtime 0, root owned).
    pub fn tar(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let mut b = tar::Builder::new(Vec::new());
        for f in &self.files {
            let mut h = tar::Header::new_gnu();
            h.set_size(f.content.len() as u64);
            h.set_mode(f.mode);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, &f.path, f.content.as_slice())
                .unwrap();
        }
        b.into_inner().unwrap()
    }
}

/// Which family of media types a manifest uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestStyle {
    Oci,
    Docker,
}

/// Deliberate defects of an image's metadata.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The config lists a wrong `diff_id` for this layer.
    pub wrong_diff_id: Option<usize>,
    /// The config lists one more `diff_id` than there are layers.
    pub extra_diff_id: bool,
    /// The manifest gives this layer a wrong digest (the blob is stored under the wrong one).
    pub wrong_layer_digest: Option<usize>,
    /// The manifest gives every layer this media type.
    pub layer_media_type: Option<String>,
    /// The manifest gives the config this media type.
    pub config_media_type: Option<String>,
    /// The manifest's own `mediaType` field.
    pub manifest_media_type: Option<String>,
    /// The manifest states this layer's size one byte too large.
    pub wrong_layer_size: Option<usize>,
    /// This layer's blob is cut in half after compression, digests computed on the cut blob
    /// (so only decompression can notice).
    pub truncated_layer_blob: Option<usize>,
}

/// An image: platform, layers bottom to top, a command to tell images apart.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub cmd: Vec<String>,
    pub layers: Vec<LayerSpec>,
    pub style: ManifestStyle,
    pub faults: Faults,
}

impl ImageSpec {
    /// A linux image for `architecture` with `layers`, OCI media types, no faults.
    pub fn new(architecture: &str, layers: Vec<LayerSpec>) -> Self {
        ImageSpec {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
            cmd: vec!["sh".into()],
            layers,
            style: ManifestStyle::Oci,
            faults: Faults::default(),
        }
    }

    /// A two-layer linux/amd64 image whose layers are compressed with `c`; `seed` makes its
    /// content (and so its digests) unique.
    pub fn sample(c: Compression, seed: &str) -> Self {
        ImageSpec::new(
            "amd64",
            vec![
                LayerSpec::new(
                    c,
                    vec![
                        FileEntry::new("etc/os-release", format!("ID={seed}\n")),
                        FileEntry::new("bin/tool", format!("#!/bin/sh\necho {seed}\n")).mode(0o755),
                    ],
                ),
                LayerSpec::file(c, "app/data.txt", &format!("data of {seed}\n").repeat(100)),
            ],
        )
    }

    /// The same image with another command (so another config digest).
    pub fn with_cmd(mut self, cmd: &str) -> Self {
        self.cmd = vec![cmd.into()];
        self
    }

    /// The same image with a variant.
    pub fn with_variant(mut self, variant: &str) -> Self {
        self.variant = Some(variant.into());
        self
    }

    /// The same image with Docker media types.
    pub fn docker_style(mut self) -> Self {
        self.style = ManifestStyle::Docker;
        self
    }

    /// The same image with `faults`.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// `os/architecture[/variant]`.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Builds the blobs.
    pub fn build(&self) -> BuiltImage {
        let mut layers: Vec<BuiltLayer> = self.layers.iter().map(|l| self.build_layer(l)).collect();
        if let Some(i) = self.faults.truncated_layer_blob {
            let l = &mut layers[i];
            l.blob.truncate(l.blob.len() / 2);
            l.digest = sha256(&l.blob);
        }
        let mut diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        if let Some(i) = self.faults.wrong_diff_id {
            diff_ids[i] = sha256(b"not this layer");
        }
        if self.faults.extra_diff_id {
            diff_ids.push(sha256(b"a layer that is not there"));
        }
        let mut config = json!({
            "architecture": self.architecture,
            "os": self.os,
            "config": {"Cmd": self.cmd, "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [],
        });
        if let Some(v) = &self.variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).unwrap();
        let config_digest = sha256(&config);
        let manifest = self.manifest_json(&config, &config_digest, &layers);
        BuiltImage {
            manifest_digest: sha256(&manifest),
            manifest_media_type: self.manifest_media_type().to_owned(),
            manifest,
            config,
            config_digest,
            layers,
            platform: self.platform(),
        }
    }

    fn build_layer(&self, spec: &LayerSpec) -> BuiltLayer {
        let tar = spec.tar();
        let blob = spec.compression.apply(&tar);
        let media_type = match (self.style, spec.compression) {
            (ManifestStyle::Oci, Compression::None) => mt::OCI_LAYER,
            (ManifestStyle::Oci, Compression::Gzip) => mt::OCI_LAYER_GZIP,
            (_, Compression::Zstd) => mt::OCI_LAYER_ZSTD,
            (ManifestStyle::Docker, Compression::None) => mt::DOCKER_LAYER,
            (ManifestStyle::Docker, Compression::Gzip) => mt::DOCKER_LAYER_GZIP,
        };
        BuiltLayer {
            diff_id: sha256(&tar),
            digest: sha256(&blob),
            tar,
            blob,
            media_type: media_type.into(),
        }
    }

    fn manifest_media_type(&self) -> &'static str {
        match self.style {
            ManifestStyle::Oci => mt::OCI_MANIFEST,
            ManifestStyle::Docker => mt::DOCKER_MANIFEST,
        }
    }

    fn manifest_json(&self, config: &[u8], config_digest: &str, layers: &[BuiltLayer]) -> Vec<u8> {
        let f = &self.faults;
        let config_type = match self.style {
            ManifestStyle::Oci => mt::OCI_CONFIG,
            ManifestStyle::Docker => mt::DOCKER_CONFIG,
        };
        let layer_descriptors: Vec<Value> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let digest = if f.wrong_layer_digest == Some(i) {
                    sha256(b"wrong layer")
                } else {
                    l.digest.clone()
                };
                let size = l.blob.len() as u64 + u64::from(f.wrong_layer_size == Some(i));
                json!({
                    "mediaType": f.layer_media_type.as_deref().unwrap_or(&l.media_type),
                    "digest": digest,
                    "size": size,
                })
            })
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": f.manifest_media_type.as_deref().unwrap_or(self.manifest_media_type()),
            "config": {
                "mediaType": f.config_media_type.as_deref().unwrap_or(config_type),
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": layer_descriptors,
        });
        serde_json::to_vec(&manifest).unwrap()
    }
}

/// A built layer.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    /// The uncompressed tar.
    pub tar: Vec<u8>,
    /// The blob (compressed as specified).
    pub blob: Vec<u8>,
    /// `sha256:` of the blob.
    pub digest: String,
    /// `sha256:` of the tar.
    pub diff_id: String,
    /// The media type the manifest gives it (without faults).
    pub media_type: String,
}

/// A built image: its blobs and their digests.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layers: Vec<BuiltLayer>,
    /// `os/architecture[/variant]`.
    pub platform: String,
}

impl BuiltImage {
    /// The blobs as an OCI layout stores them: `(digest, bytes)` for config, layers, manifest.
    /// A layer whose manifest digest is wrong (fault) is stored under that wrong digest.
    pub fn blobs(&self) -> Vec<(String, Vec<u8>)> {
        let manifest: Value = serde_json::from_slice(&self.manifest).unwrap();
        let mut blobs = vec![(self.config_digest.clone(), self.config.clone())];
        for (i, l) in self.layers.iter().enumerate() {
            let named = manifest["layers"][i]["digest"]
                .as_str()
                .unwrap_or(&l.digest)
                .to_owned();
            blobs.push((named, l.blob.clone()));
        }
        blobs.push((self.manifest_digest.clone(), self.manifest.clone()));
        blobs
    }

    /// The descriptor of the manifest, with `annotations` and an optional platform.
    pub fn descriptor(&self, annotations: &[(&str, &str)], with_platform: bool) -> Value {
        let mut d = json!({
            "mediaType": self.manifest_media_type,
            "digest": self.manifest_digest,
            "size": self.manifest.len(),
        });
        if !annotations.is_empty() {
            let map: serde_json::Map<String, Value> = annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            d["annotations"] = Value::Object(map);
        }
        if with_platform {
            d["platform"] = platform_json(&self.platform);
        }
        d
    }
}

/// `{"os", "architecture", "variant"?}` from `os/arch[/variant]`.
pub fn platform_json(platform: &str) -> Value {
    let parts: Vec<&str> = platform.split('/').collect();
    let mut p = json!({"os": parts[0], "architecture": parts[1]});
    if let Some(v) = parts.get(2) {
        p["variant"] = json!(v);
    }
    p
}

/// What a tar member is.
#[derive(Debug, Clone)]
pub enum MemberKind {
    File(Vec<u8>),
    Symlink(String),
    Hardlink(String),
    Dir,
}

/// A member of a [`TarTree`]. The name is written verbatim (`../x` and `/x` included).
#[derive(Debug, Clone)]
pub struct TarMember {
    pub name: String,
    pub kind: MemberKind,
}

/// An archive before serialization: members in order.
#[derive(Debug, Clone, Default)]
pub struct TarTree {
    pub members: Vec<TarMember>,
}

/// Longest name the classic tar header's `name` field holds.
const TAR_NAME_FIELD: usize = 100;

impl TarTree {
    /// Appends a regular file.
    pub fn file(&mut self, name: &str, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.members.push(TarMember {
            name: name.into(),
            kind: MemberKind::File(bytes.into()),
        });
        self
    }

    /// Appends a symlink.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.members.push(TarMember {
            name: name.into(),
            kind: MemberKind::Symlink(target.into()),
        });
        self
    }

    /// Appends a hard link (target is a member name).
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.members.push(TarMember {
            name: name.into(),
            kind: MemberKind::Hardlink(target.into()),
        });
        self
    }

    /// Appends a folder.
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.members.push(TarMember {
            name: name.into(),
            kind: MemberKind::Dir,
        });
        self
    }

    /// The file member `name`'s bytes, to corrupt them.
    pub fn file_mut(&mut self, name: &str) -> &mut Vec<u8> {
        self.members
            .iter_mut()
            .find_map(|m| match (&mut m.kind, m.name == name) {
                (MemberKind::File(b), true) => Some(b),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no file member {name}"))
    }

    /// Removes the member `name`.
    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.members.retain(|m| m.name != name);
        self
    }

    /// Serializes to a tar (mtime 0; names and link targets written verbatim when short).
    pub fn to_tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for m in &self.members {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            h.set_mode(0o644);
            let (data, kind, link): (&[u8], _, Option<&str>) = match &m.kind {
                MemberKind::File(bytes) => (bytes, tar::EntryType::Regular, None),
                MemberKind::Symlink(t) => (&[], tar::EntryType::Symlink, Some(t)),
                MemberKind::Hardlink(t) => (&[], tar::EntryType::Link, Some(t)),
                MemberKind::Dir => (&[], tar::EntryType::Directory, None),
            };
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            if m.name.len() <= TAR_NAME_FIELD && link.is_none_or(|l| l.len() <= TAR_NAME_FIELD) {
                write_field(&mut h.as_old_mut().name, &m.name);
                if let Some(l) = link {
                    write_field(&mut h.as_old_mut().linkname, l);
                }
                h.set_cksum();
                b.append(&h, data).unwrap();
            } else if let Some(l) = link {
                b.append_link(&mut h, &m.name, l).unwrap();
            } else {
                b.append_data(&mut h, &m.name, data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// Serializes to a gzip-compressed tar.
    pub fn to_tar_gz(&self) -> Vec<u8> {
        gzip(&self.to_tar())
    }

    /// Writes the members under `dir` (which must exist), links as symlinks.
    pub fn write_dir(&self, dir: &Path) {
        for m in &self.members {
            let path = dir.join(&m.name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            match &m.kind {
                MemberKind::File(bytes) => std::fs::write(&path, bytes).unwrap(),
                MemberKind::Symlink(t) => symlink(t, &path),
                MemberKind::Hardlink(t) => std::fs::hard_link(dir.join(t), &path).unwrap(),
                MemberKind::Dir => std::fs::create_dir_all(&path).unwrap(),
            }
        }
    }
}

fn write_field(field: &mut [u8], value: &str) {
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
}

/// Creates a symlink `path -> target`.
pub fn symlink(target: impl AsRef<Path>, path: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, path).unwrap();
    #[cfg(windows)]
    std::os::windows::fs::symlink_file(target, path).unwrap();
}

/// An OCI Image Layout being assembled. `entries` are `index.json`'s `manifests`; `blobs` are
/// keyed by `sha256:` digest; `extra` members are added to the layout as they are.
#[derive(Debug, Clone)]
pub struct OciLayout {
    pub oci_layout: Option<Vec<u8>>,
    pub entries: Vec<Value>,
    pub blobs: BTreeMap<String, Vec<u8>>,
    pub extra: TarTree,
    /// Overrides the serialized `index.json` (for malformed-JSON tests); `None` removes it.
    pub index_override: Option<Option<Vec<u8>>>,
}

impl Default for OciLayout {
    fn default() -> Self {
        OciLayout::new()
    }
}

impl OciLayout {
    /// An empty layout (version 1.0.0).
    pub fn new() -> Self {
        OciLayout {
            oci_layout: Some(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            entries: Vec::new(),
            blobs: BTreeMap::new(),
            extra: TarTree::default(),
            index_override: None,
        }
    }

    /// Adds an image's blobs without an index entry.
    pub fn add_blobs(&mut self, image: &BuiltImage) -> &mut Self {
        self.blobs.extend(image.blobs());
        self
    }

    /// Adds an image as a top-level entry with `annotations`.
    pub fn add_image(&mut self, image: &BuiltImage, annotations: &[(&str, &str)]) -> &mut Self {
        self.add_blobs(image);
        self.entries.push(image.descriptor(annotations, false));
        self
    }

    /// Adds an image as a top-level entry carrying its platform.
    pub fn add_platform_image(
        &mut self,
        image: &BuiltImage,
        annotations: &[(&str, &str)],
    ) -> &mut Self {
        self.add_blobs(image);
        self.entries.push(image.descriptor(annotations, true));
        self
    }

    /// Adds a multi-platform image: a nested index listing `images` by platform (plus, with
    /// `attestation`, a BuildKit-style `unknown/unknown` attestation manifest), referenced by a
    /// top-level entry with `annotations`. Returns the nested index's digest.
    pub fn add_multi_platform(
        &mut self,
        images: &[&BuiltImage],
        annotations: &[(&str, &str)],
        attestation: bool,
    ) -> String {
        let mut manifests: Vec<Value> = Vec::new();
        for image in images {
            self.add_blobs(image);
            manifests.push(image.descriptor(&[], true));
        }
        if attestation {
            manifests.push(self.attestation_descriptor(&images[0].manifest_digest));
        }
        let index = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": manifests}),
        )
        .unwrap();
        let digest = sha256(&index);
        let mut entry = json!({"mediaType": mt::OCI_INDEX, "digest": digest, "size": index.len()});
        if !annotations.is_empty() {
            let map: serde_json::Map<String, Value> = annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            entry["annotations"] = Value::Object(map);
        }
        self.blobs.insert(digest.clone(), index);
        self.entries.push(entry);
        digest
    }

    fn attestation_descriptor(&mut self, subject: &str) -> Value {
        let statement = br#"{"_type":"https://in-toto.io/Statement/v0.1"}"#.to_vec();
        let config = b"{}".to_vec();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": mt::IN_TOTO, "digest": sha256(&statement), "size": statement.len()}],
        }))
        .unwrap();
        let d = json!({
            "mediaType": mt::OCI_MANIFEST,
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": subject},
        });
        for blob in [statement, config, manifest] {
            self.blobs.insert(sha256(&blob), blob);
        }
        d
    }

    /// The serialized `index.json`.
    pub fn index_json(&self) -> Option<Vec<u8>> {
        match &self.index_override {
            Some(o) => o.clone(),
            None => Some(
                serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": self.entries})).unwrap(),
            ),
        }
    }

    /// The blob `digest`'s bytes, to corrupt them.
    pub fn blob_mut(&mut self, digest: &str) -> &mut Vec<u8> {
        self.blobs
            .get_mut(digest)
            .unwrap_or_else(|| panic!("no blob {digest}"))
    }

    /// The layout as a tree: `oci-layout`, `index.json`, `blobs/sha256/<hex>`, then extras.
    pub fn tree(&self) -> TarTree {
        let mut t = TarTree::default();
        if let Some(l) = &self.oci_layout {
            t.file("oci-layout", l.clone());
        }
        if let Some(i) = self.index_json() {
            t.file("index.json", i);
        }
        t.dir("blobs/").dir("blobs/sha256/");
        for (digest, bytes) in &self.blobs {
            t.file(&format!("blobs/sha256/{}", hex_of(digest)), bytes.clone());
        }
        t.members.extend(self.extra.members.iter().cloned());
        t
    }

    /// A tar of the layout.
    pub fn to_tar(&self) -> Vec<u8> {
        self.tree().to_tar()
    }

    /// A gzip-compressed tar of the layout.
    pub fn to_tar_gz(&self) -> Vec<u8> {
        self.tree().to_tar_gz()
    }

    /// Writes the layout into `dir` (which must exist).
    pub fn write_dir(&self, dir: &Path) {
        self.tree().write_dir(dir);
    }
}

/// Options of [`legacy_docker_archive`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LegacyOptions {
    /// A layer blob already written under another layer ID becomes a symlink to it
    /// (`<id>/layer.tar -> ../<other>/layer.tar`), as `docker save` does.
    pub symlink_duplicates: bool,
}

/// A legacy (Docker < 25) `docker save` archive of `images`, each with its `RepoTags` (empty
/// slice: `null`). Layer files hold each layer's blob as built (Docker writes them
/// uncompressed; compressed ones test detection). Layer IDs chain like Docker's v1 IDs, so the
/// same content over another parent gets another ID.
pub fn legacy_docker_archive(images: &[(&BuiltImage, &[&str])], opts: LegacyOptions) -> TarTree {
    let mut t = TarTree::default();
    let mut manifest = Vec::new();
    let mut written: BTreeMap<String, String> = BTreeMap::new(); // blob digest -> member
    for (image, tags) in images {
        let config_name = format!("{}.json", hex_of(&image.config_digest));
        let mut parent = String::new();
        let mut layer_names = Vec::new();
        for l in &image.layers {
            let id = hex_of(&sha256(format!("{parent}\n{}", l.diff_id).as_bytes())).to_owned();
            let name = format!("{id}/layer.tar");
            if !t.members.iter().any(|m| m.name == name) {
                t.dir(&format!("{id}/"));
                t.file(&format!("{id}/VERSION"), "1.0");
                t.file(
                    &format!("{id}/json"),
                    serde_json::to_vec(&json!({"id": id, "parent": parent})).unwrap(),
                );
                match written.get(&l.digest) {
                    Some(first) if opts.symlink_duplicates => {
                        t.symlink(&name, &format!("../{first}"));
                    }
                    _ => {
                        t.file(&name, l.blob.clone());
                        written.insert(l.digest.clone(), name.clone());
                    }
                }
            }
            layer_names.push(name);
            parent = id;
        }
        if !t.members.iter().any(|m| m.name == config_name) {
            t.file(&config_name, image.config.clone());
        }
        let repo_tags: Value = if tags.is_empty() {
            Value::Null
        } else {
            json!(tags)
        };
        manifest.push(json!({"Config": config_name, "RepoTags": repo_tags, "Layers": layer_names}));
    }
    t.file("manifest.json", serde_json::to_vec(&manifest).unwrap());
    t
}

/// A Docker 25+ `docker save` archive of `images`: an OCI layout whose index entries carry
/// `io.containerd.image.name` and `org.opencontainers.image.ref.name` (from the first tag),
/// plus a `manifest.json` whose `Config` and `Layers` are `blobs/sha256/<hex>`.
pub fn docker25_layout(images: &[(&BuiltImage, &[&str])]) -> OciLayout {
    let mut layout = OciLayout::new();
    let mut manifest = Vec::new();
    for (image, tags) in images {
        match tags.first() {
            Some(tag) => {
                let full = docker_full_name(tag);
                let short_tag = full.rsplit(':').next().unwrap_or("latest").to_owned();
                layout.add_image(image, &[(CONTAINERD_NAME, &full), (REF_NAME, &short_tag)]);
            }
            None => {
                layout.add_image(image, &[]);
            }
        }
        let layers: Vec<String> = image
            .layers
            .iter()
            .map(|l| format!("blobs/sha256/{}", hex_of(&l.digest)))
            .collect();
        let repo_tags: Value = if tags.is_empty() {
            Value::Null
        } else {
            json!(tags)
        };
        manifest.push(json!({
            "Config": format!("blobs/sha256/{}", hex_of(&image.config_digest)),
            "RepoTags": repo_tags,
            "Layers": layers,
        }));
    }
    layout
        .extra
        .file("manifest.json", serde_json::to_vec(&manifest).unwrap());
    layout
}

/// `docker.io/library/busybox:latest` for `busybox:latest` (a rough normalization for fixtures).
fn docker_full_name(tag: &str) -> String {
    let first = tag.split('/').next().unwrap_or("");
    let has_registry =
        tag.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let qualified = if has_registry {
        tag.to_owned()
    } else if tag.contains('/') {
        format!("docker.io/{tag}")
    } else {
        format!("docker.io/library/{tag}")
    };
    if qualified
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
    {
        qualified
    } else {
        format!("{qualified}:latest")
    }
}

/// Every path under `root` (relative, sorted), not descending into `skip`.
pub fn tree_listing(root: &Path, skip: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path == skip {
                continue;
            }
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
            if path.symlink_metadata().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Whether the tests run as the fast tier (`OCICACHE_TEST_TIER=fast`): without the tests that
/// need external tools (the oracles), root or the network.
pub fn fast_tier() -> bool {
    std::env::var("OCICACHE_TEST_TIER").is_ok_and(|v| v == "fast")
}

/// Whether the command-line tool `name` is on `PATH`. When it is not: with `CI=true` this
/// panics (a CI run must not skip silently), else it prints `SKIP: <name> not installed` to
/// stderr and returns false. In the fast tier ([`fast_tier`]) it is false, with a `SKIP:`
/// message.
pub fn require_tool(name: &str) -> bool {
    if fast_tier() {
        eprintln!("SKIP: {name} (an oracle) is not run in the fast tier");
        return false;
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name} is required on CI but not installed");
        }
        eprintln!("SKIP: {name} not installed");
    }
    found
}

/// Deterministic bytes that do not compress away (xorshift64 from `seed`).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A `security.capability` value (VFS_CAP_REVISION_2, effective): cap_net_bind_service.
pub fn capability() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 10).to_le_bytes()); // permitted, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, low word
    v.extend_from_slice(&0u32.to_le_bytes()); // permitted, high word
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable, high word
    v
}
