//! A small tmpfs for tests that fill a file system: mounted when created, unmounted when
//! dropped. Mounting needs root: callers check `oracles::require_root` first.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::oracles::run;

/// A mounted tmpfs of a fixed size.
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` (rounded up to pages by the kernel) on a fresh folder.
    pub fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={bytes}"))
            .arg("tmpfs")
            .arg(dir.path()));
        Tmpfs { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes still free (`df`'s available bytes).
    pub fn free(&self) -> u64 {
        let out = run(Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(self.dir.path()));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap());
        fields.next().unwrap() * fields.next().unwrap()
    }

    /// Writes a file of zeros named `name` so that at most `free` bytes stay free (tmpfs
    /// allocates every written page, zeros included).
    pub fn fill_leaving(&self, name: &str, free: u64) {
        let now = self.free();
        assert!(now >= free, "only {now} bytes are free, {free} wanted");
        std::fs::write(self.path().join(name), vec![0u8; (now - free) as usize]).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
