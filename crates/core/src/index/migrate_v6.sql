-- Schema 5 -> 6: where a manifest came from (the registry repository of its last pull, which
-- `repair` fetches a damaged layer from again). Only a column is added: every manifest recorded
-- before version 6 reads NULL (loaded, or pulled before its origin was kept).
ALTER TABLE manifests ADD COLUMN origin TEXT;
