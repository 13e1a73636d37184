#include "control/ctl.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "control/atomic_file.h"
#include "control/client.h"
#include "control/ctl_format.h"
#include "control/protocol.h"
#include "control/rule_schema.h"

namespace mcr::control {
namespace {

using nlohmann::json;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

struct GlobalFlags {
  std::string socket_path = "/run/mcr/mcrd.sock";
  bool json = false;
  double timeout_s = 30;
};

void PrintOut(const std::string& text) { std::fputs(text.c_str(), stdout); }

void PrintWarnings(const json& response) {
  if (auto w = response.find("warnings"); w != response.end() && w->is_array()) {
    for (const auto& line : *w) {
      std::fprintf(stderr, "mcrctl: warning: %s\n",
                   line.is_string() ? line.get<std::string>().c_str() : line.dump().c_str());
    }
  }
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "mcrctl: %s\n", std::string(status.message()).c_str());
  return IsTransportError(status) ? kExitUnreachable : kExitFailed;
}

// Connection opened on first use, so that `mcrctl --help` and `version` work without mcrd.
class Session {
 public:
  explicit Session(const GlobalFlags& flags) : flags_(flags) {}

  absl::StatusOr<json> Call(RequestType type, json fields = json::object()) {
    if (client_ == nullptr) {
      auto client = ControlClient::Connect(
          flags_.socket_path,
          std::chrono::milliseconds(static_cast<int64_t>(flags_.timeout_s * 1000)));
      if (!client.ok()) return client.status();
      client_ = *std::move(client);
    }
    json request = MakeRequest(type, nullptr);
    request.update(fields);
    return client_->Call(std::move(request));
  }

  /// Prints the response as JSON (--json) or with `human`; returns the exit status.
  template <typename Human>
  int Run(RequestType type, json fields, Human human) {
    auto response = Call(type, std::move(fields));
    if (!response.ok()) return Fail(response.status());
    if (flags_.json) {
      PrintOut(response->dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    } else {
      human(*response);
    }
    PrintWarnings(*response);
    return 0;
  }

  const GlobalFlags& flags() const { return flags_; }

 private:
  const GlobalFlags& flags_;
  ControlClientPtr client_;
};

int Watch(Session& session) {
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  while (true) {
    auto response = session.Call(RequestType::kStats);
    if (!response.ok()) return Fail(response.status());
    if (session.flags().json) {
      // One compact document per line, so a consumer can read it as a stream.
      PrintOut(response->dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
    } else {
      // Home + clear screen on a terminal; plain successive tables into a pipe.
      PrintOut(absl::StrCat(tty ? "\033[H\033[2J" : "\n", FormatStats(*response)));
    }
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

absl::StatusOr<json> BuildAddRequest(const AddFlags& f) {
  json input;
  if (std::string problem = InterfaceNameProblem(f.input_interface); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--input-interface: '%s' is not a valid interface name: %s", f.input_interface, problem));
  }
  input["interface"] = f.input_interface;
  if (!ParseIpv4(f.input_group).ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--input-group: '%s' is not an IPv4 address", f.input_group));
  }
  input["group"] = f.input_group;
  auto port = CheckPort(f.input_port, "--input-port");
  if (!port.ok()) return port.status();
  input["port"] = *port;
  if (!f.input_source.empty()) {
    if (!ParseIpv4(f.input_source).ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--input-source: '%s' is not an IPv4 address", f.input_source));
    }
    input["source"] = f.input_source;
  }
  if (f.ttl) {
    if (auto t = CheckTtl(*f.ttl, "--ttl"); !t.ok()) return t.status();
  }
  if (f.dscp) {
    if (auto d = CheckDscp(*f.dscp, "--dscp"); !d.ok()) return d.status();
  }
  auto outputs = ParseOutputs(f.outputs, f.ttl, f.dscp);
  if (!outputs.ok()) return outputs.status();
  json rule = {{"input", std::move(input)}, {"outputs", json::array()}};
  for (const auto& o : *outputs) rule["outputs"].push_back(OutputToJson(o));
  if (!f.name.empty() && !f.rule_id.empty() && f.name != f.rule_id) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--name '%s' and --rule-id '%s' differ: a rule's id is its name; give one",
                        f.name, f.rule_id));
  }
  const std::string& name = f.name.empty() ? f.rule_id : f.name;
  if (!name.empty()) {
    if (std::string problem = RuleNameProblem(name); !problem.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--name: '%s' is not a valid rule name: %s", name, problem));
    }
    rule["name"] = name;
  }
  json request = {{"rule", std::move(rule)}};
  if (f.allow_missing_interface) request["allow_missing_interface"] = true;
  return request;
}

int RunMcrctl(int argc, char** argv) {
  CLI::App app("mcrctl: control a running mcrd (multicast relay)", "mcrctl");
  app.set_version_flag("--version", "mcrctl " MCR_VERSION);
  app.footer(
      "Exit status: 0 success, 1 refused or failed (reason on stderr), 2 bad command line, "
      "3 mcrd unreachable.\nReference: docs/REFERENCE.md");
  app.require_subcommand(1);
  // Global flags may follow the command too: `mcrctl list --json`.
  app.fallthrough();
  GlobalFlags g;
  app.add_option("--socket-path", g.socket_path, "mcrd's control socket")
      ->envname("MCR_SOCKET")
      ->capture_default_str()
      ->type_name("PATH");
  app.add_flag("--json", g.json, "Print the daemon's JSON response instead of a table");
  app.add_option("--timeout", g.timeout_s, "Seconds to wait for mcrd's answer")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 86400.0));  // whole ms: 0 would mean "never time out"
  Session session(g);
  int rc = 0;

