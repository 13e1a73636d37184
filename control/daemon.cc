#include "control/daemon.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/atomic_file.h"
#include "control/config.h"
#include "control/control_server.h"
#include "control/controller.h"
#include "control/engine_sink.h"
#include "control/event_loop.h"
#include "control/igmp_host.h"
#include "control/link_watch.h"
#include "control/validate.h"
#include "engine/cpu_list.h"
#include "metrics/metrics_server.h"

namespace mcr::control {
namespace {

// Owns a file descriptor for the daemon's lifetime.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status PinCallingThread(int cpu) {
  if (int rc = engine::PinCallingThreadToCpu(cpu); rc != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--control-cpu: cannot run on CPU %d: %s (allowed: %s)", cpu, std::strerror(rc), [] {
          auto allowed = engine::AllowedCpus();
          return allowed.ok() ? engine::FormatCpuList(*allowed) : std::string("unknown");
        }()));
  }
  return absl::OkStatus();
}

// Checks what can be checked before any socket or thread exists, so a typo in a file refuses the
// start without touching the network. Controller::Start checks both files again, definitively.
absl::Status PreflightFiles(const ControllerOptions& o) {
  if (!o.config_file.empty()) {
    if (auto config = ReadConfigFile(o.config_file); !config.ok()) return config.status();
  }
  if (!o.state_file.empty()) {
    auto text = ReadFile(o.state_file, kMaxFileBytes);
    if (!text.ok() && !absl::IsNotFound(text.status())) return text.status();
    if (text.ok()) {
      if (auto state = ParseState(*text); !state.ok()) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "state file %s: %s (fix it, or move it aside to start without the saved rules)",
            o.state_file, state.status().message()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

int RunDaemon(const DaemonOptions& options) {
  Logger log(options.log_level);
  auto refuse = [&](const absl::Status& s) {
    log.Error("not starting: %s", s.message());
    return 1;
  };

  // Signals become events of the control loop. Blocked before any thread exists, so that the
  // shards (and the metrics threads) inherit the mask and only the signalfd receives them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that vanishes mid-reply is an EPIPE, not a death
  ScopedFd sigfd(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
  if (sigfd.get() < 0) return refuse(absl::InternalError(std::strerror(errno)));

  if (auto s = PreflightFiles(options.controller); !s.ok()) return refuse(s);

  // The socket before the engine: a second mcrd on the same path is refused before it opens a
  // single capture socket.
  auto server = ControlServer::Listen(options.server, log);
  if (!server.ok()) return refuse(server.status());

  auto engine = engine::Engine::Start(options.engine);
  if (!engine.ok()) return refuse(engine.status());
  const size_t shard_count = (*engine)->shard_count();

  // Created before the sink: in link mode the memberships watch sockets and a timer on it.
  auto loop_or = EventLoop::Create();
  if (!loop_or.ok()) return refuse(loop_or.status());
  EventLoop& loop = **loop_or;

  std::unique_ptr<GroupMemberships> memberships;
  if (options.link_membership) {
    auto host = IgmpHost::Create(loop, log, IgmpHost::Options{});
    if (!host.ok()) return refuse(host.status());
    memberships = std::make_unique<LinkMemberships>(*std::move(host));
    log.Info("input groups are joined at the link layer; mcrd sends their IGMP reports");
  } else {
    memberships = std::make_unique<MembershipPool>();
  }
  auto sink = std::make_unique<EngineSink>(*std::move(engine), std::move(memberships), log);

  // Pinned after the shards started: pinning first would narrow the default CPU set the engine
  // derives from this thread's affinity.
  if (options.control_cpu) {
    if (auto s = PinCallingThread(*options.control_cpu); !s.ok()) return refuse(s);
  }

  // The Prometheus endpoint, started from this (control) thread after it was pinned: its HTTP
  // threads inherit this thread's affinity and signal mask, never a shard's. Scrapes read the
  // counters through the sink, which must outlive it (it is reset first at shutdown).
  metrics::MetricsServerPtr metrics;
  if (options.metrics.enabled) {
    const std::string listen =
        absl::StrFormat("%s:%d", options.metrics.address, options.metrics.port);
    auto started = metrics::MetricsServer::Start(
        listen, [&sink] { return sink->Snapshot(); }, MCR_VERSION,
        [&sink] { return sink->IgmpStats(); });
    if (!started.ok()) {
      return refuse(absl::Status(
          started.status().code(),
          absl::StrCat("--metrics-listen ", listen, ": ", started.status().message())));
    }
    metrics = *std::move(started);
    log.Info("metrics on http://%s/metrics", listen);
  }

  HostViewPtr host = SystemHostView();
  // Subscribed before the rules are applied, so that an interface created meanwhile is seen:
  // its notification waits in the socket for the loop below.
  auto watcher = LinkWatcher::Open();
  Controller controller(options.controller, *sink, *host, log);
  if (auto s = controller.Start(); !s.ok()) return refuse(s);

  bool stopping = false;
  if (auto s = loop.Add(sigfd.get(), EPOLLIN,
                        [&](uint32_t) {
                          signalfd_siginfo info;
                          while (::read(sigfd.get(), &info, sizeof info) == sizeof info) {
                            if (info.ssi_signo == SIGHUP) {
                              log.Info("SIGHUP: reloading the config");
                              if (auto r = controller.Reload(); !r.ok()) {
                                log.Error("reload failed, nothing changed: %s",
                                          r.status().message());
                              }
                            } else if (!stopping) {
                              log.Info("%s: shutting down", strsignal(info.ssi_signo));
                              stopping = true;
                              loop.Stop();
                            }
                          }
                        });
      !s.ok()) {
    return refuse(s);
  }

  // One tick a second: rates for `stats`, and disconnecting idle clients.
  ScopedFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  itimerspec period{{1, 0}, {1, 0}};
  if (timer.get() < 0 || ::timerfd_settime(timer.get(), 0, &period, nullptr) != 0) {
    return refuse(absl::InternalError(absl::StrFormat("timerfd: %s", std::strerror(errno))));
  }
  if (auto s = loop.Add(timer.get(), EPOLLIN,
                        [&](uint32_t) {
                          uint64_t expirations;
                          while (::read(timer.get(), &expirations, sizeof expirations) > 0) {
                          }
                          const auto now = std::chrono::steady_clock::now();
                          controller.Tick(now);
                          (*server)->Sweep(now);
                        });
      !s.ok()) {
    return refuse(s);
  }

  // Link and address changes: rebuild capture/egress sockets and rejoin groups. Without the
  // watcher (netlink refused) relaying still works; interfaces re-created later are not picked
  // up until the next rule change, so say so.
  //
  // Changes come in storms on some hosts (a container host creates and deletes veths all day),
  // and each rescan round-trips every shard. A change after a quiet spell is handled at once;
  // during a storm rescans are at least kRescanSpacing apart, and the last change of a storm is
  // always followed by one (a one-shot timer for the rest of the spacing).
  constexpr auto kRescanSpacing = std::chrono::milliseconds(100);
  LinkWatcherPtr links;
  ScopedFd rescan_timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (rescan_timer.get() < 0) {
    return refuse(absl::InternalError(absl::StrFormat("timerfd: %s", std::strerror(errno))));
  }
  std::chrono::steady_clock::time_point last_rescan{};  // the epoch: the first one is at once
  bool rescan_armed = false;
  const auto rescan = [&] {
    last_rescan = std::chrono::steady_clock::now();
    log.Debug("link or address change: refreshing interfaces");
    controller.OnInterfacesChanged(links->TakeDeleted());
  };
  if (watcher.ok()) {
    links = *std::move(watcher);
    if (auto s = loop.Add(links->fd(), EPOLLIN,
                          [&](uint32_t) {
                            if (!links->Drain() || rescan_armed) return;
                            const auto since = std::chrono::steady_clock::now() - last_rescan;
                            if (since >= kRescanSpacing) {
                              rescan();
                              return;
                            }
                            const auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                kRescanSpacing - since);
                            itimerspec once{};
                            once.it_value.tv_sec = wait.count() / 1'000'000'000;
                            once.it_value.tv_nsec = wait.count() % 1'000'000'000;
                            rescan_armed =
                                ::timerfd_settime(rescan_timer.get(), 0, &once, nullptr) == 0;
                            if (!rescan_armed) rescan();  // no timer: rescan now rather than never
                          });
        !s.ok()) {
      return refuse(s);
    }
    if (auto s = loop.Add(rescan_timer.get(), EPOLLIN,
                          [&](uint32_t) {
                            uint64_t expirations;
                            while (::read(rescan_timer.get(), &expirations,
                                          sizeof expirations) > 0) {
                            }
                            rescan_armed = false;
                            rescan();
                          });
        !s.ok()) {
      return refuse(s);
    }
  } else {
    log.Warning(
        "not watching interfaces (%s): interfaces that appear or are re-created later "
        "are picked up only at the next rule change",
        watcher.status().message());
  }

  if (auto s = (*server)->Start(loop, [&](const Request& r) { return controller.Handle(r); });
      !s.ok()) {
    return refuse(s);
  }
  log.Info("mcrd %s serving %s with %d shards, %d rules", MCR_VERSION, (*server)->path(),
           shard_count, controller.rules().size());

  loop.Run();

  // Shutdown: no new connections or requests, then the shards stop (the sink owns the engine),
  // then the state is written one last time (every change already saved it).
  (*server)->StopAccepting();
  server->reset();
  if (auto s = controller.Flush(); !s.ok()) log.Error("%s", s.message());
  metrics.reset();
  sink.reset();
  log.Info("stopped");
  return 0;
}

}  // namespace mcr::control
