// Microbenchmarks of the shard's per-packet work: parse + rule lookup with 1, 1k and 10k rules
// (target <= 25 ns per packet), and the egress batcher's cost per extra output (fan-out), with
// real UDP sockets on loopback so the kernel's send path is included.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <vector>

#include "bench/loopback_sink.h"
#include "benchmark/benchmark.h"
#include "engine/internal/egress.h"
#include "engine/internal/rule_table.h"
#include "engine/packet.h"

namespace mcr::engine {
namespace {

using internal::EgressBatcher;
using internal::OutputEntry;
using internal::RuleEntry;
using internal::RuleTable;

// An Ethernet/IPv4/UDP frame to 239.x.y.z:port with a 1200-byte payload.
std::vector<uint8_t> Frame(uint32_t dst_net, uint16_t port) {
  std::vector<uint8_t> f(14 + 20 + 8 + 1200, 0);
  f[12] = 0x08;
  f[14] = 0x45;
  const uint16_t tot = htons(20 + 8 + 1200);
  memcpy(&f[16], &tot, 2);
  f[22] = 16;
  f[23] = 17;
  const uint32_t src = htonl(0x0a0a0101);
  memcpy(&f[26], &src, 4);
  memcpy(&f[30], &dst_net, 4);
  const uint16_t sport = htons(4000), dport = htons(port), ulen = htons(8 + 1200);
  memcpy(&f[34], &sport, 2);
  memcpy(&f[36], &dport, 2);
  memcpy(&f[38], &ulen, 2);
  return f;
}

uint32_t Group(uint32_t i) { return htonl(0xef000000u | (i & 0xffffff)); }  // 239.0.0.0/8

void BM_ParseAndLookup(benchmark::State& state) {
  const uint32_t rules = static_cast<uint32_t>(state.range(0));
  RuleTable table;
  RuleCounters counters;
  for (uint32_t i = 0; i < rules; ++i) {
    RuleEntry e;
    e.counters = &counters;
    table.AddRule({2, Group(i), static_cast<uint16_t>(5000 + i % 16), 0}, std::move(e));
  }
  // 256 frames of random rules, so lookups do not all hit one cache line.
  std::mt19937 rng(1);
  std::vector<std::vector<uint8_t>> frames;
  for (int i = 0; i < 256; ++i) {
    uint32_t r = rng() % rules;
    frames.push_back(Frame(Group(r), static_cast<uint16_t>(5000 + r % 16)));
  }
  size_t k = 0;
  uint64_t hits = 0;
  for (auto _ : state) {
    const auto& f = frames[k++ & 255];
    ParsedPacket p;
    if (ParseFrame(f.data(), static_cast<uint32_t>(f.size()), &p) == ParseResult::kOk &&
        table.Lookup(2, p.dst_addr, p.dst_port, p.src_addr) != nullptr)
      ++hits;
  }
  benchmark::DoNotOptimize(hits);
  if (hits != static_cast<uint64_t>(state.iterations())) state.SkipWithError("lookup missed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseAndLookup)->Arg(1)->Arg(1000)->Arg(10000);

// Cost of relaying one input packet to N outputs: batching + GSO sendmsg on loopback, per input
// packet, in bursts of 64 (one ring block's worth of one flow).
void BM_FanOut(benchmark::State& state) {
  const int outputs = static_cast<int>(state.range(0));
  const bench::DroppingSink sink;  // we measure the sender's side

  RuleTable table;
  std::vector<OutputCounters> counters(static_cast<size_t>(outputs));
  std::vector<const OutputEntry*> outs;
  for (int i = 0; i < outputs; ++i) {
    OutputEntry e;
    e.fd = sink.Connect();
    e.dscp = 0;
    e.max_gso_segment = 1472;
    e.counters = &counters[static_cast<size_t>(i)];
    outs.push_back(table.AddOutput(e));
  }
  EgressBatcher batcher;
  batcher.Resize(table.num_outputs());
  std::vector<uint8_t> payload(1200, 0xab);
  for (auto _ : state) {
    for (int k = 0; k < 64; ++k)
      for (const OutputEntry* o : outs) batcher.Add(o, payload.data(), 1200, 0);
    batcher.Flush();
  }
  state.SetItemsProcessed(state.iterations() * 64);  // input packets
  uint64_t sent = 0, errors = 0;
  for (auto& c : counters) {
    sent += c.packets.Load();
    for (auto& e : c.errors) errors += e.Load();
  }
  state.counters["sent"] = static_cast<double>(sent);
  state.counters["errors"] = static_cast<double>(errors);
  for (const OutputEntry* o : outs) close(o->fd);
}
BENCHMARK(BM_FanOut)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16);

}  // namespace
}  // namespace mcr::engine

BENCHMARK_MAIN();
