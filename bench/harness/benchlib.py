"""Building blocks of MCR's end-to-end benchmark (scripts/bench.sh, shard_scaling.sh).

Processes run inside the namespaces tests/rig/netns.sh made (`ip netns exec NS [taskset -c CPU]
PROG`, which execs, so the pid we hold is the program's own). The rig tears the namespaces down
and kills what is left in them on every exit, so nothing here needs its own cleanup trap.

CPU accounting, per trial (a window from just before the sender starts to the receiver's exit):
- machine: elapsed x CPUs - (idle + iowait) from /proc/stat. The busy columns of /proc/stat are
  tick-sampled and wrong on these VMs; idle time is measured (nohz), so busy is derived from it.
  It includes whatever else runs on the machine, so every result also records the background
  load measured with nothing of ours running.
- relay: the relay process's utime + stime from /proc/PID/stat (clock ticks), and the same time
  at nanosecond resolution as the sum of its threads' /proc/PID/task/*/schedstat run time (on a
  tick-accounting kernel utime + stime is that run time, split by samples).
- attributed: relay + receiver + the sender's system time (rusage of the reaped children) +
  ksoftirqd threads: the work of moving the packets alone, immune to other tenants. The sender's
  user time is left out: mcrgen spin-waits between paced packets, a cost of pacing that is the
  same for every relay (the kernel relay's forwarding runs in the sender's *system* time).
Python 3.9+ standard library only (it also runs on the bare 16-core test machine).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

USER_HZ = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def round_rate(r: float) -> int:
    """Rounds a packet rate to 3 significant digits (rates are searched, not exact)."""
    if r <= 0:
        return 0
    digits = max(0, int(math.floor(math.log10(r))) - 2)
    q = 10 ** digits
    return int(round(r / q) * q)


# ---------------------------------------------------------------------------------------------
# /proc readers


def read_cpu_idle() -> dict:
    """Returns {'idle': idle+iowait ticks, 'n': online CPUs, 'steal': {cpu: ticks}} from
    /proc/stat. Steal is time the hypervisor ran something else while this vCPU wanted to run."""
    n = 0
    idle = 0
    steal = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and not line.startswith("cpu "):
                p = line.split()
                n += 1
                idle += int(p[4]) + int(p[5])
                steal[int(p[0][3:])] = int(p[8]) if len(p) > 8 else 0
    return {"idle": idle, "n": n, "steal": steal}


def proc_ticks(pid: int) -> Optional[int]:
    """utime + stime of a process (all its threads, live or exited) in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def proc_sched_ns(pid: int) -> Optional[int]:
    """Sum of the run time of a process's live threads in ns (/proc/PID/task/*/schedstat)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def ksoftirqd_pids() -> list:
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().startswith("ksoftirqd/"):
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def softnet_dropped() -> int:
    """Packets dropped because a CPU's input backlog was full (all CPUs, whole machine)."""
    total = 0
    try:
        with open("/proc/net/softnet_stat") as f:
            for line in f:
                total += int(line.split()[1], 16)
    except OSError:
        pass
    return total


def parse_snmp(path: str) -> dict:
    """Returns {'Udp': {...}, 'Ip': {...}, ...} from a /proc/net/snmp file."""
    out = {}
    text = read_text(path)
    if text is None:
        return out
    lines = text.splitlines()
    for i in range(0, len(lines) - 1, 2):
        head, vals = lines[i].split(), lines[i + 1].split()
        if head and vals and head[0] == vals[0]:
            out[head[0].rstrip(":")] = dict(zip(head[1:], (int(v) for v in vals[1:])))
    return out


def background_busy(seconds: float = 1.0) -> float:
    """CPUs' worth of work the machine does with nothing of ours running (other tenants)."""
    a = read_cpu_idle()
    t0 = time.monotonic()
    time.sleep(seconds)
    b = read_cpu_idle()
    el = time.monotonic() - t0
    return max(0.0, el * a["n"] - (b["idle"] - a["idle"]) / USER_HZ) / el


