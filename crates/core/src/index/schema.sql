-- ocicache index, schema version 4 (PRAGMA user_version). See docs/cache-layout.md.
-- Every table is keyed by the spec's own identifiers: digests and diff_ids as `sha256:<hex>`,
-- references in canonical form (`docker.io/library/busybox:latest`). Times are milliseconds
-- since the Unix epoch.

-- Every file under blobs/sha256/, with its size in bytes when it was written. Since version 2
-- layer blobs are transient (converted to layers/ then deleted); 'layer' rows only remain from
-- caches written by version 1.
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('manifest', 'config', 'layer')),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE configs (
    digest      TEXT PRIMARY KEY REFERENCES blobs (digest),
    env         TEXT,   -- JSON array of strings, NULL when the config has none
    cmd         TEXT,   -- JSON array
    entrypoint  TEXT,   -- JSON array
    working_dir TEXT,
    user        TEXT,
    labels      TEXT,   -- JSON object
    stop_signal TEXT
) STRICT;

CREATE TABLE manifests (
    digest        TEXT PRIMARY KEY REFERENCES blobs (digest),
    media_type    TEXT NOT NULL,
    architecture  TEXT NOT NULL,
    os            TEXT NOT NULL,
    variant       TEXT,
    layer_count   INTEGER NOT NULL,
    config_digest TEXT NOT NULL REFERENCES configs (digest),
    -- manifest + config + layer sizes as the descriptors state them (registry transfer size)
    total_size    INTEGER NOT NULL,
    -- bytes on disk of the manifest and config blobs, each distinct layer's stored file, and
    -- the manifest's fsmeta and VMDK
    disk_size     INTEGER,
    created_at    INTEGER NOT NULL,
    fsmeta_size   INTEGER,   -- NULL until fsmeta/sha256/<hex>.erofs is built
    vmdk_size     INTEGER,   -- NULL until vmdk/sha256/<hex>.vmdk is written
    -- content hashes (blake3:<hex>, see crate::hash) of the fsmeta and VMDK as written; NULL
    -- when written before version 4
    fsmeta_hash   TEXT,
    vmdk_hash     TEXT,
    broken        TEXT       -- why boot_disk refuses the image (a layer image is damaged); NULL: sound
) STRICT;

-- One row per distinct uncompressed layer, shared by every manifest that lists its diff_id.
CREATE TABLE layers (
    diff_id    TEXT PRIMARY KEY,
    erofs_size INTEGER,   -- NULL until the layer has an EROFS image
    created_at INTEGER NOT NULL,
    erofs_hash TEXT       -- content hash of the EROFS image as written; NULL before version 4
) STRICT;

CREATE TABLE manifest_layers (
    manifest_digest TEXT NOT NULL REFERENCES manifests (digest) ON DELETE CASCADE,
    position        INTEGER NOT NULL,   -- 0 = bottom
    diff_id         TEXT NOT NULL REFERENCES layers (diff_id),
    blob_digest     TEXT NOT NULL,   -- the blob as distributed (not kept since version 2)
    media_type      TEXT NOT NULL,
    compressed_size INTEGER NOT NULL,
    PRIMARY KEY (manifest_digest, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX manifest_layers_diff_id ON manifest_layers (diff_id);

CREATE TABLE image_refs (
    reference       TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL REFERENCES manifests (digest),
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
) STRICT;
CREATE INDEX image_refs_manifest ON image_refs (manifest_digest);
CREATE INDEX image_refs_created ON image_refs (created_at DESC, reference);
CREATE INDEX manifests_config ON manifests (config_digest);

-- Sandboxes and snapshots holding a manifest: they pin it (and its config and layers).
CREATE TABLE uses (
    id              TEXT PRIMARY KEY,
    holder_kind     TEXT NOT NULL CHECK (holder_kind IN ('sandbox', 'snapshot')),
    holder_id       TEXT NOT NULL,
    reference       TEXT NOT NULL,
    manifest_digest TEXT NOT NULL REFERENCES manifests (digest),
    since           INTEGER NOT NULL,
    expires_at      INTEGER,   -- NULL: never; an expired use no longer pins anything
    UNIQUE (holder_kind, holder_id, manifest_digest)
) STRICT;
CREATE INDEX uses_manifest ON uses (manifest_digest);
