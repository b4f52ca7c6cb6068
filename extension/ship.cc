// Shipper, the primary's agent loop: ships the local log (the commits'
// frames in the WAL, or in the spool once the WAL was about to lose them) to
// JetStream, one record or a batch per message, fenced by the log's expected
// last sequence; and settles sync commits whose outcome is unknown
// (ReconcileInDoubt) from what the log holds.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/clock.h"
#include "common/durable.h"
#include "extension/ship.h"
#include "failover/role.h"
#include "wal-capture/apply.h"
#include "wal-capture/checksum.h"
#include "wal-capture/local_log.h"
#include "wal-capture/record.h"
#include "wal-capture/spool.h"

namespace litejet {

namespace {
// The process that left a pending mark is alive (0: an older build's mark,
// taken as alive, as before). EPERM: alive, another user's.
// A committer in another PID namespace (a container sharing the volume)
// cannot be seen from here: taken as alive, as before.
bool CommitterAlive(const sidecar::PendingCommit& pc) {
  if (pc.pid == 0 || (pc.pidns != 0 && pc.pidns != durable::PidNamespace())) return true;
  return ::kill(pid_t(pc.pid), 0) == 0 || errno == EPERM;
}
// The checksum after the record of TXID txid when m holds all of it (one
// chunk, possibly a batch ending with it).
bool LastRecordChecksum(const transport::Message& m, uint64_t txid, uint64_t* sum) {
  record::Reassembler r;
  bool complete = false;
  std::string whole;
  uint64_t t = 0;
  std::vector<std::string> records;
  record::Txn txn;
  if (!r.Add(m.data.data(), m.data.size(), &complete, &whole, &t).ok() || !complete || t != txid) return false;
  if (!record::Unbatch(&whole, &records).ok() || records.empty()) return false;
  if (!record::Decode(records.back().data(), records.back().size(), &txn).ok() || txn.txid != txid) return false;
  *sum = txn.checksum_after;
  return true;
}
}  // namespace
void Shipper::Run(transport::Log& log, const RoleHooks* hooks) {
  const bool gated = hooks && hooks->ready;  // role=auto: writes open once the log ends here
  LITEJET_RETRY(log.Ensure(2000));
  uint64_t seq = 0;
  // A sync commit left in doubt (by a process that was stopped meanwhile,
  // too): the log's answer before anything else.
  if (n_.sidecar.indoubt_txid() != 0 && !ReconcileInDoubt(log, &seq)) return;
  transport::Message last;
  bool found = false;
  LITEJET_RETRY(log.Last(1000, &last, &found));
  a_.connected = true;
  n_.ClearError();
  seq = found ? last.seq : 0;
  // A record whose last chunk never made it counts as not shipped: publish
  // it again from its first chunk.
  uint64_t log_txid = 0, end_seq = 0;
  if (found) LITEJET_RETRY(n_.LastCompleteTxid(log, last, &log_txid, &end_seq));
  sidecar::Position pos = n_.sidecar.Read();
  if (gated && found && end_seq > pos.log_seq) {
    // role=auto: the log grew after this node read it to its end (a deposed
    // primary that did not know yet): those records are not in this
    // database, and may not be this node's history. Step down and read them.
    n_.Fail("litejet: database \"" + n_.cfg.name + "\": the log moved past sequence " + std::to_string(pos.log_seq) +
            " (now " + std::to_string(end_seq) + ") after this node was elected; stepping down to read it");
    return;
  }
  // durability=sync, the agent taken over from a process that closed: a
  // committer of another process may be between the acknowledgement of its
  // record (by the agent before this one) and its commit frame, the log one
  // TXID ahead until then. Wait for it (bounded: it gives up after
  // kSyncTimeoutMs without an answer, in doubt); then judge.
  // If the agent before stopped between the publish and SetAcked, the
  // committer waits for an acknowledgement: give it, when the log's last
  // record is the one of its commit (the ring entry's checksum).
  const int64_t pending_until = SteadyMs() + kSyncTimeoutMs + 1000;
  bool ack_checked = false;
  while (log_txid == pos.txid + 1 && n_.sidecar.pending_txid() == log_txid &&
         CommitterAlive(n_.sidecar.pending_commit()) && SteadyMs() < pending_until) {
    if (!ack_checked && pos.acked_txid < log_txid) {
      ack_checked = true;
      uint64_t sum = 0;
      sidecar::CommitEntry e;
      if (LastRecordChecksum(last, log_txid, &sum) && n_.sidecar.GetCommit(log_txid, &e) && e.checksum_after == sum)
        n_.sidecar.SetAcked(log_txid, last.seq, sum);
    }
    if (!a_.Sleep(1)) break;
    pos = n_.sidecar.Read();
  }
  if (a_.stopping()) return;
  pos = n_.sidecar.Read();
  if (log_txid == pos.txid + 1 && n_.sidecar.indoubt_txid() == log_txid) {
    // It gave up (in doubt): the log has its record, the database takes it.
    if (!ReconcileInDoubt(log, &seq)) return;
    seq = found ? last.seq : 0;
    pos = n_.sidecar.Read();
  }
  if (log_txid > pos.txid) {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.fenced = true;
    n_.SetError("litejet: the log of \"" + n_.cfg.name + "\" is at TXID " + std::to_string(log_txid) +
                " but this database is at " + std::to_string(pos.txid) +
                ": another node has been primary; this node does not write");
    return;
  }
  n_.sidecar.SetAcked(std::max(pos.acked_txid, log_txid), seq);
  // role=auto: writes open once the log ends where this database does: its
  // commits that never reached the log (this node was primary before and
  // died or lost the lease with them unshipped; reading the log to its end
  // showed nobody wrote past them) are shipped first, in this lease's epoch;
  // then the epoch marker goes in (hooks->ready).
  bool ready = !gated;
  if (!ready && n_.sidecar.Read().acked_txid >= n_.sidecar.Read().txid) {
    if (!hooks->ready(&seq)) return;  // nothing to ship first (and an empty database gets WAL mode here)
    ready = true;
  }
  a_.NotifyAll();

  locallog::Reader reader;
  Status s = reader.Open(n_.path, &n_.sidecar);
  if (!s.ok()) {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.SetError(s.message());
    return;
  }
  uint64_t next = n_.sidecar.Read().acked_txid + 1;
  int spool_fd = ::open(n_.spool.path().c_str(), O_RDONLY | O_CLOEXEC);
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
  // Idle, the agent waits for the next commit in one of two ways. At low
  // commit rates it sleeps on the sidecar's change word, which every
  // commit moves (of any process): shipping starts within a wake-up
  // (~0.05 ms), and each commit pays one futex wake. At high rates it
  // polls every millisecond instead: the commit path then makes no system
  // call, and each pass ships a batch. The rate is what the agent shipped
  // in the last window of at least 10 ms.
  constexpr uint64_t kPollAbovePerSec = 2000;
  int64_t window_start = SteadyMs();
  uint64_t window_txns = 0;
  bool polling = false;
  while (!a_.stopping()) {
    const uint32_t change_seen = n_.sidecar.change_count();  // before the position is read
    if (hooks && hooks->due() && hooks->tick()) break;       // role=auto: no longer primary
    commit_.GuardBacklog(false);
    a_.Beat();
    if (n_.sidecar.indoubt_txid() != 0) {
      if (!ReconcileInDoubt(log, &seq)) break;
      next = n_.sidecar.Read().acked_txid + 1;
      continue;
    }
    // Gather what is committed and not shipped: one record, or a backlog of
    // small ones packed into one message (one publish, one round trip).
    sidecar::Position now = n_.sidecar.Read();
    if (!ready && now.acked_txid >= now.txid) {
      if (!hooks->ready(&seq)) break;
      ready = true;
      next = n_.sidecar.Read().acked_txid + 1;
      continue;
    }
    // A sync committer's record lies just past the spool's committed end
    // while it waits for exactly this ship.
    // Only while its committer is alive: a live sync committer holds
    // WAL_WRITE_LOCK until JetStream answered; a dead one's record must never
    // ship (its commit frame was never written; the next writer drops it).
    // WAL_WRITE_LOCK held is not enough: the next writer holds it while it
    // resolves a dead committer's commit, whose record must not ship. The
    // committer's process must be alive (same host: the lock says so).
    const bool sync_pending = n_.cfg.durability == Durability::kSync && n_.sidecar.pending_txid() == now.txid + 1 &&
                              CommitterAlive(n_.sidecar.pending_commit()) && a_.WriteLockHeld();
    uint64_t last = sync_pending ? now.txid + 1 : now.txid;
    uint64_t spool_limit = now.spool_end;
    if (sync_pending && spool_fd >= 0) {
      struct stat sb;
      if (::fstat(spool_fd, &sb) == 0) spool_limit = uint64_t(sb.st_size);
    }
    if (!sync_pending && reader.spool_offset() > now.spool_end) reader.set_spool_offset(now.spool_end);
    txns.clear();
    const uint64_t spool_off0 = reader.spool_offset();
    s = next <= last
            ? reader.Read(next, last, now.txid, now.spool_end, spool_limit, 1024, max_chunk * 4, n_.cfg.node, &txns)
            : Status::OK();
    if (!s.ok()) {
      {
        std::lock_guard<std::mutex> g(n_.mu);
        n_.SetError(s.message());
      }
      if (s.code() == SQLITE_BUSY_RECOVERY) {
        // No connection has read the database since the shm was created
        // (a restart after a crash): let SQLite rebuild the wal-index.
        if (!recovery_db) sqlite3_open_v2(n_.path.c_str(), &recovery_db, SQLITE_OPEN_READWRITE, "unix");
        if (recovery_db) sqlite3_exec(recovery_db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
      }
      if (s.code() == SQLITE_BUSY || s.code() == SQLITE_BUSY_RECOVERY) {
        if (!a_.Sleep(5)) break;
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
    const uint64_t ship_epoch =
        std::max(n_.sidecar.Read().epoch, hooks && hooks->term_epoch ? hooks->term_epoch() : uint64_t(0));
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
      std::lock_guard<std::mutex> g(n_.mu);
      n_.SetError(s.message());
      break;
    }
    // What did not fit is read again next time (from the spool too: rewind;
    // entries before next are skipped).
    if (batch.size() < txns.size()) reader.set_spool_offset(spool_off0);
    if (batch.empty()) {
      if (now.spool_end > 0 && !sync_pending && ResetSpool()) reader.set_spool_offset(0);
      const int64_t t = SteadyMs();
      if (t - window_start >= 10) {
        // Sync: never. A committer of another process waits for this agent,
        // which would see its Kick only at the next poll (up to 1 ms).
        polling = n_.cfg.durability != Durability::kSync &&
                  window_txns * 1000 >= kPollAbovePerSec * uint64_t(t - window_start);
        window_start = t;
        window_txns = 0;
      }
      // Either way at most a millisecond, as always: the lease, the
      // heartbeat and the backlog guard keep their cadence.
      if (!(polling ? a_.Sleep(1) : a_.SleepUntilChange(change_seen, 1))) break;
      continue;
    }
    if (s.ok() && batch.size() == 1 && !single) {
      batch[0].clear();
      s = record::Encode(txns[0], record::Compression::kZstd, &batch[0]);  // alone after all
    }
    if (s.ok() && batch.size() > 1) s = record::EncodeBatch(batch, &blob, 1);
    if (s.ok()) s = record::Split(batch.size() == 1 ? batch[0] : blob, last_txid, max_chunk, &chunks);
    if (!s.ok()) {
      std::lock_guard<std::mutex> g(n_.mu);
      n_.SetError(s.message());
      break;
    }
    // The msg-id names the content too (the checksum after it): a record that
    // did not land is replaced by another one with the same TXIDs, which the
    // dedupe window must not take for the first.
    bool abandoned = false;
    for (size_t i = 0; i < chunks.size() && !a_.stopping() && !abandoned; i++) {
      std::string id = n_.cfg.name + ":" + std::to_string(epoch) + ":" + std::to_string(first_txid) + "-" +
                       std::to_string(last_txid) + ":" + checksum::Hex(last_checksum) + ":" + std::to_string(i);
      for (;;) {
        // A sync committer gave up waiting: its record is not sent again;
        // what the log has decides (ReconcileInDoubt).
        if (n_.sidecar.indoubt_txid() != 0) {
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
          if (n_.crash_point == 5 && i == 0 && chunks.size() > 1 && batch.size() > 1 && last_txid >= n_.crash_txid)
            _exit(9);
          break;
        }
        a_.connected = false;
        {
          // Under n_.mu: once a sync committer gave up (it says why), its
          // reason stays in last_error, not this publish's failure.
          std::lock_guard<std::mutex> g(n_.mu);
          if (n_.sidecar.indoubt_txid() != 0 && s.code() != transport::kFenced) {
            abandoned = true;
            break;
          }
          n_.SetError(s.message());
        }
        if (s.code() == transport::kFenced) {
          std::lock_guard<std::mutex> g(n_.mu);
          n_.fenced = true;
          n_.SetError("litejet: fenced: another node appended to the log of \"" + n_.cfg.name +
                      "\"; this node stopped writing");
          if (spool_fd >= 0) ::close(spool_fd);
          return;
        }
        commit_.GuardBacklog(false);
        if (!a_.Sleep(200)) {
          if (spool_fd >= 0) ::close(spool_fd);
          return;
        }
      }
    }
    if (a_.stopping()) break;
    if (hold_ack_txid != 0 && !abandoned && first_txid <= hold_ack_txid && hold_ack_txid <= last_txid) {
      auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(hold_ack_ms > 0 ? hold_ack_ms : 15000);
      while ((hold_ack_ms > 0 || n_.sidecar.indoubt_txid() != hold_ack_txid) &&
             std::chrono::steady_clock::now() < until && a_.Sleep(5)) {
      }
      hold_ack_txid = 0;  // once
    }
    // In doubt meanwhile: the committer already failed; the log decides.
    if (abandoned || n_.sidecar.indoubt_txid() != 0) continue;
    // The link is up and the error gone before SetAcked releases repl_wait:
    // whoever it wakes reads a status that agrees.
    a_.connected = true;
    n_.ClearError();
    n_.sidecar.SetAcked(last_txid, seq, txns[batch.size() - 1].checksum_after);
    window_txns += batch.size();
    // The log took a record of this term: its epoch is this node's now.
    if (ship_epoch > n_.sidecar.Read().epoch) n_.sidecar.SetEpoch(ship_epoch);
    next = last_txid + 1;
  }
  if (spool_fd >= 0) ::close(spool_fd);
  (void)reader;
}

// Everything in the spool is shipped: start it over at offset 0, under
// WAL_WRITE_LOCK so that no hand-off or sync commit writes meanwhile (the
// file keeps its size: its blocks are reused).
bool Shipper::ResetSpool() {
  sidecar::Position p = n_.sidecar.Read();
  if (p.acked_txid < p.spooled_txid) return false;
  // Sync: every commit's record passes through the spool, and the next
  // committer holds WAL_WRITE_LOCK while it waits for this agent. A reset
  // after each commit cost a lock and an msync per commit, and waiting for
  // the lock kept that committer waiting for its ack up to 100 ms: reset a
  // spool of 1 MiB or more, and wait for the lock only past 64 MiB.
  constexpr uint64_t kSyncResetBytes = uint64_t(1) << 20, kSyncWaitBytes = uint64_t(64) << 20;
  const bool sync = n_.cfg.durability == Durability::kSync;
  if (sync && p.spool_end < kSyncResetBytes) return false;
  apply::WalWriter* locker = a_.Locker();
  if (!locker) return false;
  bool done = false;
  locker->WithWriteLock(sync && p.spool_end < kSyncWaitBytes ? 0 : 100, [&] {
    sidecar::Position pos = n_.sidecar.Read();
    if (n_.sidecar.pending_txid() != 0 || pos.acked_txid < pos.spooled_txid) return;
    n_.sidecar.SetSpooled(pos.spooled_txid, 0);
    // On disk before the next hand-off writes over the spool's front.
    (void)n_.sidecar.SyncHeader();
    done = true;
  });
  return done;
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
bool Shipper::ReconcileInDoubt(transport::Log& log, uint64_t* seq) {
  for (;;) {
    const uint64_t txid = n_.sidecar.indoubt_txid();
    if (txid == 0) return true;
    bool done = false;
    Status s = ReconcileOnce(log, txid, seq, &done);
    if (s.code() == SQLITE_CORRUPT) {
      // The log's answer cannot be read or does not fit this database.
      std::lock_guard<std::mutex> g(n_.mu);
      n_.fenced = true;
      n_.SetError(n_.InDoubtMessage(txid) + ": " + s.message() + "; this node stopped writing");
    }
    if (n_.fenced) return false;
    if (s.ok() && done) {
      a_.connected = true;
      n_.ClearError();
      a_.NotifyAll();
      return true;
    }
    if (!s.ok()) {
      if (s.code() == transport::kUnavailable) a_.connected = false;
      std::lock_guard<std::mutex> g(n_.mu);
      n_.SetError(n_.InDoubtMessage(txid) + ": " + s.message());
    }
    commit_.GuardBacklog(false);
    if (!a_.Sleep(s.code() == SQLITE_BUSY ? 20 : 250)) return false;
  }
}

Status Shipper::ReconcileOnce(transport::Log& log, uint64_t txid, uint64_t* seq, bool* done) {
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
      return Status::Error("litejet: the last message of the log of \"" + n_.cfg.name + "\" (sequence " +
                               std::to_string(last.seq) + ") is not a litejet record",
                           SQLITE_CORRUPT);
    }
    log_txid = ci.index + 1 == ci.count ? ci.txid : ci.txid - 1;
  }
  const uint64_t last_seq = found ? last.seq : 0;
  const sidecar::Position pos = n_.sidecar.Read();
  auto fence = [&](const std::string& why) {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.fenced = true;
    n_.SetError("litejet: the log of \"" + n_.cfg.name + "\" " + why + " while sync commit TXID " +
                std::to_string(txid) + " was in doubt at TXID " + std::to_string(pos.txid) +
                ": another node has been primary; this node does not write");
    return Status::OK();
  };
  const char* verdict = nullptr;
  if (pos.txid + 1 == txid && log_txid + 1 == txid) {
    // It did not land. Also forget an acknowledgement recorded while the
    // committer was giving up: the next commit of this TXID waits for its own.
    Status ls = a_.Locker() ? a_.Locker()->WithWriteLock(2000,
                                                         [&] {
                                                           if (n_.sidecar.indoubt_txid() != txid) return;
                                                           n_.sidecar.SetAcked(pos.txid, last_seq);
                                                           n_.sidecar.SetInDoubt(0);
                                                         })
                            : Status::Error("litejet: agent cannot open " + n_.path, SQLITE_CANTOPEN);
    if (!ls.ok()) return ls;
    verdict = "did not reach the log: forgotten";
  } else if (pos.txid > txid && pos.acked_txid >= pos.txid && log_txid >= pos.txid) {
    // This node was a replica meanwhile (demoted with the commit in doubt)
    // and applied the log past that TXID: the log decided, this database
    // has its answer.
    Status ls = a_.Locker() ? a_.Locker()->WithWriteLock(2000,
                                                         [&] {
                                                           if (n_.sidecar.indoubt_txid() != txid) return;
                                                           n_.sidecar.SetInDoubt(0);
                                                         })
                            : Status::Error("litejet: agent cannot open " + n_.path, SQLITE_CANTOPEN);
    if (!ls.ok()) return ls;
    verdict = "was settled by the log while this node was a replica";
  } else if (pos.txid == txid && log_txid == txid) {
    // Taken from the log already (the agent stopped before it said so).
    Status ls = a_.Locker() ? a_.Locker()->WithWriteLock(2000,
                                                         [&] {
                                                           if (n_.sidecar.indoubt_txid() != txid) return;
                                                           n_.sidecar.SetAcked(txid, last_seq);
                                                           n_.sidecar.SetInDoubt(0);
                                                         })
                            : Status::Error("litejet: agent cannot open " + n_.path, SQLITE_CANTOPEN);
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
      return Status::Error(
          "litejet: cannot read TXID " + std::to_string(txid) + " back from the log of \"" + n_.cfg.name + "\"",
          transport::kUnavailable);
    }
    std::vector<std::string> recs;
    ds = record::Unbatch(&rec, &recs);
    if (!ds.ok()) return ds;
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
    if (!have || t.node != n_.cfg.node || t.epoch != pos.epoch || t.checksum_before != pos.checksum) {
      return fence("has TXID " + std::to_string(txid) + " from " + (have ? "node \"" + t.node + "\"" : "elsewhere") +
                   (have && t.node == n_.cfg.node ? " on another database state" : ""));
    }
    s = TakeFromLog(t, last.seq);
    if (!s.ok()) return s;
    verdict = "landed in the log: taken from there";
  } else {
    return fence("ends at TXID " + std::to_string(log_txid));
  }
  *seq = last_seq;
  *done = true;
  sqlite3_log(SQLITE_NOTICE, "litejet: %s: sync commit TXID %llu %s", n_.cfg.name.c_str(), (unsigned long long)txid,
              verdict);
  return Status::OK();
}

// Applies the log's record of the commit in doubt, as a replica would: under
// WAL_WRITE_LOCK, so that the frames, the position and the end of the doubt
// go together. Dying in the middle leaves the doubt (and the pending mark):
// the next agent applies the same record again.
Status Shipper::TakeFromLog(const record::Txn& t, uint64_t seq) {
  apply::WalWriter* w = a_.Locker();
  if (!w) return Status::Error("litejet: agent cannot open " + n_.path, SQLITE_CANTOPEN);
  Status st;
  Status ls = w->WithWriteLock(2000, [&] {
    if (n_.sidecar.indoubt_txid() != t.txid) return;
    sidecar::Position pos = n_.sidecar.Read();
    NodeState::Update u;
    st = n_.CheckRecord(pos, t, &u);
    if (st.ok()) st = n_.sidecar.BeginUpdate(t.txid, std::max(pos.db_pages, t.db_pages));
    if (!st.ok()) return;
    st = w->AppendLocked(t.page_size, t.db_pages, t.pages);
    if (!st.ok()) {
      n_.sidecar.CommitUpdate(pos);  // clears the pending mark: nothing applied
      return;
    }
    n_.StoreUpdate(u);
    n_.sidecar.SetAcked(t.txid, seq);
    n_.sidecar.SetInDoubt(0);
  });
  if (!ls.ok()) return ls;
  if (st.code() == SQLITE_BUSY_RECOVERY) {
    // Let SQLite rebuild the wal-index (a private reader), then try again.
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(n_.path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") == SQLITE_OK) {
      sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
    }
    sqlite3_close(db);
    return Status::Error(st.message(), SQLITE_BUSY);
  }
  return st;
}

}  // namespace litejet
