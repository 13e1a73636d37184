#include "control/protocol.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mcr::control {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

bool Accepted(const std::string& text, bool allow_comments = false) {
  return ParseBoundedJson(text, allow_comments).ok();
}

TEST(ParseBoundedJsonTest, CountsArraysAndObjects) {
  EXPECT_TRUE(Accepted(Nested(kMaxJsonDepth)));
  EXPECT_FALSE(Accepted(Nested(kMaxJsonDepth + 1)));
  const std::string objects = std::string(kMaxJsonDepth - 1, '[') + R"({"a":1})" +
                              std::string(kMaxJsonDepth - 1, ']');
  EXPECT_TRUE(Accepted(objects));
  EXPECT_FALSE(Accepted("[" + objects + "]"));
}

TEST(ParseBoundedJsonTest, IgnoresBracketsInStringsAndComments) {
  const std::string deep_text(100, '[');
  EXPECT_TRUE(Accepted(R"([")" + deep_text + R"(", "{{{{{{"])"));
  EXPECT_TRUE(Accepted(R"(["\"", "\\", ")" + deep_text + R"("])"));
  const std::string commented = "[ // \" " + deep_text + "\n 1 /* \" " + deep_text + " */ ]";
  EXPECT_TRUE(Accepted(commented, /*allow_comments=*/true));
  EXPECT_FALSE(Accepted(commented, /*allow_comments=*/false));
}

TEST(ParseBoundedJsonTest, RefusesDeepNestingWithoutBuildingIt) {
  // nlohmann-json would parse this and then crash dumping it (DESIGN.md): never let it in.
  auto r = ParseBoundedJson(Nested(100000), false);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("deeper than 32"));
}

TEST(ParseBoundedJsonTest, DeepNestingHiddenFromALineScanIsRefused) {
  // A // comment ends at '\r' (and at NUL) for the parser, not only at '\n': nesting after it
  // is real. A byte scan that disagreed with the parser let this crash mcrd (found in review).
  const std::string deep = Nested(200000);
  for (const std::string& end_of_comment : {std::string("\r"), std::string(1, '\0')}) {
    const std::string text = "{\"version\": //x" + end_of_comment + deep + "\n}";
    auto r = ParseBoundedJson(text, /*allow_comments=*/true, kMaxMessageBytes);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
  auto r = ParseBoundedJson("{\"version\": //x\r" + deep + "\n}", true);
  EXPECT_THAT(r.status().message(), HasSubstr("deeper than 32"));
}

TEST(ParseBoundedJsonTest, RefusesOversized) {
  const std::string big = "\"" + std::string(kMaxMessageBytes, 'a') + "\"";
  auto r = ParseBoundedJson(big, false);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("larger than the limit"));
}

TEST(ParseBoundedJsonTest, GarbageAndTruncated) {
  for (const char* text : {"garbage", "{\"version\":1,", "", "{\"a\":}", "\xff\xfe", "[1,2"}) {
    auto r = ParseBoundedJson(text, false);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ParseRequestTest, ValidRequest) {
  json id;
  auto r = ParseRequest(R"({"version":1,"id":7,"type":"list"})", &id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->type, RequestType::kList);
  EXPECT_EQ(r->id, 7);
  EXPECT_EQ(id, 7);
}

TEST(ParseRequestTest, EveryTypeNameRoundTrips) {
  for (int t = 0; t <= static_cast<int>(RequestType::kReload); ++t) {
    const auto type = static_cast<RequestType>(t);
    EXPECT_EQ(ParseRequestType(RequestTypeName(type)), type);
  }
}

TEST(ParseRequestTest, WrongOrMissingVersionKeepsId) {
  json id;
  auto r = ParseRequest(R"({"version":2,"id":"abc","type":"list"})", &id);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("unsupported protocol version 2"));
  EXPECT_EQ(id, "abc");  // echoed in the error response
  r = ParseRequest(R"({"id":3,"type":"list"})", &id);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("version: missing"));
  EXPECT_EQ(id, 3);
  EXPECT_FALSE(ParseRequest(R"({"version":"1","type":"list"})", &id).ok());
  EXPECT_FALSE(ParseRequest(R"({"version":1.5,"type":"list"})", &id).ok());
}

TEST(ParseRequestTest, UnknownOrMissingType) {
  json id;
  auto r = ParseRequest(R"({"version":1,"type":"format_disk"})", &id);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("unknown request type 'format_disk'"));
  EXPECT_FALSE(ParseRequest(R"({"version":1})", &id).ok());
  EXPECT_FALSE(ParseRequest(R"({"version":1,"type":5})", &id).ok());
}

TEST(ParseRequestTest, NotAnObjectOrBadId) {
  json id;
  EXPECT_FALSE(ParseRequest("[1,2,3]", &id).ok());
  EXPECT_FALSE(ParseRequest("42", &id).ok());
  EXPECT_FALSE(ParseRequest(R"({"version":1,"id":{"x":1},"type":"ping"})", &id).ok());
  EXPECT_TRUE(id.is_null());
}

TEST(ResponseTest, OkAndErrorRoundTrip) {
  json ok = OkResponse(5);
  ok["x"] = 1;
  auto r = CheckResponse(SerializeLine(ok));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["x"], 1);

  auto e = CheckResponse(SerializeLine(ErrorResponse(5, absl::NotFoundError("no rule 'x'"))));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(e.status().message(), "no rule 'x'");

  EXPECT_FALSE(CheckResponse(R"({"version":9,"ok":true})").ok());
  EXPECT_FALSE(CheckResponse("nonsense").ok());
}

TEST(ResponseTest, SerializeReplacesInvalidUtf8) {
  json j = OkResponse(nullptr);
  j["bad"] = std::string("\xff\xfe", 2);
  std::string line;
  ASSERT_NO_THROW(line = SerializeLine(j));
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // one line: newlines inside strings are escaped
}

TEST(LineReaderTest, SplitsLinesAcrossChunks) {
  LineReader r(100);
  r.Append("ab");
  EXPECT_FALSE(r.Next().has_value());
  EXPECT_TRUE(r.has_partial());
  r.Append("c\nde\n\nf");
  auto a = r.Next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->line, "abc");
  EXPECT_EQ(r.Next()->line, "de");
  EXPECT_EQ(r.Next()->line, "");
  EXPECT_FALSE(r.Next().has_value());
  EXPECT_TRUE(r.has_partial());
  r.Append("\n");
  EXPECT_EQ(r.Next()->line, "f");
  EXPECT_FALSE(r.has_partial());
}

TEST(LineReaderTest, OversizedLineReportedOnceThenDiscardedToNewline) {
  LineReader r(10);
  r.Append(std::string(8, 'x'));
  EXPECT_FALSE(r.Next().has_value());
  r.Append(std::string(8, 'x'));  // 16 bytes, no newline: over the limit
  auto item = r.Next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, LineReader::Kind::kOversized);
  r.Append(std::string(1000, 'y'));  // still the same line: dropped, not reported again
  EXPECT_FALSE(r.Next().has_value());
  EXPECT_FALSE(r.has_partial());
  r.Append("yyy\nok\n");
  item = r.Next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, LineReader::Kind::kLine);
  EXPECT_EQ(item->line, "ok");
}

TEST(LineReaderTest, CompleteLineOverLimitIsOversized) {
  LineReader r(4);
  r.Append("12345\n1234\n");
  EXPECT_EQ(r.Next()->kind, LineReader::Kind::kOversized);
  auto item = r.Next();
  ASSERT_TRUE(item);
  EXPECT_EQ(item->kind, LineReader::Kind::kLine);
  EXPECT_EQ(item->line, "1234");
}

TEST(LineReaderTest, ManySmallLinesInOneChunk) {
  LineReader r(64);
  std::string chunk;
  for (int i = 0; i < 10000; ++i) chunk += std::to_string(i) + "\n";
  r.Append(chunk);
  for (int i = 0; i < 10000; ++i) {
    auto item = r.Next();
    ASSERT_TRUE(item);
    ASSERT_EQ(item->line, std::to_string(i));
  }
  EXPECT_FALSE(r.Next().has_value());
}

}  // namespace
}  // namespace mcr::control
