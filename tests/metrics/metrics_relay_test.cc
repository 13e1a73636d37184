// The exporter against a real engine relaying real traffic in network namespaces
// (tests/rig/netns_fixture.h): the scraped counters are right to the packet and never decrease,
// and a real Prometheus server (Debian's `prometheus`) scrapes the endpoint and answers queries
// about it. Skips without root or namespaces, and the Prometheus test without the binary.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "gtest/gtest.h"
#include "metrics/metrics_server.h"
#include "nlohmann/json.hpp"
#include "tests/metrics/scrape_client.h"
#include "tests/rig/netns_fixture.h"

extern char** environ;

namespace mcr::metrics {
namespace {

using mcr::testing::NetnsRig;
using mcr::testing::NetnsScope;
using mcr::testing::ParseExposition;
using mcr::testing::Series;
using mcr::testing::SumFamily;
using Samples = std::map<std::string, double>;

uint32_t Addr(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

// Joins a group on an interface in the caller's namespace and counts what arrives.
class Receiver {
 public:
  Receiver(const char* group, uint16_t port, const char* ifname) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const int one = 1, buf = 16 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = Addr(group);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << strerror(errno);
    ip_mreqn m{};
    m.imr_multiaddr.s_addr = Addr(group);
    m.imr_ifindex = static_cast<int>(if_nametoindex(ifname));
    EXPECT_EQ(setsockopt(fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m), 0) << strerror(errno);
  }
  ~Receiver() { close(fd_); }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Datagrams received until `n` arrived or `idle_ms` passed without one.
  size_t Count(size_t n, int idle_ms = 1500) {
    size_t got = 0;
    char buf[9000];
    for (pollfd p{fd_, POLLIN, 0}; got < n && poll(&p, 1, idle_ms) > 0;)
      if (recv(fd_, buf, sizeof buf, 0) >= 0) ++got;
    return got;
  }

 private:
  int fd_ = -1;
};

// Sends IPv4/UDP datagrams to a group through a plain UDP socket.
void SendDatagrams(const char* ifname, const char* group, uint16_t port, size_t count,
                   size_t size) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ip_mreqn m{};
  m.imr_ifindex = static_cast<int>(if_nametoindex(ifname));
  setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = Addr(group);
  const std::vector<uint8_t> payload(size, 0x5a);
  for (size_t i = 0; i < count; ++i) {
    ASSERT_EQ(sendto(fd, payload.data(), size, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa),
              static_cast<ssize_t>(size))
        << strerror(errno);
    // Bursts stay well below the veth backlog (netdev_max_backlog, 1000) and the ring.
    if (i % 64 == 63) std::this_thread::sleep_for(std::chrono::microseconds(700));
  }
  close(fd);
}

// Hand-built Ethernet frames through AF_PACKET, for shapes a UDP socket cannot send.
class RawSender {
 public:
  explicit RawSender(const char* ifname) {
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    ifindex_ = static_cast<int>(if_nametoindex(ifname));
    ifreq ifr{};
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ioctl(fd_, SIOCGIFHWADDR, &ifr);
    memcpy(src_mac_, ifr.ifr_hwaddr.sa_data, 6);
  }
  ~RawSender() { close(fd_); }
  RawSender(const RawSender&) = delete;
  RawSender& operator=(const RawSender&) = delete;

  // A well-formed IPv4/UDP frame from 10.10.1.1 to `group`:`port` with `size` payload bytes.
  std::vector<uint8_t> Frame(const char* group, uint16_t port, size_t size) const {
    std::vector<uint8_t> f(14 + 20 + 8 + size, 0xa5);
    const uint32_t d = Addr(group);
    const auto* db = reinterpret_cast<const uint8_t*>(&d);
    const uint8_t mac[6] = {0x01, 0x00, 0x5e, static_cast<uint8_t>(db[1] & 0x7f), db[2], db[3]};
    memcpy(f.data(), mac, 6);
    memcpy(f.data() + 6, src_mac_, 6);
    f[12] = 0x08;
    f[13] = 0x00;
    auto* ip = reinterpret_cast<iphdr*>(f.data() + 14);
    ip->version = 4;
    ip->ihl = 5;
    ip->tos = 0;
    ip->tot_len = htons(static_cast<uint16_t>(20 + 8 + size));
    ip->id = 0;
    ip->frag_off = 0;
    ip->ttl = 16;
    ip->protocol = IPPROTO_UDP;
    ip->check = 0;  // checksums are neither verified nor required by the relay
    ip->saddr = Addr("10.10.1.1");
    ip->daddr = d;
    auto* udp = reinterpret_cast<udphdr*>(f.data() + 34);
    udp->source = htons(4000);
    udp->dest = htons(port);
    udp->len = htons(static_cast<uint16_t>(8 + size));
    udp->check = 0;
    return f;
  }
  void Send(const std::vector<uint8_t>& frame) {
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_ifindex = ifindex_;
    ll.sll_halen = 6;
    memcpy(ll.sll_addr, frame.data(), 6);
    ASSERT_EQ(
        sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&ll), sizeof ll),
        static_cast<ssize_t>(frame.size()))
        << strerror(errno);
  }

 private:
  int fd_ = -1;
  int ifindex_ = 0;
  uint8_t src_mac_[6] = {};
};

