#!/usr/bin/env bash
# Does a relay keep a paced stream's spacing? A sender paces one stream at fixed rates; the
# receiver behind the relay records the gaps between the kernel's receive times of consecutive
# datagrams (mcrgen recv's gap_us). On veth the receiving namespace's receive runs inside the
# relay's send, so those times are when the relay sent each datagram. Three relays:
#   kernel      the kernel's multicast forwarding (smcrouted, an (S,G) route): forwards each
#               datagram in the sender's context as it comes; the reference
#   mcrd-recv   mcrd --ingress recv: each pass sends on what arrived while the last one ran
#   mcrd-ring   mcrd --ingress ring (the default): a ring block at a time (up to the block
#               timeout, 1 ms), sent on as UDP GSO runs
# Per case: gap p10 / p50 / p90 and mean, "bunched" (the share of gaps under a quarter of the
# mean gap: ~0 for a stream that kept its spacing, most of them for one sent in bursts), and
# latency p50 / p99. For a ST 2110-21 receiver, whose buffer is sized for a narrow sender, the
# burst a relay makes matters as much as its latency.
#
#   sudo bench/harness/egress_spacing.sh [--bin DIR] [--rates LIST] [--seconds S] [--size BYTES]
#
# Defaults: build/bin, rates 10000,100000 pps, 3 s each, 1200 bytes; sender on the first
# allowed CPU, the relay and the receiver on the last (as scripts/bench.sh). Needs root, python3
# and smcrouted (the kernel case is skipped without it). A diagnostic: asserts nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/build/bin rates=10000,100000 seconds=3 size=1200
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "egress_spacing: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "egress_spacing: needs root (network namespaces)" >&2; exit 77; }
bin=$(cd "$bin" && pwd)
for b in mcrd mcrgen; do [ -x "$bin/$b" ] || { echo "egress_spacing: $bin/$b not found" >&2; exit 1; }; done
cpus=$(python3 -c 'import os; a=sorted(os.sched_getaffinity(0)); print(a[0], a[-1])')
sender_cpu=${cpus% *} relay_cpu=${cpus#* }

. "$root/tests/rig/netns.sh"
. "$root/bench/harness/mcrd_rig.sh"
rig_init egress_spacing
rig_topology
send_args=()
command -v ethtool >/dev/null || send_args=(--no-gso)
cat >"$RIG_TMP/rules.json" <<J
{"version": 1, "rules": [{"name": "spacing", "input": {"interface": "in0", "group": "239.1.1.1",
 "port": 5000}, "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "out0"}]}]}
J

# run CASE GROUP PORT: each rate once; one line per rate.
run() {
  local case=$1 group=$2 port=$3 rate count
  for rate in ${rates//,/ }; do
    count=$((rate * seconds))
    rm -f "$RIG_TMP/recv.ready"
    rig_bg rcv "recv.$case.$rate" taskset -c "$relay_cpu" "$bin/mcrgen" recv --group "$group" \
      --port "$port" --interface veth0 --expect "$count" --timeout $((seconds + 5)) --json \
      --ready-file "$RIG_TMP/recv.ready"
    local recv=$RIG_LAST_PID
    rig_wait_file "$RIG_TMP/recv.ready" 10 || rig_fail "the receiver did not start"
    rig_exec snd taskset -c "$sender_cpu" "$bin/mcrgen" send --group 239.1.1.1 --port 5000 \
      --interface veth0 --rate "$rate" --count "$count" --size "$size" --ttl 8 \
      ${send_args[@]+"${send_args[@]}"} >/dev/null 2>&1 || rig_fail "mcrgen send failed"
    wait "$recv" || true
    python3 - "$case" "$rate" "$count" "$RIG_TMP/recv.$case.$rate.log" <<'P'
import json, sys
case, rate, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
text = open(path).read()
j = json.loads(text[text.index("{"):])
g, l = j.get("gap_us") or {}, j.get("latency_us") or {}
f = lambda d, k: f"{d.get(k, float('nan')):7.1f}"
print(f"{case:10s} {rate / 1e3:6.0f}k pps  got {j['unique']:>7}/{count:<7}"
      f" gap us p10 {f(g, 'p10')} p50 {f(g, 'p50')} p90 {f(g, 'p90')} mean {f(g, 'mean')}"
      f"  bunched {100 * g.get('bunched', float('nan')):5.1f}%"
      f"  latency us p50 {f(l, 'p50')} p99 {f(l, 'p99')}")
P
  done
}

echo "egress_spacing: $size-byte datagrams, ${seconds} s per rate, sender on CPU $sender_cpu," \
  "relay and receiver on CPU $relay_cpu" >&2
if command -v smcrouted >/dev/null; then
  printf 'phyint in0 enable\nphyint out0 enable\nmroute from in0 source 10.10.1.1 group 239.1.1.1 to out0\n' \
    >"$RIG_TMP/smcroute.conf"
  rig_bg rly smcrouted taskset -c "$relay_cpu" smcrouted -n -N -f "$RIG_TMP/smcroute.conf" \
    -P "$RIG_TMP/smcroute.pid" -u "$RIG_TMP/smcroute.sock" -l notice
  smc=$RIG_LAST_PID
  routed=0
  for _ in $(seq 100); do
    rig_exec rly grep -qi 0101 /proc/net/ip_mr_cache 2>/dev/null && { routed=1; break; }
    sleep 0.05
  done
  if [ "$routed" = 1 ]; then
    run kernel 239.1.1.1 5000
  else
    echo "kernel     skipped: smcrouted installed no route: $(tail -n 2 "$RIG_TMP/smcrouted.log")" >&2
  fi
  kill "$smc"; wait "$smc" 2>/dev/null || true
else
  echo "kernel     skipped: no smcrouted" >&2
fi
for ingress in recv ring; do
  mcrd_start "$bin" "$relay_cpu" "$ingress" "$RIG_TMP/rules.json"
  run "mcrd-$ingress" 239.2.2.2 6000
  kill "$MCRD_PID"; wait "$MCRD_PID" 2>/dev/null || true
  rm -f "$RIG_TMP/mcrd.sock"
done
