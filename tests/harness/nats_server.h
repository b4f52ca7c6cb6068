// Test harness: spawn throw-away nats-server (JetStream) processes on loopback.
//
// Every server gets free 127.0.0.1 ports (client + HTTP monitoring, plus a
// route port inside a cluster), a fresh temporary directory holding its config
// file, JetStream store and log, and is stopped by PID (SIGTERM, then SIGKILL
// after a bounded wait, always reaped).  Temporary directories are removed when
// the owning object is destroyed.
//
// Crash safety:
//   * the child sets PR_SET_PDEATHSIG(SIGKILL), so servers die with the test
//     process.  NOTE: Linux delivers it when the *thread* that forked exits, so
//     start servers from a thread that outlives them (normally the main thread).
//   * live servers are also registered with an atexit() hook that stops them and
//     removes their directories, which covers exit() paths that skip destructors
//     (e.g. cmocka's longjmp out of a failing test).  Prefer cmocka
//     setup/teardown fixtures so cleanup happens per test anyway.
//
// The nats-server binary is taken from $LITEJET_NATS_SERVER, then PATH, then
// /usr/sbin/nats-server, then /usr/local/bin/nats-server.
#ifndef LITEJET_TESTS_HARNESS_NATS_SERVER_H_
#define LITEJET_TESTS_HARNESS_NATS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace litejet {
namespace test {

class NatsCluster;

// One `nats-server` process with JetStream enabled.
class NatsServer {
 public:
  // Starts a single-node JetStream server and waits (<= 20 s) until
  // /healthz?js-enabled-only=true answers 200.  Returns nullptr and fills *err
  // (if non-null) on failure; the error includes the tail of the server log.
  static std::unique_ptr<NatsServer> Start(std::string* err);

  ~NatsServer();  // Stop()s the server; removes its temp dir if it owns it.

  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  const std::string& url() const { return url_; }  // "nats://127.0.0.1:PORT"
  int port() const { return port_; }
  pid_t pid() const { return pid_; }  // -1 when not running
  bool running() const { return pid_ > 0; }

  // Extras useful for debugging / specific tests.
  const std::string& name() const { return name_; }  // server_name
  int monitor_port() const { return http_port_; }
  const std::string& store_dir() const { return store_dir_; }
  const std::string& log_path() const { return log_path_; }
  std::string LogTail(size_t max_bytes = 4096) const;

  // Graceful stop: SIGTERM, SIGKILL after 10 s, reap.  No-op if not running.
  void Stop();
  // SIGKILL + reap (crash simulation).  No-op if not running.
  void Kill();
  // Stops the server if running, then starts it again on the same ports with
  // the same store dir and config, waiting for health (<= 20 s).
  bool Restart(std::string* err);

 private:
  friend class NatsCluster;
  NatsServer() = default;

  bool Spawn(std::string* err);  // fork/exec, no waiting
  bool WaitHealthy(double timeout_s, std::string* err);
  bool ReapIfExited(int* status);  // true if the child has exited
  void Signal(int sig, double wait_s);
  bool LogSaysAddressInUse() const;

  std::string name_;
  std::string dir_;        // per-server directory (config, store, log)
  bool owns_dir_ = false;  // remove dir_ on destruction
  std::string conf_path_;
  std::string store_dir_;
  std::string log_path_;
  std::string url_;
  int port_ = 0;
  int http_port_ = 0;
  int cluster_port_ = 0;  // 0 for single node
  pid_t pid_ = -1;
};

// N JetStream servers (default 3) joined by routes on loopback, cluster name
// "litejet-test".  Start() returns once every node is healthy and all nodes
// agree on an elected JetStream meta leader that sees all N peers as current.
class NatsCluster {
 public:
  static std::unique_ptr<NatsCluster> Start(int n, std::string* err);
  static std::unique_ptr<NatsCluster> Start(std::string* err) { return Start(3, err); }

  ~NatsCluster();  // stops all nodes, removes the temp dir

  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  std::string urls() const;  // comma-separated client URLs of all nodes
  NatsServer& node(int i) { return *nodes_.at(static_cast<size_t>(i)); }
  size_t size() const { return nodes_.size(); }

  // Index of the node with the given server_name, or -1.
  int IndexOf(const std::string& server_name) const;
  // Waits (bounded) until the running nodes agree on a meta leader.  Useful
  // after Kill()/Restart() of nodes.  `expect_current` = number of peers the
  // leader must report current (including itself); 0 means "all nodes".
  bool WaitMetaLeader(double timeout_s, int expect_current, std::string* err);

 private:
  NatsCluster() = default;
  std::string dir_;
  std::vector<std::unique_ptr<NatsServer>> nodes_;
};

// Path of the nats-server binary ("" if none found).
std::string NatsServerBinary();

// Minimal HTTP/1.0 GET against 127.0.0.1:port.  Returns the status code (0 on
// connection/parse failure) and the body in *body.
int HttpGet(int port, const std::string& path, std::string* body, double timeout_s = 2.0);

}  // namespace test
}  // namespace litejet

#endif  // LITEJET_TESTS_HARNESS_NATS_SERVER_H_
