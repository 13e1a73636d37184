#include "control/controller.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "control/atomic_file.h"
#include "control/config.h"
#include "fake_host.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "temp_dir.h"

namespace mcr::control {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

json AddRequest(const std::string& group, const std::string& name = "") {
  json rule = {{"input", {{"interface", "in0"}, {"group", group}, {"port", 5000}}},
               {"outputs", {{{"group", "239.2.2.2"}, {"port", 6000}, {"interface", "out0"}}}}};
  if (!name.empty()) rule["name"] = name;
  return {{"type", "add"}, {"rule", rule}};
}

std::string ConfigText(const std::vector<std::pair<std::string, std::string>>& rules) {
  json list = json::array();
  for (const auto& [name, group] : rules) {
    list.push_back(
        {{"name", name},
         {"input", {{"interface", "in0"}, {"group", group}, {"port", 5000}}},
         {"outputs", {{{"group", "239.9.9.9"}, {"port", 6000}, {"interface", "out0"}}}}});
  }
  return json{{"version", 1}, {"rules", list}}.dump();
}

class ControllerTest : public ::testing::Test {
 protected:
  ControllerTest()
      : null_fd_(::open("/dev/null", O_WRONLY | O_CLOEXEC)), log_(LogLevel::kDebug, null_fd_) {
    options_.state_file = dir_.File("state/state.json");
  }
  ~ControllerTest() override { ::close(null_fd_); }

  Controller& Make() {
    controller_ = std::make_unique<Controller>(options_, sink_, host_, log_);
    return *controller_;
  }

  // Sends `msg` through the wire format, as the server would.
  json Call(json msg) {
    msg["version"] = 1;
    msg["id"] = ++id_;
    json id;
    auto request = ParseRequest(msg.dump(), &id);
    EXPECT_TRUE(request.ok()) << request.status();
    json response = controller_->Handle(*request);
    EXPECT_EQ(response["id"], id_);
    EXPECT_EQ(response["version"], 1);
    return response;
  }
  std::string Error(json msg) {
    json r = Call(std::move(msg));
    EXPECT_FALSE(r["ok"].get<bool>()) << r.dump();
    return r.value("error", "");
  }
  std::vector<std::string> Ids() const {
    std::vector<std::string> ids;
    for (const auto& r : controller_->rules()) ids.push_back(r.spec.id);
    return ids;
  }
  std::string State() const {
    auto text = ReadFile(options_.state_file, 1 << 20);
    return text.ok() ? *text : "";
  }
  // Also makes the next Make() a controller started with --config.
  void WriteConfig(const std::string& text) {
    options_.config_file = dir_.File("mcr.conf");
    ASSERT_TRUE(WriteFileAtomically(options_.config_file, text).ok());
  }

  TempDir dir_;
  int null_fd_;
  Logger log_;
  FakeHost host_;
  FakeSink sink_;
  ControllerOptions options_;
  std::unique_ptr<Controller> controller_;
  int id_ = 0;
};

TEST_F(ControllerTest, AddListRemove) {
  ASSERT_TRUE(Make().Start().ok());
  json r = Call(AddRequest("239.1.1.1", "cam1"));
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["rule"]["id"], "cam1");
  EXPECT_EQ(r["rule"]["shard"], 1);
  ASSERT_EQ(sink_.applied.size(), 1u);  // answered after the sink applied it
  EXPECT_EQ(sink_.applied[0].id, "cam1");
  EXPECT_THAT(State(), HasSubstr("\"cam1\""));

  r = Call(AddRequest("239.1.1.2"));
  ASSERT_TRUE(r["ok"]) << r.dump();
  const std::string hash_id = r["rule"]["id"];
  EXPECT_EQ(hash_id.size(), 12u);

  r = Call({{"type", "list"}});
  ASSERT_TRUE(r["ok"]);
  ASSERT_EQ(r["rules"].size(), 2u);
  EXPECT_EQ(r["rules"][0]["id"], "cam1");
  EXPECT_EQ(r["rules"][0]["origin"], "control");
  EXPECT_EQ(r["rules"][0]["input_up"], true);
  EXPECT_EQ(r["rules"][0]["outputs"][0]["active"], true);
  EXPECT_EQ(r["interfaces"][0]["name"], "in0");

