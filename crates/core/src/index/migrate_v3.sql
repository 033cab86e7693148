-- Schema 2 -> 3: drop the index on manifest_layers.blob_digest. Layer blobs are not kept since
-- version 2, so only a version-1 cache's leftover 'layer' blobs are ever looked up by it, and
-- prune finds those with one set query instead. The index cost a third of the work of every
-- manifest_layers insert and delete (a third of the table's bytes again on disk).
DROP INDEX IF EXISTS manifest_layers_blob;
