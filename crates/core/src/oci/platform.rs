//! Platforms (`os/architecture[/variant]`) as image indexes and configs spell them.

use std::fmt;

use crate::error::{Error, Result};

/// An OCI platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v7`, `v8`, ... when the architecture has variants.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the running process, in GOARCH spelling (images for a microVM run the
    /// host's architecture under Linux, whatever the host OS).
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Parses `os/architecture[/variant]` (`linux/amd64`, `linux/arm/v7`): two or three
    /// components of ASCII letters, digits, `.`, `_` and `-`. Errors name the argument
    /// `platform`.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = || Error::InvalidArgument {
            name: "platform".into(),
            reason: format!("expected os/architecture[/variant], got {text:?}"),
        };
        let component = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        let parts: Vec<&str> = text.split('/').collect();
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|c| component(c)) {
            return Err(invalid());
        }
        Ok(Platform {
            os: parts[0].to_owned(),
            architecture: parts[1].to_owned(),
            variant: parts.get(2).map(|v| (*v).to_owned()),
        })
    }

    /// Whether an index entry for `other` runs here. The variant only has to match when both
    /// sides name one (`arm64` and `arm64/v8` are the same machine).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_rejects_malformed_platforms() {
        for text in [
            "linux/amd64",
            "linux/arm/v7",
            "windows/amd64",
            "linux/ppc64le",
        ] {
            assert_eq!(Platform::parse(text).unwrap().to_string(), text);
        }
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(arm.variant.as_deref(), Some("v8"));
        for text in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/",
            "linux/arm/v7/x",
            "linux amd64",
            "linux/am d64",
        ] {
            let err = Platform::parse(text).unwrap_err();
            assert_eq!(err.code(), "INVALID_ARGUMENT", "{text:?}");
        }
    }
}