  // add
  AddFlags add;
  int64_t ttl = 0, dscp = 0;
  CLI::App* add_cmd = app.add_subcommand("add", "Add a relay rule");
  add_cmd->add_option("--input-interface", add.input_interface, "Interface the stream arrives on")
      ->required()
      ->type_name("IF");
  add_cmd
      ->add_option("--input-group", add.input_group,
                   "Destination address of the stream: a multicast group, or an address of "
                   "this host")
      ->required()
      ->type_name("ADDR");
  add_cmd->add_option("--input-port", add.input_port, "Destination UDP port of the stream")
      ->required()
      ->type_name("PORT");
  add_cmd
      ->add_option("--input-source", add.input_source,
                   "Relay only packets from this source (SSM, (S,G))")
      ->type_name("ADDR");
  add_cmd
      ->add_option("--outputs", add.outputs,
                   "Destinations, comma-separated GROUP:PORT:INTERFACE[:ttl=N][:dscp=N]")
      ->required()
      ->type_name("LIST");
  CLI::Option* name_opt =
      add_cmd->add_option("--name", add.name, "Rule id to use instead of the input's hash")
          ->type_name("NAME");
  add_cmd->add_option("--rule-id", add.rule_id, "Same as --name")->type_name("ID");
  CLI::Option* ttl_opt = add_cmd
                             ->add_option("--ttl", ttl,
                                          "IP TTL for every output without ttl= (default: 1 for "
                                          "multicast, the system's for unicast)")
                             ->type_name("1-255");
  CLI::Option* dscp_opt =
      add_cmd
          ->add_option("--dscp", dscp,
                       "DSCP for every output without dscp= (default: copied from the input)")
          ->type_name("0-63");
  add_cmd->add_flag("--allow-missing-interface", add.allow_missing_interface,
                    "Accept interfaces that do not exist yet; the rule relays once they appear");
  add_cmd->footer(
      "Example:\n  mcrctl add --input-interface eth0 --input-group 239.1.1.1 --input-port 5000 \\\n"
      "    --outputs 239.2.2.2:6000:eth1,10.0.0.9:7000:eth2:ttl=8:dscp=46 --name cam1");
  (void)name_opt;
  add_cmd->callback([&] {
    if (ttl_opt->count() > 0) add.ttl = ttl;
    if (dscp_opt->count() > 0) add.dscp = dscp;
    auto request = BuildAddRequest(add);
    if (!request.ok()) {  // a flag's value is wrong: a bad command line
      std::fprintf(stderr, "mcrctl: %s\n", std::string(request.status().message()).c_str());
      rc = kExitUsage;
      return;
    }
    rc = session.Run(RequestType::kAdd, *request, [](const json& r) {
      const json& rule = r["rule"];
      std::vector<std::string> outs;
      for (const auto& o : rule["outputs"]) {
        outs.push_back(absl::StrCat(o.value("group", ""), ":", o.value("port", 0), ":",
                                    o.value("interface", "")));
      }
      PrintOut(absl::StrFormat("added rule %s (shard %s)\n", rule.value("id", ""),
                               rule.contains("shard") ? rule["shard"].dump() : "?"));
    });
  });

