#!/usr/bin/env bash
# mcrd's life cycle: clean SIGTERM (exit 0 within a second, socket removed), restart and kill -9
# restore every rule, kill -9 in the middle of a stream of changes never leaves an unreadable
# state file, and every reason to refuse to start is refused with a clear message.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init control_restart
[ -x "${MCR_BIN:?}/mcrd" ] && [ -x "$MCR_BIN/mcrctl" ] || rig_skip "mcrd/mcrctl not built"
command -v jq >/dev/null || rig_skip "jq not installed"
rig_topology

SOCK=$RIG_TMP/mcrd.sock
STATE=$RIG_TMP/state.json
CONF=$RIG_TMP/mcr.conf
cat >"$CONF" <<'CONF'
{"version": 1, "rules": [
  {"name": "fromconf", "input": {"interface": "in0", "group": "239.1.1.1", "port": 5000},
   "outputs": [{"group": "239.2.2.1", "port": 6000, "interface": "out0"}]}]}
CONF

ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" --timeout 5 "$@"; }
start() {
  rig_bg rly "mcrd.$1" "$MCR_BIN/mcrd" supervisor --control-socket-path "$SOCK" \
    --state-file "$STATE" --config "$CONF" --metrics-listen off
  MCRD=$RIG_LAST_PID
  local i
  for ((i = 0; i < 100; i++)); do
    ctl ping >/dev/null 2>&1 && return 0
    kill -0 "$MCRD" 2>/dev/null || rig_fail "mcrd exited at start: $(cat "$RIG_TMP/mcrd.$1.log")"
    sleep 0.1
  done
  rig_fail "mcrd did not answer within 10 s"
}
rules() { ctl config show; }

# refuse_start EXPECTED ARGS...: mcrd must exit non-zero at once, saying EXPECTED.
refuse_start() {
  local expect=$1; shift
  local rc=0 out
  out=$(rig_exec rly timeout 10 "$MCR_BIN/mcrd" supervisor "$@" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || rig_fail "mcrd $* did not refuse to start (rc $rc): $out"
  case $out in *"$expect"*) ;; *) rig_fail "mcrd $*: got '$out', expected '$expect'" ;; esac
  echo "ok: refused to start: $* -> $(printf '%s' "$out" | tail -n1)"
}

start 1
ctl add --input-interface in0 --input-group 239.1.1.2 --input-port 5000 --outputs 239.2.2.2:6000:out0 >/dev/null
ctl add --input-interface in0 --input-group 239.1.1.3 --input-port 5000 --name cam3 \
  --outputs 239.2.2.3:6000:out0:ttl=5,10.10.2.2:7000:out0:dscp=46 >/dev/null
EXPECTED=$(rules)
[ "$(jq '.rules | length' <<<"$EXPECTED")" = 3 ] || rig_fail "expected 3 rules: $EXPECTED"

# A second mcrd on the same socket is refused; the first keeps serving.
refuse_start "another mcrd is already serving $SOCK" --control-socket-path "$SOCK" \
  --state-file "$RIG_TMP/other-state.json"
[ "$(rules)" = "$EXPECTED" ] || rig_fail "the first mcrd was disturbed"

# SIGTERM: exit 0 within a second, socket file removed, rules restored by the next start.
t0=$(date +%s%N)
kill -TERM "$MCRD"
rc=0; wait "$MCRD" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$rc" -eq 0 ] || rig_fail "mcrd exited $rc on SIGTERM"
[ "$ms" -lt 1000 ] || rig_fail "mcrd took $ms ms to stop"
[ ! -e "$SOCK" ] || rig_fail "socket file left after a clean stop"
echo "ok: SIGTERM -> exit 0 in $ms ms ($(grep -E "shutting down|stopped" "$RIG_TMP/mcrd.1.log" | cut -c12-23 | tr "\n" " "))"
start 2
[ "$(rules)" = "$EXPECTED" ] || rig_fail "rules not restored after restart: $(rules)"
echo "ok: restart restored the rules"

# SIGINT behaves the same.
kill -INT "$MCRD"; rc=0; wait "$MCRD" || rc=$?
[ "$rc" -eq 0 ] || rig_fail "mcrd exited $rc on SIGINT"

# kill -9: the stale socket file is replaced and every rule comes back.
start 3
kill -KILL "$MCRD"; wait "$MCRD" 2>/dev/null || true
[ -S "$SOCK" ] || rig_fail "expected a stale socket after kill -9"
start 4
[ "$(rules)" = "$EXPECTED" ] || rig_fail "rules not restored after kill -9: $(rules)"
grep -q "removed stale control socket" "$RIG_TMP/mcrd.4.log" || rig_fail "stale socket not reported"
echo "ok: kill -9 restored the rules"

