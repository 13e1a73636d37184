#include "bench/mcrgen/config.h"

#include <arpa/inet.h>

#include "absl/strings/str_format.h"

namespace mcr::gen {

absl::StatusOr<uint32_t> ParseIpv4(std::string_view text) {
  const std::string s(text);
  in_addr a{};
  // inet_pton, unlike inet_aton, accepts only the four-part dotted decimal form.
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("'%s' is not an IPv4 address (dotted quad like 239.1.1.1)", text));
  }
  return ntohl(a.s_addr);
}

std::string FormatIpv4(uint32_t addr) {
  return absl::StrFormat("%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
                         addr & 0xff);
}

}  // namespace mcr::gen
