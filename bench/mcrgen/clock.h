#pragma once
// Time source seam: the sender's pacing and timestamps go through Clock so that unit tests drive
// them with a fake clock (no sleeps, no wall clock). SystemClock is the real one.

#include <cstdint>
#include <memory>

namespace mcr::gen {

/// Owned by whoever runs the send or receive loop; called from that one thread only.
class Clock {
 public:
  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock() = default;
  /// CLOCK_MONOTONIC in ns: pacing deadlines and elapsed times.
  virtual int64_t MonotonicNs() noexcept = 0;
  /// CLOCK_REALTIME in ns: the send timestamp in every payload. Realtime rather than monotonic
  /// because it is the one clock that sender and receiver in different namespaces (or, with PTP,
  /// on different hosts) agree on.
  virtual int64_t RealtimeNs() noexcept = 0;
  /// Sleeps until MonotonicNs() >= deadline_ns, or less when a signal arrives.
  virtual void SleepUntil(int64_t deadline_ns) noexcept = 0;
  /// One iteration of a spin-wait (a CPU pause hint).
  virtual void Relax() noexcept = 0;
};
using ClockPtr = std::unique_ptr<Clock>;

/// The host's clocks. Construction lowers the calling thread's timer slack to 1 ns so that
/// sleeps end within microseconds of their deadline rather than the default 50 us later, so
/// construct it on the thread that will sleep. Stateless otherwise: any thread.
class SystemClock final : public Clock {
 public:
  SystemClock();
  int64_t MonotonicNs() noexcept override;
  int64_t RealtimeNs() noexcept override;
  void SleepUntil(int64_t deadline_ns) noexcept override;
  void Relax() noexcept override;
};

}  // namespace mcr::gen
