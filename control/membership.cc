#include "control/membership.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mcr::control {
namespace {

std::string Ip(uint32_t addr_net_order) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{addr_net_order};
  return inet_ntop(AF_INET, &a, buf, sizeof buf);
}

std::string MembershipName(const std::string& interface, uint32_t group, uint32_t source) {
  return source == 0 ? absl::StrCat("(*, ", Ip(group), ") on ", interface)
                     : absl::StrCat("(", Ip(source), ", ", Ip(group), ") on ", interface);
}

sockaddr_storage Sin(uint32_t addr_net_order) {
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = addr_net_order;
  return ss;
}

// Joins or leaves on `fd`. Returns 0 or -1 with errno set.
//
// (*,G) uses IP_ADD/DROP_MEMBERSHIP with ip_mreqn, which names the interface by index. (S,G) uses
// MCAST_JOIN/LEAVE_SOURCE_GROUP rather than IP_ADD/DROP_SOURCE_MEMBERSHIP: both end in the same
// kernel code (ip_mc_join_group_ssm + ip_mc_source), but ip_mreq_source names the interface by
// its IPv4 address, and capture interfaces often have none (or share one).
int SetMembership(int fd, bool join, int ifindex, uint32_t group, uint32_t source) {
  if (source == 0) {
    ip_mreqn mr{};
    mr.imr_multiaddr.s_addr = group;
    mr.imr_ifindex = ifindex;
    return setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &mr,
                      sizeof mr);
  }
  group_source_req req{};
  req.gsr_interface = static_cast<uint32_t>(ifindex);
  req.gsr_group = Sin(group);
  req.gsr_source = Sin(source);
  return setsockopt(fd, IPPROTO_IP, join ? MCAST_JOIN_SOURCE_GROUP : MCAST_LEAVE_SOURCE_GROUP, &req,
                    sizeof req);
}

const char* JoinOption(uint32_t source) {
  return source == 0 ? "IP_ADD_MEMBERSHIP" : "MCAST_JOIN_SOURCE_GROUP";
}
const char* LeaveOption(uint32_t source) {
  return source == 0 ? "IP_DROP_MEMBERSHIP" : "MCAST_LEAVE_SOURCE_GROUP";
}

}  // namespace

