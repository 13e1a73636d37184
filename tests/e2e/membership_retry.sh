#!/usr/bin/env bash
# A group join the kernel refuses (here: igmp_max_memberships lowered to 0 in the relay's
# namespace) is reported as failed, and joined without any rule change or link event once the
# kernel allows it again: mcrd retries failed memberships every few seconds.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init membership_retry
for b in mcrd mcrctl; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
command -v jq >/dev/null || rig_skip "jq not installed"
rig_topology
rig_exec rly sysctl -qw net.ipv4.igmp_max_memberships=0 \
  || rig_skip "net.ipv4.igmp_max_memberships is not per namespace on this kernel"
# The veths' carrier comes up a moment after `link set up` (an rtnetlink event, on which mcrd
# rescans and would retry the join): let that pass first, so only the periodic retry can.
for _ in $(seq 50); do
  [ "$(ip -n "$(rig_nsname rly)" -j link show | jq '[.[] | select(.ifname != "lo" and .operstate != "UP")] | length')" = 0 ] && break
  sleep 0.1
done
sleep 0.2

SOCK=$RIG_TMP/mcrd.sock
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --control-socket-path "$SOCK" \
  --state-file off --metrics-listen off --log-level debug
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
state() { ctl --json list | jq -r '.rules[] | select(.id == "cam") | .membership.state'; }
ctl add --name cam --input-interface in0 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0 >"$RIG_TMP/add.out" 2>&1 || rig_fail "add: $(cat "$RIG_TMP/add.out")"
[ "$(state)" = failed ] || rig_fail "membership state '$(state)' with joins refused"
grep -q 'igmp_max_memberships' "$RIG_TMP/add.out" || rig_fail "the warning does not say why: $(cat "$RIG_TMP/add.out")"

rig_exec rly sysctl -qw net.ipv4.igmp_max_memberships=20
for _ in $(seq 80); do [ "$(state)" = active ] && break; sleep 0.1; done
[ "$(state)" = active ] || rig_fail "still '$(state)' 8 s after the limit was raised"
rig_igmp_member rly in0 239.1.1.1 || rig_fail "the kernel does not list 239.1.1.1 on in0"
grep -q 'retried failed group memberships: 1 of 1' "$RIG_TMP/mcrd.log" || rig_fail "no log line for the retry"
echo "PASS membership_retry"
