//! The parts of an image config (OCI image spec `config.md`) that `inspect` shows.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::oci::{Digest, Platform};

/// Runtime settings and identity of an image, as its config states them; absent fields stay
/// `None` (nothing is invented).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigInfo {
    /// `config.Env`.
    pub env: Option<Vec<String>>,
    /// `config.Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `config.Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `config.WorkingDir`.
    pub working_dir: Option<String>,
    /// `config.User`.
    pub user: Option<String>,
    /// `config.Labels`, kept as JSON.
    pub labels: Option<serde_json::Map<String, serde_json::Value>>,
    /// `config.StopSignal`.
    pub stop_signal: Option<String>,
    /// `os`, `architecture`, `variant`.
    pub platform: Platform,
    /// `rootfs.diff_ids`, bottom to top.
    pub diff_ids: Vec<Digest>,
}

#[derive(Deserialize)]
struct RawConfig {
    architecture: Option<String>,
    os: Option<String>,
    variant: Option<String>,
    config: Option<RawRuntime>,
    rootfs: Option<RawRootfs>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRuntime {
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    labels: Option<serde_json::Map<String, serde_json::Value>>,
    stop_signal: Option<String>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

impl ConfigInfo {
    /// Parses a config blob. `architecture`, `os` and `rootfs` (of type `layers`) are required
    /// by the spec and checked; `diff_ids` must be valid digests.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| Error::malformed_json("image config", &e))?;
        let rootfs = raw
            .rootfs
            .ok_or_else(|| Error::invalid_archive("image config has no rootfs"))?;
        if rootfs.kind != "layers" {
            return Err(Error::invalid_archive(format!(
                "image config rootfs.type is {:?}, expected \"layers\"",
                rootfs.kind
            )));
        }
        let diff_ids = rootfs
            .diff_ids
            .iter()
            .map(|d| Digest::parse(d))
            .collect::<Result<Vec<_>>>()?;
        let (os, architecture) = match (raw.os, raw.architecture) {
            (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => (os, arch),
            _ => {
                return Err(Error::invalid_archive(
                    "image config lacks os or architecture",
                ));
            }
        };
        let rt = raw.config;
        let mut info = ConfigInfo {
            platform: Platform {
                os,
                architecture,
                variant: raw.variant.filter(|v| !v.is_empty()),
            },
            diff_ids,
            ..ConfigInfo::default()
        };
        if let Some(rt) = rt {
            info.env = rt.env;
            info.cmd = rt.cmd;
            info.entrypoint = rt.entrypoint;
            info.working_dir = rt.working_dir.filter(|s| !s.is_empty());
            info.user = rt.user.filter(|s| !s.is_empty());
            info.labels = rt.labels;
            info.stop_signal = rt.stop_signal.filter(|s| !s.is_empty());
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_style_config() {
        let d = format!("sha256:{}", "1".repeat(64));
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/bin"],"Cmd":["sh"],
            "WorkingDir":"","Labels":{{"a":"b"}},"StopSignal":"SIGTERM"}},
            "rootfs":{{"type":"layers","diff_ids":["{d}"]}},"history":[]}}"#
        );
        let c = ConfigInfo::parse(json.as_bytes()).unwrap();
        assert_eq!(c.env, Some(vec!["PATH=/bin".to_string()]));
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.entrypoint, None);
        assert_eq!(c.working_dir, None);
        assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(c.diff_ids.len(), 1);
        assert_eq!(c.platform.to_string(), "linux/amd64");
    }

    #[test]
    fn rejects_bad_configs() {
        for json in [
            "not json",
            r#"{"os":"linux","architecture":"amd64"}"#,
            r#"{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["x"]}}"#,
            r#"{"rootfs":{"type":"layers","diff_ids":[]}}"#,
        ] {
            assert!(ConfigInfo::parse(json.as_bytes()).is_err(), "{json}");
        }
    }
}
