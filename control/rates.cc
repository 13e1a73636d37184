#include "control/rates.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mcr::control {
namespace {

std::string OutputKey(std::string_view rule_id, std::string_view output_name) {
  return absl::StrFormat("%s\x1f%s", rule_id, output_name);
}

}  // namespace

void RateTracker::Update(Map& next, const Map& prev, std::string key, uint64_t packets,
                         uint64_t bytes, double dt) {
  Entry e{packets, bytes, {}};
  if (auto it = prev.find(key);
      it != prev.end() && dt > 0 && packets >= it->second.packets && bytes >= it->second.bytes) {
    e.rate.packets_per_second = static_cast<double>(packets - it->second.packets) / dt;
    e.rate.bits_per_second = static_cast<double>(bytes - it->second.bytes) * 8 / dt;
  }
  next.emplace(std::move(key), e);
}

void RateTracker::Sample(const engine::EngineStats& stats,
                         std::chrono::steady_clock::time_point now) {
  const double dt = have_last_ ? std::chrono::duration<double>(now - last_).count() : 0.0;
  Map rules, outputs, shards;
  for (const auto& r : stats.rules) {
    Update(rules, rules_, r.spec.id, r.packets, r.bytes, dt);
    for (const auto& o : r.outputs) {
      Update(outputs, outputs_, OutputKey(r.spec.id, o.name), o.packets, o.bytes, dt);
    }
  }
  for (const auto& s : stats.shards) {
    Update(shards, shards_, absl::StrCat(s.index), s.received, 0, dt);
  }
  rules_ = std::move(rules);
  outputs_ = std::move(outputs);
  shards_ = std::move(shards);
  interval_ = dt;
  last_ = now;
  have_last_ = true;
}

RateTracker::Rate RateTracker::ForRule(std::string_view rule_id) const {
  auto it = rules_.find(std::string(rule_id));
  return it == rules_.end() ? Rate{} : it->second.rate;
}

RateTracker::Rate RateTracker::ForOutput(std::string_view rule_id,
                                         std::string_view output_name) const {
  auto it = outputs_.find(OutputKey(rule_id, output_name));
  return it == outputs_.end() ? Rate{} : it->second.rate;
}

double RateTracker::ShardPacketsPerSecond(int shard) const {
  auto it = shards_.find(absl::StrCat(shard));
  return it == shards_.end() ? 0 : it->second.rate.packets_per_second;
}

}  // namespace mcr::control
