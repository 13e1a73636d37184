#pragma once
// Interface events from rtnetlink, so the daemon can rejoin groups and rebuild capture sockets
// when links and IPv4 addresses come, go or change.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

struct mnl_socket;  // libmnl stays out of this header: only link_watch.cc includes it

namespace mcr::control {

/// A non-blocking rtnetlink socket subscribed to link and IPv4 address notifications
/// (RTMGRP_LINK | RTMGRP_IPV4_IFADDR) in the caller's network namespace. It reports only that
/// something changed; the caller then re-resolves every interface it cares about, which is also
/// the answer to a lost notification. Owned by the daemon; control thread only.
class LinkWatcher {
 public:
  /// Opens and subscribes. Fails with the reason (e.g. netlink refused by a sandbox).
  static absl::StatusOr<std::unique_ptr<LinkWatcher>> Open();
  ~LinkWatcher();
  LinkWatcher(const LinkWatcher&) = delete;
  LinkWatcher& operator=(const LinkWatcher&) = delete;

  /// Readable when notifications are pending; for the caller's epoll (level-triggered).
  int fd() const;

  /// Reads every pending notification without blocking. Returns true if any link or IPv4
  /// address was added, removed or changed — or if notifications were lost because the socket's
  /// receive queue overflowed (ENOBUFS), in which case the caller must rescan everything.
  bool Drain();

  /// Indexes of the links deleted (or moved to another network namespace) that Drain saw since
  /// the last call. An interface re-created under its old index before the caller rescans looks
  /// unchanged by name and index, yet the kernel has dropped its group memberships and unbound
  /// its capture sockets: these are the interfaces to rebuild even so. After an overflow the list
  /// may miss some.
  std::vector<int> TakeDeleted() { return std::exchange(deleted_, {}); }

  /// How many times the receive queue overflowed since Open (each reported by Drain as a change).
  uint64_t overflows() const { return overflows_; }

 private:
  explicit LinkWatcher(mnl_socket* nl);

  mnl_socket* nl_;
  std::vector<char> buf_;  // one recv's worth: MNL_SOCKET_BUFFER_SIZE
  std::vector<int> deleted_;
  uint64_t overflows_ = 0;
};

using LinkWatcherPtr = std::unique_ptr<LinkWatcher>;

}  // namespace mcr::control
