#pragma once
// Validated configuration of `mcrgen send` and `mcrgen recv`. Built once by ParseCommandLine
// (cli.h) and read-only afterwards; plain values, copied freely, any thread.
//
// Streams: with streams = K, stream i (0 <= i < K) goes to group + i and port + i; when the
// destination is a unicast address only the port advances (every stream goes to the same host).
// Rates and counts are totals over all streams, sent round robin (packet n belongs to stream
// n % K and carries sequence number n / K of that stream).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "bench/mcrgen/frame.h"

namespace mcr::gen {

/// True for 224.0.0.0/4. Address in host byte order.
constexpr bool IsMulticast(uint32_t addr) { return (addr >> 28) == 0xe; }

/// Destination address of stream `i` (host byte order): group + i for multicast, the address
/// itself for unicast.
constexpr uint32_t StreamAddress(uint32_t group, uint32_t i) {
  return IsMulticast(group) ? group + i : group;
}

struct SendConfig {
  /// Destination: multicast group or unicast address, host byte order. Required.
  uint32_t group = 0;
  /// Destination UDP port of stream 0. Required, 1..65535.
  uint16_t port = 0;
  /// Interface to send on (IP_MULTICAST_IF; the AF_PACKET interface with raw). Required.
  std::string interface;
  /// Source address (host order). Default: the interface's IPv4 address. Must be local unless raw.
  std::optional<uint32_t> source_ip;
  /// UDP source port. Default 0: an ephemeral port (sockets) or the destination port (raw).
  uint16_t source_port = 0;
  /// Packets per second over all streams; 0 = as fast as possible. Default 1000.
  uint64_t rate_pps = 1000;
  /// Packets to send over all streams; 0 = until SIGINT/SIGTERM. Default 0.
  uint64_t count = 0;
  /// UDP payload bytes, MinDatagramSize(rtp) .. kMaxPayloadSize. Default 1200.
  uint32_t size = 1200;
  /// IP TTL. Default: 1 for multicast; the system default (sockets) or 64 (raw) for unicast.
  std::optional<uint8_t> ttl;
  /// DSCP 0..63, sent as IP TOS = dscp << 2. Default 0.
  uint8_t dscp = 0;
  /// Number of streams K, 1..kMaxStreams. Default 1.
  uint32_t streams = 1;
  /// Prefix every payload with an RTP header. Default false.
  bool rtp = false;
  /// Build frames and send them through AF_PACKET (any source address). Default false.
  bool raw = false;
  /// Raw only: destination MAC. Default: multicast mapping, or the kernel's neighbour entry.
  std::optional<MacAddress> dst_mac;
  /// Raw only: compute the UDP checksum (false sends 0, "no checksum"). Default true.
  bool udp_checksum = true;
  /// Hand runs of consecutive packets to the same stream to the kernel as one UDP GSO message
  /// (UDP_SEGMENT) or raw frame (virtio_net_hdr), cut into ordinary datagrams on the way out;
  /// falls back to one per datagram where the kernel or device refuses. Raw GSO also needs
  /// udp_checksum. Default true.
  bool gso = true;
  /// Packets per sendmmsg, 1..1024. Default 64.
  uint32_t batch = 64;
  /// Pace by sleeping only (PacerConfig::sleep_only), never spinning. Default false.
  bool pace_sleep = false;
  /// Print the summary as JSON. Default false.
  bool json = false;
};

struct RecvConfig {
  /// Group to join, or a local unicast address to bind, host byte order. Required.
  uint32_t group = 0;
  /// UDP port of stream 0. Required.
  uint16_t port = 0;
  /// Interface to join on. Required.
  std::string interface;
  /// Source for an (S,G) join (host order); unset = (*,G). Multicast only.
  std::optional<uint32_t> source;
  /// Exit once this many unique packets (all streams) arrived; 0 = no target. Default 0.
  uint64_t expect = 0;
  /// Exit after this many seconds; 0 = never. Default 0.
  double timeout_s = 0;
  /// Exit after this many seconds without a packet, counted from the first; 0 = never. Default 0.
  double idle_exit_s = 0;
  /// Number of streams K (sockets on group + i, port + i). Default 1.
  uint32_t streams = 1;
  /// Print the report as JSON. Default false.
  bool json = false;
  /// File created once every socket has joined; empty = none. "ready" goes to stderr either way.
  std::string ready_file;
  /// Sequence numbers remembered per stream for duplicate/reorder detection; power of two.
  /// Default 65536.
  uint64_t window = 65536;
  /// Datagrams per recvmmsg, 1..1024. Default 64.
  uint32_t batch = 64;
  /// Requested socket receive buffer in bytes (SO_RCVBUFFORCE, else SO_RCVBUF). Default 32 MiB.
  uint64_t rcvbuf = 32u << 20;
  /// Once the sockets run dry, keep polling them this long before sleeping (us). A receiver
  /// that never sleeps spares the sender the wake-up in every datagram's delivery, at the cost
  /// of a busy CPU. Default 0 (sleep at once).
  uint32_t spin_us = 0;
  /// Receive time taken from the kernel (SO_TIMESTAMPNS: when the datagram reached this host's
  /// stack) rather than read after recvmmsg returns. Kernel time leaves out how long this
  /// process took to be scheduled and read, which is the receiver's delay, not the path's.
  /// Default true.
  bool kernel_timestamps = true;
};

/// Largest --streams: stream state is allocated per stream (16 KiB histogram + 8 KiB window).
inline constexpr uint32_t kMaxStreams = 1024;

}  // namespace mcr::gen

namespace mcr::gen {

/// Parses dotted-quad IPv4 text into host byte order.
absl::StatusOr<uint32_t> ParseIpv4(std::string_view text);
/// Host-order address as dotted quad.
std::string FormatIpv4(uint32_t addr);

}  // namespace mcr::gen
