#!/usr/bin/env bash
# The phone worker example (C API) killed with SIGKILL in the middle of its job and started again
# finishes the job and answers through the new adapter; the database stays intact and no job row
# says "running" for the dead process.  Usage: phone_background_job_test.sh WORKER ASSETS_DIR
set -euo pipefail
worker="$1"
assets="${HEARTH_ASSETS:-$2}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
head -c 60000 "$assets/data/jane_austen/emma.txt" > "$dir/emma.txt"
model="$assets/models/stories260K"

"$worker" "$dir/home" "$model" "$dir/emma.txt" > "$dir/run1.log" 2>&1 &
pid=$!
# Kill it once a slice has checkpointed (it paused at least once), or after 20 s at most.
for _ in $(seq 200); do
  grep -q "paused at step" "$dir/run1.log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
cat "$dir/run1.log"
echo "--- killed; starting again"
"$worker" "$dir/home" "$model" "$dir/emma.txt" | tee "$dir/run2.log"
grep -q "the personalized model says" "$dir/run2.log"
[ "$(sqlite3 "$dir/home/hearth.db" 'PRAGMA integrity_check')" = ok ]
[ "$(sqlite3 "$dir/home/hearth.db" "SELECT COUNT(*) FROM jobs WHERE status = 'running'")" = 0 ]
[ "$(sqlite3 "$dir/home/hearth.db" "SELECT COUNT(*) FROM jobs WHERE status = 'done'")" = 1 ]
echo "phone worker: killed, restarted, finished"
