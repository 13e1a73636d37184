#pragma once
// What the IGMP host of `mcrd --membership link` counts per interface, as the metrics layer
// exports it (mcr_igmp_*). A plain struct in its own header, so that the control plane, which
// fills it in, need not include the exporter's catalog or the engine's facade.

#include <cstdint>
#include <string>

namespace mcr::metrics {

/// The IGMP that mcrd speaks itself on one input interface (`mcrd --membership link`). The
/// control plane owns the protocol and fills these in; the engine knows nothing of them.
struct IgmpInterfaceStats {
  /// Interface name.
  std::string interface;
  /// IGMP version mcrd reports in now: 3, or 2 or 1 after an older querier or under
  /// force_igmp_version.
  int version = 3;
  /// Groups the rules want on the interface and mcrd holds (224.0.0.x ones too, which it never
  /// reports).
  uint64_t groups = 0;
  /// Queries taken from the interface (general, group-specific, group-and-source-specific).
  uint64_t queries = 0;
  /// IGMP packets ignored as malformed: truncated, bad checksum, bad length.
  uint64_t malformed = 0;
  /// IGMP messages mcrd sent: reports and leaves.
  uint64_t reports_sent = 0;
  /// Sends of those that the kernel refused, not counting those while the link was down.
  uint64_t send_errors = 0;
};

}  // namespace mcr::metrics
