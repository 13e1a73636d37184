#include "control/ctl.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "control/client.h"
#include "control/ctl_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mcr::control {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

AddFlags Seed() {
  AddFlags f;
  f.input_interface = "eth0";
  f.input_group = "239.1.1.1";
  f.input_port = 5000;
  f.outputs = "239.2.2.2:6000:eth1";
  return f;
}

std::string ErrorOf(const AddFlags& f) {
  auto r = BuildAddRequest(f);
  return r.ok() ? "ok" : std::string(r.status().message());
}

TEST(BuildAddRequestTest, SeedQuickStart) {
  auto r = BuildAddRequest(Seed());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, json::parse(R"({"rule": {
      "input": {"interface": "eth0", "group": "239.1.1.1", "port": 5000},
      "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "eth1"}]}})"));
}

TEST(BuildAddRequestTest, AllOptions) {
  AddFlags f = Seed();
  f.input_source = "10.0.0.1";
  f.name = "cam1";
  f.ttl = 4;
  f.dscp = 46;
  f.outputs = "239.2.2.2:6000:eth1,10.1.1.1:7000:eth2:ttl=9";
  f.allow_missing_interface = true;
  auto r = BuildAddRequest(f);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["rule"]["name"], "cam1");
  EXPECT_EQ((*r)["rule"]["input"]["source"], "10.0.0.1");
  EXPECT_EQ((*r)["rule"]["outputs"][0]["ttl"], 4);
  EXPECT_EQ((*r)["rule"]["outputs"][0]["dscp"], 46);
  EXPECT_EQ((*r)["rule"]["outputs"][1]["ttl"], 9);
  EXPECT_EQ((*r)["allow_missing_interface"], true);
  f.name.clear();
  f.rule_id = "cam2";  // --rule-id is --name
  EXPECT_EQ((*BuildAddRequest(f))["rule"]["name"], "cam2");
}

TEST(BuildAddRequestTest, ErrorsNameTheFlag) {
  AddFlags f = Seed();
  f.input_port = 70000;
  EXPECT_EQ(ErrorOf(f), "--input-port: 70000 is out of range 1..65535");
  f = Seed();
  f.input_group = "239.1.1";
  EXPECT_EQ(ErrorOf(f), "--input-group: '239.1.1' is not an IPv4 address");
  f = Seed();
  f.input_source = "nope";
  EXPECT_THAT(ErrorOf(f), HasSubstr("--input-source: 'nope'"));
  f = Seed();
  f.input_interface = "a b";
  EXPECT_THAT(ErrorOf(f), HasSubstr("--input-interface: 'a b'"));
  f = Seed();
  f.outputs = "239.2.2.2:6000";
  EXPECT_THAT(ErrorOf(f), HasSubstr("--outputs: entry 1"));
  f = Seed();
  f.ttl = 0;
  EXPECT_EQ(ErrorOf(f), "--ttl: 0 is out of range 1..255");
  f = Seed();
  f.dscp = 64;
  EXPECT_EQ(ErrorOf(f), "--dscp: 64 is out of range 0..63");
  f = Seed();
  f.name = "a";
  f.rule_id = "b";
  EXPECT_THAT(ErrorOf(f), HasSubstr("differ"));
  f = Seed();
  f.name = "bad/name";
  EXPECT_THAT(ErrorOf(f), HasSubstr("--name: 'bad/name'"));
}

TEST(ExitStatusTest, OnlyFailingToReachMcrdIsATransportError) {
  // mcrd's refusals carry whatever code the engine gave them, UNAVAILABLE included: they are
  // answers (exit 1), not an unreachable daemon (exit 3).
  auto refused = CheckResponse(
      R"({"version":1,"id":1,"ok":false,"error":"output busy","code":"UNAVAILABLE"})");
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsUnavailable(refused.status()));
  EXPECT_FALSE(IsTransportError(refused.status()));
  auto unreachable =
      ControlClient::Connect("/nonexistent/mcrd.sock", std::chrono::milliseconds(100));
  ASSERT_FALSE(unreachable.ok());
  EXPECT_TRUE(IsTransportError(unreachable.status()));
}

TEST(TableTest, AlignsColumns) {
  Table t({"A", "NUM"}, {false, true});
  t.AddRow({"long-cell", "1"});
  t.AddRow({"x", "12345"});
  EXPECT_EQ(t.Render(),
            "A            NUM\n"
            "long-cell      1\n"
            "x          12345\n");
}

