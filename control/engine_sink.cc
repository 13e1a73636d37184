#include "control/engine_sink.h"

#include <utility>

namespace mcr::control {

EngineSink::EngineSink(engine::EnginePtr engine, Logger& log)
    : engine_(std::move(engine)), log_(log) {}

absl::Status EngineSink::Apply(const std::vector<engine::RuleSpec>& rules,
                               std::vector<std::string>* warnings) {
  if (auto s = engine_->ApplyRules(rules); !s.ok()) return s;
  rules_ = rules;
  // Joined after the engine captures, left after it stopped: no window in which the host is a
  // member of a group nobody relays (the reverse order would be harmless too, only wasteful).
  if (auto s = memberships_.Sync(rules_); !s.ok()) {
    warnings->push_back(std::string(s.message()));
  }
  return absl::OkStatus();
}

void EngineSink::RefreshInterfaces() {
  engine_->RefreshInterfaces();
  if (auto s = memberships_.Sync(rules_); !s.ok()) log_.Warning("%s", s.message());
}

engine::EngineStats EngineSink::Snapshot() const { return engine_->Snapshot(); }

std::vector<MembershipInfo> EngineSink::Memberships() const { return memberships_.Describe(); }

}  // namespace mcr::control
