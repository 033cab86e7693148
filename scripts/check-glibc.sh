#!/usr/bin/env bash
# Fails when a Linux binary needs a glibc newer than BASELINE: every versioned glibc symbol it
# imports (`objdump -T`: GLIBC_2.x) must be at most BASELINE.
#
#   bash scripts/check-glibc.sh FILE.node 2.17
set -euo pipefail
file=$1 baseline=$2
versions=$(objdump -T "$file" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV)
[ -n "$versions" ] || { echo "check-glibc: $file imports no versioned glibc symbol" >&2; exit 1; }
newest=$(printf '%s\n' "$versions" | tail -n 1)
echo "$file: glibc symbol versions $(tr '\n' ' ' <<<"$versions")(newest $newest)"
if [ "$(printf '%s\n%s\n' "$newest" "$baseline" | sort -V | tail -n 1)" != "$baseline" ]; then
  echo "check-glibc: $file needs glibc $newest, newer than the $baseline baseline:" >&2
  objdump -T "$file" | grep "GLIBC_$newest" >&2
  exit 1
fi
