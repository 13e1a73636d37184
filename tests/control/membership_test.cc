// MembershipPool against the real kernel: every test runs in a fresh network namespace (needs
// root; skipped otherwise) and checks joins where the kernel reports them, /proc/net/igmp and
// /proc/net/mcfilter, and sinks by what a sender sees.

#include "control/membership.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rig/netns_fixture.h"

namespace mcr::control {
namespace {

using ::testing::Each;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using State = MembershipInfo::State;

uint32_t Addr(const std::string& dotted) {
  in_addr a{};
  EXPECT_EQ(inet_pton(AF_INET, dotted.c_str(), &a), 1) << dotted;
  return a.s_addr;
}

engine::RuleSpec Rule(const std::string& itf, const std::string& group, uint16_t port = 5000,
                      const std::string& source = "") {
  engine::RuleSpec r;
  r.id = group + ":" + std::to_string(port) + "@" + itf + (source.empty() ? "" : "/" + source);
  r.input_interface = itf;
  r.input_group = Addr(group);
  r.input_port = port;
  r.input_source = source.empty() ? 0 : Addr(source);
  return r;
}

std::string Group(int i) {  // 239.1.0.1, 239.1.0.2, ... distinct for i < 62500
  return "239.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
}

// Groups joined per interface index, with their user counts (one per joining socket).
// /proc/net/igmp prints the group as the raw __be32, so "%X" yields network byte order.
std::map<int, std::map<uint32_t, int>> ReadIgmp() {
  std::map<int, std::map<uint32_t, int>> out;
  std::ifstream in("/proc/thread-self/net/igmp");
  std::string line;
  std::getline(in, line);  // header
  int ifindex = -1;
  while (std::getline(in, line)) {
    unsigned group = 0;
    int users = 0;
    if (!line.empty() && line[0] != '\t') {
      ifindex = std::atoi(line.c_str());
      out[ifindex];
    } else if (std::sscanf(line.c_str(), " %X %d", &group, &users) == 2) {
      out[ifindex][group] = users;
    }
  }
  return out;
}

struct SourceFilter {
  int ifindex;
  uint32_t group;   // network byte order
  uint32_t source;  // network byte order
  unsigned long include;
  unsigned long exclude;
};

// /proc/net/mcfilter: one line per (interface, group, source), addresses in host byte order.
std::vector<SourceFilter> ReadMcfilter() {
  std::vector<SourceFilter> out;
  std::ifstream in("/proc/thread-self/net/mcfilter");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    SourceFilter f{};
    unsigned group = 0, source = 0;
    if (std::sscanf(line.c_str(), "%d %*s %x %x %lu %lu", &f.ifindex, &group, &source, &f.include,
                    &f.exclude) == 5) {
      f.group = htonl(group);
      f.source = htonl(source);
      out.push_back(f);
    }
  }
  return out;
}

// Sources included for `group` on `ifindex`. /proc/net/mcfilter skips a device whose most
// recently joined group has no sources (the kernel's igmp_mcf_get_first looks only at the head of
// each device's list), so a probe (S,G), joined just before reading, heads the list.
std::vector<uint32_t> IncludedSources(int ifindex, uint32_t group) {
  constexpr uint32_t kProbeGroup = 0xfeffffe8;   // 232.255.255.254, network byte order
  constexpr uint32_t kProbeSource = 0xfeffff0a;  // 10.255.255.254
  const int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  group_source_req req{};
  req.gsr_interface = static_cast<uint32_t>(ifindex);
  reinterpret_cast<sockaddr_in*>(&req.gsr_group)->sin_family = AF_INET;
  reinterpret_cast<sockaddr_in*>(&req.gsr_group)->sin_addr.s_addr = kProbeGroup;
  reinterpret_cast<sockaddr_in*>(&req.gsr_source)->sin_family = AF_INET;
  reinterpret_cast<sockaddr_in*>(&req.gsr_source)->sin_addr.s_addr = kProbeSource;
  EXPECT_EQ(setsockopt(probe, IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, &req, sizeof req), 0)
      << strerror(errno);
  std::vector<uint32_t> out;
  for (const SourceFilter& f : ReadMcfilter()) {
    if (f.ifindex == ifindex && f.group == group && f.include > 0) out.push_back(f.source);
  }
  close(probe);
  return out;
}

int Sh(const std::string& command) {
  const int rc = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void WriteSysctl(const std::string& path, int value) {
  std::ofstream out(path);
  out << value << "\n";
  out.close();
  ASSERT_TRUE(out.good()) << path;
}

// Runs each test in a network namespace of its own: interfaces, memberships, sysctls and
// sockets made by the test vanish with it, and tests may run in parallel.
class MembershipPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = netns_.Enter(); !why.empty()) GTEST_SKIP() << why;
    if (Sh("ip link set lo up") != 0) GTEST_SKIP() << "iproute2 'ip' is missing";
  }

  // A veth pair `name` + `name`p, both up (veth is built into this kernel; dummy is not).
  static int AddLink(const std::string& name) {
    EXPECT_EQ(Sh("ip link add " + name + " type veth peer name " + name + "p"), 0);
    EXPECT_EQ(Sh("ip link set " + name + "p up && ip link set " + name + " up"), 0);
    return static_cast<int>(if_nametoindex(name.c_str()));
  }

  mcr::testing::PrivateNetns netns_;
};

