// HOT PATH: OnDatagram (see recv_stats.h).
#include "bench/mcrgen/recv_stats.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/mcrgen/config.h"

namespace mcr::gen {
namespace {

nlohmann::json LatencyJson(const LogHistogram& h) {
  if (h.count() == 0) return nullptr;
  const auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1e3; };
  return {{"min", us(h.min())},
          {"p50", us(h.Percentile(50))},
          {"p90", us(h.Percentile(90))},
          {"p99", us(h.Percentile(99))},
          {"p999", us(h.Percentile(99.9))},
          {"max", us(h.max())},
          {"mean", h.mean() / 1e3}};
}

// Spacing of arrivals. A paced stream relayed as it came has gaps near its mean gap; one sent
// on in bursts has most gaps near zero and a few as long as the bursts' interval. "bunched" is
// the share of gaps shorter than a quarter of the mean gap (to the histogram's 1/32 resolution).
nlohmann::json GapJson(const LogHistogram& h) {
  if (h.count() == 0) return nullptr;
  const auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1e3; };
  const auto quarter_mean = static_cast<uint64_t>(h.mean() / 4);
  return {{"min", us(h.min())},
          {"p10", us(h.Percentile(10))},
          {"p50", us(h.Percentile(50))},
          {"p90", us(h.Percentile(90))},
          {"p99", us(h.Percentile(99))},
          {"max", us(h.max())},
          {"mean", h.mean() / 1e3},
          {"bunched",
           static_cast<double>(h.CountBelow(quarter_mean)) / static_cast<double>(h.count())}};
}

}  // namespace

RecvStats::RecvStats(uint32_t streams, uint64_t window) : window_(window) {
  streams_.resize(kMaxStreams);
  for (uint32_t i = 0; i < streams && i < kMaxStreams; ++i) {
    streams_[i] = std::make_unique<Stream>(window_);
  }
}

RecvStats::Stream* RecvStats::StreamFor(uint32_t id) noexcept {
  if (id >= streams_.size()) return nullptr;
  std::unique_ptr<Stream>& s = streams_[id];
  if (!s) s = std::make_unique<Stream>(window_);  // first packet of an unexpected stream id
  return s.get();
}

void RecvStats::OnDatagram(const uint8_t* data, size_t len, const RxMeta& meta) noexcept {
  if (received_ == 0) first_rx_ns_ = meta.monotonic_ns;
  last_rx_ns_ = meta.monotonic_ns;
  ++received_;
  bytes_ += len;
  if (meta.ttl >= 0 && meta.ttl <= 255) {
    ttl_min_ = std::min(ttl_min_, meta.ttl);
    ttl_max_ = std::max(ttl_max_, meta.ttl);
    ttl_seen_[meta.ttl >> 6] |= uint64_t{1} << (meta.ttl & 63);
  }
  if (meta.tos >= 0 && meta.tos <= 255) {
    dscp_seen_ |= uint64_t{1} << (meta.tos >> 2);
    ecn_seen_ |= static_cast<uint8_t>(1u << (meta.tos & 3));
  }

  ParsedDatagram d;
  const PayloadStatus st =
      meta.truncated ? PayloadStatus::kBadLength : ParseDatagram(data, len, &d);
  if (st != PayloadStatus::kOk) {
    ++corrupted_;
    ++by_status_[static_cast<size_t>(st)];
    return;
  }
  ++valid_;
  if (d.rtp) ++rtp_;
  Stream* s = StreamFor(d.header.stream);
  if (s == nullptr) {
    ++foreign_;
    return;
  }
  ++s->valid;
  const SeqTracker::Verdict v = s->seq.Observe(d.header.seq);
  if (v == SeqTracker::Verdict::kNew || v == SeqTracker::Verdict::kReordered) ++unique_;
  int64_t latency = meta.realtime_ns - d.header.send_time_ns;
  if (latency < 0) {
    ++negative_latency_;  // clocks disagree (different hosts without PTP)
    latency = 0;
  }
  s->latency_ns.Record(static_cast<uint64_t>(latency));
  latency_ns_.Record(static_cast<uint64_t>(latency));
  if (s->last_rx_ns >= 0 && meta.realtime_ns >= s->last_rx_ns)
    gap_ns_.Record(static_cast<uint64_t>(meta.realtime_ns - s->last_rx_ns));
  s->last_rx_ns = meta.realtime_ns;
}

uint64_t RecvStats::Lost() const {
  uint64_t n = 0;
  for (const auto& s : streams_) {
    if (s) n += s->seq.lost();
  }
  return n;
}

uint64_t RecvStats::Duplicated() const {
  uint64_t n = 0;
  for (const auto& s : streams_) {
    if (s) n += s->seq.duplicated();
  }
  return n;
}

uint64_t RecvStats::Reordered() const {
  uint64_t n = 0;
  for (const auto& s : streams_) {
    if (s) n += s->seq.reordered();
  }
  return n;
}

