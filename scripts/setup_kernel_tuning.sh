#!/usr/bin/env bash
# Raises the kernel limits a relay host needs, printing each old → new value. Only raises: a
# value already at or above its target is kept, so running it again changes nothing.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/setup_kernel_tuning.sh [--dry-run] [--persist] [--help]

Raises these sysctls to at least the value shown (never lowers one):
  net.core.rmem_max              67108864  largest SO_RCVBUF a socket may ask for without
                                           CAP_NET_ADMIN (receivers, test tools; mcrd forces its
                                           own sizes when it holds CAP_NET_ADMIN)
  net.core.wmem_max              67108864  the same for SO_SNDBUF (egress bursts)
  net.core.netdev_max_backlog    16384     per-CPU queue of received packets waiting for the
                                           stack (RPS, veth, loopback); overflows are the 2nd
                                           column of /proc/net/softnet_stat
  net.ipv4.igmp_max_memberships  1024      groups one socket may join (default 20)
  net.ipv4.igmp_max_msf          256       sources per socket and group (default 10)

mcrd spreads its memberships over sockets of 20 groups and 10 sources, so it works with the
IGMP defaults; the higher limits serve tools that join many groups from one socket (smcroute,
socat, receivers). The IGMP limits belong to a network namespace: run the script in the one
mcrd runs in.

  --dry-run   print what would change; change nothing (no root needed)
  --persist   also write the resulting values to /etc/sysctl.d/90-mcr.conf, applied at boot
  --help      this text
EOF
}

# key target
settings=(
  "net.core.rmem_max 67108864"
  "net.core.wmem_max 67108864"
  "net.core.netdev_max_backlog 16384"
  "net.ipv4.igmp_max_memberships 1024"
  "net.ipv4.igmp_max_msf 256"
)
persist_file=/etc/sysctl.d/90-mcr.conf

dry_run=0
persist=0
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=1 ;;
    --persist) persist=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "setup_kernel_tuning: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$dry_run" = 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "setup_kernel_tuning: must run as root to change sysctls (or use --dry-run)" >&2
  exit 1
fi

failed=0
persisted=""
for entry in "${settings[@]}"; do
  read -r key target <<<"$entry"
  path=/proc/sys/${key//.//}
  if [ ! -r "$path" ]; then
    echo "$key: not available on this kernel or in this namespace, skipped"
    failed=1
    continue
  fi
  old=$(<"$path")
  if [ "$old" -ge "$target" ]; then
    echo "$key: $old (kept: already at least $target)"
    persisted+="$key = $old"$'\n'
    continue
  fi
  if [ "$dry_run" = 1 ]; then
    echo "$key: $old → $target (dry run: not changed)"
  elif echo "$target" 2>/dev/null >"$path"; then
    echo "$key: $old → $target"
  else
    echo "$key: $old, could not be set to $target (read-only here?)"
    failed=1
    persisted+="$key = $old"$'\n'
    continue
  fi
  persisted+="$key = $target"$'\n'
done

if [ "$persist" = 1 ]; then
  content="# Written by MCR's scripts/setup_kernel_tuning.sh --persist: kernel limits for the relay."$'\n'"$persisted"
  if [ -f "$persist_file" ] && [ "$(<"$persist_file")"$'\n' = "$content" ]; then
    echo "$persist_file: unchanged"
  elif [ "$dry_run" = 1 ]; then
    echo "$persist_file: would be written with:"
    printf '%s' "$persisted" | sed 's/^/  /'
  else
    mkdir -p "$(dirname "$persist_file")"
    tmp=$(mktemp "$persist_file.XXXXXX")
    printf '%s' "$content" >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$persist_file"
    echo "$persist_file: written (applied at boot, or now with: sysctl --system)"
  fi
fi
exit "$failed"
