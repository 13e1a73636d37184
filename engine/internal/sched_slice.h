// The scheduler slice a shard thread asks for (EngineOptions::sched_slice_us).
//
// Since Linux 6.12 the fair scheduler (EEVDF) takes a per-thread slice request from
// sched_setattr's sched_runtime. A shorter slice gives the thread an earlier virtual deadline, so
// when it wakes beside a thread with a longer slice it preempts it at once instead of waiting
// for that thread's slice to run out. Its share of the CPU (the weight, i.e. nice) is unchanged,
// and no privilege is needed. Older kernels accept the call and ignore the value.
#pragma once

#include <cstdint>

namespace mcr::engine::internal {

/// Asks the kernel to give the calling thread a scheduler slice of `ns` nanoseconds (0: leave
/// it as it is), keeping the thread's policy and nice value (sched_setattr sets both, so they
/// are read first; a real-time policy the operator chose, e.g. with chrt, is left alone).
/// Returns the slice the kernel then reports for the thread, 0 if it cannot be read. Best
/// effort: a refusal leaves the kernel's default, which is what the return value shows.
uint64_t RequestSchedSlice(uint64_t ns);

}  // namespace mcr::engine::internal
