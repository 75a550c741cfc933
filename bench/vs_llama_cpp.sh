#!/usr/bin/env bash
# Hearth and llama.cpp side by side on the same machine, the same minute, the same weights:
# decode and prefill-128 tokens/s and peak RSS, Hearth nf4 (a quantized folder, memory-mapped, as an
# app serves it) against llama.cpp's own llama-bench on Q4_0, the two runs alternating round by
# round so a slow spell of a shared machine hits both. Not part of CI (about 2 minutes per shape
# and round, plus a 10-minute build of llama.cpp the first time).
#
#   bench/vs_llama_cpp.sh [--arch smollm2-135m,qwen2.5-0.5b] [--rounds 3] [--threads 2]
#                         [--busy] [--realtime] [--isa native|avx2] [--build build]
#
#   --busy      also run every round with a busy process (a shell loop) beside the benchmark: a
#               phone's other apps; prints each program's busy / quiet decode ratio
#   --isa avx2  both programs limited to AVX2 + FMA on a CPU that has more: Hearth through
#               scripts/as_cpu.sh avx2, llama.cpp built a second time without AVX-512
#               (HEARTH_PEER_ISA=avx2). An AVX2-only machine's instructions, not its memory.
#   --realtime  run the quiet rounds under SCHED_FIFO (chrt, needs root), both programs alike:
#               on a machine where other work runs (a build), the comparison then measures the
#               programs and not the neighbours. Never used for the busy rounds.
#
# Models: `hearth model init --arch A --seed 1` (random weights of the real shapes) in
# BUILD/bench-models/A, written as F16 GGUF by Hearth and quantized to Q4_0 by llama.cpp's own
# llama-quantize (its usual mix: Q4_0 layers; the tied head as llama-quantize chooses), and as
# Hearth's nf4 folder by `hearth quantize` (nf4 projections, int8 embeddings and head: the defaults).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

archs="smollm2-135m,qwen2.5-0.5b"
rounds=3
threads=2
busy=0
realtime=0
build=build
isa_cap=native
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) archs="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --busy) busy=1; shift ;;
    --realtime) realtime=1; shift ;;
    --build) build="$2"; shift 2 ;;
    --isa) isa_cap="$2"; shift 2 ;;
    *) echo "error: unknown option $1 (see the comment at the top of bench/vs_llama_cpp.sh)" >&2; exit 2 ;;
  esac
done

case "$isa_cap" in
  native) hearth_prefix=() ;;
  avx2) hearth_prefix=(bash scripts/as_cpu.sh avx2) ;;
  *) echo "error: --isa must be native or avx2, not \"$isa_cap\"" >&2; exit 2 ;;
esac
export HEARTH_PEER_ISA="$isa_cap"
bash scripts/peer/llama_cpp.sh native
eval "$(bash scripts/peer/llama_cpp.sh env)"
[ -x "$build/hearth" ] && [ -x "$build/bench/bench_decode" ] || cmake --build "$build" --target hearth_cli bench_decode
models="$build/bench-models"
out="$(mktemp -d)"
trap 'rm -rf "$out"; [ -n "${busy_pid:-}" ] && kill "$busy_pid" 2>/dev/null || true' EXIT

prepare() {
  local arch="$1" dir="$models/$1"
  [ -f "$dir/config.json" ] || "$build/hearth" model init --arch "$arch" --seed 1 --out "$dir" >/dev/null
  [ -f "$dir.f16.gguf" ] || "$build/hearth" quantize --model "$dir" --to gguf --format f16 --out "$dir.f16.gguf" >/dev/null
  [ -f "$dir.q4_0.gguf" ] || "$LLAMA_CPP_BIN/llama-quantize" "$dir.f16.gguf" "$dir.q4_0.gguf" Q4_0 >"$out/quantize.log" 2>&1
  [ -f "$dir-nf4-mapped/config.json" ] || "$build/hearth" quantize --model "$dir" --format nf4 --out "$dir-nf4-mapped" >/dev/null
}

# One round of each program; `mode` is quiet or busy. Each writes its JSON and its peak RSS (KiB).
run_round() {
  local arch="$1" mode="$2" round="$3" prefix=()
  [ "$mode" = quiet ] && [ "$realtime" = 1 ] && prefix=(chrt -f 50)
  /usr/bin/time -f %M -o "$out/$arch.$mode.$round.hearth.rss" "${prefix[@]}" "${hearth_prefix[@]}" "$build/bench/bench_decode" --one "$arch" nf4-mapped --no-aten-pass \
    --models "$models" --threads "$threads" --passes 3 --decode-tokens 64 --prefill-tokens 128 \
    >"$out/$arch.$mode.$round.hearth.json" 2>/dev/null
  /usr/bin/time -f %M -o "$out/$arch.$mode.$round.llama.rss" "${prefix[@]}" "$LLAMA_CPP_BIN/llama-bench" \
    -m "$models/$arch.q4_0.gguf" -t "$threads" -p 128 -n 64 -r 3 -o json >"$out/$arch.$mode.$round.llama.json" 2>/dev/null
}

start_busy() { ( while :; do :; done ) & busy_pid=$!; }
stop_busy() { kill "$busy_pid" 2>/dev/null || true; wait "$busy_pid" 2>/dev/null || true; busy_pid=""; }

grep -q -w avx512_vnni /proc/cpuinfo && isa="AVX-512 + VNNI" || { grep -q -w avx512f /proc/cpuinfo && isa="AVX-512" || isa="AVX2"; }
[ "$isa_cap" = avx2 ] && isa="both capped to AVX2 + FMA on an $isa CPU"
echo "vs_llama_cpp: $(nproc) cores, $isa, $threads threads, $rounds rounds, load average $(cut -d' ' -f1 /proc/loadavg)"
IFS=',' read -r -a arch_list <<<"$archs"
for arch in "${arch_list[@]}"; do
  prepare "$arch"
  for round in $(seq 1 "$rounds"); do
    run_round "$arch" quiet "$round"
    if [ "$busy" = 1 ]; then
      start_busy
      run_round "$arch" busy "$round"
      stop_busy
    fi
  done
done
python3 "$repo/bench/vs_llama_cpp_table.py" "$out" "$archs" "$rounds" "$busy"
echo "load average $(cut -d' ' -f1 /proc/loadavg) at end"
