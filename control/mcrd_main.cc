// mcrd: the multicast relay daemon. `mcrd supervisor [flags]`; see docs/REFERENCE.md.

#include <cstdio>

#include "CLI/CLI.hpp"
#include "control/daemon.h"
#include "control/daemon_options.h"

int main(int argc, char** argv) {
  CLI::App app("mcrd: IPv4 multicast UDP relay daemon", "mcrd");
  app.set_version_flag("--version", "mcrd " MCR_VERSION);
  app.require_subcommand(1);
  CLI::App* supervisor = app.add_subcommand(
      "supervisor",
      "Run the relay: one pinned shard per CPU, rules from --config, the state file and "
      "mcrctl. SIGHUP re-reads --config; SIGTERM/SIGINT stop.");
  mcr::control::DaemonFlags flags;
  mcr::control::AddDaemonFlags(*supervisor, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto options = mcr::control::ResolveDaemonFlags(flags);
  if (!options.ok()) {
    std::fprintf(stderr, "mcrd: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  return mcr::control::RunDaemon(*options);
}
