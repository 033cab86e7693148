//! Fidelity of layer conversion (`layer::convert_layer`, issue 3), proven with real readers.
//!
//! Every fixture is a layer tar built here, entry by entry (or written by GNU tar in each of its
//! formats). It is converted (plain, gzip and zstd blobs), `fsck.erofs` must accept the image,
//! and two readings of the image must equal the expected tree ([`common::tree`]): the kernel's
//! (a loop mount, as root) and `fsck.erofs --extract`'s (as far as erofs-utils 1.5 restores
//! metadata). The expected tree is what GNU tar extracts from the same tar, with the OCI
//! whiteout translation applied; fixtures whose rules GNU tar does not share (duplicates, `..`,
//! absolute names) or that ext4 cannot hold (xattrs over a block) are built by hand.
//! `dump.erofs` checks layout choices (inode sizes, inline or plain data, block alignment).
//!
//! Further tests stack converted layers with overlayfs against `umoci unpack`, convert a layer
//! umoci writes from real Debian packages, and check the error codes of bad input.
//!
//! Tools: fsck.erofs and dump.erofs (erofs-utils), GNU tar, umoci, apt-get and dpkg-deb; the
//! mounts need root. Missing ones skip a test with a visible message, except on CI.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::debian::{download_debian_packages, is_deb_of};
use common::oracles::{
    Extracted, Mount, UmociImage, dump_erofs, for_extract, fsck, fsck_extract,
    fsck_extract_options, fsck_view_of_holes, gnu_tar_extract, mount_erofs, mount_overlay,
    require_root, run,
};
use common::tar_body::Body;
use common::tree::{CompareOptions, Entry, Kind, Tree, compare, rel, scan};
use common::{Compression, capability, pattern, require_tool};
use ocicache_core::layer::{ConvertOptions, ConvertedLayer, convert_layer};
use ocicache_core::oci::Digest;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Layer tars, entry by entry.

/// How names and link names over 100 bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Long {
    /// GNU `L`/`K` entries before the entry (GNU header).
    Gnu,
    /// PAX `path`/`linkpath` records (ustar header), also for names that are not ASCII.
    Pax,
    /// The ustar `prefix` field (up to 155 bytes before a `/`) and `name` (up to 100 after it),
    /// as Go's archive/tar and GNU tar `--format=ustar` write names up to 256 bytes.
    Ustar,
}

/// One tar entry, with every field a layer can carry.
#[derive(Debug, Clone)]
struct TarEntry {
    name: Vec<u8>,
    body: Body,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    /// Nanoseconds: when set, the mtime goes in a PAX `mtime` record.
    nsec: Option<u32>,
    xattrs: Vec<(String, Vec<u8>)>,
    long: Long,
    /// Owner in PAX `uid`/`gid` records (the header fields hold 0), as Go's archive/tar writes
    /// ids over 2097151.
    pax_ids: bool,
}

/// The mtime fixtures use unless they say otherwise.
const MTIME: i64 = 1_600_000_000;

impl TarEntry {
    fn new(name: impl AsRef<[u8]>, body: Body, mode: u32) -> Self {
        TarEntry {
            name: name.as_ref().to_vec(),
            body,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            nsec: None,
            xattrs: Vec::new(),
            long: Long::Gnu,
            pax_ids: false,
        }
    }
    fn file(name: impl AsRef<[u8]>, data: impl Into<Vec<u8>>) -> Self {
        TarEntry::new(name, Body::File(data.into()), 0o644)
    }
    fn dir(name: impl AsRef<[u8]>) -> Self {
        TarEntry::new(name, Body::Dir, 0o755)
    }
    fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        TarEntry::new(name, Body::Symlink(target.as_ref().to_vec()), 0o777)
    }
    fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        TarEntry::new(name, Body::Hardlink(target.as_ref().to_vec()), 0o644)
    }
    fn char_dev(name: impl AsRef<[u8]>, major: u32, minor: u32) -> Self {
        TarEntry::new(name, Body::Char(major, minor), 0o600)
    }
    fn block_dev(name: impl AsRef<[u8]>, major: u32, minor: u32) -> Self {
        TarEntry::new(name, Body::Block(major, minor), 0o660)
    }
    fn fifo(name: impl AsRef<[u8]>) -> Self {
        TarEntry::new(name, Body::Fifo, 0o644)
    }
    fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
    fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    fn mtime(mut self, secs: i64) -> Self {
        self.mtime = secs;
        self.nsec = None;
        self
    }
    /// A PAX mtime `secs + nsec / 1e9` (`secs` may be negative; `nsec` counts forward).
    fn mtime_ns(mut self, secs: i64, nsec: u32) -> Self {
        self.mtime = secs;
        self.nsec = Some(nsec);
        self
    }
    fn xattr(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.xattrs.push((name.into(), value.as_ref().to_vec()));
        self
    }
    fn pax(mut self) -> Self {
        self.long = Long::Pax;
        self
    }
    fn ustar(mut self) -> Self {
        self.long = Long::Ustar;
        self
    }
    fn pax_ids(mut self) -> Self {
        self.pax_ids = true;
        self.long = Long::Pax;
        self
    }
}

/// A PAX time: `-1.250000000` for 1.25 s before the epoch (seconds -2, nanoseconds 750000000).
fn pax_time(secs: i64, nsec: u32) -> String {
    if secs < 0 && nsec > 0 {
        let total = -(secs as i128) * 1_000_000_000 - i128::from(nsec);
        format!("-{}.{:09}", total / 1_000_000_000, total % 1_000_000_000)
    } else {
        format!("{secs}.{nsec:09}")
    }
}

/// A layer tar being written, and which directories its entries name.
struct LayerTar {
    builder: tar::Builder<Vec<u8>>,
    /// Entries written (not counting PAX and GNU long-name records).
    entries: u64,
    /// Directories an entry names (simply normalized).
    explicit_dirs: BTreeSet<PathBuf>,
}

impl LayerTar {
    fn new() -> Self {
        LayerTar {
            builder: tar::Builder::new(Vec::new()),
            entries: 0,
            explicit_dirs: BTreeSet::new(),
        }
    }

    fn with(entries: impl IntoIterator<Item = TarEntry>) -> Self {
        let mut t = LayerTar::new();
        for e in entries {
            t.add(&e);
        }
        t
    }

