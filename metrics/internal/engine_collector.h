#pragma once
// Private to metrics/ (and its tests and benchmark): the prometheus-cpp side of the exporter.
// Public headers must not include this file, since it pulls prometheus-cpp types in.

#include <functional>
#include <vector>

#include "engine/engine.h"
#include "metrics/engine_metrics.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace mcr::metrics::internal {

/// The families of MetricCatalog(), in that order, with one sample per series of `stats`.
/// Label sets are rebuilt from the snapshot on every call, so the series of a rule that is gone
/// disappear with it. Pure function; any thread.
std::vector<prometheus::MetricFamily> BuildFamilies(
    const engine::EngineStats& stats, const BuildInfo& build,
    const std::vector<IgmpInterfaceStats>& igmp = {});

/// Reads a fresh snapshot on every Collect() (one per scrape). Collect() runs on the exposer's
/// HTTP threads, possibly two at once, so `source` must be callable concurrently;
/// Engine::Snapshot() is, and never blocks a shard.
/// `igmp`, when given, is called the same way, for the IGMP of link-layer memberships.
class EngineCollector final : public prometheus::Collectable {
 public:
  using StatsSource = std::function<engine::EngineStats()>;
  using IgmpSource = std::function<std::vector<IgmpInterfaceStats>()>;

  EngineCollector(StatsSource source, BuildInfo build, IgmpSource igmp = nullptr)
      : source_(std::move(source)), build_(std::move(build)), igmp_(std::move(igmp)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    return BuildFamilies(source_(), build_, igmp_ ? igmp_() : std::vector<IgmpInterfaceStats>{});
  }

 private:
  const StatsSource source_;
  const BuildInfo build_;
  const IgmpSource igmp_;
};

}  // namespace mcr::metrics::internal
