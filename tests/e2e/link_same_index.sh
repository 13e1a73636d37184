#!/usr/bin/env bash
# An input interface deleted and back under its old index before mcrd rescans — moved to another
# namespace and back, as container tooling does, or `ip link add ... index N` — looks unchanged
# by name and index, but the kernel has dropped its group memberships and unbound the capture
# sockets. mcrd must rebuild both: the rule relays again and the host is a member again.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init link_same_index
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
command -v jq >/dev/null || rig_skip "jq not installed"
rig_topology
rig_ns away
RLY=$(rig_nsname rly)
AWAY=$(rig_nsname away)

SOCK=$RIG_TMP/mcrd.sock
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --control-socket-path "$SOCK" \
  --state-file off --metrics-listen off --log-level debug
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
ctl add --name main --input-interface in0 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0 >/dev/null

# relay N: N datagrams through the rule must all arrive.
relay() {
  rig_bg rcv recv "$MCR_BIN/mcrgen" recv --group 239.2.2.2 --port 6000 --interface veth0 \
    --expect "$1" --timeout 5 --json --ready-file "$RIG_TMP/ready.$1"
  local rpid=$RIG_LAST_PID
  rig_wait_file "$RIG_TMP/ready.$1" 10
  rig_exec snd "$MCR_BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth0 \
    --count "$1" --rate 2000 >/dev/null
  wait "$rpid" || rig_fail "relayed $(sed -n '/^{/,$p' "$RIG_TMP/recv.log" | jq -c '{unique, lost}')"
}
member() { rig_igmp_member rly in0 239.1.1.1; }
relay 200
member || rig_fail "not a member of 239.1.1.1 on in0"
index=$(ip -n "$RLY" -j link show in0 | jq '.[0].ifindex')

# A link change first, so that mcrd rescans now and the move below falls in the 100 ms that a
# rescan is held back during a storm: it is seen in one later rescan, as the move-and-back only.
ip -n "$RLY" link set out0 mtu 1500
ip -n "$RLY" link set in0 netns "$AWAY"
ip -n "$AWAY" link set in0 netns "$RLY"
ip -n "$RLY" addr add 10.10.1.2/24 dev in0
ip -n "$RLY" link set in0 up
[ "$(ip -n "$RLY" -j link show in0 | jq '.[0].ifindex')" = "$index" ] \
  || rig_skip "in0 came back under another index; the case under test did not arise"
sleep 0.5

ok=false
for _ in $(seq 20); do
  member && ok=true && break
  sleep 0.1
done
[ "$ok" = true ] || rig_fail "not a member of 239.1.1.1 on in0 after it came back: $(rig_exec rly cat /proc/net/igmp)"
relay 300
echo "PASS link_same_index"
