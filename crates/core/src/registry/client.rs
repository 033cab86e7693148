//! The HTTP side of the distribution client: one [`Client`] per repository, with its
//! endpoints (mirrors first, then the origin), its credentials and cached tokens, retries with
//! backoff, and the mapping of HTTP answers to the core's registry errors.
//!
//! The HTTP client is `ureq` (blocking, rustls with `ring`): the core is synchronous, and a
//! blocking body reader feeds the `Read`-based layer converter directly.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ureq::http::{Response, StatusCode};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::RegistryOptions;
use super::auth::{
    Challenge, Credentials, DEFAULT_TOKEN_LIFETIME, TokenCache, TokenResponse, parse_challenge,
};
use super::mirrors::Endpoint;
use crate::cancel::Cancel;
use crate::error::{Error, Result};

/// A response with its body still to read.
pub(super) type Answer = Response<ureq::Body>;

/// The most bytes of an error answer read to find the registry's error code.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// How often a sleeping retry looks at its cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Retries of a request that failed in a way that may pass: a connection refused, reset or
/// timed out, a 5xx, a 429.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each next one.
    pub base_delay: Duration,
    /// The longest `Retry-After` honoured: a 429 asking to wait longer fails at once with
    /// [`Error::RegistryRateLimited`].
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// The distribution client of one repository.
pub struct Client {
    agent: ureq::Agent,
    /// The registry host as references spell it (`docker.io`), for errors and credentials.
    registry: String,
    repository: String,
    endpoints: Vec<Endpoint>,
    credentials: Option<Credentials>,
    tokens: TokenCache,
    pub(super) retry: RetryPolicy,
    pub(super) cancel: Cancel,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("registry", &self.registry)
            .field("repository", &self.repository)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// What went wrong with one attempt, and whether another may help.
enum Failure {
    /// Worth retrying (after the delay, when given).
    Transient(Error, Option<Duration>),
    /// Final.
    Fatal(Error),
}

impl Client {
    /// A client of `repository` at `registry` through `endpoints` (never empty: mirrors first,
    /// the origin last).
    pub(super) fn new(
        registry: &str,
        repository: &str,
        endpoints: Vec<Endpoint>,
        options: &RegistryOptions,
        cancel: Cancel,
    ) -> Result<Self> {
        let mut tls = TlsConfig::builder();
        if let Some(pem) = &options.ca_certs {
            let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect();
            roots.extend(parse_ca_certs(pem)?);
            tls = tls.root_certs(RootCerts::new_with_certs(&roots));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("ocicache/", env!("CARGO_PKG_VERSION")))
            .max_redirects(MAX_REDIRECTS)
            // Credentials go to the registry's own host only, never to the blob storage a
            // registry redirects to (S3, a CDN).
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_per_read(Some(options.read_timeout))
            .timeout_recv_response(Some(options.read_timeout))
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Client {
            agent,
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            endpoints,
            credentials: options.credentials.clone(),
            tokens: TokenCache::default(),
            retry: options.retry.clone(),
            cancel,
        })
    }

