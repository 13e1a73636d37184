// HOT PATH (Shard::Loop::Run's pass and what it calls): no locks, no allocation, no exceptions,
// no syscalls other than io_uring_enter (which also submits the queued sends), the egress's
// direct sendmsg for outputs with several runs in a pass (and one PACKET_STATISTICS read after a
// pass over blocks the kernel flagged as losing frames), no synchronous logging.
// Everything is allocated when the shard starts or when the control thread swaps a table.

#include "engine/internal/shard.h"

#include <liburing.h>
#include <numa.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <ctime>

#include "absl/strings/str_format.h"
#include "engine/cpu_list.h"
#include "engine/internal/egress.h"
#include "engine/internal/sched_slice.h"
#include "engine/steering.h"

namespace mcr::engine::internal {
namespace {

// io_uring user_data: operation in the top byte, the capture ring's id below.
enum Op : uint64_t { kOpWake = 1, kOpPoll = 2, kOpRecv = 3, kOpSend = 4, kOpProbe = 5 };
uint64_t UserData(Op op, uint32_t id) { return (uint64_t{op} << 56) | id; }

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

constexpr uint64_t kTickNs = 1'000'000'000;

}  // namespace

// The shard thread's state. Constructed on the shard thread after pinning.
class Shard::Loop {
 public:
  explicit Loop(Shard* shard) : shard_(shard), cfg_(shard->config_) {}
  ~Loop() {
    // Sockets and buffers first: buffer rings unregister from the io_uring they belong to.
    inputs_.clear();
    closing_.clear();
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  absl::Status Init() {
    io_uring_params p{};
    // One thread submits and reaps; completions run only when we wait (DEFER_TASKRUN), which
    // keeps task work off the hot path. Fall back for kernels without them.
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int ret = io_uring_queue_init_params(kRingEntries, &ring_, &p);
    if (ret == -EINVAL) {
      p = io_uring_params{};
      ret = io_uring_queue_init_params(kRingEntries, &ring_, &p);
    }
    if (ret < 0) {
      return absl::UnavailableError(absl::StrFormat(
          "shard %d: io_uring_queue_init: %s%s", cfg_.index, strerror(-ret),
          ret == -EPERM ? " (io_uring is disabled for this process: check the "
                          "kernel.io_uring_disabled sysctl or the container's seccomp profile)"
                        : ""));
    }
    ring_ready_ = true;
    // Sends go through the ring when the kernel finishes them while submitting: then each pass's
    // sends ride on the io_uring_enter that waits for the next frames (EgressBatcher). The
    // blocks a pass read stay ours while that call sleeps, so a ring of few blocks keeps direct
    // sends: one block held of 2 would halve what a burst can fill while the shard sleeps.
    if ((cfg_.recv_mode || cfg_.ring.block_count >= kMinBlocksForQueuedSends) &&
        SendsCompleteWhileSubmitted(&ring_, UserData(kOpProbe, 0)))
      egress_.UseRing(&ring_, UserData(kOpSend, 0));
    ArmPoll(shard_->wake_fd_, UserData(kOpWake, 0));
    io_uring_submit(&ring_);
    return absl::OkStatus();
  }

  void Run() {
    uint64_t last_tick = NowNs();
    uint64_t busy = 0;
    uint64_t last_frame = 0;  // when a pass last handled frames (busy polling)
    bool backlog = false;     // ring mode: a ring still held closed blocks when the pass ended
    while (!stop_) {
      // Ring mode: one wake-up per closed block. Recv mode: one per first frame — the frames
      // that arrive while a pass runs are the next pass's batch. (Waiting for a batch of
      // completions with a short timeout was tried: it delayed the first frame of every batch by
      // up to the timeout and saved no measurable CPU; see docs/PERFORMANCE.md.)
      //
      // The last pass's queued sends go to the kernel with the call below and complete during
      // it, so it waits for one completion beyond theirs. It does not wait at all while
      // something is due regardless of traffic: more closed blocks, commands held back until
      // the sends completed, a receive to re-arm once its buffers are back.
      //
      // The sends' results (the outputs' counters, errors to retry) are taken when the call
      // returns: with sends in flight it returns within 10 ms even if no frame comes, so the
      // counters of a stream's last datagrams do not wait for the tick. Otherwise it returns at
      // least once a second, for the tick.
      const unsigned sends = egress_.in_flight();
      __kernel_timespec ts{sends != 0 ? 0 : 1, sends != 0 ? 10'000'000 : 0};
      io_uring_cqe* cqe = nullptr;
      if (backlog || commands_ || RearmDue()) {
        io_uring_submit_and_get_events(&ring_);
      } else if (cfg_.busy_poll_ns == 0 || !Spin(last_frame + cfg_.busy_poll_ns)) {
        // Busy polling (Spin): for a while after the last frame, look for work without
        // sleeping, so the next frame does not pay for waking this thread (and, on a VM, its
        // idle vCPU).
        io_uring_submit_and_wait_timeout(&ring_, &cqe, sends + 1, &ts, nullptr);
      }
      const uint64_t t_work = NowNs();

      // Send completions and the command doorbell first. Once no send is in flight, the blocks
      // and buffers the last pass sent from go back to the kernel, and commands may change the
      // table and inputs those sends referred to.
      unsigned head, early = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++early;
        HandleCompletion(cqe);
      }
      if (egress_.in_flight() == 0) {
        ReleaseHeld();
        if (commands_) {
          commands_ = false;
          DrainCommands();
          if (stop_) break;
        }
      }
      // Then frames. (DrainCommands may have added completions: they are handled here too.)
      unsigned seen = 0;
      PassTally tally;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        if (seen++ < early) {
          const uint64_t op = io_uring_cqe_get_data64(cqe) >> 56;
          if (op == kOpSend || op == kOpWake) continue;
        }
        HandleCqe(cqe, tally);
      }
      io_uring_cq_advance(&ring_, seen);
      if (tally.received != 0) last_frame = t_work;

      if (!cfg_.recv_mode) {
        // Every wake-up looks at every ring: checking an idle ring is one load, and it spares
        // tracking which poll fired. A pass takes at most kBlocksPerPass blocks from each: under
        // overload the kernel closes blocks as fast as they are handed back, and draining one
        // ring to empty would never end — the other inputs, the commands (rule changes, stop)
        // and the tick would wait for the overload to pass.
        backlog = false;
        for (auto& in : inputs_) {
          if (DrainRing(in, tally, &backlog) != 0) last_frame = t_work;
        }
      }
      // Direct sends are done when Flush returns; queued ones when the next call completes
      // them. Blocks and buffers stay ours until then.
      egress_.Flush();
      if (egress_.in_flight() == 0) ReleaseHeld();
      Publish(tally);

      const uint64_t t_end = NowNs();
      busy += t_end - t_work;
      if (t_end - last_tick >= kTickNs) {
        Tick();
        shard_->counters_.busy_ppm.Set(busy * 1'000'000 / (t_end - last_tick));
        busy = 0;
        last_tick = t_end;
      }
    }
  }

