// EgressBatcher against real UDP sockets on loopback: every queued datagram arrives once, in
// order, with its own size and DSCP, however the batcher splits runs into GSO calls, and whether
// it sends them itself or queues them on an io_uring.

#include "engine/internal/egress.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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
  EXPECT_LT(batcher.send_calls(), 2 * payloads.size() / 4) << "runs should be batched";
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

// The shard's ring: one issuer, completions only when it asks (as Shard::Loop::Init sets it up).
class Ring {
 public:
  Ring() {
    io_uring_params p{};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init_params(64, &ring_, &p) != 0) {
      p = io_uring_params{};
      ok_ = io_uring_queue_init_params(64, &ring_, &p) == 0;
    } else {
      ok_ = true;
    }
  }
  ~Ring() {
    if (ok_) io_uring_queue_exit(&ring_);
  }
  bool ok() const { return ok_; }
  io_uring* get() { return &ring_; }
  // Submits what is queued and passes every completion to the batcher, as the shard's loop does.
  // Returns how many there were.
  unsigned SubmitAndComplete(EgressBatcher& batcher) {
    io_uring_submit_and_get_events(&ring_);
    io_uring_cqe* cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++n;
      EXPECT_EQ(io_uring_cqe_get_data64(cqe) >> 56, kTag >> 56);
      batcher.Complete(cqe);
    }
    io_uring_cq_advance(&ring_, n);
    return n;
  }
  static constexpr uint64_t kTag = uint64_t{4} << 56;

 private:
  io_uring ring_{};
  bool ok_ = false;
};

TEST(EgressBatcherRingTest, ProbeLeavesNothingBehind) {
  Ring ring;
  ASSERT_TRUE(ring.ok());
  const bool inline_done = SendsCompleteWhileSubmitted(ring.get(), Ring::kTag);
  // Linux 6.x completes MSG_DONTWAIT sends while submitting them (EAGAIN included); what matters
  // for the engine is that the probe's own completion is gone either way.
  RecordProperty("sends_complete_while_submitted", inline_done ? "yes" : "no");
  EXPECT_EQ(io_uring_cq_ready(ring.get()), 0u);
  EXPECT_EQ(io_uring_sq_ready(ring.get()), 0u);
}

