//! A real CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1 for the pull
//! tests, on a port it picks itself (its log names it), with its storage in a temporary folder,
//! optionally with htpasswd auth, token auth (a [`super::token::TokenServer`]), TLS or as a
//! pull-through cache of another; images are pushed to it with `skopeo copy`. Dropping a
//! [`Registry`] stops it (by its own PID).
//!
//! [`FaultProxy`] is an HTTP proxy written for the tests, in front of a registry: it cuts,
//! stalls, alters, redirects or answers errors to chosen requests, and counts what it serves.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::oracles::run;
use super::require_tool;

/// How long a registry may take to answer `GET /v2/` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Pull options for a plain-HTTP registry on 127.0.0.1 with `credentials`: linux/amd64, no
/// mirrors, no Docker config, quick retries.
pub fn insecure_pull(
    credentials: Option<ocicache_core::registry::Credentials>,
) -> ocicache_core::PullOptions {
    use ocicache_core::registry::{RegistryConfig, RegistryOptions, RetryPolicy};
    ocicache_core::PullOptions {
        platform: Some(ocicache_core::oci::Platform::parse("linux/amd64").unwrap()),
        registry: RegistryOptions {
            insecure: true,
            credentials,
            config: Some(RegistryConfig::default()),
            retry: RetryPolicy {
                attempts: 3,
                base_delay: Duration::from_millis(20),
                max_retry_after: Duration::from_secs(2),
            },
            ..RegistryOptions::default()
        },
        ..ocicache_core::PullOptions::default()
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released: another process may take it before it
/// is used, so only for addresses that nothing should answer on).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the registry tests can run: `docker-registry` and `skopeo` (fails under CI when
/// missing, skips visibly elsewhere).
pub fn registry_tools() -> bool {
    require_tool("docker-registry") && require_tool("skopeo")
}

/// How to start a registry.
#[derive(Default)]
pub struct RegistrySetup {
    /// `user:password` pairs for htpasswd (bcrypt) auth.
    pub users: Vec<(String, String)>,
    /// Serve HTTPS with a certificate for 127.0.0.1 signed by this CA.
    pub tls: Option<TestCa>,
    /// A pull-through cache of this URL.
    pub proxy_of: Option<String>,
    /// Token (bearer) auth: the registry sends clients to this token server and verifies the
    /// JWTs it signs.
    pub token: Option<TokenAuth>,
}

/// What a registry needs for token auth: the token server's realm and the certificate of its
/// signing key.
#[derive(Clone, Debug)]
pub struct TokenAuth {
    /// `http://127.0.0.1:PORT/token`.
    pub realm: String,
    /// The PEM certificate the registry trusts (`rootcertbundle`).
    pub cert: PathBuf,
}

impl From<&super::token::TokenServer> for TokenAuth {
    fn from(server: &super::token::TokenServer) -> Self {
        TokenAuth {
            realm: server.realm.clone(),
            cert: server.cert.clone(),
        }
    }
}

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    dir: TempDir,
    tls: bool,
}

impl Registry {
    /// A plain-HTTP registry without auth.
    pub fn start() -> Registry {
        Registry::start_with(RegistrySetup::default())
    }

    /// A registry as `setup` says.
    pub fn start_with(setup: RegistrySetup) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        // The registry binds port 0 itself and its log names the port it got (an info
        // message): a port picked here and handed over could be taken in between by another
        // process's registry, which would then answer for this one.
        let mut config = String::from(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: /unused\nhttp:\n  addr: 127.0.0.1:0\n",
        );
        let mut cmd = Command::new("docker-registry");
        cmd.env(
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
            dir.path().join("data"),
        )
        .env("REGISTRY_HTTP_SECRET", "test");
        if !setup.users.is_empty() {
            let mut lines = String::new();
            for (u, p) in &setup.users {
                let out = run(Command::new("htpasswd").args(["-nbB", u, p]));
                lines.push_str(String::from_utf8_lossy(&out.stdout).trim());
                lines.push('\n');
            }
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, lines).unwrap();
            config.push_str("auth:\n  htpasswd:\n    realm: test\n    path: /unused\n");
            cmd.env("REGISTRY_AUTH_HTPASSWD_PATH", &file);
        }
        if let Some(token) = &setup.token {
            // The file lives in the test's temporary folder, so it may name this run's paths.
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm,
                super::token::SERVICE,
                super::token::ISSUER,
                token.cert.display()
            ));
        }
        if let Some(ca) = &setup.tls {
            let (cert, key) = ca.issue(dir.path());
            cmd.env("REGISTRY_HTTP_TLS_CERTIFICATE", cert)
                .env("REGISTRY_HTTP_TLS_KEY", key);
        }
        if let Some(url) = &setup.proxy_of {
            cmd.env("REGISTRY_PROXY_REMOTEURL", url);
        }
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let log_file = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_file).unwrap();
        cmd.arg("serve")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = cmd.spawn().expect("start docker-registry");
        let host = match wait_listening(&mut child, &log_file) {
            Ok(host) => host,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{why}");
            }
        };
        Registry {
            child,
            host,
            dir,
            tls: setup.tls.is_some(),
        }
    }

    /// `http://HOST` or `https://HOST`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.host
        )
    }

    /// Pushes `source` (a skopeo transport: `oci:DIR:TAG`) as `HOST/<name>` with `args` (such
    /// as `--dest-compress-format zstd`, `--all`, `--format v2s2`).
    pub fn push(&self, source: &str, name: &str, args: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"])
            .args(args)
            .arg(source)
            .arg(format!("docker://{}/{name}", self.host));
        run(&mut cmd);
    }

    /// The registry's storage folder.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// The `127.0.0.1:PORT` a starting registry reports in its log (`listening on ADDR`), once it
