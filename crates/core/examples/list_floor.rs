//! Benchmark floor for `list()`: the same rows read with a bare SQLite query, no ocicache code.
//!
//!     cargo run --release -p ocicache-core --example list_floor -- <index.db> [runs]
//!
//! Prints the median wall time of one query (collecting every row into owned values) in
//! milliseconds, and the row count, as `floor_ms=<ms> rows=<n>`.

use std::time::Instant;

/// One row: reference, digest, created, last used, arch, os, variant, layers, size.
type Row = (
    String,
    String,
    i64,
    Option<i64>,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().ok_or("usage: list_floor <index.db> [runs]")?;
    let runs: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(21);
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let sql = "SELECT r.reference, r.manifest_digest, r.created_at, r.last_used_at,
                      m.architecture, m.os, m.variant, m.layer_count, m.disk_size
               FROM image_refs r JOIN manifests m ON m.digest = r.manifest_digest
               ORDER BY r.created_at DESC, r.reference";
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let mut stmt = conn.prepare_cached(sql)?;
        let all: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        rows = all.len();
    }
    times.sort_by(f64::total_cmp);
    println!("floor_ms={:.3} rows={rows}", times[times.len() / 2]);
    Ok(())
}
