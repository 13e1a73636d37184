// HOT PATH (UdpSink::Transmit): no allocation, no exceptions; one sendmmsg per call (a second
// only the one time the kernel refuses GSO).
#include "bench/mcrgen/udp_sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "absl/strings/str_format.h"
#include "bench/mcrgen/frame.h"

namespace mcr::gen {
namespace {

// Send buffer asked for: a few batches of jumbo datagrams, so sendmmsg rarely blocks.
constexpr int kSendBuffer = 4 << 20;

class UdpSink final : public PacketSink {
 public:
  /// gso: UDP_SEGMENT is set on fd (to config.size).
  UdpSink(int fd, const SendConfig& config, bool gso) : fd_(fd), size_(config.size) {
    // With UDP_SEGMENT set on the socket, one message longer than `size` leaves as consecutive
    // datagrams of `size` bytes each: one trip through the UDP/IP stack for a whole run instead
    // of one per datagram, several times cheaper. The kernel caps a message at 64 segments
    // (UDP_MAX_SEGMENTS before 6.x) and at the 64 KiB of one IPv4 datagram.
    max_run_ = gso ? std::min<uint32_t>(64, kMaxGsoBytes / config.size) : 1;
    const uint32_t batch = config.batch;
    buffer_.assign(static_cast<size_t>(batch) * config.size, 0);
    slots_.resize(batch);
    iov_.resize(batch);
    msgs_.resize(batch);
    run_length_.resize(batch);
    // Slots are contiguous, so a run of consecutive slots is one iovec.
    for (uint32_t i = 0; i < batch; ++i) {
      slots_[i] = buffer_.data() + static_cast<size_t>(i) * config.size;
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
      msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    }
    for (uint32_t s = 0; s < config.streams; ++s) {
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(static_cast<uint16_t>(config.port + s));
      to.sin_addr.s_addr = htonl(StreamAddress(config.group, s));
      destinations_.push_back(to);
    }
  }
  ~UdpSink() override { close(fd_); }

  std::span<uint8_t* const> slots() const override { return slots_; }
  const char* mode() const override { return max_run_ > 1 ? "udp+gso" : "udp"; }

  int Transmit(const uint32_t* streams, uint32_t first, uint32_t n) noexcept override {
    int r = TransmitRuns(streams, first, n);
    if (r == -EIO && max_run_ > 1) {
      // GSO needs checksum offload on the route's device (or an xfrm-free path); without it
      // the kernel refuses with EIO. Fall back to a message per datagram for good.
      const int zero = 0;
      setsockopt(fd_, IPPROTO_UDP, UDP_SEGMENT, &zero, sizeof(zero));
      max_run_ = 1;
      r = TransmitRuns(streams, first, n);
    }
    return r;
  }

 private:
  int TransmitRuns(const uint32_t* streams, uint32_t first, uint32_t n) noexcept {
    // One message per run of consecutive slots to the same stream (runs of 1 without GSO).
    uint32_t runs = 0;
    for (uint32_t i = first; i < first + n;) {
      uint32_t len = 1;
      while (len < max_run_ && i + len < first + n && streams[i + len] == streams[i]) ++len;
      msghdr& h = msgs_[runs].msg_hdr;
      h.msg_name = &destinations_[streams[i]];
      iov_[runs].iov_base = slots_[i];
      iov_[runs].iov_len = static_cast<size_t>(len) * size_;
      run_length_[runs] = len;
      ++runs;
      i += len;
    }
    const int r = sendmmsg(fd_, msgs_.data(), runs, 0);
    if (r < 0) return -errno;
    if (r == 0) return -EAGAIN;
    int slots = 0;
    for (int m = 0; m < r; ++m) slots += static_cast<int>(run_length_[m]);
    return slots;
  }

  static constexpr uint32_t kMaxGsoBytes = 65507;  // largest UDP payload of one IPv4 datagram

  const int fd_;
  const uint32_t size_;
  uint32_t max_run_ = 1;
  std::vector<uint8_t> buffer_;
  std::vector<uint8_t*> slots_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
  std::vector<uint32_t> run_length_;
  std::vector<sockaddr_in> destinations_;
};

absl::Status SetInt(int fd, int level, int opt, int value, const char* what) {
  if (setsockopt(fd, level, opt, &value, sizeof(value)) < 0) {
    return absl::ErrnoToStatus(errno, absl::StrFormat("setsockopt(%s, %d)", what, value));
  }
  return absl::OkStatus();
}

absl::Status Configure(int fd, const SendConfig& config, const InterfaceInfo& iface) {
  if (config.size + kIpv4HeaderSize + kUdpHeaderSize > static_cast<size_t>(iface.mtu)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--size %d does not fit interface %s's MTU %d: use --size <= %d or raise the MTU",
        config.size, iface.name, iface.mtu, iface.mtu - 28));
  }
  std::optional<uint32_t> source = config.source_ip ? config.source_ip : iface.ipv4;
  if (!source) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "interface %s has no IPv4 address: give --source-ip, or use --raw", iface.name));
  }
  // Not fatal: the socket works with the default, just blocks sooner.
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kSendBuffer, sizeof(kSendBuffer)) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSendBuffer, sizeof(kSendBuffer));
  }
  if (IsMulticast(config.group)) {
    ip_mreqn mreq{};
    mreq.imr_ifindex = iface.index;
    mreq.imr_address.s_addr = htonl(*source);
    if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) < 0) {
      return absl::ErrnoToStatus(errno, absl::StrFormat("IP_MULTICAST_IF %s", iface.name));
    }
    if (absl::Status s =
            SetInt(fd, IPPROTO_IP, IP_MULTICAST_TTL, config.ttl.value_or(1), "IP_MULTICAST_TTL");
        !s.ok()) {
      return s;
    }
  } else {
    if (config.ttl) {
      if (absl::Status s = SetInt(fd, IPPROTO_IP, IP_TTL, *config.ttl, "IP_TTL"); !s.ok()) {
        return s;
      }
    }
    // Best effort (needs CAP_NET_RAW): keeps unicast on --interface even if routing disagrees.
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface.name.c_str(),
               static_cast<socklen_t>(iface.name.size()));
  }
  if (absl::Status s = SetInt(fd, IPPROTO_IP, IP_TOS, config.dscp << 2, "IP_TOS"); !s.ok()) {
    return s;
  }

  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(config.source_port);
  local.sin_addr.s_addr = htonl(*source);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof(local)) < 0) {
    const int err = errno;
    if (err == EADDRNOTAVAIL) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--source-ip %s is not an address of this host; use --raw to send from any address",
          FormatIpv4(*source)));
    }
    return absl::ErrnoToStatus(
        err, absl::StrFormat("bind %s:%d", FormatIpv4(*source), config.source_port));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PacketSinkPtr> OpenUdpSink(const SendConfig& config, const InterfaceInfo& iface) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "socket(AF_INET, SOCK_DGRAM)");
  if (absl::Status s = Configure(fd, config, iface); !s.ok()) {
    close(fd);
    return s;
  }
  // UDP_SEGMENT exists since Linux 4.18; where it does not, send a message per datagram.
  const int segment = static_cast<int>(config.size);
  const bool gso =
      config.gso && setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &segment, sizeof(segment)) == 0;
  return std::make_unique<UdpSink>(fd, config, gso);
}

}  // namespace mcr::gen
