//! Rebuilds an image's fsmeta and VMDK descriptor from its layer images, as `Cache::boot_disk`
//! does when they are missing, and prints the time and sizes as JSON. Used by
//! `bench/fsmeta.mjs`:
//!
//! ```text
//! cargo run --release -p ocicache-core --example boot_disk -- ROOT REFERENCE [--rebuild]
//! ```
//!
//! With `--rebuild` the image's fsmeta and VMDK files are deleted first (and the folders
//! synced), outside the timed region; `seconds` is the time of the `boot_disk` call alone.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ocicache_core::store::sync_dir;
use ocicache_core::{Cache, CacheOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (root, reference, rebuild) = match args.as_slice() {
        [root, reference] => (root, reference, false),
        [root, reference, flag] if flag == "--rebuild" => (root, reference, true),
        _ => {
            eprintln!("usage: boot_disk ROOT REFERENCE [--rebuild]");
            return ExitCode::from(2);
        }
    };
    match run(PathBuf::from(root), reference, rebuild) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

fn run(root: PathBuf, reference: &str, rebuild: bool) -> ocicache_core::Result<()> {
    let cache = Cache::open(CacheOptions {
        root: Some(root),
        backend: None,
    })?;
    if rebuild {
        // Learn the paths from a first call (which builds nothing when the files exist).
        let disk = cache.boot_disk(reference)?;
        for path in [&disk.fsmeta, &disk.vmdk] {
            std::fs::remove_file(path).map_err(|e| ocicache_core::Error::io(path, e))?;
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
        }
    }
    let start = Instant::now();
    let disk = cache.boot_disk(reference)?;
    let seconds = start.elapsed().as_secs_f64();
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let layer_bytes: u64 = disk.layers.iter().map(size).sum();
    println!(
        "{{\"seconds\":{seconds:.6},\"fsmetaSize\":{},\"vmdkSize\":{},\"layers\":{},\"layerBytes\":{layer_bytes},\"fsmeta\":{:?},\"vmdk\":{:?},\"layerPaths\":{:?}}}",
        size(&disk.fsmeta),
        size(&disk.vmdk),
        disk.layers.len(),
        disk.fsmeta.display().to_string(),
        disk.vmdk.display().to_string(),
        disk.layers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>(),
    );
    Ok(())
}
