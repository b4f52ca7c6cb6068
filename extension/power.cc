// Power loss: what an engine does at an unclean start (the sidecar was last
// used under another boot of the kernel), and the replica's durable mark.
// docs/design.md, "Power loss", gives the reasoning.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/durable.h"
#include "extension/power.h"
#include "wal-capture/checksum.h"
#include "wal-capture/record.h"
#include "wal-capture/spool.h"
#include "wal-capture/wal_format.h"

namespace litejet::power {

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
    std::string m =
        "litejet: unclean start of \"" + path + "\": " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return Status::Error(m, SQLITE_IOERR);
  };
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) return fail("open");
  sqlite3_busy_timeout(db, 5000);
  int persist = 1;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  if (sqlite3_exec(db, "BEGIN; PRAGMA schema_version;", nullptr, nullptr, nullptr) != SQLITE_OK) {
    // A new replica's page 1 without the frames it points to (the first
    // transaction's page 1 goes to the file before the WAL): SQLite calls it
    // malformed; with no frames in the WAL there is nothing to recover.
    struct stat sb;
    if (::stat((path + "-wal").c_str(), &sb) == 0 && sb.st_size > wal::WAL_HDRSIZE) return fail("reading the database");
    sqlite3_close(db);
    Status s = checksum::HashFile(path, &r->hashes, &r->page_size);
    for (uint64_t h : r->hashes) r->checksum ^= h;
    return s;
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

Status RecoverReplica(NodeState& node);
Status RecoverPrimary(NodeState& node);
void StoreRecovered(NodeState& node, uint64_t txid, uint64_t log_seq, const std::vector<uint64_t>& hashes,
                    uint32_t page_size, uint64_t sum);

Status RecoverAfterPowerLoss(NodeState& node) {
  return node.cfg.role == Role::kPrimary ? RecoverPrimary(node) : RecoverReplica(node);
}

// The position is stored with every page hash rewritten from the recovered
// database (the sidecar's hash pages may be any mix of older and newer
// versions after a power loss).
void StoreRecovered(NodeState& node, uint64_t txid, uint64_t log_seq, const std::vector<uint64_t>& hashes,
                    uint32_t page_size, uint64_t sum) {
  sidecar::Position p = node.sidecar.Read();
  p.txid = txid;
  p.checksum = sum;
  p.db_pages = uint32_t(hashes.size());
  if (page_size) p.page_size = page_size;
  if (node.sidecar.BeginUpdate(txid, p.db_pages).ok()) {
    for (uint32_t i = 0; i < hashes.size(); i++) node.sidecar.SetHash(i + 1, hashes[i]);
  }
  node.sidecar.CommitUpdate(p);
  node.sidecar.SetAcked(node.cfg.role == Role::kPrimary ? std::min(p.acked_txid, txid) : txid, log_seq);
}

// Replica: the WAL is synced before the mark records a position (SyncApplied),
// so the recovered database holds at least the mark's TXID; each commit frame
// after the mark's is one more TXID.
Status RecoverReplica(NodeState& node) {
  Recovered r;
  Status s = Recover(node.path, true, &r);
  if (!s.ok()) return s;
  const sidecar::Position p = node.sidecar.Read();
  const sidecar::Mark m = node.sidecar.mark();
  uint64_t counted = m.txid;
  if (r.mx_frame > 0 && m.salt1 == r.salt1 && m.salt2 == r.salt2) {
    for (uint32_t f : r.commits) counted += f > m.frame ? 1 : 0;
  }
  uint64_t txid, log_seq;
  if (counted == 0 && !r.hashes.empty() && !(p.checksum == r.checksum && p.db_pages == r.hashes.size())) {
    // Nothing applied was ever durable, but the file has page 1 of the first
    // transaction (written before its WAL frames): start over from an empty
    // file, as a new replica does.
    if (::truncate(node.path.c_str(), 0) != 0) {
      return Status::Error("litejet: replica \"" + node.cfg.name + "\" after a power loss: cannot empty " + node.path,
                           SQLITE_IOERR);
    }
    r.hashes.clear();
    r.checksum = 0;
  }
  if (r.hashes.empty()) {
    txid = 0;
    log_seq = 0;
  } else if (p.checksum == r.checksum && p.db_pages == r.hashes.size() && p.txid >= m.txid) {
    txid = p.txid;  // the header reached the disk with the pages it describes
    log_seq = p.log_seq;
  } else if (counted == m.txid && m.checksum != r.checksum) {
    return Status::Error("litejet: replica \"" + node.cfg.name + "\" after a power loss: its database (checksum " +
                             checksum::Hex(r.checksum) + ") is neither at TXID " + std::to_string(p.txid) +
                             " nor at the last durable TXID " + std::to_string(m.txid) + "; rebuild it from the log",
                         SQLITE_CORRUPT);
  } else {
    txid = counted;  // the next record's checksum-before checks it
    log_seq = m.log_seq;
  }
  if (txid != p.txid) {
    sqlite3_log(
        SQLITE_NOTICE,
        "litejet: replica \"%s\": unclean start: position %llu rolled back to %llu (what its WAL durably holds)",
        node.cfg.name.c_str(), (unsigned long long)p.txid, (unsigned long long)txid);
  }
  StoreRecovered(node, txid, log_seq, r.hashes, r.page_size, r.checksum);
  sidecar::Mark nm;
  nm.txid = txid;
  nm.checksum = r.checksum;
  nm.log_seq = log_seq;
  nm.db_pages = uint32_t(r.hashes.size());
  s = node.sidecar.SetMark(nm);  // the WAL is empty now: the database file alone holds txid
  if (s.ok()) s = node.sidecar.Sync();
  return s;
}

// Primary: SQLite's syncs (synchronous=FULL) put each commit in the WAL on
// disk, the sidecar's ring entries and position are synced only at
// checkpoints and hand-offs. So the recovered WAL may hold commits the
// sidecar does not know (they get the next TXIDs: their ring entries are
// rebuilt from the frames, checksums chained from the page versions in the
// database file and the WAL), and with synchronous=NORMAL the sidecar may
// know commits SQLite lost (rolled back when they never reached the log,
// fenced when they did).
Status RecoverPrimary(NodeState& node) {
  const sidecar::Position p = node.sidecar.Read();
  const std::string who = "litejet: primary \"" + node.cfg.name + "\" after a power loss: ";
  sqlite3* db = nullptr;
  struct Closer {
    sqlite3** db;
    ~Closer() { sqlite3_close(*db); }  // after the reading: the close may checkpoint
  } closer{&db};
  if (sqlite3_open_v2(node.path.c_str(), &db, SQLITE_OPEN_READWRITE, "unix") != SQLITE_OK) {
    return Status::Error(who + "cannot open the database", SQLITE_IOERR);
  }
  sqlite3_busy_timeout(db, 5000);
  int persist = 1;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  if (sqlite3_exec(db, "BEGIN; PRAGMA schema_version;", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return Status::Error(who + "cannot read the database: " + sqlite3_errmsg(db), SQLITE_IOERR);
  }
  unsigned char ih[48] = {0};
  int shm = ::open((node.path + "-shm").c_str(), O_RDONLY | O_CLOEXEC);
  if (shm >= 0) {
    if (::pread(shm, ih, sizeof ih, 0) != ssize_t(sizeof ih)) std::memset(ih, 0, sizeof ih);
    ::close(shm);
  }
  uint32_t mx = 0;
  std::memcpy(&mx, ih + 16, 4);
  const uint32_t salt1 = wal::Get4(ih + 32), salt2 = wal::Get4(ih + 36);  // as ring entries hold them

  // The database file's pages (before any checkpoint of this start).
  std::vector<uint64_t> cur;
  uint32_t ps = 0;
  Status s = checksum::HashFile(node.path, &cur, &ps);
  if (!s.ok()) return s;
  uint32_t n = uint32_t(cur.size());
  uint64_t sum = 0;
  for (uint64_t h : cur) sum ^= h;

  // Replay the recovered WAL commit by commit, as ComputeUpdate does.
  struct Commit {
    uint32_t first, frame, db_pages;
    uint64_t before, after, delta;
  };
  std::vector<Commit> commits;
  const uint64_t initial = sum;
  if (mx > 0) {
    int fd = ::open((node.path + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
    unsigned char wh[wal::WAL_HDRSIZE];
    if (fd < 0 || ::pread(fd, wh, sizeof wh, 0) != ssize_t(sizeof wh)) {
      if (fd >= 0) ::close(fd);
      return Status::Error(who + "cannot read the WAL header", SQLITE_IOERR);
    }
    const uint32_t wps = wal::Get4(wh + 8);
    if (ps == 0) ps = wps;
    if (wps != ps) {
      ::close(fd);
      return Status::Error(who + "the WAL's page size differs from the database's", SQLITE_CORRUPT);
    }
    std::vector<char> frame(wal::WAL_FRAME_HDRSIZE + ps);
    std::vector<std::pair<uint32_t, uint64_t>> txn;
    uint32_t first = 1;
    auto zero = [&](uint32_t pg) { return checksum::ZeroPageHash(ps, pg); };
    auto slot = [&](uint32_t pg) -> uint64_t& {
      while (cur.size() < pg) cur.push_back(zero(uint32_t(cur.size() + 1)));
      return cur[pg - 1];
    };
    for (uint32_t i = 1; i <= mx; i++) {
      if (::pread(fd, frame.data(), frame.size(), off_t(wal::FrameOffset(i, ps))) != ssize_t(frame.size())) {
        ::close(fd);
        return Status::Error(who + "cannot read frame " + std::to_string(i) + " of the WAL", SQLITE_IOERR);
      }
      const uint32_t pgno = wal::Get4(frame.data()), size = wal::Get4(frame.data() + 4);
      txn.emplace_back(pgno, checksum::PageHash(frame.data() + wal::WAL_FRAME_HDRSIZE, ps, pgno));
      if (size == 0) continue;
      // Newest version of each page of the transaction.
      std::stable_sort(txn.begin(), txn.end(), [](auto& x, auto& y) { return x.first < y.first; });
      std::vector<std::pair<uint32_t, uint64_t>> pages;
      for (size_t k = 0; k < txn.size(); k++) {
        if (k + 1 < txn.size() && txn[k + 1].first == txn[k].first) continue;
        pages.push_back(txn[k]);
      }
      Commit c{first, i, size, sum, 0, 0};
      for (auto& [pg, h] : pages) {
        if (pg == 0) continue;
        if (pg <= size) c.delta ^= h;
        if (pg <= n) sum ^= slot(pg);
        slot(pg) = pg <= size ? h : zero(pg);
        if (pg <= size) sum ^= h;
      }
      auto written = [&](uint32_t pg) {
        auto it = std::lower_bound(pages.begin(), pages.end(), std::make_pair(pg, uint64_t(0)));
        return it != pages.end() && it->first == pg;
      };
      for (uint32_t pg = n + 1; pg <= size; pg++) {  // grown over without writing: zero pages
        if (written(pg)) continue;
        slot(pg) = zero(pg);
        sum ^= slot(pg);
      }
      for (uint32_t pg = size + 1; pg <= n; pg++) {  // cut off
        if (written(pg)) continue;
        sum ^= slot(pg);
        slot(pg) = zero(pg);
      }
      n = size;
      c.after = sum;
      commits.push_back(c);
      txn.clear();
      first = i + 1;
    }
    ::close(fd);
  }
  cur.resize(n);

  // Where the sidecar's durable position is among those states: the commit
  // its ring entry names, else the last state with its checksum (states
  // before the last checkpoint's frontier are not rebuilt right, which only
  // means they are not found). -1: the database file alone.
  long anchor = -2;
  sidecar::CommitEntry e;
  if (node.sidecar.GetCommit(p.txid, &e) && e.salt1 == salt1 && e.salt2 == salt2) {
    for (size_t j = 0; j < commits.size(); j++) {
      if (commits[j].frame == e.commit_frame && commits[j].after == p.checksum) anchor = long(j);
    }
  }
  for (long j = long(commits.size()) - 1; anchor == -2 && j >= -1; j--) {
    if ((j < 0 ? initial : commits[size_t(j)].after) == p.checksum) anchor = j;
  }
  if (anchor != -2) {
    const uint64_t now = uint64_t(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    uint64_t t = p.txid;
    for (size_t j = size_t(anchor + 1); j < commits.size(); j++) {
      const Commit& c = commits[j];
      sidecar::CommitEntry ne;
      ne.txid = ++t;
      ne.checksum_before = c.before;
      ne.checksum_after = c.after;
      ne.timestamp_us = now;
      ne.delta = c.delta;
      ne.salt1 = salt1;
      ne.salt2 = salt2;
      ne.first_frame = c.first;
      ne.commit_frame = c.frame;
      ne.db_pages = c.db_pages;
      ne.page_size = ps;
      node.sidecar.PutCommit(ne);
    }
    if (t != p.txid) {
      sqlite3_log(SQLITE_NOTICE, "litejet: primary \"%s\": unclean start: commits %llu..%llu recovered from the WAL",
                  node.cfg.name.c_str(), (unsigned long long)p.txid + 1, (unsigned long long)t);
    }
    StoreRecovered(node, t, p.log_seq, cur, ps, sum);
    return node.sidecar.Sync();
  }
  // The sidecar is ahead: find the ring entry of SQLite's last commit.
  uint64_t have = 0;
  bool found = false;
  // (An empty WAL: SQLite restarted it, and synced its new header, after a
  // checkpoint; the database file holds SQLite's last commit.)
  for (uint64_t t = p.txid; t > 0 && t + sidecar::kRingSlots > p.txid && !found; t--) {
    if (node.sidecar.GetCommit(t, &e) && e.checksum_after == sum &&
        (commits.empty() || (e.salt1 == salt1 && e.salt2 == salt2 && e.commit_frame == commits.back().frame))) {
      have = t;
      found = true;
    }
  }
  if (!found) {
    return Status::Error(who + "its database (checksum " + checksum::Hex(sum) + ", " + std::to_string(commits.size()) +
                             " commits in the WAL) does not match its sidecar (TXID " + std::to_string(p.txid) +
                             ", checksum " + checksum::Hex(p.checksum) + "); rebuild this node from the log",
                         SQLITE_CORRUPT);
  }
  if (p.acked_txid > have) {
    return Status::Error(who + "its database holds TXID " + std::to_string(have) + " but the log already has up to " +
                             std::to_string(p.acked_txid) +
                             " (commits lost with synchronous=NORMAL): the log is "
                             "ahead of the database; rebuild this node from the log",
                         SQLITE_CORRUPT);
  }
  sqlite3_log(SQLITE_NOTICE,
              "litejet: primary \"%s\": unclean start: position %llu rolled back to %llu (commits lost before they "
              "were shipped)",
              node.cfg.name.c_str(), (unsigned long long)p.txid, (unsigned long long)have);
  if (p.spooled_txid > have) {
    // Records of the lost TXIDs are in the spool: it ends before the first
    // entry that holds one (they would be read as the next commits' records).
    uint64_t cut = p.spool_end, kept = 0;
    (void)spool::Scan(node.spool.path(), p.spool_end, [&](const std::string& rec, uint64_t at) {
      uint64_t last = 0;
      spool::SegmentHeader h;
      if (rec.size() >= sizeof h && std::memcmp(rec.data(), &spool::kSegmentMagic, 4) == 0) {
        std::memcpy(&h, rec.data(), sizeof h);
        for (uint32_t i = 0; i < h.count && sizeof h + (i + 1) * sizeof(sidecar::CommitEntry) <= rec.size(); i++) {
          sidecar::CommitEntry ce;
          std::memcpy(static_cast<void*>(&ce), rec.data() + sizeof h + i * sizeof ce, sizeof ce);
          last = std::max(last, ce.txid);
        }
      } else {
        record::Txn t;
        if (record::Decode(rec.data(), rec.size(), &t).ok()) last = t.txid;
      }
      if (last > have) {
        cut = at;
        return Status::Error("stop");
      }
      kept = std::max(kept, last);
      return Status::OK();
    });
    node.sidecar.SetSpooled(kept, cut);
  }
  StoreRecovered(node, have, p.log_seq, cur, ps, sum);
  return node.sidecar.Sync();
}

// Replica agent: makes what was applied durable, then records it as the
// mark (never the other way round).
Status SyncApplied(NodeState& node, apply::WalWriter& w) {
  const sidecar::Position p = node.sidecar.Read();
  if (p.txid <= node.sidecar.mark().txid || w.last_commit_frame() == 0) return Status::OK();
  durable::CrashPoint("apply_before_sync");
  Status s = w.Sync();
  if (!s.ok()) return s;
  durable::CrashPoint("apply_wal_synced");
  s = MarkApplied(node, w, p);
  durable::CrashPoint("apply_mark_synced");
  return s;
}

// Replica: the WAL is synced up to w's last commit frame, which holds p.
Status MarkApplied(NodeState& node, const apply::WalWriter& w, const sidecar::Position& p) {
  sidecar::Mark m;
  m.txid = p.txid;
  m.checksum = p.checksum;
  m.log_seq = p.log_seq;
  m.salt1 = w.last_salt1();
  m.salt2 = w.last_salt2();
  m.frame = w.last_commit_frame();
  m.db_pages = p.db_pages;
  return node.sidecar.SetMark(m);
}

// Replica agent, before a new WAL generation's header is written: the
// database file holds every applied TXID (a restart needs every frame
// backfilled, and the checkpointer synced the file), so that is the mark.
Status MarkNewGeneration(NodeState& node, apply::WalWriter& w, uint32_t salt1, uint32_t salt2) {
  Status s = w.Sync();
  if (!s.ok()) return s;
  const sidecar::Position p = node.sidecar.Read();
  sidecar::Mark m;
  m.txid = p.txid;
  m.checksum = p.checksum;
  m.log_seq = p.log_seq;
  m.salt1 = salt1;
  m.salt2 = salt2;
  m.frame = 0;
  m.db_pages = p.db_pages;
  s = node.sidecar.SetMark(m);
  durable::CrashPoint("apply_generation_marked");
  return s;
}

}  // namespace litejet::power
