#pragma once
// mcrctl's human-readable output: aligned tables in the manner of `ip` and `smcroutectl`,
// rendered from the daemon's JSON responses (which `--json` prints unchanged). Pure functions.

#include <string>
#include <vector>

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

}  // namespace mcr::control
