#include "bench/mcrgen/histogram.h"

#include <algorithm>
#include <cmath>

namespace mcr::gen {

uint64_t LogHistogram::Percentile(double p) const noexcept {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // Rank of the wanted value, 1-based: the ceil(p% of count)-th smallest, at least the first.
  // The tolerance keeps binary rounding (99.9% of 1000 = 999.0000000000001) from adding a rank.
  const double exact = p / 100.0 * static_cast<double>(count_);
  auto rank = static_cast<uint64_t>(std::ceil(exact - 1e-9 * std::max(1.0, exact)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) return std::clamp(BucketUpper(b), min_, max_);
  }
  return max_;
}

uint64_t LogHistogram::CountBelow(uint64_t v) const noexcept {
  uint64_t n = 0;
  for (size_t b = 0; b < kBuckets && BucketUpper(b) < v; ++b) n += counts_[b];
  return n;
}

}  // namespace mcr::gen
