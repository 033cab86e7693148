//! Caches made by an earlier release open, migrate once, and answer list, inspect, uses, disk
//! usage, remove and prune exactly as that release did.
//!
//! A fixture (`tests/migration/schema_v<N>/`) was written by the code of the last release
//! with schema N ([`write_fixture`], run in that checkout), from the cache of
//! [`scenario::populate`]: `index.sql` (its `index.db` as SQL), `files.txt` (its artifact
//! files, names and sizes) and `transcript.txt` (what that release answered to
//! [`scenario::play`] on it). The test rebuilds the cache from the first two (files of the
//! recorded sizes), opens it with this code, and plays the same calls.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;
#[path = "migration/scenario.rs"]
mod scenario;

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// The fixture folder of schema `version`.
fn fixture(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/migration")
        .join(format!("schema_v{version}"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn user_version(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A cache written by ocicache 0.1 (schema 3): four processes' worth of handles open it at the
/// same moment and every one sees the same migrated index (the migration runs once, in one
/// transaction; a second run would fail on its `CREATE TABLE`s), then every call of the
/// scenario answers what 0.1 answered on the same cache, through a remove refused for a
/// use, two prunes and the state after each.
#[test]
fn a_schema_3_cache_migrates_once_and_answers_as_before() {
    let dir = fixture(3);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    fs::create_dir_all(&root).unwrap();
    let files = read(&dir.join("files.txt"));
    scenario::make_files(&root, &files);
    let db = root.join("index.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(&read(&dir.join("index.sql")))
        .unwrap();
    assert_eq!(user_version(&db), 3);

    let lists: Vec<_> = (0..4)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || scenario::open(&root).list().map(|l| l.len()))
        })
        .collect();
    let lists: Vec<usize> = lists
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    assert_eq!(lists, [lists[0]; 4], "every opener sees the same index");
    assert_eq!(user_version(&db), i64::from(current_version()));
    assert_eq!(
        scenario::artifact_files(&root),
        files,
        "opening touches no file"
    );

    // Since 0.1, disk usage also has a row for a manifest only a use holds: kept:1's, removed
    // with force while a snapshot held it, with its bytes and nothing reclaimable.
    let usage = scenario::open(&root).disk_usage().unwrap();
    let held: Vec<_> = usage.images.iter().filter(|i| !i.tagged).collect();
    assert_eq!(held.len(), 1, "{:?}", usage.images);
    assert!(
        held[0]
            .reference
            .starts_with("example.com/mig/kept@sha256:")
    );
    assert!(held[0].exclusive_bytes > 0);
    assert_eq!(held[0].reclaimable_bytes, 0);

    let expected = read(&dir.join("transcript.txt"));
    let got = scenario::play(&root).0;
    // Line by line first, so a failure names the first call that answers differently.
    for (i, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        assert_eq!(g, e, "line {} of the transcript", i + 1);
    }
    assert_eq!(got, expected);
}

/// The schema version this code writes.
fn current_version() -> u32 {
    ocicache_core::index::SCHEMA_VERSION as u32
}

/// Writes the fixture of the schema this code writes into `$OCICACHE_FIXTURE_DIR`. Not a check:
/// run it once, at the last release with that schema, with this file and
/// `migration/scenario.rs` copied into its checkout:
///
/// ```text
/// OCICACHE_FIXTURE_DIR=DIR cargo test -p ocicache-core --test migration -- --ignored --exact write_fixture
/// ```
#[test]
#[ignore = "writes a fixture; run only at the release whose schema it captures"]
fn write_fixture() {
    let out =
        PathBuf::from(std::env::var_os("OCICACHE_FIXTURE_DIR").expect("OCICACHE_FIXTURE_DIR"));
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("cache");
    let sources = work.path().join("sources");
    fs::create_dir_all(&sources).unwrap();
    scenario::populate(&root, &sources);
    fs::create_dir_all(&out).unwrap();
    fs::write(
        out.join("index.sql"),
        scenario::dump_index(&root.join("index.db")),
    )
    .unwrap();
    fs::write(out.join("files.txt"), scenario::artifact_files(&root)).unwrap();
    fs::write(out.join("transcript.txt"), scenario::play(&root).0).unwrap();
}
