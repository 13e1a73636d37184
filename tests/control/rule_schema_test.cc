#include "control/rule_schema.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/control/fake_host.h"

namespace mcr::control {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;


json RuleJson() {
  return json::parse(R"({"input": {"interface": "in0", "group": "239.1.1.1", "port": 5000},
                         "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "out0"}]})");
}

std::string ErrorOf(const json& j) {
  auto r = RuleFromJson(j, "rule");
  return r.ok() ? "ok" : std::string(r.status().message());
}

TEST(Ipv4Test, ParsesDottedQuadsOnly) {
  EXPECT_EQ(FormatIpv4(Ip("239.1.2.3")), "239.1.2.3");
  for (const char* bad :
       {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", "0x1.2.3.4", "a.b.c.d"}) {
    EXPECT_FALSE(ParseIpv4(bad).ok()) << bad;
  }
}

TEST(RuleIdTest, HashOfTheInputTupleIsStable) {
  // Golden values: ids must not change between builds, or restored rules would change ids.
  engine::RuleSpec s = SampleSpec();
  EXPECT_EQ(RuleIdFor(s), "4279e8e61d4b");
  s.input_source = Ip("10.0.0.1");
  EXPECT_EQ(RuleIdFor(s), "85a675eb24b3");
  // Outputs are not part of the id.
  s.outputs.push_back({Ip("239.9.9.9"), 1, "out1", 0, -1});
  EXPECT_EQ(RuleIdFor(s), "85a675eb24b3");
}

TEST(RuleIdTest, NamedWhenIdIsNotTheHash) {
  engine::RuleSpec s = SampleSpec();
  EXPECT_FALSE(IsNamed(s));
  s.id = "cam1";
  EXPECT_TRUE(IsNamed(s));
}

TEST(RuleJsonTest, RoundTrips) {
  engine::RuleSpec s = SampleSpec();
  s.input_source = Ip("10.0.0.1");
  s.id = RuleIdFor(s);
  s.outputs.push_back({Ip("10.10.2.2"), 7000, "out1", 8, 46});
  auto back = RuleFromJson(RuleToJson(s), "rule");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  s.id = "cam-1.a_b";
  back = RuleFromJson(RuleToJson(s), "rule");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(RuleToJson(s)["name"], "cam-1.a_b");
}

TEST(RuleJsonTest, DefaultsAndName) {
  auto r = RuleFromJson(RuleJson(), "rule");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->id, "4279e8e61d4b");
  EXPECT_EQ(r->outputs[0].ttl, 0);    // default TTL
  EXPECT_EQ(r->outputs[0].dscp, -1);  // copy the input's DSCP
  json j = RuleJson();
  j["name"] = "cam1";
  EXPECT_EQ(RuleFromJson(j, "rule")->id, "cam1");
}

TEST(RuleJsonTest, IdMustMatch) {
  json j = RuleJson();
  j["id"] = "4279e8e61d4b";
  EXPECT_EQ(ErrorOf(j), "ok");
  j["id"] = "other";
  EXPECT_THAT(ErrorOf(j), HasSubstr("rule.id: 'other' does not match"));
  j["name"] = "other";
  EXPECT_EQ(ErrorOf(j), "ok");
}

TEST(RuleJsonTest, EveryFieldErrorNamesFieldAndValue) {
  struct Case {
    const char* pointer;  // JSON pointer to change
    json value;
    const char* expect;
  };
  const Case cases[] = {
      {"/input/port", 70000, "rule.input.port: 70000 is out of range 1..65535"},
      {"/input/port", 0, "rule.input.port: 0 is out of range"},
      {"/input/port", -1, "rule.input.port: -1 is out of range"},
      {"/input/port", "5000", "rule.input.port: expected an integer, got \"5000\""},
      {"/input/port", 5000.5, "rule.input.port: expected an integer"},
      {"/input/group", "239.1.1", "rule.input.group: '239.1.1' is not an IPv4 address"},
      {"/input/group", 5, "rule.input.group: expected a string, got 5"},
      {"/input/interface", "eth0:1", "rule.input.interface: 'eth0:1' is not a valid interface"},
      {"/input/interface", "abcdefghijklmnopq", "longer than 15"},
      {"/input/source", "x", "rule.input.source: 'x' is not an IPv4 address"},
      {"/input/extra", 1, "rule.input.extra: unknown field"},
      {"/outputs/0/port", 65536, "rule.outputs[0].port: 65536 is out of range"},
      {"/outputs/0/ttl", 0, "rule.outputs[0].ttl: 0 is out of range 1..255"},
      {"/outputs/0/ttl", 256, "rule.outputs[0].ttl: 256 is out of range 1..255"},
      {"/outputs/0/dscp", 64, "rule.outputs[0].dscp: 64 is out of range 0..63"},
      {"/outputs/0/dscp", -1, "rule.outputs[0].dscp: -1 is out of range 0..63"},
      {"/outputs/0/group", "239.2.2.256", "rule.outputs[0].group: '239.2.2.256'"},
      {"/outputs/0/interface", "", "rule.outputs[0].interface: '' is not a valid interface name"},
      {"/outputs/0/colour", "red", "rule.outputs[0].colour: unknown field"},
      {"/outputs", json::object(), "rule.outputs: expected an array"},
      {"/name", "bad name", "rule.name: 'bad name' is not a valid rule name"},
      {"/name", "-x", "must start with a letter or digit"},
      {"/name", std::string(65, 'a'), "longer than 64"},
      {"/colour", 1, "rule.colour: unknown field"},
  };
  for (const Case& c : cases) {
    json j = RuleJson();
    j[json::json_pointer(c.pointer)] = c.value;
    EXPECT_THAT(ErrorOf(j), HasSubstr(c.expect)) << c.pointer << " = " << c.value;
  }
  json j = RuleJson();
  j["input"].erase("port");
  EXPECT_THAT(ErrorOf(j), HasSubstr("rule.input.port: missing"));
  j = RuleJson();
  j["outputs"][0].erase("interface");
  EXPECT_THAT(ErrorOf(j), HasSubstr("rule.outputs[0].interface: missing"));
  j = RuleJson();
  j.erase("outputs");
  EXPECT_THAT(ErrorOf(j), HasSubstr("rule.outputs: missing"));
  EXPECT_THAT(ErrorOf(json::array()), HasSubstr("rule: expected an object"));
}

TEST(RuleJsonTest, TooManyOutputs) {
  json j = RuleJson();
  for (size_t i = 0; i < kMaxOutputsPerRule; ++i) {
    j["outputs"].push_back({{"group", "239.2.2.3"}, {"port", 1 + i}, {"interface", "out0"}});
  }
  EXPECT_THAT(ErrorOf(j), HasSubstr("1025 outputs, more than the limit of 1024"));
}

TEST(OutputsSyntaxTest, SeedForm) {
  auto r = ParseOutputs("239.2.2.2:6000:eth1", std::nullopt, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0], (engine::OutputSpec{Ip("239.2.2.2"), 6000, "eth1", 0, -1}));
}

