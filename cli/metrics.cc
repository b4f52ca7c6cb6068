// `litejet metrics DB...` and the /metrics endpoint of `litejet replicate`:
// the figures of repl_status() in Prometheus' text format, from the
// database's engine (repl_metrics()).
#include "cli/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "cli/cli.h"
#include "include/litejet.h"

namespace litejet::cli {

bool QueryText(sqlite3* db, const char* sql, std::string* out, std::string* err) {
  sqlite3_stmt* st = nullptr;
  bool ok = false;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    out->assign(t ? reinterpret_cast<const char*>(t) : "");
    ok = true;
  } else {
    *err = sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  return ok;
}

Status MetricsServer::Start(const std::string& addr, std::function<std::string()> body) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return Status::Error("--metrics-addr \"" + addr + "\" is invalid: use HOST:PORT");
  std::string host = addr.substr(0, colon), port = addr.substr(colon + 1);
  if (host.empty()) host = "127.0.0.1";  // loopback unless told otherwise
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end || p < 0 || p > 65535) {
    return Status::Error("--metrics-addr \"" + addr + "\" is invalid: the port must be 0 to 65535");
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(p));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    return Status::Error("--metrics-addr \"" + addr + "\" is invalid: HOST must be an IPv4 address");
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd_, 16) != 0) {
    std::string why = std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return Status::Error("cannot listen on " + addr + ": " + why);
  }
  socklen_t len = sizeof sa;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) return Status::Error("cannot make a pipe");
  body_ = std::move(body);
  thread_ = new std::thread([this] {
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[1].revents) return;
      if (!(fds[0].revents & POLLIN)) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      // One request per connection, read with a bound (a stuck client does
      // not hold the endpoint for long).
      std::string req;
      char buf[2048];
      while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos && req.size() < 8192) {
        pollfd pc = {c, POLLIN, 0};
        if (::poll(&pc, 1, 2000) <= 0) break;
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, size_t(n));
      }
      std::string status = "404 Not Found", text = "not found: try /metrics\n", type = "text/plain; charset=utf-8";
      if (req.rfind("GET /metrics ", 0) == 0 || req.rfind("GET /metrics?", 0) == 0) {
        status = "200 OK";
        text = body_();
        type = "text/plain; version=0.0.4; charset=utf-8";
      }
      std::string resp = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                         "\r\nContent-Length: " + std::to_string(text.size()) + "\r\nConnection: close\r\n\r\n" + text;
      size_t off = 0;
      while (off < resp.size()) {
        ssize_t n = ::send(c, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += size_t(n);
      }
      ::close(c);
    }
  });
  return Status::OK();
}

void MetricsServer::Stop() {
  if (thread_) {
    char b = 1;
    (void)!::write(stop_pipe_[1], &b, 1);
    auto* t = static_cast<std::thread*>(thread_);
    t->join();
    delete t;
    thread_ = nullptr;
  }
  for (int& f : stop_pipe_) {
    if (f >= 0) ::close(f);
    f = -1;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int RunMetrics(int argc, char** argv) {
  if (argc >= 1 && (std::strcmp(argv[0], "--help") == 0 || std::strcmp(argv[0], "-h") == 0)) {
    std::printf(
        "usage: litejet metrics DB...\n"
        "Prints each database's replication figures in Prometheus' text format (for node_exporter's textfile\n"
        "collector). DB is a path or a file: URI with the database's parameters; LITEJET_* fills in the rest.\n");
    return 0;
  }
  if (argc < 1) {
    std::fprintf(stderr, "litejet: metrics: no database given (usage: litejet metrics DB...)\n");
    return 2;
  }
  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init));
  int rc = 0;
  for (int i = 0; i < argc; i++) {
    sqlite3* db = nullptr;
    std::string text, err;
    // Read-write (not create): a replicated database needs its sidecar; a
    // missing file is an error, not a new database.
    if (sqlite3_open_v2(argv[i], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, nullptr) != SQLITE_OK) {
      std::fprintf(stderr, "litejet: metrics: cannot open %s: %s\n", argv[i],
                   db ? sqlite3_errmsg(db) : "out of memory");
      rc = 1;
    } else if (!QueryText(db, "SELECT repl_metrics()", &text, &err)) {
      std::fprintf(stderr, "litejet: metrics: %s: %s\n", argv[i], err.c_str());
      rc = 1;
    } else {
      std::fputs(text.c_str(), stdout);
    }
    sqlite3_close(db);
  }
  std::fflush(stdout);
  return rc;
}

}  // namespace litejet::cli
