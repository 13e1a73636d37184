#include "metrics/engine_metrics.h"

#include <arpa/inet.h>
#include <sys/utsname.h>

#include <array>
#include <initializer_list>
#include <sstream>
#include <string_view>
#include <utility>

#include "engine/counters.h"
#include "metrics/internal/engine_collector.h"
#include "prometheus/text_serializer.h"

namespace mcr::metrics {
namespace {

using Label = prometheus::ClientMetric::Label;

// Indexes into kCatalog and into the vector BuildFamilies returns.
enum Family : size_t {
  kRulePackets,
  kRuleBytes,
  kOutputPackets,
  kOutputBytes,
  kOutputErrors,
  kShardReceived,
  kShardUnmatched,
  kShardDropped,
  kShardSteeringMismatch,
  kShardBusy,
  kShardRules,
  kKernelDrops,
  kSocketErrors,
  kShardNoBuffer,
  kShardSendCalls,
  kShardOffloadFrames,
  kRules,
  kShards,
  kInterfaceUp,
  kIgmpVersion,
  kIgmpGroups,
  kIgmpQueries,
  kIgmpMalformed,
  kIgmpReportsSent,
  kIgmpSendErrors,
  kBuildInfo,
  kFamilyCount
};

constexpr MetricKind kCounter = MetricKind::kCounter;
constexpr MetricKind kGauge = MetricKind::kGauge;

// In Family order (the catalog test checks BuildFamilies against it name by name).
constexpr std::array<MetricInfo, kFamilyCount> kCatalog{{
    {"mcr_rule_received_packets_total", kCounter, "rule,input_interface,group,port,source",
     "Datagrams that matched the rule on its input interface; each is relayed to every output."},
    {"mcr_rule_received_bytes_total", kCounter, "rule,input_interface,group,port,source",
     "UDP payload bytes of the datagrams that matched the rule."},
    {"mcr_output_sent_packets_total", kCounter, "rule,output",
     "Datagrams sent to the output (group:port@interface)."},
    {"mcr_output_sent_bytes_total", kCounter, "rule,output",
     "UDP payload bytes sent to the output (group:port@interface)."},
    {"mcr_output_send_errors_total", kCounter, "rule,output,reason",
     "Datagrams not sent to the output, by reason: would_block (socket buffer full), no_buffers "
     "(device queue full), network_down, refused (ICMP port unreachable), too_big, no_interface "
     "(output inactive: interface missing, down or without IPv4 address), other."},
    {"mcr_shard_received_packets_total", kCounter, "shard,cpu",
     "Frames the shard took from its capture sockets (ring blocks, or the receive queue in recv "
     "mode), malformed and unmatched ones included; a frame that carried several datagrams "
     "counts as the datagrams it carried."},
    {"mcr_shard_unmatched_packets_total", kCounter, "shard,cpu",
     "Well-formed IPv4 UDP datagrams that matched no rule of the shard and were dropped."},
    {"mcr_shard_dropped_packets_total", kCounter, "shard,cpu,reason",
     "Frames the shard dropped before rule lookup, by reason: fragment, not_udp, truncated_ip, "
     "bad_ihl, bad_udp_length and the other malformed shapes."},
    {"mcr_shard_steering_mismatch_packets_total", kCounter, "shard,cpu",
     "Frames the kernel steered to this shard although their (group, port) belongs to another; "
     "expected only while a capture fanout group is rebuilt. They are dropped (the shard has no "
     "rule for them) and counted as unmatched too."},
    {"mcr_shard_busy_ratio", kGauge, "shard,cpu",
     "Share of wall time the shard's loop spent working rather than waiting, over the last "
     "second (0 to 1)."},
    {"mcr_shard_rules", kGauge, "shard,cpu",
     "Rules in the shard's table: placed on the shard, with their input interface present."},
    {"mcr_interface_kernel_drops_total", kCounter, "interface,shard",
     "Frames the kernel dropped because the shard's capture ring for the interface (recv mode: "
     "its socket receive queue) was full (PACKET_STATISTICS tp_drops)."},
    {"mcr_interface_socket_errors_total", kCounter, "interface,shard",
     "Errors the shard's capture socket for the interface reported (ENETDOWN when the link goes "
     "down, and the like); the socket keeps working when the link returns."},
    {"mcr_shard_recv_no_buffer_total", kCounter, "shard,cpu",
     "Recv mode: receives that found all of the shard's buffers in use; frames wait in the "
     "socket queue meanwhile, and any loss shows in mcr_interface_kernel_drops_total."},
    {"mcr_shard_send_calls_total", kCounter, "shard,cpu",
     "Send system calls made by the shard for its outputs. Datagrams sent divided by this is "
     "how many one call carried (UDP GSO runs); it rises when the shard is behind."},
    {"mcr_shard_offload_frames_total", kCounter, "shard,cpu",
     "Captured frames that carried several datagrams (merged by receive offload, or a local "
     "sender's UDP GSO run handed over whole by a veth), each split back into its datagrams."},
    {"mcr_rules", kGauge, "", "Rules installed."},
    {"mcr_shards", kGauge, "", "Shards: pinned data-plane threads, one per CPU."},
    {"mcr_interface_up", kGauge, "interface",
     "1 if the interface exists and is administratively and operationally up, else 0; one "
     "series per interface a rule names."},
    {"mcr_igmp_version", kGauge, "interface",
     "--membership link: the IGMP version mcrd reports in on the interface (3; 2 or 1 after an "
     "older querier was heard or under force_igmp_version)."},
    {"mcr_igmp_groups", kGauge, "interface",
     "--membership link: groups mcrd reports on the interface."},
    {"mcr_igmp_queries_total", kCounter, "interface",
     "--membership link: IGMP queries mcrd took from the interface (general, group-specific and "
     "group-and-source-specific)."},
    {"mcr_igmp_malformed_total", kCounter, "interface",
     "--membership link: IGMP packets on the interface that mcrd ignored as malformed "
     "(truncated, bad checksum, bad length)."},
    {"mcr_igmp_reports_sent_total", kCounter, "interface",
     "--membership link: IGMP messages mcrd sent on the interface (reports and leaves)."},
    {"mcr_igmp_send_errors_total", kCounter, "interface",
     "--membership link: IGMP messages mcrd could not send on the interface (the kernel "
     "refused them; the log says why), not counting those while the link was down."},
    {"mcr_build_info", kGauge, "version,kernel",
     "Always 1; the labels give the mcrd version and the running kernel release."},
}};

std::string Ipv4(uint32_t addr_net_order) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr_net_order, buf, sizeof buf);
  return buf;
}

