//! Media types the cache understands (OCI image spec `media-types.md`, Docker image manifest v2
//! schema 2). Anything else is rejected so that an unknown format is never cached as if it were a
//! layer.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Manifest media types (single-platform images).
pub const MANIFESTS: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];
/// Index media types (multi-platform lists).
pub const INDEXES: &[&str] = &[OCI_INDEX, DOCKER_MANIFEST_LIST];
/// Config media types.
pub const CONFIGS: &[&str] = &[OCI_CONFIG, DOCKER_CONFIG];
/// Layer media types: OCI (plain, gzip, zstd, and their deprecated non-distributable twins) and
/// Docker's. The content decides the decompressor; the media type only has to be a layer.
pub const LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    DOCKER_LAYER_TAR,
    DOCKER_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Whether `media_type` is a layer the cache can import.
pub fn is_layer(media_type: &str) -> bool {
    LAYERS.contains(&media_type)
}
