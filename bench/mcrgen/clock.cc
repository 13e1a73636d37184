#include "bench/mcrgen/clock.h"

#include <sys/prctl.h>
#include <time.h>

namespace mcr::gen {
namespace {

int64_t ReadClock(clockid_t id) noexcept {
  timespec ts;
  clock_gettime(id, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

SystemClock::SystemClock() {
  // Best effort: without it sleeps are merely less precise, and the pacer spins the rest anyway.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

int64_t SystemClock::MonotonicNs() noexcept { return ReadClock(CLOCK_MONOTONIC); }

int64_t SystemClock::RealtimeNs() noexcept { return ReadClock(CLOCK_REALTIME); }

void SystemClock::SleepUntil(int64_t deadline_ns) noexcept {
  timespec ts;
  ts.tv_sec = deadline_ns / 1'000'000'000;
  ts.tv_nsec = deadline_ns % 1'000'000'000;
  // EINTR returns early on purpose: the caller re-checks its stop flag.
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

void SystemClock::Relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace mcr::gen
