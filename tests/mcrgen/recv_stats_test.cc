#include "bench/mcrgen/recv_stats.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace mcr::gen {
namespace {

constexpr int64_t kSendTime = 1'700'000'000'000'000'000;

class RecvStatsTest : public testing::Test {
 protected:
  RecvStatsTest() : stats_(2, 1024) {}

  void Deliver(uint32_t stream, uint64_t seq, int64_t latency_ns = 10'000, bool rtp = false,
               int ttl = 5, int tos = 46 << 2) {
    std::vector<uint8_t> buf(300);
    EncodeDatagram({stream, seq, kSendTime}, rtp, buf.data(), buf.size());
    DeliverBytes(buf, latency_ns, ttl, tos);
  }
  void DeliverBytes(const std::vector<uint8_t>& buf, int64_t latency_ns = 10'000, int ttl = 5,
                    int tos = 46 << 2, bool truncated = false) {
    RxMeta m;
    m.realtime_ns = kSendTime + latency_ns;
    m.monotonic_ns = mono_;
    mono_ += 1'000'000;  // one datagram per ms
    m.ttl = ttl;
    m.tos = tos;
    m.truncated = truncated;
    stats_.OnDatagram(buf.data(), buf.size(), m);
  }

  RecvStats stats_;
  int64_t mono_ = 0;
};

TEST_F(RecvStatsTest, CountsPerStreamAndInTotal) {
  for (uint64_t s = 0; s < 10; ++s) Deliver(0, s);
  for (uint64_t s : {0, 1, 3, 2, 2, 6}) Deliver(1, s);
  EXPECT_EQ(stats_.received(), 16u);
  EXPECT_EQ(stats_.unique(), 15u);
  EXPECT_EQ(stats_.Lost(), 2u);        // stream 1: 4 and 5
  EXPECT_EQ(stats_.Duplicated(), 1u);  // stream 1: 2 again
  EXPECT_EQ(stats_.Reordered(), 1u);   // stream 1: 2 after 3
  const nlohmann::json j = stats_.ToJson();
  EXPECT_EQ(j["received"], 16);
  EXPECT_EQ(j["unique"], 15);
  EXPECT_EQ(j["lost"], 2);
  EXPECT_EQ(j["duplicated"], 1);
  EXPECT_EQ(j["reordered"], 1);
  EXPECT_EQ(j["corrupted"], 0);
  ASSERT_EQ(j["streams"].size(), 2u);
  EXPECT_EQ(j["streams"][0]["unique"], 10);
  EXPECT_EQ(j["streams"][0]["lost"], 0);
  EXPECT_EQ(j["streams"][0]["first_seq"], 0);
  EXPECT_EQ(j["streams"][0]["last_seq"], 9);
  EXPECT_EQ(j["streams"][1]["received"], 6);
  EXPECT_EQ(j["streams"][1]["lost"], 2);
  EXPECT_DOUBLE_EQ(j["elapsed_s"].get<double>(), 0.015);
  EXPECT_DOUBLE_EQ(j["pps"].get<double>(), 16 / 0.015);
  EXPECT_DOUBLE_EQ(j["mbps"].get<double>(), 16 * 300 * 8 / 0.015 / 1e6);
}

TEST_F(RecvStatsTest, CorruptionIsCountedByKindAndNotAsTraffic) {
  Deliver(0, 0);
  std::vector<uint8_t> buf(300);
  EncodeDatagram({0, 1, kSendTime}, false, buf.data(), buf.size());
  auto bad = buf;
  bad[200] ^= 0x10;
  DeliverBytes(bad);
  bad = buf;
  bad[0] = 'X';
  DeliverBytes(bad);
  bad = buf;
  bad[20] ^= 1;  // send time
  DeliverBytes(bad);
  DeliverBytes(std::vector<uint8_t>(10, 0));
  DeliverBytes(buf, 10'000, 5, 0, /*truncated=*/true);
  EXPECT_EQ(stats_.received(), 6u);
  EXPECT_EQ(stats_.corrupted(), 5u);
  EXPECT_EQ(stats_.unique(), 1u);
  const nlohmann::json j = stats_.ToJson();
  EXPECT_EQ(j["corrupted"], 5);
  EXPECT_EQ(j["valid"], 1);
  EXPECT_EQ(j["corruption"]["bad_pattern"], 1);
  EXPECT_EQ(j["corruption"]["bad_magic"], 1);
  EXPECT_EQ(j["corruption"]["bad_checksum"], 1);
  EXPECT_EQ(j["corruption"]["short"], 1);
  EXPECT_EQ(j["corruption"]["bad_length"], 1);
  EXPECT_EQ(j["corruption"]["bad_rtp"], 0);
  EXPECT_FALSE(j["corruption"].contains("ok"));
  EXPECT_THAT(stats_.ToText(), testing::HasSubstr("bad_pattern 1"));
}

TEST_F(RecvStatsTest, ReportsTtlDscpAndEcnSeen) {
  Deliver(0, 0, 1000, false, 64, 46 << 2);
  Deliver(0, 1, 1000, false, 63, (10 << 2) | 1);
  Deliver(0, 2, 1000, false, 64, 46 << 2);
  const nlohmann::json j = stats_.ToJson();
  EXPECT_EQ(j["ttl"]["min"], 63);
  EXPECT_EQ(j["ttl"]["max"], 64);
  EXPECT_EQ(j["ttl"]["values"], nlohmann::json::array({63, 64}));
  EXPECT_EQ(j["dscp"], nlohmann::json::array({10, 46}));
  EXPECT_EQ(j["ecn"], nlohmann::json::array({0, 1}));
}

TEST_F(RecvStatsTest, NoTtlWhenTheKernelGaveNone) {
  Deliver(0, 0, 1000, false, -1, -1);
  const nlohmann::json j = stats_.ToJson();
  EXPECT_TRUE(j["ttl"].is_null());
  EXPECT_TRUE(j["dscp"].empty());
}

TEST_F(RecvStatsTest, LatencyPercentilesInMicroseconds) {
  for (int i = 1; i <= 100; ++i) Deliver(0, static_cast<uint64_t>(i), i * 10'000);  // 10..1000 us
  Deliver(0, 200, -5'000);  // receiver clock behind: counted, recorded as 0
  const nlohmann::json j = stats_.ToJson();
  EXPECT_EQ(j["negative_latency"], 1);
  EXPECT_NEAR(j["latency_us"]["p50"].get<double>(), 500, 500 / 32.0);
  EXPECT_NEAR(j["latency_us"]["p99"].get<double>(), 990, 990 / 32.0);
  EXPECT_DOUBLE_EQ(j["latency_us"]["max"].get<double>(), 1000);
  EXPECT_DOUBLE_EQ(j["latency_us"]["min"].get<double>(), 0);
  EXPECT_FALSE(j["streams"][0]["latency_us"].is_null());
  EXPECT_TRUE(j["streams"][1]["latency_us"].is_null());  // allocated, nothing received
}

// Arrivals at the given receive times (realtime ns) on stream 0, and on stream 1 interleaved
// with them when `both`: gaps are taken within a stream.
void DeliverAt(RecvStats& stats, const std::vector<int64_t>& times, bool both = false) {
  std::vector<uint8_t> buf(300);
  uint64_t seq = 0;
  for (const int64_t t : times) {
    for (uint32_t stream = 0; stream < (both ? 2u : 1u); ++stream) {
      EncodeDatagram({stream, seq, kSendTime}, false, buf.data(), buf.size());
      RxMeta m;
      m.realtime_ns = kSendTime + t + stream * 3;  // the other stream 3 ns later
      m.monotonic_ns = t;
      stats.OnDatagram(buf.data(), buf.size(), m);
    }
    ++seq;
  }
}

TEST(RecvStatsSpacing, PacedArrivalsKeepTheirGaps) {
  RecvStats stats(2, 1024);
  std::vector<int64_t> times;
  for (int i = 0; i <= 100; ++i) times.push_back(i * 10'000);  // every 10 us
  DeliverAt(stats, times, /*both=*/true);
  const nlohmann::json g = stats.ToJson()["gap_us"];
  // 2 x 100 gaps of 10 us: within a stream, not the 3 ns between the two streams.
  EXPECT_NEAR(g["p10"].get<double>(), 10, 10 / 32.0);
  EXPECT_NEAR(g["p50"].get<double>(), 10, 10 / 32.0);
  EXPECT_NEAR(g["mean"].get<double>(), 10, 1e-9);
  EXPECT_DOUBLE_EQ(g["bunched"].get<double>(), 0);
}

TEST(RecvStatsSpacing, BurstsAreBunched) {
  RecvStats stats(1, 1024);
  std::vector<int64_t> times;  // 10 bursts 1 ms apart, each 10 datagrams 200 ns apart
  for (int b = 0; b < 10; ++b)
    for (int k = 0; k < 10; ++k) times.push_back(b * 1'000'000 + k * 200);
  DeliverAt(stats, times);
  const nlohmann::json g = stats.ToJson()["gap_us"];
  EXPECT_NEAR(g["p50"].get<double>(), 0.2, 0.2 / 32.0);
  EXPECT_NEAR(g["max"].get<double>(), 998.2, 1e-9);
  EXPECT_NEAR(g["bunched"].get<double>(), 90.0 / 99.0, 1e-9);  // 90 of the 99 gaps
}

TEST(RecvStatsSpacing, NoGapsFromOneDatagramOrNone) {
  RecvStats stats(1, 1024);
  EXPECT_TRUE(stats.ToJson()["gap_us"].is_null());
  DeliverAt(stats, {5});
  EXPECT_TRUE(stats.ToJson()["gap_us"].is_null());
}

TEST_F(RecvStatsTest, RtpAndUnexpectedStreams) {
  Deliver(0, 0, 1000, /*rtp=*/true);
  Deliver(7, 0);            // not configured, still tracked
  Deliver(kMaxStreams, 0);  // beyond what is tracked
  const nlohmann::json j = stats_.ToJson();
  EXPECT_EQ(j["rtp"], 1);
  EXPECT_EQ(j["foreign_stream"], 1);
  EXPECT_EQ(j["unique"], 2);
  ASSERT_EQ(j["streams"].size(), 3u);
  EXPECT_EQ(j["streams"][2]["stream"], 7);
}

TEST_F(RecvStatsTest, EmptyReport) {
  const nlohmann::json j = stats_.ToJson();
  EXPECT_EQ(j["received"], 0);
  EXPECT_EQ(j["pps"], 0.0);
  EXPECT_TRUE(j["latency_us"].is_null());
  EXPECT_TRUE(j["streams"][0]["first_seq"].is_null());
}

}  // namespace
}  // namespace mcr::gen
