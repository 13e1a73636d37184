#pragma once
// Interface lookups by name (control thread): index, first IPv4 address, MTU, state. Used by the
// engine for its sockets and by the control plane's IGMP host (control/igmp_host.h).

#include <netinet/in.h>

#include <string>

namespace mcr::engine {

struct NetDev {
  int ifindex = 0;         // 0: no such interface
  bool has_addr = false;   // an IPv4 address is configured
  in_addr addr{};          // the first IPv4 address
  int mtu = 1500;
  bool up = false;         // IFF_UP and IFF_RUNNING
  /// Frames carry an Ethernet header (ARPHRD_ETHER, loopback). Otherwise (tun, WireGuard, IP
  /// tunnels, InfiniBand...) captures are taken from the IP header on.
  bool ethernet = true;
};

/// Looks the interface up now. Never fails: a missing interface has ifindex 0.
NetDev LookupNetDev(const std::string& name);

}  // namespace mcr::engine
