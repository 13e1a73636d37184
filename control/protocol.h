#pragma once
// The control protocol between mcrctl and mcrd: a Unix stream socket carrying JSON messages, one
// per line ('\n'), on persistent connections. Every request and response carries
// "version": kProtocolVersion; requests carry a "type" and an optional "id" that the response
// echoes. Responses are {"version":1,"id":..,"ok":true,...} or
// {"version":1,"id":..,"ok":false,"error":"<reason>","code":"<absl status code>"}.
// docs/REFERENCE.md ("Control protocol") lists the request types and their fields.
//
// Untrusted input is bounded: a line longer than kMaxMessageBytes is refused unread, and nesting
// deeper than kMaxJsonDepth is refused by the parse itself (its callback stops the parse at the
// first container that deep), because nlohmann-json 3.11.2 parses arbitrarily deep documents but
// then overflows the stack in recursive code such as dump() (a ~200 KB message nested 100k deep
// crashes it).
// Pure code; any thread.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace mcr::control {

/// Protocol version spoken by this build.
inline constexpr int kProtocolVersion = 1;
/// Longest message, newline excluded (a config of ~20k rules fits).
inline constexpr size_t kMaxMessageBytes = 4 << 20;
/// Deepest nesting of arrays and objects accepted (the rule schema needs 4).
inline constexpr int kMaxJsonDepth = 32;
/// Longest response mcrctl accepts (a `stats` of many rules is far larger than any request).
inline constexpr size_t kMaxResponseBytes = size_t{256} << 20;

/// Parses untrusted JSON: size checked first, depth (kMaxJsonDepth) during the parse.
/// `allow_comments` for config files. InvalidArgument with the parser's reason on failure.
absl::StatusOr<nlohmann::json> ParseBoundedJson(std::string_view text, bool allow_comments,
                                                size_t max_bytes = kMaxMessageBytes);

enum class RequestType {
  kPing,
  kVersion,
  kAdd,
  kRemove,
  kList,
  kStats,
  kShards,
  kLogLevelGet,
  kLogLevelSet,
  kConfigShow,
  kConfigLoad,
  kConfigCheck,
  kReload,
};

/// The wire name ("add", "log_level_get", ...).
const char* RequestTypeName(RequestType type);
std::optional<RequestType> ParseRequestType(std::string_view name);

/// One parsed request. `message` is the whole JSON object; its type-specific fields are read by
/// the handler.
struct Request {
  nlohmann::json id;  // null when the request had none
  RequestType type = RequestType::kPing;
  nlohmann::json message;
};

/// Parses one line: bounded JSON, an object, "version" equal to kProtocolVersion, an "id" that
/// is a string, number or null, a known "type". On failure `*id` holds the request's id when it
/// could be read (else null), so that the error response can still echo it.
absl::StatusOr<Request> ParseRequest(std::string_view line, nlohmann::json* id);

/// Builds a request message: {"version":1,"id":id,"type":name}.
nlohmann::json MakeRequest(RequestType type, const nlohmann::json& id);
/// {"version":1,"id":id,"ok":true}; the caller adds the type-specific fields.
nlohmann::json OkResponse(const nlohmann::json& id);
/// {"version":1,"id":id,"ok":false,"error":status.message(),"code":"INVALID_ARGUMENT"}.
nlohmann::json ErrorResponse(const nlohmann::json& id, const absl::Status& status);
/// Reads a response: ok → the message; ok:false → a status with its error and code; anything
/// else (malformed, wrong version) → Internal/FailedPrecondition.
absl::StatusOr<nlohmann::json> CheckResponse(std::string_view line);

/// One line of output: compact JSON and '\n'. Invalid UTF-8 (which can only come from echoing
/// bytes of a bad request) is replaced rather than thrown on.
std::string SerializeLine(const nlohmann::json& message);

/// Splits a byte stream into lines of at most `max_line` bytes. A longer line is reported once
/// as oversized and its bytes are dropped up to and including its newline, so a hostile peer
/// can make the buffer grow to at most max_line plus one appended chunk. Not thread-safe.
class LineReader {
 public:
  explicit LineReader(size_t max_line) : max_line_(max_line) {}

  void Append(std::string_view data);

  enum class Kind { kLine, kOversized };
  struct Item {
    Kind kind;
    std::string line;  // kLine only; without the newline
  };
  /// The next complete line or oversize event, or nullopt when more bytes are needed.
  std::optional<Item> Next();

  /// Bytes of an unterminated line are buffered (a truncated message if the peer closes now).
  bool has_partial() const { return buf_.size() > head_ && !discarding_; }

 private:
  size_t max_line_;
  std::string buf_;
  size_t head_ = 0;          // start of the first unconsumed byte in buf_
  size_t scanned_ = 0;       // bytes after head_ already known to hold no '\n'
  bool discarding_ = false;  // inside an oversized line: drop through the next '\n'
};

}  // namespace mcr::control
