#!/usr/bin/env bash
# The main job, end to end on a fresh machine: build the addon and the package, make a real
# image archive from host files, load it into a throw-away cache, then list, inspect, remove
# and prune it with the ocicache CLI, printing each step.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build:native >/dev/null
npm run --silent build:ts >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OCICACHE_HOME="$work/cache"
cli() { echo "\$ ocicache $*"; node dist/cli.cjs "$@"; echo; }

# Two layers of real content: a base of shell tools and a layer of documentation.
mkdir -p "$work/base/bin" "$work/docs/usr/share/doc"
cp /bin/sh /bin/ls /bin/cat "$work/base/bin/"
cp -r /usr/share/doc/bash "$work/docs/usr/share/doc/" 2>/dev/null || echo "demo docs" >"$work/docs/usr/share/doc/README"
node scripts/make-archive.mjs "$work/demo.tar" demo/app:1 "$work/base" "$work/docs"
echo

cli load -i "$work/demo.tar" --tag demo/app:latest
cli ls
cli inspect demo/app:1
echo "cache folder after load: layer EROFS images, fsmeta and VMDK of the image"
(cd "$OCICACHE_HOME" && find blobs layers fsmeta vmdk -type f | sort)
echo
echo "the VMDK descriptor:"; cat "$OCICACHE_HOME"/vmdk/sha256/*.vmdk; echo
if command -v qemu-img >/dev/null; then
  echo "\$ qemu-img info (the disk a VM boots)"; qemu-img info "$OCICACHE_HOME"/vmdk/sha256/*.vmdk | head -4; echo
fi
cli df -v
cli prune --dry-run
cli rm demo/app:latest
cli ls
cli prune --yes
cli ls
echo "cache folder after prune:"; (cd "$OCICACHE_HOME" && find . -type f | sort)
