// What waking a sleeping thread costs on this machine, in CPU time charged to the woken thread.
// It is the floor under every relay that sleeps between packets: mcrd's ring mode pays it once
// per ring block, recv mode and socat once per packet (or batch). On the 2-vCPU development VM it
// is ~9 us per wake-up with the woken thread's CPU otherwise idle, ~17 us with a busy thread there
// (docs/PERFORMANCE.md, "Where the shard's time goes").
//
// The woken thread blocks in read() on a pipe, pinned to the last CPU this process may use; the
// benchmark thread, on another CPU when there is one, writes one byte and sleeps `gap` us. The
// counter is the woken thread's run time (schedstat) per wake-up; the benchmark's own time is the
// writer's and means little.
//
// BM_WakeLatencyBesideBurstyThread measures the other half of a wake-up: how long the woken
// thread waits for its CPU when another thread there runs in bursts (500 us on, 200 us off — the
// shape of a receiver or any busy neighbour), with the slice the woken thread asks for as the
// argument (0 = the kernel's default; engine/internal/sched_slice.h). Counters: p50/p99/max of
// write-to-read-return latency in us.
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <random>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/internal/sched_slice.h"

namespace {

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof(set), &set);
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

void PinSelf(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// The benchmark thread pins itself; the next benchmark needs every CPU back.
class KeepAffinity {
 public:
  KeepAffinity() { sched_getaffinity(0, sizeof set_, &set_); }
  ~KeepAffinity() { sched_setaffinity(0, sizeof set_, &set_); }
  KeepAffinity(const KeepAffinity&) = delete;
  KeepAffinity& operator=(const KeepAffinity&) = delete;

 private:
  cpu_set_t set_;
};

// Nanoseconds the thread has run (first field of /proc/self/task/TID/schedstat); -1 on error.
int64_t RunNs(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/schedstat");
  int64_t ns = -1;
  in >> ns;
  return ns;
}

void BM_WakeSleepingThread(benchmark::State& state) {
  const auto gap = std::chrono::microseconds(state.range(0));
  const KeepAffinity keep;
  const std::vector<int> cpus = AllowedCpus();
  int fds[2];
  if (cpus.empty() || pipe(fds) != 0) {
    state.SkipWithError("no CPU or no pipe");
    return;
  }
  std::atomic<pid_t> tid{0};
  std::thread sleeper([&] {
    PinSelf(cpus.back());
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    char c = 1;
    while (read(fds[0], &c, 1) == 1 && c != 0) {
    }
  });
  if (cpus.size() > 1) PinSelf(cpus.front());
  while (tid.load() == 0) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it block

  const int64_t before = RunNs(tid);
  int64_t wakes = 0;
  const char one = 1;
  for (auto _ : state) {
    if (write(fds[1], &one, 1) != 1) break;
    std::this_thread::sleep_for(gap);
    ++wakes;
  }
  const int64_t after = RunNs(tid);
  const char stop = 0;
  (void)!write(fds[1], &stop, 1);
  sleeper.join();
  close(fds[0]);
  close(fds[1]);
  if (before < 0 || after < 0 || wakes == 0) {
    state.SkipWithError("cannot read the sleeper's schedstat");
    return;
  }
  state.counters["woken_cpu_us_per_wake"] =
      static_cast<double>(after - before) / 1e3 / static_cast<double>(wakes);
}
BENCHMARK(BM_WakeSleepingThread)->Arg(1000)->Arg(100)->Iterations(2000)->UseRealTime();

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void BM_WakeLatencyBesideBurstyThread(benchmark::State& state) {
  const uint64_t slice_ns = static_cast<uint64_t>(state.range(0)) * 1000;
  const KeepAffinity keep;
  const std::vector<int> cpus = AllowedCpus();
  int fds[2];
  if (cpus.size() < 2 || pipe(fds) != 0) {
    state.SkipWithError("needs two CPUs and a pipe");
    return;
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> slice_got{0};
  std::vector<int64_t> latencies;
  latencies.reserve(static_cast<size_t>(state.max_iterations));
  std::thread woken([&] {
    PinSelf(cpus.back());
    slice_got = mcr::engine::internal::RequestSchedSlice(slice_ns);
    int64_t sent;
    while (read(fds[0], &sent, sizeof sent) == sizeof sent && sent != 0)
      latencies.push_back(NowNs() - sent);
  });
  std::thread neighbour([&] {
    PinSelf(cpus.back());
    while (!stop.load(std::memory_order_relaxed)) {
      const int64_t end = NowNs() + 500'000;
      while (NowNs() < end) {
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  PinSelf(cpus.front());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::minstd_rand rng(1);
  for (auto _ : state) {
    const int64_t now = NowNs();
    if (write(fds[1], &now, sizeof now) != sizeof now) {
      state.SkipWithError("write to the pipe failed");
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 300));
  }
  const int64_t zero = 0;
  (void)!write(fds[1], &zero, sizeof zero);
  woken.join();
  stop = true;
  neighbour.join();
  close(fds[0]);
  close(fds[1]);
  if (latencies.empty()) {
    state.SkipWithError("no wake-up measured");
    return;
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    return static_cast<double>(latencies[static_cast<size_t>(p * (latencies.size() - 1))]) / 1e3;
  };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["max_us"] = pct(1.0);
  state.counters["slice_us"] = static_cast<double>(slice_got.load()) / 1e3;
}
BENCHMARK(BM_WakeLatencyBesideBurstyThread)
    ->Arg(0)
    ->Arg(100)
    ->Arg(500)
    ->Iterations(5000)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
