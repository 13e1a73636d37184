#!/usr/bin/env bash
# `mcrd --membership link` while its input interface comes and goes (no restart, no mcrctl
# call): a rule added before the interface exists, and the interface deleted and re-created
# under a new ifindex. Each time the interface comes up mcrd must put the group's MAC address in
# its filter (ip maddr), send an IGMP report for the group out of it (seen on the wire by the
# sender's side), leave the host without an IP membership, and relay. (Membership on a link that
# only goes down and up is in membership_link.sh, behind a snooping bridge.) Last, IGMP queries
# with an 802.1Q tag on in1's wire: a VLAN's query is not in1's and is ignored, a priority-tagged
# one (VLAN 0) is in1's own.
#
#   snd (veth1 10.10.3.1) -- (in1 10.10.3.2) rly (out0 10.10.2.1) -- (veth0 10.10.2.2) rcv
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init membership_link_interfaces
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
rig_require_tools jq tcpdump curl python3
rig_topology

SOCK=$RIG_TMP/mcrd.sock
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --cpus 0 --control-socket-path "$SOCK" \
  --state-file off --metrics-listen 127.0.0.1:9464 --membership link --log-level debug
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
ctl add --name late --input-interface in1 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6001:out0 --allow-missing-interface >/dev/null 2>&1

# bring_up_in1 NAME: creates the in1/veth1 pair with in1 down, starts a one-packet tcpdump on
# veth1 for a version 3 report whose first record is 239.1.1.1, then brings in1 up; fails unless
# the report arrives, the MAC address is on in1, the host is no IP member, and the group relays.
bring_up_in1() {
  local name=$1 snd rly dump i
  snd=$(rig_nsname snd); rly=$(rig_nsname rly)
  ip link add name veth1 netns "$snd" type veth peer name in1 netns "$rly"
  ip -n "$snd" addr add 10.10.3.1/24 dev veth1
  ip -n "$rly" addr add 10.10.3.2/24 dev in1
  ip -n "$snd" link set veth1 up
  ip -n "$snd" route add 239.1.1.1/32 dev veth1
  rig_bg snd "dump.$name" tcpdump -Z root -ni veth1 -c 1 \
    'igmp and igmp[0] = 0x22 and igmp[12:4] = 0xef010101'
  dump=$RIG_LAST_PID
  for _ in $(seq 50); do grep -q "listening on" "$RIG_TMP/dump.$name.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "listening on" "$RIG_TMP/dump.$name.log" || rig_fail "$name: tcpdump did not start"
  ip -n "$rly" link set in1 up
  for ((i = 0; i < 50; i++)); do kill -0 "$dump" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$dump" 2>/dev/null; then
    kill "$dump"
    rig_fail "$name: no IGMPv3 report for 239.1.1.1 on the new in1 within 5 s"
  fi
  echo "ok: $name: mcrd reported 239.1.1.1 on in1"
  for ((i = 0; i < 50; i++)); do
    rig_exec rly ip maddr show dev in1 | grep -q 'link  01:00:5e:01:01:01' && break
    sleep 0.1
  done
  rig_exec rly ip maddr show dev in1 | grep -q 'link  01:00:5e:01:01:01' \
    || rig_fail "$name: 01:00:5e:01:01:01 is not in in1's filter: $(rig_exec rly ip maddr show dev in1)"
  ! rig_igmp_member rly in1 239.1.1.1 || rig_fail "$name: the host joined 239.1.1.1 on in1"
  echo "ok: $name: the group's MAC address is on in1, and the host is no IP member"

  rig_bg rcv "recv.$name" "$MCR_BIN/mcrgen" recv --group 239.2.2.2 --port 6001 \
    --interface veth0 --expect 500 --timeout 15 --json --ready-file "$RIG_TMP/$name.ready"
  local rpid=$RIG_LAST_PID
  rig_wait_file "$RIG_TMP/$name.ready" 10
  rig_exec snd "$MCR_BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth1 \
    --count 500 --rate 5000 >/dev/null
  wait "$rpid" || rig_fail "$name: not everything arrived: $(tail -n 3 "$RIG_TMP/recv.$name.log")"
  echo "ok: $name: relayed"
}

# 1. The input interface appears after the rule.
bring_up_in1 appeared
old=$(ip -n "$(rig_nsname rly)" -o link show in1 | cut -d: -f1)

# 2. Deleted and re-created: a new ifindex, a new (empty) filter.
ip -n "$(rig_nsname rly)" link del in1
bring_up_in1 recreated
new=$(ip -n "$(rig_nsname rly)" -o link show in1 | cut -d: -f1)
[ "$old" != "$new" ] || rig_fail "re-created interface kept ifindex $old"
rule=$(ctl --json list | jq -c '.rules[] | select(.id == "late")')
[ "$(jq -r .input_ifindex <<<"$rule")" = "$new" ] || rig_fail "not capturing on in1's new index $new: $rule"
[ "$(jq -r .membership.state <<<"$rule")" = active ] || rig_fail "membership not active: $rule"
echo "ok: list shows the rule on in1's new index $new, membership active"

# 3. Tagged queries: first one for VLAN 100, then a priority-tagged one. mcrd reads in1's IGMP in
# order, so once the second is counted the first has been seen: the count must rise by one.
queries() {
  rig_exec rly curl -sf http://127.0.0.1:9464/metrics \
    | awk '$1 == "mcr_igmp_queries_total{interface=\"in1\"}" { print $2 }'
}
QUERIER=$MCR_SOURCE_DIR/tests/rig/igmp_querier.py
q0=$(queries)
[ -n "$q0" ] || rig_fail "no mcr_igmp_queries_total for in1 in /metrics"
rig_exec snd python3 "$QUERIER" --source 10.10.3.1 --tag 0x0064 --interface veth1
rig_exec snd python3 "$QUERIER" --source 10.10.3.1 --tag 0xa000 --interface veth1
for _ in $(seq 50); do [ "$(queries)" -gt "$q0" ] && break; sleep 0.1; done
q1=$(queries)
[ "$q1" -eq $((q0 + 1)) ] \
  || rig_fail "queries counted on in1 went $q0 -> $q1; want one more: VLAN 100's ignored, VLAN 0's taken"
echo "ok: a query tagged for VLAN 100 is ignored on in1, a priority-tagged one is taken"
echo "PASS membership_link_interfaces"
