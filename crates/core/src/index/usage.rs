//! Queries for prune planning and disk usage: which references a prune may remove, the
//! artifact graph with recorded sizes (for eviction by size and for reachability), and
//! per-kind and per-image byte totals. Everything answers from recorded sizes, never from the
//! disk.

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use super::{
    DigestBytes, HandleRow, Index, LIVE_USE, digest_at, digest_bytes, digest_text, text_at,
};
use crate::error::{Error, Result};

/// A reference a prune may remove, with the time that orders eviction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The reference's row id.
    pub id: i64,
    /// Canonical reference.
    pub reference: String,
    /// Its manifest's row id.
    pub manifest_id: i64,
    /// `last_used_at`, or `created_at` for a reference never used (ms).
    pub last_used: i64,
}

impl Candidate {
    /// The candidate for a reference read with [`Index::get`] or [`Index::find_by_digest`].
    pub fn from_row(row: &HandleRow) -> Candidate {
        Candidate {
            id: row.id,
            reference: row.reference.clone(),
            manifest_id: row.manifest_id,
            last_used: row.last_used_at.unwrap_or(row.created_at),
        }
    }
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

/// The artifact graph with recorded sizes: every manifest, config and layer as a dense number
/// (its position here), with its row id, its digest, and the counters its row holds.
#[derive(Debug, Clone, Default)]
pub struct SizeGraph {
    /// Per manifest: its own bytes, config, distinct layers, references, pin.
    pub manifests: Vec<ManifestNode>,
    /// Manifest row id to its position in `manifests`.
    pub manifest_ids: HashMap<i64, usize>,
    /// Per config.
    pub configs: Vec<ConfigNode>,
    /// Per layer.
    pub layers: Vec<LayerNode>,
    /// Layer blobs a version-1 cache still keeps (`kind = 'layer'`): none in caches written
    /// since.
    pub layer_blobs: Vec<DigestBytes>,
}

impl SizeGraph {
    /// How many manifests use each config and each layer (indexed by their positions),
    /// counted from the graph's edges.
    pub fn user_counts(&self) -> (Vec<u32>, Vec<u32>) {
        let mut config_users = vec![0u32; self.configs.len()];
        let mut layer_users = vec![0u32; self.layers.len()];
        for m in &self.manifests {
            config_users[m.config] += 1;
            for &l in &m.layers {
                layer_users[l] += 1;
            }
        }
        (config_users, layer_users)
    }

    /// The shared and exclusive bytes of manifest `m` when its config and layers have
    /// `config_users` and `layer_users` users.
    pub fn split(&self, m: usize, config_users: &[u32], layer_users: &[u32]) -> (u64, u64) {
        let node = &self.manifests[m];
        let (mut shared, mut exclusive) = (0, node.own);
        let config = self.configs[node.config].bytes;
        if config_users[node.config] > 1 {
            shared += config;
        } else {
            exclusive += config;
        }
        for &l in &node.layers {
            if layer_users[l] > 1 {
                shared += self.layers[l].bytes;
            } else {
                exclusive += self.layers[l].bytes;
            }
        }
        (shared, exclusive)
    }
}

/// One manifest of a [`SizeGraph`].
#[derive(Debug, Clone, Default)]
pub struct ManifestNode {
    /// Row id.
    pub id: i64,
    /// Its digest (its blob's, and its fsmeta's and VMDK's name).
    pub digest: DigestBytes,
    /// Manifest blob, fsmeta and VMDK bytes.
    pub own: u64,
    /// Config position.
    pub config: usize,
    /// Distinct layer positions.
    pub layers: Vec<usize>,
    /// References naming it.
    pub refs: u32,
    /// Whether an unexpired use pins it.
    pub pinned: bool,
    /// `shared_bytes` as its row holds it.
    pub shared: u64,
    /// `exclusive_bytes` as its row holds it.
    pub exclusive: u64,
}

/// One config of a [`SizeGraph`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfigNode {
    /// Row id (its blob's).
    pub id: i64,
    /// Its digest (its blob's name).
    pub digest: DigestBytes,
    /// Bytes of its blob.
    pub bytes: u64,
    /// `manifest_count` as its row holds it.
    pub users: u32,
}

/// One layer of a [`SizeGraph`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerNode {
    /// Row id.
    pub id: i64,
    /// Its diff_id (its EROFS image's name).
    pub diff_id: DigestBytes,
    /// Whether it has an EROFS image (every layer since version 2).
    pub has_image: bool,
    /// Bytes of its EROFS image (0 while it has none).
    pub bytes: u64,
    /// `manifest_count` as its row holds it.
    pub users: u32,
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

/// One manifest's recorded bytes (see [`Index::manifest_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestUsage {
    /// Bytes of artifacts it shares with other manifests.
    pub shared: u64,
    /// Bytes of artifacts only it uses.
    pub exclusive: u64,
    /// Whether an unexpired use pins it.
    pub pinned: bool,
}

/// A recorded count or size as an unsigned number (a negative one, which no code writes,
/// counts as 0).
fn unsigned(v: i64) -> u64 {
    v.max(0) as u64
}

