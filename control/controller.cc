#include "control/controller.h"

#include <initializer_list>
#include <string_view>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "control/atomic_file.h"
#include "control/config.h"

namespace mcr::control {
namespace {

using nlohmann::json;

// Refuses fields a request type does not know (a typo such as "replce" must not be ignored).
absl::Status CheckFields(const json& msg, std::initializer_list<std::string_view> extra) {
  for (const auto& [key, value] : msg.items()) {
    if (key == "version" || key == "id" || key == "type") continue;
    bool known = false;
    for (std::string_view e : extra) known = known || key == e;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: unknown field for request type '%s'", key, msg.value("type", "")));
    }
  }
  return absl::OkStatus();
}

// The pool's memberships indexed by what a rule's input needs: (*,G) or (S,G) on an interface,
// or the sink of a unicast input. Built once per `list`, so a large rule set stays linear.
class MembershipIndex {
 public:
  explicit MembershipIndex(const std::vector<MembershipInfo>& all) {
    for (const MembershipInfo& m : all) {
      if (m.kind == MembershipInfo::Kind::kUnicastSink) {
        sinks_.emplace(std::pair{m.group, m.port}, &m);
      } else {
        groups_.emplace(std::tuple{std::string_view(m.interface), m.group, m.source}, &m);
      }
    }
  }
  // Null when the pool has none for this rule (not synced yet).
  const MembershipInfo* Find(const engine::RuleSpec& r) const {
    if (engine::IsMulticast(r.input_group)) {
      auto it = groups_.find(
          std::tuple{std::string_view(r.input_interface), r.input_group, r.input_source});
      return it == groups_.end() ? nullptr : it->second;
    }
    auto it = sinks_.find(std::pair{r.input_group, r.input_port});
    return it == sinks_.end() ? nullptr : it->second;
  }

 private:
  absl::flat_hash_map<std::tuple<std::string_view, uint32_t, uint32_t>, const MembershipInfo*>
      groups_;
  absl::flat_hash_map<std::pair<uint32_t, uint16_t>, const MembershipInfo*> sinks_;
};

json MembershipJson(const MembershipInfo* m) {
  if (m == nullptr) return {{"state", "none"}};
  const char* kind = m->kind == MembershipInfo::Kind::kAnySource        ? "any-source"
                     : m->kind == MembershipInfo::Kind::kSourceSpecific ? "source-specific"
                                                                        : "unicast-sink";
  const char* state = m->state == MembershipInfo::State::kActive    ? "active"
                      : m->state == MembershipInfo::State::kPending ? "pending"
                                                                    : "failed";
  json j = {{"kind", kind}, {"state", state}};
  if (!m->detail.empty()) j["detail"] = m->detail;
  return j;
}

absl::StatusOr<bool> GetBool(const json& msg, std::string_view key) {
  auto it = msg.find(key);
  if (it == msg.end()) return false;
  if (!it->is_boolean()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: expected true or false", key));
  }
  return it->get<bool>();
}

absl::StatusOr<std::string> GetString(const json& msg, std::string_view key) {
  auto it = msg.find(key);
  if (it == msg.end()) return absl::InvalidArgumentError(absl::StrFormat("%s: missing", key));
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: expected a string", key));
  }
  return it->get<std::string>();
}

std::vector<engine::RuleSpec> Specs(const std::vector<Rule>& rules) {
  std::vector<engine::RuleSpec> specs;
  specs.reserve(rules.size());
  for (const Rule& r : rules) specs.push_back(r.spec);
  return specs;
}

ChangeSummary Diff(const std::vector<Rule>& before, const std::vector<Rule>& after) {
  ChangeSummary s;
  absl::flat_hash_map<std::string_view, const Rule*> old;
  for (const Rule& r : before) old.emplace(r.spec.id, &r);
  absl::flat_hash_map<std::string_view, bool> kept;
  for (const Rule& r : after) {
    auto it = old.find(r.spec.id);
    if (it == old.end()) {
      s.added.push_back(r.spec.id);
    } else if (!(it->second->spec == r.spec)) {
      s.changed.push_back(r.spec.id);
    } else {
      ++s.unchanged;
    }
    kept.emplace(r.spec.id, true);
  }
  for (const Rule& r : before) {
    if (!kept.contains(r.spec.id)) s.removed.push_back(r.spec.id);
  }
  return s;
}

