// Forwarding: repl_exec on the primary and on replicas, and the primary's
// serving thread. docs/design.md, "Write forwarding", gives the protocol.
#include "extension/forwarding.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/clock.h"

namespace litejet {

namespace {
thread_local InternalUse* t_internal = nullptr;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

InternalUse::InternalUse(vfs::DbHooks* engine, const std::string& path)
    : prev_(t_internal), engine_(engine), path_(path) {
  t_internal = this;
}
InternalUse::~InternalUse() { t_internal = prev_; }

vfs::DbHooks* InternalUse::For(const std::string& path) {
  for (InternalUse* u = t_internal; u; u = u->prev_) {
    if (u->path_ == path) return u->engine_;
  }
  return nullptr;
}

Forwarding::~Forwarding() { StopServer(); }

// On a private connection through the litejet VFS: the serving thread keeps
// one (*cached) for its life; a local call opens one for the call (a
// connection kept open by the engine would be closed from the engine's
// destructor, inside the host's own sqlite3_close).
forward::Reply Forwarding::RunHere(const forward::Request& req, bool dedupe, sqlite3** cached) {
  std::lock_guard<std::mutex> g(local_mu_);
  InternalUse use(engine_, n_.path);
  sqlite3* db = cached ? *cached : nullptr;
  forward::Reply r;
  if (!db) {
    if (sqlite3_open_v2(n_.path.c_str(), &db, SQLITE_OPEN_READWRITE, "litejet") != SQLITE_OK) {
      r.code = db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM;
      r.message = std::string("cannot open the database: ") + (db ? sqlite3_errmsg(db) : "out of memory");
      sqlite3_close(db);
      return r;
    }
    sqlite3_busy_timeout(db, 5000);
    if (cached) *cached = db;
  }
  r = forward::Execute(
      db, req, [&] { return n_.sidecar.Read().txid; }, dedupe, WallMs());
  if (!cached) sqlite3_close(db);
  r.node = n_.cfg.node;
  return r;
}

Status Forwarding::Exec(const forward::Request& req, int64_t timeout_ms, forward::Reply* out) {
  const int64_t deadline = SteadyMs() + timeout_ms;
  std::string last_why;
  for (int attempt = 0;; attempt++) {
    if (n_.IsPrimary()) {
      *out = RunHere(req, /*dedupe=*/attempt > 0, nullptr);
      if (out->code != SQLITE_OK) {
        if ((out->code & 0xff) == SQLITE_READONLY && !n_.IsPrimary() && SteadyMs() < deadline)
          continue;  // demoted meanwhile
        return Status::Error(out->message, out->code);
      }
      return Status::OK();
    }
    if (n_.cfg.role == Role::kPrimary) {
      return Status::Error(
          "litejet: repl_exec: database \"" + n_.cfg.name + "\" is role=primary but fenced: " + n_.LastError(),
          SQLITE_READONLY);
    }
    const int64_t left = deadline - SteadyMs();
    if (left <= 0) break;
    transport::Requests* c = nullptr;
    {
      std::lock_guard<std::mutex> g(client_mu_);
      if (!client_) {
        transport::Options o = TransportOptions(n_.cfg);
        o.client_name = "litejet:" + n_.cfg.node + ":" + n_.cfg.name + ":forward";
        Status s = transport::OpenNatsRequests(o, &client_);
        if (!s.ok()) return s;
      }
      c = client_.get();
    }
    std::string reply;
    // Each attempt waits at most 2 s: a primary that died with the request
    // never answers, and the retry (same id) finds the next one; a slow
    // write still running answers the retry from its record.
    Status s = c->Request(forward::Encode(req), std::min<int64_t>(left, 2000), &reply);
    forward::Reply r;
    if (s.ok()) s = forward::Decode(reply, &r);
    if (!s.ok()) {
      last_why = s.message();
      if (s.code() == SQLITE_PROTOCOL) return s;
      // Nobody listens (no primary now, or forward=off there), or no answer
      // in time: ask again with the same id until the deadline.
      if (s.code() == transport::kNoResponders) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (r.not_primary) {
      last_why = "node \"" + r.node + "\" answered that it is not primary";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (r.code != SQLITE_OK) {
      return Status::Error("litejet: primary " + r.node + ": " + r.message, r.code);
    }
    // Applied here before returning: a read right after sees the write.
    if (!n_.WaitFor(r.txid, std::max<int64_t>(deadline - SteadyMs(), 0),
                    [](const sidecar::Position& p) { return p.txid; })) {
      return Status::Error("litejet: repl_exec: the write committed on the primary (" + r.node + ") as TXID " +
                               std::to_string(r.txid) + " but is not applied here yet; repl_wait(" +
                               std::to_string(r.txid) + ") waits for it",
                           SQLITE_BUSY_TIMEOUT);
    }
    *out = r;
    return Status::OK();
  }
  return Status::Error("litejet: repl_exec: the outcome of forwarded write " + req.id +
                           " is unknown: no answer from a primary within " + std::to_string(timeout_ms) + " ms (" +
                           last_why +
                           "); it ran at most once: SELECT repl_exec_retry() sends the same request "
                           "again and it runs only if it has not",
                       SQLITE_BUSY_TIMEOUT);
}

void Forwarding::StartServer() {
  if (server_.joinable()) return;
  server_stop_ = false;
  server_ = std::thread([this] {
    try {
      ServeMain();
    } catch (const std::exception& e) {
      n_.Fail(std::string("litejet: write forwarding of \"") + n_.cfg.name + "\" stopped: " + e.what());
    }
  });
}

void Forwarding::StopServer() {
  {
    std::lock_guard<std::mutex> g(server_mu_);
    server_stop_ = true;
    if (server_rq_) server_rq_->Interrupt();
  }
  if (server_.joinable()) server_.join();
}

// Listens while this node takes writes: a replica, or a node that lost the
// lease, does not answer (requests then find the new primary, or nobody).
void Forwarding::ServeMain() {
  transport::Options o = TransportOptions(n_.cfg);
  o.client_name = "litejet:" + n_.cfg.node + ":" + n_.cfg.name + ":forward-server";
  const char* crash = std::getenv("LITEJET_TEST_FORWARD_CRASH");
  const bool crash_after_commit = crash && std::strcmp(crash, "1") == 0;
  std::unique_ptr<transport::Requests> rq;
  Status s = transport::OpenNatsRequests(o, &rq);
  if (!s.ok()) {
    n_.Fail("litejet: write forwarding of \"" + n_.cfg.name + "\": " + s.message());
    return;
  }
  {
    std::lock_guard<std::mutex> g(server_mu_);
    if (server_stop_) return;
    server_rq_ = rq.get();
  }
  sqlite3* db = nullptr;  // the serving connection, opened at the first request
  struct Forget {
    Forwarding* f;
    sqlite3** db;
    ~Forget() {
      if (*db) {
        InternalUse use(f->engine_, f->n_.path);
        sqlite3_close(*db);
      }
      std::lock_guard<std::mutex> g(f->server_mu_);
      f->server_rq_ = nullptr;
    }
  } forget{this, &db};
  while (!server_stop_ && !a_.stopping()) {
    const bool primary = n_.IsPrimary();
    if (primary && !rq->Listening()) {
      if (!rq->Listen().ok()) {
        if (!a_.Sleep(50)) break;
        continue;
      }
    } else if (!primary && rq->Listening()) {
      rq->Unlisten();
    }
    if (!rq->Listening()) {
      if (!a_.Sleep(20)) break;
      continue;
    }
    // StopServer interrupts the wait.
    std::string data, reply_to;
    bool got = false;
    if (!rq->Next(200, &data, &reply_to, &got).ok()) {
      if (!a_.Sleep(20)) break;
      continue;
    }
    if (!got) continue;
    forward::Request req;
    forward::Reply rep;
    Status d = forward::Decode(data, &req);
    if (!d.ok()) {
      rep.code = SQLITE_PROTOCOL;
      rep.message = d.message();
    } else if (!n_.IsPrimary()) {
      rep.not_primary = true;
    } else if (!n_.cfg.forward) {
      rep.code = SQLITE_AUTH;
      rep.message = "database \"" + n_.cfg.name +
                    "\" does not take forwarded writes (forward=off): set forward=on on the primary (URI parameter "
                    "forward or LITEJET_FORWARD)";
    } else {
      rep = RunHere(req, /*dedupe=*/true, &db);
      // Refused as a replica's write: the lease went meanwhile.
      if ((rep.code & 0xff) == SQLITE_READONLY && !n_.IsPrimary()) {
        rep = forward::Reply();
        rep.not_primary = true;
      }
    }
    rep.node = n_.cfg.node;
    // Fault injection (tests): LITEJET_TEST_FORWARD_CRASH=1 kills the process
    // after a forwarded write committed, before its answer.
    if (rep.code == SQLITE_OK && !rep.not_primary && crash_after_commit) _exit(9);
    (void)rq->Respond(reply_to, forward::Encode(rep));
  }
  rq->Unlisten();
}

}  // namespace litejet
