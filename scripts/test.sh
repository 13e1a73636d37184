#!/usr/bin/env bash
# The project's one test command: installs what is missing, builds, runs every ctest test; then
# the same tests again in an AddressSanitizer+UndefinedBehaviorSanitizer build and in a
# ThreadSanitizer build (CONTRIBUTING.md: sanitizer builds run in CI).
#   scripts/test.sh                        Release build in build/, then build-asan/, build-tsan/
#   MCR_SANITIZERS= scripts/test.sh        the Release pass only
#   MCR_SANITIZERS=asan scripts/test.sh    Release, then ASan+UBSan only
#   BUILD_DIR=build2 CMAKE_ARGS=-DFOO=ON CTEST_ARGS="-R e2e" scripts/test.sh
# End-to-end tests need root (network namespaces); without it they are reported as skipped.
# The sanitizer passes leave out e2e.bench_smoke (the benchmark harness: timing-heavy, and it
# measures nothing under a sanitizer) and e2e.configure_errors (re-runs CMake; no code of ours).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD_DIR:-build}
sanitizers=${MCR_SANITIZERS-asan tsan}
jobs=$(nproc)

scripts/install-deps.sh

# run_pass NAME BUILD_DIR CMAKE_ARGS CTEST_ARGS: configure, build, run ctest; prints a summary
# and returns ctest's status.
run_pass() {
  local name=$1 dir=$2 cmake_args=$3 ctest_args=$4 rc
  echo "=== $name: build in $dir"
  # shellcheck disable=SC2086
  cmake -S "$root" -B "$dir" $cmake_args >/dev/null || return 1
  cmake --build "$dir" -j "$jobs" || return 1
  # Tests that share nothing run in parallel; the namespace tests each build their own topology.
  set +e
  # shellcheck disable=SC2086
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 600 $ctest_args 2>&1 | tee ctest.log
   exit "${PIPESTATUS[0]}")
  rc=$?
  set -e
  echo "--- $name"
  grep -E "tests passed|tests failed" "$dir/ctest.log" || true
  echo "skipped: $(grep -c "\*\*\*Skipped\|Not Run" "$dir/ctest.log" || true)"
  return "$rc"
}

status=0
run_pass release "$build" "${CMAKE_ARGS:-}" "${CTEST_ARGS:-}" || status=1
# Reports fail the test that triggers them: ASan and UBSan abort (-fno-sanitize-recover), leaks
# fail the process at exit, and TSan stops at the first race.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}
for san in $sanitizers; do
  case $san in
    asan) flag=-DMCR_ASAN=ON ;;
    tsan) flag=-DMCR_TSAN=ON ;;
    *) echo "test.sh: unknown sanitizer '$san' in MCR_SANITIZERS (asan, tsan)" >&2; exit 2 ;;
  esac
  run_pass "$san" "build-$san" "$flag ${CMAKE_ARGS:-}" \
    "-E bench_smoke|configure_errors ${CTEST_ARGS:-}" || status=1
done
echo "=== passes: release${sanitizers:+ $sanitizers}; $([ "$status" -eq 0 ] && echo all passed || echo FAILED)"
exit "$status"
