// End-to-end tests of the engine alone, against the real kernel: namespaces and veth pairs
// (tests/rig/netns_fixture.h), real UDP sockets as sender and receiver, AF_PACKET for frames a
// socket cannot send (unroutable sources, malformed shapes). The daemon and CLI are exercised by
// tests/e2e/*.sh; these pin down the data plane's behaviour directly.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <map>
#include <cstring>
#include <set>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "engine/engine.h"
#include "engine/packet.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/rig/netns_fixture.h"
#include "tests/rig/traffic.h"

namespace mcr::engine {
namespace {

using mcr::testing::Addr;
using mcr::testing::MakePayload;
using mcr::testing::NetnsRig;
using mcr::testing::NetnsScope;
using mcr::testing::Pace;
using mcr::testing::RawSender;
using mcr::testing::Receiver;
using mcr::testing::Sender;

OutputSpec Out(const char* dst, uint16_t port, const char* ifname, uint8_t ttl = 0,
               int dscp = -1) {
  OutputSpec o;
  o.dst_addr = Addr(dst);
  o.dst_port = port;
  o.interface = ifname;
  o.ttl = ttl;
  o.dscp = dscp;
  return o;
}

RuleSpec Rule(const char* id, const char* ifname, const char* group, uint16_t port,
              std::vector<OutputSpec> outs, const char* source = nullptr) {
  RuleSpec r;
  r.id = id;
  r.input_interface = ifname;
  r.input_group = Addr(group);
  r.input_port = port;
  r.input_source = source ? Addr(source) : 0;
  r.outputs = std::move(outs);
  return r;
}

const RuleStats* FindRule(const EngineStats& st, const std::string& id) {
  for (const auto& r : st.rules)
    if (r.spec.id == id) return &r;
  return nullptr;
}

// Frames the kernel dropped on `input`'s capture sockets, all shards together.
uint64_t InputKernelDrops(const EngineStats& st, const std::string& input) {
  uint64_t n = 0;
  for (const auto& s : st.shards)
    for (const auto& [name, v] : s.kernel_drops)
      if (name == input) n += v;
  return n;
}

uint64_t Drops(const EngineStats& st, const std::string& reason) {
  uint64_t n = 0;
  for (const auto& s : st.shards)
    for (const auto& [name, v] : s.drops)
      if (name == reason) n += v;
  return n;
}

// `count` datagrams of flow 1, numbered from *seq on, back to back: one UDP GSO send of them
// (with Sender::SetGso(size)) reaches the relay as a burst of `count` frames.
std::vector<uint8_t> Burst(uint64_t* seq, int count, size_t size) {
  std::vector<uint8_t> burst;
  for (int k = 0; k < count; ++k) {
    const std::vector<uint8_t> p = MakePayload((*seq)++, 1, size);
    burst.insert(burst.end(), p.begin(), p.end());
  }
  return burst;
}

// Pins the calling thread to one CPU until destroyed, then restores its CPU set.
class CpuPin {
 public:
  explicit CpuPin(int cpu) {
    sched_getaffinity(0, sizeof saved_, &saved_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ok_ = sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~CpuPin() { sched_setaffinity(0, sizeof saved_, &saved_); }
  CpuPin(const CpuPin&) = delete;
  CpuPin& operator=(const CpuPin&) = delete;
  bool ok() const { return ok_; }

 private:
  cpu_set_t saved_;
  bool ok_ = false;
};

// Attaches to the tun or tap interface `name` (made with `ip tuntap add`) in the calling thread's
// namespace. Returns the fd, or -1 with errno set.
int AttachTun(const char* name, short flags) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  ifreq ifr{};
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  ifr.ifr_flags = flags;
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// Whether the running kernel is at least major.minor (uname release "6.18.44-...").
bool KernelAtLeast(int major, int minor) {
  utsname u{};
  int ma = 0, mi = 0;
  if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

// Counters are published by the shard after each pass; wait until `pred` holds or 3 s pass.
template <typename Pred>
EngineStats WaitStats(const Engine& e, Pred pred) {
  EngineStats st = e.Snapshot();
  for (int i = 0; i < 300 && !pred(st); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    st = e.Snapshot();
  }
  return st;
}

class EngineRelayTest : public ::testing::TestWithParam<IngressMode> {
 protected:
  void SetUp() override {
    if (std::string why = NetnsRig::Unavailable(); !why.empty()) GTEST_SKIP() << why;
    // Test names contain '/' (parameterised): namespace names may not.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');
    rig_ = std::make_unique<NetnsRig>(name);
    rig_->StandardTopology();
  }
  void TearDown() override {
    {
      if (engine_) {
        NetnsScope in(*rig_, "rly");
        engine_.reset();
      }
    }
    rig_.reset();
  }
  // Options for one shard per CPU in `cpus`, with the ingress mode under test.
  EngineOptions Options(std::vector<int> cpus = {0}) const {
    EngineOptions o;
    o.cpus = std::move(cpus);
    o.ingress = GetParam();
    return o;
  }
  void StartEngine(const EngineOptions& o) {
    NetnsScope in(*rig_, "rly");
    auto e = Engine::Start(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
  }
  void StartEngine(std::vector<int> cpus = {0}, uint32_t busy_poll_us = 0) {
    EngineOptions o = Options(std::move(cpus));
    o.busy_poll_us = busy_poll_us;
    StartEngine(o);
  }
  // The message Engine::Start refuses `o` with ("" if it starts).
  std::string StartRefusal(const EngineOptions& o) {
    NetnsScope in(*rig_, "rly");
    auto e = Engine::Start(o);
    return e.ok() ? "" : std::string(e.status().message());
  }
  void Apply(const std::vector<RuleSpec>& rules) {
    NetnsScope in(*rig_, "rly");
    absl::Status st = engine_->ApplyRules(rules);
    ASSERT_TRUE(st.ok()) << st;
  }

  void Receive(const char* group, uint16_t port, std::unique_ptr<Receiver>* rx) {
    NetnsScope in(*rig_, "rcv");
    *rx = std::make_unique<Receiver>(group, port, "veth0");
  }
  // A tun or tap input `name` in the relay's namespace (`ip tuntap add dev NAME mode MODE`, set
  // up) attached with `flags`: *fd takes the frames the test writes (the test closes it), and
  // *builder builds them (frames only; it sends nothing).
  void TunInput(const char* name, const char* mode, short flags, int* fd,
                std::unique_ptr<RawSender>* builder) {
    rig_->Exec("rly", std::string("ip tuntap add dev ") + name + " mode " + mode);
    rig_->Exec("rly", std::string("ip link set ") + name + " up");
    NetnsScope in(*rig_, "rly");
    *fd = AttachTun(name, flags);
    ASSERT_GE(*fd, 0) << strerror(errno);
    *builder = std::make_unique<RawSender>("lo");
  }
  // Eight flows interleaved through the shards on `cpus`: each complete and in order.
  void RunEightFlows(std::vector<int> cpus);

  std::unique_ptr<NetnsRig> rig_;
  EnginePtr engine_;
};

TEST_P(EngineRelayTest, MulticastToMulticastInOrderIntactWithDefaultTtlAndCopiedDscp) {
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  {
    NetnsScope in(*rig_, "rcv");
    rx = std::make_unique<Receiver>("239.2.2.2", 6000, "veth0");
  }
  constexpr uint64_t kN = 3000;
  {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0", 46 << 2);  // EF
    for (uint64_t i = 0; i < kN; ++i) {
      tx.Send("239.1.1.1", 5000, MakePayload(i, 1, 1200));
      Pace(i);
    }
  }
  auto got = rx->Collect(kN);
  ASSERT_EQ(got.size(), kN);
  for (uint64_t i = 0; i < kN; ++i) {
    ASSERT_EQ(got[i].payload, MakePayload(i, 1, 1200)) << "datagram " << i;
    EXPECT_EQ(got[i].src, Addr("10.10.2.1"));  // the output interface's address
    EXPECT_EQ(got[i].ttl, 1);          // multicast default: the next router drops it
    EXPECT_EQ(got[i].tos >> 2, 46);    // DSCP copied from the input
  }
  EngineStats st = WaitStats(*engine_, [](const EngineStats& s) {
    const RuleStats* r = FindRule(s, "r1");
    return r && r->packets == kN && r->outputs[0].packets == kN;
  });
  const RuleStats* r = FindRule(st, "r1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->packets, kN);
  EXPECT_EQ(r->bytes, kN * 1200);
  EXPECT_EQ(r->outputs[0].packets, kN);
  EXPECT_EQ(r->outputs[0].bytes, kN * 1200);
  EXPECT_TRUE(r->input_up);
  EXPECT_TRUE(r->outputs[0].active);
}

TEST_P(EngineRelayTest, ConfiguredTtlAndDscpAndUnicastOutput) {
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000,
              {Out("239.2.2.2", 6000, "out0", 7, 10), Out("10.10.2.2", 7000, "out0", 9, 0)})});
  std::unique_ptr<Receiver> mc, uc;
  {
    NetnsScope in(*rig_, "rcv");
    mc = std::make_unique<Receiver>("239.2.2.2", 6000, "veth0");
    uc = std::make_unique<Receiver>("10.10.2.2", 7000, "veth0");
  }
  {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0", 46 << 2);
    for (uint64_t i = 0; i < 100; ++i) tx.Send("239.1.1.1", 5000, MakePayload(i, 1, 300));
  }
  auto a = mc->Collect(100), b = uc->Collect(100);
  ASSERT_EQ(a.size(), 100u);
  ASSERT_EQ(b.size(), 100u);
  for (size_t i = 0; i < 100; ++i) {
    EXPECT_EQ(a[i].payload, MakePayload(i, 1, 300));
    EXPECT_EQ(b[i].payload, MakePayload(i, 1, 300));
    EXPECT_EQ(a[i].ttl, 7);
    EXPECT_EQ(a[i].tos >> 2, 10);
    EXPECT_EQ(b[i].ttl, 9);
    EXPECT_EQ(b[i].tos >> 2, 0);
  }
}

TEST_P(EngineRelayTest, RelaysSourceTheRelayCannotRouteToUnderStrictRpFilter) {
  rig_->Exec("rly", "sysctl -qw net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.in0.rp_filter=1");
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  {
    NetnsScope in(*rig_, "rcv");
    rx = std::make_unique<Receiver>("239.2.2.2", 6000, "veth0");
  }
  {
    NetnsScope in(*rig_, "snd");
    RawSender raw("veth0");
    for (uint64_t i = 0; i < 200; ++i)
      raw.Send(raw.Frame("198.51.100.7", "239.1.1.1", 5000, MakePayload(i, 1, 500)));
  }
  auto got = rx->Collect(200);
  ASSERT_EQ(got.size(), 200u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].payload, MakePayload(i, 1, 500));
}

TEST_P(EngineRelayTest, MalformedFramesAreCountedByReasonAndDropped) {
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  {
    NetnsScope in(*rig_, "rcv");
    rx = std::make_unique<Receiver>("239.2.2.2", 6000, "veth0");
  }
  {
    NetnsScope in(*rig_, "snd");
    RawSender raw("veth0");
    const auto good = raw.Frame("10.10.1.1", "239.1.1.1", 5000, MakePayload(0, 1, 100));
    auto frag = good;
    frag[14 + 6] = 0x20;  // MF
    raw.Send(frag);
    auto bad_ihl = good;
    bad_ihl[14] = 0x44;  // IHL 4
    raw.Send(bad_ihl);
    auto bad_udp_len = good;
    bad_udp_len[34 + 4] = 0xff;  // UDP length beyond the datagram
    raw.Send(bad_udp_len);
    auto truncated = good;
    truncated.resize(14 + 20 + 4);  // IP says more than the frame holds
    raw.Send(truncated);
    raw.Send(good);
    auto bad_checksums = good;  // checksums are neither verified nor required: relayed
    bad_checksums[14 + 10] ^= 0xff;
    bad_checksums[34 + 6] = 0x12;
    bad_checksums[34 + 7] = 0x34;
    raw.Send(bad_checksums);
  }
  auto got = rx->Collect(6, 800);
  ASSERT_EQ(got.size(), 2u);  // only the well-formed frames are relayed
  EngineStats st = WaitStats(*engine_, [](const EngineStats& s) {
    return Drops(s, "fragment") == 1 && Drops(s, "bad_ihl") == 1 &&
           Drops(s, "bad_udp_length") == 1 && Drops(s, "truncated_ip") == 1;
  });
  EXPECT_EQ(Drops(st, "fragment"), 1u);
  EXPECT_EQ(Drops(st, "bad_ihl"), 1u);
  EXPECT_EQ(Drops(st, "bad_udp_length"), 1u);
  EXPECT_EQ(Drops(st, "truncated_ip"), 1u);
  EXPECT_EQ(FindRule(st, "r1")->packets, 2u);
}

TEST_P(EngineRelayTest, NeverRecapturesItsOwnOutputOnTheInputInterface) {
  StartEngine();
  // r1 sends back out of its own input interface, to a (group, port) r2 captures there. If the
  // relay saw its own output, r2 would count it.
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.1.1.1", 5001, "in0")}),
         Rule("r2", "in0", "239.1.1.1", 5001, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> back;
  {
    NetnsScope in(*rig_, "snd");
    back = std::make_unique<Receiver>("239.1.1.1", 5001, "veth0");
    Sender tx("veth0");
    for (uint64_t i = 0; i < 500; ++i) tx.Send("239.1.1.1", 5000, MakePayload(i, 1, 200));
  }
  ASSERT_EQ(back->Collect(500).size(), 500u);  // the output did go out of in0
  EngineStats st = WaitStats(*engine_, [](const EngineStats& s) {
    return FindRule(s, "r1")->packets == 500;
  });
  EXPECT_EQ(FindRule(st, "r1")->packets, 500u);
  EXPECT_EQ(FindRule(st, "r2")->packets, 0u);
}

TEST_P(EngineRelayTest, SourceSpecificRuleWinsOverAnySourceRule) {
  StartEngine();
  Apply({Rule("any", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")}),
         Rule("ssm", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6001, "out0")}, "198.51.100.7")});
  std::unique_ptr<Receiver> any, ssm;
  {
    NetnsScope in(*rig_, "rcv");
    any = std::make_unique<Receiver>("239.2.2.2", 6000, "veth0");
    ssm = std::make_unique<Receiver>("239.2.2.2", 6001, "veth0");
  }
  {
    NetnsScope in(*rig_, "snd");
    RawSender raw("veth0");
    for (uint64_t i = 0; i < 50; ++i) {
      raw.Send(raw.Frame("198.51.100.7", "239.1.1.1", 5000, MakePayload(i, 1, 100)));
      raw.Send(raw.Frame("198.51.100.8", "239.1.1.1", 5000, MakePayload(i, 2, 100)));
    }
  }
  auto a = any->Collect(100, 800), s = ssm->Collect(100, 800);
  ASSERT_EQ(a.size(), 50u);
  ASSERT_EQ(s.size(), 50u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(a[i].payload, MakePayload(i, 2, 100));
    EXPECT_EQ(s[i].payload, MakePayload(i, 1, 100));
  }
}

TEST_P(EngineRelayTest, TwoShardsKeepEveryFlowCompleteAndInOrder) { RunEightFlows({0, 1}); }

// Four shards on this 2-CPU machine (two per CPU): the fanout group has four members.
TEST_P(EngineRelayTest, FourShardsKeepEveryFlowCompleteAndInOrder) {
  RunEightFlows({0, 1, 0, 1});
}

void EngineRelayTest::RunEightFlows(std::vector<int> cpus) {
  const size_t num_shards = cpus.size();
  StartEngine(std::move(cpus));
  constexpr int kFlows = 8;
  std::vector<RuleSpec> rules;
  std::set<int> shards;
  for (int f = 0; f < kFlows; ++f) {
    rules.push_back(Rule(("f" + std::to_string(f)).c_str(), "in0", "239.1.1.1",
                         static_cast<uint16_t>(5000 + f),
                         {Out("239.2.2.2", static_cast<uint16_t>(6000 + f), "out0")}));
    shards.insert(engine_->ShardFor(Addr("239.1.1.1"), static_cast<uint16_t>(5000 + f)));
  }
  ASSERT_GE(shards.size(), num_shards - 1) << "the flows should spread over the shards";
  Apply(rules);
  std::vector<std::unique_ptr<Receiver>> rx;
  {
    NetnsScope in(*rig_, "rcv");
    for (int f = 0; f < kFlows; ++f)
      rx.push_back(std::make_unique<Receiver>("239.2.2.2", static_cast<uint16_t>(6000 + f), "veth0"));
  }
  constexpr uint64_t kPerFlow = 1000;
  {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0");
    uint64_t n = 0;
    for (uint64_t i = 0; i < kPerFlow; ++i)
      for (int f = 0; f < kFlows; ++f) {
        tx.Send("239.1.1.1", static_cast<uint16_t>(5000 + f), MakePayload(i, f, 400));
        Pace(n++);
      }
  }
  for (int f = 0; f < kFlows; ++f) {
    auto got = rx[f]->Collect(kPerFlow);
    ASSERT_EQ(got.size(), kPerFlow) << "flow " << f;
    for (uint64_t i = 0; i < kPerFlow; ++i)
      ASSERT_EQ(got[i].payload, MakePayload(i, f, 400)) << "flow " << f << " datagram " << i;
  }
  EngineStats st = engine_->Snapshot();
  for (const auto& s : st.shards) EXPECT_EQ(s.steering_mismatch, 0u) << "shard " << s.index;
}


// Sends `n` numbered datagrams of flow `flow` and expects every one at `rx`, intact and in order.
void ExpectRelayed(NetnsRig& rig, Receiver& rx, const char* group, uint16_t port, uint32_t flow,
                   uint64_t n, size_t size, const char* ifname = "veth0") {
  {
    NetnsScope in(rig, "snd");
    Sender tx(ifname);
    for (uint64_t i = 0; i < n; ++i) {
      tx.Send(group, port, MakePayload(i, flow, size));
      Pace(i);
    }
  }
  auto got = rx.Collect(n);
  ASSERT_EQ(got.size(), n);
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i].payload, MakePayload(i, flow, size)) << i;
}

TEST_P(EngineRelayTest, JumboFramesUpTo9000ByteMtu) {
  for (const char* cmd : {"snd link set veth0 mtu 9000", "rly link set in0 mtu 9000",
                          "rly link set out0 mtu 9000", "rcv link set veth0 mtu 9000"}) {
    std::string c(cmd);
    std::string role = c.substr(0, 3);
    ASSERT_EQ(mcr::testing::Sh("ip -n " + rig_->Name(role) + c.substr(3)), 0) << cmd;
  }
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 500, 8972);  // 9000 - 20 (IP) - 8 (UDP)
}

