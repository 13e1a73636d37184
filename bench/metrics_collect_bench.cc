// Scrape cost on the metrics side: building the Prometheus families from an engine snapshot
// (what EngineCollector::Collect() does after Engine::Snapshot()), and that plus the text
// serialization the exposer adds. Issue 5's target: Collect() for 10k rules x 4 shards < 50 ms.
// Arguments: rules, shards, outputs per rule.

#include <sstream>

#include "benchmark/benchmark.h"
#include "metrics/engine_metrics.h"
#include "metrics/internal/engine_collector.h"
#include "prometheus/text_serializer.h"
#include "tests/metrics/synthetic_stats.h"

namespace mcr::metrics {
namespace {

const BuildInfo kBuild{"bench", "6.18.0"};

void Configure(benchmark::internal::Benchmark* b) {
  b->ArgNames({"rules", "shards", "outputs"})
      ->Args({1000, 4, 1})
      ->Args({10000, 4, 1})
      ->Args({10000, 4, 2})
      ->Unit(benchmark::kMillisecond);
}

void BM_BuildFamilies(benchmark::State& state) {
  const engine::EngineStats stats =
      mcr::testing::SyntheticStats(state.range(0), state.range(1), state.range(2));
  size_t samples = 0;
  for (auto _ : state) {
    auto families = internal::BuildFamilies(stats, kBuild);
    samples = 0;
    for (const auto& f : families) samples += f.metric.size();
    benchmark::DoNotOptimize(families);
  }
  state.counters["samples"] = static_cast<double>(samples);
}
BENCHMARK(BM_BuildFamilies)->Apply(Configure);

void BM_BuildAndSerialize(benchmark::State& state) {
  const engine::EngineStats stats =
      mcr::testing::SyntheticStats(state.range(0), state.range(1), state.range(2));
  size_t bytes = 0;
  for (auto _ : state) {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, internal::BuildFamilies(stats, kBuild));
    bytes = out.tellp();
    benchmark::DoNotOptimize(out);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_BuildAndSerialize)->Apply(Configure);

}  // namespace
}  // namespace mcr::metrics

BENCHMARK_MAIN();
