//! Registry authentication (distribution spec, "Token authentication"; Docker's
//! `WWW-Authenticate` flow): credentials from the caller or the Docker config, the challenge a
//! 401 answer carries, and the bearer tokens fetched for it, cached per scope until they
//! expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Credentials for a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or a personal access token as password): HTTP basic auth,
    /// or sent to the token server.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A registry token, sent as `Authorization: Bearer` as is.
    Token(String),
    /// An identity (refresh) token from `docker login`, exchanged at the token server
    /// (OAuth2 `grant_type=refresh_token`).
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log or an error message.
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Token(_) => f.write_str("Token(***)"),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(***)"),
        }
    }
}

/// The Docker config's key for Docker Hub (what `docker login` writes).
const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// The credentials the Docker config (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`: `credHelpers`, `credsStore`, `auths`) holds for `registry` (a host,
/// `docker.io` for Docker Hub), or `None` (no config, no entry, a helper that fails: the
/// request is then anonymous).
pub fn from_docker_config(registry: &str) -> Option<Credentials> {
    let key = if registry == "docker.io" {
        DOCKER_HUB_CONFIG_KEY
    } else {
        registry
    };
    match docker_credential::get_credential(key).ok()? {
        docker_credential::DockerCredential::UsernamePassword(username, password) => {
            Some(Credentials::Basic { username, password })
        }
        docker_credential::DockerCredential::IdentityToken(t) => {
            Some(Credentials::IdentityToken(t))
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// `service`, when given.
        service: Option<String>,
        /// `scope`, when given.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value (RFC 7235 auth-params, quoted or not); `None` for a scheme
/// the client does not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        out.insert(key, value);
    }
}

/// What a token server answers (`token` or OAuth2's `access_token`).
#[derive(Debug, Deserialize)]
pub(super) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// How long a token lives when its server does not say (the distribution spec's default).
pub(super) const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// A token is renewed this long before it expires, so it does not expire in flight.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// Bearer tokens by scope, until they expire.
#[derive(Debug, Default)]
pub(super) struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    /// The `Authorization` value cached for `scope`, unless it expired.
    pub fn get(&self, scope: &str) -> Option<String> {
        let mut tokens = self.tokens.lock().ok()?;
        match tokens.get(scope) {
            Some((value, expires)) if Instant::now() + TOKEN_EXPIRY_MARGIN < *expires => {
                Some(value.clone())
            }
            Some(_) => {
                tokens.remove(scope);
                None
            }
            None => None,
        }
    }

    /// Caches `value` for `scope` for `lifetime`.
    pub fn put(&self, scope: &str, value: String, lifetime: Duration) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(scope.to_owned(), (value, Instant::now() + lifetime));
        }
    }

    /// Forgets the token of `scope` (the registry refused it).
    pub fn forget(&self, scope: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(scope);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;

    #[test]
    fn challenges_table() {
        let bearer = |realm: &str, service: Option<&str>, scope: Option<&str>| {
            Some(Challenge::Bearer {
                realm: realm.into(),
                service: service.map(Into::into),
                scope: scope.map(Into::into),
            })
        };
        let cases: &[(&str, Option<Challenge>)] = &[
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/busybox:pull"),
                ),
            ),
            (
                r#"bearer realm="http://127.0.0.1:1/t", scope="repository:a/b:pull,push""#,
                bearer(
                    "http://127.0.0.1:1/t",
                    None,
                    Some("repository:a/b:pull,push"),
                ),
            ),
            (
                "Bearer realm=https://x/token,service=x",
                bearer("https://x/token", Some("x"), None),
            ),
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            ("Bearer service=x", None),
            ("Negotiate abc", None),
        ];
        for (header, want) in cases {
            assert_eq!(&parse_challenge(header), want, "{header}");
        }
    }

    #[test]
    fn tokens_expire() {
        let cache = TokenCache::default();
        cache.put("a", "Bearer 1".into(), Duration::from_secs(60));
        cache.put("b", "Bearer 2".into(), Duration::from_secs(1));
        assert_eq!(cache.get("a").as_deref(), Some("Bearer 1"));
        // Within the margin of its expiry a token counts as expired.
        assert_eq!(cache.get("b"), None);
        cache.forget("a");
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn credentials_never_print_secrets() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::Token("hunter2".into())).contains("hunter2"));
    }
}
