#pragma once
// Packet and bit rates from successive counter snapshots, so that `mcrctl stats` answers at once
// with the rates of the last interval instead of sampling twice itself. Control thread only.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "engine/engine.h"

namespace mcr::control {

class RateTracker {
 public:
  struct Rate {
    double packets_per_second = 0;
    double bits_per_second = 0;  // UDP payload bits
  };

  /// Takes a snapshot taken at `now`; rates are the change since the previous sample divided by
  /// the time between them. A counter that went backwards (a rule re-created) reads 0 for one
  /// interval. Rules, outputs and shards missing from `stats` are forgotten.
  void Sample(const engine::EngineStats& stats, std::chrono::steady_clock::time_point now);

  Rate ForRule(std::string_view rule_id) const;
  /// `output_name` as in engine::OutputStats::name.
  Rate ForOutput(std::string_view rule_id, std::string_view output_name) const;
  /// Frames taken from the kernel per second.
  double ShardPacketsPerSecond(int shard) const;
  /// Length of the interval the rates cover, in seconds; 0 before two samples.
  double interval_seconds() const { return interval_; }

 private:
  struct Entry {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    Rate rate;
  };
  using Map = absl::flat_hash_map<std::string, Entry>;
  static void Update(Map& next, const Map& prev, std::string key, uint64_t packets, uint64_t bytes,
                     double dt);

  std::chrono::steady_clock::time_point last_{};
  bool have_last_ = false;
  double interval_ = 0;
  Map rules_;
  Map outputs_;  // key: rule id '\x1f' output name
  Map shards_;   // key: shard index in decimal
};

}  // namespace mcr::control
