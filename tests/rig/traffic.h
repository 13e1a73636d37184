#pragma once
// Traffic helpers for tests that relay real packets between namespaces (tests/rig/
// netns_fixture.h): UDP senders and receivers, and hand-built Ethernet frames sent through
// AF_PACKET for what a UDP socket cannot send (any source address, malformed shapes). Sockets
// belong to the namespace of the thread that creates them (open them inside a NetnsScope).

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <stdexcept>
#include <vector>

#include "gtest/gtest.h"

namespace mcr::testing {

inline bool IsMulticastAddr(uint32_t addr_net_order) {
  return (reinterpret_cast<const uint8_t*>(&addr_net_order)[0] & 0xf0) == 0xe0;
}

inline uint32_t Addr(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

// Payload: 8-byte sequence, 4-byte flow id, then a pattern derived from both.
inline std::vector<uint8_t> MakePayload(uint64_t seq, uint32_t flow, size_t size) {
  // The sequence number and flow id take the first 12 bytes.
  if (size < 12) throw std::invalid_argument("MakePayload: size below 12 bytes");
  std::vector<uint8_t> p(size);
  memcpy(p.data(), &seq, 8);
  memcpy(p.data() + 8, &flow, 4);
  for (size_t i = 12; i < size; ++i) p[i] = static_cast<uint8_t>(seq * 31 + flow * 7 + i);
  return p;
}

struct Received {
  std::vector<uint8_t> payload;
  int ttl = -1;
  int tos = -1;
  uint32_t src = 0;  // source address, network byte order
  uint16_t src_port = 0;  // host byte order
};

class Receiver {
 public:
  // Joins `group` (multicast) or binds a local unicast address, on `ifname`, in the caller's
  // namespace (the socket stays in it).
  Receiver(const char* group, uint16_t port, const char* ifname) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int one = 1, buf = 64 << 20;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    setsockopt(fd_, IPPROTO_IP, IP_RECVTTL, &one, sizeof one);
    setsockopt(fd_, IPPROTO_IP, IP_RECVTOS, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = Addr(group);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << strerror(errno);
    if (IsMulticastAddr(Addr(group))) {
      ip_mreqn m{};
      m.imr_multiaddr.s_addr = Addr(group);
      m.imr_ifindex = static_cast<int>(if_nametoindex(ifname));
      EXPECT_EQ(setsockopt(fd_, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m), 0) << strerror(errno);
    }
  }
  ~Receiver() { close(fd_); }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Collects datagrams until `n` arrived or `idle_ms` passed without one.
  std::vector<Received> Collect(size_t n, int idle_ms = 1500) {
    std::vector<Received> out;
    // Any UDP datagram fits; each Received keeps only its own bytes (tests collect 100k+).
    std::vector<uint8_t> buf(65536);
    while (out.size() < n) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, idle_ms) <= 0) break;
      Received r;
      iovec iov{buf.data(), buf.size()};
      alignas(cmsghdr) char ctl[256];
      sockaddr_in from{};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof from;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = ctl;
      msg.msg_controllen = sizeof ctl;
      ssize_t len = recvmsg(fd_, &msg, 0);
      if (len < 0) break;
      r.payload.assign(buf.begin(), buf.begin() + len);
      r.src = from.sin_addr.s_addr;
      r.src_port = ntohs(from.sin_port);
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != IPPROTO_IP) continue;
        if (c->cmsg_type == IP_TTL) memcpy(&r.ttl, CMSG_DATA(c), sizeof(int));
        if (c->cmsg_type == IP_TOS) r.tos = *reinterpret_cast<uint8_t*>(CMSG_DATA(c));
      }
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  int fd_ = -1;
};

