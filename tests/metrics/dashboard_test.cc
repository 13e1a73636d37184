// The shipped Grafana dashboard and docs/METRICS.md against the exporter's own catalog: the
// dashboard is valid JSON, every metric its queries name is one mcrd exports, it has the panels
// operators need, its PromQL parses (promtool), and the documentation lists every metric.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "metrics/engine_metrics.h"
#include "nlohmann/json.hpp"
#include "tests/metrics/scrape_client.h"

namespace mcr::metrics {
namespace {

using nlohmann::json;

// The repository root: $MCR_SOURCE_DIR, else three levels above this file.
std::filesystem::path SourceDir() {
  if (const char* dir = std::getenv("MCR_SOURCE_DIR"); dir != nullptr && *dir != '\0') return dir;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::set<std::string> CatalogNames() {
  std::set<std::string> names;
  for (const MetricInfo& m : MetricCatalog()) names.emplace(m.name);
  return names;
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dashboard_ = json::parse(ReadFile(SourceDir() / "packaging/grafana/mcr-dashboard.json"),
                             nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(dashboard_.is_discarded()) << "mcr-dashboard.json is not valid JSON";
    ASSERT_TRUE(dashboard_.contains("panels") && dashboard_["panels"].is_array());
    for (const auto& panel : dashboard_["panels"]) {
      for (const auto& target : panel.value("targets", json::array()))
        panel_exprs_.push_back(target.value("expr", ""));
    }
    // Template variable queries (label_values(...)) are Grafana syntax, not PromQL, but name
    // metrics too.
    for (const auto& var : dashboard_["templating"].value("list", json::array())) {
      if (var.value("type", "") != "query") continue;
      const json& q = var["query"];
      variable_queries_.push_back(q.is_string() ? q.get<std::string>() : q.value("query", ""));
    }
  }

  json dashboard_;
  std::vector<std::string> panel_exprs_;
  std::vector<std::string> variable_queries_;
};

TEST_F(DashboardTest, EveryPanelQueriesThePrometheusDatasourceVariable) {
  for (const auto& panel : dashboard_["panels"]) {
    SCOPED_TRACE(panel.value("title", "?"));
    ASSERT_FALSE(panel.value("targets", json::array()).empty());
    EXPECT_EQ(panel["datasource"].value("uid", ""), "${datasource}");
    for (const auto& target : panel["targets"]) EXPECT_FALSE(target.value("expr", "").empty());
  }
}

TEST_F(DashboardTest, NamesOnlyMetricsTheExporterEmits) {
  const std::set<std::string> exported = CatalogNames();
  const std::regex metric(R"(\bmcr_[a-zA-Z0-9_]+)");
  std::set<std::string> used;
  std::vector<std::string> all = panel_exprs_;
  all.insert(all.end(), variable_queries_.begin(), variable_queries_.end());
  for (const std::string& expr : all) {
    for (std::sregex_iterator it(expr.begin(), expr.end(), metric), end; it != end; ++it) {
      used.insert(it->str());
      EXPECT_TRUE(exported.contains(it->str())) << it->str() << " in: " << expr;
    }
  }
  // Panels issue 5 asks for: per-rule packets/s and bits/s, output errors, drops by reason,
  // kernel drops, shard busy ratio, rule count.
  for (const char* needed :
       {"mcr_rule_received_packets_total", "mcr_rule_received_bytes_total",
        "mcr_output_send_errors_total", "mcr_shard_dropped_packets_total",
        "mcr_interface_kernel_drops_total", "mcr_shard_busy_ratio", "mcr_rules"})
    EXPECT_TRUE(used.contains(needed)) << "no panel uses " << needed;
}

TEST_F(DashboardTest, PanelQueriesAreValidPromql) {
  if (mcr::testing::RunShell("command -v promtool").first != 0)
    GTEST_SKIP() << "promtool (Debian package 'prometheus') not installed";
  // promtool has no "parse this expression" command, but `check rules` parses every rule's
  // expression; Grafana's variables are replaced by values they take at run time first.
  const std::vector<std::pair<std::regex, std::string>> variables{
      {std::regex(R"(\$__rate_interval|\$__interval|\$__range)"), "1m"},
      {std::regex(R"(\$\{?(instance|rule)\}?)"), ".*"}};
  json groups = json::array();
  json rules = json::array();
  for (size_t i = 0; i < panel_exprs_.size(); ++i) {
    std::string expr = panel_exprs_[i];
    for (const auto& [re, value] : variables) expr = std::regex_replace(expr, re, value);
    rules.push_back({{"record", "dashboard:expr_" + std::to_string(i)}, {"expr", expr}});
  }
  groups.push_back({{"name", "dashboard"}, {"rules", rules}});
  // JSON is YAML, so the rules file can be written with the JSON library.
  char path[] = "/tmp/mcr-dashboard-rules-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << json{{"groups", groups}}.dump(2);
  const auto [rc, out] = mcr::testing::RunShell(std::string("promtool check rules ") + path);
  unlink(path);
  EXPECT_EQ(rc, 0) << out;
}

TEST(MetricsDocTest, DocumentsEveryMetricWithItsLabels) {
  const std::string doc = ReadFile(SourceDir() / "docs/METRICS.md");
  for (const MetricInfo& m : MetricCatalog()) {
    // Each metric has a table row: | `name` | type | labels | help |
    const std::string row = "| `" + std::string(m.name) + "` |";
    const size_t at = doc.find(row);
    ASSERT_NE(at, std::string::npos) << "docs/METRICS.md lacks a row for " << m.name;
    const std::string line = doc.substr(at, doc.find('\n', at) - at);
    EXPECT_NE(line.find(m.kind == MetricKind::kCounter ? "counter" : "gauge"), std::string::npos)
        << line;
    // Debian's abseil 20220623 has its own string_view, not std::string_view.
    for (absl::string_view label : absl::StrSplit(
             absl::string_view(m.labels.data(), m.labels.size()), ',', absl::SkipEmpty()))
      EXPECT_NE(line.find(absl::StrCat("`", label, "`")), std::string::npos)
          << m.name << ": " << label;
  }
}

}  // namespace
}  // namespace mcr::metrics
