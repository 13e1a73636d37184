#pragma once
// CPU lists in the syntax of taskset(1) --cpu-list and cpuset(7): "0-3,8,10-11", "0-10:2".
// Used once at start to turn --cpus into the shard set; not on any hot path.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace mcr::engine {

/// Largest CPU id accepted, exclusive: x86-64 MAXSMP builds the kernel with NR_CPUS = 8192.
inline constexpr int kMaxCpus = 8192;

/// Parses a comma-separated list of entries "N", "A-B" or "A-B:S" (every S-th CPU from A to B,
/// both inclusive), with optional whitespace around numbers and separators. Returns the CPU ids
/// sorted and without duplicates, or InvalidArgument naming the offending entry, e.g.
/// `cpu list "3-1": range end 1 is below start 3`. An empty list is an error.
absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text);

/// Formats CPU ids compactly, runs of consecutive ids as ranges: {0,1,2,3,8,10,11} ->
/// "0-3,8,10-11". Accepts unsorted input with duplicates; ids must be non-negative. The result
/// parses back to the same set with ParseCpuList. Empty input gives "".
std::string FormatCpuList(const std::vector<int>& cpus);

/// The CPUs this process may run on (sched_getaffinity of the main thread, which reflects taskset
/// and cgroup cpusets), sorted. Call it before any thread pins itself.
absl::StatusOr<std::vector<int>> AllowedCpus();

/// Pins the calling thread to `cpu` (0 <= cpu < kMaxCpus; a cpu_set_t would stop at 1024).
/// Returns 0 or the error number.
int PinCallingThreadToCpu(int cpu);

}  // namespace mcr::engine
