#include "control/control_server.h"

#include <fcntl.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "control/atomic_file.h"

namespace mcr::control {
namespace {

using Clock = std::chrono::steady_clock;

// The descriptor held in reserve for refusing clients when the process has none left.
int OpenReserve() { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); }

absl::Status Errno(std::string_view what, std::string_view path, int err) {
  return absl::InternalError(absl::StrFormat("%s %s: %s", what, path, std::strerror(err)));
}

absl::StatusOr<sockaddr_un> Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "control socket path '%s' must be 1..%d bytes long", path, sizeof addr.sun_path - 1));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

struct ControlServer::Client {
  explicit Client(int f, size_t max_line) : fd(f), reader(max_line) {}
  int fd;
  LineReader reader;
  std::string out;  // queued response bytes; out_sent of them already written
  size_t out_sent = 0;
  bool read_closed = false;   // the peer sent EOF; no more requests will come
  bool write_closed = false;  // the peer is gone: its requests are handled, answers dropped
  bool finished = false;      // close once `out` is written
  Clock::time_point last_active = Clock::now();

  size_t pending() const { return out.size() - out_sent; }
};

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Listen(ServerOptions options,
                                                                     Logger& log) {
  auto addr = Address(options.path);
  if (!addr.ok()) return addr.status();
  if (auto s = MakeDirectories(Parent(options.path), 0755); !s.ok()) return s;

  struct stat st {};
  if (::lstat(options.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s exists and is not a socket; remove it or choose another --control-socket-path",
          options.path));
    }
    // A socket file: live (another mcrd answers) or stale (its owner died without removing it).
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return Errno("socket for", options.path, errno);
    const int rc = ::connect(probe, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
    const int err = errno;
    ::close(probe);
    if (rc == 0 || err == EAGAIN) {
      // EAGAIN: the listener exists and its backlog is full; still a live server.
      return absl::AlreadyExistsError(absl::StrFormat(
          "another mcrd is already serving %s (stop it, or choose another --control-socket-path)",
          options.path));
    }
    if (err != ECONNREFUSED) return Errno("cannot probe existing socket", options.path, err);
    if (::unlink(options.path.c_str()) != 0 && errno != ENOENT) {
      return Errno("cannot remove stale socket", options.path, errno);
    }
    log.Info("removed stale control socket %s", options.path);
  } else if (errno != ENOENT) {
    return Errno("cannot stat", options.path, errno);
  }

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket for", options.path, errno);
  // bind() creates the file with 0777 & ~umask; a restrictive umask keeps it private until the
  // chown/chmod below (the process is still single-threaded in what touches files).
  const mode_t old_umask = ::umask(0177);
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr);
  const int bind_err = errno;
  ::umask(old_umask);
  if (bound != 0) {
    ::close(fd);
    return Errno("cannot bind", options.path, bind_err);
  }
  auto fail = [&](std::string_view what) {
    const int err = errno;
    ::close(fd);
    ::unlink(options.path.c_str());
    return Errno(what, options.path, err);
  };
  if (options.group && ::chown(options.path.c_str(), static_cast<uid_t>(-1), *options.group) != 0) {
    return fail("cannot give the socket group ownership:");
  }
  if (::chmod(options.path.c_str(), options.mode) != 0) return fail("cannot chmod");
  if (::lstat(options.path.c_str(), &st) != 0) return fail("cannot stat");
  if (::listen(fd, 64) != 0) return fail("cannot listen on");
  return std::unique_ptr<ControlServer>(
      new ControlServer(std::move(options), log, fd, st.st_dev, st.st_ino));
}

ControlServer::ControlServer(ServerOptions options, Logger& log, int listen_fd, dev_t dev,
                             ino_t ino)
    : options_(std::move(options)),
      log_(log),
      listen_fd_(listen_fd),
      dev_(dev),
      ino_(ino),
      reserve_fd_(OpenReserve()),
      // Built now, not when descriptors have run out: then nothing that might need one
      // (UBSan's type checks open a pipe, for one) runs on the way to the refused client.
      fd_refusal_line_(SerializeLine(ErrorResponse(
          nullptr, absl::ResourceExhaustedError("mcrd cannot accept control clients: it is out "
                                                "of file descriptors")))) {}

