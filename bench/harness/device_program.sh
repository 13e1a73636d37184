#!/usr/bin/env bash
# What to run on the 16-core test machine the next time it is lent, as one call. The loan is 15
# minutes per session, start-up included, so the program keeps to a time budget: each step runs
# only if its estimate fits what is left, in order of what the performance issue still lacks.
#
#   1. Shard scaling with the default placement, three ways, twice, interleaved: as built (the
#      relay namespace joins the input groups, so its IP stack also receives and drops every
#      datagram), with --membership link (mcrd keeps the groups at the link layer and speaks
#      IGMP itself: no IP membership, the datagrams stop at the IP stack's first multicast check)
#      and with --drop-captured (nft drops the input groups in the relay namespace's raw
#      prerouting hook, as packaging/nftables/mcr-drop-captured.nft does on a relay host). The
#      senders' CPUs run that namespace's receive path and set the 8-shard figure; on the 2-CPU
#      VM, with mcrd relaying, link mode took 230-280 ns and the nft rule 250-300 ns off each
#      datagram there (bench/harness/input_cost.sh). A triple runs only if all three fit; the
#      nft run needs nft in the carry.
#   2. If time is left: one shard, 16 flows, default against --busy-poll-us=50, interleaved.
#   3. If time is left: the 2-CPU targets where nothing shares a CPU: scripts/bench.sh at 1200
#      bytes, mcrd, the kernel path and socat, relay / sender / receiver each on a CPU of its
#      own (measured once, eighth session; docs/PERFORMANCE.md). At --budget 480 it does not
#      fit after steps 1 and 2 (about 380 s together).
#
# Prepare here (binaries and tools with their libraries; .rig/ is git-ignored and travels only
# when named in the call's carry list):
#   ../shared/rig/carry-netns-tools.sh .rig build/bin/mcrd build/bin/mcrctl build/bin/mcrgen \
#       /usr/sbin/ethtool /usr/bin/tcpdump /usr/sbin/nft
# With tcpdump there, step 3's latency trials also time the relay's own share from outside it
# (--set hop_stamps=true: tcpdump stamps on its input and at the receiver's interface).
# There, as root, in the checkout:
#   bench/harness/device_program.sh --bin .rig/bin --out "$OUT" --budget 480
# Everything lands in OUT/results.tgz plus OUT/log.txt (the call returns at most 8 files).
#
# Usage: bench/harness/device_program.sh [--bin DIR] [--out DIR] [--budget SECONDS] [--tiny]
#   --tiny   seconds-long versions of every step, to check the program on any machine
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="" out="" budget=480 tiny=0
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --tiny) tiny=1; shift ;;
    -h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "device_program: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "device_program: needs root (network namespaces)" >&2; exit 77; }
[ -n "$bin" ] && [ -n "$out" ] || { echo "device_program: --bin and --out are required" >&2; exit 2; }
[ -d "$root/.rig/bin" ] && export PATH=$root/.rig/bin:$PATH
bin=$(cd "$bin" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/mcr-device.XXXXXX)
exec > >(tee "$out/log.txt") 2>&1
t0=$(date +%s)
left() { echo $((budget - ($(date +%s) - t0))); }

pack() { tar czf "$out/results.tgz" -C "$work" . 2>/dev/null; }
trap 'pack; rm -rf "$work"' EXIT

# step NAME ESTIMATE_S CAP_S COMMAND...: runs COMMAND if ESTIMATE_S fits what is left, stopped
# after CAP_S (or when the budget ends) so that one slow step cannot take the later ones' time.
# bench.py and shard_scaling.py write their JSON after every trial: a stopped step keeps what it
# measured.
step() {
  local name=$1 est=$2 cap=$3; shift 3
  local l; l=$(left)
  if [ "$l" -lt "$est" ]; then
    echo "== skip $name: needs ~${est}s, ${l}s left"
    return
  fi
  [ "$cap" -lt "$l" ] && l=$cap
  echo "== $name ($(($(date +%s) - t0)) s in, up to ${l}s): $*"
  timeout -k 5 "$l" "$@"
  echo "== $name rc=$? ($(($(date +%s) - t0)) s in)"
  pack
}

