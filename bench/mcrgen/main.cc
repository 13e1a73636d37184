// mcrgen: traffic generator and receiver. Wires the command line to the sender or the receiver;
// everything else lives in the mcr_gen library. Exit status: 0 success; 1 the receiver's
// checks failed (--expect not met, corrupted datagrams) or sending failed; 2 bad usage or setup.

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "bench/mcrgen/cli.h"
#include "bench/mcrgen/clock.h"
#include "bench/mcrgen/netdev.h"
#include "bench/mcrgen/raw_sink.h"
#include "bench/mcrgen/receiver.h"
#include "bench/mcrgen/sender.h"
#include "bench/mcrgen/udp_sink.h"

namespace {

// Set by SIGINT/SIGTERM; the loops poll it between batches. Lock-free, so async-signal-safe.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnSignal(int) { g_stop.store(true, std::memory_order_relaxed); }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking call returns EINTR and the loop sees the flag
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int Fail(const absl::Status& status) {
  std::cerr << "mcrgen: " << status.message() << "\n";
  return 2;
}

int RunSend(const mcr::gen::SendConfig& config) {
  absl::StatusOr<mcr::gen::InterfaceInfo> iface = mcr::gen::LookupInterface(config.interface);
  if (!iface.ok()) return Fail(iface.status());
  absl::StatusOr<mcr::gen::PacketSinkPtr> sink =
      config.raw ? mcr::gen::OpenRawSink(config, *iface) : mcr::gen::OpenUdpSink(config, *iface);
  if (!sink.ok()) return Fail(sink.status());
  mcr::gen::SystemClock clock;
  mcr::gen::Sender sender(config, **sink, clock);
  absl::StatusOr<mcr::gen::SendSummary> summary = sender.Run(g_stop);
  if (!summary.ok()) {
    std::cerr << "mcrgen: " << summary.status().message() << "\n";
    return 1;
  }
  if (config.json) {
    std::cout << summary->ToJson(config).dump(2) << std::endl;
  } else {
    std::cout << summary->ToText(config) << std::flush;
  }
  return 0;
}

int RunRecv(const mcr::gen::RecvConfig& config) {
  absl::StatusOr<mcr::gen::InterfaceInfo> iface = mcr::gen::LookupInterface(config.interface);
  if (!iface.ok()) return Fail(iface.status());
  absl::StatusOr<std::unique_ptr<mcr::gen::Receiver>> receiver =
      mcr::gen::Receiver::Open(config, *iface);
  if (!receiver.ok()) return Fail(receiver.status());
  // Joined: scripts may start the sender now.
  if (!config.ready_file.empty()) {
    std::ofstream ready(config.ready_file);
    ready << "ready\n";
    if (!ready) {
      return Fail(absl::InvalidArgumentError("cannot write --ready-file " + config.ready_file));
    }
  }
  std::cerr << "ready" << std::endl;
  mcr::gen::SystemClock clock;
  absl::StatusOr<mcr::gen::ExitReason> reason = (*receiver)->Run(g_stop, clock);
  if (!reason.ok()) return Fail(reason.status());
  if (config.json) {
    std::cout << (*receiver)->Report(*reason).dump(2) << std::endl;
  } else {
    std::cout << (*receiver)->ReportText(*reason) << std::flush;
  }
  return (*receiver)->ExitCode();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  absl::StatusOr<mcr::gen::Command> cmd = mcr::gen::ParseCommandLine(args);
  if (!cmd.ok()) return Fail(cmd.status());
  switch (cmd->kind) {
    case mcr::gen::Command::Kind::kExit:
      (cmd->exit_code == 0 ? std::cout : std::cerr) << cmd->text << std::flush;
      return cmd->exit_code;
    case mcr::gen::Command::Kind::kSend:
      InstallSignalHandlers();
      return RunSend(cmd->send);
    case mcr::gen::Command::Kind::kRecv:
      InstallSignalHandlers();
      return RunRecv(cmd->recv);
  }
  return 2;
}