MembershipPool::OwnedFd& MembershipPool::OwnedFd::operator=(OwnedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

MembershipPool::OwnedFd::~OwnedFd() {
  if (fd_ >= 0) close(fd_);
}

MembershipPool::MembershipPool(MembershipOptions options)
    : options_(options),
      max_groups_(std::max(1, options.max_groups_per_socket)),
      max_sources_(std::max(1, options.max_sources_per_group)) {}

MembershipPool::~MembershipPool() = default;

absl::Status MembershipPool::Sync(const std::vector<engine::RuleSpec>& rules,
                                  const std::vector<int>& deleted) {
  absl::flat_hash_map<std::string, absl::flat_hash_set<GroupKey>> want;
  absl::flat_hash_set<SinkKey> want_sinks;
  for (const engine::RuleSpec& r : rules) {
    if (engine::IsMulticast(r.input_group)) {
      want[r.input_interface].insert({r.input_group, r.input_source});
    } else {
      want_sinks.insert({r.input_group, r.input_port});
    }
  }
  std::vector<absl::Status> failures;
  // Limits learned from refusals hold for one Sync: the sysctl may have been raised since, and
  // relearning costs one refused join.
  max_groups_ = std::max(1, options_.max_groups_per_socket);
  max_sources_ = std::max(1, options_.max_sources_per_group);

  // An interface whose index changed has lost its memberships in the kernel: it was deleted, or
  // deleted and re-created; so has one re-created under its old index (`deleted`). Closing its
  // sockets also frees their socket-side entries, which the kernel keeps (and counts against
  // the per-socket limit) after the device is gone.
  for (const auto& [name, groups] : want) interfaces_.try_emplace(name);
  for (auto& [name, itf] : interfaces_) {
    const int index = static_cast<int>(if_nametoindex(name.c_str()));  // 0: no such interface
    if (index != itf.ifindex ||
        std::find(deleted.begin(), deleted.end(), itf.ifindex) != deleted.end()) {
      CloseAll(itf);
      itf.ifindex = index;
    }
  }

  // Leave first, so joins below reuse the freed slots.
  for (auto it = interfaces_.begin(); it != interfaces_.end();) {
    auto& [name, itf] = *it;
    const auto w = want.find(name);
    for (auto m = itf.memberships.begin(); m != itf.memberships.end();) {
      if (w != want.end() && w->second.contains(m->first)) {
        ++m;
        continue;
      }
      if (absl::Status s = Leave(itf, name, m->first); !s.ok()) failures.push_back(std::move(s));
      itf.memberships.erase(m++);
    }
    if (w == want.end()) {
      interfaces_.erase(it++);  // closes its sockets
    } else {
      ++it;
    }
  }

  for (const auto& [name, groups] : want) {
    Interface& itf = interfaces_.at(name);
    for (const GroupKey& key : groups) {
      Membership& m = itf.memberships[key];
      if (m.socket != nullptr) continue;
      m.error.clear();
      if (itf.ifindex == 0) continue;  // pending until the interface exists
      if (absl::Status s = Join(itf, name, key, m); !s.ok()) {
        m.error = std::string(s.message());
        failures.push_back(std::move(s));
      }
    }
    // Sockets emptied by leaves and not refilled: nothing points at them (a membership points
    // only at the socket holding its group).
    std::erase_if(itf.sockets, [](const auto& s) { return s->groups.empty(); });
  }

  for (auto it = sinks_.begin(); it != sinks_.end();) {
    if (want_sinks.contains(it->first)) {
      ++it;
    } else {
      sinks_.erase(it++);
    }
  }
  for (const SinkKey& key : want_sinks) {
    Sink& sink = sinks_[key];
    if (sink.fd.get() >= 0) continue;
    if (absl::Status s = OpenSink(sink, key); !s.ok()) failures.push_back(std::move(s));
  }

  if (failures.empty()) return absl::OkStatus();
  constexpr size_t kShown = 5;  // keep one log line readable when a whole interface fails
  std::vector<std::string> shown;
  for (size_t i = 0; i < failures.size() && i < kShown; ++i) {
    shown.emplace_back(failures[i].message());
  }
  std::string message = absl::StrCat(
      failures.size(), " membership operation(s) failed: ", absl::StrJoin(shown, "; "));
  if (failures.size() > kShown)
    absl::StrAppend(&message, "; and ", failures.size() - kShown, " more");
  return absl::Status(failures.front().code(), message);
}

absl::Status MembershipPool::Join(Interface& itf, const std::string& name, const GroupKey& key,
                                  Membership& m) {
  const auto [group, source] = key;
  for (;;) {
    Socket* s = SocketWithRoom(itf, key);
    if (s == nullptr) {
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat("socket for ", MembershipName(name, group, source)));
    }
    const auto held = s->groups.find(group);
    if (SetMembership(s->fd.get(), /*join=*/true, itf.ifindex, group, source) == 0) {
      if (source == 0) {
        s->groups[group] = 0;
      } else {
        ++s->groups[group];
      }
      m.socket = s;
      return absl::OkStatus();
    }
    const int err = errno;
    // ENOBUFS before our limit: the sysctl was lowered (or option memory, net.core.optmem_max, ran
    // short). Learn the lower limit and try another socket; each retry lowers a limit, so this
    // ends. A fresh socket refusing the first group is a real failure.
    if (err == ENOBUFS) {
      if (held != s->groups.end()) {  // adding a source to a group this socket holds
        if (held->second < max_sources_) {
          max_sources_ = held->second;
          continue;
        }
      } else if (const int n = static_cast<int>(s->groups.size()); n > 0 && n < max_groups_) {
        max_groups_ = n;
        continue;
      }
    }
    std::string message =
        absl::StrCat(JoinOption(source), " ", MembershipName(name, group, source));
    if (err == ENOBUFS) {
      absl::StrAppend(&message,
                      " (per-socket limit: check net.ipv4.igmp_max_memberships, "
                      "net.ipv4.igmp_max_msf and net.core.optmem_max)");
    }
    return absl::ErrnoToStatus(err, message);
  }
}

MembershipPool::Socket* MembershipPool::SocketWithRoom(Interface& itf, const GroupKey& key) {
  const auto [group, source] = key;
  Socket* free_slot = nullptr;
  for (const auto& s : itf.sockets) {
    const auto g = s->groups.find(group);
    if (g != s->groups.end()) {
      // Another source for a group this socket already holds in INCLUDE mode costs no group
      // slot: the best fit. A (*,G) entry never takes sources (see Socket::groups).
      if (source != 0 && g->second > 0 && g->second < max_sources_) return s.get();
      continue;
    }
    if (free_slot == nullptr && static_cast<int>(s->groups.size()) < max_groups_) {
      free_slot = s.get();
    }
  }
  if (free_slot != nullptr) return free_slot;
  // Never bound: the socket is in no UDP hash chain, so it queues no datagram; it exists only
  // to hold memberships. Leaves happen on close, also when the process dies.
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return nullptr;
  itf.sockets.push_back(std::make_unique<Socket>());
  itf.sockets.back()->fd = OwnedFd(fd);
  return itf.sockets.back().get();
}

absl::Status MembershipPool::Leave(Interface& itf, const std::string& name, const GroupKey& key) {
  const auto [group, source] = key;
  Socket* s = itf.memberships.at(key).socket;
  if (s == nullptr) return absl::OkStatus();
  if (SetMembership(s->fd.get(), /*join=*/false, itf.ifindex, group, source) == 0) {
    // Dropping the last INCLUDE source leaves the group on that socket (the kernel's
    // "(INCLUDE, empty) == LEAVE_GROUP" rule), freeing its slot.
    if (source == 0 || --s->groups[group] == 0) s->groups.erase(group);
    itf.memberships.at(key).socket = nullptr;
    return absl::OkStatus();
  }
  const int err = errno;
  // Our picture of this socket is wrong. Closing it leaves all of its groups in the kernel, so the
  // picture is right again; the join pass of this Sync rejoins the others it held.
  CloseSocket(itf, s);
  return absl::ErrnoToStatus(
      err, absl::StrCat(LeaveOption(source), " ", MembershipName(name, group, source),
                        " (socket closed instead)"));
}

