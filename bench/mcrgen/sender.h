#pragma once
// The send loop of `mcrgen send`: paces (Pacer), builds one datagram per packet (payload.h) in
// the transmit path's buffers and hands them over a batch at a time. The transmit path is a seam
// (PacketSink) so that tests run the loop against a fake with a fake clock.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/mcrgen/clock.h"
#include "bench/mcrgen/config.h"
#include "nlohmann/json.hpp"

namespace mcr::gen {

/// A transmit path: UDP socket (udp_sink.h), AF_PACKET socket (raw_sink.h) or a test fake.
/// Owned by whoever runs the send loop; one thread. Calls are per batch, not per packet.
class PacketSink {
 public:
  PacketSink() = default;
  PacketSink(const PacketSink&) = delete;
  PacketSink& operator=(const PacketSink&) = delete;
  virtual ~PacketSink() = default;
  /// One payload buffer per batch slot, each SendConfig::size bytes, valid for the sink's life.
  /// The send loop writes the UDP payload of slot i's next packet into slots()[i].
  virtual std::span<uint8_t* const> slots() const = 0;
  /// Sends slots [first, first + n); slot i goes to stream streams[i]. Returns how many were
  /// accepted from `first` on (>= 1; fewer than n is a partial send) or -errno. -EAGAIN,
  /// -ENOBUFS and -EINTR are transient: the loop retries the rest.
  virtual int Transmit(const uint32_t* streams, uint32_t first, uint32_t n) noexcept = 0;
  /// How packets leave, for the summary: "udp", "udp+gso", "raw".
  virtual const char* mode() const = 0;
};
using PacketSinkPtr = std::unique_ptr<PacketSink>;

/// What a send run did. Rates are over the time from the first deadline to the last send.
struct SendSummary {
  uint64_t packets = 0;
  uint64_t bytes = 0;  // UDP payload bytes
  int64_t elapsed_ns = 0;
  uint64_t retries = 0;      // transient errors (EAGAIN/ENOBUFS/EINTR) retried
  bool interrupted = false;  // stopped by SIGINT/SIGTERM
  std::string mode;          // PacketSink::mode() at the end of the run
  std::vector<uint64_t> stream_packets;

  double pps() const;
  double mbps() const;  // UDP payload megabits per second
  nlohmann::json ToJson(const SendConfig& config) const;
  std::string ToText(const SendConfig& config) const;
};

/// Owned by main; Run on one thread. Borrows the sink and the clock for its lifetime.
class Sender {
 public:
  Sender(const SendConfig& config, PacketSink& sink, Clock& clock);
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;

  /// Sends config.count packets (forever when 0) until `stop` becomes true. Returns the summary,
  /// or the error of a non-transient send failure (e.g. ENETUNREACH, EPERM).
  absl::StatusOr<SendSummary> Run(const std::atomic<bool>& stop);

 private:
  const SendConfig config_;
  PacketSink& sink_;
  Clock& clock_;
};

}  // namespace mcr::gen
