#pragma once
// Transmit path through an AF_PACKET SOCK_RAW socket: mcrgen writes the whole Ethernet/IPv4/UDP
// frame, so the source address can be anything, including addresses from networks nobody routes
// (what a relay's source checks must be tested with). No routing, no netfilter. Batches go out
// with one sendmmsg. By default runs of datagrams to one stream go as one GSO frame
// (PACKET_VNET_HDR with VIRTIO_NET_HDR_GSO_UDP_L4, Linux 6.2+) that the kernel or the NIC cuts
// into ordinary datagrams; such frames must take the device queue. With --no-gso (or where the
// kernel refuses GSO) every datagram is its own frame and skips the qdisc
// (PACKET_QDISC_BYPASS).

#include "absl/status/statusor.h"
#include "bench/mcrgen/config.h"
#include "bench/mcrgen/netdev.h"
#include "bench/mcrgen/sender.h"

namespace mcr::gen {

/// Opens the socket (needs CAP_NET_RAW) and prepares one header template per stream.
/// Destination MAC: --dst-mac, else 01:00:5e + low 23 bits of the group for multicast, else the
/// neighbour-table entry of the next hop (resolved now, waiting up to a second).
absl::StatusOr<PacketSinkPtr> OpenRawSink(const SendConfig& config, const InterfaceInfo& iface);

}  // namespace mcr::gen
