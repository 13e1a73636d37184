# shellcheck shell=bash
# Network-namespace test rig for end-to-end tests. Source it from a test script:
#
#   . "$(dirname "$0")/../rig/netns.sh"
#   rig_init my_test                 # exits 77 (ctest: skipped) without root or netns support
#   rig_topology                     # snd --veth-- rly --veth-- rcv (see below)
#   rig_bg rcv "$MCRGEN" recv ...    # background process inside a namespace, killed at teardown
#   rig_exec snd "$MCRGEN" send ...  # foreground process inside a namespace
#
# Every test gets its own namespaces, named mcrt.<test>.<pid>.<role>; interfaces live only inside
# them (veth pairs are created directly in their namespaces), so tests run in parallel, nothing
# touches the host's own interfaces, and addresses may repeat between tests. Teardown runs on every
# exit path (EXIT/INT/TERM traps) and kills every process left in the namespaces. Leftovers of an
# earlier run that crashed (owner pid no longer alive) are removed by the next rig_init.

RIG_SKIP=77
RIG_ID=""
RIG_NAMESPACES=()
RIG_PIDS=()
RIG_TMP=""

rig_log() { echo "[rig] $*" >&2; }

rig_skip() {
  echo "SKIP: $*" >&2
  exit "$RIG_SKIP"
}

# rig_require_root [WHAT]: skips unless root (WHAT: what needs it; network namespaces by default).
rig_require_root() {
  [ "$(id -u)" -eq 0 ] || rig_skip "needs root for ${1:-network namespaces} (running as uid $(id -u))"
}

# rig_require_tools TOOL...: skips unless every TOOL is in PATH.
rig_require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || rig_skip "$tool not installed"
  done
}

# rig_nftables_work: whether nft can make a table here (the nft tool and the kernel's nf_tables;
# a container without the module has the tool but no tables). Tries in a throwaway namespace.
rig_nftables_work() {
  command -v nft >/dev/null &&
    unshare -n sh -c 'nft add table ip mcr_probe && nft delete table ip mcr_probe' 2>/dev/null
}

