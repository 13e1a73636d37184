#pragma once
// The compiled, immutable rule table of one shard. Built by the control thread (Engine), handed to
// the shard through its command queue, read only by that shard, and sent back to the control
// thread to be freed once the shard has swapped to a newer one (one reader per table: no epochs).
//
// HOT PATH (Lookup): no locks, no allocation, no exceptions, no syscalls, no logging.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "engine/counters.h"

namespace mcr::engine::internal {

/// One output as the shard sees it. The socket and counters are owned by the Engine's registry
/// (control thread) and outlive every table that points at them.
struct OutputEntry {
  int fd = -1;                         // connected UDP socket; -1: output inactive
  int dscp = -1;                       // -1: copy the input's DSCP per datagram (IP_TOS cmsg)
  uint16_t max_gso_segment = 0;        // largest payload that may be a GSO segment (MTU - 28)
  uint32_t slot = 0;                   // index of this output's pending-send list in the shard
  OutputCounters* counters = nullptr;
};

struct RuleEntry {
  RuleCounters* counters = nullptr;
  std::vector<const OutputEntry*> outputs;
};

struct RuleKey {
  int32_t ifindex;
  uint32_t dst;   // network byte order
  uint16_t port;  // host byte order
  uint32_t src;   // network byte order; 0 for (*,G)

  bool operator==(const RuleKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const RuleKey& k) {
    return H::combine(std::move(h), k.ifindex, k.dst, k.port, k.src);
  }
};

class RuleTable {
 public:
  RuleTable() = default;
  RuleTable(const RuleTable&) = delete;
  RuleTable& operator=(const RuleTable&) = delete;

  /// Control thread, while building: adds an output owned by this table. Returns it.
  OutputEntry* AddOutput(const OutputEntry& e) {
    outputs_.push_back(std::make_unique<OutputEntry>(e));
    outputs_.back()->slot = static_cast<uint32_t>(outputs_.size() - 1);
    return outputs_.back().get();
  }
  /// Control thread, while building: adds a rule; (S,G) when key.src != 0.
  void AddRule(const RuleKey& key, RuleEntry entry) {
    if (key.src != 0) has_source_rules_ = true;
    rules_.emplace(key, std::move(entry));
  }

  /// Shard: the rule for a packet, (S,G) before (*,G); nullptr when none. Returns … or nullptr.
  const RuleEntry* Lookup(int32_t ifindex, uint32_t dst, uint16_t port, uint32_t src) const noexcept {
    if (has_source_rules_) {
      auto it = rules_.find(RuleKey{ifindex, dst, port, src});
      if (it != rules_.end()) return &it->second;
    }
    auto it = rules_.find(RuleKey{ifindex, dst, port, 0});
    return it == rules_.end() ? nullptr : &it->second;
  }

  size_t num_outputs() const { return outputs_.size(); }
  size_t num_rules() const { return rules_.size(); }

 private:
  absl::flat_hash_map<RuleKey, RuleEntry> rules_;
  std::vector<std::unique_ptr<OutputEntry>> outputs_;  // stable addresses
  bool has_source_rules_ = false;
};

using RuleTablePtr = std::unique_ptr<RuleTable>;

}  // namespace mcr::engine::internal
