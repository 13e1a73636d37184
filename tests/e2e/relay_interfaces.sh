#!/usr/bin/env bash
# Interfaces come and go under a running mcrd, which notices through rtnetlink (no restart, no
# mcrctl call): a rule added before its input interface exists relays once it appears; a link
# that goes down and up, and one deleted and re-created (new ifindex), relay again. Also: with
# the metrics endpoint on, SIGTERM ends mcrd within a second, exit status 0.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init relay_interfaces
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
command -v jq >/dev/null || rig_skip "jq not installed"
rig_topology

SOCK=$RIG_TMP/mcrd.sock
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --cpus 0 --control-socket-path "$SOCK" \
  --state-file "$RIG_TMP/state.json" --metrics-listen 127.0.0.1:9464
MCRD=$RIG_LAST_PID
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }

# relay_ok NAME IF_SND GROUP N: N datagrams sent on the sender's IF_SND to GROUP:5000 all arrive
# at 239.2.2.2:<port of the rule>.
relay_ok() {
  local name=$1 ifs=$2 group=$3 port=$4 n=$5
  rig_bg rcv "recv.$name" "$MCR_BIN/mcrgen" recv --group 239.2.2.2 --port "$port" \
    --interface veth0 --expect "$n" --timeout 15 --json --ready-file "$RIG_TMP/$name.ready"
  local rpid=$RIG_LAST_PID
  rig_wait_file "$RIG_TMP/$name.ready" 10
  rig_exec snd "$MCR_BIN/mcrgen" send --group "$group" --port 5000 --interface "$ifs" \
    --count "$n" --rate 5000 >/dev/null
  wait "$rpid" || rig_fail "$name: not everything arrived: $(tail -n 3 "$RIG_TMP/recv.$name.log")"
  echo "ok: $name"
}

# wait_up RULE: until mcrctl list shows the rule's input up (mcrd reacts to rtnetlink).
wait_up() {
  for _ in $(seq 100); do
    [ "$(ctl --json list | jq -r --arg id "$1" '.rules[] | select(.id == $id) | .input_up')" = true ] \
      && return 0
    sleep 0.05
  done
  rig_fail "rule $1 never came up: $(ctl list)"
}

# 1. The input interface appears after the rule was added.
ctl add --name late --input-interface in1 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6001:out0 --allow-missing-interface >/dev/null 2>&1
[ "$(ctl --json list | jq -r '.rules[] | select(.id == "late") | .input_up')" = false ] \
  || rig_fail "rule on a missing interface claims to be up"
rig_link snd veth1 10.10.3.1/24 rly in1 10.10.3.2/24
ip -n "$(rig_nsname snd)" route add 239.1.1.1/32 dev veth1
wait_up late
relay_ok appeared veth1 239.1.1.1 6001 500

# 2. Link down and up.
ctl add --name main --input-interface in0 --input-group 239.1.1.3 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0 >/dev/null
ip -n "$(rig_nsname rly)" link set in0 down
ip -n "$(rig_nsname rly)" link set in0 up
wait_up main
sleep 0.5  # veth carrier
relay_ok flapped veth0 239.1.1.3 6000 500

# 3. Deleted and re-created: a new ifindex.
old=$(ip -n "$(rig_nsname rly)" -o link show in1 | cut -d: -f1)
ip -n "$(rig_nsname rly)" link del in1
rig_link snd veth1 10.10.3.1/24 rly in1 10.10.3.2/24
ip -n "$(rig_nsname snd)" route add 239.1.1.1/32 dev veth1
new=$(ip -n "$(rig_nsname rly)" -o link show in1 | cut -d: -f1)
[ "$old" != "$new" ] || rig_fail "re-created interface kept ifindex $old"
# Until mcrd has seen the deletion, list still shows the rule up on the old interface: wait until
# it captures on the new index (mcrd spaces rescans 100 ms apart in a burst of link changes).
captured() { ctl --json list | jq -r '.rules[] | select(.id == "late") | .input_ifindex'; }
for _ in $(seq 100); do
  [ "$(captured)" = "$new" ] && break
  sleep 0.05
done
[ "$(captured)" = "$new" ] || rig_fail "mcrd never captured on in1's new ifindex $new: $(ctl list)"
wait_up late
relay_ok recreated veth1 239.1.1.1 6001 500

# 4. SIGTERM with metrics on: exit 0 within a second.
rig_exec rly curl -sf http://127.0.0.1:9464/metrics >/dev/null || rig_fail "metrics not served"
start=$(date +%s%N)
kill -TERM "$MCRD"
rc=0
wait "$MCRD" || rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -eq 0 ] || rig_fail "mcrd exited with $rc on SIGTERM"
[ "$ms" -lt 1000 ] || rig_fail "mcrd took $ms ms to exit on SIGTERM"
echo "ok: SIGTERM -> exit 0 in $ms ms"
echo "PASS relay_interfaces"
