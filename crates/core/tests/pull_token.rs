//! The bearer token flow (distribution spec, "Token Authentication Specification") against a
//! real registry configured for token auth and a token server written for the tests
//! (`common::token`): the registry itself verifies every JWT, its signature, issuer, audience,
//! expiry and the repository and actions it grants. Anonymous tokens, tokens for credentials,
//! wrong credentials, tokens that expire during a pull, and the scope asked per repository.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::registry::*;
use common::token::{Lifetime, SERVICE, TokenServer};
use common::*;
use ocicache_core::progress::{Progress, ProgressEvent};
use ocicache_core::registry::Credentials;
use ocicache_core::{Cache, PullOptions};

/// Pull options for a plain-HTTP registry on 127.0.0.1 with `credentials`, no mirrors, no
/// Docker config, quick retries.
fn options(credentials: Option<Credentials>) -> PullOptions {
    insecure_pull(credentials)
}

fn basic(username: &str, password: &str) -> Option<Credentials> {
    Some(Credentials::Basic {
        username: username.into(),
        password: password.into(),
    })
}

/// The cache holds no reference and no layer image, and `tmp/` is empty.
fn assert_untouched(root: &Path, cache: &Cache) {
    assert!(cache.list().unwrap().is_empty());
    for kind in ["layers", "fsmeta", "vmdk"] {
        let files: Vec<PathBuf> = fs::read_dir(root.join(kind).join("sha256"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(files.is_empty(), "{kind}/ holds {files:?}");
    }
    let tmp: Vec<PathBuf> = fs::read_dir(root.join("tmp"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "tmp/ holds {tmp:?}");
}

/// A token server and a registry that trusts it, holding `public/app:1` and `private/app:1`
/// (pushed by skopeo through the same token flow, as the admin).
struct Setup {
    tokens: TokenServer,
    registry: Registry,
    _layout: tempfile::TempDir,
}

impl Setup {
    fn start() -> Option<Setup> {
        if !registry_tools() || !require_tool("openssl") {
            return None;
        }
        let tokens = TokenServer::start(&[("alice", "secret")]);
        let registry = Registry::start_with(RegistrySetup {
            token: Some((&tokens).into()),
            ..RegistrySetup::default()
        });
        let image = ImageSpec::sample(Compression::Gzip, "token").build();
        let layout = tempfile::tempdir().unwrap();
        let mut oci = OciLayout::new();
        oci.add_image(&image, &[(REF_NAME, "t")]);
        oci.write_dir(layout.path());
        let source = format!("oci:{}:t", layout.path().display());
        let admin = format!("{}:{}", TokenServer::ADMIN.0, TokenServer::ADMIN.1);
        for name in ["public/app:1", "private/app:1"] {
            registry.push(&source, name, &["--dest-creds", &admin]);
        }
        tokens.clear();
        Some(Setup {
            tokens,
            registry,
            _layout: layout,
        })
    }

    fn reference(&self, name: &str) -> String {
        format!("{}/{name}", self.registry.host)
    }
}

/// A public repository pulls with an anonymous token; a private one is REGISTRY_UNAUTHORIZED
/// without credentials (the token grants nothing, and the registry refuses it) and with a
/// wrong password (the token server refuses it), leaving the cache as it was; with the right
/// password it pulls, the password going to the token server only. Each pull asks for a token
/// scoped to its own repository, for the registry's service.
#[test]
fn anonymous_tokens_tokens_for_credentials_and_wrong_credentials() {
    let Some(setup) = Setup::start() else {
        return;
    };
    let public = setup.reference("public/app:1");
    let private = setup.reference("private/app:1");

    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let err = cache.pull(&private, &options(None)).unwrap_err();
    assert_eq!(err.code(), "REGISTRY_UNAUTHORIZED", "{err}");
    let err = cache
        .pull(&private, &options(basic("alice", "wrong")))
        .unwrap_err();
    assert_eq!(err.code(), "REGISTRY_UNAUTHORIZED", "{err}");
    assert_untouched(root.path(), &cache);
    let seen = setup.tokens.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].user, None);
    assert_eq!(seen[0].status, 200, "an anonymous token without access");
    assert_eq!(seen[1].user.as_deref(), Some("alice"));
    assert_eq!(seen[1].status, 401, "the token server refused the password");

    setup.tokens.clear();
    let handle = cache.pull(&public, &options(None)).unwrap();
    assert_eq!(handle.layer_count, 2);
    let seen = setup.tokens.requests();
    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!(r.scopes, ["repository:public/app:pull"], "{seen:?}");
        assert_eq!(r.service.as_deref(), Some(SERVICE));
        assert_eq!(r.user, None);
    }

    setup.tokens.clear();
    let handle = cache
        .pull(&private, &options(basic("alice", "secret")))
        .unwrap();
    assert_eq!(handle.layer_count, 2);
    assert!(cache.boot_disk(&private).unwrap().vmdk.is_file());
    let seen = setup.tokens.requests();
    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!(r.scopes, ["repository:private/app:pull"], "{seen:?}");
        assert_eq!(r.user.as_deref(), Some("alice"));
        assert_eq!(r.status, 200);
    }
    // The same layers were cached by the public pull: only the manifest and config were
    // fetched, with one token.
    assert_eq!(seen.len(), 1, "{seen:?}");
}

