// HOT PATH (EgressBatcher::Add/Flush): no locks, no allocation, no exceptions, no synchronous
// logging; one send request per run of datagrams, never per packet when packets come in bursts.

#include "engine/internal/egress.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <net/if.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace mcr::engine::internal {
namespace {

// The interface is not ready to send (down, gone, no address): a state that passes, not a
// mistake in the output. (With the socket bound to its interface, a destination without a route
// is taken as on-link, so ENETUNREACH means the interface is down.)
bool InterfaceNotReady(int err) {
  return err == ENETUNREACH || err == ENETDOWN || err == ENODEV || err == EADDRNOTAVAIL ||
         err == EHOSTUNREACH;
}

absl::Status Errno(const char* what, const OutputSpec& spec) {
  const int err = errno;
  char buf[INET_ADDRSTRLEN];
  in_addr a{spec.dst_addr};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  const std::string msg = absl::StrFormat("output %s:%u@%s: %s: %s", buf, spec.dst_port,
                                          spec.interface, what, strerror(err));
  return InterfaceNotReady(err) ? absl::FailedPreconditionError(msg)
                                : absl::UnavailableError(msg);
}

}  // namespace

absl::StatusOr<int> OpenOutputSocket(const OutputSpec& spec, int ifindex, in_addr if_addr,
                                     uint32_t sndbuf) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket", spec);
  auto fail = [&](const char* what) {
    absl::Status st = Errno(what, spec);
    close(fd);
    return st;
  };
  int one = 1, zero = 0;
  int buf = static_cast<int>(sndbuf);
  // SO_SNDBUFFORCE needs CAP_NET_ADMIN; without it SO_SNDBUF is capped by wmem_max.
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf) != 0)
    return fail("SO_SNDBUF");
  // Pin the egress interface for unicast destinations too (the route might point elsewhere).
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, spec.interface.c_str(),
                 static_cast<socklen_t>(spec.interface.size())) != 0)
    return fail("SO_BINDTODEVICE");
  // Without IP_RECVERR a full device queue is silent: the send "succeeds" (DESIGN.md).
  if (setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) != 0) return fail("IP_RECVERR");
  // DF clear on every datagram. By default (IP_PMTUDISC_WANT) the kernel sets DF on a datagram
  // sent alone but not on the segments of a GSO run (it decides on the whole run's length), so
  // the bit would depend on batching. Oversized datagrams are fragmented, as they always were.
  int pmtu = IP_PMTUDISC_DONT;
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) != 0)
    return fail("IP_MTU_DISCOVER");
  if (IsMulticast(spec.dst_addr)) {
    ip_mreqn mreq{};
    mreq.imr_ifindex = ifindex;
    mreq.imr_address = if_addr;
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof mreq) != 0)
      return fail("IP_MULTICAST_IF");
    // TTL 1 unless asked: nothing leaks past the next router. Set explicitly, not inherited.
    int ttl = spec.ttl ? spec.ttl : 1;
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) != 0)
      return fail("IP_MULTICAST_TTL");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof zero) != 0)
      return fail("IP_MULTICAST_LOOP");
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero) != 0)
      return fail("IP_MULTICAST_ALL");
  } else if (spec.ttl != 0) {
    int ttl = spec.ttl;
    if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) != 0) return fail("IP_TTL");
  }
  if (spec.dscp >= 0) {
    int tos = spec.dscp << 2;
    if (setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) != 0) return fail("IP_TOS");
  }
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr = if_addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) return fail("bind");
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_addr.s_addr = spec.dst_addr;
  dst.sin_port = htons(spec.dst_port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) return fail("connect");
  return fd;
}

void EgressBatcher::UseRing(io_uring* ring, uint64_t tag) {
  ring_ = ring;
  tag_ = tag;
  requests_.assign(kMaxInFlight, Request{});
  free_.clear();
  free_.reserve(kMaxInFlight);
  for (uint32_t i = kMaxInFlight; i-- > 0;) free_.push_back(i);
}

void EgressBatcher::Resize(size_t num_outputs) {
  // Called between passes: nothing is pending (Flush ran at the end of the last pass) and no
  // request refers to a slot (in_flight() is 0).
  slots_.assign(num_outputs, Slot{});
  dirty_.assign(num_outputs, 0);
  num_dirty_ = 0;
}

void EgressBatcher::Flush() noexcept {
  for (size_t i = 0; i < num_dirty_; ++i) {
    const uint32_t index = dirty_[i];
    Slot& s = slots_[index];
    s.listed = false;
    if (s.count != 0) {
      // One run on the ring; anything else, or an output already sending directly in this
      // pass, directly. An output's runs therefore reach the kernel in order either way.
      if (ring_ != nullptr && !s.sent_directly && in_flight_ < kMaxInFlight && s.out->fd >= 0 &&
          RunEnd(s, 0, s.count) == s.count) {
        Queue(s, index);
      } else {
        FlushSlot(s);
      }
    }
    s.sent_directly = false;
  }
  num_dirty_ = 0;
}

