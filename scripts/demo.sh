#!/usr/bin/env bash
# The product's story, end to end, on real data (a few minutes on 2 cores):
#   1. installs and builds Hearth, writes a 4-bit (NF4) base from the real stories260K model;
#   2. a home is created; Jane Austen's six novels go to user "austen" and Bierce's Devil's
#      Dictionary to user "bierce": redacted, encrypted, stored in SQLite;
#   3. a background job per user trains a QLoRA adapter with APOLLO-Mini under a memory ceiling;
#      the daemon that runs them is preempted once (SIGTERM: checkpoint, exit) and started again;
#   4. for each user: held-out perplexity before and after, and a sample from the same prompt
#      through each user's adapter (and the bare base);
#   5. where the loss plots are, and what was stored (no plaintext at rest).
set -euo pipefail
cd "$(dirname "$0")/.."
export HEARTH_ASSETS="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
# The build CI tests (scripts/test.sh): unity batches, no debug info; a third of the compile time.
bash scripts/build.sh build -DHEARTH_DEBUG_INFO=OFF -DHEARTH_UNITY_BUILD=ON

H="build/hearth --threads 2"
S="$HEARTH_ASSETS"
work="${HEARTH_DEMO_DIR:-runs/demo}"
rm -rf "$work"
mkdir -p "$work"
home="$work/home"
export HEARTH_PASSPHRASE="${HEARTH_PASSPHRASE:-demo passphrase, change me}"
steps="${HEARTH_DEMO_STEPS:-60}"

echo "== 1. a 4-bit base: stories260K quantized to NF4 (memory-mapped on load)"
$H quantize --model "$S/models/stories260K" --format nf4 --out "$work/base-nf4"

echo "== 2. two users' data, redacted and encrypted into $home"
$H --home "$home" ingest --user austen "$S"/data/jane_austen/*.txt
$H --home "$home" ingest --user bierce "$S/data/devils_dictionary/devil.dict.txt"
$H --home "$home" data list

echo "== 3. one background job per user: nf4 QLoRA, APOLLO-Mini, at most 600 MB"
for user in austen bierce; do
  $H --home "$home" jobs submit --user "$user" --model "$work/base-nf4" --rank 8 --steps "$steps" --seq-len 256 \
    --batch 8 --lr 3e-3 --optim apollo-mini --max-memory-mb 600 --eval-fraction 0.05 --seed 1
done
# The host app's view of the device: charging, cool, screen off.
echo '{"charging": true, "battery_percent": 64, "temperature_c": 31, "screen_on": false, "idle": true}' > "$work/device.json"
$H --home "$home" daemon --device-state "$work/device.json" --poll-seconds 0.5 --slice-seconds 20 > "$work/daemon-1.log" 2>&1 &
daemon=$!
sleep "${HEARTH_DEMO_PREEMPT_AFTER:-12}"
echo "   the OS preempts the worker (SIGTERM) ..."
kill -TERM "$daemon"
wait "$daemon" || true
cat "$work/daemon-1.log"
$H --home "$home" jobs list
echo "   ... and lets it run again"
$H --home "$home" daemon --device-state "$work/device.json" --poll-seconds 0.5 --slice-seconds 20 --exit-when-idle

echo "== 4. each user's adapter: held-out perplexity before -> after, and the same prompt"
prompt="The gentleman said"
echo "-- bare base:"
$H generate --model "$work/base-nf4" --prompt "$prompt" --temperature 0.7 --top-k 40 --seed 7 --max-tokens 48
for job in 1 2; do
  $H --home "$home" jobs status "$job" --plot "$work/loss-job$job.svg" --json > "$work/status-$job.json"
  user=$(tail -n 1 "$work/status-$job.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"])')
  tail -n 1 "$work/status-$job.json" | python3 -c '
import json, math, sys
j = json.load(sys.stdin); p = j["progress"]
print("-- user %s: held-out perplexity %.2f -> %.2f after %d steps (peak RSS %.0f MB)" % (
    j["user"], math.exp(p["eval_loss_before"]), math.exp(p["eval_loss_after"]), p["step"], p["peak_rss_mb"]))'
  $H --home "$home" generate --user "$user" --adapter default --model "$work/base-nf4" --prompt "$prompt" \
    --temperature 0.7 --top-k 40 --seed 7 --max-tokens 48 2>/dev/null
done

echo "== 5. what is where"
echo "loss plots: $work/loss-job1.svg (austen), $work/loss-job2.svg (bierce)"
echo "stored in $home:"
find "$home" -type f | sort | sed 's/^/   /'
hits=$(grep -rlF -e "Elizabeth Bennet" -e "Anne Elliot" -e "ABSURDITY" "$home" | wc -l || true)
echo "files under the home containing plaintext of the users' texts: $hits (records and adapters are sealed with XChaCha20-Poly1305)"
