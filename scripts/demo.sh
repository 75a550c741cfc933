#!/usr/bin/env bash
# The main job, end to end: installs and builds Hearth, then personalizes a model for one user.
#   1. a 4-bit (NF4) base is written from the real stories260K model;
#   2. a LoRA adapter is trained over the 4-bit base on a user's text (Persuasion, first 90%);
#   3. held-out perplexity (the last 10%) before and after, and text generated with the adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
export HEARTH_ASSETS="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
bash scripts/build.sh build

H=build/hearth
S="$HEARTH_ASSETS"
work="${HEARTH_DEMO_DIR:-build/demo}"
rm -rf "$work"
mkdir -p "$work"
export HEARTH_PASSPHRASE="${HEARTH_PASSPHRASE:-demo passphrase, change me}"

echo "== 1. quantize the base to NF4"
$H quantize --model "$S/models/stories260K" --format nf4 --out "$work/base-nf4"

echo "== 2. train a LoRA adapter over the 4-bit base on the user's text"
total=$(wc -l < "$S/data/jane_austen/persuasion.txt")
head -n $((total * 9 / 10)) "$S/data/jane_austen/persuasion.txt" > "$work/persuasion-train.txt"
tail -n +$((total * 9 / 10 + 1)) "$S/data/jane_austen/persuasion.txt" > "$work/persuasion-heldout.txt"
$H train --model "$work/base-nf4" --data "$work/persuasion-train.txt" --method lora --rank 8 --alpha 16 \
  --steps 40 --seq-len 256 --batch 4 --lr 3e-3 --warmup 4 --optim adamw --out "$work/adapter"

echo "== 3. held-out perplexity, base vs base + adapter, and a sample"
$H ppl --model "$work/base-nf4" --data "$work/persuasion-heldout.txt" --ctx 256
$H ppl --model "$work/base-nf4" --adapter "$work/adapter" --data "$work/persuasion-heldout.txt" --ctx 256
$H generate --model "$work/base-nf4" --adapter "$work/adapter" --prompt "Anne Elliot" --max-tokens 60 --temperature 0.7 --seed 1
