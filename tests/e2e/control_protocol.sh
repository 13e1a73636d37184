#!/usr/bin/env bash
# The control socket under abuse: garbage, truncated, oversized, deeply nested, wrong-version and
# unknown-type messages each get an error response and the same connection goes on; idle,
# half-written and never-reading connections do not keep mcrctl from being served; the socket
# has mode 0660 and the --socket-group.
set -euo pipefail
. "${MCR_SOURCE_DIR:?}/tests/rig/netns.sh"
rig_init control_protocol
[ -x "${MCR_BIN:?}/mcrd" ] && [ -x "$MCR_BIN/mcrctl" ] || rig_skip "mcrd/mcrctl not built"
command -v python3 >/dev/null || rig_skip "python3 not installed"
getent group nogroup >/dev/null || rig_skip "no 'nogroup' group to hand the socket to"
rig_topology

SOCK=$RIG_TMP/mcrd.sock
rig_bg rly mcrd "$MCR_BIN/mcrd" supervisor --control-socket-path "$SOCK" --socket-group nogroup \
  --state-file "$RIG_TMP/state.json" --metrics-listen off --log-level debug
MCRD=$RIG_LAST_PID
rig_wait_file "$SOCK"
ctl() { rig_exec rly "$MCR_BIN/mcrctl" --socket-path "$SOCK" --timeout 5 "$@"; }
ctl ping >/dev/null
ctl add --input-interface in0 --input-group 239.1.1.1 --input-port 5000 --outputs 239.2.2.2:6000:out0 >/dev/null

[ "$(stat -c '%a %G' "$SOCK")" = "660 nogroup" ] || rig_fail "socket mode/group: $(stat -c '%a %G' "$SOCK")"
echo "ok: socket mode 660, group nogroup"

python3 - "$SOCK" <<'PY'
import json, socket, sys, time

path = sys.argv[1]

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s

class Conn:
    def __init__(self):
        self.s = connect()
        self.buf = b""
    def send(self, data):
        self.s.sendall(data)
    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise SystemExit("FAIL: connection closed by mcrd")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)
    def ping(self, i):
        self.send(json.dumps({"version": 1, "id": i, "type": "ping"}).encode() + b"\n")
        r = self.line()
        assert r["ok"] and r["id"] == i, r

c = Conn()
cases = [
    (b"garbage", "malformed JSON"),
    (b'{"version":1,"type":"ping"', "malformed JSON"),
    (b'{"version":2,"id":"w","type":"ping"}', "unsupported protocol version 2"),
    (b'{"id":1,"type":"ping"}', "version: missing"),
    (b'{"version":1,"type":"self_destruct"}', "unknown request type"),
    (b'{"version":1,"type":"add","rule":{"input":5}}', "rule.input: expected an object"),
    (b"[" * 100000 + b"]" * 100000, "deeper than 32"),
    (b"\xff\xfe\x00garbage", "malformed JSON"),
    (b'"' + b"x" * (5 << 20) + b'"', "longer than"),
]
for i, (msg, expect) in enumerate(cases):
    c.send(msg + b"\n")
    r = c.line()
    assert r["version"] == 1 and r["ok"] is False and expect in r["error"], (msg[:40], r)
    c.ping(1000 + i)  # the same connection still works
    print("ok: %-45r -> %s" % (msg[:40], r["error"][:70]))

# The id of a refused request is echoed.
c.send(b'{"version":2,"id":"w","type":"ping"}\n')
assert c.line()["id"] == "w"

# An oversized line without a newline: one error, the rest discarded up to its newline.
c.send(b"y" * (6 << 20))
r = c.line()
assert not r["ok"] and "longer than" in r["error"], r
c.send(b"y" * 1000 + b"\n")
c.ping(2000)
print("ok: oversized line without newline discarded")

# Truncated at EOF: an error, then mcrd closes.
t = Conn()
t.send(b'{"version":1,"type":"list"')
t.s.shutdown(socket.SHUT_WR)
r = t.line()
assert not r["ok"] and "truncated" in r["error"], r
assert t.s.recv(1) == b""
print("ok: truncated message at EOF")
PY

# Idle, half-written and never-reading connections stay open in the background while mcrctl
# is served.
python3 - "$SOCK" "$RIG_TMP/hogs-ready" <<'PY' &
import json, socket, sys, time
path, ready = sys.argv[1], sys.argv[2]
held = []
for _ in range(20):  # connect and never write
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(path); held.append(s)
half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); half.connect(path)
half.sendall(b'{"version":1,"type":"li'); held.append(half)
hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); hog.connect(path); hog.setblocking(False)
req = json.dumps({"version": 1, "type": "list"}).encode() + b"\n"
sent = 0
try:
    while sent < 50 << 20:  # ask for answers and never read them, until the socket is full
        sent += hog.send(req * 1000)
except BlockingIOError:
    pass
held.append(hog)
open(ready, "w").close()
time.sleep(30)
PY
HOGS=$!
rig_wait_file "$RIG_TMP/hogs-ready" 20
for i in 1 2 3 4 5; do
  timeout 5 "$MCR_BIN/mcrctl" --socket-path "$SOCK" --timeout 3 list >/dev/null \
    || rig_fail "mcrctl list blocked by idle or non-reading clients"
done
ctl add --input-interface in0 --input-group 239.1.1.2 --input-port 5000 --outputs 239.2.2.2:6000:out0 >/dev/null \
  || rig_fail "mcrctl add blocked by idle or non-reading clients"
echo "ok: 20 idle, 1 half-written and 1 never-reading connection block nobody"
kill "$HOGS" 2>/dev/null || true
wait "$HOGS" 2>/dev/null || true

kill -0 "$MCRD" || rig_fail "mcrd died"
[ "$(ctl --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["rules"]))')" = 2 ] \
  || rig_fail "rule set damaged"
echo "PASS control_protocol"
