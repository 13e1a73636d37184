#pragma once
// Link-layer group memberships that mcrd reports itself: `mcrd --membership link`.
//
// By default (MembershipPool) the host joins every input group and the kernel speaks IGMP. The
// kernel then also delivers every datagram of those groups to its own IP stack — a route entry
// allocated per datagram, a UDP socket lookup, a drop — on the CPU that takes them from the NIC:
// 200-320 ns a datagram on the development VM, as much as the capture itself
// (docs/PERFORMANCE.md, "The host's own delivery of the input groups"). In link mode the host is
// never an IP member. Instead, for each input interface, mcrd
//   - adds each group's MAC address to the interface's filter (PACKET_ADD_MEMBERSHIP on a packet
//     socket), so the NIC passes the group to the capture;
//   - reports the membership as an IGMP host (RFC 3376, with the version 1 and 2 compatibility of
//     its section 7): state-change reports when rules change, sent Robustness (2) times; answers
//     to general, group-specific and group-and-source-specific queries, after a random delay
//     within the query's max response time; leaves when the last rule of a group goes.
// The IP stack then drops the groups at its first multicast check (the host is not a member),
// and a local program that joins a group itself still gets it: the kernel's own membership and
// reports are untouched. IGMP is read from a packet socket on the interface: queries (a
// group-specific query is sent to the group, which the IP stack would drop), and the host's
// outgoing reports. The kernel and mcrd report from the same address, and switches track
// members by address: when the kernel leaves a group for a local program that mcrd still wants,
// mcrd reports it again at once, and it sends no leave while the host is itself a member.
// Reports go out on a raw IGMP socket with the Router Alert option, TTL 1 and DSCP CS6, as the
// kernel sends its own. A state change is reported as the group's whole new state (TO_EX({}) or
// TO_IN(sources)), never as ALLOW/BLOCK: routers handle both, and every retransmission then
// carries the current state.
//
// The version follows the network as the kernel's does: net.ipv4.conf.{all,IF}.force_igmp_version
// 1 or 2 forces it, and a version 1 or 2 query heard on the interface switches to that version
// for the Older Version Querier Present Timeout (260 s with the RFC's defaults).
//
// Control thread only, except Stats(); the sockets and a timer are watched by the daemon's
// EventLoop.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/event_loop.h"
#include "control/igmp.h"
#include "control/log.h"
#include "control/membership.h"
#include "engine/rule.h"
#include "metrics/igmp_stats.h"

namespace mcr::control {

class IgmpHost {
 public:
  /// Times, in milliseconds; the RFC's defaults. Tests shorten them.
  struct Options {
    int robustness = 2;                       // reports per state change
    uint32_t unsolicited_interval_ms = 1000;  // version 3; RFC 2236's 10 s for versions 1 and 2
    uint32_t older_querier_timeout_ms = 260'000;
  };
  struct Counters {
    uint64_t queries = 0;       // queries taken from the interface
    uint64_t malformed = 0;     // IGMP packets ignored: truncated, bad checksum, bad length
    uint64_t reports_sent = 0;  // IGMP messages sent (reports and leaves)
    uint64_t send_errors = 0;   // sends the kernel refused
  };

  /// `loop` and `log` are borrowed and must outlive the host.
  static absl::StatusOr<std::unique_ptr<IgmpHost>> Create(EventLoop& loop, Logger& log,
                                                          Options options);
  /// Leaves every group (one report each, at once), then closes the sockets.
  ~IgmpHost();
  IgmpHost(const IgmpHost&) = delete;
  IgmpHost& operator=(const IgmpHost&) = delete;

  /// Holds exactly the multicast input groups of `rules` (unicast inputs are not its business).
  /// Same contract as GroupMemberships::Sync.
  absl::Status Sync(const std::vector<engine::RuleSpec>& rules, const std::vector<int>& deleted);
  std::vector<MembershipInfo> Describe() const;
  /// Any thread (the metrics server's): per interface, the version mcrd reports in, its groups
  /// and its counters, as of the host's last event (a Sync, an IGMP packet, a timer).
  std::vector<metrics::IgmpInterfaceStats> Stats() const;