  r = Call({{"type", "remove"}, {"name", "cam1"}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  r = Call({{"type", "remove"}, {"rule_id", hash_id}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_TRUE(sink_.applied.empty());
  EXPECT_TRUE(controller_->rules().empty());
  EXPECT_THAT(*ParseState(State()), ::testing::IsEmpty());
}

TEST_F(ControllerTest, ListShowsTheMembershipEachRuleNeeds) {
  MembershipInfo joined;
  joined.kind = MembershipInfo::Kind::kAnySource;
  joined.state = MembershipInfo::State::kActive;
  joined.interface = "in0";
  joined.ifindex = 2;
  joined.group = *ParseIpv4("239.1.1.1");
  MembershipInfo failed = joined;
  failed.state = MembershipInfo::State::kFailed;
  failed.group = *ParseIpv4("239.1.1.2");
  failed.detail = "join (*, 239.1.1.2) on in0: No buffer space available";
  MembershipInfo other_interface = joined;  // same group elsewhere: not this rule's
  other_interface.interface = "out1";
  other_interface.group = *ParseIpv4("239.1.1.3");
  sink_.memberships = {other_interface, joined, failed};
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1", "a"))["ok"]);
  ASSERT_TRUE(Call(AddRequest("239.1.1.2", "b"))["ok"]);
  ASSERT_TRUE(Call(AddRequest("239.1.1.3", "c"))["ok"]);
  json r = Call({{"type", "list"}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  ASSERT_EQ(r["rules"].size(), 3u);
  EXPECT_EQ(r["rules"][0]["membership"],
            json({{"kind", "any-source"}, {"state", "active"}}));
  EXPECT_EQ(r["rules"][1]["membership"],
            json({{"kind", "any-source"}, {"state", "failed"}, {"detail", failed.detail}}));
  EXPECT_EQ(r["rules"][2]["membership"], json({{"state", "none"}}));
}

TEST_F(ControllerTest, RefusalsChangeNothing) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1", "cam1"))["ok"]);
  const std::string state = State();
  const int applies = sink_.applies;

  json bad_port = AddRequest("239.1.1.5");
  bad_port["rule"]["input"]["port"] = 70000;
  json loop = AddRequest("239.1.1.5");
  loop["rule"]["outputs"][0] = {{"group", "239.1.1.5"}, {"port", 5000}, {"interface", "in0"}};
  json missing_if = AddRequest("239.1.1.5");
  missing_if["rule"]["outputs"][0]["interface"] = "eth9";
  json not_local = AddRequest("10.9.9.9");
  json unknown_field = AddRequest("239.1.1.5");
  unknown_field["colour"] = "red";

  EXPECT_THAT(Error(bad_port), HasSubstr("rule.input.port: 70000 is out of range 1..65535"));
  EXPECT_THAT(Error(loop), HasSubstr("(a loop)"));
  EXPECT_THAT(Error(missing_if), HasSubstr("interface 'eth9' does not exist"));
  EXPECT_THAT(Error(not_local), HasSubstr("10.9.9.9 is neither a multicast group nor an address"));
  EXPECT_THAT(Error(AddRequest("239.1.1.7", "cam1")), HasSubstr("id 'cam1' already exists"));
  EXPECT_THAT(Error(AddRequest("239.1.1.1", "cam2")),
              HasSubstr("rule.input: in0 239.1.1.1:5000 is already relayed by rule 'cam1'"));
  EXPECT_THAT(Error(unknown_field), HasSubstr("colour: unknown field for request type 'add'"));
  EXPECT_THAT(Error({{"type", "add"}}), HasSubstr("rule: missing"));
  EXPECT_THAT(Error({{"type", "remove"}, {"name", "nope"}}), HasSubstr("name: no rule 'nope'"));
  EXPECT_THAT(Error({{"type", "remove"}}), HasSubstr("give exactly one"));
  EXPECT_THAT(Error({{"type", "remove"}, {"name", "cam1"}, {"rule_id", "cam1"}}),
              HasSubstr("give exactly one"));
  EXPECT_THAT(Error({{"type", "log_level_set"}, {"level", "loud"}}),
              HasSubstr("level: log level 'loud'"));
  EXPECT_THAT(Error({{"type", "reload"}}), HasSubstr("started without --config"));

  EXPECT_EQ(sink_.applies, applies);
  EXPECT_EQ(State(), state);
  EXPECT_THAT(Ids(), ElementsAre("cam1"));
}

TEST_F(ControllerTest, AllowMissingInterfaceWarns) {
  ASSERT_TRUE(Make().Start().ok());
  json req = AddRequest("239.1.1.5");
  req["rule"]["input"]["interface"] = "vlan100";
  req["allow_missing_interface"] = true;
  json r = Call(req);
  ASSERT_TRUE(r["ok"]) << r.dump();
  ASSERT_EQ(r["warnings"].size(), 1u);
  EXPECT_THAT(r["warnings"][0].get<std::string>(), HasSubstr("'vlan100' does not exist yet"));
}

TEST_F(ControllerTest, SinkFailureChangesNothing) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1", "cam1"))["ok"]);
  const std::string state = State();
  sink_.fail = absl::ResourceExhaustedError("no more sockets");
  EXPECT_THAT(Error(AddRequest("239.1.1.2")), HasSubstr("no more sockets"));
  EXPECT_THAT(Error({{"type", "remove"}, {"name", "cam1"}}), HasSubstr("no more sockets"));
  EXPECT_EQ(State(), state);
  EXPECT_THAT(Ids(), ElementsAre("cam1"));
}

TEST_F(ControllerTest, SinkWarningsReachTheClient) {
  ASSERT_TRUE(Make().Start().ok());
  sink_.warning = "cannot join 239.1.1.1 on in0: No buffer space available";
  json r = Call(AddRequest("239.1.1.1"));
  ASSERT_TRUE(r["ok"]);
  EXPECT_EQ(r["warnings"][0], sink_.warning);
}

TEST_F(ControllerTest, RestartRestoresState) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1", "cam1"))["ok"]);
  ASSERT_TRUE(Call(AddRequest("239.1.1.2"))["ok"]);
  const auto before = controller_->rules();
  sink_.applied.clear();
  ASSERT_TRUE(Make().Start().ok());
  EXPECT_EQ(controller_->rules(), before);
  EXPECT_EQ(sink_.applied.size(), 2u);
}

TEST_F(ControllerTest, RestoredRuleWithVanishedInterfaceStaysPending) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1", "cam1"))["ok"]);
  host_.interfaces.erase("out0");
  ASSERT_TRUE(Make().Start().ok());
  EXPECT_THAT(Ids(), ElementsAre("cam1"));
}

TEST_F(ControllerTest, CorruptStateRefusesToStart) {
  ASSERT_TRUE(WriteFileAtomically(options_.state_file, "{\"rules\": [").ok());
  auto s = Make().Start();
  EXPECT_THAT(std::string(s.message()), HasSubstr("move it aside"));
  EXPECT_EQ(sink_.applies, 0);
}

TEST_F(ControllerTest, InvalidConfigRefusesToStart) {
  options_.config_file = dir_.File("missing.conf");
  EXPECT_THAT(std::string(Make().Start().message()), HasSubstr("cannot open"));
  WriteConfig(R"({"rules": [{"input": {}}]})");
  auto s = Make().Start();
  EXPECT_THAT(std::string(s.message()), HasSubstr("config file"));
  EXPECT_EQ(sink_.applies, 0);
  WriteConfig(ConfigText({{"a", "239.1.1.1"}}));
  host_.interfaces.erase("in0");
  s = Make().Start();
  EXPECT_THAT(std::string(s.message()), HasSubstr("interface 'in0' does not exist"));
  options_.allow_missing_interface = true;
  EXPECT_TRUE(Make().Start().ok());
}

TEST_F(ControllerTest, ReloadAppliesOnlyTheDifference) {
  WriteConfig(ConfigText({{"a", "239.1.1.1"}, {"b", "239.1.1.2"}}));
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.9", "manual"))["ok"]);
  // b removed, c added, a changed (other output), manual untouched.
  json config = json::parse(ConfigText({{"a", "239.1.1.1"}, {"c", "239.1.1.3"}}));
  config["rules"][0]["outputs"][0]["port"] = 6001;
  WriteConfig(config.dump());
  auto summary = controller_->Reload();
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_THAT(summary->added, ElementsAre("c"));
  EXPECT_THAT(summary->removed, ElementsAre("b"));
  EXPECT_THAT(summary->changed, ElementsAre("a"));
  EXPECT_EQ(summary->unchanged, 1u);
  EXPECT_THAT(Ids(), ElementsAre("a", "manual", "c"));

  // An unchanged reload applies nothing.
  const int applies = sink_.applies;
  summary = controller_->Reload();
  ASSERT_TRUE(summary.ok());
  EXPECT_TRUE(summary->empty());
  EXPECT_EQ(sink_.applies, applies);

  // A broken file changes nothing.
  WriteConfig("{ nope");
  EXPECT_FALSE(controller_->Reload().ok());
  EXPECT_THAT(Ids(), ElementsAre("a", "manual", "c"));

  // A config rule clashing with a manual rule's input refuses the whole reload.
  WriteConfig(ConfigText({{"a", "239.1.1.1"}, {"clash", "239.1.1.9"}}));
  auto refused = controller_->Reload();
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("already relayed by rule"));
  EXPECT_THAT(Ids(), ElementsAre("a", "manual", "c"));
  EXPECT_EQ(sink_.applies, applies);
}

TEST_F(ControllerTest, StartMergesConfigOverState) {
  WriteConfig(ConfigText({{"a", "239.1.1.1"}, {"b", "239.1.1.2"}}));
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.9", "manual"))["ok"]);
  // Edited while mcrd was down: b is gone from the file.
  WriteConfig(ConfigText({{"a", "239.1.1.1"}}));
  ASSERT_TRUE(Make().Start().ok());
  EXPECT_THAT(Ids(), ElementsAre("a", "manual"));
}

// A rule added with mcrctl and later written into the config under another name: `reload`
// refuses the clash, but a restart must not refuse to start (every rule would be down). The
// config's rule takes the input, with a warning.
TEST_F(ControllerTest, StartLetsAConfigRuleTakeTheInputOfARestoredMcrctlRule) {
  WriteConfig(ConfigText({{"c0", "239.1.1.1"}}));
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.7", "r1"))["ok"]);
  WriteConfig(ConfigText({{"c0", "239.1.1.1"}, {"c1", "239.1.1.7"}}));
  EXPECT_THAT(std::string(controller_->Reload().status().message()),
              HasSubstr("already relayed by rule 'r1'"));
  ASSERT_TRUE(Make().Start().ok());
  EXPECT_THAT(Ids(), ElementsAre("c0", "c1"));
  EXPECT_THAT(State(), Not(HasSubstr("\"r1\"")));
}

// A state file that cannot be written (disk full, read-only) leaves the change running and is
// written as soon as it can be, not at the next change.
TEST_F(ControllerTest, AFailedSaveIsRetriedUntilItSucceeds) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1", "a"))["ok"]);
  // The state file's directory replaced by a plain file: every write fails (root ignores modes).
  const std::string state_dir = dir_.File("state");
  std::filesystem::remove_all(state_dir);
  ASSERT_TRUE(WriteFileAtomically(state_dir, "in the way").ok());
  json r = Call(AddRequest("239.1.1.2", "b"));
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_THAT(r.dump(), HasSubstr("not saved"));
  const auto t0 = std::chrono::steady_clock::now();
  controller_->Tick(t0);  // still failing: nothing to see
  std::filesystem::remove(state_dir);
  controller_->Tick(t0 + std::chrono::seconds(1));
  EXPECT_THAT(State(), HasSubstr("\"b\""));
  // What was saved is what runs: a restart brings both back.
  ASSERT_TRUE(Make().Start().ok());
  EXPECT_THAT(Ids(), ElementsAre("a", "b"));
}

