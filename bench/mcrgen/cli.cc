#include "bench/mcrgen/cli.h"

#include <cmath>
#include <exception>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/mcrgen/payload.h"

namespace mcr::gen {
namespace {

// Raw option values as typed; numbers are kept wide (int64/double/string) so that out-of-range
// input reaches Validate* and gets a message with the allowed range instead of CLI11's generic
// conversion error.
struct SendArgs {
  std::string group, interface, source_ip, dst_mac;
  std::string rate = "1000";
  std::string count = "0";
  std::string pace = "spin";
  int64_t port = 0, source_port = 0, size = 1200, ttl = -1, dscp = 0, streams = 1, batch = 64;
  bool rtp = false, raw = false, no_udp_checksum = false, no_gso = false, json = false;
};

struct RecvArgs {
  std::string group, interface, source, ready_file;
  std::string expect = "0";
  double timeout = 0, idle_exit = 0;
  int64_t port = 0, streams = 1, batch = 64;
  uint64_t window = 65536, rcvbuf = 32u << 20;
  int64_t spin_us = 0;
  std::string rx_timestamp = "kernel";
  bool json = false;
};

absl::Status OutOfRange(std::string_view option, int64_t value, int64_t lo, int64_t hi) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s %d is out of range %d..%d", option, value, lo, hi));
}

// Group/address plus stream count: every stream's address and port must be valid.
absl::Status CheckStreams(uint32_t group, int64_t port, int64_t streams) {
  if (streams < 1 || streams > kMaxStreams) return OutOfRange("--streams", streams, 1, kMaxStreams);
  if (port + streams - 1 > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--port %d with --streams %d needs ports up to %d, beyond 65535; lower --port", port,
        streams, port + streams - 1));
  }
  if (IsMulticast(group) && !IsMulticast(group + static_cast<uint32_t>(streams) - 1)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--group %s with --streams %d runs past 239.255.255.255; lower --group",
                        FormatIpv4(group), streams));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> ParseDestination(const std::string& text) {
  absl::StatusOr<uint32_t> addr = ParseIpv4(text);
  if (!addr.ok())
    return absl::InvalidArgumentError(absl::StrCat("--group: ", addr.status().message()));
  if (*addr == 0 || *addr == 0xffffffff || (*addr >> 28) >= 0xf) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--group %s is not a usable destination: give a multicast group (224.0.0.0/4) or a "
        "unicast address",
        text));
  }
  return addr;
}

// The flags send and recv share: --group, --port, --streams, --interface.
template <typename Args, typename Config>
absl::Status ValidateDestination(const Args& a, Config& c) {
  absl::StatusOr<uint32_t> group = ParseDestination(a.group);
  if (!group.ok()) return group.status();
  c.group = *group;
  if (a.port < 1 || a.port > 65535) return OutOfRange("--port", a.port, 1, 65535);
  c.port = static_cast<uint16_t>(a.port);
  if (absl::Status s = CheckStreams(c.group, a.port, a.streams); !s.ok()) return s;
  c.streams = static_cast<uint32_t>(a.streams);
  if (a.interface.empty()) return absl::InvalidArgumentError("--interface must not be empty");
  c.interface = a.interface;
  return absl::OkStatus();
}

