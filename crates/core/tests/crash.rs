//! Crash safety and cross-process safety of load and prune.
//!
//! The test binary re-executes itself as worker processes (`OCICACHE_WORKER=load|prune`): the
//! workers loop on one cache root, loading images that share layers, or pruning it. The tests
//! run them concurrently and kill them with SIGKILL at random moments (the seed is printed),
//! then check that every remaining reference passes the artifact checks, and that one more
//! prune returns the disk to exactly what the index names.
#![allow(clippy::unwrap_used, reason = "tests")]
#![cfg(unix)]

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::workers::*;
use common::*;
use ocicache_core::{Cache, Holder, LoadOptions};

const WORKER: &str = "OCICACHE_WORKER";
const ROOT: &str = "OCICACHE_WORKER_ROOT";
const SOURCES: &str = "OCICACHE_WORKER_SOURCES";

/// Image archives sharing a base layer, with layers big enough (a few MiB) that a load takes
/// long enough to be killed in the middle.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let base = LayerSpec::new(
        Compression::Gzip,
        vec![
            FileEntry::new("usr/lib/base.bin", pseudo_random(3 << 20, 1)),
            FileEntry::new("etc/os-release", "ID=crash\n"),
        ],
    );
    let mut out = Vec::new();
    for i in 0..4u64 {
        let own = LayerSpec::new(
            Compression::Zstd,
            vec![FileEntry::new(
                &format!("app/{i}.bin"),
                pseudo_random((1 << 20) + i as usize * 4096, 10 + i),
            )],
        );
        let image = ImageSpec::new("amd64", vec![base.clone(), own])
            .with_cmd(&format!("app{i}"))
            .build();
        let mut layout = OciLayout::new();
        layout.add_image(
            &image,
            &[(CONTAINERD_NAME, &format!("example.com/crash/app{i}:1"))],
        );
        let path = dir.join(format!("app{i}.tar"));
        fs::write(&path, layout.to_tar()).unwrap();
        out.push(path);
    }
    out
}

/// The worker entry point: does nothing unless started as a worker.
#[test]
fn worker_entry() {
    let Ok(role) = std::env::var(WORKER) else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT).unwrap());
    let sources: Vec<PathBuf> = std::env::var(SOURCES)
        .unwrap()
        .split(':')
        .map(PathBuf::from)
        .collect();
    let cache = open(&root);
    match role.as_str() {
        "hidden-commit" => hidden_commit(&cache, &root, &sources[0]),
        "prune-on-signal" => prune_on_signal(&cache),
        _ => {}
    }
    let mut i = 0usize;
    loop {
        match role.as_str() {
            "load" => {
                cache
                    .load(&sources[i % sources.len()], &LoadOptions::default())
                    .unwrap();
            }
            "prune" => {
                cache.prune().unwrap();
            }
            "remove" => {
                let _ = cache.remove(
                    &format!("example.com/crash/app{}:1", i % sources.len()),
                    false,
                );
            }
            other => panic!("unknown worker role {other}"),
        }
        i += 1;
    }
}

/// Bytes of the WAL index header at the start of `index.db-shm`: SQLite's two copies of
/// `WalIndexHdr` (48 bytes each) and `WalCkptInfo` (40 bytes), which say how much of the WAL
/// readers may use (the WAL file format, sqlite.org/walformat.html).
const WAL_INDEX_HEADER: usize = 136;

/// The `hidden-commit` worker: loads `source` with the index open, puts back the WAL index
/// header it read before the load, and dies. That is what a load killed inside its commit,
/// after the WAL was written and fsynced but before the WAL index was updated, leaves: a
/// commit that processes with the index open do not see, and that the next process to open
/// the index alone finds in the WAL and keeps.
fn hidden_commit(cache: &Cache, root: &Path, source: &Path) -> ! {
    cache.list().unwrap();
    let shm = root.join("index.db-shm");
    let header = fs::read(&shm).unwrap()[..WAL_INDEX_HEADER].to_vec();
    cache.load(source, &LoadOptions::default()).unwrap();
    let mut file = fs::OpenOptions::new().write(true).open(&shm).unwrap();
    std::io::Write::write_all(&mut file, &header).unwrap();
    drop(file);
    std::process::abort();
}

