#include "bench/mcrgen/pacer.h"

#include <algorithm>

namespace mcr::gen {
namespace {
constexpr unsigned __int128 kNsPerSecond = 1'000'000'000;
}  // namespace

Pacer::Pacer(const PacerConfig& config, Clock& clock) : config_(config), clock_(clock) {}

int64_t Pacer::Start() noexcept {
  start_ns_ = clock_.MonotonicNs();
  return start_ns_;
}

int64_t Pacer::DeadlineNs(uint64_t n) const noexcept {
  // n * 1e9 overflows 64 bits after 18.4e9 packets; 128 bits never does for 64-bit n.
  const unsigned __int128 offset =
      static_cast<unsigned __int128>(n) * kNsPerSecond / config_.rate_pps;
  return start_ns_ + static_cast<int64_t>(offset);
}

uint64_t Pacer::DueCount(int64_t now_ns) const noexcept {
  if (now_ns < start_ns_) return 0;
  // Packet n is due iff floor(n * 1e9 / rate) <= elapsed, i.e. n * 1e9 < (elapsed + 1) * rate.
  // The count of such n is ceil((elapsed + 1) * rate / 1e9).
  const unsigned __int128 scaled =
      static_cast<unsigned __int128>(static_cast<uint64_t>(now_ns - start_ns_) + 1) *
      config_.rate_pps;
  return static_cast<uint64_t>((scaled + kNsPerSecond - 1) / kNsPerSecond);
}

uint32_t Pacer::WaitForBatch(uint64_t sent, uint64_t limit,
                             const std::atomic<bool>& stop) noexcept {
  const uint64_t cap = std::min<uint64_t>(config_.max_batch, limit);
  if (config_.rate_pps == 0) return stop.load(std::memory_order_relaxed) ? 0 : cap;
  const int64_t deadline = DeadlineNs(sent);
  for (;;) {
    if (stop.load(std::memory_order_relaxed)) return 0;
    const int64_t now = clock_.MonotonicNs();
    if (now >= deadline) {
      return static_cast<uint32_t>(std::min(DueCount(now) - sent, cap));
    }
    if (config_.sleep_only) {
      clock_.SleepUntil(deadline);
      continue;
    }
    // Sleeping is only worth it when the sleep would end before the deadline.
    if (deadline - now > std::max(config_.spin_threshold_ns, config_.wake_early_ns)) {
      clock_.SleepUntil(deadline - config_.wake_early_ns);
    } else {
      clock_.Relax();
    }
  }
}

}  // namespace mcr::gen
