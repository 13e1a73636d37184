#include "control/igmp_host.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/rule_schema.h"
#include "engine/netdev.h"

namespace mcr::control {
namespace {

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}
constexpr uint64_t kMs = 1'000'000;

std::string Errno(const char* what) { return absl::StrCat(what, ": ", std::strerror(errno)); }

// net.ipv4.conf.<name>.force_igmp_version (0 when unreadable: a name the kernel does not know).
int ForcedVersion(const std::string& name) {
  std::ifstream f("/proc/sys/net/ipv4/conf/" + name + "/force_igmp_version");
  int v = 0;
  return (f >> v) ? v : 0;
}

// /sys/class/net/<name>/carrier_changes; -1 when unreadable.
int64_t CarrierChanges(const std::string& name) {
  std::ifstream f("/sys/class/net/" + name + "/carrier_changes");
  int64_t v = -1;
  return (f >> v) ? v : -1;
}

// Whether the host itself (a program on it) is an IP member of `group` on interface `ifindex`,
// from /proc/net/igmp. Its group column is the address's raw 32-bit word in hex, which is how
// `group` is held too.
bool HostIsMember(int ifindex, uint32_t group) {
  std::ifstream f("/proc/net/igmp");
  std::string line;
  int dev = -1;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    if (line[0] >= '0' && line[0] <= '9') {
      dev = std::atoi(line.c_str());
    } else if (dev == ifindex && line[0] == '\t') {
      const auto at = line.find_first_not_of('\t');
      if (at != std::string::npos && std::strtoul(line.c_str() + at, nullptr, 16) == group) {
        return true;
      }
    }
  }
  return false;
}

// 224.0.0.0/24: never reported (RFC 3376 section 5: 224.0.0.1 never; the rest are link-local
// control groups a snooping switch floods anyway). Their MAC addresses are still added.
bool LinkLocal(uint32_t group) { return (ntohl(group) & 0xffffff00u) == 0xe0000000u; }

// IGMPv3 reports stay under a common Ethernet MTU with the IP header and its Router Alert, and
// under the interface's own MTU.
constexpr size_t kMaxReportBytes = 1400;
// Sources kept per pending group-and-source-specific answer for a group taken from every
// source; past it the answer covers the whole group (RFC 3376 section 9.1: a query flood must
// not grow the host's state).
constexpr size_t kMaxPendingSources = 256;

}  // namespace

absl::StatusOr<std::unique_ptr<IgmpHost>> IgmpHost::Create(EventLoop& loop, Logger& log,
                                                           Options options) {
  const int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) return absl::InternalError(Errno("IGMP timer: timerfd_create"));
  std::unique_ptr<IgmpHost> host(new IgmpHost(loop, log, options, fd));
  auto on_timer = [h = host.get()](uint32_t) {
    h->OnTimer();
    h->Publish();
  };
  if (auto s = loop.Add(fd, EPOLLIN, on_timer); !s.ok()) return s;
  return host;
}

IgmpHost::IgmpHost(EventLoop& loop, Logger& log, Options options, int timer_fd)
    : loop_(loop),
      log_(log),
      options_(options),
      timer_fd_(timer_fd),
      rng_(std::random_device{}()) {}

IgmpHost::~IgmpHost() {
  for (auto& [name, itf] : interfaces_) LeaveAllAndClose(*itf, NowNs());
  loop_.Remove(timer_fd_);
  close(timer_fd_);
}

