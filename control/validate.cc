#include "control/validate.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mcr::control {
namespace {

// Address classes by first octet; addresses are in network byte order, so the first octet is the
// lowest-addressed byte.
uint8_t FirstOctet(uint32_t addr) { return reinterpret_cast<const uint8_t*>(&addr)[0]; }
bool IsThisNetwork(uint32_t addr) { return FirstOctet(addr) == 0; }  // 0.0.0.0/8
bool IsLimitedBroadcast(uint32_t addr) { return addr == 0xffffffffu; }

class SystemHost final : public HostView {
 public:
  bool InterfaceExists(const std::string& name) const override {
    return if_nametoindex(name.c_str()) != 0;
  }
  std::string PrimaryName(const std::string& name) const override {
    // if_nametoindex resolves alternative names too; if_indextoname gives the primary one.
    char primary[IF_NAMESIZE] = {};
    const unsigned index = if_nametoindex(name.c_str());
    if (index == 0 || if_indextoname(index, primary) == nullptr) return name;
    return primary;
  }
  bool IsLocalAddress(uint32_t addr) const override {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return false;
    bool found = false;
    for (ifaddrs* i = list; i != nullptr && !found; i = i->ifa_next) {
      if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == AF_INET) {
        found = reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr == addr;
      }
    }
    freeifaddrs(list);
    return found;
  }
};

}  // namespace

HostViewPtr SystemHostView() { return std::make_unique<SystemHost>(); }

