#include "engine/packet.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/steering.h"
#include "gtest/gtest.h"

// Counts allocations by this thread, so a test can hold ParseFrame to the hot-path contract
// ("no allocation") stated in packet.h. Replacing the global operator new/delete is the only hook.
namespace {
thread_local int64_t g_allocations = 0;
}  // namespace
// GCC's -Wmismatched-new-delete misfires on these replacements once inlined (new paired with free).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t size) {
  ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace mcr::engine {
namespace {

// Describes a frame; BuildFrame writes it. Defaults: an untagged 100-byte UDP datagram
// 10.0.0.1:1234 -> 239.1.2.3:5000, no padding. The overrides produce malformed shapes.
struct FrameSpec {
  std::vector<std::pair<uint16_t, uint16_t>> tags;  // (TPID, TCI), outermost first
  uint16_t ether_type = 0x0800;
  uint8_t version = 4;
  uint8_t ihl = 5;  // 32-bit words; options are filled with NOPs
  uint8_t tos = 0xb8;
  uint8_t ttl = 17;
  uint8_t protocol = 17;
  uint16_t frag = 0x4000;  // DF
  const char* src = "10.0.0.1";
  const char* dst = "239.1.2.3";
  uint16_t sport = 1234;
  uint16_t dport = 5000;
  uint32_t payload_len = 100;
  uint32_t padding = 0;                     // bytes after the IP packet (Ethernet padding)
  std::optional<uint16_t> ip_total_length;  // default: the real one
  std::optional<uint16_t> udp_length;       // default: the real one
};

void Put16(std::vector<uint8_t>& f, size_t at, uint16_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}

std::vector<uint8_t> BuildFrame(const FrameSpec& s) {
  const size_t ip_off = 14 + 4 * s.tags.size();
  const size_t ip_hlen = 4u * s.ihl;
  const size_t udp_off = ip_off + ip_hlen;
  std::vector<uint8_t> f(udp_off + 8 + s.payload_len + s.padding, 0);
  const uint8_t dmac[] = {0x01, 0x00, 0x5e, 0x01, 0x02, 0x03};
  const uint8_t smac[] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
  std::memcpy(&f[0], dmac, 6);
  std::memcpy(&f[6], smac, 6);
  size_t at = 12;
  for (auto [tpid, tci] : s.tags) {
    Put16(f, at, tpid);
    Put16(f, at + 2, tci);
    at += 4;
  }
  Put16(f, at, s.ether_type);
  f[ip_off] = static_cast<uint8_t>(s.version << 4 | (s.ihl & 0x0f));
  f[ip_off + 1] = s.tos;
  Put16(f, ip_off + 2, s.ip_total_length.value_or(ip_hlen + 8 + s.payload_len));
  Put16(f, ip_off + 4, 0x1234);
  Put16(f, ip_off + 6, s.frag);
  f[ip_off + 8] = s.ttl;
  f[ip_off + 9] = s.protocol;
  inet_pton(AF_INET, s.src, &f[ip_off + 12]);
  inet_pton(AF_INET, s.dst, &f[ip_off + 16]);
  for (size_t i = ip_off + 20; i < udp_off; ++i) f[i] = 1;  // IP option NOP
  Put16(f, udp_off, s.sport);
  Put16(f, udp_off + 2, s.dport);
  Put16(f, udp_off + 4, s.udp_length.value_or(8 + s.payload_len));
  for (uint32_t i = 0; i < s.payload_len; ++i) f[udp_off + 8 + i] = static_cast<uint8_t>(i * 7);
  for (uint32_t i = 0; i < s.padding; ++i) f[udp_off + 8 + s.payload_len + i] = 0xee;
  return f;
}

// A heap copy of exactly `len` bytes, so that ASan reports any read past the end.
std::unique_ptr<uint8_t[]> ExactCopy(const uint8_t* data, size_t len) {
  auto copy = std::make_unique<uint8_t[]>(len == 0 ? 1 : len);
  if (len != 0) std::memcpy(copy.get(), data, len);
  return copy;
}

ParseResult Parse(const std::vector<uint8_t>& f, ParsedPacket* out = nullptr) {
  ParsedPacket scratch;
  return ParseFrame(f.data(), static_cast<uint32_t>(f.size()), out != nullptr ? out : &scratch);
}

ParseResult Parse(const FrameSpec& s) { return Parse(BuildFrame(s)); }

uint32_t Addr(const char* text) {
  in_addr a;
  inet_pton(AF_INET, text, &a);
  return a.s_addr;
}

#define EXPECT_PARSE(expected, spec_or_frame) \
  EXPECT_EQ(ParseResultName(Parse(spec_or_frame)), std::string(ParseResultName(expected)))

TEST(ParseFrameTest, PlainUdpFields) {
  FrameSpec spec;
  std::vector<uint8_t> f = BuildFrame(spec);
  ParsedPacket p;
  ASSERT_EQ(Parse(f, &p), ParseResult::kOk);
  EXPECT_EQ(p.src_addr, Addr("10.0.0.1"));  // network byte order, as in in_addr
  EXPECT_EQ(p.dst_addr, Addr("239.1.2.3"));
  EXPECT_EQ(p.src_port, 1234);  // host order
  EXPECT_EQ(p.dst_port, 5000);
  EXPECT_EQ(p.tos, 0xb8);
  EXPECT_EQ(p.ttl, 17);
  EXPECT_EQ(p.vlan, kNoVlan);
  EXPECT_EQ(p.payload, f.data() + 42);
  EXPECT_EQ(p.payload_len, 100u);
  EXPECT_EQ(p.payload[99], static_cast<uint8_t>(99 * 7));
}

TEST(ParseFrameTest, MinimumFrameWithEmptyPayload) {
  FrameSpec spec;
  spec.payload_len = 0;
  std::vector<uint8_t> f = BuildFrame(spec);
  ASSERT_EQ(f.size(), 42u);  // unpadded, as captured on transmit or from veth
  ParsedPacket p;
  ASSERT_EQ(Parse(f, &p), ParseResult::kOk);
  EXPECT_EQ(p.payload_len, 0u);
}

TEST(ParseFrameTest, EthernetPaddingIsTrimmed) {
  for (uint32_t payload : {0u, 1u, 17u, 18u}) {
    FrameSpec spec;
    spec.payload_len = payload;
    spec.padding = payload < 18 ? 18 - payload : 0;  // padded to the 60-byte minimum
    std::vector<uint8_t> f = BuildFrame(spec);
    EXPECT_EQ(f.size(), 60u);
    ParsedPacket p;
    ASSERT_EQ(Parse(f, &p), ParseResult::kOk);
    EXPECT_EQ(p.payload_len, payload);
  }
}

TEST(ParseFrameTest, UdpLengthShorterThanIpPayloadIsAccepted) {
  // As the kernel's udp_rcv: trailing bytes inside the IP packet beyond the UDP length are ignored.
  FrameSpec spec;
  spec.udp_length = 8 + 40;
  ParsedPacket p;
  ASSERT_EQ(Parse(BuildFrame(spec), &p), ParseResult::kOk);
  EXPECT_EQ(p.payload_len, 40u);
}

TEST(ParseFrameTest, Ipv4OptionsEveryHeaderLength) {
  for (uint8_t ihl = 5; ihl <= 15; ++ihl) {
    FrameSpec spec;
    spec.ihl = ihl;
    spec.dport = static_cast<uint16_t>(6000 + ihl);
    std::vector<uint8_t> f = BuildFrame(spec);
    ParsedPacket p;
    ASSERT_EQ(Parse(f, &p), ParseResult::kOk) << "ihl " << int{ihl};
    EXPECT_EQ(p.dst_port, 6000 + ihl);
    EXPECT_EQ(p.payload, f.data() + 14 + 4 * ihl + 8);
    EXPECT_EQ(p.payload_len, 100u);
  }
}

TEST(ParseFrameTest, SingleVlanTag) {
  FrameSpec spec;
  spec.tags = {{0x8100, 0xa000 | 100}};  // PCP 5: must not leak into the VID
  std::vector<uint8_t> f = BuildFrame(spec);
  ParsedPacket p;
  ASSERT_EQ(Parse(f, &p), ParseResult::kOk);
  EXPECT_EQ(p.vlan, 100);
  EXPECT_EQ(p.payload, f.data() + 46);
  EXPECT_EQ(p.dst_port, 5000);
}

TEST(ParseFrameTest, DoubleTagReportsOuterVid) {
  FrameSpec spec;
  spec.tags = {{0x88a8, 10}, {0x8100, 20}};
  std::vector<uint8_t> f = BuildFrame(spec);
  ParsedPacket p;
  ASSERT_EQ(Parse(f, &p), ParseResult::kOk);
  EXPECT_EQ(p.vlan, 10);
  EXPECT_EQ(p.payload, f.data() + 50);
  spec.tags = {{0x8100, 30}, {0x8100, 40}};  // old-style QinQ with two C-tags
  ASSERT_EQ(Parse(BuildFrame(spec), &p), ParseResult::kOk);
  EXPECT_EQ(p.vlan, 30);
}

TEST(ParseFrameTest, PriorityTagIsVidZero) {
  FrameSpec spec;
  spec.tags = {{0x8100, 0xe000}};
  ParsedPacket p;
  ASSERT_EQ(Parse(BuildFrame(spec), &p), ParseResult::kOk);
  EXPECT_EQ(p.vlan, 0);
}

TEST(ParseFrameTest, MetadataTagWinsOverInBandTag) {
  // QinQ as AF_PACKET delivers it: the outer tag in metadata, the inner one in-band.
  FrameSpec spec;
  spec.tags = {{0x8100, 20}};
  std::vector<uint8_t> f = BuildFrame(spec);
  ParsedPacket p;
  ASSERT_EQ(ParseFrame(f.data(), f.size(), 10, &p), ParseResult::kOk);
  EXPECT_EQ(p.vlan, 10);
  // Single tag stripped by the kernel: nothing in-band.
  f = BuildFrame(FrameSpec{});
  ASSERT_EQ(ParseFrame(f.data(), f.size(), 10, &p), ParseResult::kOk);
  EXPECT_EQ(p.vlan, 10);
  ASSERT_EQ(ParseFrame(f.data(), f.size(), kNoVlan, &p), ParseResult::kOk);
  EXPECT_EQ(p.vlan, kNoVlan);
}

TEST(ParseFrameTest, MetadataVlanFromTpacketStatus) {
  EXPECT_EQ(MetadataVlan(TP_STATUS_USER, 0x2064), kNoVlan);  // tci without VLAN_VALID: ignored
  EXPECT_EQ(MetadataVlan(TP_STATUS_USER | TP_STATUS_VLAN_VALID, 0x2064), 0x064);
  EXPECT_EQ(MetadataVlan(TP_STATUS_VLAN_VALID, 0xe000), 0);  // priority tag
  EXPECT_EQ(MetadataVlan(TP_STATUS_VLAN_VALID, 0x0fff), 0x0fff);
}

TEST(ParseFrameTest, JumboFrame) {
  FrameSpec spec;
  spec.payload_len = 9000 - 20 - 8;  // 9000-byte MTU
  std::vector<uint8_t> f = BuildFrame(spec);
  ASSERT_EQ(f.size(), 9014u);
  ParsedPacket p;
  ASSERT_EQ(Parse(f, &p), ParseResult::kOk);
  EXPECT_EQ(p.payload_len, 8972u);
  spec.tags = {{0x88a8, 1}, {0x8100, 2}};
  spec.ihl = 15;
  spec.payload_len = 9000 - 60 - 8;
  ASSERT_EQ(Parse(BuildFrame(spec), &p), ParseResult::kOk);
  EXPECT_EQ(p.payload_len, 8932u);
}

TEST(ParseFrameTest, MaximumIpTotalLength) {
  FrameSpec spec;
  spec.payload_len = 65535 - 28;
  ParsedPacket p;
  ASSERT_EQ(Parse(BuildFrame(spec), &p), ParseResult::kOk);
  EXPECT_EQ(p.payload_len, 65507u);
}

TEST(ParseFrameTest, TruncatedEthernet) {
  std::vector<uint8_t> f = BuildFrame(FrameSpec{});
  for (size_t len : {0, 1, 12, 13}) {
    EXPECT_PARSE(ParseResult::kTruncatedEthernet, std::vector<uint8_t>(f.begin(), f.begin() + len));
  }
  FrameSpec tagged;
  tagged.tags = {{0x8100, 5}};
  f = BuildFrame(tagged);
  for (size_t len : {14, 15, 16, 17}) {  // ends inside the tag or its EtherType
    EXPECT_PARSE(ParseResult::kTruncatedEthernet, std::vector<uint8_t>(f.begin(), f.begin() + len));
  }
  tagged.tags = {{0x88a8, 5}, {0x8100, 6}};
  f = BuildFrame(tagged);
  EXPECT_PARSE(ParseResult::kTruncatedEthernet, std::vector<uint8_t>(f.begin(), f.begin() + 21));
}

TEST(ParseFrameTest, TooManyVlanTags) {
  FrameSpec spec;
  spec.tags = {{0x88a8, 1}, {0x8100, 2}, {0x8100, 3}};
  EXPECT_PARSE(ParseResult::kTooManyVlanTags, spec);
}

TEST(ParseFrameTest, NotIpv4) {
  for (uint16_t type : {0x0806 /*ARP*/, 0x86dd /*IPv6*/, 0x88cc /*LLDP*/, 0x0040 /*802.3 len*/,
                        0x9100 /*non-standard QinQ TPID*/, 0x0000}) {
    FrameSpec spec;
    spec.ether_type = type;
    EXPECT_PARSE(ParseResult::kNotIpv4, spec) << std::hex << type;
  }
  FrameSpec tagged_v6;
  tagged_v6.tags = {{0x8100, 7}};
  tagged_v6.ether_type = 0x86dd;
  EXPECT_PARSE(ParseResult::kNotIpv4, tagged_v6);
  // Only the 14-byte header is needed to say "not IPv4".
  FrameSpec arp;
  arp.ether_type = 0x0806;
  std::vector<uint8_t> f = BuildFrame(arp);
  EXPECT_PARSE(ParseResult::kNotIpv4, std::vector<uint8_t>(f.begin(), f.begin() + 14));
}

TEST(ParseFrameTest, TruncatedIp) {
  std::vector<uint8_t> f = BuildFrame(FrameSpec{});
  // Ends inside the fixed header.
  for (size_t len : {14, 15, 33}) {
    EXPECT_PARSE(ParseResult::kTruncatedIp, std::vector<uint8_t>(f.begin(), f.begin() + len));
  }
  // Ends inside the options.
  FrameSpec options;
  options.ihl = 15;
  f = BuildFrame(options);
  EXPECT_PARSE(ParseResult::kTruncatedIp, std::vector<uint8_t>(f.begin(), f.begin() + 14 + 40));
  // Total length claims more than the frame holds (e.g. a ring snap length cut it).
  FrameSpec longer;
  longer.ip_total_length = 20 + 8 + 101;
  EXPECT_PARSE(ParseResult::kTruncatedIp, longer);
  longer.ip_total_length = 0xffff;
  EXPECT_PARSE(ParseResult::kTruncatedIp, longer);
}

TEST(ParseFrameTest, BadIpVersion) {
  for (uint8_t version : {0, 6, 15}) {
    FrameSpec spec;
    spec.version = version;
    EXPECT_PARSE(ParseResult::kBadIpVersion, spec) << int{version};
  }
}

TEST(ParseFrameTest, BadIhl) {
  for (uint8_t ihl = 0; ihl < 5; ++ihl) {
    FrameSpec spec;
    spec.ihl = 5;
    std::vector<uint8_t> f = BuildFrame(spec);
    f[14] = static_cast<uint8_t>(0x40 | ihl);
    EXPECT_PARSE(ParseResult::kBadIhl, f) << int{ihl};
  }
}

TEST(ParseFrameTest, BadIpTotalLength) {
  for (uint16_t total : {0, 1, 19}) {
    FrameSpec spec;
    spec.ip_total_length = total;
    EXPECT_PARSE(ParseResult::kBadIpTotalLength, spec) << total;
  }
  FrameSpec options;
  options.ihl = 6;
  options.ip_total_length = 20;  // shorter than its own 24-byte header
  EXPECT_PARSE(ParseResult::kBadIpTotalLength, options);
}

TEST(ParseFrameTest, NotUdp) {
  for (uint8_t proto : {0, 1 /*ICMP*/, 2 /*IGMP*/, 6 /*TCP*/, 47 /*GRE*/, 255}) {
    FrameSpec spec;
    spec.protocol = proto;
    EXPECT_PARSE(ParseResult::kNotUdp, spec) << int{proto};
  }
  FrameSpec tcp_fragment;  // not_udp wins over fragment
  tcp_fragment.protocol = 6;
  tcp_fragment.frag = 0x2000;
  EXPECT_PARSE(ParseResult::kNotUdp, tcp_fragment);
}

TEST(ParseFrameTest, Fragment) {
  for (uint16_t frag : {0x2000 /*MF, first*/, 0x0001 /*last, offset 8*/, 0x2001, 0x1fff,
                        0x6000 /*DF+MF*/, 0x3fff}) {
    FrameSpec spec;
    spec.frag = frag;
    EXPECT_PARSE(ParseResult::kFragment, spec) << std::hex << frag;
  }
  for (uint16_t frag : {0x0000, 0x4000 /*DF*/, 0x8000 /*reserved bit*/, 0xc000}) {
    FrameSpec spec;
    spec.frag = frag;
    EXPECT_PARSE(ParseResult::kOk, spec) << std::hex << frag;
  }
}

TEST(ParseFrameTest, TruncatedUdp) {
  for (uint16_t ip_payload : {0, 1, 7}) {
    FrameSpec spec;
    spec.ip_total_length = 20 + ip_payload;
    EXPECT_PARSE(ParseResult::kTruncatedUdp, spec) << ip_payload;
  }
  FrameSpec options;
  options.ihl = 15;
  options.ip_total_length = 60 + 7;
  EXPECT_PARSE(ParseResult::kTruncatedUdp, options);
}

TEST(ParseFrameTest, BadUdpLength) {
  for (uint16_t udp_len : {0, 1, 7, 8 + 101, 0xffff}) {
    FrameSpec spec;
    spec.udp_length = udp_len;
    EXPECT_PARSE(ParseResult::kBadUdpLength, spec) << udp_len;
  }
  // Padding does not count as UDP data: the UDP length is checked against the IP total length.
  FrameSpec padded;
  padded.payload_len = 2;
  padded.padding = 16;
  padded.udp_length = 8 + 10;
  EXPECT_PARSE(ParseResult::kBadUdpLength, padded);
}

TEST(HotPathTest, ParseAndSteerDoNotAllocate) {
  std::vector<std::vector<uint8_t>> frames;
  FrameSpec spec;
  frames.push_back(BuildFrame(spec));
  spec.tags = {{0x88a8, 1}, {0x8100, 2}};
  spec.ihl = 15;
  frames.push_back(BuildFrame(spec));
  spec.protocol = 6;
  frames.push_back(BuildFrame(spec));
  const int64_t before = g_allocations;
  ASSERT_GT(before, 0) << "allocation counting is not hooked up";
  uint32_t sink = 0;
  for (const std::vector<uint8_t>& f : frames) {
    ParsedPacket p;
    if (ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &p) == ParseResult::kOk) {
      sink += ShardFor(p.dst_addr, p.dst_port, 3);
    }
    sink += static_cast<uint32_t>(ParseResultName(ParseResult::kNotUdp)[0]);
  }
  EXPECT_EQ(g_allocations, before);
  EXPECT_NE(sink, 0u);
}

TEST(ParseResultNameTest, StableSnakeCaseNames) {
  EXPECT_STREQ(ParseResultName(ParseResult::kOk), "ok");
  EXPECT_STREQ(ParseResultName(ParseResult::kTruncatedEthernet), "truncated_ethernet");
  EXPECT_STREQ(ParseResultName(ParseResult::kTooManyVlanTags), "too_many_vlan_tags");
  EXPECT_STREQ(ParseResultName(ParseResult::kNotIpv4), "not_ipv4");
  EXPECT_STREQ(ParseResultName(ParseResult::kTruncatedIp), "truncated_ip");
  EXPECT_STREQ(ParseResultName(ParseResult::kBadIpVersion), "bad_ip_version");
  EXPECT_STREQ(ParseResultName(ParseResult::kBadIhl), "bad_ihl");
  EXPECT_STREQ(ParseResultName(ParseResult::kBadIpTotalLength), "bad_ip_total_length");
  EXPECT_STREQ(ParseResultName(ParseResult::kNotUdp), "not_udp");
  EXPECT_STREQ(ParseResultName(ParseResult::kFragment), "fragment");
  EXPECT_STREQ(ParseResultName(ParseResult::kTruncatedUdp), "truncated_udp");
  EXPECT_STREQ(ParseResultName(ParseResult::kBadUdpLength), "bad_udp_length");
  EXPECT_STREQ(ParseResultName(ParseResult::kOffloadTruncated), "offload_truncated");
  EXPECT_STREQ(ParseResultName(ParseResult::kCount), "unknown");
  EXPECT_STREQ(ParseResultName(static_cast<ParseResult>(200)), "unknown");

  std::set<std::string> seen;
  for (int i = 0; i < static_cast<int>(ParseResult::kCount); ++i) {
    std::string name = ParseResultName(static_cast<ParseResult>(i));
    EXPECT_TRUE(seen.insert(name).second) << "duplicate " << name;
    EXPECT_FALSE(name.empty());
    for (char c : name) EXPECT_TRUE(std::islower(c) || std::isdigit(c) || c == '_') << name;
  }
}

// The virtio_net_hdr the kernel writes before each frame (PACKET_VNET_HDR): flags, gso_type,
// hdr_len, gso_size, csum_start, csum_offset; 16-bit fields little-endian.
std::array<uint8_t, kVnetHdrLen> VnetHdr(uint8_t gso_type, uint16_t gso_size) {
  return {0x01, gso_type, 42, 0, static_cast<uint8_t>(gso_size & 0xff),
          static_cast<uint8_t>(gso_size >> 8), 34, 0, 6, 0};
}

TEST(OffloadSegmentSizeTest, OnlyUdpSegmentationSplitsAFrame) {
  EXPECT_EQ(OffloadSegmentSize(VnetHdr(0, 0).data()), 0) << "an ordinary frame";
  EXPECT_EQ(OffloadSegmentSize(VnetHdr(5, 1200).data()), 1200) << "UDP GSO/GRO (UDP_L4)";
  EXPECT_EQ(OffloadSegmentSize(VnetHdr(5, 8000).data()), 8000) << "both bytes of gso_size";
  EXPECT_EQ(OffloadSegmentSize(VnetHdr(5 | 0x80, 1200).data()), 1200) << "with the ECN flag";
  EXPECT_EQ(OffloadSegmentSize(VnetHdr(3, 1480).data()), 0) << "UFO: one datagram, fragmented";
  EXPECT_EQ(OffloadSegmentSize(VnetHdr(1, 1448).data()), 0) << "TCPv4";
  EXPECT_EQ(OffloadSegmentSize(VnetHdr(4, 1428).data()), 0) << "TCPv6";
  // No alignment is assumed: the header sits 10 bytes before an Ethernet header in the ring.
  std::array<uint8_t, kVnetHdrLen + 1> odd{};
  const auto h = VnetHdr(5, 1316);
  std::copy(h.begin(), h.end(), odd.begin() + 1);
  EXPECT_EQ(OffloadSegmentSize(odd.data() + 1), 1316);
}

// Checks what every result must satisfy, whatever the bytes: kOk points inside the frame.
void CheckInvariants(const uint8_t* frame, uint32_t len, ParseResult r, const ParsedPacket& p) {
  ASSERT_LT(static_cast<int>(r), static_cast<int>(ParseResult::kCount));
  if (r != ParseResult::kOk) return;
  ASSERT_GE(p.payload, frame + 42);
  ASSERT_LE(p.payload + p.payload_len, frame + len);
}

std::vector<FrameSpec> ValidShapes() {
  std::vector<FrameSpec> shapes(5);
  shapes[1].tags = {{0x8100, 100}};
  shapes[2].tags = {{0x88a8, 1}, {0x8100, 2}};
  shapes[3].ihl = 15;
  shapes[4].payload_len = 3;
  shapes[4].padding = 15;
  return shapes;
}

TEST(ParseFrameFuzzTest, EveryTruncationOfValidFrames) {
  // Each prefix is copied to an exactly-sized heap block: under ASan a read past `len` aborts.
  for (const FrameSpec& spec : ValidShapes()) {
    std::vector<uint8_t> f = BuildFrame(spec);
    const uint32_t ip_end = static_cast<uint32_t>(f.size() - spec.padding);
    for (uint32_t len = 0; len <= f.size(); ++len) {
      auto copy = ExactCopy(f.data(), len);
      ParsedPacket p;
      ParseResult r = ParseFrame(copy.get(), len, &p);
      CheckInvariants(copy.get(), len, r, p);
      // Every cut inside the IP packet is detected; cuts inside the padding are harmless.
      EXPECT_EQ(r == ParseResult::kOk, len >= ip_end) << "len " << len;
    }
  }
}

// What an IP-only capture (tun, WireGuard) holds: the frame without its Ethernet header.
std::vector<uint8_t> IpOnly(const FrameSpec& s) {
  std::vector<uint8_t> f = BuildFrame(s);
  return {f.begin() + 14, f.end()};
}

TEST(ParseIpPacketTest, SameFieldsAsTheEthernetFrame) {
  FrameSpec spec;
  spec.ihl = 7;
  const std::vector<uint8_t> ip = IpOnly(spec);
  ParsedPacket p;
  ASSERT_EQ(ParseIpPacket(ip.data(), static_cast<uint32_t>(ip.size()), &p), ParseResult::kOk);
  EXPECT_EQ(p.dst_addr, Addr("239.1.2.3"));
  EXPECT_EQ(p.dst_port, 5000);
  EXPECT_EQ(p.src_addr, Addr("10.0.0.1"));
  EXPECT_EQ(p.vlan, kNoVlan);
  EXPECT_EQ(p.payload, ip.data() + 28 + 8);
  EXPECT_EQ(p.payload_len, 100u);
}

TEST(ParseIpPacketTest, MalformedShapesKeepTheirReasons) {
  auto parse = [](const std::vector<uint8_t>& ip) {
    ParsedPacket p;
    return ParseResultName(ParseIpPacket(ip.data(), static_cast<uint32_t>(ip.size()), &p));
  };
  EXPECT_STREQ(parse({}), "truncated_ip");
  FrameSpec v6;
  v6.version = 6;
  EXPECT_STREQ(parse(IpOnly(v6)), "not_ipv4");  // no EtherType here: the version nibble decides
  FrameSpec v5;
  v5.version = 5;
  EXPECT_STREQ(parse(IpOnly(v5)), "bad_ip_version");
  FrameSpec frag;
  frag.frag = 0x2000;
  EXPECT_STREQ(parse(IpOnly(frag)), "fragment");
  FrameSpec tcp;
  tcp.protocol = 6;
  EXPECT_STREQ(parse(IpOnly(tcp)), "not_udp");
  std::vector<uint8_t> cut = IpOnly(FrameSpec{});
  cut.resize(30);
  EXPECT_STREQ(parse(cut), "truncated_ip");
}

TEST(ParseIpPacketTest, EveryTruncationStaysInBounds) {
  for (const FrameSpec& spec : ValidShapes()) {
    if (!spec.tags.empty()) continue;  // tags have no place in an IP-only capture
    const std::vector<uint8_t> ip = IpOnly(spec);
    const uint32_t ip_end = static_cast<uint32_t>(ip.size() - spec.padding);
    for (uint32_t len = 0; len <= ip.size(); ++len) {
      auto copy = ExactCopy(ip.data(), len);
      ParsedPacket p;
      const ParseResult r = ParseIpPacket(copy.get(), len, &p);
      if (r == ParseResult::kOk) {
        EXPECT_GE(p.payload, copy.get());
        EXPECT_LE(p.payload + p.payload_len, copy.get() + len);
      }
      EXPECT_EQ(r == ParseResult::kOk, len >= ip_end) << "len " << len;
    }
  }
}

TEST(ParseFrameFuzzTest, RandomCorruptionNeverReadsOutOfBounds) {
  std::mt19937 rng(12345);  // fixed seed: reproducible
  std::vector<FrameSpec> shapes = ValidShapes();
  int results[static_cast<int>(ParseResult::kCount)] = {};
  for (int iter = 0; iter < 200000; ++iter) {
    std::vector<uint8_t> f = BuildFrame(shapes[iter % shapes.size()]);
    // Corrupt a few bytes of the headers (the first 80 bytes), then cut at a random length.
    const int flips = 1 + static_cast<int>(rng() % 4);
    const size_t header_bytes = std::min<size_t>(80, f.size());
    for (int i = 0; i < flips; ++i) f[rng() % header_bytes] = static_cast<uint8_t>(rng());
    const uint32_t len = static_cast<uint32_t>(rng() % (f.size() + 1));
    auto copy = ExactCopy(f.data(), len);
    ParsedPacket p;
    ParseResult r = ParseFrame(copy.get(), len, &p);
    CheckInvariants(copy.get(), len, r, p);
    ++results[static_cast<int>(r)];
  }
  // The corpus is meant to reach every outcome; if it stops doing so the test has gone blind.
  // (kOffloadTruncated is the shard's verdict on a frame's metadata, never ParseFrame's.)
  EXPECT_EQ(results[static_cast<int>(ParseResult::kOffloadTruncated)], 0);
  for (int i = 0; i < static_cast<int>(ParseResult::kCount); ++i) {
    if (static_cast<ParseResult>(i) == ParseResult::kOffloadTruncated) continue;
    EXPECT_GT(results[i], 0) << ParseResultName(static_cast<ParseResult>(i));
  }
}

}  // namespace
}  // namespace mcr::engine