/// A sink that sleeps `pause` once the manifest and config are resolved, before any layer is
/// downloaded: the pull outlives the token it started with.
fn pausing_after_resolve(pause: Duration) -> Progress {
    Progress::new(move |e: &ProgressEvent| {
        if matches!(e, ProgressEvent::Resolved { .. }) {
            std::thread::sleep(pause);
        }
    })
}

/// A pull that outlives its token gets a new one: when the client knows it expired
/// (`expires_in`), and when only the registry knows (the JWT's `exp` passed while the answer
/// promised longer: the registry's 401 to the cached token is answered with a new token, not
/// reported). Either way the token server sees a second request for the scope.
#[test]
fn expired_tokens_are_renewed_during_a_pull() {
    let Some(setup) = Setup::start() else {
        return;
    };
    let public = setup.reference("public/app:1");
    let scope = "repository:public/app:pull";

    // The client renews a token 5 s before `expires_in` runs out: 7 s leaves it 2 s.
    setup.tokens.set_lifetime(Lifetime {
        expires_in: 7,
        exp_in: 300,
    });
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    cache
        .pull(
            &public,
            &PullOptions {
                progress: Some(pausing_after_resolve(Duration::from_secs(3))),
                ..options(None)
            },
        )
        .unwrap();
    let seen = setup.tokens.requests_for(scope);
    assert!(seen.len() >= 2, "no token renewed: {seen:?}");

    // The registry honours a JWT for 60 s past its `exp` (its leeway): `exp` 57 s ago leaves
    // it 2 to 3 s, while `expires_in` says 300 s; the pause outlasts it.
    setup.tokens.clear();
    setup.tokens.set_lifetime(Lifetime {
        expires_in: 300,
        exp_in: -57,
    });
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    cache
        .pull(
            &public,
            &PullOptions {
                progress: Some(pausing_after_resolve(Duration::from_secs(4))),
                ..options(None)
            },
        )
        .unwrap();
    let seen = setup.tokens.requests_for(scope);
    assert!(seen.len() >= 2, "no token renewed: {seen:?}");
}

/// Regression: a token server that answers `expires_in` shorter than the client's renewal
/// margin (5 s; the spec asks for at least 60 s, not every server complies) made every pull
/// fail with REGISTRY_UNAUTHORIZED: the token just fetched counted as expired before its first
/// use, so the retry went out without it and its 401 was final.
#[test]
fn a_token_shorter_lived_than_the_renewal_margin_is_still_used() {
    let Some(setup) = Setup::start() else {
        return;
    };
    setup.tokens.set_lifetime(Lifetime {
        expires_in: 2,
        exp_in: 300,
    });
    let root = tempfile::tempdir().unwrap();
    let cache = open(root.path());
    let handle = cache
        .pull(&setup.reference("public/app:1"), &options(None))
        .unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    assert_eq!(handle.layer_count, 2);
}
