// HOT PATH: no locks, no allocation, no exceptions, no syscalls, no logging.
// packet_bench measures this file per frame; ParseFrame is noexcept and touches only its inputs.

#include "engine/packet.h"

#include <cstring>

namespace mcr::engine {
namespace {

constexpr uint32_t kEthHeaderLen = 14;  // dst MAC, src MAC, EtherType
constexpr uint32_t kVlanTagLen = 4;     // TPID (the EtherType slot) + TCI, then the next EtherType
constexpr uint32_t kIpv4MinHeaderLen = 20;
constexpr uint32_t kUdpHeaderLen = 8;
constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint16_t kEtherTypeVlan = 0x8100;  // 802.1Q C-tag
constexpr uint16_t kEtherTypeQinQ = 0x88a8;  // 802.1ad S-tag
constexpr uint8_t kIpProtoUdp = 17;
constexpr uint16_t kIpMoreFragments = 0x2000;
constexpr uint16_t kIpFragmentOffset = 0x1fff;

// Frames have no alignment guarantee (14-byte Ethernet header, in-band tags): load via memcpy,
// which compiles to a plain (unaligned-capable) load.
inline uint16_t Load16(const uint8_t* p) noexcept {
  uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint16_t LoadBe16(const uint8_t* p) noexcept { return __builtin_bswap16(Load16(p)); }
inline uint32_t Load32(const uint8_t* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;  // byte order as in memory: network order for protocol fields
}

constexpr const char* kNames[] = {
    "ok",       "truncated_ethernet",  "too_many_vlan_tags",
    "not_ipv4", "truncated_ip",        "bad_ip_version",
    "bad_ihl",  "bad_ip_total_length", "not_udp",
    "fragment", "truncated_udp",       "bad_udp_length",
    "offload_truncated",
};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<size_t>(ParseResult::kCount),
              "every ParseResult needs a name");
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "LoadBe16 assumes a little-endian host");

// IPv4 header onwards, shared by ParseFrame and ParseIpPacket (defined below them).
ParseResult ParseIpv4(const uint8_t* ip, uint32_t avail, uint16_t vlan,
                      ParsedPacket* out) noexcept;

}  // namespace

const char* ParseResultName(ParseResult r) noexcept {
  const auto i = static_cast<size_t>(r);
  return i < static_cast<size_t>(ParseResult::kCount) ? kNames[i] : "unknown";
}

uint16_t OffloadSegmentSize(const uint8_t* vnet_hdr) noexcept {
  // struct virtio_net_hdr (<linux/virtio_net.h>, which does not compile as C++): flags,
  // gso_type, hdr_len, gso_size, csum_start, csum_offset; the 16-bit fields little-endian on a
  // packet socket (vio_le) on this host.
  constexpr uint8_t kGsoEcn = 0x80;   // VIRTIO_NET_HDR_GSO_ECN, a flag on any type
  constexpr uint8_t kGsoUdpL4 = 5;    // VIRTIO_NET_HDR_GSO_UDP_L4 (Linux 6.2 uapi)
  constexpr size_t kGsoTypeAt = 1, kGsoSizeAt = 4;
  // Only UDP segmentation (USO/GRO) cuts a payload into datagrams. TCP types describe tunnelled
  // TCP at most (VXLAN GRO), which is relayed as it is; the old UFO type never gets here (the
  // kernel cannot describe it and drops the frame).
  if ((vnet_hdr[kGsoTypeAt] & ~kGsoEcn) != kGsoUdpL4) return 0;
  return Load16(vnet_hdr + kGsoSizeAt);
}

ParseResult ParseFrame(const uint8_t* frame, uint32_t len, ParsedPacket* out) noexcept {
  return ParseFrame(frame, len, kNoVlan, out);
}