/// A graph edge naming a row the graph does not hold: a damaged index.
fn dangling(what: &str, id: i64) -> Error {
    Error::CorruptCache {
        reason: format!("the index names a missing {what} (row {id})"),
    }
}

/// `ImageUsage`'s query: one row per reference, in reference order, from the counters.
pub(super) const USAGE_SELECT: &str = "SELECT r.reference, b.digest, m.shared_bytes, m.exclusive_bytes,
        (SELECT COUNT(*) FROM image_refs o WHERE o.manifest_id = r.manifest_id),
        EXISTS (SELECT 1 FROM uses u WHERE u.manifest_id = r.manifest_id AND (u.expires_at IS NULL OR u.expires_at > ?1))
    FROM image_refs r JOIN manifests m ON m.id = r.manifest_id JOIN blobs b ON b.id = m.id
    ORDER BY r.reference";

impl Index {
    /// Row ids of the manifests an unexpired use pins at `now`.
    fn pinned(&self, now: i64) -> Result<HashSet<i64>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT DISTINCT u.manifest_id FROM uses u WHERE {LIVE_USE}"
        ))?;
        let mut rows = stmt.query([now])?;
        let mut out = HashSet::new();
        while let Some(row) = rows.next()? {
            out.insert(row.get(0)?);
        }
        Ok(out)
    }

    /// References a prune may remove, least recently used first (ties by reference): those
    /// whose manifest no unexpired use pins, filtered by age and grace. Streams them into
    /// `each`.
    pub fn prune_candidates(
        &self,
        filter: &CandidateFilter,
        mut each: impl FnMut(Candidate) -> Result<()>,
    ) -> Result<()> {
        let pinned = self.pinned(filter.now)?;
        // One scan of the references; the few pinned manifests are looked up in memory and the
        // order is sorted here, cheaper than a correlated subquery and SQLite's sorter per row.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, reference, manifest_id, created_at, last_used_at FROM image_refs",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let manifest_id: i64 = row.get(2)?;
            if pinned.contains(&manifest_id) {
                continue;
            }
            let created: i64 = row.get(3)?;
            let used: Option<i64> = row.get(4)?;
            let last_used = used.unwrap_or(created);
            if filter.older_than.is_some_and(|t| last_used >= t) {
                continue;
            }
            if filter
                .grace_since
                .is_some_and(|t| created > t || used.unwrap_or(0) > t)
            {
                continue;
            }
            out.push(Candidate {
                id: row.get(0)?,
                reference: text_at(row, 1)?.to_owned(),
                manifest_id,
                last_used,
            });
        }
        drop(rows);
        out.sort_unstable_by(|a, b| (a.last_used, &a.reference).cmp(&(b.last_used, &b.reference)));
        out.into_iter().try_for_each(&mut each)
    }

    /// The artifact graph with recorded sizes and the counters the rows hold (see
    /// [`SizeGraph`]).
    ///
    /// Built from one scan of each table, joined here through integer ids: the manifests with
    /// their blob sizes, the configs, the layers, the manifest-layer edges (from the index on
    /// `layer_id`, which holds every column needed), the reference count per manifest (from
    /// the index on `manifest_id`) and the pinned manifests.
    pub fn size_graph(&self, now: i64) -> Result<SizeGraph> {
        let mut g = SizeGraph::default();
        let mut config_ids: HashMap<i64, usize> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, b.size, c.manifest_count, b.digest FROM configs c JOIN blobs b ON b.id = c.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            config_ids.insert(id, g.configs.len());
            g.configs.push(ConfigNode {
                id,
                digest: *digest_at(row, 3, "blobs")?,
                bytes: unsigned(row.get(1)?),
                users: unsigned(row.get(2)?) as u32,
            });
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.id, m.config_id, b.size + COALESCE(m.fsmeta_size, 0) + COALESCE(m.vmdk_size, 0),
                    m.shared_bytes, m.exclusive_bytes, b.digest
             FROM manifests m JOIN blobs b ON b.id = m.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let config_id: i64 = row.get(1)?;
            let config = *config_ids
                .get(&config_id)
                .ok_or_else(|| dangling("config", config_id))?;
            g.manifest_ids.insert(id, g.manifests.len());
            g.manifests.push(ManifestNode {
                id,
                digest: *digest_at(row, 5, "blobs")?,
                own: unsigned(row.get(2)?),
                config,
                layers: Vec::new(),
                refs: 0,
                pinned: false,
                shared: unsigned(row.get(3)?),
                exclusive: unsigned(row.get(4)?),
            });
        }
        let mut layer_ids: HashMap<i64, usize> = HashMap::new();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, erofs_size, manifest_count, diff_id FROM layers")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let size: Option<i64> = row.get(1)?;
            layer_ids.insert(id, g.layers.len());
            g.layers.push(LayerNode {
                id,
                diff_id: *digest_at(row, 3, "layers")?,
                has_image: size.is_some(),
                bytes: unsigned(size.unwrap_or(0)),
                users: unsigned(row.get(2)?) as u32,
            });
        }
        // In layer order (the covering index), so a layer's rows come together: look it up
        // once per run.
        let mut stmt = self.conn.prepare_cached(
            "SELECT layer_id, manifest_id FROM manifest_layers INDEXED BY manifest_layers_layer",
        )?;
        let mut rows = stmt.query([])?;
        let mut current: Option<(i64, usize)> = None;
        while let Some(row) = rows.next()? {
            let layer_id: i64 = row.get(0)?;
            let layer = match current {
                Some((id, l)) if id == layer_id => l,
                _ => {
                    let l = *layer_ids
                        .get(&layer_id)
                        .ok_or_else(|| dangling("layer", layer_id))?;
                    current = Some((layer_id, l));
                    l
                }
            };
            let manifest_id: i64 = row.get(1)?;
            let m = *g
                .manifest_ids
                .get(&manifest_id)
                .ok_or_else(|| dangling("manifest", manifest_id))?;
            let layers = &mut g.manifests[m].layers;
            // A manifest listing a layer twice lists it in one run of rows.
            if layers.last() != Some(&layer) {
                layers.push(layer);
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT manifest_id, COUNT(*) FROM image_refs INDEXED BY image_refs_manifest
             GROUP BY manifest_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let manifest_id: i64 = row.get(0)?;
            let m = *g
                .manifest_ids
                .get(&manifest_id)
                .ok_or_else(|| dangling("manifest", manifest_id))?;
            g.manifests[m].refs = unsigned(row.get(1)?) as u32;
        }
        for id in self.pinned(now)? {
            if let Some(&m) = g.manifest_ids.get(&id) {
                g.manifests[m].pinned = true;
            }
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT digest FROM blobs INDEXED BY blobs_layer WHERE kind = 'layer'",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            g.layer_blobs.push(*digest_at(row, 0, "blobs")?);
        }
        Ok(g)
    }

    /// Recorded bytes by kind.
    pub fn kind_totals(&self) -> Result<KindTotals> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT (SELECT COALESCE(SUM(erofs_size), 0) FROM layers),
                    COALESCE(SUM(fsmeta_size), 0), COALESCE(SUM(vmdk_size), 0),
                    (SELECT COALESCE(SUM(size), 0) FROM blobs)
             FROM manifests",
        )?;
        let t = stmt.query_row([], |r| {
            Ok(KindTotals {
                layers: unsigned(r.get(0)?),
                fsmeta: unsigned(r.get(1)?),
                vmdk: unsigned(r.get(2)?),
                blobs: unsigned(r.get(3)?),
            })
        })?;
        Ok(t)
    }

    /// Shared, exclusive and reclaimable bytes of every reference, streamed into `each` in
    /// reference order.
    ///
    /// Read from the counters each manifest's row keeps (`shared_bytes`, `exclusive_bytes`),
    /// with its reference count and pin from the indexes on `manifest_id`: one query, no
    /// graph.
    pub fn image_usage(
        &self,
        now: i64,
        mut each: impl FnMut(ImageUsageRow) -> Result<()>,
    ) -> Result<()> {
        self.image_usage_each(now, |reference, digest, shared, exclusive, reclaimable| {
            each(ImageUsageRow {
                reference: reference.to_owned(),
                manifest_digest: digest_text(digest),
                shared,
                exclusive,
                reclaimable,
            })
        })
    }

    /// The shared and exclusive bytes of manifest `digest` (text) and whether an unexpired use
    /// pins it at `now`.
    pub fn manifest_usage(&self, digest: &str, now: i64) -> Result<Option<ManifestUsage>> {
        let Some(digest) = digest_bytes(digest) else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT m.shared_bytes, m.exclusive_bytes,
                 EXISTS (SELECT 1 FROM uses u WHERE u.manifest_id = m.id AND {LIVE_USE})
             FROM blobs b JOIN manifests m ON m.id = b.id WHERE b.digest = ?2"
        ))?;
        let mut rows = stmt.query(params![now, digest])?;
        rows.next()?
            .map(|row| {
                Ok(ManifestUsage {
                    shared: unsigned(row.get(0)?),
                    exclusive: unsigned(row.get(1)?),
                    pinned: row.get(2)?,
                })
            })
            .transpose()
    }

    /// [`Index::image_usage`], handing each row's fields to `each` borrowed: reference,
    /// manifest digest, shared, exclusive and reclaimable bytes.
    pub fn image_usage_each(
        &self,
        now: i64,
        mut each: impl FnMut(&str, &DigestBytes, u64, u64, u64) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(USAGE_SELECT)?;
        let mut rows = stmt.query(params![now])?;
        while let Some(row) = rows.next()? {
            let exclusive = unsigned(row.get(3)?);
            let refs: i64 = row.get(4)?;
            let pinned: bool = row.get(5)?;
            each(
                text_at(row, 0)?,
                digest_at(row, 1, "blobs")?,
                unsigned(row.get(2)?),
                exclusive,
                if refs == 1 && !pinned { exclusive } else { 0 },
            )?;
        }
        Ok(())
    }
}
