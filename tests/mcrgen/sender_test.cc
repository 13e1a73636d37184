#include "bench/mcrgen/sender.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <deque>
#include <vector>

#include "bench/mcrgen/fake_clock.h"
#include "bench/mcrgen/payload.h"

namespace mcr::gen {
namespace {

struct SentPacket {
  uint32_t stream;
  int64_t when;  // fake monotonic time of the Transmit call
  std::vector<uint8_t> bytes;
};

// Records what would go on the wire; each Transmit's outcome can be scripted.
class FakeSink final : public PacketSink {
 public:
  FakeSink(uint32_t batch, uint32_t size, FakeClock& clock) : clock_(clock), size_(size) {
    storage_.assign(static_cast<size_t>(batch) * size, 0);
    for (uint32_t i = 0; i < batch; ++i) slots_.push_back(storage_.data() + i * size);
  }
  std::span<uint8_t* const> slots() const override { return slots_; }
  const char* mode() const override { return "fake"; }
  int Transmit(const uint32_t* streams, uint32_t first, uint32_t n) noexcept override {
    ++calls_;
    int r = static_cast<int>(n);
    if (!script_.empty()) {
      r = std::min(script_.front(), r);
      script_.pop_front();
    }
    for (int i = 0; i < r; ++i) {
      const uint32_t slot = first + static_cast<uint32_t>(i);
      sent_.push_back({streams[slot], clock_.MonotonicNs(),
                       std::vector<uint8_t>(slots_[slot], slots_[slot] + size_)});
    }
    return r;
  }
  /// Next Transmit calls return these (a count caps the accepted packets; negative = -errno).
  void Script(std::initializer_list<int> results) { script_.insert(script_.end(), results); }
  const std::vector<SentPacket>& sent() const { return sent_; }
  int calls() const { return calls_; }

 private:
  FakeClock& clock_;
  const uint32_t size_;
  std::vector<uint8_t> storage_;
  std::vector<uint8_t*> slots_;
  std::deque<int> script_;
  std::vector<SentPacket> sent_;
  int calls_ = 0;
};

SendConfig Config(uint64_t rate, uint64_t count, uint32_t streams = 1) {
  SendConfig c;
  c.group = 0xEF010101;
  c.port = 5000;
  c.interface = "fake0";
  c.rate_pps = rate;
  c.count = count;
  c.streams = streams;
  c.size = 200;
  c.batch = 8;
  return c;
}

ParsedDatagram Decode(const SentPacket& p) {
  ParsedDatagram d;
  EXPECT_EQ(ParseDatagram(p.bytes.data(), p.bytes.size(), &d), PayloadStatus::kOk);
  return d;
}

TEST(SenderTest, StreamsRoundRobinWithPerStreamSequences) {
  FakeClock clock;
  const SendConfig config = Config(0, 10, 3);
  FakeSink sink(config.batch, config.size, clock);
  Sender sender(config, sink, clock);
  std::atomic<bool> stop{false};
  absl::StatusOr<SendSummary> s = sender.Run(stop);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->packets, 10u);
  EXPECT_EQ(s->bytes, 2000u);
  EXPECT_THAT(s->stream_packets, testing::ElementsAre(4, 3, 3));
  ASSERT_EQ(sink.sent().size(), 10u);
  for (size_t n = 0; n < 10; ++n) {
    const ParsedDatagram d = Decode(sink.sent()[n]);
    EXPECT_EQ(d.header.stream, n % 3) << n;
    EXPECT_EQ(d.header.seq, n / 3) << n;
    EXPECT_EQ(sink.sent()[n].stream, n % 3) << n;
    EXPECT_EQ(d.header.send_time_ns, clock.RealtimeNs());  // the fake clock never moved
  }
  EXPECT_EQ(sink.calls(), 2);  // batches of 8 + 2
  EXPECT_FALSE(s->interrupted);
  EXPECT_EQ(s->mode, "fake");
}

TEST(SenderTest, PacedPacketsLeaveAtTheirDeadlines) {
  FakeClock clock;
  clock.set_relax_ns(1000);
  const int64_t start = clock.MonotonicNs();
  const SendConfig config = Config(1000, 20);  // 1 ms apart
  FakeSink sink(config.batch, config.size, clock);
  Sender sender(config, sink, clock);
  std::atomic<bool> stop{false};
  absl::StatusOr<SendSummary> s = sender.Run(stop);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(sink.sent().size(), 20u);
  for (size_t n = 0; n < 20; ++n) {
    EXPECT_EQ(sink.sent()[n].when, start + static_cast<int64_t>(n) * 1'000'000) << n;
    // The payload timestamp is the realtime clock at that instant.
    EXPECT_EQ(Decode(sink.sent()[n]).header.send_time_ns,
              sink.sent()[n].when + (clock.RealtimeNs() - clock.MonotonicNs()));
  }
  EXPECT_EQ(s->elapsed_ns, 19'000'000);
  EXPECT_NEAR(s->pps(), 20 / 0.019, 1e-6);
  EXPECT_NEAR(s->mbps(), 20 * 200 * 8 / 0.019 / 1e6, 1e-9);
}

TEST(SenderTest, TransientErrorsAndPartialSendsLoseNothing) {
  FakeClock clock;
  const SendConfig config = Config(0, 16);
  FakeSink sink(config.batch, config.size, clock);
  sink.Script({-EAGAIN, 3, -ENOBUFS, -EINTR, 2});  // then the rest is accepted
  Sender sender(config, sink, clock);
  std::atomic<bool> stop{false};
  absl::StatusOr<SendSummary> s = sender.Run(stop);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->packets, 16u);
  EXPECT_EQ(s->retries, 3u);
  ASSERT_EQ(sink.sent().size(), 16u);
  for (size_t n = 0; n < 16; ++n) EXPECT_EQ(Decode(sink.sent()[n]).header.seq, n);
}

