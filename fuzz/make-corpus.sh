#!/usr/bin/env bash
# Regenerates the seed corpus in fuzz/corpus/<target>/ from real writers: GNU tar (gnu, oldgnu,
# posix, ustar and v7 formats, sparse files, xattrs), Python's tarfile (GNU, PAX, ustar,
# whiteouts, binary xattrs), umoci and skopeo (Go's archive/tar layers, OCI layouts, docker
# archives, real manifests, indexes and configs), the layer converter (EROFS layer and fsmeta
# images from those tars) and mkfs.erofs. Needs root (device nodes), the test oracles
# (umoci, skopeo, erofs-utils, attr, zstd) and python3.
#
# Seeds named `seed-*` are rewritten; `finding-*` files (inputs of fixed findings) are kept.
# Run from anywhere: bash fuzz/make-corpus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
corpus=$repo/fuzz/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

for t in tar layer oci_json names erofs_reader erofs_round_trip archive; do
  mkdir -p "$corpus/$t"
  find "$corpus/$t" -name 'seed-*' -delete
done

# A small tree with every kind of entry.
src=$work/src
mkdir -p "$src/dir/sub" "$src/$(printf 'long%.0s' {1..30})"
printf 'hello\n' >"$src/dir/file"
head -c 2000 /dev/zero | tr '\0' 'x' >"$src/dir/sub/big"
ln -s dir/file "$src/link"
ln "$src/dir/file" "$src/dir/hard"
mkfifo "$src/fifo"
mknod "$src/null" c 1 3
printf 'x' >"$src/$(printf 'long%.0s' {1..30})/$(printf 'name%.0s' {1..30})"
setfattr -n user.comment -v 'a value' "$src/dir/file"
# A sparse file: a hole, 100 bytes, a hole.
truncate -s 20000 "$src/sparse"
printf '%0100d' 7 | dd of="$src/sparse" bs=1 seek=8192 conv=notrunc status=none
touch -h -d @1700000000 "$src"/* "$src"/dir/* "$src"/dir/sub/*

gnutar() { tar --sort=name --mtime=@1700000000 -C "$src" "$@"; }
gnutar --format=gnu -cf "$corpus/tar/seed-gnu.tar" .
gnutar --format=gnu -S -cf "$corpus/tar/seed-gnu-sparse.tar" sparse dir
gnutar --format=oldgnu -S -cf "$corpus/tar/seed-oldgnu-sparse.tar" sparse
gnutar --format=posix --xattrs -cf "$corpus/tar/seed-posix-xattrs.tar" .
gnutar --format=posix -S --sparse-version=1.0 -cf "$corpus/tar/seed-posix-sparse-1.0.tar" sparse
gnutar --format=ustar -cf "$corpus/tar/seed-ustar.tar" dir link fifo null
gnutar --format=v7 -cf "$corpus/tar/seed-v7.tar" dir link
gnutar --format=gnu --owner=3000000 --group=3000000 --mtime=@-100 \
  -cf "$corpus/tar/seed-gnu-base256.tar" dir/file

python3 - "$corpus/tar" <<'EOF'
import io, sys, tarfile
out = sys.argv[1]

def entry(tf, name, data=b"", kind=tarfile.REGTYPE, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mtime = 1700000000
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)

for fmt, tag in [(tarfile.GNU_FORMAT, "gnu"), (tarfile.PAX_FORMAT, "pax"), (tarfile.USTAR_FORMAT, "ustar")]:
    with tarfile.open(f"{out}/seed-python-{tag}.tar", "w", format=fmt) as tf:
        entry(tf, "etc/", kind=tarfile.DIRTYPE, mode=0o755)
        entry(tf, "etc/passwd", b"root:x:0:0::/root:/bin/sh\n", mode=0o644)
        entry(tf, "etc/link", kind=tarfile.SYMTYPE, linkname="passwd")
        entry(tf, "etc/hard", kind=tarfile.LNKTYPE, linkname="etc/passwd")
        entry(tf, "dev/blk", kind=tarfile.BLKTYPE, devmajor=8, devminor=1)
        entry(tf, "old/.wh.gone")
        entry(tf, "opq/.wh..wh..opq")
        if fmt != tarfile.USTAR_FORMAT:
            entry(tf, "deep/" + "d" * 120 + "/file", b"long")

# PAX records holding a binary xattr (newline included), a newline in a name, nanoseconds.
with tarfile.open(f"{out}/seed-python-pax-binary.tar", "w", format=tarfile.PAX_FORMAT) as tf:
    ti = tarfile.TarInfo("bin/ping")
    ti.size = 4
    ti.mtime = 1700000000.123456789
    ti.pax_headers = {
        "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\n\x20\x00\x00",
        "SCHILY.xattr.user.x": "y",
        "mtime": "1700000000.123456789",
    }
    tf.addfile(ti, io.BytesIO(b"\x7fELF"))
    ti = tarfile.TarInfo("we\nird name")
    tf.addfile(ti, io.BytesIO(b""))
EOF

# Go's archive/tar, through umoci: an OCI layout with one layer of the tree above.
export GOMAXPROCS=1
oci=$work/oci
umoci init --layout "$oci" >/dev/null
umoci new --image "$oci:seed" >/dev/null
umoci unpack --rootless --image "$oci:seed" "$work/bundle" >/dev/null
cp -a "$src/dir" "$src/link" "$work/bundle/rootfs/"
umoci repack --image "$oci:seed" "$work/bundle" >/dev/null
umoci config --image "$oci:seed" --config.cmd=/bin/sh --config.env=PATH=/bin >/dev/null
umoci gc --layout "$oci"
blob() { echo "$oci/blobs/sha256/${1#sha256:}"; }
manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$oci/index.json")
config=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$(blob "$manifest")")
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][-1]["digest"])' "$(blob "$manifest")")
gzip -dc "$(blob "$layer")" >"$corpus/tar/seed-go-umoci.tar"
cp "$oci/index.json" "$corpus/oci_json/seed-umoci-index.json"
cp "$oci/oci-layout" "$corpus/oci_json/seed-oci-layout"
cp "$(blob "$manifest")" "$corpus/oci_json/seed-umoci-manifest.json"
cp "$(blob "$config")" "$corpus/oci_json/seed-umoci-config.json"
# A config with what inspect reads from the blob: ports, volumes, author, created, history.
umoci config --image "$oci:seed" --tag described --config.exposedports=8080/tcp \
  --config.exposedports=53/udp --config.volume=/data --author='Ann <ann@example.com>' \
  --created=2024-05-01T12:00:00Z --history.created_by='/bin/sh -c make' \
  --history.comment=build --history.author=Bob --history.created=2024-05-01T12:00:00Z >/dev/null
described=$(python3 -c 'import json,sys; m=[x for x in json.load(open(sys.argv[1]))["manifests"] if x.get("annotations",{}).get("org.opencontainers.image.ref.name")=="described"][0]; print(m["digest"])' "$oci/index.json")
config=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"])' "$(blob "$described")")
cp "$(blob "$config")" "$corpus/oci_json/seed-umoci-config-described.json"

# skopeo: a docker save archive (manifest.json, legacy config), an OCI archive, and a Docker
# v2 schema 2 manifest.
skopeo copy -q "oci:$oci:seed" "docker-archive:$work/docker.tar:seed/app:v1"
skopeo copy -q "oci:$oci:seed" "oci-archive:$work/oci.tar:seed"
skopeo copy -q --format v2s2 "oci:$oci:seed" "dir:$work/v2s2"
tar -xOf "$work/docker.tar" manifest.json >"$corpus/oci_json/seed-docker-manifest.json"
docker_config=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Config"])' "$corpus/oci_json/seed-docker-manifest.json")
tar -xOf "$work/docker.tar" "$docker_config" >"$corpus/oci_json/seed-docker-config.json"
cp "$work/v2s2/manifest.json" "$corpus/oci_json/seed-docker-v2s2-manifest.json"
python3 - "$corpus/oci_json" <<'EOF'
import json, sys
out = sys.argv[1]
d = "sha256:" + "0123456789abcdef" * 4
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 7,
     "platform": {"os": "linux", "architecture": arch, **({"variant": v} if v else {})},
     "annotations": {"org.opencontainers.image.ref.name": "docker.io/library/app:1",
                     "io.containerd.image.name": "app:1"}}
    for arch, v in [("amd64", None), ("arm64", "v8"), ("arm", "v7")]]}
json.dump(index, open(f"{out}/seed-multi-platform-index.json", "w"))
EOF
# The two archives are the archive target's seeds when small enough to mutate well.
cp "$work/docker.tar" "$corpus/archive/seed-docker-save.tar"
cp "$work/oci.tar" "$corpus/archive/seed-oci-layout.tar"
gzip -9n <"$work/oci.tar" >"$corpus/archive/seed-oci-layout.tar.gz"

# Layer blobs: plain tars, and compressed ones as registries store them.
for t in seed-gnu seed-python-pax seed-go-umoci seed-gnu-sparse seed-python-pax-binary; do
  cp "$corpus/tar/$t.tar" "$corpus/layer/$t.tar"
done
gzip -9n <"$corpus/tar/seed-python-gnu.tar" >"$corpus/layer/seed-python-gnu.tar.gz"
zstd -q -19 <"$corpus/tar/seed-ustar.tar" >"$corpus/layer/seed-ustar.tar.zst"

# EROFS images: layers the converter wrote, an fsmeta from `load`, and mkfs.erofs images.
cargo build -q --release -p ocicache-core --example convert_layer --example load
for t in seed-gnu seed-python-pax seed-go-umoci; do
  "$repo/target/release/examples/convert_layer" "$corpus/tar/$t.tar" \
    "$corpus/erofs_reader/$t.erofs" >/dev/null
done
"$repo/target/release/examples/load" "$work/cache" "$work/docker.tar" >/dev/null
cp "$work"/cache/fsmeta/sha256/*.erofs "$corpus/erofs_reader/seed-fsmeta.erofs"
mkfs.erofs --quiet -T1700000000 "$corpus/erofs_reader/seed-mkfs-erofs.erofs" "$src/dir"
mkfs.erofs --quiet -T1700000000 -Enoinline_data "$corpus/erofs_reader/seed-mkfs-erofs-noinline.erofs" "$src/dir"
mkfs.erofs --quiet -T1700000000 --chunksize=4096 "$corpus/erofs_reader/seed-mkfs-erofs-chunked.erofs" "$src/dir"

# The round trip target reads generator choices: a few fixed pseudo-random streams.
python3 - "$corpus/erofs_round_trip" <<'EOF'
import random, sys
for seed, size in [(1, 64), (2, 512), (3, 2048), (4, 4096)]:
    rng = random.Random(seed)
    open(f"{sys.argv[1]}/seed-random-{seed}", "wb").write(bytes(rng.randrange(256) for _ in range(size)))
EOF

# Names: references, digests and member names as archives and users spell them.
i=0
while IFS= read -r line; do
  i=$((i + 1))
  printf '%s' "$line" >"$corpus/names/seed-$i"
done <<'EOF'
busybox
busybox:latest
library/busybox:1.36
docker.io/library/busybox:1
index.docker.io/library/busybox
localhost:5000/app
localhost/app:v1
ghcr.io/org/team/app:v1.2-rc_3
registry.example.com:443/a/b/c@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
blobs/sha256/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.json
./a//b/layer.tar
../escape
EOF
du -sh "$corpus"/*
