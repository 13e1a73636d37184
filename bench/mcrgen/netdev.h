#pragma once
// What mcrgen needs to know about a network interface, and next-hop MAC resolution for unicast
// raw frames. Reads the kernel's state through ioctl and /proc; call from the setup code only
// (not per packet). Any thread.

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/mcrgen/frame.h"

namespace mcr::gen {

struct InterfaceInfo {
  std::string name;
  int index = 0;
  int mtu = 0;
  MacAddress mac{};
  std::optional<uint32_t> ipv4;  // primary IPv4 address (host order), if any
  uint32_t netmask = 0;          // of ipv4 (host order); 0 without one
};

/// Looks `name` up in the calling thread's network namespace. NotFound names the interface.
absl::StatusOr<InterfaceInfo> LookupInterface(const std::string& name);

/// The address frames to `dst` (host order) go to first when leaving through `iface`: dst itself
/// when it is on the interface's subnet or on-link by a route, else the gateway of the
/// longest-prefix route through iface in /proc/net/route (the main table).
absl::StatusOr<uint32_t> NextHop(const InterfaceInfo& iface, uint32_t dst);

/// The MAC address of `next_hop` from the kernel's neighbour table (/proc/net/arp). When there is
/// no complete entry, sends one UDP datagram to port 9 (discard) of next_hop through iface so the
/// kernel resolves it, and polls until `wait` has passed.
absl::StatusOr<MacAddress> ResolveNeighbour(const InterfaceInfo& iface, uint32_t next_hop,
                                            absl::Duration wait);

}  // namespace mcr::gen