/// The `prune-on-signal` worker: opens the index, says `@ready`, prunes when a line arrives on
/// stdin, says `@pruned`, and dies without closing the index.
fn prune_on_signal(cache: &Cache) -> ! {
    cache.list().unwrap();
    println!("@ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    cache.prune().unwrap();
    println!("@pruned");
    std::process::abort();
}

/// The command that runs this test binary as a worker of `role` on `root` and `sources`.
fn worker_command(role: &str, root: &Path, sources: &[PathBuf]) -> Command {
    let joined: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    workers::worker_command(
        WORKER,
        role,
        &[
            (ROOT, root.as_os_str()),
            (SOURCES, joined.join(":").as_ref()),
        ],
    )
}

fn spawn(role: &str, root: &Path, sources: &[PathBuf]) -> Child {
    worker_command(role, root, sources)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_during_load_and_prune_never_breaks_the_cache() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let sources = sources(work.path());
    let mut rng = Rng::seeded();
    let iterations = 30;
    let mut killed_mid_work = 0;
    for i in 0..iterations {
        let loader = spawn("load", &root, &sources);
        // Half the iterations also run a pruner and a remover alongside the loader.
        let others = if i % 2 == 0 {
            vec![
                spawn("prune", &root, &sources),
                spawn("remove", &root, &sources),
            ]
        } else {
            Vec::new()
        };
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        kill(loader);
        for o in others {
            std::thread::sleep(Duration::from_millis(rng.below(30)));
            kill(o);
        }
        if fs::read_dir(root.join("tmp")).is_ok_and(|mut d| d.next().is_some()) {
            killed_mid_work += 1;
        }
        check_artifacts(&root, false);
    }
    eprintln!("{killed_mid_work} of {iterations} kills left work in progress behind");
    assert!(
        killed_mid_work > 0,
        "no kill landed in the middle of a load"
    );
    let cache = open(&root);
    cache.prune().unwrap();
    // Every reference is unused, so the prune empties the cache: nothing may be left behind.
    assert_eq!(artifact_files(&root), live_files(&root));
    assert!(live_files(&root).is_empty());
    // Load everything once more: the cache must accept it and hold exactly the live set.
    for s in &sources {
        cache.load(s, &LoadOptions::default()).unwrap();
    }
    assert_eq!(check_artifacts(&root, false), sources.len());
    let report = cache.prune_with(&ocicache_core::PruneOptions {
        dry_run: true,
        ..Default::default()
    });
    assert!(report.is_ok());
    assert_eq!(artifact_files(&root), live_files(&root));
}

#[test]
fn concurrent_loads_and_prunes_in_several_processes() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let sources = sources(work.path());
    let workers = vec![
        spawn("load", &root, &sources),
        spawn("load", &root, &sources[1..]),
        spawn("prune", &root, &sources),
        spawn("remove", &root, &sources),
    ];
    // Check while they run: every published image is whole at every moment it is listed.
    check_while_running(&root, workers, Duration::from_secs(4));
    open(&root).prune().unwrap();
    assert_eq!(artifact_files(&root), live_files(&root));
}

/// Regression: a load killed inside its commit, after SQLite had written and fsynced the WAL
/// but before it updated the WAL index, was invisible to processes that had the index open,
/// and came back when the next process to open the index alone rebuilt the WAL index from the
/// WAL. A prune in between decided on an index without that load, had nothing to remove (so it
/// wrote nothing), and deleted the load's published files as orphans: the load's references then
/// named missing files.
/// A collection now always writes to the index, which discards such a commit for good.
#[test]
fn a_commit_hidden_by_a_killed_load_never_comes_back_without_its_files() {
    if std::env::var(WORKER).is_ok() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let sources = sources(work.path());
    // The first image is pinned, so the prune has nothing to remove from the index.
    {
        let cache = open(&root);
        cache.load(&sources[0], &LoadOptions::default()).unwrap();
        cache
            .acquire("example.com/crash/app0:1", Holder::Sandbox("vm".into()))
            .unwrap();
    }
    let worker = |role: &str, sources: &[PathBuf]| {
        worker_command(role, &root, sources)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The pruner has the index open (it maps the WAL index) before and while the load dies.
    let mut pruner = worker("prune-on-signal", &sources);
    let mut said = BufReader::new(pruner.stdout.take().unwrap()).lines();
    // libtest writes on the same stdout (`test worker_entry ... ` without a newline).
    let mut wait_for = |tag: &str| loop {
        let line = said.next().unwrap().unwrap();
        if line.ends_with(tag) {
            break;
        }
    };
    wait_for("@ready");
    let status = worker("hidden-commit", &sources[1..]).wait().unwrap();
    assert!(!status.success(), "the hidden-commit worker dies");
    {
        // The load's files are published, and its commit is hidden from open indexes.
        let cache = open(&root);
        assert_eq!(
            cache.list().unwrap().len(),
            1,
            "only the first image is visible"
        );
    }
    writeln!(pruner.stdin.as_mut().unwrap(), "go").unwrap();
    wait_for("@pruned");
    let _ = pruner.wait();
    // Every process that had the index open is gone: this open rebuilds the WAL index.
    check_artifacts(&root, false);
    assert_eq!(artifact_files(&root), live_files(&root));
}
