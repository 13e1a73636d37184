// IGMP messages: queries parsed from captured IPv4 packets, reports built byte for byte.
#include "control/igmp.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace mcr::control::igmp {
namespace {

uint32_t A(const char* dotted) {
  in_addr a{};
  inet_pton(AF_INET, dotted, &a);
  return a.s_addr;
}

// An IPv4 packet carrying `igmp`, with the Router Alert option when `ra` (IHL 6).
std::vector<uint8_t> Ip(std::vector<uint8_t> igmp, bool ra = true, bool fix_checksum = true) {
  if (fix_checksum) {
    igmp[2] = igmp[3] = 0;
    const uint16_t c = Checksum(igmp.data(), igmp.size());
    igmp[2] = uint8_t(c >> 8);
    igmp[3] = uint8_t(c);
  }
  const size_t ihl = ra ? 24 : 20;
  const size_t total = ihl + igmp.size();
  std::vector<uint8_t> p(total, 0);
  p[0] = uint8_t(0x40 | (ihl / 4));
  p[2] = uint8_t(total >> 8);
  p[3] = uint8_t(total);
  p[8] = 1;  // TTL
  p[9] = 2;  // IGMP
  if (ra) {
    p[20] = 0x94;
    p[21] = 4;
  }
  for (size_t i = 0; i < igmp.size(); ++i) p[ihl + i] = igmp[i];
  return p;
}

TEST(IgmpChecksum, KnownValue) {
  // A version 2 general query with max response 10 s: 11 64 ee 9b 00 00 00 00.
  const uint8_t q[] = {0x11, 0x64, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(Checksum(q, sizeof q), 0xee9b);
  const uint8_t with[] = {0x11, 0x64, 0xee, 0x9b, 0, 0, 0, 0};
  EXPECT_EQ(Checksum(with, sizeof with), 0);
  const uint8_t odd[] = {0x01};
  EXPECT_EQ(Checksum(odd, 1), 0xfeff);
}

TEST(IgmpDecodeCode, LinearAndFloatingPoint) {
  EXPECT_EQ(DecodeCode(0), 0u);
  EXPECT_EQ(DecodeCode(100), 100u);
  EXPECT_EQ(DecodeCode(127), 127u);
  EXPECT_EQ(DecodeCode(0x80), 128u);           // mant 0, exp 0: 16 << 3
  EXPECT_EQ(DecodeCode(0xff), (0x1fu) << 10);  // mant 15, exp 7: 31744
}

TEST(IgmpParseQuery, VersionsByLength) {
  Query q;
  // Version 1: 8 bytes, max response 0; hosts answer within 10 s.
  auto v1 = Ip({0x11, 0, 0, 0, 0, 0, 0, 0});
  ASSERT_EQ(ParseQuery(v1.data(), v1.size(), &q), ParseResult::kIsQuery);
  EXPECT_EQ(q.version, Version::kV1);
  EXPECT_EQ(q.max_response_ms, 10'000u);
  EXPECT_EQ(q.group, 0u);
  // Version 2, group-specific, 2.5 s.
  auto v2 = Ip({0x11, 25, 0, 0, 239, 1, 1, 1}, /*ra=*/false);
  ASSERT_EQ(ParseQuery(v2.data(), v2.size(), &q), ParseResult::kIsQuery);
  EXPECT_EQ(q.version, Version::kV2);
  EXPECT_EQ(q.max_response_ms, 2'500u);
  EXPECT_EQ(q.group, A("239.1.1.1"));
  // Version 3, group-and-source-specific with two sources, code 0x80 (12.8 s).
  auto v3 = Ip({0x11, 0x80, 0, 0, 239, 1, 1, 2, 0x02, 125, 0, 2, 10, 0, 0, 1, 10, 0, 0, 2});
  ASSERT_EQ(ParseQuery(v3.data(), v3.size(), &q), ParseResult::kIsQuery);
  EXPECT_EQ(q.version, Version::kV3);
  EXPECT_EQ(q.max_response_ms, 12'800u);
  EXPECT_EQ(q.group, A("239.1.1.2"));
  EXPECT_EQ(q.sources, (std::vector<uint32_t>{A("10.0.0.1"), A("10.0.0.2")}));
}

TEST(IgmpParseQuery, RefusesWhatIsWrong) {
  Query q;
  q.group = 42;
  auto bad_sum = Ip({0x11, 100, 0x12, 0x34, 0, 0, 0, 0}, true, /*fix_checksum=*/false);
  EXPECT_EQ(ParseQuery(bad_sum.data(), bad_sum.size(), &q), ParseResult::kBadChecksum);
  auto nine = Ip({0x11, 100, 0, 0, 0, 0, 0, 0, 0, 0});  // 10 bytes: neither v2 nor v3
  EXPECT_EQ(ParseQuery(nine.data(), nine.size(), &q), ParseResult::kBadLength);
  // Says 3 sources, carries 1.
  auto short_v3 = Ip({0x11, 100, 0, 0, 239, 1, 1, 2, 2, 125, 0, 3, 10, 0, 0, 1});
  EXPECT_EQ(ParseQuery(short_v3.data(), short_v3.size(), &q), ParseResult::kTruncated);
  auto v2 = Ip({0x11, 100, 0, 0, 0, 0, 0, 0});
  // The IP header claims more than was captured; or less than an IGMP header.
  EXPECT_EQ(ParseQuery(v2.data(), v2.size() - 1, &q), ParseResult::kTruncated);
  EXPECT_EQ(ParseQuery(v2.data(), 19, &q), ParseResult::kTruncated);
  auto udp = v2;
  udp[9] = 17;
  EXPECT_EQ(ParseQuery(udp.data(), udp.size(), &q), ParseResult::kNotIgmp);
  auto frag = v2;
  frag[7] = 1;  // fragment offset 8
  EXPECT_EQ(ParseQuery(frag.data(), frag.size(), &q), ParseResult::kNotIgmp);
  auto report = Ip({0x16, 0, 0, 0, 239, 1, 1, 1});
  EXPECT_EQ(ParseQuery(report.data(), report.size(), &q), ParseResult::kOtherMessage);
  EXPECT_EQ(q.group, 42u) << "a refused packet must not touch *out";
}

TEST(IgmpBuildV3Reports, BytesOfOneReport) {
  const auto reports = BuildV3Reports(
      {{kChangeToExclude, A("239.1.1.1"), {}}, {kModeIsInclude, A("239.1.1.2"), {A("10.0.0.1")}}},
      1400);
  ASSERT_EQ(reports.size(), 1u);
  const std::vector<uint8_t> want_body = {0x22,
                                          0,
                                          0,
                                          0,
                                          0,
                                          0,
                                          0,
                                          2,  // type, reserved, checksum, reserved, 2 records
                                          kChangeToExclude,
                                          0,
                                          0,
                                          0,
                                          239,
                                          1,
                                          1,
                                          1,  // TO_EX({}) 239.1.1.1
                                          kModeIsInclude,
                                          0,
                                          0,
                                          1,
                                          239,
                                          1,
                                          1,
                                          2,
                                          10,
                                          0,
                                          0,
                                          1};  // IS_IN({10.0.0.1}) 239.1.1.2
  ASSERT_EQ(reports[0].size(), want_body.size());
  for (size_t i = 0; i < want_body.size(); ++i) {
    if (i == 2 || i == 3) continue;
    EXPECT_EQ(reports[0][i], want_body[i]) << "byte " << i;
  }
  EXPECT_EQ(Checksum(reports[0].data(), reports[0].size()), 0) << "checksum does not verify";
}

TEST(IgmpBuildV3Reports, SplitsAtTheSizeLimit) {
  std::vector<Record> records;
  for (int i = 0; i < 300; ++i) records.push_back({kModeIsExclude, htonl(0xEF000000u + i), {}});
  const auto reports = BuildV3Reports(records, 1400);
  // (1400 - 8) / 8 = 174 records per report.
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[0].size(), 8u + 174 * 8);
  EXPECT_EQ((reports[0][6] << 8) | reports[0][7], 174);
  EXPECT_EQ((reports[1][6] << 8) | reports[1][7], 126);
  for (const auto& r : reports) {
    EXPECT_LE(r.size(), 1400u);
    EXPECT_EQ(Checksum(r.data(), r.size()), 0);
  }
  // One record with more sources than fit: split into records of the same type.
  std::vector<uint32_t> many;
  for (uint32_t i = 0; i < 500; ++i) many.push_back(htonl(0x0A000000u + i));
  const auto big = BuildV3Reports({{kAllowNewSources, A("239.9.9.9"), many}}, 1400);
  size_t sources = 0;
  for (const auto& r : big) {
    EXPECT_LE(r.size(), 1400u);
    EXPECT_EQ(r[8], kAllowNewSources);
    sources += (r[10] << 8) | r[11];
  }
  EXPECT_EQ(big.size(), 2u);
  EXPECT_EQ(sources, 500u);
  EXPECT_TRUE(BuildV3Reports({}, 1400).empty());
}

TEST(IgmpBuildV2Message, ReportAndLeave) {
  const auto r = BuildV2Message(kV2Report, A("239.1.1.3"));
  EXPECT_EQ(r, (std::vector<uint8_t>{0x16, 0, r[2], r[3], 239, 1, 1, 3}));
  EXPECT_EQ(Checksum(r.data(), r.size()), 0);
  const auto l = BuildV2Message(kV2Leave, A("239.1.1.3"));
  EXPECT_EQ(l[0], 0x17);
  EXPECT_EQ(Checksum(l.data(), l.size()), 0);
}

TEST(IgmpGroupsLeft, LeavesAndBlocksOnly) {
  // A version 2 leave.
  auto leave = Ip(BuildV2Message(kV2Leave, A("239.1.1.1")));
  EXPECT_EQ(GroupsLeft(leave.data(), leave.size()), (std::vector<uint32_t>{A("239.1.1.1")}));
  // A version 2 report gives up nothing.
  auto report = Ip(BuildV2Message(kV2Report, A("239.1.1.1")));
  EXPECT_TRUE(GroupsLeft(report.data(), report.size()).empty());
  // Version 3: TO_IN({}) and BLOCK count; TO_IN({S}), TO_EX and IS_* do not.
  const auto v3 = BuildV3Reports({{kChangeToInclude, A("239.0.0.1"), {}},
                                  {kChangeToInclude, A("239.0.0.2"), {A("10.0.0.1")}},
                                  {kChangeToExclude, A("239.0.0.3"), {}},
                                  {kBlockOldSources, A("239.0.0.4"), {A("10.0.0.1")}},
                                  {kModeIsInclude, A("239.0.0.5"), {}}},
                                 1400);
  ASSERT_EQ(v3.size(), 1u);
  auto p = Ip(v3[0]);
  EXPECT_EQ(GroupsLeft(p.data(), p.size()),
            (std::vector<uint32_t>{A("239.0.0.1"), A("239.0.0.4")}));
  std::vector<uint32_t> narrowed;
  EXPECT_EQ(GroupsLeft(p.data(), p.size(), &narrowed).size(), 2u);
  EXPECT_EQ(narrowed, (std::vector<uint32_t>{A("239.0.0.2")}));
  // Malformed, each with a valid checksum: nothing, and no read past the end.
  auto many = v3[0];
  many[7] = 200;  // claims 200 records
  auto pm = Ip(many);
  EXPECT_TRUE(GroupsLeft(pm.data(), pm.size()).empty());
  auto sources = v3[0];
  sources[10] = 1;  // the first record claims 256 sources
  auto ps = Ip(sources);
  narrowed.assign(1, 7);
  EXPECT_TRUE(GroupsLeft(ps.data(), ps.size(), &narrowed).empty());
  EXPECT_TRUE(narrowed.empty());
  auto bad = p;
  bad[24 + 9] ^= 1;  // checksum no longer matches
  EXPECT_TRUE(GroupsLeft(bad.data(), bad.size()).empty());
  EXPECT_TRUE(GroupsLeft(p.data(), p.size() - 1).empty());  // shorter than its IP length
  EXPECT_TRUE(GroupsLeft(p.data(), 10).empty());
}

}  // namespace
}  // namespace mcr::control::igmp
