//! Snapshots of a directory tree as the kernel reports it ([`scan`], with `lstat`, `readlink`
//! and `llistxattr`/`lgetxattr`, never following symlinks), small edits for building expected
//! trees by hand, and a comparison ([`compare`]) that lists every difference (path, field, both
//! values) before failing.
//!
//! Paths are relative to the scanned root (the root itself is the empty path) and are bytes
//! (names may be any bytes but `/` and NUL). Directory sizes are never compared: they depend on
//! the file system's directory format.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// `trusted.overlay.opaque`, which marks an overlayfs directory opaque.
pub const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// What an entry is, with its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file and the sha256 of its data.
    File {
        sha256: String,
    },
    Dir,
    /// A symbolic link and its target (raw bytes).
    Symlink(Vec<u8>),
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

impl Kind {
    /// A regular file holding `data`.
    pub fn file(data: &[u8]) -> Self {
        Kind::File {
            sha256: hex::encode(Sha256::digest(data)),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Kind::File { .. } => "file",
            Kind::Dir => "dir",
            Kind::Symlink(_) => "symlink",
            Kind::Char { .. } => "char device",
            Kind::Block { .. } => "block device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::File { sha256 } => write!(f, "file sha256:{}", &sha256[..16]),
            Kind::Symlink(t) => write!(f, "symlink -> {}", show_bytes(t)),
            Kind::Char { major, minor } => write!(f, "char device {major}:{minor}"),
            Kind::Block { major, minor } => write!(f, "block device {major}:{minor}"),
            other => f.write_str(other.name()),
        }
    }
}

/// One path's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits, setuid, setgid and sticky included (`st_mode & 0o7777`).
    pub perms: u32,
    pub uid: u32,
    pub gid: u32,
    /// `st_size` (never compared for directories).
    pub size: u64,
    pub nlink: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    /// Every extended attribute, by full name.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Identity of the inode (`st_dev`, `st_ino`), for hardlink groups; `None` for hand-built
    /// entries that share no inode.
    pub inode: Option<(u64, u64)>,
}

impl Entry {
    /// An entry of `kind` with `perms`, owned by root, mtime 0, one link, no xattrs.
    pub fn new(kind: Kind, perms: u32) -> Self {
        let size = match &kind {
            Kind::Symlink(t) => t.len() as u64,
            _ => 0,
        };
        Entry {
            kind,
            perms,
            uid: 0,
            gid: 0,
            size,
            nlink: 1,
            mtime: 0,
            mtime_nsec: 0,
            xattrs: BTreeMap::new(),
            inode: None,
        }
    }

    /// A regular file holding `data`.
    pub fn file(data: &[u8], perms: u32) -> Self {
        let mut e = Entry::new(Kind::file(data), perms);
        e.size = data.len() as u64;
        e
    }

    /// A directory (its link count is set by [`Tree::fix_nlinks`]).
    pub fn dir(perms: u32) -> Self {
        Entry::new(Kind::Dir, perms)
    }

    /// A symlink to `target` (permissions 0777, as Linux creates every symlink).
    pub fn symlink(target: &[u8]) -> Self {
        Entry::new(Kind::Symlink(target.to_vec()), 0o777)
    }