/// listens; an error when it exits first or says nothing within [`START_TIMEOUT`].
fn wait_listening(child: &mut Child, log_file: &Path) -> Result<String, String> {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(log_file).unwrap_or_default();
        if let Some(addr) = log
            .split("listening on ")
            .nth(1)
            .map(|rest| {
                // `listening on 127.0.0.1:PORT` (`, tls` follows with TLS).
                rest.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                    .next()
                    .unwrap_or_default()
            })
            .filter(|addr| addr.contains(':'))
        {
            return Ok(addr.to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "docker-registry exited ({status}) before listening:\n{log}"
            ));
        }
        if start.elapsed() > START_TIMEOUT {
            return Err(format!(
                "docker-registry reported no address in {START_TIMEOUT:?}:\n{log}"
            ));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority made with `openssl` for one test.
#[derive(Clone)]
pub struct TestCa {
    dir: Arc<TempDir>,
}

impl TestCa {
    /// A new CA (its key and self-signed certificate).
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=ocicache test CA"])
            .arg("-keyout")
            .arg(dir.path().join("ca.key"))
            .arg("-out")
            .arg(dir.path().join("ca.pem")));
        TestCa { dir: Arc::new(dir) }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.pem")).unwrap()
    }

    /// A server certificate for 127.0.0.1 signed by the CA, written into `dir`: (cert, key).
    pub fn issue(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let (key, csr, cert, ext) = (
            dir.join("server.key"),
            dir.join("server.csr"),
            dir.join("server.pem"),
            dir.join("ext.cnf"),
        );
        std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(self.dir.path().join("ca.pem"))
            .arg("-CAkey")
            .arg(self.dir.path().join("ca.key"))
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert));
        (cert, key)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// What the proxy does to a request whose path contains `path_part`.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Sends the answer's head and `after` bytes of its body, then closes.
    Cut { after: usize },
    /// Answers `status` (with `Retry-After: retry_after` when given), nothing forwarded.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Sends the head and `after` bytes of the body, then sends nothing for `for_how_long`.
    Stall {
        after: usize,
        for_how_long: Duration,
    },
    /// Flips the body's byte at `offset`.
    Alter { offset: usize },
    /// Answers 307 to the same path on `to` (`http://HOST:PORT`).
    Redirect { to: String },
    /// Forwards the request without its `Range` header (a server that ignores `Range`: 200
    /// with every byte).
    IgnoreRange,
    /// Waits `for_how_long` before forwarding.
    Delay { for_how_long: Duration },
    /// Sends the body at about `bytes_per_sec` (a slow link).
    Throttle { bytes_per_sec: usize },
}

/// A rule: a fault for requests whose path contains `path_part`, the next `times` of them.
#[derive(Clone, Debug)]
pub struct Rule {
    pub path_part: String,
    pub fault: Fault,
    pub times: usize,
}

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

/// Counts of what the proxy serves.
#[derive(Default)]
struct Counters {
    /// Blob requests being answered now, and the most at once so far.
    blobs_in_flight: usize,
    max_blobs_in_flight: usize,
    /// Body bytes sent, by request path.
    body_bytes: HashMap<String, u64>,
}

