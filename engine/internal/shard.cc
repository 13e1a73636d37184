// HOT PATH (Shard::Loop::DrainRing and what it calls): no locks, no allocation, no exceptions,
// no syscalls outside the ring other than the batched egress sendmsg, no synchronous logging.
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
#include <cstring>
#include <ctime>

#include "absl/strings/str_format.h"
#include "engine/internal/egress.h"
#include "engine/steering.h"

namespace mcr::engine::internal {
namespace {

// io_uring user_data: operation in the top byte, the capture ring's id below.
enum Op : uint64_t { kOpWake = 1, kOpPoll = 2 };
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
    inputs_.clear();
    if (ring_ready_) io_uring_queue_exit(&ring_);
  }

  absl::Status Init() {
    io_uring_params p{};
    // One thread submits and reaps; completions run only when we wait (DEFER_TASKRUN), which
    // keeps task work off the hot path. Fall back for kernels without them.
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int ret = io_uring_queue_init_params(256, &ring_, &p);
    if (ret == -EINVAL) {
      p = io_uring_params{};
      ret = io_uring_queue_init_params(256, &ring_, &p);
    }
    if (ret < 0) {
      return absl::UnavailableError(absl::StrFormat(
          "shard %d: io_uring_queue_init: %s%s", cfg_.index, strerror(-ret),
          ret == -EPERM ? " (io_uring is disabled for this process: check the "
                          "kernel.io_uring_disabled sysctl or the container's seccomp profile)"
                        : ""));
    }
    ring_ready_ = true;
    ArmPoll(shard_->wake_fd_, UserData(kOpWake, 0));
    io_uring_submit(&ring_);
    return absl::OkStatus();
  }

