#include "control/log.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mcr::control {

const char* LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "info";
}

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(std::string(name));
  if (lower == "error") return LogLevel::kError;
  if (lower == "warning" || lower == "warn") return LogLevel::kWarning;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "debug") return LogLevel::kDebug;
  return absl::InvalidArgumentError(
      absl::StrFormat("log level '%s' is not one of error, warning, info, debug", name));
}

Logger::Logger(LogLevel level, int fd) : level_(level), fd_(fd) {
  // systemd sets JOURNAL_STREAM when stderr is a journal stream (systemd.exec(5)).
  const char* js = std::getenv("JOURNAL_STREAM");
  journal_ = js != nullptr && *js != '\0';
}

namespace {

// One message, one line: control characters (a newline inside a client's rule name, say) are
// written as \xNN, so no text from outside can start a line that looks like mcrd's own.
std::string OneLine(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (const char c : message) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppendFormat(&out, "\\x%02x", u);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

void Logger::Write(LogLevel level, std::string_view raw) {
  const std::string message = OneLine(raw);
  std::string line;
  if (journal_) {
    // sd-daemon(3) priorities: 3 err, 4 warning, 6 info, 7 debug.
    static constexpr int kPriority[] = {3, 4, 6, 7};
    line = absl::StrFormat("<%d>%s\n", kPriority[static_cast<int>(level)], message);
  } else {
    line = absl::StrFormat(
        "%s %s: %s\n", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
        LogLevelName(level), message);
  }
  // Best effort: a log line that cannot be written has nowhere else to go.
  ssize_t n = ::write(fd_, line.data(), line.size());
  (void)n;
}

}  // namespace mcr::control
