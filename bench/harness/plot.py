#!/usr/bin/env python3
"""PNG plots of a scripts/bench.sh results.json, drawn by gnuplot (Debian's gnuplot-nox).

  plot.py RESULTS.json OUTDIR            delivered_vs_offered.png, cpu_per_packet.png,
                                         latency.png, fanout_streams.png
  plot.py --shards SHARDS.json... OUTDIR shard_scaling.png (from bench/harness/shard_scaling.sh;
                                         several runs are drawn side by side)

The data files gnuplot reads are written next to the PNGs (*.dat), so a plot can be redrawn or
read as text.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

RELAYS = [("mcrd", "mcrd (ring)"), ("mcrd-recv", "mcrd (recv)"), ("kernel", "kernel (smcroute)"),
          ("socat", "socat")]
COLOR = {"mcrd": "#1f77b4", "mcrd-recv": "#17becf", "kernel": "#2ca02c", "socat": "#d62728"}
TERM = 'set terminal pngcairo size 900,560 font "DejaVu Sans,11" noenhanced'


def gnuplot(script: str, outdir: str) -> None:
    subprocess.run(["gnuplot"], input=script, text=True, check=True, cwd=outdir, timeout=60)


def write(outdir: str, name: str, lines: list) -> str:
    with open(os.path.join(outdir, name), "w") as f:
        f.write("\n".join(lines) + "\n")
    return name


def sweep_plot(d: dict, outdir: str, title: str) -> None:
    sw = d.get("sweep", {})
    plots = []
    for key, label in RELAYS:
        pts = sw.get("relays", {}).get(key, {}).get("points", [])
        pts = sorted((p["offered_pps"], p["delivered_pps"]) for p in pts if p.get("offered_pps"))
        if not pts:
            continue
        f = write(outdir, f"sweep_{key}.dat", ["# offered_pps delivered_pps"] +
                  [f"{a:.0f} {b:.0f}" for a, b in pts])
        plots.append(f"'{f}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{COLOR[key]}' "
                     f"title '{label}'")
    if not plots:
        return
    lo = min(p["offered_pps"] for r in sw["relays"].values() for p in r.get("points", [])
             if p.get("offered_pps")) * 0.8
    hi = max(p["offered_pps"] for r in sw["relays"].values() for p in r.get("points", [])) * 1.2
    plots.append("x with lines dt 2 lc rgb '#888888' title 'delivered = offered'")
    gnuplot(f"""{TERM}
set output 'delivered_vs_offered.png'
set title 'Delivered vs offered rate, {sw.get("size")}-byte payloads, 1 stream{title}'
set xlabel 'offered (packets/s sent)'
set ylabel 'delivered (packets/s at the receiver)'
set logscale xy
set xrange [{lo}:{hi}]
set format x '%.0s%c'
set format y '%.0s%c'
set grid
set key top left
plot {', '.join(plots)}
""", outdir)


def cpu_plot(d: dict, outdir: str, title: str) -> None:
    sizes = list(d.get("sizes", {}))
    if not sizes:
        return
    order = [("mcrd", "mcrd (ring)"), ("kernel", "kernel (smcroute)"), ("socat", "socat")]
    rows = ["# label " + " ".join(f"{k}_relay {k}_attributed {k}_machine {k}_machine_sleeping"
                                  for k, _ in order)]
    sleeping = False  # any whole-machine figure with a sleeping sender (mcrgen --pace sleep)?
    for s in sizes:
        vals = []
        for key, _ in order:
            r = d["sizes"][s]["relays"].get(key, {})
            c = r.get("cpu", {}) or {}
            for k in ("relay_cpu_us_per_pkt", "attributed_cpu_us_per_pkt", "machine_cpu_us_per_pkt"):
                v = c.get(k)
                vals.append("NaN" if v is None else f"{v:.4f}")
            v = (r.get("cpu_sleep") or {}).get("machine_cpu_us_per_pkt")
            sleeping = sleeping or v is not None
            vals.append("NaN" if v is None else f"{v:.4f}")
        rate = d["sizes"][s].get("common_rate") or 0
        rows.append(f'"{s} B\\n@{rate / 1e3:.1f}k pps" ' + " ".join(vals))
    f = write(outdir, "cpu_per_packet.dat", rows)
    cols = {name: 2 + 4 * i for i, (name, _) in enumerate(order)}

    def bars(offset):
        return ", ".join(f"'{f}' using {cols[k] + offset}:xtic(1) title '{lbl}' lc rgb '{COLOR[k]}'"
                         for k, lbl in order)
    gnuplot(f"""set terminal pngcairo size 1100,520 font "DejaVu Sans,11" noenhanced
