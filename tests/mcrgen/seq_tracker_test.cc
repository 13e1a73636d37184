#include "bench/mcrgen/seq_tracker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace mcr::gen {
namespace {

using V = SeqTracker::Verdict;

void Feed(SeqTracker& t, const std::vector<uint64_t>& seqs) {
  for (uint64_t s : seqs) t.Observe(s);
}

TEST(SeqTrackerTest, InOrderStreamHasNoLoss) {
  SeqTracker t(1024);
  EXPECT_EQ(t.lost(), 0u);
  for (uint64_t s = 0; s < 100000; ++s) ASSERT_EQ(t.Observe(s), V::kNew);
  EXPECT_EQ(t.unique(), 100000u);
  EXPECT_EQ(t.lost(), 0u);
  EXPECT_EQ(t.duplicated(), 0u);
  EXPECT_EQ(t.reordered(), 0u);
  EXPECT_EQ(t.lowest(), 0u);
  EXPECT_EQ(t.highest(), 99999u);
}

TEST(SeqTrackerTest, GapsCountAsLostUntilFilled) {
  SeqTracker t(1024);
  Feed(t, {0, 1, 2, 5, 6});
  EXPECT_EQ(t.lost(), 2u);  // 3 and 4
  EXPECT_EQ(t.Observe(4), V::kReordered);
  EXPECT_EQ(t.lost(), 1u);
  EXPECT_EQ(t.reordered(), 1u);
  EXPECT_EQ(t.Observe(3), V::kReordered);
  EXPECT_EQ(t.lost(), 0u);
  EXPECT_EQ(t.unique(), 7u);
}

TEST(SeqTrackerTest, DuplicatesAreCountedOnceEach) {
  SeqTracker t(1024);
  Feed(t, {0, 1, 2});
  EXPECT_EQ(t.Observe(2), V::kDuplicate);  // the newest again
  EXPECT_EQ(t.Observe(0), V::kDuplicate);  // an older one again
  EXPECT_EQ(t.Observe(0), V::kDuplicate);
  EXPECT_EQ(t.duplicated(), 3u);
  EXPECT_EQ(t.unique(), 3u);
  EXPECT_EQ(t.lost(), 0u);
  EXPECT_EQ(t.reordered(), 0u);
}

TEST(SeqTrackerTest, ReorderedThenDuplicatedIsBoth) {
  SeqTracker t(1024);
  Feed(t, {0, 2, 1, 1});
  EXPECT_EQ(t.reordered(), 1u);
  EXPECT_EQ(t.duplicated(), 1u);
  EXPECT_EQ(t.unique(), 3u);
  EXPECT_EQ(t.lost(), 0u);
}

TEST(SeqTrackerTest, PacketBeforeTheFirstOneLowersTheStart) {
  // Receiver saw 10 first, then 9 and 8: they are reordered, not "negative loss".
  SeqTracker t(1024);
  Feed(t, {10, 11, 9, 8});
  EXPECT_EQ(t.lowest(), 8u);
  EXPECT_EQ(t.unique(), 4u);
  EXPECT_EQ(t.reordered(), 2u);
  EXPECT_EQ(t.lost(), 0u);
}

TEST(SeqTrackerTest, OlderThanTheWindowIsLate) {
  SeqTracker t(64);
  Feed(t, {0, 1, 2, 3});
  EXPECT_EQ(t.Observe(200), V::kNew);  // jump: 4..199 missing
  EXPECT_EQ(t.lost(), 196u);
  EXPECT_EQ(t.Observe(136), V::kLate);  // 200 - 136 = 64: just outside
  EXPECT_EQ(t.Observe(2), V::kLate);    // a duplicate we can no longer recognise
  EXPECT_EQ(t.late(), 2u);
  EXPECT_EQ(t.Observe(137), V::kReordered);  // just inside
  EXPECT_EQ(t.Observe(137), V::kDuplicate);
  EXPECT_EQ(t.lost(), 195u);
  EXPECT_EQ(t.unique(), 6u);
}

TEST(SeqTrackerTest, JumpLongerThanTheWindowForgetsEverything) {
  SeqTracker t(64);
  for (uint64_t s = 0; s < 64; ++s) t.Observe(s);
  EXPECT_EQ(t.Observe(1000), V::kNew);
  // Slots reused by 1000-63..999 must read as unseen, not as the old 0..63.
  for (uint64_t s = 1000 - 63; s < 1000; ++s) ASSERT_EQ(t.Observe(s), V::kReordered) << s;
  EXPECT_EQ(t.lost(), 1001u - t.unique());
  EXPECT_EQ(t.duplicated(), 0u);
}

TEST(SeqTrackerTest, SlidingWindowClearsReusedSlots) {
  // Every number goes around the 64-slot ring many times; a stale bit would show as a duplicate.
  SeqTracker t(64);
  for (uint64_t s = 0; s < 10000; s += 3) ASSERT_EQ(t.Observe(s), V::kNew);
  for (uint64_t s = 9999; s > 9999 - 60; --s) {
    const V v = t.Observe(s);
    ASSERT_TRUE(s % 3 == 0 ? v == V::kDuplicate : v == V::kReordered) << s;
  }
  EXPECT_EQ(t.late(), 0u);
}

TEST(SeqTrackerTest, SixtyFourBitSequenceWraps) {
  SeqTracker t(1024);
  const uint64_t start = UINT64_MAX - 4;
  for (uint64_t i = 0; i < 10; ++i) ASSERT_EQ(t.Observe(start + i), V::kNew) << i;  // wraps to 4
  EXPECT_EQ(t.highest(), 4u);
  EXPECT_EQ(t.lowest(), start);
  EXPECT_EQ(t.lost(), 0u);
  EXPECT_EQ(t.Observe(UINT64_MAX), V::kDuplicate);  // before the wrap, already seen
  EXPECT_EQ(t.Observe(7), V::kNew);                 // 5 and 6 missing across the wrap
  EXPECT_EQ(t.lost(), 2u);
  EXPECT_EQ(t.Observe(5), V::kReordered);
  EXPECT_EQ(t.lost(), 1u);
}

TEST(SeqTrackerTest, ReorderAcrossTheWrap) {
  SeqTracker t(1024);
  Feed(t, {UINT64_MAX - 1, 1, UINT64_MAX, 0});
  EXPECT_EQ(t.unique(), 4u);
  EXPECT_EQ(t.reordered(), 2u);
  EXPECT_EQ(t.lost(), 0u);
}

TEST(SeqTrackerTest, DefaultWindowIs64k) {
  SeqTracker t;
  EXPECT_EQ(t.window(), 65536u);
  t.Observe(100000);
  EXPECT_EQ(t.Observe(100000 - 65535), V::kReordered);
  EXPECT_EQ(t.Observe(100000 - 65536), V::kLate);
}

}  // namespace
}  // namespace mcr::gen