TEST(SenderTest, HardErrorStopsWithTheErrno) {
  FakeClock clock;
  const SendConfig config = Config(0, 100);
  FakeSink sink(config.batch, config.size, clock);
  sink.Script({8, -ENETUNREACH});
  Sender sender(config, sink, clock);
  std::atomic<bool> stop{false};
  absl::StatusOr<SendSummary> s = sender.Run(stop);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable);  // ENETUNREACH's mapping
  EXPECT_THAT(std::string(s.status().message()), testing::HasSubstr("fake0"));
}

TEST(SenderTest, TransientErrorsThatNeverClearFailTheRun) {
  FakeClock clock;
  clock.set_relax_ns(1'000'000);  // each retry costs 1 ms of fake time
  const SendConfig config = Config(0, 100);
  FakeSink sink(config.batch, config.size, clock);
  std::vector<int> script = {8};
  script.insert(script.end(), 5000, -ENOBUFS);
  for (int r : script) sink.Script({r});
  Sender sender(config, sink, clock);
  std::atomic<bool> stop{false};
  absl::StatusOr<SendSummary> s = sender.Run(stop);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), testing::HasSubstr("no progress for 2 s"));
  EXPECT_LT(sink.calls(), 2100);  // gave up after ~2000 retries, not 5000
}

TEST(SenderTest, StopEndsAnEndlessRun) {
  FakeClock clock;
  SendConfig config = Config(0, 0);  // forever
  FakeSink sink(config.batch, config.size, clock);
  sink.Script({8, 8, 8, -EAGAIN});
  std::atomic<bool> stop{false};
  // The sink's transient error comes with a stop request, as a SIGINT during a full queue would.
  class StoppingSink final : public PacketSink {
   public:
    StoppingSink(FakeSink& inner, std::atomic<bool>& stop) : inner_(inner), stop_(stop) {}
    std::span<uint8_t* const> slots() const override { return inner_.slots(); }
    const char* mode() const override { return "stopping"; }
    int Transmit(const uint32_t* streams, uint32_t first, uint32_t n) noexcept override {
      const int r = inner_.Transmit(streams, first, n);
      if (r < 0) stop_ = true;
      return r;
    }

   private:
    FakeSink& inner_;
    std::atomic<bool>& stop_;
  } stopping(sink, stop);
  Sender sender(config, stopping, clock);
  absl::StatusOr<SendSummary> s = sender.Run(stop);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->packets, 24u);
  EXPECT_TRUE(s->interrupted);
}

TEST(SenderTest, RtpDatagrams) {
  FakeClock clock;
  SendConfig config = Config(0, 4, 2);
  config.rtp = true;
  FakeSink sink(config.batch, config.size, clock);
  Sender sender(config, sink, clock);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(sender.Run(stop).ok());
  for (const SentPacket& p : sink.sent()) {
    const ParsedDatagram d = Decode(p);
    EXPECT_TRUE(d.rtp);
    EXPECT_EQ(p.bytes[0], 0x80);
    EXPECT_EQ(p.bytes[11], d.header.stream);  // SSRC low byte
  }
}

TEST(SenderTest, SummaryJson) {
  SendSummary s;
  s.packets = 10;
  s.bytes = 12000;
  s.elapsed_ns = 1'000'000'000;
  s.stream_packets = {5, 5};
  s.mode = "udp+gso";
  SendConfig c = Config(10, 10, 2);
  const nlohmann::json j = s.ToJson(c);
  EXPECT_EQ(j["sent"], 10);
  EXPECT_EQ(j["bytes"], 12000);
  EXPECT_DOUBLE_EQ(j["pps"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(j["mbps"].get<double>(), 0.096);
  EXPECT_EQ(j["streams"][1]["group"], "239.1.1.2");
  EXPECT_EQ(j["streams"][1]["port"], 5001);
  EXPECT_EQ(j["mode"], "udp+gso");
  EXPECT_THAT(s.ToText(c), testing::HasSubstr("sent 10 packets"));
}

}  // namespace
}  // namespace mcr::gen
