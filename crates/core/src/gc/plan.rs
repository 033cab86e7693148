//! Prune planning: which references go, and what each frees, computed on the artifact graph
//! with recorded sizes ([`SizeGraph`]). Pure: no SQL, no files.
//!
//! References are taken in the order given (least recently used first). Removing a reference
//! frees its manifest (manifest blob, fsmeta, VMDK) only when it was the manifest's last
//! reference and no use pins it; the config and each layer are freed only when their last
//! manifest goes. With a byte budget, eviction stops as soon as the cache fits it.

use crate::index::{Candidate, SizeGraph, digest_text};

/// One reference a prune removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// The reference's row id.
    pub id: i64,
    /// Canonical reference.
    pub reference: String,
    /// Its manifest.
    pub manifest_digest: String,
    /// Recorded bytes its removal frees (0 when other references keep the manifest).
    pub bytes_freed: u64,
}

/// The plan and the recorded bytes it frees, including manifests already unreachable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// References to remove, in order.
    pub references: Vec<Planned>,
    /// Bytes of manifests nothing reaches even before this prune.
    pub already_unreachable: u64,
    /// Total recorded bytes freed.
    pub bytes_freed: u64,
}

impl Plan {
    /// Row ids of the references to remove, for [`crate::index::Removal`].
    pub fn reference_ids(&self) -> Vec<i64> {
        self.references.iter().map(|p| p.id).collect()
    }
}

/// Plans removal of `candidates` (in order) from `graph`. `size` is the cache's current size;
/// with `max_bytes`, removal stops once `size` minus what is freed is at most `max_bytes`.
pub fn plan(
    graph: &SizeGraph,
    candidates: impl IntoIterator<Item = Candidate>,
    size: u64,
    max_bytes: Option<u64>,
) -> Plan {
    let (mut config_users, mut layer_users) = graph.user_counts();
    let mut refs: Vec<u32> = graph.manifests.iter().map(|m| m.refs).collect();
    let mut out = Plan::default();
    let free = |m: usize, config_users: &mut Vec<u32>, layer_users: &mut Vec<u32>| -> u64 {
        let node = &graph.manifests[m];
        let mut freed = node.own;
        config_users[node.config] -= 1;
        if config_users[node.config] == 0 {
            freed += graph.configs[node.config].bytes;
        }
        for &l in &node.layers {
            layer_users[l] -= 1;
            if layer_users[l] == 0 {
                freed += graph.layers[l].bytes;
            }
        }
        freed
    };
    for (m, node) in graph.manifests.iter().enumerate() {
        if node.refs == 0 && !node.pinned {
            out.already_unreachable += free(m, &mut config_users, &mut layer_users);
        }
    }
    let mut current = size.saturating_sub(out.already_unreachable);
    for c in candidates {
        if max_bytes.is_some_and(|max| current <= max) {
            break;
        }
        let Some(&m) = graph.manifest_ids.get(&c.manifest_id) else {
            continue;
        };
        refs[m] = refs[m].saturating_sub(1);
        let freed = if refs[m] == 0 && !graph.manifests[m].pinned {
            free(m, &mut config_users, &mut layer_users)
        } else {
            0
        };
        current = current.saturating_sub(freed);
        out.bytes_freed += freed;
        out.references.push(Planned {
            id: c.id,
            reference: c.reference,
            manifest_digest: digest_text(&graph.manifests[m].digest),
            bytes_freed: freed,
        });
    }
    out.bytes_freed += out.already_unreachable;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{ConfigNode, LayerNode, ManifestNode};

    fn graph() -> SizeGraph {
        // m0 and m1 share layer 0 (1000) and config 0 (10); m1 has layer 1 (500); m2 alone
        // has layer 2 (300) and config 1 (20). Each manifest's own bytes: 100. Manifest m<i>
        // has row id 100 + i.
        let bytes = |b: u64| ConfigNode {
            bytes: b,
            ..ConfigNode::default()
        };
        let mut g = SizeGraph {
            configs: vec![bytes(10), bytes(20)],
            layers: [1000, 500, 300]
                .map(|b| LayerNode {
                    bytes: b,
                    ..LayerNode::default()
                })
                .to_vec(),
            ..SizeGraph::default()
        };
        for (i, (config, layers, refs)) in [(0, vec![0], 1), (0, vec![0, 1], 2), (1, vec![2], 1)]
            .into_iter()
            .enumerate()
        {
            g.manifest_ids.insert(100 + i as i64, i);
            g.manifests.push(ManifestNode {
                id: 100 + i as i64,
                own: 100,
                config,
                layers,
                refs,
                ..ManifestNode::default()
            });
        }
        g
    }

    fn cand(r: &str, m: &str) -> Candidate {
        let m: i64 = m.trim_start_matches('m').parse().unwrap();
        Candidate {
            id: 0,
            reference: r.into(),
            manifest_id: 100 + m,
            last_used: 0,
        }
    }

    #[test]
    fn shared_bytes_go_with_the_last_user() {
        let p = plan(
            &graph(),
            [cand("a", "m0"), cand("b1", "m1"), cand("b2", "m1")],
            0,
            None,
        );
        let freed: Vec<u64> = p.references.iter().map(|r| r.bytes_freed).collect();
        // m0 frees its own bytes only (layer 0 and config 0 are shared with m1); the first of
        // m1's two references frees nothing; the last frees m1, config 0, layers 0 and 1.
        assert_eq!(freed, [100, 0, 100 + 10 + 1000 + 500]);
        assert_eq!(p.bytes_freed, 1710);
    }

    #[test]
    fn a_budget_stops_eviction_as_soon_as_the_cache_fits() {
        let total = 100 * 3 + 10 + 20 + 1000 + 500 + 300;
        let order = [
            cand("c", "m2"),
            cand("a", "m0"),
            cand("b1", "m1"),
            cand("b2", "m1"),
        ];
        let p = plan(&graph(), order.clone(), total, Some(total - 400));
        // c frees 100 + 20 + 300 = 420 >= 400: one eviction is enough.
        assert_eq!(p.references.len(), 1);
        let p = plan(&graph(), order.clone(), total, Some(total));
        assert!(p.references.is_empty());
        let p = plan(&graph(), order, total, Some(0));
        assert_eq!(p.references.len(), 4);
        assert_eq!(p.bytes_freed, total);
    }

    #[test]
    fn pinned_and_unreachable_manifests() {
        let mut g = graph();
        g.manifests[2].pinned = true;
        g.manifests[0].refs = 0; // unreachable already: freed without a reference
        let p = plan(&g, [cand("c", "m2")], 0, None);
        assert_eq!(p.already_unreachable, 100);
        assert_eq!(p.references[0].bytes_freed, 0, "a pinned manifest stays");
    }
}
