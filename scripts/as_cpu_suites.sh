#!/usr/bin/env bash
# Runs the kernel and model suites as other CPUs would (scripts/as_cpu.sh): with the portable
# fallbacks forced, and as an AVX2-only machine; also the engine suite as an AVX2-only machine
# (served requests must answer bitwise as they do alone, and on AVX2 they once did not). One job
# per core at a time, the slowest first (test_inference on the portable fallbacks, split in two
# GoogleTest shards).
#   scripts/as_cpu_suites.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:?usage: scripts/as_cpu_suites.sh BUILD_DIR}"
export HEARTH_ASSETS="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
logs="$build/as_cpu-logs"
mkdir -p "$logs"

# profile  suite  shard/shards
runs=(
  "portable test_inference 0/2"
  "portable test_inference 1/2"
  "avx2 test_inference 0/1"
  "portable test_quant 0/1"
  "avx2 test_quant 0/1"
  "avx2 test_engine 0/1"
)
source scripts/suite_jobs.sh
for run in "${runs[@]}"; do
  read -r profile suite shard <<<"$run"
  name="$suite as $profile (shard $shard)"
  suite_job "$name" "$logs/$profile-$suite-${shard%/*}.log" \
    env GTEST_SHARD_INDEX="${shard%/*}" GTEST_TOTAL_SHARDS="${shard#*/}" \
    bash scripts/as_cpu.sh "$profile" "$build/tests/$suite" --gtest_brief=1
done
wait_suite_jobs
