//! A token server written for the tests (distribution spec, "Token Authentication
//! Specification"), in front of a real registry configured for token auth
//! ([`super::registry::RegistrySetup::token`]): the registry answers 401 with a `Bearer`
//! challenge naming this server as its realm, and itself verifies the JWTs the server signs
//! (RS256 with a key whose self-signed certificate the registry trusts as its
//! `rootcertbundle`; the certificate rides in the token's `x5c` header). So a client that
//! asks for the wrong scope, drops the token or sends a stale one is refused by the registry,
//! not by a fake.
//!
//! Its policy: `public/*` repositories may be pulled anonymously; every repository may be
//! pulled by a user with the right password; [`TokenServer::ADMIN`] may do anything (it
//! pushes the fixtures). A wrong password is a 401 from the token server; an anonymous request
//! for a private repository gets a token without access (as Docker Hub answers), which the
//! registry then refuses. Every token request is recorded ([`TokenServer::requests`]).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::json;
use tempfile::TempDir;

use super::oracles::run;

/// The `service` the registry names in its challenge and expects as the tokens' audience.
pub const SERVICE: &str = "ocicache-test-registry";
/// The `iss` of the tokens, which the registry checks.
pub const ISSUER: &str = "ocicache-test-token-server";

/// One request the token server answered.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The `scope` parameters (`repository:NAME:ACTIONS`), in order.
    pub scopes: Vec<String>,
    /// The `service` parameter.
    pub service: Option<String>,
    /// The user of the request's basic auth, if it had one.
    pub user: Option<String>,
    /// The HTTP status answered (200, or 401 for a wrong password).
    pub status: u16,
}

/// How long the tokens live.
#[derive(Clone, Copy, Debug)]
pub struct Lifetime {
    /// The `expires_in` the answer tells the client.
    pub expires_in: u64,
    /// The token's `exp` claim, in seconds from now, which the registry checks (with its
    /// 60 s leeway): it may differ from `expires_in`, to hand out a token the registry will
    /// soon refuse while the client believes it good.
    pub exp_in: i64,
}

impl Default for Lifetime {
    fn default() -> Self {
        Lifetime {
            expires_in: 300,
            exp_in: 300,
        }
    }
}

struct State {
    users: Vec<(String, String)>,
    lifetime: Mutex<Lifetime>,
    requests: Mutex<Vec<TokenRequest>>,
    key: RsaKeyPair,
    cert_der: Vec<u8>,
    next_id: AtomicU64,
}

/// A running token server on 127.0.0.1 (stopped when dropped).
pub struct TokenServer {
    /// The realm: `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The PEM certificate of the signing key, for the registry's `rootcertbundle`.
    pub cert: PathBuf,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    _dir: TempDir,
}

impl TokenServer {
    /// The user that may push and pull everything.
    pub const ADMIN: (&'static str, &'static str) = ("admin", "admin-password");

    /// Starts a server for `users` (`user:password` pairs, besides [`TokenServer::ADMIN`]),
    /// with a new RSA key and its self-signed certificate made by `openssl`.
    pub fn start(users: &[(&str, &str)]) -> TokenServer {
        let dir = tempfile::tempdir().unwrap();
        let (key_pem, cert, key_der) = (
            dir.path().join("key.pem"),
            dir.path().join("cert.pem"),
            dir.path().join("key.der"),
        );
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=ocicache test token issuer"])
            .arg("-keyout")
            .arg(&key_pem)
            .arg("-out")
            .arg(&cert));
        run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER"])
            .arg("-in")
            .arg(&key_pem)
            .arg("-out")
            .arg(&key_der));
        let cert_der = run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert))
        .stdout;
        let key = RsaKeyPair::from_pkcs8(&std::fs::read(&key_der).unwrap()).unwrap();
        let mut all: Vec<(String, String)> = users
            .iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        all.push((Self::ADMIN.0.into(), Self::ADMIN.1.into()));
        let state = Arc::new(State {
            users: all,
            lifetime: Mutex::new(Lifetime::default()),
            requests: Mutex::default(),
            key,
            cert_der,
            next_id: AtomicU64::new(1),
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stopped) = (state.clone(), stop.clone());
        thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let st = st.clone();
                        thread::spawn(move || {
                            let _ = serve(conn, &st);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer {
            realm,
            cert,
            state,
            stop,
            _dir: dir,
        }
    }

    /// Sets how long the tokens handed out from now on live.
    pub fn set_lifetime(&self, lifetime: Lifetime) {
        *self.state.lifetime.lock().unwrap() = lifetime;
    }

    /// The token requests answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The token requests answered so far whose only scope is `scope`.
    pub fn requests_for(&self, scope: &str) -> Vec<TokenRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.scopes == [scope])
            .collect()
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        self.state.requests.lock().unwrap().clear();
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `%XX` and `+` decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The actions of `wanted` that `user` (`None`: anonymous) may have on repository `name`.
fn granted(user: Option<&str>, name: &str, wanted: &[&str]) -> Vec<String> {
    let allowed = |action: &str| match user {
        Some(u) if u == TokenServer::ADMIN.0 => true,
        Some(_) => action == "pull",
        None => action == "pull" && name.starts_with("public/"),
    };
    wanted
        .iter()
        .filter(|a| allowed(a))
        .map(|a| a.to_string())
        .collect()
}

/// A signed JWT for `user` with `access`, expiring `exp_in` seconds from now.
fn sign(state: &State, user: Option<&str>, access: serde_json::Value, exp_in: i64) -> String {
    let now = now_secs();
    let header = json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [STANDARD.encode(&state.cert_der)],
    });
    let claims = json!({
        "iss": ISSUER,
        "sub": user.unwrap_or(""),
        "aud": SERVICE,
        "exp": now + exp_in,
        // A second of slack for the registry's clock rounding.
        "nbf": now - 1,
        "iat": now,
        "jti": state.next_id.fetch_add(1, Ordering::Relaxed).to_string(),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0u8; state.key.public().modulus_len()];
    state
        .key
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .unwrap();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn serve(mut conn: TcpStream, state: &State) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let basic = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.trim().strip_prefix("Basic ").map(str::to_owned))
        .and_then(|b| STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mut scopes = Vec::new();
    let mut service = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "scope" => scopes.push(percent_decode(v)),
            "service" => service = Some(percent_decode(v)),
            _ => {}
        }
    }
    let user = basic
        .as_deref()
        .map(|b| b.split_once(':').unwrap_or((b, "")));
    let known = user.is_none_or(|(u, p)| state.users.iter().any(|(uu, pp)| uu == u && pp == p));
    let status = if known { 200 } else { 401 };
    state.requests.lock().unwrap().push(TokenRequest {
        scopes: scopes.clone(),
        service,
        user: user.map(|(u, _)| u.to_owned()),
        status,
    });
    if !known {
        let body = r#"{"details":"wrong user name or password"}"#;
        write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    let user = user.map(|(u, _)| u);
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            // repository:NAME:ACTIONS; NAME may hold a port-less host path but no colon.
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let wanted: Vec<&str> = actions.split(',').collect();
            let actions = if kind == "repository" {
                granted(user, name, &wanted)
            } else {
                Vec::new()
            };
            Some(json!({ "type": kind, "name": name, "actions": actions }))
        })
        .collect();
    let lifetime = *state.lifetime.lock().unwrap();
    let token = sign(state, user, json!(access), lifetime.exp_in);
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": lifetime.expires_in,
    })
    .to_string();
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}
