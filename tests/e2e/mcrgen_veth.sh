#!/usr/bin/env bash
# mcrgen end to end over one veth pair (no relay): snd (veth0 10.10.1.1) <-> rcv (veth0 10.10.1.2).
#  1. A receiver joined to 239.1.1.1:5000 must get all 100000 datagrams a sender paces at
#     50000 pps, intact and in order, and must report the TTL and DSCP they carried.
#  2. Unpaced (--rate 0) bursts, which the sender hands to the kernel as UDP GSO runs, arrive as
#     the same intact, in-order datagrams (the receive buffer is sized to hold them all).
#  3. Unicast to the receiver's address.
set -euo pipefail
. "${MCR_SOURCE_DIR:-$(dirname "$0")/../..}/tests/rig/netns.sh"
rig_init mcrgen_veth
MCRGEN=${MCR_BIN:?set MCR_BIN to the build bin directory}/mcrgen
[ -x "$MCRGEN" ] || rig_fail "$MCRGEN not built"
command -v jq >/dev/null || rig_skip "jq not installed"

rig_ns snd
rig_ns rcv
rig_link snd veth0 10.10.1.1/24 rcv veth0 10.10.1.2/24

rig_bg rcv recv "$MCRGEN" recv --group 239.1.1.1 --port 5000 --interface veth0 \
  --expect 100000 --timeout 30 --idle-exit 3 --json --ready-file "$RIG_TMP/ready"
recv_pid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/ready" 10 || rig_fail "receiver did not get ready"

rig_exec snd "$MCRGEN" send --group 239.1.1.1 --port 5000 --interface veth0 \
  --rate 50000 --count 100000 --size 1200 --ttl 7 --dscp 46 --json >"$RIG_TMP/send.json" ||
  rig_fail "sender failed"
rc=0
wait "$recv_pid" || rc=$?
cat "$RIG_TMP/send.json" >&2
report="$RIG_TMP/recv.log"
# The receiver's stdout (JSON) and stderr ("ready") share the log; the JSON starts at '{'.
sed -n '/^{/,$p' "$report" >"$RIG_TMP/recv.json"
jq -c '{received, unique, lost, reordered, duplicated, corrupted, latency_us, ttl, dscp}' \
  "$RIG_TMP/recv.json" >&2
[ "$rc" -eq 0 ] || rig_fail "receiver exited with $rc"

check() {  # check JQ_EXPR: asserts the expression holds for the receiver's report
  jq -e "$1" "$RIG_TMP/recv.json" >/dev/null || rig_fail "receiver report fails: $1"
}
check '.unique == 100000'
check '.lost == 0'
check '.reordered == 0'
check '.duplicated == 0'
check '.corrupted == 0'
check '.received == 100000'
check '.ttl.min == 7 and .ttl.max == 7'
check '.dscp == [46]'
check '.streams[0].first_seq == 0 and .streams[0].last_seq == 99999'
jq -e '.sent == 100000' "$RIG_TMP/send.json" >/dev/null || rig_fail "sender did not report 100000"
echo "PASS: 100000/100000 datagrams at 50000 pps, none lost, reordered or corrupted"

run_case() {  # run_case NAME COUNT "RECV ARGS" "SEND ARGS": receiver must see COUNT, all intact
  local name=$1 n=$2 recv_args=$3 send_args=$4 rc=0
  # shellcheck disable=SC2086
  rig_bg rcv "$name" "$MCRGEN" recv $recv_args --interface veth0 --expect "$n" --timeout 30 \
    --idle-exit 3 --json --ready-file "$RIG_TMP/$name.ready"
  local pid=$RIG_LAST_PID
  rig_wait_file "$RIG_TMP/$name.ready" 10 || rig_fail "$name: receiver did not get ready"
  # shellcheck disable=SC2086
  rig_exec snd "$MCRGEN" send $send_args --interface veth0 --count "$n" --json \
    >"$RIG_TMP/$name.send.json" || rig_fail "$name: sender failed"
  wait "$pid" || rc=$?
  sed -n '/^{/,$p' "$RIG_TMP/$name.log" >"$RIG_TMP/$name.json"
  jq -c '{received, unique, lost, reordered, corrupted, socket_drops}' "$RIG_TMP/$name.json" >&2
  [ "$rc" -eq 0 ] || rig_fail "$name: receiver exited with $rc"
  jq -e ".unique == $n and .received == $n and .lost == 0 and .reordered == 0 and
         .duplicated == 0 and .corrupted == 0" "$RIG_TMP/$name.json" >/dev/null ||
    rig_fail "$name: receiver did not get $n intact datagrams in order"
}

