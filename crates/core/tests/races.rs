//! Races between `acquire` and the deleting operations (`remove`, `prune`), within one process
//! and across many.
//!
//! The regression tests pause a deleting or acquiring call at the index's write lock: a second
//! SQLite connection (standing in for another process) takes the lock, changes the index the
//! way the racing call would, and commits while the call waits. Whatever a call decides must be
//! decided inside the transaction that acts on it, so the outcome is the same however the two
//! interleave.
//!
//! The stress test re-executes this binary as eight worker processes
//! (`OCICACHE_RACE_WORKER`) that acquire, release, remove and prune on one cache root in rounds
//! (seeded; the seed is printed), then checks after each round that every call ended in success
//! or a documented code, and that every use acquired and not released still has its manifest,
//! config, layers, fsmeta and VMDK in the index and on disk.
#![allow(clippy::unwrap_used, reason = "tests")]
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use ocicache_core::{Cache, Holder, LoadOptions, PruneOptions};
use rusqlite::{Connection, OptionalExtension, params};

const WORKER: &str = "OCICACHE_RACE_WORKER";
const ROOT: &str = "OCICACHE_RACE_ROOT";
const REFS: &str = "OCICACHE_RACE_REFS";
/// Reports of the worker protocol start with this (libtest prints on stdout too).
const TAG: &str = "@race";
/// How long a paused call is given to reach the index's write lock before the other
/// connection commits: far more than the few SQL statements it runs before that.
const PAUSE: Duration = Duration::from_millis(400);

/// A small xorshift generator: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn seeded(var: &str) -> (Self, u64) {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Rng(seed), seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One image of the fixtures: its archive, references and what the index must hold for it.
struct Fixture {
    archive: PathBuf,
    tag: String,
    alias: Option<String>,
    manifest: String,
    config: String,
    diff_ids: Vec<String>,
}

/// Four small images sharing a base layer; the first two get a second tag, so a manifest can
/// have several references.
fn fixtures(dir: &Path) -> Vec<Fixture> {
    let base = LayerSpec::file(Compression::Gzip, "etc/base", &"shared base\n".repeat(50));
    (0..4)
        .map(|i| {
            let own = LayerSpec::file(
                Compression::Gzip,
                &format!("app/{i}.txt"),
                &format!("app {i}\n").repeat(100 + i),
            );
            let image = ImageSpec::new("amd64", vec![base.clone(), own])
                .with_cmd(&format!("app{i}"))
                .build();
            let tag = format!("example.com/race/app{i}:1");
            let mut layout = OciLayout::new();
            layout.add_image(&image, &[(CONTAINERD_NAME, &tag)]);
            let archive = dir.join(format!("app{i}.tar"));
            fs::write(&archive, layout.to_tar()).unwrap();
            Fixture {
                archive,
                alias: (i < 2).then(|| format!("example.com/race/app{i}:alias")),
                tag,
                manifest: image.manifest_digest.clone(),
                config: image.config_digest.clone(),
                diff_ids: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
            }
        })
        .collect()
}

/// Loads every fixture (again): references that a remove or prune took come back.
fn load_all(cache: &Cache, fixtures: &[Fixture]) {
    for f in fixtures {
        let options = LoadOptions {
            tag: f.alias.clone(),
            ..LoadOptions::default()
        };
        cache.load(&f.archive, &options).unwrap();
    }
}

/// The references the workers use: every tag, and a digest reference per image.
fn references(fixtures: &[Fixture]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fixtures {
        out.push(f.tag.clone());
        out.extend(f.alias.clone());
        let name = f.tag.rsplit_once(':').unwrap().0;
        out.push(format!("{name}@{}", f.manifest));
    }
    out
}

