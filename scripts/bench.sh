#!/usr/bin/env bash
# MCR's end-to-end benchmark: mcrd, socat and the kernel's multicast forwarding (smcroute) relay
# the same traffic over the same namespace topology, one after the other:
#
#   snd (veth0 10.10.1.1) --veth-- (in0 10.10.1.2) rly (out0 10.10.2.1) --veth-- (veth0 10.10.2.2) rcv
#
# Measures per payload (64, 1200, 8000 bytes) and relay: delivered rate at full blast, zero-loss
# rate, relay CPU and whole-machine CPU per packet, latency at half the zero-loss rate; then mcrd
# alone: fan-out, concurrent streams, latency against rate, --ingress recv. Writes
# OUT/results.json, OUT/summary.md and PNG plots. docs/PERFORMANCE.md explains the method.
#
# Usage: scripts/bench.sh [options]                        (as root; exit 77 without root)
#   --quick            smoke run of a few seconds (few packets, no thresholds; what ctest runs)
#   --build-dir DIR    build tree whose bin/ holds mcrd, mcrctl, mcrgen (default: build;
#                      configured and built if the binaries are missing)
#   --bin DIR          use the binaries in DIR instead (no build)
#   --out DIR          results directory (default: bench/results; with --quick: DIR/bench-quick
#                      under the build directory)
#   --cpus LIST        CPUs of mcrd's shards, taskset syntax (default: the last CPU); socat and
#                      smcrouted are pinned to the same CPUs
#   --shards N         N shards on the last N CPUs (instead of --cpus)
#   --sender-cpu N     CPU of the sender (default: the first CPU not used by the relay)
#   --receiver-cpu N   CPU of the receiver (default: the relay's first CPU; see PERFORMANCE.md)
#   --sizes LIST       payload sizes, comma-separated (default 64,1200,8000)
#   --parts LIST       subset of comparison,sweep,mcrd_recv,latency_vs_rate,fanout,streams
#   --set KEY=VALUE    override a value of the measurement plan (bench/harness/bench.py)
#   --mcrd-arg ARG     extra mcrd supervisor argument, repeatable (e.g. --mcrd-arg=--ring-block-size=64K)
#   --egress-uso       turn UDP segmentation offload on for the relay's output veth (out0), as on
#                      an egress NIC with USO: mcrd's GSO sends then cross it as one packet
#                      (the kernel path and socat send single datagrams either way)
#   --no-plots         skip the PNGs
#   -h, --help         this text
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start_s=$(date +%s)
command_line="scripts/bench.sh $*"

quick=0
build=build
bin=""
out=""
cpus=""
shards=""
sender_cpu=""
receiver_cpu=""
plots=1
egress_uso=0
py_args=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1; shift ;;
    --build-dir) build=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --sender-cpu) sender_cpu=$2; shift 2 ;;
    --receiver-cpu) receiver_cpu=$2; shift 2 ;;
    --sizes) py_args+=(--sizes "$2"); shift 2 ;;
    --parts) py_args+=(--parts "$2"); shift 2 ;;
    --set) py_args+=(--set "$2"); shift 2 ;;
    --mcrd-arg) py_args+=("--mcrd-arg=$2"); shift 2 ;;
    --mcrd-arg=*) py_args+=("--mcrd-arg=${1#--mcrd-arg=}"); shift ;;
    --no-plots) plots=0; shift ;;
    --egress-uso) egress_uso=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: needs root (it builds network namespaces); skipping" >&2
  exit 77
fi
for tool in ip taskset python3 socat smcrouted; do
  command -v "$tool" >/dev/null || { echo "bench: '$tool' is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

if [ -z "$bin" ]; then
  bin=$build/bin
  if [ ! -x "$bin/mcrd" ] || [ ! -x "$bin/mcrctl" ] || [ ! -x "$bin/mcrgen" ]; then
    echo "bench: building $build (binaries missing)" >&2
    cmake -S "$root" -B "$build" >/dev/null
    cmake --build "$build" -j "$(nproc)" --target mcrd mcrctl mcrgen
  fi
fi
bin=$(cd "$bin" && pwd)
for b in mcrd mcrctl mcrgen; do
  [ -x "$bin/$b" ] || { echo "bench: $bin/$b not found" >&2; exit 1; }
done
if [ -z "$out" ]; then
  if [ "$quick" -eq 1 ]; then out=$(dirname "$bin")/bench-quick; else out=$root/bench/results; fi
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)

