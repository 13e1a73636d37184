#!/usr/bin/env bash
# mcrd shard scaling (issue 6): 1, 2, 4, 8 shards relaying >= 8 concurrent flows, each flow sent
# by its own pinned mcrgen sender and checked (loss, order) by its own receiver; per shard count
# the zero-loss rate (rate search, confirmed with >= 200k packets) and the full-blast rate.
# Target: 8 shards >= 6 x one shard's zero-loss rate, every flow in order. Writes
# OUT/shard_scaling.json and OUT/shard_scaling.png (when gnuplot is there).
#
# Meant for the 16-core test machine, which has no `ip`, socat or libraries of ours: pack them
# here with ../shared/rig/carry-netns-tools.sh, copy the checkout with .rig/, and there run
#   export PATH=$PWD/.rig/bin:$PATH
#   bench/harness/shard_scaling.sh                       (as root)
# It needs python3 (standard library only), taskset and, to turn veth UDP segmentation off,
# ethtool (without it the senders are given --no-gso so captures see wire-sized frames).
#
# Usage: bench/harness/shard_scaling.sh [options]
#   --bin DIR            mcrd, mcrctl, mcrgen (default: build/bin if built, else from PATH)
#   --out DIR            results directory (default: bench/results)
#   --shards LIST        shard counts (default 1,2,4,8)
#   --flows N            concurrent flows (default: max(8, 2 x the largest shard count))
#   --size BYTES         payload (default 1200)
#   --shard-cpus LIST    CPUs for shards, the first N used for N shards
#   --sender-cpus LIST   CPUs the senders are spread over
#   --receiver-cpus LIST CPUs the receivers are spread over
#                        defaults with C CPUs: shards on the upper half, senders on the first
#                        3/8, receivers on the rest (16 CPUs: 8-15, 0-5, 6-7)
#   --search-count N     packets per search trial, all flows (default 400000)
#   --confirm-count N    packets of the confirming run (default 800000)
#   --quick              tiny counts: checks that it runs, measures nothing
#   --mcrd-arg ARG       extra mcrd supervisor argument (repeatable)
#   --recv-arg ARG       extra mcrgen recv argument (repeatable), e.g. --recv-arg=--spin-us=200
#   --drop-captured      drop the input datagrams in the relay namespace's raw prerouting hook
#                        (nft), as packaging/nftables/mcr-drop-captured.nft does on a relay host:
#                        the senders' CPUs, which run that namespace's receive path, then no
#                        longer pay for its local delivery of the joined groups. Needs nft.
#   -h, --help           this text
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=""
out=$root/bench/results
py=()
drop_captured=0
shard_cpus="" sender_cpus="" receiver_cpus=""
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --shards) py+=(--shards "$2"); shift 2 ;;
    --flows) py+=(--flows "$2"); shift 2 ;;
    --size) py+=(--size "$2"); shift 2 ;;
    --shard-cpus) shard_cpus=$2; shift 2 ;;
    --sender-cpus) sender_cpus=$2; shift 2 ;;
    --receiver-cpus) receiver_cpus=$2; shift 2 ;;
    --search-count) py+=(--search-count "$2"); shift 2 ;;
    --confirm-count) py+=(--confirm-count "$2"); shift 2 ;;
    --quick) py+=(--search-count 4000 --confirm-count 8000 --precision 2 --max-steps 2); shift ;;
    --mcrd-arg) py+=("--mcrd-arg=$2"); shift 2 ;;
    --recv-arg) py+=("--recv-arg=$2"); shift 2 ;;
    --recv-arg=*) py+=("--recv-arg=${1#--recv-arg=}"); shift ;;
    --mcrd-arg=*) py+=("--mcrd-arg=${1#--mcrd-arg=}"); shift ;;
    --drop-captured) drop_captured=1; py+=(--drop-captured); shift ;;
    -h | --help) sed -n '2,35p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "shard_scaling: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "shard_scaling: needs root (network namespaces)" >&2; exit 77; }
for tool in ip taskset python3; do
  command -v "$tool" >/dev/null || { echo "shard_scaling: '$tool' not in PATH (PATH=\$PWD/.rig/bin:\$PATH?)" >&2; exit 1; }
