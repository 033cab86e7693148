//! Loads an image archive or OCI layout folder into a cache root and prints the references and
//! artifact paths, for manual checks against the kernel and qemu:
//!
//! ```text
//! TAG=name:tag cargo run -p ocicache-core --example load -- ROOT SOURCE
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use ocicache_core::{Cache, CacheOptions, LoadOptions};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [root, source] = args.as_slice() else {
        eprintln!("usage: load ROOT SOURCE");
        return ExitCode::from(2);
    };
    let cache = match Cache::open(CacheOptions {
        root: Some(root.clone()),
        backend: None,
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            return ExitCode::FAILURE;
        }
    };
    let options = LoadOptions {
        tag: std::env::var("TAG").ok(),
        platform: None,
        ..Default::default()
    };
    match cache.load(source, &options) {
        Ok(handles) => {
            for h in handles {
                println!("{} {}", h.reference, h.manifest_digest.unwrap_or_default());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}
