#pragma once
// The controller owns the authoritative rule set. It turns control requests, config reloads and
// the saved state into a validated desired set, hands it to the data plane (RuleSink), and only
// then records it: in memory, in the state file, in the log. Every change is all or nothing: a
// refusal leaves the running set, the data plane and the state file untouched.
// Control thread only.

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/log.h"
#include "control/protocol.h"
#include "control/rates.h"
#include "control/rule_schema.h"
#include "control/rule_sink.h"
#include "control/validate.h"
#include "nlohmann/json.hpp"

namespace mcr::control {

/// Controller settings, from mcrd's flags.
struct ControllerOptions {
  /// State file; empty: the running set is not persisted. Default /var/lib/mcr/state.json.
  std::string state_file;
  /// Config file read at start and on reload; empty: none.
  std::string config_file;
  /// Accept config-file rules whose interfaces do not exist yet (warned, relayed once they
  /// appear). Requests carry their own flag. Default false.
  bool allow_missing_interface = false;
};

/// What a change did, by rule id.
struct ChangeSummary {
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::vector<std::string> changed;
  size_t unchanged = 0;
  std::vector<std::string> warnings;

  bool empty() const { return added.empty() && removed.empty() && changed.empty(); }
  nlohmann::json ToJson() const;
  /// "2 added, 1 removed, 0 changed, 5 unchanged".
  std::string Describe() const;
};

class Controller {
 public:
  /// Borrows `sink`, `host` and `log`, which must outlive it.
  Controller(ControllerOptions options, RuleSink& sink, const HostView& host, Logger& log);
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  /// Start-up: restores the state file (rules whose interfaces are gone stay, pending), lays
  /// the config file over it as a reload does, applies the result and saves it. Fails, changing
  /// nothing, on an unreadable or invalid state or config file.
  absl::Status Start();

  /// Answers one request; never throws. Changes are answered after the sink applied them.
  nlohmann::json Handle(const Request& request);

  /// Re-reads the config file and applies the difference (SIGHUP, `reload`): config rules no
  /// longer in the file are removed, new and changed ones are set, unchanged ones and rules
  /// added through the control socket are left alone. All or nothing.
  absl::StatusOr<ChangeSummary> Reload();

  /// After a link or address change: lets the data plane re-resolve interfaces. `deleted`: indexes
  /// of links deleted meanwhile (LinkWatcher::TakeDeleted), rebuilt even if re-created under the
  /// same index.
  void OnInterfacesChanged(const std::vector<int>& deleted = {});

  /// Samples counters for the rates `stats` reports; call about once a second.
  void Tick(std::chrono::steady_clock::time_point now);

  /// Writes the state file (at exit; every change already wrote it).
  absl::Status Flush();

  const std::vector<Rule>& rules() const { return rules_; }

 private:
  absl::StatusOr<nlohmann::json> HandleAdd(const nlohmann::json& msg);
  absl::StatusOr<nlohmann::json> HandleRemove(const nlohmann::json& msg);
  nlohmann::json HandleList() const;
  nlohmann::json HandleStats() const;
  nlohmann::json HandleShards() const;
  absl::StatusOr<nlohmann::json> HandleLogLevelSet(const nlohmann::json& msg);
  absl::StatusOr<nlohmann::json> HandleConfigLoad(const nlohmann::json& msg, bool check_only);
  absl::StatusOr<nlohmann::json> Dispatch(const Request& request);

  /// `incoming` laid over `base`, as a reload (`origin` kConfig: config rules missing from
  /// `incoming` go) or a `config load` (kControl; `replace`: every rule missing from `incoming`
  /// goes). Host-checks new and changed rules.
  absl::StatusOr<std::vector<Rule>> Merge(const std::vector<Rule>& base,
                                          const std::vector<engine::RuleSpec>& incoming,
                                          RuleOrigin origin, bool replace, bool allow_missing,
                                          std::vector<std::string>* warnings) const;
  /// Validates `next`, applies it to the sink, then adopts and saves it. `summary` gets the
  /// difference to the running set.
  absl::Status Commit(std::vector<Rule> next, ChangeSummary* summary);
  absl::Status SaveState();

  ControllerOptions options_;
  RuleSink& sink_;
  const HostView& host_;
  Logger& log_;
  std::vector<Rule> rules_;
  bool unsaved_ = false;  // the last state file write failed: Tick retries it
  RateTracker rates_;
};

}  // namespace mcr::control