set output 'cpu_per_packet.png'
set multiplot layout 1,2 title 'CPU per delivered packet, same paced rate for every relay{title}'
set bmargin 4
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key top left
set logscale y
set yrange [0.01:*]
set ylabel 'µs per packet'
set title 'relay process (user+system); kernel path: 0, its cost is in the sender'
plot {bars(0)}
set title {"'whole machine (/proc/stat), sender sleeping between packets'" if sleeping else
           "'whole machine (/proc/stat), sender spin-waits included'"}
plot {bars(3) if sleeping else bars(2)}
unset multiplot
""", outdir)


def latency_plot(d: dict, outdir: str, title: str) -> None:
    size = "1200" if "1200" in d.get("sizes", {}) else next(iter(d.get("sizes", {})), None)
    if size is None:
        return
    qs = [("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9), ("max", 100)]
    plots = []
    for key, label in RELAYS:
        if key == "mcrd-recv":
            lat = d.get("relays", {}).get("mcrd-recv", {}).get("latency", {})
        else:
            lat = d["sizes"][size]["relays"].get(key, {}).get("latency", {})
        if not lat or lat.get("p50") is None:
            continue
        rows = [f"{i} {lat[q]:.2f} {q}" for i, (q, _) in enumerate(qs) if lat.get(q) is not None]
        f = write(outdir, f"latency_{key}.dat", ["# index latency_us percentile"] + rows)
        plots.append(f"'{f}' using 1:2:xtic(3) with linespoints lw 2 pt 7 lc rgb '{COLOR[key]}' "
                     f"title '{label} @ {lat.get('rate', 0) / 1e3:.0f}k pps'")
    if not plots:
        return
    gnuplot(f"""{TERM}
set output 'latency.png'
set title 'Sender-to-receiver latency at half of each relay zero-loss rate, {size}-byte payloads{title}'
set ylabel 'latency (µs)'
set xlabel 'percentile (median of runs)'
set logscale y
set grid
set key top left
set xrange [-0.3:4.3]
plot {', '.join(plots)}
""", outdir)


def scaling_plot(d: dict, outdir: str, title: str) -> None:
    fo = [r for r in d.get("fanout", {}).get("rows", []) if r.get("relay_cpu_us_per_input_pkt")]
    st = [r for r in d.get("streams", {}).get("rows", []) if r.get("relay_cpu_us_per_pkt")]
    if not fo and not st:
        return
    plots = []
    palette = ["#1f77b4", "#ff7f0e", "#9467bd"]
    for i, rate in enumerate(sorted({r.get("input_rate") for r in fo})):
        rows = [r for r in fo if r.get("input_rate") == rate]
        f = write(outdir, f"fanout_{rate}.dat", ["# outputs relay_us_per_input_pkt"] +
                  [f"{r['outputs']} {r['relay_cpu_us_per_input_pkt']:.4f}" for r in rows])
        plots.append(f"'{f}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{palette[i % 3]}' "
                     f"title 'mcrd, {rate / 1e3:.0f}k input pkt/s'")
        base = next((r["relay_cpu_us_per_input_pkt"] for r in rows if r["outputs"] == 1), None)
        if base:
            plots.append(f"{base}*x with lines dt 2 lc rgb '{palette[i % 3]}' "
                         f"title 'N × one output @ {rate / 1e3:.0f}k'")
    sf = write(outdir, "streams.dat", ["# streams relay_us_per_pkt blast_delivered_pps"] +
               [f"{r['streams']} {r['relay_cpu_us_per_pkt']:.4f} {r.get('blast_delivered_pps') or 0:.0f}"
                for r in st])
    gnuplot(f"""set terminal pngcairo size 1100,480 font "DejaVu Sans,11" noenhanced
