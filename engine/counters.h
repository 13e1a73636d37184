#pragma once
// Data-plane counters. Each counter has exactly one writer (the shard that owns it) and any number
// of readers (control thread, metrics scrape). The writer updates with a relaxed load + store — no
// locked instruction on the hot path; readers see a value that never decreases. Blocks are
// alignas(64) so two writers never share a cache line.

#include <array>
#include <atomic>
#include <cstdint>

namespace mcr::engine {

/// A single-writer monotonically increasing counter.
class RelaxedCounter {
 public:
  /// Writer only (the owning shard).
  void Add(uint64_t n) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  /// Writer only: sets an absolute value (for gauges such as the busy ratio).
  void Set(uint64_t v) noexcept { value_.store(v, std::memory_order_relaxed); }
  /// Any thread.
  uint64_t Load() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

/// Why a datagram was not sent on one output. Names are Prometheus label values.
enum class EgressError : uint8_t {
  kWouldBlock,      // EAGAIN/EWOULDBLOCK: socket send buffer full
  kNoBuffers,       // ENOBUFS: device queue full (reported because IP_RECVERR is set)
  kNetworkDown,     // ENETDOWN / ENETUNREACH / EHOSTUNREACH
  kRefused,         // ECONNREFUSED: ICMP port unreachable from a unicast peer
  kTooBig,          // EMSGSIZE: larger than the egress path allows
  kNoInterface,     // output interface missing or without an IPv4 address: output inactive
  kOther,           // any other errno
  kCount
};
const char* EgressErrorName(EgressError e) noexcept;
EgressError EgressErrorFromErrno(int err) noexcept;

/// Per-rule counters, written by the shard that owns the rule.
struct alignas(64) RuleCounters {
  RelaxedCounter packets;
  RelaxedCounter bytes;  // UDP payload bytes
};

/// Per-output counters, written by the shard that owns the rule.
struct alignas(64) OutputCounters {
  RelaxedCounter packets;
  RelaxedCounter bytes;  // UDP payload bytes
  std::array<RelaxedCounter, static_cast<size_t>(EgressError::kCount)> errors;
};

}  // namespace mcr::engine