TEST_F(MembershipPoolTest, JoinsThreeHundredGroupsOnOneInterfaceAndLeavesThem) {
  const int ifindex = AddLink("in0");
  ASSERT_GT(ifindex, 0);
  std::vector<engine::RuleSpec> rules;
  for (int i = 0; i < 300; ++i) rules.push_back(Rule("in0", Group(i)));

  MembershipPool pool;
  ASSERT_TRUE(pool.Sync(rules).ok());
  std::map<uint32_t, int> joined = ReadIgmp()[ifindex];
  for (int i = 0; i < 300; ++i) EXPECT_EQ(joined[Addr(Group(i))], 1) << Group(i);
  EXPECT_EQ(pool.socket_count(), 15u);  // 20 groups per socket: the kernel's default limit
  EXPECT_THAT(pool.Describe(), SizeIs(300));
  EXPECT_THAT(pool.Describe(), Each(Field(&MembershipInfo::state, State::kActive)));

  // Keep the first 100: exactly the others are left, and the emptied sockets closed.
  rules.resize(100);
  ASSERT_TRUE(pool.Sync(rules).ok());
  joined = ReadIgmp()[ifindex];
  for (int i = 0; i < 300; ++i) EXPECT_EQ(joined.count(Addr(Group(i))), i < 100 ? 1u : 0u) << i;
  EXPECT_LE(pool.socket_count(), 15u);
  EXPECT_GE(pool.socket_count(), 5u);

  // Rejoining fills the slots freed in the half-empty sockets first.
  rules.clear();
  for (int i = 0; i < 300; ++i) rules.push_back(Rule("in0", Group(i)));
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_EQ(pool.socket_count(), 15u);

  ASSERT_TRUE(pool.Sync({}).ok());
  joined = ReadIgmp()[ifindex];
  for (int i = 0; i < 300; ++i) EXPECT_EQ(joined.count(Addr(Group(i))), 0u) << Group(i);
  EXPECT_EQ(pool.socket_count(), 0u);
  EXPECT_THAT(pool.Describe(), IsEmpty());
}

TEST_F(MembershipPoolTest, LeavesOnlyWhenTheLastRuleForAGroupGoes) {
  const int ifindex = AddLink("in0");
  MembershipPool pool;
  const engine::RuleSpec a = Rule("in0", "239.5.5.5", 5000);
  const engine::RuleSpec b = Rule("in0", "239.5.5.5", 6000);  // same group, other port
  ASSERT_TRUE(pool.Sync({a, b}).ok());
  EXPECT_EQ(ReadIgmp()[ifindex][Addr("239.5.5.5")], 1);  // one membership for both rules
  ASSERT_TRUE(pool.Sync({b}).ok());
  EXPECT_EQ(ReadIgmp()[ifindex].count(Addr("239.5.5.5")), 1u);
  ASSERT_TRUE(pool.Sync({}).ok());
  EXPECT_EQ(ReadIgmp()[ifindex].count(Addr("239.5.5.5")), 0u);
}

