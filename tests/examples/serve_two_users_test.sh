#!/usr/bin/env bash
# The two-user serving example: two users' adapters trained over one base, requests alternating,
# each answer equal to the single-adapter answer (the example checks it and exits non-zero if not).
# Usage: serve_two_users_test.sh EXAMPLE ASSETS_DIR
set -euo pipefail
example="$1"
assets="${HEARTH_ASSETS:-$2}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
head -c 40000 "$assets/data/jane_austen/emma.txt" > "$dir/austen.txt"
head -c 40000 "$assets/data/devils_dictionary/devil.dict.txt" > "$dir/bierce.txt"
"$example" "$dir/home" "$assets/models/stories260K" "$dir/austen.txt" "$dir/bierce.txt"
