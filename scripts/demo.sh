#!/usr/bin/env bash
# The demo: builds MCR, makes a throwaway namespace topology and relays live traffic through it.
#
#   snd (veth0 10.10.1.1) ──veth── (in0 10.10.1.2) rly (out0 10.10.2.1) ──veth── (veth0 10.10.2.2) rcv
#
# mcrgen in `snd` sends to 239.1.1.1:5000; mcrd in `rly` relays it to 239.2.2.2:6000 out of out0;
# mcrgen in `rcv` counts what arrives. Everything it creates is removed on exit, also on Ctrl-C.
# Usage: scripts/demo.sh [--rate PPS] [--seconds N]          (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rate=20000
seconds=5
while [ $# -gt 0 ]; do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Installing missing packages and building"
scripts/install-deps.sh
build=${BUILD_DIR:-build}
cmake -S . -B "$build" >/dev/null
# Only what the demo runs (the tests and benchmarks take minutes more); a failed build stops here
# rather than running binaries left from an earlier one.
if ! cmake --build "$build" -j"$(nproc)" --target mcrd mcrctl mcrgen >"$build/demo-build.log" 2>&1; then
  tail -n 40 "$build/demo-build.log" >&2
  echo "demo: the build failed (whole log: $build/demo-build.log)" >&2
  exit 1
fi
BIN=$root/$build/bin

# shellcheck source=../tests/rig/netns.sh
. tests/rig/netns.sh
rig_init demo
step "Creating namespaces snd, rly, rcv and two veth pairs"
rig_topology
ip -n "$(rig_nsname rly)" -br addr show

count=$((rate * seconds))
sock=$RIG_TMP/mcrd.sock
ctl() { rig_exec rly "$BIN/mcrctl" --socket-path "$sock" "$@"; }

step "Starting mcrd in the relay namespace (1 shard on CPU 0, metrics on 127.0.0.1:9464)"
rig_bg rly mcrd "$BIN/mcrd" supervisor --cpus 0 --control-socket-path "$sock" \
  --state-file "$RIG_TMP/state.json" --metrics-listen 127.0.0.1:9464
rig_wait_file "$sock" 10
echo "\$ mcrctl version"; ctl version

step "Adding a rule: in0 239.1.1.1:5000 -> 239.2.2.2:6000 on out0"
echo "\$ mcrctl add --input-interface in0 --input-group 239.1.1.1 --input-port 5000 --outputs 239.2.2.2:6000:out0"
ctl add --input-interface in0 --input-group 239.1.1.1 --input-port 5000 --outputs 239.2.2.2:6000:out0
echo "\$ mcrctl list"; ctl list

step "Receiver joins 239.2.2.2:6000; sender sends $count datagrams at $rate pps"
rig_bg rcv recv "$BIN/mcrgen" recv --group 239.2.2.2 --port 6000 --interface veth0 \
  --expect "$count" --timeout $((seconds + 10)) --ready-file "$RIG_TMP/ready"
recv_pid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/ready" 10
rig_bg snd send "$BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth0 \
  --rate "$rate" --count "$count" --size 1200
send_pid=$RIG_LAST_PID

# The relay's own counters, once a second, while the stream runs.
prev=0
while kill -0 "$send_pid" 2>/dev/null; do
  sleep 1
  now=$(ctl --json stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(r["packets"] for r in d["rules"]))')
  echo "relay: $((now - prev)) packets/s  (total $now)"
  prev=$now
done
wait "$recv_pid" && ok=1 || ok=0

step "What arrived at the receiver"
cat "$RIG_TMP/recv.log"
step "mcrctl stats"; ctl stats
step "mcrctl shards"; ctl shards
step "Excerpt of http://127.0.0.1:9464/metrics (inside the relay namespace)"
if rig_exec rly curl -sf http://127.0.0.1:9464/metrics >"$RIG_TMP/metrics.txt"; then
  grep -E '^mcr_(rule|output)_.*_total' "$RIG_TMP/metrics.txt" | head -n 12
else
  echo "(metrics endpoint not reachable)"
fi
step "Cleaning up"
if [ "$ok" -eq 1 ]; then echo "demo: every datagram arrived"; else echo "demo: the receiver did not get everything (see above)"; exit 1; fi
