#include "control/rule_schema.h"

#include <arpa/inet.h>

#include <algorithm>
#include <initializer_list>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace mcr::control {
namespace {

using nlohmann::json;

// A short, printable rendering of an offending JSON value for error messages.
std::string Show(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

std::string Field(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : absl::StrFormat("%s.%s", path, key);
}

absl::Status CheckObject(const json& obj, std::string_view path,
                         std::initializer_list<std::string_view> allowed) {
  if (!obj.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: expected an object, got %s", path, Show(obj)));
  }
  for (const auto& [key, value] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: unknown field (allowed: %s)", Field(path, key),
          absl::StrJoin(std::vector<std::string>(allowed.begin(), allowed.end()), ", ")));
    }
  }
  return absl::OkStatus();
}

// Returns nullptr when the key is absent.
const json* Find(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

absl::StatusOr<std::string> GetString(const json& value, const std::string& field) {
  if (!value.is_string()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: expected a string, got %s", field, Show(value)));
  }
  return value.get<std::string>();
}

absl::StatusOr<int64_t> GetInteger(const json& value, const std::string& field) {
  if (value.is_number_unsigned()) {
    // Clamp huge values so that the range check below reports them rather than wrapping.
    uint64_t v = value.get<uint64_t>();
    return static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX));
  }
  if (value.is_number_integer()) return value.get<int64_t>();
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: expected an integer, got %s", field, Show(value)));
}

absl::StatusOr<uint32_t> GetAddress(const json& value, const std::string& field) {
  auto text = GetString(value, field);
  if (!text.ok()) return text.status();
  auto addr = ParseIpv4(*text);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: '%s' is not an IPv4 address (dotted quad)", field, *text));
  }
  return *addr;
}

absl::StatusOr<std::string> GetInterface(const json& value, const std::string& field) {
  auto name = GetString(value, field);
  if (!name.ok()) return name.status();
  if (std::string problem = InterfaceNameProblem(*name); !problem.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: '%s' is not a valid interface name: %s", field, *name, problem));
  }
  return name;
}

absl::StatusOr<engine::OutputSpec> OutputFromJson(const json& obj, const std::string& path) {
  if (auto s = CheckObject(obj, path, {"group", "port", "interface", "ttl", "dscp"}); !s.ok()) {
    return s;
  }
  engine::OutputSpec out;
  for (const char* key : {"group", "port", "interface"}) {
    if (Find(obj, key) == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: missing", Field(path, key)));
    }
  }
  auto addr = GetAddress(obj["group"], Field(path, "group"));
  if (!addr.ok()) return addr.status();
  out.dst_addr = *addr;
  auto port = GetInteger(obj["port"], Field(path, "port"));
  if (!port.ok()) return port.status();
  auto port16 = CheckPort(*port, Field(path, "port"));
  if (!port16.ok()) return port16.status();
  out.dst_port = *port16;
  auto ifname = GetInterface(obj["interface"], Field(path, "interface"));
  if (!ifname.ok()) return ifname.status();
  out.interface = *ifname;
  if (const json* v = Find(obj, "ttl")) {
    auto ttl = GetInteger(*v, Field(path, "ttl"));
    if (!ttl.ok()) return ttl.status();
    auto ttl8 = CheckTtl(*ttl, Field(path, "ttl"));
    if (!ttl8.ok()) return ttl8.status();
    out.ttl = *ttl8;
  }
  if (const json* v = Find(obj, "dscp")) {
    auto dscp = GetInteger(*v, Field(path, "dscp"));
    if (!dscp.ok()) return dscp.status();
    auto checked = CheckDscp(*dscp, Field(path, "dscp"));
    if (!checked.ok()) return checked.status();
    out.dscp = *checked;
  }
  return out;
}

