//! Real readers and writers used as oracles for EROFS layer images: the kernel (`mount -t erofs`
//! and overlayfs, as root), `fsck.erofs` and `dump.erofs` (erofs-utils), GNU tar and umoci.
//!
//! Each gate ([`require_root`], and `require_tool` in the parent module) skips with a visible
//! message locally and fails under `CI=true`. Mounts are guards: dropping one unmounts it and
//! detaches its loop device.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use tempfile::TempDir;

use ocicache_core::erofs::format::{DataLayout, mode};
use ocicache_core::erofs::reader::ImageReader;

use super::tree::{CompareOptions, Kind, Tree};

/// Whether the tests run as root (mounts need it).
pub fn is_root() -> bool {
    // /proc/self belongs to the effective user.
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether the tests run as root. When not: with `CI=true` this panics, else it prints
/// `SKIP: <what> needs root` and returns false. In the fast tier it is false, with a `SKIP:`
/// message.
pub fn require_root(what: &str) -> bool {
    if super::fast_tier() {
        eprintln!("SKIP: {what} needs root, not run in the fast tier");
        return false;
    }
    if is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} needs root on CI");
    }
    eprintln!("SKIP: {what} needs root");
    false
}

/// Runs `cmd`, panicking with its output unless it exits 0.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A directory an oracle produced, kept until dropped.
pub struct Extracted {
    _tmp: TempDir,
    /// The tree's root.
    pub root: PathBuf,
}

/// Serializes `mount` calls of this process: concurrent `mount -o loop` calls can race for the
/// same free loop device.
static MOUNT_LOCK: Mutex<()> = Mutex::new(());

/// A mounted file system, unmounted (and its loop device detached) when dropped.
pub struct Mount {
    dir: TempDir,
    image: Option<PathBuf>,
}

impl Mount {
    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _guard = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a test still holds a file open): detach lazily rather than leak the mount.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
        // `mount -o loop` sets autoclear, but detach explicitly in case it did not.
        if let Some(image) = &self.image
            && let Ok(out) = Command::new("losetup").arg("-j").arg(image).output()
        {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some((dev, _)) = line.split_once(':') {
                    let _ = Command::new("losetup").arg("-d").arg(dev).status();
                }
            }
        }
    }
}

/// Mounts the EROFS image `image` read-only through a loop device (`mount -t erofs -o loop,ro`).
/// The caller checks [`require_root`] first.
pub fn mount_erofs(image: &Path) -> Mount {
    let dir = tempfile::tempdir().unwrap();
    let _guard = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    run(Command::new("mount")
        .args(["-t", "erofs", "-o", "loop,ro"])
        .arg(image)
        .arg(dir.path()));
    Mount {
        dir,
        image: Some(image.to_path_buf()),
    }
}

/// Stacks `lowers` (top first) as a read-only overlayfs.
pub fn mount_overlay(lowers: &[&Path]) -> Mount {
    let dir = tempfile::tempdir().unwrap();
    let lowerdir: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let _guard = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("ro,lowerdir={}", lowerdir.join(":")))
        .arg(dir.path()));
    Mount { dir, image: None }
}

/// `fsck.erofs IMAGE` must exit 0.
pub fn fsck(image: &Path) {
    run(Command::new("fsck.erofs").arg(image));
}

/// Extracts `image` with `fsck.erofs --extract` (erofs-utils 1.5), which also checks every
/// file's data. `--preserve` keeps owners and permissions (the default for root, explicit
/// here). What 1.5 does not restore: extended attributes, hardlinks (each name becomes its own
/// file), setuid and setgid bits of files (it chowns after chmod, which clears them), and
/// symlink mtimes.
pub fn fsck_extract(image: &Path) -> Extracted {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("x");
    run(Command::new("fsck.erofs")
        .arg(format!("--extract={}", root.display()))
        .arg("--preserve")
        .arg(image));
    Extracted { _tmp: tmp, root }
}

/// `opts` without what [`fsck_extract`] (erofs-utils 1.5) cannot be asked to restore: xattrs
/// are not written, each hardlink name becomes its own file, symlink mtimes are the extraction
/// time, and setuid/setgid bits of files are cleared by its chown after chmod. The kernel mount
/// checks all of those.
pub fn fsck_extract_options(opts: CompareOptions) -> CompareOptions {
    opts.no_xattrs()
        .no_symlink_mtime()
        .no_links()
        .no_special_perms()
}

/// The expected tree as [`fsck_extract`] writes it: hardlinks are separate files, so each has
/// one link (directory link counts are not compared).
pub fn for_extract(expected: &Tree) -> Tree {
    let mut t = expected.clone();
    for e in t.entries.values_mut() {
        e.inode = None;
    }
    t.fix_nlinks();
    t
}

