#include "engine/internal/packet_ring.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <linux/if_ether.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "engine/packet.h"
#include "engine/steering.h"  // PACKET_FANOUT_FLAG_* for older headers

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace mcr::engine::internal {

absl::Status CaptureError(const char* step, int ifindex) {
  return absl::UnavailableError(
      absl::StrFormat("capture socket on ifindex %d: %s: %s", ifindex, step, strerror(errno)));
}

absl::StatusOr<int> CreateFilteredSocket(int ifindex, const std::vector<sock_filter>& filter,
                                         bool ip_only) {
  // Protocol 0: no frame is queued before bind() names the interface.
  int fd = socket(AF_PACKET, (ip_only ? SOCK_DGRAM : SOCK_RAW) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return CaptureError("socket(AF_PACKET)", ifindex);
  sock_fprog prog{static_cast<unsigned short>(filter.size()),
                  const_cast<sock_filter*>(filter.data())};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) {
    absl::Status st = CaptureError("SO_ATTACH_FILTER", ifindex);
    close(fd);
    return st;
  }
  // Honoured without fanout; with fanout the group flag does the job (DESIGN.md), and the
  // filter's pkt_type test covers kernels without either.
  int one = 1;
  (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  // A virtio_net_hdr before every frame says whether it carries several datagrams (receive
  // offload, or a local sender's UDP GSO run that a veth handed over whole) and their size, so
  // the shard can split it (OffloadSegmentSize). Before the ring: the kernel refuses it after.
  // Ethernet inputs only: a SOCK_DGRAM socket refuses the option (EINVAL). Before Linux 6.2 the
  // header cannot describe a UDP GSO frame: the kernel then drops the frame (tp_drops; in recv
  // mode the receive fails with EINVAL) and, in the ring, leaves its slot without
  // TP_STATUS_USER, which the shard skips.
  if (!ip_only && setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) != 0) {
    absl::Status st = CaptureError("PACKET_VNET_HDR", ifindex);
    close(fd);
    return st;
  }
  return fd;
}

absl::Status BindAndJoin(int fd, int ifindex, FanoutJoin* join) {
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&ll), sizeof ll) != 0)
    return CaptureError("bind", ifindex);
  if (!join->enabled) return absl::OkStatus();
  uint32_t flags = PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
  if (join->first) flags |= PACKET_FANOUT_FLAG_UNIQUEID;  // never share an id with strangers
  uint32_t arg = (join->first ? 0u : join->id) | (flags << 16);
  if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0)
    return CaptureError("PACKET_FANOUT", ifindex);
  if (join->first) {
    uint32_t got = 0;
    socklen_t len = sizeof got;
    if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &got, &len) != 0)
      return CaptureError("getsockopt PACKET_FANOUT", ifindex);
    join->id = static_cast<uint16_t>(got & 0xffff);
    sock_fprog fp{static_cast<unsigned short>(join->program->size()),
                  const_cast<sock_filter*>(join->program->data())};
    if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, &fp, sizeof fp) != 0)
      return CaptureError("PACKET_FANOUT_DATA", ifindex);
  }
  return absl::OkStatus();
}

uint64_t TakeKernelDrops(int fd) noexcept {
  tpacket_stats_v3 st{};
  socklen_t len = sizeof st;
  if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) return 0;
  return st.tp_drops;
}

