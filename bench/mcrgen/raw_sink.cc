// HOT PATH (RawSink::Transmit): no allocation, no exceptions; one sendmmsg per call (a second
// only the one time the kernel refuses GSO).
#include "bench/mcrgen/raw_sink.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/mcrgen/frame.h"

namespace mcr::gen {
namespace {

constexpr int kSendBuffer = 4 << 20;

// struct virtio_net_hdr (linux/virtio_net.h, legacy layout, native byte order), declared here
// because that header does not compile as C++ (a member named `class`).
struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;      // Ethernet + IP + UDP headers
  uint16_t gso_size;     // payload bytes per datagram
  uint16_t csum_start;   // where the UDP checksum starts (the UDP header)
  uint16_t csum_offset;  // of the checksum field from csum_start
};
static_assert(sizeof(VirtioNetHdr) == 10);
constexpr uint8_t kVirtioNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVirtioGsoUdpL4 = 5;   // VIRTIO_NET_HDR_GSO_UDP_L4 (Linux 6.2)

class RawSink final : public PacketSink {
 public:
  /// vnet: PACKET_VNET_HDR is on, so every message starts with a virtio_net_hdr.
  RawSink(int fd, const SendConfig& config, const InterfaceInfo& iface,
          const std::vector<FrameSpec>& specs, bool vnet)
      : fd_(fd),
        size_(config.size),
        frame_len_(kFrameHeadersSize + config.size),
        udp_checksum_(config.udp_checksum),
        vnet_(vnet) {
    // A run of datagrams to one stream goes out as one frame that the kernel segments (like UDP
    // GSO on a socket): one trip through AF_PACKET, and one softirq pass for the whole run on a
    // veth peer, instead of one per datagram. Same 64-segment / 64 KiB caps as sockets. GSO
    // needs the kernel to fill in checksums, so --no-udp-checksum turns it off.
    if (vnet_ && config.gso && config.udp_checksum) {
      max_run_ = std::min<uint32_t>(64, kMaxGsoBytes / config.size);
    }
    gso_header_.flags = kVirtioNeedsCsum;
    gso_header_.gso_type = kVirtioGsoUdpL4;
    // Host byte order: AF_PACKET reads the header as a legacy (native-endian) virtio header.
    gso_header_.hdr_len = static_cast<uint16_t>(kFrameHeadersSize);
    gso_header_.gso_size = static_cast<uint16_t>(config.size);
    gso_header_.csum_start = static_cast<uint16_t>(kEthHeaderSize + kIpv4HeaderSize);
    gso_header_.csum_offset = 6;  // UDP checksum field within the UDP header
    // Each frame starts on a cache line; the payload (what the send loop writes) follows the
    // 42 header bytes directly, so a lone datagram is one contiguous iovec.
    const size_t stride = (frame_len_ + 63) / 64 * 64;
    const uint32_t batch = config.batch;
    buffer_.assign(static_cast<size_t>(batch) * stride, 0);
    slots_.resize(batch);
    iov_.resize(2 * static_cast<size_t>(batch));  // per message: header + its payloads
    msgs_.resize(batch);
    run_length_.resize(batch);
    address_.sll_family = AF_PACKET;
    address_.sll_protocol = htons(ETH_P_IP);
    address_.sll_ifindex = iface.index;
    address_.sll_halen = 6;
    for (uint32_t i = 0; i < batch; ++i) {
      slots_[i] = buffer_.data() + static_cast<size_t>(i) * stride + kFrameHeadersSize;
      msgs_[i].msg_hdr.msg_name = &address_;
      msgs_[i].msg_hdr.msg_namelen = sizeof(address_);
    }
    templates_.resize(specs.size() * kFrameHeadersSize);
    for (size_t s = 0; s < specs.size(); ++s) {
      WriteFrameHeaders(specs[s], templates_.data() + s * kFrameHeadersSize);
    }
  }
  ~RawSink() override { close(fd_); }

  std::span<uint8_t* const> slots() const override { return slots_; }
  const char* mode() const override { return max_run_ > 1 ? "raw+gso" : "raw"; }

  int Transmit(const uint32_t* streams, uint32_t first, uint32_t n) noexcept override {
    int r = TransmitRuns(streams, first, n);
    if (r == -EINVAL && max_run_ > 1) {
      // Kernels before 6.2 do not know VIRTIO_NET_HDR_GSO_UDP_L4 and refuse the frame: send a
      // frame per datagram from now on, past the qdisc (best effort: it only saves time).
      max_run_ = 1;
      const int one = 1;
      setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
      r = TransmitRuns(streams, first, n);
    }
    return r;
  }

 private:
  static constexpr uint32_t kMaxGsoBytes = 65507;  // largest UDP payload of one IPv4 datagram

