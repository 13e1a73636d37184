// The HOT PATH contracts of the send loop and the receive accounting: no allocation per packet.
// This binary replaces the global operator new to count allocations, and checks that sending or
// accounting 100x more packets allocates exactly as much.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "bench/mcrgen/fake_clock.h"
#include "bench/mcrgen/payload.h"
#include "bench/mcrgen/recv_stats.h"
#include "bench/mcrgen/sender.h"

namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace mcr::gen {
namespace {

class NullSink final : public PacketSink {
 public:
  explicit NullSink(uint32_t size) : storage_(64 * size) {
    for (uint32_t i = 0; i < 64; ++i) slots_.push_back(storage_.data() + i * size);
  }
  std::span<uint8_t* const> slots() const override { return slots_; }
  int Transmit(const uint32_t*, uint32_t, uint32_t n) noexcept override {
    return static_cast<int>(n);
  }
  const char* mode() const override { return "null"; }

 private:
  std::vector<uint8_t> storage_;
  std::vector<uint8_t*> slots_;
};

uint64_t AllocationsToSend(uint64_t count, uint64_t rate) {
  FakeClock clock;
  SendConfig c;
  c.interface = "null0";
  c.count = count;
  c.rate_pps = rate;
  c.streams = 4;
  c.rtp = true;
  NullSink sink(c.size);
  Sender sender(c, sink, clock);
  std::atomic<bool> stop{false};
  const uint64_t before = g_allocations.load();
  absl::StatusOr<SendSummary> s = sender.Run(stop);
  const uint64_t after = g_allocations.load();
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s->packets, count);
  return after - before;
}

TEST(HotPathTest, SendLoopAllocatesNothingPerPacket) {
  EXPECT_EQ(AllocationsToSend(1000, 0), AllocationsToSend(100'000, 0));
  EXPECT_EQ(AllocationsToSend(100, 1'000'000), AllocationsToSend(10'000, 1'000'000));
}

uint64_t AllocationsToAccount(uint64_t count) {
  RecvStats stats(4, 65536);
  std::vector<uint8_t> buf(1200);
  RxMeta meta;
  meta.ttl = 64;
  meta.tos = 0;
  const uint64_t before = g_allocations.load();
  for (uint64_t n = 0; n < count; ++n) {
    // Every outcome: new, reordered, duplicate, corrupted.
    const uint64_t seq = (n % 10 == 9) ? n - 5 : n;
    EncodeDatagram({static_cast<uint32_t>(n % 4), seq, 0}, n % 2 == 0, buf.data(), buf.size());
    if (n % 100 == 50) buf[600] ^= 1;
    stats.OnDatagram(buf.data(), buf.size(), meta);
  }
  const uint64_t after = g_allocations.load();
  EXPECT_EQ(stats.received(), count);
  return after - before;
}

TEST(HotPathTest, ReceiveAccountingAllocatesNothingForKnownStreams) {
  EXPECT_EQ(AllocationsToAccount(1000), 0u);
  EXPECT_EQ(AllocationsToAccount(100'000), 0u);
}

}  // namespace
}  // namespace mcr::gen
