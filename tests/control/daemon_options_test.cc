#include "control/daemon_options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mcr::control {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Parses `args` as `mcrd supervisor` flags; returns the CLI11 error text or "".
std::string Parse(std::vector<std::string> args, DaemonFlags& flags) {
  CLI::App app("test", "mcrd");
  AddDaemonFlags(app, flags);
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector form last-first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}

absl::StatusOr<DaemonOptions> Resolve(std::vector<std::string> args) {
  DaemonFlags flags;
  std::string error = Parse(std::move(args), flags);
  if (!error.empty()) return absl::InvalidArgumentError(error);
  return ResolveDaemonFlags(flags);
}

std::string ErrorOf(std::vector<std::string> args) {
  auto r = Resolve(std::move(args));
  return r.ok() ? "ok" : std::string(r.status().message());
}

TEST(DaemonOptionsTest, Defaults) {
  auto o = Resolve({});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->engine.cpus.empty());
  EXPECT_FALSE(o->control_cpu.has_value());
  EXPECT_EQ(o->server.path, "/run/mcr/mcrd.sock");
  EXPECT_FALSE(o->server.group.has_value());
  EXPECT_EQ(o->controller.state_file, "/var/lib/mcr/state.json");
  EXPECT_TRUE(o->controller.config_file.empty());
  EXPECT_TRUE(o->metrics.enabled);
  EXPECT_EQ(o->metrics.address, "127.0.0.1");
  EXPECT_EQ(o->metrics.port, 9464);
  EXPECT_EQ(o->engine.ingress, engine::IngressMode::kRing);
  EXPECT_EQ(o->engine.ring_block_size, 128u * 1024);
  EXPECT_EQ(o->engine.ring_block_timeout_ms, 1u);
  EXPECT_EQ(o->engine.sched_slice_us, 0u);
  EXPECT_EQ(o->log_level, LogLevel::kInfo);
  EXPECT_FALSE(o->link_membership);
}

TEST(DaemonOptionsTest, AllFlags) {
  auto o = Resolve({"--cpus",
                    "0-1,3",
                    "--control-cpu",
                    "2",
                    "--control-socket-path",
                    "/tmp/x.sock",
                    "--socket-group",
                    "root",
                    "--config",
                    "/etc/mcr.conf",
                    "--allow-missing-interface",
                    "--state-file",
                    "off",
                    "--metrics-listen",
                    "0.0.0.0:9100",
                    "--ingress",
                    "recv",
                    "--ring-block-size",
                    "256K",
                    "--ring-block-count",
                    "32",
                    "--ring-block-timeout-ms",
                    "4",
                    "--busy-poll-us",
                    "50",
                    "--sched-slice-us",
                    "250",
                    "--membership",
                    "link",
                    "--log-level",
                    "debug"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_THAT(o->engine.cpus, ElementsAre(0, 1, 3));
  EXPECT_EQ(o->control_cpu, 2);
  EXPECT_EQ(o->server.path, "/tmp/x.sock");
  EXPECT_EQ(o->server.group, 0u);
  EXPECT_EQ(o->controller.config_file, "/etc/mcr.conf");
  EXPECT_TRUE(o->controller.allow_missing_interface);
  EXPECT_TRUE(o->controller.state_file.empty());
  EXPECT_EQ(o->metrics.address, "0.0.0.0");
  EXPECT_EQ(o->metrics.port, 9100);
  EXPECT_EQ(o->engine.ingress, engine::IngressMode::kRecv);
  EXPECT_EQ(o->engine.ring_block_size, 256u * 1024);
  EXPECT_EQ(o->engine.ring_block_count, 32u);
  EXPECT_EQ(o->engine.ring_block_timeout_ms, 4u);
  EXPECT_EQ(o->engine.busy_poll_us, 50u);
  EXPECT_EQ(o->engine.sched_slice_us, 250u);
  EXPECT_TRUE(o->link_membership);
  EXPECT_EQ(o->log_level, LogLevel::kDebug);
}

TEST(DaemonOptionsTest, Refusals) {
  EXPECT_THAT(ErrorOf({"--cpus", "3-1"}), HasSubstr("--cpus"));
  EXPECT_THAT(ErrorOf({"--cpus", "x"}), HasSubstr("--cpus"));
  EXPECT_THAT(ErrorOf({"--control-cpu", "-1"}), HasSubstr("--control-cpu"));
  EXPECT_THAT(ErrorOf({"--socket-group", "no-such-group-mcr"}),
              HasSubstr("group 'no-such-group-mcr' does not exist"));
  EXPECT_THAT(ErrorOf({"--control-socket-path", "/" + std::string(120, 'a')}),
              HasSubstr("--control-socket-path"));
  EXPECT_THAT(ErrorOf({"--metrics-listen", "9464"}), HasSubstr("--metrics-listen '9464': no port"));
  EXPECT_THAT(ErrorOf({"--metrics-listen", "localhost:9464"}), HasSubstr("not an IPv4 address"));
  EXPECT_THAT(ErrorOf({"--metrics-listen", "127.0.0.1:0"}), HasSubstr("port out of range"));
  EXPECT_THAT(ErrorOf({"--ingress", "xdp"}), HasSubstr("--ingress"));
  EXPECT_THAT(ErrorOf({"--membership", "ip"}), HasSubstr("--membership"));
  EXPECT_THAT(ErrorOf({"--membership", "kernel", "--membership", "link"}),
              HasSubstr("--membership"));
  EXPECT_THAT(ErrorOf({"--log-level", "loud"}), HasSubstr("--log-level: log level 'loud'"));
  EXPECT_THAT(ErrorOf({"--ring-block-timeout-ms", "0"}), HasSubstr("--ring-block-timeout-ms"));
  EXPECT_THAT(ErrorOf({"--busy-poll-us", "2000000"}), HasSubstr("--busy-poll-us"));
  EXPECT_THAT(ErrorOf({"--busy-poll-us", "-1"}), HasSubstr("--busy-poll-us"));
  EXPECT_THAT(ErrorOf({"--sched-slice-us", "50"}),
              HasSubstr("--sched-slice-us: '50' must be 0 (kernel default) or 100..100000"));
  EXPECT_THAT(ErrorOf({"--sched-slice-us", "100001"}), HasSubstr("--sched-slice-us"));
  EXPECT_THAT(ErrorOf({"--sched-slice-us", "-1"}), HasSubstr("--sched-slice-us"));
  EXPECT_THAT(ErrorOf({"--bogus"}), HasSubstr("--bogus"));
  // Ring geometry is refused while parsing (exit 2), with the value, not when shards start.
  EXPECT_THAT(ErrorOf({"--ring-block-size", "-5"}), HasSubstr("must not be negative"));
  EXPECT_THAT(ErrorOf({"--ring-block-size", "12345"}),
              HasSubstr("ring block size 12345 must be a multiple of"));
  EXPECT_THAT(ErrorOf({"--ring-block-size", "1G"}), HasSubstr("more than the limit"));
  EXPECT_THAT(ErrorOf({"--ring-block-count", "1"}), HasSubstr("--ring-block-count"));
  EXPECT_THAT(ErrorOf({"--ring-block-size", "128M", "--ring-block-count", "64"}),
              HasSubstr("bytes per capture socket"));
  EXPECT_EQ(ErrorOf({"--ring-block-size", "1M", "--ring-block-count", "1024"}), "ok");
}

TEST(MetricsListenTest, Off) {
  auto m = ParseMetricsListen("off");
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->enabled);
}

}  // namespace
}  // namespace mcr::control
