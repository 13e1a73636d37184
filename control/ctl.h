#pragma once
// mcrctl: the command line for mcrd. Each command is one request on the control socket
// (`stats --watch` repeats it); results print as tables, or as the daemon's JSON with --json.
// Exit status: 0 success, 1 refused or failed (reason on stderr), 2 bad command line, 3 mcrd
// unreachable.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace mcr::control {

/// `mcrctl add` flags, as typed.
struct AddFlags {
  std::string input_interface;
  std::string input_group;
  int64_t input_port = 0;
  std::string input_source;  // empty: (*,G)
  std::string outputs;       // outputs syntax (rule_schema.h ParseOutputs)
  std::string name;          // --name
  std::string rule_id;       // --rule-id: the same as --name
  std::optional<int64_t> ttl;
  std::optional<int64_t> dscp;
  bool allow_missing_interface = false;
};

/// The `add` request for `flags`; errors name the flag ("--input-port: 70000 is out of range
/// 1..65535"). The daemon validates again: it alone knows the host.
absl::StatusOr<nlohmann::json> BuildAddRequest(const AddFlags& flags);

/// Runs mcrctl with its command line; returns the exit status.
int RunMcrctl(int argc, char** argv);

}  // namespace mcr::control