// Links beyond the usual 9000-byte jumbo MTU (veths, some fabrics), raised while mcrd runs: the
// daemon refreshes on the link event, and recv mode's buffers, sized by the MTU, follow it.
TEST_P(EngineRelayTest, MtuRaisedTo16000WhileRunning) {
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 100, 1200);
  for (const char* cmd : {"snd link set veth0 mtu 16000", "rly link set in0 mtu 16000",
                          "rly link set out0 mtu 16000", "rcv link set veth0 mtu 16000"}) {
    std::string c(cmd);
    ASSERT_EQ(mcr::testing::Sh("ip -n " + rig_->Name(c.substr(0, 3)) + c.substr(3)), 0) << cmd;
  }
  {
    NetnsScope in(*rig_, "rly");
    engine_->RefreshInterfaces();  // what the daemon does on the link event
  }
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 2, 200, 15972);  // 16000 - 20 (IP) - 8 (UDP)
  const EngineStats st = engine_->Snapshot();
  EXPECT_EQ(Drops(st, "truncated_ip"), 0u);
}

TEST_P(EngineRelayTest, VlanSubInterface) {
  if (mcr::testing::Sh("ip -n " + rig_->Name("snd") +
                       " link add link veth0 name veth0.100 type vlan id 100 2>/dev/null") != 0)
    GTEST_SKIP() << "this kernel cannot create VLAN interfaces (8021q not available)";
  rig_->Exec("snd", "ip addr add 10.10.100.1/24 dev veth0.100");
  rig_->Exec("snd", "ip link set veth0.100 up");
  rig_->Exec("rly", "ip link add link in0 name in0.100 type vlan id 100");
  rig_->Exec("rly", "ip addr add 10.10.100.2/24 dev in0.100");
  rig_->Exec("rly", "ip link set in0.100 up");
  StartEngine();
  Apply({Rule("sub", "in0.100", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 300, 1000, "veth0.100");
}

// A VLAN interface that keeps the tag in the frame it hands up (reorder_hdr off) still relays:
// its tap sees the tag in-band, and the frame is its own.
TEST_P(EngineRelayTest, VlanSubInterfaceWithoutHeaderReordering) {
  if (mcr::testing::Sh("ip -n " + rig_->Name("snd") +
                       " link add link veth0 name veth0.100 type vlan id 100 2>/dev/null") != 0)
    GTEST_SKIP() << "this kernel cannot create VLAN interfaces (8021q not available)";
  rig_->Exec("snd", "ip addr add 10.10.100.1/24 dev veth0.100");
  rig_->Exec("snd", "ip link set veth0.100 up");
  rig_->Exec("rly", "ip link add link in0 name in0.100 type vlan id 100 reorder_hdr off");
  rig_->Exec("rly", "ip addr add 10.10.100.2/24 dev in0.100");
  rig_->Exec("rly", "ip link set in0.100 up");
  StartEngine();
  Apply({Rule("sub", "in0.100", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 300, 1000, "veth0.100");
}

// A trunk: the parent's tap sees the tagged frames of every VLAN on it, but only untagged and
// priority-tagged (VID 0) frames are the parent's, as for its own IP stack. A rule on the parent
// must not relay a VLAN's stream (one VLAN's discovery traffic into another, or twice when the
// VLAN interface has a rule of its own), and the VLAN interface's rule relays only its VLAN.
TEST_P(EngineRelayTest, ATrunksParentRelaysOnlyItsOwnFrames) {
  const bool have_vlan = mcr::testing::Sh("ip -n " + rig_->Name("rly") +
                                          " link add link in0 name in0.100 type vlan id 100"
                                          " 2>/dev/null") == 0;
  if (have_vlan) {
    rig_->Exec("rly", "ip link set in0.100 up");
  } else {
    std::fprintf(stderr, "note: no 8021q in this kernel: only the parent's half of the test ran\n");
  }
  StartEngine({0, 1});  // with fanout: tagged frames must not reach any member
  std::vector<RuleSpec> rules = {
      Rule("parent", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})};
  if (have_vlan) {
    rules.push_back(
        Rule("vlan100", "in0.100", "239.1.1.1", 5000, {Out("239.2.2.2", 6001, "out0")}));
  }
  Apply(rules);
  std::unique_ptr<Receiver> parent, vlan100;
  Receive("239.2.2.2", 6000, &parent);
  Receive("239.2.2.2", 6001, &vlan100);
  // Kinds of frame, sent interleaved: 0 untagged, 1 priority-tagged (VID 0, PCP 5), 2 VLAN 100,
  // 3 VLAN 200 (nobody's), 4 QinQ 100/200 (a VLAN inside VLAN 100: not in0.100's own either).
  const std::vector<std::vector<uint8_t>> tags = {
      {}, {0x81, 0x00, 0xa0, 0x00}, {0x81, 0x00, 0x00, 0x64}, {0x81, 0x00, 0x00, 0xc8},
      {0x81, 0x00, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8}};
  // One flow, so one shard and one order, ending with one more untagged and one more VLAN 100
  // frame: a frame relayed that should not be shows up in the sequence before them, with no
  // timeout to tune.
  constexpr uint64_t kEach = 100;
  {
    NetnsScope in(*rig_, "snd");
    RawSender raw("veth0");
    auto send = [&](uint64_t i, uint32_t kind) {
      auto f = raw.Frame("10.10.1.1", "239.1.1.1", 5000, MakePayload(i, kind, 300));
      f.insert(f.begin() + 12, tags[kind].begin(), tags[kind].end());
      raw.Send(f);
    };
    for (uint64_t i = 0; i < kEach; ++i)
      for (uint32_t kind = 0; kind < tags.size(); ++kind) send(i, kind);
    send(kEach, 0);
    send(kEach, 2);
  }
  auto got = parent->Collect(2 * kEach + 1);
  ASSERT_EQ(got.size(), 2 * kEach + 1);
  EXPECT_EQ(got.back().payload, MakePayload(kEach, 0, 300)) << "the last relayed from the parent";
  for (uint64_t i = 0; i < kEach; ++i) {
    ASSERT_EQ(got[2 * i].payload, MakePayload(i, 0, 300)) << "relayed from the parent as #" << 2 * i;
    ASSERT_EQ(got[2 * i + 1].payload, MakePayload(i, 1, 300))
        << "relayed from the parent as #" << 2 * i + 1;
  }
  if (have_vlan) {
    got = vlan100->Collect(kEach + 1);
    ASSERT_EQ(got.size(), kEach + 1);
    for (uint64_t i = 0; i <= kEach; ++i)
      ASSERT_EQ(got[i].payload, MakePayload(i, 2, 300)) << "relayed from in0.100 as #" << i;
  }
  EngineStats st = engine_->Snapshot();
  for (const auto& s : st.shards) EXPECT_EQ(s.steering_mismatch, 0u) << "shard " << s.index;
}

TEST_P(EngineRelayTest, Ipv4OptionsAreSkipped) {
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  {
    NetnsScope in(*rig_, "snd");
    RawSender raw("veth0");
    for (uint64_t i = 0; i < 20; ++i) {
      auto f = raw.Frame("10.10.1.1", "239.1.1.1", 5000, MakePayload(i, 1, 200));
      // Insert a 4-byte option (router alert) after the 20-byte header: IHL 6.
      const uint8_t ra[4] = {0x94, 0x04, 0x00, 0x00};
      f.insert(f.begin() + 34, ra, ra + 4);
      f[14] = 0x46;
      const uint16_t tot = htons(static_cast<uint16_t>(24 + 8 + 200));
      memcpy(&f[16], &tot, 2);
      raw.Send(f);
    }
  }
  auto got = rx->Collect(20);
  ASSERT_EQ(got.size(), 20u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(got[i].payload, MakePayload(i, 1, 200));
}

TEST_P(EngineRelayTest, EgressErrorsAreCountedPerOutputAndSpareTheOthers) {
  StartEngine();
  // Output b goes to a unicast port nobody listens on: the receiver answers with ICMP port
  // unreachable, which the relay's socket reports as ECONNREFUSED on a later send.
  Apply({Rule("r1", "in0", "239.1.1.1", 5000,
              {Out("239.2.2.2", 6000, "out0"), Out("10.10.2.2", 9, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 2000, 500);
  // An output's counters follow its sends' completions, which the shard takes up to 10 ms
  // after the rule's.
  EngineStats st = WaitStats(*engine_, [](const EngineStats& s) {
    const RuleStats* r = FindRule(s, "r1");
    return r->packets == 2000 && r->outputs[0].packets == 2000;
  });
  const RuleStats* r = FindRule(st, "r1");
  EXPECT_EQ(r->outputs[0].packets, 2000u);
  EXPECT_GT(r->outputs[1].errors[static_cast<size_t>(EgressError::kRefused)], 0u);
  uint64_t errors = 0;
  for (uint64_t e : r->outputs[0].errors) errors += e;
  EXPECT_EQ(errors, 0u);
}

// An ICMP error about an earlier datagram (here host unreachable, as a router on the way would
// send it) makes the output socket's next send fail with it, without sending. That run is sent
// again, and the report counted once.
TEST_P(EngineRelayTest, IcmpErrorsAboutEarlierDatagramsLoseNoLaterOnes) {
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("10.10.2.2", 7000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("10.10.2.2", 7000, &rx);
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 1, 200);
  // Find the relay's source port from what it sent, then report a host unreachable for it.
  {
    NetnsScope in(*rig_, "snd");
    Sender("veth0").Send("239.1.1.1", 5000, MakePayload(1, 1, 200));
  }
  auto first = rx->Collect(1);
  ASSERT_EQ(first.size(), 1u);
  {
    NetnsScope in(*rig_, "rcv");
    const int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    ASSERT_GE(fd, 0) << strerror(errno);
    const absl::Cleanup close_fd = [fd] { close(fd); };
    // ICMP header, then the start of the datagram it is about: IP header and UDP header.
    uint8_t pkt[8 + 20 + 8] = {3, 1};  // destination unreachable, host unreachable
    uint8_t* ip = pkt + 8;
    ip[0] = 0x45;
    ip[3] = 28 + 200;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    const uint32_t src = Addr("10.10.2.1"), dst = Addr("10.10.2.2");
    memcpy(ip + 12, &src, 4);
    memcpy(ip + 16, &dst, 4);
    const uint16_t sport = htons(first[0].src_port), dport = htons(7000), ulen = htons(208);
    memcpy(ip + 20, &sport, 2);
    memcpy(ip + 22, &dport, 2);
    memcpy(ip + 24, &ulen, 2);
    uint32_t sum = 0;
    for (size_t k = 0; k < sizeof pkt; k += 2) sum += (pkt[k] << 8) | pkt[k + 1];
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    pkt[2] = static_cast<uint8_t>(~sum >> 8);
    pkt[3] = static_cast<uint8_t>(~sum);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = src;
    ASSERT_EQ(sendto(fd, pkt, sizeof pkt, 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(sizeof pkt))
        << strerror(errno);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  // A burst: one batched send in ring mode. None of it may be lost to the report.
  {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0");
    for (uint64_t i = 2; i < 22; ++i) tx.Send("239.1.1.1", 5000, MakePayload(i, 1, 200));
  }
  auto got = rx->Collect(20);
  ASSERT_EQ(got.size(), 20u);
  for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(got[i].payload, MakePayload(i + 2, 1, 200));
  EngineStats st = WaitStats(*engine_, [](const EngineStats& s) {
    return FindRule(s, "r1")->outputs[0].packets == 22;
  });
  const OutputStats& o = FindRule(st, "r1")->outputs[0];
  EXPECT_EQ(o.packets, 22u);
  EXPECT_EQ(o.errors[static_cast<size_t>(EgressError::kNetworkDown)], 1u) << "the report, once";
}

TEST_P(EngineRelayTest, InterfacesThatAppearVanishOrFlapNeedNoRestart) {
  StartEngine();
  Apply({Rule("late", "in1", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")}),
         Rule("r0", "in0", "239.1.1.3", 5000, {Out("239.2.2.2", 6001, "out0")})});
  std::unique_ptr<Receiver> late, r0;
  Receive("239.2.2.2", 6000, &late);
  Receive("239.2.2.2", 6001, &r0);
  EXPECT_FALSE(FindRule(engine_->Snapshot(), "late")->input_up);
  // The input interface appears after its rule was added.
  rig_->Link("snd", "veth1", "10.10.3.1/24", "rly", "in1", "10.10.3.2/24");
  {
    NetnsScope in(*rig_, "rly");
    engine_->RefreshInterfaces();  // the daemon calls this on every rtnetlink link event
  }
  EXPECT_TRUE(FindRule(engine_->Snapshot(), "late")->input_up);
  ExpectRelayed(*rig_, *late, "239.1.1.1", 5000, 1, 200, 300, "veth1");
  // Link down and up: the same capture socket recovers without any refresh.
  rig_->Exec("rly", "ip link set in0 down");
  rig_->Exec("rly", "ip link set in0 up");
  rig_->Exec("snd", "ip link set veth0 up");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // veth carrier settles
  ExpectRelayed(*rig_, *r0, "239.1.1.3", 5000, 2, 200, 300);
  // The flap reached the capture socket as an error (ENETDOWN), counted for in0.
  auto in0_errors = [](const EngineStats& st) {
    uint64_t n = 0;
    for (const auto& s : st.shards)
      for (const auto& [name, v] : s.socket_errors)
        if (name == "in0") n += v;
    return n;
  };
  EXPECT_GT(in0_errors(WaitStats(*engine_, [&](const EngineStats& st) {
              return in0_errors(st) > 0;
            })),
            0u);
  // Deleted and re-created: a new ifindex; the rule stays and relaying resumes.
  rig_->Exec("rly", "ip link del in1");
  rig_->Link("snd", "veth1", "10.10.3.1/24", "rly", "in1", "10.10.3.2/24");
  {
    NetnsScope in(*rig_, "rly");
    engine_->RefreshInterfaces();
  }
  ExpectRelayed(*rig_, *late, "239.1.1.1", 5000, 3, 200, 300, "veth1");
}

TEST_P(EngineRelayTest, OutputInterfaceDownOrRecreatedWhileDownNeedsNoRestart) {
  StartEngine();
  auto out_active = [&] { return FindRule(engine_->Snapshot(), "r")->outputs[0].active; };
  auto refresh = [&] {
    NetnsScope in(*rig_, "rly");
    engine_->RefreshInterfaces();  // the daemon calls this on every link and address event
  };
  // A down output interface (address configured) is not a reason to refuse the rule — nor, at
  // start, to refuse to start: the output waits inactive.
  rig_->Exec("rly", "ip link set out0 down");
  Apply({Rule("r", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  EXPECT_FALSE(out_active());
  rig_->Exec("rly", "ip link set out0 up");
  rig_->Exec("rcv", "ip link set veth0 up");
  refresh();
  EXPECT_TRUE(out_active());
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // veth carrier settles
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 200, 300);
  // Deleted, then re-created with the same address and MTU but down at the first event (its
  // open fails), then up: the second event must reopen it although nothing else changed.
  rx.reset();
  rig_->Exec("rly", "ip link del out0");
  refresh();
  EXPECT_FALSE(out_active());
  rig_->Link("rly", "out0", "10.10.2.1/24", "rcv", "veth0", "10.10.2.2/24");
  rig_->Exec("rcv", "ip route replace 224.0.0.0/4 dev veth0");
  rig_->Exec("rly", "ip link set out0 down");
  refresh();
  EXPECT_FALSE(out_active());
  rig_->Exec("rly", "ip link set out0 up");
  refresh();
  EXPECT_TRUE(out_active());
  Receive("239.2.2.2", 6000, &rx);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 2, 200, 300);
}

TEST_P(EngineRelayTest, RouteMtuBelowTheInterfaceMtuStillRelaysEveryDatagram) {
  StartEngine();
  Apply({Rule("r", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 300, 1200);
  // After the output opened, the route to its group gets a smaller MTU than out0's 1500 (as a
  // route or path MTU can): the kernel now refuses GSO runs of 1200-byte segments outright,
  // where single datagrams are fragmented and arrive.
  rig_->Exec("rly", "ip route add 239.2.2.2/32 dev out0 mtu 1000");
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 2, 300, 1200);
  const EngineStats st = engine_->Snapshot();
  const RuleStats* r = FindRule(st, "r");
  uint64_t errors = 0;
  for (uint64_t e : r->outputs[0].errors) errors += e;
  EXPECT_EQ(errors, 0u);
}

TEST_P(EngineRelayTest, TwoNamesOfOneInputInterfaceAreRefusedNotCapturedTwice) {
  StartEngine();
  rig_->Exec("rly", "ip link property add dev in0 altname inalt");
  Apply({Rule("a", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  {
    NetnsScope in(*rig_, "rly");
    absl::Status st = engine_->ApplyRules(
        {Rule("a", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")}),
         Rule("b", "inalt", "239.1.1.1", 5000, {Out("239.2.2.3", 6000, "out0")})});
    EXPECT_FALSE(st.ok());
    EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("under another name"));
  }
  // Refused as a whole: rule a still relays every datagram exactly once.
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  ExpectRelayed(*rig_, *rx, "239.1.1.1", 5000, 1, 200, 300);
  EXPECT_EQ(engine_->Snapshot().rules.size(), 1u);
}

TEST_P(EngineRelayTest, InputWithoutEthernetHeaderRelays) {
  // tun (like WireGuard and other IP tunnels) hands the stack bare IP packets: a capture there
  // starts at the IP header. Parsed as Ethernet, every datagram was counted as malformed.
  int tun = -1;
  std::unique_ptr<RawSender> builder;
  ASSERT_NO_FATAL_FAILURE(TunInput("tun0", "tun", IFF_TUN | IFF_NO_PI, &tun, &builder));
  StartEngine({0, 1});  // two shards: steering reads the IP header on this interface too
  Apply({Rule("t", "tun0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")}),
         Rule("u", "tun0", "239.1.1.2", 5001, {Out("239.2.2.2", 6001, "out0")})});
  std::unique_ptr<Receiver> a, b;
  Receive("239.2.2.2", 6000, &a);
  Receive("239.2.2.2", 6001, &b);
  for (uint64_t i = 0; i < 200; ++i) {
    for (const auto& [group, port] : {std::pair{"239.1.1.1", 5000}, std::pair{"239.1.1.2", 5001}}) {
      const auto frame = builder->Frame("10.10.9.1", group, static_cast<uint16_t>(port),
                                        MakePayload(i, port, 400));
      ASSERT_EQ(write(tun, frame.data() + 14, frame.size() - 14),
                static_cast<ssize_t>(frame.size() - 14));
    }
  }
  close(tun);
  auto ga = a->Collect(200), gb = b->Collect(200);
  ASSERT_EQ(ga.size(), 200u);
  ASSERT_EQ(gb.size(), 200u);
  for (uint64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(ga[i].payload, MakePayload(i, 5000, 400)) << i;
    EXPECT_EQ(gb[i].payload, MakePayload(i, 5001, 400)) << i;
  }
  EngineStats st = engine_->Snapshot();
  uint64_t malformed = 0;
  for (const auto& s : st.shards) {
    EXPECT_EQ(s.steering_mismatch, 0u) << "shard " << s.index;
    for (const auto& [reason, n] : s.drops) malformed += n;
  }
  EXPECT_EQ(malformed, 0u);
}

TEST_P(EngineRelayTest, RenamedInputInterfaceServesTheRulesOfItsNewName) {
  // Rules name in0 and im0 (not there yet); in0 is renamed im0. im0 sorts first, so a refresh
  // that opened im0 before closing in0 found the interface still held under its old name.
  StartEngine();
  Apply({Rule("old", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")}),
         Rule("new", "im0", "239.1.1.5", 5000, {Out("239.2.2.2", 6001, "out0")})});
  rig_->Exec("rly", "ip link set in0 down");
  rig_->Exec("rly", "ip link set in0 name im0");
  rig_->Exec("rly", "ip link set im0 up");
  rig_->Exec("snd", "ip link set veth0 up");
  {
    NetnsScope in(*rig_, "rly");
    engine_->RefreshInterfaces();
  }
  EngineStats st = engine_->Snapshot();
  EXPECT_FALSE(FindRule(st, "old")->input_up);
  EXPECT_TRUE(FindRule(st, "new")->input_up);
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6001, &rx);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // veth carrier settles
  ExpectRelayed(*rig_, *rx, "239.1.1.5", 5000, 1, 200, 300);
}

TEST_P(EngineRelayTest, UnicastOutputWithoutARouteIsOnLink) {
  // No route to 10.20.0.0/16 at all: an output socket bound to its interface still opens (the
  // kernel takes a destination it has no route for as on the link of the bound device), so
  // "no route" never leaves an output waiting — only a down, missing or address-less interface
  // does, and those come with link and address events.
  StartEngine();
  Apply({Rule("u", "in0", "239.1.1.1", 5000, {Out("10.20.0.5", 7000, "out0")})});
  EXPECT_TRUE(FindRule(engine_->Snapshot(), "u")->outputs[0].active);
}

TEST_P(EngineRelayTest, RuleChurnLosesNoPacketOfUntouchedFlows) {
  // The claim is about churn, not capacity: a 64 MiB capture ring (or receive buffer) per shard
  // holds the whole run, so a shard slowed down by a sanitizer or a loaded machine falls behind
  // without dropping. With the default 8 MiB a TSan build overflowed it once (1136 of 40,000).
  EngineOptions o = Options({0, 1});
  o.ring_block_count = 512;
  StartEngine(o);
  std::vector<RuleSpec> base;
  std::vector<std::unique_ptr<Receiver>> rx(3);
  for (int f = 0; f < 3; ++f) {
    base.push_back(Rule(("keep" + std::to_string(f)).c_str(), "in0", "239.1.1.1",
                        static_cast<uint16_t>(5000 + f),
                        {Out("239.2.2.2", static_cast<uint16_t>(6000 + f), "out0")}));
    Receive("239.2.2.2", static_cast<uint16_t>(6000 + f), &rx[f]);
  }
  Apply(base);
  // Three flows at ~20k pps each for ~2 s from a sender thread, while 200 rules come and go.
  constexpr uint64_t kPerFlow = 40000;
  std::thread sender([&] {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0");
    auto start = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < kPerFlow; ++i) {
      for (int f = 0; f < 3; ++f)
        tx.Send("239.1.1.1", static_cast<uint16_t>(5000 + f), MakePayload(i, f, 200));
      if (i % 20 == 19)
        std::this_thread::sleep_until(start + std::chrono::microseconds(i * 50));  // 20k/s
    }
  });
  {
    NetnsScope in(*rig_, "rly");
    for (int round = 0; round < 200; ++round) {
      std::vector<RuleSpec> rules = base;
      for (int k = 0; k <= round % 10; ++k)
        rules.push_back(Rule(("churn" + std::to_string(round) + "_" + std::to_string(k)).c_str(),
                             "in0", "239.3.3.3", static_cast<uint16_t>(7000 + k),
                             {Out("239.4.4.4", static_cast<uint16_t>(8000 + k), "out0")}));
      ASSERT_TRUE(engine_->ApplyRules(rules).ok());
    }
    ASSERT_TRUE(engine_->ApplyRules(base).ok());
  }
  sender.join();
  for (int f = 0; f < 3; ++f) {
    auto got = rx[f]->Collect(kPerFlow);
    ASSERT_EQ(got.size(), kPerFlow) << "flow " << f << "; kernel drops on the capture sockets: "
                                    << InputKernelDrops(engine_->Snapshot(), "in0");
    for (uint64_t i = 0; i < kPerFlow; ++i)
      ASSERT_EQ(got[i].payload, MakePayload(i, f, 200)) << "flow " << f << " datagram " << i;
  }
}

// Operators add a monitoring output to a live stream, or change a TTL: what the rule still
// relays keeps counting. Only a changed input starts the rule's counters again.
TEST_P(EngineRelayTest, EditingARuleKeepsTheCountersOfWhatItStillRelays) {
  StartEngine();
  std::unique_ptr<Receiver> a, b;
  Receive("239.2.2.2", 6000, &a);
  Receive("239.2.2.3", 6001, &b);
  uint64_t seq = 0;
  auto send = [&](uint16_t port, int n) {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0");
    for (int i = 0; i < n; ++i, ++seq) tx.Send("239.1.1.1", port, MakePayload(seq, 1, 200));
  };
  auto counts = [&](uint64_t rule, uint64_t out_a, uint64_t out_b) {
    EngineStats st = WaitStats(*engine_, [&](const EngineStats& s) {
      const RuleStats* r = FindRule(s, "r1");
      return r && r->packets >= rule && r->outputs.back().packets >= out_a;
    });
    const RuleStats* r = FindRule(st, "r1");
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(r->packets, rule);
    EXPECT_EQ(r->bytes, rule * 200);
    EXPECT_EQ(r->outputs.back().name, "239.2.2.2:6000@out0");
    EXPECT_EQ(r->outputs.back().packets, out_a);
    EXPECT_EQ(r->outputs.back().bytes, out_a * 200);
    if (r->outputs.size() == 2) {
      EXPECT_EQ(r->outputs[0].packets, out_b);
    }
  };
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  send(5000, 100);
  counts(100, 100, 0);
  // A new output ahead of the old one, which now states the multicast default TTL explicitly.
  Apply({Rule("r1", "in0", "239.1.1.1", 5000,
              {Out("239.2.2.3", 6001, "out0"), Out("239.2.2.2", 6000, "out0", 1)})});
  send(5000, 50);
  counts(150, 150, 50);
  EXPECT_EQ(FindRule(engine_->Snapshot(), "r1")->outputs.back().spec.ttl, 1);
  // A new TTL needs a new socket; the output's counters carry over to it.
  Apply({Rule("r1", "in0", "239.1.1.1", 5000,
              {Out("239.2.2.3", 6001, "out0"), Out("239.2.2.2", 6000, "out0", 5)})});
  send(5000, 50);
  counts(200, 200, 100);
  auto got_a = a->Collect(200), got_b = b->Collect(100);
  ASSERT_EQ(got_a.size(), 200u);
  ASSERT_EQ(got_b.size(), 100u);
  for (uint64_t i = 0; i < 200; ++i) {
    ASSERT_EQ(got_a[i].payload, MakePayload(i, 1, 200)) << "datagram " << i;
    EXPECT_EQ(got_a[i].ttl, i < 150 ? 1 : 5) << "datagram " << i;
  }
  for (uint64_t i = 0; i < 100; ++i) ASSERT_EQ(got_b[i].payload, MakePayload(100 + i, 1, 200));
  // Another input port is another stream: the rule's and its outputs' counters start again.
  Apply({Rule("r1", "in0", "239.1.1.1", 5001, {Out("239.2.2.2", 6000, "out0", 5)})});
  send(5001, 30);
  counts(30, 30, 0);
}

TEST_P(EngineRelayTest, UnicastInputToMulticastAndUnicastOutputWithSystemTtl) {
  StartEngine();
  // Input: the relay's own address on in0 (a unicast stream sent to this host).
  Apply({Rule("u1", "in0", "10.10.1.2", 5000,
              {Out("239.2.2.2", 6000, "out0"), Out("10.10.2.2", 7000, "out0")})});
  std::unique_ptr<Receiver> mc, uc;
  Receive("239.2.2.2", 6000, &mc);
  Receive("10.10.2.2", 7000, &uc);
  {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0");
    for (uint64_t i = 0; i < 200; ++i) tx.Send("10.10.1.2", 5000, MakePayload(i, 1, 700));
  }
  auto a = mc->Collect(200), b = uc->Collect(200);
  ASSERT_EQ(a.size(), 200u);
  ASSERT_EQ(b.size(), 200u);
  for (size_t i = 0; i < 200; ++i) {
    EXPECT_EQ(a[i].payload, MakePayload(i, 1, 700));
    EXPECT_EQ(b[i].payload, MakePayload(i, 1, 700));
    EXPECT_EQ(b[i].src, Addr("10.10.2.1"));
    EXPECT_EQ(b[i].ttl, 64);  // unicast default: the system's (net.ipv4.ip_default_ttl)
  }
}

TEST_P(EngineRelayTest, ShardsRunOnTheirCpus) {
  StartEngine({1, 0});
  // Shard threads are named mcr-shard<i>; their affinity is exactly their CPU.
  std::map<std::string, std::string> allowed;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Cpus_allowed_list:", 0) == 0)
        allowed[name] = line.substr(line.find_first_not_of(" \t", 18));
  }
  EXPECT_EQ(allowed["mcr-shard0"], "1");
  EXPECT_EQ(allowed["mcr-shard1"], "0");
  EngineStats st = engine_->Snapshot();
  ASSERT_EQ(st.shards.size(), 2u);
  EXPECT_EQ(st.shards[0].cpu, 1);
  EXPECT_EQ(st.shards[1].cpu, 0);
}

// /proc/self/task/TID of the thread named `name`; empty if there is none.
std::filesystem::path TaskDir(const std::string& name) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string n;
    std::getline(comm, n);
    if (n == name) return task.path();
  }
  return {};
}

// CPU time the thread named `name` has run, from its schedstat; -1 if none.
int64_t ThreadRunNs(const std::string& name) {
  const std::filesystem::path task = TaskDir(name);
  if (task.empty()) return -1;
  std::ifstream sched(task / "schedstat");
  int64_t ns = -1;
  sched >> ns;
  return ns;
}

TEST_P(EngineRelayTest, BusyPollRelaysEverythingAndSleepsOnceTheFeedStops) {
  {
    EngineOptions o = Options();
    o.busy_poll_us = 1'000'001;
    EXPECT_THAT(StartRefusal(o), ::testing::HasSubstr("busy poll 1000001 us"));
  }
  StartEngine({0}, 2000);  // poll 2 ms after each frame
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  constexpr uint64_t kN = 3000;
  {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0");
    for (uint64_t i = 0; i < kN; ++i) {
      tx.Send("239.1.1.1", 5000, MakePayload(i, 1, 1200));
      Pace(i);
    }
  }
  auto got = rx->Collect(kN);
  ASSERT_EQ(got.size(), kN);
  for (uint64_t i = 0; i < kN; ++i)
    ASSERT_EQ(got[i].payload, MakePayload(i, 1, 1200)) << "datagram " << i;
  // The feed has stopped: after its 2 ms of polling the shard must sleep. A shard that kept
  // polling would run the whole half second; a sleeping one runs only its once-a-second tick.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const int64_t before = ThreadRunNs("mcr-shard0");
  ASSERT_GE(before, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t ran = ThreadRunNs("mcr-shard0") - before;
  EXPECT_LT(ran, 50'000'000) << "the shard kept running " << ran << " ns of 500 ms with no feed";
}

// The kernel's struct sched_attr, SCHED_ATTR_SIZE_VER1 (glibc 2.36 has neither it nor wrappers).
struct SchedAttrV1 {
  uint32_t size, policy;
  uint64_t flags;
  int32_t nice;
  uint32_t prio;
  uint64_t runtime, deadline, period;
  uint32_t util_min, util_max;
};

// sched_getattr's view of a thread.
struct SchedView {
  int64_t slice_ns = -1;  // sched_runtime: the fair scheduler's slice on 6.12+
  int nice = 0;
};
SchedView GetSched(pid_t tid) {
  SchedAttrV1 attr{};
  if (syscall(SYS_sched_getattr, tid, &attr, sizeof attr, 0) != 0) return {};
  return {static_cast<int64_t>(attr.runtime), attr.nice};
}
SchedView ThreadSched(const std::string& name) {
  const std::filesystem::path task = TaskDir(name);
  if (task.empty()) return {};
  return GetSched(static_cast<pid_t>(std::stol(task.filename().string())));
}

TEST_P(EngineRelayTest, ShardsAskForTheirSchedulerSliceAndKeepTheirNiceValue) {
  for (uint32_t bad : {50u, 100'001u}) {
    EngineOptions o = Options();
    o.sched_slice_us = bad;
    EXPECT_THAT(StartRefusal(o), ::testing::HasSubstr(absl::StrCat("scheduler slice ", bad, " us")));
  }
  // Does this kernel honour slice requests (EEVDF, 6.12+)? A thread of ours asks for one,
  // keeping its nice value.
  int64_t probe = -1, kernel_default = -1;
  std::thread([&] {
    const SchedView own = GetSched(0);
    kernel_default = own.slice_ns;
    SchedAttrV1 attr{};
    attr.size = sizeof attr;
    attr.policy = SCHED_OTHER;
    attr.nice = own.nice;
    attr.runtime = 300'000;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) == 0) probe = GetSched(0).slice_ns;
  }).join();
  if (probe != 300'000) GTEST_SKIP() << "this kernel has no per-thread scheduler slice";

  // The engine is started from a thread with nice 3: shards inherit it and must keep it.
  auto start = [&](uint32_t slice_us) {
    std::thread([&] {
      ASSERT_EQ(setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 3), 0);
      EngineOptions o = Options();
      o.sched_slice_us = slice_us;
      StartEngine(o);
    }).join();
    ASSERT_NE(engine_, nullptr);
  };
  start(300);
  SchedView v = ThreadSched("mcr-shard0");
  EXPECT_EQ(v.slice_ns, 300'000);
  EXPECT_EQ(v.nice, 3);
  EXPECT_EQ(engine_->Snapshot().shards.at(0).sched_slice_ns, 300'000u);
  {
    NetnsScope in(*rig_, "rly");
    engine_.reset();
  }
  start(0);  // 0: the kernel's default, untouched
  v = ThreadSched("mcr-shard0");
  EXPECT_EQ(v.slice_ns, kernel_default);
  EXPECT_EQ(v.nice, 3);
  EXPECT_EQ(engine_->Snapshot().shards.at(0).sched_slice_ns, static_cast<uint64_t>(kernel_default));
  // The default options leave the kernel's slice.
  EXPECT_EQ(EngineOptions{}.sched_slice_us, 0u);
}

// A local sender's UDP GSO run crosses a veth as one frame unless the veth segments it (the rig
// turns that off; veth's default leaves it on), and receive offload merges datagrams the same
// way. Such a frame's IP and UDP lengths cover all of its datagrams: relayed as one, receivers
// got 40 KB datagrams glued together. The relay splits it back into the sender's datagrams,
// sizes and order intact. Recv mode's buffers hold one MTU-sized frame: a larger merged frame
// is counted as offload_truncated (nothing glued leaves), one that fits is split too.
TEST_P(EngineRelayTest, DatagramsMergedIntoOneFrameAreRelayedOneByOne) {
  // Before 6.2 the kernel cannot describe such a frame to the capture and drops it, which
  // AFrameTheKernelCannotDescribeIsCountedAndSkipped covers with a frame no kernel describes.
  if (!KernelAtLeast(6, 2)) GTEST_SKIP() << "Linux 6.2 or newer describes UDP GSO frames to a capture";
  rig_->Exec("snd", "ethtool -K veth0 tx-udp-segmentation on >/dev/null");
  StartEngine();
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  // Big runs: 9 datagrams of 1000 bytes and a last one of 400 (9,400 bytes, beyond a 1500-byte
  // frame). Small runs: 3 datagrams of 300 bytes (fit a recv-mode buffer).
  constexpr int kBig = 20, kSmall = 10;
  std::vector<std::vector<uint8_t>> big_sent, small_sent;
  {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0");
    uint64_t seq = 0;
    auto run = [&](int count, int size, int last, std::vector<std::vector<uint8_t>>* sent) {
      std::vector<uint8_t> burst;
      for (int k = 0; k < count; ++k) {
        sent->push_back(MakePayload(seq++, 1, k + 1 == count ? last : size));
        burst.insert(burst.end(), sent->back().begin(), sent->back().end());
      }
      tx.SetGso(size);
      tx.Send("239.1.1.1", 5000, burst);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    };
    for (int b = 0; b < kBig; ++b) run(10, 1000, 400, &big_sent);
    for (int b = 0; b < kSmall; ++b) run(3, 300, 300, &small_sent);
  }
  const bool ring = GetParam() == IngressMode::kRing;
  std::vector<std::vector<uint8_t>> expect = small_sent;
  if (ring) expect.insert(expect.begin(), big_sent.begin(), big_sent.end());
  const auto got = rx->Collect(expect.size() + 1, 500);  // one more: nothing else may arrive
  ASSERT_EQ(got.size(), expect.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i].payload, expect[i]) << "datagram " << i << " of " << expect.size();

  const uint64_t frames = kBig + kSmall;
  const EngineStats st = WaitStats(*engine_, [&](const EngineStats& s) {
    return s.shards.size() == 1 && s.shards[0].received >= expect.size() + (ring ? 0 : kBig);
  });
  ASSERT_EQ(st.shards.size(), 1u);
  const ShardStats& sh = st.shards[0];
  // Each run arrived as one frame: had the veth split them, this test would prove nothing.
  EXPECT_EQ(sh.offload_frames, ring ? frames : kSmall);
  EXPECT_EQ(FindRule(st, "r1")->packets, expect.size());
  EXPECT_EQ(Drops(st, "offload_truncated"), ring ? 0u : uint64_t{kBig});
  // A split frame counts as its datagrams: received = relayed + unmatched + dropped.
  EXPECT_EQ(sh.received, expect.size() + (ring ? 0 : kBig));
}

// The kernel cannot describe every offload frame in the virtio_net_hdr the capture asks for (a
// UDP GSO frame before Linux 6.2; an old-style UFO frame from a tap, on any kernel). It then
// drops the frame — and in the ring it has already reserved the frame's slot, which it leaves
// without TP_STATUS_USER and with whatever tp_mac and tp_snaplen the slot held before. Read as
// a frame, that was a spurious malformed drop at best and a stale or out-of-bounds frame at
// worst. Such a frame must be counted as the kernel's drop (ring) or a socket error (recv),
// and the frames around it relayed.
TEST_P(EngineRelayTest, AFrameTheKernelCannotDescribeIsCountedAndSkipped) {
  int tap = -1;
  std::unique_ptr<RawSender> builder;
  ASSERT_NO_FATAL_FAILURE(
      TunInput("tap0", "tap vnet_hdr", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, &tap, &builder));
  absl::Cleanup close_tap = [tap] { close(tap); };
  StartEngine();
  Apply({Rule("t", "tap0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);
  // What the tap's reader writes: a virtio_net_hdr, then the frame. UFO: one 3,000-byte
  // datagram that the stack would fragment at 1,000 bytes.
  auto write_frame = [&](uint8_t gso_type, uint16_t gso_size, const std::vector<uint8_t>& f) {
    std::vector<uint8_t> buf = {0, gso_type, 42, 0, static_cast<uint8_t>(gso_size & 0xff),
                                static_cast<uint8_t>(gso_size >> 8), 0, 0, 0, 0};
    buf.insert(buf.end(), f.begin(), f.end());
    ASSERT_EQ(write(tap, buf.data(), buf.size()), static_cast<ssize_t>(buf.size()))
        << strerror(errno);
  };
  constexpr uint64_t kFrames = 6;
  for (uint64_t i = 0; i < kFrames; ++i) {
    write_frame(3, 1000, builder->Frame("10.10.9.1", "239.1.1.1", 5000, MakePayload(100 + i, 1, 3000)));
    write_frame(0, 0, builder->Frame("10.10.9.1", "239.1.1.1", 5000, MakePayload(i, 1, 400)));
  }
  const auto got = rx->Collect(kFrames + 1, 500);
  ASSERT_EQ(got.size(), kFrames);
  for (uint64_t i = 0; i < kFrames; ++i) EXPECT_EQ(got[i].payload, MakePayload(i, 1, 400)) << i;

  const bool ring = GetParam() == IngressMode::kRing;
  auto lost = [&](const EngineStats& s) {
    uint64_t n = 0;
    for (const auto& [name, v] : ring ? s.shards[0].kernel_drops : s.shards[0].socket_errors)
      if (name == "tap0") n += v;
    return n;
  };
  const EngineStats st = WaitStats(*engine_, [&](const EngineStats& s) { return lost(s) >= kFrames; });
  EXPECT_EQ(lost(st), kFrames) << (ring ? "kernel drops" : "socket errors");
  uint64_t malformed = 0;
  for (const auto& [reason, n] : st.shards[0].drops) malformed += n;
  EXPECT_EQ(malformed, 0u) << "an abandoned ring slot was read as a frame";
  EXPECT_EQ(st.shards[0].received, kFrames);
  EXPECT_EQ(FindRule(st, "t")->packets, kFrames);
}

// Behaviour of the TPACKET_V3 ring alone (recv mode has none).
class EngineRingTest : public EngineRelayTest {};

TEST_P(EngineRingTest, RingDropsAreCountedWhileTheRingOverflowsNotAtTheNextTick) {
  EngineOptions o = Options();
  o.ring_block_size = 16 * 1024;  // ~14 frames of 1000-byte payload per block
  o.ring_block_count = 2;
  StartEngine(o);
  Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
  constexpr int kBursts = 20, kSegments = 64, kTail = 10;
  {
    NetnsScope in(*rig_, "snd");
    Sender tx("veth0");
    constexpr int kGso = 1000;
    {
      // Each burst is one UDP GSO send that the veth splits into 64 frames, delivered to the
      // capture ring in one softirq run on this CPU. Pinned to the shard's CPU, nothing drains
      // the 2-block ring during it: every burst overflows it.
      CpuPin pin(0);
      ASSERT_TRUE(pin.ok());
      tx.SetGso(kGso);
      const std::vector<uint8_t> burst(size_t{kSegments} * kGso, 0x5a);
      for (int b = 0; b < kBursts; ++b) {
        tx.Send("239.1.1.1", 5000, burst);
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
    }
    // Let the shard catch up first: a tail datagram that meets a still-full ring is itself a
    // drop, and a drop after the last closed block is only read at the tick (a loaded ASan run
    // once took 999 ms that way). `received` standing still for 100 ms means the ring is empty.
    {
      uint64_t last = engine_->Snapshot().shards[0].received;
      auto still_since = std::chrono::steady_clock::now();
      const auto give_up = still_since + std::chrono::seconds(5);
      while (std::chrono::steady_clock::now() - still_since < std::chrono::milliseconds(100) &&
             std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        const uint64_t now = engine_->Snapshot().shards[0].received;
        if (now != last) last = now, still_since = std::chrono::steady_clock::now();
      }
    }
    // A few spaced datagrams after the bursts: the blocks they fill close with the kernel's
    // losing mark if drops are still unread.
    tx.SetGso(0);
    const std::vector<uint8_t> one(kGso, 0x5a);
    for (int t = 0; t < kTail; ++t) {
      tx.Send("239.1.1.1", 5000, one);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  // Every frame is either taken by the shard or counted as a kernel drop, and the count must be
  // complete as soon as the shard has handled the last frame: well inside its 1 s tick, which
  // is where the count used to come from (a slow, loaded machine gets 200 ms).
  const uint64_t sent = uint64_t{kBursts} * kSegments + kTail;
  const auto tail_end = std::chrono::steady_clock::now();
  uint64_t received = 0, drops = 0;
  for (;;) {
    const EngineStats st = engine_->Snapshot();
    ASSERT_EQ(st.shards.size(), 1u);
    received = st.shards[0].received;
    drops = 0;
    for (const auto& [name, n] : st.shards[0].kernel_drops)
      if (name == "in0") drops += n;
    if (received + drops >= sent || std::chrono::steady_clock::now() - tail_end > std::chrono::seconds(2)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto took = std::chrono::steady_clock::now() - tail_end;
  EXPECT_GT(drops, 0u) << "the bursts did not overflow a 2-block ring";
  EXPECT_EQ(received + drops, sent) << "received " << received << ", kernel drops " << drops;
  EXPECT_LT(took, std::chrono::milliseconds(200)) << "the drop count was complete only after "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                         << " ms (the tick's, not the ring's)";
}

// A block goes back to the kernel only once the sends that read it completed. Sends are queued on
// the shard's io_uring and leave with its next io_uring_enter; a block handed back at the end of
// the pass, before that, would be refilled by a flood from another CPU while the queued send
// still points into it, and the relayed datagrams would carry the new frames' bytes. A ring kept
// full by a flood is refilled as soon as a block is free: the kernel waits at the oldest block.
// Both ring sizes: 16 blocks queue their sends on the io_uring, 2 send directly (Shard::Loop).
TEST_P(EngineRingTest, ABlockIsRefilledOnlyAfterItsSendsCompleted) {
  for (const uint32_t block_count : {16u, 2u}) {
    SCOPED_TRACE(absl::StrCat(block_count, " blocks"));
    engine_.reset();
    EngineOptions o = Options({0});
    o.ring_block_size = 16 * 1024;  // ~14 frames of 1000-byte payload per block
    o.ring_block_count = block_count;
    StartEngine(o);
    Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
    std::unique_ptr<Receiver> rx;
    Receive("239.2.2.2", 6000, &rx);
    constexpr int kBursts = 600, kSegments = 64, kSize = 1000;
    {
      NetnsScope in(*rig_, "snd");
      Sender tx("veth0");
      tx.SetGso(kSize);
      CpuPin pin(1);  // the flood's softirq fills the ring from the other CPU while the shard runs
      ASSERT_TRUE(pin.ok());
      uint64_t seq = 0;
      for (int b = 0; b < kBursts; ++b) {
        tx.Send("239.1.1.1", 5000, Burst(&seq, kSegments, kSize));
      }
    }
    const auto got = rx->Collect(size_t{kBursts} * kSegments, 500);
    ASSERT_GT(got.size(), 100u) << "too little got through to tell";
    uint64_t last = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].payload.size(), size_t{kSize}) << "datagram " << i;
      uint64_t seq;
      memcpy(&seq, got[i].payload.data(), 8);
      ASSERT_EQ(got[i].payload, MakePayload(seq, 1, kSize))
          << "datagram " << i << " (seq " << seq << ") carries another frame's bytes";
      if (i > 0) {
        ASSERT_GT(seq, last) << "datagram " << i << " out of order or repeated";
      }
      last = seq;
    }
  }
}

// A shard that finds several closed blocks sends each output's datagrams from all of them
// together: a backlog makes it cheaper per packet, not dearer. Each burst below lands in the
// ring as ~5 blocks before the shard can run (the sender is pinned to the shard's CPU and the
// veth delivers the whole burst in one softirq run); sent block by block that is 5 send calls
// per burst, in groups of 4 blocks 2. Every datagram still arrives once and in order, and a
// 2-block ring (where a group is one block) relays everything too.
TEST_P(EngineRingTest, AShardBehindSendsSeveralBlocksPerCallAndKeepsOrder) {
  for (const uint32_t block_count : {64u, 2u}) {
    SCOPED_TRACE(absl::StrCat(block_count, " blocks"));
    engine_.reset();
    EngineOptions o = Options();
    o.ring_block_size = 16 * 1024;  // ~14 frames of 1000-byte payload per block
    o.ring_block_count = block_count;
    StartEngine(o);
    Apply({Rule("r1", "in0", "239.1.1.1", 5000, {Out("239.2.2.2", 6000, "out0")})});
    std::unique_ptr<Receiver> rx;
    Receive("239.2.2.2", 6000, &rx);
    // A 2-block ring overflows on a 64-datagram burst; bursts of 12 fit one block.
    const int segments = block_count == 2 ? 12 : 64;
    constexpr int kBursts = 20, kSize = 1000;
    {
      NetnsScope in(*rig_, "snd");
      Sender tx("veth0");
      tx.SetGso(kSize);
      CpuPin pin(0);
      ASSERT_TRUE(pin.ok());
      uint64_t seq = 0;
      for (int b = 0; b < kBursts; ++b) {
        tx.Send("239.1.1.1", 5000, Burst(&seq, segments, kSize));
        // Long enough for the burst's last block to time out (1 ms, on a tick of up to 4 ms)
        // before the next burst: each burst's blocks are its own.
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    const size_t sent = size_t{kBursts} * segments;
    const auto got = rx->Collect(sent);
    ASSERT_EQ(got.size(), sent);
    for (size_t i = 0; i < got.size(); ++i) {
      uint64_t seq;
      memcpy(&seq, got[i].payload.data(), 8);
      ASSERT_EQ(seq, i) << "datagram " << i << " out of order or repeated";
      ASSERT_EQ(got[i].payload, MakePayload(i, 1, kSize)) << "datagram " << i << " corrupted";
    }
    // The shard publishes its counters after its last send, possibly after the receiver has
    // everything: wait for them.
    const EngineStats st = WaitStats(*engine_, [&](const EngineStats& s) {
      return s.shards.size() == 1 && s.shards[0].received >= sent;
    });
    ASSERT_EQ(st.shards.size(), 1u);
    const uint64_t calls = st.shards[0].send_calls;
    EXPECT_GE(calls, (sent + 63) / 64) << "a send call carries at most 64 datagrams";
    if (block_count == 64) {
      // Block by block this is ~5 per burst; a pass at a time ~2. Allow a wake-up between
      // blocks now and then.
      EXPECT_LE(calls, uint64_t{kBursts} * 3)
          << calls << " send calls for " << kBursts << " bursts of ~5 blocks each";
    }
  }
}

// One input flooded past what its shard can relay must not take the shard from its other inputs,
// from rule changes, or from counting the flood's drops.
TEST_P(EngineRelayTest, AnOverloadedInputLeavesTheShardToItsOtherInputsAndCommands) {
  rig_->Link("snd", "veth1", "10.10.3.1/24", "rly", "in1", "10.10.3.2/24");
  // One shard, on CPU 0. Ring mode: many small blocks, so that the quiet input's ring holds a
  // second of its stream (one frame per block at its rate) and a busy machine running other
  // tests cannot overflow it; what must hold is that the shard comes back to it at all.
  EngineOptions o = Options();
  o.ring_block_size = 16 * 1024;
  o.ring_block_count = 1024;
  StartEngine(o);
  std::vector<OutputSpec> many;  // 16 outputs nobody listens to: ~10 µs of sends per frame
  for (uint16_t k = 0; k < 16; ++k) many.push_back(Out("239.3.3.3", 7000 + k, "out0"));
  Apply({Rule("flooded", "in0", "239.1.1.1", 5000, many),
         Rule("quiet", "in1", "239.1.1.2", 5000, {Out("239.2.2.2", 6000, "out0")})});
  std::unique_ptr<Receiver> rx;
  Receive("239.2.2.2", 6000, &rx);

  // The flood: 64-datagram GSO sends from CPU 1 for up to 4 s, far more than the shard relays.
  std::atomic<bool> flooding{true}, stop{false};
  std::thread flood([&] {
    NetnsScope in(*rig_, "snd");
    const CpuPin pin(1);
    Sender tx("veth0");
    tx.SetGso(1000);
    const std::vector<uint8_t> burst(64 * 1000, 0x5a);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(4);
    while (!stop && std::chrono::steady_clock::now() < end)
      (void)tx.TrySend("239.1.1.1", 5000, burst);  // a full device queue refuses some
    flooding = false;
  });
  absl::Cleanup join = [&] {
    stop = true;
    flood.join();
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(flooding);

  // A rule change is served during the flood, not after it.
  Apply({Rule("flooded", "in0", "239.1.1.1", 5000, many),
         Rule("quiet", "in1", "239.1.1.2", 5000, {Out("239.2.2.2", 6000, "out0")}),
         Rule("added", "in1", "239.1.1.3", 5000, {Out("239.2.2.3", 6000, "out0")})});
  EXPECT_TRUE(flooding) << "ApplyRules waited for the flood to end";
  // The other input's stream gets through whole. Sent from CPU 0: a veth delivers in the
  // sender's CPU backlog (1000 frames), which the flood keeps full on CPU 1.
  constexpr uint64_t kQuiet = 300;
  std::thread([&] {
    const CpuPin pin(0);
    NetnsScope in(*rig_, "snd");
    Sender tx("veth1");
    for (uint64_t i = 0; i < kQuiet; ++i) {
      tx.Send("239.1.1.2", 5000, MakePayload(i, 2, 200));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }).join();
  auto got = rx->Collect(kQuiet);
  if (got.size() != kQuiet) {
    const EngineStats now = engine_->Snapshot();
    std::string drops;
    for (const auto& [name, n] : now.shards[0].kernel_drops) drops += " " + name + "=" + std::to_string(n);
    ADD_FAILURE() << "the quiet input lost datagrams to the flooded one: " << got.size() << " of "
                  << kQuiet << " arrived; the rule relayed " << FindRule(now, "quiet")->packets
                  << "; kernel drops" << drops;
  }
  // The flood's drops are counted while it lasts.
  const EngineStats st = WaitStats(*engine_, [](const EngineStats& s) {
    for (const auto& [name, n] : s.shards[0].kernel_drops)
      if (name == "in0" && n > 0) return true;
    return false;
  });
  uint64_t drops = 0;
  for (const auto& [name, n] : st.shards[0].kernel_drops)
    if (name == "in0") drops += n;
  EXPECT_GT(drops, 0u);
  EXPECT_TRUE(flooding) << "the checks above outlasted the flood: they prove nothing";
}

// Every behaviour holds for both ingress mechanisms.
INSTANTIATE_TEST_SUITE_P(Ingress, EngineRelayTest,
                         ::testing::Values(IngressMode::kRing, IngressMode::kRecv),
                         [](const ::testing::TestParamInfo<IngressMode>& p) {
                           return p.param == IngressMode::kRing ? "ring" : "recv";
                         });

INSTANTIATE_TEST_SUITE_P(Ingress, EngineRingTest, ::testing::Values(IngressMode::kRing),
                         [](const ::testing::TestParamInfo<IngressMode>&) { return "ring"; });

}  // namespace
}  // namespace mcr::engine
