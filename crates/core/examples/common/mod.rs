//! Shared by the benchmark examples: the bare SQLite queries that are the floors of `list()`
//! and `diskUsage()`. Each is the very query the index runs for that call (the same text as
//! `LIST_SELECT` and `USAGE_SELECT` in `crates/core/src/index`, and `Index::kind_totals`),
//! collecting every column into owned values with plain rusqlite: what reading those rows costs
//! with no ocicache code at all.
#![allow(dead_code, reason = "each example uses the floors it measures")]

/// One row of the list floor: reference, manifest digest (32 bytes), created, last used, arch,
/// os, variant, layers, size, reference id, manifest id.
pub type ListRow = (
    String,
    Vec<u8>,
    i64,
    Option<i64>,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    i64,
    i64,
);

/// The rows `list()` returns, read with one bare query into owned values (no ocicache code).
pub fn list_rows(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<ListRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.reference, b.digest, r.created_at, r.last_used_at,
                m.architecture, m.os, m.variant, m.layer_count, m.disk_size, r.id, r.manifest_id
         FROM image_refs r JOIN manifests m ON m.id = r.manifest_id JOIN blobs b ON b.id = m.id
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
            r.get(9)?,
            r.get(10)?,
        ))
    })?
    .collect()
}

/// One row of the disk-usage floor: reference, manifest digest, shared and exclusive bytes,
/// references to the manifest, whether a use pins it.
pub type UsageRow = (String, Vec<u8>, i64, i64, i64, bool);

/// The rows and totals `diskUsage()` returns, read with the same bare queries into owned values
/// (no ocicache code): one row per reference in reference order, then the totals by kind.
pub fn usage_rows(
    conn: &rusqlite::Connection,
    now: i64,
) -> rusqlite::Result<(Vec<UsageRow>, [i64; 4])> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.reference, b.digest, m.shared_bytes, m.exclusive_bytes,
                (SELECT COUNT(*) FROM image_refs o WHERE o.manifest_id = r.manifest_id),
                EXISTS (SELECT 1 FROM uses u WHERE u.manifest_id = r.manifest_id AND (u.expires_at IS NULL OR u.expires_at > ?1))
         FROM image_refs r JOIN manifests m ON m.id = r.manifest_id JOIN blobs b ON b.id = m.id
         ORDER BY r.reference",
    )?;
    let rows = stmt
        .query_map([now], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<UsageRow>>>()?;
    let totals = conn
        .prepare_cached(
            "SELECT (SELECT COALESCE(SUM(erofs_size), 0) FROM layers),
                COALESCE(SUM(fsmeta_size), 0), COALESCE(SUM(vmdk_size), 0),
                (SELECT COALESCE(SUM(size), 0) FROM blobs)
         FROM manifests",
        )?
        .query_row([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))?;
    Ok((rows, totals))
}
