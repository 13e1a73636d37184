#pragma once
// Rule specifications: what the control plane asks the engine to relay. Plain data, validated by
// the control plane before it reaches the engine (control/validate.h); the engine trusts it.

#include <cstdint>
#include <string>
#include <vector>

namespace mcr::engine {

/// One destination of a rule: a fresh UDP datagram per input payload.
struct OutputSpec {
  /// Destination address, IPv4, network byte order. Multicast or unicast.
  uint32_t dst_addr = 0;
  /// Destination UDP port, host byte order, 1..65535.
  uint16_t dst_port = 0;
  /// Egress interface name; the datagram leaves here with this interface's address as source.
  std::string interface;
  /// IP TTL, 1..255. 0: default (1 for multicast destinations, the system's for unicast).
  uint8_t ttl = 0;
  /// DSCP, 0..63. -1: copy the input packet's DSCP (the default: ST 2110 networks rely on it).
  int dscp = -1;

  bool operator==(const OutputSpec&) const = default;
};

/// A relay rule keyed by its input tuple. `id` is stable across restarts (see control/).
struct RuleSpec {
  /// Unique rule id (the name given, or a hash of the input tuple).
  std::string id;
  /// Capture interface name.
  std::string input_interface;
  /// Input destination address, network byte order: a multicast group or a local unicast address.
  uint32_t input_group = 0;
  /// Input destination UDP port, host byte order.
  uint16_t input_port = 0;
  /// Source address for an (S,G) rule, network byte order; 0 for (*,G). (S,G) beats (*,G).
  uint32_t input_source = 0;
  /// Destinations; at least one.
  std::vector<OutputSpec> outputs;

  bool operator==(const RuleSpec&) const = default;
};

/// Whether two rules take the same input: one stream, which at most one rule may relay.
inline bool SameInput(const RuleSpec& a, const RuleSpec& b) {
  return a.input_interface == b.input_interface && a.input_group == b.input_group &&
         a.input_port == b.input_port && a.input_source == b.input_source;
}

inline bool IsMulticast(uint32_t addr_net_order) {
  // 224.0.0.0/4: the first octet is the lowest-addressed byte in network order.
  return (reinterpret_cast<const uint8_t*>(&addr_net_order)[0] & 0xf0) == 0xe0;
}

}  // namespace mcr::engine
