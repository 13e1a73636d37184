#include "metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "metrics/engine_metrics.h"
#include "metrics/internal/engine_collector.h"
#include "prometheus/exposer.h"

namespace mcr::metrics {
namespace {

// Parses "ADDR:PORT" strictly. civetweb's own syntax is richer ("9464" = every address,
// "9464s" = TLS, "+9464" = IPv4 and IPv6, comma lists); none of that may slip in through a
// command-line flag.
absl::StatusOr<sockaddr_in> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  int port = -1;
  if (colon == std::string::npos ||
      inet_pton(AF_INET, listen.substr(0, colon).c_str(), &sa.sin_addr) != 1 ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535 ||
      listen.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "metrics listen address '%s' is not ADDR:PORT with an IPv4 address and a port 0..65535 "
        "(e.g. 127.0.0.1:9464)",
        listen));
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  return sa;
}

// civetweb reports a failed bind only as an exception without the errno; binding once more
// ourselves recovers it for the message.
std::string BindError(const sockaddr_in& sa) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as civetweb does
  const bool ok = bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
  const int err = errno;
  close(fd);
  return ok ? "the HTTP server failed to start" : std::strerror(err);
}

}  // namespace

struct MetricsServer::Impl {
  // The exposer keeps only a weak_ptr to the collector (its API), so the collector is shared
  // rather than owned; the exposer is declared last so that it is destroyed — and its threads
  // joined — before the collector goes.
  std::shared_ptr<internal::EngineCollector> collector;
  std::unique_ptr<prometheus::Exposer> exposer;
  uint16_t port = 0;
  sockaddr_in address{};  // where the server listens (port filled in once bound)
};

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                                    const engine::Engine& engine,
                                                                    std::string version) {
  return Start(
      listen, [&engine] { return engine.Snapshot(); }, std::move(version));
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& listen,
                                                                    StatsSource source,
                                                                    std::string version,
                                                                    IgmpSource igmp) {
  absl::StatusOr<sockaddr_in> sa = ParseListen(listen);
  if (!sa.ok()) return sa.status();
  auto impl = std::make_unique<Impl>();
  impl->collector = std::make_shared<internal::EngineCollector>(
      std::move(source), CurrentBuildInfo(std::move(version)), std::move(igmp));
  // prometheus-cpp reports failures as exceptions; they stop here.
  try {
    impl->exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", listen,
        // civetweb gives every connection a thread from this pool for as long as it is open, an
        // idle or stalled one included, and queues the rest: with two, two idle connections
        // held scrapes back ~10 s, Prometheus's default scrape timeout. Four idle threads cost
        // nothing; a scrape takes milliseconds.
        "num_threads", "4",
        // A client that stalls mid-request (or sends nothing) frees its thread after 2 s
        // (civetweb: 30 s); a scrape's response is written in far less on any working link.
        "request_timeout_ms", "2000"});
    impl->exposer->RegisterCollectable(impl->collector);
    const std::vector<int> ports = impl->exposer->GetListeningPorts();
    if (ports.empty()) return absl::InternalError("metrics server reports no listening port");
    impl->port = static_cast<uint16_t>(ports.front());
    impl->address = *sa;
    impl->address.sin_port = htons(impl->port);
    if (impl->address.sin_addr.s_addr == htonl(INADDR_ANY))
      impl->address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrFormat("cannot serve metrics on %s: %s (%s)", listen, BindError(*sa), e.what()));
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricsServer::~MetricsServer() {
  // civetweb's listener thread polls its sockets with a 2-second timeout and notices the stop
  // flag only between polls, so stopping took up to 2 s — too slow for mcrd's "exit within a
  // second" on SIGTERM. Connecting to our own port while the exposer stops wakes that poll.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    while (!stopped.load(std::memory_order_acquire)) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0) {
        (void)connect(fd, reinterpret_cast<const sockaddr*>(&impl_->address),
                      sizeof impl_->address);
        close(fd);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  impl_->exposer.reset();
  stopped.store(true, std::memory_order_release);
  waker.join();
}

uint16_t MetricsServer::port() const { return impl_->port; }

}  // namespace mcr::metrics