absl::Status ValidateRule(const engine::RuleSpec& spec, std::string_view path) {
  auto invalid = [&](std::string_view field, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrFormat("%s.%s: %s", path, field, what));
  };
  if (std::string problem = RuleNameProblem(spec.id); !problem.empty()) {
    return invalid("name", absl::StrFormat("'%s' is not a valid rule name: %s", spec.id, problem));
  }
  if (std::string problem = InterfaceNameProblem(spec.input_interface); !problem.empty()) {
    return invalid("input.interface", absl::StrFormat("'%s' is not a valid interface name: %s",
                                                      spec.input_interface, problem));
  }
  const std::string group = FormatIpv4(spec.input_group);
  if (IsThisNetwork(spec.input_group) || IsLimitedBroadcast(spec.input_group)) {
    return invalid("input.group",
                   absl::StrFormat("%s is neither a multicast group nor a unicast address", group));
  }
  if (spec.input_port == 0) return invalid("input.port", "0 is out of range 1..65535");
  if (spec.input_source != 0 &&
      (engine::IsMulticast(spec.input_source) || IsThisNetwork(spec.input_source) ||
       IsLimitedBroadcast(spec.input_source))) {
    return invalid("input.source", absl::StrFormat("%s is not a unicast source address",
                                                   FormatIpv4(spec.input_source)));
  }
  if (spec.outputs.empty()) return invalid("outputs", "a rule needs at least one output");
  if (spec.outputs.size() > kMaxOutputsPerRule) {
    return invalid("outputs", absl::StrFormat("%d outputs, more than the limit of %d per rule",
                                              spec.outputs.size(), kMaxOutputsPerRule));
  }
  // Outputs are keyed by (group, port, interface): the engine names them so, and two identical
  // destinations would only send every datagram twice.
  absl::flat_hash_map<std::tuple<uint32_t, uint16_t, std::string>, size_t> seen;
  for (size_t i = 0; i < spec.outputs.size(); ++i) {
    const engine::OutputSpec& o = spec.outputs[i];
    const std::string field = absl::StrCat("outputs[", i, "]");
    if (IsThisNetwork(o.dst_addr) || IsLimitedBroadcast(o.dst_addr)) {
      return invalid(absl::StrCat(field, ".group"),
                     absl::StrFormat("%s is neither a multicast group nor a unicast address",
                                     FormatIpv4(o.dst_addr)));
    }
    if (o.dst_port == 0) return invalid(absl::StrCat(field, ".port"), "0 is out of range 1..65535");
    if (std::string problem = InterfaceNameProblem(o.interface); !problem.empty()) {
      return invalid(
          absl::StrCat(field, ".interface"),
          absl::StrFormat("'%s' is not a valid interface name: %s", o.interface, problem));
    }
    if (o.dscp < -1 || o.dscp > 63) {
      return invalid(absl::StrCat(field, ".dscp"),
                     absl::StrFormat("%d is out of range 0..63", o.dscp));
    }
    if (o.dst_addr == spec.input_group && o.dst_port == spec.input_port &&
        o.interface == spec.input_interface) {
      return invalid(field,
                     absl::StrFormat("%s is the rule's own input (a loop)", FormatOutput(o)));
    }
    auto [it, inserted] = seen.try_emplace(std::make_tuple(o.dst_addr, o.dst_port, o.interface), i);
    if (!inserted) {
      return invalid(field,
                     absl::StrFormat("%s duplicates outputs[%d]", FormatOutput(o), it->second));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHost(const engine::RuleSpec& spec, std::string_view path, const HostView& host,
                       bool allow_missing, std::vector<std::string>* warnings) {
  auto missing = [&](std::string_view field, const std::string& name) -> absl::Status {
    if (allow_missing) {
      warnings->push_back(absl::StrFormat(
          "%s.%s: interface '%s' does not exist yet; rule '%s' is pending until it appears", path,
          field, name, spec.id));
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("%s.%s: interface '%s' does not exist (create it first, or pass "
                        "--allow-missing-interface to accept the rule as pending)",
                        path, field, name));
  };
  // Rules are told apart by interface name: an alternative name would let two rules capture the
  // same (interface, group, port) twice, so it is refused with the name to use.
  auto altname = [&](std::string_view field, const std::string& name) -> absl::Status {
    const std::string primary = host.PrimaryName(name);
    if (primary == name) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.%s: '%s' is an alternative name of interface '%s'; name it '%s'", path, field, name,
        primary, primary));
  };
  const bool input_exists = host.InterfaceExists(spec.input_interface);
  if (!input_exists) {
    if (auto s = missing("input.interface", spec.input_interface); !s.ok()) return s;
  } else if (auto s = altname("input.interface", spec.input_interface); !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < spec.outputs.size(); ++i) {
    const std::string& name = spec.outputs[i].interface;
    // One warning per missing interface is enough.
    if (name == spec.input_interface && !input_exists) continue;
    const std::string field = absl::StrCat("outputs[", i, "].interface");
    if (!host.InterfaceExists(name)) {
      if (auto s = missing(field, name); !s.ok()) return s;
    } else if (auto s = altname(field, name); !s.ok()) {
      return s;
    }
  }
  // A unicast input is relayed only if it is addressed to this host. With its interface absent
  // the address cannot be checked yet (it may come with the interface), so that is accepted
  // under the same flag.
  if (!engine::IsMulticast(spec.input_group) && !host.IsLocalAddress(spec.input_group)) {
    if (allow_missing && !input_exists) {
      warnings->push_back(absl::StrFormat("%s.input.group: %s is not an address of this host yet",
                                          path, FormatIpv4(spec.input_group)));
    } else {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s.input.group: %s is neither a multicast group nor an address of this host", path,
          FormatIpv4(spec.input_group)));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRuleSet(const std::vector<Rule>& rules) {
  if (rules.size() > kMaxRules) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d rules, more than the limit of %d", rules.size(), kMaxRules));
  }
  absl::flat_hash_set<std::string_view> ids;
  absl::flat_hash_map<std::tuple<std::string_view, uint32_t, uint16_t, uint32_t>, std::string_view>
      inputs;
  for (const Rule& rule : rules) {
    const engine::RuleSpec& s = rule.spec;
    if (!ids.insert(s.id).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("name: rule id '%s' is used by more than one rule", s.id));
    }
    auto [it, inserted] =
        inputs.try_emplace(std::make_tuple(std::string_view(s.input_interface), s.input_group,
                                           s.input_port, s.input_source),
                           s.id);
    if (!inserted) {
      return absl::InvalidArgumentError(
          absl::StrFormat("input: %s of rule '%s' is already relayed by rule '%s'",
                          DescribeInput(s), s.id, it->second));
    }
  }
  return absl::OkStatus();
}

}  // namespace mcr::control
