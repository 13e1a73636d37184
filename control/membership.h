#pragma once
// Host group memberships for relay inputs. The relay captures at layer 2, but IGMP-snooping
// switches and NIC multicast filters deliver a group only to hosts that have joined it, so the
// control thread keeps the host a member of every input group on its input interface.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "engine/rule.h"
#include "metrics/igmp_stats.h"

namespace mcr::control {

/// Per-socket limits of the kernel's membership lists. Past either limit a join fails with
/// ENOBUFS; the pool then learns the lower limit and carries on with another socket.
struct MembershipOptions {
  /// Groups joined per socket. Default 20, the default of net.ipv4.igmp_max_memberships (raising
  /// the sysctl does not raise this: each entry also costs option memory, net.core.optmem_max).
  int max_groups_per_socket = 20;
  /// Sources per socket and group for (S,G) joins. Default 10, the default of
  /// net.ipv4.igmp_max_msf.
  int max_sources_per_group = 10;
};

/// One membership the rules ask for, as Describe() reports it.
struct MembershipInfo {
  enum class Kind : uint8_t {
    kAnySource,       // (*,G): IP_ADD_MEMBERSHIP
    kSourceSpecific,  // (S,G): MCAST_JOIN_SOURCE_GROUP
    kUnicastSink,     // unicast input: a bound, never-read socket (see membership.cc)
  };
  enum class State : uint8_t {
    kActive,   // joined (or, for a sink, the port is bound)
    kPending,  // the interface does not exist now; a later Sync joins it
    kFailed,   // the last attempt failed (`detail` says why); retried by every Sync
  };
  Kind kind = Kind::kAnySource;
  State state = State::kPending;
  /// Input interface; empty for a sink, which serves the address on every interface.
  std::string interface;
  /// Interface index the membership is on; 0 when pending and for sinks.
  int ifindex = 0;
  /// Group, network byte order; for a sink the local unicast address.
  uint32_t group = 0;
  /// Source, network byte order; 0 unless kSourceSpecific.
  uint32_t source = 0;
  /// UDP port, host byte order; sinks only, 0 otherwise.
  uint16_t port = 0;
  /// Why the membership is pending or failed, or a note on an active one; empty otherwise.
  std::string detail;
};

/// Keeps the memberships the running rules need: the host's own (MembershipPool: the kernel
/// joins and speaks IGMP) or link-layer ones that mcrd reports itself (LinkMemberships,
/// igmp_host.h: `mcrd --membership link`). Control thread only.
class GroupMemberships {
 public:
  virtual ~GroupMemberships() = default;
  /// Makes the memberships match `rules`; `deleted`: interface indexes deleted since the last
  /// call (their memberships are gone). Returns OK or an error naming what failed; what failed
  /// is retried by the next call.
  virtual absl::Status Sync(const std::vector<engine::RuleSpec>& rules,
                            const std::vector<int>& deleted) = 0;
  /// Every membership of the last Sync with its state, sorted by interface, group, source, port.
  virtual std::vector<MembershipInfo> Describe() const = 0;
  /// Any thread: the IGMP mcrd speaks itself, per interface (link-layer memberships only; the
  /// kernel's own IGMP is not counted here).
  virtual std::vector<metrics::IgmpInterfaceStats> IgmpStats() const { return {}; }
};

/// Holds the memberships the rule set needs, in pools of never-bound UDP sockets per interface.
/// Owned by the daemon; control thread only (not thread-safe). Destruction closes every socket,
/// which leaves every group — as a crash does.
class MembershipPool final : public GroupMemberships {
 public:
  explicit MembershipPool(MembershipOptions options = {});
  ~MembershipPool();
  MembershipPool(const MembershipPool&) = delete;
  MembershipPool& operator=(const MembershipPool&) = delete;

  /// Makes the host a member of exactly the input groups `rules` need, on their input interfaces,
  /// and binds a sink for every unicast input. Leaves what no rule needs any more. Interfaces that
  /// do not exist are remembered and joined by a later Sync; one re-created under a new ifindex is
  /// rejoined. Call it after every rule change and every link or address event. Keeps going past
  /// failures: returns OK, or an error that counts this Sync's failures and names the first few
  /// (Describe() gives each one's reason). Failed and pending memberships are retried next time.
  absl::Status Sync(const std::vector<engine::RuleSpec>& rules,
                    const std::vector<int>& deleted) override;
  absl::Status Sync(const std::vector<engine::RuleSpec>& rules) { return Sync(rules, {}); }

  /// Every membership of the last Sync with its state, sorted by interface, group, source, port.
  std::vector<MembershipInfo> Describe() const override;

  /// Open membership sockets (sinks excluded), for tests and diagnostics.
  size_t socket_count() const;

 private:
  // (group, source), both network byte order; source 0 for (*,G).
  using GroupKey = std::pair<uint32_t, uint32_t>;
  // (local address network byte order, port host byte order).
  using SinkKey = std::pair<uint32_t, uint16_t>;

  // Owns a file descriptor; move-only.
  class OwnedFd {
   public:
    OwnedFd() = default;
    explicit OwnedFd(int fd) : fd_(fd) {}
    OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    OwnedFd& operator=(OwnedFd&& other) noexcept;
    ~OwnedFd();
    int get() const { return fd_; }

   private:
    int fd_ = -1;
  };

  // One never-bound UDP socket and the groups it holds.
  struct Socket {
    OwnedFd fd;
    // group → sources joined on this socket; 0 means joined as (*,G). A socket never holds one
    // group both ways: adding a source to a (*,G) entry would silently turn it into INCLUDE mode.
    absl::flat_hash_map<uint32_t, int> groups;
  };
  struct Membership {
    Socket* socket = nullptr;  // null: not joined
    std::string error;         // last failure; empty when joined or pending
  };
  struct Interface {
    int ifindex = 0;  // the index memberships are on; 0: absent at the last Sync
    // unique_ptr: Membership::socket points at them across vector growth.
    std::vector<std::unique_ptr<Socket>> sockets;
    absl::flat_hash_map<GroupKey, Membership> memberships;
  };
  struct Sink {
    OwnedFd fd;
    std::string detail;
    bool failed = false;
  };

  // Joins `key` on some socket of `itf`, opening one when every socket is full.
  absl::Status Join(Interface& itf, const std::string& name, const GroupKey& key, Membership& m);
  // A socket that can take `key`, or null with errno set.
  Socket* SocketWithRoom(Interface& itf, const GroupKey& key);
  // Leaves `key` if joined. On failure the socket has been closed (leaving all of its groups).
  absl::Status Leave(Interface& itf, const std::string& name, const GroupKey& key);
  static void CloseSocket(Interface& itf, Socket* socket);
  static void CloseAll(Interface& itf);
  static absl::Status OpenSink(Sink& sink, const SinkKey& key);

  const MembershipOptions options_;
  int max_groups_;   // learned: lowered when the kernel refuses earlier than expected, and back
  int max_sources_;  // to the options at every Sync (a lowered sysctl may have been raised again)
  absl::flat_hash_map<std::string, Interface> interfaces_;
  absl::flat_hash_map<SinkKey, Sink> sinks_;
};

}  // namespace mcr::control
