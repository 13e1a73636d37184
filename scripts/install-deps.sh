#!/usr/bin/env bash
# Installs every Debian package that building, testing, the demo and the benchmarks need.
# Idempotent: packages already present are left alone, and apt is not touched when nothing is missing.
# Usage: scripts/install-deps.sh            (as root, or with sudo available)
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config
  # libraries (one per dependency named in CMakeLists.txt)
  liburing-dev libnuma-dev libabsl-dev prometheus-cpp-dev libbenchmark-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev libmnl-dev
  # end-to-end tests, demo and benchmarks: real peers
  iproute2 ethtool socat smcroute iperf tcpdump nftables prometheus util-linux procps
  curl jq python3 gnuplot-nox systemd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps the prometheus package from dragging in a web UI stack we never use.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The prometheus package starts a system service on port 9090 on install; tests run their own
# instance on a port of their choosing, so stop the packaged one where systemd runs it, and keep
# it from coming back at the next boot.
if command -v systemctl >/dev/null && systemctl is-enabled --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
echo "install-deps: done"
