#!/usr/bin/env python3
"""cpu_gaps.py: how long a CPU is taken away from a thread that never sleeps.

Pins itself to one CPU, reads CLOCK_MONOTONIC in a tight loop for a while and counts the gaps
between consecutive reads: anything beyond the loop's own ~0.1-0.3 us is time the thread did not
run — interrupts and softirqs on that CPU, other threads, or, on a virtual machine, the hypervisor
running something else (steal time that these VMs' /proc/stat does not report). A relay's shard
on that CPU loses the same time, and every packet in flight waits it out; a sender's CPU losing
time delays no packet (none is created meanwhile). That asymmetry is why the recv-mode latency
tail is measured against the kernel path with care (docs/PERFORMANCE.md).

Usage: bench/harness/cpu_gaps.py [--cpu N] [--seconds S] [--json]
Prints the number of gaps per size class (each gap counted once, in the largest class it
reaches), the largest gap and the share of the time lost in gaps of 10 us or more.
"""
import argparse
import json
import os
import sys
import time

CLASSES_US = [10, 20, 50, 100, 200, 500, 1000, 5000]


def measure(cpu: int, seconds: float) -> dict:
    os.sched_setaffinity(0, {cpu})
    now = time.monotonic_ns
    counts = [0] * len(CLASSES_US)
    lost = largest = 0
    start = prev = now()
    end = start + int(seconds * 1e9)
    floor = CLASSES_US[0] * 1000
    while prev < end:
        t = now()
        gap = t - prev
        if gap >= floor:
            lost += gap
            largest = max(largest, gap)
            us = gap / 1000
            i = len(CLASSES_US) - 1
            while CLASSES_US[i] > us:
                i -= 1
            counts[i] += 1
        prev = t
    return {"cpu": cpu, "seconds": seconds,
            "gaps": {f">={c}us": n for c, n in zip(CLASSES_US, counts)},
            "largest_us": round(largest / 1000, 1),
            "lost_fraction": round(lost / (prev - start), 5)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = measure(a.cpu, a.seconds)
    if a.json:
        print(json.dumps(r))
    else:
        gaps = ", ".join(f"{k} {v}" for k, v in r["gaps"].items())
        print(f"cpu {r['cpu']}, {r['seconds']} s: gaps {gaps}; largest {r['largest_us']} us; "
              f"time lost in gaps >= 10 us: {100 * r['lost_fraction']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
