// Engine: the replication state of one replicated database in this process,
// shared by all its connections: the door of the extension layer. It opens
// the database for replication, is the VFS's DbHooks (forwarded to the
// commit path), runs the agent when this process holds the host's agent
// lock, and is what the SQL functions ask. Its units, one job each:
//   node.h       NodeState: configuration, sidecar, spool, error and role state, position arithmetic
//   commit.h     CommitPath: the primary's commit path, dead committers, the backlog and the WAL
//   power.h      validation after a power loss; the replica's durable mark
//   agent.h      AgentControl (the loops' plumbing) and Agent (thread, host lock, exit)
//   ship.h       Shipper: the primary's loop; sync commits in doubt
//   applier.h    Applier: the replica's loop; divergence repair (replica.cc, rebuild.cc)
//   role_loop.h  RoleLoop: the election and every role transition
//   forwarding.h Forwarding: repl_exec, here or on the primary; the primary's serving thread
//   snapshotter.h Snapshotter: repl_snapshot(), the primary's automatic snapshots and retention
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "extension/agent.h"
#include "extension/commit.h"
#include "extension/config.h"
#include "extension/forwarding.h"
#include "extension/node.h"
#include "transport/log.h"
#include "vfs/vfs.h"
#include "wal-capture/sidecar.h"

namespace litejet {

class Engine : public vfs::DbHooks {
 public:
  // The engine of db_path, created on first use. Connections of the process
  // share it.
  static Status Get(const Config& cfg, const std::string& db_path, std::shared_ptr<Engine>* out);
  // How agents reach the log: transport::OpenNats unless a test installs an
  // in-memory log (transport::NewMemoryLog). Set before opening databases.
  using LogFactory = Agent::LogFactory;
  static void SetLogFactoryForTesting(LogFactory f) { Agent::SetLogFactoryForTesting(std::move(f)); }

  // The engine of an open database, or null. Not while OpeningHere().
  static std::shared_ptr<Engine> Find(const std::string& db_path);
  // This thread is inside Get(), opening an engine (its own private
  // connections on "unix" are being made).
  static bool OpeningHere();
  ~Engine() override;

  const Config& config() const { return node_.cfg; }
  const std::string& db_path() const { return node_.path; }

  // --- what the SQL functions report --------------------------------------
  sidecar::Position Position() const { return node_.sidecar.Read(); }
  bool IsPrimary() const { return node_.IsPrimary(); }
  std::string Primary() const { return node_.Primary(); }
  std::string RoleName() const { return node_.RoleName(); }
  std::string StatusJson() const;
  // The figures of StatusJson() in Prometheus' text exposition format
  // (names start with litejet_; labels name and node).
  std::string MetricsText() const;
  bool LinkUp(std::string* why = nullptr) const { return control_.LinkUp(why); }
  // role=primary, or role=auto while this node holds the lease (any process).
  bool PrimaryNow() const { return node_.PrimaryNow(); }
  std::string LastError() const { return node_.LastError(); }
  // Primary: until JetStream acknowledged txid. Replica: until txid is
  // applied and visible to reads that start afterwards. False on timeout.
  bool Wait(uint64_t txid, int64_t timeout_ms) const;
  bool StepDown();
  // repl_snapshot(): publishes a snapshot of the committed state now
  // (snapshotter.h); *txid: its TXID.
  Status Snapshot(int64_t timeout_ms, uint64_t* txid);
  // repl_exec(): here on the primary, else forwarded to it (forwarding.h).
  Status Exec(const forward::Request& req, forward::Reply* out) {
    return forward_.Exec(req, node_.cfg.forward_timeout_ms, out);
  }

  // --- DbHooks: the commit path ---------------------------------------------
  int BeforeShmLock(sqlite3_file* main, const vfs::ShmView& view, int offset, int n, int flags) override {
    return commit_.BeforeShmLock(main, view, offset, n, flags);
  }
  void OnShmLock(sqlite3_file* main, const vfs::ShmView& view, int offset, int n, int flags) override {
    commit_.OnShmLock(main, view, offset, n, flags);
  }
  int BeforeWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off) override {
    return commit_.BeforeWalWrite(wal, buf, amt, off);
  }
  void AfterWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off, int rc) override {
    commit_.AfterWalWrite(wal, buf, amt, off, rc);
  }
  int BeforeWalTruncate(sqlite3_int64 size) override { return commit_.BeforeWalTruncate(size); }
  int BeforeWalDelete() override { return commit_.BeforeWalDelete(); }
  void OnWalTruncate(sqlite3_int64 size) override { commit_.OnWalTruncate(size); }
  int OnPragma(const char* name, const char* value, char** errmsg) override {
    return commit_.OnPragma(name, value, errmsg);
  }
  int OnOpenRollbackJournal() override { return commit_.OnOpenRollbackJournal(); }
  void OnClose(sqlite3_file*) override {}

 private:
  // What repl_status() and repl_metrics() both report, read once.
  struct Figures {
    sidecar::Position pos;
    std::string error;  // last_error, or the transport's reason when the link is down
    bool connected = false, primary = false;
    uint64_t lag_txns = 0, lag_ms = 0;
  };
  Figures Gather() const;
  Engine(const Config& cfg, std::string path);
  Status Open();

  // Declared in the order they are built; the agent (which uses the others)
  // goes first at destruction, after ~Engine stopped it.
  NodeState node_;
  AgentControl control_;
  CommitPath commit_;
  Forwarding forward_;
  Agent agent_;
};

}  // namespace litejet
