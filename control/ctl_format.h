#pragma once
// mcrctl's human-readable output: aligned tables in the manner of `ip` and `smcroutectl`,
// rendered from the daemon's JSON responses (which `--json` prints unchanged). Pure functions.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace mcr::control {

/// Columns separated by two spaces, each as wide as its widest cell; numeric columns
/// right-aligned. Trailing spaces are trimmed.
class Table {
 public:
  /// `right[i]`: right-align column i.
  Table(std::vector<std::string> headers, std::vector<bool> right);
  void AddRow(std::vector<std::string> cells);
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] holds the headers
  std::vector<bool> right_;
};

/// "1.25G", "980k", "12": SI prefixes with three significant digits.
std::string HumanCount(double value);

/// `list`: one line per output under its rule (id, input, shard, input state), then the
/// interfaces the rules name.
std::string FormatList(const nlohmann::json& response);
/// `stats`: a line per rule and one per output: packets, bytes, packets/s, bits/s, errors, drops.
std::string FormatStats(const nlohmann::json& response);
/// `shards` / `list-workers`.
std::string FormatShards(const nlohmann::json& response);
/// A change summary (config load, reload, config check): "2 added (a, b), 1 removed (c), ...".
std::string FormatSummary(const nlohmann::json& response);

/// `nft-drop`: an nft script (for `nft -f`) whose table `ip mcr_drop_captured` drops, in the raw
/// prerouting hook, every datagram a rule of `list` captures: (interface, group, port), and the
/// source too for a source-specific rule. Loading it replaces the table, so running it again after
/// rule changes brings it up to date; with no rules the table is left empty. Refuses a rule whose
/// fields cannot be written into nft's syntax safely (an interface name with quotes or spaces,
/// an address or port that is not one), naming the rule, and an answer without a rule list:
/// nothing partial is printed.
absl::StatusOr<std::string> FormatNftDrop(const nlohmann::json& response);

}  // namespace mcr::control