ParseResult ParseFrame(const uint8_t* frame, uint32_t len, uint16_t metadata_vlan,
                       ParsedPacket* out) noexcept {
  // Invariant below: every read of frame[off, off + n) is preceded by a check that off + n <= len.
  // Offsets are bounded by small constants plus len, so uint32_t arithmetic cannot wrap.
  if (len < kEthHeaderLen) return ParseResult::kTruncatedEthernet;
  uint32_t off = kEthHeaderLen - 2;  // the EtherType / TPID slot
  uint16_t ether_type = LoadBe16(frame + off);
  uint16_t vlan = metadata_vlan;
  for (int tags = 0; ether_type == kEtherTypeVlan || ether_type == kEtherTypeQinQ; ++tags) {
    if (tags == kMaxInbandVlanTags) return ParseResult::kTooManyVlanTags;
    if (len < off + 2 + kVlanTagLen) return ParseResult::kTruncatedEthernet;
    if (vlan == kNoVlan) vlan = LoadBe16(frame + off + 2) & 0x0fff;
    off += kVlanTagLen;
    ether_type = LoadBe16(frame + off);
  }
  if (ether_type != kEtherTypeIpv4) return ParseResult::kNotIpv4;
  off += 2;
  return ParseIpv4(frame + off, len - off, vlan, out);
}

ParseResult ParseIpPacket(const uint8_t* packet, uint32_t len, ParsedPacket* out) noexcept {
  if (len == 0) return ParseResult::kTruncatedIp;
  // An IP-only capture carries no EtherType: the version nibble tells IPv4 from IPv6.
  if ((packet[0] >> 4) == 6) return ParseResult::kNotIpv4;
  return ParseIpv4(packet, len, kNoVlan, out);
}

namespace {

ParseResult ParseIpv4(const uint8_t* ip, uint32_t avail, uint16_t vlan,
                      ParsedPacket* out) noexcept {
  // `avail` is what the capture holds from the IP header on, Ethernet padding included.
  if (avail < kIpv4MinHeaderLen) return ParseResult::kTruncatedIp;
  if ((ip[0] >> 4) != 4) return ParseResult::kBadIpVersion;
  const uint32_t ihl = (ip[0] & 0x0fu) * 4;
  if (ihl < kIpv4MinHeaderLen) return ParseResult::kBadIhl;
  const uint32_t total_len = LoadBe16(ip + 2);
  if (total_len < ihl) return ParseResult::kBadIpTotalLength;
  // Covers options beyond the frame too, since total_len >= ihl. Bytes past total_len are
  // Ethernet padding (frames are padded to 60 bytes) and are ignored from here on.
  if (avail < total_len) return ParseResult::kTruncatedIp;
  // Protocol before fragmentation: a non-UDP fragment counts as not_udp, so kFragment counts
  // exactly the UDP traffic lost to fragmentation.
  if (ip[9] != kIpProtoUdp) return ParseResult::kNotUdp;
  if ((LoadBe16(ip + 6) & (kIpMoreFragments | kIpFragmentOffset)) != 0) {
    return ParseResult::kFragment;
  }

  // UDP. Like the kernel's udp_rcv, a UDP length shorter than the IP payload is accepted and the
  // excess ignored; a longer one is not.
  const uint8_t* udp = ip + ihl;
  const uint32_t ip_payload = total_len - ihl;
  if (ip_payload < kUdpHeaderLen) return ParseResult::kTruncatedUdp;
  const uint32_t udp_len = LoadBe16(udp + 4);
  if (udp_len < kUdpHeaderLen || udp_len > ip_payload) return ParseResult::kBadUdpLength;

  out->payload = udp + kUdpHeaderLen;
  out->payload_len = udp_len - kUdpHeaderLen;
  out->src_addr = Load32(ip + 12);
  out->dst_addr = Load32(ip + 16);
  out->src_port = LoadBe16(udp);
  out->dst_port = LoadBe16(udp + 2);
  out->vlan = vlan;
  out->tos = ip[1];
  out->ttl = ip[8];
  return ParseResult::kOk;
}

}  // namespace

}  // namespace mcr::engine
