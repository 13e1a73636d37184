#pragma once
// A shard: one pinned thread running one io_uring loop over the capture rings of every input
// interface, the rule table for the flows the kernel's fanout steers to it, and the egress
// batcher. Everything it owns is created on its own thread after pinning (NUMA first touch).
// Other threads talk to it only through Execute() (bounded SPSC queues + eventfds) and read its
// counters.

#include <linux/filter.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "engine/counters.h"
#include "engine/internal/packet_ring.h"
#include "engine/internal/rule_table.h"
#include "engine/packet.h"
#include "engine/spsc_queue.h"

namespace mcr::engine::internal {

/// Counters of one shard; single writer (the shard), read by anyone.
struct alignas(64) ShardCounters {
  RelaxedCounter received;
  RelaxedCounter unmatched;
  RelaxedCounter steering_mismatch;
  RelaxedCounter sendmsg_calls;
  RelaxedCounter busy_ppm;  // gauge: busy share of the last interval, parts per million
  RelaxedCounter no_buffer; // recv mode: receives that found no free buffer (frames wait in the
                            // socket queue; losses show up as kernel drops)
  RelaxedCounter offload_frames;  // frames that carried several datagrams and were split
  std::array<RelaxedCounter, static_cast<size_t>(ParseResult::kCount)> drops;
};

/// Per (shard, input interface) counters; owned by the Engine, written by the shard.
struct alignas(64) IngressCounters {
  RelaxedCounter kernel_drops;  // PACKET_STATISTICS tp_drops, accumulated
  RelaxedCounter socket_errors; // POLLERR wake-ups (ENETDOWN on link down, ...)
};

/// A request from the control thread to a shard, answered in place.
struct ShardCommand {
  enum class Kind { kSwapTable, kOpenInput, kCloseInput, kStop };
  Kind kind = Kind::kStop;
  // kSwapTable: in — the new table; out — the old one, for the control thread to free.
  RuleTablePtr table;
  // kOpenInput / kCloseInput.
  int ifindex = 0;
  bool ip_only = false;  // kOpenInput: the interface has no Ethernet header (tun, WireGuard...)
  uint32_t mtu = 0;      // kOpenInput: the interface's MTU (recv mode sizes its buffers by it)
  IngressCounters* ingress_counters = nullptr;
  FanoutJoin fanout;  // kOpenInput: in/out (the first member reports the group id)
  // out
  absl::Status status;
};
using ShardCommandPtr = std::unique_ptr<ShardCommand>;

struct ShardConfig {
  int index = 0;
  int cpu = 0;
  int num_shards = 1;
  bool recv_mode = false;  // --ingress recv: multishot receive instead of TPACKET_V3 rings
  uint64_t busy_poll_ns = 0;  // keep looking for work this long after a frame before sleeping
  uint64_t sched_slice_ns = 0;  // scheduler slice to ask for (EngineOptions); 0 = kernel default
  RingGeometry ring;
  const std::vector<sock_filter>* socket_filter = nullptr;  // outlives the shard
};

class Shard {
 public:
  explicit Shard(const ShardConfig& config);
  ~Shard();  // stops the thread if running
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  /// Control thread: starts the thread, pins it, creates its ring. Returns the first error.
  absl::Status Start();
  /// Control thread: runs `cmd` on the shard between two passes and returns it answered.
  ShardCommandPtr Execute(ShardCommandPtr cmd);
  /// Control thread: stops and joins the thread.
  void Stop();

  const ShardCounters& counters() const { return counters_; }
  int cpu() const { return config_.cpu; }
  int index() const { return config_.index; }
  int numa_node() const { return numa_node_; }
  /// The thread's scheduler slice as the kernel reported it when the shard started (ns; 0 if
  /// unknown). Written before Start() returns, constant after.
  uint64_t sched_slice_ns() const { return sched_slice_ns_; }
  /// Rules in the current table (updated on swap).
  size_t rule_count() const { return rule_count_.load(std::memory_order_relaxed); }

 private:
  class Loop;  // the thread's state; lives on the shard thread's stack

  void Run();

  ShardConfig config_;
  int numa_node_ = -1;
  uint64_t sched_slice_ns_ = 0;
  std::thread thread_;
  int wake_fd_ = -1;   // control -> shard: commands waiting
  int reply_fd_ = -1;  // shard -> control: replies waiting
  std::atomic<size_t> rule_count_{0};
  // Requests and replies. Producer and consumer of each are one thread apiece.
  SpscQueue<ShardCommandPtr, 16> requests_;
  SpscQueue<ShardCommandPtr, 16> replies_;
  ShardCounters counters_;
  // Start-up handshake.
  std::atomic<int> started_{0};  // 0 pending, 1 ok, -1 failed
  absl::Status start_status_;
};

}  // namespace mcr::engine::internal