run_case burst 20000 "--group 239.1.1.1 --port 5000 --rcvbuf 268435456" \
  "--group 239.1.1.1 --port 5000 --rate 0"
jq -e '.mode == "udp+gso"' "$RIG_TMP/burst.send.json" >/dev/null ||
  rig_fail "unpaced sender did not use UDP GSO: $(jq -c .mode "$RIG_TMP/burst.send.json")"
echo "PASS: 20000 unpaced datagrams sent as GSO runs arrived intact and in order"

run_case unicast 5000 "--group 10.10.1.2 --port 6000" \
  "--group 10.10.1.2 --port 6000 --rate 20000 --size 1472"
echo "PASS: 5000 unicast datagrams"

# 4. Receive timestamps. The receiver is stopped (SIGSTOP) for 400 ms mid-stream, so datagrams
#    wait in its socket. Kernel timestamps (the default) date each datagram at its arrival on
#    this host, so the stop is not in the latency; user timestamps (--rx-timestamp user) date it
#    when recvmmsg returns it, so the stop is.
stamp_case() {  # stamp_case MODE: runs 6000 datagrams at 10000 pps with a 400 ms stop
  local mode=$1 rc=0
  rig_bg rcv "stamp-$mode" "$MCRGEN" recv --group 239.1.1.3 --port 5003 --interface veth0 \
    --rx-timestamp "$mode" --expect 6000 --timeout 30 --idle-exit 3 --json \
    --ready-file "$RIG_TMP/stamp-$mode.ready"
  local pid=$RIG_LAST_PID
  rig_wait_file "$RIG_TMP/stamp-$mode.ready" 10 || rig_fail "stamp $mode: receiver did not get ready"
  rig_exec snd "$MCRGEN" send --group 239.1.1.3 --port 5003 --interface veth0 --rate 10000 \
    --count 6000 >/dev/null &
  local snd=$!
  sleep 0.2
  pkill -STOP -f -- "--rx-timestamp $mode" || rig_fail "stamp $mode: cannot stop the receiver"
  sleep 0.4
  pkill -CONT -f -- "--rx-timestamp $mode"
  wait "$snd" || rig_fail "stamp $mode: sender failed"
  wait "$pid" || rc=$?
  sed -n '/^{/,$p' "$RIG_TMP/stamp-$mode.log" >"$RIG_TMP/stamp-$mode.json"
  jq -c '{mode: "'"$mode"'", unique, lost, latency_us}' "$RIG_TMP/stamp-$mode.json" >&2
  [ "$rc" -eq 0 ] || rig_fail "stamp $mode: receiver exited with $rc"
}
stamp_case kernel
jq -e '.unique == 6000 and .latency_us.max < 100000' "$RIG_TMP/stamp-kernel.json" >/dev/null ||
  rig_fail "kernel timestamps: latency includes the receiver's stop"
stamp_case user
jq -e '.unique == 6000 and .latency_us.max >= 300000' "$RIG_TMP/stamp-user.json" >/dev/null ||
  rig_fail "user timestamps: the receiver's 400 ms stop is missing from the latency"
echo "PASS: kernel receive timestamps leave out the receiver's own delay, user ones include it"
