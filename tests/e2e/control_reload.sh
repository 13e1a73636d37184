#!/usr/bin/env bash
# Relaying driven the way users drive it: a rule from --config and one added with the seed's
# `mcrctl add` syntax both relay; then, while a stream flows through the config rule, SIGHUP and
# `mcrctl reload` apply an edited config (one rule removed, one added, one changed) and
# `mcrctl add/remove` change other rules — the flowing stream loses nothing and stays in order.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init control_reload
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
command -v jq >/dev/null || rig_skip "jq not installed"
rig_topology

SOCK=$RIG_TMP/mcrd.sock
CONF=$RIG_TMP/mcr.conf
N=20000
RATE=4000
rule() {  # rule NAME IN_GROUP OUT_GROUP OUT_PORT
  printf '{"name": "%s", "input": {"interface": "in0", "group": "%s", "port": 5000},
           "outputs": [{"group": "%s", "port": %s, "interface": "out0"}]}' "$1" "$2" "$3" "$4"
}
printf '{"version": 1, "rules": [%s, %s, %s]}\n' "$(rule flow 239.1.1.1 239.2.2.1 6000)" \
  "$(rule old 239.1.1.2 239.2.2.2 6000)" "$(rule edited 239.1.1.3 239.2.2.3 6000)" >"$CONF"

rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --control-socket-path "$SOCK" --config "$CONF" \
  --state-file "$RIG_TMP/state.json" --metrics-listen off
MCRD=$RIG_LAST_PID
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
ctl ping >/dev/null
ctl add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.9:6000:out0 >/dev/null

recv() {  # recv NAME GROUP PORT EXPECT
  rig_bg rcv "recv.$1" "$MCR_BIN/mcrgen" recv --group "$2" --port "$3" --interface veth0 \
    --expect "$4" --timeout 30 --json --ready-file "$RIG_TMP/$1.ready"
  eval "RECV_$1=\$RIG_LAST_PID"
  rig_wait_file "$RIG_TMP/$1.ready" 10
}
finish() {  # finish NAME: waits for the receiver (in this shell: it is our child)
  local pid; eval "pid=\$RECV_$1"
  wait "$pid" || rig_fail "receiver $1 failed: $(cat "$RIG_TMP/recv.$1.log")"
}
report() { sed -n '/^{/,$p' "$RIG_TMP/recv.$1.log"; }  # report NAME: its JSON report
# intact NAME WHAT: receiver NAME got all N datagrams, none lost, duplicated, reordered or
# corrupted; otherwise fails with "WHAT disturbed ...".
intact() {
  local r; r=$(report "$1")
  echo "$1: $(jq -c '{unique, lost, duplicated, reordered, corrupted}' <<<"$r")"
  [ "$(jq '.unique' <<<"$r")" = "$N" ] && [ "$(jq '.lost + .duplicated + .reordered + .corrupted' <<<"$r")" = 0 ] \
    || rig_fail "$2 disturbed the stream"
}

# 1. Both rules relay.
recv cfg 239.2.2.1 6000 200
recv ctl 239.2.2.9 6000 200
rig_exec snd "$MCR_BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth0 --count 200 --rate 2000 >/dev/null
rig_exec snd "$MCR_BIN/mcrgen" send --group 239.1.1.9 --port 5000 --interface veth0 --count 200 --rate 2000 >/dev/null
for r in cfg ctl; do
  finish $r
  [ "$(report $r | jq '.unique')" -ge 200 ] || rig_fail "rule $r did not relay"
done
[ "$(ctl --json stats | jq '[.rules[] | select(.id == "flow")][0].outputs[0].packets')" -ge 200 ] \
  || rig_fail "stats do not count relayed packets"
echo "ok: config rule and mcrctl rule relay"

