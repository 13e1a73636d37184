#pragma once
// Test double for Clock: time moves only when the code under test sleeps or spins (or the test
// calls Advance), so pacing is tested exactly, with no sleeps and no wall clock.
// Owned by a test; one thread.

#include <cstdint>

#include "bench/mcrgen/clock.h"

namespace mcr::gen {

class FakeClock final : public Clock {
 public:
  /// Monotonic time starts at start_ns; realtime is monotonic + realtime_offset_ns.
  explicit FakeClock(int64_t start_ns = 1'000'000'000,
                     int64_t realtime_offset_ns = 1'700'000'000'000'000'000)
      : now_(start_ns), realtime_offset_(realtime_offset_ns) {}

  int64_t MonotonicNs() noexcept override { return now_; }
  int64_t RealtimeNs() noexcept override { return now_ + realtime_offset_; }
  /// Jumps to the deadline (if in the future) plus the configured oversleep.
  void SleepUntil(int64_t deadline_ns) noexcept override {
    ++sleeps_;
    if (deadline_ns > now_) now_ = deadline_ns;
    now_ += oversleep_ns_;
  }
  /// One spin iteration costs relax_ns of time.
  void Relax() noexcept override {
    ++relaxes_;
    now_ += relax_ns_;
  }

  void Advance(int64_t ns) { now_ += ns; }
  void set_oversleep_ns(int64_t ns) { oversleep_ns_ = ns; }
  void set_relax_ns(int64_t ns) { relax_ns_ = ns; }
  int sleeps() const { return sleeps_; }
  int relaxes() const { return relaxes_; }

 private:
  int64_t now_;
  int64_t realtime_offset_;
  int64_t oversleep_ns_ = 0;
  int64_t relax_ns_ = 100;
  int sleeps_ = 0;
  int relaxes_ = 0;
};

}  // namespace mcr::gen
