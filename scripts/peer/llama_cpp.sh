#!/usr/bin/env bash
# The sanctioned peer for Hearth's GGUF interoperability tests and benchmarks: llama.cpp, as shipped
# inside the npm package node-llama-cpp@3.22.1, plus the independent GGUF parser @huggingface/gguf.
#
#   scripts/peer/llama_cpp.sh npm      npm ci of the pinned packages (prebuilt CPU binaries included),
#                                      and llama.cpp's source cloned from the package (for gguf-py)
#   scripts/peer/llama_cpp.sh native   also builds llama.cpp's tools from that source
#   scripts/peer/llama_cpp.sh env      prints PEER_NODE_DIR=..., LLAMA_CPP_SRC=..., LLAMA_CPP_BIN=...
#
# HEARTH_PEER_ISA=avx2 (with native or env) builds and names a second copy limited to AVX2 + FMA
# (no AVX-512), for measuring against an AVX2-only machine's llama.cpp on an AVX-512 one.
#
# Nothing of llama.cpp is in git: the source is cloned from node_modules/node-llama-cpp/llama/
# gitRelease.bundle and built once into $HEARTH_PEER_CACHE (default .cache/llama.cpp, gitignored),
# in a folder named after the bundle's commit and this CPU's flags (a binary built for one CPU
# never runs on another). Debian packages it needs come from scripts/install-deps.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${HEARTH_PEER_CACHE:-$repo/.cache/llama.cpp}"
bundle="$here/node_modules/node-llama-cpp/llama/gitRelease.bundle"
# The tools the tests, docs and benchmarks call.
peer_isa="${HEARTH_PEER_ISA:-native}"
case "$peer_isa" in
  native) isa_suffix=""; isa_flags=(-DGGML_NATIVE=ON) ;;
  avx2) isa_suffix="-avx2"; isa_flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON) ;;
  *) echo "error: HEARTH_PEER_ISA must be native or avx2, not \"$peer_isa\"" >&2; exit 2 ;;
esac
targets=(llama-quantize llama-convert-llama2c-to-ggml llama-perplexity llama-simple llama-completion llama-bench llama-tokenize)

install_npm() {
  # Pinned by package-lock.json; reinstalled only when missing or older than the lock. Optional
  # platform packages (CUDA, Vulkan, other OSes) are omitted: the CPU build is a direct dependency.
  # NODE_LLAMA_CPP_SKIP_DOWNLOAD: the postinstall must not try to fetch or build anything.
  if [ ! -f "$here/node_modules/node-llama-cpp/package.json" ] || [ "$here/package-lock.json" -nt "$here/node_modules" ]; then
    (cd "$here" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --no-audit --no-fund --loglevel=error)
    touch "$here/node_modules"
  fi
}

build_dir() {
  local commit cpu
  commit="$(git ls-remote "$bundle" HEAD 2>/dev/null | cut -c1-12)"
  cpu="$(grep -m1 '^flags' /proc/cpuinfo | md5sum | cut -c1-8)"
  echo "$cache/$commit-$cpu${isa_suffix}"
}

# The source, cloned once from the bundle (a few seconds): gguf-py runs from it without a build.
clone_source() {
  local dir
  dir="$(build_dir)"
  if [ -f "$dir/src/gguf-py/gguf/__init__.py" ]; then return; fi
  rm -rf "$dir/src"
  mkdir -p "$dir"
  git clone -q "$bundle" "$dir/src" 2>/dev/null
}

build_native() {
  install_npm
  clone_source
  local dir
  dir="$(build_dir)"
  # The marker names the recipe: a build made with other flags (v1 had AMX on) is redone.
  if [ -f "$dir/.built-v2" ]; then return; fi
  rm -rf "$dir/build"
  # Native: this CPU's instruction sets (the folder name carries the CPU flags; HEARTH_PEER_ISA
  # above can cap them). No network
  # (OpenSSL off), no server, tests or web UI: only the library and the tools listed above.
  # AMX off: CPUs that list AMX run ggml's tile kernels, and where the OS or the hypervisor has not
  # enabled tile state (as on this project's VMs) the first tile instruction faults (SIGILL).
  cmake -S "$dir/src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${isa_flags[@]}" -DLLAMA_OPENSSL=OFF \
    -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DBUILD_SHARED_LIBS=OFF >"$dir/configure.log"
  cmake --build "$dir/build" -j "$(nproc)" --target "${targets[@]}" >"$dir/build.log"
  touch "$dir/.built-v2"
}

case "${1:-}" in
  npm)
    install_npm
    clone_source
    ;;
  native) build_native ;;
  env)
    dir="$(build_dir)"
    echo "PEER_NODE_DIR=$here"
    echo "LLAMA_CPP_SRC=$dir/src"
    if [ -f "$dir/.built-v2" ]; then echo "LLAMA_CPP_BIN=$dir/build/bin"; fi
    ;;
  *)
    echo "usage: $0 npm|native|env" >&2
    exit 2
    ;;
esac
