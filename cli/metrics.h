// cli/metrics.h: Prometheus' text exposition of a database's replication
// figures (the SQL function repl_metrics()), printed by `litejet metrics` and
// served over HTTP by `litejet replicate --metrics-addr`.
#pragma once

#include <functional>
#include <string>

#include "common/sqlite.h"
#include "common/status.h"

namespace litejet::cli {

// The first column of sql's first row as text (e.g. SELECT repl_metrics());
// false with *err (SQLite's message, e.g. "not replicated") otherwise.
bool QueryText(sqlite3* db, const char* sql, std::string* out, std::string* err);

// A minimal HTTP/1.0 server on one thread: GET /metrics answers body(),
// anything else 404. addr is HOST:PORT or :PORT (then 127.0.0.1).
class MetricsServer {
 public:
  ~MetricsServer() { Stop(); }
  Status Start(const std::string& addr, std::function<std::string()> body);
  void Stop();
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  int stop_pipe_[2] = {-1, -1};
  std::function<std::string()> body_;
  void* thread_ = nullptr;  // std::thread*, kept out of this header
};

}  // namespace litejet::cli
