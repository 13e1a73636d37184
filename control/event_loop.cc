#include "control/event_loop.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"

namespace mcr::control {

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create() {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    return absl::InternalError(absl::StrFormat("epoll_create1: %s", std::strerror(errno)));
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    const int err = errno;
    ::close(ep);
    return absl::InternalError(absl::StrFormat("eventfd: %s", std::strerror(err)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, wake, &ev) != 0) {
    const int err = errno;
    ::close(ep);
    ::close(wake);
    return absl::InternalError(absl::StrFormat("epoll_ctl: %s", std::strerror(err)));
  }
  return std::unique_ptr<EventLoop>(new EventLoop(ep, wake));
}

EventLoop::EventLoop(int epoll_fd, int wake_fd) : epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}

EventLoop::~EventLoop() {
  ::close(epoll_fd_);
  ::close(wake_fd_);
}

absl::Status EventLoop::Add(int fd, uint32_t events, Callback callback) {
  const uint64_t token = next_token_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return absl::InternalError(
        absl::StrFormat("epoll_ctl add fd %d: %s", fd, std::strerror(errno)));
  }
  watches_[token] = std::make_unique<Watch>(Watch{fd, std::move(callback)});
  token_by_fd_[fd] = token;
  return absl::OkStatus();
}

absl::Status EventLoop::Modify(int fd, uint32_t events) {
  auto it = token_by_fd_.find(fd);
  if (it == token_by_fd_.end()) {
    return absl::NotFoundError(absl::StrFormat("fd %d is not watched", fd));
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = it->second;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return absl::InternalError(
        absl::StrFormat("epoll_ctl mod fd %d: %s", fd, std::strerror(errno)));
  }
  return absl::OkStatus();
}

void EventLoop::Remove(int fd) {
  auto it = token_by_fd_.find(fd);
  if (it == token_by_fd_.end()) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  auto watch = watches_.find(it->second);
  removed_.push_back(std::move(watch->second));
  watches_.erase(watch);
  token_by_fd_.erase(it);
}

void EventLoop::Run() {
  stopping_ = false;
  epoll_event events[64];
  while (!stopping_) {
    int n = epoll_wait(epoll_fd_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // only EBADF/EFAULT/EINVAL: a bug, and nothing left to serve
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t token = events[i].data.u64;
      if (token == 0) {
        uint64_t v;
        while (::read(wake_fd_, &v, sizeof v) > 0) {
        }
        stopping_ = true;
        continue;
      }
      // The watch may have been removed by an earlier callback of this pass.
      auto w = watches_.find(token);
      if (w == watches_.end()) continue;
      // The Watch stays alive through the call even if the callback removes it (removed_).
      Watch* watch = w->second.get();
      watch->callback(events[i].events);
    }
    removed_.clear();
  }
}

void EventLoop::Stop() {
  const uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;  // EAGAIN means a wake-up is already pending
}

}  // namespace mcr::control
