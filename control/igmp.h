#pragma once
// IGMP messages as a host sends and receives them (RFC 1112, 2236, 3376): queries parsed from the
// IPv4 packets a packet socket captures, reports built as IGMP payloads for a raw IGMP socket.
// Pure functions over bytes; no sockets. Addresses are in network byte order throughout.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mcr::control::igmp {

/// IGMP message types.
inline constexpr uint8_t kQuery = 0x11;
inline constexpr uint8_t kV1Report = 0x12;
inline constexpr uint8_t kV2Report = 0x16;
inline constexpr uint8_t kV2Leave = 0x17;
inline constexpr uint8_t kV3Report = 0x22;

/// Destinations, network byte order: all hosts (224.0.0.1), all routers (224.0.0.2, where IGMPv2
/// leaves go), all IGMPv3 routers (224.0.0.22, where version 3 reports go).
uint32_t AllHosts();
uint32_t AllRouters();
uint32_t AllV3Routers();

/// The protocol version a query is, by its length and max response code (RFC 3376 section 7.1).
enum class Version : uint8_t { kV1 = 1, kV2 = 2, kV3 = 3 };

struct Query {
  Version version = Version::kV3;
  /// 0 for a general query; otherwise the group asked about.
  uint32_t group = 0;
  /// How long a host may wait before answering, in milliseconds (10 s for version 1).
  uint32_t max_response_ms = 0;
  /// Version 3 only: the sources asked about (a group-and-source-specific query).
  std::vector<uint32_t> sources;
};

enum class ParseResult : uint8_t {
  kIsQuery,       // *out filled
  kOtherMessage,  // a well-formed IGMP message that is not a query (another host's report)
  kNotIgmp,       // not an IPv4 packet carrying IGMP
  kTruncated,     // shorter than its headers say
  kBadChecksum,   // IGMP checksum wrong
  kBadLength,     // a query of 9-11 bytes: ignored, as RFC 3376 section 7.1 says
};

/// Parses one IPv4 packet (starting at the IP header) that should carry IGMP.
ParseResult ParseQuery(const uint8_t* packet, size_t len, Query* out);

/// The groups a membership report or leave in `packet` (an IPv4 packet, from the IP header) gives
/// up: a version 2 leave's group; in a version 3 report, each TO_IN({}) record's group and each
/// BLOCK record's group. With `narrowed`, also the groups of TO_IN records that name sources
/// (the sender now wants only those). Empty for anything else, malformed or not. Used to see
/// the kernel leave a group on behalf of a local program while mcrd still wants it.
std::vector<uint32_t> GroupsLeft(const uint8_t* packet, size_t len,
                                 std::vector<uint32_t>* narrowed = nullptr);

/// A version 3 group record (RFC 3376 section 4.2.4).
enum RecordType : uint8_t {
  kModeIsInclude = 1,
  kModeIsExclude = 2,
  kChangeToInclude = 3,
  kChangeToExclude = 4,
  kAllowNewSources = 5,
  kBlockOldSources = 6,
};
struct Record {
  RecordType type = kModeIsExclude;
  uint32_t group = 0;
  std::vector<uint32_t> sources;
};

/// Version 3 membership reports carrying `records`, each report at most `max_bytes` of IGMP (the
/// records split across as many reports as needed; one record never spans two). A record whose
/// sources alone exceed `max_bytes` is split into several records of the same type. Empty
/// `records`: no reports.
std::vector<std::vector<uint8_t>> BuildV3Reports(const std::vector<Record>& records,
                                                 size_t max_bytes);

/// An 8-byte version 1 or 2 message: kV1Report, kV2Report or kV2Leave for `group`.
std::vector<uint8_t> BuildV2Message(uint8_t type, uint32_t group);

/// The Internet checksum (RFC 1071) of `len` bytes.
uint16_t Checksum(const uint8_t* data, size_t len);

/// A version 3 max response code (or QQIC) as tenths of a second (RFC 3376 section 4.1.1).
uint32_t DecodeCode(uint8_t code);

}  // namespace mcr::control::igmp
