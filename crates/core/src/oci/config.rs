//! The parts of an image config (OCI image spec `config.md`) that `inspect` shows: the runtime
//! fields a load records in the index ([`ConfigInfo`]), and the descriptive fields `inspect`
//! reads from the config blob itself ([`ConfigDescription`]).

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

/// What `inspect` shows of a config beside [`ConfigInfo`]: `config.ExposedPorts`,
/// `config.Volumes`, `created`, `author` and `history`, read from the config blob when it is
/// shown (the index does not keep them).
///
/// The blob is untrusted JSON (its digest was checked when it was loaded, but anyone may have
/// built it). Parsing it fails only when it is not a JSON object; a field of the wrong type is
/// left out (`None`), as if absent, so that a hostile or sloppy config never hides the other
/// fields: `ExposedPorts` and `Volumes` must be objects (their keys are kept, sorted; the
/// values, `{}` in the spec, are ignored), `created` and `author` strings, `created` a valid
/// RFC 3339 date-time (else left out), `history` an array of objects (an element that is not
/// an object leaves out the whole history, whose order matters: its entries line up with the
/// layers). Within a history entry, each field of the wrong type is left out the same way, and
/// `empty_layer` counts only when it is `true`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigDescription {
    /// `config.ExposedPorts` keys (`80/tcp`, `53/udp`), sorted.
    pub exposed_ports: Option<Vec<String>>,
    /// `config.Volumes` keys (container paths), sorted.
    pub volumes: Option<Vec<String>>,
    /// `created`: when the image was built, in milliseconds since the Unix epoch.
    pub created: Option<i64>,
    /// `author`.
    pub author: Option<String>,
    /// `history`, oldest first.
    pub history: Option<Vec<HistoryEntry>>,
}

/// One entry of a config's `history`: how one layer (or an instruction that made none) was
/// built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryEntry {
    /// `created`, in milliseconds since the Unix epoch.
    pub created: Option<i64>,
    /// `created_by`: the command that made it.
    pub created_by: Option<String>,
    /// `author`.
    pub author: Option<String>,
    /// `comment`.
    pub comment: Option<String>,
    /// `empty_layer`: the step made no layer (no `rootfs.diff_ids` entry matches it).
    pub empty_layer: bool,
}

