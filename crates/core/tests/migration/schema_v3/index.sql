PRAGMA user_version = 3;
CREATE TABLE blobs (
    digest     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('manifest', 'config', 'layer')),
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO blobs VALUES ('sha256:17cb0c93326de9cce80122bf5bf402203224013ee21ade405874c8907cc81c6b',555,'manifest',1796131575995);
INSERT INTO blobs VALUES ('sha256:20e99735e4374e8e89301a406bbcb497ef9ddda92d3fe2a73544a81df494a8f0',707,'manifest',1796131576187);
INSERT INTO blobs VALUES ('sha256:26c0c868a7299626bda9348825c43bee55762e364c18f83feca136aa578ff81f',400,'manifest',1796131576187);
INSERT INTO blobs VALUES ('sha256:354759e2a54b3a20a324b679e08b03785fdc558dd14ab53591982bc78ab64cf9',236,'config',1796131576187);
INSERT INTO blobs VALUES ('sha256:4736660ce9e4b6536a8beebe791fdb3eff46a8970e44305773ddf778f794c79a',252,'config',1796131576131);
INSERT INTO blobs VALUES ('sha256:6be325b1ed216efc3ae9bb468d734fe23efb59dc17c1b7691b3d4efb24dc57e4',579,'manifest',1796131576079);
INSERT INTO blobs VALUES ('sha256:8868726216c4b064fffcbd88b7e60f01cb76d8c56c7bb87aceb81afa442ddec8',310,'config',1796131576079);
INSERT INTO blobs VALUES ('sha256:889b50c5a71b9d80d0d4834ae256f9c61cf121cf163eb55ef84b365eade844d3',400,'manifest',1796131576131);
INSERT INTO blobs VALUES ('sha256:9cccc6854d5902464c6aa91e0d8771b89029d24efce739190bee32ea6583621f',309,'config',1796131575995);
INSERT INTO blobs VALUES ('sha256:b0238ac264a3750c37aca1ce2c615d9ac9d11a940429c83c1770bffc60689b66',385,'config',1796131576187);
INSERT INTO blobs VALUES ('sha256:e88fd03abef09f2747748300dd8800b9f25a7bab0089e231ec8c0598a44633ef',554,'manifest',1796131575995);
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
INSERT INTO configs VALUES ('sha256:354759e2a54b3a20a324b679e08b03785fdc558dd14ab53591982bc78ab64cf9','["PATH=/usr/bin:/bin"]','["kept"]',NULL,'/',NULL,NULL,NULL);
INSERT INTO configs VALUES ('sha256:4736660ce9e4b6536a8beebe791fdb3eff46a8970e44305773ddf778f794c79a','["PATH=/usr/bin:/bin"]','["multi"]',NULL,'/',NULL,NULL,NULL);
INSERT INTO configs VALUES ('sha256:8868726216c4b064fffcbd88b7e60f01cb76d8c56c7bb87aceb81afa442ddec8','["PATH=/usr/bin:/bin"]','["tool"]',NULL,'/',NULL,NULL,NULL);
INSERT INTO configs VALUES ('sha256:9cccc6854d5902464c6aa91e0d8771b89029d24efce739190bee32ea6583621f','["PATH=/usr/bin:/bin"]','["app"]',NULL,'/',NULL,NULL,NULL);
INSERT INTO configs VALUES ('sha256:b0238ac264a3750c37aca1ce2c615d9ac9d11a940429c83c1770bffc60689b66','["PATH=/usr/bin:/bin"]','["twice"]',NULL,'/',NULL,NULL,NULL);
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
    vmdk_size     INTEGER    -- NULL until vmdk/sha256/<hex>.vmdk is written
) STRICT;
INSERT INTO manifests VALUES ('sha256:17cb0c93326de9cce80122bf5bf402203224013ee21ade405874c8907cc81c6b','application/vnd.oci.image.manifest.v1+json','amd64','linux',NULL,2,'sha256:9cccc6854d5902464c6aa91e0d8771b89029d24efce739190bee32ea6583621f',1185,46518,1796131575995,8192,598);
INSERT INTO manifests VALUES ('sha256:20e99735e4374e8e89301a406bbcb497ef9ddda92d3fe2a73544a81df494a8f0','application/vnd.oci.image.manifest.v1+json','amd64','linux',NULL,3,'sha256:b0238ac264a3750c37aca1ce2c615d9ac9d11a940429c83c1770bffc60689b66',1461,46852,1796131576187,8192,704);
INSERT INTO manifests VALUES ('sha256:26c0c868a7299626bda9348825c43bee55762e364c18f83feca136aa578ff81f','application/vnd.oci.image.manifest.v1+json','amd64','linux',NULL,1,'sha256:354759e2a54b3a20a324b679e08b03785fdc558dd14ab53591982bc78ab64cf9',728,25704,1796131576187,8192,492);
INSERT INTO manifests VALUES ('sha256:6be325b1ed216efc3ae9bb468d734fe23efb59dc17c1b7691b3d4efb24dc57e4','application/vnd.docker.distribution.manifest.v2+json','amd64','linux',NULL,2,'sha256:8868726216c4b064fffcbd88b7e60f01cb76d8c56c7bb87aceb81afa442ddec8',3120,46543,1796131576079,8192,598);
INSERT INTO manifests VALUES ('sha256:889b50c5a71b9d80d0d4834ae256f9c61cf121cf163eb55ef84b365eade844d3','application/vnd.oci.image.manifest.v1+json','arm64','linux','v8',1,'sha256:4736660ce9e4b6536a8beebe791fdb3eff46a8970e44305773ddf778f794c79a',744,25720,1796131576131,8192,492);
INSERT INTO manifests VALUES ('sha256:e88fd03abef09f2747748300dd8800b9f25a7bab0089e231ec8c0598a44633ef','application/vnd.oci.image.manifest.v1+json','amd64','linux',NULL,2,'sha256:9cccc6854d5902464c6aa91e0d8771b89029d24efce739190bee32ea6583621f',1114,46517,1796131575995,8192,598);
CREATE TABLE layers (
    diff_id    TEXT PRIMARY KEY,
    erofs_size INTEGER,   -- NULL until the layer has an EROFS image
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO layers VALUES ('sha256:06a6562cc60dfc8f1993232bf4f1743c351bdf2f2986072589d4c32589d8268b',16384,1796131575995);
INSERT INTO layers VALUES ('sha256:2da1f7fd003567654882784c63c52558731555f31c5f282b2c4f025840ca1306',16384,1796131576187);
INSERT INTO layers VALUES ('sha256:42cefde1143b924c449df862eedcaf2d9de4b9851e01a7794387df43edcfbdc9',16384,1796131576131);
INSERT INTO layers VALUES ('sha256:7c68c6a0eb372893acd2731f71d39b8cd3d94cce8444f0b015226684d1ad207e',20480,1796131575995);
INSERT INTO layers VALUES ('sha256:debea13ec27230488062481c5c8adf722a8cae4a5881e091e8dd286857f1c756',16384,1796131576187);
INSERT INTO layers VALUES ('sha256:fbcacfe3038ed9085bb8c328826b75a9fd35964d11a0c096384e08509bf97039',16384,1796131576079);
CREATE TABLE manifest_layers (
    manifest_digest TEXT NOT NULL REFERENCES manifests (digest) ON DELETE CASCADE,
    position        INTEGER NOT NULL,   -- 0 = bottom
    diff_id         TEXT NOT NULL REFERENCES layers (diff_id),
    blob_digest     TEXT NOT NULL,   -- the blob as distributed (not kept since version 2)
    media_type      TEXT NOT NULL,
    compressed_size INTEGER NOT NULL,
    PRIMARY KEY (manifest_digest, position)
) STRICT, WITHOUT ROWID;
INSERT INTO manifest_layers VALUES ('sha256:17cb0c93326de9cce80122bf5bf402203224013ee21ade405874c8907cc81c6b',0,'sha256:7c68c6a0eb372893acd2731f71d39b8cd3d94cce8444f0b015226684d1ad207e','sha256:fe4d70e7b117f04e3ebfb6d8d710ec6476f0ac76a96408b519784a10ded57d8c','application/vnd.oci.image.layer.v1.tar+gzip',183);
INSERT INTO manifest_layers VALUES ('sha256:17cb0c93326de9cce80122bf5bf402203224013ee21ade405874c8907cc81c6b',1,'sha256:06a6562cc60dfc8f1993232bf4f1743c351bdf2f2986072589d4c32589d8268b','sha256:9ef9585422e58d8efcae396c2ed5c5ef67aa9eaa1ac16fff8f0c62fc90a36632','application/vnd.oci.image.layer.v1.tar+gzip',138);
INSERT INTO manifest_layers VALUES ('sha256:20e99735e4374e8e89301a406bbcb497ef9ddda92d3fe2a73544a81df494a8f0',0,'sha256:2da1f7fd003567654882784c63c52558731555f31c5f282b2c4f025840ca1306','sha256:1d73701c0bcfee715b22b2cb4802ffdef55e9bb16559ccfb824389f858974bab','application/vnd.oci.image.layer.v1.tar+gzip',93);
INSERT INTO manifest_layers VALUES ('sha256:20e99735e4374e8e89301a406bbcb497ef9ddda92d3fe2a73544a81df494a8f0',1,'sha256:7c68c6a0eb372893acd2731f71d39b8cd3d94cce8444f0b015226684d1ad207e','sha256:fe4d70e7b117f04e3ebfb6d8d710ec6476f0ac76a96408b519784a10ded57d8c','application/vnd.oci.image.layer.v1.tar+gzip',183);
INSERT INTO manifest_layers VALUES ('sha256:20e99735e4374e8e89301a406bbcb497ef9ddda92d3fe2a73544a81df494a8f0',2,'sha256:2da1f7fd003567654882784c63c52558731555f31c5f282b2c4f025840ca1306','sha256:1d73701c0bcfee715b22b2cb4802ffdef55e9bb16559ccfb824389f858974bab','application/vnd.oci.image.layer.v1.tar+gzip',93);
INSERT INTO manifest_layers VALUES ('sha256:26c0c868a7299626bda9348825c43bee55762e364c18f83feca136aa578ff81f',0,'sha256:debea13ec27230488062481c5c8adf722a8cae4a5881e091e8dd286857f1c756','sha256:67da9c92bdffbaa9046cd4cc4502dc02a65c7fbbf8d6c1edfe4f82a4bf866425','application/vnd.oci.image.layer.v1.tar+gzip',92);
INSERT INTO manifest_layers VALUES ('sha256:6be325b1ed216efc3ae9bb468d734fe23efb59dc17c1b7691b3d4efb24dc57e4',0,'sha256:7c68c6a0eb372893acd2731f71d39b8cd3d94cce8444f0b015226684d1ad207e','sha256:fe4d70e7b117f04e3ebfb6d8d710ec6476f0ac76a96408b519784a10ded57d8c','application/vnd.docker.image.rootfs.diff.tar.gzip',183);
INSERT INTO manifest_layers VALUES ('sha256:6be325b1ed216efc3ae9bb468d734fe23efb59dc17c1b7691b3d4efb24dc57e4',1,'sha256:fbcacfe3038ed9085bb8c328826b75a9fd35964d11a0c096384e08509bf97039','sha256:fbcacfe3038ed9085bb8c328826b75a9fd35964d11a0c096384e08509bf97039','application/vnd.docker.image.rootfs.diff.tar',2048);
INSERT INTO manifest_layers VALUES ('sha256:889b50c5a71b9d80d0d4834ae256f9c61cf121cf163eb55ef84b365eade844d3',0,'sha256:42cefde1143b924c449df862eedcaf2d9de4b9851e01a7794387df43edcfbdc9','sha256:5421692af6cd0563eb8162eb831d88e2179f49a9412aef23b652877586bf461b','application/vnd.oci.image.layer.v1.tar+gzip',92);
INSERT INTO manifest_layers VALUES ('sha256:e88fd03abef09f2747748300dd8800b9f25a7bab0089e231ec8c0598a44633ef',0,'sha256:7c68c6a0eb372893acd2731f71d39b8cd3d94cce8444f0b015226684d1ad207e','sha256:77817cae0656ffad52fc603b6fadb20d8c4f6ac2b99004da06d5376bb462b4bb','application/vnd.oci.image.layer.v1.tar+zstd',155);
INSERT INTO manifest_layers VALUES ('sha256:e88fd03abef09f2747748300dd8800b9f25a7bab0089e231ec8c0598a44633ef',1,'sha256:06a6562cc60dfc8f1993232bf4f1743c351bdf2f2986072589d4c32589d8268b','sha256:f02641d368f7ced3efd23116ccfc2b2ad23ec72314a42a9100350979ad2836cd','application/vnd.oci.image.layer.v1.tar+zstd',96);
CREATE INDEX manifest_layers_diff_id ON manifest_layers (diff_id);
CREATE TABLE image_refs (
    reference       TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL REFERENCES manifests (digest),
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
) STRICT;
INSERT INTO image_refs VALUES ('docker.io/library/tool:2','sha256:6be325b1ed216efc3ae9bb468d734fe23efb59dc17c1b7691b3d4efb24dc57e4',1796131576079,1796131576285);
INSERT INTO image_refs VALUES ('example.com/mig/app-zstd:1','sha256:e88fd03abef09f2747748300dd8800b9f25a7bab0089e231ec8c0598a44633ef',1796131575995,NULL);
INSERT INTO image_refs VALUES ('example.com/mig/app:1','sha256:17cb0c93326de9cce80122bf5bf402203224013ee21ade405874c8907cc81c6b',1796131575995,1796131576271);
INSERT INTO image_refs VALUES ('example.com/mig/app:latest','sha256:17cb0c93326de9cce80122bf5bf402203224013ee21ade405874c8907cc81c6b',1796131575995,NULL);
INSERT INTO image_refs VALUES ('example.com/mig/tool:extra','sha256:6be325b1ed216efc3ae9bb468d734fe23efb59dc17c1b7691b3d4efb24dc57e4',1796131576079,NULL);
INSERT INTO image_refs VALUES ('example.com/mig/twice:1','sha256:20e99735e4374e8e89301a406bbcb497ef9ddda92d3fe2a73544a81df494a8f0',1796131576187,NULL);
INSERT INTO image_refs VALUES ('ghcr.io/o/multi:1','sha256:889b50c5a71b9d80d0d4834ae256f9c61cf121cf163eb55ef84b365eade844d3',1796131576131,NULL);
CREATE INDEX image_refs_manifest ON image_refs (manifest_digest);
CREATE INDEX image_refs_created ON image_refs (created_at DESC, reference);
CREATE INDEX manifests_config ON manifests (config_digest);
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
INSERT INTO uses VALUES ('078713dce36169a15eb9c04c29a93e83','sandbox','vm-gone','docker.io/library/tool:2','sha256:6be325b1ed216efc3ae9bb468d734fe23efb59dc17c1b7691b3d4efb24dc57e4',1796131576285,1796131576286);
INSERT INTO uses VALUES ('409e76f59eb576d407c1f55bdd36aa62','snapshot','snap-1','example.com/mig/kept:1','sha256:26c0c868a7299626bda9348825c43bee55762e364c18f83feca136aa578ff81f',1796131576275,NULL);
INSERT INTO uses VALUES ('bb6f4074aaf97ad213ccd8df0c17ba82','sandbox','vm-1','example.com/mig/app:1','sha256:17cb0c93326de9cce80122bf5bf402203224013ee21ade405874c8907cc81c6b',1796131576271,NULL);
CREATE INDEX uses_manifest ON uses (manifest_digest);
