// The exported families as a pure function of a hand-made engine snapshot: names, help, types,
// label sets and values, and the text rendering. No kernel, no HTTP.

#include "metrics/engine_metrics.h"

#include <arpa/inet.h>

#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/internal/engine_collector.h"
#include "tests/metrics/scrape_client.h"

namespace mcr::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using LabelPairs = std::vector<std::pair<std::string, std::string>>;

uint32_t Addr(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

engine::OutputStats Output(const char* name, uint64_t packets, uint64_t bytes) {
  engine::OutputStats o;
  o.name = name;
  o.active = true;
  o.packets = packets;
  o.bytes = bytes;
  return o;
}

engine::RuleStats Rule(const char* id, const char* ifname, const char* group, uint16_t port,
                       const char* source, uint64_t packets, uint64_t bytes) {
  engine::RuleStats r;
  r.spec.id = id;
  r.spec.input_interface = ifname;
  r.spec.input_group = Addr(group);
  r.spec.input_port = port;
  r.spec.input_source = source ? Addr(source) : 0;
  r.packets = packets;
  r.bytes = bytes;
  return r;
}

// Two shards, a (*,G) rule with two outputs on shard 0 and an (S,G) rule on shard 1.
engine::EngineStats SampleStats() {
  engine::EngineStats st;
  engine::ShardStats s0;
  s0.index = 0;
  s0.cpu = 2;
  s0.rules = 1;
  s0.received = 1007;
  s0.unmatched = 3;
  s0.drops = {{"fragment", 2}, {"bad_ihl", 1}, {"not_udp", 0}};
  s0.kernel_drops = {{"in0", 5}, {"in1", 0}};
  s0.socket_errors = {{"in0", 2}, {"in1", 0}};
  s0.no_buffer = 11;
  s0.send_calls = 40;
  s0.offload_frames = 7;
  s0.busy_ratio = 0.25;
  engine::ShardStats s1 = s0;
  s1.index = 1;
  s1.cpu = 3;
  s1.received = 40;
  s1.unmatched = 0;
  s1.steering_mismatch = 4;
  s1.drops = {{"fragment", 0}, {"bad_ihl", 0}, {"not_udp", 0}};
  s1.kernel_drops = {{"in0", 0}, {"in1", 9}};
  s1.socket_errors = {{"in0", 0}, {"in1", 1}};
  s1.no_buffer = 0;
  s1.send_calls = 0;
  s1.offload_frames = 0;
  s1.busy_ratio = 0.5;
  st.shards = {s0, s1};

  engine::RuleStats r1 = Rule("r1", "in0", "239.1.1.1", 5000, nullptr, 1000, 1316000);
  r1.outputs.push_back(Output("239.2.2.2:6000@out0", 1000, 1316000));
  r1.outputs.push_back(Output("10.0.0.9:7000@out1", 998, 1313368));
  r1.outputs[1].errors[static_cast<size_t>(engine::EgressError::kNoBuffers)] = 2;
  engine::RuleStats r2 = Rule("r2", "in1", "239.1.1.2", 5001, "198.51.100.7", 40, 4000);
  r2.shard = 1;
  r2.outputs.push_back(Output("239.3.3.3:6001@out0", 40, 4000));
  st.rules = {r1, r2};

  st.interfaces = {{"in0", 2, true}, {"in1", 0, false}, {"out0", 3, true}, {"out1", 4, true}};
  return st;
}

const BuildInfo kBuild{"1.2.3", "6.18.0-test"};

const prometheus::MetricFamily& Find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name) {
  for (const auto& f : families)
    if (f.name == name) return f;
  throw std::runtime_error("no family " + name);
}

// The value of the one sample of `family` whose labels are exactly `labels`, in that order.
double Value(const prometheus::MetricFamily& family, const LabelPairs& labels) {
  const prometheus::ClientMetric* found = nullptr;
  for (const auto& m : family.metric) {
    if (m.label.size() != labels.size()) continue;
    bool same = true;
    for (size_t i = 0; i < labels.size() && same; ++i)
      same = m.label[i].name == labels[i].first && m.label[i].value == labels[i].second;
    if (!same) continue;
    EXPECT_EQ(found, nullptr) << family.name << ": duplicate series";
    found = &m;
  }
  if (found == nullptr) {
    ADD_FAILURE() << family.name << ": no series " << mcr::testing::Series("", labels);
    return -1;
  }
  return family.type == prometheus::MetricType::Counter ? found->counter.value : found->gauge.value;
}