absl::Status IgmpHost::Open(Interface& itf) {
  // IGMP only: the interface's own IPv4 packets (skb->protocol) whose protocol byte (offset 9 of a
  // SOCK_DGRAM frame, which starts at the IP header, outgoing ones too) is IGMP. A frame whose
  // VLAN tag the kernel moved to metadata belongs to a VLAN on top of this interface, not to it,
  // unless the tag's VLAN ID is 0 (a priority tag): the same test as the capture's filter
  // (engine/steering.cc).
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, uint32_t(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, uint32_t(SKF_AD_OFF + SKF_AD_VLAN_TAG)),
      BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x0fff, 5, 0),
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, uint32_t(SKF_AD_OFF + SKF_AD_PROTOCOL)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 3),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_IGMP, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xffff),
      BPF_STMT(BPF_RET | BPF_K, 0),
  };
  sock_fprog prog{static_cast<unsigned short>(std::size(code)), code};
  // Protocol 0 receives nothing until bind names one: the filter is in place before any frame,
  // from any interface, can queue. Bound to ETH_P_ALL, not ETH_P_IP: only such sockets see the
  // host's outgoing frames, and the kernel's own reports are needed (see OnReadable). Incoming,
  // either costs the same: one tap per frame of the interface.
  const int cap = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (cap < 0) return absl::UnavailableError(Errno("packet socket"));
  itf.capture_fd = cap;
  if (setsockopt(cap, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) {
    return absl::UnavailableError(Errno("SO_ATTACH_FILTER"));
  }
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = itf.ifindex;
  if (bind(cap, reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0) {
    return absl::UnavailableError(Errno("bind packet socket"));
  }

  const int snd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IGMP);
  if (snd < 0) return absl::UnavailableError(Errno("raw IGMP socket"));
  itf.send_fd = snd;
  // A raw IGMP socket also receives every IGMP packet the host takes in: this one reads none.
  sock_filter none[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
  sock_fprog none_prog{1, none};
  const uint8_t router_alert[4] = {0x94, 0x04, 0, 0};  // RFC 2113, as RFC 2236 and 3376 ask
  const int ttl = 1, loop = 0, tos = 0xc0;             // DSCP CS6, as the kernel's reports
  ip_mreqn mr{};
  mr.imr_ifindex = itf.ifindex;
  if (setsockopt(snd, SOL_SOCKET, SO_ATTACH_FILTER, &none_prog, sizeof none_prog) != 0 ||
      setsockopt(snd, IPPROTO_IP, IP_OPTIONS, router_alert, sizeof router_alert) != 0 ||
      setsockopt(snd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) != 0 ||
      setsockopt(snd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) != 0 ||
      setsockopt(snd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) != 0 ||
      setsockopt(snd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr) != 0) {
    return absl::UnavailableError(Errno("raw IGMP socket options"));
  }
  return loop_.Add(cap, EPOLLIN, [this, name = itf.name](uint32_t) {
    OnReadable(name);
    Publish();
  });
}

void IgmpHost::Close(Interface& itf) {
  if (itf.capture_fd >= 0) {
    loop_.Remove(itf.capture_fd);
    close(itf.capture_fd);  // drops every MAC address it added
  }
  if (itf.send_fd >= 0) close(itf.send_fd);
  itf.capture_fd = itf.send_fd = -1;
  itf.groups.clear();
  itf.group_errors.clear();
  itf.changes.clear();
  itf.change_due_ns = itf.general_due_ns = 0;
  itf.group_due.clear();
  itf.up = false;
  itf.v1_until_ns = itf.v2_until_ns = 0;  // a re-created interface starts over
}

void IgmpHost::LeaveAllAndClose(Interface& itf, uint64_t now) {
  // One leave per group, at once: nobody is left to repeat it (a lost leave only means the group
  // flows until the querier's membership interval ends).
  for (const auto& [group, unused] : itf.groups) itf.changes[group] = 1;
  itf.groups.clear();
  if (itf.send_fd >= 0) SendChanges(itf, now);
  Close(itf);
}

bool IgmpHost::SetMac(Interface& itf, uint32_t group, bool add, std::string* error) {
  // 01:00:5e and the group's low 23 bits (RFC 1112 section 6.4). The kernel counts additions per
  // socket and address, so two groups of one MAC address each add and drop it once.
  const uint32_t g = ntohl(group);
  packet_mreq mr{};
  mr.mr_ifindex = itf.ifindex;
  mr.mr_type = PACKET_MR_MULTICAST;
  mr.mr_alen = 6;
  const uint8_t mac[6] = {0x01, 0x00, 0x5e, uint8_t((g >> 16) & 0x7f), uint8_t(g >> 8), uint8_t(g)};
  std::memcpy(mr.mr_address, mac, 6);
  if (setsockopt(itf.capture_fd, SOL_PACKET, add ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP,
                 &mr, sizeof mr) == 0) {
    return true;
  }
  if (error) *error = Errno(add ? "PACKET_ADD_MEMBERSHIP" : "PACKET_DROP_MEMBERSHIP");
  return false;
}

absl::Status IgmpHost::Sync(const std::vector<engine::RuleSpec>& rules,
                            const std::vector<int>& deleted) {
  std::map<std::string, std::map<uint32_t, Want>> want;
  for (const engine::RuleSpec& r : rules) {
    if (!engine::IsMulticast(r.input_group)) continue;
    Want& w = want[r.input_interface][r.input_group];
    if (r.input_source == 0) {
      w.any_source = true;
    } else {
      w.sources.insert(r.input_source);
    }
  }
  want_ = want;  // as asked, for Describe
  for (auto& [name, groups] : want) {
    for (auto& [group, w] : groups)
      if (w.any_source) w.sources.clear();  // EXCLUDE({}) takes every source anyway
  }
  const uint64_t now = NowNs();
  std::vector<std::string> failures;

  for (const auto& [name, groups] : want) {
    auto [it, added] = interfaces_.try_emplace(name);
    if (added) {
      it->second = std::make_unique<Interface>();
      it->second->name = name;
    }
  }
  for (auto it = interfaces_.begin(); it != interfaces_.end();) {
    Interface& itf = *it->second;
    const int index = static_cast<int>(if_nametoindex(itf.name.c_str()));
    if (index != itf.ifindex ||
        std::find(deleted.begin(), deleted.end(), itf.ifindex) != deleted.end()) {
      Close(itf);  // the device and its MAC filter are gone: nothing to leave
      itf.error.clear();
      itf.ifindex = index;
    }
    const auto w = want.find(itf.name);
    if (w == want.end()) {
      // No rule reads this interface any more: leave everything, then forget it.
      LeaveAllAndClose(itf, now);
      it = interfaces_.erase(it);
      continue;
    }
    ++it;
    if (itf.ifindex == 0) continue;  // pending: joined when it appears
    if (itf.capture_fd < 0) {
      if (auto s = Open(itf); !s.ok()) {
        Close(itf);
        itf.error = std::string(s.message());
        failures.push_back(absl::StrCat(itf.name, ": ", itf.error));
        continue;
      }
      itf.error.clear();
    }
    RefreshForced(itf, now);
    const engine::NetDev dev = engine::LookupNetDev(itf.name);
    itf.max_report = dev.mtu > 24 + 8 + 8 ? std::min<size_t>(kMaxReportBytes, size_t(dev.mtu) - 24)
                                          : kMaxReportBytes;
    bool changed = false;
    // Back up (or up for the first time), or the carrier went and came back between two looks:
    // the switch may have dropped the port's memberships meanwhile. Report them all again.
    const bool up = dev.up;
    const int64_t carrier_changes = CarrierChanges(itf.name);
    if (up && (!itf.up || carrier_changes != itf.carrier_changes)) {
      for (const auto& [group, unused] : itf.groups) itf.changes[group] = options_.robustness;
      changed = !itf.groups.empty();
    }
    itf.up = up;
    itf.carrier_changes = carrier_changes;
    // Leave first, then join and change.
    for (auto g = itf.groups.begin(); g != itf.groups.end();) {
      if (w->second.contains(g->first)) {
        ++g;
        continue;
      }
      (void)SetMac(itf, g->first, false, nullptr);  // cannot fail for an address it holds
      itf.changes[g->first] = options_.robustness;
      changed = true;
      itf.group_due.erase(g->first);
      g = itf.groups.erase(g);
    }
    for (const auto& [group, wanted] : w->second) {
      auto g = itf.groups.find(group);
      if (g == itf.groups.end()) {
        std::string error;
        if (!SetMac(itf, group, true, &error)) {
          itf.group_errors[group] = error;
          failures.push_back(absl::StrCat(FormatIpv4(group), " on ", itf.name, ": ", error));
          continue;
        }
        itf.group_errors.erase(group);
        itf.groups.emplace(group, wanted);
        itf.changes[group] = options_.robustness;
        changed = true;
      } else if (g->second != wanted) {
        g->second = wanted;
        itf.changes[group] = options_.robustness;
        changed = true;
      }
    }
    for (auto e = itf.group_errors.begin(); e != itf.group_errors.end();) {
      e = w->second.contains(e->first) ? std::next(e) : itf.group_errors.erase(e);
    }
    // A Sync that changed nothing here (another interface's event, a retry) leaves pending
    // retransmissions to their timer.
    if (changed) SendChanges(itf, now);
  }
  Rearm();
  Publish();
  if (failures.empty()) return absl::OkStatus();
  std::string msg = absl::StrFormat("%d link-layer membership(s) failed", failures.size());
  for (size_t i = 0; i < failures.size() && i < 3; ++i) absl::StrAppend(&msg, "; ", failures[i]);
  return absl::UnavailableError(msg);
}

void IgmpHost::RefreshForced(Interface& itf, uint64_t now) {
  // As the kernel's IGMP_V1_SEEN / IGMP_V2_SEEN: the "all" setting or the interface's own. Read
  // at most once a second: a query flood must not turn into file reads.
  if (itf.forced_read_ns != 0 && now - itf.forced_read_ns < 1'000'000'000) return;
  itf.forced_read_ns = now;
  const int all = ForcedVersion("all"), own = ForcedVersion(itf.name);
  itf.forced = (all == 1 || own == 1) ? 1 : (all == 2 || own == 2) ? 2 : 0;
}

igmp::Version IgmpHost::VersionFrom(int forced, uint64_t v1_until_ns, uint64_t v2_until_ns,
                                    uint64_t now) {
  if (forced == 1 || v1_until_ns > now) return igmp::Version::kV1;
  if (forced == 2 || v2_until_ns > now) return igmp::Version::kV2;
  return igmp::Version::kV3;
}

igmp::Version IgmpHost::VersionOf(const Interface& itf, uint64_t now) const {
  return VersionFrom(itf.forced, itf.v1_until_ns, itf.v2_until_ns, now);
}

uint64_t IgmpHost::RandomDelay(uint64_t max_ns) {
  if (max_ns == 0) return 0;
  return std::uniform_int_distribution<uint64_t>(0, max_ns)(rng_);
}

void IgmpHost::SendChanges(Interface& itf, uint64_t now) {
  const igmp::Version v = VersionOf(itf, now);
  std::vector<igmp::Record> records;
  for (auto it = itf.changes.begin(); it != itf.changes.end();) {
    const auto [group, left] = *it;
    const auto g = itf.groups.find(group);
    // No leave while a program on the host is itself a member: the switch tracks members by
    // address, and the kernel's membership and mcrd's are the same address.
    if (LinkLocal(group) || (g == itf.groups.end() && HostIsMember(itf.ifindex, group))) {
      it = itf.changes.erase(it);
      continue;
    }
    if (v == igmp::Version::kV3) {
      // Each change is reported as the group's whole new state: TO_EX({}) for every source,
      // TO_IN(sources) otherwise, TO_IN({}) once it is left. A router handles a repeated or
      // out-of-date TO_IN as a change too (RFC 3376 section 6.4.2), which the retransmissions
      // need: the state they carry is always the current one.
      igmp::Record r;
      r.group = group;
      if (g == itf.groups.end()) {
        r.type = igmp::kChangeToInclude;
      } else if (g->second.any_source) {
        r.type = igmp::kChangeToExclude;
      } else {
        r.type = igmp::kChangeToInclude;
        r.sources.assign(g->second.sources.begin(), g->second.sources.end());
      }
      records.push_back(std::move(r));
    } else if (g != itf.groups.end()) {
      SendOldReport(itf, v, group);
    } else if (v == igmp::Version::kV2) {
      Send(itf, igmp::BuildV2Message(igmp::kV2Leave, group), igmp::AllRouters());
      it->second = 1;  // a leave is sent once, as RFC 2236 section 3 has it
    }                  // version 1 has no leave: the group times out
    it = --it->second <= 0 ? itf.changes.erase(it) : std::next(it);
  }
  SendV3(itf, records);
  const uint64_t interval =
      (v == igmp::Version::kV3 ? options_.unsolicited_interval_ms : 10'000) * kMs;
  itf.change_due_ns = itf.changes.empty() ? 0 : now + RandomDelay(interval);
}

void IgmpHost::SendCurrent(Interface& itf, const std::vector<uint32_t>& groups, uint64_t now) {
  const igmp::Version v = VersionOf(itf, now);
  std::vector<igmp::Record> records;
  for (const uint32_t group : groups) {
    const auto g = itf.groups.find(group);
    if (g == itf.groups.end() || LinkLocal(group)) continue;
    if (v != igmp::Version::kV3) {
      SendOldReport(itf, v, group);
      continue;
    }
    igmp::Record r;
    r.group = group;
    r.type = g->second.any_source ? igmp::kModeIsExclude : igmp::kModeIsInclude;
    r.sources.assign(g->second.sources.begin(), g->second.sources.end());
    records.push_back(std::move(r));
  }
  SendV3(itf, records);
}

void IgmpHost::SendGroupSources(Interface& itf, uint32_t group, const std::set<uint32_t>& asked,
                                uint64_t now) {
  const auto g = itf.groups.find(group);
  if (g == itf.groups.end() || LinkLocal(group)) return;
  if (VersionOf(itf, now) != igmp::Version::kV3) return SendCurrent(itf, {group}, now);
  // RFC 3376 section 5.2: IS_IN of the asked sources the host wants (all of them in EXCLUDE({}));
  // nothing when it wants none of them.
  igmp::Record r{igmp::kModeIsInclude, group, {}};
  for (const uint32_t s : asked)
    if (g->second.any_source || g->second.sources.contains(s)) r.sources.push_back(s);
  if (!r.sources.empty()) SendV3(itf, {r});
}

void IgmpHost::SendOldReport(Interface& itf, igmp::Version v, uint32_t group) {
  // Versions 1 and 2 report a group to the group itself.
  Send(itf,
       igmp::BuildV2Message(v == igmp::Version::kV1 ? igmp::kV1Report : igmp::kV2Report, group),
       group);
}

void IgmpHost::SendV3(Interface& itf, const std::vector<igmp::Record>& records) {
  for (const auto& report : igmp::BuildV3Reports(records, itf.max_report))
    Send(itf, report, igmp::AllV3Routers());
}

void IgmpHost::Send(Interface& itf, const std::vector<uint8_t>& msg, uint32_t dst) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = dst;
  if (sendto(itf.send_fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) ==
      static_cast<ssize_t>(msg.size())) {
    ++itf.counters.reports_sent;
    return;
  }
  // The link went down before the Sync that would see it: not an error of mcrd's (the Sync that
  // sees it back up reports every group again).
  const int err = errno;
  if (!engine::LookupNetDev(itf.name).up) {
    log_.Debug("IGMP report on %s to %s not sent: the link is down (%s)", itf.name, FormatIpv4(dst),
               std::strerror(err));
    return;
  }
  // Counted and logged; the next query or state change sends again.
  if (itf.counters.send_errors++ % 100 == 0) {
    log_.Warning("IGMP report on %s to %s not sent: %s (%d so far)", itf.name, FormatIpv4(dst),
                 std::strerror(err), itf.counters.send_errors);
  }
}

void IgmpHost::OnReadable(const std::string& name) {
  const auto it = interfaces_.find(name);
  if (it == interfaces_.end() || it->second->capture_fd < 0) return;
  Interface& itf = *it->second;
  uint8_t* const buf = rx_buf_.data();
  for (int i = 0; i < 64; ++i) {  // a burst at most: the loop has other work
    sockaddr_ll from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = recvfrom(itf.capture_fd, buf, rx_buf_.size(), 0,
                               reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) return;  // EAGAIN: drained (errors surface as a failed send or a later Sync)
    if (from.sll_pkttype == PACKET_OTHERHOST) continue;  // promiscuous: not for this host
    if (from.sll_pkttype == PACKET_OUTGOING) {
      // The host's own IGMP: mcrd's reports, and the kernel's for programs on the host. When
      // the kernel leaves a group mcrd still wants (a local listener closed), the switch drops
      // the port's membership (it tracks by address, and the address is shared): report it
      // again at once. mcrd's own leaves name only groups it no longer wants.
      // A TO_IN(S) narrows the shared address to S: a group mcrd takes from every source must be
      // reported again too. (mcrd's own TO_IN(S) records are only for groups it takes from
      // listed sources, so this never answers itself.)
      bool again = false;
      std::vector<uint32_t> narrowed;
      for (const uint32_t group : igmp::GroupsLeft(buf, static_cast<size_t>(n), &narrowed)) {
        if (!itf.groups.contains(group)) continue;
        itf.changes[group] = options_.robustness;
        again = true;
      }
      for (const uint32_t group : narrowed) {
        const auto g = itf.groups.find(group);
        if (g == itf.groups.end() || !g->second.any_source) continue;
        itf.changes[group] = options_.robustness;
        again = true;
      }
      if (again) {
        const uint64_t now = NowNs();
        RefreshForced(itf, now);
        SendChanges(itf, now);
        Rearm();
      }
      continue;
    }
    igmp::Query q;
    switch (igmp::ParseQuery(buf, static_cast<size_t>(n), &q)) {
      case igmp::ParseResult::kIsQuery:
        ++itf.counters.queries;
        OnQuery(itf, q, NowNs());
        break;
      case igmp::ParseResult::kOtherMessage:  // another host's report or leave
      case igmp::ParseResult::kNotIgmp:
        break;
      default:
        if (itf.counters.malformed++ % 100 == 0) {
          log_.Debug("malformed IGMP packet on %s ignored (%d so far)", name,
                     itf.counters.malformed);
        }
        break;
    }
  }
}

void IgmpHost::OnQuery(Interface& itf, const igmp::Query& q, uint64_t now) {
  RefreshForced(itf, now);
  const uint64_t older = uint64_t(options_.older_querier_timeout_ms) * kMs;
  if (q.version == igmp::Version::kV1) itf.v1_until_ns = now + older;
  if (q.version == igmp::Version::kV2) itf.v2_until_ns = now + older;
  const uint64_t due = now + RandomDelay(uint64_t(q.max_response_ms) * kMs);
  if (q.group == 0) {
    // A general query: one answer for every group; a sooner pending one stands (RFC 3376 5.2).
    if (itf.general_due_ns == 0 || due < itf.general_due_ns) itf.general_due_ns = due;
  } else if (const auto g = itf.groups.find(q.group); g != itf.groups.end()) {
    Pending& p = itf.group_due[q.group];
    const bool fresh = p.due_ns == 0;
    if (fresh || due < p.due_ns) p.due_ns = due;
    if (q.sources.empty()) {
      p.sources.reset();  // the whole group, also if sources were asked before
    } else if (fresh || p.sources) {
      // Only sources the answer can name (RFC 3376 section 9.1): those wanted, or, for a
      // group taken from every source, a bounded number; past the bound the whole group.
      if (fresh) p.sources.emplace();
      for (const uint32_t s : q.sources) {
        if (g->second.any_source || g->second.sources.contains(s)) p.sources->insert(s);
      }
      if (p.sources->size() > kMaxPendingSources) p.sources.reset();
    }
  }
  Rearm();
}

void IgmpHost::OnTimer() {
  uint64_t expirations;
  while (read(timer_fd_, &expirations, sizeof expirations) > 0) {
  }
  const uint64_t now = NowNs();
  for (auto& [name, itf] : interfaces_) {
    if (itf->send_fd < 0) continue;
    if (!itf->up) {
      // Down since the last Sync: the switch drops the port's memberships, and the Sync that
      // sees the link back up reports every group again. Nothing pending is worth sending.
      itf->changes.clear();
      itf->change_due_ns = itf->general_due_ns = 0;
      itf->group_due.clear();
      continue;
    }
    RefreshForced(*itf, now);
    if (itf->change_due_ns != 0 && itf->change_due_ns <= now) SendChanges(*itf, now);
    if (itf->general_due_ns != 0 && itf->general_due_ns <= now) {
      itf->general_due_ns = 0;
      std::vector<uint32_t> all;
      for (const auto& [group, w] : itf->groups) all.push_back(group);
      SendCurrent(*itf, all, now);
      itf->group_due.clear();  // answered by the general report
    }
    for (auto g = itf->group_due.begin(); g != itf->group_due.end();) {
      if (g->second.due_ns > now) {
        ++g;
        continue;
      }
      if (g->second.sources) {
        SendGroupSources(*itf, g->first, *g->second.sources, now);
      } else {
        SendCurrent(*itf, {g->first}, now);
      }
      g = itf->group_due.erase(g);
    }
  }
  Rearm();
}

void IgmpHost::Rearm() {
  uint64_t next = 0;
  const auto consider = [&next](uint64_t t) {
    if (t != 0 && (next == 0 || t < next)) next = t;
  };
  for (const auto& [name, itf] : interfaces_) {
    consider(itf->change_due_ns);
    consider(itf->general_due_ns);
    for (const auto& [group, p] : itf->group_due) consider(p.due_ns);
  }
  itimerspec spec{};  // all zero: disarmed
  if (next != 0) {
    next = std::max<uint64_t>(next, 1);
    spec.it_value.tv_sec = static_cast<time_t>(next / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(next % 1'000'000'000);
  }
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
}

void IgmpHost::Publish() {
  std::vector<Published> p;
  p.reserve(interfaces_.size());
  for (const auto& [name, itf] : interfaces_) {
    Published& e = p.emplace_back();
    e.stats.interface = name;
    e.stats.groups = itf->groups.size();
    e.stats.queries = itf->counters.queries;
    e.stats.malformed = itf->counters.malformed;
    e.stats.reports_sent = itf->counters.reports_sent;
    e.stats.send_errors = itf->counters.send_errors;
    e.v1_until_ns = itf->v1_until_ns;
    e.v2_until_ns = itf->v2_until_ns;
    e.forced = itf->forced;
  }
  std::lock_guard<std::mutex> lock(published_mu_);
  published_ = std::move(p);
}

std::vector<metrics::IgmpInterfaceStats> IgmpHost::Stats() const {
  const uint64_t now = NowNs();
  std::lock_guard<std::mutex> lock(published_mu_);
  std::vector<metrics::IgmpInterfaceStats> out;
  out.reserve(published_.size());
  for (const Published& e : published_) {
    out.push_back(e.stats);
    out.back().version = static_cast<int>(VersionFrom(e.forced, e.v1_until_ns, e.v2_until_ns, now));
  }
  return out;
}

std::vector<MembershipInfo> IgmpHost::Describe() const {
  std::vector<MembershipInfo> out;
  const uint64_t now = NowNs();
  for (const auto& [name, groups] : want_) {
    const auto it = interfaces_.find(name);
    const Interface* itf = it == interfaces_.end() ? nullptr : it->second.get();
    for (const auto& [group, w] : groups) {
      std::vector<uint32_t> sources;
      if (w.any_source) sources.push_back(0);
      sources.insert(sources.end(), w.sources.begin(), w.sources.end());
      for (const uint32_t source : sources) {
        MembershipInfo m;
        m.kind =
            source == 0 ? MembershipInfo::Kind::kAnySource : MembershipInfo::Kind::kSourceSpecific;
        m.interface = name;
        m.group = group;
        m.source = source;
        if (itf == nullptr || itf->ifindex == 0) {
          m.state = MembershipInfo::State::kPending;
          m.detail = absl::StrCat("no interface ", name, " now");
        } else if (!itf->error.empty()) {
          m.state = MembershipInfo::State::kFailed;
          m.detail = itf->error;
        } else if (const auto e = itf->group_errors.find(group); e != itf->group_errors.end()) {
          m.state = MembershipInfo::State::kFailed;
          m.detail = e->second;
        } else {
          m.state = MembershipInfo::State::kActive;
          m.ifindex = itf->ifindex;
          m.detail = absl::StrFormat("link layer; mcrd reports it over IGMPv%d",
                                     static_cast<int>(VersionOf(*itf, now)));
          if (source != 0 && w.any_source) {
            absl::StrAppend(&m.detail, "; covered by (*, ", FormatIpv4(group), ")");
          }
        }
        out.push_back(std::move(m));
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const MembershipInfo& a, const MembershipInfo& b) {
    return std::tie(a.interface, a.group, a.source) < std::tie(b.interface, b.group, b.source);
  });
  return out;
}

absl::Status LinkMemberships::Sync(const std::vector<engine::RuleSpec>& rules,
                                   const std::vector<int>& deleted) {
  std::vector<engine::RuleSpec> unicast;
  for (const auto& r : rules)
    if (!engine::IsMulticast(r.input_group)) unicast.push_back(r);
  absl::Status a = host_->Sync(rules, deleted);
  absl::Status b = sinks_.Sync(unicast, deleted);
  if (a.ok()) return b;
  if (b.ok()) return a;
  return absl::UnavailableError(absl::StrCat(a.message(), "; ", b.message()));
}

std::vector<MembershipInfo> LinkMemberships::Describe() const {
  std::vector<MembershipInfo> out = host_->Describe();
  std::vector<MembershipInfo> sinks = sinks_.Describe();
  out.insert(out.end(), std::make_move_iterator(sinks.begin()),
             std::make_move_iterator(sinks.end()));
  std::stable_sort(out.begin(), out.end(), [](const MembershipInfo& a, const MembershipInfo& b) {
    return std::tie(a.interface, a.group, a.source, a.port) <
           std::tie(b.interface, b.group, b.source, b.port);
  });
  return out;
}

}  // namespace mcr::control
