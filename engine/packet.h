#pragma once
// HOT PATH: no locks, no allocation, no exceptions, no syscalls, no logging.
//
// Parsing of one received Ethernet frame down to its UDP payload. Called by a shard for every
// frame of its receive ring; the result selects a counter (ParseResult) or a rule lookup
// (ParsedPacket). Pure function of the bytes: any thread may call it.

#include <linux/if_packet.h>

#include <cstdint>

namespace mcr::engine {

/// Outcome of ParseFrame. Every malformed shape has its own value so it can have its own counter;
/// ParseResultName gives the stable Prometheus label. Checks run in the order listed, so a frame is
/// classified by the first rule it breaks.
enum class ParseResult : uint8_t {
  kOk,                 // an IPv4 UDP datagram; *out is filled in
  kTruncatedEthernet,  // frame ends inside the Ethernet header or an in-band VLAN tag
  kTooManyVlanTags,    // more than kMaxInbandVlanTags in-band 802.1Q/802.1ad tags
  kNotIpv4,            // EtherType (after tags) is not 0x0800: ARP, IPv6, LLDP, 802.3 length...
  kTruncatedIp,        // frame ends before the 20-byte header, the options or the total length
  kBadIpVersion,       // EtherType IPv4 but version field != 4
  kBadIhl,             // header length below 5 words
  kBadIpTotalLength,   // total length smaller than the header length
  kNotUdp,             // IP protocol other than 17 (checked before fragmentation: see kFragment)
  kFragment,           // UDP fragment (MF set or offset != 0); the relay does not reassemble
  kTruncatedUdp,       // IP payload shorter than the 8-byte UDP header
  kBadUdpLength,       // UDP length below 8 or beyond the IP payload
  // Not from ParseFrame: a frame carrying several datagrams (see OffloadSegmentSize) that was
  // cut short because it is larger than recv mode's buffers, which hold one MTU-sized frame.
  // ParseFrame reports it as kTruncatedIp; the shard, which knows the frame is such a one,
  // counts it here instead.
  kOffloadTruncated,
  kCount
};

/// Stable snake_case name of `r` ("ok", "truncated_ip", ...), usable as a Prometheus label value.
/// Returns "unknown" for values out of range.
const char* ParseResultName(ParseResult r) noexcept;

/// In-band tags ParseFrame walks through. On receive the kernel has already moved the outermost
/// tag to metadata (skb_vlan_untag runs before AF_PACKET taps), and the capture's socket filter
/// drops frames of VLANs (steering.h), so the one in-band tag the relay meets is that of a VLAN
/// interface with reorder_hdr off; two leave room for drivers that deliver tags in-band.
inline constexpr int kMaxInbandVlanTags = 2;

/// ParsedPacket::vlan when the frame carries no tag. Outside the 12-bit VID range so that VID 0
/// (an 802.1p priority tag) stays distinguishable from "untagged".
inline constexpr uint16_t kNoVlan = 0xffff;

/// The fields of a datagram the relay needs. Pointers point into the caller's frame and are valid
/// as long as it is.
struct ParsedPacket {
  const uint8_t* payload;  // UDP payload
  uint32_t payload_len;    // UDP length - 8 (Ethernet padding and any bytes past the UDP length
                           // excluded)
  uint32_t src_addr;       // IPv4 source, NETWORK byte order (as on the wire, as in in_addr)
  uint32_t dst_addr;       // IPv4 destination, NETWORK byte order
  uint16_t src_port;       // UDP source port, host byte order
  uint16_t dst_port;       // UDP destination port, host byte order
  uint16_t vlan;           // outermost VID (metadata tag if given, else first in-band), or kNoVlan
  uint8_t tos;             // IPv4 TOS byte: DSCP << 2 | ECN
  uint8_t ttl;
};

/// Parses `len` bytes of `frame`, which starts at the Ethernet destination MAC (tp_mac), and fills
/// *out on kOk (*out is unspecified otherwise). Reads only frame[0, len). Checksums are neither
/// verified nor required (hardware and the kernel's own transmit path often leave them partial).
/// Uses no tag from metadata: out->vlan is the first in-band VID or kNoVlan.
ParseResult ParseFrame(const uint8_t* frame, uint32_t len, ParsedPacket* out) noexcept;

/// As above, for frames whose outermost tag the kernel moved to metadata: `metadata_vlan` is that
/// VID (see MetadataVlan) or kNoVlan. When it is a VID it wins over any in-band tag, which is
/// then an inner tag.
ParseResult ParseFrame(const uint8_t* frame, uint32_t len, uint16_t metadata_vlan,
                       ParsedPacket* out) noexcept;

/// Parses `len` bytes of `packet`, which starts at the IPv4 header: what a capture socket gets
/// on an interface without a link-layer header (tun, WireGuard, other IP tunnels). As
/// ParseFrame otherwise; out->vlan is kNoVlan.
ParseResult ParseIpPacket(const uint8_t* packet, uint32_t len, ParsedPacket* out) noexcept;

/// Length of the virtio_net_hdr that precedes every frame on a capture socket with
/// PACKET_VNET_HDR (Ethernet inputs, both ingress modes).
inline constexpr uint32_t kVnetHdrLen = 10;

/// UDP payload bytes of each datagram in a frame that carries several: datagrams merged by
/// receive offload (GRO), or a local sender's UDP GSO run that no device has split yet (a veth
/// hands it over whole). Read from the virtio_net_hdr before the frame; 0 for a frame that is one
/// datagram. Such a frame's IP and UDP lengths cover all of its datagrams: every `segment` bytes
/// of the UDP payload is one datagram of the sender's, the last one possibly shorter.
uint16_t OffloadSegmentSize(const uint8_t* vnet_hdr) noexcept;

/// The VID the kernel stripped into TPACKET metadata (tpacket3_hdr::hv1 or tpacket_auxdata), or
/// kNoVlan. tp_vlan_tci is meaningful only with TP_STATUS_VLAN_VALID; a priority-tagged frame has
/// the flag set and VID 0.
inline uint16_t MetadataVlan(uint32_t tp_status, uint16_t tp_vlan_tci) noexcept {
  return (tp_status & TP_STATUS_VLAN_VALID) != 0 ? static_cast<uint16_t>(tp_vlan_tci & 0x0fff)
                                                 : kNoVlan;
}

}  // namespace mcr::engine
