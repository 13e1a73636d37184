#pragma once
// HOT PATH (Record runs for every valid packet received): no allocation, no exceptions.
//
// Fixed-size log-linear histogram of non-negative 64-bit values (latencies in ns). Values below
// 32 have a bucket each; above, every power of two is split into 32 equal buckets, so a reported
// percentile is at most 1/32 (3.1%) above the true value, over the whole 64-bit range, in 15.6 KiB
// and with no allocation per value (the scheme of HdrHistogram with 5 significant bits).
//
// Owned by its user; one thread.

#include <array>
#include <cstddef>
#include <cstdint>

namespace mcr::gen {

class LogHistogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBits;  // 32
  // Values < 32 (exact) + 59 octaves (msb 5..63) of 32 buckets each.
  static constexpr size_t kBuckets = kSubBuckets + (64 - kSubBits) * kSubBuckets;

  void Record(uint64_t value) noexcept {
    ++counts_[BucketOf(value)];
    ++count_;
    sum_ += value;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }

  /// Smallest recorded-bucket bound v such that at least p percent (0 < p <= 100) of the values
  /// are <= v: the upper edge of the bucket holding that rank, clamped to [min, max] so that
  /// p=100 is exactly the maximum. 0 when empty.
  uint64_t Percentile(double p) const noexcept;

  /// Values recorded in buckets that lie wholly below `v`: every value < v, except those that
  /// share a bucket with v (at most 1/32 below it). Not the hot path: walks the buckets.
  uint64_t CountBelow(uint64_t v) const noexcept;

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  static size_t BucketOf(uint64_t v) noexcept {
    if (v < kSubBuckets) return static_cast<size_t>(v);
    const int msb = 63 - __builtin_clzll(v);
    const int shift = msb - kSubBits;
    const uint64_t sub = (v >> shift) & (kSubBuckets - 1);  // the 5 bits below the leading one
    return static_cast<size_t>(kSubBuckets + static_cast<uint64_t>(shift) * kSubBuckets + sub);
  }
  /// Largest value that falls in bucket `b`.
  static uint64_t BucketUpper(size_t b) noexcept {
    if (b < kSubBuckets) return b;
    const uint64_t shift = (b - kSubBuckets) / kSubBuckets;
    const uint64_t sub = (b - kSubBuckets) % kSubBuckets;
    const uint64_t low = (kSubBuckets + sub) << shift;
    return low + ((uint64_t{1} << shift) - 1);
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;  // wraps after 584 years of summed nanoseconds; only feeds mean()
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace mcr::gen