std::vector<std::string> LabelNames(const MetricInfo& m) {
  if (m.labels.empty()) return {};
  // Debian's abseil 20220623 has its own string_view, not std::string_view.
  return absl::StrSplit(absl::string_view(m.labels.data(), m.labels.size()), ',');
}

TEST(MetricCatalogTest, NamesAreUniqueWellFormedAndFollowConventions) {
  const std::regex name_re("mcr_[a-z][a-z0-9_]*[a-z0-9]");
  const std::regex label_re("[a-z][a-z0-9_]*");
  std::set<std::string_view> names;
  for (const MetricInfo& m : MetricCatalog()) {
    SCOPED_TRACE(std::string(m.name));
    EXPECT_TRUE(names.insert(m.name).second) << "duplicate";
    EXPECT_TRUE(std::regex_match(std::string(m.name), name_re));
    // Prometheus naming: counters and only counters end in _total.
    EXPECT_EQ(m.kind == MetricKind::kCounter, m.name.ends_with("_total"));
    EXPECT_GT(m.help.size(), 10u);
    // prometheus-cpp 1.0.1 writes HELP without escaping; these would corrupt the exposition.
    EXPECT_EQ(m.help.find_first_of("\\\n"), std::string_view::npos);
    for (const std::string& l : LabelNames(m)) EXPECT_TRUE(std::regex_match(l, label_re)) << l;
  }
  // The names issue 5 promises operators, at least.
  for (const char* required :
       {"mcr_rule_received_packets_total", "mcr_rule_received_bytes_total",
        "mcr_output_sent_packets_total", "mcr_output_sent_bytes_total",
        "mcr_output_send_errors_total", "mcr_shard_received_packets_total",
        "mcr_shard_unmatched_packets_total", "mcr_shard_dropped_packets_total",
        "mcr_shard_busy_ratio", "mcr_interface_kernel_drops_total", "mcr_rules", "mcr_shards",
        "mcr_interface_up", "mcr_build_info"})
    EXPECT_TRUE(names.contains(required)) << required;
}

// Link-layer memberships on two interfaces; in1 fell back to version 2.
std::vector<IgmpInterfaceStats> SampleIgmp() {
  IgmpInterfaceStats a;
  a.interface = "in0";
  a.version = 3;
  a.groups = 2;
  a.queries = 17;
  a.malformed = 1;
  a.reports_sent = 40;
  a.send_errors = 0;
  IgmpInterfaceStats b;
  b.interface = "in1";
  b.version = 2;
  b.groups = 1;
  b.queries = 3;
  b.reports_sent = 5;
  b.send_errors = 2;
  return {a, b};
}

TEST(BuildFamiliesTest, FamiliesAndLabelNamesFollowTheCatalog) {
  const auto families = internal::BuildFamilies(SampleStats(), kBuild, SampleIgmp());
  const auto catalog = MetricCatalog();
  ASSERT_EQ(families.size(), catalog.size());
  for (size_t i = 0; i < catalog.size(); ++i) {
    const auto& f = families[i];
    SCOPED_TRACE(f.name);
    EXPECT_EQ(f.name, catalog[i].name);
    EXPECT_EQ(f.help, catalog[i].help);
    EXPECT_EQ(f.type, catalog[i].kind == MetricKind::kCounter ? prometheus::MetricType::Counter
                                                              : prometheus::MetricType::Gauge);
    EXPECT_FALSE(f.metric.empty());
    const std::vector<std::string> expected = LabelNames(catalog[i]);
    for (const auto& m : f.metric) {
      std::vector<std::string> got;
      for (const auto& l : m.label) got.push_back(l.name);
      EXPECT_EQ(got, expected);
    }
  }
}

