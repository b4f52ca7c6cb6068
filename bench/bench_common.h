// Helpers shared by the litejet benchmarks (bench/*.cc). Benchmarks measure
// speed; they are not tests and are never run by ctest.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "litejet.h"

namespace bench {

[[noreturn]] inline void Die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "bench: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::exit(2);
}

// CLOCK_REALTIME in microseconds: comparable between processes.
inline int64_t RealUs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// CLOCK_MONOTONIC in nanoseconds: for durations.
inline int64_t MonoNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// CPU time (user + system) of the calling thread, in nanoseconds.
inline int64_t ThreadCpuNs() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline void SleepUntilMonoNs(int64_t t) {
  struct timespec ts;
  ts.tv_sec = time_t(t / 1000000000);
  ts.tv_nsec = long(t % 1000000000);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

inline void SleepUs(int64_t us) { SleepUntilMonoNs(MonoNs() + us * 1000); }

inline void Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    Die("%s: %s", sql, err ? err : sqlite3_errmsg(db));
  }
}

inline int64_t QueryInt(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) Die("%s: %s", sql, sqlite3_errmsg(db));
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) Die("%s: %s", sql, sqlite3_errmsg(db));
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

inline sqlite3_stmt* Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) Die("%s: %s", sql, sqlite3_errmsg(db));
  return st;
}

// Steps a statement that returns no row and resets it; returns the code.
inline int StepDone(sqlite3_stmt* st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

// Call once at the start of main(): repl_* functions on every connection.
inline void InitLitejet() {
  if (sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init)) != SQLITE_OK) {
    Die("sqlite3_auto_extension failed");
  }
}

// Plain SQLite: the unix VFS, WAL, synchronous=NORMAL.
inline sqlite3* OpenPlain(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix") != SQLITE_OK) {
    Die("open %s: %s", path.c_str(), db ? sqlite3_errmsg(db) : "?");
  }
  sqlite3_busy_timeout(db, 10000);
  Exec(db, "PRAGMA journal_mode=WAL");
  Exec(db, "PRAGMA synchronous=NORMAL");
  return db;
}

// Through the litejet VFS (the default VFS in a program linked with
// liblitejet.a). query: URI query without '?', e.g. "nats=...&role=primary";
// empty: no replication (the VFS is a pass-through).
inline sqlite3* OpenLitejet(const std::string& path, const std::string& query, bool wal = true) {
  std::string uri = "file:" + path + (query.empty() ? "" : "?" + query);
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, LITEJET_VFS_NAME);
  if (rc != SQLITE_OK) Die("open %s: %s", uri.c_str(), db ? sqlite3_errmsg(db) : "?");
  // The primary's agent may briefly take the write lock (spool rotation).
  sqlite3_busy_timeout(db, 10000);
  if (wal) Exec(db, "PRAGMA journal_mode=WAL");
  Exec(db, "PRAGMA synchronous=NORMAL");
  return db;
}

inline void RemoveAll(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

inline void MakeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) Die("mkdir %s: %s", dir.c_str(), ec.message().c_str());
}

inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    Die("cannot find a free port");
  }
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

inline bool CanConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(uint16_t(port));
  bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (fd >= 0) ::close(fd);
  return ok;
}

// A throw-away nats-server with JetStream on 127.0.0.1, stopped by PID.
class NatsServer {
 public:
  NatsServer() = default;
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;
  ~NatsServer() { Stop(); }

  void Start(const std::string& dir) {
    const char* bin = std::getenv("LITEJET_NATS_SERVER");
    std::string exe = bin && *bin ? bin : "/usr/sbin/nats-server";
    store_ = dir + "/nats-store";
    MakeDirs(store_);
    port_ = FreePort();
    std::string port = std::to_string(port_);
    std::string log = dir + "/nats-server.log";
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) Die("fork: %s", std::strerror(errno));
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execl(exe.c_str(), exe.c_str(), "-js", "-a", "127.0.0.1", "-p", port.c_str(), "-sd", store_.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 1000; i++) {
      if (CanConnect(port_)) return;
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        Die("nats-server exited at start; see %s", log.c_str());
      }
      SleepUs(10000);
    }
    Die("nats-server did not start listening in 10 s");
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 500; i++) {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      SleepUs(10000);
    }
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string store_;
};

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Nearest-rank percentile (p in [0, 100]) of an unsorted vector.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = size_t(p / 100.0 * double(v.size()) + 0.999999);
  if (k < 1) k = 1;
  if (k > v.size()) k = v.size();
  return v[k - 1];
}

inline std::string Fmt(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// Appends text to a file (the markdown fragment bench/run collects).
inline void AppendFile(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  FILE* f = std::fopen(path.c_str(), "a");
  if (!f) Die("cannot write %s", path.c_str());
  std::fputs(text.c_str(), f);
  std::fclose(f);
}

}  // namespace bench
