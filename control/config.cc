#include "control/config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/atomic_file.h"
#include "control/protocol.h"
#include "control/validate.h"

namespace mcr::control {
namespace {

using nlohmann::json;

// Shared by config and state: the envelope and the rules array. `entry` reads one rule.
template <typename T, typename ReadEntry>
absl::StatusOr<std::vector<T>> ParseDocument(std::string_view text, ReadEntry read_entry) {
  auto parsed = ParseBoundedJson(text, /*allow_comments=*/true, kMaxFileBytes);
  if (!parsed.ok()) return parsed.status();
  const json& doc = *parsed;
  if (!doc.is_object())
    return absl::InvalidArgumentError("expected a JSON object {\"version\": 1, \"rules\": [...]}");
  for (const auto& [key, value] : doc.items()) {
    if (key != "version" && key != "rules" && key != "generator") {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: unknown field (allowed: version, rules, generator)", key));
    }
  }
  if (auto v = doc.find("version"); v != doc.end()) {
    if (!v->is_number_integer() || v->get<int64_t>() != kProtocolVersion) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "version: unsupported version %s (this mcrd reads %d)",
          v->dump(-1, ' ', false, json::error_handler_t::replace), kProtocolVersion));
    }
  }
  auto rules = doc.find("rules");
  if (rules == doc.end() || !rules->is_array()) {
    return absl::InvalidArgumentError("rules: missing or not an array");
  }
  if (rules->size() > kMaxRules) {
    return absl::InvalidArgumentError(
        absl::StrFormat("rules: %d rules, more than the limit of %d", rules->size(), kMaxRules));
  }
  std::vector<T> out;
  out.reserve(rules->size());
  for (size_t i = 0; i < rules->size(); ++i) {
    const std::string path = absl::StrCat("rules[", i, "]");
    auto entry = read_entry((*rules)[i], path);
    if (!entry.ok()) return entry.status();
    out.push_back(*std::move(entry));
  }
  return out;
}

absl::StatusOr<engine::RuleSpec> ReadRule(const json& value, const std::string& path) {
  auto spec = RuleFromJson(value, path);
  if (!spec.ok()) return spec.status();
  if (auto s = ValidateRule(*spec, path); !s.ok()) return s;
  return spec;
}

const char* OriginName(RuleOrigin origin) {
  return origin == RuleOrigin::kConfig ? "config" : "control";
}

}  // namespace

absl::StatusOr<std::vector<engine::RuleSpec>> ParseConfig(std::string_view text) {
  auto specs = ParseDocument<engine::RuleSpec>(text, ReadRule);
  if (!specs.ok()) return specs.status();
  std::vector<Rule> rules;
  rules.reserve(specs->size());
  for (const auto& s : *specs) rules.push_back(Rule{s, RuleOrigin::kConfig});
  if (auto s = ValidateRuleSet(rules); !s.ok()) return s;
  return specs;
}

absl::StatusOr<std::vector<engine::RuleSpec>> ReadConfigFile(const std::string& path) {
  auto text = ReadFile(path, kMaxFileBytes);
  if (!text.ok()) return text.status();
  auto specs = ParseConfig(*text);
  if (!specs.ok()) {
    return absl::Status(specs.status().code(),
                        absl::StrCat("config file ", path, ": ", specs.status().message()));
  }
  return specs;
}

json ConfigToJson(const std::vector<Rule>& rules) {
  json list = json::array();
  for (const Rule& r : rules) list.push_back(RuleToJson(r.spec));
  return {{"version", kProtocolVersion}, {"rules", std::move(list)}};
}

std::string StateToText(const std::vector<Rule>& rules) {
  json list = json::array();
  for (const Rule& r : rules) {
    json entry = RuleToJson(r.spec);
    entry["origin"] = OriginName(r.origin);
    list.push_back(std::move(entry));
  }
  json doc = {{"version", kProtocolVersion},
              {"generator", "mcrd " MCR_VERSION},
              {"rules", std::move(list)}};
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

absl::StatusOr<std::vector<Rule>> ParseState(std::string_view text) {
  auto rules = ParseDocument<Rule>(
      text, [](const json& value, const std::string& path) -> absl::StatusOr<Rule> {
        Rule rule;
        json copy = value;
        if (copy.is_object()) {
          if (auto o = copy.find("origin"); o != copy.end()) {
            if (*o == "config") {
              rule.origin = RuleOrigin::kConfig;
            } else if (*o != "control") {
              return absl::InvalidArgumentError(
                  absl::StrFormat("%s.origin: expected \"control\" or \"config\"", path));
            }
            copy.erase(o);
          }
        }
        auto spec = ReadRule(copy, path);
        if (!spec.ok()) return spec.status();
        rule.spec = *std::move(spec);
        return rule;
      });
  if (!rules.ok()) return rules.status();
  if (auto s = ValidateRuleSet(*rules); !s.ok()) return s;
  return rules;
}

}  // namespace mcr::control