 private:
  static constexpr unsigned kRingEntries = 512;
  // Ring mode: blocks taken from one input's ring per pass (see Run). A default block holds
  // ~100 full-size frames, so a pass stays well under a millisecond.
  static constexpr uint32_t kBlocksPerPass = 4;
  // Ring mode: fewest blocks per ring with which sends are queued on the io_uring (see Init).
  static constexpr uint32_t kMinBlocksForQueuedSends = 16;

  struct Input {
    uint32_t id = 0;
    int ifindex = 0;
    int fd = -1;               // owned by `ring`, or by this struct in recv mode
    PacketRingPtr ring;        // ring mode
    RecvBuffersPtr bufs;       // recv mode
    IngressCounters* counters = nullptr;
    bool rearm = false;        // recv mode: the multishot receive ended; arm it again
    bool ip_only = false;      // captures start at the IP header (no Ethernet header)
    uint32_t held = 0;         // ring mode: blocks taken, not yet handed back (sends may read them)
    Input() = default;
    // Moves transfer the recv-mode fd: a moved-from Input must not close it.
    Input(Input&& o) noexcept { *this = std::move(o); }
    Input& operator=(Input&& o) noexcept {
      std::swap(id, o.id);
      std::swap(ifindex, o.ifindex);
      std::swap(fd, o.fd);
      std::swap(ring, o.ring);
      std::swap(bufs, o.bufs);
      std::swap(counters, o.counters);
      std::swap(rearm, o.rearm);
      std::swap(ip_only, o.ip_only);
      std::swap(held, o.held);
      return *this;
    }
    ~Input() {
      if (!ring && fd >= 0) close(fd);
    }
  };
  struct PassTally {
    uint64_t received = 0, unmatched = 0, mismatch = 0, offload_frames = 0;
  };

