#!/usr/bin/env bash
# mcrgen send --raw end to end over one veth pair (no relay): snd (veth0 10.10.1.1) <-> rcv
# (veth0 10.10.1.2).
#  1. Multicast from a source nobody routes (198.51.100.7, TEST-NET-2) into a receiver that joins
#     (198.51.100.7, 239.1.1.1): every datagram arrives intact. A second receiver joined for
#     another source gets none (the source filter works, so case 1 really tests the (S,G) join).
#  2. Unicast raw frames to 10.10.1.2 (destination MAC from the neighbour table), spoofed source.
#  3. Unpaced raw frames, sent as GSO frames the kernel cuts into datagrams. The sender's veth has
#     checksum offload off, so the kernel completes every UDP checksum in software from the
#     partial sum mcrgen writes, and the receiver verifies each one (InCsumErrors stays 0).
#
# Why rp_filter is off in rcv: the reverse-path filter drops a datagram whose source address the
# receiver would not route back out of the interface it came in on. Nothing routes 198.51.100.0/24
# in rcv, so with rp_filter 1 or 2 the kernel drops every frame before UDP sees it. The effective
# value is the maximum of conf/all and conf/<interface>, so both are set to 0. New namespaces
# inherit conf/all from the host (net.core.devconf_inherit_init_net), hence explicitly.
set -euo pipefail
. "${MCR_SOURCE_DIR:-$(dirname "$0")/../..}/tests/rig/netns.sh"
rig_init mcrgen_raw
MCRGEN=${MCR_BIN:?set MCR_BIN to the build bin directory}/mcrgen
[ -x "$MCRGEN" ] || rig_fail "$MCRGEN not built"
command -v jq >/dev/null || rig_skip "jq not installed"

rig_ns snd
rig_ns rcv
rig_link snd veth0 10.10.1.1/24 rcv veth0 10.10.1.2/24
rig_exec rcv sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.veth0.rp_filter=0

json_of() {  # json_of LOGNAME: the JSON report at the end of a receiver's log
  sed -n '/^{/,$p' "$RIG_TMP/$1.log" >"$RIG_TMP/$1.json"
  echo "$RIG_TMP/$1.json"
}
check() {  # check FILE JQ_EXPR
  jq -e "$2" "$1" >/dev/null || rig_fail "$(basename "$1"): $2 does not hold"
}

# --- 1. SSM from an unroutable source -------------------------------------------------------
N=20000
rig_bg rcv ssm "$MCRGEN" recv --group 239.1.1.1 --port 5000 --interface veth0 \
  --source 198.51.100.7 --expect $N --timeout 30 --idle-exit 3 --json \
  --ready-file "$RIG_TMP/ssm.ready"
ssm_pid=$RIG_LAST_PID
rig_bg rcv other "$MCRGEN" recv --group 239.1.1.1 --port 5000 --interface veth0 \
  --source 198.51.100.8 --json --ready-file "$RIG_TMP/other.ready"
other_pid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/ssm.ready" 10 || rig_fail "receiver did not get ready"
rig_wait_file "$RIG_TMP/other.ready" 10 || rig_fail "second receiver did not get ready"

rig_exec snd "$MCRGEN" send --raw --source-ip 198.51.100.7 --group 239.1.1.1 --port 5000 \
  --interface veth0 --rate 20000 --count $N --dscp 10 --json >"$RIG_TMP/ssm_send.json" ||
  rig_fail "raw sender failed"
rc=0
wait "$ssm_pid" || rc=$?
kill -TERM "$other_pid"
wait "$other_pid" || rig_fail "second receiver exited with $?"
ssm=$(json_of ssm)
other=$(json_of other)
jq -c '{received, unique, lost, reordered, corrupted, ttl, dscp}' "$ssm" >&2
[ "$rc" -eq 0 ] || rig_fail "SSM receiver exited with $rc"
check "$ssm" ".unique == $N and .received == $N"
check "$ssm" '.lost == 0 and .reordered == 0 and .duplicated == 0 and .corrupted == 0'
check "$ssm" '.ttl.min == 1 and .ttl.max == 1'  # raw multicast default TTL
check "$ssm" '.dscp == [10]'
check "$other" '.received == 0'
check "$RIG_TMP/ssm_send.json" ".sent == $N and (.mode | startswith(\"raw\"))"
echo "PASS: raw multicast from 198.51.100.7: $N/$N via (S,G); other source's join got none"

# --- 2. Unicast raw frames, MAC from the neighbour table ------------------------------------
N=5000
rig_bg rcv uni "$MCRGEN" recv --group 10.10.1.2 --port 6000 --interface veth0 \
  --expect $N --timeout 30 --idle-exit 3 --json --ready-file "$RIG_TMP/uni.ready"
uni_pid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/uni.ready" 10 || rig_fail "unicast receiver did not get ready"
rig_exec snd "$MCRGEN" send --raw --source-ip 198.51.100.7 --group 10.10.1.2 --port 6000 \
  --interface veth0 --rate 20000 --count $N --size 1472 --json >/dev/null ||
  rig_fail "raw unicast sender failed"
rc=0
wait "$uni_pid" || rc=$?
uni=$(json_of uni)
jq -c '{received, unique, lost, corrupted, ttl}' "$uni" >&2
[ "$rc" -eq 0 ] || rig_fail "unicast receiver exited with $rc"
check "$uni" ".unique == $N and .lost == 0 and .corrupted == 0"
check "$uni" '.ttl.min == 64'  # raw unicast default TTL
echo "PASS: raw unicast to 10.10.1.2 from 198.51.100.7: $N/$N"

# --- 3. GSO frames, checksums completed in software and verified by the receiver -------------
N=20000
rig_exec snd ethtool -K veth0 tx-checksumming off >/dev/null 2>&1 ||
  rig_skip "cannot turn checksum offload off on veth (ethtool missing?)"
rig_bg rcv gso "$MCRGEN" recv --group 239.1.1.1 --port 5000 --interface veth0 \
  --source 198.51.100.7 --expect $N --timeout 30 --idle-exit 3 --json --rcvbuf 268435456 \
  --ready-file "$RIG_TMP/gso.ready"
gso_pid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/gso.ready" 10 || rig_fail "GSO receiver did not get ready"
# InCsumErrors: 7th counter of the Udp: line of the receiver namespace's /proc/net/snmp.
# shellcheck disable=SC2016  # $2/$8 are awk's fields
csum_errors() { rig_exec rcv awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $8}' /proc/net/snmp; }
errors_before=$(csum_errors)
rig_exec snd "$MCRGEN" send --raw --source-ip 198.51.100.7 --group 239.1.1.1 --port 5000 \
  --interface veth0 --rate 0 --count $N --json >"$RIG_TMP/gso_send.json" ||
  rig_fail "raw GSO sender failed"
rc=0
wait "$gso_pid" || rc=$?
gso=$(json_of gso)
jq -c '{received, unique, lost, reordered, corrupted, socket_drops}' "$gso" >&2
[ "$rc" -eq 0 ] || rig_fail "GSO receiver exited with $rc"
check "$RIG_TMP/gso_send.json" '.mode == "raw+gso"'
check "$gso" ".unique == $N and .lost == 0 and .reordered == 0 and .corrupted == 0"
[ "$(csum_errors)" = "$errors_before" ] || rig_fail "receiver counted UDP checksum errors"
echo "PASS: $N unpaced raw datagrams sent as GSO frames, every checksum verified"