TEST_F(ControllerTest, ConfigLoadUpsertsOrReplaces) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.9", "manual"))["ok"]);
  json r = Call({{"type", "config_load"}, {"text", ConfigText({{"a", "239.1.1.1"}})}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["added"], json({"a"}));
  EXPECT_THAT(Ids(), ElementsAre("manual", "a"));
  r = Call(
      {{"type", "config_load"}, {"text", ConfigText({{"b", "239.1.1.2"}})}, {"replace", true}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["removed"], json({"manual", "a"}));
  EXPECT_THAT(Ids(), ElementsAre("b"));
}

TEST_F(ControllerTest, ConfigLoadIsAllOrNothing) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.9", "manual"))["ok"]);
  const std::string state = State();
  json config = json::parse(ConfigText({{"a", "239.1.1.1"}, {"b", "239.1.1.2"}}));
  config["rules"][1]["outputs"][0]["interface"] = "eth9";
  EXPECT_THAT(Error({{"type", "config_load"}, {"text", config.dump()}}),
              HasSubstr("rules[1].outputs[0].interface: interface 'eth9' does not exist"));
  EXPECT_THAT(Error({{"type", "config_load"}, {"text", "{\"rules\": [{]}"}}),
              HasSubstr("malformed"));
  EXPECT_THAT(Error({{"type", "config_load"}, {"text", 5}}), HasSubstr("text: expected a string"));
  EXPECT_THAT(Error({{"type", "config_load"}, {"text", "{}"}, {"replace", "yes"}}),
              HasSubstr("replace: expected true or false"));
  EXPECT_THAT(Ids(), ElementsAre("manual"));
  EXPECT_EQ(State(), state);
}

