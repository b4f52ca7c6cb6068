// Forwarding: repl_exec(). On the primary a request runs here, on a private
// connection through the litejet VFS (so its commit is captured like any
// other); on a replica it goes to the primary over NATS request/reply
// (transport/request.h) and returns once its TXID is applied here. The
// host's agent of a primary with forward=on listens for other nodes'
// requests on a thread of its own while this node takes writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "extension/agent.h"
#include "extension/node.h"
#include "forward/forward.h"
#include "transport/request.h"
#include "vfs/vfs.h"

namespace litejet {

// While an instance lives on a thread, a connection that thread opens to
// path through the litejet VFS joins engine without holding it (the engine
// outlives the connection: its owner closes it first), so that closing it
// never destroys the engine on that thread.
class InternalUse {
 public:
  InternalUse(vfs::DbHooks* engine, const std::string& path);
  ~InternalUse();
  // The engine joined for path on this thread, or null.
  static vfs::DbHooks* For(const std::string& path);

 private:
  InternalUse* prev_;
  vfs::DbHooks* engine_;
  const std::string& path_;
};

class Forwarding {
 public:
  // engine: the Engine these belong to (the hooks a private connection joins).
  Forwarding(NodeState& n, AgentControl& a, vfs::DbHooks* engine) : n_(n), a_(a), engine_(engine) {}
  ~Forwarding();

  // repl_exec(): runs req here when this node is primary, else on the
  // primary. On success *out has the TXID (applied here when this returns).
  // Errors: the primary's (code and message, prefixed "litejet: primary
  // <node>: "), or a refusal, or an unknown outcome (code SQLITE_BUSY,
  // message saying how to retry) when no answer came in time.
  Status Exec(const forward::Request& req, int64_t timeout_ms, forward::Reply* out);

  // The host's agent, forward=on: serve other nodes' requests while this
  // node is primary (a thread of its own; Stop joins it).
  void StartServer();
  void StopServer();

 private:
  forward::Reply RunHere(const forward::Request& req, bool dedupe, sqlite3** cached);
  void ServeMain();

  NodeState& n_;
  AgentControl& a_;
  vfs::DbHooks* const engine_;
  std::mutex local_mu_;  // one local execution at a time (they take the write lock anyway)
  std::mutex client_mu_;
  std::unique_ptr<transport::Requests> client_;  // client_mu_: opened on first use
  std::thread server_;
  std::atomic<bool> server_stop_{false};
  std::mutex server_mu_;
  transport::Requests* server_rq_ = nullptr;  // server_mu_: the serving thread's, to interrupt it
};

}  // namespace litejet
