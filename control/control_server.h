#pragma once
// The control socket: a Unix stream listener and its clients, served from the control thread's
// EventLoop. Framing and envelope checks happen here (protocol.h); each well-formed request goes
// to the handler and its response is queued back. Every socket is non-blocking and each client
// has its own input and output buffers, so a client that never writes, never reads or
// disconnects mid-message delays nobody else. Control thread only.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "control/event_loop.h"
#include "control/log.h"
#include "control/protocol.h"
#include "nlohmann/json.hpp"

namespace mcr::control {

/// Control socket settings.
struct ServerOptions {
  /// Socket path; its parent directory is created (0755) if missing. Default /run/mcr/mcrd.sock.
  std::string path = "/run/mcr/mcrd.sock";
  /// Group given to the socket file (--socket-group); nullopt keeps the daemon's group.
  std::optional<gid_t> group;
  /// Socket file mode: owner and group may connect. Default 0660.
  mode_t mode = 0660;
  /// Most clients connected at once; more are told so and disconnected. Default 64.
  size_t max_clients = 64;
  /// Longest request line in bytes. Default kMaxMessageBytes.
  size_t max_message_bytes = kMaxMessageBytes;
  /// Queued response bytes above which a client's further requests wait until it reads
  /// (and its socket is not read meanwhile). Default 1 MiB.
  size_t max_pending_output = 1 << 20;
  /// A client that has neither sent nor received anything for this long is disconnected.
  /// Default 10 minutes.
  std::chrono::seconds idle_timeout{600};
};

class ControlServer {
 public:
  /// Answers one parsed request.
  using Handler = std::function<nlohmann::json(const Request&)>;

  /// Binds and listens at options.path. Refuses (AlreadyExists) when a server answers there —
  /// another mcrd — and replaces a stale socket file left by one that died; never removes a
  /// file that is not a socket. The file gets options.mode and options.group.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Listen(ServerOptions options, Logger& log);
  /// Closes every connection and removes the socket file if it is still ours.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  /// Starts accepting and serving on `loop` (borrowed; it must outlive the server's use of it).
  absl::Status Start(EventLoop& loop, Handler handler);
  /// Closes the listening socket and removes the socket file; connected clients stay.
  void StopAccepting();
  /// Disconnects clients idle longer than options.idle_timeout. Call about once a second.
  void Sweep(std::chrono::steady_clock::time_point now);

  size_t client_count() const { return clients_.size(); }
  const std::string& path() const { return options_.path; }

 private:
  struct Client;
  ControlServer(ServerOptions options, Logger& log, int listen_fd, dev_t dev, ino_t ino);

  void OnAccept();
  void OnClientEvent(int fd, uint32_t events);
  /// Handles complete lines while the client's output backlog allows.
  void Process(Client& client);
  /// The peer can read no more: answers are dropped from now on, requests still handled.
  void DropAnswers(Client& client);
  /// Writes what the socket takes. Returns false when the peer is gone.
  bool Flush(Client& client);
  /// Re-arms epoll for the client's state, or closes it when it is finished.
  void Update(Client& client);
  void Close(int fd);
  /// accept() failed for lack of descriptors: take the waiting connection with the reserve
  /// descriptor, answer it with an error and close it, so the listener does not stay readable.
  /// Returns whether a connection was taken (false: none was waiting).
  bool RefuseForLackOfDescriptors(int err);

  ServerOptions options_;
  Logger& log_;
  int listen_fd_;
  dev_t dev_;  // identity of the socket file we bound, so we never unlink a successor's
  ino_t ino_;
  int reserve_fd_;  // /dev/null, given up to accept (and refuse) a client when out of fds
  std::string fd_refusal_line_;  // what such a client is told
  std::chrono::steady_clock::time_point last_fd_warning_{};
  bool accept_paused_ = false;  // out of descriptors, even the reserve: resumed by Sweep()
  EventLoop* loop_ = nullptr;
  Handler handler_;
  absl::flat_hash_map<int, std::unique_ptr<Client>> clients_;
};

using ControlServerPtr = std::unique_ptr<ControlServer>;

}  // namespace mcr::control
