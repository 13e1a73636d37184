#pragma once
// C++ side of the namespace test rig (the shell side is tests/rig/netns.sh; both name namespaces
// mcrt.<test>.<pid>.<role> and reap each other's leftovers). A NetnsRig builds namespaces and veth
// pairs with iproute2, and NetnsScope moves the *calling thread* into one of them (setns is
// per thread; threads created afterwards inherit it — so an Engine started inside a scope runs
// its shards in that namespace). Everything is torn down in the destructor, also when a test
// fails; tests skip (GTEST_SKIP, ctest exit 77 semantics) without root or namespace support.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mcr::testing {

inline int Sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class NetnsRig {
 public:
  /// Returns an empty string when the rig can run here, else the reason to skip.
  static std::string Unavailable() {
    if (geteuid() != 0) return "needs root for network namespaces";
    if (Sh("command -v ip >/dev/null 2>&1") != 0) return "iproute2 'ip' not installed";
    std::string probe = "mcrt.probe." + std::to_string(getpid());
    if (Sh("ip netns add " + probe + " 2>/dev/null") != 0) return "cannot create namespaces";
    Sh("ip netns del " + probe);
    return "";
  }

  /// `test` may not contain dots (they separate the fields of a namespace name).
  explicit NetnsRig(const std::string& test) : id_("mcrt." + test + "." + std::to_string(getpid())) {
    ReapStale();
  }
  ~NetnsRig() {
    for (const auto& ns : namespaces_) {
      Sh("pids=$(ip netns pids " + ns + " 2>/dev/null); [ -z \"$pids\" ] || kill -9 $pids");
      Sh("ip netns del " + ns + " 2>/dev/null");
    }
  }
  NetnsRig(const NetnsRig&) = delete;
  NetnsRig& operator=(const NetnsRig&) = delete;

  std::string Name(const std::string& role) const { return id_ + "." + role; }

  void AddNamespace(const std::string& role) {
    const std::string ns = Name(role);
    Must("ip netns add " + ns);
    namespaces_.push_back(ns);
    Must("ip -n " + ns + " link set lo up");
  }
  /// A veth pair between two namespaces, addresses in CIDR form; UDP GSO off so that frames on
  /// the wire are datagram-sized.
  void Link(const std::string& a, const std::string& ifa, const std::string& addra,
            const std::string& b, const std::string& ifb, const std::string& addrb) {
    Must("ip link add name " + ifa + " netns " + Name(a) + " type veth peer name " + ifb +
         " netns " + Name(b));
    Must("ip -n " + Name(a) + " addr add " + addra + " dev " + ifa);
    Must("ip -n " + Name(b) + " addr add " + addrb + " dev " + ifb);
    Must("ip -n " + Name(a) + " link set " + ifa + " up");
    Must("ip -n " + Name(b) + " link set " + ifb + " up");
    Sh("ip netns exec " + Name(a) + " ethtool -K " + ifa + " tx-udp-segmentation off >/dev/null 2>&1");
    Sh("ip netns exec " + Name(b) + " ethtool -K " + ifb + " tx-udp-segmentation off >/dev/null 2>&1");
  }
  /// Runs a command inside a namespace; fails the test on a non-zero exit.
  void Exec(const std::string& role, const std::string& cmd) {
    Must("ip netns exec " + Name(role) + " " + cmd);
  }
  /// The standard topology of tests/rig/netns.sh:
  ///   snd veth0 10.10.1.1 <-> in0 10.10.1.2 rly out0 10.10.2.1 <-> veth0 10.10.2.2 rcv
  void StandardTopology() {
    AddNamespace("snd");
    AddNamespace("rly");
    AddNamespace("rcv");
    Link("snd", "veth0", "10.10.1.1/24", "rly", "in0", "10.10.1.2/24");
    Link("rly", "out0", "10.10.2.1/24", "rcv", "veth0", "10.10.2.2/24");
    Must("ip -n " + Name("snd") + " route add 224.0.0.0/4 dev veth0");
    Must("ip -n " + Name("rcv") + " route add 224.0.0.0/4 dev veth0");
  }

 private:
  static void Must(const std::string& cmd) {
    if (Sh(cmd) != 0) throw std::runtime_error("rig command failed: " + cmd);
  }
  static void ReapStale() {
    // Namespaces whose owning process (third dot-separated field) is gone.
    Sh("for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | "
       "grep -E '^mcrt\\.[^.]+\\.[0-9]+(\\.|$)'); do "
       "pid=$(echo $ns | awk -F. '{print $3}'); "
       "if ! kill -0 $pid 2>/dev/null; then "
       "p=$(ip netns pids $ns 2>/dev/null); [ -z \"$p\" ] || kill -9 $p; ip netns del $ns; fi; done");
  }
  std::string id_;
  std::vector<std::string> namespaces_;
};

/// Moves the calling thread into a namespace for its lifetime, then back.
class NetnsScope {
 public:
  NetnsScope(const NetnsRig& rig, const std::string& role) {
    self_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int fd = open(("/var/run/netns/" + rig.Name(role)).c_str(), O_RDONLY | O_CLOEXEC);
    if (self_ < 0 || fd < 0 || setns(fd, CLONE_NEWNET) != 0)
      throw std::runtime_error("cannot enter namespace " + rig.Name(role));
    close(fd);
  }
  ~NetnsScope() {
    setns(self_, CLONE_NEWNET);
    close(self_);
  }
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  int self_ = -1;
};

/// Moves the calling thread into a new, private network namespace (unshare) until destroyed,
/// then back. For tests that need only interfaces of their own, without named namespaces.
class PrivateNetns {
 public:
  PrivateNetns() = default;
  ~PrivateNetns() {
    if (original_ < 0) return;
    EXPECT_EQ(setns(original_, CLONE_NEWNET), 0) << strerror(errno);
    close(original_);
  }
  PrivateNetns(const PrivateNetns&) = delete;
  PrivateNetns& operator=(const PrivateNetns&) = delete;

  /// Enters the namespace. Returns "" on success, else the reason to skip the test.
  std::string Enter() {
    if (geteuid() != 0) return "needs root to create a network namespace";
    original_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original_ < 0) return std::string("cannot open this thread's namespace: ") + strerror(errno);
    if (unshare(CLONE_NEWNET) != 0) {
      const std::string why = std::string("cannot create a network namespace: ") + strerror(errno);
      close(original_);
      original_ = -1;
      return why;
    }
    return "";
  }

 private:
  int original_ = -1;
};

}  // namespace mcr::testing
