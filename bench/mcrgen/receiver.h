#pragma once
// The receive side of `mcrgen recv`: one UDP socket per stream, joined on the interface, drained
// with recvmmsg into RecvStats until --expect, --timeout, --idle-exit or a signal.

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/mcrgen/clock.h"
#include "bench/mcrgen/config.h"
#include "bench/mcrgen/netdev.h"
#include "bench/mcrgen/recv_stats.h"
#include "nlohmann/json.hpp"

namespace mcr::gen {

enum class ExitReason : uint8_t { kExpect, kTimeout, kIdle, kSignal };
const char* ExitReasonName(ExitReason r) noexcept;

/// Owned by main; Run on one thread.
class Receiver {
 public:
  /// Opens, binds and joins every stream's socket: SO_REUSEADDR, bound to (group + i, port + i)
  /// so that only that group's datagrams arrive, IP_MULTICAST_ALL off (only what this socket
  /// joined), (*,G) or (S,G) join on the interface, IP_RECVTTL, IP_RECVTOS and a
  /// large receive buffer. When this returns, the receiver is ready for traffic.
  static absl::StatusOr<std::unique_ptr<Receiver>> Open(const RecvConfig& config,
                                                        const InterfaceInfo& iface);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  /// Receives until an exit condition; `clock` times --timeout, --idle-exit and throughput.
  absl::StatusOr<ExitReason> Run(const std::atomic<bool>& stop, Clock& clock);

  const RecvStats& stats() const { return stats_; }
  /// The full report: RecvStats::ToJson plus the run's own fields (exit reason, expect, buffer
  /// size and kernel socket drops).
  nlohmann::json Report(ExitReason reason) const;
  std::string ReportText(ExitReason reason) const;
  /// Datagrams the kernel dropped because a socket's receive buffer was full (SO_MEMINFO).
  uint64_t SocketDrops() const;
  /// Exit status for the report: 0 ok, 1 when --expect was not met or anything was corrupted.
  int ExitCode() const;

 private:
  Receiver(const RecvConfig& config, std::vector<int> fds, int rcvbuf);
  void Drain(int count, Clock& clock) noexcept;

  const RecvConfig config_;
  const std::vector<int> fds_;  // one per stream
  const int rcvbuf_;            // effective SO_RCVBUF reported by the kernel
  RecvStats stats_;
  // recvmmsg state, allocated once.
  std::vector<uint8_t> buffers_;
  std::vector<uint8_t> control_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
};

}  // namespace mcr::gen