  void ArmPoll(int fd, uint64_t user_data) {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_poll_multishot(sqe, fd, POLLIN | POLLERR);
    io_uring_sqe_set_data64(sqe, user_data);
  }

  void ArmRecv(Input& in) {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_recv_multishot(sqe, in.fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = in.bufs->bgid();
    io_uring_sqe_set_data64(sqe, UserData(kOpRecv, in.id));
    in.rearm = false;
  }

  // The lowest buffer group id no open or closing input holds. (Input ids only grow: as group
  // ids, which are 16-bit, they would collide after 65536 opens — interface re-creations.)
  uint16_t FreeBufferGroup() const {
    std::vector<bool> used(inputs_.size() + closing_.size() + 1);
    auto mark = [&used](const Input& i) {
      if (i.bufs && i.bufs->bgid() < used.size()) used[i.bufs->bgid()] = true;
    };
    for (const auto& i : inputs_) mark(i);
    for (const auto& i : closing_) mark(i);
    uint16_t id = 0;
    while (used[id]) ++id;
    return id;
  }

  // A full submission queue means submit and retry, not failure.
  io_uring_sqe* GetSqe() {
    io_uring_sqe* sqe;
    while ((sqe = io_uring_get_sqe(&ring_)) == nullptr) io_uring_submit(&ring_);
    return sqe;
  }

  Input* FindInput(uint32_t id) {
    for (auto& in : inputs_)
      if (in.id == id) return &in;
    return nullptr;
  }

  // Completions that free what sends hold or start commands: sends and the command doorbell.
  void HandleCompletion(const io_uring_cqe* cqe) noexcept {
    const uint64_t ud = io_uring_cqe_get_data64(cqe);
    switch (ud >> 56) {
      case kOpSend:
        egress_.Complete(cqe);
        break;
      case kOpWake:
        commands_ = true;
        if (!(cqe->flags & IORING_CQE_F_MORE)) ArmPoll(shard_->wake_fd_, ud);
        break;
      default:
        break;
    }
  }

  void HandleCqe(const io_uring_cqe* cqe, PassTally& tally) {
    const uint64_t ud = io_uring_cqe_get_data64(cqe);
    const uint32_t id = static_cast<uint32_t>(ud);
    const bool more = cqe->flags & IORING_CQE_F_MORE;
    switch (ud >> 56) {
      case kOpSend:
      case kOpWake:
        HandleCompletion(cqe);
        break;
      case kOpPoll: {
        Input* in = FindInput(id);
        if (in == nullptr) break;  // completion of a ring closed since (-ECANCELED)
        if (cqe->res > 0 && (cqe->res & POLLERR)) ClearSocketError(*in);
        if (!more) ArmPoll(in->fd, ud);  // multishot ended (error or overflow): re-arm
        break;
      }
      case kOpRecv: {
        Input* in = FindInput(id);
        if (in == nullptr) {
          // A closed input's receive finally ended: now its buffers may be unregistered.
          if (!more) std::erase_if(closing_, [id](const Input& c) { return c.id == id; });
          break;
        }
        if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
          const uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
          ++tally.received;
          const uint8_t* buf = in->bufs->Buffer(bid);
          const auto len = static_cast<uint32_t>(cqe->res);
          if (in->ip_only) {
            Process(buf, len, 0, *in, tally);
          } else if (len >= kVnetHdrLen) {
            Process(buf + kVnetHdrLen, len - kVnetHdrLen, OffloadSegmentSize(buf), *in, tally);
          } else {  // cannot happen: the kernel writes the header before any frame
            shard_->counters_.drops[static_cast<size_t>(ParseResult::kTruncatedEthernet)].Add(1);
          }
          in->bufs->Recycle(bid);  // invisible to the kernel until ReleaseHeld()
        } else if (cqe->res == -ENOBUFS) {
          shard_->counters_.no_buffer.Add(1);
        } else if (cqe->res == -ENETDOWN || cqe->res == -ENXIO) {
          ClearSocketError(*in);
        } else if (cqe->res < 0 && cqe->res != -ECANCELED) {
          in->counters->socket_errors.Add(1);  // re-armed below: never silent, even if it recurs
        }
        if (!more) in->rearm = true;
        break;
      }
      default:
        break;
    }
  }

