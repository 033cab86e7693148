-- ocicache index, schema version 5 (PRAGMA user_version). See docs/cache-layout.md.
--
-- Every row has an integer key (INTEGER PRIMARY KEY: the table's rowid), and rows name each
-- other by it. A digest is stored once, in the row of what it names, as its 32 raw bytes (the
-- sha256; the artifact's file name is their hex). References are stored in canonical form
-- (`docker.io/library/busybox:latest`), times as milliseconds since the Unix epoch.
--
-- Counters (`manifest_count`, `shared_bytes`, `exclusive_bytes`) are kept by every change that
-- affects them, in the same transaction, so that `diskUsage()` reads them instead of walking
-- the artifact graph. Nothing decides what to delete from them: garbage collection recounts
-- from the rows (and rewrites any counter that disagrees).

-- Every file under blobs/sha256/: manifests and configs (and, in caches first written by
-- version 1, layer blobs, kind 'layer'). A manifest and a config share their blob's id.
CREATE TABLE blobs (
    id         INTEGER PRIMARY KEY,
    digest     BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
    size       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('manifest', 'config', 'layer')),
    created_at INTEGER NOT NULL
) STRICT;
-- Finds the layer blobs of version-1 caches (none in a cache written since) at no cost.
CREATE INDEX blobs_layer ON blobs (id) WHERE kind = 'layer';

-- Media types of manifests and layer descriptors, each spelled once.
CREATE TABLE media_types (
    id         INTEGER PRIMARY KEY,
    media_type TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE configs (
    id             INTEGER PRIMARY KEY REFERENCES blobs (id),   -- the config blob
    env            TEXT,   -- JSON array of strings, NULL when the config has none
    cmd            TEXT,   -- JSON array
    entrypoint     TEXT,   -- JSON array
    working_dir    TEXT,
    user           TEXT,
    labels         TEXT,   -- JSON object
    stop_signal    TEXT,
    manifest_count INTEGER NOT NULL   -- manifests using it
) STRICT;

CREATE TABLE manifests (
    id              INTEGER PRIMARY KEY REFERENCES blobs (id),   -- the manifest blob
    media_type_id   INTEGER NOT NULL REFERENCES media_types (id),
    architecture    TEXT NOT NULL,
    os              TEXT NOT NULL,
    variant         TEXT,
    layer_count     INTEGER NOT NULL,
    config_id       INTEGER NOT NULL REFERENCES configs (id),
    -- manifest + config + layer sizes as the descriptors state them (registry transfer size)
    total_size      INTEGER NOT NULL,
    -- bytes on disk of the manifest and config blobs, each distinct layer's stored file, and
    -- the manifest's fsmeta and VMDK
    disk_size       INTEGER,
    created_at      INTEGER NOT NULL,
    fsmeta_size     INTEGER,   -- NULL until fsmeta/sha256/<hex>.erofs is built
    vmdk_size       INTEGER,   -- NULL until vmdk/sha256/<hex>.vmdk is written
    -- recorded bytes of its config and layers that other manifests use too
    shared_bytes    INTEGER NOT NULL,
    -- recorded bytes only it uses: its blob, fsmeta, VMDK, and its unshared config and layers
    exclusive_bytes INTEGER NOT NULL,
    -- content hashes (blake3:<hex>, see crate::hash) of the fsmeta and VMDK as written; NULL
    -- when written before version 4
    fsmeta_hash     TEXT,
    vmdk_hash       TEXT,
    broken          TEXT,  -- why boot_disk refuses the image (a layer image is damaged); NULL: sound
    -- the registry repository (`registry/repository`) the manifest was last pulled from, which
    -- a repair fetches a damaged layer from again; NULL for a manifest only ever loaded
    origin          TEXT
) STRICT;
CREATE INDEX manifests_config ON manifests (config_id);

-- One row per distinct uncompressed layer, shared by every manifest that lists its diff_id.
CREATE TABLE layers (
    id             INTEGER PRIMARY KEY,
    diff_id        BLOB NOT NULL UNIQUE CHECK (length(diff_id) = 32),
    erofs_size     INTEGER,   -- NULL until the layer has an EROFS image
    created_at     INTEGER NOT NULL,
    manifest_count INTEGER NOT NULL,  -- distinct manifests listing it
    erofs_hash     TEXT   -- content hash of the EROFS image as written; NULL before version 4
) STRICT;

CREATE TABLE manifest_layers (
    manifest_id     INTEGER NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,   -- 0 = bottom
    layer_id        INTEGER NOT NULL REFERENCES layers (id),
    -- the blob as distributed (not kept since version 2), 32 bytes
    blob_digest     BLOB NOT NULL CHECK (length(blob_digest) = 32),
    media_type_id   INTEGER NOT NULL REFERENCES media_types (id),
    compressed_size INTEGER NOT NULL,
    PRIMARY KEY (manifest_id, position)
) STRICT, WITHOUT ROWID;
CREATE INDEX manifest_layers_layer ON manifest_layers (layer_id);

CREATE TABLE image_refs (
    id           INTEGER PRIMARY KEY,
    reference    TEXT NOT NULL UNIQUE,
    manifest_id  INTEGER NOT NULL REFERENCES manifests (id),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
CREATE INDEX image_refs_manifest ON image_refs (manifest_id);
-- list(): newest first, answered from this index alone (it covers every column list reads).
CREATE INDEX image_refs_listed ON image_refs (created_at DESC, reference, manifest_id, last_used_at);

-- Sandboxes and snapshots holding a manifest: they pin it (and its config and layers).
CREATE TABLE uses (
    id          TEXT PRIMARY KEY,   -- the use id the API hands out
    holder_kind TEXT NOT NULL CHECK (holder_kind IN ('sandbox', 'snapshot')),
    holder_id   TEXT NOT NULL,
    reference   TEXT NOT NULL,
    manifest_id INTEGER NOT NULL REFERENCES manifests (id),
    since       INTEGER NOT NULL,
    expires_at  INTEGER,   -- NULL: never; an expired use no longer pins anything
    UNIQUE (holder_kind, holder_id, manifest_id)
) STRICT;
CREATE INDEX uses_manifest ON uses (manifest_id);
