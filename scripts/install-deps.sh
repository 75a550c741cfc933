#!/usr/bin/env bash
# Installs every Debian package Hearth needs to build, test and run. Idempotent: packages
# already present are skipped, so a second run costs a second.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libtorch-dev libopenblas0-pthread libopenblas0-openmp
  libsqlite3-dev sqlite3 libgtest-dev libgmock-dev libspdlog-dev libfmt-dev libcereal-dev
  nlohmann-json3-dev libcli11-dev libsodium-dev libssl-dev libseccomp-dev libpcre2-dev python3-numpy
  # ProcessGroupGloo's header includes Gloo's own headers (data-parallel and federated runs).
  libgloo-dev
  # The sanitizer and fuzzing build: clang, its sanitizer and libFuzzer runtimes, and
  # llvm-symbolizer (in llvm-14) for readable stack traces in sanitizer reports.
  clang libclang-rt-14-dev llvm-14
)
# The tokenizer reference script runs on Node.js; a machine may already have its own node and npm.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# LibTorch parallelizes with OpenMP. OpenBLAS's pthread build keeps a second pool of spinning
# threads, and on 2 cores the two pools fight (2 threads ran 4x slower than 1). The OpenMP
# build shares LibTorch's pool, so one thread setting governs both.
sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
for alt in libopenblas.so.0 libblas.so.3 liblapack.so.3; do
  name="$alt-x86_64-linux-gnu"
  target="/usr/lib/x86_64-linux-gnu/openblas-openmp/$alt"
  if [ -e "$target" ] && [ "$(readlink -f /etc/alternatives/$name)" != "$(readlink -f "$target")" ]; then
    $sudo_cmd update-alternatives --set "$name" "$target" >/dev/null
  fi
done
