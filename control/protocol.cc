#include "control/protocol.h"

#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mcr::control {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<RequestType, const char*>, 13> kTypeNames = {{
    {RequestType::kPing, "ping"},
    {RequestType::kVersion, "version"},
    {RequestType::kAdd, "add"},
    {RequestType::kRemove, "remove"},
    {RequestType::kList, "list"},
    {RequestType::kStats, "stats"},
    {RequestType::kShards, "shards"},
    {RequestType::kLogLevelGet, "log_level_get"},
    {RequestType::kLogLevelSet, "log_level_set"},
    {RequestType::kConfigShow, "config_show"},
    {RequestType::kConfigLoad, "config_load"},
    {RequestType::kConfigCheck, "config_check"},
    {RequestType::kReload, "reload"},
}};

std::string Truncated(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  return absl::StrFormat("%s...", text.substr(0, max));
}

}  // namespace

absl::StatusOr<json> ParseBoundedJson(std::string_view text, bool allow_comments,
                                      size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "JSON text of %d bytes is larger than the limit of %d", text.size(), max_bytes));
  }
  // The parser itself enforces the depth: a container deeper than the limit ends the parse as it
  // opens, so no deep value is ever built (a separate byte scan would have to agree with the
  // parser on every lexical corner, such as a // comment ended by '\r', and once did not).
  // The parse stops at the first container too deep (the callback throws): discarding it instead
  // would still parse the rest, with the parser's stacks growing by a pointer per level.
  struct TooDeep {};
  const json::parser_callback_t limit_depth = [](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start ||
         event == json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth) {
      throw TooDeep{};
    }
    return true;
  };
  // nlohmann-json reports the position and reason only through its exception; it stops here.
  try {
    return json::parse(text, limit_depth, /*allow_exceptions=*/true, allow_comments);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON: ", e.what()));
  } catch (const TooDeep&) {
    return absl::InvalidArgumentError(
        absl::StrFormat("JSON nests deeper than %d levels", kMaxJsonDepth));
  }
}

const char* RequestTypeName(RequestType type) {
  for (const auto& [t, name] : kTypeNames) {
    if (t == type) return name;
  }
  return "unknown";
}

std::optional<RequestType> ParseRequestType(std::string_view name) {
  for (const auto& [t, n] : kTypeNames) {
    if (name == n) return t;
  }
  return std::nullopt;
}

absl::StatusOr<Request> ParseRequest(std::string_view line, json* id) {
  *id = nullptr;
  auto parsed = ParseBoundedJson(line, /*allow_comments=*/false);
  if (!parsed.ok()) return parsed.status();
  json& msg = *parsed;
  if (!msg.is_object()) {
    return absl::InvalidArgumentError("a request must be a JSON object");
  }
  if (auto it = msg.find("id"); it != msg.end()) {
    if (!it->is_null() && !it->is_string() && !it->is_number()) {
      return absl::InvalidArgumentError("id: must be a string, a number or null");
    }
    *id = *it;
  }
  auto version = msg.find("version");
  if (version == msg.end()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "version: missing (this mcrd speaks protocol version %d)", kProtocolVersion));
  }
  if (!version->is_number_integer() || version->get<int64_t>() != kProtocolVersion) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "version: unsupported protocol version %s (this mcrd speaks %d)",
        Truncated(version->dump(-1, ' ', false, json::error_handler_t::replace), 20),
        kProtocolVersion));
  }
  auto type = msg.find("type");
  if (type == msg.end() || !type->is_string()) {
    return absl::InvalidArgumentError("type: missing or not a string");
  }
  const std::string& name = type->get_ref<const std::string&>();
  auto t = ParseRequestType(name);
  if (!t) {
    return absl::InvalidArgumentError(
        absl::StrFormat("type: unknown request type '%s'", Truncated(name, 40)));
  }
  Request request;
  request.id = *id;
  request.type = *t;
  request.message = std::move(msg);
  return request;
}

json MakeRequest(RequestType type, const json& id) {
  return {{"version", kProtocolVersion}, {"id", id}, {"type", RequestTypeName(type)}};
}

json OkResponse(const json& id) {
  return {{"version", kProtocolVersion}, {"id", id}, {"ok", true}};
}

json ErrorResponse(const json& id, const absl::Status& status) {
  return {{"version", kProtocolVersion},
          {"id", id},
          {"ok", false},
          {"error", std::string(status.message())},
          {"code", absl::StatusCodeToString(status.code())}};
}

absl::StatusOr<json> CheckResponse(std::string_view line) {
  auto parsed = ParseBoundedJson(line, /*allow_comments=*/false, kMaxResponseBytes);
  if (!parsed.ok()) {
    return absl::InternalError(
        absl::StrCat("malformed response from mcrd: ", parsed.status().message()));
  }
  json& msg = *parsed;
  if (!msg.is_object()) return absl::InternalError("malformed response from mcrd: not an object");
  auto version = msg.find("version");
  if (version == msg.end() || !version->is_number_integer() ||
      version->get<int64_t>() != kProtocolVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("mcrd answered with protocol version %s; this mcrctl speaks %d",
                        version == msg.end() ? "(none)" : version->dump(), kProtocolVersion));
  }
  auto ok = msg.find("ok");
  if (ok == msg.end() || !ok->is_boolean()) {
    return absl::InternalError("malformed response from mcrd: no \"ok\"");
  }
  if (ok->get<bool>()) return std::move(msg);
  std::string error = "mcrd refused the request";
  if (auto e = msg.find("error"); e != msg.end() && e->is_string()) error = e->get<std::string>();
  absl::StatusCode code = absl::StatusCode::kUnknown;
  if (auto c = msg.find("code"); c != msg.end() && c->is_string()) {
    for (int i = 0; i <= static_cast<int>(absl::StatusCode::kUnauthenticated); ++i) {
      if (absl::StatusCodeToString(static_cast<absl::StatusCode>(i)) == c->get<std::string>()) {
        code = static_cast<absl::StatusCode>(i);
      }
    }
  }
  if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
  return absl::Status(code, error);
}

std::string SerializeLine(const json& message) {
  std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

void LineReader::Append(std::string_view data) {
  // Compact lazily: consumed bytes are dropped once they are at least half the buffer, so each
  // byte is moved O(1) times on average.
  if (head_ > 0 && head_ >= buf_.size() / 2) {
    buf_.erase(0, head_);
    head_ = 0;
  }
  buf_.append(data);
}

std::optional<LineReader::Item> LineReader::Next() {
  while (true) {
    const size_t from = head_ + scanned_;
    const size_t nl = buf_.find('\n', from);
    if (discarding_) {
      if (nl == std::string::npos) {
        // Still inside the oversized line: drop everything buffered.
        buf_.clear();
        head_ = scanned_ = 0;
        return std::nullopt;
      }
      head_ = nl + 1;
      scanned_ = 0;
      discarding_ = false;
      continue;
    }
    if (nl == std::string::npos) {
      scanned_ = buf_.size() - head_;
      if (scanned_ > max_line_) {
        discarding_ = true;
        buf_.clear();
        head_ = scanned_ = 0;
        return Item{Kind::kOversized, {}};
      }
      return std::nullopt;
    }
    const size_t len = nl - head_;
    Item item{Kind::kLine, {}};
    if (len > max_line_) {
      item.kind = Kind::kOversized;
    } else {
      item.line.assign(buf_, head_, len);
    }
    head_ = nl + 1;
    scanned_ = 0;
    return item;
  }
}

}  // namespace mcr::control
