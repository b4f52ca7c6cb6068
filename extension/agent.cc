// The agent of a replicated database: at most one per host (an flock on
// "<db>-litejet-agent" decides). This file is its life (start, stop, the
// process's exit, the host lock) and the plumbing its loops share (stop,
// sleep and kick, the link, the heartbeat, the locker). What it does in
// each role is elsewhere:
//   ship.cc       Shipper, primary: the local log to JetStream; sync commits in doubt
//   replica.cc    Applier, replica: the log applied under the readers
//   rebuild.cc    Applier, replica: a diverged database kept and rebuilt from the log
//   role_loop.cc  RoleLoop, role=auto: the election and every role transition
#include "extension/agent.h"

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
#include <vector>

#include "common/clock.h"
#include "extension/applier.h"
#include "extension/commit.h"
#include "extension/forwarding.h"
#include "extension/role_loop.h"
#include "extension/ship.h"
#include "extension/snapshotter.h"

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
std::vector<Agent*>& AllAgents() {
  static auto* v = new std::vector<Agent*>;
  return *v;
}

Agent::LogFactory& LogFactoryRef() {
  static auto* f = new Agent::LogFactory;
  return *f;
}

// atexit: the process exits with replicated databases still open. Stop every
// agent at once, give them kExitAgentWaitMs together, and put each backlog in
// its spool; never wait on the network. The lock is held throughout, so an
// engine destroyed meanwhile (its Agent::Stop takes it) is not freed under us.
void StopAllAgents() {
  try {
    std::lock_guard<std::mutex> g(g_all_mu);
    auto& all = AllAgents();
    for (Agent* a : all) a->SignalStop(true);
    const int64_t deadline = SteadyMs() + kExitAgentWaitMs;
    for (Agent* a : all) a->StopAtExit(deadline);
    all.clear();
  } catch (...) {
    // Nothing may escape an atexit handler.
  }
}

}  // namespace

// ---- AgentControl -------------------------------------------------------------

