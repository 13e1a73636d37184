#include "engine/cpu_list.h"

#include <sched.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mcr::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::vector<int> Parse(std::string_view text) {
  absl::StatusOr<std::vector<int>> cpus = ParseCpuList(text);
  EXPECT_TRUE(cpus.ok()) << text << ": " << cpus.status();
  return cpus.ok() ? *cpus : std::vector<int>{};
}

std::string Error(std::string_view text) {
  absl::StatusOr<std::vector<int>> cpus = ParseCpuList(text);
  EXPECT_FALSE(cpus.ok()) << "\"" << text << "\" parsed";
  if (cpus.ok()) return "";
  EXPECT_EQ(cpus.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(cpus.status().message());
}

TEST(ParseCpuListTest, SingleCpus) {
  EXPECT_THAT(Parse("0"), ElementsAre(0));
  EXPECT_THAT(Parse("7"), ElementsAre(7));
  EXPECT_THAT(Parse("3,1,2"), ElementsAre(1, 2, 3));
  EXPECT_THAT(Parse("007"), ElementsAre(7));
}

TEST(ParseCpuListTest, Ranges) {
  EXPECT_THAT(Parse("0-3"), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(Parse("5-5"), ElementsAre(5));
  EXPECT_THAT(Parse("0-3,8,10-11"), ElementsAre(0, 1, 2, 3, 8, 10, 11));
}

TEST(ParseCpuListTest, Strides) {
  EXPECT_THAT(Parse("0-10:2"), ElementsAre(0, 2, 4, 6, 8, 10));
  EXPECT_THAT(Parse("1-10:3"), ElementsAre(1, 4, 7, 10));
  EXPECT_THAT(Parse("1-9:3"), ElementsAre(1, 4, 7));  // the end need not be hit
  EXPECT_THAT(Parse("0-3:1"), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(Parse("2-3:100"), ElementsAre(2));
}

TEST(ParseCpuListTest, SortsAndRemovesDuplicates) {
  EXPECT_THAT(Parse("4-6,0,5,1-2,0"), ElementsAre(0, 1, 2, 4, 5, 6));
  EXPECT_THAT(Parse("0-7:2,0-7:4"), ElementsAre(0, 2, 4, 6));
}

TEST(ParseCpuListTest, ToleratesWhitespace) {
  EXPECT_THAT(Parse(" 0 - 3 , 8 ,\t10-11:1 \n"), ElementsAre(0, 1, 2, 3, 8, 10, 11));
  EXPECT_THAT(Parse("0-10 : 5"), ElementsAre(0, 5, 10));
}

TEST(ParseCpuListTest, LargestCpu) {
  EXPECT_THAT(Parse("8191"), ElementsAre(kMaxCpus - 1));
  EXPECT_EQ(Parse("0-8191").size(), static_cast<size_t>(kMaxCpus));
}

TEST(ParseCpuListTest, ErrorsNameTheProblem) {
  // The example from the design: the whole list is the bad entry.
  EXPECT_EQ(Error("3-1"), "cpu list \"3-1\": range end 1 is below start 3");
  // With several entries the bad one is named.
  EXPECT_EQ(Error("0,3-1"), "cpu list \"0,3-1\": entry \"3-1\": range end 1 is below start 3");
  EXPECT_THAT(Error(""), HasSubstr("is empty"));
  EXPECT_THAT(Error("  "), HasSubstr("is empty"));
  EXPECT_THAT(Error("0,,2"), HasSubstr("entry 2 (between commas) is empty"));
  EXPECT_THAT(Error("0,"), HasSubstr("entry 2 (between commas) is empty"));
  EXPECT_THAT(Error(",0"), HasSubstr("entry 1 (between commas) is empty"));
  EXPECT_THAT(Error("x"), HasSubstr("CPU \"x\" is not a number"));
  EXPECT_THAT(Error("1,a-3"), HasSubstr("entry \"a-3\": range start \"a\" is not a number"));
  EXPECT_THAT(Error("1-b"), HasSubstr("range end \"b\" is not a number"));
  EXPECT_THAT(Error("1-2-3"), HasSubstr("range end \"2-3\" is not a number"));
  EXPECT_THAT(Error("-1"), HasSubstr("range start is missing"));
  EXPECT_THAT(Error("1-"), HasSubstr("range end is missing"));
  EXPECT_THAT(Error("+1"), HasSubstr("CPU \"+1\" is not a number"));
  EXPECT_THAT(Error("0x1"), HasSubstr("CPU \"0x1\" is not a number"));
  EXPECT_THAT(Error("1 2"), HasSubstr("CPU \"1 2\" is not a number"));
  EXPECT_THAT(Error("8192"), HasSubstr("CPU 8192 is above the largest CPU id 8191"));
  EXPECT_THAT(Error("0-99999999999999999999"),
              HasSubstr("range end 99999999999999999999 is above the largest CPU id 8191"));
  EXPECT_THAT(Error("0-7:0"), HasSubstr("stride 0 must be at least 1"));
  EXPECT_THAT(Error("0-7:"), HasSubstr("stride is missing"));
  EXPECT_THAT(Error("0-7:x"), HasSubstr("stride \"x\" is not a number"));
  EXPECT_THAT(Error("0-7:1:2"), HasSubstr("stride \"1:2\" is not a number"));
  EXPECT_THAT(Error("3:2"), HasSubstr("a stride needs a range"));
}

TEST(FormatCpuListTest, CompactsRuns) {
  EXPECT_EQ(FormatCpuList({}), "");
  EXPECT_EQ(FormatCpuList({5}), "5");
  EXPECT_EQ(FormatCpuList({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(FormatCpuList({11, 10, 3, 2, 1, 0, 8, 8}), "0-3,8,10-11");
  EXPECT_EQ(FormatCpuList({0, 2, 4}), "0,2,4");
}

TEST(FormatCpuListTest, RoundTrips) {
  for (std::string_view text : {"0-3,8,10-11", "0-10:2", "1,3-4,6-9,100", "0-8191:7"}) {
    std::vector<int> cpus = Parse(text);
    EXPECT_EQ(Parse(FormatCpuList(cpus)), cpus) << text;
  }
}

TEST(AllowedCpusTest, MatchesAffinityOfThisProcess) {
  absl::StatusOr<std::vector<int>> cpus = AllowedCpus();
  ASSERT_TRUE(cpus.ok()) << cpus.status();
  ASSERT_THAT(*cpus, Not(IsEmpty()));
  EXPECT_TRUE(std::is_sorted(cpus->begin(), cpus->end()));
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(cpus->size(), static_cast<size_t>(CPU_COUNT(&set)));
  for (int cpu : *cpus) EXPECT_TRUE(CPU_ISSET(cpu, &set)) << cpu;
}

}  // namespace
}  // namespace mcr::engine

namespace mcr::engine {
namespace {

TEST(PinCallingThreadToCpuTest, PinsToAnAllowedCpuAndRefusesOthers) {
  auto allowed = AllowedCpus();
  ASSERT_TRUE(allowed.ok());
  const int cpu = allowed->back();
  int pinned = -1, on = -1, beyond_set = -1, out_of_range = -1;
  std::thread([&] {  // a thread of its own: the test's own affinity stays as it was
    pinned = PinCallingThreadToCpu(cpu);
    on = sched_getcpu();
    beyond_set = PinCallingThreadToCpu(5000);  // past cpu_set_t's 1024, and not on this host
    out_of_range = PinCallingThreadToCpu(kMaxCpus);
  }).join();
  EXPECT_EQ(pinned, 0);
  EXPECT_EQ(on, cpu);
  EXPECT_EQ(beyond_set, EINVAL);  // the kernel's answer: no such CPU online, not a crash
  EXPECT_EQ(out_of_range, EINVAL);
}

}  // namespace
}  // namespace mcr::engine
