#!/usr/bin/env bash
# bench/harness/egress_spacing.sh in a short run, so it cannot rot: it must print a line for
# each relay, with every datagram received and the gap figures filled in. It asserts no spacing
# (the VM's scheduling decides that), only that the measurement works.
set -euo pipefail
src=${MCR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${MCR_BIN:?set MCR_BIN to the build bin directory}
# shellcheck source=../rig/netns.sh
. "$src/tests/rig/netns.sh"
rig_require_root
rig_require_tools ip python3 taskset
log=$(mktemp /tmp/mcr-egress-spacing.XXXXXX)
trap 'rm -f "$log"' EXIT
rc=0
"$src/bench/harness/egress_spacing.sh" --bin "$bin" --rates 2000 --seconds 1 >"$log" 2>&1 || rc=$?
cat "$log" >&2
[ "$rc" -ne 77 ] || { echo "SKIP: egress_spacing.sh cannot run here" >&2; exit 77; }
[ "$rc" -eq 0 ] || { echo "FAIL: egress_spacing.sh exited with $rc" >&2; exit 1; }
cases=(mcrd-recv mcrd-ring)
# The kernel reference runs when smcrouted is there and installs its route; else the harness
# says it skipped it.
if command -v smcrouted >/dev/null && ! grep -q '^kernel  *skipped' "$log"; then
  cases=(kernel "${cases[@]}")
fi
num='[0-9]+\.[0-9]'
for c in "${cases[@]}"; do
  grep -qE "^$c +2k pps +got +2000/2000 +gap us p10 +$num p50 +$num p90 +$num mean +$num +bunched +$num%" "$log" ||
    { echo "FAIL: egress_spacing.sh printed no complete line for '$c'" >&2; exit 1; }
done
echo "ok: egress_spacing.sh measured ${cases[*]}"
