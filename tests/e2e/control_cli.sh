#!/usr/bin/env bash
# mcrctl end to end: every command against a real mcrd in a namespace, and every refusal —
# each must exit non-zero with a one-line reason and leave the running rule set and the state
# file exactly as they were.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init control_cli
[ -x "${MCR_BIN:?}/mcrd" ] && [ -x "$MCR_BIN/mcrctl" ] || rig_skip "mcrd/mcrctl not built"
command -v jq >/dev/null || rig_skip "jq not installed"
rig_topology

SOCK=$RIG_TMP/mcrd.sock
STATE=$RIG_TMP/state.json
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --control-socket-path "$SOCK" --state-file "$STATE" \
  --metrics-listen off --log-level debug
MCRD=$RIG_LAST_PID
rig_wait_file "$SOCK"

ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
snapshot() { ctl config show; md5sum <"$STATE" 2>/dev/null || echo "no state"; }

# refuse EXPECTED ARGS...: mcrctl ARGS must fail with one stderr line containing EXPECTED and
# change nothing.
refuse() {
  local expect=$1; shift
  local before after err rc=0
  before=$(snapshot)
  err=$(ctl "$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -ne 0 ] || rig_fail "mcrctl $* succeeded; expected a refusal ($expect)"
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || rig_fail "mcrctl $*: reason is not one line: $err"
  case $err in *"$expect"*) ;; *) rig_fail "mcrctl $*: got '$err', expected '$expect'" ;; esac
  after=$(snapshot)
  [ "$before" = "$after" ] || rig_fail "mcrctl $* was refused but changed the rule set or state"
  echo "ok: refused $* -> $err"
}

# --- commands ---
ctl ping | grep -q "pong from mcrd" || rig_fail "ping"
ctl version | grep -q "^mcrd " || rig_fail "version"
[ "$(ctl --json version | jq -r .protocol)" = 1 ] || rig_fail "version --json"

# The seed's quick-start form, then every add option.
ctl add --input-interface in0 --input-group 239.1.1.1 --input-port 5000 \
  --outputs 239.2.2.2:6000:out0 | grep -q "added rule" || rig_fail "seed add"
ctl add --input-interface in0 --input-group 239.1.1.2 --input-port 5000 --input-source 10.10.1.1 \
  --name cam2 --ttl 4 --dscp 46 --outputs 239.2.2.3:6000:out0,10.10.2.2:7000:out0:ttl=9:dscp=0 >/dev/null
ctl add --input-interface in0 --input-group 10.10.1.2 --input-port 5002 --rule-id uni \
  --outputs 239.2.2.4:6000:out0 >/dev/null
ctl add --input-interface vlan7 --input-group 239.1.1.7 --input-port 5000 --name pending \
  --outputs 239.2.2.7:6000:out0 --allow-missing-interface 2>"$RIG_TMP/warn" >/dev/null
grep -q "warning: .*'vlan7' does not exist yet" "$RIG_TMP/warn" || rig_fail "pending warning"

LIST=$(ctl --json list)
[ "$(jq '.rules | length' <<<"$LIST")" = 4 ] || rig_fail "list: expected 4 rules: $LIST"
SEED_ID=$(jq -r '.rules[0].id' <<<"$LIST")
[[ $SEED_ID =~ ^[0-9a-f]{12}$ ]] || rig_fail "seed rule id '$SEED_ID' is not a 12-hex hash"
[ "$(jq -r '.rules[1].outputs[0].ttl, .rules[1].outputs[0].dscp, .rules[1].outputs[1].ttl, .rules[1].outputs[1].dscp' <<<"$LIST" | tr '\n' ' ')" = "4 46 9 0 " ] \
  || rig_fail "per-output ttl/dscp overrides: $LIST"
