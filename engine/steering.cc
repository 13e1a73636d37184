// SteeringHash is HOT PATH: no locks, no allocation, no exceptions, no syscalls, no logging.
// The program builders below it run at socket setup only.

#include "engine/steering.h"

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>

#include <array>
#include <cassert>

namespace mcr::engine {
namespace {

// murmur3's 32-bit finaliser: a bijection on uint32 in which every input bit affects every output
// bit with probability ~1/2. Only xor, logical shift right and wrapping multiply — all classic BPF
// ALU operations (BPF has no rotate, which rules out most other mixers without scratch space).
constexpr uint32_t kMix1 = 0x85ebca6bu;
constexpr uint32_t kMix2 = 0xc2b2ae35u;
constexpr uint32_t Fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= kMix1;
  h ^= h >> 13;
  h *= kMix2;
  h ^= h >> 16;
  return h;
}

}  // namespace

uint32_t SteeringHash(uint32_t dst_addr_net_order, uint16_t dst_port_host_order) noexcept {
  // BPF word loads are big-endian, so the program sees the address as a host-order number.
  // H = fmix(fmix(addr) + port): the inner round spreads the address over all 32 bits before the
  // port is added, so neighbouring groups and neighbouring ports (the common case: 239.1.1.x,
  // 5000..5009) land on unrelated shards; the outer round spreads the port. Two different flows
  // share H only by a 2^-32 chance, and H % N is uniform for any N.
  return Fmix32(Fmix32(ntohl(dst_addr_net_order)) + dst_port_host_order);
}

namespace {

// Offsets of the fields the programs read, from the network header.
constexpr uint32_t kIpFragOff = 6;  // flags (3 bits) + fragment offset (13 bits)
constexpr uint32_t kIpProto = 9;
constexpr uint32_t kIpDst = 16;
constexpr uint32_t kUdpDport = 2;  // from the UDP header
constexpr uint32_t kMoreFragmentsOrOffset = 0x3fff;

// Classic BPF loads at SKF_NET_OFF + k read from skb_network_header + k, wherever skb->data is:
// on receive the fanout hook runs with data at the network header but packet sockets filter with
// data at the MAC header, and outgoing skbs carry the MAC header. A load outside the packet makes
// the kernel end the program returning 0.
constexpr uint32_t Net(uint32_t off) { return static_cast<uint32_t>(SKF_NET_OFF) + off; }
constexpr uint32_t Ancillary(uint32_t what) { return static_cast<uint32_t>(SKF_AD_OFF) + what; }

// A straight-line assembler with forward labels, so the jump offsets below are computed rather
// than counted by hand. Conditional jumps in classic BPF are 8-bit forward offsets.
enum Label : int {
  kFallThrough = -1,
  kIpv4,
  kMemberZero,
  kAccept,
  kDrop,
  kLabels
};

class Assembler {
 public:
  void Stmt(uint16_t code, uint32_t k) { prog_.push_back(BPF_STMT(code, k)); }
  // if (A <op> k) goto jt else goto jf.
  void Jump(uint16_t code, uint32_t k, Label jt, Label jf) {
    fixups_.push_back({prog_.size(), jt, jf});
    prog_.push_back(BPF_JUMP(BPF_JMP | code | BPF_K, k, 0, 0));
  }
  void Goto(Label l) {
    fixups_.push_back({prog_.size(), l, kFallThrough});
    prog_.push_back(BPF_STMT(BPF_JMP | BPF_JA, 0));
  }
  void Bind(Label l) { labels_[l] = prog_.size(); }

  std::vector<sock_filter> Finish() {
    for (const Fixup& f : fixups_) {
      sock_filter& insn = prog_[f.at];
      if (BPF_OP(insn.code) == BPF_JA) {
        insn.k = static_cast<uint32_t>(Offset(f.at, f.jt));
      } else {
        insn.jt = static_cast<uint8_t>(Offset(f.at, f.jt));
        insn.jf = static_cast<uint8_t>(Offset(f.at, f.jf));
      }
    }
    return std::move(prog_);
  }

 private:
  struct Fixup {
    size_t at;
    Label jt, jf;
  };
  size_t Offset(size_t at, Label l) const {
    if (l == kFallThrough) return 0;
    const size_t offset = labels_[l] - at - 1;
    // Programs are built from fixed code: a bad label or a too-long jump is a bug found by tests.
    assert(labels_[l] != kUnbound && labels_[l] > at && offset <= 255);
    return offset;
  }
  static constexpr size_t kUnbound = ~size_t{0};
  std::vector<sock_filter> prog_;
  std::vector<Fixup> fixups_;
  std::array<size_t, kLabels> labels_ = [] {
    std::array<size_t, kLabels> a;
    a.fill(kUnbound);
    return a;
  }();
};

// A = A ^ (A >> s). Uses X.
void EmitXorShift(Assembler& a, uint32_t s) {
  a.Stmt(BPF_MISC | BPF_TAX, 0);
  a.Stmt(BPF_ALU | BPF_RSH | BPF_K, s);
  a.Stmt(BPF_ALU | BPF_XOR | BPF_X, 0);
}

// A = Fmix32(A). Uses X.
void EmitFmix32(Assembler& a) {
  EmitXorShift(a, 16);
  a.Stmt(BPF_ALU | BPF_MUL | BPF_K, kMix1);
  EmitXorShift(a, 13);
  a.Stmt(BPF_ALU | BPF_MUL | BPF_K, kMix2);
  EmitXorShift(a, 16);
}

// Loads the destination of an unfragmented UDP packet whose IPv4 header starts `ip` bytes after
// the network header: A = dst address, M[0] = dst port; anything else jumps to `other`.
void EmitLoadUdpDestination(Assembler& a, uint32_t ip, Label other) {
  a.Stmt(BPF_LD | BPF_H | BPF_ABS, Net(ip + kIpFragOff));
  a.Jump(BPF_JSET, kMoreFragmentsOrOffset, other, kFallThrough);
  a.Stmt(BPF_LD | BPF_B | BPF_ABS, Net(ip + kIpProto));
  a.Jump(BPF_JEQ, IPPROTO_UDP, kFallThrough, other);
  a.Stmt(BPF_LDX | BPF_B | BPF_MSH, Net(ip));             // X = 4 * (IHL), options included
  a.Stmt(BPF_LD | BPF_H | BPF_IND, Net(ip + kUdpDport));  // A = dport at [X + ip + 2]
  a.Stmt(BPF_ST, 0);                                      // M[0] = dport
  a.Stmt(BPF_LD | BPF_W | BPF_ABS, Net(ip + kIpDst));     // A = dst address
}

}  // namespace

