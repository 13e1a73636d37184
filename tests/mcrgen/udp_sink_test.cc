// UdpSink against real loopback sockets: what leaves must be exactly the datagrams the send loop
// wrote, one per slot, in order, whether runs go out as GSO messages or one by one.
#include "bench/mcrgen/udp_sink.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "bench/mcrgen/payload.h"

namespace mcr::gen {
namespace {

constexpr uint32_t kLoopback = 0x7F000001;

// `count` UDP sockets bound to consecutive ports on 127.0.0.1.
class Listeners {
 public:
  explicit Listeners(int count) {
    for (int attempt = 0; attempt < 50 && fds_.empty(); ++attempt) {
      const auto base = static_cast<uint16_t>(20000 + (getpid() * 7 + attempt * 101) % 40000);
      for (int i = 0; i < count; ++i) {
        const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(base + i));
        a.sin_addr.s_addr = htonl(kLoopback);
        const int big = 8 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
        // Delivery may lag the send when softirqs run in ksoftirqd: block, but not forever.
        const timeval limit{10, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
        if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
          close(fd);
          Close();
          break;
        }
        fds_.push_back(fd);
      }
      if (!fds_.empty()) port_ = base;
    }
  }
  ~Listeners() { Close(); }
  bool ok() const { return !fds_.empty(); }
  uint16_t port() const { return port_; }
  // Next datagram on socket i; empty when none arrives (within 10 s, or at once with
  // MSG_DONTWAIT in flags).
  std::vector<uint8_t> Receive(int i, int flags = 0) {
    std::vector<uint8_t> buf(65536);
    const ssize_t n = recv(fds_[i], buf.data(), buf.size(), flags);
    buf.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return buf;
  }

 private:
  void Close() {
    for (int fd : fds_) close(fd);
    fds_.clear();
  }
  std::vector<int> fds_;
  uint16_t port_ = 0;
};

SendConfig LoopbackConfig(uint16_t port, uint32_t streams, bool gso) {
  SendConfig c;
  c.group = kLoopback;
  c.port = port;
  c.interface = "lo";
  c.size = 1200;
  c.streams = streams;
  c.batch = 64;
  c.gso = gso;
  return c;
}

void SendBatch(PacketSink& sink, const SendConfig& c, uint64_t first_index) {
  std::vector<uint32_t> streams(c.batch);
  for (uint32_t i = 0; i < c.batch; ++i) {
    const uint64_t n = first_index + i;
    streams[i] = static_cast<uint32_t>(n % c.streams);
    EncodeDatagram({streams[i], n / c.streams, 0}, false, sink.slots()[i], c.size);
  }
  uint32_t done = 0;
  while (done < c.batch) {
    const int r = sink.Transmit(streams.data(), done, c.batch - done);
    ASSERT_GT(r, 0) << "errno " << -r;
    done += static_cast<uint32_t>(r);
  }
}

class UdpSinkTest : public testing::TestWithParam<bool> {};

TEST_P(UdpSinkTest, OneDatagramPerSlotInOrder) {
  const bool gso = GetParam();
  Listeners l(1);
  ASSERT_TRUE(l.ok());
  absl::StatusOr<InterfaceInfo> lo = LookupInterface("lo");
  if (!lo.ok() || !lo->ipv4) GTEST_SKIP() << "no loopback with an IPv4 address here";
  const SendConfig c = LoopbackConfig(l.port(), 1, gso);
  absl::StatusOr<PacketSinkPtr> sink = OpenUdpSink(c, *lo);
  ASSERT_TRUE(sink.ok()) << sink.status();
  if (gso) {
    EXPECT_STREQ((*sink)->mode(), "udp+gso");  // 64 x 1200 B = two GSO messages (54 + 10)
  } else {
    EXPECT_STREQ((*sink)->mode(), "udp");
  }
  SendBatch(**sink, c, 0);
  SendBatch(**sink, c, 64);
  for (uint64_t n = 0; n < 128; ++n) {
    const std::vector<uint8_t> d = l.Receive(0);
    ASSERT_EQ(d.size(), 1200u) << n;
    ParsedDatagram p;
    ASSERT_EQ(ParseDatagram(d.data(), d.size(), &p), PayloadStatus::kOk) << n;
    EXPECT_EQ(p.header.seq, n);
  }
  EXPECT_TRUE(l.Receive(0, MSG_DONTWAIT).empty());
}

TEST_P(UdpSinkTest, StreamsGoToConsecutivePorts) {
  Listeners l(3);
  ASSERT_TRUE(l.ok());
  absl::StatusOr<InterfaceInfo> lo = LookupInterface("lo");
  if (!lo.ok() || !lo->ipv4) GTEST_SKIP() << "no loopback with an IPv4 address here";
  const SendConfig c = LoopbackConfig(l.port(), 3, GetParam());
  absl::StatusOr<PacketSinkPtr> sink = OpenUdpSink(c, *lo);
  ASSERT_TRUE(sink.ok()) << sink.status();
  SendBatch(**sink, c, 0);
  for (int s = 0; s < 3; ++s) {
    const uint64_t expected = s == 0 ? 22 : 21;  // 64 packets round robin
    for (uint64_t seq = 0; seq < expected; ++seq) {
      const std::vector<uint8_t> d = l.Receive(s);
      ParsedDatagram p;
      ASSERT_EQ(ParseDatagram(d.data(), d.size(), &p), PayloadStatus::kOk) << s << " " << seq;
      EXPECT_EQ(p.header.stream, static_cast<uint32_t>(s));
      EXPECT_EQ(p.header.seq, seq);
    }
    EXPECT_TRUE(l.Receive(s, MSG_DONTWAIT).empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Gso, UdpSinkTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& i) {
                           return i.param ? "Gso" : "NoGso";
                         });

TEST(UdpSinkErrors, OversizedPayloadNamesTheMtu) {
  InterfaceInfo fake;
  fake.name = "fake0";
  fake.mtu = 1500;
  fake.ipv4 = kLoopback;
  SendConfig c = LoopbackConfig(5000, 1, true);
  c.size = 1473;
  absl::StatusOr<PacketSinkPtr> sink = OpenUdpSink(c, fake);
  ASSERT_FALSE(sink.ok());
  EXPECT_THAT(std::string(sink.status().message()), testing::HasSubstr("--size <= 1472"));
}

TEST(UdpSinkErrors, NonLocalSourceSuggestsRaw) {
  absl::StatusOr<InterfaceInfo> lo = LookupInterface("lo");
  if (!lo.ok()) GTEST_SKIP() << "no loopback here";
  SendConfig c = LoopbackConfig(5000, 1, true);
  c.source_ip = 0xC6336407;  // 198.51.100.7
  absl::StatusOr<PacketSinkPtr> sink = OpenUdpSink(c, *lo);
  ASSERT_FALSE(sink.ok());
  EXPECT_THAT(std::string(sink.status().message()), testing::HasSubstr("use --raw"));
}

}  // namespace
}  // namespace mcr::gen
