#!/usr/bin/env bash
# Installs everything, builds, and runs the whole test suite the way CI does:
#   1. the GoogleTest suites under ctest (real assets from $HEARTH_ASSETS, default ../shared);
#   2. the bad-input suites again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
export HEARTH_ASSETS="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
[ -d "$HEARTH_ASSETS" ] || { echo "test.sh: assets folder $HEARTH_ASSETS is missing" >&2; exit 1; }

bash scripts/build.sh build
# Reference token ids from the independent JavaScript tokenizer (npm), for the parity tests.
bash scripts/tokenizer_reference/make_reference.sh build/tokenizer_reference
# The llama.cpp peer for the GGUF interoperability tests: node-llama-cpp's prebuilt CPU build and
# @huggingface/gguf, pinned (npm ci, ~25 s). The native build of llama.cpp's tools is not part of
# CI (scripts/peer/llama_cpp.sh native; docs/gguf.md).
bash scripts/peer/llama_cpp.sh npm

(cd build && ctest -j "$(nproc)" --output-on-failure --timeout 900)

# Sanitizer pass over the parsers of untrusted files. LibTorch itself is not instrumented,
# and its static registries look like leaks to LeakSanitizer, so leak checks are off.
cmake -S . -B build-asan -G Ninja -DHEARTH_SANITIZE=ON -DHEARTH_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$(nproc)" --target test_core test_inference test_quant
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build-asan/tests/test_core
build-asan/tests/test_inference --gtest_filter='*BadModelFiles*'
build-asan/tests/test_quant --gtest_filter='QuantIo.*'
echo "sanitizer suites passed"
