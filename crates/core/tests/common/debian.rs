//! Real Debian packages as layer content: `.deb` files that `apt-get download` fetches once
//! into a folder under the target directory, shared by every test that uses them.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::require_tool;

/// Whether `deb` is a `.deb` file of `package` (named `{package}_{version}_{arch}.deb`).
pub fn is_deb_of(deb: &Path, package: &str) -> bool {
    deb.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|n| n.starts_with(&format!("{package}_")))
}

/// Downloads `packages` once (with `apt-get download`, into `debian-packages` under the target
/// directory) and returns what `pick` chooses from that folder's `.deb` files (sorted by path);
/// `pick` returns `None` while a package is missing. Returns `None` (after the skip/fail gate:
/// a panic with `CI=true`, else a `SKIP:` message) when apt-get or dpkg-deb is missing or apt
/// cannot fetch the packages.
pub fn download_debian_packages(
    packages: &[&str],
    pick: impl Fn(&[PathBuf]) -> Option<Vec<PathBuf>>,
) -> Option<Vec<PathBuf>> {
    if !require_tool("apt-get") || !require_tool("dpkg-deb") {
        return None;
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-packages");
    fs::create_dir_all(&cache).unwrap();
    let find = || {
        let mut debs: Vec<PathBuf> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        debs.sort();
        pick(&debs)
    };
    if let Some(debs) = find() {
        return Some(debs);
    }
    let out = Command::new("apt-get")
        .arg("download")
        .args(packages)
        .current_dir(&cache)
        .output()
        .unwrap();
    if out.status.success()
        && let Some(debs) = find()
    {
        return Some(debs);
    }
    let why = format!(
        "apt-get download failed (run apt-get update?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{why}");
    }
    eprintln!("SKIP: {why}");
    None
}