TEST(BuildFamiliesTest, RuleSeriesCarryTheInputTuple) {
  const auto families = internal::BuildFamilies(SampleStats(), kBuild);
  const auto& packets = Find(families, "mcr_rule_received_packets_total");
  const auto& bytes = Find(families, "mcr_rule_received_bytes_total");
  ASSERT_EQ(packets.metric.size(), 2u);
  const LabelPairs r1{{"rule", "r1"},
                      {"input_interface", "in0"},
                      {"group", "239.1.1.1"},
                      {"port", "5000"},
                      {"source", ""}};
  const LabelPairs r2{{"rule", "r2"},
                      {"input_interface", "in1"},
                      {"group", "239.1.1.2"},
                      {"port", "5001"},
                      {"source", "198.51.100.7"}};
  EXPECT_EQ(Value(packets, r1), 1000);
  EXPECT_EQ(Value(bytes, r1), 1316000);
  EXPECT_EQ(Value(packets, r2), 40);
  EXPECT_EQ(Value(bytes, r2), 4000);
}

TEST(BuildFamiliesTest, OutputSeriesAndEveryErrorReasonPerOutput) {
  const auto families = internal::BuildFamilies(SampleStats(), kBuild);
  const auto& packets = Find(families, "mcr_output_sent_packets_total");
  const auto& bytes = Find(families, "mcr_output_sent_bytes_total");
  const auto& errors = Find(families, "mcr_output_send_errors_total");
  EXPECT_EQ(packets.metric.size(), 3u);
  EXPECT_EQ(Value(packets, {{"rule", "r1"}, {"output", "239.2.2.2:6000@out0"}}), 1000);
  EXPECT_EQ(Value(bytes, {{"rule", "r1"}, {"output", "239.2.2.2:6000@out0"}}), 1316000);
  EXPECT_EQ(Value(packets, {{"rule", "r1"}, {"output", "10.0.0.9:7000@out1"}}), 998);
  EXPECT_EQ(Value(bytes, {{"rule", "r1"}, {"output", "10.0.0.9:7000@out1"}}), 1313368);
  EXPECT_EQ(Value(packets, {{"rule", "r2"}, {"output", "239.3.3.3:6001@out0"}}), 40);
  // Zero-valued reasons are exported too, so that the first error shows in increase().
  constexpr size_t kReasons = static_cast<size_t>(engine::EgressError::kCount);
  EXPECT_EQ(errors.metric.size(), 3 * kReasons);
  for (size_t e = 0; e < kReasons; ++e) {
    const std::string reason = engine::EgressErrorName(static_cast<engine::EgressError>(e));
    EXPECT_EQ(Value(errors, {{"rule", "r1"}, {"output", "10.0.0.9:7000@out1"}, {"reason", reason}}),
              reason == "no_buffers" ? 2 : 0)
        << reason;
  }
}