// (name, value) views of one sample's labels; the strings are copied once, into the sample.
using LabelRefs = std::initializer_list<std::pair<std::string_view, std::string_view>>;

// Counters travel as doubles (prometheus-cpp's and the text format's value type): exact up to
// 2^53, beyond that rounded to 16 significant digits — still monotonic, so rate() stays right.
void Add(prometheus::MetricFamily& family, LabelRefs labels, double value) {
  prometheus::ClientMetric& m = family.metric.emplace_back();
  m.label.reserve(labels.size());
  for (const auto& [name, v] : labels) m.label.push_back(Label{std::string(name), std::string(v)});
  if (family.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
}

}  // namespace

std::span<const MetricInfo> MetricCatalog() { return kCatalog; }

BuildInfo CurrentBuildInfo(std::string version) {
  utsname u{};
  return BuildInfo{std::move(version), uname(&u) == 0 ? u.release : "unknown"};
}

namespace internal {

std::vector<prometheus::MetricFamily> BuildFamilies(const engine::EngineStats& stats,
                                                    const BuildInfo& build,
                                                    const std::vector<IgmpInterfaceStats>& igmp) {
  std::vector<prometheus::MetricFamily> f(kFamilyCount);
  for (size_t i = 0; i < kFamilyCount; ++i) {
    f[i].name = kCatalog[i].name;
    f[i].help = kCatalog[i].help;
    f[i].type = kCatalog[i].kind == kCounter ? prometheus::MetricType::Counter
                                             : prometheus::MetricType::Gauge;
  }

  // Reserving up front keeps a 10k-rule scrape from reallocating (and moving) ~100k samples.
  size_t outputs = 0;
  for (const auto& r : stats.rules) outputs += r.outputs.size();
  constexpr size_t kReasons = static_cast<size_t>(engine::EgressError::kCount);
  f[kRulePackets].metric.reserve(stats.rules.size());
  f[kRuleBytes].metric.reserve(stats.rules.size());
  f[kOutputPackets].metric.reserve(outputs);
  f[kOutputBytes].metric.reserve(outputs);
  f[kOutputErrors].metric.reserve(outputs * kReasons);

  for (const auto& r : stats.rules) {
    const engine::RuleSpec& s = r.spec;
    const std::string group = Ipv4(s.input_group), port = std::to_string(s.input_port);
    // An any-source (*,G) rule gets source="", which Prometheus treats as "no source label".
    const std::string source = s.input_source != 0 ? Ipv4(s.input_source) : std::string();
    const LabelRefs in{{"rule", s.id},
                       {"input_interface", s.input_interface},
                       {"group", group},
                       {"port", port},
                       {"source", source}};
    Add(f[kRulePackets], in, static_cast<double>(r.packets));
    Add(f[kRuleBytes], in, static_cast<double>(r.bytes));
    for (const auto& o : r.outputs) {
      Add(f[kOutputPackets], {{"rule", s.id}, {"output", o.name}}, static_cast<double>(o.packets));
      Add(f[kOutputBytes], {{"rule", s.id}, {"output", o.name}}, static_cast<double>(o.bytes));
      // Every reason, zeros included: a series that appears only with its first error would
      // hide that error from rate() and increase().
      for (size_t e = 0; e < kReasons; ++e) {
        Add(f[kOutputErrors],
            {{"rule", s.id},
             {"output", o.name},
             {"reason", engine::EgressErrorName(static_cast<engine::EgressError>(e))}},
            static_cast<double>(o.errors[e]));
      }
    }
  }

  for (const auto& s : stats.shards) {
    const std::string shard = std::to_string(s.index), cpu = std::to_string(s.cpu);
    Add(f[kShardReceived], {{"shard", shard}, {"cpu", cpu}}, static_cast<double>(s.received));
    Add(f[kShardUnmatched], {{"shard", shard}, {"cpu", cpu}}, static_cast<double>(s.unmatched));
    for (const auto& [reason, n] : s.drops)
      Add(f[kShardDropped], {{"shard", shard}, {"cpu", cpu}, {"reason", reason}},
          static_cast<double>(n));
    Add(f[kShardSteeringMismatch], {{"shard", shard}, {"cpu", cpu}},
        static_cast<double>(s.steering_mismatch));
    Add(f[kShardBusy], {{"shard", shard}, {"cpu", cpu}}, s.busy_ratio);
    Add(f[kShardRules], {{"shard", shard}, {"cpu", cpu}}, static_cast<double>(s.rules));
    for (const auto& [interface, n] : s.kernel_drops)
      Add(f[kKernelDrops], {{"interface", interface}, {"shard", shard}}, static_cast<double>(n));
    for (const auto& [interface, n] : s.socket_errors)
      Add(f[kSocketErrors], {{"interface", interface}, {"shard", shard}}, static_cast<double>(n));
    Add(f[kShardNoBuffer], {{"shard", shard}, {"cpu", cpu}}, static_cast<double>(s.no_buffer));
    Add(f[kShardSendCalls], {{"shard", shard}, {"cpu", cpu}}, static_cast<double>(s.send_calls));
    Add(f[kShardOffloadFrames], {{"shard", shard}, {"cpu", cpu}},
        static_cast<double>(s.offload_frames));
  }

  Add(f[kRules], {}, static_cast<double>(stats.rules.size()));
  Add(f[kShards], {}, static_cast<double>(stats.shards.size()));
  for (const auto& i : stats.interfaces) Add(f[kInterfaceUp], {{"interface", i.name}}, i.up);
  for (const auto& g : igmp) {
    const LabelRefs itf{{"interface", g.interface}};
    Add(f[kIgmpVersion], itf, g.version);
    Add(f[kIgmpGroups], itf, static_cast<double>(g.groups));
    Add(f[kIgmpQueries], itf, static_cast<double>(g.queries));
    Add(f[kIgmpMalformed], itf, static_cast<double>(g.malformed));
    Add(f[kIgmpReportsSent], itf, static_cast<double>(g.reports_sent));
    Add(f[kIgmpSendErrors], itf, static_cast<double>(g.send_errors));
  }
  Add(f[kBuildInfo], {{"version", build.version}, {"kernel", build.kernel}}, 1);
  return f;
}

}  // namespace internal

std::string RenderMetrics(const engine::EngineStats& stats, const BuildInfo& build,
                          const std::vector<IgmpInterfaceStats>& igmp) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, internal::BuildFamilies(stats, build, igmp));
  return std::move(out).str();
}

}  // namespace mcr::metrics
