#include "bench/mcrgen/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mcr::gen {
namespace {

using testing::HasSubstr;

absl::StatusOr<Command> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "mcrgen");
  return ParseCommandLine(args);
}

std::vector<std::string> Send(std::vector<std::string> extra) {
  std::vector<std::string> a = {"send", "--group",     "239.1.1.1", "--port",
                                "5000", "--interface", "veth0"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::vector<std::string> Recv(std::vector<std::string> extra) {
  std::vector<std::string> a = {"recv", "--group",     "239.1.1.1", "--port",
                                "5000", "--interface", "veth0"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

std::string Error(std::vector<std::string> args) {
  absl::StatusOr<Command> c = Parse(std::move(args));
  EXPECT_FALSE(c.ok());
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

TEST(CliTest, SendDefaults) {
  absl::StatusOr<Command> c = Parse(Send({}));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->kind, Command::Kind::kSend);
  const SendConfig& s = c->send;
  EXPECT_EQ(s.group, 0xEF010101u);
  EXPECT_EQ(s.port, 5000);
  EXPECT_EQ(s.interface, "veth0");
  EXPECT_EQ(s.rate_pps, 1000u);
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.size, 1200u);
  EXPECT_FALSE(s.ttl.has_value());
  EXPECT_EQ(s.dscp, 0);
  EXPECT_EQ(s.streams, 1u);
  EXPECT_FALSE(s.rtp);
  EXPECT_FALSE(s.raw);
  EXPECT_TRUE(s.udp_checksum);
  EXPECT_TRUE(s.gso);
  EXPECT_EQ(s.batch, 64u);
  EXPECT_FALSE(s.pace_sleep);
}

TEST(CliTest, SendEverything) {
  absl::StatusOr<Command> c = Parse(Send({"--source-ip",
                                          "198.51.100.7",
                                          "--rate",
                                          "1.5M",
                                          "--count",
                                          "100k",
                                          "--size",
                                          "8972",
                                          "--ttl",
                                          "0",
                                          "--dscp",
                                          "46",
                                          "--streams",
                                          "4",
                                          "--rtp",
                                          "--raw",
                                          "--dst-mac",
                                          "02:00:00:AA:bb:01",
                                          "--no-udp-checksum",
                                          "--json",
                                          "--batch",
                                          "256",
                                          "--source-port",
                                          "4000"}));
  ASSERT_TRUE(c.ok()) << c.status();
  const SendConfig& s = c->send;
  EXPECT_EQ(s.source_ip, 0xC6336407u);
  EXPECT_EQ(s.rate_pps, 1'500'000u);
  EXPECT_EQ(s.count, 100'000u);
  EXPECT_EQ(s.size, 8972u);
  EXPECT_EQ(s.ttl, 0);
  EXPECT_EQ(s.dscp, 46);
  EXPECT_EQ(s.streams, 4u);
  EXPECT_TRUE(s.rtp);
  EXPECT_TRUE(s.raw);
  ASSERT_TRUE(s.dst_mac.has_value());
  EXPECT_EQ(FormatMac(*s.dst_mac), "02:00:00:aa:bb:01");
  EXPECT_FALSE(s.udp_checksum);
  EXPECT_TRUE(s.json);
  EXPECT_EQ(s.batch, 256u);
  EXPECT_EQ(s.source_port, 4000);
}

TEST(CliTest, PaceSleepOrSpin) {
  absl::StatusOr<Command> c = Parse(Send({"--pace", "sleep"}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->send.pace_sleep);
  c = Parse(Send({"--pace", "spin"}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->send.pace_sleep);
  EXPECT_THAT(Error(Send({"--pace", "yield"})), HasSubstr("--pace"));
}

TEST(CliTest, RateZeroMeansUnpaced) {
  absl::StatusOr<Command> c = Parse(Send({"--rate", "0"}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->send.rate_pps, 0u);
}

TEST(CliTest, SendRejectsBadValuesWithTheRange) {
  EXPECT_THAT(Error({"send", "-g", "239.1.1.1", "-i", "lo", "--port", "70000"}),
              HasSubstr("--port 70000 is out of range 1..65535"));
  EXPECT_THAT(Error({"recv", "-g", "239.1.1.1", "-i", "lo", "--port", "0"}),
              HasSubstr("--port 0 is out of range 1..65535"));
  EXPECT_THAT(Error(Send({"--size", "31"})), HasSubstr("--size 31 is out of range 32..8972"));
  EXPECT_THAT(Error(Send({"--size", "8973"})), HasSubstr("out of range 32..8972"));
  EXPECT_THAT(Error(Send({"--size", "40", "--rtp"})), HasSubstr("out of range 44..8972"));
  EXPECT_THAT(Error(Send({"--dscp", "64"})), HasSubstr("--dscp 64 is out of range 0..63"));
  EXPECT_THAT(Error(Send({"--ttl", "256"})), HasSubstr("--ttl 256 is out of range 0..255"));
  EXPECT_THAT(Error(Send({"--streams", "0"})), HasSubstr("--streams 0 is out of range 1..1024"));
  EXPECT_THAT(Error(Send({"--batch", "0"})), HasSubstr("--batch 0"));
  EXPECT_THAT(Error(Send({"--rate", "-5"})), HasSubstr("--rate '-5' is not"));
  EXPECT_THAT(Error(Send({"--rate", "fast"})), HasSubstr("--rate 'fast' is not"));
  EXPECT_THAT(Error(Send({"--count", "1.5"})), HasSubstr("--count '1.5'"));
  EXPECT_THAT(Error(Send({"--source-ip", "10.1.1"})), HasSubstr("not an IPv4 address"));
  EXPECT_THAT(Error(Send({"--source-ip", "239.0.0.1"})), HasSubstr("must be unicast"));
  EXPECT_THAT(Error(Send({"--dst-mac", "02:00:00:00:00:01"})), HasSubstr("needs --raw"));
  EXPECT_THAT(Error(Send({"--raw", "--dst-mac", "02:00:00:00:00"})),
              HasSubstr("not a MAC address"));
  EXPECT_THAT(Error(Send({"--no-udp-checksum"})), HasSubstr("needs --raw"));
  EXPECT_FALSE(Parse(Send({"--no-gso"}))->send.gso);
  EXPECT_FALSE(Parse(Send({"--raw", "--no-gso"}))->send.gso);
  EXPECT_THAT(Error(Send({"--bogus"})), HasSubstr("--bogus"));
}

TEST(CliTest, UnicastTtlZeroNeedsRaw) {
  std::vector<std::string> a = {"send", "-g", "10.0.0.1", "-p", "5000", "-i", "eth0", "--ttl", "0"};
  EXPECT_THAT(Error(a), HasSubstr("--ttl 0 is out of range 1..255"));
  a.push_back("--raw");
  EXPECT_TRUE(Parse(a).ok());
}

TEST(CliTest, GroupMustBeUsable) {
  EXPECT_THAT(Error({"send", "-g", "0.0.0.0", "-p", "1", "-i", "lo"}), HasSubstr("not a usable"));
  EXPECT_THAT(Error({"send", "-g", "255.255.255.255", "-p", "1", "-i", "lo"}),
              HasSubstr("not a usable"));
  EXPECT_THAT(Error({"send", "-g", "240.0.0.1", "-p", "1", "-i", "lo"}), HasSubstr("not a usable"));
  EXPECT_THAT(Error({"send", "-g", "example.com", "-p", "1", "-i", "lo"}),
              HasSubstr("not an IPv4 address"));
  EXPECT_TRUE(Parse({"send", "-g", "10.1.2.3", "-p", "1", "-i", "lo"}).ok());  // unicast
}

TEST(CliTest, StreamsMustStayInRange) {
  EXPECT_THAT(Error({"send", "-g", "239.255.255.254", "-p", "1", "-i", "lo", "-k", "3"}),
              HasSubstr("runs past 239.255.255.255"));
  EXPECT_TRUE(Parse({"send", "-g", "239.255.255.254", "-p", "1", "-i", "lo", "-k", "2"}).ok());
  EXPECT_THAT(Error({"send", "-g", "239.1.1.1", "-p", "65534", "-i", "lo", "-k", "3"}),
              HasSubstr("needs ports up to 65536"));
  // Unicast: the address does not advance, only the port.
  EXPECT_TRUE(Parse({"send", "-g", "10.255.255.255", "-p", "1", "-i", "lo", "-k", "8"}).ok());
}

TEST(CliTest, RequiredOptionsAreNamed) {
  EXPECT_THAT(Error({"send", "--group", "239.1.1.1", "--port", "5000"}),
              HasSubstr("--interface is required"));
  EXPECT_THAT(Error({"recv", "--group", "239.1.1.1", "-i", "lo"}), HasSubstr("--port"));
  EXPECT_THAT(Error({}), HasSubstr("subcommand"));
}

TEST(CliTest, RecvDefaultsAndOptions) {
  absl::StatusOr<Command> c = Parse(Recv({}));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->kind, Command::Kind::kRecv);
  EXPECT_EQ(c->recv.expect, 0u);
  EXPECT_EQ(c->recv.timeout_s, 0);
  EXPECT_EQ(c->recv.window, 65536u);
  EXPECT_FALSE(c->recv.source.has_value());
  EXPECT_TRUE(c->recv.kernel_timestamps);

  c = Parse(Recv({"--source", "198.51.100.7", "--expect", "100k", "--timeout", "2.5", "--idle-exit",
                  "1", "--streams", "4", "--json", "--ready-file", "/tmp/r", "--window", "1024",
                  "--rcvbuf", "1048576", "--rx-timestamp", "user"}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->recv.source, 0xC6336407u);
  EXPECT_EQ(c->recv.expect, 100'000u);
  EXPECT_EQ(c->recv.timeout_s, 2.5);
  EXPECT_EQ(c->recv.idle_exit_s, 1);
  EXPECT_EQ(c->recv.streams, 4u);
  EXPECT_TRUE(c->recv.json);
  EXPECT_EQ(c->recv.ready_file, "/tmp/r");
  EXPECT_EQ(c->recv.window, 1024u);
  EXPECT_EQ(c->recv.rcvbuf, 1048576u);
  EXPECT_FALSE(c->recv.kernel_timestamps);
}

TEST(CliTest, RecvRejectsBadValues) {
  EXPECT_THAT(Error(Recv({"--window", "1000"})), HasSubstr("power of two"));
  EXPECT_THAT(Error(Recv({"--window", "32"})), HasSubstr("power of two"));
  EXPECT_THAT(Error(Recv({"--timeout", "-1"})), HasSubstr("--timeout"));
  EXPECT_THAT(Error(Recv({"--idle-exit", "-0.5"})), HasSubstr("--idle-exit"));
  EXPECT_THAT(Error(Recv({"--source", "239.1.1.2"})), HasSubstr("must be a unicast"));
  EXPECT_THAT(Error(Recv({"--expect", "many"})), HasSubstr("--expect 'many'"));
  EXPECT_THAT(Error(Recv({"--rx-timestamp", "nic"})),
              HasSubstr("--rx-timestamp 'nic' must be kernel or user"));
  EXPECT_THAT(Error({"recv", "-g", "10.1.1.1", "-p", "5000", "-i", "lo", "--source", "10.2.2.2"}),
              HasSubstr("--source needs a multicast --group"));
}

TEST(CliTest, HelpAndVersionExitZeroWithText) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--help"}, {"send", "--help"}, {"recv", "--help"}, {"--version"}}) {
    absl::StatusOr<Command> c = Parse(args);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->kind, Command::Kind::kExit);
    EXPECT_EQ(c->exit_code, 0);
    EXPECT_FALSE(c->text.empty());
  }
  EXPECT_THAT(Parse({"send", "--help"})->text, HasSubstr("--source-ip"));
  EXPECT_THAT(Parse({"recv", "--help"})->text, HasSubstr("--ready-file"));
}

TEST(CliTest, ParseScaled) {
  EXPECT_EQ(*ParseScaled("0", "x"), 0u);
  EXPECT_EQ(*ParseScaled("18446744073709551615", "x"), UINT64_MAX);
  EXPECT_EQ(*ParseScaled("100k", "x"), 100'000u);
  EXPECT_EQ(*ParseScaled("2.5M", "x"), 2'500'000u);
  EXPECT_EQ(*ParseScaled("1G", "x"), 1'000'000'000u);
  EXPECT_FALSE(ParseScaled("", "x").ok());
  EXPECT_FALSE(ParseScaled("k", "x").ok());
  EXPECT_FALSE(ParseScaled("1.0001k", "x").ok());  // not a whole number
  EXPECT_FALSE(ParseScaled("-1k", "x").ok());
  EXPECT_FALSE(ParseScaled("1e30", "x").ok());
}

}  // namespace
}  // namespace mcr::gen
