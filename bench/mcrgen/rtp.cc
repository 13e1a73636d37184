#include "bench/mcrgen/rtp.h"

#include "bench/mcrgen/bytes.h"

namespace mcr::gen {

void EncodeRtpHeader(const RtpHeader& h, uint8_t* buf) noexcept {
  buf[0] = kRtpVersion << 6;  // P=0, X=0, CC=0
  buf[1] = static_cast<uint8_t>((h.marker ? 0x80 : 0x00) | (h.payload_type & 0x7f));
  StoreBe16(buf + 2, h.seq);
  StoreBe32(buf + 4, h.timestamp);
  StoreBe32(buf + 8, h.ssrc);
}

bool DecodeRtpHeader(const uint8_t* buf, size_t len, RtpHeader* out) noexcept {
  if (len < kRtpHeaderSize) return false;
  // Version 2 with P, X and CC all zero: exactly the first byte 0x80.
  if (buf[0] != (kRtpVersion << 6)) return false;
  out->marker = (buf[1] & 0x80) != 0;
  out->payload_type = buf[1] & 0x7f;
  out->seq = LoadBe16(buf + 2);
  out->timestamp = LoadBe32(buf + 4);
  out->ssrc = LoadBe32(buf + 8);
  return true;
}

uint32_t RtpTimestamp90k(int64_t realtime_ns) noexcept {
  // ns * 90000 / 1e9 overflows 64 bits for today's dates; 128 bits keeps it exact.
  const unsigned __int128 ticks =
      static_cast<unsigned __int128>(static_cast<uint64_t>(realtime_ns)) * kRtpClockHz /
      1'000'000'000u;
  return static_cast<uint32_t>(ticks);
}

}  // namespace mcr::gen