    /// The same entry owned by `uid:gid`.
    pub fn owner(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// The same entry with mtime `secs.nsec`.
    pub fn mtime(mut self, secs: i64, nsec: i64) -> Self {
        self.mtime = secs;
        self.mtime_nsec = nsec;
        self
    }

    /// The same entry with the extended attribute `name=value`.
    pub fn xattr(mut self, name: &str, value: &[u8]) -> Self {
        self.xattrs.insert(name.as_bytes().to_vec(), value.to_vec());
        self
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// A tree: every path under a root (the root itself is the empty path), sorted bytewise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: BTreeMap<PathBuf, Entry>,
}

/// `p` as a path relative to a tree root (a leading `/` is ignored).
pub fn rel(p: impl AsRef<[u8]>) -> PathBuf {
    let bytes = p.as_ref();
    let bytes = bytes.strip_prefix(b"/").unwrap_or(bytes);
    PathBuf::from(OsStr::from_bytes(bytes))
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree::default()
    }

    /// Adds (or replaces) the entry at `path`.
    pub fn insert(&mut self, path: impl AsRef<[u8]>, entry: Entry) -> &mut Self {
        self.entries.insert(rel(path), entry);
        self
    }

    /// The entry at `path`.
    pub fn get(&self, path: impl AsRef<[u8]>) -> Option<&Entry> {
        self.entries.get(&rel(path))
    }

    /// The entry at `path`, which must exist.
    pub fn entry_mut(&mut self, path: impl AsRef<[u8]>) -> &mut Entry {
        let p = rel(path);
        self.entries
            .get_mut(&p)
            .unwrap_or_else(|| panic!("no entry {} in the tree", show(&p)))
    }

    /// Removes `path` and everything under it.
    pub fn remove_tree(&mut self, path: impl AsRef<[u8]>) {
        let p = rel(path);
        self.entries.retain(|k, _| !k.starts_with(&p));
    }

    /// Marks `path` (a directory) as an implicit directory of a layer image: 0755, root-owned,
    /// mtime 0, no xattrs. Tar extractors create such parents with their own metadata.
    pub fn set_implicit_dir(&mut self, path: impl AsRef<[u8]>) {
        let e = self.entry_mut(path);
        assert!(e.is_dir(), "implicit entry is not a directory");
        e.perms = 0o755;
        e.uid = 0;
        e.gid = 0;
        e.mtime = 0;
        e.mtime_nsec = 0;
        e.xattrs.clear();
    }

    /// Sets link counts from the tree's shape: a directory has 2 plus its subdirectories, any
    /// other entry as many as the paths sharing its inode.
    pub fn fix_nlinks(&mut self) {
        let mut subdirs: BTreeMap<PathBuf, u64> = BTreeMap::new();
        let mut inodes: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        for (p, e) in &self.entries {
            if e.is_dir() {
                if let Some(parent) = p.parent() {
                    *subdirs.entry(parent.to_path_buf()).or_insert(0) += 1;
                }
            } else if let Some(ino) = e.inode {
                *inodes.entry(ino).or_insert(0) += 1;
            }
        }
        for (p, e) in &mut self.entries {
            e.nlink = if e.is_dir() {
                2 + subdirs.get(p).copied().unwrap_or(0)
            } else {
                e.inode.and_then(|i| inodes.get(&i).copied()).unwrap_or(1)
            };
        }
    }

    /// Applies the OCI whiteout translation an EROFS layer image uses to a tree extracted from
    /// a layer tar:
    ///
    /// - `d/.wh..wh..opq` is dropped and `d` gets `trusted.overlay.opaque=y`;
    /// - other `.wh..wh.*` names are dropped;
    /// - `d/.wh.x` is dropped; when the layer has no `d/x` of its own, `d/x` becomes a character
    ///   device 0:0 with permissions 0000 and the owner and mtime of the whiteout entry, and
    ///   when it has a directory `d/x`, that directory becomes opaque (it replaced whatever
    ///   lower layers had there).
    pub fn apply_oci_whiteouts(&mut self) {
        let names: Vec<PathBuf> = self
            .entries
            .keys()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.as_bytes().starts_with(b".wh."))
            })
            .cloned()
            .collect();
        for p in names {
            let Some(wh) = self.entries.remove(&p) else {
                continue;
            };
            let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
            let name = p.file_name().map(OsStr::as_bytes).unwrap_or_default();
            if name == b".wh..wh..opq" {
                self.entry_mut(parent.as_os_str().as_bytes())
                    .xattrs
                    .insert(OPAQUE_XATTR.to_vec(), b"y".to_vec());
                continue;
            }
            if name.starts_with(b".wh..wh.") {
                continue;
            }
            let hidden = parent.join(OsStr::from_bytes(&name[4..]));
            match self.entries.get_mut(&hidden) {
                Some(real) if real.is_dir() => {
                    real.xattrs.insert(OPAQUE_XATTR.to_vec(), b"y".to_vec());
                }
                Some(_) => {}
                None => {
                    let mut dev = Entry::new(Kind::Char { major: 0, minor: 0 }, 0);
                    dev.uid = wh.uid;
                    dev.gid = wh.gid;
                    dev.mtime = wh.mtime;
                    dev.mtime_nsec = wh.mtime_nsec;
                    self.entries.insert(hidden, dev);
                }
            }
        }
        self.fix_nlinks();
    }
}

/// Snapshots the tree under `root` (which is included, as the empty path).
pub fn scan(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(relpath) = stack.pop() {
        let full = if relpath.as_os_str().is_empty() {
            root.to_path_buf()
        } else {
            root.join(&relpath)
        };
        let entry = scan_one(&full);
        if entry.is_dir() {
            let children =
                fs::read_dir(&full).unwrap_or_else(|e| panic!("read_dir {}: {e}", full.display()));
            for child in children {
                let child = child.unwrap_or_else(|e| panic!("read_dir {}: {e}", full.display()));
                stack.push(relpath.join(child.file_name()));
            }
        }
        tree.entries.insert(relpath, entry);
    }
    tree
}

