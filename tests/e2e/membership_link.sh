#!/usr/bin/env bash
# `mcrd --membership link` behind a real IGMP-snooping switch: a Linux bridge, with the
# segment's querier on the sender's side (tests/rig/igmp_querier.py, as an upstream router).
# mcrd's own reports register the groups (the bridge's mdb lists them on the relay's port)
# while the relay's host is not an IP member (/proc/net/igmp) and its IP stack never receives
# the datagrams (Udp IgnoredMulti stays put; with `--membership kernel` the same traffic raises
# it by every datagram, so the check can tell the modes apart). Then:
#   - the memberships outlive several membership intervals (mcrd answers the queries);
#   - a local program that joins the group itself still gets it;
#   - a group the kernel leaves for a closed local listener is reported again at once;
#   - a removed rule is left; a link that comes back up is reported again;
#   - group-specific and group-and-source-specific queries are answered, naming only the sources
#     mcrd wants;
#   - force_igmp_version=2 gives version 2 reports and leaves; a version 2 querier switches mcrd
#     to version 2 reports, a version 1 querier to version 1 reports and no leaves;
#   - a malformed query is counted and ignored;
#   - /metrics exports what mcrd's IGMP did (mcr_igmp_*), and nothing of the kind by default;
#   - a killed mcrd's memberships expire at the switch.
#
#   snd (veth0 10.10.1.1, querier) -- [sw: br0, ports p_snd, p_rly] -- (in0 10.10.1.2) rly
#   rly (out0 10.10.2.1) -- (veth0 10.10.2.2) rcv
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init membership_link
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
rig_require_tools jq bridge tcpdump python3

rig_ns snd; rig_ns sw; rig_ns rly; rig_ns rcv
SW=$(rig_nsname sw)
# Memberships expire 6 s after the last report; a leave removes one at once (fast leave).
ip -n "$SW" link add br0 type bridge mcast_snooping 1 mcast_igmp_version 3 \
  mcast_membership_interval 600 mcast_last_member_interval 50 \
  || rig_skip "this kernel's bridge cannot snoop IGMPv3"
ip -n "$SW" addr add 10.10.1.254/24 dev br0
ip link add p_snd netns "$SW" type veth peer name veth0 netns "$(rig_nsname snd)"
ip link add p_rly netns "$SW" type veth peer name in0 netns "$(rig_nsname rly)"
for p in p_snd p_rly; do ip -n "$SW" link set "$p" master br0; ip -n "$SW" link set "$p" up; done
ip -n "$SW" link set br0 up
# (Its flooding stays on: this bridge would not pass the querier's queries to a port that floods
# no multicast, where a switch's snooping always does.)
ip -n "$SW" link set dev p_rly type bridge_slave fastleave on
ip -n "$(rig_nsname snd)" addr add 10.10.1.1/24 dev veth0
ip -n "$(rig_nsname snd)" link set veth0 up
ip -n "$(rig_nsname snd)" route add 224.0.0.0/4 dev veth0
ip -n "$(rig_nsname rly)" addr add 10.10.1.2/24 dev in0
ip -n "$(rig_nsname rly)" link set in0 up
rig_link rly out0 10.10.2.1/24 rcv veth0 10.10.2.2/24
ip -n "$(rig_nsname rcv)" route add 224.0.0.0/4 dev veth0
ip -n "$(rig_nsname rly)" route add 224.0.0.0/4 dev out0

QUERIER=$MCR_SOURCE_DIR/tests/rig/igmp_querier.py
# The segment's querier: a general query every second, answers within 0.5 s.
rig_bg snd querier python3 "$QUERIER" --source 10.10.1.1 --version 3
QPID=$RIG_LAST_PID
# The bridge keeps memberships once it has heard the querier.
for _ in $(seq 50); do
  bridge -n "$SW" -d mdb show | grep -q 'router ports on br0: p_snd' && break
  sleep 0.1
done
bridge -n "$SW" -d mdb show | grep -q 'router ports on br0: p_snd' || rig_fail "the bridge never heard the querier"
sleep 1

