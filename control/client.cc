#include "control/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"

namespace mcr::control {
namespace {

constexpr char kTransportPayload[] = "type.mcr/transport";

absl::Status Transport(absl::Status status) {
  status.SetPayload(kTransportPayload, absl::Cord("1"));
  return status;
}

}  // namespace

bool IsTransportError(const absl::Status& status) {
  return status.GetPayload(kTransportPayload).has_value();
}

absl::StatusOr<std::unique_ptr<ControlClient>> ControlClient::Connect(
    const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return absl::InvalidArgumentError(absl::StrFormat("--socket-path '%s' is too long", path));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrFormat("socket: %s", std::strerror(errno)));
  // Timeouts on both directions: a wedged daemon must not hang scripts forever.
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    const char* hint = "";
    if (err == ENOENT || err == ECONNREFUSED) hint = " (is mcrd running? see --socket-path)";
    if (err == EACCES) hint = " (is your user in the socket's group? see mcrd --socket-group)";
    return Transport(absl::UnavailableError(
        absl::StrFormat("cannot connect to mcrd at %s: %s%s", path, std::strerror(err), hint)));
  }
  return std::unique_ptr<ControlClient>(new ControlClient(fd, path));
}

ControlClient::ControlClient(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

ControlClient::~ControlClient() { ::close(fd_); }

absl::StatusOr<nlohmann::json> ControlClient::Call(nlohmann::json request) {
  const int64_t id = next_id_++;
  request["version"] = kProtocolVersion;
  request["id"] = id;
  const std::string line = SerializeLine(request);
  // mcrd would refuse it anyway; say so here, with the size, instead of a generic refusal.
  if (line.size() - 1 > kMaxMessageBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("request of %d bytes is larger than the protocol's limit of %d bytes",
                        line.size() - 1, kMaxMessageBytes));
  }
  size_t sent = 0;
  while (sent < line.size()) {
    ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Transport(absl::UnavailableError(
          absl::StrFormat("sending to mcrd at %s: %s", path_, std::strerror(errno))));
    }
    sent += static_cast<size_t>(n);
  }
  while (true) {
    if (auto item = reader_.Next()) {
      if (item->kind == LineReader::Kind::kOversized) {
        return absl::InternalError("mcrd sent a response larger than mcrctl accepts");
      }
      auto response = CheckResponse(item->line);
      if (response.ok() && response->value("id", nlohmann::json()) != id) {
        continue;  // not ours (cannot happen on a private connection; skip rather than confuse)
      }
      return response;
    }
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      reader_.Append(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0)
      return Transport(absl::UnavailableError("mcrd closed the connection without answering"));
    if (errno == EAGAIN) return Transport(absl::DeadlineExceededError("mcrd did not answer in time"));
    return Transport(absl::UnavailableError(
        absl::StrFormat("receiving from mcrd at %s: %s", path_, std::strerror(errno))));
  }
}

}  // namespace mcr::control
