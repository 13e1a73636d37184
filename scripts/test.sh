#!/usr/bin/env bash
# The project's one test command: installs what is missing, builds, runs every ctest test.
#   scripts/test.sh                 Release build in build/
#   BUILD_DIR=build-asan CMAKE_ARGS=-DMCR_ASAN=ON scripts/test.sh
#   CTEST_ARGS="-R e2e" scripts/test.sh
# End-to-end tests need root (network namespaces); without it they are reported as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD_DIR:-build}
jobs=$(nproc)

scripts/install-deps.sh

cmake -S "$root" -B "$build" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$jobs"

# Tests that share nothing run in parallel; the namespace tests each build their own topology.
cd "$build"
set +e
ctest --output-on-failure -j "$jobs" --timeout 600 ${CTEST_ARGS:-} 2>&1 | tee ctest.log
rc=${PIPESTATUS[0]}
set -e
echo "---"
grep -E "tests passed|tests failed" ctest.log || true
skipped=$(grep -c "\*\*\*Skipped\|Not Run" ctest.log || true)
echo "skipped: $skipped"
exit "$rc"
