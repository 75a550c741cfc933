#!/usr/bin/env bash
# Installs everything, builds, and runs the whole test suite the way CI does:
#   1. the GoogleTest suites under ctest (real assets from $HEARTH_ASSETS, default ../shared);
#   2. the bad-input suites again under AddressSanitizer + UndefinedBehaviorSanitizer, and every
#      libFuzzer target of fuzz/ for a short bounded time (one clang build serves both).
set -euo pipefail
cd "$(dirname "$0")/.."
export HEARTH_ASSETS="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
[ -d "$HEARTH_ASSETS" ] || { echo "test.sh: assets folder $HEARTH_ASSETS is missing" >&2; exit 1; }

# Without debug info (it nearly doubles the compile time of a LibTorch-heavy file) and in unity
# batches (a third of the compile time of a cold build); scripts/build.sh alone keeps debug info
# and one translation unit per file for debugging and incremental builds.
bash scripts/build.sh build -DHEARTH_DEBUG_INFO=OFF -DHEARTH_UNITY_BUILD=ON
# Reference token ids from the independent JavaScript tokenizer (npm), for the parity tests.
bash scripts/tokenizer_reference/make_reference.sh build/tokenizer_reference
# The llama.cpp peer for the GGUF interoperability tests: node-llama-cpp's prebuilt CPU build and
# @huggingface/gguf, pinned (npm ci, ~25 s). The native build of llama.cpp's tools is not part of
# CI (scripts/peer/llama_cpp.sh native; docs/gguf.md).
bash scripts/peer/llama_cpp.sh npm

(cd build && ctest -j "$(nproc)" --output-on-failure --timeout 900)

# Every CPU: the kernel and model suites again with the portable fallbacks forced, and as an
# AVX2-only machine (scripts/as_cpu.sh caps Hearth's, LibTorch's and OpenBLAS's kernels).
bash scripts/as_cpu_suites.sh build
echo "kernel and model suites passed as a portable and as an AVX2 machine, the engine suite as an AVX2 one"

# The C API from C under AddressSanitizer and UndefinedBehaviorSanitizer (the library itself is
# not instrumented; malloc and free are, so misuse of what it returns is caught).
cc -std=c99 -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -Icapi tests/capi/capi_test.c \
  -Lbuild -lhearth -lpthread -Wl,-rpath,"$PWD/build" -o build/capi_test_asan
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 build/capi_test_asan "$HEARTH_ASSETS"

# Sanitizer pass: one clang build at -O0 (half the compile time of -O1, which the long fuzz runs of
# docs/reliability.md use) with ASan + UBSan (and libFuzzer's coverage instrumentation)
# serves the bad-input suites, the CLI suites (which run this build's instrumented `hearth`) and
# the fuzz targets, so the libraries are compiled instrumented once. LibTorch itself is not
# instrumented; leak checks are on, and need no suppressions in this build.
cmake -S . -B build-san -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DHEARTH_FUZZ=ON -DHEARTH_BUILD_BENCH=OFF -DHEARTH_UNITY_BUILD=ON -DHEARTH_SANITIZER_OPT=-O0 >/dev/null
cmake --build build-san -j "$(nproc)" --target hearth_cli fuzzers test_core test_quant test_tokenizer \
  test_inference test_adapters test_privacy test_storage test_trainer test_cli
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
bash scripts/sanitizer_suites.sh build-san
echo "sanitizer suites passed"
# Every fuzz target for 10 s, two at a time: a smoke test that the parsers still refuse mutated
# real files cleanly (the long runs and their figures are in docs/reliability.md).
bash scripts/fuzz.sh build-san 10
