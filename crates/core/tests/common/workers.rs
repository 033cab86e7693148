//! Worker processes for the crash and concurrency tests: a test binary re-executes itself
//! ([`worker_command`]) with a role in an environment variable, the parent kills workers with
//! SIGKILL at random moments ([`Rng`], [`kill`]), and then checks what is left
//! ([`check_artifacts`], [`artifact_files`], [`live_files`]).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use ocicache_core::erofs::reader::{ImageReader, read_tree};
use ocicache_core::oci::Digest;
use ocicache_core::{Cache, CacheOptions, Holder};

use super::hex_of;

fn open(root: &Path) -> Cache {
    Cache::open(CacheOptions {
        root: Some(root.to_path_buf()),
        backend: Some(ocicache_core::Backend::Local),
    })
    .unwrap()
}

/// The command that runs the current test binary's `worker_entry` test as a worker: `role` in
/// the environment variable `role_var`, and `env` beside it.
pub fn worker_command(role_var: &str, role: &str, env: &[(&str, &OsStr)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "worker_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(role_var, role)
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// A small xorshift generator: reproducible from the printed seed, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn seeded() -> Self {
        let seed = std::env::var("OCICACHE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash test seed: {seed} (set OCICACHE_CRASH_SEED to replay)");
        Rng(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `len` bytes that do not compress, the same for the same `seed`.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..len).map(|_| rng.below(256) as u8).collect()
}

/// Every reference's artifacts are whole: blobs match their digests, layer images and fsmeta
/// parse (superblock checksum, full tree walk), fsmeta lists the layers as devices in order,
/// and the VMDK names fsmeta and each layer image.
///
/// With `pin`, other processes may be removing images meanwhile: each image is pinned with a
/// use while it is checked, and one that is already gone is skipped.
pub fn check_artifacts(root: &Path, pin: bool) -> usize {
    let cache = open(root);
    let handles = cache.list().unwrap();
    let mut checked = 0;
    for h in &handles {
        let _use = if pin {
            match cache.acquire(&h.reference, Holder::Sandbox("checker".into())) {
                Ok(u) => Some(Release(&cache, u.id)),
                Err(e) if e.code() == "IMAGE_NOT_FOUND" => continue,
                Err(e) => panic!("acquire {}: {e}", h.reference),
            }
        } else {
            None
        };
        checked += 1;
        let d = cache.inspect(&h.reference).unwrap();
        let manifest = d.handle.manifest_digest.clone().unwrap();
        for digest in [&manifest, &d.config.as_ref().unwrap().digest] {
            let bytes = fs::read(root.join("blobs/sha256").join(hex_of(digest)))
                .unwrap_or_else(|e| panic!("{}: blob {digest}: {e}", h.reference));
            assert_eq!(&Digest::of_bytes(&bytes).to_string(), digest);
        }
        for layer in &d.layers {
            let path = root
                .join("layers/sha256")
                .join(format!("{}.erofs", hex_of(&layer.diff_id)));
            let image = ImageReader::open(&path)
                .unwrap_or_else(|e| panic!("{}: layer {}: {e}", h.reference, layer.diff_id));
            read_tree(&image).unwrap();
            assert_eq!(Some(image.len()), layer.erofs_size_bytes);
        }
        let fsmeta = root
            .join("fsmeta/sha256")
            .join(format!("{}.erofs", hex_of(&manifest)));
        let image =
            ImageReader::open(&fsmeta).unwrap_or_else(|e| panic!("{}: fsmeta: {e}", h.reference));
        let devices = image.devices().unwrap();
        let tags: Vec<String> = devices
            .iter()
            .map(|s| String::from_utf8(s.tag.clone()).unwrap())
            .collect();
        let want: Vec<&str> = d.layers.iter().map(|l| hex_of(&l.diff_id)).collect();
        assert_eq!(tags, want, "{}: fsmeta devices", h.reference);
        let vmdk = fs::read_to_string(
            root.join("vmdk/sha256")
                .join(format!("{}.vmdk", hex_of(&manifest))),
        )
        .unwrap_or_else(|e| panic!("{}: vmdk: {e}", h.reference));
        assert!(vmdk.contains(&format!("fsmeta/sha256/{}.erofs", hex_of(&manifest))));
        for l in &want {
            assert!(
                vmdk.contains(&format!("layers/sha256/{l}.erofs")),
                "{}: vmdk",
                h.reference
            );
        }
    }
    checked
}

/// Releases a use when dropped.
pub struct Release<'a>(pub &'a Cache, pub String);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.release(&self.1).unwrap();
    }
}

/// Artifact files on disk, relative to the root.
pub fn artifact_files(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in [
        "blobs/sha256",
        "layers/sha256",
        "fsmeta/sha256",
        "vmdk/sha256",
        "tmp",
    ] {
        if let Ok(entries) = fs::read_dir(root.join(dir)) {
            for e in entries {
                out.insert(format!(
                    "{dir}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    out
}

/// What the index names, as artifact file names.
pub fn live_files(root: &Path) -> BTreeSet<String> {
    let cache = open(root);
    let mut out = BTreeSet::new();
    for h in cache.list().unwrap() {
        let d = cache.inspect(&h.reference).unwrap();
        let m = d.handle.manifest_digest.unwrap();
        out.insert(format!("blobs/sha256/{}", hex_of(&m)));
        out.insert(format!(
            "blobs/sha256/{}",
            hex_of(&d.config.unwrap().digest)
        ));
        out.insert(format!("fsmeta/sha256/{}.erofs", hex_of(&m)));
        out.insert(format!("vmdk/sha256/{}.vmdk", hex_of(&m)));
        for l in d.layers {
            out.insert(format!("layers/sha256/{}.erofs", hex_of(&l.diff_id)));
        }
    }
    out
}

/// Checks the artifacts of `root` every 50 ms while `workers` run for `duration` (every
/// published image whole at every moment it is listed), kills them, then checks once more
/// without pinning.
pub fn check_while_running(root: &Path, workers: Vec<Child>, duration: std::time::Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < duration {
        check_artifacts(root, true);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for w in workers {
        kill(w);
    }
    check_artifacts(root, false);
}

pub fn kill(mut child: Child) {
    let _ = child.kill(); // SIGKILL on unix
    let _ = child.wait();
}
