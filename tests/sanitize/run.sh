#!/usr/bin/env bash
# The native test subset against an AddressSanitizer + UndefinedBehaviorSanitizer
# build of csrc/, or under valgrind memcheck.  CONTRIBUTING.md: "Fuzzing and sanitizers".
#
# usage: tests/sanitize/run.sh asan|valgrind [pytest args...]
#   NATIVE_TESTS  test files to run (default: the native engine's own tests)
#
# Each mode builds the C core into build/<mode>/ (build_native.py; the installed
# envelope/_native*.so is not touched) and runs pytest from build/<mode>/site,
# so `import envelope` finds that copy.  Python's own allocator is switched to
# malloc (PYTHONMALLOC=malloc), so buffers handed to C are heap blocks the
# checker sees.  Fails on the first sanitizer report, or on any memcheck error
# not in tests/sanitize/valgrind.supp, or on a leak allocated from a csrc/ file.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
python=${PYTHON:-$root/.venv/bin/python}
mode=${1:?usage: run.sh asan|valgrind [pytest args]}
shift
read -r -a tests <<<"${NATIVE_TESTS:-tests/test_native_engine.py tests/test_native_kat.py tests/test_native_file_loop.py tests/test_primitives.py}"
out=$root/build/$mode
export PYTHONMALLOC=malloc

case $mode in
  asan)
    "$python" tests/sanitize/build_native.py "$out" \
      --cflags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g" \
      --ldflags="-fsanitize=address,undefined"
    # CPython is not instrumented, so the ASan runtime must be loaded first.
    # Leak detection is off: the interpreter deliberately frees little at exit.
    LD_PRELOAD=$(${CC:-gcc} -print-file-name=libasan.so)
    export LD_PRELOAD
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    runner=()
    canary_log=$out/canary.log
    canary_report="AddressSanitizer: heap-buffer-overflow"
    ;;
  valgrind)
    "$python" tests/sanitize/build_native.py "$out" --cflags="-g"
    log=$out/memcheck.log
    memcheck=(valgrind --tool=memcheck --error-exitcode=97 --num-callers=40
              --suppressions="$root/tests/sanitize/valgrind.supp" -s
              --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=none)
    runner=("${memcheck[@]}" --log-file="$log")
    canary_log=$out/canary.log
    canary_report="Invalid write of size"
    ;;
  *)
    echo "unknown mode $mode (asan or valgrind)" >&2
    exit 2
    ;;
esac

"$python" tests/sanitize/build_native.py --check "$out" >/dev/null
cd "$out/site"
# The checker must catch a real out-of-bounds write before a clean run counts.
if "${runner[@]/#--log-file=*/--log-file=$canary_log}" "$python" "$root/tests/sanitize/overflow_canary.py" \
    >"$canary_log.out" 2>&1 || ! grep -q "$canary_report" "$canary_log" "$canary_log.out" 2>/dev/null; then
  echo "$mode: the overflow canary was not caught; this setup would miss real errors" >&2
  exit 1
fi
echo "$mode: overflow canary caught ($canary_report)"
status=0
"${runner[@]}" "$python" -m pytest -q -p no:cacheprovider "${tests[@]/#/$root/}" "$@" || status=$?
if [ "$mode" = valgrind ]; then
  grep -E "ERROR SUMMARY|used_suppression" "$log" | sort | uniq -c | sed 's/^ *[0-9]* //' || true
  # Leaks are reported, not counted: the interpreter leaks at exit by design, and
  # so does the module object cffi makes in a forked child that leaves by
  # os._exit.  A definitely lost block allocated from the C core (a csrc/ file) fails.
  if awk '/definitely lost in loss record/{rec=1; next} rec && /(chunk|batch|pool|file_loop|kat|kdf)\.c:/{found=1} /^==[0-9]+== $/{rec=0} END{exit !found}' "$log"; then
    echo "memcheck: a block allocated by the C core (csrc/) was leaked; see $log" >&2
    status=1
  fi
fi
exit $status
