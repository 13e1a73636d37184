// The HTTP endpoint with a synthetic snapshot source, on loopback in the test's own network
// namespace (no root needed): address validation, bind errors, fresh data per scrape, and a
// 1000-rule scrape through the real exposer that `promtool check metrics` accepts.

#include "metrics/metrics_server.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/metrics/scrape_client.h"
#include "tests/metrics/synthetic_stats.h"

namespace mcr::metrics {
namespace {

using mcr::testing::HttpGet;
using mcr::testing::ParseExposition;
using mcr::testing::SyntheticStats;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(MetricsServerTest, RejectsAnythingButIpv4AddrColonPort) {
  for (const char* bad :
       {"9464", "localhost:9464", "127.0.0.1:9464s", "127.0.0.1:+9464", "127.0.0.1:70000",
        "127.0.0.1:", ":9464", "[::1]:9464", "127.0.0.1:9464,127.0.0.1:9465", "off", ""}) {
    auto s = MetricsServer::Start(
        bad, [] { return engine::EngineStats{}; }, "test");
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr("127.0.0.1:9464")) << bad;
  }
}

TEST(MetricsServerTest, ServesTheSnapshotOnAnEphemeralPort) {
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return SyntheticStats(3, 2, 2); }, "9.9.9");
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_NE((*server)->port(), 0);
  const auto r = HttpGet((*server)->port(), "/metrics");
  ASSERT_EQ(r.status, 200);
  const auto samples = ParseExposition(r.body);
  EXPECT_EQ(samples.at("mcr_rules"), 3);
  EXPECT_EQ(samples.at("mcr_shards"), 2);
  EXPECT_EQ(mcr::testing::SumFamily(samples, "mcr_rule_received_packets_total"),
            1'000'000 + 1'000'001 + 1'000'002);
  EXPECT_THAT(r.body, HasSubstr("mcr_build_info{version=\"9.9.9\",kernel=\""));
  EXPECT_EQ(HttpGet((*server)->port(), "/").status, 404);
}

TEST(MetricsServerTest, IdleConnectionsDoNotHoldScrapesBack) {
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [] { return SyntheticStats(3, 2, 2); }, "9.9.9");
  ASSERT_TRUE(server.ok()) << server.status();
  // Three clients connect and say nothing (or stall mid-request): each holds a server thread
  // until the request timeout. A scrape beside them must still be answered at once — with a
  // pool of two threads it waited ~10 s, as long as Prometheus waits for a scrape.
  std::vector<int> idle;
  for (int i = 0; i < 3; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((*server)->port());
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    if (i == 2) {
      ASSERT_GT(send(fd, "GET /met", 8, MSG_NOSIGNAL), 0);
    }
    idle.push_back(fd);
  }
  const auto r = HttpGet((*server)->port(), "/metrics", /*timeout_ms=*/1000);
  for (int fd : idle) close(fd);
  EXPECT_EQ(r.status, 200);
}

TEST(MetricsServerTest, BusyAddressIsUnavailableAndSaysWhy) {
  auto first = MetricsServer::Start(
      "127.0.0.1:0", [] { return engine::EngineStats{}; }, "t");
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string addr = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = MetricsServer::Start(
      addr, [] { return engine::EngineStats{}; }, "t");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(addr));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("Address already in use"));
}

TEST(MetricsServerTest, EveryScrapeReadsAFreshSnapshotAndRemovedRulesVanish) {
  std::mutex mu;
  engine::EngineStats stats = SyntheticStats(2, 1, 1);
  auto server = MetricsServer::Start(
      "127.0.0.1:0",
      [&] {
        std::lock_guard lock(mu);
        return stats;
      },
      "t");
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT(HttpGet((*server)->port(), "/metrics").body, HasSubstr("rule=\"rule-00001\""));
  {
    std::lock_guard lock(mu);
    stats.rules.pop_back();
    stats.rules[0].packets += 5;
  }
  const auto r = HttpGet((*server)->port(), "/metrics");
  EXPECT_THAT(r.body, Not(HasSubstr("rule-00001")));
  EXPECT_EQ(mcr::testing::SumFamily(ParseExposition(r.body), "mcr_rule_received_packets_total"),
            1'000'005);
}

TEST(MetricsServerTest, PromtoolAcceptsAScrapeWith1000Rules) {
  if (mcr::testing::RunShell("command -v promtool").first != 0)
    GTEST_SKIP() << "promtool not installed";
  const engine::EngineStats stats = SyntheticStats(1000, 4, 2);
  auto server = MetricsServer::Start(
      "127.0.0.1:0", [&] { return stats; }, MCR_VERSION);
  ASSERT_TRUE(server.ok()) << server.status();
  const auto r = HttpGet((*server)->port(), "/metrics");
  ASSERT_EQ(r.status, 200);
  const auto samples = ParseExposition(r.body);
  EXPECT_EQ(samples.at("mcr_rules"), 1000);
  // 1000 rules x (2 + 2 outputs x (2 + 7 error reasons)) series, plus shards and the rest.
  EXPECT_GT(samples.size(), 20'000u);

  char path[] = "/tmp/mcr-scrape-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << r.body;
  const auto [rc, out] = mcr::testing::RunShell(std::string("promtool check metrics < ") + path);
  unlink(path);
  EXPECT_EQ(rc, 0) << out;
}

}  // namespace
}  // namespace mcr::metrics