// FNV-1a, 64 bit: tiny, stable by definition (no seed), good enough to tell tuples apart; ids
// are also checked for uniqueness, so a collision is refused, never merged.
uint64_t Fnv1a64(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace

absl::StatusOr<uint32_t> ParseIpv4(std::string_view text) {
  // inet_pton accepts exactly four decimal octets: no "1.2.3", no octal, no trailing junk.
  std::string copy(text);
  in_addr a{};
  if (copy.empty() || inet_pton(AF_INET, copy.c_str(), &a) != 1) {
    return absl::InvalidArgumentError(absl::StrFormat("'%s' is not an IPv4 address", text));
  }
  return a.s_addr;
}

std::string FormatIpv4(uint32_t addr) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{addr};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string RuleIdFor(const engine::RuleSpec& spec) {
  const std::string key =
      absl::StrCat(spec.input_interface, "\x1f", FormatIpv4(spec.input_group), "\x1f",
                   spec.input_port, "\x1f", FormatIpv4(spec.input_source));
  return absl::StrFormat("%012x", Fnv1a64(key) & 0xffffffffffffull);
}

std::string DescribeInput(const engine::RuleSpec& spec) {
  std::string text =
      absl::StrCat(spec.input_interface, " ", FormatIpv4(spec.input_group), ":", spec.input_port);
  if (spec.input_source != 0) absl::StrAppend(&text, " source ", FormatIpv4(spec.input_source));
  return text;
}

std::string FormatOutput(const engine::OutputSpec& output) {
  std::string text =
      absl::StrCat(FormatIpv4(output.dst_addr), ":", output.dst_port, ":", output.interface);
  if (output.ttl != 0) absl::StrAppend(&text, ":ttl=", output.ttl);
  if (output.dscp >= 0) absl::StrAppend(&text, ":dscp=", output.dscp);
  return text;
}

std::string InterfaceNameProblem(std::string_view name) {
  if (name.empty()) return "empty";
  if (name.size() > 15) return "longer than 15 characters";
  if (name == "." || name == "..") return "reserved name";
  for (char c : name) {
    if (c == '/' || c == ':' || absl::ascii_isspace(static_cast<unsigned char>(c)) ||
        !absl::ascii_isprint(static_cast<unsigned char>(c))) {
      return "contains '/', ':', whitespace or a control character";
    }
  }
  return "";
}

std::string RuleNameProblem(std::string_view name) {
  if (name.empty()) return "empty";
  if (name.size() > kMaxNameLength)
    return absl::StrCat("longer than ", kMaxNameLength, " characters");
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return "must start with a letter or digit";
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return "may contain only letters, digits, '.', '_' and '-'";
    }
  }
  return "";
}

absl::StatusOr<uint16_t> CheckPort(int64_t value, std::string_view field) {
  if (value < 1 || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d is out of range 1..65535", field, value));
  }
  return static_cast<uint16_t>(value);
}

absl::StatusOr<uint8_t> CheckTtl(int64_t value, std::string_view field) {
  if (value < 1 || value > 255) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d is out of range 1..255", field, value));
  }
  return static_cast<uint8_t>(value);
}

absl::StatusOr<int> CheckDscp(int64_t value, std::string_view field) {
  if (value < 0 || value > 63) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d is out of range 0..63", field, value));
  }
  return static_cast<int>(value);
}

