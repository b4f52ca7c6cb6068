// The agent of a replicated database: at most one per host (an flock on
// "<db>-litejet-agent" decides). On the primary it ships the local log (the
// commits' frames in the WAL, or in the spool once the WAL was about to lose
// them) to JetStream with expected-last-sequence fencing; on a replica it
// reads the log and applies each transaction to the WAL and wal-index
// (WalWriter).
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
  if (!locker || !PrimaryNow() || !HasUnspooledBacklog()) return;
  locker->WithWriteLock(wait_ms, [&] {
    if (!DeadCommitPending() && HasUnspooledBacklog()) HandOff(why);
  });
}

void Engine::AgentMain() {
  // Another process on this host may be the agent; take over when it goes.
  while (!TakeHostLock()) {
    if (!Sleep(500)) return;
  }
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
    RunPrimary(*log);
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

// Retries op until it succeeds or the agent stops; records errors.
#define LITEJET_RETRY(expr)                        \
  for (;;) {                                       \
    Status rs_ = (expr);                           \
    if (rs_.ok()) break;                           \
    connected_ = false;                            \
    {                                              \
      std::lock_guard<std::mutex> g_(mu_);         \
      SetError(rs_.message());                     \
    }                                              \
    GuardBacklog(false);                           \
    if (!Sleep(250)) return;                       \
  }

// The TXID of the last record whose every chunk is in the log, given the
// log's last message. A chunk names its record's last TXID only (a batch's
// first is inside its compressed body), so for a record cut short (its
// publisher died between chunks) the answer is the record before it: the
// message just before its chunk 0, walking back over earlier cut attempts.
Status Engine::LastCompleteTxid(transport::Log& log, const transport::Message& last, uint64_t* txid,
                                uint64_t* end_seq) {
  transport::Message m = last;
  for (int hops = 0;; hops++) {
    record::ChunkInfo ci;
    if (!record::PeekChunk(m.data.data(), m.data.size(), &ci)) {
      return Status::Error("litejet: the log of \"" + cfg_.name + "\" has a message that is not a litejet chunk at sequence " +
                           std::to_string(m.seq));
    }
    if (ci.index + 1 == ci.count) {
      *txid = ci.txid;
      if (end_seq) *end_seq = m.seq;
      return Status::OK();
    }
    if (m.seq <= uint64_t(ci.index) + 1 || hops > 1000) {
      *txid = 0;  // nothing complete before it
      if (end_seq) *end_seq = 0;
      return Status::OK();
    }
    const uint64_t want = m.seq - ci.index - 1;
    bool got = false;
    Status s = log.Read(want, 2000, [&](const transport::Message& x) {
      if (x.seq == want) {
        m = x;
        got = true;
      }
      return false;
    });
    if (!s.ok()) return s;
    if (!got) return Status::Error("litejet: cannot read message " + std::to_string(want) + " of the log of \"" + cfg_.name + "\"", transport::kUnavailable);
  }
}

void Engine::RunPrimary(transport::Log& log) {
  LITEJET_RETRY(log.Ensure(500));
  uint64_t seq = 0;
  // A sync commit left in doubt (by a process that was stopped meanwhile,
  // too): the log's answer before anything else.
  if (sidecar_.indoubt_txid() != 0 && !ReconcileInDoubt(log, &seq)) return;
  transport::Message last;
  bool found = false;
  LITEJET_RETRY(log.Last(1000, &last, &found));
  connected_ = true;
  ClearError();
  seq = found ? last.seq : 0;
  // A record whose last chunk never made it counts as not shipped: publish
  // it again from its first chunk.
  uint64_t log_txid = 0, end_seq = 0;
  if (found) LITEJET_RETRY(LastCompleteTxid(log, last, &log_txid, &end_seq));
  sidecar::Position pos = sidecar_.Read();
  if (role_ready_ && found && end_seq > pos.log_seq) {
    // role=auto: the log grew after this node read it to its end (a deposed
    // primary that did not know yet): those records are not in this
    // database, and may not be this node's history. Step down and read them.
    Fail("litejet: database \"" + cfg_.name + "\": the log moved past sequence " + std::to_string(pos.log_seq) +
         " (now " + std::to_string(end_seq) + ") after this node was elected; stepping down to read it");
    return;
  }
  if (log_txid > pos.txid) {
    std::lock_guard<std::mutex> g(mu_);
    fenced_ = true;
    SetError("litejet: the log of \"" + cfg_.name + "\" is at TXID " + std::to_string(log_txid) +
             " but this database is at " + std::to_string(pos.txid) +
             ": another node has been primary; this node does not write");
    return;
  }
  sidecar_.SetAcked(std::max(pos.acked_txid, log_txid), seq);
  // role=auto: writes open once the log ends where this database does: its
  // commits that never reached the log (this node was primary before and
  // died or lost the lease with them unshipped; reading the log to its end
  // showed nobody wrote past them) are shipped first, in this lease's epoch;
  // then the epoch marker goes in (role_ready_).
  bool ready = !role_ready_;
  if (!ready && sidecar_.Read().acked_txid >= sidecar_.Read().txid) {
    if (!role_ready_(&seq)) return;  // nothing to ship first (and an empty database gets WAL mode here)
    ready = true;
  }
  agent_cv_.notify_all();

  locallog::Reader reader;
  Status s = reader.Open(path_, &sidecar_);
  if (!s.ok()) {
    std::lock_guard<std::mutex> g(mu_);
    SetError(s.message());
    return;
  }
  uint64_t next = sidecar_.Read().acked_txid + 1;
  int spool_fd = ::open(spool_.path().c_str(), O_RDONLY | O_CLOEXEC);
  // A private reader on the plain VFS, opened only when the wal-index needs
  // recovery. It never deletes the WAL on close: the reader above holds a
  // SHARED lock on the database for as long as it lives.
  sqlite3* recovery_db = nullptr;
  struct Closer {
    sqlite3** db;
    ~Closer() { sqlite3_close(*db); }
  } closer{&recovery_db};
  std::vector<record::Txn> txns;
  std::string zrec, blob;
  std::vector<std::string> chunks, batch;
  size_t max_chunk = std::max<size_t>(log.MaxPayload(), 64 * 1024) - 1024;
  // Fault injection (tests): JetStream's answer to the record of this TXID
  // is held back until its sync committer has given up waiting.
  uint64_t hold_ack_txid = 0;
  if (const char* h = std::getenv("LITEJET_TEST_HOLD_ACK_TXID")) hold_ack_txid = std::strtoull(h, nullptr, 10);
  // LITEJET_TEST_HOLD_ACK_MS: hold it that long instead (a committer dies meanwhile).
  int64_t hold_ack_ms = 0;
  if (const char* h = std::getenv("LITEJET_TEST_HOLD_ACK_MS")) hold_ack_ms = std::strtoll(h, nullptr, 10);
  while (!stopping_) {
    if (role_tick_ && RoleDue() && role_tick_()) break;  // role=auto: no longer primary
    GuardBacklog(false);
    Beat();
    if (sidecar_.indoubt_txid() != 0) {
      if (!ReconcileInDoubt(log, &seq)) break;
      next = sidecar_.Read().acked_txid + 1;
      continue;
    }
    // Gather what is committed and not shipped: one record, or a backlog of
    // small ones packed into one message (one publish, one round trip).
    sidecar::Position now = sidecar_.Read();
    if (!ready && now.acked_txid >= now.txid) {
      if (!role_ready_(&seq)) break;
      ready = true;
      next = sidecar_.Read().acked_txid + 1;
      continue;
    }
    // A sync committer's record lies just past the spool's committed end
    // while it waits for exactly this ship.
    // Only while its committer is alive: a live sync committer holds
    // WAL_WRITE_LOCK until JetStream answered; a dead one's record must never
    // ship (its commit frame was never written; the next writer drops it).
    const bool sync_pending = cfg_.durability == Durability::kSync && sidecar_.pending_txid() == now.txid + 1 &&
                              WriteLockHeld();
    uint64_t last = sync_pending ? now.txid + 1 : now.txid;
    uint64_t spool_limit = now.spool_end;
    if (sync_pending && spool_fd >= 0) {
      struct stat sb;
      if (::fstat(spool_fd, &sb) == 0) spool_limit = uint64_t(sb.st_size);
    }
    if (!sync_pending && reader.spool_offset() > now.spool_end) reader.set_spool_offset(now.spool_end);
    txns.clear();
    const uint64_t spool_off0 = reader.spool_offset();
    s = next <= last ? reader.Read(next, last, now.txid, now.spool_end, spool_limit, 1024, max_chunk * 4, cfg_.node, &txns)
                     : Status::OK();
    if (!s.ok()) {
      {
        std::lock_guard<std::mutex> g(mu_);
        SetError(s.message());
      }
      if (s.code() == SQLITE_BUSY_RECOVERY) {
        // No connection has read the database since the shm was created
        // (a restart after a crash): let SQLite rebuild the wal-index.
        if (!recovery_db) sqlite3_open_v2(path_.c_str(), &recovery_db, SQLITE_OPEN_READWRITE, "unix");
        if (recovery_db) sqlite3_exec(recovery_db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
      }
      if (s.code() == SQLITE_BUSY || s.code() == SQLITE_BUSY_RECOVERY) {
        if (!Sleep(5)) break;
        continue;
      }
      break;  // the local log is damaged: nothing more can be shipped in order
    }
    batch.clear();
    size_t bytes = 0;
    uint64_t first_txid = 0, last_txid = 0, epoch = 0, last_checksum = 0;
    // One transaction alone: its own zstd record. Several: plain records in
    // a batch compressed as a whole (consecutive transactions often rewrite
    // the same pages), up to about four chunks of raw bytes per message.
    const bool single = txns.size() == 1;
    // Each record carries the epoch it is published in (the sidecar's: the
    // lease's while role=auto holds it), also one committed or spooled
    // under an earlier lease of this node.
    const uint64_t ship_epoch = sidecar_.Read().epoch;
    for (record::Txn& t : txns) {
      if (t.epoch < ship_epoch) t.epoch = ship_epoch;
      zrec.clear();
      s = record::Encode(t, single ? record::Compression::kZstd : record::Compression::kNone, &zrec);
      if (!s.ok()) break;
      if (!batch.empty() && bytes + zrec.size() + 64 > 4 * max_chunk) break;  // the rest goes in the next message
      if (batch.empty()) {
        first_txid = t.txid;
        epoch = t.epoch;
      }
      last_txid = t.txid;
      last_checksum = t.checksum_after;
      bytes += zrec.size() + 4;
      batch.push_back(std::move(zrec));
    }
    if (!s.ok()) {
      std::lock_guard<std::mutex> g(mu_);
      SetError(s.message());
      break;
    }
    // What did not fit is read again next time (from the spool too: rewind;
    // entries before next are skipped).
    if (batch.size() < txns.size()) reader.set_spool_offset(spool_off0);
    if (batch.empty()) {
      if (now.spool_end > 0 && !sync_pending && ResetSpool()) reader.set_spool_offset(0);
      if (!Sleep(1)) break;
      continue;
    }
    if (s.ok() && batch.size() == 1 && !single) {
      batch[0].clear();
      s = record::Encode(txns[0], record::Compression::kZstd, &batch[0]);  // alone after all
    }
    if (s.ok() && batch.size() > 1) s = record::EncodeBatch(batch, &blob, 1);
    if (s.ok()) s = record::Split(batch.size() == 1 ? batch[0] : blob, last_txid, max_chunk, &chunks);
    if (!s.ok()) {
      std::lock_guard<std::mutex> g(mu_);
      SetError(s.message());
      break;
    }
    // The msg-id names the content too (the checksum after it): a record that
    // did not land is replaced by another one with the same TXIDs, which the
    // dedupe window must not take for the first.
    bool abandoned = false;
    for (size_t i = 0; i < chunks.size() && !stopping_ && !abandoned; i++) {
      std::string id = cfg_.name + ":" + std::to_string(epoch) + ":" + std::to_string(first_txid) + "-" +
                       std::to_string(last_txid) + ":" + checksum::Hex(last_checksum) + ":" + std::to_string(i);
      for (;;) {
        // A sync committer gave up waiting: its record is not sent again;
        // what the log has decides (ReconcileInDoubt).
        if (sidecar_.indoubt_txid() != 0) {
          abandoned = true;
          break;
        }
        uint64_t nseq = 0;
        // While disconnected, no wait for the link inside Publish: a sync
        // committer may give up meanwhile, and a record handed to nats.c after
        // that would be sent after all (the server back within the wait). The
        // check above and the hand-off stay ~1 ms apart; the Sleep below
        // paces the retries.
        s = log.Publish(chunks[i], seq, id, log.Connected() ? 5000 : 1, &nseq);
        if (s.ok()) {
          seq = nseq;
          if (crash_point_ == 5 && i == 0 && chunks.size() > 1 && batch.size() > 1 && last_txid >= crash_txid_) _exit(9);
          break;
        }
        connected_ = false;
        {
          // Under mu_: once a sync committer gave up (it says why), its
          // reason stays in last_error, not this publish's failure.
          std::lock_guard<std::mutex> g(mu_);
          if (sidecar_.indoubt_txid() != 0 && s.code() != transport::kFenced) {
            abandoned = true;
            break;
          }
          SetError(s.message());
        }
        if (s.code() == transport::kFenced) {
          std::lock_guard<std::mutex> g(mu_);
          fenced_ = true;
          SetError("litejet: fenced: another node appended to the log of \"" + cfg_.name +
                   "\"; this node stopped writing");
          if (spool_fd >= 0) ::close(spool_fd);
          return;
        }
        GuardBacklog(false);
        if (!Sleep(200)) {
          if (spool_fd >= 0) ::close(spool_fd);
          return;
        }
      }
    }
    if (stopping_) break;
    if (hold_ack_txid != 0 && !abandoned && first_txid <= hold_ack_txid && hold_ack_txid <= last_txid) {
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(hold_ack_ms > 0 ? hold_ack_ms : 15000);
      while ((hold_ack_ms > 0 || sidecar_.indoubt_txid() != hold_ack_txid) && std::chrono::steady_clock::now() < until &&
             Sleep(5)) {
      }
      hold_ack_txid = 0;  // once
    }
    // In doubt meanwhile: the committer already failed; the log decides.
    if (abandoned || sidecar_.indoubt_txid() != 0) continue;
    sidecar_.SetAcked(last_txid, seq, txns[batch.size() - 1].checksum_after);
    next = last_txid + 1;
    connected_ = true;
    ClearError();
  }
  if (spool_fd >= 0) ::close(spool_fd);
  (void)reader;
}

// The agent's own handle on the database for taking WAL_WRITE_LOCK (opened
// on first use; null if it cannot be).
apply::WalWriter* Engine::Locker() {
  if (!spool_locker_) {
    spool_locker_ = std::make_unique<apply::WalWriter>();
    if (!spool_locker_->Open(path_).ok()) spool_locker_.reset();
  }
  return spool_locker_.get();
}

// True when some connection (of any process) holds WAL_WRITE_LOCK now.
bool Engine::WriteLockHeld() {
  apply::WalWriter* locker = Locker();
  if (!locker) return true;  // cannot tell: assume the committer is alive
  Status s = locker->WithWriteLock(0, [] {});
  return !s.ok() && s.code() == SQLITE_BUSY;
}

// Everything in the spool is shipped: start it over at offset 0, under
// WAL_WRITE_LOCK so that no hand-off or sync commit writes meanwhile (the
// file keeps its size: its blocks are reused).
bool Engine::ResetSpool() {
  sidecar::Position p = sidecar_.Read();
  if (p.acked_txid < p.spooled_txid) return false;
  apply::WalWriter* locker = Locker();
  if (!locker) return false;
  bool done = false;
  locker->WithWriteLock(100, [&] {
    sidecar::Position pos = sidecar_.Read();
    if (sidecar_.pending_txid() != 0 || pos.acked_txid < pos.spooled_txid) return;
    sidecar_.SetSpooled(pos.spooled_txid, 0);
    // On disk before the next hand-off writes over the spool's front.
    (void)sidecar_.SyncHeader();
    done = true;
  });
  return done;
}

void Engine::RunReplica(transport::Log& log) {
  LITEJET_RETRY(log.Ensure(500));
  connected_ = true;
  ClearError();
  apply::WalWriter writer;
  Status s = writer.Open(path_);
  sqlite3* db = nullptr;
  if (s.ok() && sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) {
    s = Status::Error("litejet: agent cannot open " + path_ + ": " + (db ? sqlite3_errmsg(db) : "?"));
  }
  if (!s.ok()) {
    sqlite3_close(db);
    std::lock_guard<std::mutex> g(mu_);
    SetError(s.message());
    return;
  }
  sqlite3_busy_timeout(db, 1000);
  // Power loss: the WAL is synced before the sidecar records a position as
  // durable (the mark), once per read or 100 ms, never per transaction.
  writer.set_on_new_header([&](uint32_t a, uint32_t b) { return MarkNewGeneration(writer, a, b); });
  auto last_sync = std::chrono::steady_clock::now();
  auto sync_applied = [&] {
    Status ss = SyncApplied(writer);
    last_sync = std::chrono::steady_clock::now();
    if (!ss.ok()) {
      std::lock_guard<std::mutex> g(mu_);
      SetError(ss.message());
    }
  };
  record::Reassembler ra;
  uint64_t from = sidecar_.Read().log_seq + 1;
  uint64_t record_start = from;
  bool fatal = false;
  std::string rec;
  bool leave = false;
  std::string diverged;  // why this database's history is not the log's
  while (!stopping_ && !fatal && !leave) {
    Beat();
    if (role_tick_ && RoleDue() && role_tick_()) {  // role=auto: elected
      leave = true;
      break;
    }
    Status rs = log.Read(from, 500, [&](const transport::Message& m) {
      if (stopping_) return false;
      if (role_tick_ && RoleDue() && !ra.pending()) return false;  // the role's turn
      Beat();
      if (!connected_) {
        // Messages flow again: the outage is over.
        connected_ = true;
        ClearError();
      }
      bool complete = false;
      uint64_t txid = 0;
      if (!ra.pending()) record_start = m.seq;
      Status a = ra.Add(m.data.data(), m.data.size(), &complete, &rec, &txid);
      if (!a.ok()) {
        // A retried publish starts the record again at chunk 0.
        record_start = m.seq;
        a = ra.Add(m.data.data(), m.data.size(), &complete, &rec, &txid);
      }
      from = m.seq + 1;
      if (!a.ok()) {
        std::lock_guard<std::mutex> g(mu_);
        SetError("litejet: log of \"" + cfg_.name + "\" at sequence " + std::to_string(m.seq) + ": " + a.message());
        return true;  // skip it; continuity checks catch a real gap
      }
      if (!complete) return true;
      std::vector<std::string> recs;
      if (record::IsBatch(rec.data(), rec.size())) {
        a = record::DecodeBatch(rec.data(), rec.size(), &recs);
      } else {
        recs.push_back(std::move(rec));
      }
      for (size_t i = 0; a.ok() && i < recs.size(); i++) {
        record::Txn t;
        a = record::Decode(recs[i].data(), recs[i].size(), &t);
        // Inside a batch, a restart must read the whole message again (the
        // records already applied are skipped): resume before its first chunk.
        if (a.ok()) a = ApplyRecord(writer, db, t, i + 1 == recs.size() ? m.seq : record_start - 1);
      }
      if (a.ok() && std::chrono::steady_clock::now() - last_sync > std::chrono::milliseconds(100)) sync_applied();
      if (a.ok() && !m.advertise.empty()) {
        std::lock_guard<std::mutex> g(mu_);
        primary_seen_ = m.advertise;  // the writer's advertise address, as repl_primary() promises
      }
      if (!a.ok() && a.code() == kDiverged) {
        diverged = a.message();
        return false;
      }
      if (!a.ok()) {
        std::lock_guard<std::mutex> g(mu_);
        SetError(a.message());
        if (a.code() == SQLITE_BUSY) {
          from = record_start;  // try this record again
          ra.Reset();
        } else {
          fatal = true;
        }
        return false;
      }
      return true;
    });
    if (!rs.ok()) {
      connected_ = false;
      std::lock_guard<std::mutex> g(mu_);
      SetError(rs.message());
    } else if (!connected_) {
      connected_ = true;
      ClearError();
    }
    if (rs.ok() && diverged.empty() && cfg_.role == Role::kReplica) {
      // At the log's end (no message for a while) with commits the log never
      // acknowledged: a primary's, before this node was made a replica. A
      // replica never ships them: they are not history.
      const sidecar::Position p = sidecar_.Read();
      if (p.txid > p.acked_txid) {
        diverged = "litejet: database \"" + cfg_.name + "\" diverged: it is ahead of the log (TXIDs " +
                   std::to_string(p.acked_txid + 1) + ".." + std::to_string(p.txid) +
                   " never reached it) and role=replica never ships them";
      }
    }
    if (!diverged.empty()) {
      // Once per agent: a rebuild that failed is not tried again (each try
      // keeps another copy of the database); the reason stays in last_error.
      if (rebuild_failed_) {
        std::lock_guard<std::mutex> g(mu_);
        SetError(diverged + "; not rebuilt: an earlier rebuild failed (" + rebuild_error_ + ")");
        fatal = true;
        break;
      }
      uint64_t resume = 0;
      Status rb = Rebuild(log, writer, db, diverged, &resume);
      diverged.clear();
      if (!rb.ok()) {
        rebuild_failed_ = true;
        rebuild_error_ = rb.message();
        fatal = true;
        break;
      }
      ra.Reset();
      from = record_start = resume;
      continue;
    }
    // Keep the WAL bounded: checkpoint (readers permitting); the next append
    // restarts the WAL once everything is backfilled.
    sync_applied();
    if (writer.wal_frames() > 1000) sqlite3_exec(db, "PRAGMA wal_checkpoint(PASSIVE)", nullptr, nullptr, nullptr);
    if (rs.ok() == false && !Sleep(250)) break;
  }
  sync_applied();
  sqlite3_close(db);
}

Status Engine::ApplyRecord(apply::WalWriter& writer, sqlite3* db, const record::Txn& t, uint64_t seq) {
  sidecar::Position pos = sidecar_.Read();
  if (t.epoch_marker) {
    // A new primary's first word: nothing to write, an epoch to learn.
    if (t.epoch < pos.epoch) {
      return Status::Error("litejet: epoch marker of \"" + cfg_.name + "\" for epoch " + std::to_string(t.epoch) +
                               " after epoch " + std::to_string(pos.epoch) + ": refused (node " + t.node + ")",
                           SQLITE_CORRUPT);
    }
    if (t.txid == pos.txid && t.checksum_after != pos.checksum) {
      return Status::Error("litejet: database \"" + cfg_.name + "\" diverged: at TXID " + std::to_string(pos.txid) +
                               " its checksum is " + checksum::Hex(pos.checksum) + " but the log says " +
                               checksum::Hex(t.checksum_after) + " (epoch marker of node " + t.node + ")",
                           kDiverged);
    }
    if (t.txid < pos.txid && t.txid >= pos.acked_txid) {
      // A new primary started from the log's end at t.txid: this node's
      // commits after it (never acknowledged by the log) are not history.
      return Status::Error("litejet: database \"" + cfg_.name + "\" diverged: it has TXIDs " +
                               std::to_string(t.txid + 1) + ".." + std::to_string(pos.txid) +
                               " that never reached the log, and node " + t.node + " became primary in epoch " +
                               std::to_string(t.epoch) + " at TXID " + std::to_string(t.txid),
                           kDiverged);
    }
    if (t.txid > pos.txid) {
      return Status::Error("litejet: log of \"" + cfg_.name + "\" has an epoch marker at TXID " + std::to_string(t.txid) +
                               " while this replica is at " + std::to_string(pos.txid),
                           SQLITE_CORRUPT);
    }
    if (t.epoch > pos.epoch) sidecar_.SetEpoch(t.epoch);
    sidecar_.SetAcked(std::max(pos.acked_txid, std::min(t.txid, pos.txid)), seq);
    std::lock_guard<std::mutex> g(mu_);
    primary_seen_ = t.node;
    return Status::OK();
  }
  if (t.txid <= pos.txid) {
    // Already in this database: applied (a restart read it again), or this
    // node's own commit shipped before it became a replica. Unless it is
    // not: another node's record for a TXID this node committed and the log
    // never acknowledged, or other content at this node's TXID.
    if (t.txid > pos.acked_txid && t.node != cfg_.node) {
      return Status::Error("litejet: database \"" + cfg_.name + "\" diverged: its TXID " + std::to_string(t.txid) +
                               " never reached the log, which has node " + t.node + "'s TXID " +
                               std::to_string(t.txid) + " (epoch " + std::to_string(t.epoch) + ") instead",
                           kDiverged);
    }
    if (t.txid == pos.txid && t.checksum_after != pos.checksum) {
      return Status::Error("litejet: database \"" + cfg_.name + "\" diverged: at TXID " + std::to_string(pos.txid) +
                               " its checksum is " + checksum::Hex(pos.checksum) + " but the log says " +
                               checksum::Hex(t.checksum_after) + " (node " + t.node + ", epoch " +
                               std::to_string(t.epoch) + ")",
                           kDiverged);
    }
    if (t.epoch > pos.epoch) sidecar_.SetEpoch(t.epoch);
    sidecar_.SetAcked(std::max(pos.acked_txid, t.txid), seq);
    return Status::OK();
  }
  Update u;
  Status s = CheckRecord(pos, t, &u);
  if (!s.ok()) return s;
  s = sidecar_.BeginUpdate(t.txid, std::max(pos.db_pages, t.db_pages));
  if (!s.ok()) return s;
  for (int attempt = 0;; attempt++) {
    s = writer.Append(t.page_size, t.db_pages, t.pages, 2000);
    if (s.ok()) break;
    if (s.code() == SQLITE_BUSY_RECOVERY) {
      // Let SQLite rebuild the wal-index from the WAL, then try again.
      sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
    }
    if (stopping_ || attempt > 20) {
      sidecar_.CommitUpdate(pos);  // clears the pending mark: nothing applied
      return Status::Error(s.message(), SQLITE_BUSY);
    }
  }
  StoreUpdate(u);
  if (t.epoch > pos.epoch) sidecar_.SetEpoch(t.epoch);  // the newest epoch seen only grows
  sidecar_.SetAcked(t.txid, seq);
  {
    std::lock_guard<std::mutex> g(mu_);
    primary_seen_ = t.node;
  }
  return Status::OK();
}

Status Engine::CheckRecord(const sidecar::Position& pos, const record::Txn& t, Update* out) {
  if (t.txid != pos.txid + 1) {
    return Status::Error("litejet: log of \"" + cfg_.name + "\" jumps from TXID " + std::to_string(pos.txid) +
                         " to " + std::to_string(t.txid) + ": this replica needs a snapshot", SQLITE_CORRUPT);
  }
  if (t.epoch < pos.epoch) {
    // Fencing makes this impossible in one stream (a deposed primary's
    // publish fails its sequence expectation): refuse it if it happens.
    return Status::Error("litejet: record TXID " + std::to_string(t.txid) + " of \"" + cfg_.name + "\" is from epoch " +
                             std::to_string(t.epoch) + ", older than epoch " + std::to_string(pos.epoch) +
                             " already seen: a deposed primary's record, refused (node " + t.node + ")",
                         SQLITE_CORRUPT);
  }
  if (t.checksum_before != pos.checksum) {
    return Status::Error("litejet: database \"" + cfg_.name + "\" diverged: at TXID " + std::to_string(pos.txid) +
                         " its checksum is " + checksum::Hex(pos.checksum) + " but the log says " +
                         checksum::Hex(t.checksum_before) + " (record TXID " + std::to_string(t.txid) + " of node " +
                         t.node + ")", kDiverged);
  }
  if (pos.page_size != 0 && pos.db_pages != 0 && pos.page_size != t.page_size) {
    return Status::Error("litejet: record TXID " + std::to_string(t.txid) + " has page size " +
                         std::to_string(t.page_size) + ", the replica " + std::to_string(pos.page_size), SQLITE_CORRUPT);
  }
  Update& u = *out;
  Status grew = ComputeUpdateInto(pos, t.page_size, t.db_pages, HashesOf(t.pages, t.page_size), &u);
  if (!grew.ok()) return grew;
  // A previous attempt that died while storing page hashes leaves some of
  // them new: then the record's checksum (whose before-value matched the
  // committed position above) is the truth, not a sum over mixed hashes.
  const bool reapply = sidecar_.pending_txid() == t.txid;
  if (reapply) u.pos.checksum = t.checksum_after;
  if (u.pos.checksum != t.checksum_after) {
    return Status::Error("litejet: record TXID " + std::to_string(t.txid) + " does not produce its checksum (" +
                         checksum::Hex(u.pos.checksum) + " != " + checksum::Hex(t.checksum_after) + ")",
                         SQLITE_CORRUPT);
  }
  return Status::OK();
}

// ---- sync commits in doubt --------------------------------------------------
//
// A sync committer that got no answer from JetStream in time failed its
// commit (no commit frame) and left the sidecar "in doubt" at its TXID: the
// record may have landed (JetStream stored it, the answer was lost) or not.
// Writers wait (SQLITE_BUSY) until the agent has read the log's answer:
// - the log ends before the TXID: it did not land. Nothing of it remains (its
//   record in the spool lies past the committed end and is overwritten). The
//   record is never sent again, and the next record of that TXID is published
//   expecting the sequence seen now, under another msg-id (it names the
//   content): should the old one still land (a publish nats.c had buffered),
//   one of the two fails the expectation, and a failed expectation fences;
//   the log never has both.
// - the log's last record is that TXID, written by this node in this epoch
//   on this database's checksum: it landed. Take it from the log exactly as a
//   replica applies a record (WalWriter), so the database has the
//   transaction under its TXID.
// - anything else: another node wrote the log; fenced.
bool Engine::ReconcileInDoubt(transport::Log& log, uint64_t* seq) {
  for (;;) {
    const uint64_t txid = sidecar_.indoubt_txid();
    if (txid == 0) return true;
    bool done = false;
    Status s = ReconcileOnce(log, txid, seq, &done);
    if (s.code() == SQLITE_CORRUPT) {
      // The log's answer cannot be read or does not fit this database.
      std::lock_guard<std::mutex> g(mu_);
      fenced_ = true;
      SetError(InDoubtMessage(txid) + ": " + s.message() + "; this node stopped writing");
    }
    if (fenced_) return false;
    if (s.ok() && done) {
      connected_ = true;
      ClearError();
      agent_cv_.notify_all();
      return true;
    }
    if (!s.ok()) {
      if (s.code() == transport::kUnavailable) connected_ = false;
      std::lock_guard<std::mutex> g(mu_);
      SetError(InDoubtMessage(txid) + ": " + s.message());
    }
    GuardBacklog(false);
    if (!Sleep(s.code() == SQLITE_BUSY ? 20 : 250)) return false;
  }
}

Status Engine::ReconcileOnce(transport::Log& log, uint64_t txid, uint64_t* seq, bool* done) {
  *done = false;
  transport::Message last;
  bool found = false;
  Status s = log.Last(1000, &last, &found);
  if (!s.ok()) return s;
  // The TXID of the log's last whole record (one whose last chunk is missing
  // never reaches a replica: it did not land).
  uint64_t log_txid = 0;
  record::ChunkInfo ci;
  if (found) {
    if (!record::PeekChunk(last.data.data(), last.data.size(), &ci) || ci.count == 0 || ci.index >= ci.count) {
      return Status::Error("litejet: the last message of the log of \"" + cfg_.name + "\" (sequence " +
                               std::to_string(last.seq) + ") is not a litejet record",
                           SQLITE_CORRUPT);
    }
    log_txid = ci.index + 1 == ci.count ? ci.txid : ci.txid - 1;
  }
  const uint64_t last_seq = found ? last.seq : 0;
  const sidecar::Position pos = sidecar_.Read();
  auto fence = [&](const std::string& why) {
    std::lock_guard<std::mutex> g(mu_);
    fenced_ = true;
    SetError("litejet: the log of \"" + cfg_.name + "\" " + why + " while sync commit TXID " + std::to_string(txid) +
             " was in doubt at TXID " + std::to_string(pos.txid) +
             ": another node has been primary; this node does not write");
    return Status::OK();
  };
  const char* verdict = nullptr;
  if (pos.txid + 1 == txid && log_txid + 1 == txid) {
    // It did not land. Also forget an acknowledgement recorded while the
    // committer was giving up: the next commit of this TXID waits for its own.
    Status ls = Locker() ? Locker()->WithWriteLock(2000, [&] {
      if (sidecar_.indoubt_txid() != txid) return;
      sidecar_.SetAcked(pos.txid, last_seq);
      sidecar_.SetInDoubt(0);
    })
                         : Status::Error("litejet: agent cannot open " + path_, SQLITE_CANTOPEN);
    if (!ls.ok()) return ls;
    verdict = "did not reach the log: forgotten";
  } else if (pos.txid == txid && log_txid == txid) {
    // Taken from the log already (the agent stopped before it said so).
    Status ls = Locker() ? Locker()->WithWriteLock(2000, [&] {
      if (sidecar_.indoubt_txid() != txid) return;
      sidecar_.SetAcked(txid, last_seq);
      sidecar_.SetInDoubt(0);
    })
                         : Status::Error("litejet: agent cannot open " + path_, SQLITE_CANTOPEN);
    if (!ls.ok()) return ls;
    verdict = "was already taken from the log";
  } else if (pos.txid + 1 == txid && log_txid == txid) {
    // It landed: read its record (its chunks are the last ci.count messages).
    const uint64_t from = last.seq - ci.index;
    record::Reassembler ra;
    std::string rec;
    bool complete = false;
    Status ds;
    s = log.Read(from, 2000, [&](const transport::Message& m) {
      uint64_t t = 0;
      ds = ra.Add(m.data.data(), m.data.size(), &complete, &rec, &t);
      return ds.ok() && !complete && m.seq < last.seq;
    });
    if (!s.ok()) return s;
    if (!ds.ok()) return ds;
    if (!complete) {
      return Status::Error("litejet: cannot read TXID " + std::to_string(txid) + " back from the log of \"" +
                               cfg_.name + "\"",
                           transport::kUnavailable);
    }
    std::vector<std::string> recs;
    if (record::IsBatch(rec.data(), rec.size())) {
      ds = record::DecodeBatch(rec.data(), rec.size(), &recs);
      if (!ds.ok()) return ds;
    } else {
      recs.push_back(std::move(rec));
    }
    record::Txn t;
    bool have = false;
    for (const std::string& r : recs) {
      record::Txn x;
      ds = record::Decode(r.data(), r.size(), &x);
      if (!ds.ok()) return ds;
      if (x.txid == txid) {
        t = std::move(x);
        have = true;
      }
    }
    if (!have || t.node != cfg_.node || t.epoch != pos.epoch || t.checksum_before != pos.checksum) {
      return fence("has TXID " + std::to_string(txid) + " from " + (have ? "node \"" + t.node + "\"" : "elsewhere") +
                   (have && t.node == cfg_.node ? " on another database state" : ""));
    }
    s = TakeFromLog(t, last.seq);
    if (!s.ok()) return s;
    verdict = "landed in the log: taken from there";
  } else {
    return fence("ends at TXID " + std::to_string(log_txid));
  }
  *seq = last_seq;
  *done = true;
  sqlite3_log(SQLITE_NOTICE, "litejet: %s: sync commit TXID %llu %s", cfg_.name.c_str(), (unsigned long long)txid,
              verdict);
  return Status::OK();
}

// Applies the log's record of the commit in doubt, as a replica would: under
// WAL_WRITE_LOCK, so that the frames, the position and the end of the doubt
// go together. Dying in the middle leaves the doubt (and the pending mark):
// the next agent applies the same record again.
Status Engine::TakeFromLog(const record::Txn& t, uint64_t seq) {
  apply::WalWriter* w = Locker();
  if (!w) return Status::Error("litejet: agent cannot open " + path_, SQLITE_CANTOPEN);
  Status st;
  Status ls = w->WithWriteLock(2000, [&] {
    if (sidecar_.indoubt_txid() != t.txid) return;
    sidecar::Position pos = sidecar_.Read();
    Update u;
    st = CheckRecord(pos, t, &u);
    if (st.ok()) st = sidecar_.BeginUpdate(t.txid, std::max(pos.db_pages, t.db_pages));
    if (!st.ok()) return;
    st = w->AppendLocked(t.page_size, t.db_pages, t.pages);
    if (!st.ok()) {
      sidecar_.CommitUpdate(pos);  // clears the pending mark: nothing applied
      return;
    }
    StoreUpdate(u);
    sidecar_.SetAcked(t.txid, seq);
    sidecar_.SetInDoubt(0);
  });
  if (!ls.ok()) return ls;
  if (st.code() == SQLITE_BUSY_RECOVERY) {
    // Let SQLite rebuild the wal-index (a private reader), then try again.
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") == SQLITE_OK) {
      sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
    }
    sqlite3_close(db);
    return Status::Error(st.message(), SQLITE_BUSY);
  }
  return st;
}


void Engine::RunAuto(transport::Log& log, transport::LeaseStore* lease) {
  sidecar_.SetWriteUntil(0);  // a previous agent's grant is not ours (and CLOCK_MONOTONIC may have restarted)
  if (!lease) {
    Fail("litejet: database \"" + cfg_.name + "\": role=auto needs the lease bucket, which could not be opened; serving as a replica");
    RunReplica(log);
    return;
  }
  failover::RoleOptions ro;
  ro.configured = failover::Configured::kAuto;
  ro.node = cfg_.node;
  ro.advertise = cfg_.advertise;
  ro.ttl_ms = cfg_.lease_ttl_ms;
  failover::RoleMachine m(lease, ro);
  bool writes_open = false;
  // What every process of this node reads: write_until_ns gates writes, so
  // it is closed first and opened last.
  auto publish = [&] {
    sidecar::RoleInfo r;
    r.reason = m.last_reason();
    if (m.role() == failover::Role::kPrimary && writes_open) {
      r.state = sidecar::RoleState::kPrimary;
      r.epoch = m.epoch();
      r.primary = cfg_.advertise;
      sidecar_.SetRole(r);
      sidecar_.SetWriteUntil(m.WriteDeadline() * 1000000);  // SteadyMs and SteadyNs: the same clock
    } else {
      sidecar_.SetWriteUntil(0);
      r.state = m.role() == failover::Role::kCandidate || m.role() == failover::Role::kPrimary
                    ? sidecar::RoleState::kCandidate
                    : sidecar::RoleState::kReplica;
      r.epoch = m.max_epoch_seen();
      r.primary = m.primary().known ? (m.primary().advertise.empty() ? m.primary().node : m.primary().advertise) : "";
      sidecar_.SetRole(r);
    }
  };
  step_downs_seen_ = sidecar_.step_down_requests();
  auto tick = [&]() {
    const int64_t now = SteadyMs();
    const uint64_t sd = sidecar_.step_down_requests();
    if (sd != step_downs_seen_) {
      step_downs_seen_ = sd;
      if (m.role() == failover::Role::kPrimary) {
        writes_open = false;
        sidecar_.SetWriteUntil(0);
        m.StepDown(now);
      }
    }
    failover::Progress pr;
    const sidecar::Position pos = sidecar_.Read();
    pr.applied = pos.txid;
    if (m.role() != failover::Role::kPrimary) {
      // Caught up? The log's last complete record (one request per poll),
      // and has this node read it: equal TXIDs alone could be two histories.
      transport::Message last;
      bool found = false;
      uint64_t t = 0, end_seq = 0;
      if (log.Last(500, &last, &found).ok() && (!found || LastCompleteTxid(log, last, &t, &end_seq).ok())) {
        pr.log_last = found ? t : 0;
        pr.log_last_known = true;
        pr.log_read = pos.log_seq >= end_seq;
        // Commits past the log's end that the log's records did not
        // contradict up to here (ApplyRecord): this node's own, unshipped;
        // it may be elected and ship them.
        if (pr.log_read && pos.txid > pr.log_last && pos.acked_txid <= pr.log_last) pr.applied = pr.log_last;
      }
    } else {
      pr.log_last = pr.applied;
      pr.log_last_known = true;
    }
    for (const failover::Transition& t : m.Tick(now, pr)) {
      sqlite3_log(SQLITE_NOTICE, "litejet: %s: %s", cfg_.name.c_str(), t.ToString().c_str());
      if (t.from == failover::Role::kPrimary) writes_open = false;
      // The epoch of every record this node publishes from here on (its
      // unshipped commits' too): the lease's.
      if (t.to == failover::Role::kPrimary) sidecar_.SetEpoch(std::max(sidecar_.Read().epoch, m.epoch()));
    }
    role_next_ms_ = std::min(m.NextTickAt(), now + 1000);
    publish();
  };
  role_ready_ = [&](uint64_t* seq) {
    if (m.role() != failover::Role::kPrimary) return false;
    if (sidecar_.Read().txid == 0) {
      // An empty database (nothing in the log either): in WAL mode before
      // the first write, as a primary's is at open.
      Status ps = Prepare(false, true);
      if (!ps.ok()) {
        Fail(ps.message());
        return false;
      }
    }
    // The epoch of this node's records: the lease's.
    sidecar_.SetEpoch(std::max(sidecar_.Read().epoch, m.epoch()));
    sidecar::Position pos = sidecar_.Read();
    if (pos.txid > 0) {
      // The epoch marker, expecting the log's end as read: from here on a
      // deposed primary's publish fails the expectation. If it is refused,
      // someone appended after that read: step down and catch up.
      record::Txn mk;
      mk.txid = pos.txid;
      mk.epoch = pos.epoch;
      mk.timestamp_us = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
      mk.node = cfg_.node;
      mk.page_size = pos.page_size;
      mk.db_pages = pos.db_pages;
      mk.checksum_before = mk.checksum_after = pos.checksum;
      mk.epoch_marker = true;
      std::string rec;
      std::vector<std::string> chunks;
      Status ms = record::Encode(mk, record::Compression::kNone, &rec);
      if (ms.ok()) ms = record::Split(rec, mk.txid, std::max<size_t>(log.MaxPayload(), 64 * 1024) - 1024, &chunks);
      uint64_t nseq = *seq;
      for (size_t i = 0; ms.ok() && i < chunks.size(); i++) {
        ms = log.Publish(chunks[i], nseq, cfg_.name + ":" + std::to_string(mk.epoch) + ":marker:" + std::to_string(i),
                         2000, &nseq);
      }
      if (!ms.ok()) {
        Fail("litejet: database \"" + cfg_.name + "\": elected in epoch " + std::to_string(mk.epoch) +
             " but its epoch marker was not appended (" + ms.message() + "); stepping down");
        return false;
      }
      *seq = nseq;
      sidecar_.SetAcked(pos.txid, nseq);
    }
    writes_open = true;
    publish();
    sqlite3_log(SQLITE_NOTICE, "litejet: %s: primary in epoch %llu at TXID %llu: writes open", cfg_.name.c_str(),
                (unsigned long long)m.epoch(), (unsigned long long)sidecar_.Read().txid);
    ClearError();
    return true;
  };
  role_next_ms_ = SteadyMs();
  tick();
  while (!stopping_) {
    if (m.role() == failover::Role::kPrimary) {
      role_tick_ = [&] {
        tick();
        return m.role() != failover::Role::kPrimary;
      };
      RunPrimary(log);
      role_tick_ = nullptr;
      if (stopping_) break;
      // Whatever ended it (lost lease, fenced by the log, stopping): no
      // writes from here on, in any process.
      writes_open = false;
      if (m.role() == failover::Role::kPrimary) m.StepDown(SteadyMs());
      tick();
      publish();
      DropBlocker();
      fenced_ = false;  // a replica now: writes are refused as a replica's
    } else {
      role_tick_ = [&] {
        tick();
        return m.role() == failover::Role::kPrimary;
      };
      RunReplica(log);
      role_tick_ = nullptr;
      if (m.role() != failover::Role::kPrimary && !stopping_ && !Sleep(250)) break;
    }
  }
  // A clean stop gives the lease up at once, so another node takes over
  // without waiting for it to expire.
  sidecar_.SetWriteUntil(0);
  if (!exiting_) {
    for (const failover::Transition& t : m.Close(SteadyMs())) {
      sqlite3_log(SQLITE_NOTICE, "litejet: %s: %s", cfg_.name.c_str(), t.ToString().c_str());
    }
  }
  role_ready_ = nullptr;
  writes_open = false;
  publish();
}

}  // namespace litejet
