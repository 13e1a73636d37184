#!/usr/bin/env python3
"""Reads a tracefs text trace of one CPU (sched_switch, sched_wakeup, softirq_entry/exit, as
bench/harness/cpu_trace.sh records it) and prints where that CPU's time went around a shard:

- the receiver's latency percentiles (mcrgen recv --json), for context;
- how the shard left the CPU: preempted (still runnable) or asleep, and who took the CPU;
- how long it stayed off the CPU after each, and how long each task ran at a stretch;
- stalls: stretches of more than --stall-us with no trace event at all on the CPU while the
  shard was on it. The shard's sends raise a softirq at least once per pass (every few
  microseconds in recv mode at the rates traced, once per ring block in ring mode), so silence
  while it "runs" means the CPU itself was stopped (on a VM: the hypervisor ran something else);
- what the stalls cost: packets due during them (rate x duration), against the 1% of packets
  that sets the p99.

python3 stdlib only.
"""
import argparse
import collections
import json
import re
import sys

sys.dont_write_bytecode = True

LINE = re.compile(r"^\s*(?P<comm>.+?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+\S+\s+"
                  r"(?P<ts>\d+\.\d+): (?P<event>\w+): (?P<rest>.*)$")
SWITCH = re.compile(r"prev_comm=(?P<pcomm>.+?) prev_pid=(?P<ppid>\d+) prev_prio=\d+ "
                    r"prev_state=(?P<pstate>\S+) ==> next_comm=(?P<ncomm>.+?) next_pid=(?P<npid>\d+)")


def pct(values, p):
    v = sorted(values)
    return v[int(p * (len(v) - 1))] if v else 0.0


def dist(values) -> str:
    if not values:
        return "n=0"
    return (f"n={len(values)} p50={pct(values, .5):.0f} p90={pct(values, .9):.0f} "
            f"p99={pct(values, .99):.0f} max={max(values):.0f} µs, total {sum(values) / 1e3:.1f} ms")


def analyse(path: str, shard: str, cpu: int, stall_us: float):
    runs = collections.defaultdict(list)   # comm -> stretch lengths on the CPU (µs)
    left = collections.Counter()            # "preempted"/"slept" -> count
    taken_by = collections.Counter()        # comm that took the CPU from a preempted shard
    off = {"preempted": [], "slept": []}    # µs off the CPU after each
    stalls = []                             # (µs, comm running)
    first = last = None
    cur = {"pid": None, "comm": None, "start": None}
    shard_out = {"t": None, "how": None}

    def switch(t, pid, comm, prev_state=None):
        """The CPU passes from cur to pid at t (prev_state: how cur left, when traced)."""
        if cur["start"] is not None and cur["comm"]:
            runs[cur["comm"]].append(t - cur["start"])
        if cur["pid"] == shard and prev_state is not None:
            how = "preempted" if prev_state.startswith("R") else "slept"
            left[how] += 1
            if how == "preempted":
                taken_by[comm] += 1
            shard_out["t"], shard_out["how"] = t, how
        if pid == shard and shard_out["t"] is not None:
            off[shard_out["how"]].append(t - shard_out["t"])
            shard_out["t"] = None
        cur["pid"], cur["comm"], cur["start"] = pid, comm, t

    for line in open(path, errors="replace"):
        m = LINE.match(line)
        if not m or int(m["cpu"]) != cpu:
            continue
        t = float(m["ts"]) * 1e6
        # Silence counts as a stall only while the shard was on the CPU: its sends raise a
        # softirq at least once per pass, so it cannot run that long without an event. (An idle
        # CPU has nothing to trace, and the receiver may well run a while without one.)
        if last is not None and t - last > stall_us and cur["pid"] == shard:
            stalls.append((t - last, cur["comm"]))
        first = t if first is None else first
        last = t
        # Every event names the task it ran in. Switches away from the idle task are not traced
        # on every kernel (none are on the 6.18 VMs this was written on): the first event of
        # another task after idle is where that task got the CPU (at the latest).
        if cur["pid"] == "0" and m["pid"] != "0":
            switch(t, m["pid"], m["comm"])
        if m["event"] != "sched_switch":
            continue
        sw = SWITCH.search(m["rest"])
        if not sw:
            continue
        if cur["pid"] is None:
            cur["pid"], cur["comm"] = sw["ppid"], sw["pcomm"]
        switch(t, sw["npid"], "idle" if sw["npid"] == "0" else sw["ncomm"], sw["pstate"])
    return dict(runs=runs, left=left, taken_by=taken_by, off=off, stalls=stalls,
                span=(last - first) if first is not None else 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", required=True)
    ap.add_argument("--shard-tid", required=True)
    ap.add_argument("--cpu", type=int, required=True)
    ap.add_argument("--rate", type=float, default=0, help="packets per second sent")
    ap.add_argument("--receiver-json", help="mcrgen recv --json output (its last JSON object)")
    ap.add_argument("--stall-us", type=float, default=500)
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    print(f"cpu_trace: {a.label}; CPU {a.cpu}")
    if a.receiver_json:
        text = open(a.receiver_json, errors="replace").read()
        start = 0 if text.startswith("{") else text.find("\n{") + 1
        try:
            rx, _ = json.JSONDecoder().raw_decode(text[start:]) if start >= 0 else ({}, 0)
            lat = rx.get("latency_us") or (rx.get("streams") or [{}])[0].get("latency_us", {})
            print(f"receiver: {rx.get('received', '?')} received, {rx.get('lost', '?')} lost; "
                  f"latency p50 {lat.get('p50', '?')}, p99 {lat.get('p99', '?')}, "
                  f"max {lat.get('max', '?')} µs")
        except ValueError:
            print("receiver: no JSON summary found")
    r = analyse(a.trace, a.shard_tid, a.cpu, a.stall_us)
    if r["span"] <= 0:
        print("no events on that CPU in the trace")
        return 1
    print(f"trace: {r['span'] / 1e6:.2f} s")
    print(f"shard left the CPU: {r['left']['preempted']} times preempted, "
          f"{r['left']['slept']} times asleep; preempted by {dict(r['taken_by'].most_common(4))}")
    for how in ("preempted", "slept"):
        print(f"  off the CPU after being {how}: {dist(r['off'][how])}")
    print("on the CPU at a stretch (top 6 by total):")
    for comm, v in sorted(r["runs"].items(), key=lambda kv: -sum(kv[1]))[:6]:
        print(f"  {comm}: {dist(v)}")
    stalls = sorted(r["stalls"], reverse=True)
    total = sum(d for d, _ in stalls)
    print(f"stalls (no event on the CPU for > {a.stall_us:.0f} µs, the shard on it): {len(stalls)}, "
          f"{total / 1e3:.1f} ms in all; longest {[round(d) for d, _ in stalls[:8]]} µs")
    if a.rate and r["span"]:
        due = a.rate * total / 1e6
        one_percent = a.rate * r["span"] / 1e6 / 100
        print(f"packets due during stalls: {due:.0f}, each delayed by up to its stall; 1% of the "
              f"packets (what sets the p99) is {one_percent:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