engine::OutputSpec Out(const char* dst, uint16_t port, const char* ifname) {
  engine::OutputSpec o;
  o.dst_addr = Addr(dst);
  o.dst_port = port;
  o.interface = ifname;
  return o;
}

// The sample of `series`, or NaN (which equals nothing) and a test failure if it is missing.
double At(const Samples& samples, const std::string& series) {
  const auto it = samples.find(series);
  if (it != samples.end()) return it->second;
  ADD_FAILURE() << "no series " << series;
  return std::nan("");
}

const std::vector<std::pair<std::string, std::string>> kRuleLabels{{"rule", "r1"},
                                                                   {"input_interface", "in0"},
                                                                   {"group", "239.1.1.1"},
                                                                   {"port", "5000"},
                                                                   {"source", ""}};
const char* const kOutputs[] = {"239.2.2.2:6000@out0", "239.2.2.3:6002@out0"};

class MetricsRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = NetnsRig::Unavailable(); !why.empty()) GTEST_SKIP() << why;
    rig_ =
        std::make_unique<NetnsRig>(::testing::UnitTest::GetInstance()->current_test_info()->name());
    rig_->StandardTopology();
    NetnsScope in(*rig_, "rly");
    engine::EngineOptions o;
    // Two shards where the machine allows, so that shard counters must be summed.
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    sched_getaffinity(0, sizeof allowed, &allowed);
    o.cpus = CPU_ISSET(0, &allowed) && CPU_ISSET(1, &allowed) ? std::vector<int>{0, 1}
                                                              : std::vector<int>{};
    auto e = engine::Engine::Start(o);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
    engine::RuleSpec r;
    r.id = "r1";
    r.input_interface = "in0";
    r.input_group = Addr("239.1.1.1");
    r.input_port = 5000;
    r.outputs = {Out("239.2.2.2", 6000, "out0"), Out("239.2.2.3", 6002, "out0")};
    ASSERT_TRUE(engine_->ApplyRules({r}).ok());
    // Created inside the namespace: the listening socket lives there, on its loopback.
    auto s = MetricsServer::Start("127.0.0.1:0", *engine_, "test");
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  void TearDown() override {
    server_.reset();  // before the engine it reads
    if (engine_) {
      NetnsScope in(*rig_, "rly");
      engine_.reset();
    }
    rig_.reset();
  }

  // One scrape of /metrics from inside the relay's namespace; empty on failure.
  Samples Scrape() const {
    NetnsScope in(*rig_, "rly");
    const auto r = mcr::testing::HttpGet(server_->port(), "/metrics");
    EXPECT_EQ(r.status, 200);
    return ParseExposition(r.body);
  }

  // Scrapes until `done` holds or 5 s pass; returns the last scrape. Counters are published by
  // a shard after each ring block, a little after the traffic arrived.
  Samples ScrapeUntil(const std::function<bool(const Samples&)>& done) const {
    Samples s = Scrape();
    for (int i = 0; i < 250 && !done(s); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      s = Scrape();
    }
    return s;
  }

  std::unique_ptr<NetnsRig> rig_;
  engine::EnginePtr engine_;
  MetricsServerPtr server_;
};

