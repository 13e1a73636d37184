#!/usr/bin/env python3
"""Shard scaling of mcrd (driven by bench/harness/shard_scaling.sh, which builds the namespaces).

For each shard count: mcrd on that many shard CPUs relays F flows (F >= 8), each sent by its own
pinned mcrgen sender and received by its own pinned mcrgen receiver, so every flow's loss and
order are checked on its own. The flow set is chosen once, with mcrd running the largest shard
count, so that every shard owns the same number of flows (mcrctl reports each rule's shard); a
set balanced over 8 shards is balanced over 4, 2 and 1 as well. Per shard count: full-blast
delivered rate and the zero-loss rate (the same search as scripts/bench.sh), every flow in order.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (USER_HZ, Flow, Mcrd, Proc, RelayUnavailable, Rig, background_busy,  # noqa: E402
                      host_info, ip_add, log, proc_sched_ns, read_cpu_idle, search_zero_loss)


def cpu_list(text: str) -> list:
    out = []
    for part in text.split(","):
        step = 1
        if ":" in part:
            part, s = part.split(":")
            step = int(s)
        a, _, b = part.partition("-")
        out += range(int(a), int(b or a) + 1, step)
    return out


def choose_flows(rig: Rig, args, shard_cpus: list, n_shards: int, n_flows: int) -> list:
    """Flows (in group, in port) balanced over n_shards, by asking mcrd where candidates land."""
    per = -(-n_flows // n_shards)
    cands = [Flow(ip_add("239.10.0.1", i), 5000 + i, [(ip_add("239.20.0.1", i), 6000 + i)])
             for i in range(max(8 * n_flows, 64))]
    relay = Mcrd(rig, ",".join(map(str, shard_cpus[:n_shards])), args.control_cpu, "ring",
                 args.mcrd_arg)
    relay.start(cands)
    try:
        rules = relay.ctl("list")["rules"]
    finally:
        relay.stop()
    shard_of = {}
    for r in rules:
        name = r.get("id") or r.get("name")
        if name and name.startswith("bench"):
            shard_of[int(name[5:])] = r["shard"]
    chosen, count = [], {}
    for i, f in enumerate(cands):
        s = shard_of.get(i)
        if s is None or count.get(s, 0) >= per:
            continue
        count[s] = count.get(s, 0) + 1
        chosen.append(f)
        if len(chosen) == per * n_shards:
            break
    # Outputs renumbered densely so that flow j is received on 239.20.0.1+j : 6000+j.
    return [Flow(f.in_group, f.in_port, [(ip_add("239.20.0.1", j), 6000 + j)])
            for j, f in enumerate(chosen)]


def run_multi(rig: Rig, relay: Mcrd, flows: list, args, rate: float, count: int, kind: str,
              abort_on_loss: bool = True) -> dict:
    """All flows at once: one receiver and one sender per flow, pinned round robin."""
    f_n = len(flows)
    per_rate = int(rate / f_n) if rate else 0
    per_count = max(1, count // f_n)
    est = per_count / per_rate if per_rate else per_count / 100_000
    mcrgen = rig.tool("mcrgen")
    recvs, readies = [], []
    for j, f in enumerate(flows):
        g, p = f.outputs[0]
        ready = rig.unique("ready")
        readies.append(ready)
        recvs.append(Proc(rig.cmd("rcv", [mcrgen, "recv", "--group", g, "--port", p, "--interface",
                                          "veth0", "--expect", per_count, "--timeout",
                                          f"{est * 2 + 10:.1f}", "--idle-exit", 0.5, "--json",
                                          "--ready-file", ready, *args.recv_arg],
                                  args.receiver_cpus[j % len(args.receiver_cpus)]),
                          rig.unique("recv.json")))
    end = time.monotonic() + 20
    while not all(os.path.exists(r) for r in readies):
        if time.monotonic() > end or any(r.poll() is not None for r in recvs):
            for r in recvs:
                r.stop()
            raise RuntimeError("receivers did not get ready")
        time.sleep(0.01)
    before = relay.counters()
    rcv0 = rig.udp("rcv").get("RcvbufErrors", 0)
    # The relay namespace's own IP stack: with the default membership it receives every input
    # datagram and drops it (no socket wants the input port), counted as IgnoredMulti; with
    # --membership link or --drop-captured it should not see them at all.
    ign0 = rig.udp("rly").get("IgnoredMulti", 0)
    pid = relay.pids()[0]
    r_ns0 = proc_sched_ns(pid) or 0
    cpu0 = read_cpu_idle()
    t0 = time.monotonic()
    sends = [Proc(rig.cmd("snd", [mcrgen, "send", "--group", f.in_group, "--port", f.in_port,
                                  "--interface", "veth0", "--rate", per_rate, "--count", per_count,
                                  "--size", args.size, "--ttl", 8, "--json", *args.send_arg],
                          args.sender_cpus[j % len(args.sender_cpus)]), rig.unique("send.json"))
             for j, f in enumerate(flows)]
    aborted = None
    hard_end = t0 + est * 3 + 30
    while any(s.poll() is None for s in sends):
        time.sleep(0.02)
        if abort_on_loss and not aborted and rig.udp("rcv").get("RcvbufErrors", 0) > rcv0:
            aborted = "receiver socket overflow"
            for s in sends:
                s.send(signal.SIGINT)
        if time.monotonic() > hard_end:
            aborted = aborted or "senders overran their time"
            for s in sends:
                s.stop()
    for r in recvs:
        if aborted:
            r.send(signal.SIGINT)
    for r in recvs:
        if r.wait(0.5 + 5 + (0 if aborted else est)) is None:
            r.send(signal.SIGINT)
            if r.wait(5) is None:
                r.stop()
    t1 = time.monotonic()
    cpu1 = read_cpu_idle()
    r_ns1 = proc_sched_ns(pid) or 0
    after = relay.counters()
    per_flow = []
    sent_total = unique_total = 0
    longest = 0.0
    for j, (s, r) in enumerate(zip(sends, recvs)):
        sj, rj = s.json() or {}, r.json() or {}
        sent, unique = int(sj.get("sent", 0)), int(rj.get("unique", 0))
        sent_total += sent
        unique_total += unique
        longest = max(longest, float(sj.get("elapsed_s", 0.0)))
        per_flow.append({"flow": j, "group": flows[j].in_group, "port": flows[j].in_port,
                         "sent": sent, "send_pps": round(float(sj.get("pps", 0.0)), 1),
                         "unique": unique, "lost": rj.get("lost"),
                         "reordered": rj.get("reordered"), "duplicated": rj.get("duplicated"),
                         "zero_loss": sent == per_count and unique >= per_count,
                         "in_order": (rj.get("reordered") or 0) == 0
                         and (rj.get("duplicated") or 0) == 0})
    # Offered rate of all senders together: everything sent over the longest sender's time
    # (senders start within milliseconds of each other; summing their own rates would overstate
    # it when their runs do not overlap fully).
    send_pps_total = sent_total / longest if longest else 0.0
    el = t1 - t0
    busy = max(0.0, el * cpu0["n"] - (cpu1["idle"] - cpu0["idle"]) / USER_HZ)
    # Steal on the shards' CPUs: a vCPU the hypervisor did not run drops packets that no code
    # of ours can keep (seconds of steal over the trial's elapsed time, summed over the CPUs).
    shard_cpus = cpu_list(relay.cpus)
    shard_steal = sum(cpu1["steal"].get(c, 0) - cpu0["steal"].get(c, 0) for c in shard_cpus)
    all_steal = sum(cpu1["steal"].values()) - sum(cpu0["steal"].values())
    counters = {k: after[k] - before.get(k, 0) for k in after
                if isinstance(after[k], int) and k in before}
    rcvbuf_errors = rig.udp("rcv").get("RcvbufErrors", 0) - rcv0
    relay_ip_ignored = rig.udp("rly").get("IgnoredMulti", 0) - ign0
    # Where packets went missing: rule_packets is what the shards took from their rings (a
    # shortfall against sent is ring overflow before the relay; kernel_drops says the same but
    # the shards read it only once a second), output_packets what they sent on.
    where = {"sent": sent_total, "relay_in": counters.get("rule_packets"),
             "relay_out": counters.get("output_packets"), "unique": unique_total,
             "receiver_overflow": rcvbuf_errors,
             "shard_steal_ms": round(shard_steal / USER_HZ * 1e3, 1)}
    res = {"kind": kind, "rate_requested": int(rate), "count": per_count * f_n, "sent": sent_total,
           "send_pps": round(send_pps_total, 1), "unique": unique_total,
           "delivered_fraction": round(unique_total / sent_total, 6) if sent_total else 0.0,
           "delivered_pps": round(send_pps_total * unique_total / sent_total, 1) if sent_total else 0.0,
           "zero_loss": all(f["zero_loss"] for f in per_flow) and not aborted,
           "in_order": all(f["in_order"] for f in per_flow), "aborted": aborted,
           "relay_cpu_us_per_pkt": round((r_ns1 - r_ns0) / 1e3 / unique_total, 4) if unique_total else None,
           "machine_busy_cpus": round(busy / el, 3) if el else None,
           "steal_cpus": round(all_steal / USER_HZ / el, 4) if el else None,
           "shard_steal_cpus": round(shard_steal / USER_HZ / el, 4) if el else None,
           "relay_ip_ignored_multi": relay_ip_ignored,
           "where": where, "relay_counters": counters, "per_flow": per_flow}
    log(f"{relay.cpus:>8} {kind:<8} rate {int(rate) or 'max':>8} sent {sent_total:>8} @ "
        f"{send_pps_total / 1e3:8.1f}k got {unique_total:>8} ({100 * res['delivered_fraction']:6.2f}%)"
        f" in order {res['in_order']} relay IP stack dropped {relay_ip_ignored}"
        + (f" [aborted: {aborted}]" if aborted else "")
        + ("" if unique_total == sent_total else
           f" (relay took {where['relay_in']}, sent on {where['relay_out']},"
           f" receiver overflow {rcvbuf_errors}, steal on the shards' CPUs"
           f" {where['shard_steal_ms']} ms)"))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ns-snd", required=True)
    ap.add_argument("--ns-rly", required=True)
    ap.add_argument("--ns-rcv", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--shards", default="1,2,4,8")
    ap.add_argument("--flows", type=int, default=0, help="default: max(8, 2 x largest shard count)")
    ap.add_argument("--size", type=int, default=1200)
    ap.add_argument("--shard-cpus", required=True)
    ap.add_argument("--sender-cpus", required=True)
    ap.add_argument("--receiver-cpus", required=True)
    ap.add_argument("--control-cpu", default=None)
    ap.add_argument("--search-count", type=int, default=400_000, help="packets per search trial")
    ap.add_argument("--confirm-count", type=int, default=800_000,
                    help="packets of the confirming run (>= 200k per the issue)")
    ap.add_argument("--precision", type=float, default=1.10)
    ap.add_argument("--max-steps", type=int, default=10)
    ap.add_argument("--mcrd-arg", action="append", default=[])
    ap.add_argument("--send-arg", action="append", default=[],
                    help="extra mcrgen send argument, repeatable (e.g. --send-arg=--no-gso)")
    ap.add_argument("--recv-arg", action="append", default=[],
                    help="extra mcrgen recv argument, repeatable (e.g. --recv-arg=--spin-us=200)")
    ap.add_argument("--drop-captured", action="store_true",
                    help="recorded in the results: shard_scaling.sh loaded the nft drop rule")
    args = ap.parse_args()
    shard_counts = [int(x) for x in args.shards.split(",")]
    shard_cpus = cpu_list(args.shard_cpus)
    args.sender_cpus = cpu_list(args.sender_cpus)
    args.receiver_cpus = cpu_list(args.receiver_cpus)
    if max(shard_counts) > len(shard_cpus):
        ap.error(f"--shard-cpus has {len(shard_cpus)} CPUs, fewer than {max(shard_counts)} shards")
    n_flows = args.flows or max(8, 2 * max(shard_counts))
    rig = Rig({"snd": args.ns_snd, "rly": args.ns_rly, "rcv": args.ns_rcv}, args.tmp, args.bin)
    out = {"schema": 1, "kind": "shard_scaling",
           "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "host": host_info(), "size": args.size, "flows": n_flows,
           "placement": {"shard_cpus": args.shard_cpus, "sender_cpus": args.sender_cpus,
                         "receiver_cpus": args.receiver_cpus, "control_cpu": args.control_cpu},
           "search_count": args.search_count, "confirm_count": args.confirm_count,
           "mcrd_args": args.mcrd_arg, "send_args": args.send_arg,
           "recv_args": args.recv_arg, "drop_captured": args.drop_captured,
           "background_busy_cpus": [], "rows": []}

    def save():
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.json)

    t_start = time.monotonic()
    try:
        flows = choose_flows(rig, args, shard_cpus, max(shard_counts), n_flows)
        out["flow_set"] = [{"group": f.in_group, "port": f.in_port, "output": f.outputs[0]}
                           for f in flows]
        log(f"{len(flows)} flows, balanced over {max(shard_counts)} shards")
        for n in shard_counts:
            out["background_busy_cpus"].append(round(background_busy(1.0), 3))
            cpus = ",".join(map(str, shard_cpus[:n]))
            relay = Mcrd(rig, cpus, args.control_cpu, "ring", args.mcrd_arg)
            row = {"shards": n, "cpus": cpus}
            try:
                relay.start(flows)
                run_multi(rig, relay, flows, args, 10_000, 2_000 * len(flows), "warmup", False)
                blast = run_multi(rig, relay, flows, args, 0, args.search_count, "blast", False)

                def attempt(rate, count, kind):
                    r = run_multi(rig, relay, flows, args, rate, count, kind)
                    if not r["zero_loss"]:
                        r = run_multi(rig, relay, flows, args, rate, count, kind)
                    return r["zero_loss"], r
                zl = search_zero_loss(attempt, min(blast["send_pps"], blast["delivered_pps"]) * 0.9,
                                      blast["send_pps"], search_count=args.search_count,
                                      confirm_count=args.confirm_count, precision=args.precision,
                                      max_steps=args.max_steps, floor=1000)
                conf = zl.pop("confirmed")
                row.update({"blast_delivered_pps": blast["delivered_pps"],
                            "blast_send_pps": blast["send_pps"], "blast_in_order": blast["in_order"],
                            "zero_loss_pps": zl["pps"], "zero_loss": zl,
                            "confirm": conf, "in_order": bool(conf and conf["in_order"]
                                                              and blast["in_order"])})
            except (RelayUnavailable, RuntimeError) as e:
                row["error"] = str(e)
                log(f"{n} shards: {e}")
            finally:
                relay.stop()
            out["rows"].append(row)
            save()
        base = next((r.get("zero_loss_pps") for r in out["rows"] if r["shards"] == 1), None)
        for r in out["rows"]:
            r["speedup"] = round(r["zero_loss_pps"] / base, 3) if base and r.get("zero_loss_pps") else None
        big = next((r for r in out["rows"] if r["shards"] == 8), None)
        if big and big.get("speedup") is not None:
            out["target_8_shards_6x_met"] = big["speedup"] >= 6 and all(
                r.get("in_order") for r in out["rows"])
    finally:
        out["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        out["wall_s"] = round(time.monotonic() - t_start, 1)
        save()
        rig.close()
    for r in out["rows"]:
        print(f"{r['shards']} shard(s) on CPU {r['cpus']}: zero-loss {r.get('zero_loss_pps', 0) / 1e3:.1f}k pps"
              f" (x{r.get('speedup')}), full blast {r.get('blast_delivered_pps', 0) / 1e3:.1f}k pps,"
              f" every flow in order: {r.get('in_order')}" + (f" ERROR {r['error']}" if "error" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