set output 'fanout_streams.png'
set multiplot layout 1,2 title 'mcrd, 1 shard{title}'
set grid
set logscale xy
set key top left
set title 'fan-out: relay CPU per input packet'
set xlabel 'outputs per input packet'
set ylabel 'µs per input packet'
set xrange [0.8:100]
plot {', '.join(plots) if plots else "NaN notitle"}
set title 'concurrent streams: relay CPU per packet, fixed total rate'
set xlabel 'streams (one rule each)'
set ylabel 'µs per packet'
set xrange [0.8:150]
unset logscale y
set yrange [0:*]
plot '{sf}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{COLOR["mcrd"]}' title 'mcrd'
unset multiplot
""", outdir)


def shard_plot(runs: list, outdir: str) -> None:
    """Zero-loss rate and speed-up against shards, one line per shard_scaling.sh run. The
    senders' full-blast rate is drawn too: where a point sits on it, the senders (not mcrd) set
    the figure, which is then a lower bound."""
    left, right = [], []
    n = 0
    for i, d in enumerate(runs):
        rows = [r for r in d.get("rows", []) if r.get("zero_loss_pps")]
        base = next((r["zero_loss_pps"] for r in rows if r["shards"] == 1), None)
        if not rows or not base:
            print(f"plot.py: {d['_file']}: no zero-loss rate for 1 shard, so no speed-up: "
                  "left out of shard_scaling.png", file=sys.stderr)
            continue
        n = max(n, max(r["shards"] for r in rows))
        p = d.get("placement", {})
        label = (f"{d.get('flows')} flows, senders on {len(p.get('sender_cpus', []))} CPUs"
                 + (f" ({d['_file']})" if len(runs) > 1 else ""))
        f = write(outdir, f"shard_scaling_{i + 1}.dat" if len(runs) > 1 else "shard_scaling.dat",
                  ["# shards zero_loss_pps speedup senders_full_blast_pps"] +
                  [f"{r['shards']} {r['zero_loss_pps']:.0f} {r['zero_loss_pps'] / base:.3f} "
                   f"{r.get('blast_send_pps', 0):.0f}" for r in rows])
        lt = f"lt {i + 1}"
        left += [f"'{f}' using 1:($2/1e6) with linespoints {lt} lw 2 pt 7 title '{label}'",
                 f"'{f}' using 1:($4/1e6) with lines {lt} dt 3 lw 1 notitle"]
        right.append(f"'{f}' using 1:3 with linespoints {lt} lw 2 pt 7 notitle")
    if not left:
        return
    d = runs[0]
    gnuplot(f"""{TERM}
set terminal pngcairo size 1200,560 font "DejaVu Sans,11" noenhanced
set output 'shard_scaling.png'
set multiplot layout 1,2 title 'mcrd shard scaling, {d.get("size")}-byte payloads, {d.get("host", {}).get("cpus")} CPUs ({d.get("host", {}).get("cpu_model")})'
set xlabel 'shards'
set grid
set key top left
set xrange [0.5:{n + 0.5}]
set yrange [0:*]
set title 'zero-loss rate (dotted: what the senders reached unpaced)'
set ylabel 'million packets/s, all flows'
plot {", ".join(left)}
set title 'speed-up over 1 shard (same run)'
set ylabel 'x one shard'
plot {", ".join(right)}, \\
     x with lines dt 2 lc rgb '#888888' title 'linear', \\
     0.75*x with lines dt 3 lc rgb '#d62728' title 'target: 6x at 8 shards'
unset multiplot
""", outdir)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("json", nargs="+", help="with --shards, one or more shard_scaling.sh results")
    ap.add_argument("outdir")
    ap.add_argument("--shards", action="store_true", help="JSON is a shard_scaling.sh result")
    a = ap.parse_args()
    docs = []
    for path in a.json:
        with open(path) as f:
            docs.append(json.load(f))
        docs[-1]["_file"] = os.path.splitext(os.path.basename(path))[0]  # the legend's name
    os.makedirs(a.outdir, exist_ok=True)
    if a.shards:
        shard_plot(docs, a.outdir)
        return 0
    if len(docs) > 1:
        ap.error("several JSON files only with --shards")
    d = docs[0]
    title = " (QUICK smoke run)" if d.get("quick") else ""
    for fn in (sweep_plot, cpu_plot, latency_plot, scaling_plot):
        try:
            fn(d, a.outdir, title)
        except (subprocess.CalledProcessError, KeyError, ValueError, ZeroDivisionError) as e:
            print(f"plot: {fn.__name__} failed: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
