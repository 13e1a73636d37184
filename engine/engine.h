#pragma once
// The data-plane facade: starts one pinned shard per CPU and turns rule sets into per-shard
// immutable tables. Owned by the daemon's main; every method except Snapshot() is called from the
// control thread only. The engine never logs per packet and never calls into other layers.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/counters.h"
#include "engine/rule.h"

namespace mcr::engine {

enum class IngressMode {
  kRing,  // TPACKET_V3 ring woken by io_uring multishot poll (default; cheapest per packet)
  kRecv,  // io_uring multishot receive into a provided buffer ring (lowest latency)
};

/// Largest TPACKET_V3 block, block count and ring (per capture socket) Engine::Start accepts.
inline constexpr uint64_t kMaxRingBlockSize = uint64_t{256} << 20;
inline constexpr uint64_t kMaxRingBlockCount = 65536;
inline constexpr uint64_t kMaxRingBytes = uint64_t{4} << 30;

/// Checks a ring geometry as Engine::Start does (so that a command line can be refused early):
/// block size a multiple of the page size in 16 KiB..256 MiB, 2..65536 blocks, at most 4 GiB
/// per ring, timeout 1..1000 ms. InvalidArgument naming the value otherwise.
absl::Status ValidateRingOptions(uint64_t block_size, uint64_t block_count, uint64_t timeout_ms);

/// Engine start-up options. Validated by Engine::Start.
struct EngineOptions {
  /// CPUs to run shards on, one shard each, in this order (shard i on cpus[i]). Empty: every CPU
  /// the process may run on.
  std::vector<int> cpus;
  /// Ingress mechanism.
  IngressMode ingress = IngressMode::kRing;
  /// TPACKET_V3 block size in bytes; a multiple of the page size, at least 16 KiB (a block must
  /// hold the largest frame). Default 128 KiB.
  uint32_t ring_block_size = 128 * 1024;
  /// TPACKET_V3 blocks per socket (per shard and input interface). Default 64 (8 MiB ring).
  uint32_t ring_block_count = 64;
  /// TPACKET_V3 block retire timeout in milliseconds: the longest a partly filled block waits
  /// before it is handed to the shard (ring mode latency bound). Default 1 ms.
  uint32_t ring_block_timeout_ms = 1;
  /// Busy polling: after handling frames a shard keeps looking for more this many microseconds
  /// before it sleeps, so frames that follow within that time do not wait for the shard (and
  /// its CPU) to wake up — tens of microseconds on virtual machines. Costs CPU: a shard whose
  /// feed never pauses this long never sleeps. 0 (default) = sleep as soon as there is no work.
  uint32_t busy_poll_us = 0;
  /// Scheduler slice each shard thread asks for, in microseconds: sched_setattr's sched_runtime
  /// for SCHED_OTHER, which EEVDF (Linux 6.12+) turns into an earlier virtual deadline. A shard
  /// with a short slice preempts the thread it wakes up beside instead of waiting for that
  /// thread's slice (kernel default 0.7 ms x (1 + log2 CPUs), e.g. 1.4 ms on 2 CPUs) to end, at
  /// no change to its share of the CPU. Must be 0 or 100..100000 (the kernel's range); 0
  /// (default) leaves the kernel's default. It helps a shard beside bursty work at moderate
  /// rates; it does not stop a receiver on the same CPU from preempting the shard after each
  /// send (docs/PERFORMANCE.md). Older kernels accept and ignore it.
  uint32_t sched_slice_us = 0;
  /// Egress socket send buffer in bytes (SO_SNDBUFFORCE when permitted). Default 4 MiB.
  uint32_t egress_sndbuf = 4 * 1024 * 1024;
};

/// Counter snapshot of one output. `name` is "group:port@interface".
struct OutputStats {
  std::string name;
  OutputSpec spec;
  bool active = false;  // socket open (interface present with an IPv4 address)
  uint64_t packets = 0;
  uint64_t bytes = 0;
  std::array<uint64_t, static_cast<size_t>(EgressError::kCount)> errors{};
};

/// Counter snapshot of one rule.
struct RuleStats {
  RuleSpec spec;
  int shard = 0;
  bool input_up = false;  // input interface present and captured
  int input_ifindex = 0;  // the interface index the capture sockets are bound to; 0 if none
  uint64_t packets = 0;
  uint64_t bytes = 0;
  std::vector<OutputStats> outputs;
};

/// Snapshot of one shard.
struct ShardStats {
  int index = 0;
  int cpu = 0;
  int numa_node = -1;
  size_t rules = 0;
  uint64_t received = 0;  // datagrams taken from the kernel (all interfaces): one per frame, or
                          // each datagram of a frame that carried several (offload_frames)
  uint64_t unmatched = 0;          // well-formed UDP with no rule on this shard
  uint64_t steering_mismatch = 0;  // datagrams whose hash names another shard (group rebuilt)
  /// Drops by reason name ("fragment", "not_udp", "truncated_ip", ...), every reason listed.
  std::vector<std::pair<std::string, uint64_t>> drops;
  /// Kernel drops (PACKET_STATISTICS tp_drops, accumulated: capture ring full, or in recv mode
  /// the socket's receive queue) per input interface name.
  std::vector<std::pair<std::string, uint64_t>> kernel_drops;
  /// Capture socket errors (POLLERR/ENETDOWN wake-ups, e.g. on link down) per input interface.
  std::vector<std::pair<std::string, uint64_t>> socket_errors;
  /// Recv mode: receives that found every buffer of the shard in use (frames wait in the socket
  /// queue meanwhile; any loss then shows in kernel_drops).
  uint64_t no_buffer = 0;
  /// Send system calls of the shard's egress. Datagrams sent ÷ this is how many a call carried
  /// on average (UDP GSO runs): it grows when a shard is behind and takes several blocks at once.
  uint64_t send_calls = 0;
  /// Frames that carried several datagrams — merged by receive offload (GRO), or a local
  /// sender's UDP GSO run that a veth handed over whole — and were split back into them.
  uint64_t offload_frames = 0;
  double busy_ratio = 0;  // share of wall time spent working rather than waiting, last interval
  /// The shard thread's scheduler slice as the kernel reports it (sched_getattr), nanoseconds;
  /// 0 if it could not be read.
  uint64_t sched_slice_ns = 0;
};

struct InterfaceStats {
  std::string name;
  int ifindex = 0;  // 0: does not exist now
  bool up = false;  // exists, administratively and operationally up
};

struct EngineStats {
  std::vector<ShardStats> shards;
  std::vector<RuleStats> rules;
  std::vector<InterfaceStats> interfaces;  // every interface a rule names
};

class Engine {
 public:
  /// Starts the shards (pinned, each allocating its own state after pinning). Fails with a
  /// message naming the problem: a CPU the process may not use, io_uring unavailable, ...
  static absl::StatusOr<std::unique_ptr<Engine>> Start(EngineOptions options);
  /// Stops and joins every shard; closes every socket.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Replaces the running rule set with `rules` (already validated, ids unique). Rules whose spec
  /// is unchanged keep their sockets and counters and lose no packet. An edited rule keeps its
  /// counters if its input is unchanged, and so does each output it still names (same
  /// destination and interface), with its socket if TTL and DSCP come out the same. Returns
  /// once every shard has adopted the new set. On error nothing changed. Control thread only.
  absl::Status ApplyRules(const std::vector<RuleSpec>& rules);

  /// Re-resolves interface names after a link or address change (rtnetlink event): rebuilds
  /// capture sockets of input interfaces that appeared, vanished or were re-created, and output
  /// sockets whose interface or address changed. Rules stay. Control thread only.
  /// `deleted`: indexes of interfaces deleted since the last call (from rtnetlink); those are
  /// rebuilt even if an interface has the same name and index now (re-created, or moved to
  /// another namespace and back), because the kernel unbound their capture sockets.
  void RefreshInterfaces(const std::vector<int>& deleted = {});

  /// Reads every counter. Any thread; takes the registry lock, never blocks a shard.
  EngineStats Snapshot() const;

  /// Which shard owns a rule with this input (the same placement the kernel's fanout computes).
  int ShardFor(uint32_t group, uint16_t port) const;
  size_t shard_count() const;
  const EngineOptions& options() const;

 private:
  class Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

using EnginePtr = std::unique_ptr<Engine>;

}  // namespace mcr::engine
