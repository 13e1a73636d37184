#!/usr/bin/env bash
# A missing dependency stops cmake with a message naming the Debian package to install.
# Hides one dependency at a time (CMAKE_DISABLE_FIND_PACKAGE_<name>, or an empty pkg-config
# search path) and configures a scratch build directory. Needs no root.
set -euo pipefail
src=${MCR_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

expect_refusal() {  # expect_refusal PACKAGE CMAKE-ARGS...
  local package=$1 out; shift
  if out=$(cmake -S "$src" -B "$tmp/build-$package" "$@" 2>&1); then
    echo "FAIL: configure succeeded with $package hidden ($*)" >&2
    exit 1
  fi
  if ! grep -q "install the Debian package '$package'" <<<"$out"; then
    echo "FAIL: the error for a missing $package does not name it:" >&2
    echo "$out" | tail -n 5 >&2
    exit 1
  fi
  echo "ok: missing $package -> $(grep -m1 "not found" <<<"$out" | sed 's/^ *//')"
}

expect_refusal libabsl-dev -DCMAKE_DISABLE_FIND_PACKAGE_absl=ON
expect_refusal prometheus-cpp-dev -DCMAKE_DISABLE_FIND_PACKAGE_prometheus-cpp=ON
expect_refusal nlohmann-json3-dev -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON
expect_refusal libcli11-dev -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON
expect_refusal libgtest-dev -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON
expect_refusal libbenchmark-dev -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
# pkg-config dependencies, checked in order: a search path holding only the ones before.
pcdir=$(pkg-config --variable pc_path pkg-config | tr ':' '\n' | while read -r d; do
  [ -f "$d/liburing.pc" ] && echo "$d" && break; done)
mkdir -p "$tmp/pc"
PKG_CONFIG_LIBDIR=$tmp/pc expect_refusal liburing-dev
cp "$pcdir/liburing.pc" "$tmp/pc/"
PKG_CONFIG_LIBDIR=$tmp/pc expect_refusal libnuma-dev
cp "$pcdir/numa.pc" "$tmp/pc/"
PKG_CONFIG_LIBDIR=$tmp/pc expect_refusal libmnl-dev
echo "PASS"
