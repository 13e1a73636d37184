#include "control/log.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mcr::control {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// What a Logger writing into a pipe wrote.
std::string Logged(const std::string& value) {
  ::unsetenv("JOURNAL_STREAM");  // under systemd the format is the journal's (<6>...)
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  {
    Logger log(LogLevel::kInfo, fds[1]);
    log.Info("rule '%s' added", value);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(fds[0]);
  return out;
}

TEST(LoggerTest, TextFromOutsideCannotStartALine) {
  // A client-chosen name with a newline would otherwise forge a log line of mcrd's own.
  const std::string out = Logged("x\n2026-01-01T00:00:00.000Z error: FORGED\r\x1b[2J");
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;  // one line, ended by its own newline
  EXPECT_THAT(out, HasSubstr("x\\x0a2026-01-01T00:00:00.000Z error: FORGED\\x0d\\x1b[2J"));
  EXPECT_THAT(out, Not(HasSubstr("\r")));
}

TEST(LoggerTest, PrintableTextIsUnchanged) {
  EXPECT_THAT(Logged("cam-1 ünïcödé"), HasSubstr("info: rule 'cam-1 ünïcödé' added\n"));
}

}  // namespace
}  // namespace mcr::control