TEST_F(MetricsRelayTest, CountersAreExactToThePacketAndNeverDecrease) {
  constexpr size_t kN = 3000, kSize = 1000, kUnmatched = 3;
  std::unique_ptr<Receiver> rx[2];
  {
    NetnsScope in(*rig_, "rcv");
    rx[0] = std::make_unique<Receiver>("239.2.2.2", 6000, "veth0");
    rx[1] = std::make_unique<Receiver>("239.2.2.3", 6002, "veth0");
  }

  // Scrapes continuously while traffic flows; every counter must be >= its previous value.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> decreases;
  size_t scrapes = 0;
  std::thread scraper([&] {
    Samples prev;
    while (!stop.load()) {
      Samples cur = Scrape();
      std::lock_guard lock(mu);
      ++scrapes;
      for (const auto& [series, v] : cur) {
        auto it = prev.find(series);
        if (series.find("_total") != std::string::npos && it != prev.end() && v < it->second)
          decreases.push_back(series + ": " + std::to_string(it->second) + " -> " +
                              std::to_string(v));
      }
      prev = std::move(cur);
    }
  });

  std::map<std::string, size_t> malformed;  // parse-drop reason -> frames injected
  {
    NetnsScope in(*rig_, "snd");
    RawSender raw("veth0");
    const auto good = raw.Frame("239.1.1.1", 5000, 100);
    auto frag = good;
    frag[14 + 6] = 0x20;  // more-fragments flag
    raw.Send(frag);
    ++malformed["fragment"];
    auto bad_ihl = good;
    bad_ihl[14] = 0x44;  // header length 4 words
    raw.Send(bad_ihl);
    ++malformed["bad_ihl"];
    auto bad_udp_len = good;
    bad_udp_len[34 + 4] = 0xff;  // UDP length beyond the datagram
    raw.Send(bad_udp_len);
    ++malformed["bad_udp_length"];
    auto truncated = good;
    truncated.resize(14 + 20 + 4);  // the IP total length promises more than the frame holds
    raw.Send(truncated);
    ++malformed["truncated_ip"];
    for (size_t i = 0; i < kUnmatched; ++i) raw.Send(raw.Frame("239.1.1.1", 5999, 100));
    SendDatagrams("veth0", "239.1.1.1", 5000, kN, kSize);
  }
  size_t injected = 0;
  for (const auto& [reason, n] : malformed) injected += n;

  EXPECT_EQ(rx[0]->Count(kN), kN);
  EXPECT_EQ(rx[1]->Count(kN), kN);
  Samples s = ScrapeUntil([&](const Samples& x) {
    const auto value = [&](const std::string& series) {
      return x.contains(series) ? x.at(series) : -1;
    };
    // The interfaces too: a new veth's operational state turns up only when the kernel's
    // linkwatch runs, up to a second or so after the link came up.
    return value(Series("mcr_rule_received_packets_total", kRuleLabels)) == kN &&
           SumFamily(x, "mcr_shard_received_packets_total") == kN + kUnmatched + injected &&
           SumFamily(x, "mcr_output_sent_packets_total") == 2 * kN &&
           value(Series("mcr_interface_up", {{"interface", "in0"}})) == 1 &&
           value(Series("mcr_interface_up", {{"interface", "out0"}})) == 1;
  });
  stop = true;
  scraper.join();
  {
    std::lock_guard lock(mu);
    EXPECT_GT(scrapes, 5u) << "the scraper should have overlapped the traffic";
    EXPECT_TRUE(decreases.empty()) << decreases.size() << " decreases, first: " << decreases[0];
  }

  EXPECT_EQ(At(s, Series("mcr_rule_received_packets_total", kRuleLabels)), kN);
  EXPECT_EQ(At(s, Series("mcr_rule_received_bytes_total", kRuleLabels)), kN * kSize);
  for (const char* out : kOutputs) {
    EXPECT_EQ(At(s, Series("mcr_output_sent_packets_total", {{"rule", "r1"}, {"output", out}})), kN)
        << out;
    EXPECT_EQ(At(s, Series("mcr_output_sent_bytes_total", {{"rule", "r1"}, {"output", out}})),
              kN * kSize)
        << out;
  }
  EXPECT_EQ(SumFamily(s, "mcr_output_send_errors_total"), 0);
  EXPECT_EQ(SumFamily(s, "mcr_shard_received_packets_total"), kN + kUnmatched + injected);
  EXPECT_EQ(SumFamily(s, "mcr_shard_unmatched_packets_total"), kUnmatched);
  EXPECT_EQ(SumFamily(s, "mcr_shard_steering_mismatch_packets_total"), 0);
  EXPECT_EQ(SumFamily(s, "mcr_interface_kernel_drops_total"), 0);
  // Drops by reason, summed over shards: exactly the frames injected, nothing else.
  std::map<std::string, double> drops;
  for (const auto& [series, v] : s) {
    if (series.rfind("mcr_shard_dropped_packets_total{", 0) != 0) continue;
    const size_t at = series.find("reason=\"") + 8;
    drops[series.substr(at, series.find('"', at) - at)] += v;
  }
  EXPECT_GT(drops.size(), malformed.size());  // every reason is exported, zeros included
  for (const auto& [reason, v] : drops) {
    const auto it = malformed.find(reason);
    EXPECT_EQ(v, it == malformed.end() ? 0 : it->second) << reason;
  }
  EXPECT_EQ(At(s, "mcr_rules"), 1);
  EXPECT_EQ(At(s, "mcr_shards"), static_cast<double>(engine_->shard_count()));
  EXPECT_EQ(At(s, Series("mcr_interface_up", {{"interface", "in0"}})), 1);
  EXPECT_EQ(At(s, Series("mcr_interface_up", {{"interface", "out0"}})), 1);

  // Removing the rule removes its series.
  {
    NetnsScope in(*rig_, "rly");
    ASSERT_TRUE(engine_->ApplyRules({}).ok());
  }
  const Samples after = Scrape();
  EXPECT_EQ(At(after, "mcr_rules"), 0);
  EXPECT_EQ(SumFamily(after, "mcr_rule_received_packets_total"), 0);
  for (const auto& [series, v] : after) EXPECT_EQ(series.find("rule=\"r1\""), std::string::npos);
}