  void ClearSocketError(Input& in) {
    // ENETDOWN on link down and the like: reading SO_ERROR clears it; the socket keeps working
    // when the link comes back.
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(in.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    in.counters->socket_errors.Add(1);
  }

  // One frame: parse, check steering, look up, queue for every output of its rule.
  // (On an IP-only input `frame` starts at the IP header: SOCK_DGRAM puts tp_mac there too.)
  // `segment` (OffloadSegmentSize) non-zero: the frame may carry several datagrams of that many
  // payload bytes, which are relayed, and counted, one by one.
  void Process(const uint8_t* frame, uint32_t len, uint16_t segment, const Input& in,
               PassTally& t) noexcept {
    ParsedPacket p;
    ParseResult r = in.ip_only ? ParseIpPacket(frame, len, &p) : ParseFrame(frame, len, &p);
    if (r != ParseResult::kOk) {
      if (r == ParseResult::kTruncatedIp && segment != 0) r = ParseResult::kOffloadTruncated;
      shard_->counters_.drops[static_cast<size_t>(r)].Add(1);
      return;
    }
    uint32_t datagrams = 1;
    if (segment != 0 && p.payload_len > segment) {
      datagrams = (p.payload_len + segment - 1) / segment;
      // Counted as the datagrams it carries, so received = relayed + unmatched + dropped holds.
      t.received += datagrams - 1;
      ++t.offload_frames;
    }
    if (cfg_.num_shards > 1 &&
        ShardFor(p.dst_addr, p.dst_port, cfg_.num_shards) != static_cast<uint32_t>(cfg_.index))
      t.mismatch += datagrams;  // expected only while a fanout group is being (re)built
    const RuleEntry* rule = table_->Lookup(in.ifindex, p.dst_addr, p.dst_port, p.src_addr);
    if (rule == nullptr) {
      t.unmatched += datagrams;
      return;
    }
    rule->counters->packets.Add(datagrams);
    rule->counters->bytes.Add(p.payload_len);
    if (datagrams == 1) {
      for (const OutputEntry* out : rule->outputs)
        egress_.Add(out, p.payload, p.payload_len, p.tos);
      return;
    }
    // The sender's datagrams, in order: every output gets each one before the next, as if they
    // had come as separate frames (the egress batcher makes GSO runs of them again).
    for (uint32_t off = 0; off < p.payload_len; off += segment) {
      const uint32_t n = std::min<uint32_t>(segment, p.payload_len - off);
      for (const OutputEntry* out : rule->outputs) egress_.Add(out, p.payload + off, n, p.tos);
    }
  }

  void Publish(const PassTally& t) noexcept {
    ShardCounters& c = shard_->counters_;
    if (t.received) c.received.Add(t.received);
    if (t.unmatched) c.unmatched.Add(t.unmatched);
    if (t.mismatch) c.steering_mismatch.Add(t.mismatch);
    if (t.offload_frames) c.offload_frames.Add(t.offload_frames);
    c.sendmsg_calls.Set(egress_.send_calls());
  }

  // Busy polling until `deadline` (CLOCK_MONOTONIC ns): true as soon as there is work — a
  // completion, or (ring mode) a closed block, which is visible in the ring without a system
  // call. Recv-mode frames and the command eventfd only become completions when the kernel runs
  // this ring's deferred task work, which io_uring_get_events does without blocking.
  bool Spin(uint64_t deadline) noexcept {
    io_uring_submit(&ring_);  // re-armed requests must be in the kernel before we look
    do {
      if (!cfg_.recv_mode) {
        for (const auto& in : inputs_)
          if (in.ring->PeekBlock() != nullptr) return true;
      }
      io_uring_get_events(&ring_);
      if (io_uring_cq_ready(&ring_) != 0) return true;
    } while (NowNs() < deadline);
    return false;
  }

  // Takes closed blocks of `in`'s ring and queues their frames for sending: at most
  // kBlocksPerPass, and at most half the ring, held at once (the kernel keeps filling the rest).
  // Sets *more if it stopped with closed blocks left. Returns the number of frames handled.
  //
  // The blocks stay ours until their sends completed (ReleaseHeld). When the shard is behind, a
  // pass takes several blocks, and each output's datagrams from all of them go out as one GSO
  // run instead of one per block, so a shard gets cheaper per packet as its backlog grows. When
  // it keeps up, a pass has one block and nothing waits longer than before.
  uint64_t DrainRing(Input& in, PassTally& tally, bool* more) noexcept {
    const uint32_t limit =
        std::min<uint32_t>(kBlocksPerPass, std::max(1u, in.ring->block_count() / 2));
    uint64_t frames = 0;
    bool losing = false;
    while (in.held < limit) {
      tpacket_block_desc* bd = in.ring->PeekBlock(in.held);
      if (bd == nullptr) break;
      losing |= (bd->hdr.bh1.block_status & TP_STATUS_LOSING) != 0;
      const uint32_t n = bd->hdr.bh1.num_pkts;
      auto* h = reinterpret_cast<const tpacket3_hdr*>(reinterpret_cast<const uint8_t*>(bd) +
                                                      bd->hdr.bh1.offset_to_first_pkt);
      for (uint32_t k = 0; k < n; ++k) {
        // A slot without TP_STATUS_USER was abandoned half-written: the kernel reserved it,
        // then could not describe the frame in its virtio_net_hdr (a UDP GSO frame before
        // Linux 6.2, an old-style UFO frame from a tap on any kernel) and counted it in
        // tp_drops instead. Its tp_mac and tp_snaplen are whatever the slot held before.
        if (h->tp_status & TP_STATUS_USER) {
          ++tally.received;
          const uint8_t* frame = reinterpret_cast<const uint8_t*>(h) + h->tp_mac;
          Process(frame, h->tp_snaplen, in.ip_only ? 0 : OffloadSegmentSize(frame - kVnetHdrLen),
                  in, tally);
        }
        h = reinterpret_cast<const tpacket3_hdr*>(reinterpret_cast<const uint8_t*>(h) +
                                                  h->tp_next_offset);
      }
      frames += n;
      ++in.held;
    }
    if (in.held == limit && in.held < in.ring->block_count() &&
        in.ring->PeekBlock(in.held) != nullptr)
      *more = true;
    // The kernel marks every block it closes while its drop count is unread. Take the count now
    // rather than at the next tick: the drop counters then follow an overflow as it happens,
    // and reading clears the mark, so this costs one system call per pass only while losing.
    if (losing) in.counters->kernel_drops.Add(TakeKernelDrops(in.fd));
    return frames;
  }

  // No send is in flight: hand the blocks and buffers sends read back to the kernel, and re-arm
  // the receives that ended (for want of buffers, or an error).
  void ReleaseHeld() noexcept {
    for (auto& in : inputs_) {
      if (in.ring) {
        if (in.held != 0) in.ring->ReleaseBlocks(in.held);
        in.held = 0;
      } else {
        in.bufs->Publish();
        if (in.rearm) ArmRecv(in);
      }
    }
  }

  // Recv mode: a receive waits to be re-armed (until then its input yields no completion).
  bool RearmDue() const noexcept {
    if (!cfg_.recv_mode) return false;
    for (const auto& in : inputs_)
      if (in.rearm) return true;
    return false;
  }

  void DrainCommands() {
    uint64_t v;
    (void)!read(shard_->wake_fd_, &v, sizeof v);  // clears the eventfd; it is non-blocking
    while (auto cmd = shard_->requests_.TryPop()) {
      Handle(**cmd);
      if (!shard_->replies_.TryPush(std::move(*cmd))) {
        // Cannot happen: the control thread has at most one command in flight per shard.
        std::abort();
      }
      uint64_t one = 1;
      (void)!write(shard_->reply_fd_, &one, sizeof one);
    }
  }

  void Handle(ShardCommand& cmd) {
    switch (cmd.kind) {
      case ShardCommand::Kind::kSwapTable: {
        // Between passes: no send is in flight and no block or buffer is held, so the old table
        // has no reader left once we return it.
        egress_.Resize(cmd.table->num_outputs());
        std::swap(table_, cmd.table);
        shard_->rule_count_.store(table_->num_rules(), std::memory_order_relaxed);
        break;
      }
      case ShardCommand::Kind::kOpenInput:
        cmd.status = cfg_.recv_mode ? OpenRecvInput(cmd) : OpenRingInput(cmd);
        break;
      case ShardCommand::Kind::kCloseInput:
        CloseInput(cmd.ifindex);
        break;
      case ShardCommand::Kind::kStop:
        stop_ = true;
        break;
    }
  }

  absl::Status OpenRingInput(ShardCommand& cmd) {
    auto ring =
        PacketRing::Open(cmd.ifindex, cmd.ip_only, cfg_.ring, *cfg_.socket_filter, &cmd.fanout);
    if (!ring.ok()) return ring.status();
    Input in;
    in.id = next_input_id_++;
    in.ifindex = cmd.ifindex;
    in.ip_only = cmd.ip_only;
    in.fd = (*ring)->fd();
    in.ring = std::move(*ring);
    in.counters = cmd.ingress_counters;
    ArmPoll(in.fd, UserData(kOpPoll, in.id));
    inputs_.push_back(std::move(in));
    return absl::OkStatus();
  }

  absl::Status OpenRecvInput(ShardCommand& cmd) {
    Input in;
    in.id = next_input_id_++;
    auto bufs = RecvBuffers::Register(&ring_, FreeBufferGroup(), RecvBuffers::SizeFor(cmd.mtu));
    if (!bufs.ok()) return bufs.status();
    // Frames wait in the socket's receive queue until a receive picks them up: size it like the
    // ring of ring mode, or bursts overflow the default (~200 KB, 23 jumbo frames).
    const int rcvbuf = static_cast<int>(std::min<uint64_t>(
        uint64_t{cfg_.ring.block_size} * cfg_.ring.block_count, 1u << 30));
    in.ip_only = cmd.ip_only;
    auto fd = OpenCaptureSocket(cmd.ifindex, cmd.ip_only, *cfg_.socket_filter, &cmd.fanout,
                                [rcvbuf](int s) -> const char* {
                                  // FORCE needs CAP_NET_ADMIN; without it rmem_max caps SO_RCVBUF.
                                  if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
                                                 sizeof rcvbuf) != 0 &&
                                      setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                                                 sizeof rcvbuf) != 0)
                                    return "SO_RCVBUF";
                                  return nullptr;
                                });
    if (!fd.ok()) return fd.status();
    in.ifindex = cmd.ifindex;
    in.fd = *fd;
    in.bufs = std::move(*bufs);
    in.counters = cmd.ingress_counters;
    ArmRecv(in);
    inputs_.push_back(std::move(in));
    return absl::OkStatus();
  }

  void CloseInput(int ifindex) {
    for (auto it = inputs_.begin(); it != inputs_.end(); ++it) {
      if (it->ifindex != ifindex) continue;
      // Cancel the multishot request before closing: it holds its own file reference, and in
      // recv mode it owns buffers until its last completion arrives.
      io_uring_sqe* sqe = GetSqe();
      const Op op = it->ring ? kOpPoll : kOpRecv;
      io_uring_prep_cancel64(sqe, UserData(op, it->id), 0);
      io_uring_sqe_set_data64(sqe, 0);
      io_uring_submit(&ring_);
      it->counters->kernel_drops.Add(TakeKernelDrops(it->fd));
      if (!it->ring) {
        // Keep the buffers until the receive reports its end; the socket can close now.
        close(it->fd);
        it->fd = -1;
        if (!it->rearm) closing_.push_back(std::move(*it));
      }
      inputs_.erase(it);
      return;
    }
  }

  void Tick() {
    for (auto& in : inputs_) {
      if (uint64_t d = TakeKernelDrops(in.fd)) in.counters->kernel_drops.Add(d);
    }
  }

  Shard* shard_;
  const ShardConfig& cfg_;
  io_uring ring_{};
  bool ring_ready_ = false;
  bool stop_ = false;
  bool commands_ = false;  // the command doorbell rang; handled once no send is in flight
  uint32_t next_input_id_ = 1;
  std::vector<Input> inputs_;
  std::vector<Input> closing_;  // recv mode: closed inputs whose receive has not ended yet
  RuleTablePtr table_ = std::make_unique<RuleTable>();
  EgressBatcher egress_;
};

