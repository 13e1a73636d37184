#pragma once
// Config and state documents. Both use the rule schema of rule_schema.h:
//   config file:  {"version": 1, "rules": [RULE, ...]}          (// and /* */ comments allowed)
//   state file:   {"version": 1, "rules": [RULE + {"origin": "control"|"config"}, ...]}
// A config file is what an operator writes (and what `mcrctl config show` prints); the state file
// is mcrd's record of the running set, rewritten on every change and restored at start.
// Pure functions except the file readers; control thread and mcrctl.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "control/rule_schema.h"
#include "engine/rule.h"
#include "nlohmann/json.hpp"

namespace mcr::control {

/// Largest config or state file read from disk (a state file of kMaxRules rules fits). Config
/// text sent over the control socket is bounded by the protocol's kMaxMessageBytes instead.
inline constexpr size_t kMaxFileBytes = size_t{64} << 20;

/// Parses a config document: bounded JSON with comments; each rule field-checked and
/// ValidateRule-checked ("rules[3].outputs[0].port: ..."); ids and input tuples unique within
/// the file. Host checks (interfaces) are the caller's: they depend on where it is applied.
absl::StatusOr<std::vector<engine::RuleSpec>> ParseConfig(std::string_view text);
/// Reads and parses a config file; errors name the file.
absl::StatusOr<std::vector<engine::RuleSpec>> ReadConfigFile(const std::string& path);
/// The config document of a rule set (origins dropped): `config show`, `config save`.
nlohmann::json ConfigToJson(const std::vector<Rule>& rules);

/// The state document, pretty-printed with a trailing newline.
std::string StateToText(const std::vector<Rule>& rules);
/// Parses a state document (same checks as ParseConfig, plus "origin").
absl::StatusOr<std::vector<Rule>> ParseState(std::string_view text);

}  // namespace mcr::control
