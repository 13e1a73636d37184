#pragma once
// mcrd's command line: the flags of `mcrd supervisor` as typed (DaemonFlags, filled by CLI11)
// and the validated settings they resolve to (DaemonOptions). Main thread, at start.

#include <cstdint>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "control/control_server.h"
#include "control/controller.h"
#include "control/log.h"
#include "engine/engine.h"

namespace mcr::control {

/// `mcrd supervisor` flags, as given. Defaults are the documented ones (docs/REFERENCE.md).
struct DaemonFlags {
  /// --cpus: shard CPUs, taskset list syntax; empty: every CPU the process may use.
  std::string cpus;
  /// --control-cpu: CPU for the control thread; -1: not pinned.
  int control_cpu = -1;
  /// --control-socket-path.
  std::string control_socket_path = "/run/mcr/mcrd.sock";
  /// --socket-group: group owning the socket; empty: the daemon's own.
  std::string socket_group;
  /// --config: rules file read at start and on SIGHUP; empty: none.
  std::string config;
  /// --allow-missing-interface: accept config rules whose interfaces do not exist yet.
  bool allow_missing_interface = false;
  /// --state-file; "off": no persistence.
  std::string state_file = "/var/lib/mcr/state.json";
  /// --metrics-listen ADDR:PORT or "off".
  std::string metrics_listen = "127.0.0.1:9464";
  /// --ingress ring|recv.
  std::string ingress = "ring";
  /// --membership kernel|link.
  std::string membership = "kernel";
  /// --ring-block-size, bytes (K/M suffixes accepted).
  uint64_t ring_block_size = 128 * 1024;
  /// --ring-block-count.
  uint32_t ring_block_count = 64;
  /// --ring-block-timeout-ms.
  uint32_t ring_block_timeout_ms = 1;
  /// --busy-poll-us.
  uint32_t busy_poll_us = 0;
  /// --sched-slice-us.
  uint32_t sched_slice_us = 0;
  /// --log-level.
  std::string log_level = "info";
};

/// Where the Prometheus endpoint listens.
struct MetricsListen {
  bool enabled = true;
  std::string address = "127.0.0.1";  // IPv4 dotted quad
  uint16_t port = 9464;
};

/// Everything mcrd needs to run, validated.
struct DaemonOptions {
  engine::EngineOptions engine;
  /// CPU to pin the control thread to, after the shards started.
  std::optional<int> control_cpu;
  ServerOptions server;
  ControllerOptions controller;
  MetricsListen metrics;
  LogLevel log_level = LogLevel::kInfo;
  /// --membership link: mcrd holds the input groups at the link layer and speaks IGMP itself
  /// (igmp_host.h); false: the host joins them (membership.h).
  bool link_membership = false;
};

/// Registers the `supervisor` flags on `app`, bound to `flags`.
void AddDaemonFlags(CLI::App& app, DaemonFlags& flags);

/// Validates and converts: CPU list syntax, socket path length, group name, metrics address,
/// ingress mode, log level. Whether the CPUs may be used is checked when the engine starts.
absl::StatusOr<DaemonOptions> ResolveDaemonFlags(const DaemonFlags& flags);

/// Parses --metrics-listen: "off", or "ADDR:PORT" with an IPv4 address and a port 1..65535.
absl::StatusOr<MetricsListen> ParseMetricsListen(std::string_view text);

}  // namespace mcr::control