// Congestion on this host (raise buffers or lower the rate) counts as a drop; everything else
// that kept a datagram from leaving counts as an error.
bool IsDrop(engine::EgressError e) {
  return e == engine::EgressError::kWouldBlock || e == engine::EgressError::kNoBuffers;
}

const char* OriginName(RuleOrigin origin) {
  return origin == RuleOrigin::kConfig ? "config" : "control";
}

}  // namespace

json ChangeSummary::ToJson() const {
  json j = {{"added", added}, {"removed", removed}, {"changed", changed}, {"unchanged", unchanged}};
  if (!warnings.empty()) j["warnings"] = warnings;
  return j;
}

std::string ChangeSummary::Describe() const {
  return absl::StrFormat("%d added, %d removed, %d changed, %d unchanged", added.size(),
                         removed.size(), changed.size(), unchanged);
}

Controller::Controller(ControllerOptions options, RuleSink& sink, const HostView& host, Logger& log)
    : options_(std::move(options)), sink_(sink), host_(host), log_(log) {}

absl::Status Controller::Start() {
  std::vector<Rule> restored;
  ChangeSummary summary;
  if (!options_.state_file.empty()) {
    auto text = ReadFile(options_.state_file, kMaxFileBytes);
    if (text.ok()) {
      auto state = ParseState(*text);
      if (!state.ok()) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "state file %s: %s (fix it, or move it aside to start without the saved rules)",
            options_.state_file, state.status().message()));
      }
      restored = *std::move(state);
      // Saved rules were accepted once; an interface missing now (not yet created at boot)
      // leaves its rule pending rather than dropping it.
      for (const Rule& r : restored) {
        if (auto s = CheckHost(r.spec, absl::StrCat("rule '", r.spec.id, "'"), host_, true,
                               &summary.warnings);
            !s.ok()) {
          summary.warnings.push_back(std::string(s.message()));
        }
      }
      log_.Info("restored %d rules from %s", restored.size(), options_.state_file);
    } else if (!absl::IsNotFound(text.status())) {
      return text.status();
    }
  }
  std::vector<Rule> next = restored;
  if (!options_.config_file.empty()) {
    auto config = ReadConfigFile(options_.config_file);
    if (!config.ok()) return config.status();
    // A rule added with mcrctl whose input a config rule now has (the rule was moved into the
    // config under another name): at runtime `reload` refuses that, and says so, but refusing to
    // start would take every other rule down with it. The config is what the operator edits,
    // so its rule takes over the input.
    std::erase_if(restored, [&](const Rule& r) {
      if (r.origin != RuleOrigin::kControl) return false;
      for (const engine::RuleSpec& c : *config) {
        if (c.id != r.spec.id && engine::SameInput(c, r.spec)) {
          summary.warnings.push_back(absl::StrFormat(
              "rule '%s' (added with mcrctl) is dropped: config rule '%s' relays its input %s",
              r.spec.id, c.id, DescribeInput(r.spec)));
          return true;
        }
      }
      return false;
    });
    // Merged over the restored set as a reload merges over the running one.
    auto merged = Merge(restored, *config, RuleOrigin::kConfig, /*replace=*/false,
                        options_.allow_missing_interface, &summary.warnings);
    if (!merged.ok()) {
      return absl::Status(merged.status().code(), absl::StrCat("config file ", options_.config_file,
                                                               ": ", merged.status().message()));
    }
    next = *std::move(merged);
    log_.Info("read %d rules from config file %s", config->size(), options_.config_file);
  }
  if (auto s = Commit(std::move(next), &summary); !s.ok()) return s;
  for (const auto& w : summary.warnings) log_.Warning("%s", w);
  log_.Info("running %d rules", rules_.size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Rule>> Controller::Merge(const std::vector<Rule>& base,
                                                    const std::vector<engine::RuleSpec>& incoming,
                                                    RuleOrigin origin, bool replace,
                                                    bool allow_missing,
                                                    std::vector<std::string>* warnings) const {
  absl::flat_hash_map<std::string_view, const engine::RuleSpec*> by_id;
  for (const auto& spec : incoming) by_id.emplace(spec.id, &spec);
  std::vector<Rule> next;
  absl::flat_hash_map<std::string_view, bool> placed;
  for (const Rule& r : base) {
    auto it = by_id.find(r.spec.id);
    if (it != by_id.end()) {
      // Set in place, so that `list` keeps its order.
      next.push_back(Rule{*it->second, origin});
      placed.emplace(r.spec.id, true);
    } else if (replace) {
      continue;
    } else if (origin == RuleOrigin::kConfig && r.origin == RuleOrigin::kConfig) {
      continue;  // a config rule the config file no longer has
    } else {
      next.push_back(r);
    }
  }
  for (const auto& spec : incoming) {
    if (!placed.contains(spec.id)) next.push_back(Rule{spec, origin});
  }
  // Host checks only for what changes: a running rule whose interface vanished meanwhile must
  // not block an unrelated reload.
  absl::flat_hash_map<std::string_view, const engine::RuleSpec*> running;
  for (const Rule& r : base) running.emplace(r.spec.id, &r.spec);
  for (size_t i = 0; i < incoming.size(); ++i) {
    const auto& spec = incoming[i];
    auto it = running.find(spec.id);
    if (it != running.end() && *it->second == spec) continue;
    if (auto s = CheckHost(spec, absl::StrCat("rules[", i, "]"), host_, allow_missing, warnings);
        !s.ok()) {
      return s;
    }
  }
  if (auto s = ValidateRuleSet(next); !s.ok()) return s;
  return next;
}

absl::Status Controller::Commit(std::vector<Rule> next, ChangeSummary* summary) {
  if (auto s = ValidateRuleSet(next); !s.ok()) return s;
  ChangeSummary diff = Diff(rules_, next);
  diff.warnings = std::move(summary->warnings);
  *summary = std::move(diff);
  if (next == rules_) return absl::OkStatus();
  // A change of origin alone concerns only the state file.
  if (!summary->empty()) {
    if (auto s = sink_.Apply(Specs(next), &summary->warnings); !s.ok()) {
      log_.Warning("data plane refused the change (%s): %s", summary->Describe(), s.message());
      return s;
    }
  }
  rules_ = std::move(next);
  if (auto s = SaveState(); !s.ok()) {
    log_.Error("%s", s.message());
    summary->warnings.push_back(absl::StrCat(
        "the change is running but was not saved (retried every second): ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status Controller::SaveState() {
  if (options_.state_file.empty()) return absl::OkStatus();
  // 0640: rules reveal the network's layout; the socket group may read them via mcrctl anyway.
  absl::Status s = WriteFileAtomically(options_.state_file, StateToText(rules_), 0640);
  if (s.ok() && unsaved_) log_.Info("state file %s saved again", options_.state_file);
  unsaved_ = !s.ok();
  return s;
}

absl::Status Controller::Flush() { return SaveState(); }

absl::StatusOr<ChangeSummary> Controller::Reload() {
  if (options_.config_file.empty()) {
    return absl::FailedPreconditionError("mcrd was started without --config: nothing to reload");
  }
  auto config = ReadConfigFile(options_.config_file);
  if (!config.ok()) return config.status();
  ChangeSummary summary;
  auto next = Merge(rules_, *config, RuleOrigin::kConfig, /*replace=*/false,
                    options_.allow_missing_interface, &summary.warnings);
  if (!next.ok()) {
    return absl::Status(next.status().code(), absl::StrCat("config file ", options_.config_file,
                                                           ": ", next.status().message()));
  }
  if (auto s = Commit(*std::move(next), &summary); !s.ok()) return s;
  log_.Info("reloaded %s: %s", options_.config_file, summary.Describe());
  for (const auto& w : summary.warnings) log_.Warning("%s", w);
  return summary;
}

void Controller::OnInterfacesChanged(const std::vector<int>& deleted) {
  sink_.RefreshInterfaces(deleted);
}

void Controller::Tick(std::chrono::steady_clock::time_point now) {
  rates_.Sample(sink_.Snapshot(), now);
  sink_.Maintain(now);
  // A failed save (disk full, read-only) is retried until it succeeds: otherwise the file would
  // hold an older set until the next change, and a crash would bring that set back.
  if (unsaved_) (void)SaveState();
}

json Controller::Handle(const Request& request) {
  absl::StatusOr<json> body;
  // Exceptions from nlohmann-json stop here: a bug in one handler must not end the daemon.
  try {
    body = Dispatch(request);
  } catch (const std::exception& e) {
    body = absl::InternalError(absl::StrCat("internal error: ", e.what()));
  }
  if (!body.ok()) {
    // A refused change is an event worth a line; a failed query is the client's business.
    const bool change = request.type == RequestType::kAdd || request.type == RequestType::kRemove ||
                        request.type == RequestType::kConfigLoad ||
                        request.type == RequestType::kReload;
    if (change) {
      log_.Info("refused %s: %s", RequestTypeName(request.type), body.status().message());
    } else {
      log_.Debug("refused %s: %s", RequestTypeName(request.type), body.status().message());
    }
    return ErrorResponse(request.id, body.status());
  }
  json response = OkResponse(request.id);
  response.update(*body);
  return response;
}

absl::StatusOr<json> Controller::Dispatch(const Request& request) {
  const json& msg = request.message;
  switch (request.type) {
    case RequestType::kPing:
      if (auto s = CheckFields(msg, {}); !s.ok()) return s;
      return json{{"daemon", MCR_VERSION}};
    case RequestType::kVersion:
      if (auto s = CheckFields(msg, {}); !s.ok()) return s;
      return json{{"daemon", MCR_VERSION}, {"protocol", kProtocolVersion}};
    case RequestType::kAdd:
      return HandleAdd(msg);
    case RequestType::kRemove:
      return HandleRemove(msg);
    case RequestType::kList:
      if (auto s = CheckFields(msg, {}); !s.ok()) return s;
      return HandleList();
    case RequestType::kStats:
      if (auto s = CheckFields(msg, {}); !s.ok()) return s;
      return HandleStats();
    case RequestType::kShards:
      if (auto s = CheckFields(msg, {}); !s.ok()) return s;
      return HandleShards();
    case RequestType::kLogLevelGet:
      if (auto s = CheckFields(msg, {}); !s.ok()) return s;
      return json{{"level", LogLevelName(log_.level())}};
    case RequestType::kLogLevelSet:
      return HandleLogLevelSet(msg);
    case RequestType::kConfigShow:
      if (auto s = CheckFields(msg, {}); !s.ok()) return s;
      return json{{"config", ConfigToJson(rules_)}};
    case RequestType::kConfigLoad:
      return HandleConfigLoad(msg, /*check_only=*/false);
    case RequestType::kConfigCheck:
      return HandleConfigLoad(msg, /*check_only=*/true);
    case RequestType::kReload: {
      if (auto s = CheckFields(msg, {}); !s.ok()) return s;
      auto summary = Reload();
      if (!summary.ok()) return summary.status();
      return summary->ToJson();
    }
  }
  return absl::InvalidArgumentError("type: unknown request type");
}

absl::StatusOr<json> Controller::HandleAdd(const json& msg) {
  if (auto s = CheckFields(msg, {"rule", "allow_missing_interface"}); !s.ok()) return s;
  auto allow_missing = GetBool(msg, "allow_missing_interface");
  if (!allow_missing.ok()) return allow_missing.status();
  auto it = msg.find("rule");
  if (it == msg.end()) return absl::InvalidArgumentError("rule: missing");
  auto spec = RuleFromJson(*it, "rule");
  if (!spec.ok()) return spec.status();
  if (auto s = ValidateRule(*spec, "rule"); !s.ok()) return s;
  // The input first: for an unnamed rule a clash of ids is a clash of inputs, and saying so is
  // clearer.
  for (const Rule& r : rules_) {
    const engine::RuleSpec& o = r.spec;
    if (engine::SameInput(o, *spec)) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "rule.input: %s is already relayed by rule '%s'", DescribeInput(o), o.id));
    }
  }
  for (const Rule& r : rules_) {
    if (r.spec.id == spec->id) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "rule.name: a rule with id '%s' already exists (remove it first, or choose another "
          "name)",
          spec->id));
    }
  }
  ChangeSummary summary;
  if (auto s = CheckHost(*spec, "rule", host_, *allow_missing, &summary.warnings); !s.ok()) {
    return s;
  }
  std::vector<Rule> next = rules_;
  next.push_back(Rule{*spec, RuleOrigin::kControl});
  if (auto s = Commit(std::move(next), &summary); !s.ok()) return s;
  log_.Info("rule %s added: %s -> %s", spec->id, DescribeInput(*spec),
            absl::StrJoin(spec->outputs, ",", [](std::string* out, const engine::OutputSpec& o) {
              out->append(FormatOutput(o));
            }));
  for (const auto& w : summary.warnings) log_.Warning("%s", w);
  json rule = RuleToJson(*spec);
  for (const auto& r : sink_.Snapshot().rules) {
    if (r.spec.id == spec->id) rule["shard"] = r.shard;
  }
  json body = {{"rule", std::move(rule)}};
  if (!summary.warnings.empty()) body["warnings"] = summary.warnings;
  return body;
}