SOCK=$RIG_TMP/mcrd.sock
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
start_mcrd() {  # start_mcrd MODE
  rm -f "$SOCK"
  rig_bg rly "mcrd.$1" "$MCR_BIN/mcrd" supervisor --cpus 0 --control-socket-path "$SOCK" \
    --state-file off --metrics-listen 127.0.0.1:9464 --log-level debug --membership "$1"
  MCRD=$RIG_LAST_PID
  rig_wait_file "$SOCK"
}
stop_mcrd() { kill "-${1:-TERM}" "$MCRD"; wait "$MCRD" 2>/dev/null || true; }
# metric 'NAME{LABELS}': its value in a scrape of mcrd's /metrics (in the relay's namespace), or
# nothing when there is no such series.
metric() {
  rig_exec rly python3 -c 'import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
text = opener.open("http://127.0.0.1:9464/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(sys.argv[1] + " "):
        print(int(float(line.split()[-1])))' "$1"
}
m() { metric "$1{interface=\"in0\"}"; }  # the same, for in0
# start_dump NAME FILTER: one-packet tcpdump on in0 in the relay's namespace, returning once it
# listens; DUMP is its pid.
start_dump() {
  rig_bg rly "$1" tcpdump -Z root -ni in0 -c 1 "$2"
  DUMP=$RIG_LAST_PID
  for _ in $(seq 50); do grep -q "listening on" "$RIG_TMP/$1.log" 2>/dev/null && return 0; sleep 0.1; done
  rig_fail "tcpdump $1 did not start: $(cat "$RIG_TMP/$1.log")"
}
# dump_seen SECONDS: true once the tcpdump of start_dump has caught its packet, false if it has
# not within SECONDS (it is then stopped).
dump_seen() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    kill -0 "$DUMP" 2>/dev/null || return 0
    sleep 0.1
  done
  kill "$DUMP" 2>/dev/null; wait "$DUMP" 2>/dev/null || true
  return 1
}
# in_mdb GROUP: the bridge lists GROUP on the relay's port.
in_mdb() { bridge -n "$SW" -j mdb show | jq -e --arg g "$1" \
  '[.[].mdb[]? | select(.port == "p_rly" and .grp == $g)] | length > 0' >/dev/null; }
wait_mdb() {  # wait_mdb GROUP yes|no SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if in_mdb "$1"; then [ "$2" = yes ] && return 0; else [ "$2" = no ] && return 0; fi
    sleep 0.1
  done
  return 1
}
ignored_multi() { rig_exec rly awk '/^Udp:/ { if (h) { print $9; exit } h = 1 }' /proc/net/snmp; }
[ "$(rig_exec rly awk '/^Udp:/ { print $9; exit }' /proc/net/snmp)" = IgnoredMulti ] \
  || rig_skip "/proc/net/snmp has no Udp IgnoredMulti column here"

N=300
# relay GROUP OUT_PORT [LOCAL]: sends N datagrams to GROUP:5000; prints what the receiver
# behind mcrd got (239.2.2.2:OUT_PORT), and with LOCAL also what a listener joined to GROUP
# inside the relay's namespace got.
relay() {  # (in a subshell: $(relay ...))
  local group=$1 port=$2 local_too=${3:-}
  local far_log=far.$group.$port near_log=near.$group
  rm -f "$RIG_TMP/$far_log.ready" "$RIG_TMP/$near_log.ready"  # from an earlier round
  rig_bg rcv "$far_log" "$MCR_BIN/mcrgen" recv --group 239.2.2.2 --port "$port" \
    --interface veth0 --expect "$N" --timeout 8 --json --ready-file "$RIG_TMP/$far_log.ready"
  local far=$RIG_LAST_PID near=
  rig_wait_file "$RIG_TMP/$far_log.ready" 10
  if [ -n "$local_too" ]; then
    rig_bg rly "$near_log" "$MCR_BIN/mcrgen" recv --group "$group" --port 5000 \
      --interface in0 --expect "$N" --timeout 8 --json --ready-file "$RIG_TMP/$near_log.ready"
    near=$RIG_LAST_PID
    rig_wait_file "$RIG_TMP/$near_log.ready" 10
  fi
  rig_exec snd "$MCR_BIN/mcrgen" send --group "$group" --port 5000 --interface veth0 \
    --count "$N" --rate 3000 --ttl 8 --no-gso >/dev/null  # one skb each: IgnoredMulti counts skbs
  wait "$far" || true
  [ -z "$near" ] || wait "$near" || true
  echo "$(unique_of "$RIG_TMP/$far_log.log")" \
    "$([ -n "$near" ] && unique_of "$RIG_TMP/$near_log.log")"
}
unique_of() { sed -n '/^{/,$p' "$1" | jq -r .unique 2>/dev/null || echo none; }