TEST_F(MembershipPoolTest, JoinsFifteenSourcesOfOneGroupPastThePerSocketLimit) {
  const int ifindex = AddLink("in0");
  const uint32_t group = Addr("232.1.1.1");
  std::vector<engine::RuleSpec> rules;
  std::vector<uint32_t> sources;
  for (int i = 1; i <= 15; ++i) {
    rules.push_back(Rule("in0", "232.1.1.1", 5000, "10.0.0." + std::to_string(i)));
    sources.push_back(rules.back().input_source);
  }

  MembershipPool pool;
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_THAT(IncludedSources(ifindex, group), ::testing::UnorderedElementsAreArray(sources));
  EXPECT_EQ(ReadIgmp()[ifindex][group], 2);  // 10 + 5 sources: two sockets hold the group
  EXPECT_EQ(pool.socket_count(), 2u);

  // Drop ten: the kernel keeps exactly the other five.
  rules.erase(rules.begin(), rules.begin() + 10);
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_THAT(IncludedSources(ifindex, group),
              ::testing::UnorderedElementsAreArray(sources.begin() + 10, sources.end()));

  ASSERT_TRUE(pool.Sync({}).ok());
  EXPECT_THAT(IncludedSources(ifindex, group), IsEmpty());
  EXPECT_EQ(ReadIgmp()[ifindex].count(group), 0u);
  EXPECT_EQ(pool.socket_count(), 0u);
}

TEST_F(MembershipPoolTest, AnySourceAndSourceSpecificRulesOfOneGroupCoexist) {
  // On one socket, adding a source to a (*,G) join would silently turn it into INCLUDE {S}: the
  // pool must keep them on separate sockets, and leaving one must not disturb the other.
  const int ifindex = AddLink("in0");
  const uint32_t group = Addr("232.2.2.2");
  const engine::RuleSpec any = Rule("in0", "232.2.2.2", 5000);
  const engine::RuleSpec ssm = Rule("in0", "232.2.2.2", 5002, "10.0.0.9");

  MembershipPool pool;
  ASSERT_TRUE(pool.Sync({any, ssm}).ok());
  // Two users: had both shared a socket, the source join would have turned the (*,G) join
  // into INCLUDE {10.0.0.9}, leaving one user.
  EXPECT_EQ(ReadIgmp()[ifindex][group], 2);
  EXPECT_THAT(IncludedSources(ifindex, group), ::testing::ElementsAre(Addr("10.0.0.9")));

  ASSERT_TRUE(pool.Sync({ssm}).ok());
  EXPECT_EQ(ReadIgmp()[ifindex][group], 1);
  EXPECT_THAT(IncludedSources(ifindex, group), ::testing::ElementsAre(Addr("10.0.0.9")));

  ASSERT_TRUE(pool.Sync({any}).ok());
  EXPECT_EQ(ReadIgmp()[ifindex][group], 1);
  EXPECT_THAT(IncludedSources(ifindex, group), IsEmpty());
}

TEST_F(MembershipPoolTest, LearnsLowerKernelLimits) {
  // Limits lowered below the defaults the pool assumes: it learns them from ENOBUFS.
  WriteSysctl("/proc/sys/net/ipv4/igmp_max_memberships", 5);
  WriteSysctl("/proc/sys/net/ipv4/igmp_max_msf", 3);
  const int ifindex = AddLink("in0");
  std::vector<engine::RuleSpec> rules;
  for (int i = 0; i < 30; ++i) rules.push_back(Rule("in0", Group(i)));
  for (int i = 1; i <= 8; ++i) {
    rules.push_back(Rule("in0", "232.3.3.3", 5000, "10.0.0." + std::to_string(i)));
  }

  MembershipPool pool;
  const absl::Status status = pool.Sync(rules);
  ASSERT_TRUE(status.ok()) << status;
  std::map<uint32_t, int> joined = ReadIgmp()[ifindex];
  for (int i = 0; i < 30; ++i) EXPECT_EQ(joined.count(Addr(Group(i))), 1u) << Group(i);
  EXPECT_THAT(IncludedSources(ifindex, Addr("232.3.3.3")), SizeIs(8));
  // 30 groups + 1 source group (8 sources, 3 per socket) at 5 groups per socket: 7 sockets
  // hold the 31 group slots when the source-specific group shares sockets with the others.
  EXPECT_GE(pool.socket_count(), 7u);
}

