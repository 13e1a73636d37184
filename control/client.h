#pragma once
// mcrctl's side of the control protocol: one connection, requests sent one at a time, each
// answered before the next. Blocking with timeouts; single-threaded.

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "control/protocol.h"
#include "nlohmann/json.hpp"

namespace mcr::control {

class ControlClient {
 public:
  /// Connects to mcrd's socket. Errors say what to check (is mcrd running, the socket group).
  static absl::StatusOr<std::unique_ptr<ControlClient>> Connect(const std::string& path,
                                                                std::chrono::milliseconds timeout);
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  /// Sends `request` (its "version" and "id" are filled in) and waits for the response. Returns
  /// the response when "ok" is true; the daemon's refusal as a status otherwise.
  absl::StatusOr<nlohmann::json> Call(nlohmann::json request);

 private:
  ControlClient(int fd, std::string path);

  int fd_;
  std::string path_;
  int64_t next_id_ = 1;
  LineReader reader_{kMaxResponseBytes};
};

using ControlClientPtr = std::unique_ptr<ControlClient>;

/// Whether `status` is mcrctl's own failure to reach mcrd or to hear back from it (connect,
/// send, receive, timeout) — exit status 3 — rather than mcrd's answer refusing the request,
/// whatever code mcrd gave that refusal.
bool IsTransportError(const absl::Status& status);

}  // namespace mcr::control
