//! The distribution client (OCI distribution spec; what Docker Hub, GHCR, Quay, ECR, GCR,
//! Harbor and the CNCF registry do): resolves a reference to an image source
//! ([`crate::source::ImageSource`]) whose layers open as blobs downloading, for the ingest
//! pipeline ([`crate::ingest`]) to convert. Manifests and configs are held in memory (they are
//! small and verified whole); layer blobs are downloaded by a pool of their own ([`Downloads`])
//! into partial files under `tmp/`, which the converter reads as they grow and which the next
//! pull resumes when this one is stopped or killed; the converter checks their digest and
//! `diff_id` in the same pass.
//!
//! ```text
//! registry/
//!   mod.rs      RegistryOptions, resolve: manifest negotiation, platform, config
//!   client.rs   Client: endpoints, auth, retries, HTTP status to errors
//!   auth.rs     credentials (caller, Docker config), WWW-Authenticate, token cache
//!   blob.rs     layer blobs: the download pool, partial files resumed with Range, readers
//!   mirrors.rs  OCICACHE_REGISTRIES: mirrors tried before the registry
//! ```
//!
//! Verification: a manifest fetched by digest must hash to it; a tag's manifest must hash to
//! the registry's `Docker-Content-Digest` when it sends one; an index's entry and the config
//! must match their descriptors' digest and size. Docker schema 1 manifests are refused
//! ([`Error::Unsupported`]).
//!
//! Cancellation: every request, wait and blob read checks the [`Cancel`] the client is given;
//! a stalled socket is noticed by the blob reader within a tenth of a second, and by the
//! download thread when its read times out ([`RegistryOptions::read_timeout`]).

mod auth;
mod blob;
mod client;
mod mirrors;

pub use auth::{Credentials, from_docker_config};
pub use blob::{DOWNLOADS_AT_ONCE, Downloads};
pub use client::{Client, RetryPolicy};
pub use mirrors::{Endpoint, REGISTRIES_ENV, RegistryConfig, RegistryEntry, endpoints};

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use crate::cancel::Cancel;
use crate::erofs::MAX_LAYERS;
use crate::error::{Error, Result};
use crate::oci::{
    ConfigInfo, Descriptor, Digest, Platform, Reference, media_type, parse_index, parse_manifest,
};
use crate::source::{Blob, ImageSource};

/// The `Accept` of a manifest request: every manifest and index type the cache reads, and
/// schema 1 last, so that a registry holding only that says so rather than answering 404.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, \
     application/vnd.docker.distribution.manifest.v1+json;q=0.5";

/// Docker schema 1 media types, refused.
const SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
];

/// The largest manifest or index read (the distribution spec lets registries refuse larger
/// ones; 4 MiB).
const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// The largest config read.
const CONFIG_LIMIT: u64 = 64 * 1024 * 1024;
/// Index levels followed (an index naming an index).
const MAX_INDEX_DEPTH: usize = 2;

/// How a pull talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Credentials; `None`: the Docker config's for the registry, else anonymous.
    pub credentials: Option<Credentials>,
    /// Plain HTTP to the registry (a registry on 127.0.0.1 or in a lab).
    pub insecure: bool,
    /// Extra trusted CA certificates, PEM, beside the Mozilla roots.
    pub ca_certs: Option<String>,
    /// Mirrors; `None`: [`RegistryConfig::from_env`].
    pub config: Option<RegistryConfig>,
    /// Retries of failed requests and broken downloads.
    pub retry: RetryPolicy,
    /// How long a connection may take to open.
    pub connect_timeout: Duration,
    /// How long one read may wait for bytes before the connection counts as broken (and a
    /// blob download is resumed on a new one).
    pub read_timeout: Duration,
    /// Layer blobs one pull downloads at once ([`DOWNLOADS_AT_ONCE`] by default; 0 counts as
    /// 1), independent of how many layers convert at once (one per core).
    pub concurrent_downloads: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            credentials: None,
            insecure: false,
            ca_certs: None,
            config: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            concurrent_downloads: DOWNLOADS_AT_ONCE,
        }
    }
}

impl RegistryOptions {
    /// Checks what can be checked without a request: the CA certificates parse.
    pub fn validate(&self) -> Result<()> {
        if let Some(pem) = &self.ca_certs {
            client::parse_ca_certs(pem)?;
        }
        Ok(())
    }
}

/// The client of `reference`'s repository, with the credentials `options` gives or the Docker
/// config holds, and the mirrors configured for its registry.
pub fn client_for(
    reference: &Reference,
    options: &RegistryOptions,
    cancel: Cancel,
) -> Result<Arc<Client>> {
    let config = match &options.config {
        Some(c) => c.clone(),
        None => RegistryConfig::from_env()?,
    };
    let mut options = options.clone();
    if options.credentials.is_none() {
        options.credentials = from_docker_config(reference.registry());
    }
    let endpoints = endpoints(reference.registry(), options.insecure, &config);
    Ok(Arc::new(Client::new(
        reference.registry(),
        reference.repository(),
        endpoints,
        &options,
        cancel,
    )?))
}

