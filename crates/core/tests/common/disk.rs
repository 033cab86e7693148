//! Readers of a whole boot disk (fsmeta plus layer images, or the VMDK over them) used as
//! oracles: the kernel's multi-device EROFS mount through loop devices, `fsck.erofs` with
//! `--device`, and `qemu-img` (`info`, `convert`).
//!
//! Everything that attaches or mounts is a guard: dropping a [`MultiMount`] unmounts it, then
//! detaches every loop device it attached, so a failing test leaves no mount or loop device
//! behind. The callers check `require_root` (`oracles`) and `require_tool` first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use tempfile::TempDir;

/// Runs `cmd`, panicking with its output unless it exits 0.
fn run(cmd: &mut Command) -> Output {
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

/// Serializes this process's `losetup -f` and `mount` calls, so two tests never race for the
/// same free loop device.
static LOOP_LOCK: Mutex<()> = Mutex::new(());

/// A read-only loop device over a file, detached when dropped.
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub device: PathBuf,
}

impl LoopDevice {
    /// Attaches `file` read-only to the next free loop device (`losetup -f --show -r`).
    pub fn attach(file: &Path) -> LoopDevice {
        let _guard = LOOP_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let out = run(Command::new("losetup")
            .args(["-f", "--show", "-r"])
            .arg(file));
        let device = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            device.starts_with("/dev/loop"),
            "losetup printed {device:?} for {}",
            file.display()
        );
        LoopDevice {
            device: PathBuf::from(device),
        }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

/// A mounted EROFS image with extra devices, unmounted and detached when dropped.
pub struct MultiMount {
    dir: TempDir,
    /// The primary image's loop device, then each extra device's, in slot order.
    loops: Vec<LoopDevice>,
}

impl MultiMount {
    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The loop devices: the primary image's first, then the extra devices in slot order.
    pub fn devices(&self) -> Vec<&Path> {
        self.loops.iter().map(|l| l.device.as_path()).collect()
    }
}

impl Drop for MultiMount {
    fn drop(&mut self) {
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
        // The loop devices are detached when `loops` drops, after the unmount above.
    }
}

/// Mounts `primary` (an EROFS image with extra devices) read-only with `devices` as its extra
/// devices, in the order given: every file is attached to a read-only loop device and the
/// mount is `mount -t erofs -o ro,device=/dev/loopA,device=/dev/loopB,... /dev/loopP DIR`
/// (the kernel needs block devices in `device=` when the primary is a block device).
/// The kernel does not compare device tags, so a wrong order mounts and reads wrong bytes.
pub fn mount_multi_device(primary: &Path, devices: &[&Path]) -> MultiMount {
    let dir = tempfile::tempdir().unwrap();
    let mut loops = vec![LoopDevice::attach(primary)];
    for d in devices {
        loops.push(LoopDevice::attach(d));
    }
    let mut options = String::from("ro");
    for l in &loops[1..] {
        options.push_str(&format!(",device={}", l.device.display()));
    }
    {
        let _guard = LOOP_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        run(Command::new("mount")
            .args(["-t", "erofs", "-o"])
            .arg(&options)
            .arg(&loops[0].device)
            .arg(dir.path()));
    }
    MultiMount { dir, loops }
}

/// A directory an oracle wrote, deleted when dropped.
pub struct Extraction {
    _tmp: TempDir,
    /// The tree's root.
    pub root: PathBuf,
}

/// Extracts `primary` with `fsck.erofs --device=D1 --device=D2 ... --extract=DIR --preserve`
/// (erofs-utils 1.5), which also reads and checks every file's data through the extra devices.
/// It must exit 0. What 1.5 does not restore is listed at `oracles::fsck_extract`.
pub fn fsck_extract_devices(primary: &Path, devices: &[&Path]) -> Extraction {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("x");
    let mut cmd = Command::new("fsck.erofs");
    for d in devices {
        cmd.arg(format!("--device={}", d.display()));
    }
    run(cmd
        .arg(format!("--extract={}", root.display()))
        .arg("--preserve")
        .arg(primary));
    Extraction { _tmp: tmp, root }
}

/// One extent as `qemu-img info --output=json` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuExtent {
    /// The file, as qemu resolved it.
    pub filename: PathBuf,
    /// Its size in bytes (`virtual-size`).
    pub size: u64,
}

/// What `qemu-img info --output=json -f vmdk` says of a descriptor.
#[derive(Debug, Clone)]
pub struct QemuInfo {
    /// `virtual-size`.
    pub virtual_size: u64,
    /// `format-specific.data.create-type`.
    pub create_type: String,
    /// `format-specific.data.extents`, in disk order.
    pub extents: Vec<QemuExtent>,
    /// The whole answer.
    pub json: serde_json::Value,
}

/// Runs `qemu-img info --output=json -f vmdk VMDK` (which must exit 0) from another working
/// directory than the descriptor's, so relative extent paths must resolve against the
/// descriptor's folder.
pub fn qemu_img_info(vmdk: &Path) -> QemuInfo {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(Command::new("qemu-img")
        .args(["info", "--output=json", "-f", "vmdk"])
        .arg(vmdk)
        .current_dir(cwd.path()));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("qemu-img info printed no JSON ({e}): {:?}", out.stdout));
    let data = &json["format-specific"]["data"];
    let extents = data["extents"]
        .as_array()
        .unwrap_or_else(|| panic!("no extents in {json}"))
        .iter()
        .map(|e| QemuExtent {
            filename: PathBuf::from(e["filename"].as_str().unwrap()),
            size: e["virtual-size"].as_u64().unwrap(),
        })
        .collect();
    QemuInfo {
        virtual_size: json["virtual-size"].as_u64().unwrap(),
        create_type: data["create-type"].as_str().unwrap_or_default().to_owned(),
        extents,
        json,
    }
}

/// `qemu-img convert -f vmdk -O raw VMDK DEST` (run from another working directory), which must
/// exit 0.
pub fn qemu_img_convert_raw(vmdk: &Path, dest: &Path) {
    let cwd = tempfile::tempdir().unwrap();
    run(Command::new("qemu-img")
        .args(["convert", "-f", "vmdk", "-O", "raw"])
        .arg(vmdk)
        .arg(dest)
        .current_dir(cwd.path()));
}
