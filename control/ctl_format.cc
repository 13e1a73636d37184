#include "control/ctl_format.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <span>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "control/rule_schema.h"

namespace mcr::control {
namespace {

using nlohmann::json;

// Typed reads that tolerate missing or mistyped fields: output of a newer or older daemon
// still renders, with blanks.
std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}
uint64_t U64(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}
double Num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}
bool Bool(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}
std::span<const json> Array(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return {};
  const auto& items = it->get_ref<const json::array_t&>();
  return {items.data(), items.size()};
}

std::string OutputText(const json& o) {
  std::string text = absl::StrCat(Str(o, "group"), ":", Str(o, "port"), ":", Str(o, "interface"));
  if (o.contains("ttl")) absl::StrAppend(&text, ":ttl=", Str(o, "ttl"));
  if (o.contains("dscp")) absl::StrAppend(&text, ":dscp=", Str(o, "dscp"));
  return text;
}

std::string InputText(const json& rule) {
  const json& in = rule.contains("input") ? rule["input"] : json::object();
  std::string text =
      absl::StrCat(Str(in, "interface"), " ", Str(in, "group"), ":", Str(in, "port"));
  if (in.contains("source")) absl::StrAppend(&text, " source ", Str(in, "source"));
  return text;
}

std::string Joined(std::span<const json> ids) {
  std::vector<std::string> v;
  for (const auto& id : ids) v.push_back(id.is_string() ? id.get<std::string>() : id.dump());
  return absl::StrJoin(v, ", ");
}

}  // namespace

