#include "engine/cpu_list.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

// Debian's abseil 20220623 is built with its own absl::string_view (not std::string_view), so its
// string_view-taking helpers (StrSplit, StripAsciiWhitespace) are not used here.

namespace mcr::engine {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Parses one CPU number (decimal digits only: no sign, no "0x") and checks its range. `what`
// names the part for the error ("CPU", "range end", ...).
absl::StatusOr<int> ParseNumber(std::string_view text, std::string_view what) {
  text = Trim(text);
  if (text.empty()) return absl::InvalidArgumentError(absl::StrFormat("%s is missing", what));
  if (!std::all_of(text.begin(), text.end(), IsDigit)) {
    return absl::InvalidArgumentError(absl::StrFormat("%s \"%s\" is not a number", what, text));
  }
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value >= kMaxCpus) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s %s is above the largest CPU id %d", what, text, kMaxCpus - 1));
  }
  return value;
}

// Appends the CPUs of one entry ("N", "A-B" or "A-B:S") to `out`.
absl::Status ParseEntry(std::string_view entry, std::vector<int>& out) {
  std::string_view range = entry;
  std::string_view stride_text;
  bool has_stride = false;
  if (size_t colon = entry.find(':'); colon != std::string_view::npos) {
    range = entry.substr(0, colon);
    stride_text = entry.substr(colon + 1);
    has_stride = true;
  }
  size_t dash = range.find('-');
  if (dash == std::string_view::npos) {
    if (has_stride) {
      return absl::InvalidArgumentError("a stride needs a range (write A-B:S)");
    }
    absl::StatusOr<int> cpu = ParseNumber(range, "CPU");
    if (!cpu.ok()) return cpu.status();
    out.push_back(*cpu);
    return absl::OkStatus();
  }
  absl::StatusOr<int> first = ParseNumber(range.substr(0, dash), "range start");
  if (!first.ok()) return first.status();
  absl::StatusOr<int> last = ParseNumber(range.substr(dash + 1), "range end");
  if (!last.ok()) return last.status();
  if (*last < *first) {
    return absl::InvalidArgumentError(
        absl::StrFormat("range end %d is below start %d", *last, *first));
  }
  int stride = 1;
  if (has_stride) {
    absl::StatusOr<int> parsed = ParseNumber(stride_text, "stride");
    if (!parsed.ok()) return parsed.status();
    if (*parsed == 0) return absl::InvalidArgumentError("stride 0 must be at least 1");
    stride = *parsed;
  }
  // Both ends are below kMaxCpus, so cpu + stride cannot overflow.
  for (int cpu = *first; cpu <= *last; cpu += stride) out.push_back(cpu);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text) {
  std::vector<std::string_view> entries;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    entries.push_back(text.substr(start, comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (entries.size() == 1 && Trim(text).empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("cpu list \"%s\" is empty: give CPU ids such as 0-3,8", text));
  }
  std::vector<int> cpus;
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string_view entry = Trim(entries[i]);
    absl::Status status = entry.empty() ? absl::InvalidArgumentError(absl::StrFormat(
                                              "entry %d (between commas) is empty", i + 1))
                                        : ParseEntry(entry, cpus);
    if (!status.ok()) {
      // Name the entry unless it is the whole list: `cpu list "0,3-1": entry "3-1": ...`.
      std::string where = entries.size() == 1 || entry.empty()
                              ? absl::StrFormat("cpu list \"%s\": ", text)
                              : absl::StrFormat("cpu list \"%s\": entry \"%s\": ", text, entry);
      return absl::InvalidArgumentError(absl::StrFormat("%s%s", where, status.message()));
    }
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::string FormatCpuList(const std::vector<int>& cpus) {
  std::vector<int> sorted = cpus;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string out;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (!out.empty()) out += ',';
    absl::StrAppend(&out, sorted[i]);
    if (j > i) absl::StrAppend(&out, "-", sorted[j]);
    i = j + 1;
  }
  return out;
}

namespace {
struct FreeCpuSet {
  void operator()(cpu_set_t* s) const { CPU_FREE(s); }
};
}  // namespace

int PinCallingThreadToCpu(int cpu) {
  if (cpu < 0 || cpu >= kMaxCpus) return EINVAL;
  const size_t size = CPU_ALLOC_SIZE(kMaxCpus);
  std::unique_ptr<cpu_set_t, FreeCpuSet> set(CPU_ALLOC(kMaxCpus));
  if (set == nullptr) return ENOMEM;
  CPU_ZERO_S(size, set.get());
  CPU_SET_S(static_cast<size_t>(cpu), size, set.get());
  return pthread_setaffinity_np(pthread_self(), size, set.get());
}

absl::StatusOr<std::vector<int>> AllowedCpus() {
  // A dynamically sized set: cpu_set_t holds only 1024 CPUs, and sched_getaffinity fails with
  // EINVAL when the set is smaller than the kernel's nr_cpu_ids.
  const size_t size = CPU_ALLOC_SIZE(kMaxCpus);
  std::unique_ptr<cpu_set_t, FreeCpuSet> set(CPU_ALLOC(kMaxCpus));
  if (set == nullptr) return absl::ResourceExhaustedError("cannot allocate a CPU set");
  CPU_ZERO_S(size, set.get());
  // getpid(): the main thread's mask — what taskset and the cgroup gave the process — even when
  // called from a thread that has already pinned itself.
  if (sched_getaffinity(getpid(), size, set.get()) != 0) {
    return absl::InternalError(absl::StrCat("sched_getaffinity failed: ", std::strerror(errno)));
  }
  std::vector<int> cpus;
  for (int cpu = 0; cpu < kMaxCpus; ++cpu) {
    if (CPU_ISSET_S(cpu, size, set.get())) cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace mcr::engine
