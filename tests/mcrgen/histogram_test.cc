#include "bench/mcrgen/histogram.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace mcr::gen {
namespace {

TEST(LogHistogramTest, EmptyReportsZero) {
  LogHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(50), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(LogHistogramTest, SmallValuesAreExact) {
  LogHistogram h;
  for (uint64_t v = 1; v <= 31; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(50), 16u);
  EXPECT_EQ(h.Percentile(100), 31u);
  EXPECT_EQ(h.min(), 1u);
}

TEST(LogHistogramTest, BucketsCoverTheRangeWithoutGaps) {
  // Each bucket's upper edge + 1 is the next bucket's first value.
  for (size_t b = 0; b + 1 < LogHistogram::kBuckets; ++b) {
    const uint64_t upper = LogHistogram::BucketUpper(b);
    ASSERT_EQ(LogHistogram::BucketOf(upper), b);
    ASSERT_EQ(LogHistogram::BucketOf(upper + 1), b + 1);
  }
  EXPECT_EQ(LogHistogram::BucketOf(UINT64_MAX), LogHistogram::kBuckets - 1);
  EXPECT_EQ(LogHistogram::BucketUpper(LogHistogram::kBuckets - 1), UINT64_MAX);
}

TEST(LogHistogramTest, PercentilesWithinRelativeError) {
  // 1..100000 us in ns: the true p-th percentile is p * 1000 us.
  LogHistogram h;
  for (uint64_t us = 1; us <= 100000; ++us) h.Record(us * 1000);
  for (double p : {1.0, 50.0, 90.0, 99.0, 99.9}) {
    const double truth = p * 1000 * 1000;
    const double got = static_cast<double>(h.Percentile(p));
    EXPECT_GE(got, truth) << p;  // an upper edge: never under-reports
    EXPECT_LE(got, truth * (1 + 1.0 / 32)) << p;
  }
  EXPECT_EQ(h.Percentile(100), 100000u * 1000);
  EXPECT_EQ(h.max(), 100000u * 1000);
  EXPECT_EQ(h.min(), 1000u);
  EXPECT_NEAR(h.mean(), 50000.5 * 1000, 1);
}

TEST(LogHistogramTest, ClampedToObservedRange) {
  LogHistogram h;
  h.Record(1000003);  // the bucket's upper edge is above it
  EXPECT_EQ(h.Percentile(50), 1000003u);
  EXPECT_EQ(h.Percentile(99), 1000003u);
}

TEST(LogHistogramTest, OutlierOnlyShowsInTheTail) {
  LogHistogram h;
  for (int i = 0; i < 999; ++i) h.Record(10'000);
  h.Record(5'000'000);
  EXPECT_LE(h.Percentile(50), 10'000u * 33 / 32);
  EXPECT_LE(h.Percentile(99.9), 10'000u * 33 / 32);
  EXPECT_EQ(h.Percentile(99.95), 5'000'000u);
  EXPECT_EQ(h.max(), 5'000'000u);
}

TEST(LogHistogramTest, CountBelowCountsWholeBucketsUnderTheValue) {
  LogHistogram h;
  for (uint64_t v : {5u, 31u, 100u, 1000u, 1000u, 50'000u}) h.Record(v);
  EXPECT_EQ(h.CountBelow(0), 0u);
  EXPECT_EQ(h.CountBelow(6), 1u);     // 5 (values under 32 are exact)
  EXPECT_EQ(h.CountBelow(32), 2u);    // 5, 31
  EXPECT_EQ(h.CountBelow(2000), 5u);  // and 100, 1000 twice
  EXPECT_EQ(h.CountBelow(1001), 3u);  // 1000 is in 992..1007, not wholly below 1001
  EXPECT_EQ(h.CountBelow(~uint64_t{0}), 6u);
}

}  // namespace
}  // namespace mcr::gen
