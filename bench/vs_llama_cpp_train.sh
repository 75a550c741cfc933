#!/usr/bin/env bash
# QLoRA training speed and peak memory, Hearth against llama.cpp's LoRA training over a quantized
# base (the tetherto/qvac-fabric-llm.cpp fork's llama-finetune-lora), on the SmolLM2-135M shape
# with seeded random weights: rank 16 on all seven projections, sequences of 256 tokens, 2 threads.
# Not part of CI (about 5 minutes, plus a 10-minute build of the fork the first time).
#
#   bench/vs_llama_cpp_train.sh --fork-src DIR [--steps 12] [--build build]
#
# DIR is a checkout of the fork (it is not on the npm registry); it is built once into
# .cache/qvac-train/<commit>. Hearth: build/bench/bench_train (nf4 base mapped from a quantized
# folder, int8 embeddings, batch 4 x 256, with and without gradient checkpointing). The fork:
# Q4_0 GGUF written by Hearth's writer and llama.cpp's llama-quantize (bench/vs_llama_cpp.sh makes
# it), one 256-token sequence per step, trained on the first few KB of an Austen novel; its
# progress bar gives the seconds per step. Weight repacking is off (--no-repack): with it, this
# fork's CPU training aborts in the graph scheduler (GGML_ASSERT(*cur_backend_id != -1)).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

fork_src=""
steps=12
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --fork-src) fork_src="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    *) echo "error: unknown option $1 (see the comment at the top of bench/vs_llama_cpp_train.sh)" >&2; exit 2 ;;
  esac
done
[ -n "$fork_src" ] && [ -f "$fork_src/examples/training/finetune-lora.cpp" ] || {
  echo "error: --fork-src must name a checkout of tetherto/qvac-fabric-llm.cpp (examples/training/finetune-lora.cpp)" >&2
  exit 2
}
assets="${HEARTH_ASSETS:-$repo/../shared}"
model="$build/bench-models/smollm2-135m.q4_0.gguf"
[ -f "$model" ] || bash bench/vs_llama_cpp.sh --arch smollm2-135m --rounds 1 >/dev/null
[ -x "$build/bench/bench_train" ] || cmake --build "$build" --target bench_train

commit="$(git -C "$fork_src" rev-parse --short=12 HEAD)"
fork_build="$repo/.cache/qvac-train/$commit"
if [ ! -x "$fork_build/bin/llama-finetune-lora" ]; then
  # AMX off, as for the upstream peer (scripts/peer/llama_cpp.sh): tile state faults on these VMs.
  cmake -S "$fork_src" -B "$fork_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF \
    -DLLAMA_CURL=OFF -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
    -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DBUILD_SHARED_LIBS=OFF >/dev/null
  cmake --build "$fork_build" -j "$(nproc)" --target llama-finetune-lora >/dev/null
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# About 290 bytes of English per 256-token window at the fork's stride: enough text for `steps`.
head -c $((steps * 330 + 400)) "$assets/data/jane_austen/persuasion.txt" >"$out/train.txt"
echo "vs_llama_cpp_train: $(nproc) cores, fork $commit, load average $(cut -d' ' -f1 /proc/loadavg)"
(cd "$out" && /usr/bin/time -f %M -o "$out/fork.rss" "$fork_build/bin/llama-finetune-lora" -m "$repo/$model" \
  -f "$out/train.txt" -c 256 -b 256 -ub 256 --lora-rank 16 --lora-alpha 32 \
  --lora-modules attn_q,attn_k,attn_v,attn_o,ffn_gate,ffn_up,ffn_down -t 2 -fa off --num-epochs 1 --no-repack \
  --checkpoint-save-steps 0 --output-adapter "$out/adapter.gguf" >"$out/fork.log" 2>&1)
OMP_WAIT_POLICY=PASSIVE "$build/bench/bench_train" >"$out/hearth.txt" 2>&1
python3 - "$out" <<'EOF'
import re, sys
out = sys.argv[1]
log = open(f"{out}/fork.log", errors="replace").read()
# Training steps only (the progress bar of the held-out 5% follows with its own counter).
marks = re.findall(r"train: \[[^\]]*\] data=(\d+)/(\d+) loss=\S+ acc=\S+ t=(\d+):(\d+):(\d+)", log)
if len(marks) < 3:
    sys.exit("error: the fork printed fewer than 3 training steps; see its log")
def seconds(m): return int(m[2]) * 3600 + int(m[3]) * 60 + int(m[4])
# Steady state: from the second mark on (the first step pays allocation).
first, last = marks[1], marks[-1]
per_step = (seconds(last) - seconds(first)) / (int(last[0]) - int(first[0]))
fork_tps = 256 / per_step
fork_rss = int(open(f"{out}/fork.rss").read().split()[-1]) / 1024
rows = [l.split() for l in open(f"{out}/hearth.txt") if re.match(r"^(on|off)\s+\d", l)]
print(f"llama.cpp fork LoRA (Q4_0 base): {fork_tps:.1f} tokens/s ({per_step:.1f} s per 256-token step, "
      f"{int(last[0]) - int(first[0])} steps), peak RSS {fork_rss:.0f} MB")
for r in rows:
    print(f"Hearth QLoRA (nf4 base), gradient checkpointing {r[0]:>3}: {float(r[1]):.1f} tokens/s "
          f"({float(r[1]) / fork_tps:.2f}x), peak RSS {float(r[2]):.0f} MB")
EOF
