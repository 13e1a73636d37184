#pragma once
// HOT PATH (FinishFrame runs for every packet sent with --raw): no allocation, no exceptions.
//
// Ethernet II / IPv4 / UDP frames for `mcrgen send --raw`, which writes whole frames to an
// AF_PACKET socket so the source address can be anything (the kernel does no routing or
// source-address check for it). Pure functions: any thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace mcr::gen {

inline constexpr size_t kEthHeaderSize = 14;
inline constexpr size_t kIpv4HeaderSize = 20;
inline constexpr size_t kUdpHeaderSize = 8;
/// Bytes in front of the UDP payload in a raw frame.
inline constexpr size_t kFrameHeadersSize = kEthHeaderSize + kIpv4HeaderSize + kUdpHeaderSize;

using MacAddress = std::array<uint8_t, 6>;

/// The Ethernet address an IPv4 multicast group maps to (RFC 1112 section 6.4): 01:00:5e followed
/// by the group's low 23 bits. `group` is in host byte order.
MacAddress MulticastMac(uint32_t group) noexcept;

/// "aa:bb:cc:dd:ee:ff" (also accepts '-' separators), case-insensitive.
absl::StatusOr<MacAddress> ParseMac(std::string_view text);
std::string FormatMac(const MacAddress& mac);

/// Addresses and fields of one stream's frames. Addresses and ports in host byte order.
struct FrameSpec {
  MacAddress src_mac{};
  MacAddress dst_mac{};
  uint32_t src_ip = 0;
  uint32_t dst_ip = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint8_t ttl = 64;
  uint8_t tos = 0;           // DSCP << 2 | ECN
  uint16_t payload_len = 0;  // UDP payload bytes
};

/// Writes the 42 bytes of Ethernet, IPv4 and UDP headers to frame[0, 42): DF set, IP id 0, IPv4
/// checksum 0, UDP checksum 0. FinishFrame fills in the per-packet fields.
void WriteFrameHeaders(const FrameSpec& spec, uint8_t* frame) noexcept;

/// Sets the IP id, recomputes the IPv4 header checksum and, when udp_checksum is true, computes
/// the UDP checksum over the pseudo-header and payload (0 means "no checksum" in IPv4 and is
/// what the frame carries otherwise). frame_len = kFrameHeadersSize + payload_len.
void FinishFrame(uint8_t* frame, size_t frame_len, uint16_t ip_id, bool udp_checksum) noexcept;

/// Prepares the headers of a frame that the kernel cuts into datagrams of equal size (UDP GSO,
/// announced by a virtio_net_hdr on an AF_PACKET socket with PACKET_VNET_HDR): IP and UDP
/// lengths cover all `payload_total` bytes, the IPv4 checksum is valid, and the UDP checksum
/// field holds the folded, uncomplemented pseudo-header sum (the CHECKSUM_PARTIAL convention)
/// that the segmenter adjusts per datagram and the device completes. The segmenter numbers the
/// datagrams' IP ids ip_id, ip_id + 1, ... frame_len = kFrameHeadersSize + the first payload.
void FinishGsoFrame(uint8_t* frame, size_t payload_total, uint16_t ip_id) noexcept;

/// Internet checksum (RFC 1071) of data[0, len), folded and complemented, host byte order.
/// `initial` is a partial 32-bit sum to continue from (e.g. a pseudo-header).
uint16_t InternetChecksum(const uint8_t* data, size_t len, uint64_t initial = 0) noexcept;

}  // namespace mcr::gen
