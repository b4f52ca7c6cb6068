// Applier, the replica's agent loop: reads the log and applies each
// transaction to the WAL and wal-index (WalWriter) under the readers,
// checking TXID, epoch and checksum chain (ApplyRecord, CheckRecord); a
// history that is not the log's goes to the rebuild, a read the log can no
// longer serve (kTruncated: retention) to the bootstrap (rebuild.cc).
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

#include "common/clock.h"
#include "extension/applier.h"
#include "extension/power.h"
#include "failover/role.h"
#include "wal-capture/apply.h"
#include "wal-capture/checksum.h"
#include "wal-capture/local_log.h"
#include "wal-capture/record.h"
#include "wal-capture/spool.h"

namespace litejet {
void Applier::Run(transport::Log& log, const RoleHooks* hooks) {
  LITEJET_RETRY(log.Ensure(2000));
  a_.connected = true;
  n_.ClearError();
  apply::WalWriter writer;
  Status s = writer.Open(n_.path);
  sqlite3* db = nullptr;
  if (s.ok() && sqlite3_open_v2(n_.path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) {
    s = Status::Error("litejet: agent cannot open " + n_.path + ": " + (db ? sqlite3_errmsg(db) : "?"));
  }
  if (!s.ok()) {
    sqlite3_close(db);
    std::lock_guard<std::mutex> g(n_.mu);
    n_.SetError(s.message());
    return;
  }
  sqlite3_busy_timeout(db, 1000);
  // Power loss: the WAL is synced before the sidecar records a position as
  // durable (the mark), once per read or 100 ms, never per transaction.
  writer.set_on_new_header([&](uint32_t a, uint32_t b) { return power::MarkNewGeneration(n_, writer, a, b); });
  // A bootstrap or rebuild puts the whole database through the WAL once:
  // give the disk back at the next restart.
  writer.set_wal_size_limit(int64_t(64) << 20);
  auto last_sync = std::chrono::steady_clock::now();
  auto sync_applied = [&] {
    Status ss = power::SyncApplied(n_, writer);
    last_sync = std::chrono::steady_clock::now();
    if (!ss.ok()) {
      std::lock_guard<std::mutex> g(n_.mu);
      n_.SetError(ss.message());
    }
  };
  // Keep the WAL bounded: checkpoint (readers permitting) every 1000 frames
  // appended; the next append restarts the WAL once everything is
  // backfilled.
  uint32_t ckpt_frames = 0;  // wal_frames() at the last checkpoint
  auto checkpoint_if_due = [&] {
    const uint32_t f = writer.wal_frames();
    if (f < ckpt_frames) ckpt_frames = 0;  // the WAL restarted
    if (f <= 1000 || f - ckpt_frames < 1000) return;
    sync_applied();
    sqlite3_exec(db, "PRAGMA wal_checkpoint(PASSIVE)", nullptr, nullptr, nullptr);
    ckpt_frames = f;
  };
  // A commit this node made as primary and whose committer was killed
  // before finishing it: settled first (it committed, or it is undone), so
  // that no record is applied on top of a transaction the sidecar does not
  // know (its pages would mix with the record's under the log's checksum).
  s = SettleDeadCommit(db, 20);
  if (!s.ok()) {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.SetError(s.message());
    sqlite3_close(db);
    return;
  }
  record::Reassembler ra;
  uint64_t from = n_.sidecar.Read().log_seq + 1;
  {
    // The log acknowledged more than this database holds: a sync committer
    // was killed after JetStream acknowledged its record, before its commit
    // frame (a primary's next writer would take it from the log; as a
    // replica, apply it). log_seq is that record's last chunk: read the
    // record again from its first.
    const sidecar::Position p0 = n_.sidecar.Read();
    if (p0.acked_txid > p0.txid && p0.log_seq > 0) {
      uint64_t first = p0.log_seq;
      (void)log.Read(p0.log_seq, 2000, [&](const transport::Message& m) {
        record::ChunkInfo ci;
        if (m.seq == p0.log_seq && record::PeekChunk(m.data.data(), m.data.size(), &ci) && ci.index < m.seq) {
          first = m.seq - ci.index;
        }
        return false;
      });
      from = first;
    }
  }
  uint64_t record_start = from;
  bool fatal = false;
  std::string rec;
  std::vector<record::Txn> txns;
  bool leave = false;
  std::string diverged;  // why this database's history is not the log's
  {
    // role=replica: a file with tables of its own that the sidecar knows
    // nothing of (a primary's existing database has its pages hashed
    // instead, and its first record continues them): not
    // the log's history; no record may land on it. Kept as
    // <db>.diverged-* and rebuilt (from a snapshot and the log) below.
    // Its own short-lived connection, and only for a file with pages:
    // the applier's connection is left as a fresh replica's always was.
    const sidecar::Position p0 = n_.sidecar.Read();
    struct stat fst;
    int64_t tables = 0;
    if (n_.cfg.role == Role::kReplica && p0.txid == 0 && p0.db_pages == 0 && ::stat(n_.path.c_str(), &fst) == 0 &&
        fst.st_size > 0) {
      sqlite3* probe = nullptr;
      sqlite3_stmt* st = nullptr;
      if (sqlite3_open_v2(n_.path.c_str(), &probe, SQLITE_OPEN_READONLY, "unix") == SQLITE_OK &&
          sqlite3_prepare_v2(probe, "SELECT count(*) FROM sqlite_master", -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW) {
        tables = sqlite3_column_int64(st, 0);
      }
      sqlite3_finalize(st);
      sqlite3_close(probe);
    }
    if (tables > 0) {
      diverged = "litejet: database \"" + n_.cfg.name + "\" is not empty (" + std::to_string(tables) +
                 " schema objects) but unknown to the log (it has no TXID)";
    }
  }
  while (!a_.stopping() && !fatal && !leave) {
    a_.Beat();
    if (hooks && hooks->due() && hooks->tick()) {  // role=auto: elected
      leave = true;
      break;
    }
    Status rs = log.Read(from, 500, [&](const transport::Message& m) {
      if (a_.stopping() || !diverged.empty()) return false;
      if (hooks && hooks->due() && !ra.pending()) return false;  // the role's turn
      a_.Beat();
      if (!a_.connected) {
        // Messages flow again: the outage is over.
        a_.connected = true;
        n_.ClearError();
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
        std::lock_guard<std::mutex> g(n_.mu);
        n_.SetError("litejet: log of \"" + n_.cfg.name + "\" at sequence " + std::to_string(m.seq) + ": " +
                    a.message());
        return true;  // skip it; continuity checks catch a real gap
      }
      if (!complete) return true;
      std::vector<std::string> recs;
      a = record::Unbatch(&rec, &recs);
      txns.resize(recs.size());
      for (size_t i = 0; a.ok() && i < recs.size(); i++) a = record::Decode(recs[i].data(), recs[i].size(), &txns[i]);
      // A batch's records that follow the position go in as one WAL
      // transaction (ApplyRun); the others (already applied, an epoch
      // marker, a lone record) one by one. Inside a batch, a restart must
      // read the whole message again (the records already applied are
      // skipped): resume before its first chunk. repl_primary() names the
      // writer by its advertise address (a header).
      for (size_t i = 0; a.ok() && i < recs.size();) {
        const std::string& who = m.advertise.empty() ? txns[i].node : m.advertise;
        size_t j = i;
        const uint64_t at = n_.sidecar.Read().txid;
        while (j < recs.size() && !txns[j].epoch_marker && txns[j].txid == at + 1 + (j - i)) j++;
        if (j - i >= 2) {
          a = ApplyRun(writer, db, txns, i, j, j == recs.size() ? m.seq : record_start - 1, who);
          i = j;
        } else {
          a = ApplyRecord(writer, db, txns[i], i + 1 == recs.size() ? m.seq : record_start - 1, who);
          i++;
        }
      }
      if (a.ok() && std::chrono::steady_clock::now() - last_sync > std::chrono::milliseconds(100)) sync_applied();
      // While records keep coming the read does not return: keep the WAL
      // bounded here too (it grew by every record: 920 MB after 200,000
      // one-row transactions at full speed, bench/bigdb_bench.py).
      if (a.ok()) checkpoint_if_due();
      if (!a.ok() && a.code() == kDiverged) {
        diverged = a.message();
        return false;
      }
      if (!a.ok()) {
        std::lock_guard<std::mutex> g(n_.mu);
        n_.SetError(a.message());
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
    const sidecar::Position now = n_.sidecar.Read();
    if (!rs.ok() && rs.code() == transport::kTruncated && diverged.empty() && !fatal && now.txid > now.acked_txid) {
      // Commits of this node's primary days the log never acknowledged, and
      // the log moved on without them: kept, then rebuilt (below).
      diverged = "litejet: database \"" + n_.cfg.name + "\" diverged: its TXIDs " + std::to_string(now.acked_txid + 1) +
                 ".." + std::to_string(now.txid) + " never reached the log, which no longer holds what follows TXID " +
                 std::to_string(now.acked_txid) + " (" + rs.message() + ")";
    } else if (!rs.ok() && rs.code() == transport::kTruncated && diverged.empty() && !fatal) {
      // Retention purged what this replica reads next: start over from the
      // newest usable snapshot and the log after it. A failure is retried
      // (a snapshot may come; the log may answer again).
      uint64_t resume = 0;
      Status bs = Bootstrap(log, writer, db, rs.message(), &resume);
      ra.Reset();
      if (bs.ok()) {
        from = record_start = resume;
        continue;
      }
      if (!a_.Sleep(1000)) break;
      continue;
    }
    if (!rs.ok() && diverged.empty()) {
      a_.connected = false;
      std::lock_guard<std::mutex> g(n_.mu);
      n_.SetError(rs.message());
    } else if (!a_.connected) {
      a_.connected = true;
      n_.ClearError();
    }
    if (rs.ok() && diverged.empty() && n_.cfg.role == Role::kReplica) {
      // At the log's end (no message for a while) with commits the log never
      // acknowledged: a primary's, before this node was made a replica. A
      // replica never ships them: they are not history.
      const sidecar::Position p = n_.sidecar.Read();
      if (p.txid > p.acked_txid) {
        diverged = "litejet: database \"" + n_.cfg.name + "\" diverged: it is ahead of the log (TXIDs " +
                   std::to_string(p.acked_txid + 1) + ".." + std::to_string(p.txid) +
                   " never reached it) and role=replica never ships them";
      }
    }
    if (!diverged.empty()) {
      // Once per agent: a rebuild that failed is not tried again (each try
      // keeps another copy of the database); the reason stays in last_error.
      if (rebuild_failed_) {
        std::lock_guard<std::mutex> g(n_.mu);
        n_.SetError(diverged + "; not rebuilt: an earlier rebuild failed (" + rebuild_error_ + ")");
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
    // Between reads: durable, and a checkpoint of what the WAL holds.
    sync_applied();
    if (writer.wal_frames() > 1000) {
      sqlite3_exec(db, "PRAGMA wal_checkpoint(PASSIVE)", nullptr, nullptr, nullptr);
      ckpt_frames = writer.wal_frames();
    }
    if (rs.ok() == false && !a_.Sleep(250)) break;
  }
  sync_applied();
  sqlite3_close(db);
}

Status Applier::ApplyRecord(apply::WalWriter& writer, sqlite3* db, const record::Txn& t, uint64_t seq,
                            const std::string& primary) {
  if (n_.sidecar.pending_txid() != 0 && n_.sidecar.pending_commit().commit_frame != 0) {
    // A committer of this node's primary days, killed since (checked here
    // too: it may have been mid-commit in another process at the demotion).
    Status st = SettleDeadCommit(db, 1);
    if (!st.ok()) return st;  // SQLITE_BUSY: this record again later
  }
  sidecar::Position pos = n_.sidecar.Read();
  if (t.epoch_marker) {
    // A new primary's first word: nothing to write, an epoch to learn.
    if (t.epoch < pos.epoch) {
      return Status::Error("litejet: epoch marker of \"" + n_.cfg.name + "\" for epoch " + std::to_string(t.epoch) +
                               " after epoch " + std::to_string(pos.epoch) + ": refused (node " + t.node + ")",
                           SQLITE_CORRUPT);
    }
    if (t.txid == pos.txid && t.checksum_after != pos.checksum) {
      return Status::Error("litejet: database \"" + n_.cfg.name + "\" diverged: at TXID " + std::to_string(pos.txid) +
                               " its checksum is " + checksum::Hex(pos.checksum) + " but the log says " +
                               checksum::Hex(t.checksum_after) + " (epoch marker of node " + t.node + ")",
                           kDiverged);
    }
    if (t.txid < pos.txid && t.txid >= pos.acked_txid) {
      // A new primary started from the log's end at t.txid: this node's
      // commits after it (never acknowledged by the log) are not history.
      return Status::Error("litejet: database \"" + n_.cfg.name + "\" diverged: it has TXIDs " +
                               std::to_string(t.txid + 1) + ".." + std::to_string(pos.txid) +
                               " that never reached the log, and node " + t.node + " became primary in epoch " +
                               std::to_string(t.epoch) + " at TXID " + std::to_string(t.txid),
                           kDiverged);
    }
    if (t.txid > pos.txid) {
      return Status::Error("litejet: log of \"" + n_.cfg.name + "\" has an epoch marker at TXID " +
                               std::to_string(t.txid) + " while this replica is at " + std::to_string(pos.txid),
                           SQLITE_CORRUPT);
    }
    if (t.epoch > pos.epoch) n_.sidecar.SetEpoch(t.epoch);
    {
      std::lock_guard<std::mutex> g(n_.mu);
      n_.primary_seen = primary;
    }
    n_.sidecar.SetAcked(std::max(pos.acked_txid, std::min(t.txid, pos.txid)), seq);
    return Status::OK();
  }
  if (t.txid <= pos.txid) {
    // Already in this database: applied (a restart read it again), or this
    // node's own commit shipped before it became a replica. Unless it is
    // not: another node's record for a TXID this node committed and the log
    // never acknowledged, or other content at this node's TXID.
    const bool this_one = t.txid == pos.txid && t.checksum_after == pos.checksum;  // applied, not yet acknowledged
    if (t.txid > pos.acked_txid && t.node != n_.cfg.node && !this_one) {
      return Status::Error("litejet: database \"" + n_.cfg.name + "\" diverged: its TXID " + std::to_string(t.txid) +
                               " never reached the log, which has node " + t.node + "'s TXID " +
                               std::to_string(t.txid) + " (epoch " + std::to_string(t.epoch) + ") instead",
                           kDiverged);
    }
    if (t.txid == pos.txid && t.checksum_after != pos.checksum) {
      return Status::Error("litejet: database \"" + n_.cfg.name + "\" diverged: at TXID " + std::to_string(pos.txid) +
                               " its checksum is " + checksum::Hex(pos.checksum) + " but the log says " +
                               checksum::Hex(t.checksum_after) + " (node " + t.node + ", epoch " +
                               std::to_string(t.epoch) + ")",
                           kDiverged);
    }
    {
      std::lock_guard<std::mutex> g(n_.mu);
      n_.primary_seen = primary;
    }
    if (t.epoch > pos.epoch) n_.sidecar.SetEpoch(t.epoch);
    n_.sidecar.SetAcked(std::max(pos.acked_txid, t.txid), seq);
    return Status::OK();
  }
  NodeState::Update u;
  Status s = n_.CheckRecord(pos, t, &u);
  if (!s.ok()) return s;
  return AppendAndStore(writer, db, pos, t.txid, t.txid, t.page_size, t.db_pages, std::max(pos.db_pages, t.db_pages),
                        t.pages, t.epoch, u, seq, primary);
}

// Records [i, j) of a batch, each the next TXID, applied as one WAL
// transaction: every record is checked in turn (TXID, epoch, the checksum
// chain) against the page hashes the ones before it leave (an overlay), and
// the last version of each page goes to the WAL once. Readers see the
// run's end; the position jumps to its last TXID. A previous attempt that
// died while storing its update left the pending mark at that TXID: the
// restart reads the same message and runs the same records again, trusting
// their checksums as ApplyRecord does for one.
Status Applier::ApplyRun(apply::WalWriter& writer, sqlite3* db, std::vector<record::Txn>& txns, size_t i, size_t j,
                         uint64_t seq, const std::string& primary) {
  if (n_.sidecar.pending_txid() != 0 && n_.sidecar.pending_commit().commit_frame != 0) {
    Status st = SettleDeadCommit(db, 1);
    if (!st.ok()) return st;  // SQLITE_BUSY: this record again later
  }
  const sidecar::Position pos = n_.sidecar.Read();
  const record::Txn& last = txns[j - 1];
  const bool reapply = n_.sidecar.pending_txid() == last.txid && n_.sidecar.pending_commit().commit_frame == 0;
  NodeState::HashOverlay overlay;
  sidecar::Position at = pos;
  uint64_t epoch = pos.epoch;
  uint32_t max_pages = pos.db_pages;
  for (size_t k = i; k < j; k++) {
    Status s = n_.CheckRecord(at, txns[k], &run_update_, &overlay, reapply);
    if (!s.ok()) return s;
    for (const auto& [pgno, h] : run_update_.hashes) overlay[pgno] = h;
    at = run_update_.pos;
    at.epoch = std::max(at.epoch, txns[k].epoch);
    epoch = std::max(epoch, txns[k].epoch);
    max_pages = std::max(max_pages, txns[k].db_pages);
  }
  // What the WAL gets: each page's last version, none past the final size.
  run_pages_.clear();
  for (size_t k = j; k-- > i;) {
    for (record::Page& pg : txns[k].pages) {
      if (pg.pgno <= last.db_pages && run_seen_.insert(pg.pgno).second) run_pages_.push_back(std::move(pg));
    }
  }
  run_seen_.clear();
  std::sort(run_pages_.begin(), run_pages_.end(),
            [](const record::Page& a, const record::Page& b) { return a.pgno < b.pgno; });
  NodeState::Update& u = run_update_;
  u.pos = pos;
  u.pos.txid = last.txid;
  u.pos.checksum = at.checksum;
  u.pos.page_size = at.page_size;
  u.pos.db_pages = at.db_pages;
  u.hashes.clear();
  for (const auto& [pgno, h] : overlay) {
    if (pgno <= last.db_pages) u.hashes.emplace_back(pgno, h);
  }
  std::sort(u.hashes.begin(), u.hashes.end());
  return AppendAndStore(writer, db, pos, txns[i].txid, last.txid, last.page_size, last.db_pages, max_pages, run_pages_,
                        epoch, u, seq, primary);
}

// Check, mark, append and store under one WAL_WRITE_LOCK: a committer of
// this node that passed its write check just before a demotion could
// otherwise commit between the position read and the append, and the
// records would land on top of its transaction.
Status Applier::AppendAndStore(apply::WalWriter& writer, sqlite3* db, const sidecar::Position& pos, uint64_t first,
                               uint64_t last, uint32_t page_size, uint32_t db_pages, uint32_t max_pages,
                               const std::vector<record::Page>& pages, uint64_t epoch, const NodeState::Update& u,
                               uint64_t seq, const std::string& primary) {
  {
    // Before the position moves: whoever repl_wait() releases must see the
    // writer of what it waited for.
    std::lock_guard<std::mutex> g(n_.mu);
    n_.primary_seen = primary;
  }
  for (int attempt = 0;; attempt++) {
    Status inner;
    Status ls = writer.WithWriteLock(2000, [&] {
      const sidecar::Position now = n_.sidecar.Read();
      if (now.txid != pos.txid || now.checksum != pos.checksum ||
          (n_.sidecar.pending_txid() != 0 && n_.sidecar.pending_commit().commit_frame != 0)) {
        inner = Status::Error(
            "litejet: database \"" + n_.cfg.name + "\" changed (TXID " + std::to_string(now.txid) + ") while " +
                (first == last ? "record TXID " + std::to_string(last) + " was"
                               : "records TXID " + std::to_string(first) + ".." + std::to_string(last) + " were") +
                " being applied",
            SQLITE_BUSY);
        return;
      }
      inner = n_.sidecar.BeginUpdate(last, max_pages);
      if (!inner.ok()) return;
      inner = writer.AppendLocked(page_size, db_pages, pages);
      if (!inner.ok()) {
        n_.sidecar.CommitUpdate(pos);  // clears the pending mark: nothing applied
        return;
      }
      n_.StoreUpdate(u);
      if (epoch > pos.epoch) n_.sidecar.SetEpoch(epoch);  // the newest epoch seen only grows
      n_.sidecar.SetAcked(last, seq);
    });
    if (ls.ok() && inner.ok()) break;
    Status s = ls.ok() ? inner : ls;
    if (s.code() == SQLITE_BUSY && ls.ok()) return s;  // the position moved: read the record(s) again
    if (s.code() == SQLITE_BUSY_RECOVERY) {
      // Let SQLite rebuild the wal-index from the WAL, then try again.
      sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
    }
    if (a_.stopping() || attempt > 20) return Status::Error(s.message(), SQLITE_BUSY);
  }
  return Status::OK();
}

Status Applier::SettleDeadCommit(sqlite3* db, int attempts) {
  auto primary_mark = [&] { return n_.sidecar.pending_txid() != 0 && n_.sidecar.pending_commit().commit_frame != 0; };
  if (!primary_mark()) return Status::OK();
  apply::WalWriter* locker = a_.Locker();
  for (int attempt = 0; locker && attempt < attempts && !a_.stopping(); attempt++) {
    (void)locker->WithWriteLock(2000, [&] {
      if (primary_mark() && commit_.DeadCommitPending()) commit_.ResolveDeadCommit(locker->db_file(), vfs::ShmView{});
    });
    if (!primary_mark()) return Status::OK();
    // The wal-index may need recovery first (ResolveDeadCommit leaves it
    // to a reader): let SQLite rebuild it, then try again.
    sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
    if (!a_.Sleep(50)) break;
  }
  return Status::Error("litejet: database \"" + n_.cfg.name + "\": TXID " + std::to_string(n_.sidecar.pending_txid()) +
                           " was being committed by a process that died, and its outcome could not be settled; "
                           "this replica does not apply the log until it is",
                       SQLITE_BUSY);
}

}  // namespace litejet