absl::StatusOr<SendConfig> ValidateSend(const SendArgs& a) {
  SendConfig c;
  if (absl::Status s = ValidateDestination(a, c); !s.ok()) return s;
  if (!a.source_ip.empty()) {
    absl::StatusOr<uint32_t> src = ParseIpv4(a.source_ip);
    if (!src.ok())
      return absl::InvalidArgumentError(absl::StrCat("--source-ip: ", src.status().message()));
    if (IsMulticast(*src) || *src == 0xffffffff) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--source-ip %s is a multicast or broadcast address; a source must be unicast",
          a.source_ip));
    }
    c.source_ip = *src;
  }
  if (a.source_port < 0 || a.source_port > 65535) {
    return OutOfRange("--source-port", a.source_port, 0, 65535);
  }
  c.source_port = static_cast<uint16_t>(a.source_port);
  absl::StatusOr<uint64_t> rate = ParseScaled(a.rate, "--rate");
  if (!rate.ok()) return rate.status();
  c.rate_pps = *rate;
  absl::StatusOr<uint64_t> count = ParseScaled(a.count, "--count");
  if (!count.ok()) return count.status();
  c.count = *count;
  c.rtp = a.rtp;
  const auto min_size = static_cast<int64_t>(MinDatagramSize(c.rtp));
  if (a.size < min_size || a.size > static_cast<int64_t>(kMaxPayloadSize)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--size %d is out of range %d..%d (header%s .. a 9000-byte MTU minus IPv4 and UDP)", a.size,
        min_size, kMaxPayloadSize, c.rtp ? " with RTP" : ""));
  }
  c.size = static_cast<uint32_t>(a.size);
  c.raw = a.raw;
  if (a.ttl != -1) {
    // A unicast socket refuses IP_TTL 0; multicast TTL 0 (stay on this host) and raw frames
    // with TTL 0 (to test that a relay drops them) are legitimate.
    const int64_t lo = (!IsMulticast(c.group) && !c.raw) ? 1 : 0;
    if (a.ttl < lo || a.ttl > 255) return OutOfRange("--ttl", a.ttl, lo, 255);
    c.ttl = static_cast<uint8_t>(a.ttl);
  }
  if (a.dscp < 0 || a.dscp > 63) return OutOfRange("--dscp", a.dscp, 0, 63);
  c.dscp = static_cast<uint8_t>(a.dscp);
  if (!a.dst_mac.empty()) {
    if (!c.raw) return absl::InvalidArgumentError("--dst-mac needs --raw");
    absl::StatusOr<MacAddress> mac = ParseMac(a.dst_mac);
    if (!mac.ok())
      return absl::InvalidArgumentError(absl::StrCat("--dst-mac: ", mac.status().message()));
    c.dst_mac = *mac;
  }
  if (a.no_udp_checksum && !c.raw) {
    return absl::InvalidArgumentError(
        "--no-udp-checksum needs --raw (the kernel computes checksums for socket sends)");
  }
  c.udp_checksum = !a.no_udp_checksum;
  c.gso = !a.no_gso;
  c.pace_sleep = a.pace == "sleep";
  if (a.batch < 1 || a.batch > 1024) return OutOfRange("--batch", a.batch, 1, 1024);
  c.batch = static_cast<uint32_t>(a.batch);
  c.json = a.json;
  return c;
}

absl::StatusOr<RecvConfig> ValidateRecv(const RecvArgs& a) {
  RecvConfig c;
  if (absl::Status s = ValidateDestination(a, c); !s.ok()) return s;
  if (!a.source.empty()) {
    if (!IsMulticast(c.group)) {
      return absl::InvalidArgumentError(
          "--source needs a multicast --group: a source filter is part of a multicast join");
    }
    absl::StatusOr<uint32_t> src = ParseIpv4(a.source);
    if (!src.ok())
      return absl::InvalidArgumentError(absl::StrCat("--source: ", src.status().message()));
    if (IsMulticast(*src) || *src == 0 || *src == 0xffffffff) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--source %s must be a unicast address", a.source));
    }
    c.source = *src;
  }
  absl::StatusOr<uint64_t> expect = ParseScaled(a.expect, "--expect");
  if (!expect.ok()) return expect.status();
  c.expect = *expect;
  if (!(a.timeout >= 0) || !std::isfinite(a.timeout)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--timeout %g must be a number of seconds >= 0 (0 = none)", a.timeout));
  }
  c.timeout_s = a.timeout;
  if (!(a.idle_exit >= 0) || !std::isfinite(a.idle_exit)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--idle-exit %g must be a number of seconds >= 0 (0 = none)", a.idle_exit));
  }
  c.idle_exit_s = a.idle_exit;
  c.json = a.json;
  c.ready_file = a.ready_file;
  if (a.window < 64 || a.window > (uint64_t{1} << 30) || (a.window & (a.window - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--window %d must be a power of two between 64 and 1073741824", a.window));
  }
  c.window = a.window;
  if (a.batch < 1 || a.batch > 1024) return OutOfRange("--batch", a.batch, 1, 1024);
  c.batch = static_cast<uint32_t>(a.batch);
  if (a.rcvbuf < 4096 || a.rcvbuf > (uint64_t{1} << 30)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--rcvbuf %d is out of range 4096..1073741824 bytes", a.rcvbuf));
  }
  c.rcvbuf = a.rcvbuf;
  if (a.spin_us < 0 || a.spin_us > 1'000'000)
    return OutOfRange("--spin-us", a.spin_us, 0, 1'000'000);
  c.spin_us = static_cast<uint32_t>(a.spin_us);
  if (a.rx_timestamp != "kernel" && a.rx_timestamp != "user") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--rx-timestamp '%s' must be kernel or user", a.rx_timestamp));
  }
  c.kernel_timestamps = a.rx_timestamp == "kernel";
  return c;
}

