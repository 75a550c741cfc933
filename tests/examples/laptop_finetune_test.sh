#!/usr/bin/env bash
# The laptop example runs end to end (a few steps) and leaves an adapter and its loss curve.
# Usage: laptop_finetune_test.sh HEARTH_BINARY
set -euo pipefail
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
HEARTH_EXAMPLE_BYTES=40000 bash "$(dirname "$0")/../../examples/laptop_finetune.sh" "$1" 4 "$out/adapter" | tee "$out/log"
[ -f "$out/adapter/adapter_model.safetensors" ] && [ -f "$out/adapter/loss_curve.svg" ]
[ "$(grep -c "perplexity" "$out/log")" -ge 2 ]