TEST_F(ControllerTest, ConfigCheckChangesNothing) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.9", "manual"))["ok"]);
  const int applies = sink_.applies;
  json r = Call(
      {{"type", "config_check"}, {"text", ConfigText({{"a", "239.1.1.1"}})}, {"replace", true}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["rules"], 1);
  EXPECT_EQ(r["added"], json({"a"}));
  EXPECT_EQ(r["removed"], json({"manual"}));
  EXPECT_EQ(sink_.applies, applies);
  EXPECT_THAT(Ids(), ElementsAre("manual"));
  EXPECT_FALSE(Call({{"type", "config_check"}, {"text", "garbage"}})["ok"]);
}

TEST_F(ControllerTest, ConfigShowLoadsBack) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1", "cam1"))["ok"]);
  ASSERT_TRUE(Call(AddRequest("239.1.1.2"))["ok"]);
  json shown = Call({{"type", "config_show"}})["config"];
  auto parsed = ParseConfig(shown.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, sink_.applied);
}

TEST_F(ControllerTest, StatsAndShards) {
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1", "cam1"))["ok"]);
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  sink_.packets = 100;
  controller_->Tick(t0);
  sink_.packets = 600;
  controller_->Tick(t0 + std::chrono::milliseconds(500));
  json r = Call({{"type", "stats"}});
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_DOUBLE_EQ(r["interval_seconds"].get<double>(), 0.5);
  const json& rule = r["rules"][0];
  EXPECT_EQ(rule["id"], "cam1");
  EXPECT_EQ(rule["packets"], 600);
  EXPECT_DOUBLE_EQ(rule["packets_per_second"].get<double>(), 1000);
  EXPECT_DOUBLE_EQ(rule["bits_per_second"].get<double>(), 1000 * 1000 * 8);
  const json& out = rule["outputs"][0];
  EXPECT_EQ(out["output"], "239.2.2.2:6000:out0");
  EXPECT_EQ(out["drops"], 2);   // no_buffers
  EXPECT_EQ(out["errors"], 3);  // refused
  EXPECT_EQ(out["reasons"]["refused"], 3);
  EXPECT_EQ(rule["drops"], 2);
  EXPECT_EQ(rule["errors"], 3);

  r = Call({{"type", "shards"}});
  ASSERT_TRUE(r["ok"]);
  EXPECT_EQ(r["shards"][0]["kernel_drops"], 4);
  EXPECT_EQ(r["shards"][0]["drops"], 3);
  EXPECT_DOUBLE_EQ(r["shards"][0]["packets_per_second"].get<double>(), 1000);
}

