#!/usr/bin/env bash
# A storm of link changes (a container host creating and deleting veths) must not make mcrd
# rescan its interfaces for every one: rescans are at least 100 ms apart during a storm, the
# storm's last change is still acted on (a rule waiting for an interface created at the very end
# comes up), and a flow relayed throughout loses nothing.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init link_storm
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
command -v jq >/dev/null || rig_skip "jq not installed"
rig_topology
RLY=$(rig_nsname rly)

SOCK=$RIG_TMP/mcrd.sock
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --cpus 0 --control-socket-path "$SOCK" \
  --state-file off --metrics-listen off --log-level debug
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
ctl add --name main --input-interface in0 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0 >/dev/null
ctl add --name late --input-interface late0 --input-group 239.1.1.2 --input-port 5000 \
  --outputs 239.2.2.2:6001:out0 --allow-missing-interface >/dev/null 2>&1

# A flow through the storm: 20000 datagrams at 5000 pps (4 s).
rig_bg rcv recv "$MCR_BIN/mcrgen" recv --group 239.2.2.2 --port 6000 --interface veth0 \
  --expect 20000 --timeout 30 --json --ready-file "$RIG_TMP/ready"
rpid=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/ready" 10
rig_exec snd "$MCR_BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth0 \
  --count 20000 --rate 5000 >/dev/null &
spid=$!

before=$(grep -c "refreshing interfaces" "$RIG_TMP/mcrd.log" || true)
start=$(date +%s%N)
for i in $(seq 150); do
  ip -n "$RLY" link add "st$i" type veth peer name "sp$i"
  ip -n "$RLY" link set "st$i" up
  ip -n "$RLY" link del "st$i"
done
# The storm's last change: the interface the waiting rule needs.
ip -n "$RLY" link add late0 type veth peer name late1
ip -n "$RLY" addr add 10.10.9.1/24 dev late0
ip -n "$RLY" link set late0 up
ip -n "$RLY" link set late1 up
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))

up=false
for _ in $(seq 60); do
  up=$(ctl --json list | jq -r '.rules[] | select(.id == "late") | .input_up')
  [ "$up" = true ] && break
  sleep 0.05
done
[ "$up" = true ] || rig_fail "the rule waiting for late0 did not come up after the storm"
sleep 0.3  # let a trailing rescan land in the log
rescans=$(( $(grep -c "refreshing interfaces" "$RIG_TMP/mcrd.log" || true) - before ))
limit=$(( elapsed_ms / 100 + 6 ))  # +1 trailing rescan, the rest for mcrd lagging the shell
echo "storm: 600+ link changes in ${elapsed_ms} ms, $rescans rescans (at most $limit allowed)"
[ "$rescans" -ge 1 ] || rig_fail "no rescan at all during the storm"
[ "$rescans" -le "$limit" ] || rig_fail "$rescans rescans in ${elapsed_ms} ms: not spaced 100 ms"

wait "$spid" || rig_fail "sender failed"
wait "$rpid" || rig_fail "the flow lost packets during the storm: $(tail -n 3 "$RIG_TMP/recv.log")"
echo "PASS: storm of link changes: spaced rescans, the last change acted on, no packet lost"
