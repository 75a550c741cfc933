#!/usr/bin/env bash
# Writes the @lenml/tokenizers reference outputs the C++ tokenizer parity tests compare with.
# Usage: scripts/tokenizer_reference/make_reference.sh [out-dir]   (default: build/tokenizer_reference)
# Assets are read from $HEARTH_ASSETS, or ../shared beside the repository.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$repo/build/tokenizer_reference}"
shared="${HEARTH_ASSETS:-$repo/../shared}"
# Resolve the output folder against the caller's directory before moving into ours.
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cd "$here"
# node_modules is pinned by package-lock.json; install only when it is missing or stale.
if [ ! -f node_modules/@lenml/tokenizers/package.json ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node make_reference.mjs "$shared" "$out"
