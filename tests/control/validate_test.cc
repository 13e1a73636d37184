#include "control/validate.h"

#include "fake_host.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mcr::control {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;


std::string ErrorOf(const engine::RuleSpec& s) {
  auto st = ValidateRule(s, "rule");
  return st.ok() ? "ok" : std::string(st.message());
}

TEST(ValidateRuleTest, AcceptsMulticastAndUnicast) {
  EXPECT_EQ(ErrorOf(SampleSpec()), "ok");
  engine::RuleSpec s = SampleSpec();
  s.input_group = Ip("10.10.1.2");          // unicast input (local check is CheckHost's)
  s.outputs[0].dst_addr = Ip("10.10.2.2");  // unicast output
  s.input_source = Ip("10.10.1.1");
  EXPECT_EQ(ErrorOf(s), "ok");
  // Same group and port on another interface is not a loop.
  s = SampleSpec();
  s.outputs[0] = {s.input_group, s.input_port, "out0", 0, -1};
  EXPECT_EQ(ErrorOf(s), "ok");
}

TEST(ValidateRuleTest, Refusals) {
  auto expect = [](auto mutate, const char* message) {
    engine::RuleSpec s = SampleSpec();
    mutate(s);
    EXPECT_THAT(ErrorOf(s), HasSubstr(message));
  };
  expect([](auto& s) { s.input_group = Ip("0.0.0.0"); },
         "rule.input.group: 0.0.0.0 is neither a multicast group nor a unicast address");
  expect([](auto& s) { s.input_group = Ip("255.255.255.255"); },
         "rule.input.group: 255.255.255.255");
  expect([](auto& s) { s.input_port = 0; }, "rule.input.port: 0 is out of range");
  expect([](auto& s) { s.input_source = Ip("239.0.0.1"); },
         "rule.input.source: 239.0.0.1 is not a unicast source address");
  expect([](auto& s) { s.input_source = Ip("255.255.255.255"); }, "rule.input.source");
  expect([](auto& s) { s.outputs.clear(); }, "rule.outputs: a rule needs at least one output");
  expect([](auto& s) { s.outputs.resize(kMaxOutputsPerRule + 1, s.outputs[0]); },
         "rule.outputs: 1025 outputs, more than the limit of 1024");
  expect([](auto& s) { s.outputs[0].dst_addr = Ip("0.0.0.0"); }, "rule.outputs[0].group: 0.0.0.0");
  expect([](auto& s) { s.outputs[0].dst_addr = Ip("255.255.255.255"); },
         "rule.outputs[0].group: 255.255.255.255");
  expect([](auto& s) { s.outputs[0].dst_port = 0; }, "rule.outputs[0].port: 0");
  expect([](auto& s) { s.outputs[0].dscp = 64; }, "rule.outputs[0].dscp: 64 is out of range");
  expect([](auto& s) { s.outputs[0].interface = "a/b"; }, "rule.outputs[0].interface: 'a/b'");
  expect([](auto& s) { s.input_interface = ""; }, "rule.input.interface: '' is not a valid");
  expect([](auto& s) { s.id = "has space"; }, "rule.name: 'has space' is not a valid rule name");
  expect(
      [](auto& s) {
        s.outputs[0] = {s.input_group, s.input_port, s.input_interface, 0, -1};
      },
      "rule.outputs[0]: 239.1.1.1:5000:in0 is the rule's own input (a loop)");
  expect(
      [](auto& s) {
        s.outputs.push_back(s.outputs[0]);
        s.outputs[1].ttl = 9;  // TTL does not make it another destination
      },
      "rule.outputs[1]: 239.2.2.2:6000:out0:ttl=9 duplicates outputs[0]");
}

TEST(CheckHostTest, MissingInterfaceRefusedUnlessAllowed) {
  FakeHost host;
  std::vector<std::string> warnings;
  engine::RuleSpec s = SampleSpec();
  EXPECT_TRUE(CheckHost(s, "rule", host, false, &warnings).ok());
  s.input_interface = "eth9";
  auto st = CheckHost(s, "rule", host, false, &warnings);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("rule.input.interface: interface 'eth9' does not exist"));
  EXPECT_THAT(warnings, IsEmpty());
  s = SampleSpec();
  s.outputs.push_back({Ip("239.3.3.3"), 1, "eth7", 0, -1});
  st = CheckHost(s, "rule", host, false, &warnings);
  EXPECT_THAT(std::string(st.message()), HasSubstr("rule.outputs[1].interface: interface 'eth7'"));
  EXPECT_TRUE(CheckHost(s, "rule", host, true, &warnings).ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("'eth7' does not exist yet"));
}

TEST(CheckHostTest, AlternativeInterfaceNamesAreRefusedWithThePrimaryName) {
  // Rules are told apart by interface name; `inalt` naming in0 would capture in0 twice.
  FakeHost host;
  host.interfaces.insert("inalt");
  host.altnames["inalt"] = "in0";
  std::vector<std::string> warnings;
  engine::RuleSpec s = SampleSpec();
  s.input_interface = "inalt";
  auto st = CheckHost(s, "rule", host, true, &warnings);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("rule.input.interface: 'inalt' is an alternative name of interface "
                        "'in0'; name it 'in0'"));
  s = SampleSpec();
  s.outputs[0].interface = "inalt";
  st = CheckHost(s, "rule", host, true, &warnings);
  EXPECT_THAT(std::string(st.message()), HasSubstr("rule.outputs[0].interface: 'inalt'"));
}

TEST(CheckHostTest, UnicastInputMustBeLocal) {
  FakeHost host;
  std::vector<std::string> warnings;
  engine::RuleSpec s = SampleSpec();
  s.input_group = Ip("10.10.1.2");
  EXPECT_TRUE(CheckHost(s, "rule", host, false, &warnings).ok());
  s.input_group = Ip("10.9.9.9");
  auto st = CheckHost(s, "rule", host, false, &warnings);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("rule.input.group: 10.9.9.9 is neither a multicast group nor an address "
                        "of this host"));
  // Allowed-missing does not excuse a foreign address on an interface that exists.
  EXPECT_FALSE(CheckHost(s, "rule", host, true, &warnings).ok());
  // But on a missing interface the address may come with it.
  s.input_interface = "eth9";
  EXPECT_TRUE(CheckHost(s, "rule", host, true, &warnings).ok());
}

TEST(ValidateRuleSetTest, DuplicateIdsAndInputs) {
  std::vector<Rule> rules{{SampleSpec(), RuleOrigin::kControl}};
  EXPECT_TRUE(ValidateRuleSet(rules).ok());
  rules.push_back(rules[0]);
  rules[1].spec.id = "other";
  EXPECT_THAT(std::string(ValidateRuleSet(rules).message()),
              HasSubstr("input: in0 239.1.1.1:5000 of rule 'other' is already relayed by rule "
                        "'4279e8e61d4b'"));
  // (S,G) and (*,G) of the same group and port are different inputs.
  rules[1].spec.input_source = Ip("10.0.0.1");
  EXPECT_TRUE(ValidateRuleSet(rules).ok());
  rules[1].spec.id = rules[0].spec.id;
  EXPECT_THAT(std::string(ValidateRuleSet(rules).message()),
              HasSubstr("rule id '4279e8e61d4b' is used by more than one rule"));
}

}  // namespace
}  // namespace mcr::control