# 2. Changes while a stream flows.
recv flow 239.2.2.1 6000 "$N"
rig_bg snd send "$MCR_BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth0 --count "$N" --rate "$RATE"
SENDER=$RIG_LAST_PID
sleep 1
printf '{"version": 1, "rules": [%s, %s, %s]}\n' "$(rule flow 239.1.1.1 239.2.2.1 6000)" \
  "$(rule edited 239.1.1.3 239.2.2.3 6001)" "$(rule new 239.1.1.4 239.2.2.4 6000)" >"$CONF"
kill -HUP "$MCRD"
for _ in $(seq 50); do grep -q "reloaded" "$RIG_TMP/mcrd.log" && break; sleep 0.1; done
grep -q "reloaded .*: 1 added, 1 removed, 1 changed, 2 unchanged" "$RIG_TMP/mcrd.log" \
  || rig_fail "SIGHUP did not apply the difference: $(grep reload "$RIG_TMP/mcrd.log")"
ctl reload | grep -q "0 added, 0 removed, 0 changed" || rig_fail "second reload was not a no-op"
for i in $(seq 1 20); do
  ctl add --input-interface in0 --input-group 239.1.3.$i --input-port 5000 --name "churn$i" \
    --outputs 239.2.3.$i:6000:out0 >/dev/null
done
for i in $(seq 1 20); do ctl remove --name "churn$i" >/dev/null; done
wait "$SENDER" || rig_fail "sender failed"
finish flow
intact flow "the changes to other rules"
IDS=$(ctl --json list | jq -r '[.rules[] | select(.id | startswith("churn") | not) | .input.group] | join(",")')
[ "$IDS" = "239.1.1.1,239.1.1.3,239.1.1.9,239.1.1.4" ] || rig_fail "unexpected rules after reload: $IDS"
[ "$(ctl --json list | jq '[.rules[] | select(.id == "edited")][0].outputs[0].port')" = 6001 ] \
  || rig_fail "edited rule not changed"
echo "ok: changes elsewhere leave a flowing stream alone"

# 3. Editing the flowing rule itself — a monitoring output added ahead of its output — loses
#    nothing of the stream and restarts no counter: the rule and its output keep counting.
stat() { ctl --json stats | jq "[.rules[] | select(.id == \"flow\")][0] | $1"; }
OUT_PACKETS='[.outputs[] | select(.output | startswith("239.2.2.1:6000"))][0].packets'
RULE_BEFORE=$(stat .packets)
OUT_BEFORE=$(stat "$OUT_PACKETS")
recv live 239.2.2.1 6000 "$N"
rig_bg snd send2 "$MCR_BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth0 --count "$N" --rate "$RATE"
SENDER=$RIG_LAST_PID
sleep 1
printf '{"version": 1, "rules": [%s, %s, %s]}\n' '{"name": "flow",
    "input": {"interface": "in0", "group": "239.1.1.1", "port": 5000},
    "outputs": [{"group": "239.2.2.5", "port": 6000, "interface": "out0"},
                {"group": "239.2.2.1", "port": 6000, "interface": "out0", "ttl": 1}]}' \
  "$(rule edited 239.1.1.3 239.2.2.3 6001)" "$(rule new 239.1.1.4 239.2.2.4 6000)" >"$CONF"
ctl reload | grep -q "0 added, 0 removed, 1 changed" || rig_fail "the edit of the flowing rule did not apply"
wait "$SENDER" || rig_fail "sender failed"
finish live
intact live "editing the flowing rule"
for _ in $(seq 30); do [ "$(stat "$OUT_PACKETS")" = $((OUT_BEFORE + N)) ] && break; sleep 0.1; done
[ "$(stat .packets)" = $((RULE_BEFORE + N)) ] \
  || rig_fail "rule counter after the edit: $(stat .packets), expected $((RULE_BEFORE + N))"
[ "$(stat "$OUT_PACKETS")" = $((OUT_BEFORE + N)) ] \
  || rig_fail "output counter after the edit: $(stat "$OUT_PACKETS"), expected $((OUT_BEFORE + N))"
[ "$(stat '.outputs | length')" = 2 ] || rig_fail "the monitoring output is missing"
echo "ok: editing a flowing rule keeps its stream and its counters"
echo "PASS control_reload"
