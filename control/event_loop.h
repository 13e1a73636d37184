#pragma once
// A minimal level-triggered epoll loop for the control thread: fds with callbacks, nothing else.
// Run() and every method except Stop() belong to the thread that runs the loop; Stop() may be
// called from any thread (it writes an eventfd).

#include <sys/epoll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mcr::control {

class EventLoop {
 public:
  /// Called with the epoll event bits (EPOLLIN, EPOLLOUT, EPOLLHUP, ...).
  using Callback = std::function<void(uint32_t events)>;

  static absl::StatusOr<std::unique_ptr<EventLoop>> Create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Watches `fd` (borrowed: the caller closes it after Remove) for `events`.
  absl::Status Add(int fd, uint32_t events, Callback callback);
  absl::Status Modify(int fd, uint32_t events);
  /// Stops watching `fd`. Safe from inside any callback, including the fd's own: events already
  /// collected for it in this pass are dropped, also if the fd number is reused meanwhile.
  void Remove(int fd);

  /// Dispatches events until Stop().
  void Run();
  /// Makes Run() return after the current pass. Any thread; async-signal-safe.
  void Stop();

 private:
  EventLoop(int epoll_fd, int wake_fd);

  struct Watch {
    int fd;
    Callback callback;
  };
  int epoll_fd_;
  int wake_fd_;
  bool stopping_ = false;
  uint64_t next_token_ = 1;  // 0 is the wake-up eventfd
  // epoll_event.data carries a token, never a pointer or an fd: an event collected for a watch
  // removed earlier in the same pass (its fd perhaps reused by a new watch) finds no token.
  absl::flat_hash_map<uint64_t, std::unique_ptr<Watch>> watches_;
  absl::flat_hash_map<int, uint64_t> token_by_fd_;
  // Watches removed during a pass; destroyed after it, as one may be running its own callback.
  std::vector<std::unique_ptr<Watch>> removed_;
};

using EventLoopPtr = std::unique_ptr<EventLoop>;

}  // namespace mcr::control