nlohmann::json RecvStats::ToJson() const {
  const double elapsed_s = static_cast<double>(last_rx_ns_ - first_rx_ns_) / 1e9;
  uint64_t late = 0;
  nlohmann::json streams = nlohmann::json::array();
  for (size_t i = 0; i < streams_.size(); ++i) {
    const Stream* s = streams_[i].get();
    if (s == nullptr) continue;
    late += s->seq.late();
    streams.push_back({{"stream", i},
                       {"received", s->valid},
                       {"unique", s->seq.unique()},
                       {"lost", s->seq.lost()},
                       {"duplicated", s->seq.duplicated()},
                       {"reordered", s->seq.reordered()},
                       {"late", s->seq.late()},
                       {"first_seq", s->seq.started() ? nlohmann::json(s->seq.lowest()) : nullptr},
                       {"last_seq", s->seq.started() ? nlohmann::json(s->seq.highest()) : nullptr},
                       {"latency_us", LatencyJson(s->latency_ns)}});
  }
  nlohmann::json corruption = nlohmann::json::object();
  for (size_t i = 1; i < by_status_.size(); ++i) {
    corruption[PayloadStatusName(static_cast<PayloadStatus>(i))] = by_status_[i];
  }
  nlohmann::json ttl = nullptr;
  if (ttl_max_ >= 0) {
    nlohmann::json values = nlohmann::json::array();
    for (int t = 0; t < 256; ++t) {
      if ((ttl_seen_[t >> 6] >> (t & 63)) & 1) values.push_back(t);
    }
    ttl = {{"min", ttl_min_}, {"max", ttl_max_}, {"values", values}};
  }
  nlohmann::json dscp = nlohmann::json::array();
  for (int v = 0; v < 64; ++v) {
    if ((dscp_seen_ >> v) & 1) dscp.push_back(v);
  }
  nlohmann::json ecn = nlohmann::json::array();
  for (int v = 0; v < 4; ++v) {
    if ((ecn_seen_ >> v) & 1) ecn.push_back(v);
  }
  return {{"received", received_},
          {"valid", valid_},
          {"unique", unique_},
          {"lost", Lost()},
          {"duplicated", Duplicated()},
          {"reordered", Reordered()},
          {"late", late},
          {"corrupted", corrupted_},
          {"corruption", corruption},
          {"foreign_stream", foreign_},
          {"rtp", rtp_},
          {"bytes", bytes_},
          {"elapsed_s", elapsed_s},
          {"pps", elapsed_s > 0 ? static_cast<double>(received_) / elapsed_s : 0.0},
          {"mbps", elapsed_s > 0 ? static_cast<double>(bytes_) * 8 / elapsed_s / 1e6 : 0.0},
          {"latency_us", LatencyJson(latency_ns_)},
          {"negative_latency", negative_latency_},
          {"gap_us", GapJson(gap_ns_)},
          {"ttl", ttl},
          {"dscp", dscp},
          {"ecn", ecn},
          {"streams", streams}};
}

std::string RecvStats::ToText() const {
  const nlohmann::json j = ToJson();
  std::string out = absl::StrFormat(
      "received %d datagrams (%d valid, %d corrupted) in %.3f s: %.0f pps, %.2f Mb/s\n"
      "unique %d, lost %d, duplicated %d, reordered %d, late %d\n",
      received_, valid_, corrupted_, j["elapsed_s"].get<double>(), j["pps"].get<double>(),
      j["mbps"].get<double>(), unique_, j["lost"].get<uint64_t>(), j["duplicated"].get<uint64_t>(),
      j["reordered"].get<uint64_t>(), j["late"].get<uint64_t>());
  if (corrupted_ != 0) {
    std::vector<std::string> parts;
    for (const auto& [name, n] : j["corruption"].items()) {
      if (n.get<uint64_t>() != 0) parts.push_back(absl::StrCat(name, " ", n.get<uint64_t>()));
    }
    absl::StrAppend(&out, "corrupted: ", absl::StrJoin(parts, ", "), "\n");
  }
  if (latency_ns_.count() != 0) {
    const auto& l = j["latency_us"];
    absl::StrAppendFormat(&out, "latency us: p50 %.1f, p99 %.1f, max %.1f\n",
                          l["p50"].get<double>(), l["p99"].get<double>(), l["max"].get<double>());
  }
  if (gap_ns_.count() != 0) {
    const auto& g = j["gap_us"];
    absl::StrAppendFormat(&out,
                          "gaps us: p10 %.1f, p50 %.1f, p90 %.1f, mean %.1f; %.1f%% bunched\n",
                          g["p10"].get<double>(), g["p50"].get<double>(), g["p90"].get<double>(),
                          g["mean"].get<double>(), 100 * g["bunched"].get<double>());
  }
  if (ttl_max_ >= 0) {
    std::vector<int> d;
    for (const auto& v : j["dscp"]) d.push_back(v.get<int>());
    absl::StrAppendFormat(&out, "ttl %d..%d, dscp {%s}\n", ttl_min_, ttl_max_,
                          absl::StrJoin(d, ","));
  }
  if (foreign_ != 0)
    absl::StrAppendFormat(&out, "%d datagrams of stream ids >= %d\n", foreign_, kMaxStreams);
  for (const auto& s : j["streams"]) {
    if (j["streams"].size() < 2) break;
    absl::StrAppendFormat(&out, "  stream %d: unique %d, lost %d, duplicated %d, reordered %d\n",
                          s["stream"].get<uint64_t>(), s["unique"].get<uint64_t>(),
                          s["lost"].get<uint64_t>(), s["duplicated"].get<uint64_t>(),
                          s["reordered"].get<uint64_t>());
  }
  return out;
}

}  // namespace mcr::gen
