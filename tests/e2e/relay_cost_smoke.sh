#!/usr/bin/env bash
# bench/harness/relay_cost.sh in a short run, so it cannot rot: with receivers on two outputs,
# and without receivers on an egress with UDP segmentation offload. It must print three rounds
# with a shard cost and scheduling count each (and the receiver's cost when there is one). It
# asserts no speed.
set -euo pipefail
src=${MCR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${MCR_BIN:?set MCR_BIN to the build bin directory}
# shellcheck source=../rig/netns.sh
. "$src/tests/rig/netns.sh"
rig_require_root
rig_require_tools ip python3 taskset ethtool
log=$(mktemp /tmp/mcr-relay-cost.XXXXXX)
trap 'rm -f "$log"' EXIT

run() {  # run ARGS...: relay_cost.sh must succeed and print three well-formed rounds
  local rc=0
  "$src/bench/harness/relay_cost.sh" --bin "$bin" --seconds 1 --rate 5000 "$@" >"$log" 2>&1 || rc=$?
  cat "$log" >&2
  [ "$rc" -eq 0 ] || { echo "FAIL: relay_cost.sh $* exited with $rc" >&2; exit 1; }
  local n
  n=$(grep -cE '^round [123]: .*: shard [0-9]+ ns per input packet, [0-9]+ schedules/s' "$log" || true)
  [ "$n" -eq 3 ] || { echo "FAIL: relay_cost.sh $*: expected 3 rounds, got $n" >&2; exit 1; }
  if grep -qE 'shard 0 ns per input packet' "$log"; then
    echo "FAIL: relay_cost.sh $*: the shard did not run (0 ns)" >&2; exit 1
  fi
}
run --outputs 2 --receiver
grep -qE 'receiver [1-9][0-9]* ns per input packet' "$log" || { echo "FAIL: no receiver cost" >&2; exit 1; }
run --outputs 1 --egress-uso
grep -q 'egress USO on' "$log" || { echo "FAIL: --egress-uso not reported" >&2; exit 1; }
echo "PASS: relay_cost.sh reports the shard's cost with and without receivers"
