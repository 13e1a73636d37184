// HOT PATH (Receiver::Run's loop and Drain): no allocation, no exceptions, no logging; syscalls
// are recvmmsg, and ppoll only when every socket is empty.
#include "bench/mcrgen/receiver.h"

#include <arpa/inet.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"

namespace mcr::gen {
namespace {

// A 9000-byte MTU carries at most 8972 payload bytes; anything longer is flagged MSG_TRUNC.
constexpr size_t kRecvBufferSize = 9216;
// TTL (int), TOS (1 byte) and the receive timestamp, each in its own aligned cmsg, with room
// to spare.
constexpr size_t kControlSize = 4 * CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(timespec));
// Upper bound on one ppoll so a signal that lands between the stop check and ppoll is still
// seen promptly.
constexpr int64_t kMaxPollNs = 100'000'000;

absl::Status SetInt(int fd, int level, int opt, int value, const char* what) {
  if (setsockopt(fd, level, opt, &value, sizeof(value)) < 0) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("setsockopt(%s)", what));
  }
  return absl::OkStatus();
}

sockaddr_storage Ipv4Storage(uint32_t addr, uint16_t port) {
  sockaddr_storage ss{};
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(addr);
  std::memcpy(&ss, &sin, sizeof(sin));
  return ss;
}

// Opens stream i's socket; returns the fd or an error (the fd is closed on error).
absl::StatusOr<int> OpenStreamSocket(const RecvConfig& config, const InterfaceInfo& iface,
                                     uint32_t i, int* rcvbuf) {
  const uint32_t addr = StreamAddress(config.group, i);
  const auto port = static_cast<uint16_t>(config.port + i);
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket(AF_INET, SOCK_DGRAM)");
  const auto fail = [fd](absl::Status s) {
    close(fd);
    return s;
  };
  // Several receivers (or a receiver and the relay under test) may share a group and port.
  if (absl::Status s = SetInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"); !s.ok()) {
    return fail(s);
  }
  // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; fall back quietly.
  const int want = static_cast<int>(std::min<uint64_t>(config.rcvbuf, INT32_MAX / 2));
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
  }
  socklen_t len = sizeof(*rcvbuf);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf, &len);
  for (const auto& [opt, name] :
       {std::pair{IP_RECVTTL, "IP_RECVTTL"}, std::pair{IP_RECVTOS, "IP_RECVTOS"}}) {
    if (absl::Status s = SetInt(fd, IPPROTO_IP, opt, 1, name); !s.ok()) return fail(s);
  }
  if (config.kernel_timestamps) {
    if (absl::Status s = SetInt(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS"); !s.ok()) {
      return fail(s);
    }
  }
  const bool multicast = IsMulticast(addr);
  if (multicast) {
    // By default Linux delivers a group to every socket bound to its port once any socket on the
    // host joined it, ignoring this socket's source filter; off = exactly what this socket joined.
    if (absl::Status s = SetInt(fd, IPPROTO_IP, IP_MULTICAST_ALL, 0, "IP_MULTICAST_ALL"); !s.ok()) {
      return fail(s);
    }
  } else {
    // Best effort (needs CAP_NET_RAW): count only what arrives on --interface.
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface.name.c_str(),
               static_cast<socklen_t>(iface.name.size()));
  }
  // Bound to the group (or unicast address), not INADDR_ANY: other groups on the same port stay
  // out of this socket.
  const sockaddr_storage local = Ipv4Storage(addr, port);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof(sockaddr_in)) < 0) {
    const int err = errno;
    if (err == EADDRNOTAVAIL) {
      return fail(absl::InvalidArgumentError(absl::StrFormat(
          "cannot bind %s: a unicast --group must be an address of this host", FormatIpv4(addr))));
    }
    return fail(absl::ErrnoToStatus(err, absl::StrFormat("bind %s:%d", FormatIpv4(addr), port)));
  }
  if (!multicast) return fd;
  // MCAST_JOIN_(SOURCE_)GROUP rather than IP_ADD_(SOURCE_)MEMBERSHIP: same joins, but they name
  // the interface by index, so they work on an interface without an IPv4 address and are not
  // ambiguous when two interfaces share one.
  if (config.source) {
    group_source_req req{};
    req.gsr_interface = static_cast<uint32_t>(iface.index);
    req.gsr_group = Ipv4Storage(addr, 0);
    req.gsr_source = Ipv4Storage(*config.source, 0);
    if (setsockopt(fd, IPPROTO_IP, MCAST_JOIN_SOURCE_GROUP, &req, sizeof(req)) < 0) {
      return fail(absl::ErrnoToStatus(
          errno, absl::StrFormat("join (%s, %s) on %s", FormatIpv4(*config.source),
                                 FormatIpv4(addr), iface.name)));
    }
  } else {
    group_req req{};
    req.gr_interface = static_cast<uint32_t>(iface.index);
    req.gr_group = Ipv4Storage(addr, 0);
    if (setsockopt(fd, IPPROTO_IP, MCAST_JOIN_GROUP, &req, sizeof(req)) < 0) {
      return fail(absl::ErrnoToStatus(
          errno, absl::StrFormat("join (*, %s) on %s", FormatIpv4(addr), iface.name)));
    }
  }
  return fd;
}

}  // namespace

