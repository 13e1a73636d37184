#pragma once
// The Prometheus endpoint: serves GET /metrics in the text format on an IPv4 address, building
// the families of engine_metrics.h from a fresh engine snapshot on every scrape. The data plane
// never calls into this layer; scrapes only read the shards' counters.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/engine.h"
#include "metrics/engine_metrics.h"

namespace mcr::metrics {

/// Owned by the daemon's main. Start() and the destructor run on the control thread; scrapes run
/// on the server's own two HTTP threads (prometheus-cpp's civetweb). Those threads are created by
/// Start() and inherit the calling thread's CPU affinity, signal mask and network namespace: call
/// it from the control thread after pinning it and blocking the signals it handles, never from a
/// shard, or the HTTP threads would compete with that shard for its CPU.
class MetricsServer {
 public:
  /// Produces one snapshot per scrape; called from the HTTP threads, up to two at once.
  using StatsSource = std::function<engine::EngineStats()>;
  /// The same for the IGMP of link-layer memberships (mcr_igmp_*), one entry per interface.
  using IgmpSource = std::function<std::vector<IgmpInterfaceStats>()>;

  /// Listens on `listen`, "ADDR:PORT" with an IPv4 address and a port 0..65535 (0: any free
  /// port; see port()), and serves `engine`'s counters, labelled with `version` in
  /// mcr_build_info. `engine` must outlive the server. Returns InvalidArgument for a malformed
  /// address and Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              const engine::Engine& engine,
                                                              std::string version);
  /// As above with any snapshot source (the daemon, tests, benchmarks), and optionally an IGMP
  /// source; without one the mcr_igmp_* families have no series.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& listen,
                                                              StatsSource source,
                                                              std::string version,
                                                              IgmpSource igmp = nullptr);
  /// Stops listening and joins the HTTP threads; no scrape runs after it returns. Can take up to
  /// about 2 s: civetweb's accept loop sees the stop request only at its next poll timeout.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// The port actually bound (the chosen one when `listen` asked for port 0).
  uint16_t port() const;

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

using MetricsServerPtr = std::unique_ptr<MetricsServer>;

}  // namespace mcr::metrics
