#pragma once
// HOT PATH (Observe runs for every valid packet received): no allocation, no exceptions.
//
// Loss, duplicate and reorder accounting for one stream of 64-bit sequence numbers, O(1) per
// packet (amortised; a forward jump of d costs d/64 word writes, at most window/64) in bounded
// memory: a ring bitmap of the last `window` sequence numbers below and including the highest.
//
// Definitions (what the receiver reports):
//   unique     distinct sequence numbers seen within the window.
//   reordered  a new sequence number below the highest seen so far (arrived after a later one).
//   duplicated a sequence number already seen (within the window).
//   late       more than `window` behind the highest: too old to tell a duplicate from a reordered
//              packet, so it is counted here and nowhere else (and stays counted as lost).
//   lost       (highest - lowest + 1) - unique, where lowest and highest are the smallest and
//              largest sequence numbers accepted. Packets never sent after the highest one seen, or
//              before the lowest one, cannot be known and are not counted.
// Sequence numbers compare in serial-number arithmetic (RFC 1982 on 64 bits): a number less than
// 2^63 ahead is newer, so a counter that wraps from 2^64-1 to 0 keeps counting.
//
// Owned by the receiver's per-stream state; one thread (the receive loop).

#include <cstdint>
#include <vector>

namespace mcr::gen {

class SeqTracker {
 public:
  enum class Verdict : uint8_t { kNew, kReordered, kDuplicate, kLate };

  /// window: how many sequence numbers below the highest are remembered; a power of two >= 64.
  explicit SeqTracker(uint64_t window = 65536);

  SeqTracker(const SeqTracker&) = delete;
  SeqTracker& operator=(const SeqTracker&) = delete;

  /// Accounts one received packet and returns how it was classified. kNew covers both the next
  /// expected number and jumps forward (the gap counts as lost until it fills in).
  Verdict Observe(uint64_t seq) noexcept;

  bool started() const { return started_; }
  uint64_t lowest() const { return lowest_; }
  uint64_t highest() const { return highest_; }
  uint64_t unique() const { return unique_; }
  uint64_t duplicated() const { return duplicated_; }
  uint64_t reordered() const { return reordered_; }
  uint64_t late() const { return late_; }
  /// (highest - lowest + 1) - unique; 0 before the first packet.
  uint64_t lost() const;
  uint64_t window() const { return window_; }

 private:
  bool Test(uint64_t seq) const noexcept {
    const uint64_t pos = seq & mask_;
    return (bits_[pos >> 6] >> (pos & 63)) & 1;
  }
  void Set(uint64_t seq) noexcept {
    const uint64_t pos = seq & mask_;
    bits_[pos >> 6] |= uint64_t{1} << (pos & 63);
  }
  // Clears the slots of the `count` sequence numbers starting at `first` (count < window).
  void ClearRange(uint64_t first, uint64_t count) noexcept;

  const uint64_t window_;
  const uint64_t mask_;
  std::vector<uint64_t> bits_;  // window_ / 64 words, allocated once
  bool started_ = false;
  uint64_t lowest_ = 0;
  uint64_t highest_ = 0;
  uint64_t unique_ = 0;
  uint64_t duplicated_ = 0;
  uint64_t reordered_ = 0;
  uint64_t late_ = 0;
};

}  // namespace mcr::gen
