#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (README, "Fuzzing"), each for a fixed time, one after
# the other, and fails when any finds a crash, a hang or an out-of-memory input.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 20 s, every target)
#
# Toolchain: nightly when rustup has it; otherwise the pinned toolchain of rust-toolchain.toml
# with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags, which only nightly accepts; the machine
# may have a single toolchain and no way to fetch another). OCICACHE_FUZZ_TOOLCHAIN overrides.
# cargo-fuzz is installed when missing. Targets are built without a sanitizer: the core
# forbids unsafe code, and AddressSanitizer would halve the executions to check only the
# dependencies' unsafe code.
#
# New inputs go to fuzz/target/corpus/<target>/ (ignored by git, kept between runs); the
# checked-in seeds in fuzz/corpus/<target>/ are read, never written. A crash is saved in
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-20}
shift || true
all=(tar layer oci_json names erofs_reader erofs_round_trip archive)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")

# The libFuzzer dictionary of a target's input format (fuzz/dict/).
dict() {
  case $1 in
    tar | layer | archive) echo dict/tar.dict ;;
    oci_json) echo dict/oci_json.dict ;;
    names) echo dict/names.dict ;;
    erofs_reader | erofs_round_trip) echo dict/erofs.dict ;;
  esac
}

# Largest input per target: whole small archives and images, short strings.
max_len() {
  case $1 in
    names) echo 1024 ;;
    oci_json | erofs_round_trip) echo 16384 ;;
    *) echo 65536 ;;
  esac
}

toolchain=${OCICACHE_FUZZ_TOOLCHAIN:-}
if [[ -z $toolchain ]]; then
  if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=nightly
  else
    toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
    echo "fuzz: no nightly toolchain; using $toolchain with RUSTC_BOOTSTRAP=1"
  fi
fi
if [[ $toolchain != nightly* ]]; then
  export RUSTC_BOOTSTRAP=1
fi
cargo=(cargo "+$toolchain")
if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz --version 0.13.2
fi

cd fuzz
build_flags=(--sanitizer none)
start=$SECONDS
only=()
[[ ${#targets[@]} -ne 1 ]] || only=("${targets[0]}")
"${cargo[@]}" fuzz build "${build_flags[@]}" "${only[@]}"
echo "fuzz: built in $((SECONDS - start)) s with $toolchain"

failed=()
for target in "${targets[@]}"; do
  work=target/corpus/$target
  mkdir -p "$work" "artifacts/$target"
  log=target/fuzz-$target.log
  echo "fuzz: $target for $seconds s"
  if "${cargo[@]}" fuzz run "${build_flags[@]}" "$target" "$work" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -dict="$(dict "$target")" -timeout=20 \
    -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units' "$log" || tail -n 3 "$log"
  else
    failed+=("$target")
    grep -E -A 30 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -n 60 || tail -n 60 "$log"
    ls -t "artifacts/$target" | head -n 1 | sed "s|^|fuzz: saved fuzz/artifacts/$target/|"
  fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: findings in ${failed[*]} (logs in fuzz/target/fuzz-<target>.log)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds} s each, no findings"
