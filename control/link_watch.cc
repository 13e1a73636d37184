#include "control/link_watch.h"

#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>

#include "absl/status/status.h"

namespace mcr::control {
namespace {

// Receive queue asked for. The default (net.core.rmem_default, ~208 KiB) holds a few dozen link
// notifications; creating hundreds of VLANs or veths at once would overflow it. Overflow is still
// handled (Drain reports a change), this only makes it rare.
constexpr int kReceiveBuffer = 4 << 20;

// One notification is one datagram. Link messages are a few KiB (multicast ones carry no VF
// list), so this never truncates; a truncated one would still be reported as a change.
constexpr size_t kRecvSize = 32 * 1024;

struct DrainState {
  bool changed = false;
  std::vector<int>* deleted;
};

int OnMessage(const nlmsghdr* nlh, void* data) {
  DrainState& state = *static_cast<DrainState*>(data);
  bool& changed = state.changed;
  switch (nlh->nlmsg_type) {
    case RTM_NEWLINK:  // also carries flag, carrier, MTU, name and master changes
      changed = true;
      break;
    case RTM_DELLINK:
      changed = true;
      // A port leaving a bridge also gets an RTM_DELLINK, of family AF_BRIDGE (its bridge
      // port entry is gone; the link is not): only AF_UNSPEC ones are deleted links.
      if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(ifinfomsg)) {
        const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
        if (ifi->ifi_family == AF_UNSPEC) state.deleted->push_back(ifi->ifi_index);
      }
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(ifaddrmsg) &&
          static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh))->ifa_family == AF_INET) {
        changed = true;
      }
      break;
    default:
      break;
  }
  return MNL_CB_OK;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LinkWatcher>> LinkWatcher::Open() {
  mnl_socket* nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (nl == nullptr) return absl::ErrnoToStatus(errno, "opening an rtnetlink socket");
  std::unique_ptr<LinkWatcher> watcher(new LinkWatcher(nl));  // owns nl from here on

  // SO_RCVBUFFORCE passes net.core.rmem_max with CAP_NET_ADMIN; without it SO_RCVBUF is capped
  // at rmem_max. Either failing only leaves the default size, so neither is an error.
  const int fd = mnl_socket_get_fd(nl);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kReceiveBuffer, sizeof kReceiveBuffer) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kReceiveBuffer, sizeof kReceiveBuffer);
  }
  if (mnl_socket_bind(nl, RTMGRP_LINK | RTMGRP_IPV4_IFADDR, MNL_SOCKET_AUTOPID) < 0) {
    return absl::ErrnoToStatus(errno, "subscribing to rtnetlink link and address notifications");
  }
  return watcher;
}

LinkWatcher::LinkWatcher(mnl_socket* nl) : nl_(nl), buf_(kRecvSize) {}

LinkWatcher::~LinkWatcher() { mnl_socket_close(nl_); }

int LinkWatcher::fd() const { return mnl_socket_get_fd(nl_); }

bool LinkWatcher::Drain() {
  DrainState state{.changed = false, .deleted = &deleted_};
  bool& changed = state.changed;
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(nl_, buf_.data(), buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // The kernel dropped notifications for lack of queue space; which ones is unknowable.
        // The error is reported once and cleared, and the queue still holds what fit: keep going.
        ++overflows_;
        changed = true;
        continue;
      }
      if (errno == ENOSPC) {  // libmnl: datagram truncated (MSG_TRUNC) — still a notification
        changed = true;
        continue;
      }
      break;  // EAGAIN: drained
    }
    // Port id and sequence 0: accept kernel notifications, which carry neither.
    mnl_cb_run(buf_.data(), static_cast<size_t>(n), 0, 0, OnMessage, &state);
  }
  return changed;
}

}  // namespace mcr::control
