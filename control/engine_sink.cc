#include "control/engine_sink.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"

namespace mcr::control {

EngineSink::EngineSink(engine::EnginePtr engine, std::unique_ptr<GroupMemberships> memberships,
                       Logger& log)
    : memberships_(std::move(memberships)), engine_(std::move(engine)), log_(log) {}

absl::Status EngineSink::Apply(const std::vector<engine::RuleSpec>& rules,
                               std::vector<std::string>* warnings) {
  if (auto s = engine_->ApplyRules(rules); !s.ok()) return s;
  // An output of a new or changed rule whose interface exists but cannot send yet (down, no
  // address) is accepted and waits: say so, once, to whoever made the change. (A missing
  // interface has had its own warning from validation.)
  absl::flat_hash_map<std::string, const engine::RuleSpec*> before;
  for (const auto& r : rules_) before.emplace(r.id, &r);
  const engine::EngineStats stats = engine_->Snapshot();
  for (const auto& r : stats.rules) {
    auto it = before.find(r.spec.id);
    if (it != before.end() && *it->second == r.spec) continue;
    for (const auto& o : r.outputs) {
      if (o.active) continue;
      const bool exists = std::any_of(stats.interfaces.begin(), stats.interfaces.end(),
                                      [&o](const engine::InterfaceStats& i) {
                                        return i.name == o.spec.interface && i.ifindex != 0;
                                      });
      if (!exists) continue;
      warnings->push_back(absl::StrFormat(
          "rule '%s': output %s is inactive: %s is down or has no IPv4 address; it opens when "
          "that changes",
          r.spec.id, o.name, o.spec.interface));
    }
  }
  rules_ = rules;
  // Joined after the engine captures, left after it stopped: no window in which the host is a
  // member of a group nobody relays (the reverse order would be harmless too, only wasteful).
  if (auto s = memberships_->Sync(rules_, {}); !s.ok()) {
    warnings->push_back(std::string(s.message()));
  }
  return absl::OkStatus();
}

void EngineSink::RefreshInterfaces(const std::vector<int>& deleted) {
  engine_->RefreshInterfaces(deleted);
  if (auto s = memberships_->Sync(rules_, deleted); !s.ok()) log_.Warning("%s", s.message());
}

void EngineSink::Maintain(std::chrono::steady_clock::time_point now) {
  if (now - last_retry_ < kRetryInterval) return;
  const auto failed = [this] {
    const std::vector<MembershipInfo> v = memberships_->Describe();
    return std::count_if(v.begin(), v.end(), [](const MembershipInfo& m) {
      return m.state == MembershipInfo::State::kFailed;
    });
  };
  const auto n = failed();
  if (n == 0) return;
  last_retry_ = now;
  (void)memberships_->Sync(rules_, {});  // the failures were logged when they first happened
  const auto left = failed();
  if (left < n) log_.Info("retried failed group memberships: %d of %d now joined", n - left, n);
}

engine::EngineStats EngineSink::Snapshot() const { return engine_->Snapshot(); }

std::vector<MembershipInfo> EngineSink::Memberships() const { return memberships_->Describe(); }

}  // namespace mcr::control