  int TransmitRuns(const uint32_t* streams, uint32_t first, uint32_t n) noexcept {
    uint32_t messages = 0;
    size_t iov = 0;
    for (uint32_t i = first; i < first + n;) {
      uint32_t len = 1;
      while (len < max_run_ && i + len < first + n && streams[i + len] == streams[i]) ++len;
      uint8_t* frame = slots_[i] - kFrameHeadersSize;
      std::memcpy(frame, templates_.data() + size_t{streams[i]} * kFrameHeadersSize,
                  kFrameHeadersSize);
      msghdr& h = msgs_[messages].msg_hdr;
      h.msg_iov = &iov_[iov];
      if (vnet_) {
        iov_[iov++] = {len > 1 ? &gso_header_ : &plain_header_, sizeof(VirtioNetHdr)};
      }
      iov_[iov++] = {frame, frame_len_};
      if (len > 1) {
        FinishGsoFrame(frame, size_t{len} * size_, ip_id_);
        for (uint32_t k = 1; k < len; ++k) iov_[iov++] = {slots_[i + k], size_};
      } else {
        FinishFrame(frame, frame_len_, ip_id_, udp_checksum_);
      }
      // A fresh IP id per datagram, as a host stack sends them (RFC 6864 lets DF datagrams
      // repeat ids, but capture tools flag it); the segmenter numbers a run consecutively.
      ip_id_ = static_cast<uint16_t>(ip_id_ + len);
      h.msg_iovlen = static_cast<size_t>(&iov_[iov] - h.msg_iov);
      run_length_[messages++] = len;
      i += len;
    }
    const int r = sendmmsg(fd_, msgs_.data(), messages, 0);
    if (r < 0) return -errno;
    if (r == 0) return -EAGAIN;
    int sent = 0;
    for (int m = 0; m < r; ++m) sent += static_cast<int>(run_length_[m]);
    return sent;
  }

  const int fd_;
  const uint32_t size_;
  const size_t frame_len_;
  const bool udp_checksum_;
  const bool vnet_;
  uint32_t max_run_ = 1;
  uint16_t ip_id_ = 0;
  VirtioNetHdr gso_header_{};
  VirtioNetHdr plain_header_{};  // all zero: no offload requested, checksums are in the frame
  sockaddr_ll address_{};
  std::vector<uint8_t> buffer_;
  std::vector<uint8_t*> slots_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
  std::vector<uint32_t> run_length_;
  std::vector<uint8_t> templates_;  // kFrameHeadersSize bytes per stream
};

absl::StatusOr<std::vector<FrameSpec>> BuildSpecs(const SendConfig& config,
                                                  const InterfaceInfo& iface) {
  if (config.size + kIpv4HeaderSize + kUdpHeaderSize > static_cast<size_t>(iface.mtu)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--size %d does not fit interface %s's MTU %d: use --size <= %d or raise the MTU",
        config.size, iface.name, iface.mtu, iface.mtu - 28));
  }
  std::optional<uint32_t> source = config.source_ip ? config.source_ip : iface.ipv4;
  if (!source) {
    return absl::FailedPreconditionError(
        absl::StrFormat("interface %s has no IPv4 address: give --source-ip", iface.name));
  }
  const bool multicast = IsMulticast(config.group);
  MacAddress unicast_mac{};
  if (!multicast) {
    if (config.dst_mac) {
      unicast_mac = *config.dst_mac;
    } else {
      absl::StatusOr<uint32_t> hop = NextHop(iface, config.group);
      if (!hop.ok()) return hop.status();
      absl::StatusOr<MacAddress> mac = ResolveNeighbour(iface, *hop, absl::Seconds(1));
      if (!mac.ok()) return mac.status();
      unicast_mac = *mac;
    }
  }
  std::vector<FrameSpec> specs;
  for (uint32_t s = 0; s < config.streams; ++s) {
    FrameSpec spec;
    spec.src_mac = iface.mac;
    spec.src_ip = *source;
    spec.dst_ip = StreamAddress(config.group, s);
    if (config.dst_mac) {
      spec.dst_mac = *config.dst_mac;
    } else {
      spec.dst_mac = multicast ? MulticastMac(spec.dst_ip) : unicast_mac;
    }
    spec.dst_port = static_cast<uint16_t>(config.port + s);
    spec.src_port = config.source_port != 0 ? config.source_port : config.port;
    spec.ttl = config.ttl.value_or(multicast ? 1 : 64);
    spec.tos = static_cast<uint8_t>(config.dscp << 2);
    spec.payload_len = static_cast<uint16_t>(config.size);
    specs.push_back(spec);
  }
  return specs;
}

}  // namespace

absl::StatusOr<PacketSinkPtr> OpenRawSink(const SendConfig& config, const InterfaceInfo& iface) {
  absl::StatusOr<std::vector<FrameSpec>> specs = BuildSpecs(config, iface);
  if (!specs.ok()) return specs.status();
  // Protocol 0: the socket receives nothing, so the kernel does not copy every frame on the
  // interface to it.
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    if (err == EPERM || err == EACCES) {
      return absl::PermissionDeniedError("--raw needs CAP_NET_RAW (run as root)");
    }
    return absl::ErrnoToStatus(err, "socket(AF_PACKET, SOCK_RAW)");
  }
  sockaddr_ll local{};
  local.sll_family = AF_PACKET;
  local.sll_protocol = 0;
  local.sll_ifindex = iface.index;
  const int one = 1;
  if (bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) < 0) {
    const int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, absl::StrFormat("bind AF_PACKET to %s", iface.name));
  }
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kSendBuffer, sizeof(kSendBuffer)) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSendBuffer, sizeof(kSendBuffer));
  }
  // GSO frames need the virtio header, and checksums that the kernel or the NIC completes.
  const bool vnet = config.gso && config.udp_checksum &&
                    setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) == 0;
  // Without GSO, frames skip the qdisc (PACKET_QDISC_BYPASS: straight to the driver). With GSO
  // they cannot: the direct path (__dev_direct_xmit) drops any frame it would have to segment,
  // so they take the device queue like any locally sent packet (noqueue on veth and other
  // virtual devices). RawSink switches to the bypass if it falls back to a frame per datagram.
  if (!vnet && setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0) {
    const int err = errno;
    close(fd);
    return absl::ErrnoToStatus(err, "PACKET_QDISC_BYPASS");
  }
  return std::make_unique<RawSink>(fd, config, iface, *specs, vnet);
}

}  // namespace mcr::gen
