#include "control/daemon_options.h"

#include <grp.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/rule_schema.h"
#include "engine/cpu_list.h"

namespace mcr::control {
namespace {

absl::StatusOr<gid_t> LookupGroup(const std::string& name) {
  group entry{};
  group* found = nullptr;
  std::vector<char> buf(16384);
  int rc;
  while ((rc = getgrnam_r(name.c_str(), &entry, buf.data(), buf.size(), &found)) == ERANGE) {
    buf.resize(buf.size() * 2);
  }
  if (rc != 0) {
    return absl::InternalError(
        absl::StrFormat("--socket-group: cannot look up group '%s': %s", name, std::strerror(rc)));
  }
  if (found == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--socket-group: group '%s' does not exist", name));
  }
  return entry.gr_gid;
}

}  // namespace

void AddDaemonFlags(CLI::App& app, DaemonFlags& f) {
  app.add_option("--cpus", f.cpus,
                 "CPUs to run shards on, one shard each, taskset list syntax (e.g. 2-5,8); "
                 "default: every CPU mcrd may run on")
      ->type_name("LIST");
  app.add_option("--control-cpu", f.control_cpu,
                 "Pin the control thread (and the metrics server) to this CPU; default: unpinned")
      ->type_name("N")
      ->check(CLI::Range(0, engine::kMaxCpus - 1));
  app.add_option("--control-socket-path", f.control_socket_path,
                 "Unix socket mcrctl talks to (parent directory created if missing)")
      ->capture_default_str()
      ->type_name("PATH");
  app.add_option("--socket-group", f.socket_group,
                 "Group that owns the control socket (mode 0660): its members may use mcrctl")
      ->type_name("NAME");
  app.add_option("--config", f.config,
                 "Rules file (JSON, comments allowed) applied at start and re-read on SIGHUP or "
                 "`mcrctl reload`")
      ->type_name("FILE");
  app.add_flag("--allow-missing-interface", f.allow_missing_interface,
               "Accept config rules whose interfaces do not exist yet (relayed once they appear)");
  app.add_option("--state-file", f.state_file,
                 "Running rule set, saved atomically on every change and restored at start; "
                 "'off' disables")
      ->capture_default_str()
      ->type_name("PATH");
  app.add_option("--metrics-listen", f.metrics_listen, "Prometheus endpoint address, or 'off'")
      ->capture_default_str()
      ->type_name("ADDR:PORT");
  app.add_option("--ingress", f.ingress,
                 "Capture mechanism: 'ring' (TPACKET_V3 ring, cheapest per packet) or 'recv' "
                 "(io_uring multishot receive, lowest latency)")
      ->capture_default_str()
      ->check(CLI::IsMember({"ring", "recv"}));
  app.add_option("--membership", f.membership,
                 "How input groups are joined: 'kernel' (the host joins them and sends IGMP; its "
                 "IP stack also receives and drops every datagram) or 'link' (mcrd accepts the "
                 "groups' MAC addresses and sends IGMP itself; the IP stack never sees them)")
      ->capture_default_str()
      ->check(CLI::IsMember({"kernel", "link"}));
  app.add_option("--ring-block-size", f.ring_block_size,
                 "TPACKET_V3 block size in bytes (K/M suffixes; a multiple of the page size, at "
                 "least 16K)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            return v.find('-') != std::string::npos ? std::string("must not be negative")
                                                    : std::string();
          },
          "", "NotNegative"))
      ->transform(CLI::AsSizeValue(false))
      ->type_name("BYTES");
  app.add_option("--ring-block-count", f.ring_block_count, "TPACKET_V3 blocks per capture socket")
      ->capture_default_str()
      ->check(CLI::Range(2u, 65536u));
  app.add_option("--ring-block-timeout-ms", f.ring_block_timeout_ms,
                 "Longest a partly filled ring block waits before the shard sees it (ms)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1000u));
  app.add_option("--busy-poll-us", f.busy_poll_us,
                 "After a frame, shards keep polling this long before sleeping: cuts wake-up "
                 "latency, costs CPU (0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0u, 1'000'000u))
      ->type_name("US");
  app.add_option("--sched-slice-us", f.sched_slice_us,
                 "Scheduler slice shards ask for (EEVDF, Linux 6.12+): a short one lets a "
                 "woken shard preempt other work on its CPU at once (0 = the kernel's, else "
                 "100..100000)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            uint32_t n = 0;
            if (absl::SimpleAtoi(v, &n) && (n == 0 || (n >= 100 && n <= 100'000))) return {};
            return absl::StrCat("'", v, "' must be 0 (kernel default) or 100..100000");
          },
          "", ""))
      ->type_name("US");
  app.add_option("--log-level", f.log_level, "error, warning, info or debug")
      ->capture_default_str();
}

absl::StatusOr<MetricsListen> ParseMetricsListen(std::string_view text) {
  MetricsListen m;
  if (text == "off") {
    m.enabled = false;
    return m;
  }
  const size_t colon = text.rfind(':');
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--metrics-listen '%s': %s (expected ADDR:PORT, e.g. 127.0.0.1:9464, or "
                        "off)",
                        text, why));
  };
  if (colon == std::string_view::npos) return bad("no port");
  auto addr = ParseIpv4(text.substr(0, colon));
  if (!addr.ok()) return bad("not an IPv4 address");
  int port = 0;
  if (!absl::SimpleAtoi(std::string(text.substr(colon + 1)), &port) || port < 1 || port > 65535) {
    return bad("port out of range 1..65535");
  }
  m.address = FormatIpv4(*addr);
  m.port = static_cast<uint16_t>(port);
  return m;
}