impl ConfigDescription {
    /// Parses the descriptive fields of a config blob (see the type's docs for what a field of
    /// the wrong type gives). Errors only when `bytes` is not a JSON object
    /// ([`Error::InvalidArchive`]).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        use serde_json::Value;
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| Error::malformed_json("image config", &e))?;
        let Value::Object(top) = value else {
            return Err(Error::invalid_archive("image config is not a JSON object"));
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let keys = |v: Option<&Value>| {
            v.and_then(Value::as_object).map(|m| {
                // serde_json's map is sorted by key.
                m.keys().cloned().collect::<Vec<_>>()
            })
        };
        let runtime = top.get("config").and_then(Value::as_object);
        let history = top
            .get("history")
            .and_then(Value::as_array)
            .and_then(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        let e = e.as_object()?;
                        Some(HistoryEntry {
                            created: e
                                .get("created")
                                .and_then(Value::as_str)
                                .and_then(rfc3339_ms),
                            created_by: text(e.get("created_by")),
                            author: text(e.get("author")),
                            comment: text(e.get("comment")),
                            empty_layer: e.get("empty_layer").and_then(Value::as_bool)
                                == Some(true),
                        })
                    })
                    .collect::<Option<Vec<_>>>()
            });
        Ok(ConfigDescription {
            exposed_ports: keys(runtime.and_then(|r| r.get("ExposedPorts"))),
            volumes: keys(runtime.and_then(|r| r.get("Volumes"))),
            created: top
                .get("created")
                .and_then(Value::as_str)
                .and_then(rfc3339_ms),
            author: text(top.get("author")),
            history,
        })
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 date-time (`2024-05-01T12:00:00Z`,
/// `2024-05-01T14:00:00.123456789+02:00`), the format the spec gives `created`; `None` for
/// anything else. Before the epoch is negative (Go's zero time, `0001-01-01T00:00:00Z`, which
/// some builders write, is -62135596800000).
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
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

    /// The fields of an umoci-style config, and a history with an empty layer.
    #[test]
    fn describes_ports_volumes_dates_and_history() {
        let json = r#"{"created":"2024-05-01T12:00:00.5Z","author":"Ann <a@example.com>",
            "architecture":"amd64","os":"linux",
            "config":{"ExposedPorts":{"8080/tcp":{},"53/udp":{}},"Volumes":{"/data":{},"/cache":{}}},
            "rootfs":{"type":"layers","diff_ids":[]},
            "history":[{"created":"2024-05-01T14:00:00+02:00","created_by":"/bin/sh -c make",
              "author":"Bob","comment":"build"},{"created_by":"ENV A=1","empty_layer":true}]}"#;
        let d = ConfigDescription::parse(json.as_bytes()).unwrap();
        assert_eq!(
            d.exposed_ports,
            Some(vec!["53/udp".into(), "8080/tcp".into()])
        );
        assert_eq!(d.volumes, Some(vec!["/cache".into(), "/data".into()]));
        assert_eq!(d.created, Some(1_714_564_800_500));
        assert_eq!(d.author.as_deref(), Some("Ann <a@example.com>"));
        let h = d.history.unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].created, Some(1_714_564_800_000));
        assert_eq!(h[0].created_by.as_deref(), Some("/bin/sh -c make"));
        assert_eq!(h[0].author.as_deref(), Some("Bob"));
        assert_eq!(h[0].comment.as_deref(), Some("build"));
        assert!(!h[0].empty_layer);
        assert_eq!(h[1].created, None);
        assert!(h[1].empty_layer);
        // Nothing of it: every field absent.
        assert_eq!(
            ConfigDescription::parse(b"{}").unwrap(),
            ConfigDescription::default()
        );
    }

    /// Hostile configs: a field of the wrong type is left out and the others stay; a history
    /// element that is not an object leaves out the whole history; only a document that is no
    /// JSON object is an error.
    #[test]
    fn a_field_of_the_wrong_type_is_left_out() {
        let json = r#"{"created":12,"author":["x"],
            "config":{"ExposedPorts":["80/tcp"],"Volumes":{"/v":null}},
            "history":[{"created":"yesterday","created_by":7,"comment":"ok","empty_layer":"yes"}]}"#;
        let d = ConfigDescription::parse(json.as_bytes()).unwrap();
        assert_eq!(d.created, None);
        assert_eq!(d.author, None);
        assert_eq!(d.exposed_ports, None);
        assert_eq!(d.volumes, Some(vec!["/v".into()]));
        assert_eq!(
            d.history,
            Some(vec![HistoryEntry {
                comment: Some("ok".into()),
                ..HistoryEntry::default()
            }])
        );
        let d =
            ConfigDescription::parse(br#"{"history":[{"comment":"a"},3],"author":"x"}"#).unwrap();
        assert_eq!(d.history, None);
        assert_eq!(d.author.as_deref(), Some("x"));
        for bad in [&b"[]"[..], b"\"text\"", b"not json", b""] {
            let e = ConfigDescription::parse(bad).unwrap_err();
            assert_eq!(
                e.code(),
                "INVALID_ARCHIVE",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rfc3339_dates() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2015-10-31T22:22:56.015925234Z", Some(1_446_330_176_015)),
            ("2015-10-31T23:22:56+01:00", Some(1_446_330_176_000)),
            ("0001-01-01T00:00:00Z", Some(-62_135_596_800_000)),
            ("2015-10-31 22:22:56", None),
            ("", None),
            ("2015-13-01T00:00:00Z", None),
        ] {
            assert_eq!(rfc3339_ms(text), ms, "{text}");
        }
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
