#!/usr/bin/env bash
# mcrd as an unprivileged user holding only CAP_NET_RAW and CAP_NET_ADMIN (as packaging's unit
# runs it): it starts, serves mcrctl through a 0660 socket of its group, refuses users outside
# that group, relays, and saves its state.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init control_nonroot
for b in mcrd mcrctl mcrgen; do [ -x "${MCR_BIN:?}/$b" ] || rig_skip "$b not built"; done
command -v setpriv >/dev/null || rig_skip "setpriv (util-linux) not installed"
command -v jq >/dev/null || rig_skip "jq not installed"
id nobody >/dev/null 2>&1 && getent group nogroup >/dev/null || rig_skip "no nobody/nogroup"
id daemon >/dev/null 2>&1 || rig_skip "no 'daemon' user to play an outsider"
if [ "$(sysctl -n kernel.io_uring_disabled 2>/dev/null || echo 0)" != 0 ]; then
  rig_skip "kernel.io_uring_disabled refuses io_uring to unprivileged processes"
fi
rig_topology

# The binaries must be reachable by nobody, and a build tree under /root is not (a CI checkout may
# well be there): run copies from the rig's own directory.
chmod 711 "$RIG_TMP"
install -d -m 755 "$RIG_TMP/bin"
install -m 755 "$MCR_BIN/mcrd" "$MCR_BIN/mcrctl" "$MCR_BIN/mcrgen" "$RIG_TMP/bin/"
MCR_BIN=$RIG_TMP/bin
setpriv --reuid nobody --regid nogroup --clear-groups test -x "$MCR_BIN/mcrd" \
  || rig_fail "nobody cannot execute $MCR_BIN/mcrd"
RUN=$RIG_TMP/run
install -d -o nobody -g nogroup -m 750 "$RUN" "$RIG_TMP/state"
SOCK=$RUN/mcrd.sock
rig_bg rly mcrd setpriv --reuid nobody --regid nogroup --clear-groups \
  --inh-caps -all,+net_raw,+net_admin --ambient-caps -all,+net_raw,+net_admin \
  "$MCR_BIN/mcrd" supervisor --control-socket-path "$SOCK" --socket-group nogroup \
  --state-file "$RIG_TMP/state/state.json" --metrics-listen off
MCRD=$RIG_LAST_PID
rig_wait_file "$SOCK"

# Privileges really are only those two capabilities.
pid=$(rig_exec rly pgrep -u nobody -x mcrd | head -n1)
[ -n "$pid" ] || rig_fail "mcrd is not running as nobody: $(cat "$RIG_TMP/mcrd.log")"
capeff=$(awk '/^CapEff/ {print $2}' "/proc/$pid/status")
[ "$capeff" = 0000000000003000 ] || rig_fail "unexpected effective capabilities $capeff"
[ "$(stat -c '%a %U %G' "$SOCK")" = "660 nobody nogroup" ] || rig_fail "socket: $(stat -c '%a %U %G' "$SOCK")"

ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" "$@"; }
# A member of the socket's group may use mcrctl; another user may not.
rig_exec rly setpriv --reuid nobody --regid nogroup --clear-groups "$MCR_BIN/mcrctl" --socket-path "$SOCK" ping >/dev/null \
  || rig_fail "group member refused"
rc=0; out=$(rig_exec rly setpriv --reuid daemon --regid daemon --clear-groups "$MCR_BIN/mcrctl" --socket-path "$SOCK" ping 2>&1) || rc=$?
[ "$rc" -eq 3 ] || rig_fail "an outsider reached mcrd (rc $rc): $out"
case $out in *"Permission denied"*) ;; *) rig_fail "outsider message: $out" ;; esac
echo "ok: socket 0660 nobody:nogroup; outsiders refused: $out"

ctl add --input-interface in0 --input-group 239.1.1.1 --input-port 5000 --outputs 239.2.2.2:6000:out0 >/dev/null
rig_bg rcv recv "$MCR_BIN/mcrgen" recv --group 239.2.2.2 --port 6000 --interface veth0 --expect 1000 \
  --timeout 20 --json --ready-file "$RIG_TMP/recv.ready"
RECV=$RIG_LAST_PID
rig_wait_file "$RIG_TMP/recv.ready"
rig_exec snd "$MCR_BIN/mcrgen" send --group 239.1.1.1 --port 5000 --interface veth0 --count 1000 --rate 2000 >/dev/null
wait "$RECV" || rig_fail "the unprivileged relay did not deliver: $(cat "$RIG_TMP/recv.log")"
[ "$(jq '.rules | length' "$RIG_TMP/state/state.json")" = 1 ] || rig_fail "state not saved"
kill -TERM "$MCRD"; wait "$MCRD" || rig_fail "mcrd did not exit 0"
echo "PASS control_nonroot"