Shard::Shard(const ShardConfig& config) : config_(config) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  reply_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  numa_node_ = numa_available() >= 0 ? numa_node_of_cpu(config.cpu) : -1;
}

Shard::~Shard() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
  if (reply_fd_ >= 0) close(reply_fd_);
}

absl::Status Shard::Start() {
  if (wake_fd_ < 0 || reply_fd_ < 0)
    return absl::InternalError(absl::StrFormat("shard %d: eventfd: %s", config_.index,
                                               strerror(errno)));
  thread_ = std::thread([this] { Run(); });
  // Wait for the thread to pin itself and create its ring.
  while (started_.load(std::memory_order_acquire) == 0) {
    pollfd pfd{reply_fd_, POLLIN, 0};
    poll(&pfd, 1, 10);
  }
  if (started_.load() < 0) {
    thread_.join();
    return start_status_;
  }
  return absl::OkStatus();
}

void Shard::Run() {
  pthread_setname_np(pthread_self(), absl::StrFormat("mcr-shard%d", config_.index).c_str());
  if (int err = PinCallingThreadToCpu(config_.cpu); err != 0) {
    start_status_ = absl::InvalidArgumentError(absl::StrFormat(
        "cannot pin shard %d to CPU %d: %s (is the CPU outside the allowed set? see taskset)",
        config_.index, config_.cpu, strerror(err)));
    started_.store(-1, std::memory_order_release);
    return;
  }
  sched_slice_ns_ = RequestSchedSlice(config_.sched_slice_ns);
  Loop loop(this);  // constructed after pinning: its allocations are node-local
  if (absl::Status st = loop.Init(); !st.ok()) {
    start_status_ = st;
    started_.store(-1, std::memory_order_release);
    return;
  }
  started_.store(1, std::memory_order_release);
  loop.Run();
}

ShardCommandPtr Shard::Execute(ShardCommandPtr cmd) {
  if (!thread_.joinable()) {
    cmd->status = absl::FailedPreconditionError("shard not running");
    return cmd;
  }
  const bool stopping = cmd->kind == ShardCommand::Kind::kStop;
  if (!requests_.TryPush(std::move(cmd))) std::abort();  // one command in flight at most
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  for (;;) {
    if (auto reply = replies_.TryPop()) {
      uint64_t v;
      (void)!read(reply_fd_, &v, sizeof v);
      if (stopping) thread_.join();
      return std::move(*reply);
    }
    pollfd pfd{reply_fd_, POLLIN, 0};
    poll(&pfd, 1, 100);
  }
}

void Shard::Stop() {
  if (!thread_.joinable()) return;
  auto cmd = std::make_unique<ShardCommand>();
  cmd->kind = ShardCommand::Kind::kStop;
  Execute(std::move(cmd));
}

}  // namespace mcr::engine::internal
