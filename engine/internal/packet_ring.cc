#include "engine/internal/packet_ring.h"

#include <linux/if_ether.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

// Newer than some installed headers.
#ifndef PACKET_FANOUT_FLAG_UNIQUEID
#define PACKET_FANOUT_FLAG_UNIQUEID 0x2000
#endif
#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000  // Linux 6.2; older kernels ignore it
#endif
#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace mcr::engine::internal {
namespace {

absl::Status Fail(const char* step, int ifindex) {
  return absl::UnavailableError(
      absl::StrFormat("capture socket on ifindex %d: %s: %s", ifindex, step, strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PacketRing>> PacketRing::Open(int ifindex, const RingGeometry& geo,
                                                             const std::vector<sock_filter>& filter,
                                                             FanoutJoin* join) {
  std::unique_ptr<PacketRing> r(new PacketRing);
  r->ifindex_ = ifindex;
  // Protocol 0: no frame is queued before bind() names the interface.
  r->fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (r->fd_ < 0) return Fail("socket(AF_PACKET)", ifindex);
  int fd = r->fd_;

  sock_fprog prog{static_cast<unsigned short>(filter.size()),
                  const_cast<sock_filter*>(filter.data())};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0)
    return Fail("SO_ATTACH_FILTER", ifindex);
  // Honoured without fanout; with fanout the group flag below does the job (DESIGN.md).
  int one = 1;
  (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);

  // Version and ring before joining: configuring the ring after joining moves the socket to the
  // last fanout index.
  int version = TPACKET_V3;
  if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0)
    return Fail("PACKET_VERSION", ifindex);
  tpacket_req3 req{};
  req.tp_block_size = geo.block_size;
  req.tp_block_nr = geo.block_count;
  req.tp_frame_size = 2048;  // V3 packs frames of any size; this only has to divide the block
  req.tp_frame_nr = geo.block_size / req.tp_frame_size * geo.block_count;
  req.tp_retire_blk_tov = geo.block_timeout_ms;
  if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0)
    return Fail("PACKET_RX_RING", ifindex);
  r->map_size_ = size_t{geo.block_size} * geo.block_count;
  void* map = mmap(nullptr, r->map_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    r->map_size_ = 0;
    return Fail("mmap ring", ifindex);
  }
  r->map_ = static_cast<uint8_t*>(map);
  r->block_size_ = geo.block_size;
  r->block_count_ = geo.block_count;

  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0) return Fail("bind", ifindex);

  if (join->enabled) {
    uint32_t flags = PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
    if (join->first) flags |= PACKET_FANOUT_FLAG_UNIQUEID;  // never share an id with strangers
    uint32_t arg = (join->first ? 0u : join->id) | (flags << 16);
    if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0)
      return Fail("PACKET_FANOUT", ifindex);
    if (join->first) {
      uint32_t got = 0;
      socklen_t len = sizeof got;
      if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &got, &len) != 0)
        return Fail("getsockopt PACKET_FANOUT", ifindex);
      join->id = static_cast<uint16_t>(got & 0xffff);
      sock_fprog fp{static_cast<unsigned short>(join->program->size()),
                    const_cast<sock_filter*>(join->program->data())};
      if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, &fp, sizeof fp) != 0)
        return Fail("PACKET_FANOUT_DATA", ifindex);
    }
  }
  return r;
}

PacketRing::~PacketRing() {
  if (map_) munmap(map_, map_size_);
  if (fd_ >= 0) close(fd_);
}

uint64_t PacketRing::TakeKernelDrops() noexcept {
  tpacket_stats_v3 st{};
  socklen_t len = sizeof st;
  if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return 0;
  return st.tp_drops;
}

}  // namespace mcr::engine::internal
