// HOT PATH: no allocation, no exceptions.
#include "bench/mcrgen/seq_tracker.h"

#include <algorithm>
#include <cstdlib>

namespace mcr::gen {

SeqTracker::SeqTracker(uint64_t window) : window_(window), mask_(window - 1) {
  // Callers validate user input (RecvConfig); a bad value here is a programming error.
  if (window < 64 || (window & (window - 1)) != 0) std::abort();
  bits_.assign(window / 64, 0);
}

void SeqTracker::ClearRange(uint64_t first, uint64_t count) noexcept {
  uint64_t pos = first & mask_;
  while (count > 0) {
    const uint64_t bit = pos & 63;
    const uint64_t n = std::min<uint64_t>(64 - bit, count);
    const uint64_t m = n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1) << bit;
    bits_[pos >> 6] &= ~m;
    pos = (pos + n) & mask_;
    count -= n;
  }
}

SeqTracker::Verdict SeqTracker::Observe(uint64_t seq) noexcept {
  if (!started_) {
    started_ = true;
    lowest_ = highest_ = seq;
    Set(seq);
    unique_ = 1;
    return Verdict::kNew;
  }
  const auto ahead = static_cast<int64_t>(seq - highest_);
  if (ahead > 0) {
    // The slots of highest+1 .. seq last held numbers that now fall out of the window.
    if (static_cast<uint64_t>(ahead) >= window_) {
      std::fill(bits_.begin(), bits_.end(), 0);
    } else {
      ClearRange(highest_ + 1, static_cast<uint64_t>(ahead));
    }
    highest_ = seq;
    Set(seq);
    ++unique_;
    return Verdict::kNew;
  }
  if (highest_ - seq >= window_) {
    ++late_;
    return Verdict::kLate;
  }
  if (Test(seq)) {
    ++duplicated_;
    return Verdict::kDuplicate;
  }
  // Slots below lowest_ but inside the window were never set (nothing below lowest_ was
  // accepted), so a zero bit there really means "not seen".
  Set(seq);
  ++unique_;
  ++reordered_;
  if (static_cast<int64_t>(seq - lowest_) < 0) lowest_ = seq;
  return Verdict::kReordered;
}

uint64_t SeqTracker::lost() const {
  if (!started_) return 0;
  return (highest_ - lowest_ + 1) - unique_;
}

}  // namespace mcr::gen
