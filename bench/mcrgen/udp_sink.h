#pragma once
// Transmit path through one ordinary UDP socket: the kernel routes, fragments never (the size is
// checked against the MTU) and fills in IP and UDP headers. Batches go out with one sendmmsg.

#include "absl/status/statusor.h"
#include "bench/mcrgen/config.h"
#include "bench/mcrgen/netdev.h"
#include "bench/mcrgen/sender.h"

namespace mcr::gen {

/// Opens and configures the socket: bound to --source-ip (or the interface's address) and
/// --source-port, IP_MULTICAST_IF = the interface and IP_MULTICAST_TTL (default 1) for
/// multicast, IP_TTL (only when --ttl is given) and SO_BINDTODEVICE (best effort) for unicast,
/// IP_TOS = dscp << 2.
absl::StatusOr<PacketSinkPtr> OpenUdpSink(const SendConfig& config, const InterfaceInfo& iface);

}  // namespace mcr::gen