  // remove
  std::string remove_id, remove_name;
  CLI::App* remove_cmd = app.add_subcommand("remove", "Remove a rule");
  CLI::Option* rid =
      remove_cmd->add_option("--rule-id", remove_id, "Id shown by `list`")->type_name("ID");
  CLI::Option* rname =
      remove_cmd->add_option("--name", remove_name, "Name given at add")->type_name("NAME");
  rid->excludes(rname);
  remove_cmd->callback([&] {
    if (rid->count() + rname->count() != 1) {
      std::fprintf(stderr, "mcrctl: remove needs --rule-id or --name\n");
      rc = kExitUsage;
      return;
    }
    json fields = rid->count() ? json{{"rule_id", remove_id}} : json{{"name", remove_name}};
    rc = session.Run(RequestType::kRemove, fields, [](const json& r) {
      PrintOut(absl::StrFormat("removed rule %s\n", r.value("removed", "")));
    });
  });

  app.add_subcommand("list", "Rules, their outputs, interface state and owning shard")
      ->callback([&] {
        rc = session.Run(RequestType::kList, json::object(),
                         [](const json& r) { PrintOut(FormatList(r)); });
      });

  app.add_subcommand("nft-drop",
                     "Print an nft script that drops the rules' inputs before the host routes "
                     "them (optional tuning: docs/GUIDE.md, section 3)")
      ->callback([&] {  // a script, not a report: --json does not apply
        auto response = session.Call(RequestType::kList);
        if (!response.ok()) {
          rc = Fail(response.status());
          return;
        }
        auto script = FormatNftDrop(*response);
        if (!script.ok()) {
          rc = Fail(script.status());
          return;
        }
        PrintOut(*script);
      });

  bool watch = false;
  CLI::App* stats_cmd = app.add_subcommand(
      "stats", "Per rule and output: packets, bytes, packets/s, bits/s, errors, drops");
  stats_cmd->add_flag("--watch", watch, "Redraw once a second until interrupted");
  stats_cmd->callback([&] {
    if (watch) {
      rc = Watch(session);
      return;
    }
    rc = session.Run(RequestType::kStats, json::object(),
                     [](const json& r) { PrintOut(FormatStats(r)); });
  });

  app.add_subcommand("shards", "Shards: CPU, NUMA node, rules, packets, drops, kernel drops")
      ->alias("list-workers")
      ->callback([&] {
        rc = session.Run(RequestType::kShards, json::object(),
                         [](const json& r) { PrintOut(FormatShards(r)); });
      });