/// A second connection to the cache's index, standing in for another process.
fn other_process(root: &Path) -> Connection {
    let conn = Connection::open(root.join("index.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(60)).unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    conn
}

/// SQL: the row id of the blob (manifest, config) whose `sha256:<hex>` digest is `?1` (the
/// index stores a digest once, as its 32 bytes, and names rows by id).
const BLOB_ID: &str = "(SELECT id FROM blobs WHERE digest = unhex(substr(?1, 8)))";

/// SQL: a stored digest (`column`) as `sha256:<hex>`.
fn digest_text(column: &str) -> String {
    format!("'sha256:' || lower(hex({column}))")
}

/// What a prune deleting `manifest` does to the index (its files stay: orphans are harmless).
fn delete_manifest(conn: &Connection, manifest: &str) {
    for sql in [
        format!("DELETE FROM image_refs WHERE manifest_id = {BLOB_ID}"),
        format!("DELETE FROM uses WHERE manifest_id = {BLOB_ID}"),
        format!("DELETE FROM manifest_layers WHERE manifest_id = {BLOB_ID}"),
        format!("DELETE FROM manifests WHERE id = {BLOB_ID}"),
    ] {
        conn.execute(&sql, [manifest]).unwrap();
    }
}

/// What an acquire of `reference` by `holder` does to the index.
fn insert_use(conn: &Connection, reference: &str, manifest: &str, holder: &str) {
    conn.execute(
        &format!(
            "INSERT INTO uses (id, holder_kind, holder_id, reference, manifest_id, since, expires_at)
             VALUES (?2, 'sandbox', ?3, ?4, {BLOB_ID}, 0, NULL)"
        ),
        params![manifest, format!("use-{holder}"), holder, reference],
    )
    .unwrap();
}

/// Regression: `acquire` resolved the reference, then inserted the use in a second
/// transaction; a prune or remove in another process that deleted the manifest in between made
/// the insert fail with `INDEX` ("FOREIGN KEY constraint failed") instead of `IMAGE_NOT_FOUND`.
#[test]
fn acquire_racing_a_manifest_delete_fails_with_image_not_found() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let fixtures = fixtures(work.path());
    let cache = open(&root);
    load_all(&cache, &fixtures[..1]);
    let f = &fixtures[0];
    let other = other_process(&root);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let acquiring = std::thread::scope(|s| {
        let acquiring = s.spawn(|| cache.acquire(&f.tag, Holder::Sandbox("late".into())));
        std::thread::sleep(PAUSE);
        delete_manifest(&other, &f.manifest);
        other.execute_batch("COMMIT").unwrap();
        acquiring.join().unwrap()
    });
    match acquiring {
        Err(e) => assert_eq!(e.code(), "IMAGE_NOT_FOUND", "{e}"),
        Ok(u) => panic!("acquired {u:?} of a deleted manifest"),
    }
    assert!(cache.uses(None).unwrap().is_empty());
}

/// Regression: `prune` read its candidates before the transaction that deletes them; a use
/// acquired in another process in between did not save its reference, which the prune then
/// deleted though the image was in use.
#[test]
fn prune_racing_an_acquire_keeps_the_acquired_reference() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let fixtures = fixtures(work.path());
    let cache = open(&root);
    load_all(&cache, &fixtures[..2]);
    let (pinned, unpinned) = (&fixtures[0], &fixtures[1]);
    let other = other_process(&root);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let report = std::thread::scope(|s| {
        let pruning = s.spawn(|| cache.prune());
        std::thread::sleep(PAUSE);
        insert_use(&other, &pinned.tag, &pinned.manifest, "racer");
        other.execute_batch("COMMIT").unwrap();
        pruning.join().unwrap().unwrap()
    });
    let removed: BTreeSet<String> = report.removed.iter().map(|r| r.reference.clone()).collect();
    let listed: BTreeSet<String> = cache
        .list()
        .unwrap()
        .into_iter()
        .map(|h| h.reference)
        .collect();
    // The pinned image keeps every reference; the other goes whole.
    let mut want: BTreeSet<String> = [pinned.tag.clone()].into();
    want.extend(pinned.alias.clone());
    assert_eq!(listed, want, "prune removed {removed:?}");
    assert!(removed.contains(&unpinned.tag), "{removed:?}");
    assert!(!removed.contains(&pinned.tag), "{removed:?}");
    check_manifest(&root, pinned).unwrap();
}

