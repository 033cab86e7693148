// The JSON texts of the binding's `listJson` and `diskUsageJson` (crates/node/src/convert.rs
// writes them): one string per call for what can be 100,000 rows, as arrays rather than objects
// and with each manifest once, which `JSON.parse` reads in less than half the time of one object
// per row.

/** `[digest, architecture, os, variant, layerCount, sizeBytes]` of one manifest. */
export type ListManifestRow = [string, string, string, string | null, number, number | null];

/** `[reference, manifest, createdAtMs, lastUsedAtMs]`: `manifest` is a position in `manifests`. */
export type ListReferenceRow = [string, number, number, number | null];

/** What `listJson` returns: every reference, newest first. */
export interface ListJson {
  references: ListReferenceRow[];
  manifests: ListManifestRow[];
}

/** `[digest, sharedBytes, exclusiveBytes]` of one manifest. */
export type UsageManifestRow = [string, number, number];

/** `[reference, manifest, reclaimableBytes]`: `manifest` is a position in `manifests`. */
export type UsageImageRow = [string, number, number];

/** What `diskUsageJson` returns: totals by kind, and every reference in reference order. */
export interface DiskUsageJson {
  layers: number;
  fsmeta: number;
  vmdk: number;
  blobs: number;
  index: number;
  temporary: number;
  total: number;
  images: UsageImageRow[];
  manifests: UsageManifestRow[];
}
