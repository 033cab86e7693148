//! Queries for prune planning and disk usage: which references a prune may remove, the
//! artifact graph with recorded sizes (for eviction by size), and per-kind and per-image byte
//! totals. Everything answers from recorded sizes, never from the disk.

use std::collections::HashMap;

use rusqlite::params;

use super::{Index, LIVE_USE};
use crate::error::Result;

/// A reference a prune may remove, with the time that orders eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Canonical reference.
    pub reference: String,
    /// Its manifest.
    pub manifest_digest: String,
    /// `last_used_at`, or `created_at` for a reference never used (ms).
    pub last_used: i64,
}

/// Which references a prune considers.
#[derive(Debug, Clone, Default)]
pub struct CandidateFilter {
    /// Now (ms): uses expiring at or before it no longer pin.
    pub now: i64,
    /// Only references last used (or, never used, created) before this time (ms).
    pub older_than: Option<i64>,
    /// References created or used after this time (ms) are kept.
    pub grace_since: Option<i64>,
}

/// The artifact graph with recorded sizes, artifacts interned as numbers.
#[derive(Debug, Clone, Default)]
pub struct SizeGraph {
    /// Per manifest id: its own bytes (manifest blob, fsmeta, VMDK), config id, layer ids
    /// (distinct), and how many references name it.
    pub manifests: Vec<ManifestNode>,
    /// Manifest digest to id.
    pub manifest_ids: HashMap<String, usize>,
    /// Per config id: bytes.
    pub configs: Vec<u64>,
    /// Per layer id: bytes.
    pub layers: Vec<u64>,
}

/// One manifest of a [`SizeGraph`].
#[derive(Debug, Clone, Default)]
pub struct ManifestNode {
    /// Manifest blob, fsmeta and VMDK bytes.
    pub own: u64,
    /// Config id.
    pub config: usize,
    /// Distinct layer ids.
    pub layers: Vec<usize>,
    /// References naming it.
    pub refs: u32,
    /// Whether an unexpired use pins it.
    pub pinned: bool,
}

/// Recorded bytes by artifact kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindTotals {
    /// Layer EROFS images.
    pub layers: u64,
    /// fsmeta images.
    pub fsmeta: u64,
    /// VMDK descriptors.
    pub vmdk: u64,
    /// Blobs (manifests, configs; layer blobs of version-1 caches).
    pub blobs: u64,
}

/// Per-reference usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsageRow {
    /// Canonical reference.
    pub reference: String,
    /// Its manifest.
    pub manifest_digest: String,
    /// Bytes of artifacts its manifest shares with other manifests.
    pub shared: u64,
    /// Bytes of artifacts only its manifest uses.
    pub exclusive: u64,
    /// What removing this reference (and pruning) would reclaim: its manifest's exclusive
    /// bytes when it is the manifest's only reference and no unexpired use pins it, else 0.
    pub reclaimable: u64,
}

