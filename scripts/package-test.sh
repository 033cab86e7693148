#!/usr/bin/env bash
# The packaging proof (`npm run test:package`; .ci/run runs it after `npm test`): a user needs
# no toolchain.
#
#   1. the release addon for linux-x64-gnu, built the way the release workflow builds it
#      (`napi build --release -x`: cargo-zigbuild with zig, glibc 2.17 as the target);
#   2. no glibc symbol newer than 2.17 in it (`objdump -T`; regression: a local build needed
#      glibc 2.34);
#   3. the platform package and `npm pack` of ocicache (the prepack guard runs), then publint
#      and @arethetypeswrong/cli on the tarball;
#   4. both tarballs installed into an empty project with no network (a fresh network
#      namespace), no Rust toolchain on PATH and no native/ build in reach (`npm install
#      --offline`: dependencies from the npm cache), then ESM, CJS, TypeScript (nodenext,
#      bundler), `npx ocicache --version` and a real load -> ls -> prune
#      (scripts/consumer-smoke.mjs).
#
# Needs zig (PyPI `ziglang`) and cargo-zigbuild (PyPI `cargo-zigbuild`), objdump (binutils),
# unshare (util-linux) and root for the network namespace. Leaves prebuilds/ and npm/ with the
# host's release addon; the tests keep using the debug build.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
fail() { echo "package-test: $*" >&2; exit 1; }

TARGET=x86_64-unknown-linux-gnu
[ "$(uname -sm)" = "Linux x86_64" ] || fail "the packaging proof builds $TARGET and runs on Linux x86_64 only"
export OCICACHE_PACK_TARGETS=$TARGET
unset OCICACHE_NATIVE_PATH OCICACHE_PREBUILD LIBC

work=$(mktemp -d)
# platform-packages.mjs writes optionalDependencies into package.json for the pack: restore it.
cp package.json "$work/package.json.orig"
trap 'cp "$work/package.json.orig" package.json; rm -rf "$work"' EXIT

step "release addon for $TARGET (glibc 2.17, LTO, stripped)"
start=$(date +%s)
rm -rf native/release && mkdir -p native/release
npx napi build --release --platform --target "$TARGET.2.17" --cross-compile \
  --manifest-path crates/node/Cargo.toml --output-dir native/release --no-js \
  --dts "$work/binding.d.ts" --no-const-enum
echo "built in $(($(date +%s) - start)) s"
addon=native/release/ocicache.linux-x64-gnu.node
[ -f "$addon" ] || fail "no $addon"

step "glibc baseline: no symbol newer than GLIBC_2.17"
bash scripts/check-glibc.sh "$addon" 2.17

step "platform package and npm pack"
rm -rf prebuilds npm
mkdir -p prebuilds/linux-x64
cp "$addon" prebuilds/linux-x64/node.napi.glibc.node
node scripts/platform-packages.mjs
mkdir -p "$work/packs"
(cd npm/linux-x64 && npm pack --silent --pack-destination "$work/packs" >/dev/null)
npm pack --silent --pack-destination "$work/packs" >/dev/null
ls -l "$work/packs"
main_tgz=$(ls "$work"/packs/ocicache-[0-9]*.tgz)
platform_tgz=$(ls "$work"/packs/ocicache-ocicache-linux-x64-*.tgz)
main_files=$(tar -tzf "$main_tgz" | sort)
echo "$main_files"
for f in package/dist/index.mjs package/dist/index.cjs package/dist/cli.cjs package/dist/index.d.mts \
  package/dist/index.d.cts package/index.d.ts package/LICENSE; do
  grep -qx "$f" <<<"$main_files" || fail "$main_tgz lacks $f"
done
grep -qx package/node.napi.glibc.node <<<"$(tar -tzf "$platform_tgz")" || fail "$platform_tgz lacks the addon"
for t in "$main_tgz" "$platform_tgz"; do
  echo "$(basename "$t"): $(stat -c %s "$t") bytes packed"
done

step "publint and @arethetypeswrong/cli"
npx publint --strict "$main_tgz"
npx attw "$main_tgz"

step "make a small image archive"
mkdir -p "$work/layer1/bin" "$work/layer2/etc"
cp /bin/true "$work/layer1/bin/"
echo "smoke" >"$work/layer2/etc/motd"
node scripts/make-archive.mjs "$work/smoke.tar" smoke/app:1 "$work/layer1" "$work/layer2"

step "npm cache: the runtime dependencies at the lockfile's versions"
# `npm install` resolves ocicache's dependency ranges from registry metadata, which `npm ci`
# does not cache; add it (and each tarball) now, so the install below needs no network.
node -e '
const lock = require("./package-lock.json");
for (const [path, p] of Object.entries(lock.packages)) {
  if (path.startsWith("node_modules/") && !p.dev && !p.optional && !p.devOptional) {
    console.log(`${path.slice(path.lastIndexOf("node_modules/") + 13)}@${p.version}`);
  }
}' | tee "$work/runtime-deps" | xargs npm cache add

step "install the tarballs into an empty project: no network, no Rust, no native/ build"
consumer="$work/consumer"
mkdir -p "$consumer"
echo '{ "name": "consumer", "version": "1.0.0", "private": true }' >"$consumer/package.json"
node_dir=$(dirname "$(command -v node)")
clean_path="$node_dir:/usr/bin:/bin"
isolated() {
  # A new network namespace has only a loopback that is down: nothing outside is reachable.
  unshare --net env -i HOME="$HOME" PATH="$clean_path" npm_config_cache="$(npm config get cache)" \
    npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false "$@"
}
isolated sh -c '! command -v cargo && ! command -v rustc && ! command -v rustup' >/dev/null ||
  fail "a Rust toolchain is on the clean PATH ($clean_path)"
isolated sh -c 'cd "$1" && npm install --offline --no-save "$2" "$3"' _ "$consumer" "$platform_tgz" "$main_tgz"
[ ! -e "$consumer/node_modules/ocicache/native" ] || fail "the installed package has a native/ folder"
[ ! -e "$consumer/node_modules/ocicache/prebuilds" ] || fail "the installed package has a prebuilds/ folder"
ls "$consumer/node_modules/@ocicache"

step "consumer checks: ESM, CJS, TypeScript nodenext and bundler, npx ocicache, load -> ls -> prune"
isolated node scripts/consumer-smoke.mjs "$consumer" "$work/smoke.tar" "$PWD/node_modules/typescript/bin/tsc"
