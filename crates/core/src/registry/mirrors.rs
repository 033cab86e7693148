//! Where a registry's requests go: its mirrors, tried first, then the registry itself
//! ([`endpoints`]). Mirrors are configured in a JSON file named by `OCICACHE_REGISTRIES`
//! ([`RegistryConfig`]), for fleets that pull through a shared registry mirror (a CNCF
//! distribution registry in pull-through cache mode):
//!
//! ```json
//! {
//!   "registries": {
//!     "docker.io": { "mirrors": ["https://mirror.internal:5000"] },
//!     "ghcr.io": { "mirrors": ["http://10.0.0.5:5000"] }
//!   }
//! }
//! ```
//!
//! A mirror URL names its scheme (`http://` for a plain-HTTP mirror) and host, optionally a
//! port, and no path. A mirror that fails in any way (unreachable, an error status, a missing
//! image) is passed over for the next endpoint, the registry itself last.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, IoContext, Result};

/// The environment variable naming the registry configuration file.
pub const REGISTRIES_ENV: &str = "OCICACHE_REGISTRIES";

/// Docker Hub's registry host for the `docker.io` references name.
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

/// One place to send a registry's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port]`, without a trailing slash.
    pub base: String,
    /// Whether it is a mirror (a failure moves on to the next endpoint).
    pub mirror: bool,
}

/// The registry configuration file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Per registry host (as references spell it: `docker.io`, `ghcr.io`, `host:port`).
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryEntry>,
}

/// What the configuration says of one registry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    /// Mirror URLs, tried in order before the registry.
    #[serde(default)]
    pub mirrors: Vec<String>,
}

impl RegistryConfig {
    /// Parses a configuration (`what` names it in errors); every mirror URL is checked.
    pub fn parse(bytes: &[u8], what: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidArgument {
            name: REGISTRIES_ENV.into(),
            reason: format!("{what}: {reason}"),
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON ({e})")))?;
        if !value.is_object() {
            return Err(invalid("not a JSON object".into()));
        }
        let config: RegistryConfig = serde_json::from_value(value)
            .map_err(|e| invalid(format!("not a registry configuration ({e})")))?;
        for (host, entry) in &config.registries {
            for url in &entry.mirrors {
                mirror_base(url).ok_or_else(|| {
                    invalid(format!(
                        "mirror {url:?} of {host} is not http(s)://host[:port]"
                    ))
                })?;
            }
        }
        Ok(config)
    }

    /// The configuration `OCICACHE_REGISTRIES` names, or an empty one when it is unset.
    pub fn from_env() -> Result<Self> {
        match std::env::var_os(REGISTRIES_ENV) {
            Some(path) if !path.is_empty() => {
                let path = Path::new(&path);
                let bytes = std::fs::read(path).at(path)?;
                RegistryConfig::parse(&bytes, &path.display().to_string())
            }
            _ => Ok(RegistryConfig::default()),
        }
    }
}

/// `scheme://host[:port]` of a mirror URL (a trailing slash allowed), if it is one.
fn mirror_base(url: &str) -> Option<String> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))?;
    let valid = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    valid.then(|| trimmed.to_owned())
}

/// The endpoints of `registry`: its configured mirrors, then the registry itself over HTTPS
/// (plain HTTP when `insecure`); Docker Hub's `docker.io` is served by `registry-1.docker.io`.
pub fn endpoints(registry: &str, insecure: bool, config: &RegistryConfig) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = config
        .registries
        .get(registry)
        .map(|e| {
            e.mirrors
                .iter()
                .filter_map(|m| mirror_base(m))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .map(|base| Endpoint { base, mirror: true })
        .collect();
    let host = if registry == "docker.io" {
        DOCKER_HUB_ENDPOINT
    } else {
        registry
    };
    let scheme = if insecure { "http" } else { "https" };
    out.push(Endpoint {
        base: format!("{scheme}://{host}"),
        mirror: false,
    });
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn endpoints_put_mirrors_first_and_map_docker_hub() {
        let config = RegistryConfig::parse(
            br#"{"registries": {"docker.io": {"mirrors": ["http://127.0.0.1:5001/", "https://m.example"]}}}"#,
            "test",
        )
        .unwrap();
        let bases: Vec<(String, bool)> = endpoints("docker.io", false, &config)
            .into_iter()
            .map(|e| (e.base, e.mirror))
            .collect();
        assert_eq!(
            bases,
            vec![
                ("http://127.0.0.1:5001".to_owned(), true),
                ("https://m.example".to_owned(), true),
                ("https://registry-1.docker.io".to_owned(), false),
            ]
        );
        assert_eq!(
            endpoints("127.0.0.1:5000", true, &RegistryConfig::default()),
            vec![Endpoint {
                base: "http://127.0.0.1:5000".into(),
                mirror: false
            }]
        );
    }

    #[test]
    fn bad_configurations_are_invalid_arguments() {
        for bad in [
            &br#"{"registries": {"docker.io": {"mirrors": ["ftp://x"]}}}"#[..],
            br#"{"registries": {"docker.io": {"mirrors": ["http://x/path"]}}}"#,
            br#"{"registries": {"docker.io": {"mirror": []}}}"#,
            br#"[]"#,
        ] {
            let err = RegistryConfig::parse(bad, "test").unwrap_err();
            assert_eq!(
                err.code(),
                "INVALID_ARGUMENT",
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
