#pragma once
// Semantic validation of rules before they reach the engine (which trusts them): address
// classes, loops, duplicates, limits, and — through the HostView seam — that interfaces and
// local addresses exist. Every refusal names the field and the bad value. Control thread.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "control/rule_schema.h"
#include "engine/rule.h"

namespace mcr::control {

/// What validation needs to know about the host. The real one asks the kernel of the daemon's
/// network namespace at each call; tests use a fake.
class HostView {
 public:
  virtual ~HostView() = default;
  virtual bool InterfaceExists(const std::string& name) const = 0;
  /// The interface's own name when `name` is one of its alternative names (`ip link property
  /// add ... altname`), else `name`.
  virtual std::string PrimaryName(const std::string& name) const { return name; }
  /// True when `addr` (network byte order) is assigned to an interface of this host.
  virtual bool IsLocalAddress(uint32_t addr) const = 0;
};
using HostViewPtr = std::unique_ptr<HostView>;

/// The kernel's view (if_nametoindex, getifaddrs).
HostViewPtr SystemHostView();

/// Host-independent checks of one rule: input group multicast or unicast (not 0.0.0.0/8, not
/// 255.255.255.255), source unicast, 1..kMaxOutputsPerRule outputs, each output unicast or
/// multicast, no output twice (same group, port and interface), no output equal to the input (a
/// loop), field ranges, valid id. `path` prefixes field names in messages ("rule", "rules[3]").
absl::Status ValidateRule(const engine::RuleSpec& spec, std::string_view path);

/// Host checks: every interface exists and a unicast input group is a local address. With
/// `allow_missing` a missing interface (and a unicast input group on one) is accepted with a
/// warning appended to `warnings` instead: the engine starts relaying when it appears.
absl::Status CheckHost(const engine::RuleSpec& spec, std::string_view path, const HostView& host,
                       bool allow_missing, std::vector<std::string>* warnings);

/// Set-wide checks: at most kMaxRules, ids unique, input tuples (interface, group, port,
/// source) unique.
absl::Status ValidateRuleSet(const std::vector<Rule>& rules);

}  // namespace mcr::control
