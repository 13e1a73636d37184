#include "bench/mcrgen/payload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "bench/mcrgen/bytes.h"

namespace mcr::gen {
namespace {

std::vector<uint8_t> Make(uint32_t stream, uint64_t seq, int64_t t, size_t len, bool rtp = false) {
  std::vector<uint8_t> buf(len);
  EncodeDatagram({stream, seq, t}, rtp, buf.data(), buf.size());
  return buf;
}

PayloadStatus Parse(const std::vector<uint8_t>& buf, ParsedDatagram* out = nullptr) {
  ParsedDatagram d;
  const PayloadStatus st = ParseDatagram(buf.data(), buf.size(), &d);
  if (out) *out = d;
  return st;
}

TEST(PayloadTest, HeaderLayoutIsBigEndianAtDocumentedOffsets) {
  const auto buf = Make(0x01020304, 0x1122334455667788ULL, 0x0A0B0C0D0E0F1011LL, 100);
  EXPECT_EQ(LoadBe32(&buf[0]), kPayloadMagic);
  EXPECT_EQ(buf[0], 'M');
  EXPECT_EQ(buf[3], 'G');
  EXPECT_EQ(LoadBe32(&buf[4]), 0x01020304u);
  EXPECT_EQ(LoadBe64(&buf[8]), 0x1122334455667788ULL);
  EXPECT_EQ(LoadBe64(&buf[16]), 0x0A0B0C0D0E0F1011ULL);
  EXPECT_EQ(LoadBe32(&buf[24]), 100u);  // length covers the whole datagram
}

TEST(PayloadTest, PatternIsLittleEndianWordsOfStreamAndSeq) {
  const auto buf = Make(3, 77, 5, kPayloadHeaderSize + 8 * 10 + 5);
  for (uint64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(LoadLe64(&buf[kPayloadHeaderSize + 8 * i]), PatternWord(3, 77, i)) << i;
  }
  // The 5 tail bytes are the low bytes of the next word.
  const uint64_t tail = PatternWord(3, 77, 10);
  for (int b = 0; b < 5; ++b) {
    EXPECT_EQ(buf[kPayloadHeaderSize + 80 + b], static_cast<uint8_t>(tail >> (8 * b)));
  }
  EXPECT_NE(PatternWord(3, 77, 0), PatternWord(3, 78, 0));
  EXPECT_NE(PatternWord(3, 77, 0), PatternWord(4, 77, 0));
}

TEST(PayloadTest, RoundTripsEverySizeFromHeaderToJumbo) {
  for (size_t len = kPayloadHeaderSize; len <= 300; ++len) {
    const auto buf = Make(7, len * 1000 + 1, 123456789, len);
    ParsedDatagram d;
    ASSERT_EQ(Parse(buf, &d), PayloadStatus::kOk) << len;
    EXPECT_EQ(d.header.stream, 7u);
    EXPECT_EQ(d.header.seq, len * 1000 + 1);
    EXPECT_EQ(d.header.send_time_ns, 123456789);
    EXPECT_FALSE(d.rtp);
  }
  for (size_t len : {1200u, 1472u, 8972u}) {
    EXPECT_EQ(Parse(Make(0, UINT64_MAX, INT64_MAX, len)), PayloadStatus::kOk) << len;
  }
}

TEST(PayloadTest, EveryBitFlipIsDetectedAndClassified) {
  const auto good = Make(5, 1000, 1'700'000'000'123'456'789LL, 203);
  for (size_t byte = 0; byte < good.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bad = good;
      bad[byte] ^= static_cast<uint8_t>(1u << bit);
      const PayloadStatus st = Parse(bad);
      SCOPED_TRACE(testing::Message() << "byte " << byte << " bit " << bit);
      if (byte < 4) {
        EXPECT_EQ(st, PayloadStatus::kBadMagic);
      } else if (byte < 16) {  // stream or seq: the expected pattern changes with them
        EXPECT_EQ(st, PayloadStatus::kBadPattern);
      } else if (byte < 24) {  // send time: only the checksum covers it
        EXPECT_EQ(st, PayloadStatus::kBadChecksum);
      } else if (byte < 28) {
        EXPECT_EQ(st, PayloadStatus::kBadLength);
      } else if (byte < 32) {
        EXPECT_EQ(st, PayloadStatus::kBadChecksum);
      } else {
        EXPECT_EQ(st, PayloadStatus::kBadPattern);
      }
    }
  }
}

TEST(PayloadTest, SwappedWordsAndForeignPayloadsAreDetected) {
  auto buf = Make(1, 2, 3, 200);
  std::swap_ranges(buf.begin() + 40, buf.begin() + 48, buf.begin() + 48);
  EXPECT_EQ(Parse(buf), PayloadStatus::kBadPattern);
  // The body of another packet under this packet's header.
  auto mixed = Make(1, 2, 3, 200);
  const auto other = Make(1, 3, 3, 200);
  std::copy(other.begin() + kPayloadHeaderSize, other.end(), mixed.begin() + kPayloadHeaderSize);
  EXPECT_EQ(Parse(mixed), PayloadStatus::kBadPattern);
}

TEST(PayloadTest, TruncationPaddingAndGarbage) {
  auto buf = Make(1, 2, 3, 200);
  auto cut = buf;
  cut.resize(150);
  EXPECT_EQ(Parse(cut), PayloadStatus::kBadLength);
  auto padded = buf;
  padded.push_back(0);
  EXPECT_EQ(Parse(padded), PayloadStatus::kBadLength);
  cut.resize(20);
  EXPECT_EQ(Parse(cut), PayloadStatus::kShort);
  EXPECT_EQ(Parse(std::vector<uint8_t>(200, 0xAB)), PayloadStatus::kBadMagic);
  EXPECT_EQ(Parse(std::vector<uint8_t>{}), PayloadStatus::kShort);
}

TEST(PayloadTest, StatusNamesAreStable) {
  EXPECT_STREQ(PayloadStatusName(PayloadStatus::kOk), "ok");
  EXPECT_STREQ(PayloadStatusName(PayloadStatus::kBadMagic), "bad_magic");
  EXPECT_STREQ(PayloadStatusName(PayloadStatus::kBadChecksum), "bad_checksum");
  EXPECT_STREQ(PayloadStatusName(PayloadStatus::kBadPattern), "bad_pattern");
  EXPECT_STREQ(PayloadStatusName(PayloadStatus::kBadRtp), "bad_rtp");
  EXPECT_STREQ(PayloadStatusName(PayloadStatus::kCount), "unknown");
}

}  // namespace
}  // namespace mcr::gen
