// HOT PATH (the batch loop in Sender::Run): no allocation, no exceptions, no logging; the only
// syscalls are the sink's sendmmsg and the pacer's sleeps. tests/mcrgen/hot_path_test.cc checks
// the allocation part.
#include "bench/mcrgen/sender.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "bench/mcrgen/pacer.h"
#include "bench/mcrgen/payload.h"

namespace mcr::gen {
namespace {
// How long transient send errors may persist before the run fails.
constexpr int64_t kMaxStallNs = 2'000'000'000;
}  // namespace

double SendSummary::pps() const {
  return elapsed_ns > 0 ? static_cast<double>(packets) * 1e9 / static_cast<double>(elapsed_ns)
                        : 0.0;
}

double SendSummary::mbps() const {
  return elapsed_ns > 0 ? static_cast<double>(bytes) * 8e3 / static_cast<double>(elapsed_ns) : 0.0;
}

nlohmann::json SendSummary::ToJson(const SendConfig& config) const {
  nlohmann::json streams = nlohmann::json::array();
  for (size_t i = 0; i < stream_packets.size(); ++i) {
    streams.push_back({{"stream", i},
                       {"group", FormatIpv4(StreamAddress(config.group, static_cast<uint32_t>(i)))},
                       {"port", config.port + i},
                       {"sent", stream_packets[i]}});
  }
  return {{"sent", packets},
          {"bytes", bytes},
          {"elapsed_s", static_cast<double>(elapsed_ns) / 1e9},
          {"pps", pps()},
          {"mbps", mbps()},
          {"retries", retries},
          {"interrupted", interrupted},
          {"mode", mode},
          {"rtp", config.rtp},
          {"size", config.size},
          {"rate", config.rate_pps},
          {"streams", streams}};
}

std::string SendSummary::ToText(const SendConfig& config) const {
  return absl::StrFormat(
      "sent %d packets (%d payload bytes, %s, %d stream%s) in %.3f s: %.0f pps, %.2f Mb/s%s%s\n",
      packets, bytes, mode, config.streams, config.streams == 1 ? "" : "s",
      static_cast<double>(elapsed_ns) / 1e9, pps(), mbps(),
      retries ? absl::StrFormat(", %d transient send errors retried", retries) : "",
      interrupted ? " (interrupted)" : "");
}

Sender::Sender(const SendConfig& config, PacketSink& sink, Clock& clock)
    : config_(config), sink_(sink), clock_(clock) {}

absl::StatusOr<SendSummary> Sender::Run(const std::atomic<bool>& stop) {
  PacerConfig pc;
  pc.rate_pps = config_.rate_pps;
  pc.max_batch = static_cast<uint32_t>(sink_.slots().size());
  pc.sleep_only = config_.pace_sleep;
  Pacer pacer(pc, clock_);

  SendSummary summary;
  summary.stream_packets.assign(config_.streams, 0);
  // Everything the loop touches is allocated before the first packet.
  std::vector<uint32_t> slot_stream(sink_.slots().size(), 0);
  const std::span<uint8_t* const> slots = sink_.slots();
  const uint32_t streams = config_.streams;
  const uint64_t count = config_.count;
  const auto stopped = [&] { return stop.load(std::memory_order_relaxed); };

  const int64_t start = pacer.Start();
  int64_t last_send = start;
  uint64_t sent = 0;
  absl::Status error;
  while (count == 0 || sent < count) {
    const uint64_t limit = count == 0 ? UINT64_MAX : count - sent;
    const uint32_t n = pacer.WaitForBatch(sent, limit, stop);
    if (n == 0) break;  // stop requested
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t index = sent + i;
      PayloadHeader h;
      h.stream = static_cast<uint32_t>(index % streams);
      h.seq = index / streams;
      // One clock read per packet: the receiver's latency is measured from this instant.
      h.send_time_ns = clock_.RealtimeNs();
      slot_stream[i] = h.stream;
      EncodeDatagram(h, config_.rtp, slots[i], config_.size);
    }
    uint32_t done = 0;
    int64_t stalled_since = 0;  // first failed attempt of the current stall; 0 = progressing
    while (done < n) {
      const int r = sink_.Transmit(slot_stream.data(), done, n - done);
      if (r > 0) {
        done += static_cast<uint32_t>(r);
        stalled_since = 0;
        continue;
      }
      if (r == -EAGAIN || r == -ENOBUFS || r == -EINTR) {
        // A full device queue clears within microseconds; one that never does (carrier down,
        // a device that drops everything) must not hang the sender.
        ++summary.retries;
        if (stopped()) break;
        const int64_t now = clock_.MonotonicNs();
        if (stalled_since == 0) {
          stalled_since = now;
        } else if (now - stalled_since > kMaxStallNs) {
          error = absl::ErrnoToStatus(
              -r, absl::StrFormat("sending on %s made no progress for %d s", config_.interface,
                                  kMaxStallNs / 1'000'000'000));
          break;
        }
        clock_.Relax();
        continue;
      }
      error = absl::ErrnoToStatus(-r, absl::StrFormat("sending on %s", config_.interface));
      break;
    }
    for (uint32_t i = 0; i < done; ++i) ++summary.stream_packets[slot_stream[i]];
    sent += done;
    last_send = clock_.MonotonicNs();
    if (!error.ok() || done < n) break;
  }
  if (!error.ok()) return error;
  summary.packets = sent;
  summary.bytes = sent * config_.size;
  summary.elapsed_ns = last_send - start;
  summary.interrupted = stopped();
  summary.mode = sink_.mode();
  return summary;
}

}  // namespace mcr::gen
