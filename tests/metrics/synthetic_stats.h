#pragma once
// A large, realistic engine snapshot built by hand, for scrape-size tests (promtool) and the
// Collect() benchmark (bench/metrics_collect_bench.cc): every drop reason on every shard, two
// input interfaces, distinct non-zero counters.

#include <arpa/inet.h>

#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/engine.h"
#include "engine/packet.h"

namespace mcr::testing {

inline engine::EngineStats SyntheticStats(size_t rules, size_t shards, size_t outputs_per_rule) {
  engine::EngineStats st;
  for (size_t s = 0; s < shards; ++s) {
    engine::ShardStats sh;
    sh.index = static_cast<int>(s);
    sh.cpu = static_cast<int>(s * 2);
    sh.rules = rules / shards;
    sh.received = 1'000'000'000 + s;
    sh.unmatched = 17 * s;
    for (size_t r = 1; r < static_cast<size_t>(engine::ParseResult::kCount); ++r)
      sh.drops.emplace_back(engine::ParseResultName(static_cast<engine::ParseResult>(r)), r * s);
    sh.kernel_drops = {{"in0", 3 * s}, {"in1", 0}};
    sh.socket_errors = {{"in0", s}, {"in1", 0}};
    sh.no_buffer = 5 * s;
    sh.busy_ratio = 0.125 * static_cast<double>(s % 8);
    st.shards.push_back(std::move(sh));
  }
  for (size_t i = 0; i < rules; ++i) {
    engine::RuleStats r;
    r.spec.id = absl::StrFormat("rule-%05d", i);
    r.spec.input_interface = i % 2 ? "in1" : "in0";
    r.spec.input_group = htonl(0xef010000u + static_cast<uint32_t>(i));  // 239.1.x.y
    r.spec.input_port = static_cast<uint16_t>(5000 + i % 1000);
    r.spec.input_source = i % 4 == 0 ? htonl(0xc6336407u) : 0;  // 198.51.100.7 on a quarter
    r.shard = static_cast<int>(i % shards);
    r.input_up = true;
    r.packets = 1'000'000 + i;
    r.bytes = r.packets * 1316;
    for (size_t o = 0; o < outputs_per_rule; ++o) {
      engine::OutputStats out;
      out.name = absl::StrFormat("239.%d.%d.%d:%d@out%d", 10 + o, (i >> 8) & 255, i & 255,
                                 6000 + i % 1000, o);
      out.active = true;
      out.packets = r.packets - o;
      out.bytes = out.packets * 1316;
      out.errors[static_cast<size_t>(engine::EgressError::kNoBuffers)] = o;
      r.outputs.push_back(std::move(out));
    }
    st.rules.push_back(std::move(r));
  }
  st.interfaces = {{"in0", 2, true}, {"in1", 3, true}, {"out0", 4, true}, {"out1", 5, false}};
  return st;
}

}  // namespace mcr::testing