void AddSendOptions(CLI::App* send, SendArgs* a) {
  send->add_option("--group,-g", a->group,
                   "Destination: multicast group, or a unicast address. Stream i goes to "
                   "group+i (multicast) or the same address (unicast)")
      ->required();
  send->add_option("--port,-p", a->port, "Destination UDP port of stream 0; stream i uses port+i")
      ->required();
  send->add_option("--interface,-i", a->interface, "Interface to send on")->required();
  send->add_option("--source-ip", a->source_ip,
                   "Source address (default: the interface's). Must be local unless --raw, "
                   "where any address works");
  send->add_option("--source-port", a->source_port,
                   "UDP source port (default: ephemeral; with --raw the destination port)");
  send->add_option("--rate,-r", a->rate,
                   "Packets per second over all streams, suffixes k/M/G allowed; 0 = as fast "
                   "as possible")
      ->capture_default_str();
  send->add_option("--pace", a->pace,
                   "How to wait between packets: spin (gaps under 1 ms are spin-waited: exact "
                   "spacing, a busy CPU) or sleep (never spins: the sender's CPU time is its "
                   "sending alone; late wake-ups leave as bursts)")
      ->capture_default_str()
      ->check(CLI::IsMember({"spin", "sleep"}));
  send->add_option("--count,-n", a->count,
                   "Packets to send over all streams; 0 = until SIGINT/SIGTERM")
      ->capture_default_str();
  send->add_option("--size,-s", a->size,
                   "UDP payload bytes (32..8972; 44.. with --rtp); keep it <= interface MTU - 28")
      ->capture_default_str();
  send->add_option("--ttl", a->ttl,
                   "IP TTL (default 1 for multicast; system default, or 64 with --raw, for "
                   "unicast)");
  send->add_option("--dscp", a->dscp, "DSCP 0..63 (IP TOS = dscp << 2)")->capture_default_str();
  send->add_option("--streams,-k", a->streams, "Number of streams, sent round robin")
      ->capture_default_str();
  send->add_flag("--rtp", a->rtp,
                 "Start every payload with an RTP header (v2, PT 96, seq = low 16 bits of the "
                 "sequence number, 90 kHz timestamp, SSRC = stream id)");
  send->add_flag("--raw", a->raw,
                 "Build Ethernet/IPv4/UDP frames and send them through AF_PACKET (bypassing "
                 "routing and the qdisc), so --source-ip may be any address. Needs "
                 "CAP_NET_RAW");
  send->add_option("--dst-mac", a->dst_mac,
                   "With --raw: destination MAC (default: 01:00:5e:.. for multicast, the "
                   "kernel's neighbour entry of the next hop for unicast)");
  send->add_flag("--no-udp-checksum", a->no_udp_checksum,
                 "With --raw: send UDP checksum 0 (none) instead of computing it (implies "
                 "--no-gso)");
  send->add_flag("--no-gso", a->no_gso,
                 "Send one message per datagram instead of handing runs of packets to the same "
                 "stream to the kernel as one UDP GSO message or frame (identical datagrams on "
                 "the wire, several times more CPU)");
  send->add_option("--batch", a->batch, "Packets per sendmmsg call (1..1024)")
      ->capture_default_str();
  send->add_flag("--json", a->json, "Print the summary as JSON");
}

void AddRecvOptions(CLI::App* recv, RecvArgs* a) {
  recv->add_option("--group,-g", a->group,
                   "Multicast group to join, or a local unicast address to bind. Stream i uses "
                   "group+i (multicast) or the same address (unicast)")
      ->required();
  recv->add_option("--port,-p", a->port, "UDP port of stream 0; stream i uses port+i")->required();
  recv->add_option("--interface,-i", a->interface, "Interface to join on")->required();
  recv->add_option("--source,-S", a->source, "Join (S,G) for this source instead of (*,G)");
  recv->add_option("--expect,-n", a->expect,
                   "Exit once this many unique packets (all streams) arrived; exit status 1 if "
                   "not reached. Suffixes k/M/G allowed")
      ->capture_default_str();
  recv->add_option("--timeout,-t", a->timeout, "Exit after this many seconds (0 = never)")
      ->capture_default_str();
  recv->add_option("--idle-exit", a->idle_exit,
                   "Exit after this many seconds without a packet, once one arrived (0 = never)")
      ->capture_default_str();
  recv->add_option("--streams,-k", a->streams, "Number of streams (one socket each)")
      ->capture_default_str();
  recv->add_flag("--json", a->json, "Print the report as JSON");
  recv->add_option("--ready-file", a->ready_file,
                   "Create this file once joined (\"ready\" is printed to stderr either way)");
  recv->add_option("--window", a->window,
                   "Sequence numbers remembered per stream for duplicate/reorder detection "
                   "(power of two)")
      ->capture_default_str();
  recv->add_option("--batch", a->batch, "Datagrams per recvmmsg call (1..1024)")
      ->capture_default_str();
  recv->add_option("--rcvbuf", a->rcvbuf,
                   "Socket receive buffer bytes (SO_RCVBUFFORCE when permitted, else capped by "
                   "net.core.rmem_max)")
      ->capture_default_str();
  recv->add_option("--spin-us", a->spin_us,
                   "Keep polling this many microseconds after the sockets run dry before "
                   "sleeping: spares the sender a wake-up per datagram at high rates, costs a "
                   "busy CPU")
      ->capture_default_str();
  recv->add_option("--rx-timestamp", a->rx_timestamp,
                   "Receive time for latency: kernel = when the datagram reached this host "
                   "(SO_TIMESTAMPNS), user = when recvmmsg returned it (adds this receiver's own "
                   "scheduling delay)")
      ->capture_default_str();
}

}  // namespace

