#pragma once
// AF_PACKET capture sockets, owned by one shard and opened from its own thread (after pinning,
// so the kernel allocates rings and buffers on the shard's NUMA node), in shard order, so the
// fanout member index equals the shard index.
//
// Two ingress mechanisms share the socket set-up:
//  - PacketRing: a TPACKET_V3 receive ring the shard walks block by block (default).
//  - RecvBuffers: an io_uring provided-buffer ring for multishot receive (--ingress recv).

#include <linux/filter.h>
#include <linux/if_packet.h>
#include <unistd.h>

#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

struct io_uring;
struct io_uring_buf_ring;

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

// Steps of OpenCaptureSocket, below.
/// `ip_only`: a SOCK_DGRAM socket, whose captures start at the network header (for interfaces
/// without an Ethernet header); else SOCK_RAW, from the Ethernet header, with a virtio_net_hdr
/// (kVnetHdrLen bytes, PACKET_VNET_HDR) before each frame: in the ring right before tp_mac, in
/// recv mode at the start of the received bytes.
absl::StatusOr<int> CreateFilteredSocket(int ifindex, const std::vector<sock_filter>& filter,
                                         bool ip_only);
absl::Status BindAndJoin(int fd, int ifindex, FanoutJoin* join);
absl::Status CaptureError(const char* step, int ifindex);

/// A capture socket set up in the order the kernel requires (DESIGN.md, "Steering"):
/// socket(protocol 0) → filter → [configure, e.g. the ring] → bind → fanout → fanout program.
/// `configure(fd)` runs between filter and bind and returns the name of the step that failed
/// (errno set) or nullptr. Returns the fd or an error naming the failed step.
template <typename Configure>
absl::StatusOr<int> OpenCaptureSocket(int ifindex, bool ip_only,
                                      const std::vector<sock_filter>& filter, FanoutJoin* join,
                                      Configure&& configure) {
  auto fd = CreateFilteredSocket(ifindex, filter, ip_only);
  if (!fd.ok()) return fd;
  if (const char* step = configure(*fd); step != nullptr) {
    absl::Status st = CaptureError(step, ifindex);
    ::close(*fd);
    return st;
  }
  if (absl::Status st = BindAndJoin(*fd, ifindex, join); !st.ok()) {
    ::close(*fd);
    return st;
  }
  return fd;
}

/// Frames dropped by the kernel on `fd` since the last call (PACKET_STATISTICS clears on read).
uint64_t TakeKernelDrops(int fd) noexcept;

class PacketRing {
 public:
  /// `ip_only`: frames from the network header on (see CreateFilteredSocket).
  static absl::StatusOr<std::unique_ptr<PacketRing>> Open(int ifindex, bool ip_only,
                                                          const RingGeometry& geo,
                                                          const std::vector<sock_filter>& filter,
                                                          FanoutJoin* join);
  ~PacketRing();
  PacketRing(const PacketRing&) = delete;
  PacketRing& operator=(const PacketRing&) = delete;

  int fd() const { return fd_; }
  int ifindex() const { return ifindex_; }

  /// The block `ahead` places after the oldest one not yet released, if the kernel has handed
  /// it to user space, else nullptr. The kernel hands blocks over in ring order, so blocks
  /// 0..ahead-1 must have been seen first. A block stays ours until ReleaseBlocks(); frames in
  /// it may be referenced by sends until then. `ahead` < block_count().
  tpacket_block_desc* PeekBlock(uint32_t ahead = 0) const noexcept {
    assert(ahead < block_count_);
    uint32_t i = current_ + ahead;
    if (i >= block_count_) i -= block_count_;
    auto* bd = reinterpret_cast<tpacket_block_desc*>(map_ + size_t{i} * block_size_);
    // Acquire: the kernel fills the block, then publishes TP_STATUS_USER.
    uint32_t status = std::atomic_ref<uint32_t>(bd->hdr.bh1.block_status)
                          .load(std::memory_order_acquire);
    return (status & TP_STATUS_USER) ? bd : nullptr;
  }
  /// Hands the `n` oldest held blocks back to the kernel, in ring order. Every send pointing
  /// into them must have completed.
  void ReleaseBlocks(uint32_t n) noexcept {
    for (uint32_t k = 0; k < n; ++k) {
      auto* bd = reinterpret_cast<tpacket_block_desc*>(map_ + size_t{current_} * block_size_);
      std::atomic_ref<uint32_t>(bd->hdr.bh1.block_status)
          .store(TP_STATUS_KERNEL, std::memory_order_release);
      current_ = (current_ + 1 == block_count_) ? 0 : current_ + 1;
    }
  }
  uint32_t block_count() const { return block_count_; }

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

/// Buffers for io_uring multishot receive on one capture socket: a provided-buffer ring
/// registered with the shard's io_uring under group id `bgid`. The kernel picks a buffer per
/// frame; the shard hands it back with Recycle() once every send pointing into it completed.
class RecvBuffers {
 public:
  static constexpr uint32_t kCount = 512;  // frames in flight per socket (power of two)

  /// Buffer size for an interface MTU: the largest frame with its virtio_net_hdr, Ethernet
  /// header and two VLAN tags, rounded up to a cache line. A longer frame arrives cut short and
  /// counts as truncated: offload_truncated when it carries several datagrams (receive offload,
  /// a local sender's UDP GSO), truncated_ip when the MTU was raised since (the engine then
  /// reopens the input).
  static uint32_t SizeFor(uint32_t mtu);

  /// Allocates and registers kCount buffers of `size` bytes. Returns them or an error (e.g.
  /// ENOMEM, EINVAL on kernels without buffer rings).
  static absl::StatusOr<std::unique_ptr<RecvBuffers>> Register(io_uring* ring, uint16_t bgid,
                                                               uint32_t size);
  /// Unregisters (the receive using them must have ended) and frees.
  ~RecvBuffers();
  RecvBuffers(const RecvBuffers&) = delete;
  RecvBuffers& operator=(const RecvBuffers&) = delete;

  uint16_t bgid() const { return bgid_; }
  const uint8_t* Buffer(uint32_t bid) const { return data_ + size_t{bid} * size_; }
  /// Queues buffer `bid` for return; Publish() makes the queued ones visible to the kernel.
  void Recycle(uint32_t bid) noexcept;
  void Publish() noexcept;

 private:
  RecvBuffers() = default;
  io_uring* uring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t br_size_ = 0;
  uint8_t* data_ = nullptr;
  uint16_t bgid_ = 0;
  uint32_t size_ = 0;
  uint32_t pending_ = 0;
};

using PacketRingPtr = std::unique_ptr<PacketRing>;
using RecvBuffersPtr = std::unique_ptr<RecvBuffers>;

}  // namespace mcr::engine::internal