impl Index {
    /// References a prune may remove, least recently used first: those whose manifest no
    /// unexpired use pins, filtered by age and grace. Streams rows into `each`.
    pub fn prune_candidates(
        &self,
        filter: &CandidateFilter,
        mut each: impl FnMut(Candidate) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT r.reference, r.manifest_digest, COALESCE(r.last_used_at, r.created_at) AS t
             FROM image_refs r
             WHERE NOT EXISTS (SELECT 1 FROM uses u WHERE u.manifest_digest = r.manifest_digest AND {LIVE_USE})
               AND (?2 IS NULL OR COALESCE(r.last_used_at, r.created_at) < ?2)
               AND (?3 IS NULL OR (r.created_at <= ?3 AND COALESCE(r.last_used_at, 0) <= ?3))
             ORDER BY t, r.reference"
        ))?;
        let mut rows = stmt.query(params![filter.now, filter.older_than, filter.grace_since])?;
        while let Some(row) = rows.next()? {
            each(Candidate {
                reference: row.get(0)?,
                manifest_digest: row.get(1)?,
                last_used: row.get(2)?,
            })?;
        }
        Ok(())
    }

    /// The artifact graph with recorded sizes (see [`SizeGraph`]).
    pub fn size_graph(&self, now: i64) -> Result<SizeGraph> {
        let mut g = SizeGraph::default();
        let mut config_ids: HashMap<String, usize> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT m.digest, m.config_digest,
                    COALESCE(mb.size, 0) + COALESCE(m.fsmeta_size, 0) + COALESCE(m.vmdk_size, 0),
                    COALESCE(cb.size, 0),
                    (SELECT COUNT(*) FROM image_refs r WHERE r.manifest_digest = m.digest),
                    EXISTS (SELECT 1 FROM uses u WHERE u.manifest_digest = m.digest AND {LIVE_USE})
             FROM manifests m
             LEFT JOIN blobs mb ON mb.digest = m.digest
             LEFT JOIN blobs cb ON cb.digest = m.config_digest"
        ))?;
        let mut rows = stmt.query([now])?;
        while let Some(row) = rows.next()? {
            let digest: String = row.get(0)?;
            let config: String = row.get(1)?;
            let config_size: i64 = row.get(3)?;
            let next = config_ids.len();
            let config = *config_ids.entry(config).or_insert_with(|| {
                g.configs.push(config_size.max(0) as u64);
                next
            });
            g.manifest_ids.insert(digest, g.manifests.len());
            g.manifests.push(ManifestNode {
                own: row.get::<_, i64>(2)?.max(0) as u64,
                config,
                layers: Vec::new(),
                refs: row.get::<_, i64>(4)?.max(0) as u32,
                pinned: row.get(5)?,
            });
        }
        let mut layer_ids: HashMap<String, usize> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT ml.manifest_digest, ml.diff_id, COALESCE(l.erofs_size, 0)
             FROM manifest_layers ml JOIN layers l ON l.diff_id = ml.diff_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let manifest: String = row.get(0)?;
            let diff_id: String = row.get(1)?;
            let size: i64 = row.get(2)?;
            let next = layer_ids.len();
            let layer = *layer_ids.entry(diff_id).or_insert_with(|| {
                g.layers.push(size.max(0) as u64);
                next
            });
            if let Some(&m) = g.manifest_ids.get(&manifest) {
                g.manifests[m].layers.push(layer);
            }
        }
        Ok(g)
    }

    /// Recorded bytes by kind.
    pub fn kind_totals(&self) -> Result<KindTotals> {
        let sum = |sql: &str| -> Result<u64> {
            let v: i64 = self.conn.query_row(sql, [], |r| r.get(0))?;
            Ok(v.max(0) as u64)
        };
        Ok(KindTotals {
            layers: sum("SELECT COALESCE(SUM(erofs_size), 0) FROM layers")?,
            fsmeta: sum("SELECT COALESCE(SUM(fsmeta_size), 0) FROM manifests")?,
            vmdk: sum("SELECT COALESCE(SUM(vmdk_size), 0) FROM manifests")?,
            blobs: sum("SELECT COALESCE(SUM(size), 0) FROM blobs")?,
        })
    }

    /// Shared, exclusive and reclaimable bytes of every reference, streamed into `each` in
    /// reference order.
    pub fn image_usage(
        &self,
        now: i64,
        mut each: impl FnMut(ImageUsageRow) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "WITH layer_users AS (
                 SELECT diff_id, COUNT(DISTINCT manifest_digest) AS n FROM manifest_layers GROUP BY diff_id),
             per_manifest AS (
                 SELECT x.manifest_digest AS digest,
                        SUM(CASE WHEN lu.n = 1 THEN COALESCE(l.erofs_size, 0) ELSE 0 END) AS excl,
                        SUM(CASE WHEN lu.n > 1 THEN COALESCE(l.erofs_size, 0) ELSE 0 END) AS shared
                 FROM (SELECT DISTINCT manifest_digest, diff_id FROM manifest_layers) x
                 JOIN layer_users lu ON lu.diff_id = x.diff_id
                 JOIN layers l ON l.diff_id = x.diff_id
                 GROUP BY x.manifest_digest),
             config_users AS (
                 SELECT config_digest, COUNT(*) AS n FROM manifests GROUP BY config_digest),
             ref_counts AS (
                 SELECT manifest_digest, COUNT(*) AS n FROM image_refs GROUP BY manifest_digest)
             SELECT r.reference, m.digest,
                    COALESCE(pm.shared, 0) + CASE WHEN cu.n > 1 THEN COALESCE(cb.size, 0) ELSE 0 END,
                    COALESCE(pm.excl, 0) + COALESCE(mb.size, 0) + COALESCE(m.fsmeta_size, 0)
                        + COALESCE(m.vmdk_size, 0) + CASE WHEN cu.n = 1 THEN COALESCE(cb.size, 0) ELSE 0 END,
                    rc.n = 1 AND NOT EXISTS (SELECT 1 FROM uses u WHERE u.manifest_digest = m.digest AND {LIVE_USE})
             FROM image_refs r
             JOIN manifests m ON m.digest = r.manifest_digest
             JOIN ref_counts rc ON rc.manifest_digest = m.digest
             JOIN config_users cu ON cu.config_digest = m.config_digest
             LEFT JOIN per_manifest pm ON pm.digest = m.digest
             LEFT JOIN blobs mb ON mb.digest = m.digest
             LEFT JOIN blobs cb ON cb.digest = m.config_digest
             ORDER BY r.reference"
        ))?;
        let mut rows = stmt.query([now])?;
        while let Some(row) = rows.next()? {
            let exclusive = row.get::<_, i64>(3)?.max(0) as u64;
            let alone: bool = row.get(4)?;
            each(ImageUsageRow {
                reference: row.get(0)?,
                manifest_digest: row.get(1)?,
                shared: row.get::<_, i64>(2)?.max(0) as u64,
                exclusive,
                reclaimable: if alone { exclusive } else { 0 },
            })?;
        }
        Ok(())
    }
}
