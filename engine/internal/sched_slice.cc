#include "engine/internal/sched_slice.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace mcr::engine::internal {
namespace {

// glibc 2.36 has neither the struct nor wrappers; this is the kernel's SCHED_ATTR_SIZE_VER1.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;  // SCHED_OTHER/SCHED_BATCH: the slice request (6.12+)
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

constexpr uint64_t kResetOnFork = 0x01;  // SCHED_FLAG_RESET_ON_FORK

bool GetAttr(SchedAttr* attr) {
  *attr = SchedAttr{};
  return syscall(SYS_sched_getattr, 0, attr, sizeof *attr, 0) == 0;
}

}  // namespace

uint64_t RequestSchedSlice(uint64_t ns) {
  SchedAttr attr;
  if (!GetAttr(&attr)) return 0;
  const bool fair = attr.sched_policy == SCHED_OTHER || attr.sched_policy == SCHED_BATCH;
  if (ns != 0 && fair && attr.sched_runtime != ns) {
    SchedAttr want{};
    want.size = sizeof want;
    want.sched_policy = attr.sched_policy;
    // Keep reset-on-fork; utilization clamps stay as they are without SCHED_FLAG_UTIL_CLAMP.
    want.sched_flags = attr.sched_flags & kResetOnFork;
    want.sched_nice = attr.sched_nice;
    want.sched_runtime = ns;
    (void)syscall(SYS_sched_setattr, 0, &want, 0);
    if (!GetAttr(&attr)) return 0;
  }
  return attr.sched_runtime;
}

}  // namespace mcr::engine::internal
