#!/usr/bin/env bash
# Run fuzz targets for SECONDS each; one line per target (executions, rate, result).
# usage: tests/fuzz/run.sh SECONDS TARGET... (extra libFuzzer flags in $FUZZ_FLAGS)
# Logs go to build/fuzz/logs/; a finding's input to build/fuzz/findings/.
set -uo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-.venv/bin/python}
seconds=$1; shift
mkdir -p build/fuzz/logs
status=0
for target in "$@"; do
  log=build/fuzz/logs/$target.log
  # shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags
  "$python" "tests/fuzz/fuzz_$target.py" -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_FLAGS:-} >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $target: ${runs:-?} executions, ${rate:-?}/s, no findings"
  else
    echo "fuzz $target: FINDING (exit $rc) after ${runs:-?} executions; log $log:"
    grep -v '^#\|Uses:' "$log" | tail -40
    status=1
  fi
done
exit $status