/// Regression: `remove` checked the holders before the transaction that deletes; a use
/// acquired in another process in between did not stop it, and the reference of an image in
/// use was removed without `force`.
#[test]
fn remove_racing_an_acquire_fails_with_image_in_use() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let fixtures = fixtures(work.path());
    let cache = open(&root);
    load_all(&cache, &fixtures[..1]);
    let f = &fixtures[0];
    let other = other_process(&root);
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let removing = std::thread::scope(|s| {
        let removing = s.spawn(|| cache.remove(&f.tag, false));
        std::thread::sleep(PAUSE);
        insert_use(&other, &f.tag, &f.manifest, "racer");
        other.execute_batch("COMMIT").unwrap();
        removing.join().unwrap()
    });
    match removing {
        Err(e) => assert_eq!(e.code(), "IMAGE_IN_USE", "{e}"),
        Ok(r) => panic!("removed an image in use: {r:?}"),
    }
    assert_eq!(cache.get(&f.tag).unwrap().reference, f.tag);
    check_manifest(&root, f).unwrap();
}

/// Checks that the index records `f`'s manifest, config, layers, fsmeta and VMDK, and that each
/// file is on disk with its recorded size (the manifest and config blobs also match their
/// digests).
fn check_manifest(root: &Path, f: &Fixture) -> Result<(), String> {
    let conn = Connection::open(root.join("index.db")).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(60)).unwrap();
    let m = &f.manifest;
    let row: Option<(String, Option<i64>, Option<i64>)> = conn
        .query_row(
            &format!(
                "SELECT {}, m.fsmeta_size, m.vmdk_size FROM manifests m
                 JOIN blobs c ON c.id = m.config_id WHERE m.id = {BLOB_ID}",
                digest_text("c.digest")
            ),
            [m],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .unwrap();
    let Some((config, fsmeta_size, vmdk_size)) = row else {
        return Err(format!("manifest {m} is not in the index"));
    };
    if config != f.config {
        return Err(format!("manifest {m} names config {config}"));
    }
    let file = |path: PathBuf, want: Option<i64>| -> Result<(), String> {
        let len = fs::symlink_metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        match want {
            Some(w) if w as u64 == len => Ok(()),
            _ => Err(format!(
                "{}: {len} bytes, recorded {want:?}",
                path.display()
            )),
        }
    };
    for digest in [m, &f.config] {
        let size: Option<i64> = conn
            .query_row(
                &format!("SELECT size FROM blobs WHERE id = {BLOB_ID}"),
                [digest],
                |r| r.get(0),
            )
            .optional()
            .unwrap();
        let path = root.join("blobs/sha256").join(hex_of(digest));
        file(path.clone(), size)?;
        if sha256(&fs::read(&path).unwrap()) != *digest {
            return Err(format!("blob {digest} does not match its digest"));
        }
    }
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {}, l.erofs_size FROM manifest_layers ml
                 JOIN layers l ON l.id = ml.layer_id WHERE ml.manifest_id = {BLOB_ID}
                 ORDER BY ml.position",
            digest_text("l.diff_id")
        ))
        .unwrap();
    let layers: Vec<(String, Option<i64>)> = stmt
        .query_map([m], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let diff_ids: Vec<&String> = layers.iter().map(|(d, _)| d).collect();
    if diff_ids != f.diff_ids.iter().collect::<Vec<_>>() {
        return Err(format!("manifest {m} has layers {diff_ids:?}"));
    }
    for (diff_id, size) in &layers {
        let path = root
            .join("layers/sha256")
            .join(format!("{}.erofs", hex_of(diff_id)));
        file(path, *size)?;
    }
    file(
        root.join("fsmeta/sha256")
            .join(format!("{}.erofs", hex_of(m))),
        fsmeta_size,
    )?;
    file(
        root.join("vmdk/sha256").join(format!("{}.vmdk", hex_of(m))),
        vmdk_size,
    )?;
    Ok(())
}

