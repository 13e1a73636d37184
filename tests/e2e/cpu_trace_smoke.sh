#!/usr/bin/env bash
# bench/harness/cpu_trace.sh in a one-second run, so it cannot rot: it must trace the shard
# (some switches out, the receiver's summary read), trace in a tracefs instance of its own and
# remove it, leaving the global trace settings as they were. It asserts no speed and no latency.
set -euo pipefail
src=${MCR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${MCR_BIN:?set MCR_BIN to the build bin directory}
# shellcheck source=../rig/netns.sh
. "$src/tests/rig/netns.sh"
rig_require_root "network namespaces and tracefs"
rig_require_tools ip python3 taskset
T=/sys/kernel/tracing
[ -w "$T/tracing_on" ] || rig_skip "no writable tracefs at $T"
log=$(mktemp /tmp/mcr-cpu-trace.XXXXXX)
trap 'rm -f "$log"' EXIT
state() {  # the global settings it must not touch, and any instance of its own left behind
  cat "$T/tracing_on" "$T/tracing_cpumask" "$T/buffer_size_kb" "$T/events/sched/sched_switch/enable" \
    "$T/events/sched/sched_wakeup/enable" "$T/events/irq/softirq_entry/enable"
  ls -d "$T"/instances/mcr-cpu-trace.* 2>/dev/null || true
}
before=$(state)
rc=0
"$src/bench/harness/cpu_trace.sh" --bin "$bin" --rate 20000 --seconds 1 >"$log" 2>&1 || rc=$?
cat "$log" >&2
[ "$rc" -ne 77 ] || { echo "SKIP: cpu_trace.sh could not run here" >&2; exit 77; }
[ "$rc" -eq 0 ] || { echo "FAIL: cpu_trace.sh exited with $rc" >&2; exit 1; }
grep -qE '^receiver: [1-9][0-9]* received' "$log" || { echo "FAIL: no receiver summary" >&2; exit 1; }
line=$(grep -E '^shard left the CPU: [0-9]+ times preempted, [0-9]+ times asleep' "$log" || true)
[ -n "$line" ] || { echo "FAIL: no shard summary" >&2; exit 1; }
n=$(echo "$line" | sed -E 's/.*: ([0-9]+) times preempted, ([0-9]+) times asleep.*/\1 + \2/')
[ $((n)) -gt 0 ] || { echo "FAIL: the trace never saw the shard leave the CPU" >&2; exit 1; }
grep -qE '^stalls \(no event on the CPU' "$log" || { echo "FAIL: no stall summary" >&2; exit 1; }
[ "$(state)" = "$before" ] || { echo "FAIL: tracefs settings changed or instance left" >&2; exit 1; }
echo "PASS: cpu_trace.sh traced the shard and left tracefs as it was"
