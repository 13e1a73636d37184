#pragma once
// A UDP sink on loopback that drops everything at its receive buffer (the kernel's minimum), and
// sockets connected to it: what the send-path microbenchmarks send to (engine_bench's BM_FanOut,
// send_path_bench), so that they measure the sender's side of the kernel.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mcr::bench {

class DroppingSink {
 public:
  DroppingSink() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    addr_.sin_family = AF_INET;
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr_), sizeof addr_);
    socklen_t len = sizeof addr_;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len);
    int small = 1;  // raised to the kernel's minimum: nothing queues
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  ~DroppingSink() { close(fd_); }
  DroppingSink(const DroppingSink&) = delete;
  DroppingSink& operator=(const DroppingSink&) = delete;

  /// A new non-blocking UDP socket connected to the sink; the caller closes it.
  int Connect() const {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    connect(fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_);
    return fd;
  }

 private:
  int fd_ = -1;
  sockaddr_in addr_{};
};

}  // namespace mcr::bench