    /// The registry host, as references spell it.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `GET /v2/<repository>/<path>` (`manifests/<tag>`, `blobs/<digest>`), through each
    /// endpoint in turn until one answers 2xx: a mirror that fails in any way is passed over
    /// for the next, the origin's failure is the error. `range_from` asks for the bytes from
    /// that offset on (`Range`); the answer may still be a 200 with every byte.
    pub(super) fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        range_from: Option<u64>,
        reference: &str,
    ) -> Result<Answer> {
        let mut last = None;
        for endpoint in &self.endpoints {
            match self.get_at(endpoint, path, accept, range_from, reference) {
                Ok(answer) => return Ok(answer),
                Err(e) if endpoint.mirror && !matches!(e, Error::Aborted { .. }) => {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::internal("a registry client without endpoints")))
    }

    /// [`Client::get`] at one endpoint, with authentication and retries.
    fn get_at(
        &self,
        endpoint: &Endpoint,
        path: &str,
        accept: Option<&str>,
        range_from: Option<u64>,
        reference: &str,
    ) -> Result<Answer> {
        let url = format!("{}/v2/{}/{path}", endpoint.base, self.repository);
        let scope_key = format!("{}|repository:{}:pull", endpoint.base, self.repository);
        let mut authenticated = false;
        // The `Authorization` value an answer to a 401 produced: the attempts after it send it
        // whatever its lifetime (a token may live less than the renewal margin).
        let mut fresh: Option<String> = None;
        let mut attempt = 0;
        loop {
            self.cancel.check("the pull")?;
            let mut request = self.agent.get(&url);
            if let Some(accept) = accept {
                request = request.header("Accept", accept);
            }
            if let Some(from) = range_from.filter(|f| *f > 0) {
                request = request.header("Range", format!("bytes={from}-"));
            }
            let auth = fresh
                .clone()
                .or_else(|| self.tokens.get(&scope_key))
                .or_else(|| match &self.credentials {
                    Some(Credentials::Token(t)) => Some(format!("Bearer {t}")),
                    _ => None,
                });
            if let Some(auth) = &auth {
                request = request.header("Authorization", auth);
            }
            let failure = match request.call() {
                Err(e) => self.transport_failure(e),
                Ok(answer) => {
                    let status = answer.status();
                    if status.is_success() {
                        return Ok(answer);
                    }
                    if let Some(from) = range_from.filter(|f| *f > 0)
                        && status == StatusCode::RANGE_NOT_SATISFIABLE
                    {
                        // Fewer bytes than a partial download already holds, while the
                        // descriptor promised more: the partial is no prefix of this blob,
                        // and the blob does not match its descriptor. Final (the partial is
                        // deleted by the pull's end; a mirror is passed over for the next).
                        return Err(Error::invalid_archive(format!(
                            "{reference}: {} answered 416 to a request for the bytes from {from} on: \
                             the blob is shorter than its descriptor says",
                            endpoint.base
                        )));
                    }
                    if status == StatusCode::UNAUTHORIZED && !authenticated {
                        self.tokens.forget(&scope_key);
                        fresh = Some(self.authenticate(&answer, &scope_key)?);
                        authenticated = true;
                        continue;
                    }
                    self.status_failure(answer, reference, endpoint)
                }
            };
            attempt += 1;
            match failure {
                Failure::Fatal(e) => return Err(e),
                Failure::Transient(e, _) if attempt >= self.retry.attempts.max(1) => {
                    return Err(e);
                }
                Failure::Transient(_, delay) => {
                    let backoff = self.retry.base_delay * 2u32.saturating_pow(attempt - 1);
                    self.sleep(delay.unwrap_or(backoff))?;
                }
            }
        }
    }

    /// Answers a 401: fetches a token for the challenge's scope (anonymously, or with the
    /// credentials), or prepares basic auth; caches the `Authorization` value and returns it.
    fn authenticate(&self, answer: &Answer, scope_key: &str) -> Result<String> {
        let challenge = answer
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_challenge);
        let unauthorized = |reason: &str| Error::RegistryUnauthorized {
            registry: self.registry.clone(),
            reason: reason.to_owned(),
        };
        match challenge {
            None => Err(unauthorized(
                "the registry asks for an authentication scheme this client does not speak",
            )),
            Some(Challenge::Basic) => match &self.credentials {
                Some(Credentials::Basic { username, password }) => {
                    let basic = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"));
                    let value = format!("Basic {basic}");
                    self.tokens.put(
                        scope_key,
                        value.clone(),
                        Duration::from_secs(u64::from(u32::MAX)),
                    );
                    Ok(value)
                }
                _ => Err(unauthorized(
                    "the registry wants a user name and password, and none were given or found in the Docker config",
                )),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                let (token, lifetime) = self.fetch_token(&realm, service.as_deref(), &scope)?;
                let value = format!("Bearer {token}");
                self.tokens.put(scope_key, value.clone(), lifetime);
                Ok(value)
            }
        }
    }

    /// A bearer token from the token server at `realm`, and how long it lives.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Duration)> {
        let mut query = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let unavailable = |reason: String| Error::RegistryUnavailable {
            registry: self.registry.clone(),
            reason,
        };
        let mut attempt = 0;
        let answer = loop {
            self.cancel.check("the pull")?;
            let result = match &self.credentials {
                Some(Credentials::IdentityToken(refresh)) => {
                    let mut form = query.clone();
                    form.extend([
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.as_str()),
                        ("client_id", "ocicache"),
                    ]);
                    self.agent.post(realm).send_form(form)
                }
                credentials => {
                    let mut url = realm.to_owned();
                    url.push(if realm.contains('?') { '&' } else { '?' });
                    url.push_str(&encode_query(&query));
                    let mut request = self.agent.get(&url);
                    if let Some(Credentials::Basic { username, password }) = credentials {
                        let basic = base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{password}"));
                        request = request.header("Authorization", format!("Basic {basic}"));
                    }
                    request.call()
                }
            };
            attempt += 1;
            match result {
                Ok(a) if a.status().is_server_error() && attempt < self.retry.attempts => {
                    self.sleep(self.retry.base_delay * 2u32.saturating_pow(attempt - 1))?;
                }
                Ok(a) => break a,
                Err(e) => match self.transport_failure(e) {
                    Failure::Transient(_, _) if attempt < self.retry.attempts => {
                        self.sleep(self.retry.base_delay * 2u32.saturating_pow(attempt - 1))?;
                    }
                    Failure::Transient(e, _) | Failure::Fatal(e) => return Err(e),
                },
            }
        };
        let status = answer.status();
        match status {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED => {
                return Err(Error::RegistryUnauthorized {
                    registry: self.registry.clone(),
                    reason: "the token server refused the credentials".into(),
                });
            }
            StatusCode::FORBIDDEN => {
                return Err(Error::RegistryDenied {
                    registry: self.registry.clone(),
                    repository: self.repository.clone(),
                });
            }
            s => return Err(unavailable(format!("the token server answered {s}"))),
        }
        let body = answer
            .into_body()
            .with_config()
            .limit(ERROR_BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| unavailable(format!("reading the token: {e}")))?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| unavailable("the token server's answer is not a token".into()))?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unavailable("the token server's answer holds no token".into()))?;
        let lifetime = parsed
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Ok((token, lifetime))
    }

    /// What a non-2xx answer means.
    fn status_failure(&self, answer: Answer, reference: &str, endpoint: &Endpoint) -> Failure {
        let status = answer.status();
        let retry_after = answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let registry = self.registry.clone();
        match status {
            StatusCode::UNAUTHORIZED => Failure::Fatal(Error::RegistryUnauthorized {
                registry,
                reason: if self.credentials.is_some() {
                    "the registry refused the credentials".into()
                } else {
                    "the registry wants credentials, and none were given or found in the Docker config".into()
                },
            }),
            StatusCode::FORBIDDEN => Failure::Fatal(Error::RegistryDenied {
                registry,
                repository: self.repository.clone(),
            }),
            StatusCode::NOT_FOUND => Failure::Fatal(Error::ImageNotInRegistry {
                reference: reference.to_owned(),
                registry,
                registry_code: error_code(answer),
            }),
            StatusCode::TOO_MANY_REQUESTS => {
                let error = Error::RegistryRateLimited {
                    registry,
                    retry_after_secs: retry_after,
                };
                match retry_after.map(Duration::from_secs) {
                    Some(wait) if wait > self.retry.max_retry_after => Failure::Fatal(error),
                    wait => Failure::Transient(error, wait),
                }
            }
            s if s.is_server_error() => Failure::Transient(
                Error::RegistryUnavailable {
                    registry,
                    reason: format!("{} answered {s}", endpoint.base),
                },
                None,
            ),
            s => Failure::Fatal(Error::RegistryUnavailable {
                registry,
                reason: format!("{} answered {s}", endpoint.base),
            }),
        }
    }

    /// What a failed exchange (no HTTP answer) means: a TLS failure is final, a network one
    /// transient.
    fn transport_failure(&self, e: ureq::Error) -> Failure {
        let registry = self.registry.clone();
        if let Some(reason) = tls_reason(&e) {
            return Failure::Fatal(Error::RegistryTls { registry, reason });
        }
        Failure::Transient(
            Error::RegistryUnavailable {
                registry,
                reason: e.to_string(),
            },
            None,
        )
    }

    /// Sleeps `how_long`, or until cancelled ([`Error::Aborted`]).
    pub(super) fn sleep(&self, how_long: Duration) -> Result<()> {
        let end = std::time::Instant::now() + how_long;
        loop {
            self.cancel.check("the pull")?;
            let now = std::time::Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep(CANCEL_POLL.min(end - now));
        }
    }
}

