#include "control/rates.h"

#include "gtest/gtest.h"

namespace mcr::control {
namespace {

using std::chrono::milliseconds;

engine::EngineStats Stats(uint64_t packets, uint64_t bytes) {
  engine::EngineStats s;
  engine::RuleStats r;
  r.spec.id = "a";
  r.packets = packets;
  r.bytes = bytes;
  engine::OutputStats o;
  o.name = "239.2.2.2:6000@out0";
  o.packets = packets;
  o.bytes = bytes;
  r.outputs.push_back(o);
  s.rules.push_back(r);
  engine::ShardStats sh;
  sh.index = 3;
  sh.received = packets;
  s.shards.push_back(sh);
  return s;
}

TEST(RateTrackerTest, RatesOverTheLastInterval) {
  RateTracker t;
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  t.Sample(Stats(100, 1000), t0);
  EXPECT_EQ(t.interval_seconds(), 0);
  EXPECT_EQ(t.ForRule("a").packets_per_second, 0);  // one sample: no rate yet
  t.Sample(Stats(300, 3000), t0 + milliseconds(2000));
  EXPECT_DOUBLE_EQ(t.interval_seconds(), 2);
  EXPECT_DOUBLE_EQ(t.ForRule("a").packets_per_second, 100);
  EXPECT_DOUBLE_EQ(t.ForRule("a").bits_per_second, 8000);
  EXPECT_DOUBLE_EQ(t.ForOutput("a", "239.2.2.2:6000@out0").packets_per_second, 100);
  EXPECT_DOUBLE_EQ(t.ShardPacketsPerSecond(3), 100);
  EXPECT_EQ(t.ForRule("missing").packets_per_second, 0);
}

TEST(RateTrackerTest, CounterResetReadsZeroNotHuge) {
  RateTracker t;
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  t.Sample(Stats(1000, 10000), t0);
  t.Sample(Stats(10, 100), t0 + milliseconds(1000));  // rule re-created: counters restarted
  EXPECT_EQ(t.ForRule("a").packets_per_second, 0);
  t.Sample(Stats(110, 1100), t0 + milliseconds(2000));
  EXPECT_DOUBLE_EQ(t.ForRule("a").packets_per_second, 100);
}

TEST(RateTrackerTest, RemovedRulesAreForgotten) {
  RateTracker t;
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  t.Sample(Stats(0, 0), t0);
  t.Sample(Stats(100, 100), t0 + milliseconds(1000));
  t.Sample(engine::EngineStats{}, t0 + milliseconds(2000));
  EXPECT_EQ(t.ForRule("a").packets_per_second, 0);
}

}  // namespace
}  // namespace mcr::control
