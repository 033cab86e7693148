//! Image references, normalized the way Docker does (`busybox` = `busybox:latest` =
//! `docker.io/library/busybox:latest`), with a canonical form for storage and a familiar form
//! for display.

use std::fmt;

use crate::error::{Error, Result};
use crate::oci::Digest;

/// Registry that Docker assumes when a reference names none.
const DEFAULT_REGISTRY: &str = "docker.io";
/// Namespace of Docker Hub's official images (`busybox` is `library/busybox`).
const OFFICIAL_NAMESPACE: &str = "library/";

/// A parsed, normalized image reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses any spelling Docker accepts. A reference with neither tag nor digest gets `latest`;
    /// one with both keeps only the digest, which is what selects the content.
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidReference {
            input: input.to_owned(),
            reason,
        };
        if input.trim() != input || input.is_empty() {
            return Err(invalid("empty or surrounded by whitespace".into()));
        }
        let parsed: oci_spec::distribution::Reference = input
            .parse()
            .map_err(|e: oci_spec::distribution::ParseError| invalid(e.to_string()))?;
        let digest = match parsed.digest() {
            Some(d) => Some(Digest::parse(d).map_err(|e| invalid(e.to_string()))?),
            None => None,
        };
        let mut registry = match parsed.registry() {
            "index.docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_owned(),
            r => r.to_owned(),
        };
        let mut repository = parsed.repository().to_owned();
        // Docker's splitDockerDomain also takes a first component with an uppercase letter
        // as the registry (`Registry/app`: repository names are lowercase); oci-spec keeps it
        // in the repository, making a Docker Hub name no parser accepts.
        if registry == DEFAULT_REGISTRY
            && let Some((first, rest)) = repository.split_once('/')
            && first.bytes().any(|b| b.is_ascii_uppercase())
        {
            (registry, repository) = (first.to_owned(), rest.to_owned());
        }
        if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            repository = format!("{OFFICIAL_NAMESPACE}{repository}");
        }
        let tag = if digest.is_some() {
            None
        } else {
            parsed.tag().map(str::to_owned)
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// A reference to `self`'s repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        Reference::parse(&format!("{}/{}:{tag}", self.registry, self.repository))
    }

    /// `registry/repository`, fully qualified (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The registry host (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository within the registry (`library/busybox`, `org/app`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference selects by tag.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference selects by digest.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The fully qualified form used as the index key
    /// (`docker.io/library/busybox:latest`, `ghcr.io/org/app@sha256:...`).
    pub fn canonical(&self) -> String {
        let mut s = self.name();
        self.push_selector(&mut s);
        s
    }

    /// The short form people type (`busybox:latest`, `org/app:v1`, `ghcr.io/org/app:v1`).
    pub fn familiar(&self) -> String {
        let mut s = self.canonical_name_and(self.registry == DEFAULT_REGISTRY);
        self.push_selector(&mut s);
        s
    }

    fn canonical_name_and(&self, shorten: bool) -> String {
        let name = self.name();
        if shorten {
            familiar_from_canonical(&name).to_owned()
        } else {
            name
        }
    }

    fn push_selector(&self, s: &mut String) {
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        } else if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
    }
}

/// The familiar form of a canonical reference string, by string operations only (used when
/// listing many rows; equals `Reference::parse(canonical).familiar()` for canonical input).
pub fn familiar_from_canonical(canonical: &str) -> &str {
    match canonical.strip_prefix("docker.io/") {
        // `docker.io/host.example/app` keeps its registry: `host.example/app` names another.
        Some(rest) if !first_component_is_registry(rest) => rest
            .strip_prefix(OFFICIAL_NAMESPACE)
            .filter(|r| !r.contains('/'))
            .unwrap_or(rest),
        _ => canonical,
    }
}

/// Whether Docker reads the first component of `name` as a registry (splitDockerDomain): it
/// holds a `.` or a `:`, is `localhost`, or has an uppercase letter.
fn first_component_is_registry(name: &str) -> bool {
    name.split_once('/').is_some_and(|(first, _)| {
        first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase())
    })
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({})", self.canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn normalization_table() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:latest",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "library/busybox:1",
                "docker.io/library/busybox:1",
                "busybox:1",
            ),
            (
                "docker.io/library/busybox:1",
                "docker.io/library/busybox:1",
                "busybox:1",
            ),
            (
                "index.docker.io/library/busybox:1",
                "docker.io/library/busybox:1",
                "busybox:1",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            ("org/app:v1", "docker.io/org/app:v1", "org/app:v1"),
            (
                "ghcr.io/org/app:v1",
                "ghcr.io/org/app:v1",
                "ghcr.io/org/app:v1",
            ),
            (
                "localhost:5000/app",
                "localhost:5000/app:latest",
                "localhost:5000/app:latest",
            ),
            (
                "python:3.12",
                "docker.io/library/python:3.12",
                "python:3.12",
            ),
            ("library/a/b:1", "docker.io/library/a/b:1", "library/a/b:1"),
        ];
        for (input, canonical, familiar) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.canonical(), *canonical, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
            assert_eq!(familiar_from_canonical(canonical), *familiar, "{input}");
        }
    }

    #[test]
    fn digest_references() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.canonical(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.familiar(), format!("busybox@{D}"));
        let both = Reference::parse(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(both, r, "the digest wins over the tag");
    }

    /// Found by the `names` fuzz target: `33A/app` parsed as the Docker Hub repository
    /// `33A/app`, whose canonical form `docker.io/33A/app:latest` did not parse (repository
    /// names are lowercase). Docker reads the first component as a registry, and so do we.
    #[test]
    fn uppercase_first_component_is_a_registry() {
        for (input, canonical) in [
            ("33A/3mmmm", "33A/3mmmm:latest"),
            ("Registry/org/app:v1", "Registry/org/app:v1"),
        ] {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.canonical(), canonical, "{input}");
            assert_eq!(r.familiar(), canonical, "{input}");
            assert_eq!(Reference::parse(&r.canonical()).unwrap(), r, "{input}");
        }
    }

    /// Found by the `names` fuzz target: the familiar form of
    /// `docker.io/hadocker.io/habox:1` was `hadocker.io/habox:1`, which names the registry
    /// `hadocker.io`; a Docker Hub repository whose first component looks like a registry keeps
    /// `docker.io/`.
    #[test]
    fn familiar_form_keeps_docker_io_before_a_registry_like_component() {
        for input in [
            "docker.io/hadocker.io/habox:1",
            "docker.io/localhost/app:latest",
        ] {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.familiar(), input, "{input}");
            assert_eq!(familiar_from_canonical(&r.canonical()), input, "{input}");
            assert_eq!(Reference::parse(&r.familiar()).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn invalid_table() {
        for input in [
            "",
            " busybox",
            "Busybox",
            "busybox:",
            "a//b",
            "busybox@sha256:abc",
            "-x",
            "x:a b",
        ] {
            let err = Reference::parse(input).unwrap_err();
            assert_eq!(err.code(), "INVALID_REFERENCE", "{input:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn canonical_round_trips(name in "[a-z][a-z0-9]{0,8}(/[a-z][a-z0-9]{0,8})?", tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}") {
            let r = Reference::parse(&format!("{name}:{tag}")).unwrap();
            proptest::prop_assert_eq!(Reference::parse(&r.canonical()).unwrap(), r.clone());
            let canonical = r.canonical();
            proptest::prop_assert_eq!(familiar_from_canonical(&canonical), r.familiar());
            proptest::prop_assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
        }
    }
}
