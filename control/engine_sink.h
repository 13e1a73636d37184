#pragma once
// The daemon's RuleSink: the engine plus the host's group memberships. Control thread only,
// except Snapshot and IgmpStats.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/log.h"
#include "control/membership.h"
#include "control/rule_sink.h"
#include "engine/engine.h"

namespace mcr::control {

class EngineSink final : public RuleSink {
 public:
  /// Takes a started engine and what keeps the input groups joined; `log` is borrowed.
  EngineSink(engine::EnginePtr engine, std::unique_ptr<GroupMemberships> memberships, Logger& log);
  EngineSink(const EngineSink&) = delete;
  EngineSink& operator=(const EngineSink&) = delete;

  /// Applies to the engine (every shard adopts), then joins and leaves groups to match. A failed
  /// join does not undo the change: it is a warning, and every later Sync retries it.
  absl::Status Apply(const std::vector<engine::RuleSpec>& rules,
                     std::vector<std::string>* warnings) override;
  /// Rebuilds the engine's interface-bound sockets and rejoins groups on re-created interfaces.
  void RefreshInterfaces(const std::vector<int>& deleted) override;
  /// Every kRetryInterval while a membership has failed: Sync again (and log what it did).
  void Maintain(std::chrono::steady_clock::time_point now) override;
  static constexpr std::chrono::seconds kRetryInterval{5};
  engine::EngineStats Snapshot() const override;
  std::vector<MembershipInfo> Memberships() const override;
  /// Any thread (the metrics server's): the IGMP that link-layer memberships speak.
  std::vector<metrics::IgmpInterfaceStats> IgmpStats() const { return memberships_->IgmpStats(); }

 private:
  // Declared before engine_: memberships are left (sockets closed) after the shards stopped.
  std::unique_ptr<GroupMemberships> memberships_;
  engine::EnginePtr engine_;
  Logger& log_;
  std::vector<engine::RuleSpec> rules_;  // the set last applied, for membership re-syncs
  std::chrono::steady_clock::time_point last_retry_{};
};

}  // namespace mcr::control