void AgentControl::SignalStop(bool at_exit) {
  {
    std::lock_guard<std::mutex> g(mu_);
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
  cv_.notify_all();
  if (n_.sidecar.is_open()) n_.sidecar.Changed();  // an agent asleep in SleepUntilChange
}

void AgentControl::SetLog(transport::Log* log) {
  std::lock_guard<std::mutex> g(mu_);
  log_ = log;
  if (log_ && stopping_) {  // stopped before it had a log to interrupt
    if (exiting_) {
      log_->InterruptAtExit();
    } else {
      log_->Interrupt();
    }
  }
}

bool AgentControl::Sleep(int64_t ms) {
  std::unique_lock<std::mutex> l(mu_);
  uint64_t k = kicks_;
  cv_.wait_for(l, std::chrono::milliseconds(ms), [&] { return stopping_ || kicks_ != k; });
  return !stopping_;
}

bool AgentControl::SleepUntilChange(uint32_t seen, int64_t ms) {
  if (stopping_) return false;
  n_.sidecar.WaitChange(seen, ms);
  return !stopping_;
}

void AgentControl::Kick() {
  {
    std::lock_guard<std::mutex> g(mu_);
    kicks_++;
  }
  cv_.notify_all();
  n_.sidecar.Changed();  // the host's agent may live in another process
}

// nats.c knows of a lost connection before the agent's next call fails.
bool AgentControl::LinkUp(std::string* why) const {
  std::lock_guard<std::mutex> g(mu_);
  const bool up = connected && (!log_ || log_->Connected());
  // Only the transport's own account (a connection lost, a connect that
  // failed): before the agent's first call the link is merely not up yet.
  if (!up && why && log_) *why = log_->LastError();
  return up;
}

void AgentControl::Beat() {
  if (!board_ || stopping_) return;
  cluster_.Tick(*board_, SteadyMs(), [&] {
    transport::NodeState me;
    sidecar::Position p = n_.sidecar.Read();
    me.node = n_.cfg.node;
    me.role = n_.RoleName();
    me.advertise = n_.cfg.advertise;
    me.txid = p.txid;
    me.epoch = p.epoch;
    me.last_error = n_.LastError();
    return me;
  });
}

apply::WalWriter* AgentControl::Locker() {
  if (!locker_) {
    locker_ = std::make_unique<apply::WalWriter>();
    if (!locker_->Open(n_.path).ok()) locker_.reset();
  }
  return locker_.get();
}

bool AgentControl::WriteLockHeld() {
  apply::WalWriter* locker = Locker();
  if (!locker) return true;  // cannot tell: assume the committer is alive
  Status s = locker->WithWriteLock(0, [] {});
  return !s.ok() && s.code() == SQLITE_BUSY;
}

// ---- Agent ------------------------------------------------------------------

void Agent::SetLogFactoryForTesting(LogFactory f) { LogFactoryRef() = std::move(f); }
bool Agent::UsingTestLog() { return bool(LogFactoryRef()); }

Agent::Agent(NodeState& n, AgentControl& a, CommitPath& commit, Forwarding& forward)
    : n_(n),
      a_(a),
      commit_(commit),
      forward_(forward),
      ship_(std::make_unique<Shipper>(n, a, commit)),
      apply_(std::make_unique<Applier>(n, a, commit)),
      roles_(std::make_unique<RoleLoop>(n, a, commit, *ship_, *apply_)) {}

Agent::~Agent() = default;

void Agent::Start() {
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
  if (n_.cfg.role == Role::kAuto && TakeHostLock()) n_.sidecar.SetWriteUntil(0);
  thread_ = std::thread([this] {
    // An exception must not end the process (std::terminate): the agent
    // stops and says why in repl_status().last_error.
    try {
      Main();
    } catch (const std::exception& e) {
      n_.Fail(std::string("litejet: replication agent of \"") + n_.cfg.name + "\" stopped: " + e.what());
    } catch (...) {
      n_.Fail("litejet: replication agent of \"" + n_.cfg.name + "\" stopped: unknown exception");
    }
    std::lock_guard<std::mutex> g(a_.mu_);
    a_.done_ = true;
    a_.cv_.notify_all();
  });
}

void Agent::StopAtExit(int64_t deadline_ms) {
  bool done = false;
  {
    std::unique_lock<std::mutex> l(a_.mu_);
    done = a_.cv_.wait_for(l, std::chrono::milliseconds(std::max<int64_t>(deadline_ms - SteadyMs(), 0)),
                           [&] { return a_.done_; });
  }
  if (done) {
    if (thread_.joinable()) thread_.join();
  } else {
    // The agent is still in a call to the server. It ends by itself (or
    // with the process); the engine is never freed at exit, so it touches
    // nothing freed (should the host still close the database, Stop waits
    // for done_).
    std::lock_guard<std::mutex> g(a_.mu_);
    if (thread_.joinable()) thread_.detach();
    detached_ = true;
  }
  if (!was_host_agent_) return;  // another process is the host's agent: it keeps the backlog
  // A busy agent keeps its own handle: hand off through one of ours.
  apply::WalWriter own;
  apply::WalWriter* locker = done ? a_.Locker() : own.Open(n_.path).ok() ? &own : nullptr;
  commit_.MoveBacklog(locker, kExitLockWaitMs, "the process exits");
}

void Agent::Stop() {
  {
    std::lock_guard<std::mutex> g(g_all_mu);
    auto& v = AllAgents();
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
  }
  a_.SignalStop(false);
  // Quick: every wait of the agent is interrupted, and its log closes its
  // connection in the background.
  if (thread_.joinable()) {
    thread_.join();
  } else {
    std::unique_lock<std::mutex> l(a_.mu_);
    a_.cv_.wait(l, [&] { return a_.done_ || !detached_; });
  }
  // Leaving with a backlog: once no litejet process has the database open,
  // any connection without litejet could checkpoint and delete the WAL.
  if (was_host_agent_) commit_.GuardBacklog(true);
  commit_.DropBlocker();  // after the hand-off: nothing unshipped is only in the WAL
  if (host_lock_fd_ >= 0) {
    ::close(host_lock_fd_);
    host_lock_fd_ = -1;
  }
}

bool Agent::TakeHostLock() {
  if (host_lock_fd_ < 0) {
    host_lock_fd_ = ::open((n_.path + "-litejet-agent").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (host_lock_fd_ < 0) return false;
  }
  if (::flock(host_lock_fd_, LOCK_EX | LOCK_NB) != 0) return false;
  was_host_agent_ = true;
  return true;
}

void Agent::Main() {
  // Another process on this host may be the agent; take over when it goes.
  while (!TakeHostLock()) {
    if (!a_.Sleep(500)) return;
  }
  // role=auto: the grant of an agent that died is nobody's (this process
  // may be taking over from another that was killed), before connecting.
  if (n_.cfg.role == Role::kAuto) n_.sidecar.SetWriteUntil(0);
  commit_.MaintainWal();  // the restart blocker, before the first connect can take seconds
  transport::Options o = TransportOptions(n_.cfg);
  o.client_name = "litejet:" + n_.cfg.node + ":" + n_.cfg.name;
  if (n_.cfg.role != Role::kReplica) o.advertise = n_.cfg.advertise;
  std::unique_ptr<transport::Log> log;
  Status s = LogFactoryRef() ? LogFactoryRef()(o, &log) : transport::OpenNats(o, &log);
  if (!s.ok()) {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.SetError(s.message());
    return;
  }
  // Heartbeats (NATS only: the in-memory log of the engine tests has none).
  std::unique_ptr<transport::LeaseStore> lease;
  std::unique_ptr<transport::NodeBoard> board;
  if (!LogFactoryRef()) {
    Status bs = transport::OpenNatsLeases(o, n_.cfg.lease_ttl_ms, &lease, &board);
    if (bs.ok()) {
      a_.SetBoard(board.get());
    } else {
      sqlite3_log(SQLITE_WARNING, "litejet: %s: no heartbeats: %s", n_.cfg.name.c_str(), bs.message().c_str());
    }
  }
  a_.SetLog(log.get());
  // Automatic snapshots: a thread of their own, busy only while primary.
  if (n_.cfg.role != Role::kReplica && !LogFactoryRef() &&
      (n_.cfg.snapshot_every_txns > 0 || n_.cfg.snapshot_every_ms > 0)) {
    snaps_ = std::make_unique<AutoSnapshots>(n_, a_);
    snaps_->Start();
  }
  // Other nodes' repl_exec, answered while this node takes writes (served
  // with forward=on, refused naming the parameter with forward=off).
  // (NATS only, as the heartbeats: the in-memory log of the engine tests has no requests.)
  if (n_.cfg.role != Role::kReplica && !LogFactoryRef()) forward_.StartServer();
  if (n_.cfg.role == Role::kPrimary) {
    if (lease) {
      roles_->RunStaticPrimary(*log, lease.get());
    } else {
      ship_->Run(*log, nullptr);
    }
  } else if (n_.cfg.role == Role::kAuto) {
    roles_->RunAuto(*log, lease.get());
  } else {
    apply_->Run(*log, nullptr);
  }
  forward_.StopServer();
  if (snaps_) snaps_->Stop();
  a_.SetBoard(nullptr);
  a_.SetLog(nullptr);
}

}  // namespace litejet