# rig_init NAME: checks privileges, removes stale namespaces, installs the teardown trap.
rig_init() {
  local name=${1//./_}  # dots separate the name's fields (see rig_reap_stale)
  rig_require_root
  command -v ip >/dev/null || rig_skip "iproute2 'ip' not installed"
  RIG_ID="mcrt.${name}.$$"
  # Probe: can we create and delete a namespace at all (containers may refuse)?
  if ! ip netns add "${RIG_ID}.probe" 2>/dev/null; then
    rig_skip "cannot create network namespaces here"
  fi
  ip netns del "${RIG_ID}.probe"
  rig_reap_stale
  RIG_TMP=$(mktemp -d "/tmp/${RIG_ID}.XXXXXX")
  trap rig_teardown EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Removes namespaces of earlier runs whose owning test process is gone.
rig_reap_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^mcrt\.[^.]+\.[0-9]+(\.|$)' || true); do
    pid=$(echo "$ns" | awk -F. '{print $3}')
    if ! kill -0 "$pid" 2>/dev/null; then
      rig_log "removing stale namespace $ns (owner $pid is gone)"
      rig_kill_ns_pids "$ns"
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

rig_kill_ns_pids() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  [ -n "$pids" ] || return 0
  kill -TERM $pids 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    sleep 0.1
  done
  kill -KILL $pids 2>/dev/null || true
}

rig_teardown() {
  local rc=$?
  trap - EXIT
  local pid ns
  for pid in "${RIG_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for ns in "${RIG_NAMESPACES[@]}"; do rig_kill_ns_pids "$ns"; done
  for pid in "${RIG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "${RIG_NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -n "$RIG_TMP" ] && [ -d "$RIG_TMP" ]; then
    if [ "$rc" -ne 0 ] && [ "$rc" -ne "$RIG_SKIP" ]; then
      # Show the daemons' logs on failure: that is usually where the reason is.
      for f in "$RIG_TMP"/*.log; do
        [ -f "$f" ] || continue
        echo "----- $(basename "$f") (last 40 lines) -----" >&2
        tail -n 40 "$f" >&2
      done
    fi
    rm -rf "$RIG_TMP"
  fi
  exit "$rc"
}

# rig_ns ROLE: creates namespace for ROLE with loopback up. Name: $(rig_nsname ROLE).
rig_ns() {
  local ns="${RIG_ID}.$1"
  ip netns add "$ns"
  RIG_NAMESPACES+=("$ns")
  ip -n "$ns" link set lo up
}

rig_nsname() { echo "${RIG_ID}.$1"; }

# rig_link ROLE_A IF_A ADDR_A/LEN ROLE_B IF_B ADDR_B/LEN: a veth pair between two namespaces.
# UDP segmentation offload is turned off so captures and AF_PACKET see wire-sized frames.
rig_link() {
  local a=$1 ifa=$2 addra=$3 b=$4 ifb=$5 addrb=$6
  local nsa nsb
  nsa=$(rig_nsname "$a"); nsb=$(rig_nsname "$b")
  ip link add name "$ifa" netns "$nsa" type veth peer name "$ifb" netns "$nsb"
  ip -n "$nsa" addr add "$addra" dev "$ifa"
  ip -n "$nsb" addr add "$addrb" dev "$ifb"
  ip -n "$nsa" link set "$ifa" up
  ip -n "$nsb" link set "$ifb" up
  if command -v ethtool >/dev/null; then
    ip netns exec "$nsa" ethtool -K "$ifa" tx-udp-segmentation off >/dev/null 2>&1 || true
    ip netns exec "$nsb" ethtool -K "$ifb" tx-udp-segmentation off >/dev/null 2>&1 || true
  fi
}

# rig_topology: the standard relay topology.
#   snd (veth0 10.10.1.1/24) <-> (in0 10.10.1.2/24) rly (out0 10.10.2.1/24) <-> (veth0 10.10.2.2/24) rcv
# Multicast default routes point at the veths, so plain UDP sockets send and join there.
rig_topology() {
  rig_ns snd; rig_ns rly; rig_ns rcv
  rig_link snd veth0 10.10.1.1/24 rly in0 10.10.1.2/24
  rig_link rly out0 10.10.2.1/24 rcv veth0 10.10.2.2/24
  ip -n "$(rig_nsname snd)" route add 224.0.0.0/4 dev veth0
  ip -n "$(rig_nsname rcv)" route add 224.0.0.0/4 dev veth0
  ip -n "$(rig_nsname rly)" route add 224.0.0.0/4 dev out0
}

# rig_exec ROLE CMD...: runs CMD in ROLE's namespace in the foreground.
rig_exec() {
  local ns; ns=$(rig_nsname "$1"); shift
  ip netns exec "$ns" "$@"
}

# rig_bg ROLE LOGNAME CMD...: runs CMD in ROLE's namespace in the background, output to
# $RIG_TMP/LOGNAME.log; its pid is in $RIG_LAST_PID and it is killed at teardown.
rig_bg() {
  local ns log; ns=$(rig_nsname "$1"); log="$RIG_TMP/$2.log"; shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  RIG_LAST_PID=$!
  RIG_PIDS+=("$RIG_LAST_PID")
}

# rig_igmp_member ROLE IF GROUP: whether ROLE's namespace is a member of the IPv4 multicast
# GROUP on IF, as the kernel lists it in /proc/net/igmp (which prints the group as the raw
# big-endian word in hex: 239.1.1.1 is 010101EF on a little-endian host).
rig_igmp_member() {
  local hex
  hex=$(printf '%02X%02X%02X%02X' $(tr . ' ' <<<"$3" | awk '{ print $4, $3, $2, $1 }'))
  rig_exec "$1" awk -v dev_want="$2" -v hex="$hex" \
    '/^[0-9]/ { dev = $2 } dev == dev_want && $1 == hex { f = 1 } END { exit !f }' /proc/net/igmp
}

# rig_wait_file PATH [SECONDS]: waits until PATH exists (e.g. a control socket). Fails on timeout.
rig_wait_file() {
  local path=$1 secs=${2:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    [ -e "$path" ] && return 0
    sleep 0.05
  done
  echo "timed out after ${secs}s waiting for $path" >&2
  return 1
}

rig_fail() {
  echo "FAIL: $*" >&2
  exit 1
}