class Sender {
 public:
  Sender(const char* ifname, int tos = 0) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ip_mreqn m{};
    m.imr_ifindex = static_cast<int>(if_nametoindex(ifname));
    setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
    int ttl = 8;
    setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
    setsockopt(fd_, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  }
  ~Sender() { close(fd_); }
  Sender(const Sender&) = delete;
  Sender& operator=(const Sender&) = delete;
  void Send(const char* dst, uint16_t port, const std::vector<uint8_t>& payload) {
    ASSERT_EQ(TrySend(dst, port, payload), static_cast<ssize_t>(payload.size())) << strerror(errno);
  }
  // sendto's result, for floods that expect the device queue to refuse some sends.
  ssize_t TrySend(const char* dst, uint16_t port, const std::vector<uint8_t>& payload) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = Addr(dst);
    return sendto(fd_, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&sa),
                  sizeof sa);
  }
  // UDP GSO: a send of N x `segment` bytes leaves as N datagrams, split by the device in one
  // softirq run. 0 turns it off.
  void SetGso(int segment) {
    ASSERT_EQ(setsockopt(fd_, SOL_UDP, UDP_SEGMENT, &segment, sizeof segment), 0)
        << strerror(errno);
  }

 private:
  int fd_ = -1;
};

// Paces bursts so the veth backlog (netdev_max_backlog, 1000 by default) never overflows.
inline void Pace(uint64_t i) {
  if (i % 64 == 63) std::this_thread::sleep_for(std::chrono::microseconds(700));
}

// Sends hand-built Ethernet frames through AF_PACKET: any source address, any malformation.
class RawSender {
 public:
  explicit RawSender(const char* ifname) {
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    ifindex_ = static_cast<int>(if_nametoindex(ifname));
    ifreq ifr{};
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    ioctl(fd_, SIOCGIFHWADDR, &ifr);
    memcpy(src_mac_, ifr.ifr_hwaddr.sa_data, 6);
  }
  ~RawSender() { close(fd_); }
  RawSender(const RawSender&) = delete;
  RawSender& operator=(const RawSender&) = delete;

  // A well-formed IPv4/UDP frame from `src` to the multicast group `dst`; tests may break it
  // before sending it.
  std::vector<uint8_t> Frame(const char* src, const char* dst, uint16_t port,
                             const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> f(14 + 20 + 8 + payload.size());
    const uint32_t d = Addr(dst);
    const uint8_t* db = reinterpret_cast<const uint8_t*>(&d);
    const uint8_t mac[6] = {0x01, 0x00, 0x5e, static_cast<uint8_t>(db[1] & 0x7f), db[2], db[3]};
    memcpy(f.data(), mac, 6);
    memcpy(f.data() + 6, src_mac_, 6);
    f[12] = 0x08;
    f[13] = 0x00;
    // Headers are built in aligned locals and copied: the frame offsets are not aligned.
    iphdr ip{};
    ip.version = 4;
    ip.ihl = 5;
    ip.tot_len = htons(static_cast<uint16_t>(20 + 8 + payload.size()));
    ip.ttl = 16;
    ip.protocol = IPPROTO_UDP;
    ip.saddr = Addr(src);
    ip.daddr = d;
    uint16_t words[10];
    memcpy(words, &ip, sizeof words);
    uint32_t sum = 0;
    for (uint16_t w : words) sum += w;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    ip.check = static_cast<uint16_t>(~sum);
    memcpy(f.data() + 14, &ip, sizeof ip);
    udphdr udp{};
    udp.source = htons(4000);
    udp.dest = htons(port);
    udp.len = htons(static_cast<uint16_t>(8 + payload.size()));
    memcpy(f.data() + 34, &udp, sizeof udp);
    memcpy(f.data() + 42, payload.data(), payload.size());
    return f;
  }
  void Send(const std::vector<uint8_t>& frame) {
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_ifindex = ifindex_;
    ll.sll_halen = 6;
    memcpy(ll.sll_addr, frame.data(), 6);
    ASSERT_EQ(sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&ll),
                     sizeof ll),
              static_cast<ssize_t>(frame.size()))
        << strerror(errno);
  }

 private:
  int fd_ = -1;
  int ifindex_ = 0;
  uint8_t src_mac_[6] = {};
};

}  // namespace mcr::testing
