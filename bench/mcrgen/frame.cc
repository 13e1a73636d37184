// HOT PATH: no allocation, no exceptions (FinishFrame and InternetChecksum).
#include "bench/mcrgen/frame.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "bench/mcrgen/bytes.h"

namespace mcr::gen {
namespace {

constexpr size_t kIpOff = kEthHeaderSize;
constexpr size_t kUdpOff = kEthHeaderSize + kIpv4HeaderSize;
constexpr uint16_t kEtherTypeIpv4 = 0x0800;
constexpr uint8_t kProtoUdp = 17;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Ones-complement sum of big-endian 16-bit words, accumulated in 64 bits (no carry handling
// needed until the fold: 2^48 words before overflow). Reads 8 bytes at a time.
uint64_t SumWords(const uint8_t* p, size_t len, uint64_t sum) noexcept {
  while (len >= 8) {
    const uint64_t w = LoadBe64(p);
    sum += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    p += 8;
    len -= 8;
  }
  while (len >= 2) {
    sum += LoadBe16(p);
    p += 2;
    len -= 2;
  }
  if (len == 1) sum += uint64_t{p[0]} << 8;
  return sum;
}

// Ones-complement sum folded to 16 bits, not complemented.
uint16_t FoldSum(uint64_t sum) noexcept {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint16_t Fold(uint64_t sum) noexcept { return static_cast<uint16_t>(~FoldSum(sum)); }

}  // namespace

MacAddress MulticastMac(uint32_t group) noexcept {
  return {0x01,
          0x00,
          0x5e,
          static_cast<uint8_t>((group >> 16) & 0x7f),
          static_cast<uint8_t>(group >> 8),
          static_cast<uint8_t>(group)};
}

absl::StatusOr<MacAddress> ParseMac(std::string_view text) {
  MacAddress mac{};
  const auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is not a MAC address; write it as aa:bb:cc:dd:ee:ff", text));
  };
  if (text.size() != 17) return bad();
  for (size_t i = 0; i < 6; ++i) {
    const int hi = HexDigit(text[3 * i]);
    const int lo = HexDigit(text[3 * i + 1]);
    if (hi < 0 || lo < 0) return bad();
    if (i < 5 && text[3 * i + 2] != ':' && text[3 * i + 2] != '-') return bad();
    mac[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return mac;
}

std::string FormatMac(const MacAddress& mac) {
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                         mac[5]);
}

uint16_t InternetChecksum(const uint8_t* data, size_t len, uint64_t initial) noexcept {
  return Fold(SumWords(data, len, initial));
}

void WriteFrameHeaders(const FrameSpec& spec, uint8_t* frame) noexcept {
  std::memcpy(frame, spec.dst_mac.data(), 6);
  std::memcpy(frame + 6, spec.src_mac.data(), 6);
  StoreBe16(frame + 12, kEtherTypeIpv4);

  uint8_t* ip = frame + kIpOff;
  ip[0] = 0x45;  // version 4, 5-word header (no options)
  ip[1] = spec.tos;
  StoreBe16(ip + 2, static_cast<uint16_t>(kIpv4HeaderSize + kUdpHeaderSize + spec.payload_len));
  StoreBe16(ip + 4, 0);       // id: FinishFrame
  StoreBe16(ip + 6, 0x4000);  // DF: the frame is never larger than the MTU (checked at start)
  ip[8] = spec.ttl;
  ip[9] = kProtoUdp;
  StoreBe16(ip + 10, 0);  // checksum: FinishFrame
  StoreBe32(ip + 12, spec.src_ip);
  StoreBe32(ip + 16, spec.dst_ip);

  uint8_t* udp = frame + kUdpOff;
  StoreBe16(udp, spec.src_port);
  StoreBe16(udp + 2, spec.dst_port);
  StoreBe16(udp + 4, static_cast<uint16_t>(kUdpHeaderSize + spec.payload_len));
  StoreBe16(udp + 6, 0);
}

void FinishFrame(uint8_t* frame, size_t frame_len, uint16_t ip_id, bool udp_checksum) noexcept {
  uint8_t* ip = frame + kIpOff;
  StoreBe16(ip + 4, ip_id);
  StoreBe16(ip + 10, 0);
  StoreBe16(ip + 10, InternetChecksum(ip, kIpv4HeaderSize));

  uint8_t* udp = frame + kUdpOff;
  StoreBe16(udp + 6, 0);
  if (!udp_checksum) return;
  const size_t udp_len = frame_len - kUdpOff;
  // Pseudo-header: source, destination, protocol, UDP length (RFC 768).
  uint64_t pseudo = SumWords(ip + 12, 8, 0) + kProtoUdp + udp_len;
  uint16_t sum = InternetChecksum(udp, udp_len, pseudo);
  if (sum == 0) sum = 0xffff;  // a computed 0 is sent as all ones; 0 means "none"
  StoreBe16(udp + 6, sum);
}

void FinishGsoFrame(uint8_t* frame, size_t payload_total, uint16_t ip_id) noexcept {
  const auto udp_len = static_cast<uint16_t>(kUdpHeaderSize + payload_total);
  uint8_t* ip = frame + kIpOff;
  StoreBe16(ip + 2, static_cast<uint16_t>(kIpv4HeaderSize + udp_len));
  StoreBe16(ip + 4, ip_id);
  StoreBe16(ip + 10, 0);
  StoreBe16(ip + 10, InternetChecksum(ip, kIpv4HeaderSize));
  uint8_t* udp = frame + kUdpOff;
  StoreBe16(udp + 4, udp_len);
  StoreBe16(udp + 6, FoldSum(SumWords(ip + 12, 8, 0) + kProtoUdp + udp_len));
}

}  // namespace mcr::gen
