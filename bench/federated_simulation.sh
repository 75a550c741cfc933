#!/usr/bin/env bash
# The federated personalization simulation of docs/federated.md, on this machine over loopback:
# 8 users, each one text of ../shared/data split into the user's own training part (ingested
# into the user's own encrypted home) and held-out part; 6 users join the federation, 2 never do
# (they are in no cohort); 5 rounds of cohorts of 5, two clients dropping out of round 3; then
# the same with user-level DP. Prints the tables of docs/federated.md.
#   bash bench/federated_simulation.sh [WORK_DIR]   (after building hearth; ~10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
H="$PWD/build/hearth"
S="${HEARTH_ASSETS:-$(cd .. && pwd)/shared}"
W="${1:-/tmp/hearth_federated_sim}"
MODEL=(--model "$S/models/stories260K" --quant nf4)
LOCAL=(--rank 8 --local-steps 30 --local-lr 3e-3 --batch 4 --seq-len 64 --optim adamw)
PERSONAL_STEPS=30
rm -rf "$W"; mkdir -p "$W/data"

declare -A SOURCE=(
  [emma]="jane_austen/emma.txt" [mansfield]="jane_austen/mansfieldpark.txt" [northanger]="jane_austen/northangerabbey.txt"
  [pride]="jane_austen/prideprejudice.txt" [sense]="jane_austen/sensesensibility.txt" [shakespeare]="shakespeare_tiny/input.txt"
  [persuasion]="jane_austen/persuasion.txt" [devil]="devils_dictionary/devil.dict.txt")
PARTICIPANTS=(emma mansfield northanger pride sense shakespeare)
OUTSIDERS=(persuasion devil)
DROPPERS=(northanger shakespeare)  # drop out of round 3 (both are sampled in it with --seed below; the log confirms)

# Each user's own text: 24 kB to train on, the next 6 kB held out (whole lines).
slice() {  # slice FILE OFFSET BYTES: those bytes, cut back to the last whole line
  python3 -c 'import sys; b = open(sys.argv[1], "rb").read()[int(sys.argv[2]):int(sys.argv[2]) + int(sys.argv[3])]
sys.stdout.buffer.write(b[:b.rfind(b"\n") + 1])' "$@"
}
for u in "${!SOURCE[@]}"; do
  slice "$S/data/${SOURCE[$u]}" 50000 24000 > "$W/data/$u.train.txt"
  slice "$S/data/${SOURCE[$u]}" 74000 6000 > "$W/data/$u.heldout.txt"
done

key="$W/key"; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$key"; chmod 600 "$key"
for u in "${PARTICIPANTS[@]}"; do
  "$H" --home "$W/home_$u" ingest --user "$u" --key-file "$key" --redact off "$W/data/$u.train.txt" > /dev/null
done

ppl() {  # ppl TEXT [ADAPTER]
  local extra=(); [ -n "${2:-}" ] && extra=(--adapter "$2")
  "$H" ppl "${MODEL[@]}" "${extra[@]}" --data "$1" --ctx 64 --threads 1 --json | tail -n 1 | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["ppl"])'
}

federate() {  # federate NAME [serve options...]
  local name=$1; shift
  local port=$((29700 + RANDOM % 2000))
  "$H" federate serve "${MODEL[@]}" --listen "127.0.0.1:$port" --rounds 5 --cohort 5 --min-clients 6 "${LOCAL[@]}" \
    --seed 3 --round-timeout 90 --straggler-timeout 5 --out "$W/$name" --threads 1 "$@" --json > "$W/$name.serve.log" 2> "$W/$name.serve.err" &
  local server=$!
  sleep 2
  local pids=()
  for u in "${PARTICIPANTS[@]}"; do  # one at a time, so client ids follow this order
    local drop=0; [[ " ${DROPPERS[*]} " == *" $u "* ]] && drop=3
    "$H" --home "$W/home_$u" federate join "${MODEL[@]}" --coordinator "127.0.0.1:$port" --user "$u" --key-file "$key" \
      --drop-in-round "$drop" --threads 1 --json > "$W/$name.$u.log" 2> "$W/$name.$u.err" &
    pids+=($!)
    sleep 1
  done
  for p in "${pids[@]}"; do wait "$p"; done
  wait "$server"
}

start=$(date +%s)
federate fedavg
echo "federation without DP: $(( $(date +%s) - start )) s"
python3 - "$W/fedavg/rounds.jsonl" <<'PY'
import json, sys
print("| round | attempt | cohort | survivors | dropped | mean update norm | rank-8 share kept | seconds |")
print("|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"| {r['round']} | {r['attempt']} | {r['cohort']} | {r['survivors']} | {r['dropped']} | {r['mean_update_norm']:.4f} | {r['kept_energy']:.3f} | {r['seconds']:.1f} |")
PY

echo
echo "| user | in cohorts | base ppl | population ppl | personal from zero | personal from population |"
echo "|---|---|---|---|---|---|"
for u in "${PARTICIPANTS[@]}" "${OUTSIDERS[@]}"; do
  held="$W/data/$u.heldout.txt"
  base=$(ppl "$held"); pop=$(ppl "$held" "$W/fedavg/population")
  personal() {  # personal OUT [--init-adapter DIR]
    "$H" train "${MODEL[@]}" --data "$W/data/$u.train.txt" --eval-data "$held" --rank 8 --steps $PERSONAL_STEPS --lr 3e-3 \
      --optim adamw --batch 4 --seq-len 64 --eval-every 0 --threads 1 --seed 1 --out "$W/personal_$1_$u" "${@:2}" --json 2>/dev/null |
      tail -n 1 | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["eval_ppl_after"])'
  }
  zero=$(personal zero); frompop=$(personal pop --init-adapter "$W/fedavg/population")
  joined=yes; [[ " ${OUTSIDERS[*]} " == *" $u "* ]] && joined=no
  echo "| $u | $joined | $base | $pop | $zero | $frompop |"
done

echo
for sigma in 0.5 1.0; do
  federate "dp$sigma" --clip 0.05 --noise "$sigma"
  python3 - "$W/dp$sigma.serve.log" <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
p = j["privacy"]
print(f"DP sigma {p['sigma']}: clip {p['clip']}, q {p['sampling_rate']:.3f}, epsilon per round {p['epsilon_per_round']:.2f}, total {p['epsilon']:.2f} over {p['rounds']} rounds at delta {p['delta']}")
PY
done
echo
echo "| outsider | base | population (no DP) | population (DP sigma 0.5) | population (DP sigma 1.0) |"
echo "|---|---|---|---|---|"
for u in "${OUTSIDERS[@]}"; do
  held="$W/data/$u.heldout.txt"
  echo "| $u | $(ppl "$held") | $(ppl "$held" "$W/fedavg/population") | $(ppl "$held" "$W/dp0.5/population") | $(ppl "$held" "$W/dp1.0/population") |"
done
echo "total: $(( $(date +%s) - start )) s"