# --- The host joins (the default): its IP stack receives every datagram and drops it. ---
start_mcrd kernel
ctl add --name cam --input-interface in0 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0 >/dev/null
wait_mdb 239.1.1.1 yes 5 || rig_fail "kernel mode: the bridge never registered 239.1.1.1"
before=$(ignored_multi)
read -r got _ <<<"$(relay 239.1.1.1 6000)"
[ "$got" = "$N" ] || rig_fail "kernel mode: relayed $got of $N"
grew=$(( $(ignored_multi) - before ))
[ "$grew" -ge $((N * 9 / 10)) ] || rig_fail "kernel mode: IgnoredMulti grew by $grew, not $N: the check cannot tell the modes apart"
echo "ok: kernel mode relays $got, and the host's IP stack received and dropped $grew"
[ "$(metric mcr_rules)" = 1 ] || rig_fail "kernel mode: no scrape of mcrd's /metrics"
[ -z "$(metric 'mcr_igmp_queries_total{interface="in0"}')" ] \
  || rig_fail "kernel mode exports mcr_igmp_* series: mcrd speaks no IGMP itself there"
stop_mcrd
wait_mdb 239.1.1.1 no 5 || rig_fail "kernel mode: the group stayed registered after mcrd stopped"
# The kernel repeats its leave within the unsolicited report interval (1 s): a late copy would
# unregister the group link mode is about to join.
sleep 1.5

# --- Link mode. ---
start_mcrd link
ctl add --name cam --input-interface in0 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0 >/dev/null
ctl add --name ssm --input-interface in0 --input-group 239.1.1.2 --input-source 10.10.1.1 \
  --input-port 5000 --outputs 239.2.2.2:6001:out0 >/dev/null
wait_mdb 239.1.1.1 yes 3 || rig_fail "link mode: the bridge never registered 239.1.1.1"
wait_mdb 239.1.1.2 yes 3 || rig_fail "link mode: the bridge never registered (10.10.1.1, 239.1.1.2)"
bridge -n "$SW" -j mdb show | jq -e '[.[].mdb[]? | select(.grp == "239.1.1.2" and .src == "10.10.1.1")] | length > 0' \
  >/dev/null || rig_fail "the (S,G) rule was not reported with its source: $(bridge -n "$SW" mdb show)"
! rig_igmp_member rly in0 239.1.1.1 || rig_fail "link mode: the host is an IP member of 239.1.1.1"
! rig_igmp_member rly in0 239.1.1.2 || rig_fail "link mode: the host is an IP member of 239.1.1.2"
state=$(ctl --json list | jq -r '[.rules[].membership | "\(.state) \(.detail)"] | unique | join("; ")')
[[ "$state" == "active link layer; mcrd reports it over IGMPv3" ]] || rig_fail "membership state: $state"
# The groups' MAC addresses are in in0's filter (a NIC would drop them otherwise).
maddr() { rig_exec rly ip maddr show dev in0 | grep -q "link  $1"; }
maddr 01:00:5e:01:01:01 && maddr 01:00:5e:01:01:02 \
  || rig_fail "the groups' MAC addresses are not on in0: $(rig_exec rly ip maddr show dev in0)"

before=$(ignored_multi)
read -r got _ <<<"$(relay 239.1.1.1 6000)"
[ "$got" = "$N" ] || rig_fail "link mode: relayed $got of $N for (*, 239.1.1.1)"
read -r got _ <<<"$(relay 239.1.1.2 6001)"
[ "$got" = "$N" ] || rig_fail "link mode: relayed $got of $N for (10.10.1.1, 239.1.1.2)"
grew=$(( $(ignored_multi) - before ))
[ "$grew" -lt 10 ] || rig_fail "link mode: the host's IP stack still received $grew datagrams"
echo "ok: link mode relays both groups; the host is no IP member and its stack received $grew"

sleep 7  # more than a membership interval (6 s) after the last state-change report
in_mdb 239.1.1.1 && in_mdb 239.1.1.2 || rig_fail "memberships expired: mcrd did not answer the queries"
echo "ok: still registered after 7 s: mcrd answers the queries"

