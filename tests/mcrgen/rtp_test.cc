#include "bench/mcrgen/rtp.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "bench/mcrgen/bytes.h"
#include "bench/mcrgen/payload.h"

namespace mcr::gen {
namespace {

TEST(RtpTest, HeaderBytesFollowRfc3550) {
  RtpHeader h;
  h.seq = 0xBEEF;
  h.timestamp = 0x01020304;
  h.ssrc = 0xA0B0C0D0;
  uint8_t buf[kRtpHeaderSize];
  EncodeRtpHeader(h, buf);
  EXPECT_EQ(buf[0], 0x80);  // V=2, P=0, X=0, CC=0
  EXPECT_EQ(buf[1], 96);    // M=0, PT=96
  EXPECT_EQ(LoadBe16(buf + 2), 0xBEEF);
  EXPECT_EQ(LoadBe32(buf + 4), 0x01020304u);
  EXPECT_EQ(LoadBe32(buf + 8), 0xA0B0C0D0u);
  RtpHeader back;
  ASSERT_TRUE(DecodeRtpHeader(buf, sizeof(buf), &back));
  EXPECT_EQ(back.seq, h.seq);
  EXPECT_EQ(back.timestamp, h.timestamp);
  EXPECT_EQ(back.ssrc, h.ssrc);
  EXPECT_EQ(back.payload_type, 96);
  EXPECT_FALSE(back.marker);
}

TEST(RtpTest, RejectsOtherVersionsAndShapes) {
  uint8_t buf[kRtpHeaderSize] = {};
  EncodeRtpHeader({}, buf);
  RtpHeader h;
  EXPECT_FALSE(DecodeRtpHeader(buf, kRtpHeaderSize - 1, &h));
  buf[0] = 0x40;  // version 1
  EXPECT_FALSE(DecodeRtpHeader(buf, sizeof(buf), &h));
  buf[0] = 0x90;  // extension bit
  EXPECT_FALSE(DecodeRtpHeader(buf, sizeof(buf), &h));
  buf[0] = 0x81;  // one CSRC
  EXPECT_FALSE(DecodeRtpHeader(buf, sizeof(buf), &h));
}

TEST(RtpTest, TimestampIs90kHzAndExact) {
  EXPECT_EQ(RtpTimestamp90k(0), 0u);
  EXPECT_EQ(RtpTimestamp90k(1'000'000'000), 90000u);
  EXPECT_EQ(RtpTimestamp90k(11'111), 0u);  // 0.99999 ticks
  EXPECT_EQ(RtpTimestamp90k(11'112), 1u);
  // 2023-11-14: ns * 90000 overflows 64 bits; the result must still be exact modulo 2^32.
  const int64_t t = 1'700'000'000'000'000'000;
  const uint64_t ticks = 1'700'000'000ULL * 90000;  // whole seconds only
  EXPECT_EQ(RtpTimestamp90k(t), static_cast<uint32_t>(ticks));
}

TEST(RtpTest, DatagramStartsWithRtpThenMcrgenHeader) {
  std::vector<uint8_t> buf(1316);
  const PayloadHeader h{3, 70000, 1'000'000'000};
  EncodeDatagram(h, /*rtp=*/true, buf.data(), buf.size());
  RtpHeader r;
  ASSERT_TRUE(DecodeRtpHeader(buf.data(), buf.size(), &r));
  EXPECT_EQ(r.seq, 70000 - 65536);  // low 16 bits
  EXPECT_EQ(r.ssrc, 3u);
  EXPECT_EQ(r.timestamp, 90000u);
  EXPECT_EQ(LoadBe32(&buf[kRtpHeaderSize]), kPayloadMagic);
  EXPECT_EQ(LoadBe32(&buf[kRtpHeaderSize + 24]), 1316u - kRtpHeaderSize);
  ParsedDatagram d;
  ASSERT_EQ(ParseDatagram(buf.data(), buf.size(), &d), PayloadStatus::kOk);
  EXPECT_TRUE(d.rtp);
  EXPECT_EQ(d.header.seq, 70000u);
  EXPECT_EQ(d.header.stream, 3u);
}

TEST(RtpTest, SequenceWrapsAt65536) {
  std::vector<uint8_t> buf(MinDatagramSize(true));
  for (uint64_t seq : {65534ULL, 65535ULL, 65536ULL, 65537ULL, (1ULL << 40) + 5}) {
    EncodeDatagram({0, seq, 0}, true, buf.data(), buf.size());
    EXPECT_EQ(LoadBe16(&buf[2]), static_cast<uint16_t>(seq & 0xffff)) << seq;
    ParsedDatagram d;
    EXPECT_EQ(ParseDatagram(buf.data(), buf.size(), &d), PayloadStatus::kOk) << seq;
    EXPECT_EQ(d.header.seq, seq);
  }
}

TEST(RtpTest, InconsistentRtpHeaderIsBadRtp) {
  std::vector<uint8_t> good(200);
  EncodeDatagram({2, 9, 5'000'000'000}, true, good.data(), good.size());
  ParsedDatagram d;
  const auto parse = [&](std::vector<uint8_t> b) { return ParseDatagram(b.data(), b.size(), &d); };
  auto b = good;
  b[1] = 97;  // payload type
  EXPECT_EQ(parse(b), PayloadStatus::kBadRtp);
  b = good;
  b[1] |= 0x80;  // marker
  EXPECT_EQ(parse(b), PayloadStatus::kBadRtp);
  b = good;
  b[3] ^= 1;  // RTP seq
  EXPECT_EQ(parse(b), PayloadStatus::kBadRtp);
  b = good;
  b[7] ^= 1;  // timestamp
  EXPECT_EQ(parse(b), PayloadStatus::kBadRtp);
  b = good;
  b[11] ^= 1;  // SSRC
  EXPECT_EQ(parse(b), PayloadStatus::kBadRtp);
  b = good;
  b[0] = 0x40;  // version 1
  EXPECT_EQ(parse(b), PayloadStatus::kBadRtp);
  b = good;
  b[100] ^= 1;  // the mcrgen part is still checked
  EXPECT_EQ(parse(b), PayloadStatus::kBadPattern);
  EXPECT_EQ(parse(good), PayloadStatus::kOk);
}

}  // namespace
}  // namespace mcr::gen
