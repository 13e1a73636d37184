#pragma once
// Command line of mcrgen (CLI11): `mcrgen send ...` and `mcrgen recv ...`, parsed and validated
// into SendConfig / RecvConfig. CLI11's exceptions stop here; callers see absl::Status only.
// Only checks that need no system access happen here (syntax, ranges, combinations); interface
// and address checks happen when the sockets open. Pure: any thread.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/mcrgen/config.h"

namespace mcr::gen {

struct Command {
  enum class Kind : uint8_t {
    kSend,
    kRecv,
    kExit,  // --help or --version: print `text` and exit with exit_code
  };
  Kind kind = Kind::kExit;
  SendConfig send;  // kind == kSend
  RecvConfig recv;  // kind == kRecv
  std::string text;
  int exit_code = 0;
};

/// Parses argv (args[0] is the program name). Returns InvalidArgument with a message that names
/// the offending option and its allowed range.
absl::StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args);

/// Parses a count with an optional decimal suffix: "2500", "100k", "1.5M", "2G". `what` names the
/// option in the error message.
absl::StatusOr<uint64_t> ParseScaled(std::string_view text, std::string_view what);

}  // namespace mcr::gen
