// The agent of a replicated database: at most one per host (an flock on
// "<db>-litejet-agent" decides). This file is its life: start, stop, the
// process's exit, the host lock, the heartbeat, keeping the backlog out of a
// WAL about to lose it. What it does in each role is elsewhere:
//   ship.cc       primary: the local log to JetStream; sync commits in doubt
//   replica.cc    replica: the log applied under the readers
//   rebuild.cc    replica: a diverged database kept and rebuilt from the log
//   role_loop.cc  role=auto: the election and every role transition
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "extension/engine.h"
#include "common/clock.h"
#include "failover/role.h"
#include "wal-capture/apply.h"
#include "wal-capture/checksum.h"
#include "wal-capture/record.h"
#include "wal-capture/local_log.h"
#include "wal-capture/spool.h"

namespace litejet {

namespace {

// At process exit, how long the agents may take to end (they normally take
// well under a millisecond: every wait of theirs is interrupted; this covers
// a JetStream request in flight to a slow server), and how long the hand-off
// of the backlog waits for WAL_WRITE_LOCK (held by another process's commit;
// a connection of this process in the middle of a transaction never lets go).
constexpr int64_t kExitAgentWaitMs = 20;
constexpr int kExitLockWaitMs = 100;

std::mutex g_all_mu;
std::vector<Engine*>& AllAgents() {
  static auto* v = new std::vector<Engine*>;
  return *v;
}

Engine::LogFactory& LogFactoryRef() {
  static auto* f = new Engine::LogFactory;
  return *f;
}

// atexit: the process exits with replicated databases still open. Stop every
// agent at once, give them kExitAgentWaitMs together, and put each backlog in
// its spool; never wait on the network. The lock is held throughout, so an
// engine destroyed meanwhile (its StopAgent takes it) is not freed under us.
void StopAllAgents() {
  try {
    std::lock_guard<std::mutex> g(g_all_mu);
    auto& all = AllAgents();
    for (Engine* e : all) e->SignalStop(true);
    const int64_t deadline = SteadyMs() + kExitAgentWaitMs;
    for (Engine* e : all) e->StopAgentAtExit(deadline);
    all.clear();
  } catch (...) {
    // Nothing may escape an atexit handler.
  }
}

}  // namespace

void Engine::SetLogFactoryForTesting(LogFactory f) { LogFactoryRef() = std::move(f); }

void Engine::StartAgent() {
  {
    std::lock_guard<std::mutex> g(g_all_mu);
    static bool registered = false;
    if (!registered) {
      // atexit handlers run last-registered first. nats.c registers its own,
      // and OpenSSL (under nats.c) its cleanup, when first used: do that
      // now, so that ours runs before theirs, while what the agents use is
      // still whole. (A failure shows again when the agent opens its log.)
      (void)transport::InitLibrary();
      std::atexit(StopAllAgents);
      registered = true;
    }
    AllAgents().push_back(this);
  }
  // role=auto: a write grant left in the sidecar by an agent that died (its
  // process was killed) would let this process write before its own agent
  // ran an election. No live agent on this host (the host lock is free):
  // the grant is nobody's. Closed before the first statement can look.
  if (cfg_.role == Role::kAuto && TakeHostLock()) sidecar_.SetWriteUntil(0);
  agent_ = std::thread([this] {
    // An exception must not end the process (std::terminate): the agent
    // stops and says why in repl_status().last_error.
    try {
      AgentMain();
    } catch (const std::exception& e) {
      Fail(std::string("litejet: replication agent of \"") + cfg_.name + "\" stopped: " + e.what());
    } catch (...) {
      Fail("litejet: replication agent of \"" + cfg_.name + "\" stopped: unknown exception");
    }
    std::lock_guard<std::mutex> g(agent_mu_);
    agent_done_ = true;
    agent_cv_.notify_all();
  });
}

void Engine::SignalStop(bool at_exit) {
  {
    std::lock_guard<std::mutex> g(agent_mu_);
    stopping_ = true;
    exiting_ = at_exit;
    if (log_) {
      // A wait for the server returns now (at exit: a wait that starts).
      if (at_exit) {
        log_->InterruptAtExit();
      } else {
        log_->Interrupt();
      }
    }
  }
  agent_cv_.notify_all();
}

void Engine::StopAgentAtExit(int64_t deadline_ms) {
  bool done = false;
  {
    std::unique_lock<std::mutex> l(agent_mu_);
    done = agent_cv_.wait_for(l, std::chrono::milliseconds(std::max<int64_t>(deadline_ms - SteadyMs(), 0)),
                              [&] { return agent_done_; });
  }
  if (done) {
    if (agent_.joinable()) agent_.join();
  } else {
    // The agent is still in a call to the server. It ends by itself (or
    // with the process); the engine is never freed at exit, so it touches
    // nothing freed (should the host still close the database, StopAgent
    // waits for agent_done_).
    std::lock_guard<std::mutex> g(agent_mu_);
    if (agent_.joinable()) agent_.detach();
    agent_detached_ = true;
  }
  if (!was_host_agent_) return;  // another process is the host's agent: it keeps the backlog
  // A busy agent keeps its own handle: hand off through one of ours.
  apply::WalWriter own;
  apply::WalWriter* locker = done ? Locker() : own.Open(path_).ok() ? &own : nullptr;
  MoveBacklog(locker, kExitLockWaitMs, "the process exits");
}

void Engine::StopAgent() {
  {
    std::lock_guard<std::mutex> g(g_all_mu);
    auto& v = AllAgents();
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
  }
  SignalStop();
  // Quick: every wait of the agent is interrupted, and its log closes its
  // connection in the background.
  if (agent_.joinable()) {
    agent_.join();
  } else {
    std::unique_lock<std::mutex> l(agent_mu_);
    agent_cv_.wait(l, [&] { return agent_done_ || !agent_detached_; });
  }
  // Leaving with a backlog: once no litejet process has the database open,
  // any connection without litejet could checkpoint and delete the WAL.
  if (was_host_agent_) GuardBacklog(true);
  DropBlocker();  // after the hand-off: nothing unshipped is only in the WAL
  if (host_lock_fd_ >= 0) {
    ::close(host_lock_fd_);
    host_lock_fd_ = -1;
  }
}

bool Engine::Sleep(int64_t ms) {
  std::unique_lock<std::mutex> l(agent_mu_);
  uint64_t k = kicks_;
  agent_cv_.wait_for(l, std::chrono::milliseconds(ms), [&] { return stopping_ || kicks_ != k; });
  return !stopping_;
}

void Engine::Kick() {
  {
    std::lock_guard<std::mutex> g(agent_mu_);
    kicks_++;
  }
  agent_cv_.notify_all();
}

bool Engine::TakeHostLock() {
  if (host_lock_fd_ < 0) {
    host_lock_fd_ = ::open((path_ + "-litejet-agent").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (host_lock_fd_ < 0) return false;
  }
  if (::flock(host_lock_fd_, LOCK_EX | LOCK_NB) != 0) return false;
  was_host_agent_ = true;
  return true;
}

// Shipping is behind (disconnected, or slower than the commits): the oldest
// commit that is only in the WAL has waited guard_ms. Move the backlog
// to the spool now, under WAL_WRITE_LOCK, instead of at the next WAL
// restart: a restart, TRUNCATE checkpoint or close by a connection that
// does not use litejet would lose it. At most every guard_ms; always
// (and without waiting for the age) when the agent stops.
void Engine::GuardBacklog(bool always) {
  const uint64_t guard_ms = guard_after_ms_;
  if (!PrimaryNow()) return;
  if (!always) {
    ResolveDeadCommitFromAgent();
    MaintainWal();
  }
  if (guard_ms == 0 && !always) return;
  sidecar::Position p = sidecar_.Read();
  const uint64_t first = std::max(p.acked_txid, p.spooled_txid) + 1;
  if (first > p.txid) return;
  const uint64_t now = uint64_t(SteadyMs());
  if (!always) {
    if (now < last_guard_ms_ + guard_ms) return;
    uint64_t age = 0;
    if (CommitAgeMs(first, &age) && age < guard_ms) return;  // not in the ring any more: old enough
  }
  last_guard_ms_ = now;
  MoveBacklog(Locker(), always ? 2000 : 20, always ? "the agent stops" : "shipping is behind");
}

void Engine::MoveBacklog(apply::WalWriter* locker, int wait_ms, const char* why) {
  if (!locker || !HasUnspooledBacklog()) return;  // any role: a demoted node keeps its unshipped commits
  locker->WithWriteLock(wait_ms, [&] {
    if (!DeadCommitPending() && HasUnspooledBacklog()) HandOff(why);
  });
}

void Engine::AgentMain() {
  // Another process on this host may be the agent; take over when it goes.
  while (!TakeHostLock()) {
    if (!Sleep(500)) return;
  }
  // role=auto: the grant of an agent that died is nobody's (this process
  // may be taking over from another that was killed), before connecting.
  if (cfg_.role == Role::kAuto) sidecar_.SetWriteUntil(0);
  MaintainWal();  // the restart blocker, before the first connect can take seconds
  transport::Options o = TransportOptions(cfg_);
  o.client_name = "litejet:" + cfg_.node + ":" + cfg_.name;
  if (cfg_.role != Role::kReplica) o.advertise = cfg_.advertise;
  std::unique_ptr<transport::Log> log;
  Status s = LogFactoryRef() ? LogFactoryRef()(o, &log) : transport::OpenNats(o, &log);
  if (!s.ok()) {
    std::lock_guard<std::mutex> g(mu_);
    SetError(s.message());
    return;
  }
  // Heartbeats (NATS only: the in-memory log of the engine tests has none).
  std::unique_ptr<transport::LeaseStore> lease;
  std::unique_ptr<transport::NodeBoard> board;
  if (!LogFactoryRef()) {
    Status bs = transport::OpenNatsLeases(o, cfg_.lease_ttl_ms, &lease, &board);
    if (bs.ok()) {
      board_ = board.get();
    } else {
      sqlite3_log(SQLITE_WARNING, "litejet: %s: no heartbeats: %s", cfg_.name.c_str(), bs.message().c_str());
    }
  }
  {
    std::lock_guard<std::mutex> g(agent_mu_);
    log_ = log.get();
    if (stopping_) {  // stopped before it had a log to interrupt
      if (exiting_) {
        log_->InterruptAtExit();
      } else {
        log_->Interrupt();
      }
    }
  }
  if (cfg_.role == Role::kPrimary) {
    if (lease) {
      RunStaticPrimary(*log, lease.get());
    } else {
      RunPrimary(*log);
    }
  } else if (cfg_.role == Role::kAuto) {
    RunAuto(*log, lease.get());
  } else {
    RunReplica(*log);
  }
  board_ = nullptr;
  std::lock_guard<std::mutex> g(agent_mu_);
  log_ = nullptr;
}

void Engine::Beat() {
  if (!board_ || stopping_) return;
  cluster_.Tick(*board_, SteadyMs(), [&] {
    transport::NodeState me;
    sidecar::Position p = sidecar_.Read();
    me.node = cfg_.node;
    me.role = RoleName();
    me.advertise = cfg_.advertise;
    me.txid = p.txid;
    me.epoch = p.epoch;
    me.last_error = LastError();
    return me;
  });
}

}  // namespace litejet