std::vector<sock_filter> BuildFanoutProgram() {
  // SKF_AD_PROTOCOL is skb->protocol: the kernel has already moved the outermost VLAN tag to
  // metadata (skb_vlan_untag runs before packet taps), so it reads 0x0800 for a priority-tagged
  // IPv4 frame too. Anything else (a tag still in-band, which the socket filter drops) goes to
  // member 0.
  Assembler a;
  a.Stmt(BPF_LD | BPF_W | BPF_ABS, Ancillary(SKF_AD_PROTOCOL));
  a.Jump(BPF_JEQ, ETH_P_IP, kFallThrough, kMemberZero);
  EmitLoadUdpDestination(a, 0, kMemberZero);

  // A = dst address, M[0] = dst port: A = Fmix32(Fmix32(A) + M[0]).
  EmitFmix32(a);
  a.Stmt(BPF_LDX | BPF_W | BPF_MEM, 0);
  a.Stmt(BPF_ALU | BPF_ADD | BPF_X, 0);
  EmitFmix32(a);
  a.Stmt(BPF_RET | BPF_A, 0);

  a.Bind(kMemberZero);  // a fanout program cannot drop; member 0's socket filter decides
  a.Stmt(BPF_RET | BPF_K, 0);
  return a.Finish();
}

std::vector<sock_filter> BuildSocketFilter() {
  // Trade-off: rejecting in the kernel costs a few instructions per frame and saves a copy into
  // the ring plus a wake-up for each ARP, IPv6, TCP... frame on a busy input link; but anything
  // the relay should *count* as malformed must reach userspace. So the filter decides only on
  // fields it can read reliably (pkt_type, VLAN metadata, EtherType, IP protocol) and leaves every
  // judgement about lengths, versions and fragments to ParseFrame. A frame too short to hold the
  // protocol byte would otherwise end the program with "drop" (a failed load returns 0), so
  // lengths are checked first and such frames accepted. `len` counts from the MAC header here
  // (SOCK_RAW packet sockets push it back before filtering) and an Ethernet header is 14 bytes; on
  // the SOCK_DGRAM sockets of interfaces without one it counts from the IP header, so IP packets
  // of 10 to 23 bytes are accepted unchecked — userspace counts them as truncated.
  //
  // Only the interface's own frames, as its IP stack would take them: a packet tap on a trunk's
  // parent also sees every VLAN's tagged frames (the outer tag already in metadata), which belong
  // to the VLAN interfaces on top of it, or to nobody. Untagged and priority-tagged (VID 0)
  // frames are the parent's. A tag still in-band after the kernel moved the outer one (QinQ)
  // belongs to a VLAN interface too; so, here, does a priority tag outside another priority tag,
  // which the kernel would hand to the parent (not worth instructions on every frame). A VLAN
  // interface with reorder_hdr off puts its tag back in-band but leaves skb->protocol IPv4:
  // accepted, and ParseFrame skips the tag.
  constexpr uint32_t kAcceptWholeFrame = 0xffffffff;  // snap length: no truncation
  constexpr uint32_t kEth = ETH_HLEN;
  constexpr uint32_t kVlanId = 0x0fff;
  Assembler a;
  a.Stmt(BPF_LD | BPF_W | BPF_ABS, Ancillary(SKF_AD_PKTTYPE));
  a.Jump(BPF_JEQ, PACKET_OUTGOING, kDrop, kFallThrough);
  a.Stmt(BPF_LD | BPF_W | BPF_ABS, Ancillary(SKF_AD_VLAN_TAG_PRESENT));
  a.Jump(BPF_JEQ, 0, kIpv4, kFallThrough);
  a.Stmt(BPF_LD | BPF_W | BPF_ABS, Ancillary(SKF_AD_VLAN_TAG));
  a.Jump(BPF_JSET, kVlanId, kDrop, kFallThrough);

  a.Bind(kIpv4);
  a.Stmt(BPF_LD | BPF_W | BPF_ABS, Ancillary(SKF_AD_PROTOCOL));
  a.Jump(BPF_JEQ, ETH_P_IP, kFallThrough, kDrop);
  a.Stmt(BPF_LD | BPF_W | BPF_LEN, 0);
  a.Jump(BPF_JGE, kEth + kIpProto + 1, kFallThrough, kAccept);
  a.Stmt(BPF_LD | BPF_B | BPF_ABS, Net(kIpProto));
  a.Jump(BPF_JEQ, IPPROTO_UDP, kAccept, kDrop);

  a.Bind(kAccept);
  a.Stmt(BPF_RET | BPF_K, kAcceptWholeFrame);
  a.Bind(kDrop);
  a.Stmt(BPF_RET | BPF_K, 0);
  return a.Finish();
}

}  // namespace mcr::engine
