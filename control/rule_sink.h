#pragma once
// The seam between the controller and the data plane. The daemon's implementation
// (engine_sink.h) drives the engine and the group memberships; unit tests use a fake.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "control/membership.h"
#include "engine/engine.h"
#include "engine/rule.h"

namespace mcr::control {

/// Where the controller sends the desired rule set. Control thread only, except Snapshot.
class RuleSink {
 public:
  virtual ~RuleSink() = default;
  /// Replaces the running set with `rules` (validated, ids unique) and returns once every shard
  /// adopted it. On error nothing changed. Problems that do not undo the change (a group that
  /// could not be joined) are appended to `warnings`.
  virtual absl::Status Apply(const std::vector<engine::RuleSpec>& rules,
                             std::vector<std::string>* warnings) = 0;
  /// Re-resolves interfaces after a link or address change; rules stay. Interfaces whose index is
  /// in `deleted` are rebuilt even if an interface of that name and index exists now.
  virtual void RefreshInterfaces(const std::vector<int>& deleted) = 0;
  /// Called about once a second (Controller::Tick): periodic upkeep, such as retrying group
  /// joins that failed without any event to retry them on (a kernel limit raised since).
  virtual void Maintain(std::chrono::steady_clock::time_point /*now*/) {}
  /// Counters and state of every shard, rule, output and interface.
  virtual engine::EngineStats Snapshot() const = 0;
  /// The host's group memberships and unicast sinks for the running set, with their state.
  /// Control thread only.
  virtual std::vector<MembershipInfo> Memberships() const = 0;
};
using RuleSinkPtr = std::unique_ptr<RuleSink>;

}  // namespace mcr::control