TEST_F(MembershipPoolTest, ForgetsALoweredLimitOnceTheKernelAllowsMoreAgain) {
  WriteSysctl("/proc/sys/net/ipv4/igmp_max_memberships", 3);
  AddLink("in0");
  std::vector<engine::RuleSpec> rules;
  for (int i = 0; i < 6; ++i) rules.push_back(Rule("in0", Group(i)));
  MembershipPool pool;
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_EQ(pool.socket_count(), 2u);
  // Raised again: 20 more groups fit in the sockets already open.
  WriteSysctl("/proc/sys/net/ipv4/igmp_max_memberships", 20);
  for (int i = 6; i < 26; ++i) rules.push_back(Rule("in0", Group(i)));
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_EQ(pool.socket_count(), 2u);
}

TEST_F(MembershipPoolTest, JoinsAnInterfaceThatAppearsLater) {
  MembershipPool pool;
  const engine::RuleSpec rule = Rule("late0", "239.7.7.7");
  ASSERT_TRUE(pool.Sync({rule}).ok());  // pending is not a failure
  ASSERT_THAT(pool.Describe(), SizeIs(1));
  EXPECT_EQ(pool.Describe()[0].state, State::kPending);
  EXPECT_EQ(pool.Describe()[0].ifindex, 0);

  const int ifindex = AddLink("late0");
  EXPECT_EQ(ReadIgmp()[ifindex].count(rule.input_group), 0u);
  ASSERT_TRUE(pool.Sync({rule}).ok());
  EXPECT_EQ(ReadIgmp()[ifindex][rule.input_group], 1);
  EXPECT_EQ(pool.Describe()[0].state, State::kActive);
  EXPECT_EQ(pool.Describe()[0].ifindex, ifindex);
}

TEST_F(MembershipPoolTest, RejoinsAnInterfaceRecreatedWithANewIndex) {
  const std::vector<engine::RuleSpec> rules = {Rule("in0", "239.8.8.8"),
                                               Rule("in0", "232.8.8.8", 5000, "10.0.0.1")};
  const int first = AddLink("in0");
  MembershipPool pool;
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_EQ(ReadIgmp()[first][Addr("239.8.8.8")], 1);

  // Deleted and re-created between two Syncs (one link event may cover both).
  ASSERT_EQ(Sh("ip link del in0"), 0);
  const int second = AddLink("in0");
  ASSERT_NE(first, second);
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_EQ(ReadIgmp()[second][Addr("239.8.8.8")], 1);
  EXPECT_THAT(IncludedSources(second, Addr("232.8.8.8")), ::testing::ElementsAre(Addr("10.0.0.1")));
  EXPECT_THAT(pool.Describe(), Each(Field(&MembershipInfo::ifindex, second)));
  EXPECT_EQ(pool.socket_count(), 1u);  // the sockets bound to the old index were closed

  // Deleted with a Sync in between: pending, then joined again.
  ASSERT_EQ(Sh("ip link del in0"), 0);
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_THAT(pool.Describe(), Each(Field(&MembershipInfo::state, State::kPending)));
  EXPECT_EQ(pool.socket_count(), 0u);
  const int third = AddLink("in0");
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_EQ(ReadIgmp()[third][Addr("239.8.8.8")], 1);
}

TEST_F(MembershipPoolTest, ReportsAFailureKeepsGoingAndRetries) {
  // An MTU below 68 removes IPv4 from a device, so joins on it fail with ENODEV. ifb is one of
  // the few link types here whose MTU may go that low.
  const int good = AddLink("in0");
  if (Sh("ip link add bad0 type ifb && ip link set bad0 mtu 60") != 0) {
    GTEST_SKIP() << "cannot create an ifb device with a small MTU";
  }
  const std::vector<engine::RuleSpec> rules = {Rule("in0", "239.9.9.1"), Rule("bad0", "239.9.9.2"),
                                               Rule("in0", "239.9.9.3")};
  MembershipPool pool;
  const absl::Status status = pool.Sync(rules);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("239.9.9.2) on bad0"));
  EXPECT_EQ(ReadIgmp()[good][Addr("239.9.9.1")], 1);
  EXPECT_EQ(ReadIgmp()[good][Addr("239.9.9.3")], 1);
  const std::vector<MembershipInfo> info = pool.Describe();
  ASSERT_THAT(info, SizeIs(3));
  EXPECT_EQ(info[0].interface, "bad0");
  EXPECT_EQ(info[0].state, State::kFailed);
  EXPECT_THAT(info[0].detail, Not(IsEmpty()));

  ASSERT_EQ(Sh("ip link set bad0 mtu 1500"), 0);
  ASSERT_TRUE(pool.Sync(rules).ok());
  EXPECT_EQ(ReadIgmp()[static_cast<int>(if_nametoindex("bad0"))][Addr("239.9.9.2")], 1);
  EXPECT_THAT(pool.Describe(), Each(Field(&MembershipInfo::state, State::kActive)));
}