absl::StatusOr<uint64_t> ParseScaled(std::string_view text, std::string_view what) {
  std::string_view digits = text;
  double scale = 1;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'k':
      case 'K':
        scale = 1e3;
        break;
      case 'm':
      case 'M':
        scale = 1e6;
        break;
      case 'g':
      case 'G':
        scale = 1e9;
        break;
      default:
        break;
    }
    if (scale != 1) digits.remove_suffix(1);
  }
  const auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s '%s' is not a non-negative whole number (suffixes k, M, G allowed: 100k, 1.5M)", what,
        text));
  };
  // This abseil build has its own string_view type, not std::string_view.
  const absl::string_view number(digits.data(), digits.size());
  uint64_t whole = 0;
  if (scale == 1 && absl::SimpleAtoi(number, &whole)) return whole;
  double v = 0;
  if (digits.empty() || digits.front() == '-' || digits.front() == '+' ||
      !absl::SimpleAtod(number, &v)) {
    return bad();
  }
  const double scaled = v * scale;
  if (!std::isfinite(scaled) || scaled < 0 || scaled >= 1.8e19 || scaled != std::floor(scaled)) {
    return bad();
  }
  return static_cast<uint64_t>(scaled);
}

absl::StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args) {
  CLI::App app{
      "mcrgen: IPv4 multicast/unicast UDP traffic generator and receiver with loss, duplicate, "
      "reorder, corruption and latency accounting",
      "mcrgen"};
  app.set_version_flag("--version", MCR_VERSION);
  app.require_subcommand(1);
  SendArgs send_args;
  RecvArgs recv_args;
  CLI::App* send = app.add_subcommand("send", "Send paced, sequenced, checksummed datagrams");
  CLI::App* recv = app.add_subcommand(
      "recv",
      "Join, receive and report received/unique/lost/duplicated/reordered/corrupted, "
      "latency, TTL and DSCP");
  AddSendOptions(send, &send_args);
  AddRecvOptions(recv, &recv_args);

  std::vector<const char*> argv;
  argv.reserve(args.size());
  for (const std::string& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Success& e) {  // --help, --version
    std::ostringstream out, err;
    Command cmd;
    cmd.exit_code = app.exit(e, out, err);
    cmd.text = out.str() + err.str();
    if (!cmd.text.empty() && cmd.text.back() != '\n') cmd.text += '\n';  // --version has none
    return cmd;
  } catch (const CLI::ParseError& e) {
    std::string hint = "mcrgen --help";
    if (send->parsed()) hint = "mcrgen send --help";
    if (recv->parsed()) hint = "mcrgen recv --help";
    return absl::InvalidArgumentError(absl::StrCat(e.what(), " (see ", hint, ")"));
  } catch (const std::exception& e) {  // CLI11 may also throw plain conversion errors
    return absl::InvalidArgumentError(e.what());
  }

  Command cmd;
  if (send->parsed()) {
    absl::StatusOr<SendConfig> c = ValidateSend(send_args);
    if (!c.ok()) return c.status();
    cmd.kind = Command::Kind::kSend;
    cmd.send = *std::move(c);
  } else {
    absl::StatusOr<RecvConfig> c = ValidateRecv(recv_args);
    if (!c.ok()) return c.status();
    cmd.kind = Command::Kind::kRecv;
    cmd.recv = *std::move(c);
  }
  return cmd;
}

}  // namespace mcr::gen