/// Whether the index holds use `id`.
fn use_recorded(root: &Path, id: &str) -> bool {
    let conn = Connection::open(root.join("index.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(60)).unwrap();
    conn.query_row("SELECT 1 FROM uses WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .unwrap()
        .is_some()
}

/// Operations each worker runs per round.
const OPS_PER_ROUND: usize = 4;

/// The worker entry point: does nothing unless started as a worker. Reads a seed per line on
/// stdin, runs [`OPS_PER_ROUND`] random operations, and reports each on stdout:
///
/// ```text
/// @race acquire <ref> ok <use id> <manifest>   @race acquire <ref> err <CODE>
/// @race release <use id>                        @race remove <ref> ok|err <CODE>
/// @race prune ok|err <CODE>                     @race done
/// ```
#[test]
fn race_worker() {
    let Ok(worker) = std::env::var(WORKER) else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT).unwrap());
    let refs: Vec<String> = std::env::var(REFS)
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let cache = open(&root);
    let mut out = std::io::stdout();
    let mut live: Vec<String> = Vec::new();
    let mut acquired = 0u64;
    for line in std::io::stdin().lock().lines() {
        let mut rng = Rng(line.unwrap().trim().parse::<u64>().unwrap() | 1);
        for _ in 0..OPS_PER_ROUND {
            let reference = &refs[rng.below(refs.len() as u64) as usize];
            let report = match rng.below(100) {
                0..45 => {
                    acquired += 1;
                    let holder = Holder::Sandbox(format!("w{worker}-{acquired}"));
                    match cache.acquire(reference, holder) {
                        Ok(u) => {
                            live.push(u.id.clone());
                            format!("acquire {reference} ok {} {}", u.id, u.manifest_digest)
                        }
                        Err(e) => format!("acquire {reference} err {}", e.code()),
                    }
                }
                45..60 if !live.is_empty() => {
                    let id = live.swap_remove(rng.below(live.len() as u64) as usize);
                    match cache.release(&id) {
                        Ok(()) => format!("release {id}"),
                        Err(e) => format!("release {id} err {}", e.code()),
                    }
                }
                45..80 => {
                    let force = rng.below(2) == 0;
                    match cache.remove(reference, force) {
                        Ok(_) => format!("remove {reference} ok"),
                        Err(e) => format!("remove {reference} err {}", e.code()),
                    }
                }
                _ => {
                    let options = match rng.below(4) {
                        0 => PruneOptions {
                            dry_run: true,
                            ..PruneOptions::default()
                        },
                        1 => PruneOptions {
                            keep: vec![reference.clone()],
                            ..PruneOptions::default()
                        },
                        2 => PruneOptions {
                            max_bytes: Some(rng.below(200_000)),
                            ..PruneOptions::default()
                        },
                        _ => PruneOptions::default(),
                    };
                    match cache.prune_with(&options) {
                        Ok(_) => "prune ok".to_owned(),
                        Err(e) => format!("prune err {}", e.code()),
                    }
                }
            };
            writeln!(out, "{TAG} {report}").unwrap();
        }
        writeln!(out, "{TAG} done").unwrap();
        out.flush().unwrap();
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn spawn_worker(n: usize, root: &Path, refs: &[String]) -> Worker {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "race_worker",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(WORKER, n.to_string())
        .env(ROOT, root)
        .env(REFS, refs.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Worker {
        stdin: child.stdin.take().unwrap(),
        stdout: BufReader::new(child.stdout.take().unwrap()),
        child,
    }
}

/// Outcomes by operation and result (`acquire ok`, `remove IMAGE_IN_USE`, ...).
type Tally = BTreeMap<String, u64>;

/// Reads one worker's report of a round: updates the live uses (id -> manifest), counts the
/// outcomes, and returns the calls that ended in an undocumented way.
fn read_round(
    w: &mut Worker,
    live: &mut BTreeMap<String, String>,
    tally: &mut Tally,
) -> Vec<String> {
    let mut bad = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            w.stdout.read_line(&mut line).unwrap() > 0,
            "a worker exited mid-round"
        );
        // libtest's own output shares the pipe, and starts the first report's line with
        // "test race_worker ... ".
        let Some((_, report)) = line.trim_end().split_once(TAG) else {
            continue;
        };
        let words: Vec<&str> = report.split_whitespace().collect();
        let outcome = match words.as_slice() {
            ["done"] => return bad,
            ["acquire", _, "ok", id, manifest] => {
                live.insert((*id).to_owned(), (*manifest).to_owned());
                "acquire ok".to_owned()
            }
            ["release", id] => {
                live.remove(*id);
                "release ok".to_owned()
            }
            ["remove", _, "ok"] => "remove ok".to_owned(),
            ["prune", "ok"] => "prune ok".to_owned(),
            ["acquire", _, "err", code @ "IMAGE_NOT_FOUND"]
            | [
                "remove",
                _,
                "err",
                code @ ("IMAGE_NOT_FOUND" | "IMAGE_IN_USE"),
            ] => {
                format!("{} {code}", words[0])
            }
            _ => {
                bad.push(report.trim().to_owned());
                format!("{} undocumented", words.first().unwrap_or(&"?"))
            }
        };
        *tally.entry(outcome).or_default() += 1;
    }
}

/// Eight processes race acquire against remove and prune for a few hundred rounds: every call
/// ends in success or a documented code (IMAGE_NOT_FOUND, IMAGE_IN_USE), and after each round
/// every use acquired and not released has its manifest, config, layers, fsmeta and VMDK in the
/// index and on disk.
#[test]
fn acquire_remove_and_prune_in_eight_processes() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    const WORKERS: usize = 8;
    let rounds: usize = std::env::var("OCICACHE_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let (mut rng, seed) = Rng::seeded("OCICACHE_RACE_SEED");
    eprintln!("race test seed: {seed} (set OCICACHE_RACE_SEED to replay)");
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let fixtures = fixtures(work.path());
    let by_manifest: BTreeMap<&str, &Fixture> =
        fixtures.iter().map(|f| (f.manifest.as_str(), f)).collect();
    let refs = references(&fixtures);
    let cache = open(&root);
    let mut workers: Vec<Worker> = (0..WORKERS)
        .map(|n| spawn_worker(n, &root, &refs))
        .collect();
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    let mut tally = Tally::new();
    for round in 0..rounds {
        load_all(&cache, &fixtures);
        for w in &mut workers {
            writeln!(w.stdin, "{}", rng.next()).unwrap();
            w.stdin.flush().unwrap();
        }
        let mut bad = Vec::new();
        for w in &mut workers {
            bad.extend(read_round(w, &mut live, &mut tally));
        }
        assert!(
            bad.is_empty(),
            "round {round} (seed {seed}): undocumented outcomes {bad:?}"
        );
        for (id, manifest) in &live {
            assert!(
                use_recorded(&root, id),
                "round {round} (seed {seed}): use {id} is gone"
            );
            if let Err(e) = check_manifest(&root, by_manifest[manifest.as_str()]) {
                panic!("round {round} (seed {seed}): use {id} of {manifest}: {e}");
            }
        }
    }
    for mut w in workers {
        drop(w.stdin);
        assert!(w.child.wait().unwrap().success(), "a worker failed");
    }
    eprintln!("race test: {rounds} rounds, {tally:?}");
    for outcome in [
        "acquire ok",
        "acquire IMAGE_NOT_FOUND",
        "remove ok",
        "prune ok",
    ] {
        assert!(tally.contains_key(outcome), "no {outcome} in {tally:?}");
    }
    // With every use released, one prune leaves nothing behind.
    for id in live.keys() {
        cache.release(id).unwrap();
    }
    cache.prune().unwrap();
    assert_eq!(cache.uses(None).unwrap(), []);
    assert_eq!(cache.list().unwrap(), []);
    for dir in [
        "blobs/sha256",
        "layers/sha256",
        "fsmeta/sha256",
        "vmdk/sha256",
        "tmp",
    ] {
        let left: Vec<_> = fs::read_dir(root.join(dir)).unwrap().collect();
        assert!(left.is_empty(), "{dir} keeps {} entries", left.len());
    }
}
