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
#include "tests/rig/traffic.h"

extern char** environ;

namespace mcr::metrics {
namespace {

using mcr::testing::Addr;
using mcr::testing::NetnsRig;
using mcr::testing::NetnsScope;
using mcr::testing::Pace;
using mcr::testing::ParseExposition;
using mcr::testing::RawSender;
using mcr::testing::Receiver;
using mcr::testing::Sender;
using mcr::testing::Series;
using mcr::testing::SumFamily;
using Samples = std::map<std::string, double>;

// Sends `count` datagrams of `size` bytes to a group through a plain UDP socket, paced so that
// bursts stay below the veth backlog (netdev_max_backlog, 1000) and the ring.
void SendDatagrams(const char* ifname, const char* group, uint16_t port, size_t count,
                   size_t size) {
  Sender tx(ifname);
  const std::vector<uint8_t> payload(size, 0x5a);
  for (size_t i = 0; i < count; ++i) {
    tx.Send(group, port, payload);
    Pace(i);
  }
}

// A well-formed frame from the sender's own address, `size` payload bytes.
std::vector<uint8_t> GoodFrame(RawSender& raw, const char* group, uint16_t port, size_t size) {
  return raw.Frame("10.10.1.1", group, port, std::vector<uint8_t>(size, 0xa5));
}

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
    const auto good = GoodFrame(raw, "239.1.1.1", 5000, 100);
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
    for (size_t i = 0; i < kUnmatched; ++i) raw.Send(GoodFrame(raw, "239.1.1.1", 5999, 100));
    SendDatagrams("veth0", "239.1.1.1", 5000, kN, kSize);
  }
  size_t injected = 0;
  for (const auto& [reason, n] : malformed) injected += n;

  EXPECT_EQ(rx[0]->Collect(kN).size(), kN);
  EXPECT_EQ(rx[1]->Collect(kN).size(), kN);
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