Table::Table(std::vector<std::string> headers, std::vector<bool> right) : right_(std::move(right)) {
  right_.resize(headers.size(), false);
  rows_.push_back(std::move(headers));
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(rows_[0].size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> width(rows_[0].size(), 0);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += "  ";
      const std::string pad(width[i] - row[i].size(), ' ');
      line += right_[i] ? pad + row[i] : row[i] + pad;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

std::string HumanCount(double value) {
  static constexpr const char* kPrefix[] = {"", "k", "M", "G", "T", "P"};
  int i = 0;
  while (std::fabs(value) >= 999.5 && i < 5) {
    value /= 1000;
    ++i;
  }
  if (i == 0) return absl::StrFormat("%.0f", value);
  const int decimals = std::fabs(value) < 9.995 ? 2 : std::fabs(value) < 99.95 ? 1 : 0;
  return absl::StrFormat("%.*f%s", decimals, value, kPrefix[i]);
}

namespace {

// "joined" / "bound" (a unicast input's sink), "pending: why", "failed: why", or "-" when the
// daemon reports none (an older mcrd, or a rule not applied yet).
std::string MembershipText(const json& rule) {
  auto it = rule.find("membership");
  if (it == rule.end() || !it->is_object()) return "-";
  const std::string state = Str(*it, "state");
  std::string text;
  if (state == "active") {
    text = Str(*it, "kind") == "unicast-sink" ? "bound" : "joined";
  } else if (state == "pending" || state == "failed") {
    text = state;
  } else {
    return "-";
  }
  if (state != "active" && it->contains("detail")) text += ": " + Str(*it, "detail");
  return text;
}

}  // namespace

std::string FormatList(const json& response) {
  auto rules = Array(response, "rules");
  std::string out;
  if (rules.empty()) {
    out = "no rules\n";
  } else {
    Table table({"ID", "INPUT", "SHARD", "STATE", "MEMBERSHIP", "OUTPUTS"},
                {false, false, true, false, false, false});
    for (const auto& r : rules) {
      auto outputs = Array(r, "outputs");
      for (size_t i = 0; i < std::max<size_t>(outputs.size(), 1); ++i) {
        std::string output;
        if (i < outputs.size()) {
          output = OutputText(outputs[i]);
          if (outputs[i].contains("active") && !Bool(outputs[i], "active")) output += " (inactive)";
        }
        if (i == 0) {
          const std::string shard = Str(r, "shard");
          table.AddRow({Str(r, "id"), InputText(r), shard == "-1" ? "-" : shard,
                        Bool(r, "input_up") ? "up" : "down", MembershipText(r), output});
        } else {
          table.AddRow({"", "", "", "", "", output});
        }
      }
    }
    out = table.Render();
  }
  auto interfaces = Array(response, "interfaces");
  if (!interfaces.empty()) {
    Table table({"INTERFACE", "STATE", "IFINDEX"}, {false, false, true});
    for (const auto& i : interfaces) {
      const std::string ifindex = Str(i, "ifindex");
      table.AddRow({Str(i, "name"), ifindex == "0" ? "missing" : (Bool(i, "up") ? "up" : "down"),
                    ifindex == "0" ? "-" : ifindex});
    }
    out += "\n" + table.Render();
  }
  return out;
}

std::string FormatStats(const json& response) {
  auto rules = Array(response, "rules");
  if (rules.empty()) return "no rules\n";
  Table table({"RULE / OUTPUT", "PACKETS", "BYTES", "PKT/S", "BIT/S", "ERRORS", "DROPS"},
              {false, true, true, true, true, true, true});
  for (const auto& r : rules) {
    table.AddRow(
        {absl::StrCat(Str(r, "id"), "  ", Str(r, "input"), Bool(r, "input_up") ? "" : " (down)"),
         absl::StrCat(U64(r, "packets")), absl::StrCat(U64(r, "bytes")),
         HumanCount(Num(r, "packets_per_second")), HumanCount(Num(r, "bits_per_second")),
         absl::StrCat(U64(r, "errors")), absl::StrCat(U64(r, "drops"))});
    for (const auto& o : Array(r, "outputs")) {
      table.AddRow({absl::StrCat("  -> ", Str(o, "output"), Bool(o, "active") ? "" : " (inactive)"),
                    absl::StrCat(U64(o, "packets")), absl::StrCat(U64(o, "bytes")),
                    HumanCount(Num(o, "packets_per_second")), HumanCount(Num(o, "bits_per_second")),
                    absl::StrCat(U64(o, "errors")), absl::StrCat(U64(o, "drops"))});
    }
  }
  return table.Render();
}

std::string FormatShards(const json& response) {
  auto shards = Array(response, "shards");
  Table table({"SHARD", "CPU", "NUMA", "RULES", "PACKETS", "PKT/S", "UNMATCHED", "DROPS",
               "KERNEL-DROPS", "BUSY"},
              {true, true, true, true, true, true, true, true, true, true});
  for (const auto& s : shards) {
    const std::string numa = Str(s, "numa_node");
    table.AddRow({Str(s, "shard"), Str(s, "cpu"), numa == "-1" ? "-" : numa, Str(s, "rules"),
                  absl::StrCat(U64(s, "packets")), HumanCount(Num(s, "packets_per_second")),
                  absl::StrCat(U64(s, "unmatched")), absl::StrCat(U64(s, "drops")),
                  absl::StrCat(U64(s, "kernel_drops")),
                  absl::StrFormat("%.0f%%", Num(s, "busy_ratio") * 100)});
  }
  return table.Render();
}

std::string FormatSummary(const json& response) {
  std::vector<std::string> parts;
  for (const char* key : {"added", "removed", "changed"}) {
    auto ids = Array(response, key);
    parts.push_back(ids.empty() ? absl::StrCat("0 ", key)
                                : absl::StrCat(ids.size(), " ", key, " (", Joined(ids), ")"));
  }
  parts.push_back(absl::StrCat(U64(response, "unchanged"), " unchanged"));
  return absl::StrJoin(parts, ", ");
}

namespace {

// nft reads the script as code, run as root: every field is checked to be exactly what it claims
// before it is written into it. A valid interface name (InterfaceNameProblem) may still hold
// quotes, braces or semicolons: only these characters go into nft's quoted string.
bool SafeInterfaceName(const std::string& name) {
  return InterfaceNameProblem(name).empty() && std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                  c == '.' || c == '@';
         });
}
// A dotted quad exactly as mcrd writes one (ParseIpv4, then FormatIpv4 gives it back).
bool CanonicalIpv4(const std::string& text) {
  auto addr = ParseIpv4(text);
  return addr.ok() && FormatIpv4(*addr) == text;
}

}  // namespace

