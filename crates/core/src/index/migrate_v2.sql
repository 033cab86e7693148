-- Schema 1 -> 2: layer blobs become transient (layers/ holds their EROFS images), so
-- manifest_layers.blob_digest no longer references blobs; manifests record fsmeta and VMDK sizes;
-- uses may expire.
ALTER TABLE manifests ADD COLUMN fsmeta_size INTEGER;
ALTER TABLE manifests ADD COLUMN vmdk_size INTEGER;

CREATE TABLE manifest_layers_v2 (
    manifest_digest TEXT NOT NULL REFERENCES manifests (digest) ON DELETE CASCADE,
    position        INTEGER NOT NULL,
    diff_id         TEXT NOT NULL REFERENCES layers (diff_id),
    blob_digest     TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    compressed_size INTEGER NOT NULL,
    PRIMARY KEY (manifest_digest, position)
) STRICT, WITHOUT ROWID;
INSERT INTO manifest_layers_v2
    SELECT manifest_digest, position, diff_id, blob_digest, media_type, compressed_size
    FROM manifest_layers;
DROP TABLE manifest_layers;
ALTER TABLE manifest_layers_v2 RENAME TO manifest_layers;
CREATE INDEX manifest_layers_diff_id ON manifest_layers (diff_id);
CREATE INDEX manifest_layers_blob ON manifest_layers (blob_digest);

ALTER TABLE uses ADD COLUMN expires_at INTEGER;
CREATE INDEX manifests_config ON manifests (config_digest);