fn scan_one(path: &Path) -> Entry {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = meta.file_type();
    let rdev = meta.rdev();
    // glibc's gnu_dev_major/gnu_dev_minor.
    let major = (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff)) as u32;
    let minor = (((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff)) as u32;
    let kind = if ft.is_file() {
        let mut file =
            fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Kind::File {
            sha256: hex::encode(hasher.finalize()),
        }
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        let target =
            fs::read_link(path).unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()));
        Kind::Symlink(target.into_os_string().into_encoded_bytes())
    } else if ft.is_char_device() {
        Kind::Char { major, minor }
    } else if ft.is_block_device() {
        Kind::Block { major, minor }
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let mut xattrs = BTreeMap::new();
    // `xattr::list`/`get` use llistxattr/lgetxattr: a symlink's own attributes.
    let names = xattr::list(path).unwrap_or_else(|e| panic!("listxattr {}: {e}", path.display()));
    for name in names {
        let value = xattr::get(path, &name)
            .unwrap_or_else(|e| panic!("getxattr {} {name:?}: {e}", path.display()))
            .unwrap_or_default();
        xattrs.insert(name.as_bytes().to_vec(), value);
    }
    Entry {
        kind,
        perms: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size(),
        nlink: meta.nlink(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        xattrs,
        inode: Some((meta.dev(), meta.ino())),
    }
}

/// What [`compare`] looks at. The default compares everything but directory sizes.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Names the two sides in the report (`"tar extraction" vs "kernel mount"`).
    pub label: String,
    /// Modification times of files, devices, fifos and hardlinks.
    pub mtime: bool,
    /// Modification times of directories.
    pub dir_mtime: bool,
    /// Modification times of symlinks.
    pub symlink_mtime: bool,
    pub owner: bool,
    pub perms: bool,
    /// Setuid, setgid and sticky bits (when `perms`).
    pub special_perms: bool,
    pub xattrs: bool,
    /// Link counts of non-directories.
    pub nlink: bool,
    /// Link counts of directories.
    pub dir_nlink: bool,
    /// Which paths share an inode.
    pub hardlinks: bool,
    /// Paths whose metadata is not compared (type and content still are).
    pub skip_meta: BTreeSet<PathBuf>,
    /// Paths (with everything under them) not compared at all.
    pub ignore: BTreeSet<PathBuf>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            label: "expected vs actual".into(),
            mtime: true,
            dir_mtime: true,
            symlink_mtime: true,
            owner: true,
            perms: true,
            special_perms: true,
            xattrs: true,
            nlink: true,
            dir_nlink: true,
            hardlinks: true,
            skip_meta: BTreeSet::new(),
            ignore: BTreeSet::new(),
        }
    }
}

impl CompareOptions {
    /// Everything, with a label for the report.
    pub fn labeled(label: &str) -> Self {
        CompareOptions {
            label: label.into(),
            ..CompareOptions::default()
        }
    }

    /// Without any modification time.
    pub fn no_mtime(mut self) -> Self {
        self.mtime = false;
        self.dir_mtime = false;
        self.symlink_mtime = false;
        self
    }

    /// Without directory modification times.
    pub fn no_dir_mtime(mut self) -> Self {
        self.dir_mtime = false;
        self
    }

    /// Without symlink modification times.
    pub fn no_symlink_mtime(mut self) -> Self {
        self.symlink_mtime = false;
        self
    }

    /// Without extended attributes.
    pub fn no_xattrs(mut self) -> Self {
        self.xattrs = false;
        self
    }

    /// Without owners.
    pub fn no_owner(mut self) -> Self {
        self.owner = false;
        self
    }

    /// Without setuid, setgid and sticky bits.
    pub fn no_special_perms(mut self) -> Self {
        self.special_perms = false;
        self
    }

    /// Without link counts and hardlink groups.
    pub fn no_links(mut self) -> Self {
        self.nlink = false;
        self.dir_nlink = false;
        self.hardlinks = false;
        self
    }

    /// Without directory link counts.
    pub fn no_dir_nlink(mut self) -> Self {
        self.dir_nlink = false;
        self
    }

    /// Without the metadata of `path`.
    pub fn skip_meta(mut self, path: impl AsRef<[u8]>) -> Self {
        self.skip_meta.insert(rel(path));
        self
    }

    /// Without `path` and everything under it.
    pub fn ignore(mut self, path: impl AsRef<[u8]>) -> Self {
        self.ignore.insert(rel(path));
        self
    }
}

/// `/path` with non-UTF-8 bytes escaped.
pub fn show(p: &Path) -> String {
    format!("/{}", show_bytes(p.as_os_str().as_bytes()))
}

/// Bytes as text, non-UTF-8 and control bytes escaped, long values shortened.
pub fn show_bytes(b: &[u8]) -> String {
    let s = b.escape_ascii().to_string();
    if s.len() > 120 {
        format!("{}...({} bytes)", &s[..100], b.len())
    } else {
        s
    }
}

fn show_time(secs: i64, nsec: i64) -> String {
    format!("{secs}.{nsec:09}")
}

