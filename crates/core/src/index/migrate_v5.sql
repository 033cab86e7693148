-- Schema 4 -> 5: integer keys. Every table gets an INTEGER PRIMARY KEY and names other rows by
-- it; a digest is stored once, as 32 raw bytes, in the row of what it names; media types are
-- spelled once. Every row is kept, and the counters (manifest_count, shared_bytes,
-- exclusive_bytes) are computed from the rows at the end.
--
-- Index::open runs this with foreign keys off (the new tables reference the final names,
-- which still belong to the old tables until the renames) and checks them before the commit.
--
-- Digests of schema 4 are `sha256:<64 hex>` text; `unhex(substr(x, 8))` is their 32 bytes.
-- A row whose digest does not have that form makes a NOT NULL or CHECK constraint fail, and
-- the migration rolls back, leaving schema 4 as it was.

CREATE TABLE blobs_v5 (
    id         INTEGER PRIMARY KEY,
    digest     BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
    size       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('manifest', 'config', 'layer')),
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO blobs_v5 (digest, size, kind, created_at)
    SELECT unhex(substr(digest, 8)), size, kind, created_at FROM blobs
    WHERE substr(digest, 1, 7) = 'sha256:' ORDER BY created_at, digest;
-- A digest not in sha256: form fails the migration instead of being dropped.
INSERT INTO blobs_v5 (digest, size, kind, created_at)
    SELECT NULL, size, kind, created_at FROM blobs WHERE substr(digest, 1, 7) <> 'sha256:';

CREATE TABLE media_types (
    id         INTEGER PRIMARY KEY,
    media_type TEXT NOT NULL UNIQUE
) STRICT;
INSERT INTO media_types (media_type)
    SELECT media_type FROM manifests UNION SELECT media_type FROM manifest_layers;

CREATE TABLE configs_v5 (
    id             INTEGER PRIMARY KEY REFERENCES blobs (id),
    env            TEXT,
    cmd            TEXT,
    entrypoint     TEXT,
    working_dir    TEXT,
    user           TEXT,
    labels         TEXT,
    stop_signal    TEXT,
    manifest_count INTEGER NOT NULL
) STRICT;
INSERT INTO configs_v5 (id, env, cmd, entrypoint, working_dir, user, labels, stop_signal, manifest_count)
    SELECT (SELECT b.id FROM blobs_v5 b WHERE b.digest = unhex(substr(c.digest, 8))),
           c.env, c.cmd, c.entrypoint, c.working_dir, c.user, c.labels, c.stop_signal, 0
    FROM configs c;

CREATE TABLE manifests_v5 (
    id              INTEGER PRIMARY KEY REFERENCES blobs (id),
    media_type_id   INTEGER NOT NULL REFERENCES media_types (id),
    architecture    TEXT NOT NULL,
    os              TEXT NOT NULL,
    variant         TEXT,
    layer_count     INTEGER NOT NULL,
    config_id       INTEGER NOT NULL REFERENCES configs (id),
    total_size      INTEGER NOT NULL,
    disk_size       INTEGER,
    created_at      INTEGER NOT NULL,
    fsmeta_size     INTEGER,
    vmdk_size       INTEGER,
    shared_bytes    INTEGER NOT NULL,
    exclusive_bytes INTEGER NOT NULL,
    fsmeta_hash     TEXT,
    vmdk_hash       TEXT,
    broken          TEXT
) STRICT;
INSERT INTO manifests_v5 (id, media_type_id, architecture, os, variant, layer_count, config_id,
        total_size, disk_size, created_at, fsmeta_size, vmdk_size, shared_bytes, exclusive_bytes,
        fsmeta_hash, vmdk_hash, broken)
    SELECT (SELECT b.id FROM blobs_v5 b WHERE b.digest = unhex(substr(m.digest, 8))),
           (SELECT t.id FROM media_types t WHERE t.media_type = m.media_type),
           m.architecture, m.os, m.variant, m.layer_count,
           (SELECT b.id FROM blobs_v5 b WHERE b.digest = unhex(substr(m.config_digest, 8))),
           m.total_size, m.disk_size, m.created_at, m.fsmeta_size, m.vmdk_size, 0, 0,
           m.fsmeta_hash, m.vmdk_hash, m.broken
    FROM manifests m ORDER BY m.created_at, m.digest;

CREATE TABLE layers_v5 (
    id             INTEGER PRIMARY KEY,
    diff_id        BLOB NOT NULL UNIQUE CHECK (length(diff_id) = 32),
    erofs_size     INTEGER,
    created_at     INTEGER NOT NULL,
    manifest_count INTEGER NOT NULL,
    erofs_hash     TEXT
) STRICT;
INSERT INTO layers_v5 (diff_id, erofs_size, created_at, manifest_count, erofs_hash)
    SELECT CASE WHEN substr(diff_id, 1, 7) = 'sha256:' THEN unhex(substr(diff_id, 8)) END,
           erofs_size, created_at, 0, erofs_hash
    FROM layers ORDER BY created_at, diff_id;