    /// A GNU `L` (long name) or `K` (long link name) record.
    fn gnu_long(&mut self, kind: tar::EntryType, value: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_mode(0o644);
        h.set_entry_type(kind);
        let mut data = value.to_vec();
        data.push(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.builder.append(&h, data.as_slice()).unwrap();
    }

    fn add(&mut self, e: &TarEntry) -> &mut Self {
        let link = e.body.link();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(nsec) = e.nsec {
            pax.push(("mtime".into(), pax_time(e.mtime, nsec).into_bytes()));
        }
        if e.pax_ids {
            pax.push(("uid".into(), e.uid.to_string().into_bytes()));
            pax.push(("gid".into(), e.gid.to_string().into_bytes()));
        }
        for (k, v) in &e.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        let long_name = e.name.len() > 100;
        let long_link = link.is_some_and(|l| l.len() > 100);
        match e.long {
            // As Go's archive/tar: a record for a name that is long or not ASCII.
            Long::Pax => {
                if long_name || !e.name.is_ascii() {
                    pax.push(("path".into(), e.name.clone()));
                }
                if let Some(l) = link.filter(|l| long_link || !l.is_ascii()) {
                    pax.push(("linkpath".into(), l.to_vec()));
                }
            }
            Long::Gnu => {
                if long_name {
                    self.gnu_long(tar::EntryType::GNULongName, &e.name);
                }
                if long_link {
                    self.gnu_long(tar::EntryType::GNULongLink, link.unwrap());
                }
            }
            Long::Ustar => assert!(!long_link, "ustar link names fit 100 bytes"),
        }
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        let mut h = match e.long {
            Long::Gnu => tar::Header::new_gnu(),
            Long::Pax | Long::Ustar => tar::Header::new_ustar(),
        };
        let mut name = e.name.as_slice();
        if e.long == Long::Ustar && long_name {
            // Split at the last `/` that leaves at most 100 bytes after it.
            let at = (0..name.len())
                .filter(|&i| name[i] == b'/' && i <= 155 && name.len() - i - 1 <= 100)
                .max()
                .unwrap_or_else(|| panic!("{} does not fit ustar", name.escape_ascii()));
            h.as_ustar_mut().unwrap().prefix[..at].copy_from_slice(&name[..at]);
            name = &name[at + 1..];
        }
        {
            let old = h.as_old_mut();
            let n = name.len().min(100);
            old.name[..n].copy_from_slice(&name[..n]);
            if let Some(l) = link {
                let n = l.len().min(100);
                old.linkname[..n].copy_from_slice(&l[..n]);
            }
        }
        h.set_mode(e.mode);
        if e.pax_ids {
            h.set_uid(0);
            h.set_gid(0);
        } else {
            h.set_uid(e.uid);
            h.set_gid(e.gid);
        }
        h.set_mtime(u64::try_from(e.mtime).unwrap_or(0));
        let data = e.body.fill_header(&mut h);
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self.entries += 1;
        if matches!(e.body, Body::Dir) {
            self.explicit_dirs.insert(simple_normalize(&e.name));
        }
        self
    }

    fn finish(self) -> (Vec<u8>, u64, BTreeSet<PathBuf>) {
        (
            self.builder.into_inner().unwrap(),
            self.entries,
            self.explicit_dirs,
        )
    }
}

/// A tar name as a tree path, for names without `..`: `./`, `//` and a leading `/` dropped.
fn simple_normalize(name: &[u8]) -> PathBuf {
    let parts: Vec<&[u8]> = name
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    rel(parts.join(&b'/'))
}

// ---------------------------------------------------------------------------------------------
// Converting and checking one layer.

/// Whether the tools every fixture test needs are here (see the module doc), and root: the
/// kernel mounts, and GNU tar as the oracle restores owners, devices and `trusted.*` xattrs.
fn tools() -> bool {
    require_tool("fsck.erofs")
        && require_tool("dump.erofs")
        && require_tool("tar")
        && require_root("layer fidelity tests (kernel mounts, GNU tar extracting as root)")
}

/// A converted layer and its image file.
struct Converted {
    _tmp: TempDir,
    image: PathBuf,
    layer: ConvertedLayer,
}

fn digest(bytes: &[u8]) -> Digest {
    Digest::of_bytes(bytes)
}

/// Converts `tar` compressed with `c` (digests checked), asserts what the conversion reports,
/// and that `fsck.erofs` accepts the image.
fn convert(tar: &[u8], c: Compression) -> Converted {
    convert_blob(tar, &c.apply(tar), c != Compression::None)
}

/// [`convert`] of a blob made by the caller, holding `tar`.
fn convert_blob(tar: &[u8], blob: &[u8], compressed: bool) -> Converted {
    let c = if compressed { "compressed" } else { "plain" };
    let tmp = tempfile::tempdir().unwrap();
    let blob_path = tmp.path().join("blob");
    fs::write(&blob_path, blob).unwrap();
    let image = tmp.path().join("layer.erofs");
    let options = ConvertOptions {
        blob_digest: Some(digest(blob)),
        diff_id: Some(digest(tar)),
    };
    let layer = convert_layer(&blob_path, &image, &options)
        .unwrap_or_else(|e| panic!("convert_layer ({c}) failed [{}]: {e}", e.code()));
    assert_eq!(layer.blob_digest, digest(blob));
    assert_eq!(layer.diff_id, digest(tar));
    assert_eq!(layer.blob_size, blob.len() as u64);
    assert_eq!(layer.tar_size, tar.len() as u64);
    assert_eq!(layer.compressed, compressed);
    let size = fs::metadata(&image).unwrap().len();
    assert_eq!(
        layer.erofs_size, size,
        "erofs_size is the image file's size"
    );
    assert_eq!(size % 4096, 0, "the image is whole 4 KiB blocks");
    fsck(&image);
    Converted {
        _tmp: tmp,
        image,
        layer,
    }
}

/// The tree a layer image must show for `tar`: what GNU tar extracts, with the directories no
/// entry names given the implicit-directory metadata (the root too, unless `./` is an entry),
/// then the OCI whiteout translation.
fn expected_from_tar(tar: &[u8], explicit_dirs: &BTreeSet<PathBuf>) -> Tree {
    let x = gnu_tar_extract(tar);
    let mut tree = scan(&x.root);
    let implicit: Vec<PathBuf> = tree
        .entries
        .iter()
        .filter(|(p, e)| e.is_dir() && !explicit_dirs.contains(*p))
        .map(|(p, _)| p.clone())
        .collect();
    for p in implicit {
        tree.set_implicit_dir(p.as_os_str().as_bytes());
    }
    tree.apply_oci_whiteouts();
    tree
}

/// The options of a comparison with `fsck.erofs --extract`'s tree ([`fsck_extract_options`]).
fn extract_options(label: &str) -> CompareOptions {
    fsck_extract_options(CompareOptions::labeled(label))
}

/// Checks the image against `expected`: the kernel's view and fsck's extraction.
fn verify(name: &str, conv: &Converted, expected: &Tree, mount_opts: CompareOptions) {
    let mnt = mount_erofs(&conv.image);
    let actual = scan(mnt.path());
    compare(
        expected,
        &actual,
        &CompareOptions {
            label: format!("{name}: expected tree vs kernel mount"),
            ..mount_opts
        },
    );
    let x = fsck_extract(&conv.image);
    let actual = scan(&x.root);
    compare(
        &fsck_view_of_holes(&conv.image, mnt.path(), for_extract(expected)),
        &actual,
        &extract_options(&format!("{name}: expected tree vs fsck.erofs --extract")),
    );
}

/// The whole check of a fixture whose expected tree GNU tar gives: convert with each of
/// `compressions`, then verify. Returns the last conversion for further checks.
fn check_fixture(name: &str, layer: LayerTar, compressions: &[Compression]) -> Converted {
    let (tar, entries, explicit) = layer.finish();
    let expected = expected_from_tar(&tar, &explicit);
    check_against(name, &tar, entries, &expected, compressions)
}

/// [`check_fixture`] with a hand-built expected tree.
fn check_against(
    name: &str,
    tar: &[u8],
    entries: u64,
    expected: &Tree,
    compressions: &[Compression],
) -> Converted {
    let mut last = None;
    for &c in compressions {
        let conv = convert(tar, c);
        assert_eq!(conv.layer.entries, entries, "{name}: entries read");
        verify(
            &format!("{name} ({c:?})"),
            &conv,
            expected,
            CompareOptions::default(),
        );
        last = Some(conv);
    }
    last.unwrap()
}

/// `dump.erofs --path=PATH`'s inode summary, as `(field, value)` pairs (`Inode size`,
/// `Layout`, `Links`, `Xattr size`, ...).
fn dump_inode(image: &Path, path: &str) -> Vec<(String, String)> {
    let text = dump_erofs(image, &[&format!("--path={path}")]);
    let mut fields = Vec::new();
    for line in text.lines() {
        // "Size: 3  On-disk size: 3  regular file", "NID: 48   Links: 2   Layout: 2"
        for part in line.split("  ") {
            if let Some((k, v)) = part.split_once(':') {
                fields.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    fields
}

fn dump_field(image: &Path, path: &str, field: &str) -> String {
    dump_inode(image, path)
        .into_iter()
        .find(|(k, _)| k == field)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("dump.erofs --path={path} has no {field}"))
}

const ALL: &[Compression] = &[Compression::None, Compression::Gzip, Compression::Zstd];

// ---------------------------------------------------------------------------------------------
// Fixtures.

#[test]
fn regular_files_in_every_compression() {
    if !tools() {
        return;
    }
    let sizes: &[(&str, usize)] = &[
        ("empty", 0),
        ("one", 1),
        ("small", 100),
        ("block", 4096),
        ("block_plus_one", 4097),
        ("multi", 3 * 4096 + 123),
        ("big", (1 << 20) + 512 * 1024 + 7),
    ];
    let mut layer = LayerTar::new();
    layer.add(&TarEntry::dir("files"));
    for (i, (name, size)) in sizes.iter().enumerate() {
        layer.add(&TarEntry::file(
            format!("files/{name}"),
            pattern(*size, i as u64),
        ));
    }
    layer
        .add(&TarEntry::file("files/zeros", vec![0u8; 64 * 1024]))
        .add(&TarEntry::file("files/exec", "#!/bin/sh\n").mode(0o755))
        .add(&TarEntry::file("files/readonly", "r").mode(0o400))
        .add(&TarEntry::file("files/nothing", "n").mode(0o000))
        .add(&TarEntry::file("top", "at the root\n"));
    let conv = check_fixture("regular files", layer, ALL);

    // Regular files use the plain layout, each a block-aligned run (what fsmeta chunks need).
    for (name, size) in sizes {
        let path = format!("/files/{name}");
        assert_eq!(
            dump_field(&conv.image, &path, "Layout"),
            "0",
            "{path} layout"
        );
        if *size == 0 {
            continue;
        }
        let extents = dump_erofs(&conv.image, &["-e", &format!("--path={path}")]);
        let physical: u64 = extents
            .lines()
            .find_map(|l| {
                // "   0:        0..       3 |       3 :       1620..      1623 |       3"
                let cols: Vec<&str> = l.split('|').collect();
                let start = cols.get(1)?.split(':').nth(1)?.split("..").next()?;
                start.trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("no extent in dump.erofs -e for {path}:\n{extents}"));
        assert_eq!(physical % 4096, 0, "{path} starts at byte {physical}");
    }
}

#[test]
fn directories_empty_and_large() {
    if !tools() {
        return;
    }
    let mut layer = LayerTar::new();
    layer
        .add(
            &TarEntry::dir("empty")
                .mode(0o700)
                .mtime_ns(1_650_000_000, 1),
        )
        .add(&TarEntry::dir("many").mode(0o751));
    let mut names = Vec::new();
    for i in 0..5200u32 {
        // Names of varying length so entries pack unevenly; every 97th a directory.
        let name = format!("entry-{i:05}-{}", "x".repeat((i % 37) as usize));
        let path = format!("many/{name}");
        if i % 97 == 0 {
            layer.add(&TarEntry::dir(&path));
        } else {
            layer.add(&TarEntry::file(&path, if i % 500 == 0 { "d" } else { "" }));
        }
        names.push(name);
    }
    // Names that sort before and around `.` and `..`, and bytes over 0x7f (compared unsigned).
    let odd: &[&[u8]] = &[
        b"!bang",
        b" space",
        b"#hash",
        b"+plus",
        b"-dash",
        b"...",
        b"..a",
        b".a",
        b".hidden",
        b"~tilde",
        b"\x7fdel",
        b"\x80high",
        b"\xffmax",
        b"A",
        b"a",
        b"\x01ctl",
    ];
    layer.add(&TarEntry::dir("sorting"));
    for n in odd {
        let mut path = b"sorting/".to_vec();
        path.extend_from_slice(n);
        layer.add(&TarEntry::file(&path, *n));
    }
    // Directory sizes at the inline/plain boundary (each entry is 12 bytes plus its name; `.`
    // and `..` take 27): exactly one block (no tail, plain), a tail that fits next to the
    // inode (inline), and one that does not (plain, size under a block).
    let boundary = [
        ("exact", 19, 191, 200, 4096, "0"),
        ("nearly_full", 19, 185, 185, 3967, "2"),
        ("just_over", 19, 190, 203, 4080, "0"),
    ];
    for (dir, n, len, last, _, _) in boundary {
        layer.add(&TarEntry::dir(dir));
        for i in 0..n {
            let name = format!("e{i:02}{}", "x".repeat(len - 3));
            layer.add(&TarEntry::file(format!("{dir}/{name}"), ""));
        }
        layer.add(&TarEntry::file(
            format!("{dir}/f{}", "y".repeat(last - 1)),
            "",
        ));
    }
    let conv = check_fixture("directories", layer, &[Compression::Gzip]);
    for (dir, _, _, _, size, layout) in boundary {
        let path = format!("/{dir}");
        assert_eq!(
            dump_field(&conv.image, &path, "Size"),
            size.to_string(),
            "{path}"
        );
        assert_eq!(dump_field(&conv.image, &path, "Layout"), layout, "{path}");
    }

    // Lookups through the kernel's binary search: present names (every one of them was stat-ed
    // by the scan), and absent names between, before and after them.
    let mnt = mount_erofs(&conv.image);
    let many = mnt.path().join("many");
    assert_eq!(fs::read_dir(&many).unwrap().count(), names.len());
    for name in names.iter().step_by(101) {
        assert!(many.join(name).symlink_metadata().is_ok(), "{name}");
    }
    let absent = [
        "entry-00001-",
        "entry-00001-xx",
        "entry-05200-",
        "entry-",
        "a",
        "zzzz",
        "entry-02600-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ];
    for name in absent {
        let err = many.join(name).symlink_metadata().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{name}");
    }
    for n in odd {
        let p = mnt.path().join("sorting").join(OsStr::from_bytes(n));
        assert_eq!(fs::read(&p).unwrap(), *n, "{}", p.display());
    }
    assert!(mnt.path().join("sorting/..b").symlink_metadata().is_err());
}

/// Link counts over 65535 need extended inodes: a directory with 65,540 subdirectories and a
/// file with 65,540 names. Built by hand: ext4 reports 1 for such a directory.
#[test]
fn link_counts_over_16_bits() {
    if !tools() {
        return;
    }
    const N: usize = 65_540;
    let mut layer = LayerTar::new();
    layer
        .add(&TarEntry::dir("wide"))
        .add(&TarEntry::file("target", "linked"));
    let mut t = Tree::new();
    t.insert("", Entry::dir(0o755))
        .insert("wide", Entry::dir(0o755).mtime(MTIME, 0))
        .insert("target", Entry::file(b"linked", 0o644).mtime(MTIME, 0));
    t.entry_mut("target").inode = Some((0, 1));
    for i in 0..N {
        let dir = format!("wide/{i:05}");
        layer.add(&TarEntry::dir(&dir));
        t.insert(&dir, Entry::dir(0o755).mtime(MTIME, 0));
        let link = format!("links/{i:05}");
        layer.add(&TarEntry::hardlink(&link, "target"));
        let mut e = Entry::file(b"linked", 0o644).mtime(MTIME, 0);
        e.inode = Some((0, 1));
        t.insert(&link, e);
    }
    t.insert("links", Entry::dir(0o755));
    t.fix_nlinks();
    assert_eq!(t.get("wide").unwrap().nlink, N as u64 + 2);
    let (tar, entries, _) = layer.finish();
    // The kernel's view only: fsck's extraction would not keep the links, and creating and
    // deleting 131,000 files costs minutes on some disks.
    let conv = convert(&tar, Compression::Zstd);
    assert_eq!(conv.layer.entries, entries);
    let mnt = mount_erofs(&conv.image);
    compare(
        &t,
        &scan(mnt.path()),
        &CompareOptions::labeled("link counts: kernel mount"),
    );
    assert_eq!(dump_field(&conv.image, "/wide", "Inode size"), "64");
    assert_eq!(dump_field(&conv.image, "/target", "Inode size"), "64");
    assert_eq!(
        dump_field(&conv.image, "/target", "Links"),
        (N + 1).to_string()
    );
}

#[test]
fn symlinks_short_long_and_not_inline() {
    if !tools() {
        return;
    }
    let long = |n: usize| -> Vec<u8> {
        let mut t = b"/".to_vec();
        while t.len() < n {
            t.extend_from_slice(b"segment/");
        }
        t.truncate(n);
        t
    };
    let layer = LayerTar::with([
        TarEntry::dir("links"),
        TarEntry::symlink("links/short", "target"),
        TarEntry::symlink("links/dir", "../etc"),
        TarEntry::symlink("links/abs", "/etc/passwd"),
        TarEntry::symlink("links/dangling", "nowhere/at/all"),
        TarEntry::symlink("links/dots", "../../../../x"),
        TarEntry::symlink("links/bytes", b"caf\xe9/\xff"),
        TarEntry::symlink("links/gnu1000", long(1000)),
        TarEntry::symlink("links/pax1500", long(1500)).pax(),
        TarEntry::symlink("links/gnu4000", long(4000)),
        TarEntry::symlink("links/pax4095", long(4095)).pax(),
        TarEntry::symlink("links/owned", "x")
            .owner(1000, 1001)
            .mtime_ns(1_500_000_000, 42),
        TarEntry::dir("etc"),
    ]);
    let conv = check_fixture("symlinks", layer, &[Compression::Zstd]);
    // Short targets sit inline after the inode; one that cannot fit a block with it does not.
    assert_eq!(dump_field(&conv.image, "/links/short", "Layout"), "2");
    assert_eq!(dump_field(&conv.image, "/links/gnu1000", "Layout"), "2");
    assert_eq!(dump_field(&conv.image, "/links/pax4095", "Layout"), "0");
}

#[test]
fn hardlinks_share_one_inode() {
    if !tools() {
        return;
    }
    let long_dir = "h".repeat(90);
    let layer = LayerTar::with([
        TarEntry::dir("hl"),
        TarEntry::file("hl/a", "shared data\n")
            .owner(7, 8)
            .xattr("user.k", "v"),
        TarEntry::hardlink("hl/b", "hl/a"),
        TarEntry::hardlink("hl/sub/c", "hl/a"),
        // A link to a link: the same inode.
        TarEntry::hardlink("hl/d", "hl/b"),
        TarEntry::file("hl/x", pattern(10_000, 3)),
        TarEntry::hardlink("./hl/y", "./hl/x"),
        // GNU long name and long link name.
        TarEntry::file(format!("{long_dir}/{}", "t".repeat(60)), "long target"),
        TarEntry::hardlink(
            format!("{long_dir}/{}", "l".repeat(60)),
            format!("{long_dir}/{}", "t".repeat(60)),
        ),
        // PAX path and linkpath.
        TarEntry::hardlink(
            format!("{long_dir}/{}", "p".repeat(60)),
            format!("{long_dir}/{}", "t".repeat(60)),
        )
        .pax(),
        // Hardlinks to a symlink, a fifo and a device.
        TarEntry::symlink("hl/sym", "a"),
        TarEntry::hardlink("hl/sym2", "hl/sym"),
        TarEntry::fifo("hl/fifo"),
        TarEntry::hardlink("hl/fifo2", "hl/fifo"),
        TarEntry::char_dev("hl/null", 1, 3),
        TarEntry::hardlink("hl/null2", "hl/null"),
    ]);
    let (tar, entries, explicit) = layer.finish();
    let expected = expected_from_tar(&tar, &explicit);
    assert_eq!(
        expected.get("hl/a").unwrap().nlink,
        4,
        "oracle: a group of 4"
    );
    let conv = check_against("hardlinks", &tar, entries, &expected, &[Compression::Gzip]);
    assert_eq!(dump_field(&conv.image, "/hl/b", "Links"), "4");
}

#[test]
fn devices_fifos_modes_and_owners() {
    if !tools() {
        return;
    }
    let layer = LayerTar::with([
        TarEntry::dir("dev"),
        TarEntry::char_dev("dev/null", 1, 3).mode(0o666),
        TarEntry::char_dev("dev/tty0", 4, 0).mode(0o620).owner(0, 5),
        TarEntry::char_dev("dev/big", 4095, 1_048_575),
        TarEntry::block_dev("dev/sda", 8, 0),
        TarEntry::block_dev("dev/nvme", 259, 65_541),
        TarEntry::fifo("dev/fifo").mode(0o600),
        TarEntry::dir("modes"),
        TarEntry::file("modes/setuid", "s").mode(0o4755),
        TarEntry::file("modes/setgid", "g").mode(0o2755),
        TarEntry::file("modes/all", "a").mode(0o7777),
        TarEntry::file("modes/none", "n").mode(0o000),
        TarEntry::dir("modes/sticky").mode(0o1777),
        TarEntry::dir("modes/setgid_dir").mode(0o2775),
        TarEntry::dir("owners").owner(65_534, 65_534),
        TarEntry::file("owners/u65535", "").owner(65_535, 65_535),
        TarEntry::file("owners/u65536", "").owner(65_536, 70_000),
        TarEntry::file("owners/octal_max", "").owner(2_097_151, 1_000_000),
        // Over 7 octal digits: base-256 in a GNU header.
        TarEntry::file("owners/base256", "").owner(3_000_000, 4_000_000),
        // In PAX records (the ustar header says 0).
        TarEntry::file("owners/pax", "")
            .owner(5_000_000, 6_000_000)
            .pax_ids(),
        TarEntry::file("owners/pax_max", "")
            .owner(4_294_967_294, 4_294_967_293)
            .pax_ids(),
        TarEntry::dir("owners/dir")
            .owner(123_456, 654_321)
            .mode(0o3750),
        TarEntry::symlink("owners/link", "x").owner(100_000, 100_001),
        TarEntry::char_dev("owners/dev", 1, 5).owner(200_000, 3),
    ]);
    check_fixture("devices, modes and owners", layer, &[Compression::None]);
}

#[test]
fn nanosecond_mtimes_extended_inodes() {
    if !tools() {
        return;
    }
    let mut entries = vec![
        TarEntry::dir("t").mtime_ns(1_700_000_000, 999_999_999),
        TarEntry::file("t/ns1", "1").mtime_ns(1_700_000_000, 1),
        TarEntry::file("t/ns2", "2").mtime_ns(1_700_000_000, 123_456_789),
        TarEntry::file("t/whole", "w").mtime(1_234_567_890),
        TarEntry::file("t/epoch", "e").mtime(0),
        TarEntry::file("t/before_epoch", "b").mtime_ns(-86_401, 500_000_000),
        TarEntry::file("t/y2038", "y").mtime(2_147_483_648),
        TarEntry::file("t/y2106", "z").mtime_ns(4_294_967_296, 7),
        TarEntry::symlink("t/link", "ns1").mtime_ns(1_600_000_001, 5),
        TarEntry::fifo("t/fifo").mtime_ns(1_600_000_002, 6),
        TarEntry::dir("t/sub").mtime_ns(1_600_000_003, 7),
    ];
    for i in 0..200 {
        entries.push(
            TarEntry::file(format!("t/sub/f{i:03}"), format!("{i}"))
                .mtime_ns(1_600_000_000 + i64::from(i), i as u32 * 1_000_003),
        );
    }
    let conv = check_fixture(
        "nanosecond mtimes",
        LayerTar::with(entries),
        &[Compression::Gzip],
    );
    // An mtime other than the superblock's build time needs an extended inode.
    assert_eq!(dump_field(&conv.image, "/t/ns2", "Inode size"), "64");
    assert_eq!(dump_field(&conv.image, "/t/sub/f123", "Inode size"), "64");
}

#[test]
fn uniform_mtimes_compact_inodes() {
    if !tools() {
        return;
    }
    let mut entries = vec![TarEntry::dir("./").mtime_ns(1_700_000_000, 250_000_000)];
    for i in 0..100 {
        entries.push(TarEntry::dir(format!("d{i:02}")).mtime_ns(1_700_000_000, 250_000_000));
        entries.push(
            TarEntry::file(format!("d{i:02}/f"), pattern(i * 50, i as u64))
                .mtime_ns(1_700_000_000, 250_000_000)
                .owner(i as u64, 1000),
        );
        entries.push(
            TarEntry::symlink(format!("d{i:02}/l"), "f").mtime_ns(1_700_000_000, 250_000_000),
        );
    }
    let conv = check_fixture("uniform mtimes", LayerTar::with(entries), ALL);
    // One mtime everywhere: the superblock's, so small inodes suffice.
    for path in ["/", "/d07", "/d07/f", "/d99/l"] {
        assert_eq!(dump_field(&conv.image, path, "Inode size"), "32", "{path}");
    }
}

/// `value` with its newline bytes replaced (see pax_records_may_hold_newlines).
fn no_newlines(mut value: Vec<u8>) -> Vec<u8> {
    for b in &mut value {
        if *b == b'\n' {
            *b = b'.';
        }
    }
    value
}

#[test]
fn xattrs_inline_shared_and_binary() {
    if !tools() {
        return;
    }
    let mut entries = vec![
        TarEntry::dir("x").xattr("user.dir", "on a dir"),
        TarEntry::file("x/user", "u")
            .xattr("user.a", "1")
            .xattr("user.b", "two"),
        TarEntry::file("x/empty_value", "e").xattr("user.empty", ""),
        // Binary values (newlines aside: see pax_records_may_hold_newlines).
        TarEntry::file("x/binary", "b").xattr("user.bin", b"\0\x01\xff\0 = \"x\" \x7f"),
        TarEntry::file("x/ping", "p").xattr("security.capability", capability()),
        TarEntry::file("x/trusted", "t").xattr("trusted.t", "trusted value"),
        TarEntry::symlink("x/link", "user").xattr("trusted.on_link", "l"),
        TarEntry::file("x/big_value", "v").xattr("user.big", no_newlines(pattern(3000, 9))),
        TarEntry::dir("x/dir_big").xattr("user.big", no_newlines(pattern(3500, 10))),
        TarEntry::file("x/dir_big/child", "c"),
        TarEntry::fifo("x/fifo").xattr("trusted.fifo", "f"),
    ];
    let mut many = TarEntry::file("x/many", "m");
    for i in 0..40 {
        many = many.xattr(&format!("user.attr{i:02}"), format!("value {i}"));
    }
    entries.push(many);
    // The same xattrs on many files: stored once, in the shared area.
    for i in 0..60 {
        entries.push(
            TarEntry::file(format!("x/shared/f{i:02}"), format!("{i}"))
                .xattr("user.shared", "the same value on every file")
                .xattr("trusted.shared", "and another")
                .xattr("user.own", format!("{i}")),
        );
    }
    let conv = check_fixture("xattrs", LayerTar::with(entries), &[Compression::Zstd]);
    let sb = dump_erofs(&conv.image, &["-s"]);
    let shared_start = sb
        .lines()
        .find(|l| l.starts_with("Filesystem shared xattr metadata start block"))
        .and_then(|l| l.rsplit(':').next())
        .map(|v| v.trim().to_owned())
        .unwrap();
    assert_ne!(shared_start, "0", "a shared xattr area exists:\n{sb}");
}

#[test]
fn long_deep_and_odd_names() {
    if !tools() {
        return;
    }
    let n255 = "n".repeat(255);
    let deep: String = (0..60).map(|i| format!("level{i:02}/")).collect();
    let mut entries = vec![
        TarEntry::dir("names"),
        // GNU long names (over 100 bytes) and a 255-byte component.
        TarEntry::file(format!("names/{}", "g".repeat(150)), "gnu 150"),
        TarEntry::file(format!("names/{n255}"), "gnu 255"),
        TarEntry::dir(format!("names/{}", "D".repeat(255))),
        TarEntry::file(
            format!("names/{}/{}", "D".repeat(255), "f".repeat(255)),
            "two",
        ),
        // PAX paths.
        TarEntry::file(format!("names/{}", "p".repeat(150)), "pax 150").pax(),
        TarEntry::file(format!("names/{}", "q".repeat(255)), "pax 255").pax(),
        // Deep paths: 60 levels, each directory named by an entry of its own in the upper half.
        TarEntry::file(format!("{deep}leaf"), "deep"),
        TarEntry::symlink(format!("{deep}link"), deep.clone()),
        // Names with odd bytes, short (in the header) and long (GNU record).
        TarEntry::file(b"names/caf\xe9", "latin-1"),
        TarEntry::file(b"names/\xff\xfe", "ff fe"),
        TarEntry::file(b"names/new\nline", "newline"),
        TarEntry::file(b"names/back\\slash", "backslash"),
        TarEntry::file(b"names/sp ace", "space"),
        TarEntry::file(b"names/utf8-\xc3\xa9\xe2\x82\xac", "utf-8"),
        TarEntry::dir(b"names/bad\x80dir"),
        TarEntry::file(
            [b"names/bad\x80dir/".as_slice(), &[b'\xfe'; 120]].concat(),
            "long non-UTF-8",
        ),
        TarEntry::hardlink(b"names/hl\xe9", b"names/caf\xe9"),
        // ustar prefix + name.
        TarEntry::dir(format!("names/{}", "u".repeat(95))).ustar(),
        TarEntry::file(
            format!("names/{}/{}", "u".repeat(95), "v".repeat(100)),
            "ustar",
        )
        .ustar(),
        TarEntry::file(
            [b"names/".as_slice(), &[b'\xe0'; 100], b"/", &[b'\xe1'; 90]].concat(),
            "ustar, not UTF-8",
        )
        .ustar(),
        TarEntry::hardlink(
            format!("names/{}/{}", "u".repeat(95), "h".repeat(80)),
            "names/sp ace",
        )
        .ustar(),
    ];
    for i in 30..60 {
        let dir: String = (0..=i).map(|j| format!("level{j:02}/")).collect();
        entries.push(TarEntry::dir(dir).mode(0o750).mtime(MTIME + i64::from(i)));
    }
    check_fixture("names", LayerTar::with(entries), &[Compression::Gzip]);
}

#[test]
fn implicit_parent_directories() {
    if !tools() {
        return;
    }
    let layer = LayerTar::with([
        TarEntry::file("p/q/r/file", "deep"),
        // A directory named after its child: the entry's metadata wins.
        TarEntry::file("z/child", "c"),
        TarEntry::dir("z").mode(0o700).owner(9, 9).mtime(77),
        TarEntry::dir("w").mode(0o711).owner(3, 4).mtime_ns(88, 8),
        TarEntry::file("w/s/t", "t"),
    ]);
    let (tar, entries, explicit) = layer.finish();
    let expected = expected_from_tar(&tar, &explicit);
    for p in ["", "p", "p/q", "p/q/r", "w/s"] {
        let e = expected.get(p).unwrap();
        assert_eq!((e.perms, e.uid, e.mtime), (0o755, 0, 0), "/{p}");
    }
    check_against(
        "implicit dirs",
        &tar,
        entries,
        &expected,
        &[Compression::None],
    );
}

/// A tar's entries by hand (the converter's documented rules, which GNU tar does not share:
/// `..` is clamped at the root rather than skipped, later duplicates win).
#[test]
fn path_normalization_and_duplicates() {
    if !tools() {
        return;
    }
    let layer = LayerTar::with([
        TarEntry::dir("./").mode(0o750).owner(1, 2).mtime(1234),
        TarEntry::dir("./a/").mode(0o700),
        TarEntry::file("./a/f1", "one"),
        TarEntry::file("a//f2", "two"),
        TarEntry::file("/abs/f3", "three"),
        TarEntry::file("../../up/f4", "four"),
        TarEntry::file("x/../y/f5", "five"),
        TarEntry::file("a/./b/../f6", "six"),
        TarEntry::file("//a///f7", "seven"),
        // Later entries win.
        TarEntry::file("dup", "first").mode(0o600),
        TarEntry::file("dup", "second").mode(0o640).owner(5, 5),
        TarEntry::dir("dupdir").mode(0o700).owner(5, 5).mtime(100),
        TarEntry::file("dupdir/keep", "kept"),
        TarEntry::dir("dupdir/").mode(0o755).owner(7, 7).mtime(200),
        TarEntry::file("f2d", "file first"),
        TarEntry::dir("f2d"),
        TarEntry::file("f2d/c", "child"),
        TarEntry::dir("d2f"),
        TarEntry::file("d2f/child", "gone"),
        TarEntry::file("d2f", "file last"),
        TarEntry::symlink("sym", "dup"),
        TarEntry::file("sym", "not a link"),
        TarEntry::file("xa", "with").xattr("user.a", "1"),
        TarEntry::file("xa", "without"),
        // A hardlink keeps the inode it was made to; the name is then replaced.
        TarEntry::file("hl_src", "original"),
        TarEntry::hardlink("hl_dst", "hl_src"),
        TarEntry::file("hl_src", "replacement"),
        // Links count names the image holds: the first name goes away with its directory.
        TarEntry::file("gone/f", "survivor"),
        TarEntry::hardlink("keeper", "gone/f"),
        TarEntry::file("gone", "not a directory now"),
    ]);
    let (tar, entries, _) = layer.finish();
    let m = |e: Entry| e.mtime(MTIME, 0);
    let mut t = Tree::new();
    t.insert("", Entry::dir(0o750).owner(1, 2).mtime(1234, 0))
        .insert("a", m(Entry::dir(0o700)))
        .insert("a/f1", m(Entry::file(b"one", 0o644)))
        .insert("a/f2", m(Entry::file(b"two", 0o644)))
        .insert("a/f6", m(Entry::file(b"six", 0o644)))
        .insert("a/f7", m(Entry::file(b"seven", 0o644)))
        .insert("abs", Entry::dir(0o755))
        .insert("abs/f3", m(Entry::file(b"three", 0o644)))
        .insert("up", Entry::dir(0o755))
        .insert("up/f4", m(Entry::file(b"four", 0o644)))
        .insert("y", Entry::dir(0o755))
        .insert("y/f5", m(Entry::file(b"five", 0o644)))
        .insert("dup", m(Entry::file(b"second", 0o640).owner(5, 5)))
        .insert("dupdir", Entry::dir(0o755).owner(7, 7).mtime(200, 0))
        .insert("dupdir/keep", m(Entry::file(b"kept", 0o644)))
        .insert("f2d", m(Entry::dir(0o755)))
        .insert("f2d/c", m(Entry::file(b"child", 0o644)))
        .insert("d2f", m(Entry::file(b"file last", 0o644)))
        .insert("sym", m(Entry::file(b"not a link", 0o644)))
        .insert("xa", m(Entry::file(b"without", 0o644)))
        .insert("hl_dst", m(Entry::file(b"original", 0o644)))
        .insert("hl_src", m(Entry::file(b"replacement", 0o644)))
        .insert("keeper", m(Entry::file(b"survivor", 0o644)))
        .insert("gone", m(Entry::file(b"not a directory now", 0o644)));
    t.fix_nlinks();
    check_against("normalization and duplicates", &tar, entries, &t, ALL);
}

#[test]
fn whiteouts_and_opaque_markers() {
    if !tools() {
        return;
    }
    let layer = LayerTar::with([
        TarEntry::file(".wh.gone", "")
            .owner(3, 4)
            .mtime_ns(1_650_000_000, 5),
        TarEntry::dir("d"),
        TarEntry::file("d/.wh.sub", ""),
        TarEntry::dir("o").mode(0o750),
        TarEntry::file("o/.wh..wh..opq", ""),
        TarEntry::file("o/new", "new"),
        // An opaque marker in a directory no entry names.
        TarEntry::file("imp/.wh..wh..opq", ""),
        // aufs bookkeeping names carry nothing.
        TarEntry::file(".wh..wh.plnk.1234", "x"),
        TarEntry::dir(".wh..wh.orph"),
        // A real entry of the layer wins over its whiteout, in either order.
        TarEntry::file("keep", "kept"),
        TarEntry::file(".wh.keep", ""),
        TarEntry::file(".wh.keep2", ""),
        TarEntry::file("keep2", "kept too"),
        // A directory of this layer with a whiteout of its name replaces the lower one whole.
        TarEntry::dir("rdir"),
        TarEntry::file("rdir/x", "x"),
        TarEntry::file(".wh.rdir", ""),
        TarEntry::file(".wh.rdir2", ""),
        TarEntry::file("rdir2/y", "y"),
        // Whiteouts with long names.
        TarEntry::file(format!(".wh.{}", "w".repeat(200)), ""),
        TarEntry::file(format!("d/.wh.{}", "v".repeat(251)), "").pax(),
    ]);
    let (tar, entries, explicit) = layer.finish();
    let mut expected = expected_from_tar(&tar, &explicit);
    // GNU tar made `.wh..wh.orph` a directory; the translation only drops files.
    expected.remove_tree(".wh..wh.orph");
    expected.fix_nlinks();
    let gone = expected.get("gone").unwrap();
    assert_eq!(gone.kind, Kind::Char { major: 0, minor: 0 }, "oracle");
    check_against("whiteouts", &tar, entries, &expected, &[Compression::Gzip]);
}

#[test]
fn gnu_sparse_files() {
    if !tools() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().join("src");
    fs::create_dir(&dir).unwrap();
    // Seven data runs (more than the four the GNU header holds: extension headers follow), one
    // crossing a block boundary, and a hole at the end.
    run(Command::new("truncate")
        .args(["-s", "20M"])
        .arg(dir.join("sparse")));
    let runs: &[(u64, usize)] = &[
        (0, 4),
        (1 << 20, 512),
        (5 * (1 << 20) + 17, 100),
        (9 * (1 << 20) - 10, 4097),
        (12 << 20, 8192),
        (15 << 20, 1),
        (19 << 20, 3000),
    ];
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("sparse"))
            .unwrap();
        for (i, (at, len)) in runs.iter().enumerate() {
            f.seek(SeekFrom::Start(*at)).unwrap();
            f.write_all(&pattern(*len, 100 + i as u64)).unwrap();
        }
    }
    run(Command::new("truncate")
        .args(["-s", "1M"])
        .arg(dir.join("all_hole")));
    fs::write(dir.join("dense"), pattern(10_000, 7)).unwrap();
    let tar_path = src.path().join("sparse.tar");
    run(Command::new("tar")
        .args(["--format=gnu", "--sparse", "--numeric-owner", "-cf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(&dir)
        .arg("."));
    let tar = fs::read(&tar_path).unwrap();
    let sparse_headers = tar
        .chunks(512)
        .filter(|b| b.len() == 512 && b[156] == b'S')
        .count();
    assert!(sparse_headers >= 2, "GNU tar wrote old-GNU sparse entries");
    // `./` is an entry, so nothing is implicit.
    let expected = expected_from_tar(&tar, &BTreeSet::from([PathBuf::new()]));
    let entries = 4;
    check_against("GNU sparse", &tar, entries, &expected, &[Compression::Gzip]);
}

/// One GNU sparse file declaring 64 GiB, with a few bytes at its start, in its middle and at
/// its end (GNU tar `--format=gnu --sparse`: a 20 KiB tar, a few hundred bytes gzipped). What
/// broke: the converter wrote every hole as zeros, so this layer filled the disk (a run was
/// stopped at 20 GB written). Holes are now unmapped chunks: the image is a few MiB, the kernel
/// reads the file's 64 GiB with the data where GNU tar's extraction has it and zeros elsewhere.
#[test]
fn sparse_file_of_64_gib_is_stored_as_holes() {
    if !tools() {
        return;
    }
    const SIZE: u64 = 64 << 30;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("bomb");
    run(Command::new("truncate")
        .args(["-s", &SIZE.to_string()])
        .arg(&file));
    let runs: &[(u64, usize)] = &[(0, 5), ((32 << 30) + 12_345, 6000), (SIZE - 3, 3)];
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new().write(true).open(&file).unwrap();
        for (i, (at, len)) in runs.iter().enumerate() {
            f.seek(SeekFrom::Start(*at)).unwrap();
            f.write_all(&pattern(*len, 300 + i as u64)).unwrap();
        }
    }
    let tar_path = tmp.path().join("bomb.tar");
    run(Command::new("tar")
        .args(["--format=gnu", "--sparse", "--numeric-owner", "-cf"])
        .arg(&tar_path)
        .arg("-C")
        .arg(&dir)
        .arg("bomb"));
    fs::remove_file(&file).unwrap();
    let tar = fs::read(&tar_path).unwrap();
    assert!(
        tar.len() < 64 << 10,
        "GNU tar wrote a small archive: {}",
        tar.len()
    );
    let conv = convert(&tar, Compression::Gzip);
    assert!(
        conv.layer.erofs_size < 8 << 20,
        "the image holds the data, not the holes: {} bytes",
        conv.layer.erofs_size
    );
    let holes = common::oracles::files_with_holes(&conv.image);
    assert_eq!(holes.len(), 1, "one file with holes");
    let mapped = holes[0].2.iter().filter(|m| **m).count();
    assert!((3..=4).contains(&mapped), "chunks with data: {mapped}");

    // GNU tar extracts it as a sparse file too (it seeks over holes).
    let x = gnu_tar_extract(&tar);
    let theirs = fs::File::open(x.root.join("bomb")).unwrap();
    let mnt = mount_erofs(&conv.image);
    let ours = fs::File::open(mnt.path().join("bomb")).unwrap();
    assert_eq!(ours.metadata().unwrap().len(), SIZE);
    assert_eq!(theirs.metadata().unwrap().len(), SIZE, "oracle");
    let read = |f: &fs::File, at: u64, len: usize| {
        let mut buf = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(f, &mut buf, at).unwrap();
        buf
    };
    // Each run with a block of its surroundings, and points inside the holes.
    let mut probes: Vec<(u64, usize)> = runs
        .iter()
        .map(|(at, len)| (at.saturating_sub(4096), len + 8192))
        .collect();
    probes.extend([
        (1 << 30, 65_536),
        ((48 << 30) + 1, 4097),
        (SIZE - 5000, 5000),
    ]);
    for (at, len) in probes {
        let len = len.min((SIZE - at) as usize);
        assert_eq!(
            read(&ours, at, len),
            read(&theirs, at, len),
            "bytes at {at}"
        );
    }
    for (i, (at, len)) in runs.iter().enumerate() {
        assert_eq!(
            read(&ours, *at, *len),
            pattern(*len, 300 + i as u64),
            "run at {at}"
        );
    }
    assert!(
        read(&ours, 1 << 30, 65_536).iter().all(|b| *b == 0),
        "a hole"
    );
    // fsck.erofs 1.5 extracts the data chunks back to back (see fsck_view_of_holes).
    let x = fsck_extract(&conv.image);
    let extracted = fs::metadata(x.root.join("bomb")).unwrap().len();
    assert_eq!(extracted, mapped as u64 * (1u64 << holes[0].1).min(SIZE));
}

/// An old GNU sparse map lists at most `MAX_SPARSE_SEGMENTS` (2^20) segments per file: the map
/// is held in memory while the file converts. One more is `INVALID_ARCHIVE`; exactly that many
/// converts.
#[test]
fn sparse_map_beyond_the_segment_cap_is_invalid() {
    use ocicache_core::tar::MAX_SPARSE_SEGMENTS;
    for (segments, ok) in [
        (MAX_SPARSE_SEGMENTS, true),
        (MAX_SPARSE_SEGMENTS + 1, false),
    ] {
        let map: Vec<(u64, u64)> = (0..segments as u64).map(|i| (i * 2, 1)).collect();
        let real = segments as u64 * 2;
        let tar = gnu_sparse_tar("many", real, &map);
        let tmp = tempfile::tempdir().unwrap();
        let blob = tmp.path().join("blob");
        fs::write(&blob, &tar).unwrap();
        let got = convert_layer(
            &blob,
            &tmp.path().join("out.erofs"),
            &ConvertOptions::default(),
        );
        match (ok, got) {
            (true, Ok(layer)) => assert_eq!(layer.entries, 1),
            (false, Err(e)) => assert_eq!(e.code(), "INVALID_ARCHIVE", "{e}"),
            (_, other) => panic!("{segments} segments: {other:?}"),
        }
    }
}

/// An old GNU sparse entry (`S`), written by hand: `map` lists the data segments (offset,
/// length), the first four in the header, the rest in extension blocks of 21; each segment's
/// data is `0xAB` bytes.
fn gnu_sparse_tar(name: &str, real: u64, map: &[(u64, u64)]) -> Vec<u8> {
    fn octal(field: &mut [u8], v: u64) {
        let text = format!("{v:0width$o}", width = field.len() - 1);
        field[..text.len()].copy_from_slice(text.as_bytes());
    }
    fn slot(out: &mut [u8], (offset, len): (u64, u64)) {
        octal(&mut out[..12], offset);
        octal(&mut out[12..24], len);
    }
    let stored: u64 = map.iter().map(|(_, l)| l).sum();
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], stored);
    octal(&mut h[136..148], MTIME as u64);
    h[156] = b'S';
    h[257..265].copy_from_slice(b"ustar  \0");
    for (i, s) in map.iter().take(4).enumerate() {
        slot(&mut h[386 + i * 24..386 + (i + 1) * 24], *s);
    }
    h[482] = u8::from(map.len() > 4);
    octal(&mut h[483..495], real);
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    octal(&mut h[148..155], sum);
    let mut out = h.to_vec();
    let rest: Vec<&[(u64, u64)]> = map.get(4..).unwrap_or_default().chunks(21).collect();
    for (i, group) in rest.iter().enumerate() {
        let mut b = [0u8; 512];
        for (j, s) in group.iter().enumerate() {
            slot(&mut b[j * 24..(j + 1) * 24], *s);
        }
        b[504] = u8::from(i + 1 < rest.len());
        out.extend_from_slice(&b);
    }
    out.resize(out.len() + stored as usize, 0xAB);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

/// A folder with what each tar format can hold, made on disk: the tars GNU tar writes from it
/// are the layers. `rich` adds what only the GNU and PAX formats hold (names over 256 bytes,
/// long link targets, ids over 2097151, mtimes before 1970), `xattrs` what only PAX holds.
fn make_source(root: &Path, rich: bool, xattrs: bool) {
    let touch = |path: &Path, time: &str| {
        run(Command::new("touch").args(["-h", "-d", time]).arg(path));
    };
    let d = |p: &str| root.join(p);
    fs::create_dir_all(d("dir/sub")).unwrap();
    fs::write(d("dir/small"), "small file\n").unwrap();
    fs::write(d("dir/sub/big"), pattern(200_000, 5)).unwrap();
    fs::write(d("empty"), "").unwrap();
    fs::write(d("setuid"), "s").unwrap();
    fs::set_permissions(d("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(d("sticky")).unwrap();
    fs::set_permissions(d("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::hard_link(d("dir/small"), d("hardlink")).unwrap();
    std::os::unix::fs::symlink("dir/small", d("symlink")).unwrap();
    std::os::unix::fs::chown(d("dir/small"), Some(1000), Some(100)).unwrap();
    // Paths ustar splits into prefix and name (up to 215 bytes).
    let ustar_dir = d(&format!("{}/{}", "p".repeat(60), "q".repeat(60)));
    fs::create_dir_all(&ustar_dir).unwrap();
    fs::write(ustar_dir.join("f".repeat(90)), "in a long path").unwrap();
    run(Command::new("mkfifo").arg(d("fifo")));
    run(Command::new("mknod").arg(d("null")).args(["c", "1", "3"]));
    run(Command::new("mknod")
        .arg(d("disk"))
        .args(["b", "259", "70000"]));
    if rich {
        let long_dir = d(&"L".repeat(200));
        fs::create_dir(&long_dir).unwrap();
        fs::write(long_dir.join("n".repeat(150)), "in a 357-byte path").unwrap();
        std::os::unix::fs::symlink("t/".repeat(1500), d("long_link")).unwrap();
        fs::write(d("big_ids"), "b").unwrap();
        std::os::unix::fs::chown(d("big_ids"), Some(3_000_000), Some(4_000_000)).unwrap();
        fs::write(d("before_1970"), "old").unwrap();
        touch(&d("before_1970"), "@-86401");
        fs::write(d("name\nwith newline"), "nl").unwrap();
    }
    if xattrs {
        xattr::set(d("dir/small"), "user.comment", b"line one\nline two").unwrap();
        xattr::set(d("dir"), "trusted.dir", b"on a dir").unwrap();
        xattr::set(d("setuid"), "security.capability", &capability()).unwrap();
    }
    for (i, p) in [
        "dir/small",
        "dir/sub/big",
        "empty",
        "setuid",
        "fifo",
        "symlink",
    ]
    .iter()
    .enumerate()
    {
        touch(&d(p), &format!("@1700000000.{:09}", 123_456_789 + i * 1111));
    }
    for p in ["dir/sub", "dir", "sticky", ""] {
        touch(&d(p), "@1650000000.5");
    }
}

/// Layers as GNU tar writes them in each of its formats, converted and read back: the kernel
/// mount equals GNU tar's own extraction and the folder the tar was made from (at the
/// format's mtime precision).
#[test]
fn gnu_tar_formats() {
    if !tools() {
        return;
    }
    // (format, rich, xattrs, nanosecond mtimes)
    let formats = [
        ("v7", false, false, false),
        ("ustar", false, false, false),
        ("oldgnu", true, false, false),
        ("gnu", true, false, false),
        ("posix", true, true, true),
    ];
    for (format, rich, xattrs, nanos) in formats {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        make_source(&src, rich, xattrs);
        let tar_path = tmp.path().join("layer.tar");
        let mut cmd = Command::new("tar");
        cmd.arg(format!("--format={format}"))
            .args(["--numeric-owner", "-cf"])
            .arg(&tar_path);
        if xattrs {
            cmd.args(["--xattrs", "--xattrs-include=*"]);
        }
        let out = cmd.arg("-C").arg(&src).arg(".").output().unwrap();
        // v7 has no type for devices and fifos, nor room for names over 99 bytes: GNU tar
        // skips those with a warning (exit 2).
        let long_ustar = format!("{}/{}", "p".repeat(60), "q".repeat(60));
        let skipped: BTreeSet<&str> = if format == "v7" {
            ["fifo", "null", "disk", &long_ustar].into()
        } else {
            assert!(out.status.success(), "tar --format={format}: {out:?}");
            BTreeSet::new()
        };
        let tar = fs::read(&tar_path).unwrap();
        let mut source = scan(&src);
        for p in &skipped {
            source.remove_tree(p);
        }
        source.fix_nlinks();
        let explicit: BTreeSet<PathBuf> = source
            .entries
            .iter()
            .filter(|(_, e)| e.is_dir())
            .map(|(p, _)| p.clone())
            .collect();
        let expected = expected_from_tar(&tar, &explicit);
        let conv = convert(&tar, Compression::Gzip);
        let name = format!("GNU tar --format={format}");
        verify(&name, &conv, &expected, CompareOptions::default());
        if !nanos {
            for e in source.entries.values_mut() {
                e.mtime_nsec = 0;
            }
        }
        let mnt = mount_erofs(&conv.image);
        let opts = CompareOptions::labeled(&format!("{name}: source folder vs kernel mount"));
        compare(&source, &scan(mnt.path()), &opts);
    }
}

/// Appends an entry whose PAX records and header say different things, raw.
fn append_raw(
    b: &mut tar::Builder<Vec<u8>>,
    records: &[(&str, &[u8])],
    name: &[u8],
    kind: tar::EntryType,
    header_size: u64,
    link: &[u8],
    data: &[u8],
) {
    if !records.is_empty() {
        b.append_pax_extensions(records.iter().copied()).unwrap();
    }
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_mode(0o644);
    h.set_uid(123);
    h.set_gid(456);
    h.set_mtime(1_000_000_000);
    h.set_entry_type(kind);
    h.set_size(header_size);
    h.set_cksum();
    // The builder writes `data` whatever the header's size says, padded to a block.
    b.append(&h, data).unwrap();
}

/// PAX records override the header (POSIX): `size`, `uid`, `gid`, `mtime`, `path`, `linkpath`.
#[test]
fn pax_records_override_the_header() {
    if !tools() {
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    let data = pattern(5000, 11);
    append_raw(
        &mut b,
        &[("size", b"5000")],
        b"sized",
        tar::EntryType::Regular,
        0,
        b"",
        &data,
    );
    append_raw(
        &mut b,
        &[
            ("uid", b"5000000"),
            ("gid", b"70000"),
            ("mtime", b"1700000000.5"),
        ],
        b"owned",
        tar::EntryType::Regular,
        1,
        b"",
        b"o",
    );
    append_raw(
        &mut b,
        &[("path", b"renamed"), ("linkpath", b"real-target")],
        b"header-name",
        tar::EntryType::Symlink,
        0,
        b"header-target",
        b"",
    );
    append_raw(
        &mut b,
        &[("path", b"dir/file")],
        b"ignored",
        tar::EntryType::Regular,
        2,
        b"",
        b"df",
    );
    let tar = b.into_inner().unwrap();
    let expected = expected_from_tar(&tar, &BTreeSet::new());
    let sized = expected.get("sized").unwrap();
    assert_eq!(sized.size, 5000, "oracle: GNU tar honours PAX size");
    assert_eq!(expected.get("owned").unwrap().uid, 5_000_000, "oracle");
    check_against("PAX overrides", &tar, 4, &expected, &[Compression::None]);
}

/// Entry types from older writers: `7` (contiguous) is a regular file, NUL ("old regular")
/// too, and a GNU dump directory (`D`) is a directory whose stored listing is skipped.
#[test]
fn contiguous_old_regular_and_dump_directory_entries() {
    if !tools() {
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    append_raw(
        &mut b,
        &[],
        b"nul_typed_file",
        tar::EntryType::new(0),
        3,
        b"",
        b"nul",
    );
    append_raw(
        &mut b,
        &[],
        b"contiguous",
        tar::EntryType::Continuous,
        3,
        b"",
        b"abc",
    );
    let listing = b"Yname\0Nother\0\0";
    append_raw(
        &mut b,
        &[],
        b"dumpdir",
        tar::EntryType::new(b'D'),
        listing.len() as u64,
        b"",
        listing,
    );
    append_raw(
        &mut b,
        &[],
        b"after",
        tar::EntryType::Regular,
        2,
        b"",
        b"ok",
    );
    let tar = b.into_inner().unwrap();
    let expected = expected_from_tar(&tar, &BTreeSet::from([rel("dumpdir")]));
    check_against("old entry types", &tar, 4, &expected, &[Compression::None]);
}

/// `git archive` starts its tars with a global PAX header holding the commit id.
#[test]
fn global_pax_header_is_skipped() {
    if !tools() {
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    let record = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..17].copy_from_slice(b"pax_global_header");
    h.set_mode(0o666);
    h.set_entry_type(tar::EntryType::XGlobalHeader);
    h.set_size(record.len() as u64);
    h.set_cksum();
    b.append(&h, record.as_slice()).unwrap();
    let mut layer = LayerTar {
        builder: b,
        entries: 0,
        explicit_dirs: BTreeSet::new(),
    };
    layer
        .add(&TarEntry::dir("repo"))
        .add(&TarEntry::file("repo/README", "readme\n"));
    check_fixture("global PAX header", layer, &[Compression::Gzip]);
}

/// Docker images carry empty layers (the 1024 zero bytes of an empty tar, usually gzipped):
/// an image holding only the root.
#[test]
fn empty_layer() {
    if !tools() {
        return;
    }
    let conv = check_fixture("empty layer", LayerTar::new(), ALL);
    assert_eq!(conv.layer.tar_size, 1024);
}

/// Blobs of several gzip members or zstd frames (parallel compressors write them) are one
/// stream.
#[test]
fn multi_member_gzip_and_multi_frame_zstd() {
    if !tools() {
        return;
    }
    let layer = LayerTar::with([
        TarEntry::dir("m"),
        TarEntry::file("m/a", pattern(30_000, 1)),
        TarEntry::file("m/b", pattern(30_000, 2)),
    ]);
    let (tar, entries, explicit) = layer.finish();
    let expected = expected_from_tar(&tar, &explicit);
    let cuts = [1, 512, 20_000, tar.len() - 1];
    let mut gz = Vec::new();
    let mut zst = Vec::new();
    let mut at = 0;
    for cut in cuts.into_iter().chain([tar.len()]) {
        gz.extend(Compression::Gzip.apply(&tar[at..cut]));
        zst.extend(Compression::Zstd.apply(&tar[at..cut]));
        at = cut;
    }
    for (what, blob) in [("gzip members", gz), ("zstd frames", zst)] {
        let conv = convert_blob(&tar, &blob, true);
        assert_eq!(conv.layer.entries, entries);
        verify(what, &conv, &expected, CompareOptions::default());
    }
}

/// More xattrs than a block holds on one inode (three 3000-byte values; 300 names, 255 of
/// them shared at most; a 65535-byte value; a shared value over a block), built by hand:
/// ext4, where GNU tar extracts, cannot hold them.
#[test]
fn xattrs_beyond_one_block() {
    if !tools() {
        return;
    }
    let big = |i: u64| no_newlines(pattern(3000, 20 + i));
    let many = |mut e: TarEntry| {
        for i in 0..300 {
            e = e.xattr(&format!("user.s{i:03}"), format!("shared value {i}"));
        }
        e
    };
    let layer = LayerTar::with([
        TarEntry::file("big3", "b")
            .xattr("user.big1", big(1))
            .xattr("user.big2", big(2))
            .xattr("trusted.big3", big(3)),
        many(TarEntry::file("s1", "1")),
        many(TarEntry::file("s2", "2")),
        many(TarEntry::dir("d")),
        TarEntry::file("d/c", "c"),
        // The largest value Linux allows, and a shared value larger than a block.
        TarEntry::file("max", "m").xattr("user.max", no_newlines(pattern(65_535, 30))),
        TarEntry::file("w1", "1").xattr("user.wide", no_newlines(pattern(5000, 31))),
        TarEntry::file("w2", "2").xattr("user.wide", no_newlines(pattern(5000, 31))),
    ]);
    let (tar, entries, _) = layer.finish();
    let with_many = |mut e: Entry| {
        for i in 0..300 {
            e = e.xattr(
                &format!("user.s{i:03}"),
                format!("shared value {i}").as_bytes(),
            );
        }
        e.mtime(MTIME, 0)
    };
    let mut t = Tree::new();
    t.insert("", Entry::dir(0o755))
        .insert(
            "big3",
            Entry::file(b"b", 0o644)
                .mtime(MTIME, 0)
                .xattr("user.big1", &big(1))
                .xattr("user.big2", &big(2))
                .xattr("trusted.big3", &big(3)),
        )
        .insert("s1", with_many(Entry::file(b"1", 0o644)))
        .insert("s2", with_many(Entry::file(b"2", 0o644)))
        .insert("d", with_many(Entry::dir(0o755)))
        .insert("d/c", Entry::file(b"c", 0o644).mtime(MTIME, 0));
    let max = no_newlines(pattern(65_535, 30));
    let wide = no_newlines(pattern(5000, 31));
    t.insert(
        "max",
        Entry::file(b"m", 0o644)
            .mtime(MTIME, 0)
            .xattr("user.max", &max),
    )
    .insert(
        "w1",
        Entry::file(b"1", 0o644)
            .mtime(MTIME, 0)
            .xattr("user.wide", &wide),
    )
    .insert(
        "w2",
        Entry::file(b"2", 0o644)
            .mtime(MTIME, 0)
            .xattr("user.wide", &wide),
    );
    t.fix_nlinks();
    check_against(
        "xattrs beyond a block",
        &tar,
        entries,
        &t,
        &[Compression::Zstd],
    );
}

/// Every fixture feature in one layer, converted from all three compressions, compared through
/// `dump.erofs --ls` too: an independent reading of the directory entries.
#[test]
fn dump_erofs_listing_matches() {
    if !tools() {
        return;
    }
    let layer = LayerTar::with([
        TarEntry::dir("etc"),
        TarEntry::file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        TarEntry::symlink("etc/mtab", "/proc/self/mounts"),
        TarEntry::char_dev("null", 1, 3),
        TarEntry::fifo("pipe"),
        TarEntry::hardlink("passwd2", "etc/passwd"),
        TarEntry::file(".wh.gone", ""),
    ]);
    let (tar, _, _) = layer.finish();
    let conv = convert(&tar, Compression::Zstd);
    let listing = dump_erofs(&conv.image, &["--ls", "--path=/"]);
    let rows: Vec<(String, String, String)> = listing
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            match cols.as_slice() {
                [nid, ty, name] if nid.parse::<u64>().is_ok() => {
                    Some(((*nid).into(), (*ty).into(), (*name).into()))
                }
                _ => None,
            }
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        names,
        [".", "..", "etc", "gone", "null", "passwd2", "pipe"],
        "{listing}"
    );
    // Types as the kernel's FT_* codes: dir 2, char 3, file 1, fifo 5.
    let types: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(types, ["2", "2", "2", "3", "3", "1", "5"], "{listing}");
    let passwd2_nid = &rows[5].0;
    let etc = dump_erofs(&conv.image, &["--ls", "--path=/etc"]);
    assert!(
        etc.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [passwd2_nid, "1", "passwd"]),
        "a hardlink is the same nid:\n{etc}"
    );
}

// ---------------------------------------------------------------------------------------------
// Regressions: fidelity bugs these tests found in the converter (each named after its bug).

/// Linux gives every symlink permissions 0777 (tar, umoci and `fsck.erofs --extract` all make
/// them so), whatever mode a tar header states; a converted image must too. What broke: the
/// header's mode was stored, so the kernel mount showed `lrw-r--r--`.
#[test]
fn symlink_permissions_are_0777_whatever_the_header_says() {
    if !tools() {
        return;
    }
    let layer = LayerTar::with([
        TarEntry::file("f", "f"),
        TarEntry::symlink("link644", "f").mode(0o644),
        TarEntry::symlink("link000", "f").mode(0o000),
    ]);
    check_fixture("symlink modes", layer, &[Compression::None]);
}

/// PAX records are length-prefixed, so a value may hold any byte, newlines included: binary
/// xattrs (a `security.capability` permitting CAP_DAC_OVERRIDE and CAP_FOWNER has the byte
/// 0x0a), text xattrs, and names (Go's archive/tar writes a PAX `path` for every name that is
/// not ASCII). GNU tar extracts all three. What broke: the `tar` crate splits PAX records at
/// newlines, and the whole layer failed with `INVALID_ARCHIVE` ("malformed pax extension").
#[test]
fn pax_records_may_hold_newlines() {
    if !tools() {
        return;
    }
    let mut cap = capability();
    cap[4] = 0x0a; // permitted: CAP_DAC_OVERRIDE | CAP_FOWNER
    let layer = LayerTar::with([
        TarEntry::file("cap", "c").xattr("security.capability", cap),
        TarEntry::file("text", "t").xattr("user.comment", "line one\nline two\n"),
        TarEntry::file("caf\u{e9}\nmenu", "n").pax(),
    ]);
    check_fixture("newlines in PAX records", layer, &[Compression::Gzip]);
}

/// An upper layer deleting a file whose name is 252 to 255 bytes long carries `.wh.<name>`, a
/// tar member name of up to 259 bytes; the whiteout it becomes is named `<name>`, which fits.
/// What broke: the 255-byte limit was applied to the member name, so such a layer failed
/// with `INVALID_ARCHIVE`.
#[test]
fn whiteout_of_a_255_byte_name() {
    if !tools() {
        return;
    }
    let long = "L".repeat(255);
    let layer = LayerTar::with([TarEntry::file(format!(".wh.{long}"), "")]);
    let (tar, entries, _) = layer.finish();
    let mut expected = Tree::new();
    expected.insert("", Entry::dir(0o755));
    expected.insert(
        &long,
        Entry::new(Kind::Char { major: 0, minor: 0 }, 0).mtime(MTIME, 0),
    );
    expected.fix_nlinks();
    check_against(
        "whiteout of a 255-byte name",
        &tar,
        entries,
        &expected,
        &[Compression::None],
    );
}

/// Old tars (and BSD tar) store directories as NUL-typed ("old regular") entries whose names
/// end in `/`; GNU tar and Go's archive/tar (Docker's reader) extract them as directories.
/// What broke: they became regular files, so an empty one was a file and one with children
/// an implicit directory that lost the entry's mode, owner and mtime.
#[test]
fn nul_typed_entry_ending_in_slash_is_a_directory() {
    if !tools() {
        return;
    }
    let mut b = tar::Builder::new(Vec::new());
    let old_regular = tar::EntryType::new(0);
    append_raw(&mut b, &[], b"olddir/", old_regular, 0, b"", b"");
    append_raw(
        &mut b,
        &[],
        b"olddir/f",
        tar::EntryType::Regular,
        1,
        b"",
        b"x",
    );
    append_raw(&mut b, &[], b"emptyold/", old_regular, 0, b"", b"");
    let tar = b.into_inner().unwrap();
    let explicit = ["olddir", "emptyold"].iter().map(rel).collect();
    let expected = expected_from_tar(&tar, &explicit);
    assert!(expected.get("emptyold").unwrap().is_dir(), "oracle");
    check_against(
        "old-style directories",
        &tar,
        3,
        &expected,
        &[Compression::None],
    );
}

/// A folder of names that are not ASCII, for writers that handle them each their own way:
/// Greek, CJK, emoji and mixed names, a top-level name with no ASCII at all (Go's USTAR name
/// for it is empty), an empty file whose header name would end in `/`, and directories,
/// symlinks (with non-ASCII targets) and hardlinks so named.
fn make_non_ascii_source(root: &Path) {
    let d = |p: &str| root.join(p);
    fs::create_dir_all(d("names")).unwrap();
    fs::write(d("names/Ωμέγα"), "omega\n").unwrap();
    fs::write(d("names/日本語"), pattern(5000, 21)).unwrap();
    fs::write(d("names/🦀"), "crab").unwrap();
    fs::write(d("names/mixed-ünïcode.txt"), "mixed").unwrap();
    fs::write(d("names/空"), "").unwrap();
    fs::set_permissions(d("names/空"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(d("Ωμέγα"), "top-level, no ASCII").unwrap();
    fs::write(d("😀"), "top-level emoji").unwrap();
    fs::create_dir_all(d("目录/子目录")).unwrap();
    fs::write(d("目录/子目录/файл"), "deep").unwrap();
    fs::create_dir(d("Δ")).unwrap();
    fs::set_permissions(d("Δ"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("Ωμέγα", d("names/σύνδεσμος")).unwrap();
    std::os::unix::fs::symlink("../目录/子目录/файл", d("names/link-to-файл")).unwrap();
    std::os::unix::fs::symlink("names/🦀", d("🔗")).unwrap();
    fs::hard_link(d("names/Ωμέγα"), d("names/硬链接")).unwrap();
    fs::hard_link(d("names/日本語"), d("ハードリンク")).unwrap();
    std::os::unix::fs::chown(d("names/日本語"), Some(1000), Some(1000)).unwrap();
    // Whole seconds, which every writer's format holds.
    run(Command::new("find").arg(root).args([
        "-exec",
        "touch",
        "-h",
        "-d",
        "@1650000000",
        "{}",
        "+",
    ]));
}

/// The directories a tar's entries name and its entry count, as the `tar` crate reads them
/// (PAX `path` and GNU long names applied; these fixtures hold no newline in a name).
fn tar_dirs_and_entries(tar: &[u8]) -> (BTreeSet<PathBuf>, u64) {
    let mut dirs = BTreeSet::new();
    let mut entries = 0;
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        entries += 1;
        if entry.header().entry_type() == tar::EntryType::Directory {
            dirs.insert(simple_normalize(&entry.path_bytes()));
        }
    }
    (dirs, entries)
}

/// Converts a writer's tar of [`make_non_ascii_source`] and checks it through the kernel and
/// `fsck.erofs --extract` against GNU tar's extraction of the same tar; every non-ASCII name
/// that is a file in the source must be a file in the image.
fn check_non_ascii_tar(name: &str, tar: &[u8]) {
    let (explicit, entries) = tar_dirs_and_entries(tar);
    let expected = expected_from_tar(tar, &explicit);
    for file in ["names/Ωμέγα", "names/空", "Ωμέγα", "😀", "names/硬链接"] {
        let e = expected
            .get(file)
            .unwrap_or_else(|| panic!("{name}: GNU tar extracts {file}"));
        assert!(
            matches!(e.kind, Kind::File { .. }),
            "{name}: oracle: {file} is a file"
        );
    }
    let conv = check_against(name, tar, entries, &expected, &[Compression::None]);
    let mnt = mount_erofs(&conv.image);
    let omega = mnt.path().join("names/Ωμέγα");
    assert!(
        omega.symlink_metadata().unwrap().is_file(),
        "{name}: names/Ωμέγα is a file"
    );
    assert_eq!(
        fs::read(&omega).unwrap(),
        b"omega\n",
        "{name}: names/Ωμέγα's data"
    );
}

/// Go's archive/tar (docker, buildkit, umoci, skopeo, ko, crane) writes a PAX `path` record for
/// a name that is not ASCII and puts an ASCII-only rendering of the name in the USTAR header:
/// `names/Ωμέγα` has the header name `names/`. What broke: the old writers' rule "a regular
/// file whose name ends in `/` is a directory" was applied to that header name, so the image
/// (and fsmeta, and the VMDK) held an empty directory with mode 0644 where the file was. The
/// layer here is umoci's (`umoci insert` of a folder).
#[test]
fn non_ascii_file_names_from_go_writers_stay_files() {
    if !tools() || !require_tool("umoci") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_non_ascii_source(&src);
    let image = UmociImage::new();
    image.insert(&src);
    let digests = image.layer_digests();
    assert_eq!(digests.len(), 1);
    let blob = fs::read(image.blob(&digests[0])).unwrap();
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(blob.as_slice()), &mut tar)
        .unwrap();
    // The fixture holds what broke: a regular-file header whose name ends in `/`, and one whose
    // name is empty, each named by a PAX `path`.
    let headers: Vec<&[u8]> = tar.chunks(512).filter(|b| b.len() == 512).collect();
    let regular_named = |n: &[u8]| {
        headers.iter().any(|h| {
            h[156] == b'0'
                && h[..100].split(|b| *b == 0).next() == Some(n)
                && h[257..262] == *b"ustar"
        })
    };
    assert!(
        regular_named(b"names/"),
        "umoci writes `names/` for names/Ωμέγα"
    );
    assert!(regular_named(b""), "umoci writes an empty name for Ωμέγα");
    // umoci 0.4 ends its layers without the last padding and the end-of-archive blocks, which
    // GNU tar refuses: the oracle reads the layer with them added, and umoci's own blob is
    // compared with the source folder below.
    let mut whole = tar.clone();
    whole.resize(whole.len().div_ceil(512) * 512 + 1024, 0);
    check_non_ascii_tar("umoci insert (Go archive/tar)", &whole);
    let source = {
        let mut t = scan(&src);
        t.fix_nlinks();
        t
    };
    let conv = convert_blob(&tar, &blob, true);
    let mnt = mount_erofs(&conv.image);
    // umoci stores the folder as `/`: the root's metadata is the temp folder's.
    let opts =
        CompareOptions::labeled("source folder vs kernel mount of umoci's layer").skip_meta("");
    compare(&source, &scan(mnt.path()), &opts);
}

/// The same names as bsdtar (libarchive, restricted PAX) and Python's `tarfile` (PAX and GNU
/// formats) write them.
#[test]
fn non_ascii_names_from_bsdtar_and_python() {
    if !tools() || !require_tool("bsdtar") || !require_tool("python3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    make_non_ascii_source(&src);
    let bsd = tmp.path().join("bsdtar.tar");
    run(Command::new("bsdtar")
        .arg("-cf")
        .arg(&bsd)
        .arg("-C")
        .arg(&src)
        .arg("."));
    check_non_ascii_tar("bsdtar", &fs::read(&bsd).unwrap());
    for format in ["PAX_FORMAT", "GNU_FORMAT"] {
        let out = tmp.path().join(format!("{format}.tar"));
        let script = format!(
            "import sys, tarfile\n\
             with tarfile.open(sys.argv[1], 'w', format=tarfile.{format}) as t:\n\
             \x20   t.add(sys.argv[2], arcname='.')\n"
        );
        run(Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&out)
            .arg(&src));
        check_non_ascii_tar(
            &format!("Python tarfile {format}"),
            &fs::read(&out).unwrap(),
        );
    }
}

/// A plain tar is told from compressed blobs by content; its first bytes are the first
/// member's name, which may well start with `BZh` (bzip2's magic). What broke: the layer was
/// refused as bzip2 (`UNSUPPORTED`), although its first block is a valid tar header.
#[test]
fn plain_tar_whose_first_name_starts_like_bzip2() {
    if !tools() {
        return;
    }
    let layer = LayerTar::with([TarEntry::file("BZh9-notes.txt", "not bzip2\n")]);
    check_fixture("first name BZh", layer, &[Compression::None]);
}

// ---------------------------------------------------------------------------------------------
// Bad input.

fn convert_err(blob: &[u8], options: &ConvertOptions) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("blob");
    fs::write(&path, blob).unwrap();
    match convert_layer(&path, &tmp.path().join("out.erofs"), options) {
        Ok(layer) => panic!("converted: {layer:?}"),
        Err(e) => e.code().to_owned(),
    }
}

#[test]
fn bad_input_error_codes() {
    let good = LayerTar::with([
        TarEntry::dir("d"),
        TarEntry::file("d/f", pattern(20_000, 1)),
        TarEntry::file("d/g", "g"),
    ])
    .finish()
    .0;
    let gz = common::gzip(&good);
    let zst = Compression::Zstd.apply(&good);
    let none = ConvertOptions::default();
    let wrong = Some(digest(b"something else"));
    let with_blob = |d: Option<Digest>| ConvertOptions {
        blob_digest: d,
        diff_id: None,
    };
    let with_diff = |d: Option<Digest>| ConvertOptions {
        blob_digest: None,
        diff_id: d,
    };
    let raw_entry = |name: &[u8], data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        (h, data.to_vec())
    };
    let bad_checksum = {
        let mut t = good.clone();
        t[100] ^= 0x01; // mode field of the first header
        t
    };
    let bad_size_field = {
        let (mut h, data) = raw_entry(b"f", b"x");
        h.as_old_mut().size = *b"zzzzzzzzzzz\0";
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, data.as_slice()).unwrap();
        b.into_inner().unwrap()
    };
    let long = |n: usize, long: Long| {
        let mut e = TarEntry::file(format!("dir/{}", "n".repeat(n)), "x");
        e.long = long;
        LayerTar::with([e]).finish().0
    };
    let pax_sparse = {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("GNU.sparse.major", b"1".as_slice()),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"sparse"),
            ("GNU.sparse.realsize", b"4096"),
        ])
        .unwrap();
        let (h, data) = raw_entry(b"GNUSparseFile.0/sparse", &[b'0'; 512]);
        b.append(&h, data.as_slice()).unwrap();
        b.into_inner().unwrap()
    };
    let pax_only = {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("path", b"x".as_slice())])
            .unwrap();
        b.into_inner().unwrap()[..1024].to_vec()
    };
    let gnu_long_cut = {
        let t = long(300, Long::Gnu);
        t[..512 + 100].to_vec()
    };
    let bad_pax_len = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::XHeader);
        let record = b"99 path=x\n";
        h.set_size(record.len() as u64);
        h.set_cksum();
        b.append(&h, record.as_slice()).unwrap();
        let (h, data) = raw_entry(b"f", b"x");
        b.append(&h, data.as_slice()).unwrap();
        b.into_inner().unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, ConvertOptions, &str)> = vec![
        (
            "wrong blob digest (plain)",
            good.clone(),
            with_blob(wrong.clone()),
            "DIGEST_MISMATCH",
        ),
        (
            "wrong blob digest (gzip)",
            gz.clone(),
            with_blob(wrong.clone()),
            "DIGEST_MISMATCH",
        ),
        (
            "blob digest given the diff_id (gzip)",
            gz.clone(),
            with_blob(Some(digest(&good))),
            "DIGEST_MISMATCH",
        ),
        (
            "wrong diff_id (gzip)",
            gz.clone(),
            with_diff(wrong.clone()),
            "DIGEST_MISMATCH",
        ),
        (
            "wrong diff_id (zstd)",
            zst.clone(),
            with_diff(wrong.clone()),
            "DIGEST_MISMATCH",
        ),
        (
            "diff_id given the blob digest (zstd)",
            zst.clone(),
            with_diff(Some(digest(&zst))),
            "DIGEST_MISMATCH",
        ),
        (
            "truncated gzip",
            gz[..gz.len() / 2].to_vec(),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "gzip without its trailer",
            gz[..gz.len() - 4].to_vec(),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "truncated zstd",
            zst[..zst.len() / 2].to_vec(),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "plain tar cut inside file data",
            good[..512 * 3 + 100].to_vec(),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "plain tar cut inside a header",
            good[..512 + 200].to_vec(),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "hardlink to nothing",
            LayerTar::with([TarEntry::file("a", "a"), TarEntry::hardlink("b", "missing")])
                .finish()
                .0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "hardlink to a directory",
            LayerTar::with([TarEntry::dir("d"), TarEntry::hardlink("b", "d")])
                .finish()
                .0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "hardlink to a later entry",
            LayerTar::with([TarEntry::hardlink("b", "a"), TarEntry::file("a", "a")])
                .finish()
                .0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "256-byte name (GNU)",
            long(256, Long::Gnu),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "256-byte name (PAX)",
            long(256, Long::Pax),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "corrupt header checksum",
            bad_checksum,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "non-octal size field",
            bad_size_field,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "gzip of something that is not a tar",
            common::gzip(&[0x5a; 3000]),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        ("empty blob", Vec::new(), none.clone(), "INVALID_ARCHIVE"),
        (
            "stream ends after a PAX header",
            pax_only.clone(),
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "stream ends inside a GNU long name",
            gnu_long_cut,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "PAX record with a wrong length",
            bad_pax_len,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "NUL in a PAX path",
            LayerTar::with([TarEntry::file(b"a\0b\xff", "x").pax()])
                .finish()
                .0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "uid over 32 bits",
            LayerTar::with([TarEntry::file("f", "x").owner(1 << 32, 0).pax_ids()])
                .finish()
                .0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "a file naming the root",
            LayerTar::with([TarEntry::file("a/..", "x")]).finish().0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "256-byte directory name",
            LayerTar::with([TarEntry::file(format!("{}/f", "d".repeat(256)), "x")])
                .finish()
                .0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "whiteout of a 256-byte name",
            LayerTar::with([TarEntry::file(format!(".wh.{}", "w".repeat(256)), "")])
                .finish()
                .0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "symlink target of 4096 bytes",
            LayerTar::with([TarEntry::symlink("l", "t".repeat(4096))])
                .finish()
                .0,
            none.clone(),
            "INVALID_ARCHIVE",
        ),
        (
            "xattr outside EROFS's namespaces",
            LayerTar::with([TarEntry::file("f", "x").xattr("foo.bar", "1")])
                .finish()
                .0,
            none.clone(),
            "UNSUPPORTED",
        ),
        ("PAX sparse file", pax_sparse, none.clone(), "UNSUPPORTED"),
        (
            "bzip2 blob",
            [b"BZh91AY&SY".as_slice(), &[0x42; 100]].concat(),
            none.clone(),
            "UNSUPPORTED",
        ),
        (
            "xz blob",
            [b"\xfd7zXZ\0".as_slice(), &[0x42; 100]].concat(),
            none.clone(),
            "UNSUPPORTED",
        ),
    ];
    let mut failures = Vec::new();
    for (name, blob, options, want) in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("blob");
        fs::write(&path, blob).unwrap();
        match convert_layer(&path, &tmp.path().join("out.erofs"), options) {
            Ok(layer) => failures.push(format!("{name}: converted ({} entries)", layer.entries)),
            Err(e) if e.code() != *want => {
                failures.push(format!("{name}: {} ({e}), expected {want}", e.code()))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "wrong outcomes:\n  {}",
        failures.join("\n  ")
    );
    // The good blobs convert (the cases above fail for their defect only).
    for blob in [&good, &gz, &zst] {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("blob");
        fs::write(&path, blob).unwrap();
        convert_layer(&path, &tmp.path().join("out.erofs"), &none).unwrap();
    }
}

/// GNU tar's own PAX sparse format (`--format=posix --sparse`) is refused as unsupported.
#[test]
fn gnu_tar_pax_sparse_is_unsupported() {
    if !require_tool("tar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    fs::create_dir(&dir).unwrap();
    run(Command::new("truncate")
        .args(["-s", "1M"])
        .arg(dir.join("sparse")));
    fs::write(dir.join("data"), "x").unwrap();
    let tar = tmp.path().join("pax.tar");
    run(Command::new("tar")
        .args(["--format=posix", "--sparse", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg("."));
    assert_eq!(
        convert_err(&fs::read(&tar).unwrap(), &ConvertOptions::default()),
        "UNSUPPORTED"
    );
}

// ---------------------------------------------------------------------------------------------
// Layers stacked with overlayfs, against umoci.

/// Converts `tar` and mounts it.
fn mounted(tar: &[u8]) -> (Converted, Mount) {
    let conv = convert(tar, Compression::Gzip);
    let mnt = mount_erofs(&conv.image);
    (conv, mnt)
}

/// The merged view of `layers` (bottom first) through overlayfs over their EROFS images,
/// compared with `umoci unpack` of the same layers. `skip_meta` are directories that only
/// implicitly exist in an upper layer: overlayfs shows that layer's made-up metadata (0755,
/// root, mtime 0) and umoci keeps or invents its own; the fsmeta merge, not the layer image,
/// keeps the lower layer's metadata for them.
fn check_stack(name: &str, layers: &[Vec<u8>], skip_meta: &[&str]) {
    let mounts: Vec<(Converted, Mount)> = layers.iter().map(|t| mounted(t)).collect();
    let lowers: Vec<&Path> = mounts.iter().rev().map(|(_, m)| m.path()).collect();
    let merged = mount_overlay(&lowers);
    let actual = scan(merged.path());
    let umoci = UmociImage::new();
    for t in layers {
        umoci.add_layer(t);
    }
    let unpacked = umoci.unpack();
    let expected = scan(&unpacked.root);
    // umoci unpacks the root with its own metadata (it is the bundle's folder), and overlayfs
    // reports merged directories with one link.
    let mut opts = CompareOptions::labeled(&format!("{name}: umoci unpack vs overlay of EROFS"))
        .skip_meta("")
        .no_dir_nlink();
    for p in skip_meta {
        opts = opts.skip_meta(p);
    }
    compare(&expected, &actual, &opts);
    drop(merged);
    drop(mounts);
}

#[test]
fn overlay_stack_matches_umoci_unpack() {
    if !tools() || !require_tool("umoci") {
        return;
    }
    let keepdir = || {
        TarEntry::dir("keepdir")
            .mode(0o705)
            .owner(4, 5)
            .xattr("user.lower", "yes")
    };
    let lower = LayerTar::with([
        TarEntry::dir("etc"),
        TarEntry::file("etc/keep.txt", "lower keep\n"),
        TarEntry::file("etc/replace.txt", "lower version\n").owner(1, 1),
        TarEntry::file("del.txt", "to delete\n"),
        TarEntry::dir("a").mode(0o750).mtime_ns(1_500_000_000, 5),
        TarEntry::file("a/f1", "a1"),
        TarEntry::file("a/f2", "a2"),
        TarEntry::dir("deldir"),
        TarEntry::file("deldir/y", "y"),
        TarEntry::dir("deldir/sub"),
        TarEntry::file("deldir/sub/z", "z"),
        TarEntry::dir("opq").mode(0o750),
        TarEntry::file("opq/lowerfile", "hidden by opaque"),
        TarEntry::dir("opq/sub"),
        TarEntry::file("opq/sub/x", "x"),
        TarEntry::dir("redo"),
        TarEntry::file("redo/old", "old"),
        TarEntry::dir("implicit_above").mode(0o700).owner(9, 9),
        TarEntry::file("implicit_above/lower", "l"),
        keepdir(),
        TarEntry::file("keepdir/k", "k"),
        TarEntry::symlink("link", "etc/keep.txt"),
        TarEntry::file("bin", pattern(5000, 1)).mode(0o755),
        TarEntry::hardlink("bin2", "bin"),
        TarEntry::fifo("fifo"),
        TarEntry::file("gone_later", "g"),
    ])
    .finish()
    .0;
    // As Docker writes a diff: every changed path's parents are entries too, with their
    // (unchanged) metadata.
    let upper = LayerTar::with([
        TarEntry::file(".wh.del.txt", ""),
        TarEntry::file(".wh.deldir", ""),
        TarEntry::dir("a").mode(0o750).mtime_ns(1_500_000_000, 5),
        TarEntry::file("a/.wh.f2", ""),
        TarEntry::file("a/f3", "new in an existing dir"),
        TarEntry::dir("etc"),
        TarEntry::file("etc/replace.txt", "upper version\n").mode(0o600),
        TarEntry::dir("opq").mode(0o755),
        TarEntry::file("opq/.wh..wh..opq", ""),
        TarEntry::file("opq/newfile", "only this"),
        // A whiteout, then a directory of that name: the lower one is replaced whole.
        TarEntry::file(".wh.redo", ""),
        TarEntry::file("redo/new", "new"),
        keepdir(),
        TarEntry::file("keepdir/k2", "k2"),
        TarEntry::symlink(".wh.link", "ignored"),
        TarEntry::file("link", "now a file"),
        TarEntry::file(".wh.fifo", ""),
        TarEntry::dir("fifo"),
        TarEntry::file("fifo/inside", "a dir where a fifo was"),
        TarEntry::file("implicit_above/upper", "u"),
        TarEntry::dir("gone_later"),
    ])
    .finish()
    .0;
    check_stack("two layers", &[lower, upper], &["redo", "implicit_above"]);
}

/// The lower layer's name is 253 bytes; the upper layer deletes it (`.wh.` + 253 bytes, a
/// member name the converter once refused).
#[test]
fn overlay_whiteout_of_a_long_name() {
    if !tools() || !require_tool("umoci") {
        return;
    }
    let name = "x".repeat(253);
    let lower = LayerTar::with([TarEntry::file(&name, "lower"), TarEntry::file("other", "o")])
        .finish()
        .0;
    let upper = LayerTar::with([TarEntry::file(format!(".wh.{name}"), "")])
        .finish()
        .0;
    check_stack("long whiteout", &[lower, upper], &[]);
}

// ---------------------------------------------------------------------------------------------
// Real content: Debian packages, a layer written by umoci.

/// Debian packages with ELF binaries, symlink farms and hardlinks (perl-base's `perl` and
/// `perl5.*`), setuid binaries (mount), and many small files (tzdata).
const PACKAGES: &[&str] = &[
    "busybox",
    "coreutils",
    "libc-bin",
    "tzdata",
    "perl-base",
    "mount",
];

/// Downloads `PACKAGES` once (kept under the target directory) and returns every `.deb` file
/// of the download folder once each package has one, or `None` (after the skip/fail gate) when
/// apt cannot fetch them.
fn debian_packages() -> Option<Vec<PathBuf>> {
    download_debian_packages(PACKAGES, |debs| {
        PACKAGES
            .iter()
            .all(|p| debs.iter().any(|d| is_deb_of(d, p)))
            .then(|| debs.to_vec())
    })
}

#[test]
fn debian_packages_layer_from_umoci() {
    if !tools() || !require_tool("umoci") {
        return;
    }
    let Some(debs) = debian_packages() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir(&rootfs).unwrap();
    for deb in &debs {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&rootfs));
    }
    // umoci's tars (Go's archive/tar in its default format) hold whole seconds, and the
    // directories dpkg-deb filled got sub-second mtimes from the clock: whole seconds make the
    // folder exactly what a layer can say.
    let mut source = scan(&rootfs);
    for (p, e) in &mut source.entries {
        if e.mtime_nsec != 0 {
            assert!(
                e.is_dir(),
                "/{}: only directories have sub-second mtimes",
                p.display()
            );
            let secs = std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.mtime as u64);
            fs::File::open(rootfs.join(p))
                .unwrap()
                .set_modified(secs)
                .unwrap();
            e.mtime_nsec = 0;
        }
    }
    let hardlinked = source
        .entries
        .iter()
        .filter(|(_, e)| !e.is_dir() && e.nlink > 1)
        .count();
    assert!(hardlinked >= 2, "the packages give hardlinks");
    assert!(
        source
            .entries
            .values()
            .any(|e| e.perms & 0o4000 != 0 && matches!(e.kind, Kind::File { .. })),
        "the packages give setuid files"
    );

    let image = UmociImage::new();
    image.insert(&rootfs);
    let digests = image.layer_digests();
    assert_eq!(digests.len(), 1);
    let blob = image.blob(&digests[0]);
    let dest = tmp.path().join("layer.erofs");
    let layer = convert_layer(
        &blob,
        &dest,
        &ConvertOptions {
            blob_digest: Some(Digest::parse(&digests[0]).unwrap()),
            diff_id: None,
        },
    )
    .unwrap_or_else(|e| panic!("[{}] {e}", e.code()));
    assert!(layer.compressed, "umoci writes gzip layers");
    fsck(&dest);
    let mnt = mount_erofs(&dest);
    let actual = scan(mnt.path());
    // umoci stores the folder as `/`: the root's metadata is the temp folder's.
    let opts =
        CompareOptions::labeled("dpkg-deb tree vs kernel mount of umoci's layer").skip_meta("");
    compare(&source, &actual, &opts);

    let unpacked: Extracted = image.unpack();
    let theirs = scan(&unpacked.root);
    let opts =
        CompareOptions::labeled("umoci unpack vs kernel mount of umoci's layer").skip_meta("");
    compare(&theirs, &actual, &opts);
}
