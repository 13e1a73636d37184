#pragma once
// mcrd's life: checks, start of the engine, the control thread's event loop, and shutdown.
// The only place where the layers (engine, control, metrics) are wired together.

#include "control/daemon_options.h"

namespace mcr::control {

/// Runs the daemon on the calling (main) thread until SIGTERM or SIGINT. Returns the process
/// exit status: 0 after a clean shutdown, 1 when it refused to start (the reason is logged).
int RunDaemon(const DaemonOptions& options);

}  // namespace mcr::control
