//! The one error type of the core, with a stable machine-readable [`Error::code`].
//!
//! Codes are public API (they reach JavaScript as `err.code`): add new ones, never rename old ones.
//! Every variant carries structured fields rather than pre-formatted text, so bindings can expose
//! them as properties (see [`Error::details`]) without parsing messages.

use std::path::PathBuf;

/// Result alias used throughout the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The reference (or digest) is not in the cache.
    #[error("image not found: {reference}")]
    ImageNotFound {
        /// The reference as the caller spelled it.
        reference: String,
    },
    /// A sandbox or snapshot use pins the image, and removal was not forced.
    #[error("image in use: {reference} (held by {})", holders.join(", "))]
    ImageInUse {
        /// The reference as the caller spelled it.
        reference: String,
        /// Holders, as `sandbox:<id>` or `snapshot:<id>`.
        holders: Vec<String>,
    },
    /// The text is not a valid image reference.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// What the caller passed.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The archive or layout is malformed: bad tar, bad JSON, missing files, unsafe member names.
    #[error("invalid archive: {reason}")]
    InvalidArchive {
        /// What is wrong, naming the member or field.
        reason: String,
    },
    /// Content does not match the digest that names it (a blob, a config, or a layer's `diff_id`).
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (for example `layer 1 diff_id`).
        what: String,
        /// The digest the metadata promised.
        expected: String,
        /// The digest of the bytes actually read.
        actual: String,
    },
    /// An image index has no manifest for the requested platform.
    #[error("no manifest for platform {wanted} (available: {})", available.join(", "))]
    PlatformNotFound {
        /// The platform looked for, as `os/architecture[/variant]`.
        wanted: String,
        /// Platforms the index offers.
        available: Vec<String>,
    },
    /// An image in the archive names no repository, and no `tag` was given to name it.
    #[error("image has no repository name; pass a tag to name it (archive holds: {})", available.join(", "))]
    ReferenceRequired {
        /// What the archive holds: annotations or manifest digests, for the message.
        available: Vec<String>,
    },
    /// The operation is not supported by the configured backend or for this input.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What is not supported.
        what: String,
    },
    /// An argument is out of range or malformed (not a reference).
    #[error("invalid argument {name}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The index or an artifact contradicts the cache's invariants.
    #[error("corrupt cache: {reason}")]
    CorruptCache {
        /// What was found.
        reason: String,
    },
    /// A folder or file of the cache root is not what the cache keeps there: a symlink (which
    /// could redirect the cache's writes and deletes out of the root), a directory where a file
    /// belongs, or a file where a folder belongs. The code is `CORRUPT_CACHE`, like
    /// [`Error::CorruptCache`]; this variant names the path.
    #[error("corrupt cache: {} is {found}, not {expected}", path.display())]
    CorruptCacheEntry {
        /// The file or folder at fault.
        path: PathBuf,
        /// What is there (`a symlink`, `a directory`, `a regular file`, `a special file`).
        found: &'static str,
        /// What the cache keeps there (`a directory`, `a regular file`).
        expected: &'static str,
    },
    /// A filesystem operation failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file system holding `path` is full, or the user's quota on it is exhausted
    /// (`ENOSPC`, `EDQUOT`). A load that runs out of space leaves the cache as it was.
    #[error("no space left on the file system of {}: {source}", path.display())]
    NoSpace {
        /// The path being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite index failed.
    #[error("index error: {source}")]
    Index {
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A bug: an invariant broke or a worker panicked.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
    /// An operation would pass a limit set on it (by an option or its default), and stopped
    /// before it did.
    #[error("limit exceeded: {what} would pass {limit} bytes")]
    LimitExceeded {
        /// The limit, in bytes.
        limit: u64,
        /// What the limit bounds (for example `bytes written by the load`).
        what: String,
    },
    /// The caller cancelled the operation (a load or a pull whose [`crate::cancel::Cancel`]
    /// was set, or a binding's signal aborted before the call).
    #[error("aborted: {what}")]
    Aborted {
        /// What was cancelled, and when.
        what: String,
    },
    /// The registry (or its token server) refused the credentials, or wants credentials and
    /// none were found (HTTP 401 after authenticating).
    #[error("registry {registry} unauthorized: {reason}")]
    RegistryUnauthorized {
        /// The registry host.
        registry: String,
        /// What the registry said, or what was missing.
        reason: String,
    },
    /// The registry denied access to the repository (HTTP 403).
    #[error("registry {registry} denied access to {repository}")]
    RegistryDenied {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
    },
    /// The registry has no such repository, tag or manifest (HTTP 404). The code is
    /// `IMAGE_NOT_FOUND`, like [`Error::ImageNotFound`]; this variant carries the registry's
    /// own error code (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, ...).
    #[error("image not found: {reference} (registry {registry} answered {})", registry_code.as_deref().unwrap_or("404"))]
    ImageNotInRegistry {
        /// The reference as the caller spelled it.
        reference: String,
        /// The registry host.
        registry: String,
        /// The registry's error code, when its answer had one.
        registry_code: Option<String>,
    },
    /// The registry kept answering 429 Too Many Requests after the retries.
    #[error("registry {registry} rate limited the pull{}", retry_after_secs.map(|s| format!(" (retry after {s} s)")).unwrap_or_default())]
    RegistryRateLimited {
        /// The registry host.
        registry: String,
        /// The registry's `Retry-After`, in seconds, when it sent one.
        retry_after_secs: Option<u64>,
    },
    /// The registry could not be reached, or answered 5xx, or the connection broke, after
    /// the retries.
    #[error("registry {registry} unavailable: {reason}")]
    RegistryUnavailable {
        /// The registry host.
        registry: String,
        /// The last failure.
        reason: String,
    },
    /// The registry's TLS certificate is not trusted or does not fit its host.
    #[error("registry {registry} tls error: {reason}")]
    RegistryTls {
        /// The registry host.
        registry: String,
        /// The TLS library's reason.
        reason: String,
    },
}

/// Every code [`Error::code`] can return, for bindings that must prove they map them all.
pub const ERROR_CODES: &[&str] = &[
    "IMAGE_NOT_FOUND",
    "IMAGE_IN_USE",
    "INVALID_REFERENCE",
    "INVALID_ARCHIVE",
    "DIGEST_MISMATCH",
    "PLATFORM_NOT_FOUND",
    "REFERENCE_REQUIRED",
    "UNSUPPORTED",
    "INVALID_ARGUMENT",
    "CORRUPT_CACHE",
    "IO",
    "INDEX",
    "INTERNAL",
    "LIMIT_EXCEEDED",
    "NO_SPACE",
    "ABORTED",
    "REGISTRY_UNAUTHORIZED",
    "REGISTRY_DENIED",
    "REGISTRY_RATE_LIMITED",
    "REGISTRY_UNAVAILABLE",
    "REGISTRY_TLS",
];

impl Error {
    /// The stable code of this error, in Node's `SCREAMING_SNAKE` style.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ImageNotFound { .. } | Error::ImageNotInRegistry { .. } => "IMAGE_NOT_FOUND",
            Error::ImageInUse { .. } => "IMAGE_IN_USE",
            Error::InvalidReference { .. } => "INVALID_REFERENCE",
            Error::InvalidArchive { .. } => "INVALID_ARCHIVE",
            Error::DigestMismatch { .. } => "DIGEST_MISMATCH",
            Error::PlatformNotFound { .. } => "PLATFORM_NOT_FOUND",
            Error::ReferenceRequired { .. } => "REFERENCE_REQUIRED",
            Error::Unsupported { .. } => "UNSUPPORTED",
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::CorruptCache { .. } | Error::CorruptCacheEntry { .. } => "CORRUPT_CACHE",
            Error::Io { .. } => "IO",
            Error::Index { .. } => "INDEX",
            Error::Internal { .. } => "INTERNAL",
            Error::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            Error::NoSpace { .. } => "NO_SPACE",
            Error::Aborted { .. } => "ABORTED",
            Error::RegistryUnauthorized { .. } => "REGISTRY_UNAUTHORIZED",
            Error::RegistryDenied { .. } => "REGISTRY_DENIED",
            Error::RegistryRateLimited { .. } => "REGISTRY_RATE_LIMITED",
            Error::RegistryUnavailable { .. } => "REGISTRY_UNAVAILABLE",
            Error::RegistryTls { .. } => "REGISTRY_TLS",
        }
    }

    /// Structured fields of the error as `(name, value)` pairs, for bindings to attach as
    /// properties. Names are camelCase; values are JSON.
    pub fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::Value;
        let s = |v: &str| Value::String(v.to_owned());
        let list = |v: &[String]| Value::Array(v.iter().map(|x| s(x)).collect());
        match self {
            Error::ImageNotFound { reference } => vec![("reference", s(reference))],
            Error::ImageNotInRegistry {
                reference,
                registry,
                registry_code,
            } => {
                let mut v = vec![("reference", s(reference)), ("registry", s(registry))];
                if let Some(code) = registry_code {
                    v.push(("registryCode", s(code)));
                }
                v
            }
            Error::RegistryUnauthorized { registry, .. }
            | Error::RegistryUnavailable { registry, .. }
            | Error::RegistryTls { registry, .. } => vec![("registry", s(registry))],
            Error::RegistryDenied {
                registry,
                repository,
            } => vec![("registry", s(registry)), ("repository", s(repository))],
            Error::RegistryRateLimited {
                registry,
                retry_after_secs,
            } => {
                let mut v = vec![("registry", s(registry))];
                if let Some(secs) = retry_after_secs {
                    v.push(("retryAfterSeconds", Value::from(*secs)));
                }
                v
            }
            Error::ImageInUse { reference, holders } => {
                vec![("reference", s(reference)), ("holders", list(holders))]
            }
            Error::InvalidReference { input, .. } => vec![("input", s(input))],
            Error::DigestMismatch {
                what,
                expected,
                actual,
            } => vec![
                ("subject", s(what)),
                ("expected", s(expected)),
                ("actual", s(actual)),
            ],
            Error::PlatformNotFound { wanted, available } => {
                vec![("platform", s(wanted)), ("available", list(available))]
            }
            Error::ReferenceRequired { available } => vec![("available", list(available))],
            Error::InvalidArgument { name, .. } => vec![("argument", s(name))],
            Error::LimitExceeded { limit, what } => {
                vec![("limit", Value::from(*limit)), ("subject", s(what))]
            }
            Error::CorruptCacheEntry { path, .. } => vec![("path", s(&path.to_string_lossy()))],
            Error::Io { path, source } | Error::NoSpace { path, source } => {
                let mut v = vec![("path", s(&path.to_string_lossy()))];
                if let Some(errno) = source.raw_os_error() {
                    v.push(("errno", Value::from(errno)));
                }
                v
            }
            _ => Vec::new(),
        }
    }

    /// Builds the error of a failed operation on `path`: [`Error::NoSpace`] when the file
    /// system is full or the quota exhausted, else [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if is_no_space(&source) {
            Error::NoSpace { path, source }
        } else {
            Error::Io { path, source }
        }
    }

    /// Builds an [`Error::InvalidArchive`].
    pub fn invalid_archive(reason: impl Into<String>) -> Self {
        Error::InvalidArchive {
            reason: reason.into(),
        }
    }

    /// Builds the [`Error::InvalidArchive`] of a JSON document (`what`) that does not parse.
    ///
    /// serde_json's messages quote the offending value (`invalid type: string "..."`), and the
    /// document may be any file at all (a `manifest.json` of some other tool, a secret), so
    /// only the kind of problem and its position are reported, plus the name of a missing
    /// field, which comes from the schema rather than from the document.
    pub(crate) fn malformed_json(what: &str, e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let problem = match e.classify() {
            Category::Io => "cannot be read".to_owned(),
            Category::Syntax => "is not valid JSON".to_owned(),
            Category::Eof => "is truncated JSON".to_owned(),
            Category::Data => {
                let text = e.to_string();
                match text
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split_once('`'))
                {
                    Some((field, _)) => format!("lacks the field {field:?}"),
                    None => "does not have the expected structure".to_owned(),
                }
            }
        };
        Error::invalid_archive(format!(
            "{what} {problem} (line {}, column {})",
            e.line(),
            e.column()
        ))
    }

    /// Builds an [`Error::Internal`].
    pub fn internal(reason: impl Into<String>) -> Self {
        Error::Internal {
            reason: reason.into(),
        }
    }
}

