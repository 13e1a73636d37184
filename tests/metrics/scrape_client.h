#pragma once
// Test helpers shared by the metrics tests: a minimal blocking HTTP/1.0 GET (enough for civetweb
// and Prometheus's API, with no client library to pull in), a reader of the text exposition
// format that keys each sample by its series exactly as prometheus-cpp prints it, and a way to
// run the Prometheus tools (promtool) and keep their output for the failure message.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace mcr::testing {

struct HttpResponse {
  int status = 0;  // 0: no response (connect failed, timeout, garbage)
  std::string body;
};

/// GET http://127.0.0.1:port/target in the calling thread's network namespace, waiting at most
/// `timeout_ms` per read.
inline HttpResponse HttpGet(uint16_t port, const std::string& target, int timeout_ms = 5000) {
  HttpResponse r;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return r;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string raw;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    const std::string req = "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) break;
        const ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        raw.append(buf, static_cast<size_t>(n));
      }
    }
  }
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || end == std::string::npos || raw.size() < 12) return r;
  r.status = std::atoi(raw.c_str() + 9);
  r.body = raw.substr(end + 4);
  return r;
}

/// The series key prometheus-cpp prints: name{l1="v1",l2="v2"} (label values here must need no
/// escaping), or the bare name without labels.
inline std::string Series(const std::string& name,
                          const std::vector<std::pair<std::string, std::string>>& labels = {}) {
  if (labels.empty()) return name;
  std::string s = name + "{";
  for (size_t i = 0; i < labels.size(); ++i)
    s += (i ? "," : "") + labels[i].first + "=\"" + labels[i].second + "\"";
  return s + "}";
}

/// Samples of a text-format exposition, keyed by series. Comment lines are skipped.
inline std::map<std::string, double> ParseExposition(const std::string& text) {
  std::map<std::string, double> samples;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    samples[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return samples;
}

/// Sum of every sample of family `name` (series "name" or "name{...}").
inline double SumFamily(const std::map<std::string, double>& samples, const std::string& name) {
  double sum = 0;
  for (const auto& [series, v] : samples)
    if (series == name || series.rfind(name + "{", 0) == 0) sum += v;
  return sum;
}

/// Runs `cmd` with /bin/sh; returns its exit status (-1 if it did not exit) and its stdout and
/// stderr together.
inline std::pair<int, std::string> RunShell(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

}  // namespace mcr::testing
