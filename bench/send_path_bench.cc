// What the kernel charges per datagram sent, by how a relay hands datagrams over:
//
//   BM_SendEach/N      N connected sockets, one send() each: what a shard does when every output
//                      has one datagram in a pass (many interleaved streams at paced rates)
//   BM_SendUringBatch/N  the same N sends as io_uring SEND requests, submitted with one system
//                      call (a shard's ring, SINGLE_ISSUER | DEFER_TASKRUN): what batching the
//                      system calls of such a pass would save
//   BM_SendGsoRun/N    one socket, N datagrams as one UDP GSO sendmsg: what a shard does when an
//                      output has a run
//
// 1200-byte payloads to a loopback sink whose tiny receive buffer drops everything, so the sender's
// side is what is measured (as BM_FanOut in engine_bench). CPU time per datagram is the figure
// (items_per_second inverted); the machine is shared, so compare variants from one run.
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "bench/loopback_sink.h"
#include "benchmark/benchmark.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

namespace {

constexpr size_t kPayload = 1200;

// N non-blocking sockets connected to a loopback sink that drops everything.
struct Sockets {
  explicit Sockets(int n) {
    for (int i = 0; i < n; ++i) fds.push_back(sink.Connect());
  }
  ~Sockets() {
    for (int fd : fds) close(fd);
  }
  mcr::bench::DroppingSink sink;
  std::vector<int> fds;
};

void BM_SendEach(benchmark::State& state) {
  Sockets s(static_cast<int>(state.range(0)));
  std::vector<uint8_t> payload(kPayload, 0xab);
  uint64_t failed = 0;
  for (auto _ : state) {
    for (int fd : s.fds)
      if (send(fd, payload.data(), payload.size(), MSG_DONTWAIT) < 0) ++failed;
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["failed"] = static_cast<double>(failed);
}
BENCHMARK(BM_SendEach)->Arg(1)->Arg(8)->Arg(32);

void BM_SendUringBatch(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Sockets s(n);
  std::vector<uint8_t> payload(kPayload, 0xab);
  io_uring ring;
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  if (io_uring_queue_init_params(128, &ring, &p) < 0) {
    state.SkipWithError("io_uring_queue_init_params failed");
    return;
  }
  uint64_t failed = 0;
  for (auto _ : state) {
    for (int fd : s.fds) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_send(sqe, fd, payload.data(), payload.size(), MSG_DONTWAIT);
    }
    io_uring_submit_and_wait(&ring, static_cast<unsigned>(n));
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->res < 0) ++failed;
      ++seen;
    }
    io_uring_cq_advance(&ring, seen);
  }
  io_uring_queue_exit(&ring);
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["failed"] = static_cast<double>(failed);
}
BENCHMARK(BM_SendUringBatch)->Arg(1)->Arg(8)->Arg(32);

void BM_SendGsoRun(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Sockets s(1);
  std::vector<uint8_t> payload(kPayload * static_cast<size_t>(n), 0xab);
  iovec iov{payload.data(), payload.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint16_t))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (n > 1) {
    cmsghdr* cm = reinterpret_cast<cmsghdr*>(control);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    const uint16_t seg = kPayload;
    memcpy(CMSG_DATA(cm), &seg, sizeof seg);
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  uint64_t failed = 0;
  for (auto _ : state)
    if (sendmsg(s.fds[0], &msg, MSG_DONTWAIT) < 0) ++failed;
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["failed"] = static_cast<double>(failed);
}
BENCHMARK(BM_SendGsoRun)->Arg(1)->Arg(8)->Arg(32);

// The floor under every system call on this machine: entry and exit of the cheapest one.
void BM_SystemCall(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(getppid());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SystemCall);

}  // namespace

BENCHMARK_MAIN();