/// Every name of a regular file with holes in the EROFS image `image` (a layer image or an
/// fsmeta image), walked from the root: its chunk size (log2) and, per chunk, whether it holds
/// data.
pub fn files_with_holes(image: &Path) -> Vec<(PathBuf, u8, Vec<bool>)> {
    let reader = ImageReader::open(image).unwrap();
    let mut out = Vec::new();
    let root = u64::from(reader.superblock().root_nid);
    let mut stack = vec![(PathBuf::new(), reader.inode(root).unwrap())];
    while let Some((path, inode)) = stack.pop() {
        match inode.mode & mode::IFMT {
            mode::IFDIR => {
                for (name, nid) in reader.read_dir(&inode).unwrap() {
                    let child = reader.inode(nid).unwrap();
                    stack.push((path.join(std::ffi::OsStr::from_bytes(&name)), child));
                }
            }
            mode::IFREG if inode.layout == DataLayout::ChunkBased && inode.size > 0 => {
                let (bits, chunks) = reader.chunks(&inode).unwrap();
                if chunks.iter().any(Option::is_none) {
                    out.push((path, bits, chunks.iter().map(Option::is_some).collect()));
                }
            }
            _ => {}
        }
    }
    out
}

/// The tree erofs-utils 1.5's `fsck.erofs --extract` writes for an image whose tree is
/// `expected`: it writes a file's mapped chunks back to back and skips its holes without
/// seeking, so a file with holes comes out as the bytes of its data chunks alone (the kernel
/// reads holes as zeros). Those bytes are read at the chunks' offsets through the kernel mount
/// `mnt` of the same image, which the caller has already compared with `expected`. Files
/// without holes are left as they are.
pub fn fsck_view_of_holes(image: &Path, mnt: &Path, mut expected: Tree) -> Tree {
    for (path, bits, mapped) in files_with_holes(image) {
        let file = fs::File::open(mnt.join(&path)).unwrap();
        let size = file.metadata().unwrap().len();
        let mut data = Vec::new();
        for (i, _) in mapped.iter().enumerate().filter(|(_, m)| **m) {
            let start = (i as u64) << bits;
            let mut chunk = vec![0u8; ((1u64 << bits).min(size - start)) as usize];
            file.read_exact_at(&mut chunk, start).unwrap();
            data.extend_from_slice(&chunk);
        }
        let entry = expected.entry_mut(path.as_os_str().as_bytes());
        entry.kind = Kind::file(&data);
        entry.size = data.len() as u64;
    }
    expected
}

/// `dump.erofs ARGS... IMAGE`'s standard output.
pub fn dump_erofs(image: &Path, args: &[&str]) -> String {
    let out = run(Command::new("dump.erofs").args(args).arg(image));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extracts the tar `tar` with GNU tar as root keeping everything it can: numeric owners,
/// permissions (setuid, setgid, sticky included), all xattrs, nanosecond mtimes.
pub fn gnu_tar_extract(tar: &[u8]) -> Extracted {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("layer.tar");
    fs::write(&file, tar).unwrap();
    let root = tmp.path().join("x");
    fs::create_dir(&root).unwrap();
    run(Command::new("tar")
        .args([
            "-x",
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-p",
            "--same-owner",
            // Directory metadata is set after the last member: a tar may come back to a
            // directory after leaving it, which would otherwise change its mtime again.
            "--delay-directory-restore",
            "-f",
        ])
        .arg(&file)
        .arg("-C")
        .arg(&root));
    fs::remove_file(&file).unwrap();
    Extracted { _tmp: tmp, root }
}

/// An OCI image layout built by umoci (`umoci init`, `umoci new`), image tag `t`.
pub struct UmociImage {
    tmp: TempDir,
}

impl UmociImage {
    /// A new empty image.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let image = UmociImage { tmp };
        run(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(image.layout()));
        run(Command::new("umoci")
            .args(["new", "--image"])
            .arg(image.image()));
        image
    }

    /// The layout directory.
    pub fn layout(&self) -> PathBuf {
        self.tmp.path().join("layout")
    }

    /// `layout:t`.
    pub fn image(&self) -> String {
        format!("{}:t", self.layout().display())
    }

    /// Adds `tar` (uncompressed) as the new top layer, as it is (`umoci raw add-layer`).
    pub fn add_layer(&self, tar: &[u8]) {
        let file = self.tmp.path().join("add.tar");
        fs::write(&file, tar).unwrap();
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--image"])
            .arg(self.image())
            .arg(&file));
        fs::remove_file(&file).unwrap();
    }

    /// Adds the folder `dir` as a new layer whose tar umoci writes (`umoci insert DIR /`).
    pub fn insert(&self, dir: &Path) {
        run(Command::new("umoci")
            .args(["insert", "--image"])
            .arg(self.image())
            .arg(dir)
            .arg("/"));
    }

    /// The layers' blob digests (`sha256:…`), bottom first, from the image's manifest.
    pub fn layer_digests(&self) -> Vec<String> {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(self.layout().join("index.json")).unwrap()).unwrap();
        let manifests = index["manifests"].as_array().unwrap();
        let entry = manifests
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "t")
            .unwrap_or_else(|| panic!("no manifest tagged t in {index}"));
        let manifest: serde_json::Value = serde_json::from_slice(
            &fs::read(self.blob(entry["digest"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The path of blob `digest`.
    pub fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.layout().join("blobs/sha256").join(hex)
    }

    /// `umoci unpack`'s root file system of the image.
    pub fn unpack(&self) -> Extracted {
        let tmp = tempfile::tempdir().unwrap();
        let bundle = tmp.path().join("bundle");
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(self.image())
            .arg(&bundle));
        Extracted {
            _tmp: tmp,
            root: bundle.join("rootfs"),
        }
    }
}

impl Default for UmociImage {
    fn default() -> Self {
        UmociImage::new()
    }
}