TEST(HumanCountTest, SiPrefixes) {
  EXPECT_EQ(HumanCount(0), "0");
  EXPECT_EQ(HumanCount(999), "999");
  EXPECT_EQ(HumanCount(1000), "1.00k");
  EXPECT_EQ(HumanCount(12345), "12.3k");
  EXPECT_EQ(HumanCount(10.5e6), "10.5M");
  EXPECT_EQ(HumanCount(123.4e9), "123G");
}

TEST(FormatTest, List) {
  json r = json::parse(R"({"ok": true, "rules": [
      {"id": "cam1", "input": {"interface": "in0", "group": "239.1.1.1", "port": 5000},
       "shard": 0, "input_up": true, "origin": "control",
       "membership": {"kind": "any-source", "state": "active"},
       "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "out0", "active": true},
                   {"group": "10.0.0.9", "port": 7000, "interface": "out1", "ttl": 8,
                    "active": false}]},
      {"id": "4279e8e61d4b", "input": {"interface": "in0", "group": "239.1.1.2", "port": 5000,
       "source": "10.0.0.1"}, "shard": 1, "input_up": false,
       "membership": {"kind": "source-specific", "state": "pending",
                      "detail": "interface in0 does not exist"},
       "outputs": [{"group": "239.2.2.3", "port": 6000, "interface": "out0", "active": true}]}],
      "interfaces": [{"name": "in0", "ifindex": 2, "up": true},
                     {"name": "out1", "ifindex": 0, "up": false}]})");
  EXPECT_EQ(FormatList(r),
            "ID            INPUT                               SHARD  STATE  MEMBERSHIP"
            "                             OUTPUTS\n"
            "cam1          in0 239.1.1.1:5000                      0  up     joined"
            "                                 239.2.2.2:6000:out0\n"
            "                                                                      "
            "                                 10.0.0.9:7000:out1:ttl=8 (inactive)\n"
            "4279e8e61d4b  in0 239.1.1.2:5000 source 10.0.0.1      1  down   "
            "pending: interface in0 does not exist  239.2.2.3:6000:out0\n"
            "\n"
            "INTERFACE  STATE    IFINDEX\n"
            "in0        up             2\n"
            "out1       missing        -\n");
  EXPECT_EQ(FormatList(json::parse(R"({"rules": []})")), "no rules\n");
}

TEST(FormatTest, NftDropListsEachCapturedInputOnce) {
  json r = json::parse(R"({"rules": [
      {"id": "b", "input": {"interface": "in0", "group": "239.1.1.2", "port": 5000}},
      {"id": "a", "input": {"interface": "in0", "group": "239.1.1.1", "port": 5000}},
      {"id": "a2", "input": {"interface": "in0", "group": "239.1.1.1", "port": 5000}},
      {"id": "ssm", "input": {"interface": "media0", "group": "232.1.1.1", "port": 20000,
                              "source": "10.1.1.10"}},
      {"id": "uni", "input": {"interface": "vlan.10", "group": "10.9.9.9", "port": 7000}}]})");
  auto script = FormatNftDrop(r);
  ASSERT_TRUE(script.ok()) << script.status();
  // Sorted and without duplicates; source-specific inputs match their source too.
  EXPECT_THAT(*script, HasSubstr("    iifname . ip daddr . udp dport {\n"
                                 "      \"in0\" . 239.1.1.1 . 5000,\n"
                                 "      \"in0\" . 239.1.1.2 . 5000,\n"
                                 "      \"vlan.10\" . 10.9.9.9 . 7000,\n"
                                 "    } counter drop\n"
                                 "    iifname . ip saddr . ip daddr . udp dport {\n"
                                 "      \"media0\" . 10.1.1.10 . 232.1.1.1 . 20000,\n"
                                 "    } counter drop\n  }\n}\n"));
  // Loading it replaces the table rather than adding a second copy of every rule.
  EXPECT_THAT(*script, HasSubstr("table ip mcr_drop_captured\n"
                                 "delete table ip mcr_drop_captured\n"
                                 "table ip mcr_drop_captured {\n"));
  EXPECT_THAT(*script, HasSubstr("the 4 input(s)"));
}