TEST(OutputsSyntaxTest, ListWithOverridesAndDefaults) {
  auto r = ParseOutputs(
      " 239.2.2.2:6000:eth1 , 10.0.0.9:7000:eth2:ttl=8:dscp=46,239.3.3.3:1:eth1:dscp=0", int64_t{4},
      int64_t{10});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0], (engine::OutputSpec{Ip("239.2.2.2"), 6000, "eth1", 4, 10}));
  EXPECT_EQ((*r)[1], (engine::OutputSpec{Ip("10.0.0.9"), 7000, "eth2", 8, 46}));
  EXPECT_EQ((*r)[2], (engine::OutputSpec{Ip("239.3.3.3"), 1, "eth1", 4, 0}));
  for (const auto& o : *r) {
    auto back = ParseOutputs(FormatOutput(o), std::nullopt, std::nullopt);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ((*back)[0], o);
  }
}

TEST(OutputsSyntaxTest, Errors) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "too few fields"},
      {"239.2.2.2:6000", "too few fields"},
      {"239.2.2.2:6000:eth1,", "entry 2 '': too few fields"},
      {"239.2.2:6000:eth1", "'239.2.2' is not an IPv4 address"},
      {"239.2.2.2:x:eth1", "port 'x' is not a number"},
      {"239.2.2.2:70000:eth1", "port: 70000 is out of range 1..65535"},
      {"239.2.2.2:0:eth1", "port: 0 is out of range"},
      {"239.2.2.2:6000:", "interface '' is not valid"},
      {"239.2.2.2:6000:eth1:ttl=0", "ttl: 0 is out of range 1..255"},
      {"239.2.2.2:6000:eth1:ttl=300", "ttl: 300 is out of range"},
      {"239.2.2.2:6000:eth1:dscp=64", "dscp: 64 is out of range 0..63"},
      {"239.2.2.2:6000:eth1:ttl", "option 'ttl' is not KEY=NUMBER"},
      {"239.2.2.2:6000:eth1:tos=4", "option 'tos=4' is unknown"},
      {"239.2.2.2:6000:eth1:ttl=2:ttl=3", "option 'ttl=3' is unknown or repeated"},
  };
  for (const auto& [text, expect] : cases) {
    auto r = ParseOutputs(text, std::nullopt, std::nullopt);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(expect)) << text;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("--outputs")) << text;
  }
  EXPECT_FALSE(ParseOutputs("239.2.2.2:6000:eth1", int64_t{0}, std::nullopt).ok());
  EXPECT_FALSE(ParseOutputs("239.2.2.2:6000:eth1", std::nullopt, int64_t{99}).ok());
}

TEST(DescribeTest, InputAndOutput) {
  engine::RuleSpec s = SampleSpec();
  EXPECT_EQ(DescribeInput(s), "in0 239.1.1.1:5000");
  s.input_source = Ip("10.0.0.1");
  EXPECT_EQ(DescribeInput(s), "in0 239.1.1.1:5000 source 10.0.0.1");
  EXPECT_EQ(FormatOutput({Ip("239.2.2.2"), 6000, "out0", 4, 46}),
            "239.2.2.2:6000:out0:ttl=4:dscp=46");
}

}  // namespace
}  // namespace mcr::control
