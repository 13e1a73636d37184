// HOT PATH (EgressBatcher::Add/Flush): no locks, no allocation, no exceptions, no synchronous
// logging; one sendmsg per run of datagrams, never per packet when packets come in bursts.

#include "engine/internal/egress.h"

#include <arpa/inet.h>
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

void EgressBatcher::Resize(size_t num_outputs) {
  // Called between passes: nothing is pending (Flush ran at the end of the last pass).
  slots_.assign(num_outputs, Slot{});
  dirty_.assign(num_outputs, 0);
  num_dirty_ = 0;
}

void EgressBatcher::Flush() noexcept {
  for (size_t i = 0; i < num_dirty_; ++i) {
    Slot& s = slots_[dirty_[i]];
    s.listed = false;
    if (s.count) FlushSlot(s);
  }
  num_dirty_ = 0;
}

void EgressBatcher::FlushSlot(Slot& s) noexcept {
  const OutputEntry* out = s.out;
  const uint32_t n = s.count;
  s.count = 0;
  if (out->fd < 0) {
    out->counters->errors[static_cast<size_t>(EgressError::kNoInterface)].Add(n);
    return;
  }
  // Split into GSO runs: equal-size segments (the last may be shorter), same TOS when the TOS is
  // copied per datagram, at most 64 segments and 65507 bytes, segment within the path MTU.
  const bool copy_tos = out->dscp < 0;
  uint32_t i = 0;
  while (i < n) {
    const Item& first = s.items[i];
    uint32_t j = i + 1;
    uint32_t total = first.len;
    // An empty datagram is never part of a run: to the kernel a segment size of 0 means "no
    // GSO" (a run led by one leaves as one empty datagram), and one ending a run adds no
    // segment (it vanishes).
    const uint32_t max_segment = std::min<uint32_t>(out->max_gso_segment, s.route_segment_cap);
    if (first.len != 0 && first.len <= max_segment) {
      while (j < n) {
        const Item& it = s.items[j];
        // Only the DSCP bits are sent (SendRun): datagrams differing in ECN alone share a run.
        if (it.len == 0 || (copy_tos && ((it.tos ^ first.tos) & 0xfc) != 0)) break;
        if (it.len > first.len || total + it.len > kMaxGsoBytes) break;
        total += it.len;
        ++j;
        if (it.len < first.len) break;  // a shorter datagram may only end a run
      }
    }
    if (!SendRun(out, &s.items[i], j - i, j - i > 1)) {
      // The route refused the run as one GSO send (its MTU is below the interface's, or the
      // path cannot segment) and it went datagram by datagram. Runs for this output stay
      // within the route's MTU from now on (until the next table swap), so that the failed
      // attempt is not paid again on every run.
      int mtu = 0;
      socklen_t len = sizeof mtu;
      s.route_segment_cap =
          getsockopt(out->fd, IPPROTO_IP, IP_MTU, &mtu, &len) == 0 && mtu > 28 &&
                  static_cast<uint32_t>(mtu - 28) < first.len
              ? static_cast<uint32_t>(mtu - 28)
              : 0;  // unknown, or the MTU is not why: no GSO for this output
    }
    i = j;
  }
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

bool EgressBatcher::SendRun(const OutputEntry* out, const Item* items, uint32_t n,
                            bool gso) noexcept {
  iovec iov[kMaxGsoSegments];
  uint64_t bytes = 0;
  for (uint32_t k = 0; k < n; ++k) {
    iov[k].iov_base = const_cast<uint8_t*>(items[k].data);
    iov[k].iov_len = items[k].len;
    bytes += items[k].len;
  }
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = n;
  size_t clen = 0;
  cmsghdr* cm = reinterpret_cast<cmsghdr*>(control);
  if (gso) {
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    const uint16_t seg = static_cast<uint16_t>(items[0].len);
    memcpy(CMSG_DATA(cm), &seg, sizeof seg);
    clen += CMSG_SPACE(sizeof(uint16_t));
    cm = reinterpret_cast<cmsghdr*>(control + clen);
  }
  if (out->dscp < 0) {
    cm->cmsg_level = IPPROTO_IP;
    cm->cmsg_type = IP_TOS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    const int tos = items[0].tos & 0xfc;  // DSCP only; ECN is the egress path's business
    memcpy(CMSG_DATA(cm), &tos, sizeof tos);
    clen += CMSG_SPACE(sizeof(int));
  }
  msg.msg_control = clen ? control : nullptr;
  msg.msg_controllen = clen;
  ++syscalls_;
  ssize_t sent = sendmsg(out->fd, &msg, MSG_DONTWAIT);
  int icmp_report = 0;
  if (sent < 0 && MayBeIcmpReport(errno)) {
    // An ICMP error about a datagram sent earlier (port or host unreachable, time exceeded,
    // administratively prohibited...) is reported by whichever send comes next, and cleared by
    // reporting it: this run was not sent, so send it again — once. A local cause (no route)
    // fails again and counts below.
    icmp_report = errno;
    ++syscalls_;
    sent = sendmsg(out->fd, &msg, MSG_DONTWAIT);
  }
  if (sent >= 0) {
    // The report itself is counted once, under its reason.
    if (icmp_report != 0)
      out->counters->errors[static_cast<size_t>(EgressErrorFromErrno(icmp_report))].Add(1);
    out->counters->packets.Add(n);
    out->counters->bytes.Add(bytes);
    return true;
  }
  if (gso && (errno == EMSGSIZE || errno == EINVAL || errno == EIO)) {
    // The route refuses this GSO run although the interface's MTU allowed it: a route or path
    // MTU below the interface's, or a path (IPsec) that cannot segment. Datagram by datagram,
    // the kernel fragments what it must.
    for (uint32_t k = 0; k < n; ++k) SendRun(out, &items[k], 1, false);
    return false;
  }
  // Drop this run for this output only; never block the others.
  out->counters->errors[static_cast<size_t>(EgressErrorFromErrno(errno))].Add(n);
  return true;
}

}  // namespace mcr::engine::internal