ControlServer::~ControlServer() {
  std::vector<int> fds;
  for (const auto& [fd, client] : clients_) fds.push_back(fd);
  for (int fd : fds) Close(fd);
  StopAccepting();
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

bool ControlServer::RefuseForLackOfDescriptors(int err) {
  // A connection waiting in the backlog keeps the listener readable: left there, the
  // level-triggered loop would spin on accept(). Free the reserve descriptor, take the
  // connection, tell the client why and close it.
  const auto now = Clock::now();
  if (now - last_fd_warning_ >= std::chrono::seconds(10)) {
    last_fd_warning_ = now;
    log_.Warning("accept on %s: %s; refusing control clients until descriptors are free "
                 "(raise the open-files limit, e.g. LimitNOFILE=)",
                 options_.path, std::strerror(err));
  }
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    reserve_fd_ = -1;
  }
  int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    const std::string& line = fd_refusal_line_;
    ssize_t n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
    ::close(fd);
  }
  reserve_fd_ = OpenReserve();
  // accept() reports EMFILE before it looks for a connection: only a connection taken here
  // says another may be waiting.
  return fd >= 0;
}

absl::Status ControlServer::Start(EventLoop& loop, Handler handler) {
  loop_ = &loop;
  handler_ = std::move(handler);
  return loop.Add(listen_fd_, EPOLLIN, [this](uint32_t) { OnAccept(); });
}

void ControlServer::StopAccepting() {
  if (listen_fd_ < 0) return;
  if (loop_ != nullptr) loop_->Remove(listen_fd_);
  ::close(listen_fd_);
  listen_fd_ = -1;
  // Remove the file only if it is still the one we bound: a successor may have replaced it.
  struct stat st {};
  if (::lstat(options_.path.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) {
    ::unlink(options_.path.c_str());
  }
}

void ControlServer::OnAccept() {
  while (listen_fd_ >= 0) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        if (reserve_fd_ < 0) reserve_fd_ = OpenReserve();
        if (reserve_fd_ >= 0) {
          if (RefuseForLackOfDescriptors(errno)) continue;
          return;
        }
        // Not even the reserve: stop watching the listener until the next Sweep().
        log_.Warning("accept on %s: %s; not accepting for a second", options_.path,
                     std::strerror(errno));
        accept_paused_ = loop_->Modify(listen_fd_, 0).ok();
        return;
      }
      if (errno != EAGAIN) log_.Warning("accept on %s: %s", options_.path, std::strerror(errno));
      return;  // EAGAIN; or a failure the next readiness retries
    }
    if (clients_.size() >= options_.max_clients) {
      // Best effort: the socket is fresh, so one short line fits its buffer.
      const std::string line = SerializeLine(ErrorResponse(
          nullptr, absl::ResourceExhaustedError(absl::StrFormat(
                       "too many control clients (%d); try again later", options_.max_clients))));
      ssize_t n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)n;
      ::close(fd);
      log_.Warning("refused a control client: %d already connected", clients_.size());
      continue;
    }
    if (log_.Enabled(LogLevel::kDebug)) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        log_.Debug("control client connected: pid %d uid %d", cred.pid, cred.uid);
      }
    }
    auto client = std::make_unique<Client>(fd, options_.max_message_bytes);
    if (auto s = loop_->Add(fd, EPOLLIN | EPOLLRDHUP,
                            [this, fd](uint32_t events) { OnClientEvent(fd, events); });
        !s.ok()) {
      log_.Warning("%s", s.message());
      ::close(fd);
      continue;
    }
    clients_.emplace(fd, std::move(client));
  }
}

