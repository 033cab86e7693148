//! Shared by the benchmark examples: the bare SQLite query that is `list()`'s floor.

/// One row of the list floor: reference, digest, created, last used, arch, os, variant, layers,
/// size.
pub type ListRow = (
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

/// The rows `list()` returns, read with one bare query into owned values (no ocicache code).
pub fn list_rows(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<ListRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.reference, r.manifest_digest, r.created_at, r.last_used_at,
                m.architecture, m.os, m.variant, m.layer_count, m.disk_size
         FROM image_refs r JOIN manifests m ON m.digest = r.manifest_digest
         ORDER BY r.created_at DESC, r.reference",
    )?;
    stmt.query_map([], |r| {
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
    .collect()
}
