#!/usr/bin/env bash
# Checks packaging/mcrd.service without installing or starting it:
#  1. systemd accepts every line (systemd-analyze verify, warnings count as failures);
#  2. its hardening scores an exposure of at most 3.0 (systemd-analyze security --offline; 0 is
#     fully locked down, 10 unprotected);
#  3. the hardening still allows what the relay needs: exactly CAP_NET_RAW + CAP_NET_ADMIN, the
#     four address families, and the system calls of the data path — the score alone would
#     reward a unit that cannot relay;
#  4. packaging/sysusers.d/mcr.conf creates the mcr user and group (in a scratch root).
# Exit 77 (skipped) when systemd-analyze is missing or too old for --offline.
set -euo pipefail

src=${MCR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
unit=$src/packaging/mcrd.service
max_exposure=3.0

skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed (apt-get install systemd)"
[ -f "$unit" ] || fail "$unit not found"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. verify. It also checks that ExecStart's program is executable, and mcrd is not installed
# here: point ExecStart at the built binary when there is one, else at /bin/true.
mcrd=${MCR_BIN:+$MCR_BIN/mcrd}
[ -n "$mcrd" ] && [ -x "$mcrd" ] || mcrd=/bin/true
sed "s#^ExecStart=/usr/local/bin/mcrd #ExecStart=$mcrd #" "$unit" >"$tmp/mcrd.service"
grep -q "^ExecStart=$mcrd supervisor" "$tmp/mcrd.service" ||
  fail "ExecStart no longer starts with /usr/local/bin/mcrd supervisor"
if ! out=$(systemd-analyze verify --man=no "$tmp/mcrd.service" 2>&1) || [ -n "$out" ]; then
  fail "systemd-analyze verify complained:"$'\n'"$out"
fi
echo "verify: clean"

# 2. exposure.
if ! out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1); then
  if grep -q "unrecognized option\|Unknown option" <<<"$out"; then
    skip "this systemd-analyze has no --offline (systemd >= 250 needed)"
  fi
  fail "systemd-analyze security failed:"$'\n'"$out"
fi
if grep -qi "unknown key\|failed to parse\|ignoring" <<<"$out"; then
  fail "systemd-analyze security warned about the unit:"$'\n'"$(grep -i "unknown key\|failed to parse\|ignoring" <<<"$out")"
fi
exposure=$(sed -n 's/.*Overall exposure level for mcrd.service: \([0-9.]*\).*/\1/p' <<<"$out")
[ -n "$exposure" ] || fail "no overall exposure in the output:"$'\n'"$out"
echo "exposure: $exposure (at most $max_exposure)"
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
  fail "exposure $exposure is above $max_exposure:"$'\n'"$(grep '✗' <<<"$out")"

# 3. what the relay needs.
value() { sed -n "s/^$1=//p" "$unit"; }
[ "$(value CapabilityBoundingSet)" = "CAP_NET_RAW CAP_NET_ADMIN" ] ||
  fail "CapabilityBoundingSet must be exactly CAP_NET_RAW CAP_NET_ADMIN"
[ "$(value AmbientCapabilities)" = "CAP_NET_RAW CAP_NET_ADMIN" ] ||
  fail "AmbientCapabilities must be exactly CAP_NET_RAW CAP_NET_ADMIN"
for family in AF_PACKET AF_NETLINK AF_UNIX AF_INET; do
  grep -qw "$family" <<<"$(value RestrictAddressFamilies)" ||
    fail "RestrictAddressFamilies lacks $family"
done

# The effective system call filter, computed as systemd does: the first SystemCallFilter= line
# (an allow list here) sets the list, each later one adds to it or, with ~, removes from it.
expand() {  # NAME... → system calls, @groups expanded recursively
  local item
  for item in "$@"; do
    if [[ $item == @* ]]; then
      # shellcheck disable=SC2046
      expand $(systemd-analyze syscall-filter --no-pager "$item" | sed -n 's/^    \([^# ].*\)$/\1/p')
    else
      echo "$item"
    fi
  done
}
declare -A allowed=()
first=1
while IFS= read -r line; do
  deny=0
  if [[ $line == "~"* ]]; then deny=1; line=${line#\~}; fi
  if [ "$first" = 1 ] && [ "$deny" = 1 ]; then fail "SystemCallFilter must start with an allow list"; fi
  first=0
  # shellcheck disable=SC2086
  for call in $(expand $line); do
    if [ "$deny" = 1 ]; then unset "allowed[$call]"; else allowed[$call]=1; fi
  done
done < <(value SystemCallFilter)
[ "$first" = 0 ] || fail "no SystemCallFilter="
needed=(
  io_uring_setup io_uring_enter io_uring_register          # data path
  sched_setaffinity sched_getaffinity                      # pinned shards
  sched_setattr sched_getattr                              # their scheduler slice
  mbind set_mempolicy get_mempolicy move_pages             # NUMA placement and its report
  socket bind connect listen accept4 setsockopt getsockopt sendmsg recvmsg sendmmsg recvmmsg
  mmap munmap poll ppoll epoll_create1 epoll_ctl epoll_wait epoll_pwait eventfd2 signalfd4
  openat rename renameat fsync fdatasync unlink chmod fchmodat chown fchownat  # state, socket
  clone clone3 futex rt_sigaction rt_sigprocmask prctl
)
missing=()
for call in "${needed[@]}"; do [ -n "${allowed[$call]:-}" ] || missing+=("$call"); done
[ ${#missing[@]} -eq 0 ] || fail "SystemCallFilter blocks: ${missing[*]}"
echo "system calls: the ${#needed[@]} the relay needs are allowed (${#allowed[@]} in all)"

# 4. the account.
if command -v systemd-sysusers >/dev/null; then
  mkdir -p "$tmp/root/etc"
  systemd-sysusers --root="$tmp/root" "$src/packaging/sysusers.d/mcr.conf" >/dev/null 2>&1 ||
    fail "systemd-sysusers rejected packaging/sysusers.d/mcr.conf"
  grep -q '^mcr:' "$tmp/root/etc/passwd" || fail "sysusers.d/mcr.conf creates no user mcr"
  grep -q '^mcr:' "$tmp/root/etc/group" || fail "sysusers.d/mcr.conf creates no group mcr"
  echo "sysusers: user and group mcr"
fi
echo "PASS"