 private:
  // What the rules want of one group on one interface.
  struct Want {
    bool any_source = false;     // some rule takes every source: EXCLUDE({})
    std::set<uint32_t> sources;  // otherwise INCLUDE(sources)
    bool operator==(const Want&) const = default;
  };
  struct Pending {
    uint64_t due_ns = 0;
    // Group-and-source-specific: the sources asked about; nullopt: the whole group.
    std::optional<std::set<uint32_t>> sources;
  };
  struct Interface {
    std::string name;
    int ifindex = 0;                  // 0: absent at the last Sync
    int capture_fd = -1;              // AF_PACKET: takes queries, holds the groups' MAC addresses
    int send_fd = -1;                 // raw IGMP socket
    std::string error;                // why the sockets could not be opened
    std::map<uint32_t, Want> groups;  // reported, and in the MAC filter
    std::map<uint32_t, std::string> group_errors;  // PACKET_ADD_MEMBERSHIP refused
    std::map<uint32_t, int> changes;               // groups with state-change reports still to send
    uint64_t change_due_ns = 0;
    uint64_t general_due_ns = 0;  // a pending answer to a general query
    std::map<uint32_t, Pending> group_due;
    uint64_t v1_until_ns = 0, v2_until_ns = 0;  // an older querier was heard
    bool up = false;                            // IFF_UP and IFF_RUNNING at the last Sync
    int64_t carrier_changes = -1;               // the interface's count of carrier changes then
    size_t max_report = 1400;     // bytes of IGMP per report: 1400, less on a small MTU
    int forced = 0;               // force_igmp_version in effect (1, 2), or 0
    uint64_t forced_read_ns = 0;  // when it was last read
    Counters counters;            // kept while a rule reads the interface, across re-creation
  };
  // What Stats() reads: a copy made on the control thread after each event. The version is
  // worked out when it is read, from the timers, so that it falls back to 3 on time.
  struct Published {
    metrics::IgmpInterfaceStats stats;
    uint64_t v1_until_ns = 0, v2_until_ns = 0;
    int forced = 0;
  };

  IgmpHost(EventLoop& loop, Logger& log, Options options, int timer_fd);
  absl::Status Open(Interface& itf);
  void Close(Interface& itf);
  // Reports leaving every group of `itf` (once each), then closes it.
  void LeaveAllAndClose(Interface& itf, uint64_t now);
  bool SetMac(Interface& itf, uint32_t group, bool add, std::string* error);
  void RefreshForced(Interface& itf, uint64_t now);
  static igmp::Version VersionFrom(int forced, uint64_t v1_until_ns, uint64_t v2_until_ns,
                                   uint64_t now);
  igmp::Version VersionOf(const Interface& itf, uint64_t now) const;
  void OnReadable(const std::string& name);
  void OnQuery(Interface& itf, const igmp::Query& q, uint64_t now);
  void OnTimer();
  void SendChanges(Interface& itf, uint64_t now);
  void SendCurrent(Interface& itf, const std::vector<uint32_t>& groups, uint64_t now);
  void SendGroupSources(Interface& itf, uint32_t group, const std::set<uint32_t>& asked,
                        uint64_t now);
  // A version 1 or 2 membership report of `group`.
  void SendOldReport(Interface& itf, igmp::Version v, uint32_t group);
  void SendV3(Interface& itf, const std::vector<igmp::Record>& records);
  void Send(Interface& itf, const std::vector<uint8_t>& msg, uint32_t dst);
  uint64_t RandomDelay(uint64_t max_ns);
  void Rearm();
  // Control thread, at the end of every event: copies what Stats() reports.
  void Publish();

  EventLoop& loop_;
  Logger& log_;
  const Options options_;
  int timer_fd_;
  std::mt19937_64 rng_;
  std::vector<uint8_t> rx_buf_ = std::vector<uint8_t>(65536);  // a whole IPv4 packet
  mutable std::mutex published_mu_;
  std::vector<Published> published_;  // guarded by published_mu_
  // interface → group → want, as of the last Sync (Describe's source).
  std::map<std::string, std::map<uint32_t, Want>> want_;
  std::map<std::string, std::unique_ptr<Interface>> interfaces_;
};

/// `--membership link`: IgmpHost for the multicast groups, a MembershipPool for the sinks of
/// unicast inputs (which have nothing to do with IGMP).
class LinkMemberships final : public GroupMemberships {
 public:
  explicit LinkMemberships(std::unique_ptr<IgmpHost> host) : host_(std::move(host)) {}
  absl::Status Sync(const std::vector<engine::RuleSpec>& rules,
                    const std::vector<int>& deleted) override;
  std::vector<MembershipInfo> Describe() const override;
  std::vector<metrics::IgmpInterfaceStats> IgmpStats() const override { return host_->Stats(); }

 private:
  std::unique_ptr<IgmpHost> host_;
  MembershipPool sinks_;
};

}  // namespace mcr::control
