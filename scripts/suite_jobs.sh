# Sourced by the scripts that run GoogleTest suites side by side (sanitizer_suites.sh,
# as_cpu_suites.sh): one job per core at a time, each into its own log, shown only when it fails.
#   suite_job NAME LOG COMMAND...   start COMMAND once a core is free
#   wait_suite_jobs                 wait for all; print each one's summary; non-zero if any failed
declare -A suite_job_name suite_job_log

suite_job() {
  local name="$1" log="$2"
  shift 2
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 0.2; done
  "$@" >"$log" 2>&1 &
  suite_job_name[$!]="$name"
  suite_job_log[$!]="$log"
}

wait_suite_jobs() {
  local failed=0 pid
  for pid in "${!suite_job_name[@]}"; do
    if wait "$pid"; then
      echo "  ${suite_job_name[$pid]}: $(grep -o '[0-9]* tests\? from [0-9]* test suites\? ran. ([0-9]* ms total)' "${suite_job_log[$pid]}" | head -1)"
    else
      failed=1
      echo "${suite_job_name[$pid]} failed; its output:" >&2
      tail -n 60 "${suite_job_log[$pid]}" >&2
    fi
  done
  return "$failed"
}