uint32_t EgressBatcher::RunEnd(const Slot& s, uint32_t i, uint32_t n) const noexcept {
  // GSO runs: equal-size segments (the last may be shorter), same TOS when the TOS is copied per
  // datagram, at most 64 segments and 65507 bytes, segment within the path MTU.
  const OutputEntry* out = s.out;
  const bool copy_tos = out->dscp < 0;
  const uint32_t first_len = static_cast<uint32_t>(s.iov[i].iov_len);
  uint32_t j = i + 1;
  uint32_t total = first_len;
  // An empty datagram is never part of a run: to the kernel a segment size of 0 means "no
  // GSO" (a run led by one leaves as one empty datagram), and one ending a run adds no
  // segment (it vanishes).
  const uint32_t max_segment = std::min<uint32_t>(out->max_gso_segment, s.route_segment_cap);
  if (first_len != 0 && first_len <= max_segment) {
    while (j < n) {
      const auto len = static_cast<uint32_t>(s.iov[j].iov_len);
      // Only the DSCP bits are sent (SendRun): datagrams differing in ECN alone share a run.
      if (len == 0 || (copy_tos && ((s.tos[j] ^ s.tos[i]) & 0xfc) != 0)) break;
      if (len > first_len || total + len > kMaxGsoBytes) break;
      total += len;
      ++j;
      if (len < first_len) break;  // a shorter datagram may only end a run
    }
  }
  return j;
}

void EgressBatcher::FlushSlot(Slot& s) noexcept {
  const OutputEntry* out = s.out;
  const uint32_t n = s.count;
  s.count = 0;
  if (out->fd < 0) {
    out->counters->errors[static_cast<size_t>(EgressError::kNoInterface)].Add(n);
    return;
  }
  uint32_t i = 0;
  while (i < n) {
    const uint32_t j = RunEnd(s, i, n);
    if (!SendRun(out, &s.iov[i], s.tos[i], j - i))
      LearnRouteCap(s, static_cast<uint32_t>(s.iov[i].iov_len));
    i = j;
  }
}

void EgressBatcher::LearnRouteCap(Slot& s, uint32_t refused_len) noexcept {
  // The route refused the run as one GSO send (its MTU is below the interface's, or the path
  // cannot segment) and it went datagram by datagram. Runs for this output stay within the
  // route's MTU from now on (until the next table swap), so that the failed attempt is not paid
  // again on every run.
  int mtu = 0;
  socklen_t len = sizeof mtu;
  s.route_segment_cap = getsockopt(s.out->fd, IPPROTO_IP, IP_MTU, &mtu, &len) == 0 && mtu > 28 &&
                                static_cast<uint32_t>(mtu - 28) < refused_len
                            ? static_cast<uint32_t>(mtu - 28)
                            : 0;  // unknown, or the MTU is not why: no GSO for this output
}

namespace {

// Errors that an ICMP message about an earlier datagram turns into (icmp_err_convert; with
// IP_RECVERR soft errors are reported too). EMSGSIZE is not among them: with DF clear no
// "fragmentation needed" comes back.
bool MayBeIcmpReport(int err) {
  switch (err) {
    case ECONNREFUSED:  // port unreachable
    case EHOSTUNREACH:  // host unreachable, time exceeded, administratively prohibited
    case ENETUNREACH:   // network unreachable or unknown
    case EHOSTDOWN:     // host unknown
    case ENONET:        // host isolated
    case ENOPROTOOPT:   // protocol unreachable
    case EPROTO:        // parameter problem
    case EOPNOTSUPP:    // source route failed
      return true;
    default:
      return false;
  }
}

}  // namespace

namespace {

// The message of one run of `n` datagrams at `iov` to `out`: a GSO run when n > 1, with its
// segment size, and the DSCP when it is copied per datagram, as control messages in `control`
// (64 bytes).
void BuildMsg(const OutputEntry* out, iovec* iov, uint32_t n, uint8_t tos, char* control,
              msghdr* msg) {
  *msg = msghdr{};
  msg->msg_iov = iov;
  msg->msg_iovlen = n;
  size_t clen = 0;
  cmsghdr* cm = reinterpret_cast<cmsghdr*>(control);
  if (n > 1) {
    const auto segment = static_cast<uint16_t>(iov[0].iov_len);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(cm), &segment, sizeof segment);
    clen += CMSG_SPACE(sizeof(uint16_t));
    cm = reinterpret_cast<cmsghdr*>(control + clen);
  }
  if (out->dscp < 0) {
    cm->cmsg_level = IPPROTO_IP;
    cm->cmsg_type = IP_TOS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    const int t = tos & 0xfc;  // DSCP only; ECN is the egress path's business
    memcpy(CMSG_DATA(cm), &t, sizeof t);
    clen += CMSG_SPACE(sizeof(int));
  }
  msg->msg_control = clen ? control : nullptr;
  msg->msg_controllen = clen;
}
static_assert(CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(int)) <= 64);

}  // namespace

