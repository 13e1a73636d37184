#pragma once
// A bounded, lock-free, single-producer single-consumer queue: how the control thread hands a shard
// a new rule table (and the shard hands the old one back) without a lock on the shard's loop.
//
// HOT PATH on the consumer side (drained at the top of every shard loop pass): no locks, no
// allocation, no syscalls. Neither abseil 20220623 nor C++20 has such a queue, and
// std::atomic<std::shared_ptr> is not lock-free in libstdc++ 12.

#include <atomic>
#include <cstddef>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace mcr::engine {

/// Bounded FIFO of up to `Capacity` elements of move-only or copyable T. Exactly one thread may
/// call TryPush (the producer) and exactly one thread TryPop (the consumer) at a time; SizeApprox
/// may be called from any thread. The owner creates and destroys it while neither side runs (the
/// destructor destroys elements still queued). Elements live inline, so a queue of large T or
/// large Capacity belongs on the heap (std::make_unique). Has identity: neither copyable nor
/// movable.
template <typename T, size_t Capacity>
class SpscQueue {
  static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0,
                "Capacity must be a power of two (the index is a mask of a free-running count)");
  static_assert(std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>,
                "elements are moved in and out without a way to report failure");

 public:
  SpscQueue() = default;
  SpscQueue(const SpscQueue&) = delete;
  SpscQueue& operator=(const SpscQueue&) = delete;
  ~SpscQueue() {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    for (size_t i = head_.load(std::memory_order_relaxed); i != tail; ++i) Slot(i)->~T();
  }

  static constexpr size_t capacity() noexcept { return Capacity; }

  /// Producer only. Moves `value` into the queue and returns true, or returns false when the queue
  /// is full and leaves `value` untouched (the caller still owns it and may retry).
  bool TryPush(T&& value) noexcept {
    const size_t tail = tail_.load(std::memory_order_relaxed);  // only this thread writes tail_
    if (tail - head_cache_ == Capacity) {
      // Looks full: refresh the consumer's index. Acquire pairs with TryPop's release store, so
      // the consumer's move-out and destruction of the slot we are about to reuse happen before
      // we construct into it.
      head_cache_ = head_.load(std::memory_order_acquire);
      if (tail - head_cache_ == Capacity) return false;
    }
    ::new (static_cast<void*>(&slots_[tail & kMask])) T(std::move(value));
    // Release publishes the constructed element to the consumer's acquire load of tail_.
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  /// Consumer only. Removes and returns the oldest element, or nullopt when the queue is empty.
  std::optional<T> TryPop() noexcept {
    const size_t head = head_.load(std::memory_order_relaxed);  // only this thread writes head_
    if (head == tail_cache_) {
      // Looks empty: refresh the producer's index. Acquire pairs with TryPush's release store,
      // making the element's construction visible before we read it.
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (head == tail_cache_) return std::nullopt;
    }
    T* slot = Slot(head);
    std::optional<T> value(std::move(*slot));
    slot->~T();
    // Release hands the now-empty slot back: pairs with the producer's acquire load of head_.
    head_.store(head + 1, std::memory_order_release);
    return value;
  }

  /// Any thread. The number of queued elements at some moment during the call; exact only when
  /// called by the producer or consumer while the other side is idle.
  size_t SizeApprox() const noexcept {
    // head_ first, with acquire: whatever head we see, the consumer had seen a tail at least as
    // large before publishing it, and our later tail_ load cannot observe an older tail (coherence
    // through the acquire). So tail >= head and the difference never wraps. It can exceed
    // Capacity when both sides moved between the two loads: clamp.
    const size_t head = head_.load(std::memory_order_acquire);
    const size_t tail = tail_.load(std::memory_order_acquire);
    const size_t size = tail - head;
    return size < Capacity ? size : Capacity;
  }

 private:
  static constexpr size_t kMask = Capacity - 1;
  // 64 bytes: the line size on every x86-64 and most arm64 parts. (std::hardware_destructive_
  // interference_size is 256 on some GCC targets and warns when used in headers.)
  static constexpr size_t kCacheLine = 64;

  struct alignas(T) Storage {
    unsigned char bytes[sizeof(T)];
  };

  T* Slot(size_t index) noexcept {
    return std::launder(reinterpret_cast<T*>(&slots_[index & kMask]));
  }

  // Indices are free-running counts (a 64-bit count never wraps in practice); slot = count & kMask.
  // Full when tail - head == Capacity, so all Capacity slots are usable.
  //
  // Layout: each side's index shares a line with that side's cache of the other's index, and the
  // two lines are separate. The producer thus writes only its own line (plus slots) and reads the
  // consumer's line only when its cached head says "full"; symmetrically for the consumer. Without
  // the caches every push and pop would pull the other side's line across cores.
  alignas(kCacheLine) std::atomic<size_t> tail_{0};  // written by producer, read by consumer
  size_t head_cache_ = 0;                            // producer-private: last head_ it loaded
  alignas(kCacheLine) std::atomic<size_t> head_{0};  // written by consumer, read by producer
  size_t tail_cache_ = 0;                            // consumer-private: last tail_ it loaded
  alignas(kCacheLine) alignas(T) Storage slots_[Capacity];
};

}  // namespace mcr::engine
