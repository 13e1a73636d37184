#!/usr/bin/env bash
# The end-to-end benchmark in its smoke mode: `scripts/bench.sh --quick` runs every part of the
# harness (mcrd, socat and kernel forwarding side by side, the rate search, fan-out, streams,
# both ingress modes) with a few thousand packets and must leave a results JSON with figures for
# the three relays, the summary and the plots. It asserts no speed: that keeps the harness from
# rotting without making CI depend on a noisy machine's timing.
set -euo pipefail
src=${MCR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${MCR_BIN:?set MCR_BIN to the build bin directory}
# shellcheck source=../rig/netns.sh
. "$src/tests/rig/netns.sh"
rig_require_root
rig_require_tools ip socat smcrouted python3 jq taskset tcpdump
out=$(mktemp -d /tmp/mcr-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT

rc=0
"$src/scripts/bench.sh" --quick --bin "$bin" --out "$out" >"$out/bench.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
  tail -n 40 "$out/bench.log" >&2
  [ "$rc" -eq 77 ] && exit 77
  echo "FAIL: scripts/bench.sh --quick exited with $rc" >&2
  exit 1
fi
json=$out/results.json
fail() { tail -n 20 "$out/bench.log" >&2; echo "FAIL: $*" >&2; exit 1; }
[ -s "$json" ] || fail "no $json"
check() {  # check JQ_EXPR MESSAGE
  jq -e "$1" "$json" >/dev/null || fail "$2 ($1)"
}
check '.quick == true' "the run is not marked as a quick run"
for relay in mcrd kernel socat; do
  for size in 64 1200 8000; do
    check ".sizes[\"$size\"].relays[\"$relay\"] | has(\"zero_loss\") and has(\"blast\")" \
      "no $relay entry for $size-byte payloads"
    check ".sizes[\"$size\"].relays[\"$relay\"].blast.delivered_pps > 0" \
      "$relay delivered nothing at full blast with $size-byte payloads"
  done
  check ".sizes[\"1200\"].relays[\"$relay\"].cpu.runs >= 1" "no CPU figures for $relay"
done
check '.sizes["1200"].relays.mcrd.zero_loss.pps > 0' "mcrd has no zero-loss rate"
check '[.trials[] | select(.relay == "mcrd") | .in_order] | all' "mcrd reordered or duplicated"
check '(.relays["mcrd-recv"] | has("zero_loss") or has("error"))' "no --ingress recv entry"
check '[.fanout.rows[] | select(has("error") | not)] | length >= 2' "fan-out rows missing"
check '[.streams.rows[] | select(has("error") | not)] | length >= 2' "stream rows missing"
check '[.latency_vs_rate.rows[] | select(has("error") | not)] | length >= 1' "latency rows missing"
[ -s "$out/summary.md" ] || fail "no summary.md"
grep -q 'mcrd zero-loss rate' "$out/summary.md" || fail "summary.md has no targets table"
if command -v gnuplot >/dev/null; then
  for png in delivered_vs_offered cpu_per_packet latency fanout_streams; do
    [ -s "$out/$png.png" ] || fail "no $png.png"
  done
fi

# The relay's own latency from outside it (tcpdump stamps on its input and at the receiver's
# interface, --set hop_stamps=true), for mcrd in recv mode and for the kernel path beside it.
hop=$out/hop
"$src/scripts/bench.sh" --quick --bin "$bin" --out "$hop" --parts mcrd_recv --sizes 1200 \
  --no-plots --set hop_stamps=true >"$out/hop.log" 2>&1 || { tail -n 20 "$out/hop.log" >&2; fail "bench.sh with hop_stamps failed"; }
json=$hop/results.json
check '.relays["mcrd-recv"].latency.hop.samples > 0' "no hop stamps for mcrd"
check '.relays["mcrd-recv"].latency_baseline.hop.samples > 0' "no hop stamps for the kernel path"
check '[.trials[] | select(.hop_us) | .hop_us.p50 > 0 and .hop_us.p99 >= .hop_us.p50] | all' "hop figures out of order"
# The CPU gap meter behind the recv-mode tail analysis.
python3 "$src/bench/harness/cpu_gaps.py" --seconds 0.2 --json | jq -e '.lost_fraction >= 0 and .largest_us >= 0' >/dev/null ||
  fail "cpu_gaps.py gave no figures"

echo "PASS: bench.sh --quick wrote figures for mcrd, kernel and socat ($(jq -r .wall_s "$out/results.json") s), and hop stamps"
