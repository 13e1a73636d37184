#pragma once
// Egress: connected UDP sockets per output (opened by the control thread) and the shard's batcher
// that sends runs of equal-size payloads as one UDP GSO sendmsg whose iovecs point into the
// receive ring (no copy).

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/internal/rule_table.h"
#include "engine/rule.h"

namespace mcr::engine::internal {

/// Largest number of datagrams in one UDP GSO call (UDP_MAX_SEGMENTS is 64 before Linux 6.9).
inline constexpr uint32_t kMaxGsoSegments = 64;
/// Largest total UDP payload of one GSO call.
inline constexpr uint32_t kMaxGsoBytes = 65507;

/// Opens the connected, non-blocking UDP socket of one output: bound to the interface (and its
/// address, which becomes the source), TTL, DSCP, no multicast loop, IP_RECVERR so a full device
/// queue is reported as ENOBUFS. Control thread. Returns the fd or an error naming the cause:
/// FailedPrecondition when the interface is not ready (down, gone, no address),
/// Unavailable otherwise.
absl::StatusOr<int> OpenOutputSocket(const OutputSpec& spec, int ifindex, in_addr if_addr,
                                     uint32_t sndbuf);

/// Collects datagrams per output during one pass over received frames and sends them at Flush().
/// Owned and used by one shard thread only.
///
/// HOT PATH: no locks, no allocation (capacity is reserved by Resize on table swap), no
/// exceptions, no logging. One sendmsg per run of up to 64 equal-size datagrams per output.
class EgressBatcher {
 public:
  /// Shard, on table swap: make room for `num_outputs` output slots. May allocate.
  void Resize(size_t num_outputs);

  /// Queues one payload for one output. The memory must stay valid until Flush() returns.
  void Add(const OutputEntry* out, const uint8_t* data, uint32_t len, uint8_t tos) noexcept {
    Slot& s = slots_[out->slot];
    if (!s.listed) {  // once per Flush: a slot emptied early by a full run stays listed
      s.listed = true;
      s.out = out;
      dirty_[num_dirty_++] = out->slot;
    }
    s.items[s.count++] = Item{data, len, tos};
    if (s.count == kMaxGsoSegments) FlushSlot(s);
  }

  /// Sends everything queued. After it returns no kernel call refers to queued memory.
  void Flush() noexcept;

  /// sendmsg calls made (for the shard's counters).
  uint64_t syscalls() const { return syscalls_; }

 private:
  struct Item {
    const uint8_t* data;
    uint32_t len;
    uint8_t tos;
  };
  struct Slot {
    const OutputEntry* out = nullptr;
    uint32_t count = 0;
    bool listed = false;  // in dirty_ until the next Flush
    // Largest GSO segment the route took, learnt from a refused run (IP_MTU - 28); reset by
    // Resize on the next table swap.
    uint32_t route_segment_cap = UINT32_MAX;
    std::array<Item, kMaxGsoSegments> items;
  };
  void FlushSlot(Slot& s) noexcept;
  /// Sends one run. Returns false when the kernel refused it as a GSO send and it went out
  /// datagram by datagram instead (the route's MTU is below the segment size).
  bool SendRun(const OutputEntry* out, const Item* items, uint32_t n, bool gso) noexcept;

  std::vector<Slot> slots_;
  std::vector<uint32_t> dirty_;
  size_t num_dirty_ = 0;
  uint64_t syscalls_ = 0;
};

}  // namespace mcr::engine::internal
