#!/usr/bin/env bash
# Fine-tuning on a laptop from the command line: a user's novels in, an adapter out, and the
# difference it makes — held-out perplexity and a sample before and after.
#   bash examples/laptop_finetune.sh [HEARTH_BINARY] [STEPS] [OUT_DIR]
# HEARTH_EXAMPLE_BYTES=N keeps only the first N bytes of each novel (a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
H="${1:-build/hearth}"
STEPS="${2:-40}"
OUT="${3:-runs/laptop-finetune}"
S="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Train on five novels, hold out the sixth.
mkdir -p "$work/train"
for f in "$S"/data/jane_austen/*.txt; do
  case "$(basename "$f")" in
    persuasion.txt) head -c "${HEARTH_EXAMPLE_BYTES:-100000000}" "$f" > "$work/heldout.txt" ;;
    *) head -c "${HEARTH_EXAMPLE_BYTES:-100000000}" "$f" > "$work/train/$(basename "$f")" ;;
  esac
done
model="$S/models/stories260K"

echo "== before: held-out perplexity and a sample of the 4-bit base"
$H ppl --model "$model" --quant nf4 --data "$work/heldout.txt" --ctx 256 --threads 2
$H generate --model "$model" --quant nf4 --prompt "Mr. Darcy" --temperature 0 --max-tokens 40 --threads 2

echo "== training an nf4 QLoRA adapter ($STEPS steps; Ctrl-C stops with a checkpoint, --resume continues)"
$H train --model "$model" --quant nf4 --data "$work/train" --eval-data "$work/heldout.txt" \
  --rank 8 --steps "$STEPS" --seq-len 256 --batch 8 --lr 3e-3 --optim apollo-mini --out "$OUT" --threads 2

echo "== after"
$H ppl --model "$model" --quant nf4 --adapter "$OUT" --data "$work/heldout.txt" --ctx 256 --threads 2
$H generate --model "$model" --quant nf4 --adapter "$OUT" --prompt "Mr. Darcy" --temperature 0 --max-tokens 40 --threads 2
echo "adapter (PEFT layout), metrics.jsonl and loss_curve.svg: $OUT"
