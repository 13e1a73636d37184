#pragma once
// What mcrd exports to Prometheus, as a pure function of an engine counter snapshot (and of the
// IGMP host's counters, igmp_stats.h). The catalog
// below is the single list of exported families: the collector builds exactly these, and the
// dashboard and documentation tests check themselves against it. Everything here is stateless
// and may be called from any thread.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "metrics/igmp_stats.h"

namespace mcr::metrics {

enum class MetricKind { kCounter, kGauge };

/// One exported metric family.
struct MetricInfo {
  std::string_view name;
  MetricKind kind;
  /// Label names in the order they are emitted, comma-separated; empty for none.
  std::string_view labels;
  /// The HELP text: what the metric counts (one line, no backslashes).
  std::string_view help;
};

/// Every family built from the engine, in exposition order. prometheus-cpp's HTTP exposer adds
/// its own `exposer_*` families to each scrape; they are not listed here.
std::span<const MetricInfo> MetricCatalog();

/// Labels of mcr_build_info.
struct BuildInfo {
  /// mcrd version (MCR_VERSION).
  std::string version;
  /// Release of the running kernel, as `uname -r` prints it.
  std::string kernel;
};

/// BuildInfo of this process: `version` and uname(2)'s release ("unknown" if uname fails).
BuildInfo CurrentBuildInfo(std::string version);

/// `stats` (and the IGMP of link-layer memberships, one entry per interface) in the Prometheus
/// text exposition format 0.0.4: exactly what /metrics serves for that snapshot, minus the
/// exposer's own families.
std::string RenderMetrics(const engine::EngineStats& stats, const BuildInfo& build,
                          const std::vector<IgmpInterfaceStats>& igmp = {});

}  // namespace mcr::metrics