fn show_xattrs(x: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    let parts: Vec<String> = x
        .iter()
        .map(|(k, v)| format!("{}={}", show_bytes(k), show_bytes(v)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// For each path in a hardlink group: the group's first path and its size.
fn hardlink_groups(t: &Tree) -> BTreeMap<&Path, (&Path, usize)> {
    let mut groups: BTreeMap<(u64, u64), Vec<&Path>> = BTreeMap::new();
    for (p, e) in &t.entries {
        if let Some(ino) = e.inode.filter(|_| !e.is_dir() && e.nlink > 1) {
            groups.entry(ino).or_default().push(p);
        }
    }
    let mut out = BTreeMap::new();
    for members in groups.values() {
        // Entries iterate sorted, so the first member is the smallest path.
        for p in members {
            out.insert(*p, (members[0], members.len()));
        }
    }
    out
}

/// Every difference between `expected` and `actual` under `opts`, one line each.
pub fn differences(expected: &Tree, actual: &Tree, opts: &CompareOptions) -> Vec<String> {
    let ignored = |p: &Path| opts.ignore.iter().any(|i| p.starts_with(i));
    // Two partitions into hardlink groups are equal when every path has the same first member
    // and size of group in both (linear, where comparing whole groups per path is quadratic).
    let want_groups = hardlink_groups(expected);
    let got_groups = hardlink_groups(actual);
    let mut out = Vec::new();
    let paths: BTreeSet<&PathBuf> = expected
        .entries
        .keys()
        .chain(actual.entries.keys())
        .collect();
    for p in paths {
        if ignored(p) {
            continue;
        }
        let (e, a) = match (expected.entries.get(p), actual.entries.get(p)) {
            (Some(e), Some(a)) => (e, a),
            (Some(e), None) => {
                out.push(format!("{}: missing (expected {})", show(p), e.kind));
                continue;
            }
            (None, Some(a)) => {
                out.push(format!("{}: unexpected ({})", show(p), a.kind));
                continue;
            }
            (None, None) => continue,
        };
        let mut diff = |field: &str, want: String, got: String| {
            if want != got {
                out.push(format!(
                    "{}: {field}: expected {want}, actual {got}",
                    show(p)
                ));
            }
        };
        if e.kind.name() != a.kind.name() {
            diff("type", e.kind.to_string(), a.kind.to_string());
            continue;
        }
        diff("content", e.kind.to_string(), a.kind.to_string());
        if !e.is_dir() {
            diff("size", e.size.to_string(), a.size.to_string());
        }
        if opts.skip_meta.contains(p) {
            continue;
        }
        if opts.perms {
            let mask = if opts.special_perms { 0o7777 } else { 0o777 };
            diff(
                "perms",
                format!("{:04o}", e.perms & mask),
                format!("{:04o}", a.perms & mask),
            );
        }
        if opts.owner {
            diff(
                "owner",
                format!("{}:{}", e.uid, e.gid),
                format!("{}:{}", a.uid, a.gid),
            );
        }
        let mtime = match e.kind {
            Kind::Dir => opts.dir_mtime,
            Kind::Symlink(_) => opts.symlink_mtime,
            _ => opts.mtime,
        };
        if mtime {
            diff(
                "mtime",
                show_time(e.mtime, e.mtime_nsec),
                show_time(a.mtime, a.mtime_nsec),
            );
        }
        if opts.xattrs {
            diff("xattrs", show_xattrs(&e.xattrs), show_xattrs(&a.xattrs));
        }
        if if e.is_dir() {
            opts.dir_nlink
        } else {
            opts.nlink
        } {
            diff("nlink", e.nlink.to_string(), a.nlink.to_string());
        }
        if opts.hardlinks && !e.is_dir() {
            let group = |groups: &BTreeMap<&Path, (&Path, usize)>| match groups.get(p.as_path()) {
                Some((first, n)) => format!("one of {n} names, the first {}", show(first)),
                None => "no other name".to_owned(),
            };
            diff("hardlinks", group(&want_groups), group(&got_groups));
        }
    }
    out
}

/// Panics listing every difference between `expected` and `actual` under `opts`, if any.
pub fn compare(expected: &Tree, actual: &Tree, opts: &CompareOptions) {
    let diffs = differences(expected, actual, opts);
    if diffs.is_empty() {
        return;
    }
    const SHOWN: usize = 200;
    let mut msg = format!(
        "{} difference(s), {} ({} and {} paths):\n",
        diffs.len(),
        opts.label,
        expected.entries.len(),
        actual.entries.len()
    );
    for d in diffs.iter().take(SHOWN) {
        msg.push_str("  ");
        msg.push_str(d);
        msg.push('\n');
    }
    if diffs.len() > SHOWN {
        msg.push_str(&format!("  ... and {} more\n", diffs.len() - SHOWN));
    }
    panic!("{msg}");
}