absl::StatusOr<json> Controller::HandleRemove(const json& msg) {
  if (auto s = CheckFields(msg, {"rule_id", "name"}); !s.ok()) return s;
  const bool by_id = msg.contains("rule_id");
  if (by_id == msg.contains("name")) {
    return absl::InvalidArgumentError("rule_id or name: give exactly one");
  }
  const char* field = by_id ? "rule_id" : "name";
  auto id = GetString(msg, field);
  if (!id.ok()) return id.status();
  std::vector<Rule> next;
  next.reserve(rules_.size());
  for (const Rule& r : rules_) {
    if (r.spec.id != *id) next.push_back(r);
  }
  if (next.size() == rules_.size()) {
    return absl::NotFoundError(
        absl::StrFormat("%s: no rule '%s' (`mcrctl list` shows the ids)", field, *id));
  }
  ChangeSummary summary;
  if (auto s = Commit(std::move(next), &summary); !s.ok()) return s;
  log_.Info("rule %s removed", *id);
  for (const auto& w : summary.warnings) log_.Warning("%s", w);
  json body = {{"removed", *id}};
  if (!summary.warnings.empty()) body["warnings"] = summary.warnings;
  return body;
}

json Controller::HandleList() const {
  const engine::EngineStats stats = sink_.Snapshot();
  const std::vector<MembershipInfo> memberships = sink_.Memberships();
  const MembershipIndex membership_index(memberships);
  absl::flat_hash_map<std::string_view, const engine::RuleStats*> by_id;
  for (const auto& r : stats.rules) by_id.emplace(r.spec.id, &r);
  json rules = json::array();
  for (const Rule& r : rules_) {
    json j = RuleToJson(r.spec);
    j["origin"] = OriginName(r.origin);
    auto it = by_id.find(r.spec.id);
    j["shard"] = it == by_id.end() ? -1 : it->second->shard;
    j["input_up"] = it != by_id.end() && it->second->input_up;
    j["input_ifindex"] = it != by_id.end() ? it->second->input_ifindex : 0;
    j["membership"] = MembershipJson(membership_index.Find(r.spec));
    for (size_t i = 0; i < r.spec.outputs.size(); ++i) {
      const bool active =
          it != by_id.end() && i < it->second->outputs.size() && it->second->outputs[i].active;
      j["outputs"][i]["active"] = active;
    }
    rules.push_back(std::move(j));
  }
  json interfaces = json::array();
  for (const auto& i : stats.interfaces) {
    interfaces.push_back({{"name", i.name}, {"ifindex", i.ifindex}, {"up", i.up}});
  }
  return {{"rules", std::move(rules)}, {"interfaces", std::move(interfaces)}};
}

