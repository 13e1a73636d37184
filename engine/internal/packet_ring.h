#pragma once
// One AF_PACKET capture socket with a TPACKET_V3 receive ring on one interface, owned by one
// shard. Opened from the shard's own thread (after pinning) so the kernel allocates the ring on
// the shard's NUMA node, in shard order, so the fanout member index equals the shard index.

#include <linux/filter.h>
#include <linux/if_packet.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace mcr::engine::internal {

struct RingGeometry {
  uint32_t block_size = 128 * 1024;  // bytes, multiple of the page size
  uint32_t block_count = 64;
  uint32_t block_timeout_ms = 1;     // tp_retire_blk_tov
};

/// How the socket joins the interface's fanout group.
struct FanoutJoin {
  bool enabled = false;            // false with one shard: no group at all
  bool first = false;              // first member: create the group with a kernel-chosen id
  uint16_t id = 0;                 // group id when joining (read back from the first member)
  const std::vector<sock_filter>* program = nullptr;  // PACKET_FANOUT_CBPF program (first only)
};

class PacketRing {
 public:
  /// Opens, filters, maps and binds the socket and joins the fanout group, in the order the
  /// kernel requires (DESIGN.md, "Steering"). Returns the ring or an error naming the step.
  static absl::StatusOr<std::unique_ptr<PacketRing>> Open(int ifindex, const RingGeometry& geo,
                                                          const std::vector<sock_filter>& filter,
                                                          FanoutJoin* join);
  ~PacketRing();
  PacketRing(const PacketRing&) = delete;
  PacketRing& operator=(const PacketRing&) = delete;

  int fd() const { return fd_; }
  int ifindex() const { return ifindex_; }

  /// The next block the kernel has handed to user space, or nullptr. The block stays ours until
  /// ReleaseBlock(); frames in it may be referenced by sends until then.
  tpacket_block_desc* NextBlock() const noexcept {
    auto* bd = reinterpret_cast<tpacket_block_desc*>(map_ + size_t{current_} * block_size_);
    // Acquire: the kernel fills the block, then publishes TP_STATUS_USER.
    uint32_t status = std::atomic_ref<uint32_t>(bd->hdr.bh1.block_status)
                          .load(std::memory_order_acquire);
    return (status & TP_STATUS_USER) ? bd : nullptr;
  }
  /// Hands the current block back to the kernel and advances. Every send pointing into it must
  /// have completed.
  void ReleaseBlock(tpacket_block_desc* bd) noexcept {
    std::atomic_ref<uint32_t>(bd->hdr.bh1.block_status)
        .store(TP_STATUS_KERNEL, std::memory_order_release);
    current_ = (current_ + 1 == block_count_) ? 0 : current_ + 1;
  }

  /// Frames dropped by the kernel since the last call (PACKET_STATISTICS clears on read).
  uint64_t TakeKernelDrops() noexcept;

 private:
  PacketRing() = default;
  int fd_ = -1;
  int ifindex_ = 0;
  uint8_t* map_ = nullptr;
  size_t map_size_ = 0;
  uint32_t block_size_ = 0;
  uint32_t block_count_ = 0;
  uint32_t current_ = 0;
};

using PacketRingPtr = std::unique_ptr<PacketRing>;

}  // namespace mcr::engine::internal
