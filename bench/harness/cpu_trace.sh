#!/usr/bin/env bash
# Where the relay CPU's time goes while mcrd relays a paced stream: a scheduler trace of that CPU
# (tracefs: sched_switch, sched_wakeup, softirq entry/exit), read by cpu_trace.py. It answers
# the questions behind a latency tail: who preempts the shard and for how long, how long the
# shard runs, and whether the CPU stopped altogether (no trace event at all for milliseconds
# while the shard "ran": the hypervisor took the vCPU away, which /proc/stat's steal column does
# not show on these VMs).
#
# Same placement as scripts/bench.sh: sender on the first allowed CPU; mcrd (shard and control
# thread) and the receiver on the last. One rule in0 239.1.1.1:5000 -> out0 239.2.2.2:6000.
#
#   sudo bench/harness/cpu_trace.sh [--bin DIR] [--rate PPS] [--seconds S] [--size BYTES]
#                                   [--ingress ring|recv] [--mcrd-arg ARG]... [--keep FILE]
#                                   [--receiver-cpu N] [--event SUBSYS/NAME]...
#
# Defaults: build/bin, 180000 pps, 3 s, 1200 bytes, recv. --keep FILE saves the raw trace.
# --receiver-cpu N puts the receiver elsewhere (N = the sender's CPU leaves the shard alone on
# its CPU); --event adds a tracefs event (e.g. irq_vectors/local_timer_entry) to the raw trace.
# Needs root and tracefs (/sys/kernel/tracing); exits 77 without them. Traces in a tracefs
# instance of its own, removed on exit: the global trace settings are not touched. Measures
# nothing by itself that a test should assert: it is a diagnostic.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=build/bin rate=180000 seconds=3 size=1200 ingress=recv keep="" mcrd_args=() receiver_cpu=""
extra_events=()
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --ingress) ingress=$2; shift 2 ;;
    --mcrd-arg) mcrd_args+=("$2"); shift 2 ;;
    --mcrd-arg=*) mcrd_args+=("${1#--mcrd-arg=}"); shift ;;
    --keep) keep=$2; shift 2 ;;
    --receiver-cpu) receiver_cpu=$2; shift 2 ;;
    --event) extra_events+=("$2"); shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "cpu_trace: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "cpu_trace: needs root (namespaces, tracefs)" >&2; exit 77; }
T=/sys/kernel/tracing
[ -w "$T/tracing_on" ] || { echo "cpu_trace: no writable tracefs at $T" >&2; exit 77; }
bin=$(cd "$bin" && pwd)
for b in mcrd mcrgen; do [ -x "$bin/$b" ] || { echo "cpu_trace: $bin/$b not found" >&2; exit 1; }; done
cpus=$(python3 -c 'import os; a=sorted(os.sched_getaffinity(0)); print(a[0], a[-1])')
sender_cpu=${cpus% *} relay_cpu=${cpus#* }
receiver_cpu=${receiver_cpu:-$relay_cpu}

# A private tracefs instance: its own buffer, CPU mask and events, removed on exit, so whatever
# else uses tracefs on this machine is left alone.
inst=$T/instances/mcr-cpu-trace.$$
events=(sched/sched_switch sched/sched_wakeup irq/softirq_entry irq/softirq_exit "${extra_events[@]}")
trace_remove() {
  [ -d "$inst" ] || return 0
  echo 0 >"$inst/tracing_on" 2>/dev/null
  for e in "${events[@]}"; do echo 0 >"$inst/events/$e/enable" 2>/dev/null; done
  rmdir "$inst" 2>/dev/null || echo "cpu_trace: could not remove $inst" >&2
}

. "$root/tests/rig/netns.sh"
. "$root/bench/harness/mcrd_rig.sh"
rig_init cpu_trace
# rig_init's EXIT trap tears the rig down; remove the instance first, keeping the exit status
# (set +e: a failing step of the clean-up must not cut it short).
trap 'rc=$?; set +e; trace_remove; (exit "$rc"); rig_teardown' EXIT
mkdir "$inst" || rig_fail "cannot create a tracefs instance at $inst"
rig_topology
cat >"$RIG_TMP/rules.json" <<'EOF'
{"version": 1, "rules": [{"name": "trace", "input": {"interface": "in0", "group": "239.1.1.1",
 "port": 5000}, "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "out0"}]}]}
EOF
mcrd_start "$bin" "$relay_cpu" "$ingress" "$RIG_TMP/rules.json" "${mcrd_args[@]}"
shard=$(basename "$MCRD_SHARD_TASK")
rig_bg rcv rx taskset -c "$receiver_cpu" "$bin/mcrgen" recv --group 239.2.2.2 --port 6000 \
  --interface veth0 --timeout $((seconds * 3 + 10)) --idle-exit 1 --json \
  --ready-file "$RIG_TMP/ready"
rx_pid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/ready" 10 || rig_fail "receiver did not get ready"

echo 0 >"$inst/tracing_on"
# The CPU mask in tracefs's format: 32-bit hex groups, most significant first, comma-separated.
# Written in one write(): tracefs parses each write on its own, and a lone newline is mask 0.
mask=$(python3 -c 'import sys; c = int(sys.argv[1]); n = c // 32 + 1
print(",".join("%08x" % ((1 << c) >> (32 * i) & 0xffffffff) for i in reversed(range(n))))' \
  "$relay_cpu")
echo "$mask" >"$inst/tracing_cpumask"
echo 65536 >"$inst/per_cpu/cpu$relay_cpu/buffer_size_kb"  # ~8 bytes x 4 events per packet
for e in "${events[@]}"; do echo 1 >"$inst/events/$e/enable"; done
echo 1 >"$inst/tracing_on"
rig_exec snd taskset -c "$sender_cpu" "$bin/mcrgen" send --group 239.1.1.1 --port 5000 \
  --interface veth0 --rate "$rate" --count $((rate * seconds)) --size "$size" --ttl 8 >/dev/null
echo 0 >"$inst/tracing_on"
trace=${keep:-$RIG_TMP/cpu.trace}
cat "$inst/trace" >"$trace"
wait "$rx_pid" || true
python3 "$root/bench/harness/cpu_trace.py" --trace "$trace" --shard-tid "$shard" \
  --receiver-json "$RIG_TMP/rx.log" --rate "$rate" --cpu "$relay_cpu" \
  --label "mcrd --ingress $ingress ${mcrd_args[*]}, $rate pps x $seconds s, $size B"
