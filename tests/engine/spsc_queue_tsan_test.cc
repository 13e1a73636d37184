// Always built with -fsanitize=thread: a missing acquire/release pair in SpscQueue shows up here
// as a data race on the element, not as a rare wrong value.

#include <memory>
#include <optional>
#include <thread>

#include "engine/spsc_queue.h"
#include "gtest/gtest.h"

namespace mcr::engine {
namespace {

TEST(SpscQueueTest, EmptyQueuePopsNothing) {
  SpscQueue<std::unique_ptr<int>, 4> q;
  EXPECT_FALSE(q.TryPop().has_value());
  EXPECT_EQ(q.SizeApprox(), 0u);
  EXPECT_EQ(q.capacity(), 4u);
}

TEST(SpscQueueTest, FullQueueRefusesAndLeavesValueWithCaller) {
  SpscQueue<std::unique_ptr<int>, 4> q;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.TryPush(std::make_unique<int>(i)));
  EXPECT_EQ(q.SizeApprox(), 4u);  // all Capacity slots are usable
  auto extra = std::make_unique<int>(99);
  EXPECT_FALSE(q.TryPush(std::move(extra)));
  ASSERT_NE(extra, nullptr) << "a refused push must not consume the value";
  EXPECT_EQ(*extra, 99);
  // One pop frees exactly one slot.
  std::optional<std::unique_ptr<int>> first = q.TryPop();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(**first, 0);
  EXPECT_TRUE(q.TryPush(std::move(extra)));
  EXPECT_FALSE(q.TryPush(std::make_unique<int>(100)));
  for (int want : {1, 2, 3, 99}) {
    std::optional<std::unique_ptr<int>> v = q.TryPop();
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(**v, want);
  }
  EXPECT_FALSE(q.TryPop().has_value());
  EXPECT_EQ(q.SizeApprox(), 0u);
}

TEST(SpscQueueTest, WrapsAroundManyTimes) {
  SpscQueue<int, 2> q;  // smallest queue: every index wraps every other operation
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(q.TryPush(int{i}));
    ASSERT_TRUE(q.TryPush(int{i + 1}));
    ASSERT_FALSE(q.TryPush(int{-1}));
    EXPECT_EQ(q.TryPop(), i);
    EXPECT_EQ(q.TryPop(), i + 1);
    ASSERT_FALSE(q.TryPop().has_value());
  }
}

// Counts live instances, to check that the queue neither leaks nor double-destroys.
struct Tracked {
  static inline int live = 0;
  explicit Tracked(int v) : value(v) { ++live; }
  Tracked(Tracked&& o) noexcept : value(o.value) { ++live; }
  Tracked& operator=(Tracked&&) = delete;
  ~Tracked() { --live; }
  int value;
};

TEST(SpscQueueTest, DestroysElementsLeftInQueue) {
  Tracked::live = 0;
  {
    SpscQueue<Tracked, 8> q;
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.TryPush(Tracked(i)));
    EXPECT_EQ(Tracked::live, 5);
    EXPECT_EQ(q.TryPop()->value, 0);
    EXPECT_EQ(Tracked::live, 4);
  }
  EXPECT_EQ(Tracked::live, 0);
}

TEST(SpscQueueTest, SizeApproxFromAnotherThreadStaysInRange) {
  SpscQueue<int, 64> q;
  std::atomic<bool> done{false};
  std::thread observer([&] {
    while (!done.load(std::memory_order_acquire)) {
      const size_t size = q.SizeApprox();
      ASSERT_LE(size, q.capacity());
    }
  });
  for (int i = 0; i < 200000; ++i) {
    while (!q.TryPush(int{i})) q.TryPop();
    if (i % 3 == 0) q.TryPop();
  }
  done.store(true, std::memory_order_release);
  observer.join();
}

TEST(SpscQueueTest, TwoThreadsTransferMillionsInOrder) {
  // Heap elements: TSan sees the producer's write of *value and the consumer's read, so the
  // element handoff itself is checked, not just the indices.
  constexpr int kItems = 2'000'000;
  auto q = std::make_unique<SpscQueue<std::unique_ptr<int>, 1024>>();
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) {
      auto v = std::make_unique<int>(i);
      while (!q->TryPush(std::move(v))) std::this_thread::yield();
    }
  });
  int next = 0;
  int out_of_order = 0;
  while (next < kItems) {
    std::optional<std::unique_ptr<int>> v = q->TryPop();
    if (!v.has_value()) {
      std::this_thread::yield();
      continue;
    }
    if (*v == nullptr || **v != next) ++out_of_order;
    ++next;
  }
  producer.join();
  EXPECT_EQ(out_of_order, 0);
  EXPECT_FALSE(q->TryPop().has_value()) << "more items than were pushed";
}

}  // namespace
}  // namespace mcr::engine