bool EgressBatcher::SendRun(const OutputEntry* out, iovec* iov, uint8_t tos, uint32_t n) noexcept {
  alignas(cmsghdr) char control[64];
  msghdr msg;
  BuildMsg(out, iov, n, tos, control, &msg);
  ++send_calls_;
  const ssize_t sent = sendmsg(out->fd, &msg, MSG_DONTWAIT);
  return Finish(out, &msg, tos, sent < 0 ? errno : 0);
}

void EgressBatcher::Queue(Slot& s, uint32_t slot_index) noexcept {
  const uint32_t index = free_.back();
  free_.pop_back();
  Request& r = requests_[index];
  r.out = s.out;
  r.slot = slot_index;
  r.tos = s.tos[0];
  std::copy_n(s.iov.begin(), s.count, r.iov.begin());
  BuildMsg(s.out, r.iov.data(), s.count, r.tos, r.control, &r.msg);
  s.count = 0;
  io_uring_sqe* sqe;
  // A full submission queue: hand what is queued to the kernel now (in order), then go on.
  while ((sqe = io_uring_get_sqe(ring_)) == nullptr) io_uring_submit(ring_);
  io_uring_prep_sendmsg(sqe, r.out->fd, &r.msg, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, tag_ | index);
  ++in_flight_;
  ++send_calls_;
}

void EgressBatcher::Complete(const io_uring_cqe* cqe) noexcept {
  const auto index = static_cast<uint32_t>(io_uring_cqe_get_data64(cqe));
  Request& r = requests_[index];
  if (!Finish(r.out, &r.msg, r.tos, cqe->res < 0 ? -cqe->res : 0))
    LearnRouteCap(slots_[r.slot], static_cast<uint32_t>(r.iov[0].iov_len));
  free_.push_back(index);
  --in_flight_;
}

bool EgressBatcher::Finish(const OutputEntry* out, msghdr* msg, uint8_t tos, int err) noexcept {
  const auto n = static_cast<uint32_t>(msg->msg_iovlen);
  int icmp_report = 0;
  if (err != 0 && MayBeIcmpReport(err)) {
    // An ICMP error about a datagram sent earlier (port or host unreachable, time exceeded,
    // administratively prohibited...) is reported by whichever send comes next, and cleared by
    // reporting it: this run was not sent, so send it again — once. A local cause (no route)
    // fails again and counts below.
    icmp_report = err;
    ++send_calls_;
    err = sendmsg(out->fd, msg, MSG_DONTWAIT) < 0 ? errno : 0;
  }
  if (err == 0) {
    // The report itself is counted once, under its reason.
    if (icmp_report != 0)
      out->counters->errors[static_cast<size_t>(EgressErrorFromErrno(icmp_report))].Add(1);
    uint64_t bytes = 0;
    for (uint32_t k = 0; k < n; ++k) bytes += msg->msg_iov[k].iov_len;
    out->counters->packets.Add(n);
    out->counters->bytes.Add(bytes);
    return true;
  }
  if (n > 1 && (err == EMSGSIZE || err == EINVAL || err == EIO)) {
    // The route refuses this GSO run although the interface's MTU allowed it: a route or path
    // MTU below the interface's, or a path (IPsec) that cannot segment. Datagram by datagram,
    // the kernel fragments what it must.
    for (uint32_t k = 0; k < n; ++k) SendRun(out, &msg->msg_iov[k], tos, 1);
    return false;
  }
  // Drop this run for this output only; never block the others.
  out->counters->errors[static_cast<size_t>(EgressErrorFromErrno(err))].Add(n);
  return true;
}

bool SendsCompleteWhileSubmitted(io_uring* ring, uint64_t tag) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return false;
  // Fill the send queue: the receiver never reads.
  char byte = 0;
  while (send(sv[0], &byte, 1, MSG_DONTWAIT) == 1) {
  }
  bool inline_done = false;
  if (errno == EAGAIN) {
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    if (sqe != nullptr) {
      io_uring_prep_sendmsg(sqe, sv[0], &msg, MSG_DONTWAIT);
      io_uring_sqe_set_data64(sqe, tag);
      io_uring_submit(ring);
      io_uring_cqe* cqe = nullptr;
      if (io_uring_peek_cqe(ring, &cqe) == 0 && cqe != nullptr &&
          io_uring_cqe_get_data64(cqe) == tag) {
        inline_done = cqe->res == -EAGAIN;
        io_uring_cqe_seen(ring, cqe);
      } else {
        // Still armed: cancel it and wait for its end before the socket and `msg` go away.
        sqe = io_uring_get_sqe(ring);
        if (sqe != nullptr) {
          io_uring_prep_cancel64(sqe, tag, 0);
          io_uring_sqe_set_data64(sqe, 0);
          io_uring_submit(ring);
        }
        for (int seen = 0; seen < 2;) {
          if (io_uring_wait_cqe(ring, &cqe) != 0) break;
          ++seen;
          io_uring_cqe_seen(ring, cqe);
        }
      }
    }
  }
  close(sv[0]);
  close(sv[1]);
  return inline_done;
}

}  // namespace mcr::engine::internal