# With no querier asking, what keeps or restores a membership is a report mcrd sends of its
# own accord. (Memberships then last 6 s from the last answer: each such part is kept short,
# and the querier comes back after it.)
kill "$QPID"; wait "$QPID" 2>/dev/null || true
read -r got near <<<"$(relay 239.1.1.1 6000 local)"
[ "$got" = "$N" ] && [ "$near" = "$N" ] \
  || rig_fail "with a local listener on the group: relayed $got, the listener got $near (of $N)"
echo "ok: a local program that joins the group still gets it ($near) while mcrd relays ($got)"
# The listener has closed: the kernel left the group, from the address mcrd reports from, and
# the bridge (fast leave) dropped the port's membership. mcrd must report it again.
sleep 1.5  # the kernel repeats its leave within 1 s
in_mdb 239.1.1.1 || rig_fail "the kernel's leave for the closed listener took 239.1.1.1 from the switch"
echo "ok: mcrd reports the group again when the kernel leaves it for a local program"
rig_bg snd querier.1 python3 "$QUERIER" --source 10.10.1.1 --version 3
QPID=$RIG_LAST_PID

start_dump leave \
  'igmp and igmp[0] = 0x22 and igmp[8] = 3 and igmp[10:2] = 0 and igmp[12:4] = 0xef010101'
ctl remove --name cam >/dev/null
wait_mdb 239.1.1.1 no 2 || rig_fail "239.1.1.1 still registered 2 s after its rule was removed"
dump_seen 2 || rig_fail "mcrd sent no TO_IN({}) for 239.1.1.1"
in_mdb 239.1.1.2 || rig_fail "removing cam also left 239.1.1.2"
! maddr 01:00:5e:01:01:01 || rig_fail "01:00:5e:01:01:01 is still on in0 after its rule went"
echo "ok: removing the rule leaves the group (TO_IN({}) sent, MAC address dropped)"

# The relay's link goes down and comes back, with no querier: the bridge forgets the port's
# memberships, and only mcrd's own reports on link-up can restore them.
sleep 1.5  # an answer to a query just before the querier stops
kill "$QPID"; wait "$QPID" 2>/dev/null || true
ip -n "$(rig_nsname rly)" link set in0 down
wait_mdb 239.1.1.2 no 3 || rig_fail "the bridge kept the memberships of a port whose link went down"
ip -n "$(rig_nsname rly)" link set in0 up
wait_mdb 239.1.1.2 yes 3 || rig_fail "no report when the link came back up"
echo "ok: a link that comes back up is reported again"

# Queries about one group, still with no general querier running, so that every current-state
# report on in0 is an answer to them. A snooping switch that hears a group-specific query cuts
# the group's membership to the last member query time (here 2 x 0.5 s): only an answer keeps it.
# (This part runs longer than a membership interval without a querier: the bridge may drop
# 239.1.1.2 meanwhile, and the answer below re-creates it. The checks read mcrd's answers on the
# wire, not the bridge's table.)
ctl add --name gsq --input-interface in0 --input-group 239.1.1.4 --input-port 5000 \
  --outputs 239.2.2.2:6003:out0 >/dev/null
wait_mdb 239.1.1.4 yes 3 || rig_fail "the bridge never registered 239.1.1.4"
sleep 1.5  # past mcrd's state-change retransmissions
# query_answer NAME SECONDS FILTER QUERIER_ARGS...: sends one query; true if a report on in0
# matched FILTER within SECONDS, false if none did. Either way mcrd must have taken the query
# (mcr_igmp_queries_total), so that "no answer" means mcrd chose not to answer.
query_answer() {
  local name=$1 secs=$2 filter=$3 q0 answered=1
  shift 3
  q0=$(m mcr_igmp_queries_total)
  start_dump "$name" "igmp and igmp[0] = 0x22 and $filter"
  rig_exec snd python3 "$QUERIER" --source 10.10.1.1 "$@" || rig_fail "$name: the query was not sent"
  dump_seen "$secs" && answered=0
  [ "$(m mcr_igmp_queries_total)" -gt "$q0" ] || rig_fail "$name: mcrd never took the query"
  return "$answered"
}
# Group-specific, for a group taken from every source: MODE_IS_EXCLUDE({}) for that group.
query_answer gs 2 'igmp[8] = 2 and igmp[10:2] = 0 and igmp[12:4] = 0xef010104' --group 239.1.1.4 \
  || rig_fail "no MODE_IS_EXCLUDE({}) answer to a group-specific query for 239.1.1.4"
