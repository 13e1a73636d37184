#!/usr/bin/env bash
# mcrgen --rtp --streams 4 end to end over one veth pair (no relay): snd (veth0 10.10.1.1) <->
# rcv (veth0 10.10.1.2). Stream i goes to 239.1.2.(1+i), port 5000+i; the receiver opens one
# socket per stream and must see every stream complete, as RTP, with the sender's TTL and DSCP.
set -euo pipefail
. "${MCR_SOURCE_DIR:-$(dirname "$0")/../..}/tests/rig/netns.sh"
rig_init mcrgen_rtp_streams
MCRGEN=${MCR_BIN:?set MCR_BIN to the build bin directory}/mcrgen
[ -x "$MCRGEN" ] || rig_fail "$MCRGEN not built"
command -v jq >/dev/null || rig_skip "jq not installed"

rig_ns snd
rig_ns rcv
rig_link snd veth0 10.10.1.1/24 rcv veth0 10.10.1.2/24

# 10000 per stream: enough for round robin and per-stream accounting. The 16-bit RTP sequence
# wrap (every 65536 packets of a stream) is covered by the unit tests, faster than 262144 here.
N=40000
rig_bg rcv recv "$MCRGEN" recv --group 239.1.2.1 --port 5000 --streams 4 --interface veth0 \
  --expect $N --timeout 30 --idle-exit 3 --json --ready-file "$RIG_TMP/ready"
recv_pid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/ready" 10 || rig_fail "receiver did not get ready"

rig_exec snd "$MCRGEN" send --group 239.1.2.1 --port 5000 --streams 4 --rtp --interface veth0 \
  --rate 40000 --count $N --size 1316 --ttl 3 --dscp 34 --json >"$RIG_TMP/send.json" ||
  rig_fail "sender failed"
rc=0
wait "$recv_pid" || rc=$?
sed -n '/^{/,$p' "$RIG_TMP/recv.log" >"$RIG_TMP/recv.json"
jq -c '{received, unique, lost, reordered, corrupted, rtp, ttl, dscp,
        streams: [.streams[] | {stream, unique, lost, first_seq, last_seq}]}' \
  "$RIG_TMP/recv.json" >&2
[ "$rc" -eq 0 ] || rig_fail "receiver exited with $rc"

check() {
  jq -e "$1" "$RIG_TMP/recv.json" >/dev/null || rig_fail "receiver report fails: $1"
}
check ".unique == $N and .received == $N and .rtp == $N"
check '.lost == 0 and .reordered == 0 and .duplicated == 0 and .corrupted == 0'
check '.streams | length == 4'
check "[.streams[] | .unique] == [$((N / 4)), $((N / 4)), $((N / 4)), $((N / 4))]"
check "[.streams[] | .stream] == [0, 1, 2, 3]"
check "all(.streams[]; .lost == 0 and .first_seq == 0 and .last_seq == $((N / 4 - 1)))"
check '.ttl.min == 3 and .ttl.max == 3 and .dscp == [34]'
jq -e '[.streams[] | .sent] == [10000, 10000, 10000, 10000]' "$RIG_TMP/send.json" >/dev/null ||
  rig_fail "sender did not split $N packets evenly over 4 streams"
echo "PASS: 4 RTP streams, $N/$N datagrams, each stream complete and in order"