{
  date -u; uname -a; nproc; lscpu 2>/dev/null | grep -E 'Model name|Core|Thread|NUMA'
  head -1 /proc/stat
  sysctl net.core.rmem_max net.core.netdev_max_backlog 2>/dev/null
  for t in ip socat smcrouted ethtool tcpdump nft taskset python3 gnuplot; do
    printf '%s: %s\n' "$t" "$(command -v "$t" || echo missing)"
  done
} | tee "$work/facts.txt"

ncpu=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
first=$(python3 -c 'import os; print(min(os.sched_getaffinity(0)))')
h=$((ncpu / 2)); q=$((ncpu * 3 / 8))
relay_cpu=$((first + h)) sender_cpu=$first receiver_cpu=$((first + q))
if [ "$ncpu" -lt 4 ]; then relay_cpu=$((first + ncpu - 1)) sender_cpu=$first receiver_cpu=$relay_cpu; fi

if [ "$tiny" -eq 1 ]; then
  bench_args=(--quick) scaling_args=(--quick --shards 1,2) one=(--quick --shards 1)
  est_bench=60 est_scaling=30 est_one=15 cap_bench=120 cap_scaling=60 cap_one=30
else
  bench_args=(--set rounds=1) scaling_args=() one=(--shards 1 --flows 16)
  est_bench=200 est_scaling=55 est_one=25 cap_bench=240 cap_scaling=70 cap_one=40
fi
command -v tcpdump >/dev/null && bench_args+=(--set hop_stamps=true)

# 1. Shard scaling, default placement: as built, link-layer membership, nft drop; interleaved.
for i in 1 2; do
  n=2
  command -v nft >/dev/null && n=3
  if [ "$(left)" -lt $((n * est_scaling)) ]; then
    echo "== skip scaling triple $i: needs ~$((n * est_scaling))s, $(left)s left"
    continue
  fi
  step "scaling-$i" "$est_scaling" "$cap_scaling" "$here/shard_scaling.sh" --bin "$bin" \
    --out "$work/scaling-$i" "${scaling_args[@]}"
  step "scaling-link-$i" "$est_scaling" "$cap_scaling" "$here/shard_scaling.sh" --bin "$bin" \
    --out "$work/scaling-link-$i" "${scaling_args[@]}" --mcrd-arg=--membership=link
  if command -v nft >/dev/null; then
    step "scaling-drop-$i" "$est_scaling" "$cap_scaling" "$here/shard_scaling.sh" --bin "$bin" \
      --out "$work/scaling-drop-$i" "${scaling_args[@]}" --drop-captured
  else
    echo "== skip scaling-drop-$i: no nft (carry /usr/sbin/nft)"
  fi
done
# 2. One shard: busy polling against none, interleaved, steal recorded per trial.
step one-shard-default "$est_one" "$cap_one" "$here/shard_scaling.sh" --bin "$bin" \
  --out "$work/one-default" "${one[@]}"
step one-shard-busy-poll "$est_one" "$cap_one" "$here/shard_scaling.sh" --bin "$bin" \
  --out "$work/one-busy-poll" "${one[@]}" --mcrd-arg=--busy-poll-us=50
# 3. The comparison at 1200 bytes with relay, sender and receiver on CPUs of their own.
step bench "$est_bench" "$cap_bench" "$root/scripts/bench.sh" --bin "$bin" --out "$work/bench" --no-plots \
  --sizes 1200 --parts comparison,mcrd_recv,latency_vs_rate,fanout \
  --cpus "$relay_cpu" --sender-cpu "$sender_cpu" --receiver-cpu "$receiver_cpu" "${bench_args[@]}"
echo "== done ($(($(date +%s) - t0)) s): $out/results.tgz"