def read_text(path: str) -> Optional[str]:
    """The whole file, or None if it cannot be read (a /proc or /etc file this host lacks).
    .gz files are decompressed (/proc/config.gz)."""
    try:
        if path.endswith(".gz"):
            import gzip
            with gzip.open(path, "rt") as f:
                return f.read()
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def host_info() -> dict:
    info = {"kernel": os.uname().release, "machine": os.uname().machine, "cpus": os.cpu_count()}

    def match(text: str, pattern: str) -> Optional[str]:  # group 1 of the first match
        m = re.search(pattern, text, re.M)
        return m.group(1) if m else None

    if (t := read_text("/proc/cpuinfo")) is not None:
        info["cpu_model"] = match(t, r"^model name\s*:\s*(.*)$")
    if (t := read_text("/proc/meminfo")) is not None:
        info["mem_gib"] = round(int(t.split()[1]) / 2**20, 1)  # MemTotal, kB
    if (t := read_text("/etc/debian_version")) is not None:
        info["debian"] = t.strip()
    if (t := read_text("/etc/os-release")) is not None:
        info["os"] = match(t, r'^PRETTY_NAME="?([^"\n]*)')
    if (t := read_text("/proc/config.gz")) is not None:
        hz = match(t, r"^CONFIG_HZ=(\d+)")
        info["kernel_hz"] = int(hz) if hz else None
    for key in ("net.core.rmem_default", "net.core.rmem_max", "net.core.netdev_max_backlog"):
        if (t := read_text("/proc/sys/" + key.replace(".", "/"))) is not None:
            info[key] = int(t)
    return info


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process with stdout/stderr in files, reaped with wait4 so its rusage is known."""

    def __init__(self, argv: list, out_path: str, err_path: Optional[str] = None):
        self.argv = argv
        self.out_path = out_path
        self.err_path = err_path or out_path + ".err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.pid = self.p.pid
        self.rc: Optional[int] = None
        self.cpu_s: Optional[float] = None
        self.user_s: Optional[float] = None
        self.sys_s: Optional[float] = None

    def poll(self) -> Optional[int]:
        if self.rc is None:
            try:
                pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.rc = self.p.poll() if self.p.returncode is None else self.p.returncode
                return self.rc
            if pid:
                self.rc = os.waitstatus_to_exitcode(status)
                self.p.returncode = self.rc
                self.cpu_s = ru.ru_utime + ru.ru_stime
                self.user_s, self.sys_s = ru.ru_utime, ru.ru_stime
        return self.rc

    def wait(self, timeout: float) -> Optional[int]:
        end = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        return self.rc

    def send(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 5.0) -> None:
        self.send(signal.SIGTERM)
        if self.wait(timeout) is None:
            self.send(signal.SIGKILL)
            self.wait(2.0)

    def stdout(self) -> str:
        try:
            with open(self.out_path) as f:
                return f.read()
        except OSError:
            return ""

    def stderr_tail(self, n: int = 5) -> str:
        try:
            with open(self.err_path) as f:
                return " | ".join(f.read().strip().splitlines()[-n:])
        except OSError:
            return ""

    def json(self) -> Optional[dict]:
        text = self.stdout()
        i = text.find("{")
        if i < 0:
            return None
        try:
            return json.loads(text[i:])
        except json.JSONDecodeError:
            return None


class Rig:
    """The namespaces the rig built, with a long-lived anchor process in each so that
    /proc/ANCHOR/net/* reads that namespace's counters without spawning anything."""

    def __init__(self, namespaces: dict, tmp: str, bin_dir: str):
        self.ns = namespaces
        self.tmp = tmp
        self.bin = bin_dir
        self._seq = 0
        self.anchor = {}
        for role in namespaces:
            self.anchor[role] = Proc(["ip", "netns", "exec", namespaces[role], "sleep", "infinity"],
                                     self.path(f"anchor-{role}.log"))
        self.ksoftirqd = ksoftirqd_pids()

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def unique(self, stem: str) -> str:
        self._seq += 1
        return self.path(f"{stem}.{self._seq}")

    def cmd(self, role: str, argv: list, cpu=None) -> list:
        pre = ["ip", "netns", "exec", self.ns[role]]
        if cpu is not None and str(cpu) != "":
            pre += ["taskset", "-c", str(cpu)]
        return pre + [str(a) for a in argv]

    def tool(self, name: str) -> str:
        p = os.path.join(self.bin, name)
        return p if os.path.exists(p) else (shutil.which(name) or name)

    def net(self, role: str, name: str) -> str:
        return f"/proc/{self.anchor[role].pid}/net/{name}"

    def udp(self, role: str) -> dict:
        return parse_snmp(self.net(role, "snmp")).get("Udp", {})

    def close(self) -> None:
        for a in self.anchor.values():
            a.stop(1.0)


class RelayUnavailable(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Relays. Each forwards in0 group:port to out0; `target` is where the receiver listens.


@dataclass
class Flow:
    in_group: str
    in_port: int
    outputs: list  # [(group, port)]


def ip_add(addr: str, n: int) -> str:
    a = [int(x) for x in addr.split(".")]
    v = ((a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]) + n
    return ".".join(str((v >> s) & 255) for s in (24, 16, 8, 0))


def hex_group(addr: str) -> str:
    """A group as /proc/net/igmp and ip_mr_cache print it (network order word, %08X)."""
    a = [int(x) for x in addr.split(".")]
    return "%02X%02X%02X%02X" % (a[3], a[2], a[1], a[0])


class Relay:
    name = "relay"
    label = "relay"
    keeps_group = False  # the kernel path republishes to the input group itself
    counter_lag_s = 0.0  # how stale counters() may be after a burst

    def __init__(self, rig: Rig, cpus: str):
        self.rig = rig
        self.cpus = cpus
        self.procs: list = []
        self.command = ""

    def start(self, flows: list) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        self.procs = []

    def pids(self) -> list:
        return [p.pid for p in self.procs if p.poll() is None]

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def counters(self) -> dict:
        """Cumulative relay-side counters (drops, packets); trials report their differences."""
        return {}

    def loss_signals(self) -> int:
        """A cheap cumulative count that rises when the relay drops (for aborting early)."""
        return 0


class Mcrd(Relay):
    name = "mcrd"
    # Shards read the ring's drop counter (PACKET_STATISTICS) about once a second.
    counter_lag_s = 1.3

    def __init__(self, rig: Rig, cpus: str, control_cpu, ingress: str = "ring", extra=None):
        super().__init__(rig, cpus)
        self.ingress = ingress
        self.control_cpu = control_cpu
        self.extra = list(extra or [])
        self.name = "mcrd" if ingress == "ring" else f"mcrd-{ingress}"
        self.label = f"mcrd ({ingress})"
        self.sock = rig.path("mcrd.sock")

    def ctl(self, *args, timeout: float = 10.0):
        r = subprocess.run([self.rig.tool("mcrctl"), "--socket-path", self.sock, "--json", *args],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"mcrctl {' '.join(args)}: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def start(self, flows: list) -> None:
        conf = {"version": 1, "rules": []}
        for i, f in enumerate(flows):
            conf["rules"].append({
                "name": f"bench{i}",
                "input": {"interface": "in0", "group": f.in_group, "port": f.in_port},
                "outputs": [{"group": g, "port": p, "interface": "out0"} for g, p in f.outputs]})
        conf_path = self.rig.path("mcrd-rules.json")
        with open(conf_path, "w") as fh:
            json.dump(conf, fh)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        argv = [self.rig.tool("mcrd"), "supervisor", "--cpus", self.cpus,
                "--control-socket-path", self.sock, "--state-file", "off",
                "--metrics-listen", "off", "--config", conf_path, "--log-level", "warning",
                "--ingress", self.ingress]
        if self.control_cpu is not None:
            argv += ["--control-cpu", str(self.control_cpu)]
        argv += self.extra
        self.command = " ".join(argv)
        p = Proc(self.rig.cmd("rly", argv), self.rig.unique(f"{self.name}.log"))
        self.procs = [p]
        end = time.monotonic() + 15
        want_outputs = sum(len(f.outputs) for f in flows)
        while time.monotonic() < end:
            if p.poll() is not None:
                self.procs = []
                raise RelayUnavailable(f"mcrd exited with {p.rc}: {p.stderr_tail()}")
            if os.path.exists(self.sock):
                try:
                    rules = self.ctl("list", timeout=2).get("rules", [])
                    active = sum(1 for r in rules for o in r.get("outputs", []) if o.get("active"))
                    if len(rules) == len(flows) and active == want_outputs:
                        self._last = self.counters()
                        return
                except (RuntimeError, json.JSONDecodeError, subprocess.TimeoutExpired):
                    pass
            time.sleep(0.05)
        self.stop()
        raise RelayUnavailable("mcrd did not serve its rules within 15 s")

    def counters(self) -> dict:
        try:
            shards = self.ctl("shards")["shards"]
            stats = self.ctl("stats")["rules"]
        except Exception as e:  # the daemon may have died; the trial records it
            return {"error": str(e)}
        c = {"kernel_drops": sum(s.get("kernel_drops", 0) for s in shards),
             "shard_drops": sum(s.get("drops", 0) for s in shards),
             "unmatched": sum(s.get("unmatched", 0) for s in shards),
             "steering_mismatch": sum(s.get("steering_mismatch", 0) for s in shards),
             "rule_packets": sum(r.get("packets", 0) for r in stats),
             "output_packets": sum(o.get("packets", 0) for r in stats for o in r["outputs"]),
             "output_errors": sum(o.get("errors", 0) for r in stats for o in r["outputs"]),
             "output_drops": sum(o.get("drops", 0) for r in stats for o in r["outputs"])}
        for s in shards:
            c[f"shard{s['shard']}_packets"] = s.get("packets", 0)
        return c


class Socat(Relay):
    """socat as users run it: one `socat -u UDP4-RECV:... UDP4-SENDTO:...` process per stream."""
    name = "socat"
    label = "socat"

    def start(self, flows: list) -> None:
        cmds = []
        for f in flows:
            for g, p in f.outputs:
                argv = ["socat", "-u",
                        f"UDP4-RECV:{f.in_port},ip-add-membership={f.in_group}:in0",
                        f"UDP4-SENDTO:{g}:{p},ip-multicast-if=10.10.2.1"]
                cmds.append(" ".join(argv))
                self.procs.append(Proc(self.rig.cmd("rly", argv, self.cpus),
                                       self.rig.unique("socat.log")))
        self.command = cmds[0] if len(cmds) == 1 else f"{len(cmds)} x " + cmds[0]
        want = {hex_group(f.in_group) for f in flows}
        end = time.monotonic() + 10
        while time.monotonic() < end:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                msg = dead[0].stderr_tail()
                self.stop()
                raise RelayUnavailable(f"socat exited: {msg}")
            try:
                with open(self.rig.net("rly", "igmp")) as fh:
                    igmp = fh.read()
            except OSError:
                igmp = ""
            if all(w in igmp for w in want):
                time.sleep(0.05)
                return
            time.sleep(0.02)
        self.stop()
        raise RelayUnavailable("socat did not join its group within 10 s")

    def counters(self) -> dict:
        u = self.rig.udp("rly")
        return {"udp_rcvbuf_errors": u.get("RcvbufErrors", 0), "udp_in_errors": u.get("InErrors", 0),
                "udp_in": u.get("InDatagrams", 0), "udp_out": u.get("OutDatagrams", 0)}

    def loss_signals(self) -> int:
        return self.rig.udp("rly").get("RcvbufErrors", 0)


class KernelMroute(Relay):
    """The kernel's multicast forwarding, an (S,G) route installed by smcrouted. The relay
    process does nothing per packet: the forwarding runs in the sender's softirq context."""
    name = "kernel"
    label = "kernel (smcroute)"
    keeps_group = True

    def __init__(self, rig: Rig, cpus: str, source: str = "10.10.1.1"):
        super().__init__(rig, cpus)
        self.source = source

    def start(self, flows: list) -> None:
        conf = self.rig.path("smcroute.conf")
        with open(conf, "w") as fh:
            fh.write("phyint in0 enable\nphyint out0 enable\n")
            for f in flows:
                # (S,G): installed in the kernel at start, never flushed, no upcall on the
                # first packet (a (*,G) template would lose the first packets of every source).
                fh.write(f"mroute from in0 source {self.source} group {f.in_group} to out0\n")
        argv = ["smcrouted", "-n", "-N", "-f", conf, "-P", self.rig.path("smcroute.pid"),
                "-u", self.rig.path("smcroute.sock"), "-l", "notice"]
        self.command = " ".join(argv) + "   # " + open(conf).read().strip().replace("\n", "; ")
        self.procs = [Proc(self.rig.cmd("rly", argv, self.cpus), self.rig.unique("smcrouted.log"))]
        want = {hex_group(f.in_group) for f in flows}
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.procs[0].poll() is not None:
                msg = self.procs[0].stderr_tail() or open(self.procs[0].out_path).read()[-300:]
                self.procs = []
                raise RelayUnavailable(f"smcrouted exited: {msg}")
            if all(w in self._mr_cache() for w in want):
                return
            time.sleep(0.02)
        self.stop()
        raise RelayUnavailable("smcrouted installed no route within 10 s")

    def _mr_cache(self) -> str:
        try:
            with open(self.rig.net("rly", "ip_mr_cache")) as fh:
                return fh.read()
        except OSError:
            return ""

    def stop(self) -> None:
        super().stop()
        # MRT_DONE on smcrouted's exit flushes the routes; make sure nothing is left forwarding.
        end = time.monotonic() + 3
        while time.monotonic() < end and self._mr_cache().count("\n") > 1:
            time.sleep(0.05)

    def counters(self) -> dict:
        c = {}
        try:
            with open(self.rig.net("rly", "ip_mr_vif")) as fh:
                for line in fh.read().splitlines()[1:]:
                    p = line.split()
                    c[f"vif_{p[1]}_pkts_in"] = int(p[3])
                    c[f"vif_{p[1]}_pkts_out"] = int(p[5])
        except (OSError, IndexError, ValueError):
            pass
        for line in self._mr_cache().splitlines()[1:]:
            p = line.split()
            if len(p) >= 6:
                c["mfc_wrong_if"] = c.get("mfc_wrong_if", 0) + int(p[5])
        return c


# ---------------------------------------------------------------------------------------------
# Trials


@dataclass
class Placement:
    sender_cpu: str
    receiver_cpu: str
    relay_cpus: str


@dataclass
class Traffic:
    size: int
    rate: int  # packets/s over all streams; 0 = full blast
    count: int
    streams: int = 1
    send_group: str = "239.1.1.1"
    send_port: int = 5000
    recv_group: str = "239.2.2.2"
    recv_port: int = 6000
    recv_streams: int = 1  # receiver sockets: recv_group+i, recv_port+i
    fanout: int = 1  # datagrams delivered per input datagram (outputs of the rule)
    ttl: int = 8  # > 1, or the kernel does not forward
    extra_send: list = field(default_factory=list)


def diff_counters(a: dict, b: dict) -> dict:
    return {k: b[k] - a.get(k, 0) for k in b if isinstance(b[k], (int, float)) and k in a}


class HopStamps:
    """The time a relay adds per datagram, measured from outside it: two tcpdumps take the kernel's
    receive stamp of a sample of the datagrams (1 in 64, by mcrgen's sequence number) where they
    enter the relay's namespace (in0) and where they enter the receiver's (veth0), and the stamps
    are joined by sequence number. Both stamps are taken as a packet reaches a namespace, so the
    sender's and the receiver's scheduling stay outside the interval, unlike in the end-to-end
    latency, whose start is the sender's clock read before sendmsg."""

    # mcrgen's sequence number is big-endian at payload offset 8: udp[23] is its low byte.
    FILTER = "udp and udp[23] & 63 = 0"
    SNAPLEN = 64  # Ethernet, IPv4, UDP and the first 22 payload bytes: the sequence number

    def __init__(self, rig: Rig, cpu):
        self.caps = []
        for role, ifname in (("rly", "in0"), ("rcv", "veth0")):
            path = rig.unique(f"hop-{role}.pcap")
            # -Z root: tcpdump otherwise drops to a user 'tcpdump', which a bare machine lacks
            argv = ["tcpdump", "-Z", "root", "-i", ifname, "-w", path, "-s", self.SNAPLEN, "-n",
                    "-B", "8192",
                    "--immediate-mode", "--time-stamp-precision=nano", self.FILTER]
            proc = Proc(rig.cmd(role, argv, cpu), path + ".out")
            self.caps.append((proc, path))
        end = time.monotonic() + 5
        for proc, _ in self.caps:
            while "listening on" not in proc.stderr_tail(20):
                if proc.poll() is not None or time.monotonic() > end:
                    self.stop()
                    raise RuntimeError(f"tcpdump did not start: {proc.stderr_tail()}")
                time.sleep(0.01)

    def stop(self) -> None:
        for proc, _ in self.caps:
            proc.send(signal.SIGINT)
            if proc.wait(5) is None:
                proc.stop()

    @staticmethod
    def read(path: str) -> dict:
        """{sequence number: stamp in ns} of a nanosecond pcap of Ethernet frames."""
        out = {}
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return out
        if len(data) < 24 or int.from_bytes(data[:4], "little") != 0xa1b23c4d:
            return out  # not a little-endian nanosecond pcap (or empty)
        off = 24
        while off + 16 <= len(data):
            sec, nsec, incl = (int.from_bytes(data[off + i:off + i + 4], "little")
                               for i in (0, 4, 8))
            frame = data[off + 16:off + 16 + incl]
            off += 16 + incl
            if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
                continue
            udp = 14 + (frame[14] & 0x0f) * 4
            if len(frame) >= udp + 16:
                out[int.from_bytes(frame[udp + 16:udp + 24], "big")] = sec * 10**9 + nsec
        return out

    def finish(self) -> dict:
        self.stop()
        start, end = (self.read(path) for _, path in self.caps)
        both = sorted(start.keys() & end.keys())
        # In sequence order: whether the slow ones come together (a stall) or spread (queueing).
        series = [round((end[s] - start[s]) / 1e3, 1) for s in both]
        hops = sorted(series)
        res = {"samples": len(hops), "series_us": series,
               "input_only": len(start.keys() - end.keys()),
               "output_only": len(end.keys() - start.keys()),
               "tcpdump": [proc.stderr_tail(3) for proc, _ in self.caps]}
        if hops:
            pick = lambda q: round(hops[min(len(hops) - 1, int(q * len(hops)))], 1)
            res.update(p50=pick(0.5), p90=pick(0.9), p99=pick(0.99), max=round(hops[-1], 1))
        return res


def run_trial(rig: Rig, relay: Relay, place: Placement, t: Traffic, *, kind: str,
              abort_on_loss: bool = False, idle_exit: float = 0.5,
              wait_counters: bool = False, hop_stamps: bool = False) -> dict:
    """One measured transfer: receiver joins, sender sends t.count packets, CPU deltas taken.
    wait_counters: after a lossy run, wait until the relay's drop counters have caught up (else
    its drops may show in the next trial's counters). Returns a flat dict (see the module
    docstring for the CPU figures)."""
    # mcrgen recv tells streams apart by the stream id in the payload, so the copies a fan-out
    # delivers on its other sockets count as duplicates of stream 0: there the receiver runs until
    # idle and delivery is judged on every valid datagram received.
    expect = t.count * t.fanout
    recv_expect = expect if t.fanout == 1 else 0
    est = t.count / t.rate if t.rate else t.count / 100_000
    recv_timeout = est * 2 + 10
    ready = rig.unique("ready")
    mcrgen = rig.tool("mcrgen")
    # Latency trials take each datagram's arrival time from the kernel (when it reached the
    # receiver's namespace), so the receiver's own scheduling delay — it shares a CPU with the
    # relay — is not charged to the path; elsewhere the receiver skips the per-datagram stamp.
    stamp = "kernel" if kind.startswith("latency") else "user"
    recv = Proc(rig.cmd("rcv", [mcrgen, "recv", "--group", t.recv_group, "--port", t.recv_port,
                                "--interface", "veth0", "--streams", t.recv_streams,
                                "--expect", recv_expect, "--timeout", f"{recv_timeout:.1f}",
                                "--idle-exit", idle_exit, "--json", "--ready-file", ready,
                                "--rx-timestamp", stamp],
                        place.receiver_cpu), rig.unique("recv.json"))
    end = time.monotonic() + 10
    while not os.path.exists(ready):
        if recv.poll() is not None or time.monotonic() > end:
            recv.stop()
            raise RuntimeError(f"receiver did not get ready: {recv.stderr_tail()}")
        time.sleep(0.005)

    # The tcpdumps run on the sender's CPU and wake for 1 datagram in 64. Their capture filters
    # run in the kernel for every datagram where it arrives: at veth0 inside the relay's send.
    hop = HopStamps(rig, place.sender_cpu) if hop_stamps else None
    before = relay.counters()
    udp_rcv0 = rig.udp("rcv").get("RcvbufErrors", 0)
    loss0 = relay.loss_signals()
    sn0 = softnet_dropped()
    relay_pids = relay.pids()
    r_ticks0 = sum(proc_ticks(p) or 0 for p in relay_pids)
    r_ns0 = sum(proc_sched_ns(p) or 0 for p in relay_pids)
    k_ns0 = sum(proc_sched_ns(p) or 0 for p in rig.ksoftirqd)
    cpu0 = read_cpu_idle()
    t0 = time.monotonic()

    send = Proc(rig.cmd("snd", [mcrgen, "send", "--group", t.send_group, "--port", t.send_port,
                                "--interface", "veth0", "--rate", t.rate, "--count", t.count,
                                "--size", t.size, "--ttl", t.ttl, "--streams", t.streams,
                                "--json", *t.extra_send], place.sender_cpu),
                rig.unique("send.json"))
    aborted = None
    hard_end = t0 + est * 3 + 30
    while send.poll() is None:
        time.sleep(0.02)
        if abort_on_loss and aborted is None:
            if rig.udp("rcv").get("RcvbufErrors", 0) > udp_rcv0:
                aborted = "receiver socket overflow"
            elif relay.loss_signals() > loss0:
                aborted = "relay socket overflow"
            if aborted:
                send.send(signal.SIGINT)
        if time.monotonic() > hard_end:
            aborted = aborted or "sender overran its time"
            send.stop()
    if aborted:
        recv.send(signal.SIGINT)
    if recv.wait(idle_exit + 5 + (0 if aborted else est)) is None:
        recv.send(signal.SIGINT)
        recv.wait(5)
        if recv.poll() is None:
            recv.stop()
    t1 = time.monotonic()
    cpu1 = read_cpu_idle()
    r_ticks1 = sum(proc_ticks(p) or 0 for p in relay_pids)
    r_ns1 = sum(proc_sched_ns(p) or 0 for p in relay_pids)
    k_ns1 = sum(proc_sched_ns(p) or 0 for p in rig.ksoftirqd)
    sn1 = softnet_dropped()
    udp_rcv1 = rig.udp("rcv").get("RcvbufErrors", 0)

    sj = send.json() or {}
    rj = recv.json() or {}
    sent = int(sj.get("sent", 0))
    unique = int(rj.get("unique", 0))
    complete = unique >= expect
    if t.fanout > 1:  # see above: every valid copy counts
        complete = unique == sent and int(rj.get("valid", 0)) >= expect
        unique = int(rj.get("valid", 0))
    if not complete and relay.counter_lag_s and wait_counters:
        time.sleep(relay.counter_lag_s)  # so that this trial's drops show in its counters
    after = relay.counters()
    elapsed = t1 - t0
    busy = max(0.0, elapsed * cpu0["n"] - (cpu1["idle"] - cpu0["idle"]) / USER_HZ)
    relay_s = (r_ticks1 - r_ticks0) / USER_HZ
    relay_sched_s = (r_ns1 - r_ns0) / 1e9
    ksoft_s = (k_ns1 - k_ns0) / 1e9
    # The sender's user time is mostly its pacer spinning between packets (mcrgen spin-waits gaps
    # under 1 ms), the same for every relay and no part of moving a packet; its system time holds
    # the send path and, for the kernel relay, the whole forwarding path (softirq in its context).
    attributed = relay_sched_s + ksoft_s + (send.sys_s or 0) + (recv.cpu_s or 0)
    denom = unique if unique else None
    input_pkts = sent if sent else None

    def per(x, n):
        return round(x / n * 1e6, 4) if n else None

    send_pps = float(sj.get("pps", 0.0))
    res = {
        "kind": kind, "relay": relay.name, "size": t.size, "streams": t.streams,
        "outputs": t.fanout,
        "rate_requested": t.rate, "count": t.count, "expect": expect,
        "sent": sent, "send_pps": round(send_pps, 1), "send_retries": sj.get("retries"),
        "received": rj.get("received"), "unique": unique, "lost": rj.get("lost"),
        "reordered": rj.get("reordered"), "duplicated": rj.get("duplicated"),
        "corrupted": rj.get("corrupted"), "late": rj.get("late"),
        "recv_pps": round(float(rj.get("pps", 0.0)), 1),
        "delivered_fraction": round(unique / (sent * t.fanout), 6) if sent else 0.0,
        "delivered_pps": round(send_pps * unique / sent, 1) if sent else 0.0,
        "latency_us": rj.get("latency_us"),
        "per_stream": [{k: s.get(k) for k in ("stream", "unique", "lost", "reordered",
                                              "duplicated")} for s in rj.get("streams", [])]
        if t.recv_streams > 1 else None,
        "receiver_socket_drops": rj.get("socket_drops"),
        "zero_loss": bool(sent == t.count and complete and not aborted
                          and (rj.get("lost") or 0) == 0),
        "in_order": (rj.get("reordered") or 0) == 0 and (t.fanout > 1 or (rj.get("duplicated") or 0) == 0),
        "aborted": aborted,
        "window_s": round(elapsed, 4),
        "machine_busy_s": round(busy, 4),
        "machine_busy_cpus": round(busy / elapsed, 3) if elapsed else None,
        "machine_cpu_us_per_pkt": per(busy, denom),
        "machine_excl_sender_user_us_per_pkt": per(max(0.0, busy - (send.user_s or 0)), denom),
        "relay_cpu_s": round(relay_s, 4),
        "relay_cpu_sched_s": round(relay_sched_s, 6),
        "relay_cpu_us_per_pkt": per(relay_sched_s, denom),
        "relay_cpu_us_per_input_pkt": per(relay_sched_s, input_pkts),
        "sender_user_s": round(send.user_s or 0, 4), "sender_sys_s": round(send.sys_s or 0, 4),
        "receiver_cpu_s": round(recv.cpu_s or 0, 4),
        "ksoftirqd_cpu_s": round(ksoft_s, 4),
        "attributed_cpu_s": round(attributed, 4),
        "attributed_cpu_us_per_pkt": per(attributed, denom),
        "softnet_dropped": sn1 - sn0,
        "receiver_udp_rcvbuf_errors": udp_rcv1 - udp_rcv0,
        "relay_counters": diff_counters(before, after),
        "relay_alive": relay.alive(),
        "sender_rc": send.rc, "receiver_rc": recv.rc,
    }
    if hop:
        res["hop_us"] = hop.finish()
    if not sj:
        res["sender_error"] = send.stderr_tail()
    if not rj:
        res["receiver_error"] = recv.stderr_tail()
    if "error" in after:
        res["relay_error"] = after["error"]
    return res


def brief(r: dict) -> str:
    lat = r.get("latency_us") or {}
    s = (f"{r['relay']:<10} {r['kind']:<9} size {r['size']:>5} rate {r['rate_requested'] or 'max':>7}"
         f" sent {r['sent']:>7} @ {r['send_pps'] / 1e3:7.1f}k  got {r['unique']:>7}"
         f" ({100 * r['delivered_fraction']:6.2f}%)  relay {r['relay_cpu_us_per_pkt'] or 0:6.2f}"
         f" us/pkt  machine {r['machine_cpu_us_per_pkt'] or 0:6.2f} us/pkt")
    if lat.get("p99") is not None:
        s += f"  lat p50/p99 {lat['p50']:.0f}/{lat['p99']:.0f} us"
    hop = r.get("hop_us") or {}
    if hop.get("p99") is not None:
        s += f"  hop p50/p99 {hop['p50']:.0f}/{hop['p99']:.0f} us ({hop['samples']})"
    if r.get("aborted"):
        s += f"  [aborted: {r['aborted']}]"
    return s


# ---------------------------------------------------------------------------------------------
# Zero-loss rate search


def search_zero_loss(try_rate: Callable, start: float, cap: float, *, search_count: int,
                     confirm_count: int, precision: float, max_steps: int, floor: float) -> dict:
    """Highest paced rate at which every packet arrives.

    try_rate(rate, count, kind) -> (passed, trial) runs one (retried) trial. The search starts at
    `start`, climbs x1.3 (up to `cap`, what the sender does unpaced) or halves until a pass and a
    failure bracket the answer, bisects geometrically until fail/pass <= precision, then confirms
    the best passing rate with confirm_count packets (retrying; then 10% lower, twice; then
    half). The result's pps is what the sender achieved in the confirming run."""
    lo, hi = 0, None
    r = round_rate(min(cap, start))
    steps = []
    for _ in range(max_steps):
        if r < floor:
            break
        ok, tr = try_rate(r, search_count, "search")
        steps.append({"rate": r, "send_pps": tr.get("send_pps"), "zero_loss": ok,
                      **({"where": tr["where"]} if "where" in tr else {})})
        if ok:
            lo = r
            if hi is None:
                if r >= cap * 0.97:
                    break  # as fast as the sender goes
                r = round_rate(min(cap, r * 1.3))
                continue
        else:
            hi = r
        if lo == 0:
            r = round_rate(hi / 2)
            continue
        if hi / lo <= precision:
            break
        r = round_rate((lo * hi) ** 0.5)
        if r in (lo, hi):
            break
    confirmed = None
    rate = lo
    for step in (0.9, 0.9, 0.5, None):  # the best passing rate, 10% lower twice, then half
        if rate < floor:
            break
        ok, tr = try_rate(rate, confirm_count, "confirm")
        if ok:
            confirmed = tr
            break
        if step is None:
            break
        rate = round_rate(rate * step)
    return {"steps": steps, "confirmed": confirmed,
            "rate_requested": rate if confirmed else 0,
            "pps": confirmed["send_pps"] if confirmed else 0.0,
            "packets": confirmed["sent"] if confirmed else 0,
            "sender_limited": bool(confirmed and hi is None and lo >= cap * 0.97),
            "upper_bound_failed": hi}
