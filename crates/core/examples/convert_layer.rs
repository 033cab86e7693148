//! Converts one layer blob (gzip, zstd or plain tar) into an EROFS image, as `load` does, and
//! prints what it read and wrote as JSON. Used by `bench/` and for manual checks:
//!
//! ```text
//! cargo run --release -p ocicache-core --example convert_layer -- layer.tar.gz out.erofs
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ocicache_core::layer::{ConvertOptions, convert_layer};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [blob, dest] = args.as_slice() else {
        eprintln!("usage: convert_layer BLOB DEST");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    match convert_layer(blob, dest, &ConvertOptions::default()) {
        Ok(layer) => {
            println!(
                "{{\"seconds\":{:.6},\"blobSize\":{},\"tarSize\":{},\"erofsSize\":{},\"entries\":{},\"diffId\":\"{}\"}}",
                start.elapsed().as_secs_f64(),
                layer.blob_size,
                layer.tar_size,
                layer.erofs_size,
                layer.entries,
                layer.diff_id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error [{}]: {e}", e.code());
            ExitCode::FAILURE
        }
    }
}
