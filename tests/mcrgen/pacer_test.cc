#include "bench/mcrgen/pacer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "bench/mcrgen/fake_clock.h"

namespace mcr::gen {
namespace {

constexpr int64_t kStart = 5'000'000'000;

PacerConfig Rate(uint64_t pps, uint32_t batch = 64) {
  PacerConfig c;
  c.rate_pps = pps;
  c.max_batch = batch;
  return c;
}

TEST(PacerTest, DeadlinesAreAbsoluteAndExact) {
  FakeClock clock(kStart);
  Pacer p(Rate(3), clock);
  ASSERT_EQ(p.Start(), kStart);
  EXPECT_EQ(p.DeadlineNs(0), kStart);
  EXPECT_EQ(p.DeadlineNs(1), kStart + 333'333'333);
  EXPECT_EQ(p.DeadlineNs(2), kStart + 666'666'666);
  EXPECT_EQ(p.DeadlineNs(3), kStart + 1'000'000'000);  // no accumulated rounding
  // 3e9 packets at 3 pps is exactly 1e9 s; n * 1e9 would overflow 64 bits long before.
  EXPECT_EQ(p.DeadlineNs(3'000'000'000ULL), kStart + 1'000'000'000'000'000'000);
  Pacer fast(Rate(7'000'000), clock);
  fast.Start();
  EXPECT_EQ(fast.DeadlineNs(7'000'000), kStart + 1'000'000'000);
}

TEST(PacerTest, DueCountMatchesDeadlines) {
  FakeClock clock(kStart);
  for (uint64_t rate : {1ULL, 3ULL, 1000ULL, 44100ULL, 999'983ULL, 14'880'952ULL}) {
    Pacer p(Rate(rate), clock);
    p.Start();
    EXPECT_EQ(p.DueCount(kStart - 1), 0u);
    for (uint64_t n = 0; n < 2000; ++n) {
      const int64_t d = p.DeadlineNs(n);
      ASSERT_EQ(p.DueCount(d), n + 1) << rate << " " << n;
      if (n > 0 && d > p.DeadlineNs(n - 1)) {
        ASSERT_EQ(p.DueCount(d - 1), n) << rate << " " << n;
      }
    }
  }
}

TEST(PacerTest, UnpacedReturnsFullBatchesWithoutWaiting) {
  FakeClock clock(kStart);
  Pacer p(Rate(0, 64), clock);
  p.Start();
  std::atomic<bool> stop{false};
  EXPECT_EQ(p.WaitForBatch(0, 1000, stop), 64u);
  EXPECT_EQ(p.WaitForBatch(64, 10, stop), 10u);  // limited by what is left to send
  EXPECT_EQ(clock.MonotonicNs(), kStart);
  EXPECT_EQ(clock.sleeps() + clock.relaxes(), 0);
  stop = true;
  EXPECT_EQ(p.WaitForBatch(0, 1000, stop), 0u);
}

TEST(PacerTest, LowRateSleepsThenSpinsOntoEachDeadline) {
  FakeClock clock(kStart);
  clock.set_relax_ns(1000);
  Pacer p(Rate(100), clock);  // 10 ms gaps: sleep
  p.Start();
  std::atomic<bool> stop{false};
  std::vector<int64_t> sends;
  for (uint64_t sent = 0; sent < 5;) {
    const uint32_t n = p.WaitForBatch(sent, 5 - sent, stop);
    ASSERT_EQ(n, 1u);
    sends.push_back(clock.MonotonicNs());
    sent += n;
  }
  EXPECT_THAT(sends, testing::ElementsAre(kStart, kStart + 10'000'000, kStart + 20'000'000,
                                          kStart + 30'000'000, kStart + 40'000'000));
  EXPECT_EQ(clock.sleeps(), 4);         // one per gap, waking 100 us early...
  EXPECT_EQ(clock.relaxes(), 4 * 100);  // ...then spinning the last 100 us in 1 us steps
}

TEST(PacerTest, SubMillisecondGapsSpinAndNeverSleep) {
  FakeClock clock(kStart);
  clock.set_relax_ns(50);
  Pacer p(Rate(10'000), clock);  // 100 us gaps
  p.Start();
  std::atomic<bool> stop{false};
  uint64_t sent = 0;
  while (sent < 1000) {
    const uint32_t n = p.WaitForBatch(sent, 1000 - sent, stop);
    ASSERT_EQ(n, 1u);
    ASSERT_EQ(clock.MonotonicNs(), p.DeadlineNs(sent));  // on time to the spin step
    sent += n;
  }
  EXPECT_EQ(clock.sleeps(), 0);
}

TEST(PacerTest, SleepOnlyNeverSpinsAndKeepsTheRate) {
  FakeClock clock(kStart);
  clock.set_oversleep_ns(60'000);  // every wake-up 60 us late, as on a VM
  PacerConfig c = Rate(40'000);    // 25 us gaps: the spinning pacer would never sleep
  c.sleep_only = true;
  Pacer p(c, clock);
  p.Start();
  std::atomic<bool> stop{false};
  uint64_t sent = 0, batches = 0;
  while (sent < 40'000) {
    const uint32_t n = p.WaitForBatch(sent, 40'000 - sent, stop);
    ASSERT_GE(n, 1u);
    sent += n;
    ++batches;
    ASSERT_GE(clock.MonotonicNs(), p.DeadlineNs(sent - 1));  // never early
  }
  EXPECT_EQ(clock.relaxes(), 0);
  EXPECT_GT(clock.sleeps(), 0);
  // Each late wake-up finds ~3 packets due: fewer, larger batches, the same second of traffic.
  EXPECT_LT(batches, 40'000u / 2);
  EXPECT_LT(clock.MonotonicNs() - p.DeadlineNs(39'999), 100'000);
}

TEST(PacerTest, LateWakeUpIsMadeUpInOneBatch) {
  FakeClock clock(kStart);
  clock.set_oversleep_ns(25'000'000);  // the sleep ends 25 ms late
  Pacer p(Rate(100), clock);           // 10 ms gaps
  p.Start();
  std::atomic<bool> stop{false};
  ASSERT_EQ(p.WaitForBatch(0, 100, stop), 1u);
  // Sleeps until 9.9 ms, wakes at 34.9 ms: packets 1, 2 and 3 are due and go together.
  EXPECT_EQ(p.WaitForBatch(1, 100, stop), 3u);
  EXPECT_EQ(clock.MonotonicNs(), kStart + 34'900'000);
  clock.set_oversleep_ns(0);
  // Packet 4 keeps its own deadline (40 ms): the schedule did not shift.
  EXPECT_EQ(p.WaitForBatch(4, 100, stop), 1u);
  EXPECT_EQ(clock.MonotonicNs(), p.DeadlineNs(4));
  EXPECT_EQ(p.DeadlineNs(4), kStart + 40'000'000);
}

TEST(PacerTest, LongRunRateIsExactDespiteOversleeping) {
  FakeClock clock(kStart);
  clock.set_oversleep_ns(700'000);
  Pacer p(Rate(250, 8), clock);  // 4 ms gaps, every wake-up 0.7 ms late
  p.Start();
  std::atomic<bool> stop{false};
  uint64_t sent = 0;
  while (sent < 10'000) {
    const uint32_t n = p.WaitForBatch(sent, 10'000 - sent, stop);
    ASSERT_GE(n, 1u);
    sent += n;
    // Never early: the last packet of the batch is due by now.
    ASSERT_GE(clock.MonotonicNs(), p.DeadlineNs(sent - 1));
  }
  // 10000 packets at 250 pps: the last one is due at 39.996 s and goes out < 1 ms after it.
  EXPECT_LT(clock.MonotonicNs() - p.DeadlineNs(9'999), 1'000'000);
}

TEST(PacerTest, BatchCapAndLimitBoundTheCatchUp) {
  FakeClock clock(kStart);
  Pacer p(Rate(1'000'000, 16), clock);
  p.Start();
  std::atomic<bool> stop{false};
  clock.Advance(1'000'000);  // 1 ms late: 1001 packets due
  EXPECT_EQ(p.WaitForBatch(0, 1'000'000, stop), 16u);
  EXPECT_EQ(p.WaitForBatch(16, 5, stop), 5u);
}

TEST(PacerTest, StopInterruptsAWait) {
  FakeClock clock(kStart);
  Pacer p(Rate(1), clock);
  p.Start();
  std::atomic<bool> stop{false};
  EXPECT_EQ(p.WaitForBatch(0, 10, stop), 1u);
  stop = true;
  EXPECT_EQ(p.WaitForBatch(1, 10, stop), 0u);
  EXPECT_LT(clock.MonotonicNs(), p.DeadlineNs(1));
}

}  // namespace
}  // namespace mcr::gen