TEST_F(ControllerTest, PingVersionLogLevel) {
  ASSERT_TRUE(Make().Start().ok());
  EXPECT_TRUE(Call({{"type", "ping"}})["ok"]);
  json v = Call({{"type", "version"}});
  EXPECT_EQ(v["protocol"], 1);
  EXPECT_EQ(v["daemon"], MCR_VERSION);
  EXPECT_EQ(Call({{"type", "log_level_set"}, {"level", "warning"}})["level"], "warning");
  EXPECT_EQ(Call({{"type", "log_level_get"}})["level"], "warning");
  EXPECT_EQ(log_.level(), LogLevel::kWarning);
  EXPECT_THAT(Error({{"type", "ping"}, {"extra", 1}}), HasSubstr("extra: unknown field"));
}

TEST_F(ControllerTest, InterfaceChangesReachTheSink) {
  ASSERT_TRUE(Make().Start().ok());
  controller_->OnInterfacesChanged();
  EXPECT_EQ(sink_.refreshes, 1);
  controller_->OnInterfacesChanged({7, 9});
  EXPECT_EQ(sink_.refreshes, 2);
  EXPECT_EQ(sink_.last_deleted, (std::vector<int>{7, 9}));
}

TEST_F(ControllerTest, NoStateFileWhenDisabled) {
  options_.state_file.clear();
  ASSERT_TRUE(Make().Start().ok());
  ASSERT_TRUE(Call(AddRequest("239.1.1.1"))["ok"]);
  EXPECT_FALSE(std::filesystem::exists(dir_.File("state")));
}

}  // namespace
}  // namespace mcr::control
