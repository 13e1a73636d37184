#pragma once
// Send pacing against absolute deadlines: packet n (counted over all streams from 0) is due at
// start + floor(n * 1e9 / rate) ns. Deadlines never accumulate rounding or wake-up errors, so the
// long-run rate is exact; a late wake-up is made up by sending every packet already due in one
// batch (at most max_batch per call). Gaps shorter than spin_threshold are spin-waited (a sleep
// would overshoot them); longer ones sleep until wake_early before the deadline, then spin. With
// sleep_only the pacer never spins: it sleeps until each deadline and sends what a late wake-up
// finds due as one batch, so the sender's CPU time is its sending alone.
//
// Owned by the send loop; one thread.

#include <atomic>
#include <cstdint>

#include "bench/mcrgen/clock.h"

namespace mcr::gen {

struct PacerConfig {
  /// Packets per second over all streams; 0 = unpaced (every call returns a full batch). Default 0.
  uint64_t rate_pps = 0;
  /// Most packets returned by one WaitForBatch (one sendmmsg). Default 64.
  uint32_t max_batch = 64;
  /// Waits shorter than this spin (ns). Default 1 ms.
  int64_t spin_threshold_ns = 1'000'000;
  /// Longer waits sleep until this long before the deadline, then spin (ns): covers the timer's
  /// wake-up latency. Default 100 us.
  int64_t wake_early_ns = 100'000;
  /// Never spin: sleep until the deadline whatever the gap (the two fields above are unused).
  /// Packets then leave in the bursts that late wake-ups make up; the long-run rate stays exact.
  /// For measuring CPU use, where a spinning sender would hide others' work. Default false.
  bool sleep_only = false;
};

class Pacer {
 public:
  /// `clock` must outlive the pacer.
  Pacer(const PacerConfig& config, Clock& clock);

  Pacer(const Pacer&) = delete;
  Pacer& operator=(const Pacer&) = delete;

  /// Starts the schedule: packet 0 is due now. Returns the start time (monotonic ns).
  int64_t Start() noexcept;

  /// Deadline of packet n (monotonic ns). Requires rate_pps > 0.
  int64_t DeadlineNs(uint64_t n) const noexcept;

  /// How many packets (0, 1, ..) have deadlines <= now_ns. Requires rate_pps > 0.
  uint64_t DueCount(int64_t now_ns) const noexcept;

  /// Waits until packet `sent` is due and returns how many to send now: between 1 and
  /// min(max_batch, limit) (limit >= 1). Returns 0 if `stop` became true while waiting.
  uint32_t WaitForBatch(uint64_t sent, uint64_t limit, const std::atomic<bool>& stop) noexcept;

  int64_t start_ns() const { return start_ns_; }

 private:
  const PacerConfig config_;
  Clock& clock_;
  int64_t start_ns_ = 0;
};

}  // namespace mcr::gen