const char* ExitReasonName(ExitReason r) noexcept {
  switch (r) {
    case ExitReason::kExpect:
      return "expect";
    case ExitReason::kTimeout:
      return "timeout";
    case ExitReason::kIdle:
      return "idle";
    case ExitReason::kSignal:
      return "signal";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Receiver>> Receiver::Open(const RecvConfig& config,
                                                         const InterfaceInfo& iface) {
  std::vector<int> fds;
  int rcvbuf = 0;
  for (uint32_t i = 0; i < config.streams; ++i) {
    absl::StatusOr<int> fd = OpenStreamSocket(config, iface, i, &rcvbuf);
    if (!fd.ok()) {
      for (int f : fds) close(f);
      return fd.status();
    }
    fds.push_back(*fd);
  }
  return std::unique_ptr<Receiver>(new Receiver(config, std::move(fds), rcvbuf));
}

Receiver::Receiver(const RecvConfig& config, std::vector<int> fds, int rcvbuf)
    : config_(config),
      fds_(std::move(fds)),
      rcvbuf_(rcvbuf),
      stats_(config.streams, config.window) {
  const uint32_t batch = config.batch;
  buffers_.assign(static_cast<size_t>(batch) * kRecvBufferSize, 0);
  control_.assign(static_cast<size_t>(batch) * kControlSize, 0);
  iov_.resize(batch);
  msgs_.resize(batch);
  for (uint32_t i = 0; i < batch; ++i) {
    iov_[i].iov_base = buffers_.data() + static_cast<size_t>(i) * kRecvBufferSize;
    iov_[i].iov_len = kRecvBufferSize;
    msgs_[i].msg_hdr.msg_iov = &iov_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
    msgs_[i].msg_hdr.msg_control = control_.data() + static_cast<size_t>(i) * kControlSize;
  }
}

Receiver::~Receiver() {
  for (int fd : fds_) close(fd);
}

void Receiver::Drain(int count, Clock& clock) noexcept {
  // One clock read per batch: the datagrams were all queued before recvmmsg returned, and a
  // clock read per datagram would cost more than the accounting itself. With kernel timestamps
  // each datagram carries its own arrival time instead (a datagram without one keeps the batch's).
  RxMeta meta;
  const int64_t batch_realtime = clock.RealtimeNs();
  meta.monotonic_ns = clock.MonotonicNs();
  for (int i = 0; i < count; ++i) {
    msghdr& h = msgs_[i].msg_hdr;
    meta.realtime_ns = batch_realtime;
    meta.ttl = -1;
    meta.tos = -1;
    meta.truncated = (h.msg_flags & MSG_TRUNC) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
        int ttl;
        std::memcpy(&ttl, CMSG_DATA(c), sizeof(ttl));
        meta.ttl = ttl;
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) {
        meta.tos = *CMSG_DATA(c);
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts;
        std::memcpy(&ts, CMSG_DATA(c), sizeof(ts));
        meta.realtime_ns = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
      }
    }
    stats_.OnDatagram(static_cast<const uint8_t*>(iov_[i].iov_base), msgs_[i].msg_len, meta);
  }
}