void ControlServer::OnClientEvent(int fd, uint32_t events) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  Client& c = *it->second;
  // A peer that is gone — hang-up, an error (ECONNRESET when it closed with answers unread), or
  // a failed send below — can read no answer, but what it sent before closing still counts: a
  // script may send requests and close without reading. Its requests stay queued ahead of the
  // error, so they are read and handled; only the answers are dropped.
  if (events & (EPOLLHUP | EPOLLERR)) DropAnswers(c);
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c.read_closed) {
    // Read at most 256 KiB per wake-up so that one fast writer cannot starve the others; the
    // level-triggered loop comes back for the rest.
    char buf[65536];
    for (int i = 0; i < 4; ++i) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        c.reader.Append(std::string_view(buf, static_cast<size_t>(n)));
        c.last_active = Clock::now();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      // EOF, or an error once the queue is empty: nothing more will come.
      c.read_closed = true;
      if (n < 0) DropAnswers(c);
      break;
    }
  }
  Process(c);
  if (!c.write_closed && !Flush(c)) {
    DropAnswers(c);
    Process(c);
  }
  Update(c);
}

void ControlServer::DropAnswers(Client& c) {
  c.write_closed = true;
  c.out.clear();
  c.out_sent = 0;
}

void ControlServer::Process(Client& c) {
  bool drained = false;  // every complete line has been handled
  while ((c.write_closed || c.pending() < options_.max_pending_output) && !c.finished) {
    auto item = c.reader.Next();
    if (!item) {
      drained = true;
      break;
    }
    nlohmann::json response;
    if (item->kind == LineReader::Kind::kOversized) {
      response = ErrorResponse(nullptr, absl::InvalidArgumentError(absl::StrFormat(
                                            "message longer than %d bytes; discarded through "
                                            "the next newline",
                                            options_.max_message_bytes)));
      log_.Debug("control client sent an oversized message");
    } else {
      if (item->line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
      nlohmann::json id;
      auto request = ParseRequest(item->line, &id);
      if (request.ok()) {
        response = handler_(*request);
      } else {
        response = ErrorResponse(id, request.status());
        log_.Debug("control client sent a bad request: %s", request.status().message());
      }
    }
    if (!c.write_closed) c.out += SerializeLine(response);
  }
  if (c.read_closed && drained) {
    // No further complete line will come. Bytes after the last newline were a message the peer
    // never finished.
    if (c.reader.has_partial() && !c.write_closed) {
      c.out += SerializeLine(ErrorResponse(
          nullptr, absl::InvalidArgumentError(
                       "truncated message: the connection was closed before its newline")));
    }
    c.finished = true;
  }
}

bool ControlServer::Flush(Client& c) {
  while (c.pending() > 0) {
    ssize_t n = ::send(c.fd, c.out.data() + c.out_sent, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out_sent += static_cast<size_t>(n);
      c.last_active = Clock::now();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return false;  // EPIPE, ECONNRESET: the peer is gone
  }
  if (c.out_sent == c.out.size()) {
    c.out.clear();
    c.out_sent = 0;
  } else if (c.out_sent > (1 << 16) && c.out_sent > c.out.size() / 2) {
    c.out.erase(0, c.out_sent);
    c.out_sent = 0;
  }
  return true;
}

void ControlServer::Update(Client& c) {
  if (c.finished && c.pending() == 0) {
    Close(c.fd);
    return;
  }
  uint32_t events = 0;
  // Read only while responses are being taken: a client that never reads stops being read,
  // which bounds its buffers and pushes back on it through its own socket.
  if (!c.read_closed && c.pending() < options_.max_pending_output) events |= EPOLLIN | EPOLLRDHUP;
  if (c.pending() > 0) events |= EPOLLOUT;
  if (auto s = loop_->Modify(c.fd, events); !s.ok()) {
    log_.Warning("%s", s.message());
    Close(c.fd);
  }
}

void ControlServer::Sweep(Clock::time_point now) {
  if (accept_paused_ && listen_fd_ >= 0) {
    accept_paused_ = false;
    if (auto st = loop_->Modify(listen_fd_, EPOLLIN); !st.ok()) log_.Warning("%s", st.message());
  }
  std::vector<int> idle;
  for (const auto& [fd, c] : clients_) {
    if (now - c->last_active > options_.idle_timeout) idle.push_back(fd);
  }
  for (int fd : idle) {
    log_.Debug("disconnecting control client idle for more than %ds",
               options_.idle_timeout.count());
    Close(fd);
  }
}

void ControlServer::Close(int fd) {
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  if (loop_ != nullptr) loop_->Remove(fd);
  ::close(fd);
  clients_.erase(it);
}

}  // namespace mcr::control
