// The agent of a replicated database (at most one per host; an flock on
// "<db>-litejet-agent" decides): AgentControl is the plumbing its loops
// share (stop, sleep and kick, the link to the log, the heartbeat, its
// handle for WAL_WRITE_LOCK); Agent is its life (thread, host lock, exit)
// and owns the loops: Shipper (primary), Applier (replica), RoleLoop
// (the election and every role transition).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "extension/heartbeat.h"
#include "extension/node.h"
#include "transport/lease.h"
#include "transport/log.h"
#include "wal-capture/apply.h"

namespace litejet {

class CommitPath;
class Forwarding;
class Shipper;
class Applier;
class RoleLoop;
class AutoSnapshots;

class AgentControl {
 public:
  explicit AgentControl(NodeState& n) : n_(n) {}

  bool stopping() const { return stopping_; }
  bool exiting() const { return exiting_; }
  // Tells the agent to stop; its waits for the server return now (at exit:
  // also a wait that starts).
  void SignalStop(bool at_exit);
  bool Sleep(int64_t ms);  // false when stopping; returns early on Kick()
  // Sleeps on the sidecar's change word until it is no longer `seen` (a
  // commit of any process, an acknowledgement, Kick() in any process,
  // SignalStop) or ms passed. False when stopping.
  bool SleepUntilChange(uint32_t seen, int64_t ms);
  void Kick();  // a sync commit waits: wake the agent (in any process)
  void NotifyAll() { cv_.notify_all(); }

  // The link: the agent's last call to the server succeeded and its
  // connection is up now. why (optional): the transport's reason when down.
  std::atomic<bool> connected{false};
  bool LinkUp(std::string* why = nullptr) const;
  // The agent's log while it has one (so that SignalStop can interrupt it).
  void SetLog(transport::Log* log);

  // The heartbeat board (agent thread only; null: none) and the cluster as
  // last read from it.
  void SetBoard(transport::NodeBoard* board) { board_ = board; }
  void Beat();  // agent thread: the heartbeat, when due
  std::string ClusterJson(int64_t now_unix_ms) const { return cluster_.Json(now_unix_ms); }
  std::vector<transport::NodeState> ClusterNodes(int64_t* read_unix_ms) const { return cluster_.Nodes(read_unix_ms); }

  // The agent's own handle on the database for taking WAL_WRITE_LOCK (opened
  // on first use; null if it cannot be). Agent thread, or before it starts.
  apply::WalWriter* Locker();
  bool WriteLockHeld();  // does some connection hold WAL_WRITE_LOCK now?

 private:
  friend class Agent;
  NodeState& n_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> exiting_{false};  // stopped by the process's exit
  uint64_t kicks_ = 0;                // mu_
  bool done_ = false;                 // mu_: the agent's thread returned
  transport::Log* log_ = nullptr;     // mu_
  transport::NodeBoard* board_ = nullptr;
  ClusterView cluster_;
  std::unique_ptr<apply::WalWriter> locker_;
};

// Retries expr (a call to the log) until it succeeds or the agent stops
// (then the enclosing function returns), recording each error and keeping
// the backlog safe meanwhile. Inside the loops, with n_, a_ and commit_.
#define LITEJET_RETRY(expr)                  \
  for (;;) {                                 \
    Status rs_ = (expr);                     \
    if (rs_.ok()) break;                     \
    a_.connected = false;                    \
    {                                        \
      std::lock_guard<std::mutex> g_(n_.mu); \
      n_.SetError(rs_.message());            \
    }                                        \
    commit_.GuardBacklog(false);             \
    if (!a_.Sleep(250)) return;              \
  }

class Agent {
 public:
  // How agents reach the log: transport::OpenNats unless a test installs an
  // in-memory log (transport::NewMemoryLog).
  using LogFactory = std::function<Status(const transport::Options&, std::unique_ptr<transport::Log>*)>;
  static void SetLogFactoryForTesting(LogFactory f);
  // An in-memory log is installed (no snapshot store, no heartbeats).
  static bool UsingTestLog();

  Agent(NodeState& n, AgentControl& a, CommitPath& commit, Forwarding& forward);
  ~Agent();

  void Start();
  void Stop();  // waits for the thread; keeps the backlog out of the WAL
  // Process exit (atexit): every agent is told to stop first, then each is
  // waited for until deadline_ms (steady clock) at most and its unshipped
  // backlog moved to the spool.
  void SignalStop(bool at_exit = false) { a_.SignalStop(at_exit); }
  void StopAtExit(int64_t deadline_ms);

 private:
  void Main();
  bool TakeHostLock();

  NodeState& n_;
  AgentControl& a_;
  CommitPath& commit_;
  Forwarding& forward_;
  std::unique_ptr<Shipper> ship_;
  std::unique_ptr<Applier> apply_;
  std::unique_ptr<RoleLoop> roles_;
  std::unique_ptr<AutoSnapshots> snaps_;
  std::thread thread_;
  bool detached_ = false;  // a_.mu_: left running at exit (thread_ is then not joinable)
  int host_lock_fd_ = -1;
  std::atomic<bool> was_host_agent_{false};  // this process has been the host's agent
};

}  // namespace litejet