# CPU placement. The relay gets its own CPU(s); the sender another. The receiver shares the
# relay's CPU: with it on the sender's CPU, the kernel path (which runs entirely in the sender's
# context) would have one CPU for everything. docs/PERFORMANCE.md discusses the choice.
allowed=$(python3 -c 'import os; print(",".join(map(str, sorted(os.sched_getaffinity(0)))))')
if [ -z "$cpus" ]; then
  n=${shards:-1}
  cpus=$(python3 -c "a=[int(x) for x in '$allowed'.split(',')]; print(','.join(map(str, a[-$n:])))")
fi
expand() { python3 - "$1" <<'EOF'
import sys
out = []
for part in sys.argv[1].split(","):
    step = 1
    if ":" in part:
        part, s = part.split(":"); step = int(s)
    a, _, b = part.partition("-")
    out += range(int(a), int(b or a) + 1, step)
print(",".join(map(str, out)))
EOF
}
relay_list=$(expand "$cpus")
first_relay=${relay_list%%,*}
if [ -z "$sender_cpu" ]; then
  sender_cpu=$(python3 -c "
a=[int(x) for x in '$allowed'.split(',')]; r={int(x) for x in '$relay_list'.split(',')}
print(next((c for c in a if c not in r), a[0]))")
fi
receiver_cpu=${receiver_cpu:-$first_relay}

# shellcheck source=../tests/rig/netns.sh
. "$root/tests/rig/netns.sh"
rig_init bench
rig_topology
jumbo() { ip -n "$(rig_nsname "$1")" link set "$2" mtu 9000; }  # 8000-byte payloads, unfragmented
jumbo snd veth0; jumbo rly in0; jumbo rly out0; jumbo rcv veth0
command -v ethtool >/dev/null ||
  echo "bench: ethtool missing: veth UDP segmentation stays on and captures see super-packets" >&2
if [ "$egress_uso" -eq 1 ]; then
  ip netns exec "$(rig_nsname rly)" ethtool -K out0 tx-udp-segmentation on >/dev/null
  py_args+=(--egress-uso)
fi

json=$out/results.json
[ "$quick" -eq 1 ] && py_args+=(--quick)
echo "bench: relay on CPU(s) $cpus, sender on CPU $sender_cpu, receiver on CPU $receiver_cpu; results in $out" >&2
set +e
python3 "$root/bench/harness/bench.py" \
  --ns-snd "$(rig_nsname snd)" --ns-rly "$(rig_nsname rly)" --ns-rcv "$(rig_nsname rcv)" \
  --tmp "$RIG_TMP" --bin "$bin" --source "$root" --json "$json" \
  --sender-cpu "$sender_cpu" --receiver-cpu "$receiver_cpu" --relay-cpus "$cpus" \
  --control-cpu "$first_relay" --command-line "$command_line" "${py_args[@]}"
rc=$?
set -e
[ "$rc" -eq 0 ] || { echo "bench: the measurement failed (exit $rc)" >&2; exit "$rc"; }

python3 "$root/bench/harness/report.py" "$json" >"$out/summary.md"
if [ "$plots" -eq 1 ]; then
  if command -v gnuplot >/dev/null; then
    python3 "$root/bench/harness/plot.py" "$json" "$out" || echo "bench: plotting failed" >&2
  else
    echo "bench: gnuplot not installed: no plots" >&2
  fi
fi
cat "$out/summary.md"
echo "bench: done in $(( $(date +%s) - start_s )) s; $json" >&2