TEST(FormatTest, NftDropWithNoRulesEmptiesTheTable) {
  auto script = FormatNftDrop(json::parse(R"({"rules": []})"));
  ASSERT_TRUE(script.ok());
  EXPECT_THAT(*script, HasSubstr("policy accept;\n  }\n}\n"));
  EXPECT_THAT(*script, ::testing::Not(HasSubstr("drop\n")));
}

TEST(FormatTest, NftDropRefusesWhatItCannotWriteSafely) {
  auto err = [](const char* input) {
    auto r = FormatNftDrop(
        json::parse(absl::StrCat(R"({"rules": [{"id": "x", "input": )", input, "}]}")));
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  EXPECT_THAT(err(R"({"interface": "in\"0; flush ruleset", "group": "239.1.1.1", "port": 1})"),
              HasSubstr("rule x: input interface"));
  EXPECT_THAT(err(R"({"interface": "in 0", "group": "239.1.1.1", "port": 1})"),
              HasSubstr("cannot be written into an nft script safely"));
  EXPECT_THAT(err(R"({"interface": "", "group": "239.1.1.1", "port": 1})"),
              HasSubstr("input interface ''"));
  EXPECT_THAT(err(R"({"interface": "in0", "group": "239.1.1.1 } drop", "port": 1})"),
              HasSubstr("input group '239.1.1.1 } drop' is not an IPv4 address"));
  EXPECT_THAT(err(R"({"interface": "in0", "group": "239.001.1.1", "port": 1})"),
              HasSubstr("is not an IPv4 address"));
  EXPECT_THAT(err(R"({"interface": "in0", "group": "239.1.1.1", "port": 0})"),
              HasSubstr("input port '0' is not 1-65535"));
  EXPECT_THAT(err(R"({"interface": "in0", "group": "239.1.1.1", "port": "5000"})"),
              HasSubstr("is not 1-65535"));
  EXPECT_THAT(err(R"({"interface": "in0", "group": "232.1.1.1", "port": 5, "source": "x"})"),
              HasSubstr("input source 'x' is not an IPv4 address"));
  EXPECT_EQ(err(R"({"interface": "br-lan_1@x", "group": "239.1.1.1", "port": 65535})"), "ok");
  // No rule list is not an empty one: a script from it would remove every drop.
  EXPECT_FALSE(FormatNftDrop(json::parse(R"({"ok": true})")).ok());
  EXPECT_FALSE(FormatNftDrop(json::parse(R"({"rules": {}})")).ok());
}

TEST(FormatTest, Stats) {
  json r = json::parse(R"({"rules": [{"id": "cam1", "input": "in0 239.1.1.1:5000", "input_up": true,
      "packets": 1000, "bytes": 1316000, "packets_per_second": 1000, "bits_per_second": 10528000,
      "errors": 0, "drops": 2,
      "outputs": [{"output": "239.2.2.2:6000:out0", "active": true, "packets": 998,
                   "bytes": 1313368, "packets_per_second": 998, "bits_per_second": 10506944,
                   "errors": 0, "drops": 2}]}]})");
  EXPECT_EQ(FormatStats(r),
            "RULE / OUTPUT             PACKETS    BYTES  PKT/S  BIT/S  ERRORS  DROPS\n"
            "cam1  in0 239.1.1.1:5000     1000  1316000  1.00k  10.5M       0      2\n"
            "  -> 239.2.2.2:6000:out0      998  1313368    998  10.5M       0      2\n");
}

TEST(FormatTest, ShardsAndSummary) {
  json r = json::parse(R"({"shards": [{"shard": 0, "cpu": 2, "numa_node": 0, "rules": 3,
      "packets": 5000, "packets_per_second": 250, "unmatched": 1, "drops": 0, "kernel_drops": 7,
      "busy_ratio": 0.125}]})");
  EXPECT_EQ(FormatShards(r),
            "SHARD  CPU  NUMA  RULES  PACKETS  PKT/S  UNMATCHED  DROPS  KERNEL-DROPS  BUSY\n"
            "    0    2     0      3     5000    250          1      0             7   12%\n");
  EXPECT_EQ(FormatSummary(json::parse(
                R"({"added": ["a", "b"], "removed": [], "changed": ["c"], "unchanged": 4})")),
            "2 added (a, b), 0 removed, 1 changed (c), 4 unchanged");
}

}  // namespace
}  // namespace mcr::control
