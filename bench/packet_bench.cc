// Per-packet costs of the receive path's CPU work (parse + steering check) and of the SPSC
// hand-off between the control thread and a shard.

#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/packet.h"
#include "engine/spsc_queue.h"
#include "engine/steering.h"

namespace mcr::engine {
namespace {

// A 1200-byte UDP frame 10.0.0.1:1234 -> 239.1.2.3:5000 with `tags` in-band tags and `ihl` words
// of IPv4 header.
std::vector<uint8_t> MakeFrame(int tags, int ihl) {
  const size_t ip = 14 + 4 * tags;
  const size_t udp = ip + 4 * ihl;
  std::vector<uint8_t> f(1200, 0);
  size_t at = 12;
  for (int i = 0; i < tags; ++i, at += 4) {
    f[at] = i == 0 && tags > 1 ? 0x88 : 0x81;
    f[at + 1] = i == 0 && tags > 1 ? 0xa8 : 0x00;
    f[at + 3] = static_cast<uint8_t>(10 + i);
  }
  f[at] = 0x08;
  const uint16_t total = htons(static_cast<uint16_t>(f.size() - ip));
  const uint16_t udp_len = htons(static_cast<uint16_t>(f.size() - udp));
  f[ip] = static_cast<uint8_t>(0x40 | ihl);
  std::memcpy(&f[ip + 2], &total, 2);
  f[ip + 8] = 64;
  f[ip + 9] = 17;
  const uint32_t src = inet_addr("10.0.0.1"), dst = inet_addr("239.1.2.3");
  std::memcpy(&f[ip + 12], &src, 4);
  std::memcpy(&f[ip + 16], &dst, 4);
  const uint16_t sport = htons(1234), dport = htons(5000);
  std::memcpy(&f[udp], &sport, 2);
  std::memcpy(&f[udp + 2], &dport, 2);
  std::memcpy(&f[udp + 4], &udp_len, 2);
  return f;
}

// What a shard does per frame before the rule lookup: parse, then check it owns the flow.
void BM_ParseAndSteer(benchmark::State& state) {
  const std::vector<uint8_t> frame =
      MakeFrame(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  uint64_t mine = 0;
  uint32_t shards = 4;
  for (auto _ : state) {
    benchmark::DoNotOptimize(frame.data());  // the frame is "new" every iteration
    benchmark::DoNotOptimize(shards);        // a run-time count, as in mcrd: a real division
    ParsedPacket p;
    if (ParseFrame(frame.data(), static_cast<uint32_t>(frame.size()), &p) != ParseResult::kOk) {
      state.SkipWithError("frame did not parse");
      break;
    }
    mine += ShardFor(p.dst_addr, p.dst_port, shards) == 1;
    benchmark::DoNotOptimize(p);
  }
  benchmark::DoNotOptimize(mine);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseAndSteer)
    ->ArgNames({"in_band_tags", "ihl"})
    ->Args({0, 5})
    ->Args({1, 5})
    ->Args({2, 5})
    ->Args({0, 15});

void BM_ParseOnly(benchmark::State& state) {
  const std::vector<uint8_t> frame = MakeFrame(0, 5);
  for (auto _ : state) {
    benchmark::DoNotOptimize(frame.data());
    ParsedPacket p;
    benchmark::DoNotOptimize(ParseFrame(frame.data(), static_cast<uint32_t>(frame.size()), &p));
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseOnly);

void BM_SteeringHash(benchmark::State& state) {
  uint32_t dst = inet_addr("239.1.2.3");
  uint16_t port = 5000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(dst);
    benchmark::DoNotOptimize(port);
    benchmark::DoNotOptimize(SteeringHash(dst, port));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SteeringHash);

// Puts the benchmark thread on CPU 0 and `peer` on CPU 1 for the scope's lifetime: cross-core
// hand-off is what is measured, and two spinning threads must not share one core. The peer is
// pinned from here rather than by itself, so it never spins on the benchmark thread's core (under
// SCHED_FIFO that would starve one of them). Affinity errors (a 1-CPU machine) are ignored.
class PinPair {
 public:
  explicit PinPair(std::thread& peer) {
    pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_);
    Pin(peer.native_handle(), 1);
    Pin(pthread_self(), 0);
  }
  ~PinPair() { pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_); }

 private:
  static void Pin(pthread_t thread, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(thread, sizeof set, &set);
  }
  cpu_set_t saved_;
};

using Queue = SpscQueue<uint64_t, 1024>;

// Throughput: the producer (benchmark thread, CPU 0) pushes as fast as the consumer (CPU 1) pops.
// Time per item is the steady-state cost of one hand-off.
void BM_SpscThroughput(benchmark::State& state) {
  auto q = std::make_unique<Queue>();
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    uint64_t sum = 0;
    while (!stop.load(std::memory_order_acquire)) {
      while (std::optional<uint64_t> v = q->TryPop()) sum += *v;
    }
    while (std::optional<uint64_t> v = q->TryPop()) sum += *v;
    benchmark::DoNotOptimize(sum);
  });
  PinPair pinned(consumer);
  uint64_t i = 0;
  for (auto _ : state) {
    while (!q->TryPush(uint64_t{i})) {
    }
    ++i;
  }
  stop.store(true, std::memory_order_release);
  consumer.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SpscThroughput)->UseRealTime();

// Latency: a ping-pong over two queues; one iteration is a round trip (two one-way hand-offs).
void BM_SpscRoundTrip(benchmark::State& state) {
  auto ping = std::make_unique<Queue>();
  auto pong = std::make_unique<Queue>();
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    while (!stop.load(std::memory_order_acquire)) {
      if (std::optional<uint64_t> v = ping->TryPop()) {
        while (!pong->TryPush(uint64_t{*v})) {
        }
      }
    }
  });
  PinPair pinned(echo);
  uint64_t i = 0;
  for (auto _ : state) {
    while (!ping->TryPush(uint64_t{i})) {
    }
    std::optional<uint64_t> back;
    while (!(back = pong->TryPop())) {
    }
    if (*back != i++) {
      state.SkipWithError("out of order");
      break;
    }
  }
  stop.store(true, std::memory_order_release);
  echo.join();
}
BENCHMARK(BM_SpscRoundTrip)->UseRealTime();

}  // namespace
}  // namespace mcr::engine

BENCHMARK_MAIN();