/// The certificates of a PEM text ([`Error::InvalidArgument`] `caCerts` when it holds none or
/// does not parse).
pub(super) fn parse_ca_certs(pem: &str) -> Result<Vec<Certificate<'static>>> {
    let invalid = |reason: String| Error::InvalidArgument {
        name: "caCerts".into(),
        reason,
    };
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem.as_bytes()) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(invalid(format!("not PEM certificates: {e}"))),
        }
    }
    if certs.is_empty() {
        return Err(invalid("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// Redirects followed per request (blob storage, a CDN).
const MAX_REDIRECTS: u32 = 10;

/// The TLS problem behind `e`, if it is one.
fn tls_reason(e: &ureq::Error) -> Option<String> {
    match e {
        ureq::Error::Rustls(r) => Some(r.to_string()),
        ureq::Error::Tls(t) => Some((*t).to_owned()),
        ureq::Error::Pem(p) => Some(p.to_string()),
        ureq::Error::Io(io) => {
            let inner = io.get_ref()?;
            inner.downcast_ref::<rustls::Error>().map(|r| r.to_string())
        }
        _ => None,
    }
}

/// The first `errors[].code` of a distribution error body (`MANIFEST_UNKNOWN`, ...).
fn error_code(answer: Answer) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: String,
    }
    let mut bytes = Vec::new();
    answer
        .into_body()
        .into_reader()
        .take(ERROR_BODY_LIMIT)
        .read_to_end(&mut bytes)
        .ok()?;
    let body: Body = serde_json::from_slice(&bytes).ok()?;
    body.errors.into_iter().next().map(|i| i.code)
}

/// `k=v&k=v`, each percent-encoded (RFC 3986 unreserved characters kept).
fn encode_query(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A shared client.
pub(super) type SharedClient = Arc<Client>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            encode_query(&[
                ("scope", "repository:library/busybox:pull"),
                ("service", "a b")
            ]),
            "scope=repository%3Alibrary%2Fbusybox%3Apull&service=a%20b"
        );
    }
}
