#include "control/event_loop.h"

#include <unistd.h>

#include <thread>

#include "gtest/gtest.h"

namespace mcr::control {
namespace {

struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    ::close(w);
  }
  void Write() { EXPECT_EQ(::write(w, "x", 1), 1); }
  int r, w;
};

TEST(EventLoopTest, WatchRemovedEarlierInThePassIsNotCalled) {
  auto loop = *EventLoop::Create();
  Pipe a, b;
  int calls = 0;
  // Both are readable before Run, so both events arrive in one pass; whichever runs first
  // removes the other, which must then not run.
  ASSERT_TRUE(loop->Add(a.r, EPOLLIN,
                        [&](uint32_t) {
                          ++calls;
                          loop->Remove(b.r);
                          loop->Remove(a.r);
                          loop->Stop();
                        })
                  .ok());
  ASSERT_TRUE(loop->Add(b.r, EPOLLIN,
                        [&](uint32_t) {
                          ++calls;
                          loop->Remove(a.r);
                          loop->Remove(b.r);
                          loop->Stop();
                        })
                  .ok());
  a.Write();
  b.Write();
  loop->Run();
  EXPECT_EQ(calls, 1);
}

TEST(EventLoopTest, CallbackMayRemoveItselfAndModifyOthers) {
  auto loop = *EventLoop::Create();
  Pipe a;
  int calls = 0;
  ASSERT_TRUE(loop->Add(a.r, EPOLLIN,
                        [&](uint32_t events) {
                          EXPECT_TRUE(events & EPOLLIN);
                          ++calls;
                          loop->Remove(a.r);  // destroys nothing it still runs on
                          loop->Stop();
                        })
                  .ok());
  EXPECT_FALSE(loop->Modify(12345, EPOLLIN).ok());
  a.Write();
  loop->Run();
  EXPECT_EQ(calls, 1);
}

TEST(EventLoopTest, StopFromAnotherThread) {
  auto loop = *EventLoop::Create();
  std::thread t([&] { loop->Run(); });
  loop->Stop();
  t.join();  // returns: Run() saw the wake-up
}

}  // namespace
}  // namespace mcr::control
