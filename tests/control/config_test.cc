#include "control/config.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "control/atomic_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "temp_dir.h"

namespace mcr::control {
namespace {

using ::testing::HasSubstr;

constexpr const char* kConfig = R"(
// Studio A cameras
{
  "version": 1,
  "rules": [
    /* named */
    {"name": "cam1",
     "input": {"interface": "in0", "group": "239.1.1.1", "port": 5000},
     "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "out0", "ttl": 4}]},
    {"input": {"interface": "in0", "group": "239.1.1.2", "port": 5000, "source": "10.0.0.1"},
     "outputs": [{"group": "10.10.2.2", "port": 7000, "interface": "out0", "dscp": 46}]}
  ]
})";

std::string ErrorOf(std::string_view text) {
  auto r = ParseConfig(text);
  return r.ok() ? "ok" : std::string(r.status().message());
}

TEST(ParseConfigTest, CommentsAndSchema) {
  auto r = ParseConfig(kConfig);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].id, "cam1");
  EXPECT_EQ((*r)[0].outputs[0].ttl, 4);
  EXPECT_EQ((*r)[1].id, RuleIdFor((*r)[1]));
  EXPECT_EQ((*r)[1].outputs[0].dscp, 46);
}

TEST(ParseConfigTest, Refusals) {
  EXPECT_THAT(ErrorOf("{"), HasSubstr("malformed JSON"));
  EXPECT_THAT(ErrorOf("[]"), HasSubstr("expected a JSON object"));
  EXPECT_THAT(ErrorOf(R"({"rules": 5})"), HasSubstr("rules: missing or not an array"));
  EXPECT_THAT(ErrorOf(R"({"version": 2, "rules": []})"),
              HasSubstr("version: unsupported version 2"));
  EXPECT_THAT(ErrorOf(R"({"rules": [], "rulez": []})"), HasSubstr("rulez: unknown field"));
  EXPECT_THAT(ErrorOf(R"({"rules": [{"input": {"interface": "in0", "group": "239.1.1.1",
                   "port": 5000}, "outputs": []}]})"),
              HasSubstr("rules[0].outputs: a rule needs at least one output"));
  EXPECT_THAT(ErrorOf(R"({"rules": [{"input": {"interface": "in0", "group": "239.1.1.1",
                   "port": 99999}, "outputs": []}]})"),
              HasSubstr("rules[0].input.port: 99999 is out of range"));
  // Duplicates within the file.
  const std::string rule = R"({"input": {"interface": "in0", "group": "239.1.1.1", "port": 5000},
      "outputs": [{"group": "239.2.2.2", "port": 6000, "interface": "out0"}]})";
  EXPECT_THAT(ErrorOf("{\"rules\": [" + rule + "," + rule + "]}"),
              HasSubstr("is used by more than one rule"));
  EXPECT_THAT(ErrorOf(std::string(100, '[') + std::string(100, ']')), HasSubstr("deeper than 32"));
}

TEST(ParseConfigTest, ShippedExampleIsValid) {
  const auto path =
      std::filesystem::path(__FILE__).parent_path() / "../../packaging/mcr.conf.example";
  auto r = ReadConfigFile(path.string());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].id, "cam1-video");
  EXPECT_NE((*r)[0].input_source, 0u);
}

TEST(StateTest, RoundTripKeepsOrigin) {
  auto specs = ParseConfig(kConfig);
  ASSERT_TRUE(specs.ok());
  std::vector<Rule> rules{{(*specs)[0], RuleOrigin::kConfig}, {(*specs)[1], RuleOrigin::kControl}};
  const std::string text = StateToText(rules);
  auto back = ParseState(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, rules);
  // The config form of the same rules loads as a config.
  auto config = ParseConfig(ConfigToJson(rules).dump());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, *specs);
  EXPECT_THAT(std::string(ParseState(R"({"rules":[{"origin":"x"}]})").status().message()),
              HasSubstr("rules[0].origin"));
}

TEST(AtomicFileTest, WritesReplacesAndLeavesNoTemp) {
  TempDir dir;
  const std::string path = dir.File("sub/dir/state.json");  // parents created
  ASSERT_TRUE(WriteFileAtomically(path, "one", 0640).ok());
  EXPECT_EQ(*ReadFile(path, 100), "one");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  ASSERT_TRUE(WriteFileAtomically(path, "two", 0640).ok());
  EXPECT_EQ(*ReadFile(path, 100), "two");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(AtomicFileTest, StaleTempFromACrashIsOverwritten) {
  TempDir dir;
  const std::string path = dir.File("state.json");
  { std::ofstream(path + ".tmp") << "half-written garbage from a kill -9"; }
  // Whatever owner and mode the leftover has, the state file gets its own.
  ASSERT_EQ(::chmod((path + ".tmp").c_str(), 0666), 0);
  ASSERT_TRUE(WriteFileAtomically(path, "good", 0640).ok());
  EXPECT_EQ(*ReadFile(path, 100), "good");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(AtomicFileTest, ReadErrors) {
  TempDir dir;
  EXPECT_TRUE(absl::IsNotFound(ReadFile(dir.File("missing"), 100).status()));
  EXPECT_FALSE(ReadFile(dir.path(), 100).ok());  // a directory
  ASSERT_TRUE(WriteFileAtomically(dir.File("big"), std::string(200, 'x')).ok());
  EXPECT_THAT(std::string(ReadFile(dir.File("big"), 100).status().message()),
              HasSubstr("larger than the limit"));
}

TEST(AtomicFileTest, UnwritableDirectoryFails) {
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomically(dir.File("f"), "x").ok());
  // A path whose parent is a file.
  EXPECT_FALSE(WriteFileAtomically(dir.File("f/g"), "x").ok());
}

}  // namespace
}  // namespace mcr::control