  void Run() {
    uint64_t last_tick = NowNs();
    uint64_t busy = 0;
    while (!stop_) {
      __kernel_timespec ts{1, 0};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      const uint64_t t_work = NowNs();

      bool wake = false;
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        HandleCqe(cqe, &wake);
      }
      io_uring_cq_advance(&ring_, seen);

      // Every wake-up drains every ring: checking an idle ring is one load, and it spares
      // tracking which poll fired.
      for (auto& in : inputs_) DrainRing(in);
      if (wake) DrainCommands();

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
  struct Input {
    uint32_t id;
    PacketRingPtr ring;
    IngressCounters* counters;
  };

  void ArmPoll(int fd, uint64_t user_data) {
    io_uring_sqe* sqe = GetSqe();
    io_uring_prep_poll_multishot(sqe, fd, POLLIN | POLLERR);
    io_uring_sqe_set_data64(sqe, user_data);
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

  void HandleCqe(const io_uring_cqe* cqe, bool* wake) {
    const uint64_t ud = io_uring_cqe_get_data64(cqe);
    const uint32_t id = static_cast<uint32_t>(ud);
    const bool more = cqe->flags & IORING_CQE_F_MORE;
    switch (ud >> 56) {
      case kOpWake:
        *wake = true;
        if (!more) ArmPoll(shard_->wake_fd_, ud);
        break;
      case kOpPoll: {
        Input* in = FindInput(id);
        if (in == nullptr) break;  // completion of a ring closed since (-ECANCELED)
        if (cqe->res > 0 && (cqe->res & POLLERR)) {
          // ENETDOWN on link down and the like: reading SO_ERROR clears it; the socket keeps
          // working when the link comes back.
          int err = 0;
          socklen_t len = sizeof err;
          getsockopt(in->ring->fd(), SOL_SOCKET, SO_ERROR, &err, &len);
          in->counters->socket_errors.Add(1);
        }
        if (!more) ArmPoll(in->ring->fd(), ud);  // multishot ended (error or overflow): re-arm
        break;
      }
      default:
        break;
    }
  }

  void DrainRing(Input& in) noexcept {
    ShardCounters& c = shard_->counters_;
    const int32_t ifindex = in.ring->ifindex();
    const bool check_steering = cfg_.num_shards > 1;
    while (tpacket_block_desc* bd = in.ring->NextBlock()) {
      const uint32_t n = bd->hdr.bh1.num_pkts;
      auto* h = reinterpret_cast<const tpacket3_hdr*>(reinterpret_cast<const uint8_t*>(bd) +
                                                      bd->hdr.bh1.offset_to_first_pkt);
      uint64_t unmatched = 0, mismatch = 0;
      for (uint32_t k = 0; k < n; ++k) {
        const uint8_t* frame = reinterpret_cast<const uint8_t*>(h) + h->tp_mac;
        ParsedPacket p;
        const ParseResult r = ParseFrame(frame, h->tp_snaplen, &p);
        h = reinterpret_cast<const tpacket3_hdr*>(reinterpret_cast<const uint8_t*>(h) +
                                                  h->tp_next_offset);
        if (r != ParseResult::kOk) {
          c.drops[static_cast<size_t>(r)].Add(1);
          continue;
        }
        if (check_steering && ShardFor(p.dst_addr, p.dst_port, cfg_.num_shards) !=
                                  static_cast<uint32_t>(cfg_.index))
          ++mismatch;  // expected only while a fanout group is being (re)built
        const RuleEntry* rule = table_->Lookup(ifindex, p.dst_addr, p.dst_port, p.src_addr);
        if (rule == nullptr) {
          ++unmatched;
          continue;
        }
        rule->counters->packets.Add(1);
        rule->counters->bytes.Add(p.payload_len);
        for (const OutputEntry* out : rule->outputs)
          egress_.Add(out, p.payload, p.payload_len, p.tos);
      }
      // Sends are synchronous: once Flush returns nothing refers to the block any more.
      egress_.Flush();
      in.ring->ReleaseBlock(bd);
      c.received.Add(n);
      if (unmatched) c.unmatched.Add(unmatched);
      if (mismatch) c.steering_mismatch.Add(mismatch);
    }
    c.sendmsg_calls.Set(egress_.syscalls());
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
        // Between passes: no send is in flight and no block is held, so the old table has no
        // reader left once we return it.
        egress_.Resize(cmd.table->num_outputs());
        std::swap(table_, cmd.table);
        shard_->rule_count_.store(table_->num_rules(), std::memory_order_relaxed);
        break;
      }
      case ShardCommand::Kind::kOpenInput: {
        auto ring = PacketRing::Open(cmd.ifindex, cfg_.ring, *cfg_.socket_filter, &cmd.fanout);
        if (!ring.ok()) {
          cmd.status = ring.status();
          break;
        }
        const uint32_t id = next_input_id_++;
        ArmPoll((*ring)->fd(), UserData(kOpPoll, id));
        inputs_.push_back(Input{id, std::move(*ring), cmd.ingress_counters});
        break;
      }
      case ShardCommand::Kind::kCloseInput: {
        for (auto it = inputs_.begin(); it != inputs_.end(); ++it) {
          if (it->ring->ifindex() != cmd.ifindex) continue;
          // Cancel the multishot poll before closing: it holds its own file reference.
          io_uring_sqe* sqe = GetSqe();
          io_uring_prep_poll_remove(sqe, UserData(kOpPoll, it->id));
          io_uring_submit(&ring_);
          it->counters->kernel_drops.Add(it->ring->TakeKernelDrops());
          inputs_.erase(it);
          break;
        }
        break;
      }
      case ShardCommand::Kind::kStop:
        stop_ = true;
        break;
    }
  }

  void Tick() {
    for (auto& in : inputs_) {
      if (uint64_t d = in.ring->TakeKernelDrops()) in.counters->kernel_drops.Add(d);
    }
  }

  Shard* shard_;
  const ShardConfig& cfg_;
  io_uring ring_{};
  bool ring_ready_ = false;
  bool stop_ = false;
  uint32_t next_input_id_ = 1;
  std::vector<Input> inputs_;
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
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(config_.cpu, &set);
  if (int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set); err != 0) {
    start_status_ = absl::InvalidArgumentError(absl::StrFormat(
        "cannot pin shard %d to CPU %d: %s (is the CPU outside the allowed set? see taskset)",
        config_.index, config_.cpu, strerror(err)));
    started_.store(-1, std::memory_order_release);
    return;
  }
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