// Outputs with one run in a pass go through the ring; one with several runs is sent directly.
// Either way each output's datagrams arrive once and in order, and they are counted when their
// send completed, not before.
TEST(EgressBatcherRingTest, SingleRunsGoThroughTheRingAndCountOnCompletion) {
  Ring ring;
  ASSERT_TRUE(ring.ok());
  if (!SendsCompleteWhileSubmitted(ring.get(), Ring::kTag))
    GTEST_SKIP() << "this kernel may leave a MSG_DONTWAIT send armed: the engine sends directly";
  Loopback a, b, c;
  OutputCounters ca, cb, cc;
  RuleTable table;
  OutputEntry e;
  e.dscp = 0;
  e.max_gso_segment = 1472;
  e.fd = a.tx();
  e.counters = &ca;
  const OutputEntry* oa = table.AddOutput(e);
  e.fd = b.tx();
  e.counters = &cb;
  const OutputEntry* ob = table.AddOutput(e);
  e.fd = c.tx();
  e.counters = &cc;
  const OutputEntry* oc = table.AddOutput(e);
  EgressBatcher batcher;
  batcher.UseRing(ring.get(), Ring::kTag);
  batcher.Resize(table.num_outputs());

  std::vector<std::vector<uint8_t>> payloads, even;
  for (uint32_t i = 0; i < 300; ++i) payloads.push_back(Payload(i, i % 50 == 7 ? 300 : 1000));
  for (uint32_t i = 0; i < 30; ++i) even.push_back(Payload(i, 1000));
  for (uint32_t pass = 0; pass < 3; ++pass) {
    // a: one datagram a pass; b: ten of one size (one GSO run); c: 100 that break into runs.
    const uint64_t calls_before = batcher.send_calls();
    batcher.Add(oa, even[pass].data(), 1000, 0);
    for (uint32_t i = 0; i < 10; ++i) batcher.Add(ob, even[pass * 10 + i].data(), 1000, 0);
    for (uint32_t i = 0; i < 100; ++i) {
      const auto& p = payloads[pass * 100 + i];
      batcher.Add(oc, p.data(), static_cast<uint32_t>(p.size()), 0);
    }
    batcher.Flush();
    EXPECT_EQ(batcher.in_flight(), 2u) << "a and b on the ring, c sent directly";
    EXPECT_EQ(ca.packets.Load(), pass) << "counted before the send completed";
    EXPECT_EQ(cb.packets.Load(), pass * 10) << "counted before the send completed";
    EXPECT_EQ(cc.packets.Load(), (pass + 1) * 100) << "c's sends are done when Flush returns";
    EXPECT_GE(batcher.send_calls() - calls_before, 2u + 4u) << "c: at least 4 runs, sent directly";
    EXPECT_EQ(ring.SubmitAndComplete(batcher), 2u);
    EXPECT_EQ(batcher.in_flight(), 0u);
    EXPECT_EQ(ca.packets.Load(), pass + 1);
    EXPECT_EQ(cb.packets.Load(), (pass + 1) * 10);
  }
  auto got_a = a.Drain(), got_b = b.Drain(), got_c = c.Drain();
  ASSERT_EQ(got_a.size(), 3u);
  ASSERT_EQ(got_b.size(), 30u);
  ASSERT_EQ(got_c.size(), 300u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(got_a[i].first, even[i]) << i;
  for (uint32_t i = 0; i < 30; ++i) EXPECT_EQ(got_b[i].first, even[i]) << i;
  for (uint32_t i = 0; i < 300; ++i) EXPECT_EQ(got_c[i].first, payloads[i]) << i;
  for (const OutputCounters* k : {&ca, &cb, &cc})
    for (const auto& err : k->errors) EXPECT_EQ(err.Load(), 0u);
}

// A queued send that fails because an ICMP error about an earlier datagram came back (here port
// unreachable) was not sent: Complete() sends it again, and counts the report once.
TEST(EgressBatcherRingTest, AQueuedSendRefusedForAnEarlierDatagramIsSentAgain) {
  Ring ring;
  ASSERT_TRUE(ring.ok());
  if (!SendsCompleteWhileSubmitted(ring.get(), Ring::kTag))
    GTEST_SKIP() << "this kernel may leave a MSG_DONTWAIT send armed: the engine sends directly";
  // A loopback port with nobody on it yet.
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  int probe = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  getsockname(probe, reinterpret_cast<sockaddr*>(&sa), &len);
  close(probe);
  const int tx = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(tx, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);

  OutputCounters c;
  RuleTable table;
  OutputEntry e;
  e.fd = tx;
  e.dscp = 0;
  e.max_gso_segment = 1472;
  e.counters = &c;
  const OutputEntry* o = table.AddOutput(e);
  EgressBatcher batcher;
  batcher.UseRing(ring.get(), Ring::kTag);
  batcher.Resize(1);

  const auto first = Payload(1, 200), second = Payload(2, 200);
  batcher.Add(o, first.data(), 200, 0);
  batcher.Flush();
  ASSERT_EQ(ring.SubmitAndComplete(batcher), 1u);
  // The port unreachable for the first datagram: pending on the socket once it polls POLLERR.
  pollfd p{tx, POLLERR, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1) << "no ICMP port unreachable came back";
  // Now somebody listens; the next send reports the old error instead of sending.
  const int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(bind(rx, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << strerror(errno);
  batcher.Add(o, second.data(), 200, 0);
  batcher.Flush();
  ASSERT_EQ(batcher.in_flight(), 1u);
  ASSERT_EQ(ring.SubmitAndComplete(batcher), 1u);
  EXPECT_EQ(c.packets.Load(), 2u);
  EXPECT_EQ(c.errors[static_cast<size_t>(EgressError::kRefused)].Load(), 1u);
  pollfd q{rx, POLLIN, 0};
  ASSERT_EQ(poll(&q, 1, 2000), 1) << "the refused send was not sent again";
  std::vector<uint8_t> buf(1000);
  const ssize_t n = recv(rx, buf.data(), buf.size(), 0);
  ASSERT_EQ(n, 200);
  buf.resize(200);
  EXPECT_EQ(buf, second);
  close(rx);
  close(tx);
}

}  // namespace
}  // namespace mcr::engine::internal
