#!/usr/bin/env python3
"""The measurement plan of scripts/bench.sh (which builds the namespaces and calls this).

Three relays do the same job on the same topology, one at a time:
  mcrd (1 shard), socat (one process per stream, as users run it), and the kernel's multicast
  forwarding (an smcrouted (S,G) route).
Per payload size and relay: delivered rate at full blast, zero-loss rate (rate search, confirmed
with >= --confirm-count packets), latency at half the zero-loss rate, and CPU per packet at one
rate every relay sustains. Then mcrd alone: fan-out, concurrent streams, latency against rate,
and `--ingress recv`. Writes one JSON file; bench/harness/report.py and plot.py read it.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
from typing import Optional

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (Flow, KernelMroute, Mcrd, Placement, Relay, RelayUnavailable,  # noqa: E402
                      Rig, Socat, Traffic, background_busy, brief, host_info, ip_add, log, median,
                      round_rate, run_trial, search_zero_loss)

# The measurement plan. Counts are packets; *_s are seconds of traffic. A trial never runs longer
# than *_max_s (slow relays at low rates get fewer packets; results record how many). send_args:
# extra mcrgen send arguments for every sender (e.g. --set 'send_args=["--no-gso"]'). hop_stamps:
# in latency trials, also time each sampled datagram from the relay's input to the receiver's
# interface (benchlib.HopStamps; --set hop_stamps=true).
FULL = dict(
    sizes=[64, 1200, 8000], rounds=3,
    blast_count=200_000,
    search_count=200_000, search_min=20_000, search_max_s=2.0,
    confirm_count=200_000, confirm_min=20_000, confirm_max_s=15.0,
    precision=1.10, max_steps=10, retries=1, floor=1_000,
    latency_seconds=3.0, latency_min=20_000, latency_max=100_000,
    repeats=3, cpu_seconds=3.0, cpu_min=15_000, cpu_max=200_000,
    fanouts=[1, 4, 8, 16, 64], fanout_rates=[5_000, 25_000], fanout_max_out_pps=400_000,
    fanout_seconds=2.0,
    streams=[1, 10, 100], streams_rate=50_000, streams_seconds=3.0,
    sweep_rates=[10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000], sweep_seconds=1.0,
    lat_rates=[1_000, 10_000, 100_000], lat_rate_seconds=3.0,
    background_seconds=1.0, send_args=[], hop_stamps=False)
QUICK = dict(
    sizes=[64, 1200, 8000], rounds=1,
    blast_count=5_000,
    search_count=3_000, search_min=1_000, search_max_s=0.5,
    confirm_count=5_000, confirm_min=1_000, confirm_max_s=0.5,
    precision=1.5, max_steps=3, retries=0, floor=1_000,
    latency_seconds=0.2, latency_min=2_000, latency_max=3_000,
    repeats=1, cpu_seconds=0.2, cpu_min=2_000, cpu_max=3_000,
    fanouts=[1, 4], fanout_rates=[5_000], fanout_max_out_pps=400_000, fanout_seconds=0.4,
    streams=[1, 10], streams_rate=20_000, streams_seconds=0.2,
    sweep_rates=[20_000, 80_000], sweep_seconds=0.1,
    lat_rates=[10_000], lat_rate_seconds=0.2,
    background_seconds=0.2, send_args=[], hop_stamps=False)


class Bench:
    def __init__(self, args, plan: dict):
        self.args = args
        self.plan = plan
        ns = {"snd": args.ns_snd, "rly": args.ns_rly, "rcv": args.ns_rcv}
        self.rig = Rig(ns, args.tmp, args.bin)
        self.place = Placement(args.sender_cpu, args.receiver_cpu, args.relay_cpus)
        self.trials: list = []
        self.out = {
            "schema": 1,
            "quick": args.quick,
            "command_line": args.command_line,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": host_info(),
            "software": self.versions(),
            "placement": {"sender_cpu": args.sender_cpu, "receiver_cpu": args.receiver_cpu,
                          "relay_cpus": args.relay_cpus, "mcrd_control_cpu": args.control_cpu},
            "plan": plan,
            "egress_uso": args.egress_uso,
            "mcrd_args": list(args.mcrd_arg),
            "topology": "snd veth0 10.10.1.1 -> in0 10.10.1.2 [relay] out0 10.10.2.1 -> "
                        "veth0 10.10.2.2 rcv; veth MTU 9000, tx-udp-segmentation off",
            "traffic": "mcrgen send (UDP GSO batches of up to 64 datagrams, TTL 8) to "
                       "239.1.1.1:5000; mcrgen recv on 239.2.2.2:6000 (239.1.1.1:5000 for the "
                       "kernel path, which keeps the group)",
            "background_busy_cpus": [],
            "relays": {},
            "commands": {},
            "sizes": {},
        }

    # -- helpers ---------------------------------------------------------------------------

    def versions(self) -> dict:
        v = {}
        for name, argv in (("mcrd", [self.rig.tool("mcrd"), "--version"]),
                           ("mcrgen", [self.rig.tool("mcrgen"), "--version"]),
                           ("socat", ["socat", "-V"]), ("smcrouted", ["smcrouted", "-v"])):
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=5)
                lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
                v[name] = next((ln for ln in lines if "version" in ln.lower()),
                               next((ln for ln in lines if name.lower() in ln.lower()),
                                    lines[0] if lines else "?")).strip()
            except (OSError, subprocess.TimeoutExpired):
                v[name] = None
        for name in ("mcrd", "mcrgen"):
            try:
                with open(self.rig.tool(name), "rb") as f:
                    v[f"{name}_sha256"] = hashlib.sha256(f.read()).hexdigest()[:16]
                v[f"{name}_built"] = datetime.datetime.fromtimestamp(
                    os.stat(self.rig.tool(name)).st_mtime, datetime.timezone.utc).isoformat(
                        timespec="seconds")
            except OSError:
                pass
        try:
            r = subprocess.run(["git", "-C", self.args.source, "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True, timeout=5)
            v["commit"] = r.stdout.strip() or None
            r = subprocess.run(["git", "-C", self.args.source, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, timeout=10)
            v["worktree_modified"] = bool(r.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
        return v

    def background(self) -> None:
        b = round(background_busy(self.plan["background_seconds"]), 3)
        self.out["background_busy_cpus"].append(b)

    def trial(self, relay: Relay, t: Traffic, kind: str, **kw) -> dict:
        # Drop counters matter where loss is expected and explained: full blast and fan-out.
        kw.setdefault("wait_counters", kind in ("blast", "streams-blast", "fanout"))
        kw.setdefault("hop_stamps",
                      bool(self.plan.get("hop_stamps")) and kind.startswith("latency"))
        r = run_trial(self.rig, relay, self.place, t, kind=kind, **kw)
        self.trials.append(r)
        log(brief(r))
        if not r["relay_alive"]:
            raise RelayUnavailable(f"{relay.name} died during a trial")
        return r

    def count_for(self, rate: float, seconds: float, lo: int, hi: int) -> int:
        return int(min(hi, max(lo, rate * seconds)))

    def one_flow(self, relay: Relay) -> tuple:
        """Flow and receiver target for the single-stream comparison."""
        if relay.keeps_group:
            return [Flow("239.1.1.1", 5000, [("239.1.1.1", 5000)])], ("239.1.1.1", 5000)
        return [Flow("239.1.1.1", 5000, [("239.2.2.2", 6000)])], ("239.2.2.2", 6000)

    def traffic(self, relay: Relay, size: int, rate: float, count: int,
                pace: Optional[str] = None) -> Traffic:
        """One-flow traffic; pace: mcrgen's --pace (None: its default, spin)."""
        _, (g, p) = self.one_flow(relay)
        extra = list(self.plan["send_args"]) + (["--pace", pace] if pace else [])
        return Traffic(size=size, rate=int(rate), count=int(count), recv_group=g, recv_port=p,
                       extra_send=extra)

    def make_relays(self) -> list:
        a = self.args
        return [Mcrd(self.rig, a.relay_cpus, a.control_cpu, "ring", a.mcrd_arg),
                KernelMroute(self.rig, a.relay_cpus),
                Socat(self.rig, a.relay_cpus)]

    def start(self, relay: Relay, flows: list) -> None:
        relay.start(flows)
        self.out["commands"][relay.name] = relay.command

    # -- measurements ----------------------------------------------------------------------

    def passes(self, relay: Relay, size: int, rate: int, count: int, kind: str) -> tuple:
        """A trial at `rate` with one retry on failure (the machine is shared: a neighbour's
        burst can cost a packet); returns (passed, last trial). Slow relays get fewer packets:
        at most search_max_s / confirm_max_s seconds of traffic (the trial records its count)."""
        p = self.plan
        secs, least = ((p["confirm_max_s"], p["confirm_min"]) if kind == "confirm"
                       else (p["search_max_s"], p["search_min"]))
        count = int(min(count, max(least, rate * secs)))
        for _ in range(1 + p["retries"]):
            r = self.trial(relay, self.traffic(relay, size, rate, count), kind, abort_on_loss=True)
            if r["zero_loss"]:
                return True, r
        return False, r

    def zero_loss_search(self, relay: Relay, size: int, start: float, cap: float) -> dict:
        """Highest paced rate at which every packet arrives (benchlib.search_zero_loss)."""
        p = self.plan
        res = search_zero_loss(
            lambda rate, count, kind: self.passes(relay, size, rate, count, kind),
            start, cap, search_count=p["search_count"], confirm_count=p["confirm_count"],
            precision=p["precision"], max_steps=p["max_steps"], floor=p["floor"])
        confirmed = res.pop("confirmed")
        if confirmed:
            res["confirm_trial"] = {k: confirmed[k] for k in (
                "relay_cpu_us_per_pkt", "machine_cpu_us_per_pkt",
                "machine_excl_sender_user_us_per_pkt", "attributed_cpu_us_per_pkt",
                "machine_busy_cpus", "latency_us")}
        return res

    def measure_round(self, relay: Relay, size: int, prev: Optional[list]) -> dict:
        """One round for one relay: a full-blast run, the zero-loss search (from the previous
        rounds' median when there is one), one latency run at half the zero-loss rate."""
        p = self.plan
        flows, _ = self.one_flow(relay)
        self.background()
        self.start(relay, flows)
        try:
            # Warm-up: routes, neighbours, page faults in the relay's buffers.
            self.trial(relay, self.traffic(relay, size, 10_000, 2_000), "warmup")
            blast = self.trial(relay, self.traffic(relay, size, 0, p["blast_count"]), "blast")
            cap = blast["send_pps"]
            good = [z["pps"] for z in (prev or []) if z["pps"]]
            start = median(good) if good else min(cap, blast["delivered_pps"]) * 0.9
            zl = self.zero_loss_search(relay, size, start, cap)
            lat = None
            if zl["pps"] > 0:
                half = round_rate(zl["pps"] / 2)
                n = self.count_for(half, p["latency_seconds"], p["latency_min"], p["latency_max"])
                lat = self.trial(relay, self.traffic(relay, size, half, n), "latency")
            return {"blast": blast, "zero_loss": zl, "latency": lat}
        finally:
            relay.stop()

    def measure_relay(self, relay: Relay, size: int, rounds: int = 1) -> dict:
        """Rounds of measure_round, summarised by medians (used for mcrd --ingress recv)."""
        res = [self.measure_round(relay, size, None)]
        for _ in range(rounds - 1):
            res.append(self.measure_round(relay, size, [r["zero_loss"] for r in res]))
        return self.summarise_rounds(res)

    def summarise_rounds(self, rounds: list) -> dict:
        blasts = [r["blast"] for r in rounds]
        zls = [r["zero_loss"] for r in rounds]
        blast = {"delivered_pps": median(b["delivered_pps"] for b in blasts),
                 "send_pps": median(b["send_pps"] for b in blasts),
                 "delivered_fraction": median(b["delivered_fraction"] for b in blasts),
                 "relay_cpu_us_per_pkt": median(b["relay_cpu_us_per_pkt"] for b in blasts),
                 "machine_cpu_us_per_pkt": median(b["machine_cpu_us_per_pkt"] for b in blasts),
                 "runs": [b["delivered_pps"] for b in blasts],
                 "kernel_drops": [b["relay_counters"].get("kernel_drops") for b in blasts],
                 "receiver_socket_drops": [b["receiver_socket_drops"] for b in blasts]}
        pps = [z["pps"] for z in zls]
        best = sorted(zls, key=lambda z: z["pps"])[len(zls) // 2]  # the median round
        zero = {"pps": median(pps), "runs": pps,
                "packets": [z["packets"] for z in zls],
                "sender_limited": sum(bool(z["sender_limited"]) for z in zls) * 2 > len(zls),
                "confirm_trial": best.get("confirm_trial"),
                "rounds": zls}
        lat = self.latency_summary([r["latency"] for r in rounds if r["latency"]])
        return {"blast": blast, "zero_loss": zero, "latency": lat}

    @staticmethod
    def latency_summary(runs: list) -> dict:
        ok = [r for r in runs if r.get("latency_us") and r["latency_us"].get("p50") is not None]
        if not ok:
            return {}
        out = {"rate": ok[0]["rate_requested"], "runs": len(ok),
               "lost": sum(r["lost"] or 0 for r in ok)}
        for q in ("min", "p50", "p90", "p99", "p999", "max", "mean"):
            out[q] = median(r["latency_us"].get(q) for r in ok)
        out["max_of_runs"] = max(r["latency_us"]["max"] for r in ok)
        out["p99_runs"] = [r["latency_us"]["p99"] for r in ok]
        out["rates"] = [r["rate_requested"] for r in ok]
        hops = [r["hop_us"] for r in ok if (r.get("hop_us") or {}).get("samples")]
        if hops:  # --set hop_stamps=true: the relay's own share, input to receiver's interface
            out["hop"] = {q: median(h[q] for h in hops) for q in ("p50", "p90", "p99", "max")}
            out["hop"]["p99_runs"] = [h["p99"] for h in hops]
            out["hop"]["samples"] = sum(h["samples"] for h in hops)
        return out

    def cpu_at(self, relay: Relay, size: int, rate: int, kind: str = "cpu",
               pace: Optional[str] = None) -> dict:
        p = self.plan
        flows, _ = self.one_flow(relay)
        n = self.count_for(rate, p["cpu_seconds"], p["cpu_min"], p["cpu_max"])
        self.background()
        self.start(relay, flows)
        try:
            self.trial(relay, self.traffic(relay, size, min(rate, 10_000), 2_000), "warmup")
            runs = [self.trial(relay, self.traffic(relay, size, rate, n, pace), kind)
                    for _ in range(p["repeats"])]
        finally:
            relay.stop()
        return self.cpu_summary(runs)

    @staticmethod
    def cpu_summary(runs: list) -> dict:
        keys = ("relay_cpu_us_per_pkt", "relay_cpu_us_per_input_pkt", "machine_cpu_us_per_pkt",
                "machine_excl_sender_user_us_per_pkt", "attributed_cpu_us_per_pkt", "machine_busy_cpus", "delivered_fraction",
                "send_pps", "delivered_pps")
        out = {k: median(r[k] for r in runs) for k in keys}
        out["runs"] = len(runs)
        out["all_zero_loss"] = all(r["zero_loss"] for r in runs)
        out["relay_cpu_us_per_pkt_runs"] = [r["relay_cpu_us_per_pkt"] for r in runs]
        out["machine_cpu_us_per_pkt_runs"] = [r["machine_cpu_us_per_pkt"] for r in runs]
        lat = Bench.latency_summary(runs)
        if lat:
            out["latency"] = {k: lat[k] for k in ("p50", "p99", "max")}
        return out

    def comparison(self) -> None:
        p = self.plan
        relays = self.make_relays()
        for size in p["sizes"]:
            log(f"=== payload {size} bytes: mcrd vs kernel vs socat, {p['rounds']} round(s)")
            rounds = {r.name: [] for r in relays}
            errors = {}
            # Rounds interleave the relays, and the order rotates, so that a noisy stretch of
            # the shared machine does not fall on one relay only.
            for i in range(p["rounds"]):
                k = (p["sizes"].index(size) + i) % len(relays)
                for relay in relays[k:] + relays[:k]:
                    if relay.name in errors:
                        continue
                    prev = [r["zero_loss"] for r in rounds[relay.name]]
                    try:
                        rounds[relay.name].append(self.measure_round(relay, size, prev))
                    except RelayUnavailable as e:
                        log(f"{relay.name}: unavailable: {e}")
                        errors[relay.name] = str(e)
            per = {}
            for relay in relays:
                if relay.name in errors and not rounds[relay.name]:
                    per[relay.name] = {"error": errors[relay.name]}
                else:
                    per[relay.name] = self.summarise_rounds(rounds[relay.name])
            # One paced rate for every relay's CPU figures: 90% of the lowest zero-loss rate (a
            # relay without one, e.g. socat losing packets at any rate, counts with half its
            # full-blast delivered rate instead).
            caps = [v["zero_loss"]["pps"] or 0.5 * (v["blast"]["delivered_pps"] or 0)
                    for v in per.values() if v.get("zero_loss")]
            common = round_rate(0.9 * min(caps)) if caps and min(caps) > 0 else 0
            if common:
                log(f"--- CPU per packet at {common} pps for every relay")
                for relay in relays:
                    if "error" in per.get(relay.name, {}):
                        continue
                    try:
                        per[relay.name]["cpu"] = self.cpu_at(relay, size, common)
                    except RelayUnavailable as e:
                        per[relay.name]["cpu"] = {"error": str(e)}
                    # The same rate with a sender that sleeps instead of spinning between
                    # packets: the whole-machine figure without a spinning CPU in it.
                    try:
                        per[relay.name]["cpu_sleep"] = self.cpu_at(relay, size, common,
                                                                   "cpu-sleep", pace="sleep")
                    except RelayUnavailable as e:
                        per[relay.name]["cpu_sleep"] = {"error": str(e)}
            self.out["sizes"][str(size)] = {"common_rate": common, "relays": per}
            self.save()

    def sweep(self, size: int = 1200) -> None:
        """Delivered against offered rate, short fixed-length runs, for the plot."""
        p = self.plan
        out = {}
        for relay in self.make_relays():
            flows, _ = self.one_flow(relay)
            pts = []
            try:
                self.start(relay, flows)
                for rate in p["sweep_rates"] + [0]:
                    n = int(rate * p["sweep_seconds"]) if rate else self.plan["blast_count"]
                    r = self.trial(relay, self.traffic(relay, size, rate, max(n, 1000)), "sweep")
                    pts.append({"rate_requested": rate, "offered_pps": r["send_pps"],
                                "delivered_pps": r["delivered_pps"],
                                "delivered_fraction": r["delivered_fraction"]})
            except RelayUnavailable as e:
                out[relay.name] = {"error": str(e), "points": pts}
                continue
            finally:
                relay.stop()
            out[relay.name] = {"points": pts}
        self.out["sweep"] = {"size": size, "relays": out}
        self.save()

    def mcrd_recv(self, size: int = 1200) -> None:
        """--ingress recv (io_uring multishot receive): the low-latency mode."""
        a = self.args
        relay = Mcrd(self.rig, a.relay_cpus, a.control_cpu, "recv", a.mcrd_arg)
        try:
            res = self.measure_relay(relay, size, self.plan["rounds"])
            # CPU at the same rate as the comparison's CPU columns, when there is one.
            common = self.out["sizes"].get(str(size), {}).get("common_rate")
            if common:
                res["cpu"] = self.cpu_at(relay, size, common)
            rates = (res.get("latency") or {}).get("rates")
            if rates:  # the rounds' half zero-loss rates differ a little: their median
                res["latency_baseline"] = self.kernel_latency_at(size, round_rate(median(rates)))
        except RelayUnavailable as e:
            log(f"mcrd --ingress recv unavailable: {e}")
            res = {"error": str(e)}
        self.out["relays"]["mcrd-recv"] = {"size": size, **res}
        self.save()

    def kernel_latency_at(self, size: int, rate: int) -> dict:
        """The kernel path's latency at `rate` (same sender, veths and receiver, no userspace
        hop): the baseline that turns a relay's latency at that rate into added latency."""
        p = self.plan
        relay = KernelMroute(self.rig, self.args.relay_cpus)
        flows, _ = self.one_flow(relay)
        try:
            self.start(relay, flows)
            self.trial(relay, self.traffic(relay, size, 10_000, 2_000), "warmup")
            n = self.count_for(rate, p["latency_seconds"], p["latency_min"], p["latency_max"])
            runs = [self.trial(relay, self.traffic(relay, size, rate, n), "latency-baseline")
                    for _ in range(p["rounds"])]
            return {"relay": relay.name, **self.latency_summary(runs)}
        except RelayUnavailable as e:
            return {"relay": relay.name, "error": str(e)}
        finally:
            relay.stop()

    def latency_vs_rate(self, size: int = 1200) -> None:
        """Latency of both ingress modes at fixed rates, and of the kernel path as the baseline
        (sender, veths and receiver without a userspace hop): in ring mode a block reaches the
        shard when full or when the block timeout expires, so low rates show the timeout."""
        p = self.plan
        a = self.args
        rows = []
        relays = [Mcrd(self.rig, a.relay_cpus, a.control_cpu, ingress, a.mcrd_arg)
                  for ingress in ("ring", "recv")] + [KernelMroute(self.rig, a.relay_cpus)]
        for relay in relays:
            # The kernel path is the baseline: what the topology, sender and receiver add.
            ingress = getattr(relay, "ingress", "kernel")
            flows, _ = self.one_flow(relay)
            try:
                self.start(relay, flows)
                self.trial(relay, self.traffic(relay, size, 10_000, 2_000), "warmup")
                for rate in p["lat_rates"]:
                    n = max(1000, int(rate * p["lat_rate_seconds"]))
                    r = self.trial(relay, self.traffic(relay, size, rate, n), "latency-rate")
                    rows.append({"ingress": ingress, "relay": relay.name, "rate": rate,
                                 "latency_us": r["latency_us"],
                                 "lost": r["lost"],
                                 "relay_cpu_us_per_pkt": r["relay_cpu_us_per_pkt"]})
            except RelayUnavailable as e:
                rows.append({"ingress": ingress, "error": str(e)})
            finally:
                relay.stop()
        self.out["latency_vs_rate"] = {"size": size, "relay": "mcrd", "rows": rows}
        self.save()

    def fanout(self, size: int = 1200) -> None:
        """One input, N outputs on out0 (239.2.2.2+i:6000+i), relay CPU per input packet."""
        p = self.plan
        a = self.args
        rows = []
        for rate in p["fanout_rates"]:
            for n_out in p["fanouts"]:
                if rate * n_out > p["fanout_max_out_pps"] and n_out > 1 and rate != p["fanout_rates"][0]:
                    continue  # more than the receiver's CPU can take; covered at the lower rate
                relay = Mcrd(self.rig, a.relay_cpus, a.control_cpu, "ring", a.mcrd_arg)
                outs = [(ip_add("239.2.2.2", i), 6000 + i) for i in range(n_out)]
                count = max(1000, int(rate * p["fanout_seconds"]))
                t = Traffic(size=size, rate=rate, count=count, recv_streams=n_out, fanout=n_out,
                            extra_send=list(p["send_args"]))
                try:
                    self.background()
                    self.start(relay, [Flow("239.1.1.1", 5000, outs)])
                    self.trial(relay, Traffic(size=size, rate=min(rate, 10_000), count=1000,
                                              recv_streams=n_out, fanout=n_out,
                                              extra_send=list(p["send_args"])), "warmup")
                    runs = [self.trial(relay, t, "fanout") for _ in range(p["repeats"])]
                    row = {"outputs": n_out, "input_rate": rate, **self.cpu_summary(runs),
                           "kernel_drops": sum(r["relay_counters"].get("kernel_drops", 0)
                                               for r in runs),
                           "output_errors": sum(r["relay_counters"].get("output_errors", 0)
                                                for r in runs),
                           "receiver_socket_drops": sum(r["receiver_socket_drops"] or 0
                                                        for r in runs)}
                except RelayUnavailable as e:
                    row = {"outputs": n_out, "input_rate": rate, "error": str(e)}
                finally:
                    relay.stop()
                rows.append(row)
                self.out["fanout"] = {"size": size, "rows": rows}
                self.save()

    def streams(self, size: int = 1200) -> None:
        p = self.plan
        a = self.args
        rows = []
        for k in p["streams"]:
            relay = Mcrd(self.rig, a.relay_cpus, a.control_cpu, "ring", a.mcrd_arg)
            flows = [Flow(ip_add("239.1.1.1", i), 5000 + i, [(ip_add("239.2.2.2", i), 6000 + i)])
                     for i in range(k)]
            rate = p["streams_rate"]
            count = max(1000, int(rate * p["streams_seconds"]))

            def tr(r, n):
                return Traffic(size=size, rate=r, count=n, streams=k, recv_streams=k,
                               extra_send=list(p["send_args"]))
            try:
                self.background()
                self.start(relay, flows)
                self.trial(relay, tr(10_000, max(1000, 10 * k)), "warmup")
                runs = [self.trial(relay, tr(rate, count), "streams") for _ in range(p["repeats"])]
                blast = self.trial(relay, tr(0, p["blast_count"]), "streams-blast")
                row = {"streams": k, "rate": rate, **self.cpu_summary(runs),
                       "in_order": all(r["in_order"] for r in runs),
                       "blast_delivered_pps": blast["delivered_pps"],
                       "blast_send_pps": blast["send_pps"],
                       "blast_in_order": blast["in_order"],
                       "kernel_drops": sum(r["relay_counters"].get("kernel_drops", 0) for r in runs)}
            except RelayUnavailable as e:
                row = {"streams": k, "error": str(e)}
            finally:
                relay.stop()
            rows.append(row)
            self.out["streams"] = {"size": size, "rows": rows}
            self.save()

    # -- output ------------------------------------------------------------------------------

    def save(self) -> None:
        self.out["trials"] = self.trials
        tmp = self.args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.out, f, indent=1)
        os.replace(tmp, self.args.json)

    def run(self) -> None:
        t0 = time.monotonic()
        try:
            for part in self.args.parts.split(","):
                log(f"### {part}")
                getattr(self, part.replace("-", "_"))()
        finally:
            self.out["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")
            self.out["wall_s"] = round(time.monotonic() - t0, 1)
            self.save()
            self.rig.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ns-snd", required=True)
    ap.add_argument("--ns-rly", required=True)
    ap.add_argument("--ns-rcv", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--source", default=".")
    ap.add_argument("--json", required=True, help="results file to write")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--command-line", default=None, help="recorded in the results")
    ap.add_argument("--sender-cpu", required=True)
    ap.add_argument("--receiver-cpu", required=True)
    ap.add_argument("--relay-cpus", required=True)
    ap.add_argument("--control-cpu", default=None)
    ap.add_argument("--egress-uso", action="store_true",
                    help="recorded in the results: out0 has UDP segmentation offload on")
    ap.add_argument("--mcrd-arg", action="append", default=[],
                    help="extra argument for mcrd supervisor (repeatable)")
    ap.add_argument("--sizes", default=None, help="comma-separated payload sizes")
    ap.add_argument("--parts", default="comparison,sweep,mcrd_recv,latency_vs_rate,fanout,streams")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a plan value (JSON value), e.g. --set confirm_count=100000")
    args = ap.parse_args()
    plan = dict(QUICK if args.quick else FULL)
    if args.sizes:
        plan["sizes"] = [int(s) for s in args.sizes.split(",")]
    for kv in args.set:
        k, v = kv.split("=", 1)
        if k not in plan:
            ap.error(f"--set {k}: unknown plan key (one of {', '.join(plan)})")
        plan[k] = json.loads(v)
    Bench(args, plan).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
