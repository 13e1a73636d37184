#include "bench/mcrgen/frame.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "bench/mcrgen/bytes.h"
#include "bench/mcrgen/payload.h"

namespace mcr::gen {
namespace {

TEST(FrameTest, MulticastMacKeepsLow23Bits) {
  EXPECT_EQ(FormatMac(MulticastMac(0xEF010101)), "01:00:5e:01:01:01");  // 239.1.1.1
  EXPECT_EQ(FormatMac(MulticastMac(0xEF810101)), "01:00:5e:01:01:01");  // 239.129.1.1: same
  EXPECT_EQ(FormatMac(MulticastMac(0xE00000FB)), "01:00:5e:00:00:fb");  // 224.0.0.251
  EXPECT_EQ(FormatMac(MulticastMac(0xEFFFFFFF)), "01:00:5e:7f:ff:ff");
}

TEST(FrameTest, ParseMac) {
  absl::StatusOr<MacAddress> m = ParseMac("02-AB-cd-00-11-ff");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(FormatMac(*m), "02:ab:cd:00:11:ff");
  EXPECT_FALSE(ParseMac("02:ab:cd:00:11").ok());
  EXPECT_FALSE(ParseMac("02:ab:cd:00:11:fg").ok());
  EXPECT_FALSE(ParseMac("02:ab:cd:00:11:ff:").ok());
  EXPECT_FALSE(ParseMac("02.ab.cd.00.11.ff").ok());
}

TEST(FrameTest, Ipv4ChecksumOfTheTextbookHeader) {
  // RFC 1071-style example (Wikipedia "Internet checksum"): expected checksum 0xb861.
  const uint8_t hdr[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                           0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(InternetChecksum(hdr, sizeof(hdr)), 0xb861);
  uint8_t with[20];
  std::copy(hdr, hdr + 20, with);
  with[10] = 0xb8;
  with[11] = 0x61;
  EXPECT_EQ(InternetChecksum(with, sizeof(with)), 0);  // a correct header sums to zero
}

TEST(FrameTest, OddLengthChecksumPadsWithZero) {
  const uint8_t odd[3] = {0x12, 0x34, 0x56};
  const uint8_t even[4] = {0x12, 0x34, 0x56, 0x00};
  EXPECT_EQ(InternetChecksum(odd, 3), InternetChecksum(even, 4));
}

class BuiltFrame : public testing::Test {
 protected:
  void Build(uint16_t payload_len, bool udp_checksum) {
    spec_.src_mac = {0x02, 0, 0, 0, 0, 1};
    spec_.dst_mac = MulticastMac(0xEF010101);
    spec_.src_ip = 0xC6336407;  // 198.51.100.7
    spec_.dst_ip = 0xEF010101;  // 239.1.1.1
    spec_.src_port = 4000;
    spec_.dst_port = 5000;
    spec_.ttl = 9;
    spec_.tos = 46 << 2;
    spec_.payload_len = payload_len;
    frame_.assign(kFrameHeadersSize + payload_len, 0);
    WriteFrameHeaders(spec_, frame_.data());
    EncodeDatagram({1, 2, 3}, false, frame_.data() + kFrameHeadersSize, payload_len);
    FinishFrame(frame_.data(), frame_.size(), 0x1234, udp_checksum);
  }
  const uint8_t* ip() const { return frame_.data() + kEthHeaderSize; }
  const uint8_t* udp() const { return ip() + kIpv4HeaderSize; }

  FrameSpec spec_;
  std::vector<uint8_t> frame_;
};

TEST_F(BuiltFrame, HeadersCarryTheSpec) {
  Build(1200, true);
  EXPECT_EQ(FormatMac({frame_[0], frame_[1], frame_[2], frame_[3], frame_[4], frame_[5]}),
            "01:00:5e:01:01:01");
  EXPECT_EQ(frame_[6], 0x02);
  EXPECT_EQ(LoadBe16(&frame_[12]), 0x0800);
  EXPECT_EQ(ip()[0], 0x45);
  EXPECT_EQ(ip()[1], 46 << 2);
  EXPECT_EQ(LoadBe16(ip() + 2), 1228);  // 20 + 8 + 1200
  EXPECT_EQ(LoadBe16(ip() + 4), 0x1234);
  EXPECT_EQ(LoadBe16(ip() + 6), 0x4000);  // DF, no fragment offset
  EXPECT_EQ(ip()[8], 9);
  EXPECT_EQ(ip()[9], 17);
  EXPECT_EQ(LoadBe32(ip() + 12), 0xC6336407u);
  EXPECT_EQ(LoadBe32(ip() + 16), 0xEF010101u);
  EXPECT_EQ(InternetChecksum(ip(), kIpv4HeaderSize), 0);  // header checksum valid
  EXPECT_EQ(LoadBe16(udp()), 4000);
  EXPECT_EQ(LoadBe16(udp() + 2), 5000);
  EXPECT_EQ(LoadBe16(udp() + 4), 1208);
}

TEST_F(BuiltFrame, UdpChecksumVerifiesOverThePseudoHeader) {
  for (uint16_t len : {32, 33, 1200, 1471}) {
    Build(len, true);
    ASSERT_NE(LoadBe16(udp() + 6), 0);
    const uint16_t udp_len = static_cast<uint16_t>(kUdpHeaderSize + len);
    // Receiver's check: the sum over pseudo-header + UDP header + payload is all ones.
    uint8_t pseudo[12] = {};
    std::copy(ip() + 12, ip() + 20, pseudo);
    pseudo[9] = 17;
    StoreBe16(pseudo + 10, udp_len);
    std::vector<uint8_t> all(pseudo, pseudo + 12);
    all.insert(all.end(), udp(), udp() + udp_len);
    EXPECT_EQ(InternetChecksum(all.data(), all.size()), 0) << len;
  }
}

TEST_F(BuiltFrame, UdpChecksumCanBeOmitted) {
  Build(100, false);
  EXPECT_EQ(LoadBe16(udp() + 6), 0);
  EXPECT_EQ(InternetChecksum(ip(), kIpv4HeaderSize), 0);
}

TEST_F(BuiltFrame, FinishingAgainReplacesIdAndChecksums) {
  Build(100, true);
  FinishFrame(frame_.data(), frame_.size(), 0x9999, true);
  EXPECT_EQ(LoadBe16(ip() + 4), 0x9999);
  EXPECT_EQ(InternetChecksum(ip(), kIpv4HeaderSize), 0);
}

}  // namespace
}  // namespace mcr::gen
