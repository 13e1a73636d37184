#pragma once
// One-line-per-event logging to stderr for mcrd. Owned by the daemon's main and borrowed by the
// components it wires; control thread only (the engine never logs). Never used per packet.

#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

namespace mcr::control {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

/// "error", "warning", "info", "debug".
const char* LogLevelName(LogLevel level);
/// Parses a level name (also "warn"); InvalidArgument naming the accepted values otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name);

/// Writes each event as one line with a single write(2), so lines from a crashing process are
/// never interleaved. Under systemd (JOURNAL_STREAM set) lines carry a "<N>" syslog priority
/// prefix, which journald turns into the entry's priority, and no timestamp (journald adds one);
/// elsewhere they start with an RFC 3339 UTC timestamp and the level name.
class Logger {
 public:
  /// `fd` is borrowed (stderr by default).
  explicit Logger(LogLevel level, int fd = 2);
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  LogLevel level() const { return level_; }
  void set_level(LogLevel level) { level_ = level; }
  bool Enabled(LogLevel level) const { return level <= level_; }

  template <typename... Args>
  void Error(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Log(LogLevel::kError, format, args...);
  }
  template <typename... Args>
  void Warning(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Log(LogLevel::kWarning, format, args...);
  }
  template <typename... Args>
  void Info(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Log(LogLevel::kInfo, format, args...);
  }
  template <typename... Args>
  void Debug(const absl::FormatSpec<Args...>& format, const Args&... args) {
    Log(LogLevel::kDebug, format, args...);
  }

 private:
  template <typename... Args>
  void Log(LogLevel level, const absl::FormatSpec<Args...>& format, const Args&... args) {
    if (Enabled(level)) Write(level, absl::StrFormat(format, args...));
  }
  void Write(LogLevel level, std::string_view message);

  LogLevel level_;
  int fd_;
  bool journal_;  // stderr is connected to journald
};

}  // namespace mcr::control