absl::StatusOr<DaemonOptions> ResolveDaemonFlags(const DaemonFlags& f) {
  DaemonOptions o;
  if (!f.cpus.empty()) {
    auto cpus = engine::ParseCpuList(f.cpus);
    if (!cpus.ok())
      return absl::InvalidArgumentError(absl::StrCat("--cpus: ", cpus.status().message()));
    o.engine.cpus = *std::move(cpus);
  }
  if (f.control_cpu >= 0) o.control_cpu = f.control_cpu;
  o.engine.ingress = f.ingress == "recv" ? engine::IngressMode::kRecv : engine::IngressMode::kRing;
  if (absl::Status st = engine::ValidateRingOptions(f.ring_block_size, f.ring_block_count,
                                                    f.ring_block_timeout_ms);
      !st.ok()) {
    return st;  // names the value: "ring block size 12345 must be ..."
  }
  o.engine.ring_block_size = static_cast<uint32_t>(f.ring_block_size);
  o.engine.ring_block_count = f.ring_block_count;
  o.engine.ring_block_timeout_ms = f.ring_block_timeout_ms;
  o.engine.busy_poll_us = f.busy_poll_us;
  if (f.membership != "kernel" && f.membership != "link") {
    return absl::InvalidArgumentError(
        absl::StrFormat("--membership: '%s' is neither 'kernel' nor 'link'", f.membership));
  }
  o.link_membership = f.membership == "link";
  o.engine.sched_slice_us = f.sched_slice_us;

  if (f.control_socket_path.empty() ||
      f.control_socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--control-socket-path: '%s' must be 1..%d bytes long",
                        f.control_socket_path, sizeof(sockaddr_un::sun_path) - 1));
  }
  o.server.path = f.control_socket_path;
  if (!f.socket_group.empty()) {
    auto gid = LookupGroup(f.socket_group);
    if (!gid.ok()) return gid.status();
    o.server.group = *gid;
  }
  o.controller.config_file = f.config;
  o.controller.allow_missing_interface = f.allow_missing_interface;
  o.controller.state_file = f.state_file == "off" ? "" : f.state_file;
  auto metrics = ParseMetricsListen(f.metrics_listen);
  if (!metrics.ok()) return metrics.status();
  o.metrics = *metrics;
  auto level = ParseLogLevel(f.log_level);
  if (!level.ok())
    return absl::InvalidArgumentError(absl::StrCat("--log-level: ", level.status().message()));
  o.log_level = *level;
  return o;
}

}  // namespace mcr::control
