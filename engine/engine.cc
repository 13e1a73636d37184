// Engine: the control-thread side of the data plane. Holds the registry of rules, outputs and
// capture interfaces, compiles one immutable RuleTable per shard and hands it over. Never on the
// packet path.

#include "engine/engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/str_format.h"
#include "engine/cpu_list.h"
#include "engine/internal/egress.h"
#include "engine/internal/shard.h"
#include "engine/netdev.h"
#include "engine/packet.h"
#include "engine/steering.h"

namespace mcr::engine {

using internal::IngressCounters;
using internal::RuleTable;
using internal::Shard;
using internal::ShardCommand;

namespace {

std::string OutputName(const OutputSpec& o) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{o.dst_addr};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return absl::StrFormat("%s:%u@%s", buf, o.dst_port, o.interface);
}

// An output's identity, as the control plane keys it and metrics name it (OutputName).
bool SameDestination(const OutputSpec& a, const OutputSpec& b) {
  return a.dst_addr == b.dst_addr && a.dst_port == b.dst_port && a.interface == b.interface;
}

// Whether OpenOutputSocket would configure a socket for `b` exactly as for `a` (same
// destination assumed): TTL 0 on a multicast output means 1.
bool SameSocketOptions(const OutputSpec& a, const OutputSpec& b) {
  auto ttl = [](const OutputSpec& o) -> int {
    return o.ttl == 0 && IsMulticast(o.dst_addr) ? 1 : o.ttl;
  };
  return ttl(a) == ttl(b) && a.dscp == b.dscp;
}

// Largest UDP payload that may be one GSO segment on an interface: one IP datagram, no options.
uint16_t MaxGsoSegment(int mtu) { return static_cast<uint16_t>(std::max(mtu - 28, 0)); }

}  // namespace

absl::Status ValidateRingOptions(uint64_t block_size, uint64_t block_count, uint64_t timeout_ms) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (block_size < 16 * 1024 || block_size % page != 0)
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring block size %u must be a multiple of %u and at least 16384", block_size, page));
  if (block_size > kMaxRingBlockSize)
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring block size %u is more than the limit of %u", block_size, kMaxRingBlockSize));
  if (block_count < 2 || block_count > kMaxRingBlockCount)
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring block count %u is out of range 2..%u", block_count, kMaxRingBlockCount));
  if (block_size * block_count > kMaxRingBytes)
    return absl::InvalidArgumentError(absl::StrFormat(
        "ring of %u blocks of %u bytes is more than the limit of %u bytes per capture socket",
        block_count, block_size, kMaxRingBytes));
  if (timeout_ms < 1 || timeout_ms > 1000)
    return absl::InvalidArgumentError(
        absl::StrFormat("ring block timeout %u ms is out of range 1..1000", timeout_ms));
  return absl::OkStatus();
}

class Engine::Impl {
 public:
  struct Output {
    OutputSpec spec;
    int fd = -1;
    NetDev dev;  // what the socket was opened against
    int route_mtu = 0;  // IP_MTU of the connected socket when opened (0: unknown)
    // Shared with the Output this one replaced when a rule edit kept the destination (see Apply).
    std::shared_ptr<OutputCounters> counters = std::make_shared<OutputCounters>();
    ~Output() {
      if (fd >= 0) close(fd);
    }
  };
  struct Rule {
    RuleSpec spec;
    int shard = 0;
    // Shared with the Rule this one replaced when a rule edit kept the input (see Apply).
    std::shared_ptr<RuleCounters> counters = std::make_shared<RuleCounters>();
    // Shared with the replaced Rule while Apply runs, for outputs an edit left as they were.
    std::vector<std::shared_ptr<Output>> outputs;
  };
  struct Input {
    int ifindex = 0;  // of the open capture sockets; 0: not open
    int mtu = 0;      // the interface's when they were opened
    std::vector<std::unique_ptr<IngressCounters>> counters;  // per shard
  };

  explicit Impl(EngineOptions options) : options_(std::move(options)) {}

