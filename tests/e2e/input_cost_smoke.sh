#!/usr/bin/env bash
# bench/harness/input_cost.sh in a short run, so it cannot rot: it must print its six cases,
# each with a rate and a cost per datagram. It asserts no speed.
set -euo pipefail
src=${MCR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${MCR_BIN:?set MCR_BIN to the build bin directory}
# shellcheck source=../rig/netns.sh
. "$src/tests/rig/netns.sh"
rig_require_root
rig_require_tools ip python3 taskset nft
log=$(mktemp /tmp/mcr-input-cost.XXXXXX)
trap 'rm -f "$log"' EXIT
rc=0
"$src/bench/harness/input_cost.sh" --bin "$bin" --count 5000 --rounds 1 >"$log" 2>&1 || rc=$?
cat "$log" >&2
[ "$rc" -ne 77 ] || { echo "SKIP: input_cost.sh cannot run here" >&2; exit 77; }
[ "$rc" -eq 0 ] || { echo "FAIL: input_cost.sh exited with $rc" >&2; exit 1; }
for c in nothing joined joined+drop mcrd mcrd+drop mcrd-link; do
  grep -qE "^${c//+/\\+} +full blast +[0-9]+k pps; receiving CPU +[0-9]+ ns per datagram$" "$log" ||
    { echo "FAIL: input_cost.sh printed no line for '$c'" >&2; exit 1; }
done
echo "ok: input_cost.sh printed all six cases"
