// The shard's rule table: exact (interface, group, port) match, (S,G) before (*,G).

#include "engine/internal/rule_table.h"

#include <arpa/inet.h>

#include "gtest/gtest.h"

namespace mcr::engine::internal {
namespace {

uint32_t A(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

class RuleTableTest : public ::testing::Test {
 protected:
  const RuleEntry* Add(int ifindex, const char* group, uint16_t port, const char* source,
                       RuleCounters* c) {
    RuleEntry e;
    e.counters = c;
    table_.AddRule({ifindex, A(group), port, source ? A(source) : 0}, std::move(e));
    return table_.Lookup(ifindex, A(group), port, source ? A(source) : A("192.0.2.99"));
  }
  RuleTable table_;
  RuleCounters any_, ssm_, other_if_;
};

TEST_F(RuleTableTest, MatchesExactInterfaceGroupAndPort) {
  Add(2, "239.1.1.1", 5000, nullptr, &any_);
  Add(3, "239.1.1.1", 5000, nullptr, &other_if_);
  EXPECT_EQ(table_.Lookup(2, A("239.1.1.1"), 5000, A("10.0.0.1"))->counters, &any_);
  EXPECT_EQ(table_.Lookup(3, A("239.1.1.1"), 5000, A("10.0.0.1"))->counters, &other_if_);
  EXPECT_EQ(table_.Lookup(4, A("239.1.1.1"), 5000, A("10.0.0.1")), nullptr);  // interface
  EXPECT_EQ(table_.Lookup(2, A("239.1.1.2"), 5000, A("10.0.0.1")), nullptr);  // group
  EXPECT_EQ(table_.Lookup(2, A("239.1.1.1"), 5001, A("10.0.0.1")), nullptr);  // port
  EXPECT_EQ(table_.num_rules(), 2u);
}

TEST_F(RuleTableTest, SourceSpecificRuleBeatsAnySourceRule) {
  Add(2, "239.1.1.1", 5000, nullptr, &any_);
  Add(2, "239.1.1.1", 5000, "10.0.0.7", &ssm_);
  EXPECT_EQ(table_.Lookup(2, A("239.1.1.1"), 5000, A("10.0.0.7"))->counters, &ssm_);
  EXPECT_EQ(table_.Lookup(2, A("239.1.1.1"), 5000, A("10.0.0.8"))->counters, &any_);
}

TEST_F(RuleTableTest, SourceSpecificRuleAloneMatchesOnlyItsSource) {
  Add(2, "232.1.1.1", 5000, "10.0.0.7", &ssm_);
  EXPECT_EQ(table_.Lookup(2, A("232.1.1.1"), 5000, A("10.0.0.7"))->counters, &ssm_);
  EXPECT_EQ(table_.Lookup(2, A("232.1.1.1"), 5000, A("10.0.0.8")), nullptr);
}

TEST_F(RuleTableTest, OutputsGetDistinctSlotsAndStableAddresses) {
  OutputCounters c;
  OutputEntry e;
  e.counters = &c;
  const OutputEntry* first = table_.AddOutput(e);
  for (int i = 0; i < 100; ++i) table_.AddOutput(e);  // growth must not move earlier entries
  EXPECT_EQ(first->slot, 0u);
  EXPECT_EQ(first->counters, &c);
  EXPECT_EQ(table_.num_outputs(), 101u);
}

}  // namespace
}  // namespace mcr::engine::internal
