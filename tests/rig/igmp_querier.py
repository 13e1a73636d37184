#!/usr/bin/env python3
"""A minimal IGMP querier for the tests: general queries to 224.0.0.1 at a fixed interval, as the
upstream router of a segment sends them. (A Linux bridge's own querier registers groups on this
kernel but does not count as a querier for its forwarding: with an external one it forwards a
registered group to a port that floods nothing else.) Runs until killed.

  igmp_querier.py --source 10.10.1.1 [--version 1|2|3] [--interval 1] [--max-resp-ds 5]
  igmp_querier.py --source 10.10.1.1 --bad-checksum --interface p_rly  # one malformed query
  igmp_querier.py --source 10.10.1.1 --group 239.1.1.4 [--sources 10.10.1.1,10.10.1.9]
      # one version 3 group-specific (or group-and-source-specific) query, sent to the group
      # as a querier does after a leave (RFC 3376 section 6.6.3)
"""
import argparse
import socket
import struct
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def query(version: int, max_resp_ds: int, group: str = "0.0.0.0", sources=()) -> bytes:
    g = socket.inet_aton(group)
    if version == 1:  # RFC 1112: no max response time (the code field is 0)
        m = bytearray(struct.pack("!BBH4s", 0x11, 0, 0, g))
    elif version == 2:
        m = bytearray(struct.pack("!BBH4s", 0x11, max_resp_ds, 0, g))
    else:  # version 3: S flag 0, QRV 2, QQIC 1 s (the interval is the caller's)
        m = bytearray(struct.pack("!BBH4sBBH", 0x11, max_resp_ds, 0, g, 2, 1, len(sources)))
        for src in sources:
            m += socket.inet_aton(src)
    struct.pack_into("!H", m, 2, checksum(bytes(m)))
    return bytes(m)


def send_raw(a) -> None:
    """One general query straight onto the wire of --interface: with a wrong IGMP checksum (a
    snooping bridge would drop it before it reached anyone), or with an 802.1Q tag."""
    m = bytearray(query(a.version, a.max_resp_ds))
    if a.bad_checksum:
        m[2] ^= 0xFF
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(m), 0, 0, 1, 2, 0,
                               socket.inet_aton(a.source), socket.inet_aton("224.0.0.1")))
    struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
    tag = b"" if a.tag is None else struct.pack("!HH", 0x8100, a.tag)
    eth = bytes.fromhex("01005e000001") + bytes.fromhex("020000000001") + tag + b"\x08\x00"
    p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    p.bind((a.interface, 0))
    p.send(eth + bytes(ip) + bytes(m))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, help="this host's address on the segment")
    ap.add_argument("--version", type=int, choices=(1, 2, 3), default=3)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--max-resp-ds", type=int, default=5, help="max response time, 1/10 s")
    ap.add_argument("--bad-checksum", action="store_true",
                    help="send one query with a wrong IGMP checksum out of --interface")
    ap.add_argument("--tag", type=lambda v: int(v, 0),
                    help="send one query with this 802.1Q tag control word (e.g. 0x0064: VLAN "
                         "100; 0xa000: priority 5, VLAN 0) out of --interface")
    ap.add_argument("--interface", help="with --bad-checksum or --tag")
    ap.add_argument("--group", help="send one version 3 query for this group, to it, and exit")
    ap.add_argument("--sources", default="", help="with --group: the sources asked about")
    a = ap.parse_args()
    if a.bad_checksum or a.tag is not None:
        send_raw(a)
        return
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.source))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([0x94, 4, 0, 0]))  # Router Alert
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    if a.group:
        sources = [x for x in a.sources.split(",") if x]
        s.sendto(query(3, a.max_resp_ds, a.group, sources), (a.group, 0))
        return
    msg = query(a.version, a.max_resp_ds)
    while True:
        s.sendto(msg, ("224.0.0.1", 0))
        time.sleep(a.interval)


if __name__ == "__main__":
    main()
