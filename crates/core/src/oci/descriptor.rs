//! Content descriptors (OCI image spec `descriptor.md`): what a manifest or an index says about
//! a blob it references.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::Result;
use crate::oci::{Digest, Platform};

/// A content descriptor. Only the fields the cache needs are kept; unknown fields are ignored
/// as the spec requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `mediaType`.
    pub media_type: String,
    /// `digest` (sha256 only).
    pub digest: Digest,
    /// `size` in bytes.
    pub size: u64,
    /// `annotations` (empty when absent).
    pub annotations: BTreeMap<String, String>,
    /// `platform`, in an index's entries.
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor with no annotations and no platform.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// A descriptor as JSON spells it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

impl RawDescriptor {
    /// The descriptor, its digest parsed.
    pub(super) fn into_descriptor(self) -> Result<Descriptor> {
        Ok(Descriptor {
            media_type: self.media_type,
            digest: Digest::parse(&self.digest)?,
            size: self.size,
            annotations: self.annotations.unwrap_or_default(),
            platform: self.platform.map(|p| Platform {
                os: p.os,
                architecture: p.architecture,
                variant: p.variant.filter(|v| !v.is_empty()),
            }),
        })
    }
}