// A connected UDP socket sending to `addr`:`port`.
int ConnectedSender(uint32_t addr, uint16_t port) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = addr;
  sin.sin_port = htons(port);
  EXPECT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&sin), sizeof sin), 0) << strerror(errno);
  return fd;
}

// Whether an ICMP error (port unreachable → ECONNREFUSED) reached `fd` within `timeout_ms`.
bool Refused(int fd, int timeout_ms) {
  pollfd p{fd, 0, 0};  // POLLERR is always reported
  if (poll(&p, 1, timeout_ms) != 1 || (p.revents & POLLERR) == 0) return false;
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  return err == ECONNREFUSED;
}

TEST_F(MembershipPoolTest, UnicastSinkStopsPortUnreachable) {
  const uint32_t local = Addr("10.77.0.1");
  MembershipPool pool;
  // Before the address exists: the sink binds anyway (IP_FREEBIND) and works once it does.
  ASSERT_TRUE(pool.Sync({Rule("in0", "10.77.0.1", 5000)}).ok());
  ASSERT_THAT(pool.Describe(), SizeIs(1));
  EXPECT_EQ(pool.Describe()[0].kind, MembershipInfo::Kind::kUnicastSink);
  EXPECT_EQ(pool.Describe()[0].state, State::kActive);
  AddLink("in0");
  ASSERT_EQ(Sh("ip addr add 10.77.0.1/24 dev in0"), 0);

  // Local delivery runs through loopback in send order: once the datagram to the closed port
  // 5001 has been refused, the one sent before it to the sink's port has been handled too.
  const int to_sink = ConnectedSender(local, 5000);
  const int to_closed = ConnectedSender(local, 5001);
  ASSERT_EQ(send(to_sink, "x", 1, 0), 1);
  ASSERT_EQ(send(to_closed, "x", 1, 0), 1);
  EXPECT_TRUE(Refused(to_closed, 5000)) << "the kernel did not refuse a closed port";
  EXPECT_FALSE(Refused(to_sink, 0)) << "the sink's port was refused";

  // The sink goes with its rule: the port is refused again.
  ASSERT_TRUE(pool.Sync({}).ok());
  EXPECT_THAT(pool.Describe(), IsEmpty());
  ASSERT_EQ(send(to_sink, "x", 1, 0), 1);
  EXPECT_TRUE(Refused(to_sink, 5000));
  close(to_sink);
  close(to_closed);
}

TEST_F(MembershipPoolTest, UnicastSinkYieldsToALocalApplication) {
  // A local application already bound to the port keeps the kernel quiet itself; the sink must
  // neither fail nor take its datagrams (no SO_REUSEADDR).
  const int app = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(5000);  // INADDR_ANY
  ASSERT_EQ(bind(app, reinterpret_cast<const sockaddr*>(&sin), sizeof sin), 0);
  MembershipPool pool;
  ASSERT_TRUE(pool.Sync({Rule("in0", "10.77.0.1", 5000)}).ok());
  ASSERT_THAT(pool.Describe(), SizeIs(1));
  EXPECT_EQ(pool.Describe()[0].state, State::kActive);
  EXPECT_THAT(pool.Describe()[0].detail, HasSubstr("another local socket"));
  close(app);
  // Retried by the next Sync, which now binds.
  ASSERT_TRUE(pool.Sync({Rule("in0", "10.77.0.1", 5000)}).ok());
  EXPECT_THAT(pool.Describe()[0].detail, IsEmpty());
}

}  // namespace
}  // namespace mcr::control
