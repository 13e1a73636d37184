#!/usr/bin/env bash
# relay_cost.sh: what mcrd's shard itself spends per input packet, read from the shard thread's
# schedstat (run time and how often it was scheduled), for one rule with N outputs.
#
# On veth the receiving namespace's IP/UDP delivery of every datagram mcrd sends runs inside
# mcrd's sendmsg, so the bench's "relay CPU" includes the receivers' work. Without --receiver
# nobody listens on the output groups: the receiving side drops each packet at its IP layer, and
# what remains is the relay's own cost — capture hand-off, the shard's code, the UDP send path
# and (with segmentation offload off) the kernel's GSO segmentation.
#
#   sudo bench/harness/relay_cost.sh [options]
#     --bin DIR          mcrd and mcrgen (default: build/bin)
#     --rate PPS         input packets per second (default 25000)
#     --seconds S        traffic per measurement (default 5)
#     --outputs N        outputs of the rule, 239.2.2.2+i:6000+i on out0 (default 1)
#     --size BYTES       payload size (default 1200)
#     --ingress MODE     ring or recv (default ring)
#     --receiver         also run mcrgen recv on the outputs (on the relay's CPU, as the bench
#                        does) and report its CPU per packet
#     --egress-uso       UDP segmentation offload on out0 (see docs/PERFORMANCE.md)
#     --mcrd-arg ARG     one more argument for mcrd supervisor (repeatable), e.g.
#                        --mcrd-arg=--ring-block-size=512K
# Prints one line per run: shard ns per input packet, scheduling count, packets per wake-up.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=build/bin rate=25000 seconds=5 outputs=1 size=1200 ingress=ring receiver=0 uso=0
mcrd_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --outputs) outputs=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --ingress) ingress=$2; shift 2 ;;
    --receiver) receiver=1; shift ;;
    --egress-uso) uso=1; shift ;;
    --mcrd-arg) mcrd_args+=("$2"); shift 2 ;;
    --mcrd-arg=*) mcrd_args+=("${1#--mcrd-arg=}"); shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "relay_cost: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "relay_cost: needs root (network namespaces)" >&2; exit 77; }
bin=$(cd "$bin" && pwd)
for b in mcrd mcrgen; do [ -x "$bin/$b" ] || { echo "relay_cost: $bin/$b not found" >&2; exit 1; }; done
cpus=$(python3 -c 'import os; a=sorted(os.sched_getaffinity(0)); print(a[0], a[-1])')
sender_cpu=${cpus% *} relay_cpu=${cpus#* }

. "$root/tests/rig/netns.sh"
. "$root/bench/harness/mcrd_rig.sh"
rig_init relay_cost
rig_topology
[ "$uso" -eq 1 ] && ip netns exec "$(rig_nsname rly)" ethtool -K out0 tx-udp-segmentation on >/dev/null

python3 - "$outputs" >"$RIG_TMP/rules.json" <<'EOF'
import json, sys
n = int(sys.argv[1])
outs = [{"group": f"239.2.{2 + i // 250}.{2 + i % 250}", "port": 6000 + i, "interface": "out0"}
        for i in range(n)]
print(json.dumps({"version": 1, "rules": [{"name": "cost", "input": {
    "interface": "in0", "group": "239.1.1.1", "port": 5000}, "outputs": outs}]}))
EOF
mcrd_start "$bin" "$relay_cpu" "$ingress" "$RIG_TMP/rules.json" ${mcrd_args[@]+"${mcrd_args[@]}"}
shard=$MCRD_SHARD_TASK

count=$((rate * seconds))
if [ "$receiver" -eq 1 ] && [ "$outputs" -gt 250 ]; then rig_fail "--receiver supports up to 250 outputs"; fi
for round in 1 2 3; do
  rx_pid=""
  if [ "$receiver" -eq 1 ]; then
    rig_bg rcv "recv$round" taskset -c "$relay_cpu" "$bin/mcrgen" recv --group 239.2.2.2 \
      --port 6000 --streams "$outputs" --interface veth0 --timeout $((seconds * 3 + 10)) \
      --idle-exit 2 --rx-timestamp user --ready-file "$RIG_TMP/ready$round"
    rx_pid=$RIG_LAST_PID
    rig_wait_file "$RIG_TMP/ready$round" 10 || rig_fail "receiver did not get ready"
  fi
  read -r run0 _ sched0 <"$shard/schedstat"
  rx0=0
  [ -n "$rx_pid" ] && read -r rx0 _ <"/proc/$rx_pid/schedstat"
  rig_exec snd taskset -c "$sender_cpu" "$bin/mcrgen" send --group 239.1.1.1 --port 5000 \
    --interface veth0 --rate "$rate" --count "$count" --size "$size" --ttl 8 >/dev/null
  sleep 0.3
  read -r run1 _ sched1 <"$shard/schedstat"
  rx1=0
  [ -n "$rx_pid" ] && read -r rx1 _ <"/proc/$rx_pid/schedstat"
  wakes=$((sched1 - sched0))
  line="round $round: outputs $outputs, $rate pps, ingress $ingress, egress USO $([ "$uso" -eq 1 ] && echo on || echo off)"
  line+=": shard $(((run1 - run0) / count)) ns per input packet, $((wakes / seconds)) schedules/s,"
  line+=" $((count / (wakes > 0 ? wakes : 1))) packets per schedule"
  [ -n "$rx_pid" ] && line+="; receiver $(((rx1 - rx0) / count)) ns per input packet"
  echo "$line"
  if [ -n "$rx_pid" ]; then wait "$rx_pid" || true; fi
done
