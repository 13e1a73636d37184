#include "engine/netdev.h"

#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace mcr::engine {

NetDev LookupNetDev(const std::string& name) {
  NetDev d;
  if (name.empty() || name.size() >= IFNAMSIZ) return d;
  d.ifindex = static_cast<int>(if_nametoindex(name.c_str()));
  if (d.ifindex == 0) return d;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return d;
  ifreq ifr{};
  memcpy(ifr.ifr_name, name.c_str(), name.size());
  if (ioctl(s, SIOCGIFADDR, &ifr) == 0) {
    d.has_addr = true;
    d.addr = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr)->sin_addr;
  }
  if (ioctl(s, SIOCGIFMTU, &ifr) == 0) d.mtu = ifr.ifr_mtu;
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
    d.up = (ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags & IFF_RUNNING);
  if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0)
    d.ethernet = ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER ||
                 ifr.ifr_hwaddr.sa_family == ARPHRD_LOOPBACK;
  close(s);
  return d;
}

}  // namespace mcr::engine