json Controller::HandleStats() const {
  const engine::EngineStats stats = sink_.Snapshot();
  absl::flat_hash_map<std::string_view, const engine::RuleStats*> by_id;
  for (const auto& r : stats.rules) by_id.emplace(r.spec.id, &r);
  json rules = json::array();
  for (const Rule& rule : rules_) {
    auto it = by_id.find(rule.spec.id);
    if (it == by_id.end()) continue;
    const engine::RuleStats& r = *it->second;
    const auto rate = rates_.ForRule(r.spec.id);
    uint64_t rule_errors = 0, rule_drops = 0;
    json outputs = json::array();
    for (const auto& o : r.outputs) {
      uint64_t errors = 0, drops = 0;
      json reasons = json::object();
      for (size_t e = 0; e < o.errors.size(); ++e) {
        const auto kind = static_cast<engine::EgressError>(e);
        reasons[engine::EgressErrorName(kind)] = o.errors[e];
        (IsDrop(kind) ? drops : errors) += o.errors[e];
      }
      rule_errors += errors;
      rule_drops += drops;
      const auto orate = rates_.ForOutput(r.spec.id, o.name);
      outputs.push_back({{"output", FormatOutput(o.spec)},
                         {"active", o.active},
                         {"packets", o.packets},
                         {"bytes", o.bytes},
                         {"packets_per_second", orate.packets_per_second},
                         {"bits_per_second", orate.bits_per_second},
                         {"errors", errors},
                         {"drops", drops},
                         {"reasons", std::move(reasons)}});
    }
    rules.push_back({{"id", r.spec.id},
                     {"input", DescribeInput(r.spec)},
                     {"shard", r.shard},
                     {"input_up", r.input_up},
                     {"packets", r.packets},
                     {"bytes", r.bytes},
                     {"packets_per_second", rate.packets_per_second},
                     {"bits_per_second", rate.bits_per_second},
                     {"errors", rule_errors},
                     {"drops", rule_drops},
                     {"outputs", std::move(outputs)}});
  }
  return {{"interval_seconds", rates_.interval_seconds()}, {"rules", std::move(rules)}};
}

