#pragma once
// RTP fixed header (RFC 3550 section 5.1) as mcrgen sends it with --rtp: version 2, no padding,
// no extension, no CSRCs, marker clear, payload type 96 (first dynamic type). The 12 bytes come
// first in the UDP payload and the mcrgen payload header follows them, so RTP-aware equipment on
// the path (and relays that look at RTP) see a well-formed stream while the receiver still gets
// the 64-bit sequence number and timestamp it needs. Pure functions: any thread.

#include <cstddef>
#include <cstdint>

namespace mcr::gen {

inline constexpr size_t kRtpHeaderSize = 12;
inline constexpr uint8_t kRtpVersion = 2;
/// The payload type mcrgen uses: 96 is the first dynamic payload type, so no receiver mistakes the
/// stream for a standard codec.
inline constexpr uint8_t kRtpPayloadType = 96;
/// RTP clock rate of video payloads (RFC 3551), used for the timestamp field.
inline constexpr uint32_t kRtpClockHz = 90000;

struct RtpHeader {
  uint8_t payload_type = kRtpPayloadType;
  bool marker = false;
  uint16_t seq = 0;        // low 16 bits of the mcrgen sequence number: wraps every 65536 packets
  uint32_t timestamp = 0;  // 90 kHz units, see RtpTimestamp90k
  uint32_t ssrc = 0;       // the mcrgen stream id
};

/// Writes the 12-byte header to buf[0, 12).
void EncodeRtpHeader(const RtpHeader& h, uint8_t* buf) noexcept;

/// Reads a 12-byte header. Returns false when len < 12 or buf is not a version-2 header without
/// padding, extension and CSRCs (the only shape mcrgen sends).
bool DecodeRtpHeader(const uint8_t* buf, size_t len, RtpHeader* out) noexcept;

/// CLOCK_REALTIME nanoseconds converted to the 90 kHz RTP clock, truncated to 32 bits. Exact
/// (128-bit intermediate), so the receiver can recompute it from the header's send timestamp.
uint32_t RtpTimestamp90k(int64_t realtime_ns) noexcept;

}  // namespace mcr::gen
