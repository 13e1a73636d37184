#include "bench/mcrgen/netdev.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "bench/mcrgen/config.h"

namespace mcr::gen {
namespace {

// Closes the descriptor on every return path of the setup code.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

uint32_t SockaddrIpv4(const sockaddr& sa) {
  sockaddr_in sin;
  std::memcpy(&sin, &sa, sizeof(sin));
  return ntohl(sin.sin_addr.s_addr);
}

// Looks for a complete (ATF_COM) entry for `ip` on `dev` in /proc/net/arp.
std::optional<MacAddress> ReadArpEntry(const std::string& dev, uint32_t ip) {
  std::ifstream in("/proc/net/arp");
  std::string line;
  std::getline(in, line);  // header
  const std::string want = FormatIpv4(ip);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string addr, hwtype, flags, hw, mask, device;
    if (!(fields >> addr >> hwtype >> flags >> hw >> mask >> device)) continue;
    if (addr != want || device != dev) continue;
    unsigned long f = std::strtoul(flags.c_str(), nullptr, 16);
    if ((f & ATF_COM) == 0) continue;
    absl::StatusOr<MacAddress> mac = ParseMac(hw);
    if (mac.ok()) return *mac;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<InterfaceInfo> LookupInterface(const std::string& name) {
  if (name.size() >= IFNAMSIZ) {
    return absl::InvalidArgumentError(
        absl::StrFormat("interface name '%s' is longer than %d characters", name, IFNAMSIZ - 1));
  }
  ScopedFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, "socket(AF_INET)");
  InterfaceInfo info;
  info.name = name;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  if (ioctl(fd.get(), SIOCGIFINDEX, &ifr) < 0) {
    return absl::NotFoundError(absl::StrFormat(
        "interface '%s' not found in this network namespace (see 'ip link')", name));
  }
  info.index = ifr.ifr_ifindex;
  if (ioctl(fd.get(), SIOCGIFMTU, &ifr) < 0) return absl::ErrnoToStatus(errno, "SIOCGIFMTU");
  info.mtu = ifr.ifr_mtu;
  if (ioctl(fd.get(), SIOCGIFHWADDR, &ifr) < 0) return absl::ErrnoToStatus(errno, "SIOCGIFHWADDR");
  std::memcpy(info.mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  if (ioctl(fd.get(), SIOCGIFADDR, &ifr) == 0) {
    info.ipv4 = SockaddrIpv4(ifr.ifr_addr);
    if (ioctl(fd.get(), SIOCGIFNETMASK, &ifr) == 0) info.netmask = SockaddrIpv4(ifr.ifr_netmask);
  }  // else EADDRNOTAVAIL: no IPv4 address, which receiving multicast does not need
  return info;
}

absl::StatusOr<uint32_t> NextHop(const InterfaceInfo& iface, uint32_t dst) {
  if (iface.ipv4 && iface.netmask != 0 && (dst & iface.netmask) == (*iface.ipv4 & iface.netmask)) {
    return dst;
  }
  // /proc/net/route: Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses are
  // the in-memory (network order) value printed as a host integer.
  std::ifstream in("/proc/net/route");
  std::string line;
  std::getline(in, line);
  bool found = false;
  uint32_t best_mask = 0, best_gw = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string dev, dest_hex, gw_hex, flags_hex, refcnt, use, metric, mask_hex;
    if (!(fields >> dev >> dest_hex >> gw_hex >> flags_hex >> refcnt >> use >> metric >>
          mask_hex)) {
      continue;
    }
    if (dev != iface.name) continue;
    uint32_t d = 0, g = 0, m = 0, f = 0;
    if (!absl::SimpleHexAtoi(dest_hex, &d) || !absl::SimpleHexAtoi(gw_hex, &g) ||
        !absl::SimpleHexAtoi(mask_hex, &m) || !absl::SimpleHexAtoi(flags_hex, &f)) {
      continue;
    }
    if ((f & 0x1) == 0) continue;  // RTF_UP
    d = ntohl(d);
    g = ntohl(g);
    m = ntohl(m);
    if ((dst & m) != d) continue;
    if (!found || m > best_mask) {
      found = true;
      best_mask = m;
      best_gw = g;
    }
  }
  if (!found) {
    return absl::NotFoundError(
        absl::StrFormat("no route to %s through %s; pass --dst-mac with the next hop's MAC address",
                        FormatIpv4(dst), iface.name));
  }
  return best_gw == 0 ? dst : best_gw;
}

absl::StatusOr<MacAddress> ResolveNeighbour(const InterfaceInfo& iface, uint32_t next_hop,
                                            absl::Duration wait) {
  if (std::optional<MacAddress> mac = ReadArpEntry(iface.name, next_hop)) return *mac;
  // Make the kernel resolve it: any datagram routed to next_hop through iface triggers ARP.
  ScopedFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() >= 0) {
    // Best effort: without CAP_NET_RAW the routing table picks the interface.
    setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, iface.name.c_str(),
               static_cast<socklen_t>(iface.name.size()));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(next_hop);
    sendto(fd.get(), "", 0, MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
  }
  const absl::Time deadline = absl::Now() + wait;
  while (absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (std::optional<MacAddress> mac = ReadArpEntry(iface.name, next_hop)) return *mac;
  }
  return absl::NotFoundError(absl::StrFormat(
      "no neighbour entry for %s on %s after %s (host down or not on this link?); pass "
      "--dst-mac with the next hop's MAC address",
      FormatIpv4(next_hop), iface.name, absl::FormatDuration(wait)));
}

}  // namespace mcr::gen