CREATE TABLE manifest_layers_v5 (
    manifest_id     INTEGER NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    layer_id        INTEGER NOT NULL REFERENCES layers (id),
    blob_digest     BLOB NOT NULL CHECK (length(blob_digest) = 32),
    media_type_id   INTEGER NOT NULL REFERENCES media_types (id),
    compressed_size INTEGER NOT NULL,
    PRIMARY KEY (manifest_id, position)
) STRICT, WITHOUT ROWID;
INSERT INTO manifest_layers_v5 (manifest_id, position, layer_id, blob_digest, media_type_id, compressed_size)
    SELECT (SELECT b.id FROM blobs_v5 b WHERE b.digest = unhex(substr(ml.manifest_digest, 8))),
           ml.position,
           (SELECT l.id FROM layers_v5 l WHERE l.diff_id = unhex(substr(ml.diff_id, 8))),
           CASE WHEN substr(ml.blob_digest, 1, 7) = 'sha256:' THEN unhex(substr(ml.blob_digest, 8)) END,
           (SELECT t.id FROM media_types t WHERE t.media_type = ml.media_type),
           ml.compressed_size
    FROM manifest_layers ml;

CREATE TABLE image_refs_v5 (
    id           INTEGER PRIMARY KEY,
    reference    TEXT NOT NULL UNIQUE,
    manifest_id  INTEGER NOT NULL REFERENCES manifests (id),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
INSERT INTO image_refs_v5 (reference, manifest_id, created_at, last_used_at)
    SELECT r.reference,
           (SELECT b.id FROM blobs_v5 b WHERE b.digest = unhex(substr(r.manifest_digest, 8))),
           r.created_at, r.last_used_at
    FROM image_refs r ORDER BY r.created_at, r.reference;

CREATE TABLE uses_v5 (
    id          TEXT PRIMARY KEY,
    holder_kind TEXT NOT NULL CHECK (holder_kind IN ('sandbox', 'snapshot')),
    holder_id   TEXT NOT NULL,
    reference   TEXT NOT NULL,
    manifest_id INTEGER NOT NULL REFERENCES manifests (id),
    since       INTEGER NOT NULL,
    expires_at  INTEGER,
    UNIQUE (holder_kind, holder_id, manifest_id)
) STRICT;
INSERT INTO uses_v5 (id, holder_kind, holder_id, reference, manifest_id, since, expires_at)
    SELECT u.id, u.holder_kind, u.holder_id, u.reference,
           (SELECT b.id FROM blobs_v5 b WHERE b.digest = unhex(substr(u.manifest_digest, 8))),
           u.since, u.expires_at
    FROM uses u;

-- Children first: the old tables reference each other by digest.
DROP TABLE uses;
DROP TABLE image_refs;
DROP TABLE manifest_layers;
DROP TABLE manifests;
DROP TABLE layers;
DROP TABLE configs;
DROP TABLE blobs;

ALTER TABLE blobs_v5 RENAME TO blobs;
ALTER TABLE configs_v5 RENAME TO configs;
ALTER TABLE manifests_v5 RENAME TO manifests;
ALTER TABLE layers_v5 RENAME TO layers;
ALTER TABLE manifest_layers_v5 RENAME TO manifest_layers;
ALTER TABLE image_refs_v5 RENAME TO image_refs;
ALTER TABLE uses_v5 RENAME TO uses;

CREATE INDEX blobs_layer ON blobs (id) WHERE kind = 'layer';
CREATE INDEX manifests_config ON manifests (config_id);
CREATE INDEX manifest_layers_layer ON manifest_layers (layer_id);
CREATE INDEX image_refs_manifest ON image_refs (manifest_id);
CREATE INDEX image_refs_listed ON image_refs (created_at DESC, reference, manifest_id, last_used_at);
CREATE INDEX uses_manifest ON uses (manifest_id);

-- The counters, from the rows: how many manifests use each config and layer, and per manifest
-- the recorded bytes it shares with other manifests and those only it uses (its blob, fsmeta
-- and VMDK are always its own).
UPDATE configs SET manifest_count = (SELECT COUNT(*) FROM manifests m WHERE m.config_id = configs.id);
UPDATE layers SET manifest_count =
    (SELECT COUNT(DISTINCT ml.manifest_id) FROM manifest_layers ml WHERE ml.layer_id = layers.id);
UPDATE manifests SET
    shared_bytes =
        (SELECT CASE WHEN c.manifest_count > 1 THEN b.size ELSE 0 END
         FROM configs c JOIN blobs b ON b.id = c.id WHERE c.id = manifests.config_id)
      + (SELECT COALESCE(SUM(COALESCE(l.erofs_size, 0)), 0) FROM layers l
         WHERE l.manifest_count > 1
           AND l.id IN (SELECT ml.layer_id FROM manifest_layers ml WHERE ml.manifest_id = manifests.id)),
    exclusive_bytes =
        (SELECT b.size FROM blobs b WHERE b.id = manifests.id)
      + COALESCE(fsmeta_size, 0) + COALESCE(vmdk_size, 0)
      + (SELECT CASE WHEN c.manifest_count = 1 THEN b.size ELSE 0 END
         FROM configs c JOIN blobs b ON b.id = c.id WHERE c.id = manifests.config_id)
      + (SELECT COALESCE(SUM(COALESCE(l.erofs_size, 0)), 0) FROM layers l
         WHERE l.manifest_count = 1
           AND l.id IN (SELECT ml.layer_id FROM manifest_layers ml WHERE ml.manifest_id = manifests.id));
