#pragma once
// Test doubles for the controller's seams: a host with a fixed set of interfaces and addresses,
// and a data plane that records what it was given.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/rule_schema.h"
#include "control/rule_sink.h"
#include "control/validate.h"

namespace mcr::control {

/// An address in network byte order; the text must be a valid dotted quad.
inline uint32_t Ip(const char* text) { return *ParseIpv4(text); }

/// A valid rule: in0 239.1.1.1:5000 -> 239.2.2.2:6000 on out0, defaults, hash id.
inline engine::RuleSpec SampleSpec() {
  engine::RuleSpec s;
  s.input_interface = "in0";
  s.input_group = Ip("239.1.1.1");
  s.input_port = 5000;
  s.outputs.push_back({Ip("239.2.2.2"), 6000, "out0", 0, -1});
  s.id = RuleIdFor(s);
  return s;
}

class FakeHost final : public HostView {
 public:
  std::set<std::string> interfaces{"in0", "out0", "out1"};
  std::set<uint32_t> addresses{*ParseIpv4("10.10.1.2"), *ParseIpv4("10.10.2.1")};

  /// Alternative name -> primary name; both must be in `interfaces`.
  std::map<std::string, std::string> altnames;

  bool InterfaceExists(const std::string& name) const override {
    return interfaces.count(name) > 0;
  }
  std::string PrimaryName(const std::string& name) const override {
    auto it = altnames.find(name);
    return it == altnames.end() ? name : it->second;
  }
  bool IsLocalAddress(uint32_t addr) const override { return addresses.count(addr) > 0; }
};

class FakeSink final : public RuleSink {
 public:
  /// Returned by the next Apply calls when not OK.
  absl::Status fail;
  /// A warning every Apply reports (as a failed join would).
  std::string warning;
  std::vector<engine::RuleSpec> applied;
  int applies = 0;
  int refreshes = 0;
  std::vector<int> last_deleted;  // of the last RefreshInterfaces
  /// Counters reported for every rule and output.
  uint64_t packets = 0;
  /// What Memberships() reports.
  std::vector<MembershipInfo> memberships;

  absl::Status Apply(const std::vector<engine::RuleSpec>& rules,
                     std::vector<std::string>* warnings) override {
    ++applies;
    if (!fail.ok()) return fail;
    applied = rules;
    if (!warning.empty()) warnings->push_back(warning);
    return absl::OkStatus();
  }
  void RefreshInterfaces(const std::vector<int>& deleted) override {
    ++refreshes;
    last_deleted = deleted;
  }
  std::vector<MembershipInfo> Memberships() const override { return memberships; }
  engine::EngineStats Snapshot() const override {
    engine::EngineStats stats;
    for (const auto& spec : applied) {
      engine::RuleStats r;
      r.spec = spec;
      r.shard = 1;
      r.input_up = true;
      r.packets = packets;
      r.bytes = packets * 1000;
      for (const auto& o : spec.outputs) {
        engine::OutputStats os;
        os.name = FormatOutput(o);
        os.spec = o;
        os.active = true;
        os.packets = packets;
        os.bytes = packets * 1000;
        os.errors[static_cast<size_t>(engine::EgressError::kNoBuffers)] = 2;
        os.errors[static_cast<size_t>(engine::EgressError::kRefused)] = 3;
        r.outputs.push_back(os);
      }
      stats.rules.push_back(r);
    }
    engine::ShardStats s;
    s.index = 0;
    s.cpu = 0;
    s.numa_node = 0;
    s.rules = applied.size();
    s.received = packets;
    s.kernel_drops = {{"in0", 4}};
    s.drops = {{"fragment", 1}, {"not_udp", 2}};
    stats.shards.push_back(s);
    stats.interfaces.push_back({"in0", 2, true});
    return stats;
  }
};

}  // namespace mcr::control