  absl::Status Start() {
    if (options_.cpus.empty()) {
      auto cpus = AllowedCpus();
      if (!cpus.ok()) return cpus.status();
      options_.cpus = *cpus;
    }
    if (options_.cpus.size() > 256)
      return absl::InvalidArgumentError("at most 256 shards (a fanout group holds 256 members)");
    if (absl::Status st = ValidateRingOptions(options_.ring_block_size, options_.ring_block_count,
                                              options_.ring_block_timeout_ms);
        !st.ok())
      return st;
    if (options_.busy_poll_us > 1'000'000)
      return absl::InvalidArgumentError(absl::StrFormat(
          "busy poll %u us is out of range 0..1000000", options_.busy_poll_us));
    if (options_.sched_slice_us != 0 &&
        (options_.sched_slice_us < 100 || options_.sched_slice_us > 100'000))
      return absl::InvalidArgumentError(absl::StrFormat(
          "scheduler slice %u us is out of range 100..100000 (0 = kernel default)",
          options_.sched_slice_us));
    socket_filter_ = BuildSocketFilter();
    fanout_program_ = BuildFanoutProgram();
    const int n = static_cast<int>(options_.cpus.size());
    for (int i = 0; i < n; ++i) {
      internal::ShardConfig cfg;
      cfg.index = i;
      cfg.cpu = options_.cpus[i];
      cfg.num_shards = n;
      cfg.recv_mode = options_.ingress == IngressMode::kRecv;
      cfg.busy_poll_ns = uint64_t{options_.busy_poll_us} * 1000;
      cfg.sched_slice_ns = uint64_t{options_.sched_slice_us} * 1000;
      cfg.ring = {options_.ring_block_size, options_.ring_block_count,
                  options_.ring_block_timeout_ms};
      cfg.socket_filter = &socket_filter_;
      shards_.push_back(std::make_unique<Shard>(cfg));
      if (absl::Status st = shards_.back()->Start(); !st.ok()) {
        shards_.clear();
        return st;
      }
    }
    return absl::OkStatus();
  }

  ~Impl() {
    for (auto& s : shards_) s->Stop();
    shards_.clear();
  }

  int ShardFor(uint32_t group, uint16_t port) const {
    return static_cast<int>(mcr::engine::ShardFor(group, port, shards_.size()));
  }

  absl::Status Apply(const std::vector<RuleSpec>& specs) {
    std::lock_guard lock(mu_);
    // 1. New registry: unchanged rules move over with their sockets and counters. An edited rule
    //    whose input stayed the same keeps its counters, and each output it still names (same
    //    group, port and interface) keeps its counters and, if its socket would be configured
    //    the same, the socket itself: adding an output to a live stream resets nothing. The old
    //    rule is not touched until step 3, so a failure leaves the registry as it was.
    std::map<std::string, std::unique_ptr<Rule>> next;
    for (const RuleSpec& spec : specs) {
      auto it = rules_.find(spec.id);
      const Rule* old = it != rules_.end() ? it->second.get() : nullptr;
      if (old != nullptr && old->spec == spec) {
        next[spec.id] = nullptr;  // placeholder: moved in step 3, once nothing can fail
        continue;
      }
      auto rule = std::make_unique<Rule>();
      rule->spec = spec;
      rule->shard = ShardFor(spec.input_group, spec.input_port);
      // Same input: same shard, so the counters keep their single writer.
      const bool same_input = old != nullptr && SameInput(old->spec, spec);
      if (same_input) rule->counters = old->counters;
      std::vector<bool> taken(same_input ? old->outputs.size() : 0);
      for (const OutputSpec& o : spec.outputs) {
        std::shared_ptr<Output> prev;
        for (size_t j = 0; j < taken.size() && prev == nullptr; ++j) {
          if (!taken[j] && SameDestination(old->outputs[j]->spec, o)) {
            taken[j] = true;
            prev = old->outputs[j];
          }
        }
        // An inactive output is opened afresh: an edit is also a retry.
        if (prev != nullptr && prev->fd >= 0 && SameSocketOptions(prev->spec, o)) {
          rule->outputs.push_back(std::move(prev));  // its spec is updated in step 3
          continue;
        }
        auto out = std::make_shared<Output>();
        out->spec = o;
        if (prev != nullptr) out->counters = prev->counters;
        if (absl::Status st = OpenOutput(*out); !st.ok()) return st;  // `next` frees the rest
        rule->outputs.push_back(std::move(out));
      }
      next[spec.id] = std::move(rule);
    }
    // 2. Capture every input interface the new set names (already open ones stay).
    std::set<std::string> wanted;
    for (const RuleSpec& spec : specs) wanted.insert(spec.input_interface);
    std::vector<std::string> opened;
    for (const std::string& name : wanted) {
      if (inputs_.count(name)) continue;
      Input& in = inputs_[name];
      for (size_t i = 0; i < shards_.size(); ++i)
        in.counters.push_back(std::make_unique<IngressCounters>());
      if (absl::Status st = OpenInput(name, in); !st.ok()) {
        for (const std::string& o : opened) CloseInput(inputs_[o]), inputs_.erase(o);
        inputs_.erase(name);
        return st;
      }
      opened.push_back(name);
    }
    // 3. Nothing can fail from here on: commit.
    for (auto& [id, rule] : next) {
      if (rule == nullptr) {
        rule = std::move(rules_[id]);
        continue;
      }
      // Kept sockets take the edit's spec (an explicit TTL 1 where the default was, say).
      for (size_t i = 0; i < rule->outputs.size(); ++i)
        rule->outputs[i]->spec = rule->spec.outputs[i];
    }
    rules_.swap(next);  // `next` now holds removed and replaced rules: freed after the swap
    PublishTables();
    next.clear();  // closes sockets of rules no shard refers to any more
    for (auto it = inputs_.begin(); it != inputs_.end();) {
      if (wanted.count(it->first)) {
        ++it;
        continue;
      }
      CloseInput(it->second);
      it = inputs_.erase(it);
    }
    return absl::OkStatus();
  }

  void Refresh(const std::vector<int>& deleted) {
    std::lock_guard lock(mu_);
    auto was_deleted = [&deleted](int ifindex) {
      return std::find(deleted.begin(), deleted.end(), ifindex) != deleted.end();
    };
    // Closes first, then opens: after a rename (b -> a, both named by rules) `a` may only
    // open once `b` has let go of the interface.
    // One lookup per interface name: many outputs share an interface, and during a link storm
    // rescans come up to ten times a second.
    std::map<std::string, NetDev> devs;
    auto lookup = [&devs](const std::string& name) -> const NetDev& {
      auto it = devs.find(name);
      if (it == devs.end()) it = devs.emplace(name, LookupNetDev(name)).first;
      return it->second;
    };
    std::vector<std::pair<const std::string*, Input*>> reopen;
    for (auto& [name, in] : inputs_) {
      const NetDev& dev = lookup(name);
      // Same interface (up or down): the socket recovers. In recv mode the receive buffers are
      // sized by the MTU: a raised one needs new ones.
      const bool outgrown = options_.ingress == IngressMode::kRecv && dev.mtu > in.mtu;
      if (dev.ifindex == in.ifindex && !was_deleted(in.ifindex) && !outgrown) continue;
      // Deleted, renamed, re-created: the old socket is not this name's, or no longer bound.
      if (in.ifindex) CloseInput(in);
      reopen.emplace_back(&name, &in);
    }
    for (auto [name, in] : reopen) {
      (void)OpenInput(*name, *in);  // a failure leaves it closed; the next event retries
    }
    bool changed = !reopen.empty();
    std::vector<int> stale_fds;
    for (auto& [id, rule] : rules_) {
      for (auto& out : rule->outputs) {
        const NetDev& dev = lookup(out->spec.interface);
        // An inactive output is retried on every event: it may have failed to open against this
        // very interface while it was down.
        if (out->fd >= 0 && dev.ifindex == out->dev.ifindex && !was_deleted(out->dev.ifindex) &&
            dev.has_addr == out->dev.has_addr && dev.addr.s_addr == out->dev.addr.s_addr &&
            dev.mtu == out->dev.mtu)
          continue;
        stale_fds.push_back(out->fd);  // still in the running tables: close after the swap
        out->fd = -1;
        (void)OpenOutput(*out);
        changed |= stale_fds.back() >= 0 || out->fd >= 0;
      }
    }
    if (!changed) return;  // an inactive output still not ready: the running tables stand
    PublishTables();
    for (int fd : stale_fds)
      if (fd >= 0) close(fd);
  }

  EngineStats Snapshot() const {
    std::lock_guard lock(mu_);
    EngineStats st;
    for (const auto& shard : shards_) {
      const internal::ShardCounters& c = shard->counters();
      ShardStats s;
      s.index = shard->index();
      s.cpu = shard->cpu();
      s.numa_node = shard->numa_node();
      s.rules = shard->rule_count();
      s.received = c.received.Load();
      s.unmatched = c.unmatched.Load();
      s.steering_mismatch = c.steering_mismatch.Load();
      for (size_t r = 1; r < c.drops.size(); ++r)  // 0 is kOk
        s.drops.emplace_back(ParseResultName(static_cast<ParseResult>(r)), c.drops[r].Load());
      for (const auto& [name, in] : inputs_)
        s.kernel_drops.emplace_back(name, in.counters[s.index]->kernel_drops.Load());
      for (const auto& [name, in] : inputs_)
        s.socket_errors.emplace_back(name, in.counters[s.index]->socket_errors.Load());
      s.no_buffer = c.no_buffer.Load();
      s.send_calls = c.sendmsg_calls.Load();
      s.offload_frames = c.offload_frames.Load();
      s.busy_ratio = c.busy_ppm.Load() / 1e6;
      s.sched_slice_ns = shard->sched_slice_ns();
      st.shards.push_back(std::move(s));
    }
    std::set<std::string> names;
    for (const auto& [id, rule] : rules_) {
      RuleStats r;
      r.spec = rule->spec;
      r.shard = rule->shard;
      auto in = inputs_.find(rule->spec.input_interface);
      r.input_up = in != inputs_.end() && in->second.ifindex != 0;
      r.input_ifindex = in != inputs_.end() ? in->second.ifindex : 0;
      r.packets = rule->counters->packets.Load();
      r.bytes = rule->counters->bytes.Load();
      names.insert(rule->spec.input_interface);
      for (const auto& out : rule->outputs) {
        OutputStats o;
        o.name = OutputName(out->spec);
        o.spec = out->spec;
        o.active = out->fd >= 0;
        o.packets = out->counters->packets.Load();
        o.bytes = out->counters->bytes.Load();
        for (size_t e = 0; e < o.errors.size(); ++e) o.errors[e] = out->counters->errors[e].Load();
        r.outputs.push_back(std::move(o));
        names.insert(out->spec.interface);
      }
      st.rules.push_back(std::move(r));
    }
    for (const std::string& name : names) {
      const NetDev dev = LookupNetDev(name);
      st.interfaces.push_back(InterfaceStats{name, dev.ifindex, dev.up});
    }
    return st;
  }

  size_t shard_count() const { return shards_.size(); }
  const EngineOptions& options() const { return options_; }

 private:
  // Opens an output's socket against the interface as it is now. An interface that is missing,
  // has no address or is down leaves the output inactive
  // (fd -1; its datagrams count as no_interface) until a Refresh() opens it; any other failure
  // is an error.
  absl::Status OpenOutput(Output& out) {
    out.dev = LookupNetDev(out.spec.interface);
    if (out.dev.ifindex == 0 || !out.dev.has_addr) return absl::OkStatus();
    auto fd = internal::OpenOutputSocket(out.spec, out.dev.ifindex, out.dev.addr,
                                         options_.egress_sndbuf);
    if (!fd.ok()) {
      if (absl::IsFailedPrecondition(fd.status()) ||
          LookupNetDev(out.spec.interface).ifindex == 0)
        return absl::OkStatus();  // not ready, or vanished meanwhile
      return fd.status();
    }
    out.fd = *fd;
    // The route may allow less than the interface (`ip route ... mtu 1400`, a tunnel): GSO
    // segments must fit the route, or the kernel refuses the whole run.
    int mtu = 0;
    socklen_t len = sizeof mtu;
    out.route_mtu = getsockopt(out.fd, IPPROTO_IP, IP_MTU, &mtu, &len) == 0 ? mtu : 0;
    return absl::OkStatus();
  }

  // Opens one capture socket per shard, strictly in shard order, so that fanout member index i
  // is shard i. A missing interface leaves the input closed (ifindex 0) until Refresh().
  absl::Status OpenInput(const std::string& name, Input& in) {
    const NetDev dev = LookupNetDev(name);
    in.ifindex = 0;
    if (dev.ifindex == 0) return absl::OkStatus();
    // Two names for one interface (an alternative name): a second capture group there would
    // hand every frame to the shards twice. The first name keeps it; this one stays closed.
    for (const auto& [other_name, other] : inputs_) {
      if (&other != &in && other.ifindex == dev.ifindex) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "input interface %s is interface %s under another name", name, other_name));
      }
    }
    internal::FanoutJoin join;
    join.enabled = shards_.size() > 1;
    join.program = &fanout_program_;
    for (size_t i = 0; i < shards_.size(); ++i) {
      auto cmd = std::make_unique<ShardCommand>();
      cmd->kind = ShardCommand::Kind::kOpenInput;
      cmd->ifindex = dev.ifindex;
      cmd->ip_only = !dev.ethernet;
      cmd->mtu = static_cast<uint32_t>(std::max(dev.mtu, 0));
      cmd->ingress_counters = in.counters[i].get();
      cmd->fanout = join;
      cmd->fanout.first = (i == 0);
      cmd = shards_[i]->Execute(std::move(cmd));
      if (!cmd->status.ok()) {
        for (size_t j = 0; j < i; ++j) CloseOn(j, dev.ifindex);
        return absl::Status(cmd->status.code(),
                            absl::StrFormat("input interface %s: %s", name, cmd->status.message()));
      }
      if (i == 0) join.id = cmd->fanout.id;
    }
    in.ifindex = dev.ifindex;
    in.mtu = dev.mtu;
    return absl::OkStatus();
  }

  void CloseOn(size_t shard, int ifindex) {
    auto cmd = std::make_unique<ShardCommand>();
    cmd->kind = ShardCommand::Kind::kCloseInput;
    cmd->ifindex = ifindex;
    shards_[shard]->Execute(std::move(cmd));
  }

  void CloseInput(Input& in) {
    if (in.ifindex == 0) return;
    for (size_t i = 0; i < shards_.size(); ++i) CloseOn(i, in.ifindex);
    in.ifindex = 0;
  }

  // Compiles one table per shard from the registry and swaps it in; returns when every shard
  // adopted its table. The old tables come back and are freed here, on the control thread.
  void PublishTables() {
    std::vector<std::unique_ptr<RuleTable>> tables;
    for (size_t i = 0; i < shards_.size(); ++i) tables.push_back(std::make_unique<RuleTable>());
    for (const auto& [id, rule] : rules_) {
      auto in = inputs_.find(rule->spec.input_interface);
      if (in == inputs_.end() || in->second.ifindex == 0) continue;
      RuleTable& t = *tables[rule->shard];
      internal::RuleEntry entry;
      entry.counters = rule->counters.get();
      for (const auto& out : rule->outputs) {
        internal::OutputEntry oe;
        oe.fd = out->fd;
        oe.dscp = out->spec.dscp;
        oe.max_gso_segment = MaxGsoSegment(out->route_mtu > 0
                                               ? std::min(out->route_mtu, out->dev.mtu)
                                               : out->dev.mtu);
        oe.counters = out->counters.get();
        entry.outputs.push_back(t.AddOutput(oe));
      }
      t.AddRule({in->second.ifindex, rule->spec.input_group, rule->spec.input_port,
                 rule->spec.input_source},
                std::move(entry));
    }
    for (size_t i = 0; i < shards_.size(); ++i) {
      auto cmd = std::make_unique<ShardCommand>();
      cmd->kind = ShardCommand::Kind::kSwapTable;
      cmd->table = std::move(tables[i]);
      cmd = shards_[i]->Execute(std::move(cmd));  // cmd->table is now the old one: freed here
    }
  }

  EngineOptions options_;
  std::vector<sock_filter> socket_filter_;
  std::vector<sock_filter> fanout_program_;
  std::vector<std::unique_ptr<Shard>> shards_;
  mutable std::mutex mu_;  // guards the registry below against Snapshot() from other threads
  std::map<std::string, std::unique_ptr<Rule>> rules_;
  std::map<std::string, Input> inputs_;
};

absl::StatusOr<std::unique_ptr<Engine>> Engine::Start(EngineOptions options) {
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status st = impl->Start(); !st.ok()) return st;
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;
absl::Status Engine::ApplyRules(const std::vector<RuleSpec>& rules) { return impl_->Apply(rules); }
void Engine::RefreshInterfaces(const std::vector<int>& deleted) { impl_->Refresh(deleted); }
EngineStats Engine::Snapshot() const { return impl_->Snapshot(); }
int Engine::ShardFor(uint32_t group, uint16_t port) const { return impl_->ShardFor(group, port); }
size_t Engine::shard_count() const { return impl_->shard_count(); }
const EngineOptions& Engine::options() const { return impl_->options(); }

}  // namespace mcr::engine
