#pragma once
// The rule schema shared by the control protocol, config files and the state file: IPv4 text
// forms, stable rule ids, the JSON form of a rule, and the per-field range checks that the JSON
// reader and mcrctl's outputs syntax both apply. Pure functions; any thread.
//
// JSON form of a rule (docs/REFERENCE.md, "Rule schema"):
//   {"name": "cam1",                                   // optional; becomes the id
//    "input":   {"interface": "in0", "group": "239.1.1.1", "port": 5000,
//                "source": "10.1.1.1"},                // source optional: (S,G)
//    "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "out0",
//                 "ttl": 4, "dscp": 46}]}              // ttl, dscp optional

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/rule.h"
#include "nlohmann/json.hpp"

namespace mcr::control {

/// Most outputs one rule may have.
inline constexpr size_t kMaxOutputsPerRule = 1024;
/// Most rules the daemon holds.
inline constexpr size_t kMaxRules = 65536;
/// Longest rule name.
inline constexpr size_t kMaxNameLength = 64;

/// Where a running rule came from: config rules are replaced by the next reload of the config
/// file; control rules (mcrctl add, config load) stay until removed.
enum class RuleOrigin { kControl, kConfig };

/// A rule as the control plane holds it. `spec.id` is the rule's name, or RuleIdFor(spec).
struct Rule {
  engine::RuleSpec spec;
  RuleOrigin origin = RuleOrigin::kControl;

  bool operator==(const Rule&) const = default;
};

/// Parses dotted-quad IPv4 ("239.1.1.1") to network byte order; InvalidArgument otherwise.
absl::StatusOr<uint32_t> ParseIpv4(std::string_view text);
/// Network byte order to dotted quad.
std::string FormatIpv4(uint32_t addr);

/// The id of an unnamed rule: 12 hex digits of the FNV-1a 64 hash of its input tuple
/// "interface\x1fgroup\x1fport\x1fsource" (dotted quads, decimal port, source "0.0.0.0" for (*,G)).
/// Stable across restarts, builds and hosts.
std::string RuleIdFor(const engine::RuleSpec& spec);
/// True when the rule carries a chosen name rather than its tuple hash.
inline bool IsNamed(const engine::RuleSpec& spec) { return spec.id != RuleIdFor(spec); }

/// "in0 239.1.1.1:5000", with " source 10.0.0.1" for an (S,G) rule.
std::string DescribeInput(const engine::RuleSpec& spec);
/// The outputs syntax of one output: "239.2.2.2:6000:out0[:ttl=4][:dscp=46]".
std::string FormatOutput(const engine::OutputSpec& output);

/// Linux interface name rules (dev_valid_name): 1..15 bytes, not "." or "..", no '/', ':' or
/// whitespace. Returns the reason it is invalid, or empty.
std::string InterfaceNameProblem(std::string_view name);
/// Rule names: 1..64 of [A-Za-z0-9._-], starting with a letter or digit. Returns the reason, or
/// empty.
std::string RuleNameProblem(std::string_view name);

// Range checks; `field` names the value in the message ("outputs[0].port: 70000 is out of
// range 1..65535").
absl::StatusOr<uint16_t> CheckPort(int64_t value, std::string_view field);
absl::StatusOr<uint8_t> CheckTtl(int64_t value, std::string_view field);
absl::StatusOr<int> CheckDscp(int64_t value, std::string_view field);

/// Parses mcrctl's outputs syntax: comma-separated GROUP:PORT:INTERFACE[:ttl=N][:dscp=N], e.g.
/// "239.2.2.2:6000:eth1,10.0.0.9:7000:eth2:ttl=8:dscp=46". `ttl` and `dscp` (from --ttl and
/// --dscp) apply to every output that does not set its own. Errors quote the offending entry.
absl::StatusOr<std::vector<engine::OutputSpec>> ParseOutputs(std::string_view text,
                                                             std::optional<int64_t> ttl,
                                                             std::optional<int64_t> dscp);

/// JSON form of a rule ("id" always; "name" only for named rules; ttl/dscp only when set).
nlohmann::json RuleToJson(const engine::RuleSpec& spec);
nlohmann::json OutputToJson(const engine::OutputSpec& output);

/// Reads a rule from JSON. Unknown keys, wrong types and out-of-range values are refused with
/// `path` prefixed to the field ("rules[2].outputs[0].port: ..."). The id is the name when given,
/// else RuleIdFor; an "id" key must match it (it is accepted so that `config show` output loads
/// back). Only field-level checks: see validate.h for address classes, loops and host checks.
absl::StatusOr<engine::RuleSpec> RuleFromJson(const nlohmann::json& json, std::string_view path);

}  // namespace mcr::control