json Controller::HandleShards() const {
  const engine::EngineStats stats = sink_.Snapshot();
  json shards = json::array();
  for (const auto& s : stats.shards) {
    uint64_t kernel_drops = 0;
    json kernel = json::object();
    for (const auto& [name, n] : s.kernel_drops) {
      kernel[name] = n;
      kernel_drops += n;
    }
    uint64_t drops = 0;
    json reasons = json::object();
    for (const auto& [name, n] : s.drops) {
      reasons[name] = n;
      drops += n;
    }
    shards.push_back({{"shard", s.index},
                      {"cpu", s.cpu},
                      {"numa_node", s.numa_node},
                      {"rules", s.rules},
                      {"packets", s.received},
                      {"packets_per_second", rates_.ShardPacketsPerSecond(s.index)},
                      {"unmatched", s.unmatched},
                      {"steering_mismatch", s.steering_mismatch},
                      {"drops", drops},
                      {"drop_reasons", std::move(reasons)},
                      {"kernel_drops", kernel_drops},
                      {"kernel_drops_by_interface", std::move(kernel)},
                      {"busy_ratio", s.busy_ratio},
                      {"sched_slice_us", s.sched_slice_ns / 1000}});
  }
  return {{"shards", std::move(shards)}};
}

absl::StatusOr<json> Controller::HandleLogLevelSet(const json& msg) {
  if (auto s = CheckFields(msg, {"level"}); !s.ok()) return s;
  auto name = GetString(msg, "level");
  if (!name.ok()) return name.status();
  auto level = ParseLogLevel(*name);
  if (!level.ok())
    return absl::InvalidArgumentError(absl::StrCat("level: ", level.status().message()));
  log_.set_level(*level);
  log_.Info("log level set to %s", LogLevelName(*level));
  return json{{"level", LogLevelName(*level)}};
}

