#include "control/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "temp_dir.h"

namespace mcr::control {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// A blocking test client. Reads wait at most a few seconds so a bug fails the test rather than
// hanging it; nothing is synchronised by sleeping.
class TestClient {
 public:
  explicit TestClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~TestClient() { ::close(fd_); }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  void Send(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << std::strerror(errno);
      done += static_cast<size_t>(n);
    }
  }
  // Sends without blocking; returns how much the socket took.
  size_t SendSome(const std::string& data) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

  // The next line, or nullopt on EOF or after `timeout_ms` without one.
  std::optional<std::string> ReadLine(int timeout_ms = 5000) {
    while (true) {
      if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return std::nullopt;
      char chunk[65536];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  json Call(const json& request) {
    Send(request.dump() + "\n");
    auto line = ReadLine();
    return line ? json::parse(*line) : json();
  }

 private:
  int fd_;
  bool connected_ = false;
  std::string buf_;
};

json Ping(int id) { return {{"version", 1}, {"id", id}, {"type", "ping"}}; }

class ControlServerTest : public ::testing::Test {
 protected:
  ControlServerTest()
      : null_fd_(::open("/dev/null", O_WRONLY | O_CLOEXEC)), log_(LogLevel::kDebug, null_fd_) {
    options_.path = dir_.File("run/mcrd.sock");
    options_.max_message_bytes = 1024;
    options_.max_pending_output = 64 * 1024;
  }
  ~ControlServerTest() override {
    StopLoop();
    server_.reset();
    ::close(null_fd_);
  }

  void StartServer() {
    auto server = ControlServer::Listen(options_, log_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto loop = EventLoop::Create();
    ASSERT_TRUE(loop.ok());
    loop_ = *std::move(loop);
    ASSERT_TRUE(server_
                    ->Start(*loop_,
                            [this](const Request& r) {
                              ++handled_;
                              json response = OkResponse(r.id);
                              response["type"] = RequestTypeName(r.type);
                              // `stats` answers with a large body, to fill buffers quickly.
                              if (r.type == RequestType::kStats)
                                response["pad"] = std::string(16384, 'x');
                              return response;
                            })
                    .ok());
    thread_ = std::thread([this] { loop_->Run(); });
  }
  void StopLoop() {
    if (thread_.joinable()) {
      loop_->Stop();
      thread_.join();
    }
  }

  TempDir dir_;
  int null_fd_;
  Logger log_;
  ServerOptions options_;
  ControlServerPtr server_;
  EventLoopPtr loop_;
  std::thread thread_;
  std::atomic<int> handled_{0};  // requests the handler saw

  // kBatch requests in one write: 10 `stats` (16 KiB answers, past max_pending_output) then pings.
  static constexpr int kBatch = 110;
  static std::string StatsThenPings() {
    std::string batch;
    for (int i = 0; i < 10; ++i)
      batch += json{{"version", 1}, {"id", i}, {"type", "stats"}}.dump() + "\n";
    for (int i = 10; i < kBatch; ++i) batch += Ping(i).dump() + "\n";
    return batch;
  }
  // Every request of the batch reaches the handler (within 5 s), and the server goes on serving.
  void ExpectAllHandledAndStillServing() {
    for (int i = 0; i < 500 && handled_ < kBatch; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(handled_, kBatch);
    TestClient other(options_.path);
    EXPECT_EQ(other.Call(Ping(1))["ok"], true);
  }
};

TEST_F(ControlServerTest, SocketFileModeAndRemoval) {
  StartServer();
  struct stat st {};
  ASSERT_EQ(::stat(options_.path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  StopLoop();
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(options_.path));
}

TEST_F(ControlServerTest, SocketGroup) {
  options_.group = 0;  // a group the test process can always give away to (root's or its own)
  if (::getuid() != 0) options_.group = ::getgid();
  StartServer();
  struct stat st {};
  ASSERT_EQ(::stat(options_.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, *options_.group);
}

TEST_F(ControlServerTest, ManyClientsAtOnce) {
  StartServer();
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 50; ++i) {
    clients.push_back(std::make_unique<TestClient>(options_.path));
    ASSERT_TRUE(clients.back()->connected());
  }
  for (int i = 0; i < 50; ++i) clients[i]->Send(Ping(i).dump() + "\n");
  for (int i = 0; i < 50; ++i) {
    auto line = clients[i]->ReadLine();
    ASSERT_TRUE(line) << i;
    json r = json::parse(*line);
    EXPECT_EQ(r["id"], i);
    EXPECT_EQ(r["ok"], true);
  }
}

TEST_F(ControlServerTest, PipelinedRequestsAnsweredInOrder) {
  StartServer();
  TestClient c(options_.path);
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += Ping(i).dump() + "\n";
  c.Send(batch);
  for (int i = 0; i < 100; ++i) {
    auto line = c.ReadLine();
    ASSERT_TRUE(line);
    EXPECT_EQ(json::parse(*line)["id"], i);
  }
}

TEST_F(ControlServerTest, SilentAndHalfWrittenClientsBlockNobody) {
  StartServer();
  TestClient silent(options_.path);
  TestClient half(options_.path);
  half.Send("{\"version\":1,\"type\":");  // and never the rest
  TestClient other(options_.path);
  EXPECT_EQ(other.Call(Ping(1))["ok"], true);
  EXPECT_EQ(other.Call(Ping(2))["id"], 2);
}

TEST_F(ControlServerTest, ClientThatNeverReadsBlocksNobody) {
  StartServer();
  TestClient hog(options_.path);
  // Request large answers until the server stops reading this client (its socket buffers fill).
  const std::string request = json{{"version", 1}, {"type", "stats"}}.dump() + "\n";
  std::string pending;
  for (int i = 0; i < 2000; ++i) pending += request;
  size_t sent = 0;
  for (int round = 0; round < 1000 && sent < pending.size(); ++round) {
    size_t n = hog.SendSome(pending.substr(sent));
    sent += n;
    // Meanwhile another client is served promptly.
    TestClient other(options_.path);
    ASSERT_EQ(other.Call(Ping(round))["id"], round);
    if (n == 0) break;  // the hog's send buffer is full: the server has stopped reading it
  }
  TestClient late(options_.path);
  EXPECT_EQ(late.Call(Ping(7))["ok"], true);
}

TEST_F(ControlServerTest, BadMessagesGetErrorsAndTheConnectionGoesOn) {
  StartServer();
  TestClient c(options_.path);
  const std::pair<std::string, std::string> cases[] = {
      {"garbage", "malformed JSON"},
      {"{\"version\":1,\"type\":\"ping\"", "malformed JSON"},  // truncated
      {"{\"version\":2,\"id\":5,\"type\":\"ping\"}", "unsupported protocol version 2"},
      {"{\"id\":5,\"type\":\"ping\"}", "version: missing"},
      {"{\"version\":1,\"type\":\"explode\"}", "unknown request type 'explode'"},
      {"[1,2]", "must be a JSON object"},
      {std::string(200, '[') + std::string(200, ']'), "deeper than 32"},
      {std::string(5000, ' ') + "{}", "longer than 1024 bytes"},
      {"\xff\xfe\xfd", "malformed JSON"},
  };
  for (const auto& [line, expect] : cases) {
    c.Send(line + "\n");
    auto response = c.ReadLine();
    ASSERT_TRUE(response) << line.substr(0, 40);
    json r = json::parse(*response);
    EXPECT_EQ(r["ok"], false);
    EXPECT_EQ(r["version"], 1);
    EXPECT_THAT(r.value("error", ""), HasSubstr(expect)) << line.substr(0, 40);
    EXPECT_EQ(c.Call(Ping(9))["ok"], true) << "connection unusable after " << line.substr(0, 40);
  }
  // The id of a well-formed but refused request is echoed.
  json r = c.Call({{"version", 3}, {"id", "x1"}, {"type", "ping"}});
  EXPECT_EQ(r["id"], "x1");
}

TEST_F(ControlServerTest, OversizedWithoutNewlineIsDiscardedUpToIt) {
  StartServer();
  TestClient c(options_.path);
  c.Send(std::string(100000, 'x'));
  auto response = c.ReadLine();
  ASSERT_TRUE(response);
  EXPECT_THAT(*response, HasSubstr("longer than 1024 bytes"));
  c.Send(std::string(100000, 'x') + "\n" + Ping(3).dump() + "\n");
  response = c.ReadLine();
  ASSERT_TRUE(response);
  EXPECT_EQ(json::parse(*response)["id"], 3);  // no second error for the same line
}

TEST_F(ControlServerTest, HalfCloseAfterRequestStillAnswered) {
  StartServer();
  TestClient c(options_.path);
  c.Send(Ping(4).dump() + "\n");
  c.ShutdownWrite();
  auto line = c.ReadLine();
  ASSERT_TRUE(line);
  EXPECT_EQ(json::parse(*line)["id"], 4);
  EXPECT_FALSE(c.ReadLine().has_value());  // then the server closes
}

TEST_F(ControlServerTest, RequestsSentJustBeforeCloseAreAllHandled) {
  // A script may send its requests and close without reading the answers: the close arrives
  // with the data (EPOLLHUP), and every complete request must still be handled — also past the
  // point where unread answers would have filled the client's output allowance.
  StartServer();
  {
    TestClient c(options_.path);
    c.Send(StatsThenPings());
  }  // closed at once
  ExpectAllHandledAndStillServing();
}

TEST_F(ControlServerTest, RequestsSentBeforeCloseAreHandledEvenWithAnswersUnread) {
  // Closing with answers unread resets the connection: the server sees an error (ECONNRESET,
  // EPOLLERR) while the requests are still queued ahead of it. They must be handled all the same.
  StartServer();
  {
    TestClient c(options_.path);
    c.Send(StatsThenPings());
    ASSERT_TRUE(c.ReadLine().has_value());  // answers are coming; leave the rest unread
  }
  ExpectAllHandledAndStillServing();
}

TEST_F(ControlServerTest, TruncatedAtEofGetsAnError) {
  StartServer();
  TestClient c(options_.path);
  c.Send("{\"version\":1,\"type\":\"ping\"");
  c.ShutdownWrite();
  auto line = c.ReadLine();
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, HasSubstr("truncated message"));
  EXPECT_FALSE(c.ReadLine().has_value());
}

TEST_F(ControlServerTest, TooManyClientsAreToldSo) {
  options_.max_clients = 2;
  StartServer();
  TestClient a(options_.path), b(options_.path);
  EXPECT_EQ(a.Call(Ping(1))["ok"], true);
  EXPECT_EQ(b.Call(Ping(2))["ok"], true);
  TestClient c(options_.path);
  auto line = c.ReadLine();
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, HasSubstr("too many control clients"));
  EXPECT_EQ(a.Call(Ping(3))["ok"], true);
}

TEST_F(ControlServerTest, OutOfDescriptorsTheWaitingClientIsToldAndServingGoesOn) {
  StartServer();
  // Fill this process's descriptor table under a lowered limit, then free one for the client's
  // own socket: the server's accept() fails with EMFILE while the client waits in the backlog.
  // (No client before this one: the server closing an earlier client's socket late would free
  // a descriptor and let this one in.)
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  std::vector<int> filler;
  // Every way out of this test, a failed assertion included, gives the descriptors back.
  absl::Cleanup restore = [&] {
    for (int fd : filler) ::close(fd);
    filler.clear();
    ::setrlimit(RLIMIT_NOFILE, &saved);
  };
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  for (int fd; (fd = ::dup(null_fd_)) >= 0;) filler.push_back(fd);
  ASSERT_EQ(errno, EMFILE);
  ASSERT_FALSE(filler.empty());
  ::close(filler.back());
  filler.pop_back();
  std::optional<std::string> line;
  {
    TestClient starved(options_.path);
    EXPECT_TRUE(starved.connected());
    line = starved.ReadLine();  // the old server spun on accept() and never answered
  }
  std::move(restore).Invoke();
  ASSERT_TRUE(line.has_value());
  EXPECT_THAT(*line, HasSubstr("cannot accept control clients"));
  // Descriptors free again: served as before.
  const json served = TestClient(options_.path).Call(Ping(2));
  EXPECT_EQ(served["ok"], true) << served.dump();
}

TEST_F(ControlServerTest, SecondServerOnTheSamePathIsRefused) {
  StartServer();
  auto second = ControlServer::Listen(options_, log_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("another mcrd is already serving"));
  TestClient c(options_.path);  // the first one still serves
  EXPECT_EQ(c.Call(Ping(1))["ok"], true);
}

TEST_F(ControlServerTest, StaleSocketFileIsReplaced) {
  std::filesystem::create_directories(dir_.File("run"));
  {
    // A socket file whose server is gone: bound, then closed without unlink.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, options_.path.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  StartServer();
  TestClient c(options_.path);
  EXPECT_EQ(c.Call(Ping(1))["ok"], true);
}

TEST_F(ControlServerTest, NonSocketFileIsNeverRemoved) {
  std::filesystem::create_directories(dir_.File("run"));
  { std::ofstream(options_.path) << "precious"; }
  auto server = ControlServer::Listen(options_, log_);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("is not a socket"));
  EXPECT_TRUE(std::filesystem::is_regular_file(options_.path));
}

TEST_F(ControlServerTest, PathTooLong) {
  options_.path = "/tmp/" + std::string(200, 'a');
  auto server = ControlServer::Listen(options_, log_);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("must be 1..107 bytes"));
}

}  // namespace
}  // namespace mcr::control
