#pragma once
// HOT PATH (OnDatagram runs for every datagram received): no exceptions, no syscalls; the only
// allocation is the state of a stream id seen for the first time (once per stream, not per
// packet; the configured streams are allocated up front). tests/mcrgen/hot_path_test.cc checks it.
//
// Accounting of everything `mcrgen recv` reports: per datagram validation (payload.h), per stream
// sequence accounting (SeqTracker) and latency (LogHistogram), and what the IP header showed
// (TTL, DSCP, ECN). Latency = receive time - send timestamp, both CLOCK_REALTIME, so it includes
// time spent queued in the socket buffer: what an application would see. Spacing: the gaps
// between the receive times of consecutive datagrams of a stream (one histogram over all
// streams), which shows whether a relay kept a paced stream's spacing or sends it in bursts.
//
// Owned by the Receiver (or a test); one thread.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench/mcrgen/config.h"
#include "bench/mcrgen/histogram.h"
#include "bench/mcrgen/payload.h"
#include "bench/mcrgen/seq_tracker.h"
#include "nlohmann/json.hpp"

namespace mcr::gen {

/// What the socket told about one datagram besides its bytes.
struct RxMeta {
  int64_t realtime_ns = 0;   // receive time, CLOCK_REALTIME (latency)
  int64_t monotonic_ns = 0;  // receive time, CLOCK_MONOTONIC (throughput)
  int ttl = -1;              // IP TTL from IP_RECVTTL; -1 when the kernel gave none
  int tos = -1;              // IP TOS byte from IP_RECVTOS; -1 when the kernel gave none
  bool truncated = false;    // MSG_TRUNC: larger than the receive buffer
};

class RecvStats {
 public:
  /// Stream ids 0..kMaxStreams-1 are tracked; valid datagrams of higher ids count as foreign.
  /// `streams` of them are allocated now; `window` as in SeqTracker.
  RecvStats(uint32_t streams, uint64_t window);
  RecvStats(const RecvStats&) = delete;
  RecvStats& operator=(const RecvStats&) = delete;

  void OnDatagram(const uint8_t* data, size_t len, const RxMeta& meta) noexcept;

  uint64_t received() const { return received_; }
  uint64_t corrupted() const { return corrupted_; }
  uint64_t unique() const { return unique_; }
  uint64_t Lost() const;
  uint64_t Duplicated() const;
  uint64_t Reordered() const;
  uint64_t corruption(PayloadStatus s) const { return by_status_[static_cast<size_t>(s)]; }

  /// The report (see README.md for every key).
  nlohmann::json ToJson() const;
  std::string ToText() const;

 private:
  struct Stream {
    explicit Stream(uint64_t window) : seq(window) {}
    SeqTracker seq;
    LogHistogram latency_ns;
    uint64_t valid = 0;       // valid datagrams, including duplicates and late ones
    int64_t last_rx_ns = -1;  // receive time (realtime) of the stream's previous datagram
  };
  Stream* StreamFor(uint32_t id) noexcept;

  const uint64_t window_;
  std::vector<std::unique_ptr<Stream>> streams_;  // index = stream id; null until seen
  LogHistogram latency_ns_;                       // all streams
  LogHistogram gap_ns_;                           // spacing within each stream, all streams
  uint64_t received_ = 0;
  uint64_t bytes_ = 0;
  uint64_t valid_ = 0;
  uint64_t unique_ = 0;
  uint64_t corrupted_ = 0;
  uint64_t foreign_ = 0;
  uint64_t rtp_ = 0;
  uint64_t negative_latency_ = 0;
  std::array<uint64_t, static_cast<size_t>(PayloadStatus::kCount)> by_status_{};
  int64_t first_rx_ns_ = 0;
  int64_t last_rx_ns_ = 0;
  int ttl_min_ = 256;
  int ttl_max_ = -1;
  std::array<uint64_t, 4> ttl_seen_{};  // bitmap over 0..255
  uint64_t dscp_seen_ = 0;              // bitmap over 0..63
  uint8_t ecn_seen_ = 0;                // bitmap over 0..3
};

}  // namespace mcr::gen
