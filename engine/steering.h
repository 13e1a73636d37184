#pragma once
// Shard steering: which shard owns a flow, computed identically by the kernel (a classic BPF
// PACKET_FANOUT_CBPF program) and by userspace (rule placement, and each shard's per-packet
// "is this mine" check). See DESIGN.md "Steering".
//
// SteeringHash and ShardFor are HOT PATH (no locks, allocation, exceptions, syscalls, logging) and
// pure: any thread may call them. The Build* functions allocate and run at socket setup.

#include <linux/filter.h>

#include <cstdint>
#include <vector>

// Kernel UAPI the installed headers may predate. Values are ABI and never change; kernels older
// than the feature ignore the flag silently (IGNORE_OUTGOING: 6.2) or refuse it with EINVAL.
#ifndef PACKET_FANOUT_FLAG_UNIQUEID
#define PACKET_FANOUT_FLAG_UNIQUEID 0x2000
#endif
#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

namespace mcr::engine {

/// The steering hash H(dst, port). `dst_addr_net_order` is the IPv4 destination as on the wire
/// (ParsedPacket::dst_addr, in_addr::s_addr); `dst_port_host_order` the UDP destination port in
/// host order. Built only from wrapping 32-bit operations classic BPF has, so that
/// BuildFanoutProgram computes the same value in the kernel.
uint32_t SteeringHash(uint32_t dst_addr_net_order, uint16_t dst_port_host_order) noexcept;

/// The shard (0 .. num_shards-1) that owns flows to (dst, port): H % num_shards, exactly what the
/// kernel does with the fanout program's result for a group of num_shards members.
/// Requires num_shards >= 1.
inline uint32_t ShardFor(uint32_t dst_addr_net_order, uint16_t dst_port_host_order,
                         uint32_t num_shards) noexcept {
  return SteeringHash(dst_addr_net_order, dst_port_host_order) % num_shards;
}

/// The PACKET_FANOUT_CBPF program (install with setsockopt PACKET_FANOUT_DATA, once per group).
/// Returns SteeringHash(dst, dport) for an unfragmented IPv4 UDP packet (whatever outer tag the
/// kernel moved to metadata), and 0 for everything else (non-IPv4, a tag still in-band, non-UDP,
/// fragments, frames too short to read), which sends it to member 0, whose socket filter drops it
/// or lets userspace count it.
std::vector<sock_filter> BuildFanoutProgram();

/// The per-socket SO_ATTACH_FILTER program. Drops PACKET_OUTGOING frames (the relay must never
/// capture its own transmissions; the fanout group flag PACKET_FANOUT_FLAG_IGNORE_OUTGOING does
/// the same earlier on kernels >= 6.2) and the frames of VLANs on top of the interface (an outer
/// tag with a VLAN ID other than 0, or a tag still in-band): a tap on a trunk's parent sees
/// those, but they are the VLAN interfaces' frames, not the parent's. Accepts, whole, the
/// interface's own IPv4 frames (untagged or priority-tagged) whose protocol is UDP — fragments
/// included — and IPv4 frames too short to hold a protocol byte, so that userspace counts them.
/// Drops everything else.
std::vector<sock_filter> BuildSocketFilter();

}  // namespace mcr::engine