void MembershipPool::CloseSocket(Interface& itf, Socket* socket) {
  for (auto& [key, m] : itf.memberships) {
    if (m.socket == socket) m.socket = nullptr;
  }
  std::erase_if(itf.sockets, [socket](const auto& s) { return s.get() == socket; });
}

void MembershipPool::CloseAll(Interface& itf) {
  for (auto& [key, m] : itf.memberships) m.socket = nullptr;
  itf.sockets.clear();
}

// A unicast input needs no membership, but the kernel's IP stack sees the relayed stream too
// (capture is at layer 2): with no socket bound to the destination port, UDP answers every
// datagram with an ICMP port unreachable, which makes senders that watch for it (a connected UDP
// socket gets ECONNREFUSED) stop or complain, and spends the host's ICMP rate limit. A bound
// socket that is never read stops that. Its receive buffer is the smallest the kernel allows, so
// it holds a couple of datagrams and then drops the rest, counted in UdpRcvbufErrors/InErrors.
absl::Status MembershipPool::OpenSink(Sink& sink, const SinkKey& key) {
  const auto [addr, port] = key;
  const std::string what = absl::StrCat("sink for ", Ip(addr), ":", port);
  sink = Sink{};
  OwnedFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP));
  if (fd.get() < 0) {
    const int err = errno;
    sink.failed = true;
    sink.detail = absl::StrCat(what, ": socket: ", strerror(err));
    return absl::ErrnoToStatus(err, what);
  }
  const int zero = 0;  // the kernel rounds up to its minimum (SOCK_MIN_RCVBUF)
  const int one = 1;
  // IP_FREEBIND: the address may not be configured yet (its interface absent or still coming
  // up); the sink then takes effect the moment it is, with no further Sync.
  if (setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &zero, sizeof zero) != 0 ||
      setsockopt(fd.get(), IPPROTO_IP, IP_FREEBIND, &one, sizeof one) != 0) {
    const int err = errno;
    sink.failed = true;
    sink.detail = absl::StrCat(what, ": setsockopt: ", strerror(err));
    return absl::ErrnoToStatus(err, what);
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = addr;
  sin.sin_port = htons(port);
  // No SO_REUSEADDR: with it our more specific bind could take datagrams from a local
  // application already bound to the port.
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&sin), sizeof sin) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      // Another local socket owns the port and keeps the kernel quiet while it lives. Not an
      // error; every Sync tries again in case it has gone.
      sink.detail = "port bound by another local socket";
      return absl::OkStatus();
    }
    sink.failed = true;
    sink.detail = absl::StrCat(what, ": bind: ", strerror(err));
    return absl::ErrnoToStatus(err, absl::StrCat(what, ": bind"));
  }
  sink.fd = std::move(fd);
  return absl::OkStatus();
}

std::vector<MembershipInfo> MembershipPool::Describe() const {
  std::vector<MembershipInfo> out;
  for (const auto& [name, itf] : interfaces_) {
    for (const auto& [key, m] : itf.memberships) {
      MembershipInfo info;
      info.kind = key.second == 0 ? MembershipInfo::Kind::kAnySource
                                  : MembershipInfo::Kind::kSourceSpecific;
      info.interface = name;
      info.group = key.first;
      info.source = key.second;
      if (m.socket != nullptr) {
        info.state = MembershipInfo::State::kActive;
        info.ifindex = itf.ifindex;
      } else if (itf.ifindex == 0) {
        info.state = MembershipInfo::State::kPending;
        info.detail = absl::StrCat("interface ", name, " does not exist");
      } else {
        info.state = MembershipInfo::State::kFailed;
        info.ifindex = itf.ifindex;
        info.detail = m.error;
      }
      out.push_back(std::move(info));
    }
  }
  for (const auto& [key, sink] : sinks_) {
    MembershipInfo info;
    info.kind = MembershipInfo::Kind::kUnicastSink;
    info.state = sink.failed ? MembershipInfo::State::kFailed : MembershipInfo::State::kActive;
    info.group = key.first;
    info.port = key.second;
    info.detail = sink.detail;
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const MembershipInfo& a, const MembershipInfo& b) {
    return std::forward_as_tuple(a.interface, ntohl(a.group), ntohl(a.source), a.port) <
           std::forward_as_tuple(b.interface, ntohl(b.group), ntohl(b.source), b.port);
  });
  return out;
}

size_t MembershipPool::socket_count() const {
  size_t n = 0;
  for (const auto& [name, itf] : interfaces_) n += itf.sockets.size();
  return n;
}

}  // namespace mcr::control