  app.add_subcommand("ping", "Check that mcrd answers")->callback([&] {
    const auto start = std::chrono::steady_clock::now();
    rc = session.Run(RequestType::kPing, json::object(), [&](const json& r) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      PrintOut(absl::StrFormat("pong from mcrd %s in %.2f ms\n", r.value("daemon", "?"), ms));
    });
  });

  app.add_subcommand("version", "Versions of mcrctl, mcrd and the protocol")->callback([&] {
    auto response = session.Call(RequestType::kVersion);
    if (g.json) {
      json out = {{"client", MCR_VERSION}, {"client_protocol", kProtocolVersion}};
      if (response.ok()) {
        out["daemon"] = response->value("daemon", "");
        out["protocol"] = response->value("protocol", 0);
      }
      PrintOut(out.dump(2) + "\n");
    } else {
      PrintOut(absl::StrFormat("mcrctl %s (protocol %d)\n", MCR_VERSION, kProtocolVersion));
      if (response.ok()) {
        PrintOut(absl::StrFormat("mcrd %s (protocol %d)\n", response->value("daemon", "?"),
                                 response->value("protocol", 0)));
      }
    }
    rc = response.ok() ? 0 : Fail(response.status());
  });

  // log-level get|set LEVEL
  CLI::App* log_cmd = app.add_subcommand("log-level", "Show or change mcrd's log level");
  log_cmd->require_subcommand(1);
  log_cmd->add_subcommand("get", "Print the current level")->callback([&] {
    rc = session.Run(RequestType::kLogLevelGet, json::object(),
                     [](const json& r) { PrintOut(r.value("level", "") + "\n"); });
  });
  std::string level;
  CLI::App* log_set = log_cmd->add_subcommand("set", "Set the level");
  log_set->add_option("level", level, "error, warning, info or debug")->required();
  log_set->callback([&] {
    rc = session.Run(RequestType::kLogLevelSet, json{{"level", level}}, [](const json& r) {
      PrintOut(absl::StrFormat("log level %s\n", r.value("level", "")));
    });
  });

  // config show|save FILE|load FILE [--replace]|check FILE
  CLI::App* config_cmd = app.add_subcommand("config", "Show, save, load or check rule sets");
  config_cmd->require_subcommand(1);
  config_cmd->add_subcommand("show", "Print the running rules as a config file")->callback([&] {
    auto response = session.Call(RequestType::kConfigShow);
    if (!response.ok()) {
      rc = Fail(response.status());
      return;
    }
    PrintOut((*response)["config"].dump(2) + "\n");
  });
  std::string save_file;
  CLI::App* save_cmd =
      config_cmd->add_subcommand("save", "Write the running rules to FILE (atomically)");
  save_cmd->add_option("file", save_file, "Destination")->required();
  save_cmd->callback([&] {
    auto response = session.Call(RequestType::kConfigShow);
    if (!response.ok()) {
      rc = Fail(response.status());
      return;
    }
    const json& config = (*response)["config"];
    if (auto s = WriteFileAtomically(save_file, config.dump(2) + "\n"); !s.ok()) {
      rc = Fail(s);
      return;
    }
    if (!g.json) {
      PrintOut(absl::StrFormat("saved %d rules to %s\n", config["rules"].size(), save_file));
    }
  });
  std::string load_file;
  bool replace = false, load_allow_missing = false;
  CLI::App* load_cmd = config_cmd->add_subcommand(
      "load", "Apply the rules of FILE: added, or set where their id runs; all or nothing");
  load_cmd->add_option("file", load_file, "Config file")->required();
  load_cmd->add_flag("--replace", replace, "Also remove every running rule FILE does not have");
  load_cmd->add_flag("--allow-missing-interface", load_allow_missing,
                     "Accept interfaces that do not exist yet");
  std::string check_file;
  bool check_replace = false, check_allow_missing = false;
  CLI::App* check_cmd = config_cmd->add_subcommand(
      "check", "Validate FILE on the daemon's host and show what loading it would change");
  check_cmd->add_option("file", check_file, "Config file")->required();
  check_cmd->add_flag("--replace", check_replace, "Compare as `load --replace` would apply it");
  check_cmd->add_flag("--allow-missing-interface", check_allow_missing,
                      "Accept interfaces that do not exist yet");
  auto load_or_check = [&](const std::string& file, bool check, bool repl, bool allow_missing) {
    auto text = ReadFile(file, kMaxMessageBytes);
    if (!text.ok()) {
      rc = Fail(text.status());
      return;
    }
    json fields = {{"text", *text}, {"replace", repl}};
    if (allow_missing) fields["allow_missing_interface"] = true;
    rc = session.Run(check ? RequestType::kConfigCheck : RequestType::kConfigLoad, fields,
                     [&](const json& r) {
                       if (check) {
                         PrintOut(absl::StrFormat("%s is valid: %d rules; loading it: %s\n", file,
                                                  r.value("rules", 0), FormatSummary(r)));
                       } else {
                         PrintOut(absl::StrFormat("loaded %s: %s\n", file, FormatSummary(r)));
                       }
                     });
  };
  load_cmd->callback([&] { load_or_check(load_file, false, replace, load_allow_missing); });
  check_cmd->callback([&] { load_or_check(check_file, true, check_replace, check_allow_missing); });

  app.add_subcommand("reload", "Make mcrd re-read its --config file (as SIGHUP does)")
      ->callback([&] {
        rc = session.Run(RequestType::kReload, json::object(), [](const json& r) {
          PrintOut(absl::StrFormat("reloaded: %s\n", FormatSummary(r)));
        });
      });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  return rc;
}

}  // namespace mcr::control
