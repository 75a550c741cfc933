#!/usr/bin/env bash
# Data-parallel throughput on this machine: the same training (same data, same global batch,
# same steps) as 1 process x 2 threads and as 2 processes x 1 thread (Gloo over loopback),
# alternated 3 times so both see the same machine load. Prints trained positions per second.
#   bash bench/data_parallel_throughput.sh [MODEL_DIR] [WORK_DIR]
# HEARTH_DP_STEPS (default 40) and HEARTH_DP_TRIALS (default 3) shorten it for larger models.
set -euo pipefail
cd "$(dirname "$0")/.."
H="$PWD/build/hearth"
S="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
MODEL="${1:-$S/models/stories260K}"
W="${2:-/tmp/hearth_dp_bench}"
rm -rf "$W"; mkdir -p "$W"
head -c 200000 "$S/data/tinystories/valid_a.txt" | head -n -1 > "$W/data.txt"
COMMON=(train --model "$MODEL" --quant nf4 --data "$W/data.txt" --rank 8 --optim apollo --steps "${HEARTH_DP_STEPS:-40}" --warmup 0 --seq-len 128
        --eval-every 0 --eval-max-rows 1 --grad-checkpoint off --seed 1 --json)
tok() { tail -n 1 "$1" | python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["tokens_per_s"])'; }
echo "model: $MODEL; ISA: $(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ' | cut -c1-80); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| trial | 1 process x 2 threads (batch 8) | 2 processes x 1 thread (batch 4 each) | ratio |"
echo "|---|---|---|---|"
for trial in $(seq 1 "${HEARTH_DP_TRIALS:-3}"); do
  "$H" "${COMMON[@]}" --batch 8 --threads 2 --out "$W/one_$trial" > "$W/one_$trial.log" 2> "$W/one_$trial.err"
  port=$((31000 + RANDOM % 2000))
  for r in 0 1; do
    "$H" "${COMMON[@]}" --batch 4 --threads 1 --world-size 2 --process-rank $r --master "127.0.0.1:$port" --out "$W/two_$trial" \
      > "$W/two_${trial}_$r.log" 2> "$W/two_${trial}_$r.err" &
  done
  wait
  one=$(tok "$W/one_$trial.log"); two=$(tok "$W/two_${trial}_0.log")
  echo "| $trial | $one | $two | $(python3 -c "print('%.2f' % ($two / $one))") |"
done
