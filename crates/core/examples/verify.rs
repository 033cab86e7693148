//! Runs `Cache::verify` over every image of a cache root, quick or full, and prints the time,
//! the bytes read and what was found as JSON. Used by `bench/verify.mjs`:
//!
//! ```text
//! cargo run --release -p ocicache-core --example verify -- ROOT quick|full
//! ```
//!
//! `seconds` is the time of the `verify` call alone (the index is opened before it, outside the
//! timed region, by a `list`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ocicache_core::{Cache, CacheOptions, VerifyOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (root, full) = match args.as_slice() {
        [root, mode] if mode == "quick" || mode == "full" => (root, mode == "full"),
        _ => {
            eprintln!("usage: verify ROOT quick|full");
            return ExitCode::from(2);
        }
    };
    match run(PathBuf::from(root), full) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

fn run(root: PathBuf, full: bool) -> ocicache_core::Result<()> {
    let cache = Cache::open(CacheOptions {
        root: Some(root),
        backend: None,
    })?;
    cache.list()?;
    let start = Instant::now();
    let report = cache.verify(None, &VerifyOptions { full })?;
    let seconds = start.elapsed().as_secs_f64();
    let bytes_read: u64 = report.images.iter().map(|i| i.bytes_read).sum();
    let artifacts: u32 = report.images.iter().map(|i| i.artifacts).sum();
    println!(
        "{{\"seconds\":{seconds:.6},\"images\":{},\"artifacts\":{artifacts},\"bytesRead\":{bytes_read},\"problems\":{}}}",
        report.images.len(),
        report.problems
    );
    Ok(())
}