TEST(BuildFamiliesTest, ShardSeries) {
  const auto families = internal::BuildFamilies(SampleStats(), kBuild);
  const LabelPairs s0{{"shard", "0"}, {"cpu", "2"}}, s1{{"shard", "1"}, {"cpu", "3"}};
  EXPECT_EQ(Value(Find(families, "mcr_shard_received_packets_total"), s0), 1007);
  EXPECT_EQ(Value(Find(families, "mcr_shard_received_packets_total"), s1), 40);
  EXPECT_EQ(Value(Find(families, "mcr_shard_unmatched_packets_total"), s0), 3);
  EXPECT_EQ(Value(Find(families, "mcr_shard_steering_mismatch_packets_total"), s1), 4);
  EXPECT_EQ(Value(Find(families, "mcr_shard_busy_ratio"), s0), 0.25);
  EXPECT_EQ(Value(Find(families, "mcr_shard_busy_ratio"), s1), 0.5);
  EXPECT_EQ(Value(Find(families, "mcr_shard_rules"), s1), 1);
  const auto& dropped = Find(families, "mcr_shard_dropped_packets_total");
  EXPECT_EQ(dropped.metric.size(), 6u);  // every reason on every shard
  EXPECT_EQ(Value(dropped, {{"shard", "0"}, {"cpu", "2"}, {"reason", "fragment"}}), 2);
  EXPECT_EQ(Value(dropped, {{"shard", "0"}, {"cpu", "2"}, {"reason", "bad_ihl"}}), 1);
  EXPECT_EQ(Value(dropped, {{"shard", "1"}, {"cpu", "3"}, {"reason", "fragment"}}), 0);
  const auto& kernel = Find(families, "mcr_interface_kernel_drops_total");
  EXPECT_EQ(kernel.metric.size(), 4u);
  EXPECT_EQ(Value(kernel, {{"interface", "in0"}, {"shard", "0"}}), 5);
  EXPECT_EQ(Value(kernel, {{"interface", "in1"}, {"shard", "1"}}), 9);
  const auto& errors = Find(families, "mcr_interface_socket_errors_total");
  EXPECT_EQ(errors.metric.size(), 4u);
  EXPECT_EQ(Value(errors, {{"interface", "in0"}, {"shard", "0"}}), 2);
  EXPECT_EQ(Value(errors, {{"interface", "in1"}, {"shard", "1"}}), 1);
  const auto& no_buffer = Find(families, "mcr_shard_recv_no_buffer_total");
  EXPECT_EQ(Value(no_buffer, {{"shard", "0"}, {"cpu", "2"}}), 11);
  EXPECT_EQ(Value(no_buffer, {{"shard", "1"}, {"cpu", "3"}}), 0);
  const auto& send_calls = Find(families, "mcr_shard_send_calls_total");
  EXPECT_EQ(Value(send_calls, {{"shard", "0"}, {"cpu", "2"}}), 40);
  EXPECT_EQ(Value(send_calls, {{"shard", "1"}, {"cpu", "3"}}), 0);
  const auto& offload = Find(families, "mcr_shard_offload_frames_total");
  EXPECT_EQ(Value(offload, {{"shard", "0"}, {"cpu", "2"}}), 7);
  EXPECT_EQ(Value(offload, {{"shard", "1"}, {"cpu", "3"}}), 0);
}

TEST(BuildFamiliesTest, InventoryGauges) {
  const auto families = internal::BuildFamilies(SampleStats(), kBuild);
  EXPECT_EQ(Value(Find(families, "mcr_rules"), {}), 2);
  EXPECT_EQ(Value(Find(families, "mcr_shards"), {}), 2);
  const auto& up = Find(families, "mcr_interface_up");
  EXPECT_EQ(up.metric.size(), 4u);
  EXPECT_EQ(Value(up, {{"interface", "in0"}}), 1);
  EXPECT_EQ(Value(up, {{"interface", "in1"}}), 0);
  EXPECT_EQ(
      Value(Find(families, "mcr_build_info"), {{"version", "1.2.3"}, {"kernel", "6.18.0-test"}}),
      1);
}

TEST(BuildFamiliesTest, IgmpSeriesPerInterface) {
  const auto families = internal::BuildFamilies(SampleStats(), kBuild, SampleIgmp());
  const LabelPairs in0{{"interface", "in0"}}, in1{{"interface", "in1"}};
  EXPECT_EQ(Value(Find(families, "mcr_igmp_version"), in0), 3);
  EXPECT_EQ(Value(Find(families, "mcr_igmp_version"), in1), 2);
  EXPECT_EQ(Value(Find(families, "mcr_igmp_groups"), in0), 2);
  EXPECT_EQ(Value(Find(families, "mcr_igmp_queries_total"), in0), 17);
  EXPECT_EQ(Value(Find(families, "mcr_igmp_queries_total"), in1), 3);
  EXPECT_EQ(Value(Find(families, "mcr_igmp_malformed_total"), in0), 1);
  EXPECT_EQ(Value(Find(families, "mcr_igmp_malformed_total"), in1), 0);
  EXPECT_EQ(Value(Find(families, "mcr_igmp_reports_sent_total"), in0), 40);
  EXPECT_EQ(Value(Find(families, "mcr_igmp_send_errors_total"), in1), 2);
  EXPECT_EQ(Find(families, "mcr_igmp_queries_total").metric.size(), 2u);
}