done
if [ -z "$bin" ]; then
  if [ -x "$root/build/bin/mcrd" ]; then bin=$root/build/bin
  elif command -v mcrd >/dev/null; then bin=$(dirname "$(command -v mcrd)")
  else echo "shard_scaling: no mcrd (build it, or --bin DIR)" >&2; exit 1; fi
fi
bin=$(cd "$bin" && pwd)
for b in mcrd mcrctl mcrgen; do
  [ -x "$bin/$b" ] || { echo "shard_scaling: $bin/$b not found" >&2; exit 1; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)

ncpu=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
first=$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')
if [ "$ncpu" -ge 4 ]; then
  # Senders get three quarters of the lower half: each sender's CPU also carries the relay
  # namespace's receive path (veth hands the frame over in the sender's context). On the
  # 16-core machine 4 sender CPUs held 8 shards to 2.1M pps, 6 sender + 2 receiver CPUs
  # reached 2.5-3.5M, and 7 + 1 overflowed the receivers at 2M (docs/PERFORMANCE.md).
  h=$((ncpu / 2)); q=$((ncpu * 3 / 8))
  shard_cpus=${shard_cpus:-$((first + h))-$((first + ncpu - 1))}
  sender_cpus=${sender_cpus:-$first-$((first + q - 1))}
  receiver_cpus=${receiver_cpus:-$((first + q))-$((first + h - 1))}
else  # a small machine: only checks that the script runs
  shard_cpus=${shard_cpus:-$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')}
  sender_cpus=${sender_cpus:-$first}
  receiver_cpus=${receiver_cpus:-$(python3 -c 'import os; print(max(os.sched_getaffinity(0)))')}
fi

# shellcheck source=../../tests/rig/netns.sh
. "$root/tests/rig/netns.sh"
rig_init shard_scaling
rig_topology
if ! command -v ethtool >/dev/null; then
  echo "shard_scaling: no ethtool: veth UDP segmentation stays on, senders use --no-gso" >&2
  py+=(--send-arg=--no-gso)
fi
if [ "$drop_captured" -eq 1 ]; then
  command -v nft >/dev/null || { echo "shard_scaling: --drop-captured needs nft" >&2; exit 1; }
  # Every flow's input is a UDP group on in0: one rule covers them all (the shipped file lists
  # each input instead).
  ip netns exec "$(rig_nsname rly)" nft -f - <<'NFT'
table ip mcr_drop_captured {
  chain prerouting {
    type filter hook prerouting priority raw; policy accept;
    iifname "in0" ip daddr 224.0.0.0/4 meta l4proto udp counter drop
  }
}
NFT
fi
# Many groups joined per namespace, one socket each; raise the per-socket limits anyway.
for role in rly rcv; do
  ip netns exec "$(rig_nsname "$role")" sh -c 'echo 1024 > /proc/sys/net/ipv4/igmp_max_memberships' 2>/dev/null || true
done

echo "shard_scaling: shards on CPUs $shard_cpus, senders on $sender_cpus, receivers on $receiver_cpus" >&2
json=$out/shard_scaling.json
python3 "$here/shard_scaling.py" \
  --ns-snd "$(rig_nsname snd)" --ns-rly "$(rig_nsname rly)" --ns-rcv "$(rig_nsname rcv)" \
  --tmp "$RIG_TMP" --bin "$bin" --json "$json" --shard-cpus "$shard_cpus" \
  --sender-cpus "$sender_cpus" --receiver-cpus "$receiver_cpus" \
  --control-cpu "$first" "${py[@]}"
if [ "$drop_captured" -eq 1 ]; then
  # What the rule dropped, into the results: a rule that matched nothing would go unnoticed.
  ip netns exec "$(rig_nsname rly)" nft -j list table ip mcr_drop_captured | python3 -c '
import json, sys
listing = json.load(sys.stdin)
packets = sum(e["counter"]["packets"] for item in listing["nftables"] if "rule" in item
              for e in item["rule"]["expr"] if "counter" in e)
path = sys.argv[1]
d = json.load(open(path))
d["drop_captured_packets"] = packets
json.dump(d, open(path + ".tmp", "w"), indent=1)
' "$json" && mv "$json.tmp" "$json"
fi
if command -v gnuplot >/dev/null; then
  python3 "$here/plot.py" --shards "$json" "$out" || echo "shard_scaling: plotting failed" >&2
fi
echo "shard_scaling: $json" >&2
