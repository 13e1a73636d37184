#pragma once
// Egress: connected UDP sockets per output (opened by the control thread) and the shard's batcher
// that sends runs of equal-size payloads as one UDP GSO sendmsg whose iovecs point into the
// receive ring (no copy).

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/internal/rule_table.h"
#include "engine/rule.h"

struct io_uring;
struct io_uring_cqe;

namespace mcr::engine::internal {

/// Largest number of datagrams in one UDP GSO call (UDP_MAX_SEGMENTS is 64 before Linux 6.9).
inline constexpr uint32_t kMaxGsoSegments = 64;
/// Largest total UDP payload of one GSO call.
inline constexpr uint32_t kMaxGsoBytes = 65507;

/// Opens the connected, non-blocking UDP socket of one output: bound to the interface (and its
/// address, which becomes the source), TTL, DSCP, no multicast loop, IP_RECVERR so a full device
/// queue is reported as ENOBUFS. Control thread. Returns the fd or an error naming the cause:
/// FailedPrecondition when the interface is not ready (down, gone, no address),
/// Unavailable otherwise.
absl::StatusOr<int> OpenOutputSocket(const OutputSpec& spec, int ifindex, in_addr if_addr,
                                     uint32_t sndbuf);

/// Collects datagrams per output during one pass over received frames and sends them at Flush().
/// Owned and used by one shard thread only.
///
/// Two ways to send. By default every run is a sendmsg system call made by Flush(). With
/// UseRing(), an output whose pass fits one run gets an IORING_OP_SENDMSG request on the shard's
/// io_uring instead, which the shard submits with the io_uring_enter it makes anyway to wait for
/// the next frames: a pass of single-run outputs (many streams, fan-out at modest rates, recv
/// mode) costs one system call instead of one per output. Outputs with more than one run in a
/// pass (64 datagrams or more, or sizes that break a run) keep the direct sendmsg: their cost is
/// already spread over a full run, and sending all their runs one way keeps their order.
///
/// HOT PATH: no locks, no allocation (capacity is reserved by Resize on table swap and by
/// UseRing), no exceptions, no logging.
class EgressBatcher {
 public:
  /// Most requests on the ring at once; beyond it Flush() sends directly.
  static constexpr uint32_t kMaxInFlight = 256;

  /// Shard, once, before the first Add: queue single-run sends on `ring`, tagged with user_data
  /// `tag | index` (tag's low 32 bits zero). Only for a ring on which the kernel completes
  /// MSG_DONTWAIT sends while submitting them (SendsCompleteWhileSubmitted): requests are then
  /// done when the io_uring_enter that submits them returns, in submission order. May allocate.
  void UseRing(io_uring* ring, uint64_t tag);

  /// Shard, on table swap: make room for `num_outputs` output slots. May allocate. Nothing may
  /// be in flight.
  void Resize(size_t num_outputs);

  /// Queues one payload for one output. The memory must stay valid until Flush() has returned
  /// and in_flight() is 0.
  void Add(const OutputEntry* out, const uint8_t* data, uint32_t len, uint8_t tos) noexcept {
    Slot& s = slots_[out->slot];
    if (!s.listed) {  // once per Flush: a slot emptied early by a full run stays listed
      s.listed = true;
      s.out = out;
      dirty_[num_dirty_++] = out->slot;
    }
    s.iov[s.count] = iovec{const_cast<uint8_t*>(data), len};
    s.tos[s.count++] = tos;
    if (s.count == kMaxGsoSegments) {
      s.sent_directly = true;  // the rest of this pass follows the same way, in order
      FlushSlot(s);
    }
  }

  /// Sends, or queues on the ring, everything added. Queued requests go to the kernel with the
  /// shard's next io_uring_enter; until their completions are passed to Complete() (in_flight()
  /// back to 0) the kernel may still read the queued memory.
  void Flush() noexcept;

  /// Requests queued on the ring whose completions have not been passed to Complete().
  uint32_t in_flight() const noexcept { return in_flight_; }

  /// One completion of a request this batcher queued (user_data carries its tag). A run the
  /// kernel refused for a reason a retry can cure is retried here with a direct sendmsg, as
  /// Flush() would have done.
  void Complete(const io_uring_cqe* cqe) noexcept;

  /// Send requests made, direct sendmsg calls and queued requests alike (the shard's counter).
  uint64_t send_calls() const { return send_calls_; }

 private:
  struct Slot {
    const OutputEntry* out = nullptr;
    uint32_t count = 0;
    bool listed = false;         // in dirty_ until the next Flush
    bool sent_directly = false;  // a full run went out by sendmsg during this pass
    // Largest GSO segment the route took, learnt from a refused run (IP_MTU - 28); reset by
    // Resize on the next table swap.
    uint32_t route_segment_cap = UINT32_MAX;
    std::array<iovec, kMaxGsoSegments> iov;
    std::array<uint8_t, kMaxGsoSegments> tos;
  };
  // A run queued on the ring: everything the kernel reads, kept until its completion.
  struct Request {
    const OutputEntry* out = nullptr;
    uint32_t slot = 0;
    uint8_t tos = 0;
    msghdr msg{};
    alignas(cmsghdr) char control[64];
    std::array<iovec, kMaxGsoSegments> iov;
  };

  void FlushSlot(Slot& s) noexcept;
  // Index one past the last datagram of the run that starts at `i`, of the slot's first `n`.
  uint32_t RunEnd(const Slot& s, uint32_t i, uint32_t n) const noexcept;
  // Queues the slot's datagrams, one run, as a request on the ring.
  void Queue(Slot& s, uint32_t slot_index) noexcept;
  /// Sends one run of `n` datagrams with sendmsg (a GSO send when n > 1). Returns false when the
  /// kernel refused it as a GSO send and it went out datagram by datagram instead (the route's
  /// MTU is below the segment size).
  bool SendRun(const OutputEntry* out, iovec* iov, uint8_t tos, uint32_t n) noexcept;
  // What happened to a run sent as `msg`: err 0 for sent. Retries once after an error reported
  // for an earlier datagram; falls back to single datagrams when GSO was refused (returns
  // false); counts.
  bool Finish(const OutputEntry* out, msghdr* msg, uint8_t tos, int err) noexcept;
  // After a refused GSO run: runs of the slot stay within the route's MTU from now on.
  void LearnRouteCap(Slot& s, uint32_t refused_len) noexcept;

  std::vector<Slot> slots_;
  std::vector<uint32_t> dirty_;
  size_t num_dirty_ = 0;
  uint64_t send_calls_ = 0;

  io_uring* ring_ = nullptr;
  uint64_t tag_ = 0;
  std::vector<Request> requests_;  // kMaxInFlight once UseRing ran
  std::vector<uint32_t> free_;     // indices of requests_ not in flight
  uint32_t in_flight_ = 0;
};

/// Whether this kernel completes an io_uring sendmsg with MSG_DONTWAIT while submitting it,
/// failure with EAGAIN included, rather than arming it to retry later (which some kernels may do,
/// and which would leave the request reading memory after the call). Probes `ring` with a socket
/// pair whose send queue is full; the probe's completion carries user_data `tag`, and it is
/// consumed before this returns.
bool SendsCompleteWhileSubmitted(io_uring* ring, uint64_t tag);

}  // namespace mcr::engine::internal