/// A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of `upstream` (`HOST:PORT`, plain
/// HTTP). Each connection carries one request (answers are sent with `Connection: close`).
pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    counters: Arc<Mutex<Counters>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`, listening on `bind` (`127.0.0.1` or another loopback
    /// address such as `127.0.0.2`, which is another host to a client).
    pub fn start(upstream: &str, bind: &str) -> FaultProxy {
        let listener = TcpListener::bind(format!("{bind}:0")).unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let counters: Arc<Mutex<Counters>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, c, st, up) = (
            rules.clone(),
            seen.clone(),
            counters.clone(),
            stop.clone(),
            upstream.to_owned(),
        );
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let (r, s, c, up) = (r.clone(), s.clone(), c.clone(), up.clone());
                        thread::spawn(move || {
                            let _ = serve(conn, &up, &r, &s, &c);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FaultProxy {
            host,
            rules,
            seen,
            counters,
            stop,
        }
    }

    /// The most blob requests (`/blobs/` paths) it answered at once so far.
    pub fn max_blobs_in_flight(&self) -> usize {
        self.counters.lock().unwrap().max_blobs_in_flight
    }

    /// Body bytes it sent so far for requests whose path contains `path_part`.
    pub fn body_bytes(&self, path_part: &str) -> u64 {
        let counters = self.counters.lock().unwrap();
        (counters.body_bytes.iter())
            .filter(|(p, _)| p.contains(path_part))
            .map(|(_, n)| n)
            .sum()
    }

    /// Adds a rule.
    pub fn fault(&self, path_part: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            path_part: path_part.into(),
            fault,
            times,
        });
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads an HTTP head (up to the blank line); returns it and any body bytes read past it.
fn read_head(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok((head, buf[end + 4..].to_vec()));
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn serve(
    conn: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    seen: &Mutex<Vec<Seen>>,
    counters: &Mutex<Counters>,
) -> std::io::Result<()> {
    let mut conn = Counted {
        conn,
        path: String::new(),
        counters,
        blob: false,
    };
    let result = serve_counted(&mut conn, upstream, rules, seen);
    if conn.blob {
        conn.counters.lock().unwrap().blobs_in_flight -= 1;
    }
    result
}

/// The client connection, counting the body bytes written to it (everything after the head).
struct Counted<'a> {
    conn: TcpStream,
    path: String,
    counters: &'a Mutex<Counters>,
    blob: bool,
}

impl Counted<'_> {
    fn read_head(&mut self) -> std::io::Result<(String, Vec<u8>)> {
        read_head(&mut self.conn)
    }

    fn write_head(&mut self, head: &[u8]) -> std::io::Result<()> {
        self.conn.write_all(head)
    }

    fn shutdown(&self) -> std::io::Result<()> {
        self.conn.shutdown(Shutdown::Both)
    }
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.conn.write(buf)?;
        *self
            .counters
            .lock()
            .unwrap()
            .body_bytes
            .entry(self.path.clone())
            .or_default() += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.conn.flush()
    }
}

fn serve_counted(
    conn: &mut Counted<'_>,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let (head, _) = conn.read_head()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
    });
    conn.path = path.clone();
    if path.contains("/blobs/") {
        let mut c = conn.counters.lock().unwrap();
        c.blobs_in_flight += 1;
        c.max_blobs_in_flight = c.max_blobs_in_flight.max(c.blobs_in_flight);
        conn.blob = true;
    }
    let fault = {
        let mut rules = rules.lock().unwrap();
        let hit = rules
            .iter_mut()
            .find(|r| r.times > 0 && path.contains(&r.path_part));
        hit.map(|r| {
            r.times -= 1;
            r.fault.clone()
        })
    };
    match &fault {
        Some(Fault::Status {
            status,
            retry_after,
        }) => {
            let extra = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            conn.write_head(
                format!(
                    "HTTP/1.1 {status} Fault\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )?;
            return Ok(());
        }
        Some(Fault::Redirect { to }) => {
            conn.write_head(
                format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )?;
            return Ok(());
        }
        Some(Fault::Delay { for_how_long }) => thread::sleep(*for_how_long),
        _ => {}
    }
    let ignore_range = matches!(fault, Some(Fault::IgnoreRange));
    // Forward the request, asking for one answer per connection.
    let mut up = TcpStream::connect(upstream)?;
    let mut forward = format!("{request_line}\r\n");
    for (k, v) in &headers {
        if k != "connection" && k != "host" && !(ignore_range && k == "range") {
            forward.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    forward.push_str(&format!("host: {upstream}\r\nconnection: close\r\n\r\n"));
    up.write_all(forward.as_bytes())?;
    let (up_head, mut body) = read_head(&mut up)?;
    let mut out_head = String::new();
    for line in up_head.split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out_head.push_str(line);
            out_head.push_str("\r\n");
        }
    }
    out_head.push_str("Connection: close\r\n\r\n");
    conn.write_head(out_head.as_bytes())?;
    up.read_to_end(&mut body)?;
    match fault {
        Some(Fault::Cut { after }) => {
            conn.write_all(&body[..after.min(body.len())])?;
            conn.flush()?;
            conn.shutdown()?;
        }
        Some(Fault::Stall {
            after,
            for_how_long,
        }) => {
            conn.write_all(&body[..after.min(body.len())])?;
            conn.flush()?;
            thread::sleep(for_how_long);
        }
        Some(Fault::Alter { offset }) => {
            if let Some(b) = body.get_mut(offset) {
                *b ^= 0xff;
            }
            conn.write_all(&body)?;
        }
        Some(Fault::Throttle { bytes_per_sec }) => {
            const STEP: usize = 16 * 1024;
            for piece in body.chunks(STEP) {
                conn.write_all(piece)?;
                conn.flush()?;
                thread::sleep(Duration::from_secs_f64(
                    piece.len() as f64 / bytes_per_sec.max(1) as f64,
                ));
            }
        }
        _ => conn.write_all(&body)?,
    }
    Ok(())
}
