#pragma once
// HOT PATH (EncodeDatagram runs for every packet sent, ParseDatagram for every packet received):
// no allocation, no exceptions, no syscalls.
//
// Wire format of an mcrgen datagram (the UDP payload):
//
//   [RTP header, 12 bytes, only with --rtp]
//   offset  size  field (big-endian)
//        0     4  magic 0x4D435247 ("MCRG")
//        4     4  stream id
//        8     8  sequence number of this packet within its stream (starts at 0)
//       16     8  send time, CLOCK_REALTIME ns (one clock for every namespace of a host)
//       24     4  length: bytes from the magic to the end of the datagram (detects truncation)
//       28     4  checksum of the stream/seq/time/length fields and every byte after the header
//       32     .  pattern: 64-bit words (little-endian) derived from (stream, seq), last one cut
//
// The checksum catches any change of the header or the pattern; the pattern additionally tells
// "payload bytes changed" (bad_pattern) from "header changed" (bad_checksum). Both are cheap
// enough for a million packets per second: one pass, four independent multiply-rotate lanes.
// Pure functions of their arguments: any thread.

#include <cstddef>
#include <cstdint>

namespace mcr::gen {

/// "MCRG". Its first byte 0x4D has top bits 01, never the 10 of an RTP version-2 header, which is
/// how the receiver tells plain and RTP datagrams apart without being told.
inline constexpr uint32_t kPayloadMagic = 0x4D435247;
inline constexpr size_t kPayloadHeaderSize = 32;
/// Largest UDP payload that fits a 9000-byte MTU without fragmentation (9000 - 20 - 8).
inline constexpr size_t kMaxPayloadSize = 8972;

struct PayloadHeader {
  uint32_t stream = 0;
  uint64_t seq = 0;
  int64_t send_time_ns = 0;  // CLOCK_REALTIME
};

/// Outcome of parsing a received datagram. Checks run in this order; a datagram is classified by
/// the first one it fails.
enum class PayloadStatus : uint8_t {
  kOk,
  kShort,        // shorter than the mcrgen header (plus the RTP header if it starts with one)
  kBadMagic,     // no magic at offset 0 nor at offset 12 (after an RTP header): not mcrgen traffic
  kBadLength,    // length field differs from the datagram's size: truncated or padded on the way
  kBadPattern,   // bytes after the header differ from the pattern of the header's (stream, seq)
  kBadChecksum,  // pattern intact but checksum wrong: the header or the checksum field changed
  kBadRtp,       // RTP header inconsistent with the mcrgen header (version, PT, seq, SSRC, time)
  kCount
};

/// Stable snake_case name ("bad_magic", ...) used as a JSON key.
const char* PayloadStatusName(PayloadStatus s) noexcept;

/// Smallest datagram mcrgen can build: the header, plus the RTP header with --rtp.
constexpr size_t MinDatagramSize(bool rtp) noexcept { return kPayloadHeaderSize + (rtp ? 12 : 0); }

/// Writes a complete datagram of `len` bytes (len >= MinDatagramSize(rtp)) to buf.
void EncodeDatagram(const PayloadHeader& h, bool rtp, uint8_t* buf, size_t len) noexcept;

struct ParsedDatagram {
  PayloadHeader header;
  bool rtp = false;  // the datagram started with an RTP header
};

/// Validates buf[0, len) and fills *out when the result is kOk (out->rtp is set from kBadLength
/// on, out->header is meaningful only for kOk).
PayloadStatus ParseDatagram(const uint8_t* buf, size_t len, ParsedDatagram* out) noexcept;

/// The pattern word at `index` (0 = first word after the header) of packet (stream, seq). Exposed
/// for tests and for anyone writing a compatible generator.
uint64_t PatternWord(uint32_t stream, uint64_t seq, uint64_t index) noexcept;

}  // namespace mcr::gen