/// An image resolved in a registry: its source for the ingest pipeline, and its platform.
#[derive(Debug)]
pub struct Resolved {
    /// Manifest, config and lazy layers; `references` holds the pulled reference.
    pub source: ImageSource,
    /// The platform of the manifest taken.
    pub platform: Platform,
}

/// Resolves `reference` through `client`: the manifest (for an index, the one of `platform`;
/// [`Error::PlatformNotFound`] lists the index's), verified; the config, verified; the layers
/// as lazy sources, downloaded through `downloads` once the ingest wants them. Only manifests
/// and the config are downloaded here.
pub fn resolve(
    client: &Arc<Client>,
    reference: &Reference,
    platform: &Platform,
    downloads: &Downloads,
) -> Result<Resolved> {
    let familiar = reference.familiar();
    let selector = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let (mut bytes, mut media_type, header_digest) = fetch_manifest(client, &selector, &familiar)?;
    let mut digest = Digest::of_bytes(&bytes);
    match (reference.digest(), header_digest) {
        (Some(want), _) => want.verify(&digest, || format!("manifest of {familiar}"))?,
        (None, Some(header)) if header.starts_with("sha256:") => {
            let header = Digest::parse(&header).map_err(|_| Error::RegistryUnavailable {
                registry: client.registry().to_owned(),
                reason: format!("Docker-Content-Digest {header:?} is not a digest"),
            })?;
            header.verify(&digest, || format!("manifest of {familiar}"))?;
        }
        _ => {}
    }
    let mut chosen_platform = None;
    for depth in 0.. {
        if !media_type::INDEXES.contains(&media_type.as_str()) {
            break;
        }
        if depth >= MAX_INDEX_DEPTH {
            return Err(Error::Unsupported {
                what: format!("{familiar}: indexes nested deeper than {MAX_INDEX_DEPTH}"),
            });
        }
        let index = parse_index(&bytes, &format!("index of {familiar}"))?;
        let entry = pick_platform(&index.manifests, platform)?;
        chosen_platform = entry.platform.clone();
        let (child, child_type, _) = fetch_manifest(client, &entry.digest.to_string(), &familiar)?;
        let child_digest = Digest::of_bytes(&child);
        entry.digest.verify(&child_digest, || {
            format!("manifest of {familiar} for {platform}")
        })?;
        check_size(&entry.digest, child.len() as u64, entry.size, "manifest")?;
        (bytes, media_type, digest) = (child, child_type, child_digest);
    }
    if !media_type::MANIFESTS.contains(&media_type.as_str()) {
        return Err(Error::Unsupported {
            what: format!("{familiar}: manifest media type {media_type:?}"),
        });
    }
    let manifest = parse_manifest(&bytes, &format!("manifest of {familiar}"))?;
    for layer in &manifest.layers {
        if !media_type::is_layer(&layer.media_type) {
            return Err(Error::Unsupported {
                what: format!("{familiar}: layer media type {:?}", layer.media_type),
            });
        }
    }
    let config_bytes = fetch_blob(client, &manifest.config, CONFIG_LIMIT, &familiar)?;
    let config_info = ConfigInfo::parse(&config_bytes)?;
    if manifest.layers.len() != config_info.diff_ids.len() {
        return Err(Error::invalid_archive(format!(
            "{familiar}: {} layers but its config lists {} diff_ids",
            manifest.layers.len(),
            config_info.diff_ids.len()
        )));
    }
    if manifest.layers.len() > MAX_LAYERS {
        return Err(Error::Unsupported {
            what: format!(
                "an image of {} layers (at most {MAX_LAYERS})",
                manifest.layers.len()
            ),
        });
    }
    let layers = manifest
        .layers
        .iter()
        .zip(&config_info.diff_ids)
        .map(|(d, diff_id)| downloads.layer(client, d.clone(), diff_id.clone()))
        .collect();
    let size = bytes.len() as u64;
    let platform = chosen_platform.unwrap_or_else(|| config_info.platform.clone());
    Ok(Resolved {
        source: ImageSource {
            references: vec![reference.clone()],
            bare_tags: Vec::new(),
            origin: Some(reference.name()),
            manifest: Blob {
                descriptor: Descriptor::new(media_type, digest, size),
                bytes,
            },
            config: Blob {
                descriptor: manifest.config.clone(),
                bytes: config_bytes,
            },
            config_info,
            layers,
        },
        platform,
    })
}

