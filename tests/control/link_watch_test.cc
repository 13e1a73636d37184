// LinkWatcher against the real kernel, in a fresh network namespace per test (needs root; skipped
// otherwise). rtnetlink queues a notification before the `ip` command that caused it returns, so
// each Drain() below sees exactly the events of the commands before it.

#include "control/link_watch.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rig/netns_fixture.h"

namespace mcr::control {
namespace {

int Sh(const std::string& command) {
  const int rc = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class LinkWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = netns_.Enter(); !why.empty()) GTEST_SKIP() << why;
    if (Sh("ip link show lo") != 0) GTEST_SKIP() << "iproute2 'ip' is missing";
    auto watcher = LinkWatcher::Open();
    ASSERT_TRUE(watcher.ok()) << watcher.status();
    watcher_ = std::move(*watcher);
  }

  mcr::testing::PrivateNetns netns_;  // declared first: left last, after the watcher closed
  LinkWatcherPtr watcher_;
};

TEST_F(LinkWatcherTest, ReportsLinkAndAddressEvents) {
  EXPECT_GE(watcher_->fd(), 0);
  EXPECT_FALSE(watcher_->Drain()) << "a fresh namespace has nothing to report";

  ASSERT_EQ(Sh("ip link add a0 type veth peer name b0"), 0);
  EXPECT_TRUE(watcher_->Drain()) << "link added";
  EXPECT_FALSE(watcher_->Drain()) << "drained";

  // Both ends are down, so no deferred carrier event can arrive: IPv6 is not watched.
  ASSERT_EQ(Sh("ip -6 addr add fd00::1/64 dev a0 nodad"), 0);
  EXPECT_FALSE(watcher_->Drain()) << "an IPv6 address is no IPv4 change";

  ASSERT_EQ(Sh("ip addr add 10.1.1.1/24 dev a0"), 0);
  EXPECT_TRUE(watcher_->Drain()) << "IPv4 address added";
  ASSERT_EQ(Sh("ip link set a0 up"), 0);
  EXPECT_TRUE(watcher_->Drain()) << "link up";
  ASSERT_EQ(Sh("ip link set a0 down"), 0);
  EXPECT_TRUE(watcher_->Drain()) << "link down";
  ASSERT_EQ(Sh("ip addr del 10.1.1.1/24 dev a0"), 0);
  EXPECT_TRUE(watcher_->Drain()) << "IPv4 address removed";
  ASSERT_EQ(Sh("ip link del a0"), 0);
  EXPECT_TRUE(watcher_->Drain()) << "link deleted";
  EXPECT_EQ(watcher_->overflows(), 0u);
}

// Deleted links are named (a re-created one must be rebuilt even under its old index); a port
// leaving a bridge, which also sends an RTM_DELLINK, is not deleted.
TEST_F(LinkWatcherTest, NamesDeletedLinksButNotPortsLeavingABridge) {
  ASSERT_EQ(Sh("ip link add a0 type veth peer name b0"), 0);
  if (Sh("ip link add br0 type bridge") != 0) GTEST_SKIP() << "no bridge support";
  const int a0 = static_cast<int>(if_nametoindex("a0"));
  const int b0 = static_cast<int>(if_nametoindex("b0"));
  ASSERT_GT(a0, 0);
  ASSERT_EQ(Sh("ip link set a0 master br0"), 0);
  ASSERT_EQ(Sh("ip link set a0 nomaster"), 0);
  (void)watcher_->Drain();
  EXPECT_THAT(watcher_->TakeDeleted(), ::testing::IsEmpty());
  ASSERT_EQ(Sh("ip link del a0"), 0);  // takes its peer b0 with it
  EXPECT_TRUE(watcher_->Drain());
  EXPECT_THAT(watcher_->TakeDeleted(), ::testing::UnorderedElementsAre(a0, b0));
  EXPECT_THAT(watcher_->TakeDeleted(), ::testing::IsEmpty()) << "taken once";
}

TEST_F(LinkWatcherTest, OverflowIsReportedAsAChangeAndTheSocketKeepsWorking) {
  // Shrink the queue to the kernel's minimum so a burst of links overflows it.
  const int zero = 0;
  ASSERT_EQ(setsockopt(watcher_->fd(), SOL_SOCKET, SO_RCVBUF, &zero, sizeof zero), 0);
  std::string batch;
  for (int i = 0; i < 20; ++i) {
    batch += "link add v" + std::to_string(i) + " type veth peer name w" + std::to_string(i) + "\n";
  }
  ASSERT_EQ(Sh("printf '" + batch + "' | ip -batch -"), 0);

  EXPECT_TRUE(watcher_->Drain());
  EXPECT_GE(watcher_->overflows(), 1u);
  EXPECT_FALSE(watcher_->Drain());

  ASSERT_EQ(Sh("ip link del v0"), 0);
  EXPECT_TRUE(watcher_->Drain()) << "events still arrive after an overflow";
}

TEST_F(LinkWatcherTest, FdIsNonBlockingAndDrainNeverBlocks) {
  EXPECT_NE(fcntl(watcher_->fd(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(fcntl(watcher_->fd(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_FALSE(watcher_->Drain());  // returns at once on an empty queue
}

}  // namespace
}  // namespace mcr::control