sleep 1.5  # beyond the last member query time the query set at the switch
in_mdb 239.1.1.4 || rig_fail "the group-specific query's answer did not keep 239.1.1.4 at the switch"
echo "ok: a group-specific query is answered, and the membership stays"
# Group-and-source-specific, asking only about a source mcrd does not want: no answer
# (RFC 3376 section 6.3: the answer names only the asked sources the host wants, and an
# empty INCLUDE record is not sent).
! query_answer gss-none 2 'igmp[12:4] = 0xef010102' --group 239.1.1.2 --sources 10.10.1.99 \
  || rig_fail "a query about an unwanted source of 239.1.1.2 was answered"
# ... and about a wanted and an unwanted one: MODE_IS_INCLUDE naming the wanted one only.
query_answer gss 2 'igmp[8] = 1 and igmp[10:2] = 1 and igmp[12:4] = 0xef010102 and igmp[16:4] = 0x0a0a0101' \
  --group 239.1.1.2 --sources 10.10.1.99,10.10.1.1 \
  || rig_fail "no MODE_IS_INCLUDE({10.10.1.1}) answer to a group-and-source-specific query"
echo "ok: a group-and-source-specific query is answered with the wanted sources only"
rig_bg snd querier.2 python3 "$QUERIER" --source 10.10.1.1 --version 3
QPID=$RIG_LAST_PID

# A version 2 query with a wrong checksum, put on the relay's wire by the switch's port. Acted
# on, it would switch mcrd to version 2.
rig_exec sw python3 "$QUERIER" --source 10.10.1.1 --version 2 --bad-checksum --interface p_rly
for _ in $(seq 30); do grep -q 'malformed IGMP packet on in0 ignored' "$RIG_TMP/mcrd.link.log" && break; sleep 0.1; done
grep -q 'malformed IGMP packet on in0 ignored' "$RIG_TMP/mcrd.link.log" || rig_fail "the malformed query was not counted"
detail=$(ctl --json list | jq -r '.rules[] | select(.id == "ssm") | .membership.detail')
[[ "$detail" == *IGMPv3* ]] || rig_fail "after a malformed version 2 query: $detail"
in_mdb 239.1.1.2 || rig_fail "the malformed query disturbed the membership"
echo "ok: a malformed query is counted and ignored"

# net.ipv4.conf.in0.force_igmp_version=2 (read at most once a second): a new group is reported
# with a version 2 report, and a removed one left with a version 2 leave to 224.0.0.2.
rig_exec rly sysctl -qw net.ipv4.conf.in0.force_igmp_version=2
sleep 1.2
start_dump forced_report 'igmp and igmp[0] = 0x16 and igmp[4:4] = 0xef010106'
ctl add --name forced --input-interface in0 --input-group 239.1.1.6 --input-port 5000 \
  --outputs 239.2.2.2:6005:out0 >/dev/null
dump_seen 3 || rig_fail "force_igmp_version=2: no version 2 report for 239.1.1.6"
start_dump forced_leave \
  'dst host 224.0.0.2 and igmp and igmp[0] = 0x17 and igmp[4:4] = 0xef010106'
ctl remove --name forced >/dev/null
dump_seen 3 || rig_fail "force_igmp_version=2: no version 2 leave for 239.1.1.6"
rig_exec rly sysctl -qw net.ipv4.conf.in0.force_igmp_version=0
echo "ok: force_igmp_version=2 gives version 2 reports and leaves"

# A version 2 querier: reports follow it.
kill "$QPID"; wait "$QPID" 2>/dev/null || true
rig_bg snd querier2 python3 "$QUERIER" --source 10.10.1.1 --version 2
QPID=$RIG_LAST_PID
sleep 1.5  # a query of the new version
start_dump v2dump 'igmp and igmp[0] = 0x16 and igmp[4:4] = 0xef010103'
ctl add --name v2 --input-interface in0 --input-group 239.1.1.3 --input-port 5000 \
  --outputs 239.2.2.2:6002:out0 >/dev/null