# kill -9 while changes stream in: the state file is always the old or the new set, never
# garbage, so every restart succeeds.
for round in 1 2 3 4 5; do
  ( for i in $(seq 1 200); do
      ctl add --input-interface in0 --input-group 239.1.9.$((i % 250 + 1)) --input-port 5000 \
        --outputs 239.2.9.1:6000:out0 >/dev/null 2>&1 || true
    done ) &
  churn=$!
  sleep 0.$((RANDOM % 5 + 2))
  kill -KILL "$MCRD"; wait "$MCRD" 2>/dev/null || true
  wait "$churn" 2>/dev/null || true
  jq -e '.rules | length >= 3' "$STATE" >/dev/null || rig_fail "state unreadable after kill -9 (round $round)"
  start "churn$round"
  n=$(ctl --json list | jq '.rules | length')
  echo "ok: kill -9 during changes, round $round: restarted with $n rules"
  ctl config load --replace <(echo "$EXPECTED") >/dev/null 2>&1 || \
    { echo "$EXPECTED" >"$RIG_TMP/expected.json"; ctl config load --replace "$RIG_TMP/expected.json" >/dev/null; }
done
[ "$(rules)" = "$EXPECTED" ] || rig_fail "could not return to the expected set"

# SIGHUP with a broken config changes nothing and the daemon goes on.
cp "$CONF" "$RIG_TMP/good.conf"
echo '{ "rules": [ oops' >"$CONF"
kill -HUP "$MCRD"
for _ in $(seq 50); do grep -q "reload failed" "$RIG_TMP/mcrd.churn5.log" && break; sleep 0.1; done
grep -q "reload failed, nothing changed" "$RIG_TMP/mcrd.churn5.log" || rig_fail "broken reload not reported"
[ "$(rules)" = "$EXPECTED" ] || rig_fail "a broken reload changed the rules"
cp "$RIG_TMP/good.conf" "$CONF"
kill -TERM "$MCRD"; wait "$MCRD" || rig_fail "mcrd did not exit 0"

# Reasons to refuse to start.
S2=$RIG_TMP/s2.sock
refuse_start "--bogus" --bogus
refuse_start "--cpus" --control-socket-path "$S2" --cpus 3-1
refuse_start "999" --control-socket-path "$S2" --state-file off --cpus 999
refuse_start "--control-cpu: cannot run on CPU 999" --control-socket-path "$S2" --state-file off --control-cpu 999
refuse_start "group 'no-such-group-mcr' does not exist" --control-socket-path "$S2" --socket-group no-such-group-mcr
refuse_start "--metrics-listen 'nowhere': no port" --control-socket-path "$S2" --metrics-listen nowhere
refuse_start "cannot open $RIG_TMP/missing.conf" --control-socket-path "$S2" --config "$RIG_TMP/missing.conf"
echo '{"rules": [{"input": {"interface": "in0"}}]}' >"$RIG_TMP/bad.conf"
refuse_start "config file $RIG_TMP/bad.conf: rules[0].input.group: missing" --control-socket-path "$S2" --config "$RIG_TMP/bad.conf"
cat >"$RIG_TMP/noif.conf" <<'CONF'
{"rules": [{"input": {"interface": "eth9", "group": "239.1.1.1", "port": 5000},
            "outputs": [{"group": "239.2.2.1", "port": 6000, "interface": "out0"}]}]}
CONF
refuse_start "interface 'eth9' does not exist" --control-socket-path "$S2" --state-file off --config "$RIG_TMP/noif.conf"
echo '{"rules": [' >"$RIG_TMP/corrupt-state.json"
refuse_start "move it aside" --control-socket-path "$S2" --state-file "$RIG_TMP/corrupt-state.json"
echo "keep me" >"$RIG_TMP/not-a-socket"
refuse_start "exists and is not a socket" --control-socket-path "$RIG_TMP/not-a-socket" --state-file off
[ "$(cat "$RIG_TMP/not-a-socket")" = "keep me" ] || rig_fail "mcrd clobbered a file at the socket path"
[ ! -e "$S2" ] || rig_fail "a refused start left its socket behind"

# --allow-missing-interface accepts the pending rule.
rig_bg rly mcrd.pending "$MCR_BIN/mcrd" supervisor --control-socket-path "$S2" --state-file off \
  --metrics-listen off --config "$RIG_TMP/noif.conf" --allow-missing-interface
P=$RIG_LAST_PID
for _ in $(seq 100); do rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$S2" ping >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$S2" --json list | jq -r '.rules[0].input.interface')" = eth9 ] \
  || rig_fail "pending config rule not accepted"
kill -TERM "$P"; wait "$P" || rig_fail "mcrd (pending) did not exit 0"
echo "PASS control_restart"
