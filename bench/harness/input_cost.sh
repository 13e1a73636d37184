#!/usr/bin/env bash
# What each input datagram costs the CPU that receives it, measured as the rate one sender
# reaches at full blast when that CPU is its own. veth processes the relay namespace's receive
# path in the sender's context, so the sender's CPU does the work a relay host's NIC-receiving
# CPU does: the sender's rate falls by what the relay host's receive path costs. Six cases:
#   nothing        nobody in the relay namespace wants the group (the IP stack drops it early)
#   joined         a socket there joins the group on in0, as mcrd does for IGMP
#   joined+drop    the same with packaging/nftables/mcr-drop-captured.nft loaded
#   mcrd           mcrd (1 shard, ring mode) relays the group: join + capture
#   mcrd+drop      mcrd with the nft file loaded
#   mcrd-link      mcrd --membership link: capture, no IP membership (mcrd sends the IGMP)
# Per datagram on the receiving CPU = 1 / rate; the differences between cases are what the
# join, the capture and the nft rule cost or save.
#
#   sudo bench/harness/input_cost.sh [--bin DIR] [--count N] [--size BYTES] [--rounds R]
#
# Defaults: build/bin, 400000 datagrams of 1200 bytes, 3 rounds; sender on the first allowed CPU,
# mcrd on the last. Needs root, nft (nftables) and python3. A diagnostic: asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/build/bin count=400000 size=1200 rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "input_cost: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "input_cost: needs root (network namespaces)" >&2; exit 77; }
bin=$(cd "$bin" && pwd)  # relative to where it was run
for b in mcrd mcrgen; do [ -x "$bin/$b" ] || { echo "input_cost: $bin/$b not found" >&2; exit 1; }; done
cpus=$(python3 -c 'import os; a=sorted(os.sched_getaffinity(0)); print(a[0], a[-1])')
sender_cpu=${cpus% *} relay_cpu=${cpus#* }
nft_file=$root/packaging/nftables/mcr-drop-captured.nft  # its example element is this rig's input

. "$root/tests/rig/netns.sh"
. "$root/bench/harness/mcrd_rig.sh"
rig_nftables_work ||
  { echo "input_cost: nft cannot make tables here (nftables not installed, or no nf_tables)" >&2; exit 77; }
rig_init input_cost
rig_topology
# Without ethtool the veths keep UDP segmentation on and a GSO run would cross as one frame:
# then every datagram is sent on its own.
send_args=()
command -v ethtool >/dev/null || send_args=(--no-gso)
cat >"$RIG_TMP/rules.json" <<J
{"version": 1, "rules": [{"name": "cost", "input": {"interface": "in0", "group": "239.1.1.1",
 "port": 5000}, "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "out0"}]}]}
J

blast() {  # blast CASE: full-blast rounds, then one line: the rates and ns per datagram
  local rates=() r pps
  for ((r = 0; r < rounds; r++)); do
    rig_exec snd taskset -c "$sender_cpu" "$bin/mcrgen" send --group 239.1.1.1 --port 5000 \
      --interface veth0 --rate 0 --count "$count" --size "$size" --ttl 8 \
      ${send_args[@]+"${send_args[@]}"} >"$RIG_TMP/send.log" 2>&1 ||
      rig_fail "mcrgen send failed: $(tail -n 3 "$RIG_TMP/send.log")"
    pps=$(sed -n 's/.* s: \([0-9]*\) pps.*/\1/p' "$RIG_TMP/send.log")
    [ -n "$pps" ] || rig_fail "mcrgen send printed no rate: $(tail -n 3 "$RIG_TMP/send.log")"
    rates+=("$pps")
  done
  python3 - "$1" "${rates[@]}" <<'P'
import sys
case, rates = sys.argv[1], [int(x) for x in sys.argv[2:]]
print(f"{case:12s} full blast {' '.join(f'{r / 1e3:7.0f}k' for r in rates)} pps;"
      f" receiving CPU {' '.join(f'{1e9 / r:5.0f}' for r in rates)} ns per datagram")
P
}
drop_on() { rig_exec rly nft -f "$nft_file"; }
wait_joined() {  # until the relay namespace is a member of the group on in0
  for _ in $(seq 100); do rig_igmp_member rly in0 239.1.1.1 && return 0; sleep 0.05; done
  rig_fail "239.1.1.1 never joined on in0"
}
drop_off() { rig_exec rly nft delete table ip mcr_drop_captured; }

echo "input_cost: $count datagrams of $size bytes per round, sender on CPU $sender_cpu, mcrd on CPU $relay_cpu" >&2
blast nothing
rig_bg rly join python3 -c "
import socket, struct, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
mreq = struct.pack('4s4si', socket.inet_aton('239.1.1.1'), bytes(4), socket.if_nametoindex('in0'))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
open('$RIG_TMP/joined', 'w').close()
time.sleep(3600)"
join_pid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/joined" 10 || rig_fail "the joining socket did not start"
wait_joined
blast joined
drop_on; blast joined+drop; drop_off
kill "$join_pid"; wait "$join_pid" 2>/dev/null || true
for _ in $(seq 100); do rig_igmp_member rly in0 239.1.1.1 || break; sleep 0.05; done  # left
mcrd_start "$bin" "$relay_cpu" ring "$RIG_TMP/rules.json"
wait_joined
blast mcrd
drop_on; blast mcrd+drop; drop_off
kill "$MCRD_PID"; wait "$MCRD_PID" 2>/dev/null || true
rm -f "$RIG_TMP/mcrd.sock"
for _ in $(seq 100); do rig_igmp_member rly in0 239.1.1.1 || break; sleep 0.05; done  # left
mcrd_start "$bin" "$relay_cpu" ring "$RIG_TMP/rules.json" --membership link
! rig_igmp_member rly in0 239.1.1.1 || rig_fail "with --membership link the host joined 239.1.1.1"
blast mcrd-link
