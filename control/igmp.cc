#include "control/igmp.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace mcr::control::igmp {
namespace {

uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // stays in network byte order
}
void Store32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void Store16(uint8_t* p, uint16_t host_order) {
  p[0] = static_cast<uint8_t>(host_order >> 8);
  p[1] = static_cast<uint8_t>(host_order);
}

void FillChecksum(std::vector<uint8_t>& msg, size_t offset) {
  msg[offset] = msg[offset + 1] = 0;
  const uint16_t sum = Checksum(msg.data(), msg.size());
  Store16(&msg[offset], sum);
}

}  // namespace

uint32_t AllHosts() { return htonl(0xE0000001); }
uint32_t AllRouters() { return htonl(0xE0000002); }
uint32_t AllV3Routers() { return htonl(0xE0000016); }

uint16_t Checksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(data[i]) << 8 | data[i + 1];
  if (len % 2) sum += uint32_t(data[len - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint32_t DecodeCode(uint8_t code) {
  if (code < 128) return code;
  const uint32_t mant = code & 0x0f, exp = (code >> 4) & 0x07;
  return (mant | 0x10) << (exp + 3);
}

ParseResult ParseQuery(const uint8_t* packet, size_t len, Query* out) {
  if (len < 20) return ParseResult::kTruncated;
  if ((packet[0] >> 4) != 4 || packet[9] != IPPROTO_IGMP) return ParseResult::kNotIgmp;
  const size_t ihl = size_t(packet[0] & 0x0f) * 4;
  const size_t total = size_t(packet[2]) << 8 | packet[3];
  if (ihl < 20 || total < ihl || total > len) return ParseResult::kTruncated;
  // Fragments cannot hold IGMP a host acts on (RFC 3376 messages fit one packet).
  if ((packet[6] & 0x3f) != 0 || packet[7] != 0) return ParseResult::kNotIgmp;
  const uint8_t* m = packet + ihl;
  const size_t mlen = total - ihl;
  if (mlen < 8) return ParseResult::kTruncated;
  if (Checksum(m, mlen) != 0) return ParseResult::kBadChecksum;
  if (m[0] != kQuery) return ParseResult::kOtherMessage;

  Query q;
  q.group = Load32(m + 4);
  if (mlen == 8) {
    // Version 1 has no max response time (0); its hosts answer within 10 s.
    q.version = m[1] == 0 ? Version::kV1 : Version::kV2;
    q.max_response_ms = m[1] == 0 ? 10'000 : uint32_t(m[1]) * 100;
  } else if (mlen < 12) {
    return ParseResult::kBadLength;
  } else {
    q.version = Version::kV3;
    q.max_response_ms = DecodeCode(m[1]) * 100;
    const size_t n = size_t(m[10]) << 8 | m[11];
    if (mlen < 12 + 4 * n) return ParseResult::kTruncated;
    q.sources.reserve(n);
    for (size_t i = 0; i < n; ++i) q.sources.push_back(Load32(m + 12 + 4 * i));
  }
  *out = std::move(q);
  return ParseResult::kIsQuery;
}

std::vector<uint32_t> GroupsLeft(const uint8_t* packet, size_t len,
                                 std::vector<uint32_t>* narrowed) {
  std::vector<uint32_t> out;
  if (len < 20 || (packet[0] >> 4) != 4 || packet[9] != IPPROTO_IGMP) return out;
  const size_t ihl = size_t(packet[0] & 0x0f) * 4;
  const size_t total = size_t(packet[2]) << 8 | packet[3];
  if (ihl < 20 || total < ihl + 8 || total > len) return out;
  const uint8_t* m = packet + ihl;
  const size_t mlen = total - ihl;
  if (Checksum(m, mlen) != 0) return out;
  if (m[0] == kV2Leave) {
    out.push_back(Load32(m + 4));
    return out;
  }
  if (m[0] != kV3Report) return out;
  const size_t records = size_t(m[6]) << 8 | m[7];
  size_t at = 8;
  for (size_t i = 0; i < records; ++i) {
    if (at + 8 > mlen) {
      if (narrowed != nullptr) narrowed->clear();
      return {};
    }
    const uint8_t type = m[at];
    const size_t nsrc = size_t(m[at + 2]) << 8 | m[at + 3];
    const size_t size = 8 + size_t(m[at + 1]) * 4 + nsrc * 4;  // aux data in 32-bit words
    if (at + size > mlen) {
      if (narrowed != nullptr) narrowed->clear();
      return {};
    }
    if ((type == kChangeToInclude && nsrc == 0) || type == kBlockOldSources) {
      out.push_back(Load32(m + at + 4));
    } else if (type == kChangeToInclude && narrowed != nullptr) {
      narrowed->push_back(Load32(m + at + 4));
    }
    at += size;
  }
  return out;
}

std::vector<std::vector<uint8_t>> BuildV3Reports(const std::vector<Record>& records,
                                                 size_t max_bytes) {
  constexpr size_t kHeader = 8, kRecordHeader = 8;
  const size_t max_sources =
      max_bytes > kHeader + kRecordHeader ? (max_bytes - kHeader - kRecordHeader) / 4 : 1;
  std::vector<std::vector<uint8_t>> reports;
  std::vector<uint8_t> cur;
  uint16_t count = 0;
  const auto finish = [&] {
    if (count == 0) return;
    Store16(&cur[6], count);
    FillChecksum(cur, 2);
    reports.push_back(std::move(cur));
    cur.clear();
    count = 0;
  };
  const auto add = [&](RecordType type, uint32_t group, const uint32_t* src, size_t n) {
    const size_t size = kRecordHeader + 4 * n;
    if (count != 0 && (cur.size() + size > max_bytes || count == 0xffff)) finish();
    if (count == 0) cur.assign({kV3Report, 0, 0, 0, 0, 0, 0, 0});
    const size_t at = cur.size();
    cur.resize(at + size);
    cur[at] = type;
    cur[at + 1] = 0;  // aux data length
    Store16(&cur[at + 2], static_cast<uint16_t>(n));
    Store32(&cur[at + 4], group);
    for (size_t i = 0; i < n; ++i) Store32(&cur[at + 8 + 4 * i], src[i]);
    ++count;
  };
  for (const Record& r : records) {
    if (r.sources.empty()) {
      add(r.type, r.group, nullptr, 0);
      continue;
    }
    for (size_t off = 0; off < r.sources.size(); off += max_sources) {
      add(r.type, r.group, r.sources.data() + off, std::min(max_sources, r.sources.size() - off));
    }
  }
  finish();
  return reports;
}

std::vector<uint8_t> BuildV2Message(uint8_t type, uint32_t group) {
  std::vector<uint8_t> m{type, 0, 0, 0, 0, 0, 0, 0};
  Store32(&m[4], group);
  FillChecksum(m, 2);
  return m;
}

}  // namespace mcr::control::igmp
