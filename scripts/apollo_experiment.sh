#!/usr/bin/env bash
# The "Results" of docs/optimizers.md: AdamW, APOLLO and APOLLO-Mini (1) pretraining a 4-layer,
# 128-wide Llama from scratch on five Austen novels, held-out perplexity on the sixth, with a
# small learning-rate sweep per optimizer at one token budget; (2) full fine-tuning of stories260K
# on Austen (last 10% of each novel held out). Then the table and the plot (bench_eval_curves).
#
#   scripts/apollo_experiment.sh            # everything, two runs at a time, one thread each
#   STEPS=80 JOBS=2 OUT=runs/apollo scripts/apollo_experiment.sh
#   PHASES="table" scripts/apollo_experiment.sh   # only redo the table and plot from the runs
set -euo pipefail
cd "$(dirname "$0")/.."

HEARTH=${HEARTH:-build/hearth}
CURVES=${CURVES:-build/bench/bench_eval_curves}
OUT=${OUT:-runs/apollo}
DATA=${DATA:-../shared/data/jane_austen}
BASE=${BASE:-../shared/models/stories260K}
JOBS=${JOBS:-2}                   # runs at a time; each uses one thread
STEPS=${STEPS:-80}                # pretraining updates (x SEQ x BATCH tokens)
SEQ=${SEQ:-128}
BATCH=${BATCH:-8}
LRS=${LRS:-"3e-3 6e-3 1.2e-2"}    # the pretraining sweep, the same for every optimizer
FT_STEPS=${FT_STEPS:-60}
FT_LR=${FT_LR:-2e-3}
PHASES=${PHASES:-"init pretrain finetune table"}
OPTIMS=${OPTIMS:-"adamw apollo apollo-mini"}
RUN="nice -n 19 $HEARTH"
mkdir -p "$OUT"

# APOLLO's rank is a quarter of the smaller side of the matrices (128 -> 32, 64 -> 16), as the
# paper's small-model runs; APOLLO-Mini is rank 1 with scale 128 by definition.
optim_args() {  # optimizer, model width
  case $1 in
    apollo) echo "--optim apollo --apollo-rank $(($2 / 4))" ;;
    *) echo "--optim $1" ;;
  esac
}

pretrain() {  # optimizer lr
  local dir="$OUT/pretrain-$1-lr$2"
  [ -f "$dir/result.json" ] && return 0
  $RUN train --threads 1 --model "$OUT/llama4x128" \
    --data "$DATA/emma.txt" "$DATA/mansfieldpark.txt" "$DATA/northangerabbey.txt" "$DATA/prideprejudice.txt" \
    "$DATA/sensesensibility.txt" --eval-data "$DATA/persuasion.txt" \
    --method full $(optim_args "$1" 128) --lr "$2" --warmup $((STEPS / 10)) --steps "$STEPS" --seq-len "$SEQ" \
    --batch "$BATCH" --eval-every $((STEPS / 4)) --eval-max-rows 64 --grad-checkpoint off --seed 1 --out "$dir" \
    --json >"$OUT/pretrain-$1-lr$2.log" 2>&1
  tail -n 1 "$OUT/pretrain-$1-lr$2.log" >"$dir/result.json"
}

finetune() {  # optimizer
  local dir="$OUT/finetune-$1"
  [ -f "$dir/result.json" ] && return 0
  $RUN train --threads 1 --model "$BASE" --data "$DATA" --eval-split tail --eval-fraction 0.1 \
    --method full $(optim_args "$1" 64) --lr "$FT_LR" --warmup $((FT_STEPS / 10)) --steps "$FT_STEPS" \
    --seq-len "$SEQ" --batch "$BATCH" --eval-every $((FT_STEPS / 3)) --eval-max-rows 64 --grad-checkpoint off \
    --seed 1 --out "$dir" --json >"$OUT/finetune-$1.log" 2>&1
  tail -n 1 "$OUT/finetune-$1.log" >"$dir/result.json"
}

# Runs "$@" (one command per argument) at most JOBS at a time.
parallel() {
  for job in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    $job &
  done
  wait
}

if [[ $PHASES == *init* && ! -d $OUT/llama4x128 ]]; then
  $HEARTH model init --arch custom --layers 4 --hidden 128 --heads 4 --kv-heads 4 --intermediate 344 \
    --max-positions 512 --tokenizer-from "$BASE" --seed 1 --out "$OUT/llama4x128"
fi
if [[ $PHASES == *pretrain* ]]; then
  list=()
  for lr in $LRS; do for o in $OPTIMS; do list+=("pretrain $o $lr"); done; done
  parallel "${list[@]}"
fi
if [[ $PHASES == *finetune* ]]; then
  parallel "finetune adamw" "finetune apollo" "finetune apollo-mini"
fi
if [[ $PHASES == *table* ]]; then
  "$CURVES" --out "$OUT" --runs "$OUT"/pretrain-* --finetune "$OUT"/finetune-*
fi