dump_seen 5 || rig_fail "no IGMPv2 report for 239.1.1.3 under a version 2 querier"
wait_mdb 239.1.1.3 yes 3 || rig_fail "the version 2 report did not register 239.1.1.3"
detail=$(ctl --json list | jq -r '.rules[] | select(.id == "v2") | .membership.detail')
[[ "$detail" == *IGMPv2* ]] || rig_fail "membership detail under a version 2 querier: $detail"
echo "ok: under a version 2 querier mcrd sends version 2 reports"

# What it did, as Prometheus sees it.
[ "$(m mcr_igmp_version)" = 2 ] || rig_fail "mcr_igmp_version is '$(m mcr_igmp_version)', not 2"
[ "$(m mcr_igmp_groups)" = 3 ] || rig_fail "mcr_igmp_groups is '$(m mcr_igmp_groups)', not 3"
[ "$(m mcr_igmp_queries_total)" -ge 10 ] \
  || rig_fail "mcr_igmp_queries_total is '$(m mcr_igmp_queries_total)' after a querier asked every second"
[ "$(m mcr_igmp_malformed_total)" -ge 1 ] || rig_fail "mcr_igmp_malformed_total did not count the bad query"
[ "$(m mcr_igmp_reports_sent_total)" -ge 10 ] \
  || rig_fail "mcr_igmp_reports_sent_total is '$(m mcr_igmp_reports_sent_total)'"
[ "$(m mcr_igmp_send_errors_total)" = 0 ] || rig_fail "mcr_igmp_send_errors_total is '$(m mcr_igmp_send_errors_total)'"
q1=$(m mcr_igmp_queries_total)
sleep 2.5  # two or three queries, and no rule change
q2=$(m mcr_igmp_queries_total)
[ "$q2" -gt "$q1" ] || rig_fail "mcr_igmp_queries_total stayed at $q1 while the querier asked"
echo "ok: mcr_igmp_* at /metrics: version 2, 3 groups, $(m mcr_igmp_queries_total) queries," \
  "$(m mcr_igmp_malformed_total) malformed, $(m mcr_igmp_reports_sent_total) reports sent"

# A version 1 querier: reports follow it, and a removed group is not left (version 1 has no
# leave: the group times out at the querier).
kill "$QPID"; wait "$QPID" 2>/dev/null || true
rig_bg snd querier1 python3 "$QUERIER" --source 10.10.1.1 --version 1
QPID=$RIG_LAST_PID
sleep 1.5
start_dump v1dump 'igmp and igmp[0] = 0x12 and igmp[4:4] = 0xef010105'
ctl add --name v1 --input-interface in0 --input-group 239.1.1.5 --input-port 5000 \
  --outputs 239.2.2.2:6004:out0 >/dev/null
dump_seen 5 || rig_fail "no IGMPv1 report for 239.1.1.5 under a version 1 querier"
detail=$(ctl --json list | jq -r '.rules[] | select(.id == "v1") | .membership.detail')
[[ "$detail" == *IGMPv1* ]] || rig_fail "membership detail under a version 1 querier: $detail"
[ "$(m mcr_igmp_version)" = 1 ] || rig_fail "mcr_igmp_version is '$(m mcr_igmp_version)' under a version 1 querier"
# (The state change's retransmission may come up to 10 s later under version 1: a version 1
# report, which the filter below does not match.)
start_dump v1leave \
  'igmp and (igmp[0] = 0x17 or igmp[0] = 0x22) and (igmp[4:4] = 0xef010105 or igmp[12:4] = 0xef010105)'
ctl remove --name v1 >/dev/null
! dump_seen 2 || rig_fail "mcrd sent a leave for 239.1.1.5 under a version 1 querier"
echo "ok: under a version 1 querier mcrd sends version 1 reports and no leave"

stop_mcrd KILL
# Each within a membership interval (6 s) of the last report; (S,G) ones may go sooner.
for g in 239.1.1.2 239.1.1.3; do
  wait_mdb $g no 8 || { bridge -n "$SW" -d -s mdb show >&2; rig_fail "a killed mcrd's membership of $g did not expire"; }
done
echo "ok: a killed mcrd's memberships expire at the switch"
echo "PASS membership_link"