absl::StatusOr<std::vector<engine::OutputSpec>> ParseOutputs(std::string_view text,
                                                             std::optional<int64_t> ttl,
                                                             std::optional<int64_t> dscp) {
  std::vector<engine::OutputSpec> outputs;
  const std::vector<std::string> entries = absl::StrSplit(std::string(text), ',');
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string entry(absl::StripAsciiWhitespace(entries[i]));
    auto bad = [&](const std::string& why) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--outputs: entry %d '%s': %s (expected GROUP:PORT:INTERFACE[:ttl=N][:dscp=N])", i + 1,
          entry, why));
    };
    const std::vector<std::string> parts = absl::StrSplit(entry, ':');
    if (parts.size() < 3) return bad("too few fields");
    engine::OutputSpec out;
    auto addr = ParseIpv4(parts[0]);
    if (!addr.ok()) return bad(absl::StrFormat("'%s' is not an IPv4 address", parts[0]));
    out.dst_addr = *addr;
    int64_t port = 0;
    if (!absl::SimpleAtoi(parts[1], &port))
      return bad(absl::StrFormat("port '%s' is not a number", parts[1]));
    auto port16 = CheckPort(port, "port");
    if (!port16.ok()) return bad(std::string(port16.status().message()));
    out.dst_port = *port16;
    if (std::string problem = InterfaceNameProblem(parts[2]); !problem.empty()) {
      return bad(absl::StrFormat("interface '%s' is not valid: %s", parts[2], problem));
    }
    out.interface = parts[2];
    std::optional<int64_t> out_ttl = ttl, out_dscp = dscp;
    bool seen_ttl = false, seen_dscp = false;
    for (size_t p = 3; p < parts.size(); ++p) {
      const size_t eq = parts[p].find('=');
      const std::string key = parts[p].substr(0, eq);
      int64_t value = 0;
      if (eq == std::string::npos || !absl::SimpleAtoi(parts[p].substr(eq + 1), &value)) {
        return bad(absl::StrFormat("option '%s' is not KEY=NUMBER", parts[p]));
      }
      if (key == "ttl" && !seen_ttl) {
        out_ttl = value;
        seen_ttl = true;
      } else if (key == "dscp" && !seen_dscp) {
        out_dscp = value;
        seen_dscp = true;
      } else {
        return bad(absl::StrFormat("option '%s' is unknown or repeated (ttl=, dscp=)", parts[p]));
      }
    }
    if (out_ttl) {
      auto t = CheckTtl(*out_ttl, "ttl");
      if (!t.ok()) return bad(std::string(t.status().message()));
      out.ttl = *t;
    }
    if (out_dscp) {
      auto d = CheckDscp(*out_dscp, "dscp");
      if (!d.ok()) return bad(std::string(d.status().message()));
      out.dscp = *d;
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

json OutputToJson(const engine::OutputSpec& output) {
  json out = {{"group", FormatIpv4(output.dst_addr)},
              {"port", output.dst_port},
              {"interface", output.interface}};
  if (output.ttl != 0) out["ttl"] = output.ttl;
  if (output.dscp >= 0) out["dscp"] = output.dscp;
  return out;
}

json RuleToJson(const engine::RuleSpec& spec) {
  json rule;
  rule["id"] = spec.id;
  if (IsNamed(spec)) rule["name"] = spec.id;
  json input = {{"interface", spec.input_interface},
                {"group", FormatIpv4(spec.input_group)},
                {"port", spec.input_port}};
  if (spec.input_source != 0) input["source"] = FormatIpv4(spec.input_source);
  rule["input"] = std::move(input);
  json outputs = json::array();
  for (const auto& o : spec.outputs) outputs.push_back(OutputToJson(o));
  rule["outputs"] = std::move(outputs);
  return rule;
}

absl::StatusOr<engine::RuleSpec> RuleFromJson(const json& obj, std::string_view path) {
  const std::string p(path);
  if (auto s = CheckObject(obj, p, {"id", "name", "input", "outputs"}); !s.ok()) return s;
  engine::RuleSpec spec;

  const json* input = Find(obj, "input");
  if (input == nullptr)
    return absl::InvalidArgumentError(absl::StrFormat("%s: missing", Field(p, "input")));
  const std::string ip = Field(p, "input");
  if (auto s = CheckObject(*input, ip, {"interface", "group", "port", "source"}); !s.ok()) return s;
  for (const char* key : {"interface", "group", "port"}) {
    if (Find(*input, key) == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: missing", Field(ip, key)));
    }
  }
  auto ifname = GetInterface((*input)["interface"], Field(ip, "interface"));
  if (!ifname.ok()) return ifname.status();
  spec.input_interface = *ifname;
  auto group = GetAddress((*input)["group"], Field(ip, "group"));
  if (!group.ok()) return group.status();
  spec.input_group = *group;
  auto port = GetInteger((*input)["port"], Field(ip, "port"));
  if (!port.ok()) return port.status();
  auto port16 = CheckPort(*port, Field(ip, "port"));
  if (!port16.ok()) return port16.status();
  spec.input_port = *port16;
  if (const json* src = Find(*input, "source")) {
    auto source = GetAddress(*src, Field(ip, "source"));
    if (!source.ok()) return source.status();
    spec.input_source = *source;
  }

  const json* outputs = Find(obj, "outputs");
  const std::string op = Field(p, "outputs");
  if (outputs == nullptr) return absl::InvalidArgumentError(absl::StrFormat("%s: missing", op));
  if (!outputs->is_array()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: expected an array, got %s", op, Show(*outputs)));
  }
  // Refuse before building a huge vector; ValidateRule repeats the check for specs built in code.
  if (outputs->size() > kMaxOutputsPerRule) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d outputs, more than the limit of %d per rule", op, outputs->size(),
                        kMaxOutputsPerRule));
  }
  for (size_t i = 0; i < outputs->size(); ++i) {
    auto out = OutputFromJson((*outputs)[i], absl::StrCat(op, "[", i, "]"));
    if (!out.ok()) return out.status();
    spec.outputs.push_back(*std::move(out));
  }

  const std::string derived = RuleIdFor(spec);
  if (const json* name = Find(obj, "name")) {
    auto text = GetString(*name, Field(p, "name"));
    if (!text.ok()) return text.status();
    if (std::string problem = RuleNameProblem(*text); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: '%s' is not a valid rule name: %s",
                                                        Field(p, "name"), *text, problem));
    }
    spec.id = *text;
  } else {
    spec.id = derived;
  }
  if (const json* id = Find(obj, "id")) {
    auto text = GetString(*id, Field(p, "id"));
    if (!text.ok()) return text.status();
    if (*text != spec.id) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: '%s' does not match this rule's id '%s' (ids come from \"name\" or, without one, "
          "from the input; set \"name\" to choose an id)",
          Field(p, "id"), *text, spec.id));
    }
  }
  return spec;
}

}  // namespace mcr::control
