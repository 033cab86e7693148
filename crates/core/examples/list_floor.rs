//! Benchmark floor for `list()`: the same rows read with a bare SQLite query, no ocicache code.
//!
//!     cargo run --release -p ocicache-core --example list_floor -- <index.db> [runs]
//!
//! Prints the median wall time of one query (collecting every row into owned values) in
//! milliseconds, and the row count, as `floor_ms=<ms> rows=<n>`.

use std::time::Instant;

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().ok_or("usage: list_floor <index.db> [runs]")?;
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(21);
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let all = common::list_rows(&conn)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        rows = all.len();
    }
    times.sort_by(f64::total_cmp);
    println!("floor_ms={:.3} rows={rows}", times[times.len() / 2]);
    Ok(())
}
