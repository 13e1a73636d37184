#!/usr/bin/env bash
# mcrd between the peers a network engineer checks a relay with: iperf2 sends a multicast
# stream (its datagrams carry sequence numbers and send times), iperf2 servers on a multicast and
# a unicast output count what arrives (loss, order, latency), and tcpdump reads the wire: every
# relayed datagram is its own IP packet of the input's size, from the output interface's address,
# with the output's TTL and DSCP, DF clear, and a correct UDP checksum. The relay's egress computes checksums
# in software here (checksum offload off on out0), so tcpdump checks what its segmentation of each
# batched send produced.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init relay_iperf_tcpdump
for b in mcrd mcrctl; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
for c in iperf tcpdump ethtool; do command -v "$c" >/dev/null || rig_skip "$c not installed"; done
rig_topology
rig_exec rly ethtool -K out0 tx off >/dev/null

SOCK=$RIG_TMP/mcrd.sock
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --control-socket-path "$SOCK" \
  --state-file "$RIG_TMP/state.json" --metrics-listen off
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
ctl add --input-interface in0 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0:ttl=3:dscp=34,10.10.2.2:7000:out0 >/dev/null
# A second stream for a trickle: an iperf server rejoins its group between clients, so a second
# client on the first stream would lose datagrams at the receiver.
ctl add --input-interface in0 --input-group 239.1.1.1 --input-port 5001 \
  --outputs 239.2.2.2:6001:out0:ttl=3:dscp=34 >/dev/null

# Servers: without -i each prints one report, when the client's closing datagram (relayed too)
# arrives. -e adds latency (the namespaces share a clock).
# -w: a receive buffer for bursts while the receiver waits for a CPU (the default 208 KiB holds
# ~150 datagrams of this size, a few milliseconds).
rig_bg rcv iperf_mc iperf -s -u -B 239.2.2.2%veth0 -p 6000 -e -w 8M
rig_bg rcv iperf_uc iperf -s -u -B 10.10.2.2 -p 7000 -e -w 8M
rig_bg rcv tcpdump tcpdump -i veth0 -nn -c 3000 -w "$RIG_TMP/wire.pcap" udp and dst 239.2.2.2
for _ in $(seq 50); do grep -q 'listening on' "$RIG_TMP/tcpdump.log" && break; sleep 0.1; done
sleep 0.5  # the iperf servers join and bind at start; no readiness line to wait for

# First a trickle on the second stream (10 datagrams/s: each sent alone), then 80 Mb/s of 1200-byte datagrams (~8k/s:
# several per ring block, so the relay batches its sends). The wire must not tell them apart.
rig_exec snd iperf -c 239.1.1.1%veth0 -p 5001 -u -b 96k -l 1200 -t 1 -T 1 >"$RIG_TMP/trickle.log" 2>&1 \
  || rig_fail "iperf client failed: $(cat "$RIG_TMP/trickle.log")"
rig_exec snd iperf -c 239.1.1.1%veth0 -p 5000 -u -b 80M -l 1200 -t 3 -T 1 -e >"$RIG_TMP/client.log" 2>&1 \
  || rig_fail "iperf client failed: $(cat "$RIG_TMP/client.log")"
SENT=$(sed -n 's/.*Sent \([0-9]*\) datagrams.*/\1/p' "$RIG_TMP/client.log" | tail -n1)
[ -n "$SENT" ] && [ "$SENT" -gt 10000 ] || rig_fail "client sent '${SENT}' datagrams: $(cat "$RIG_TMP/client.log")"

# report LOG: "lost total" from the server's final report, once it is there.
report() {
  local i line
  for i in $(seq 50); do
    line=$(grep -E ' [0-9]+/ *[0-9]+ +\(' "$RIG_TMP/$1.log" | tail -n1 || true)
    [ -n "$line" ] && break
    sleep 0.1
  done
  [ -n "$line" ] || rig_fail "no report from $1: $(cat "$RIG_TMP/$1.log")"
  sed -E 's#.* ([0-9]+)/ *([0-9]+) +\(.*#\1 \2#' <<<"$line"
}
for s in iperf_mc iperf_uc; do
  read -r lost total < <(report $s)
  echo "$s: $lost lost of $total, client sent $SENT"
  # The client's count includes its closing datagram, which the server does not count as data
  # (it reports the sequence range up to it, so a lost tail still shows as lost).
  [ "$lost" = 0 ] && [ "$total" -ge $((SENT - 1)) ] && [ "$total" -le "$SENT" ] \
    || rig_fail "$s: $lost lost of $total (sent $SENT); relay: $(ctl stats)
receiving namespace: $(rig_exec rcv grep '^Udp:' /proc/net/snmp)"
  ! grep -q 'out-of-order' "$RIG_TMP/$s.log" || rig_fail "$s: $(grep out-of-order "$RIG_TMP/$s.log")"
done

for _ in $(seq 50); do grep -q 'packets captured' "$RIG_TMP/tcpdump.log" && break; sleep 0.1; done
grep -q '^3000 packets captured' "$RIG_TMP/tcpdump.log" || rig_fail "tcpdump: $(cat "$RIG_TMP/tcpdump.log")"
tcpdump -nn -vv -r "$RIG_TMP/wire.pcap" 2>/dev/null >"$RIG_TMP/wire.txt"
# With -vv each packet is two lines: the IP header, then the UDP one.
ip_re='^[0-9:.]+ IP \(tos 0x88, ttl 3, id [0-9]+, offset 0, flags \[none\], proto UDP \(17\), length 1228\)$'
udp_re='^ +10\.10\.2\.1\.[0-9]+ > 239\.2\.2\.2\.600[01]: \[udp sum ok\] UDP, length 1200$'
headers=$(grep -cE '^[0-9:.]+ IP ' "$RIG_TMP/wire.txt" || true)
good_ip=$(grep -cE "$ip_re" "$RIG_TMP/wire.txt" || true)
good_udp=$(grep -cE "$udp_re" "$RIG_TMP/wire.txt" || true)
echo "wire: $headers packets; $good_ip with TTL 3, DSCP 34 (AF41), 1228 bytes; $good_udp from 10.10.2.1 with a correct UDP checksum"
[ "$headers" = 3000 ] && [ "$good_ip" = 3000 ] && [ "$good_udp" = 3000 ] \
  || rig_fail "unexpected packets on the wire: $(grep -vE "$ip_re|$udp_re" "$RIG_TMP/wire.txt" | head -n 6)"
echo "PASS relay_iperf_tcpdump"
