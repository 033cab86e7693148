#!/usr/bin/env bash
# Builds the release addon and the package, then runs every benchmark. Figures go to
# BENCHMARKS.md with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build:native >/dev/null
npm run --silent build:ts >/dev/null
cargo build -q --release -p ocicache-core --example list_floor --example convert_layer \
  --example boot_disk --example load --example prune_bench --example verify
node bench/list.mjs "${LIST_REFERENCES:-10000}"
node bench/load.mjs "${LOAD_SOURCE:-/usr/lib/x86_64-linux-gnu}" "${LOAD_MIB:-256}"
node bench/erofs-layer.mjs "${EROFS_RUNS:-5}" "${EROFS_BIG_MIB:-1024}"
node bench/fsmeta.mjs "${FSMETA_RUNS:-5}"
node bench/prune.mjs "${PRUNE_SIZES:-1000,10000,100000}"
node bench/prune-tools.mjs "${PRUNE_TOOLS_REFS:-400}"
node bench/pull.mjs "${PULL_RUNS:-3}" "${PULL_BIG_MIB:-1024}"
node bench/verify.mjs "${VERIFY_RUNS:-5}"
