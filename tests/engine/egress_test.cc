// EgressBatcher against real UDP sockets on loopback: every queued datagram arrives once, in
// order, with its own size and DSCP, however the batcher splits runs into GSO calls.

#include "engine/internal/egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace mcr::engine::internal {
namespace {

class Loopback {
 public:
  Loopback() {
    rx_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(rx_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(rx_, reinterpret_cast<sockaddr*>(&sa), &len);
    int buf = 8 << 20, one = 1;
    setsockopt(rx_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    setsockopt(rx_, IPPROTO_IP, IP_RECVTOS, &one, sizeof one);
    tx_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(tx_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    connect(tx_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  ~Loopback() {
    close(rx_);
    close(tx_);
  }
  int tx() const { return tx_; }
  // Returns (payload, tos) pairs until none arrives for 200 ms.
  std::vector<std::pair<std::vector<uint8_t>, int>> Drain() {
    std::vector<std::pair<std::vector<uint8_t>, int>> out;
    for (;;) {
      pollfd p{rx_, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) return out;
      std::vector<uint8_t> buf(70000);
      iovec iov{buf.data(), buf.size()};
      alignas(cmsghdr) char ctl[64];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = ctl;
      msg.msg_controllen = sizeof ctl;
      ssize_t n = recvmsg(rx_, &msg, 0);
      if (n < 0) return out;
      buf.resize(static_cast<size_t>(n));
      int tos = -1;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS)
          tos = *reinterpret_cast<uint8_t*>(CMSG_DATA(c));
      out.emplace_back(std::move(buf), tos);
    }
  }

 private:
  int rx_ = -1, tx_ = -1;
};

std::vector<uint8_t> Payload(uint32_t seq, size_t size) {
  std::vector<uint8_t> p(size, static_cast<uint8_t>(seq));
  memcpy(p.data(), &seq, sizeof seq);
  return p;
}

TEST(EgressBatcherTest, EveryDatagramArrivesOnceInOrderWithItsSizeAndDscp) {
  Loopback a, b;
  OutputCounters ca, cb;
  RuleTable table;
  OutputEntry ea;
  ea.fd = a.tx();
  ea.dscp = -1;  // copy per datagram
  ea.max_gso_segment = 1472;
  ea.counters = &ca;
  OutputEntry eb = ea;
  eb.fd = b.tx();
  eb.dscp = 10;  // fixed DSCP is set on the socket by OpenOutputSocket; here only no cmsg is sent
  eb.counters = &cb;
  const OutputEntry* oa = table.AddOutput(ea);
  const OutputEntry* ob = table.AddOutput(eb);
  EgressBatcher batcher;
  batcher.Resize(table.num_outputs());

  // 300 datagrams per output in one pass (more than one GSO run of 64), sizes that change
  // mid-run (a shorter one ends a run), a size above the GSO segment limit, and TOS changes.
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<uint8_t> tos;
  for (uint32_t i = 0; i < 300; ++i) {
    size_t size = i < 100 ? 1200 : i < 150 ? (i % 7 == 0 ? 300 : 1200) : i < 160 ? 3000 : 64;
    payloads.push_back(Payload(i, size));
    tos.push_back(static_cast<uint8_t>((i / 40) % 2 ? 46 << 2 : 0));
  }
  for (uint32_t i = 0; i < payloads.size(); ++i) {
    batcher.Add(oa, payloads[i].data(), static_cast<uint32_t>(payloads[i].size()), tos[i]);
    batcher.Add(ob, payloads[i].data(), static_cast<uint32_t>(payloads[i].size()), tos[i]);
  }
  batcher.Flush();

  auto got_a = a.Drain();
  auto got_b = b.Drain();
  ASSERT_EQ(got_a.size(), payloads.size());
  ASSERT_EQ(got_b.size(), payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_EQ(got_a[i].first, payloads[i]) << i;
    EXPECT_EQ(got_a[i].second, tos[i]) << i;
    EXPECT_EQ(got_b[i].first, payloads[i]) << i;
  }
  EXPECT_EQ(ca.packets.Load(), payloads.size());
  EXPECT_EQ(cb.packets.Load(), payloads.size());
  EXPECT_LT(batcher.syscalls(), 2 * payloads.size() / 4) << "runs should be batched";
}

TEST(EgressBatcherTest, EmptyDatagramsAreSentOneByOne) {
  // UDP allows an empty payload. A GSO run led by one would leave as a single empty datagram
  // (segment size 0 means "no GSO" to the kernel) while counting all of them as sent.
  Loopback a;
  OutputCounters c;
  RuleTable table;
  OutputEntry e;
  e.fd = a.tx();
  e.dscp = 0;
  e.max_gso_segment = 1472;
  e.counters = &c;
  const OutputEntry* o = table.AddOutput(e);
  EgressBatcher batcher;
  batcher.Resize(1);
  // Empty ones leading, inside and ending what would otherwise be runs.
  std::vector<std::vector<uint8_t>> payloads(5);  // empty
  for (uint32_t i = 0; i < 5; ++i) payloads.push_back(Payload(i, 100));
  payloads.emplace_back();
  for (uint32_t i = 5; i < 7; ++i) payloads.push_back(Payload(i, 100));
  payloads.emplace_back();
  for (auto& p : payloads) batcher.Add(o, p.data(), static_cast<uint32_t>(p.size()), 0);
  batcher.Flush();
  auto got = a.Drain();
  ASSERT_EQ(got.size(), payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) EXPECT_EQ(got[i].first, payloads[i]) << i;
  EXPECT_EQ(c.packets.Load(), payloads.size());
}

TEST(EgressBatcherTest, InactiveOutputCountsNoInterface) {
  OutputCounters c;
  RuleTable table;
  OutputEntry e;
  e.fd = -1;
  e.counters = &c;
  const OutputEntry* o = table.AddOutput(e);
  EgressBatcher batcher;
  batcher.Resize(1);
  uint8_t data[100] = {};
  for (int i = 0; i < 70; ++i) batcher.Add(o, data, sizeof data, 0);
  batcher.Flush();
  EXPECT_EQ(c.packets.Load(), 0u);
  EXPECT_EQ(c.errors[static_cast<size_t>(EgressError::kNoInterface)].Load(), 70u);
}

}  // namespace
}  // namespace mcr::engine::internal