[ "$(jq -r '.rules[1].input.source' <<<"$LIST")" = 10.10.1.1 ] || rig_fail "input source"
jq -e '.rules[0] | has("shard") and .input_up == true' <<<"$LIST" >/dev/null || rig_fail "shard/input_up"
jq -e '.rules[3].input_up == false' <<<"$LIST" >/dev/null || rig_fail "pending rule shows input down"
jq -e '[.interfaces[].name] | index("in0") != null' <<<"$LIST" >/dev/null || rig_fail "interfaces"
# The host's membership behind each input: joined, a unicast input's bound sink, pending.
[ "$(jq -r '[.rules[].membership | "\(.kind // "-"):\(.state)"] | join(" ")' <<<"$LIST")" = \
  "any-source:active source-specific:active unicast-sink:active any-source:pending" ] ||
  rig_fail "list: memberships: $(jq -c '[.rules[].membership]' <<<"$LIST")"
jq -e '.rules[3].membership.detail | test("vlan7")' <<<"$LIST" >/dev/null ||
  rig_fail "pending membership does not say why"
ctl list | grep -q "^cam2 .* joined " || rig_fail "list table: cam2 not shown joined"
ctl list | grep -q "^uni .* bound " || rig_fail "list table: unicast sink not shown bound"
ctl list | grep -q "^pending .* pending: interface vlan7 does not exist" ||
  rig_fail "list table: pending membership"
ctl list | grep -q "^cam2 " || rig_fail "list table"
ctl list | grep -q "vlan7 .*missing" || rig_fail "list shows the missing interface"

ctl stats | grep -q -- "-> 239.2.2.2:6000:out0" || rig_fail "stats table"
jq -e '.rules[0].outputs[0] | has("packets") and has("bytes") and has("packets_per_second") and has("bits_per_second") and has("errors") and has("drops")' \
  <<<"$(ctl --json stats)" >/dev/null || rig_fail "stats --json fields"
# --watch redraws once a second (into a pipe: successive tables).
timeout 2.5 "$MCR_BIN/mcrctl" --socket-path "$SOCK" stats --watch >"$RIG_TMP/watch" || true
[ "$(grep -c "^RULE / OUTPUT" "$RIG_TMP/watch")" -ge 2 ] || rig_fail "stats --watch did not redraw"
ctl shards | grep -q "^ *SHARD" || rig_fail "shards"
[ "$(ctl --json list-workers | jq '.shards | length')" -ge 1 ] || rig_fail "list-workers"

[ "$(ctl log-level get)" = info ] || [ "$(ctl log-level get)" = debug ] || rig_fail "log-level get"
ctl log-level set warning >/dev/null
[ "$(ctl log-level get)" = warning ] || rig_fail "log-level set"
ctl log-level set debug >/dev/null

# config show | save | check | load
ctl config show | jq -e '.version == 1 and (.rules | length) == 4' >/dev/null || rig_fail "config show"
ctl config save "$RIG_TMP/saved.json" >/dev/null
cmp <(ctl config show) "$RIG_TMP/saved.json" || rig_fail "config save differs from show"
ctl config check "$RIG_TMP/saved.json" | grep -q "0 added, 0 removed, 0 changed, 4 unchanged" \
  || rig_fail "config check of the running set"
cat >"$RIG_TMP/extra.conf" <<'CONF'
// comments are allowed in config files
{ "version": 1, "rules": [
  { "name": "extra", /* a second feed */
    "input": {"interface": "in0", "group": "239.1.1.8", "port": 5000},
    "outputs": [{"group": "239.2.2.8", "port": 6000, "interface": "out0"}] } ] }
CONF
ctl config check "$RIG_TMP/extra.conf" | grep -q "1 added (extra)" || rig_fail "config check"
[ "$(ctl --json list | jq '.rules | length')" = 4 ] || rig_fail "config check changed the rules"
ctl config load "$RIG_TMP/extra.conf" | grep -q "1 added (extra)" || rig_fail "config load"
[ "$(ctl --json list | jq '.rules | length')" = 5 ] || rig_fail "config load did not add"
ctl config load --replace "$RIG_TMP/saved.json" | grep -q "1 removed (extra)" || rig_fail "load --replace"
cmp <(ctl config show) "$RIG_TMP/saved.json" || rig_fail "load --replace did not restore the set"

# --- refusals: each names the field and value and changes nothing ---
refuse "--input-port: 70000 is out of range 1..65535" add --input-interface in0 --input-group 239.1.1.9 --input-port 70000 --outputs 239.2.2.2:6000:out0
refuse "--input-port: 0 is out of range" add --input-interface in0 --input-group 239.1.1.9 --input-port 0 --outputs 239.2.2.2:6000:out0
refuse "--input-group: '239.1.1' is not an IPv4 address" add --input-interface in0 --input-group 239.1.1 --input-port 5000 --outputs 239.2.2.2:6000:out0
refuse "10.99.0.1 is neither a multicast group nor an address of this host" add --input-interface in0 --input-group 10.99.0.1 --input-port 5000 --outputs 239.2.2.2:6000:out0
refuse "0.0.0.0 is neither a multicast group nor a unicast address" add --input-interface in0 --input-group 0.0.0.0 --input-port 5000 --outputs 239.2.2.2:6000:out0
refuse "rule.input.source: 239.0.0.1 is not a unicast source address" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --input-source 239.0.0.1 --outputs 239.2.2.2:6000:out0
refuse "interface 'eth9' does not exist" add --input-interface eth9 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:6000:out0
rig_exec rly ip link property add dev in0 altname inalt
refuse "rule.input.interface: 'inalt' is an alternative name of interface 'in0'; name it 'in0'" add --input-interface inalt --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:6000:out0
refuse "rule.outputs[0].interface: interface 'eth9' does not exist" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:6000:eth9
refuse "port: 70000 is out of range 1..65535" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:70000:out0
refuse "'239.2.2' is not an IPv4 address" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2:6000:out0
refuse "255.255.255.255 is neither a multicast group nor a unicast address" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 255.255.255.255:6000:out0
refuse "0.0.0.0 is neither" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 0.0.0.0:6000:out0
refuse "--ttl: 0 is out of range 1..255" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:6000:out0 --ttl 0
refuse "ttl: 256 is out of range 1..255" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:6000:out0:ttl=256
refuse "--dscp: 64 is out of range 0..63" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:6000:out0 --dscp 64
refuse "dscp: 99 is out of range 0..63" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:6000:out0:dscp=99
refuse "is the rule's own input (a loop)" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.1.1.9:5000:in0
refuse "duplicates outputs[0]" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2.2:6000:out0,239.2.2.2:6000:out0
refuse "--outputs: entry 1 '': too few fields" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs ""
refuse "rule.input: in0 239.1.1.1:5000 is already relayed by rule '$SEED_ID'" add --input-interface in0 --input-group 239.1.1.1 --input-port 5000 --outputs 239.2.2.9:6000:out0
refuse "a rule with id 'cam2' already exists" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --name cam2 --outputs 239.2.2.9:6000:out0
refuse "--name: 'bad name' is not a valid rule name" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --name "bad name" --outputs 239.2.2.9:6000:out0
# 1025 outputs: over the per-rule limit.
MANY=$(for p in $(seq 1 1025); do printf '239.3.0.1:%d:out0,' "$p"; done)
refuse "1025 outputs, more than the limit of 1024" add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs "${MANY%,}"
refuse "name: no rule 'nope'" remove --name nope
refuse "rule_id: no rule 'nope'" remove --rule-id nope
refuse "remove needs --rule-id or --name" remove
refuse "log level 'loud' is not one of" log-level set loud
refuse "started without --config" reload
refuse "cannot open" config load "$RIG_TMP/does-not-exist.json"
printf '{"rules": [' >"$RIG_TMP/broken.json"
refuse "malformed JSON" config load "$RIG_TMP/broken.json"
refuse "malformed JSON" config check "$RIG_TMP/broken.json"
# All or nothing: the second rule of this file is bad, so the first is not added either.
cat >"$RIG_TMP/half.json" <<'CONF'
{"rules": [
  {"name": "good", "input": {"interface": "in0", "group": "239.1.1.20", "port": 5000},
   "outputs": [{"group": "239.2.2.20", "port": 6000, "interface": "out0"}]},
  {"name": "bad", "input": {"interface": "in0", "group": "239.1.1.21", "port": 5000},
   "outputs": [{"group": "239.2.2.21", "port": 6000, "interface": "out0", "ttl": 0}]}]}
CONF
refuse "rules[1].outputs[0].ttl: 0 is out of range 1..255" config load "$RIG_TMP/half.json"
refuse "rules[1].outputs[0].ttl" config load --replace "$RIG_TMP/half.json"
refuse "rules[1].outputs[0].ttl" config check "$RIG_TMP/half.json"

# Usage errors: exit 2 (CLI11 prints its own help hint).
rc=0; ctl add --input-group 239.1.1.1 >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || rig_fail "missing required flag: exit $rc, expected 2"
rc=0; ctl frobnicate >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || rig_fail "unknown command: exit $rc, expected 2"
rc=0; ctl add --input-interface in0 --input-group 239.1.1.9 --input-port 70000 --outputs 239.2.2.2:6000:out0 >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || rig_fail "bad flag value: exit $rc, expected 2"
rc=0; ctl add --input-interface in0 --input-group 239.1.1.9 --input-port 5000 --outputs 239.2.2:6000:out0 >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || rig_fail "bad --outputs: exit $rc, expected 2"
# Refused by mcrd: exit 1.
rc=0; ctl remove --name nope >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 1 ] || rig_fail "refused by mcrd: exit $rc, expected 1"
rc=0; ctl --timeout 0.0001 ping >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || rig_fail "--timeout below 1 ms: exit $rc, expected 2"
# Unreachable daemon: exit 3.
rc=0; rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$RIG_TMP/nobody.sock" ping 2>"$RIG_TMP/err" || rc=$?
[ "$rc" -eq 3 ] || rig_fail "unreachable daemon: exit $rc, expected 3"
grep -q "is mcrd running" "$RIG_TMP/err" || rig_fail "unreachable daemon message"