/// Whether an I/O error means the file system is full (`ENOSPC`) or the quota is exhausted
/// (`EDQUOT`).
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<rusqlite::Error> for Error {
    /// A damaged database file (`SQLITE_NOTADB`, `SQLITE_CORRUPT`: garbage bytes in
    /// `index.db`) is [`Error::CorruptCache`]; any other SQLite failure [`Error::Index`].
    fn from(source: rusqlite::Error) -> Self {
        match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                Error::CorruptCache {
                    reason: format!("the index is damaged: {source}"),
                }
            }
            _ => Error::Index { source },
        }
    }
}

/// Adds a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    /// Maps an I/O error to [`Error::Io`] naming `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::io(path, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once() {
        let samples = [
            Error::ImageNotFound {
                reference: "a".into(),
            },
            Error::ImageInUse {
                reference: "a".into(),
                holders: vec![],
            },
            Error::InvalidReference {
                input: "a".into(),
                reason: "b".into(),
            },
            Error::invalid_archive("x"),
            Error::DigestMismatch {
                what: "a".into(),
                expected: "b".into(),
                actual: "c".into(),
            },
            Error::PlatformNotFound {
                wanted: "a".into(),
                available: vec![],
            },
            Error::ReferenceRequired { available: vec![] },
            Error::Unsupported { what: "a".into() },
            Error::InvalidArgument {
                name: "a".into(),
                reason: "b".into(),
            },
            Error::CorruptCache { reason: "a".into() },
            Error::io("/x", std::io::Error::other("e")),
            Error::from(rusqlite::Error::InvalidQuery),
            Error::internal("x"),
            Error::LimitExceeded {
                limit: 1,
                what: "a".into(),
            },
            Error::io("/x", std::io::Error::from(std::io::ErrorKind::StorageFull)),
            Error::Aborted { what: "x".into() },
            Error::RegistryUnauthorized {
                registry: "r".into(),
                reason: "x".into(),
            },
            Error::RegistryDenied {
                registry: "r".into(),
                repository: "a".into(),
            },
            Error::RegistryRateLimited {
                registry: "r".into(),
                retry_after_secs: Some(1),
            },
            Error::RegistryUnavailable {
                registry: "r".into(),
                reason: "x".into(),
            },
            Error::RegistryTls {
                registry: "r".into(),
                reason: "x".into(),
            },
        ];
        let codes: Vec<_> = samples.iter().map(Error::code).collect();
        assert_eq!(codes, ERROR_CODES);
    }

    /// ENOSPC and EDQUOT from any I/O call became a plain `IO` error, so a full disk could not
    /// be told from a failing one.
    #[test]
    #[cfg(target_os = "linux")]
    fn full_file_systems_are_no_space() {
        for errno in [28, 122] {
            // ENOSPC and EDQUOT on Linux.
            let e = Error::io("/c/tmp/x", std::io::Error::from_raw_os_error(errno));
            assert_eq!(e.code(), "NO_SPACE", "errno {errno}");
            assert_eq!(
                e.details(),
                vec![
                    ("path", serde_json::Value::from("/c/tmp/x")),
                    ("errno", serde_json::Value::from(errno))
                ]
            );
        }
        let e = Error::io("/x", std::io::Error::from_raw_os_error(5));
        assert_eq!(e.code(), "IO");
    }

    /// JSON errors quoted the document's values (`invalid type: string "<secret>"`), so loading
    /// a file that is not an image printed its contents in the error.
    #[test]
    fn json_errors_never_quote_the_document() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code, reason = "only parsed")]
        struct Doc {
            name: Vec<String>,
        }
        let cases: &[(&str, &str)] = &[
            (
                r#"["hunter2-secret"]"#,
                "does not have the expected structure",
            ),
            (
                r#"{"name": "hunter2-secret"}"#,
                "does not have the expected structure",
            ),
            (r#"{"hunter2-secret": 1}"#, "lacks the field \"name\""),
            (r#"hunter2-secret"#, "is not valid JSON"),
            (r#"{"name": ["hunter2-secret"#, "is truncated JSON"),
        ];
        for (doc, problem) in cases {
            let e = serde_json::from_str::<Doc>(doc).unwrap_err();
            let err = Error::malformed_json("manifest.json", &e);
            let text = err.to_string();
            assert_eq!(err.code(), "INVALID_ARCHIVE");
            assert!(!text.contains("hunter2"), "{doc}: {text}");
            assert!(text.contains(problem), "{doc}: {text}");
        }
    }

    #[test]
    fn a_corrupt_cache_entry_is_corrupt_cache_and_names_its_path() {
        let e = Error::CorruptCacheEntry {
            path: "/c/tmp".into(),
            found: "a symlink",
            expected: "a directory",
        };
        assert_eq!(e.code(), "CORRUPT_CACHE");
        assert_eq!(
            e.to_string(),
            "corrupt cache: /c/tmp is a symlink, not a directory"
        );
        assert_eq!(e.details(), vec![("path", serde_json::json!("/c/tmp"))]);
    }

    #[test]
    fn messages_start_lowercase_without_period() {
        let e = Error::ImageNotFound {
            reference: "python:3.12".into(),
        };
        assert_eq!(e.to_string(), "image not found: python:3.12");
    }
}