absl::StatusOr<ExitReason> Receiver::Run(const std::atomic<bool>& stop, Clock& clock) {
  const int64_t start = clock.MonotonicNs();
  const auto seconds_to_ns = [](double s) { return static_cast<int64_t>(std::llround(s * 1e9)); };
  const int64_t timeout_ns = config_.timeout_s > 0 ? seconds_to_ns(config_.timeout_s) : 0;
  const int64_t idle_ns = config_.idle_exit_s > 0 ? seconds_to_ns(config_.idle_exit_s) : 0;
  const int64_t spin_ns = int64_t{config_.spin_us} * 1000;
  int64_t last_packet = 0;
  bool any_packet = false;
  std::vector<pollfd> pfds;
  for (int fd : fds_) pfds.push_back({fd, POLLIN, 0});

  for (;;) {
    if (stop.load(std::memory_order_relaxed)) return ExitReason::kSignal;
    bool got = false;
    for (size_t s = 0; s < fds_.size(); ++s) {
      for (auto& m : msgs_) m.msg_hdr.msg_controllen = kControlSize;
      const int r = recvmmsg(fds_[s], msgs_.data(), static_cast<unsigned>(msgs_.size()),
                             MSG_DONTWAIT, nullptr);
      if (r > 0) {
        got = true;
        Drain(r, clock);
        if (config_.expect != 0 && stats_.unique() >= config_.expect) return ExitReason::kExpect;
      } else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return absl::ErrnoToStatus(errno, "recvmmsg");
      }
    }
    const int64_t now = clock.MonotonicNs();
    if (got) {
      any_packet = true;
      last_packet = now;
    }
    if (timeout_ns != 0 && now - start >= timeout_ns) return ExitReason::kTimeout;
    if (idle_ns != 0 && any_packet && now - last_packet >= idle_ns) return ExitReason::kIdle;
    if (got) continue;  // keep draining while there is traffic; poll only when idle
    if (any_packet && now - last_packet < spin_ns) {
      clock.Relax();
      continue;
    }

    int64_t wait = kMaxPollNs;
    if (timeout_ns != 0) wait = std::min(wait, start + timeout_ns - now);
    if (idle_ns != 0 && any_packet) wait = std::min(wait, last_packet + idle_ns - now);
    wait = std::max<int64_t>(wait, 0);
    const timespec ts{static_cast<time_t>(wait / 1'000'000'000),
                      static_cast<long>(wait % 1'000'000'000)};
    if (ppoll(pfds.data(), pfds.size(), &ts, nullptr) < 0 && errno != EINTR) {
      return absl::ErrnoToStatus(errno, "ppoll");
    }
  }
}

uint64_t Receiver::SocketDrops() const {
  uint64_t drops = 0;
  for (int fd : fds_) {
    uint32_t meminfo[SK_MEMINFO_VARS] = {};
    socklen_t len = sizeof(meminfo);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &len) == 0 &&
        len > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
      drops += meminfo[SK_MEMINFO_DROPS];
    }
  }
  return drops;
}

nlohmann::json Receiver::Report(ExitReason reason) const {
  nlohmann::json j = stats_.ToJson();
  j["socket_drops"] = SocketDrops();
  j["rcvbuf_bytes"] = rcvbuf_;
  j["exit_reason"] = ExitReasonName(reason);
  j["expect"] = config_.expect;
  j["expect_met"] = config_.expect == 0 || stats_.unique() >= config_.expect;
  j["group"] = FormatIpv4(config_.group);
  j["port"] = config_.port;
  j["source"] = config_.source ? nlohmann::json(FormatIpv4(*config_.source)) : nullptr;
  return j;
}

std::string Receiver::ReportText(ExitReason reason) const {
  return stats_.ToText() +
         absl::StrFormat(
             "socket drops %d (receive buffer %d bytes), exit: %s%s\n", SocketDrops(), rcvbuf_,
             ExitReasonName(reason),
             config_.expect != 0 && stats_.unique() < config_.expect
                 ? absl::StrFormat(" (expected %d unique, got %d)", config_.expect, stats_.unique())
                 : "");
}

int Receiver::ExitCode() const {
  const bool expect_met = config_.expect == 0 || stats_.unique() >= config_.expect;
  return expect_met && stats_.corrupted() == 0 ? 0 : 1;
}

}  // namespace mcr::gen