absl::StatusOr<std::unique_ptr<PacketRing>> PacketRing::Open(int ifindex, bool ip_only,
                                                             const RingGeometry& geo,
                                                             const std::vector<sock_filter>& filter,
                                                             FanoutJoin* join) {
  std::unique_ptr<PacketRing> r(new PacketRing);
  r->ifindex_ = ifindex;
  // Version and ring before joining: configuring the ring after joining moves the socket to the
  // last fanout index.
  auto fd = OpenCaptureSocket(ifindex, ip_only, filter, join, [&](int s) -> const char* {
    int version = TPACKET_V3;
    if (setsockopt(s, SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0)
      return "PACKET_VERSION";
    tpacket_req3 req{};
    req.tp_block_size = geo.block_size;
    req.tp_block_nr = geo.block_count;
    req.tp_frame_size = 2048;  // V3 packs frames of any size; this only has to divide the block
    req.tp_frame_nr = geo.block_size / req.tp_frame_size * geo.block_count;
    req.tp_retire_blk_tov = geo.block_timeout_ms;
    if (setsockopt(s, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) return "PACKET_RX_RING";
    const size_t size = size_t{geo.block_size} * geo.block_count;
    void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, s, 0);
    if (map == MAP_FAILED) return "mmap ring";
    r->map_ = static_cast<uint8_t*>(map);
    r->map_size_ = size;
    return nullptr;
  });
  if (!fd.ok()) return fd.status();  // r's destructor unmaps a ring mapped before the failure
  r->fd_ = *fd;
  r->block_size_ = geo.block_size;
  r->block_count_ = geo.block_count;
  return r;
}

PacketRing::~PacketRing() {
  if (map_) munmap(map_, map_size_);
  if (fd_ >= 0) close(fd_);
}

uint32_t RecvBuffers::SizeFor(uint32_t mtu) {
  // The virtio_net_hdr, Ethernet, and two VLAN tags left in band.
  constexpr uint32_t kLinkHeaders = kVnetHdrLen + 14 + 2 * 4;
  const uint32_t frame = std::clamp<uint32_t>(mtu, 1500, 65535) + kLinkHeaders;
  return (frame + 63) & ~uint32_t{63};
}

absl::StatusOr<std::unique_ptr<RecvBuffers>> RecvBuffers::Register(io_uring* ring, uint16_t bgid,
                                                                   uint32_t size) {
  std::unique_ptr<RecvBuffers> b(new RecvBuffers);
  b->uring_ = ring;
  b->bgid_ = bgid;
  b->size_ = size;
  // liburing 2.3 has no io_uring_setup_buf_ring: map the ring ourselves (page aligned).
  b->br_size_ = kCount * sizeof(io_uring_buf);
  void* br = mmap(nullptr, b->br_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (br == MAP_FAILED) return absl::ResourceExhaustedError("mmap buffer ring");
  b->br_ = static_cast<io_uring_buf_ring*>(br);
  void* data = mmap(nullptr, size_t{kCount} * size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) return absl::ResourceExhaustedError("mmap receive buffers");
  b->data_ = static_cast<uint8_t*>(data);
  io_uring_buf_ring_init(b->br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(b->br_);
  reg.ring_entries = kCount;
  reg.bgid = bgid;
  if (int ret = io_uring_register_buf_ring(ring, &reg, 0); ret < 0) {
    b->uring_ = nullptr;  // nothing to unregister
    return absl::UnavailableError(
        absl::StrFormat("io_uring_register_buf_ring: %s (--ingress recv needs Linux 6.0 or newer: "
                        "provided buffer rings and multishot receive)",
                        strerror(-ret)));
  }
  for (uint32_t i = 0; i < kCount; ++i) b->Recycle(i);
  b->Publish();
  return b;
}

RecvBuffers::~RecvBuffers() {
  if (uring_) io_uring_unregister_buf_ring(uring_, bgid_);
  if (data_) munmap(data_, size_t{kCount} * size_);
  if (br_) munmap(br_, br_size_);
}

void RecvBuffers::Recycle(uint32_t bid) noexcept {
  io_uring_buf_ring_add(br_, data_ + size_t{bid} * size_, size_, static_cast<uint16_t>(bid),
                        io_uring_buf_ring_mask(kCount), static_cast<int>(pending_++));
}

void RecvBuffers::Publish() noexcept {
  // io_uring_buf_ring_advance is a release store of the tail: the entries written above become
  // visible to the kernel together.
  if (pending_) io_uring_buf_ring_advance(br_, static_cast<int>(pending_));
  pending_ = 0;
}

}  // namespace mcr::engine::internal