# remove by id and by name
ctl remove --rule-id "$SEED_ID" | grep -q "removed rule $SEED_ID" || rig_fail "remove --rule-id"
ctl remove --name cam2 >/dev/null
[ "$(ctl --json list | jq -r '[.rules[].id] | join(",")')" = "uni,pending" ] || rig_fail "after remove"
jq -e '[.rules[].id] == ["uni","pending"]' "$STATE" >/dev/null || rig_fail "state file after remove"

# An output whose interface is down is accepted, with a warning, and opens when it comes up.
rig_exec rly ip link add dn0 type veth peer name dn1
rig_exec rly ip addr add 10.10.9.1/24 dev dn0
ctl add --name downout --input-interface in0 --input-group 239.1.1.30 --input-port 5000 \
  --outputs 239.2.2.30:6000:dn0 >/dev/null 2>"$RIG_TMP/warn" || rig_fail "output on a down interface refused"
grep -q "output 239.2.2.30:6000@dn0 is inactive" "$RIG_TMP/warn" || rig_fail "no inactive warning: $(cat "$RIG_TMP/warn")"
[ "$(ctl --json list | jq -r '.rules[] | select(.id == "downout") | .outputs[0].active')" = false ] ||
  rig_fail "output on a down interface reported active"
rig_exec rly ip link set dn0 up
rig_exec rly ip link set dn1 up
for _ in $(seq 50); do
  [ "$(ctl --json list | jq -r '.rules[] | select(.id == "downout") | .outputs[0].active')" = true ] && break
  sleep 0.1
done
[ "$(ctl --json list | jq -r '.rules[] | select(.id == "downout") | .outputs[0].active')" = true ] ||
  rig_fail "output did not open when its interface came up"

kill -0 "$MCRD" || rig_fail "mcrd died"
echo "PASS control_cli"
