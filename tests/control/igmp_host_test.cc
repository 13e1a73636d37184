// IgmpHost's exported counters: Stats() runs on the metrics server's threads while the control
// thread changes the host (run under TSan in CI). Interfaces that do not exist keep the host
// from opening sockets, so this needs no privilege; the protocol itself is tested end to end
// (tests/e2e/membership_link.sh) and the messages in igmp_test.cc.
#include "control/igmp_host.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "control/event_loop.h"
#include "control/log.h"

namespace mcr::control {
namespace {

engine::RuleSpec Rule(const std::string& interface, const char* group) {
  engine::RuleSpec r;
  r.id = interface + "-" + group;
  r.input_interface = interface;
  inet_pton(AF_INET, group, &r.input_group);
  r.input_port = 5000;
  return r;
}

class IgmpHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = *std::move(loop);
    auto host = IgmpHost::Create(*loop_, log_, IgmpHost::Options{});
    ASSERT_TRUE(host.ok()) << host.status();
    host_ = *std::move(host);
  }

  Logger log_{LogLevel::kError};
  EventLoopPtr loop_;
  std::unique_ptr<IgmpHost> host_;
};

TEST_F(IgmpHostTest, StatsListEveryInterfaceARuleReads) {
  EXPECT_TRUE(host_->Stats().empty());
  // Interfaces that do not exist: pending, nothing reported, but listed with zero counts.
  (void)host_->Sync({Rule("mcrtest-none0", "239.1.1.1"), Rule("mcrtest-none1", "239.1.1.2"),
                     Rule("mcrtest-none1", "10.0.0.1")},  // unicast: not IGMP's business
                    {});
  const auto stats = host_->Stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].interface, "mcrtest-none0");
  EXPECT_EQ(stats[1].interface, "mcrtest-none1");
  for (const auto& s : stats) {
    EXPECT_EQ(s.version, 3);
    EXPECT_EQ(s.groups, 0u);  // none reported: the interface is not there
    EXPECT_EQ(s.queries, 0u);
    EXPECT_EQ(s.reports_sent, 0u);
    EXPECT_EQ(s.send_errors, 0u);
  }
  // The last rule of an interface goes: so does its entry.
  (void)host_->Sync({Rule("mcrtest-none1", "239.1.1.2")}, {});
  ASSERT_EQ(host_->Stats().size(), 1u);
  EXPECT_EQ(host_->Stats()[0].interface, "mcrtest-none1");
}

TEST_F(IgmpHostTest, StatsMayBeReadWhileTheControlThreadChangesTheHost) {
  std::atomic<bool> stop{false};
  std::atomic<size_t> reads{0};
  std::thread scraper([&] {
    while (!stop.load()) {
      for (const auto& s : host_->Stats()) EXPECT_FALSE(s.interface.empty());
      reads.fetch_add(1);
    }
  });
  for (int i = 0; i < 2000; ++i) {
    std::vector<engine::RuleSpec> rules;
    for (int k = 0; k <= i % 5; ++k)
      rules.push_back(Rule("mcrtest-n" + std::to_string(k), "239.1.1.1"));
    (void)host_->Sync(rules, {});
  }
  while (reads.load() < 10) std::this_thread::yield();
  stop.store(true);
  scraper.join();
  EXPECT_EQ(host_->Stats().size(), size_t{2000 - 1} % 5 + 1);
}

}  // namespace
}  // namespace mcr::control
