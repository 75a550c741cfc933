#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (a build configured with clang and -DHEARTH_FUZZ=ON) under
# ASan + UBSan, a bounded time each and one per core at a time, from seed corpora generated out of
# the real assets plus the committed fuzz/seeds/:
#   scripts/fuzz.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]     (targets without "fuzz_")
# HEARTH_FUZZ_RUNS=N runs each target for N inputs instead of a time. A crash, hang, sanitizer
# report or broken invariant fails the run; the input that caused it is saved under
# BUILD_DIR/fuzz/artifacts/ and replays with `BUILD_DIR/fuzz/fuzz_<target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:?usage: scripts/fuzz.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]}"
seconds="${2:-20}"
shift $(( $# < 2 ? $# : 2 ))
export HEARTH_ASSETS="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"

# The longest input each target tries: a little above its largest seed, so mutations stay cheap.
max_len() {
  case "$1" in
    safetensors | llama2c_tokenizer) echo 16384 ;;
    tokenizer_json) echo 65536 ;;
    tokenizer_config | llama2c_model | quantized_folder | peft_adapter | adapter_bundle) echo 32768 ;;
    training_jsonl) echo 16384 ;;
    sealed_record) echo 4096 ;;
    gguf) echo 32768 ;;
    *) echo "fuzz.sh: unknown target $1" >&2; return 1 ;;
  esac
}
all_targets=(safetensors tokenizer_json tokenizer_config llama2c_model llama2c_tokenizer quantized_folder
             peft_adapter adapter_bundle training_jsonl sealed_record gguf)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

out="$build/fuzz"
"$out/fuzz_write_seeds" "$out/corpus" >/dev/null
mkdir -p "$out/artifacts" "$out/logs"
# Leak checks on: libFuzzer reports an input after which memory was lost for good.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
limit="-max_total_time=$seconds"
[ -n "${HEARTH_FUZZ_RUNS:-}" ] && limit="-runs=$HEARTH_FUZZ_RUNS"

run_one() {
  local t="$1" seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  mkdir -p "$out/corpus/$t"
  # No allocator purges: past half the RSS limit libFuzzer purges ASan's caches every second, and
  # in a VM each purge's TLB shootdowns cut a long run's rate five-fold (fuzz_adapter_bundle:
  # 1,757 -> ~300 inputs/s after 7 million). The RSS limit still catches a runaway input.
  "$out/fuzz_$t" "$limit" -timeout=10 -rss_limit_mb=2048 -purge_allocator_interval=-1 -max_len="$(max_len "$t")" -dict=fuzz/json.dict \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" "$out/corpus/$t" "${seeds[@]}" >"$out/logs/$t.log" 2>&1
}

summary() {
  local t="$1" log="$out/logs/$1.log"
  local runs rate
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  printf '  %-18s %10s runs %7s/s  corpus %s\n' "$t" "$runs" "$rate" "$(ls "$out/corpus/$t" | wc -l)"
}

parallel="$(nproc)"
failed=()
declare -A pid_target
for t in "${targets[@]}"; do
  max_len "$t" >/dev/null
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do sleep 0.2; done
  run_one "$t" &
  pid_target[$!]="$t"
done
for pid in "${!pid_target[@]}"; do
  wait "$pid" || failed+=("${pid_target[$pid]}")
done

echo "fuzz: ${#targets[@]} targets, $( [ -n "${HEARTH_FUZZ_RUNS:-}" ] && echo "$HEARTH_FUZZ_RUNS runs" || echo "${seconds}s") each"
for t in "${targets[@]}"; do summary "$t"; done
if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "fuzz: fuzz_$t failed; the end of $out/logs/$t.log:" >&2
    tail -n 40 "$out/logs/$t.log" >&2
  done
  exit 1
fi