/// A manifest's bytes, its media type (the answer's `Content-Type`, else the document's own
/// `mediaType`), and the registry's `Docker-Content-Digest`.
fn fetch_manifest(
    client: &Client,
    selector: &str,
    familiar: &str,
) -> Result<(Vec<u8>, String, Option<String>)> {
    let answer = client.get(
        &format!("manifests/{selector}"),
        Some(MANIFEST_ACCEPT),
        None,
        familiar,
    )?;
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
    };
    let content_type = header("content-type");
    let digest = header("docker-content-digest");
    let bytes = read_limited(client, answer, MANIFEST_LIMIT, "manifest")?;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let head: Option<Head> = serde_json::from_slice(&bytes).ok();
    if head.as_ref().and_then(|h| h.schema_version) == Some(1)
        || content_type
            .as_deref()
            .is_some_and(|t| SCHEMA1.contains(&t))
    {
        return Err(Error::Unsupported {
            what: format!(
                "{familiar}: Docker image manifest schema 1 (deprecated; push the image again with a current client)"
            ),
        });
    }
    let known = |t: &str| media_type::MANIFESTS.contains(&t) || media_type::INDEXES.contains(&t);
    let media_type = match content_type.filter(|t| known(t)) {
        Some(t) => t,
        None => match head {
            Some(Head {
                media_type: Some(t),
                ..
            }) => t,
            Some(Head {
                manifests: Some(_), ..
            }) => media_type::OCI_INDEX.to_owned(),
            _ => media_type::OCI_MANIFEST.to_owned(),
        },
    };
    Ok((bytes, media_type, digest))
}

/// A small blob (a config), checked against its descriptor's size and digest.
fn fetch_blob(client: &Client, d: &Descriptor, limit: u64, familiar: &str) -> Result<Vec<u8>> {
    if d.size > limit {
        return Err(Error::Unsupported {
            what: format!("{familiar}: a config of {} bytes", d.size),
        });
    }
    let answer = client.get(&format!("blobs/{}", d.digest), None, None, familiar)?;
    let bytes = read_limited(client, answer, d.size + 1, "config")?;
    check_size(&d.digest, bytes.len() as u64, d.size, "config")?;
    d.digest.verify(&Digest::of_bytes(&bytes), || {
        format!("config of {familiar}")
    })?;
    Ok(bytes)
}

fn check_size(digest: &Digest, actual: u64, expected: u64, what: &str) -> Result<()> {
    if actual != expected {
        return Err(Error::invalid_archive(format!(
            "{what} {digest} is {actual} bytes but its descriptor says {expected}"
        )));
    }
    Ok(())
}

/// At most `limit` bytes of an answer's body.
fn read_limited(
    client: &Client,
    answer: client::Answer,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    answer
        .into_body()
        .into_reader()
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::RegistryUnavailable {
            registry: client.registry().to_owned(),
            reason: format!("reading a {what}: {e}"),
        })?;
    Ok(bytes)
}

/// The index entry for `wanted`: an exact variant match first, else one whose variant does not
/// matter; entries of platform `unknown/unknown` (attestations) are never taken.
fn pick_platform<'a>(entries: &'a [Descriptor], wanted: &Platform) -> Result<&'a Descriptor> {
    let real: Vec<&Descriptor> = entries
        .iter()
        .filter(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os != "unknown" && p.architecture != "unknown")
        })
        .collect();
    let platform_of = |d: &Descriptor| d.platform.clone().unwrap_or_default();
    let matching: Vec<&&Descriptor> = real
        .iter()
        .filter(|d| wanted.matches(&platform_of(d)))
        .collect();
    matching
        .iter()
        .find(|d| platform_of(d).variant == wanted.variant)
        .or(matching.first())
        .map(|d| **d)
        .ok_or_else(|| Error::PlatformNotFound {
            wanted: wanted.to_string(),
            available: real.iter().map(|d| platform_of(d).to_string()).collect(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_picked_exactly_and_attestations_skipped() {
        let entry = |os: &str, arch: &str, variant: Option<&str>, n: u8| {
            let mut d = Descriptor::new(media_type::OCI_MANIFEST, Digest::of_bytes(&[n]), 1);
            d.platform = Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            });
            d
        };
        let entries = vec![
            entry("linux", "amd64", None, 1),
            entry("linux", "arm", Some("v6"), 2),
            entry("linux", "arm", Some("v7"), 3),
            entry("unknown", "unknown", None, 4),
        ];
        let pick = |p: &str| pick_platform(&entries, &Platform::parse(p).unwrap());
        assert_eq!(pick("linux/arm/v7").unwrap().digest, entries[2].digest);
        assert_eq!(pick("linux/amd64").unwrap().digest, entries[0].digest);
        let err = pick("linux/arm64").unwrap_err();
        assert_eq!(err.code(), "PLATFORM_NOT_FOUND");
        assert_eq!(
            err.details()[1].1,
            serde_json::json!(["linux/amd64", "linux/arm/v6", "linux/arm/v7"])
        );
    }
}
