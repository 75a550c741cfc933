#!/usr/bin/env bash
# Configures and builds Hearth (RelWithDebInfo) into build/, or into $1 with extra CMake
# arguments after it. Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build_dir="${1:-build}"
shift || true
cmake -S . -B "$build_dir" -G Ninja "$@" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