absl::StatusOr<std::string> FormatNftDrop(const json& response) {
  // The set elements, one line each: "interface" . group . port for any-source rules, with the
  // source before the group for source-specific ones. Sets: sorted, each input once.
  std::set<std::string> any_source, with_source;
  // An answer without a rule list is not "no rules": a script from it would empty the table.
  if (!response.contains("rules") || !response["rules"].is_array())
    return absl::InvalidArgumentError("mcrd's answer to list has no rule list");
  for (const auto& r : Array(response, "rules")) {
    const json& in = r.contains("input") && r["input"].is_object() ? r["input"] : json::object();
    const std::string id = Str(r, "id");
    const std::string itf = Str(in, "interface");
    const std::string group = Str(in, "group");
    const auto port_it = in.find("port");
    const uint64_t port =
        port_it != in.end() && port_it->is_number_unsigned() ? port_it->get<uint64_t>() : 0;
    if (!SafeInterfaceName(itf))
      return absl::InvalidArgumentError(absl::StrFormat(
          "rule %s: input interface '%s' cannot be written into an nft script safely "
          "(only letters, digits and _ - . @ are); add its element by hand",
          id, itf));
    if (!CanonicalIpv4(group))
      return absl::InvalidArgumentError(
          absl::StrFormat("rule %s: input group '%s' is not an IPv4 address", id, group));
    if (port == 0 || port > 65535)
      return absl::InvalidArgumentError(
          absl::StrFormat("rule %s: input port '%s' is not 1-65535", id, Str(in, "port")));
    if (in.contains("source")) {
      const std::string source = Str(in, "source");
      if (!CanonicalIpv4(source))
        return absl::InvalidArgumentError(
            absl::StrFormat("rule %s: input source '%s' is not an IPv4 address", id, source));
      with_source.insert(
          absl::StrFormat("      \"%s\" . %s . %s . %d,\n", itf, source, group, port));
    } else {
      any_source.insert(absl::StrFormat("      \"%s\" . %s . %d,\n", itf, group, port));
    }
  }
  std::string out = absl::StrFormat(
      "#!/usr/sbin/nft -f\n"
      "# From `mcrctl nft-drop`: drops, before routing, the %d input(s) mcrd captures, so\n"
      "# that the host's IP stack does not process their datagrams a second time. mcrd's\n"
      "# capture sees them before this hook. While the table is loaded nothing else on this\n"
      "# host gets them: not a program that joins one of these groups or binds a unicast\n"
      "# input's port on that interface, nor the host's own multicast routing (smcroute,\n"
      "# pimd). Load with nft -f (it replaces the table: run it again after rule changes);\n"
      "# remove with nft delete table ip mcr_drop_captured. docs/GUIDE.md, section 3.\n"
      "table ip mcr_drop_captured\n"
      "delete table ip mcr_drop_captured\n"
      "table ip mcr_drop_captured {\n"
      "  chain prerouting {\n"
      "    type filter hook prerouting priority raw; policy accept;\n",
      any_source.size() + with_source.size());
  // One rule per non-empty set (nft refuses an empty anonymous set).
  const auto add_rule = [&out](const char* match, const std::set<std::string>& elements) {
    if (elements.empty()) return;
    absl::StrAppend(&out, "    ", match, " {\n", absl::StrJoin(elements, ""),
                    "    } counter drop\n");
  };
  add_rule("iifname . ip daddr . udp dport", any_source);
  add_rule("iifname . ip saddr . ip daddr . udp dport", with_source);
  absl::StrAppend(&out, "  }\n}\n");
  return out;
}

}  // namespace mcr::control
