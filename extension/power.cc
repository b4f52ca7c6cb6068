// Power loss: what an engine does at an unclean start (the sidecar was last
// used under another boot of the kernel), and the replica's durable mark.
// docs/design.md, "Power loss", gives the reasoning.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/durable.h"
#include "extension/engine.h"
#include "wal-capture/checksum.h"
#include "wal-capture/wal_format.h"

namespace litejet {

namespace {

// The database as SQLite recovers it after the power loss.
struct Recovered {
  uint32_t mx_frame = 0;          // frames SQLite recovered from the WAL
  uint32_t salt1 = 0, salt2 = 0;  // the WAL header's salt bytes (memcpy'd)
  std::vector<uint32_t> commits;  // commit frames, ascending
  std::vector<uint64_t> hashes;   // page hashes of the recovered database
  uint32_t page_size = 0;
  uint64_t checksum = 0;
};

// Lets SQLite recover the WAL (a private connection on the plain unix VFS,
// which never deletes the WAL), lists the recovered commit frames, folds them
// into the database file (TRUNCATE on a replica, PASSIVE on a primary, whose
// unshipped frames must stay in the WAL) and hashes it.
Status Recover(const std::string& path, bool truncate, Recovered* r) {
  sqlite3* db = nullptr;
  auto fail = [&](const std::string& what) {
    std::string m = "litejet: unclean start of \"" + path + "\": " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return Status::Error(m, SQLITE_IOERR);
  };
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) return fail("open");
  sqlite3_busy_timeout(db, 5000);
  int persist = 1;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  if (sqlite3_exec(db, "BEGIN; SELECT count(*) FROM sqlite_master;", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return fail("reading the database");
  }
  // The wal-index header SQLite rebuilt (shm file, region 0): mxFrame at 16,
  // the salts at 32 and 36.
  unsigned char ih[48] = {0};
  int shm = ::open((path + "-shm").c_str(), O_RDONLY | O_CLOEXEC);
  if (shm >= 0) {
    if (::pread(shm, ih, sizeof ih, 0) != ssize_t(sizeof ih)) std::memset(ih, 0, sizeof ih);
    ::close(shm);
  }
  std::memcpy(&r->mx_frame, ih + 16, 4);
  std::memcpy(&r->salt1, ih + 32, 4);
  std::memcpy(&r->salt2, ih + 36, 4);
  if (r->mx_frame > 0) {
    int fd = ::open((path + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
    unsigned char wh[wal::WAL_HDRSIZE];
    if (fd < 0 || ::pread(fd, wh, sizeof wh, 0) != ssize_t(sizeof wh)) {
      if (fd >= 0) ::close(fd);
      return fail("reading the WAL header");
    }
    const uint32_t ps = wal::Get4(wh + 8);
    unsigned char fh[wal::WAL_FRAME_HDRSIZE];
    for (uint32_t i = 1; i <= r->mx_frame; i++) {
      if (::pread(fd, fh, sizeof fh, off_t(wal::FrameOffset(i, ps))) != ssize_t(sizeof fh)) break;
      if (wal::Get4(fh + 4) != 0) r->commits.push_back(i);
    }
    ::close(fd);
  }
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  int nlog = 0, nckpt = 0;
  if (sqlite3_wal_checkpoint_v2(db, "main", truncate ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE, &nlog,
                                &nckpt) != SQLITE_OK ||
      (!truncate && nckpt != nlog)) {
    return fail("checkpoint");
  }
  sqlite3_close(db);
  Status s = checksum::HashFile(path, &r->hashes, &r->page_size);
  if (!s.ok()) return s;
  for (uint64_t h : r->hashes) r->checksum ^= h;
  return Status::OK();
}

}  // namespace

Status Engine::RecoverAfterPowerLoss() {
  return cfg_.role == Role::kPrimary ? RecoverPrimary() : RecoverReplica();
}

// The position is stored with every page hash rewritten from the recovered
// database (the sidecar's hash pages may be any mix of older and newer
// versions after a power loss).
void Engine::StoreRecovered(uint64_t txid, uint64_t log_seq, const std::vector<uint64_t>& hashes, uint32_t page_size,
                            uint64_t sum) {
  sidecar::Position p = sidecar_.Read();
  p.txid = txid;
  p.checksum = sum;
  p.db_pages = uint32_t(hashes.size());
  if (page_size) p.page_size = page_size;
  if (sidecar_.BeginUpdate(txid, p.db_pages).ok()) {
    for (uint32_t i = 0; i < hashes.size(); i++) sidecar_.SetHash(i + 1, hashes[i]);
  }
  sidecar_.CommitUpdate(p);
  sidecar_.SetAcked(cfg_.role == Role::kPrimary ? std::min(p.acked_txid, txid) : txid, log_seq);
}

// Replica: the WAL is synced before the mark records a position (SyncApplied),
// so the recovered database holds at least the mark's TXID; each commit frame
// after the mark's is one more TXID.
Status Engine::RecoverReplica() {
  Recovered r;
  Status s = Recover(path_, true, &r);
  if (!s.ok()) return s;
  const sidecar::Position p = sidecar_.Read();
  const sidecar::Mark m = sidecar_.mark();
  uint64_t counted = m.txid;
  if (r.mx_frame > 0 && m.salt1 == r.salt1 && m.salt2 == r.salt2) {
    for (uint32_t f : r.commits) counted += f > m.frame ? 1 : 0;
  }
  uint64_t txid, log_seq;
  if (r.hashes.empty()) {
    txid = 0;
    log_seq = 0;
  } else if (p.checksum == r.checksum && p.db_pages == r.hashes.size() && p.txid >= m.txid) {
    txid = p.txid;  // the header reached the disk with the pages it describes
    log_seq = p.log_seq;
  } else if (counted == m.txid && m.checksum != r.checksum) {
    return Status::Error("litejet: replica \"" + cfg_.name + "\" after a power loss: its database (checksum " +
                         checksum::Hex(r.checksum) + ") is neither at TXID " + std::to_string(p.txid) +
                         " nor at the last durable TXID " + std::to_string(m.txid) + "; rebuild it from the log",
                         SQLITE_CORRUPT);
  } else {
    txid = counted;  // the next record's checksum-before checks it
    log_seq = m.log_seq;
  }
  if (txid != p.txid) {
    sqlite3_log(SQLITE_NOTICE, "litejet: replica \"%s\": unclean start: position %llu rolled back to %llu (what its WAL durably holds)",
                cfg_.name.c_str(), (unsigned long long)p.txid, (unsigned long long)txid);
  }
  StoreRecovered(txid, log_seq, r.hashes, r.page_size, r.checksum);
  sidecar::Mark nm;
  nm.txid = txid;
  nm.checksum = r.checksum;
  nm.log_seq = log_seq;
  nm.db_pages = uint32_t(r.hashes.size());
  s = sidecar_.SetMark(nm);  // the WAL is empty now: the database file alone holds txid
  if (s.ok()) s = sidecar_.Sync();
  return s;
}

// Primary: the sidecar's position must be what SQLite recovered: the commit
// ring entry of its TXID names the recovered WAL's last commit frame (or the
// WAL is empty and the database file holds it), with the checksum of the
// recovered pages. A sidecar ahead of the database (synchronous=NORMAL lost
// commits) is rolled back to the ring entry SQLite's last commit has when
// those TXIDs never reached the log, and fenced when they did. A database
// ahead of the sidecar (commits whose ring entries did not reach the disk)
// is fenced: rebuilding those entries is not done yet.
Status Engine::RecoverPrimary() {
  Recovered r;
  Status s = Recover(path_, false, &r);
  if (!s.ok()) return s;
  const sidecar::Position p = sidecar_.Read();
  if (r.hashes.empty() && p.txid == 0) return Status::OK();
  // The TXID of the recovered database: the ring entry whose commit frame is
  // SQLite's last one in this WAL generation.
  uint64_t have = 0, have_sum = 0;
  bool found = false;
  if (!r.commits.empty()) {
    for (uint64_t t = p.txid + 1; t-- > 0 && t + sidecar::kRingSlots > p.txid;) {
      sidecar::CommitEntry e;
      if (!sidecar_.GetCommit(t, &e)) continue;
      if (e.salt1 == r.salt1 && e.salt2 == r.salt2 && e.commit_frame == r.commits.back()) {
        have = t;
        have_sum = e.checksum_after;
        found = true;
        break;
      }
    }
  } else if (p.checksum == r.checksum) {
    have = p.txid;  // everything is in the database file
    have_sum = p.checksum;
    found = true;
  }
  const std::string who = "litejet: primary \"" + cfg_.name + "\" after a power loss: ";
  if (!found || have_sum != r.checksum) {
    return Status::Error(who + "its database (checksum " + checksum::Hex(r.checksum) + ", " +
                         std::to_string(r.commits.size()) + " commits in the WAL) holds commits its sidecar does not "
                         "know (position " + std::to_string(p.txid) + "); rebuilding their TXIDs is not done yet: "
                         "rebuild this node from the log",
                         SQLITE_CORRUPT);
  }
  if (have < p.txid && p.acked_txid > have) {
    return Status::Error(who + "its database holds TXID " + std::to_string(have) + " but the log already has up to " +
                         std::to_string(p.acked_txid) + " (commits lost with synchronous=NORMAL): the log is ahead of "
                         "the database; rebuild this node from the log",
                         SQLITE_CORRUPT);
  }
  if (have < p.txid) {
    sqlite3_log(SQLITE_NOTICE, "litejet: primary \"%s\": unclean start: position %llu rolled back to %llu (commits lost before they were shipped)",
                cfg_.name.c_str(), (unsigned long long)p.txid, (unsigned long long)have);
    if (p.spooled_txid > have) {
      // Records of the lost TXIDs may be in the spool: forget what it holds
      // past the acknowledged ones (what is unshipped and kept is in the WAL).
      sidecar_.SetSpooled(std::min(p.spooled_txid, p.acked_txid), p.acked_txid >= p.spooled_txid ? p.spool_end : 0);
    }
  }
  StoreRecovered(have, p.log_seq, r.hashes, r.page_size, r.checksum);
  return sidecar_.Sync();
}

// Replica agent: makes what was applied durable, then records it as the
// mark (never the other way round).
Status Engine::SyncApplied(apply::WalWriter& w) {
  const sidecar::Position p = sidecar_.Read();
  if (p.txid <= sidecar_.mark().txid || w.last_commit_frame() == 0) return Status::OK();
  durable::CrashPoint("apply_before_sync");
  Status s = w.Sync();
  if (!s.ok()) return s;
  durable::CrashPoint("apply_wal_synced");
  sidecar::Mark m;
  m.txid = p.txid;
  m.checksum = p.checksum;
  m.log_seq = p.log_seq;
  m.salt1 = w.last_salt1();
  m.salt2 = w.last_salt2();
  m.frame = w.last_commit_frame();
  m.db_pages = p.db_pages;
  s = sidecar_.SetMark(m);
  durable::CrashPoint("apply_mark_synced");
  return s;
}

// Replica agent, before a new WAL generation's header is written: the
// database file holds every applied TXID (a restart needs every frame
// backfilled, and the checkpointer synced the file), so that is the mark.
Status Engine::MarkNewGeneration(apply::WalWriter& w, uint32_t salt1, uint32_t salt2) {
  Status s = w.Sync();
  if (!s.ok()) return s;
  const sidecar::Position p = sidecar_.Read();
  sidecar::Mark m;
  m.txid = p.txid;
  m.checksum = p.checksum;
  m.log_seq = p.log_seq;
  m.salt1 = salt1;
  m.salt2 = salt2;
  m.frame = 0;
  m.db_pages = p.db_pages;
  s = sidecar_.SetMark(m);
  durable::CrashPoint("apply_generation_marked");
  return s;
}

}  // namespace litejet
