// Snapshotter: a snapshot of the committed state, taken under a read
// transaction of a private connection (WAL readers never block writers nor
// an applier), identified by its checksum, published with snapshot::Put;
// and retention (snapshot::PlanRetention, then Delete and PurgeBelow).
#include "extension/snapshotter.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "common/clock.h"
#include "common/sqlite.h"
#include "extension/config.h"
#include "extension/heartbeat.h"
#include "wal-capture/checksum.h"

namespace litejet {
namespace {

std::string Errno() { return std::strerror(errno); }

uint32_t Be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct Db {
  sqlite3* db = nullptr;
  ~Db() { sqlite3_close(db); }
};

// Every version of page 1 this read transaction may see: the frames of
// page 1 in the WAL's current generation (newest first), then the database
// file's. sqlite3_backup rewrites the copy's page-1 header (change counter,
// schema cookie), so the copy's page 1 is replaced by the version whose
// checksum matches (the other pages are copied verbatim).
Status PageOneVersions(const std::string& path, uint32_t page_size, std::vector<std::string>* out) {
  out->clear();
  Fd w;
  w.fd = ::open((path + "-wal").c_str(), O_RDONLY | O_CLOEXEC);
  if (w.fd >= 0) {
    unsigned char hdr[32];
    if (::pread(w.fd, hdr, sizeof hdr, 0) == ssize_t(sizeof hdr) && Be32(hdr + 8) == page_size) {
      const uint32_t salt1 = Be32(hdr + 16), salt2 = Be32(hdr + 20);
      std::vector<char> frame(24 + size_t(page_size));
      for (off_t off = 32;; off += off_t(frame.size())) {
        if (::pread(w.fd, frame.data(), frame.size(), off) != ssize_t(frame.size())) break;
        const auto* fh = reinterpret_cast<const unsigned char*>(frame.data());
        if (Be32(fh + 8) != salt1 || Be32(fh + 12) != salt2) break;  // the generation's end
        if (Be32(fh) == 1) out->emplace_back(frame.data() + 24, page_size);
      }
    }
  }
  std::reverse(out->begin(), out->end());
  Fd d;
  d.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (d.fd < 0) return Status::Error("litejet: cannot read " + path + ": " + Errno(), SQLITE_IOERR);
  std::string p1(page_size, '\0');
  if (::pread(d.fd, p1.data(), p1.size(), 0) == ssize_t(p1.size())) out->push_back(std::move(p1));
  return Status::OK();
}

std::atomic<uint64_t> g_copy_counter{0};

}  // namespace

Status Snapshotter::Copy(const std::string& tmp, uint64_t* txid, uint64_t* sum, std::string* why_retry) {
  const std::string& name = n_.cfg.name;
  const sidecar::Position p0 = n_.sidecar.Read();
  Db src;
  if (sqlite3_open_v2(n_.path.c_str(), &src.db, SQLITE_OPEN_READONLY, "unix") != SQLITE_OK) {
    return Status::Error("litejet: snapshot of \"" + name + "\": cannot open " + n_.path + ": " +
                         (src.db ? sqlite3_errmsg(src.db) : "out of memory"));
  }
  sqlite3_busy_timeout(src.db, 2000);
  // The read transaction: its snapshot stays fixed through the backup's
  // steps and the reads of page 1 below (a WAL reader also keeps the WAL
  // from restarting under it).
  int rc = sqlite3_exec(src.db, "BEGIN; SELECT count(*) FROM sqlite_master;", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    return Status::Error(
        "litejet: snapshot of \"" + name + "\": cannot start a read transaction: " + sqlite3_errmsg(src.db), rc);
  }
  const sidecar::Position p1 = n_.sidecar.Read();
  ::unlink(tmp.c_str());
  ::unlink((tmp + "-journal").c_str());
  Status s;
  {
    Db dst;
    if (sqlite3_open_v2(tmp.c_str(), &dst.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix") != SQLITE_OK) {
      return Status::Error("litejet: snapshot of \"" + name + "\": cannot create " + tmp + ": " +
                               (dst.db ? sqlite3_errmsg(dst.db) : "out of memory"),
                           SQLITE_CANTOPEN);
    }
    sqlite3_exec(dst.db, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", nullptr, nullptr, nullptr);
    sqlite3_backup* b = sqlite3_backup_init(dst.db, "main", src.db, "main");
    if (!b) {
      return Status::Error("litejet: snapshot of \"" + name + "\": cannot copy to " + tmp + ": " +
                           sqlite3_errmsg(dst.db));
    }
    do {
      rc = sqlite3_backup_step(b, 1024);
    } while (rc == SQLITE_OK);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
      return Status::Error(
          "litejet: snapshot of \"" + name + "\": copying to " + tmp + " failed: " + sqlite3_errstr(rc), rc);
    }
  }
  ::unlink((tmp + "-journal").c_str());
  uint32_t page_size = 0, db_pages = 0;
  uint64_t copy_sum = 0;
  s = checksum::OfFile(tmp, &copy_sum, &db_pages, &page_size);
  if (!s.ok()) return s;
  if (db_pages == 0) return Status::Error("litejet: snapshot of \"" + name + "\": the database is empty");
  std::vector<std::string> ones;
  s = PageOneVersions(n_.path, page_size, &ones);
  sqlite3_exec(src.db, "COMMIT", nullptr, nullptr, nullptr);  // the read transaction ends
  if (!s.ok()) return s;

  Fd f;
  f.fd = ::open(tmp.c_str(), O_RDWR | O_CLOEXEC);
  if (f.fd < 0) return Status::Error("litejet: cannot open " + tmp + ": " + Errno(), SQLITE_IOERR);
  std::string mine(page_size, '\0');
  if (::pread(f.fd, mine.data(), mine.size(), 0) != ssize_t(mine.size())) {
    return Status::Error("litejet: cannot read " + tmp + ": " + Errno(), SQLITE_IOERR);
  }
  const uint64_t others = copy_sum ^ checksum::PageHash(mine.data(), page_size, 1);
  // The positions this copy can be at: between the two reads of the sidecar.
  std::map<uint64_t, uint64_t> at;  // checksum -> TXID
  at[p0.checksum] = p0.txid;
  at[p1.checksum] = p1.txid;
  for (uint64_t t = p0.txid + 1; t < p1.txid; t++) {
    sidecar::CommitEntry e;
    if (n_.sidecar.GetCommit(t, &e)) at[e.checksum_after] = t;
  }
  for (const std::string& one : ones) {
    const uint64_t total = others ^ checksum::PageHash(one.data(), page_size, 1);
    auto it = at.find(total);
    if (it == at.end()) continue;
    // No fsync: the copy is read back through the page cache and deleted (a
    // sync of a large file can stall the writers' I/O on the same disk).
    if (::pwrite(f.fd, one.data(), one.size(), 0) != ssize_t(one.size())) {
      return Status::Error("litejet: cannot write " + tmp + ": " + Errno(), SQLITE_IOERR);
    }
    *txid = it->second;
    *sum = total;
    return Status::OK();
  }
  *why_retry = "its checksum matches no TXID in " + std::to_string(p0.txid) + ".." + std::to_string(p1.txid) +
               " (commits raced the copy)";
  return Status::Error("retry", SQLITE_BUSY);
}

Status Snapshotter::Take(transport::Log& log, snapshot::Store& store, int64_t timeout_ms, snapshot::Manifest* out) {
  const std::string& name = n_.cfg.name;
  const std::string tmp =
      n_.path + "-litejet-snap-" + std::to_string(::getpid()) + "-" + std::to_string(g_copy_counter.fetch_add(1));
  struct Remover {
    std::string p;
    ~Remover() { ::unlink(p.c_str()); }
  } remover{tmp};
  const uint64_t hint0 = n_.sidecar.Read().log_seq;
  uint64_t txid = 0, sum = 0;
  Status s;
  std::string why;
  for (int attempt = 0; attempt < 5; attempt++) {
    s = Copy(tmp, &txid, &sum, &why);
    if (s.ok() || s.code() != SQLITE_BUSY || why.empty()) break;
    ::usleep(20000 * (attempt + 1));
  }
  if (!s.ok()) {
    if (!why.empty() && s.code() == SQLITE_BUSY) {
      return Status::Error("litejet: snapshot of \"" + name + "\": the copy of " + n_.path + " " + why + " 5 times",
                           SQLITE_BUSY);
    }
    return s;
  }
  if (txid == 0) return Status::Error("litejet: snapshot of \"" + name + "\": no transaction committed yet");
  if (!wait_(txid, timeout_ms)) {
    return Status::Error("litejet: snapshot of \"" + name + "\" at TXID " + std::to_string(txid) +
                             ": the log did not acknowledge it within " + std::to_string(timeout_ms) + " ms",
                         transport::kUnavailable);
  }
  // The record of txid: the search starts a little before where this node
  // stood (a record's chunks end at log_seq).
  snapshot::FoundRecord fr;
  s = snapshot::FindRecord(log, txid, hint0 > 256 ? hint0 - 256 : 0, timeout_ms, &fr);
  if (!s.ok()) return s;
  if (!fr.found) {
    return Status::Error("litejet: snapshot of \"" + name + "\": TXID " + std::to_string(txid) +
                         " is not in the log (it holds TXIDs " + std::to_string(fr.first_txid) + ".." +
                         std::to_string(fr.last_txid) + ")");
  }
  if (fr.txn.checksum_after != sum) {
    return Status::Error("litejet: snapshot of \"" + name + "\": at TXID " + std::to_string(txid) +
                             " this node's copy has checksum " + checksum::Hex(sum) + " but the log says " +
                             checksum::Hex(fr.txn.checksum_after),
                         SQLITE_CORRUPT);
  }
  std::unique_ptr<snapshot::PageSource> src;
  s = snapshot::OpenFileSource(tmp, &src);
  if (!s.ok()) return s;
  snapshot::PutInfo in;
  in.txid = txid;
  in.checksum = sum;
  in.log_seq = fr.pos.start;
  in.epoch = fr.txn.epoch;
  in.commit_time_us = fr.txn.timestamp_us;
  s = store.Ensure(timeout_ms);
  if (s.ok()) s = snapshot::Put(store, *src, in, std::max<int64_t>(timeout_ms, 60000), out);
  return s;
}

Status Snapshotter::TakeNow(int64_t timeout_ms, snapshot::Manifest* out) {
  transport::Options o = TransportOptions(n_.cfg);
  o.client_name = "litejet:" + n_.cfg.node + ":" + n_.cfg.name + ":snapshot";
  std::unique_ptr<transport::Log> log;
  Status s = transport::OpenNats(o, &log);
  std::unique_ptr<snapshot::Store> store;
  if (s.ok()) s = snapshot::OpenNatsStore(o, &store);
  if (!s.ok()) return s;
  return Take(*log, *store, timeout_ms, out);
}

Status Snapshotter::Retain(transport::Log& log, snapshot::Store& store, const snapshot::RetentionPolicy& policy,
                           uint64_t still_needed_txid, int64_t timeout_ms, std::string* summary) {
  std::vector<snapshot::Manifest> list;
  Status s = snapshot::List(store, timeout_ms, &list);
  if (!s.ok()) return s;
  // What the slowest live node still reads: the log after the newest
  // snapshot at or below its position is a safe bound (a snapshot's log_seq
  // is at or before the start of every later record).
  uint64_t needed_seq = 0;
  if (still_needed_txid != UINT64_MAX) {
    needed_seq = 1;  // no snapshot at or below it: keep all of the log
    for (const snapshot::Manifest& m : list) {
      if (m.txid <= still_needed_txid) needed_seq = std::max(needed_seq, m.log_seq);
    }
  }
  const uint64_t now_ms = uint64_t(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  snapshot::RetentionPlan plan = snapshot::PlanRetention(list, policy, now_ms, needed_seq);
  for (uint64_t id : plan.delete_ids) {
    s = snapshot::Delete(store, id, timeout_ms);
    if (!s.ok()) return s;
  }
  if (plan.log_purge_below > 1) {
    s = log.PurgeBelow(plan.log_purge_below, timeout_ms);
    if (!s.ok()) return s;
  }
  *summary = std::to_string(plan.delete_ids.size()) + " snapshot(s) deleted, " +
             std::to_string(list.size() - plan.delete_ids.size()) + " kept, log purged below sequence " +
             std::to_string(plan.log_purge_below);
  return Status::OK();
}

// ---- AutoSnapshots ----------------------------------------------------------

void AutoSnapshots::Start() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = false;
  }
  last_ms_ = SteadyMs();
  thread_ = std::thread([this] {
    try {
      Run();
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> g(n_.mu);
      n_.auto_snap.error = std::string("litejet: automatic snapshots of \"") + n_.cfg.name + "\" stopped: " + e.what();
    }
  });
}

void AutoSnapshots::Stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool AutoSnapshots::Due(uint64_t acked, int64_t now_ms) const {
  if (last_txid_ == UINT64_MAX || acked <= last_txid_) return false;
  const Config& c = n_.cfg;
  if (c.snapshot_every_txns > 0 && acked - last_txid_ >= uint64_t(c.snapshot_every_txns)) return true;
  return c.snapshot_every_ms > 0 && now_ms - last_ms_ >= c.snapshot_every_ms;
}

uint64_t AutoSnapshots::StillNeededTxid() const {
  int64_t read_ms = 0;
  uint64_t low = UINT64_MAX;
  for (const transport::NodeState& s : a_.ClusterNodes(&read_ms)) {
    // Live: a heartbeat within the last 10 beats. A node gone longer
    // bootstraps from a snapshot when it comes back.
    if (s.node == n_.cfg.node || read_ms - s.unix_ms > 10 * ClusterView::kBeatMs) continue;
    low = std::min(low, s.txid);
  }
  return low;
}

void AutoSnapshots::Run() {
  const int64_t kCallMs = 10000;
  std::unique_ptr<transport::Log> log;
  std::unique_ptr<snapshot::Store> store;
  Snapshotter snap(n_, [this](uint64_t txid, int64_t ms) {
    const int64_t end = SteadyMs() + ms;
    while (n_.sidecar.Read().acked_txid < txid) {
      if (SteadyMs() >= end || a_.stopping()) return false;
      n_.sidecar.WaitChange(n_.sidecar.change_count(), 100);
    }
    return true;
  });
  auto fail = [&](const Status& s) {
    sqlite3_log(SQLITE_WARNING, "litejet: %s: automatic snapshot: %s", n_.cfg.name.c_str(), s.message().c_str());
    std::lock_guard<std::mutex> g(n_.mu);
    n_.auto_snap.error = s.message();
  };
  int64_t pause_ms = 250;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, std::chrono::milliseconds(pause_ms), [&] { return stop_; });
      if (stop_) return;
    }
    pause_ms = 250;
    if (a_.stopping() || !n_.IsPrimary()) continue;
    if (!log) {
      // Connected only once a snapshot can be due (a small or idle database
      // never costs a connection).
      const Config& c = n_.cfg;
      const uint64_t acked = n_.sidecar.Read().acked_txid;
      if (!((c.snapshot_every_txns > 0 && acked >= uint64_t(c.snapshot_every_txns)) ||
            (c.snapshot_every_ms > 0 && acked > 0 && SteadyMs() - last_ms_ >= c.snapshot_every_ms))) {
        continue;
      }
      transport::Options o = TransportOptions(n_.cfg);
      o.client_name = "litejet:" + n_.cfg.node + ":" + n_.cfg.name + ":snapshots";
      Status s = transport::OpenNats(o, &log);
      if (s.ok()) s = snapshot::OpenNatsStore(o, &store);
      if (!s.ok()) {
        log.reset();
        store.reset();
        fail(s);
        pause_ms = 5000;
        continue;
      }
    }
    if (last_txid_ == UINT64_MAX) {
      // The newest snapshot published so far (by any primary) counts.
      std::vector<snapshot::Manifest> list;
      Status s = snapshot::List(*store, kCallMs, &list);
      if (!s.ok() && s.code() != snapshot::kNoSnapshot) {
        fail(s);
        pause_ms = 5000;
        continue;
      }
      last_txid_ = list.empty() ? 0 : list.front().txid;
      last_ms_ = SteadyMs();
    }
    if (!Due(n_.sidecar.Read().acked_txid, SteadyMs())) continue;
    snapshot::Manifest m;
    Status s = snap.Take(*log, *store, kCallMs, &m);
    last_ms_ = SteadyMs();
    if (!s.ok()) {
      fail(s);
      pause_ms = 5000;
      continue;
    }
    last_txid_ = m.txid;
    {
      std::lock_guard<std::mutex> g(n_.mu);
      n_.auto_snap.count++;
      n_.auto_snap.txid = m.txid;
      n_.auto_snap.at_unix_ms = int64_t(m.time_ms);
      n_.auto_snap.error.clear();
    }
    snapshot::RetentionPolicy policy;
    policy.keep_snapshots = size_t(n_.cfg.retain_snapshots);
    policy.keep_txids = uint64_t(n_.cfg.retain_txns);
    policy.keep_ms = uint64_t(n_.cfg.retain_ms);
    std::string summary;
    s = snap.Retain(*log, *store, policy, StillNeededTxid(), kCallMs, &summary);
    if (!s.ok()) {
      fail(s);
      continue;
    }
    std::lock_guard<std::mutex> g(n_.mu);
    n_.auto_snap.retention = summary;
  }
}

}  // namespace litejet
