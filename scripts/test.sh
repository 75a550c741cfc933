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

# Every CPU: the kernel and model suites again with the portable fallbacks forced, and as an
# AVX2-only machine (scripts/as_cpu.sh caps Hearth's, LibTorch's, oneDNN's and OpenBLAS's kernels).
for profile in portable avx2; do
  bash scripts/as_cpu.sh "$profile" build/tests/test_quant --gtest_brief=1 > "build/as_cpu_${profile}_quant.log" 2>&1 &
  bash scripts/as_cpu.sh "$profile" build/tests/test_inference --gtest_brief=1 > "build/as_cpu_${profile}_inference.log" 2>&1 &
  for job in $(jobs -p); do wait "$job" || { tail -n 40 build/as_cpu_"$profile"_*.log; echo "as_cpu $profile: failed" >&2; exit 1; }; done
  echo "kernel and model suites passed as a $profile machine"
done

# The C API from C under AddressSanitizer and UndefinedBehaviorSanitizer (the library itself is
# not instrumented; malloc and free are, so misuse of what it returns is caught).
cc -std=c99 -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -Icapi tests/capi/capi_test.c \
  -Lbuild -lhearth -lpthread -Wl,-rpath,"$PWD/build" -o build/capi_test_asan
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 build/capi_test_asan "$HEARTH_ASSETS"

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