absl::StatusOr<json> Controller::HandleConfigLoad(const json& msg, bool check_only) {
  if (auto s = CheckFields(msg, {"text", "replace", "allow_missing_interface"}); !s.ok()) return s;
  auto text = GetString(msg, "text");
  if (!text.ok()) return text.status();
  auto replace = GetBool(msg, "replace");
  if (!replace.ok()) return replace.status();
  auto allow_missing = GetBool(msg, "allow_missing_interface");
  if (!allow_missing.ok()) return allow_missing.status();
  auto config = ParseConfig(*text);
  if (!config.ok()) return config.status();
  ChangeSummary summary;
  auto next =
      Merge(rules_, *config, RuleOrigin::kControl, *replace, *allow_missing, &summary.warnings);
  if (!next.ok()) return next.status();
  if (check_only) {
    ChangeSummary diff = Diff(rules_, *next);
    diff.warnings = std::move(summary.warnings);
    json body = diff.ToJson();
    body["rules"] = config->size();
    return body;
  }
  if (auto s = Commit(*std::move(next), &summary); !s.ok()) return s;
  log_.Info("config loaded%s: %s", *replace ? " (replace)" : "", summary.Describe());
  for (const auto& w : summary.warnings) log_.Warning("%s", w);
  return summary.ToJson();
}

}  // namespace mcr::control
