-- Schema 3 -> 4: content hashes of the artifacts ocicache writes (crate::hash, computed while
-- each is written; NULL for artifacts written before version 4) and a manifest's broken mark
-- (why boot_disk refuses it until a repair or a load of it fixes it; NULL when sound). Only
-- columns are added: readers of version 3 rows see NULL.
ALTER TABLE layers ADD COLUMN erofs_hash TEXT;
ALTER TABLE manifests ADD COLUMN fsmeta_hash TEXT;
ALTER TABLE manifests ADD COLUMN vmdk_hash TEXT;
ALTER TABLE manifests ADD COLUMN broken TEXT;