// A child process started with posix_spawn (safe in a multithreaded process, unlike fork),
// terminated and reaped on destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '_' || c == '-' || c == '.') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// A TCP port nobody listens on in the calling thread's namespace (the test's private one, where
// nothing else competes for it between this call and its use).
uint16_t FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  close(fd);
  return ntohs(sa.sin_port);
}

TEST_F(MetricsRelayTest, PrometheusServerScrapesTheEndpoint) {
  if (mcr::testing::RunShell("command -v prometheus").first != 0)
    GTEST_SKIP() << "prometheus (Debian package 'prometheus') not installed";
  constexpr size_t kN = 500;
  {
    NetnsScope in(*rig_, "snd");
    SendDatagrams("veth0", "239.1.1.1", 5000, kN, 200);
  }

  char tmpl[] = "/tmp/mcr-prometheus-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = tmpl;
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  std::ofstream(dir / "prometheus.yml")
      << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
         "scrape_configs:\n"
         "  - job_name: mcr\n"
         "    static_configs: [{targets: ['127.0.0.1:"
      << server_->port() << "']}]\n";
  uint16_t port;
  {
    NetnsScope in(*rig_, "rly");
    port = FreePort();
  }
  Child prometheus({"ip", "netns", "exec", rig_->Name("rly"), "prometheus",
                    "--config.file=" + (dir / "prometheus.yml").string(),
                    "--storage.tsdb.path=" + (dir / "data").string(),
                    "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                   (dir / "prometheus.log").string());

  // Value of the first result of an instant query, or "" if none (yet).
  auto query = [&](const std::string& promql) -> std::string {
    NetnsScope in(*rig_, "rly");
    const auto r = mcr::testing::HttpGet(port, "/api/v1/query?query=" + UrlEncode(promql));
    if (r.status != 200) return "";
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return "";
    const auto& result = j["data"]["result"];
    return result.empty() ? "" : result[0]["value"][1].get<std::string>();
  };
  const std::string counter = "mcr_rule_received_packets_total{rule=\"r1\"}";
  std::string up, value;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && prometheus.running()) {
    up = query("up{job=\"mcr\"}");
    value = query(counter);
    if (up == "1" && value == std::to_string(kN)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  std::ifstream log(dir / "prometheus.log");
  const std::string log_text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_EQ(up, "1") << "prometheus log:\n" << log_text;
  EXPECT_EQ(value, std::to_string(kN)) << "prometheus log:\n" << log_text;
  EXPECT_EQ(query("sum(mcr_output_sent_packets_total{rule=\"r1\"})"), std::to_string(2 * kN));
}

}  // namespace
}  // namespace mcr::metrics