TEST(BuildFamiliesTest, NoIgmpSeriesWithoutLinkLayerMemberships) {
  // The default membership: the kernel speaks IGMP, and mcrd has nothing of its own to count.
  const auto families = internal::BuildFamilies(SampleStats(), kBuild);
  for (const char* name :
       {"mcr_igmp_version", "mcr_igmp_groups", "mcr_igmp_queries_total", "mcr_igmp_malformed_total",
        "mcr_igmp_reports_sent_total", "mcr_igmp_send_errors_total"})
    EXPECT_TRUE(Find(families, name).metric.empty()) << name;
  EXPECT_EQ(families.size(), MetricCatalog().size());
}

TEST(BuildFamiliesTest, NoRulesStillDescribesEveryFamily) {
  const auto families = internal::BuildFamilies(engine::EngineStats{}, kBuild);
  EXPECT_EQ(families.size(), MetricCatalog().size());
  EXPECT_EQ(Value(Find(families, "mcr_rules"), {}), 0);
  EXPECT_TRUE(Find(families, "mcr_rule_received_packets_total").metric.empty());
}

TEST(RenderMetricsTest, TextFormatWithHelpTypeAndSamples) {
  const std::string text = RenderMetrics(SampleStats(), kBuild);
  EXPECT_THAT(text, HasSubstr("# HELP mcr_rule_received_packets_total Datagrams that matched"));
  EXPECT_THAT(text, HasSubstr("# TYPE mcr_rule_received_packets_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE mcr_shard_busy_ratio gauge\n"));
  const auto samples = mcr::testing::ParseExposition(text);
  using mcr::testing::Series;
  EXPECT_EQ(samples.at(Series("mcr_rule_received_packets_total", {{"rule", "r2"},
                                                                  {"input_interface", "in1"},
                                                                  {"group", "239.1.1.2"},
                                                                  {"port", "5001"},
                                                                  {"source", "198.51.100.7"}})),
            40);
  EXPECT_EQ(samples.at(Series(
                "mcr_output_send_errors_total",
                {{"rule", "r1"}, {"output", "10.0.0.9:7000@out1"}, {"reason", "no_buffers"}})),
            2);
  EXPECT_EQ(samples.at("mcr_rules"), 2);
}

TEST(RenderMetricsTest, RemovedRuleSeriesDisappear) {
  engine::EngineStats st = SampleStats();
  EXPECT_THAT(RenderMetrics(st, kBuild), HasSubstr("rule=\"r2\""));
  st.rules.pop_back();  // r2 removed
  const std::string text = RenderMetrics(st, kBuild);
  EXPECT_THAT(text, Not(HasSubstr("rule=\"r2\"")));
  EXPECT_THAT(text, Not(HasSubstr("239.3.3.3")));
  EXPECT_THAT(text, HasSubstr("rule=\"r1\""));
}

TEST(RenderMetricsTest, LabelValuesAreEscaped) {
  engine::EngineStats st;
  st.rules.push_back(Rule("quote\"back\\slash\nnewline", "in0", "239.1.1.1", 5000, nullptr, 1, 1));
  EXPECT_THAT(RenderMetrics(st, kBuild), HasSubstr("rule=\"quote\\\"back\\\\slash\\nnewline\""));
}

TEST(RenderMetricsTest, CountersAreExactBelowTwoToThe53) {
  engine::EngineStats st;
  st.rules.push_back(Rule("r", "in0", "239.1.1.1", 5000, nullptr, 0, (uint64_t{1} << 53) - 1));
  EXPECT_THAT(RenderMetrics(st, kBuild), HasSubstr("} 9007199254740991\n"));
}

TEST(CurrentBuildInfoTest, ReportsTheRunningKernel) {
  const BuildInfo b = CurrentBuildInfo("0.1.0");
  EXPECT_EQ(b.version, "0.1.0");
  EXPECT_FALSE(b.kernel.empty());
  EXPECT_NE(b.kernel, "unknown");
}

}  // namespace
}  // namespace mcr::metrics
