// Divergence repair (docs/design.md "Divergence"): a database whose history
// is not the log's (its checksum disagrees with the log at its TXID, or it
// holds commits the log never acknowledged while another node wrote the
// log past them) is kept as "<db>.diverged-<UTC time>" with its WAL, sidecar
// and spool, and rebuilt from the log while its readers go on reading:
//
// 1. The newest usable snapshot (snapshot::Restore: older ones, then the
//    log from its first record, when one is damaged) and the log after it
//    are written into a private file next to the database
//    ("<db>-litejet-rebuild"), up to the log's end as it was when the
//    rebuild began, checking that TXIDs follow each other and that each
//    record's checksum-before is the previous checksum-after.
// 2. The file's checksum (the XOR of its page hashes) must be the last
//    record's checksum-after.
// 3. One WAL transaction (WalWriter, as a replica applies a record) writes
//    every page whose hash differs from the sidecar's for the diverged
//    database, and the size; readers see the old database or the rebuilt
//    one, never a mixture, and are never waited for. The sidecar takes the
//    log's position under the same WAL_WRITE_LOCK.
//
// A replica whose next record is no longer in the log (retention purged
// it) bootstraps with steps 1 to 3 (Bootstrap), keeping nothing: its file
// is the log's history, only older.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/clock.h"
#include "extension/applier.h"
#include "extension/power.h"
#include "snapshot/snapshot.h"
#include "wal-capture/checksum.h"
#include "wal-capture/record.h"

namespace litejet {

namespace {

std::string ErrnoText() { return std::strerror(errno); }

uint64_t NowUnixMs() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// "20261127T193012.345Z"
std::string UtcStamp(uint64_t unix_ms) {
  std::time_t secs = std::time_t(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, unsigned(unix_ms % 1000));
  return buf;
}

// Copies from to to (created, must not exist) and syncs it. *copied: false
// when from does not exist (nothing to keep).
Status CopyFile(const std::string& from, const std::string& to, bool* copied) {
  *copied = false;
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    if (errno == ENOENT) return Status::OK();
    return Status::Error("litejet: cannot read " + from + ": " + ErrnoText(), SQLITE_IOERR);
  }
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    Status s = Status::Error("litejet: cannot create " + to + ": " + ErrnoText(), SQLITE_CANTOPEN);
    ::close(in);
    return s;
  }
  std::string buf(1 << 20, '\0');
  Status s;
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      s = Status::Error("litejet: cannot read " + from + ": " + ErrnoText(), SQLITE_IOERR);
      break;
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf.data() + off, size_t(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        s = Status::Error("litejet: cannot write " + to + ": " + ErrnoText(), SQLITE_IOERR);
        break;
      }
      off += w;
    }
    if (!s.ok()) break;
  }
  if (s.ok() && ::fsync(out) != 0) s = Status::Error("litejet: cannot sync " + to + ": " + ErrnoText(), SQLITE_IOERR);
  ::close(out);
  ::close(in);
  if (s.ok()) *copied = true;
  return s;
}

// A rebuild is rare and an operator must hear of it: sqlite3_log (the
// application's SQLITE_CONFIG_LOG) and one line on stderr (the process log
// of a service, the terminal of a shell).
void Tell(int code, const std::string& line) {
  sqlite3_log(code, "%s", line.c_str());
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace
snapshot::Store* Applier::Store() {
  // Opened on first use; a failed open is tried again after 30 s.
  if (!store_ && (store_tried_ms_ == 0 || SteadyMs() - store_tried_ms_ > 30000)) {
    store_tried_ms_ = SteadyMs();
    if (!Agent::UsingTestLog()) {
      Status s = snapshot::OpenNatsStore(TransportOptions(n_.cfg), &store_);
      if (!s.ok()) {
        store_.reset();
        Tell(SQLITE_WARNING,
             "litejet: " + n_.cfg.name + ": no snapshot store (restores use the log alone): " + s.message());
      }
    }
  }
  return store_.get();
}

// The log's state up to its end (as it was when this began) in the file at
// tmp, from the newest usable snapshot and the log after it; *state: its
// position and page hashes.
Status Applier::RestoreLatest(transport::Log& log, const std::string& tmp, RebuiltState* state) {
  *state = RebuiltState();
  snapshot::RestoreRequest rq;
  rq.target = tmp;
  rq.name = n_.cfg.name;
  rq.timeout_ms = 10000;
  // The file is copied into the WAL (synced there) and deleted: syncing it
  // too cost a second write-back of the whole database.
  rq.sync = false;
  snapshot::RestoreResult rr;
  const int64_t started = SteadyMs();
  Status s = snapshot::Restore(log, Store(), rq, &rr, [&](const snapshot::Progress& p) {
    a_.Beat();
    std::lock_guard<std::mutex> g(n_.mu);
    n_.bootstrap.phase = p.phase;
    n_.bootstrap.bytes = p.done;
    n_.bootstrap.total = p.total;
    n_.bootstrap.txid = p.txid;
  });
  for (const std::string& why : rr.skipped) Tell(SQLITE_WARNING, "litejet: " + n_.cfg.name + ": " + why + ": not used");
  if (!s.ok()) return s;
  (void)started;
  state->txid = rr.state.txid;
  state->checksum = rr.state.checksum;
  state->epoch = rr.state.epoch;
  state->log_seq = rr.state.consumed_seq;
  state->db_pages = rr.state.db_pages;
  state->page_size = rr.state.page_size;
  state->source = rr.from_snapshot
                      ? "snapshot " + snapshot::IdHex(rr.snapshot.id) + " (TXID " + std::to_string(rr.snapshot.txid) +
                            ") and " + std::to_string(rr.records) + " transactions of the log"
                      : std::to_string(rr.records) + " transactions of the log";
  state->bytes = rr.from_snapshot ? rr.snapshot.stored_bytes : 0;
  // The page hashes as Restore read them back from the file for its own
  // check (hashing the file a second time took ~1 s per GB).
  state->hashes = std::move(rr.page_hashes);
  uint64_t sum = 0;
  for (uint64_t h : state->hashes) sum ^= h;
  if (state->txid == 0 || state->hashes.size() != state->db_pages || sum != state->checksum) {
    return Status::Error("litejet: restore of \"" + n_.cfg.name + "\" into " + tmp + ": the file (" +
                             std::to_string(state->hashes.size()) + " pages, checksum " + checksum::Hex(sum) +
                             ") is not the log's TXID " + std::to_string(state->txid) + " (" +
                             std::to_string(state->db_pages) + " pages, checksum " + checksum::Hex(state->checksum) +
                             ")",
                         SQLITE_CORRUPT);
  }
  return Status::OK();
}

Status Applier::Install(apply::WalWriter& writer, sqlite3* db, const std::string& tmp, const RebuiltState& st,
                        size_t* written) {
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("litejet: cannot read " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  Status inner;
  Status ls = Status::Error("", SQLITE_BUSY);
  for (int attempt = 0; attempt < 50 && !ls.ok() && !a_.stopping(); attempt++) {
    inner = Status::OK();
    ls = writer.WithWriteLock(2000, [&] {
      const sidecar::Position pos = n_.sidecar.Read();
      // The pages that differ, read from the file one at a time as they are
      // appended (a 1 GB bootstrap held all of them in memory: 1 GB of RSS).
      std::vector<uint32_t> pgnos;
      for (uint32_t pg = 1; pg <= st.db_pages; pg++) {
        if (pg <= pos.db_pages && pos.page_size == st.page_size && n_.sidecar.Hash(pg) == st.hashes[pg - 1]) continue;
        pgnos.push_back(pg);
      }
      // Only the size differs: a commit needs a frame; page 1 as it is.
      if (pgnos.empty()) pgnos.push_back(1);
      std::string buf(st.page_size, '\0');
      auto page = [&](size_t i, uint32_t* pgno, const char** data) {
        *pgno = pgnos[i];
        *data = buf.data();
        if (::pread(fd, &buf[0], buf.size(), off_t(*pgno - 1) * off_t(st.page_size)) != ssize_t(st.page_size)) {
          return Status::Error("litejet: cannot read " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
        }
        return Status::OK();
      };
      inner = n_.sidecar.BeginUpdate(st.txid, std::max(pos.db_pages, st.db_pages));
      if (!inner.ok()) return;
      inner = writer.AppendLocked(st.page_size, st.db_pages, pgnos.size(), page);
      if (!inner.ok()) {
        n_.sidecar.CommitUpdate(pos);  // nothing applied
        return;
      }
      *written = pgnos.size();
      for (uint32_t pg = 1; pg <= st.db_pages; pg++) n_.sidecar.SetHash(pg, st.hashes[pg - 1]);
      sidecar::Position np = pos;
      np.txid = st.txid;
      np.checksum = st.checksum;
      np.db_pages = st.db_pages;
      np.page_size = st.page_size;
      np.spool_end = 0;
      np.spooled_txid = st.txid;
      n_.sidecar.CommitUpdate(np);
      n_.sidecar.SetInDoubt(0);
      n_.sidecar.SetAcked(st.txid, st.log_seq);
      if (st.epoch > pos.epoch) n_.sidecar.SetEpoch(st.epoch);
    });
    if (ls.ok() && inner.code() == SQLITE_BUSY_RECOVERY) {
      // Let SQLite rebuild the wal-index from the WAL, then try again.
      sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
      ls = Status::Error(inner.message(), SQLITE_BUSY);
    }
  }
  if (!ls.ok()) return ls;
  if (!inner.ok()) return inner;
  // Durable before it counts: the WAL synced, then the mark (a power loss
  // must not bring back the TXIDs the mark may name).
  Status s = writer.Sync();
  if (s.ok()) s = power::MarkApplied(n_, writer, n_.sidecar.Read());  // the position installed above
  return s;
}

Status Applier::Bootstrap(transport::Log& log, apply::WalWriter& writer, sqlite3* db, const std::string& why,
                          uint64_t* resume_seq) {
  const int64_t t0 = SteadyMs();
  const uint64_t from_txid = n_.sidecar.Read().txid;
  {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.bootstrap.phase = "start";
    n_.bootstrap.bytes = n_.bootstrap.total = n_.bootstrap.txid = 0;
    n_.bootstrap.reason = why;
    n_.bootstrap.source.clear();
  }
  Tell(SQLITE_NOTICE, "litejet: " + n_.cfg.name + ": bootstrapping from TXID " + std::to_string(from_txid) + ": " +
                          why + "; restoring from the newest usable snapshot and the log after it");
  auto failed = [&](const Status& s) {
    Tell(SQLITE_ERROR, "litejet: " + n_.cfg.name + ": bootstrap failed: " + s.message());
    std::lock_guard<std::mutex> g(n_.mu);
    n_.bootstrap.phase = "failed";
    n_.SetError("litejet: " + n_.cfg.name + ": " + why + "; the bootstrap from a snapshot failed: " + s.message());
    return s;
  };
  const std::string tmp = n_.path + "-litejet-rebuild";
  struct Remover {
    std::string p;
    ~Remover() { ::unlink(p.c_str()); }
  } remover{tmp};
  RebuiltState st;
  Status s = RestoreLatest(log, tmp, &st);
  if (!s.ok()) return failed(s);
  {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.bootstrap.phase = "install";
    n_.bootstrap.txid = st.txid;
  }
  size_t written = 0;
  s = Install(writer, db, tmp, st, &written);
  if (!s.ok()) return failed(s);
  Tell(SQLITE_NOTICE, "litejet: " + n_.cfg.name + ": bootstrapped to TXID " + std::to_string(st.txid) + " (checksum " +
                          checksum::Hex(st.checksum) + ", " + std::to_string(st.db_pages) + " pages, " +
                          std::to_string(written) + " written) from " + st.source + " in " +
                          std::to_string(SteadyMs() - t0) + " ms");
  n_.ClearError();  // before "done": whoever waits for it reads no stale error
  {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.bootstrap.phase = "done";
    n_.bootstrap.count++;
    n_.bootstrap.txid = st.txid;
    n_.bootstrap.source = st.source;
  }
  *resume_seq = st.log_seq + 1;
  return Status::OK();
}

Status Applier::Rebuild(transport::Log& log, apply::WalWriter& writer, sqlite3* db, const std::string& why,
                        uint64_t* resume_seq) {
  const int64_t t0 = SteadyMs();
  sidecar::RebuildInfo info = n_.sidecar.rebuild();
  info.active = true;
  info.at_unix_ms = NowUnixMs();
  info.txid = 0;
  info.reason = why;
  std::string kept = n_.path + ".diverged-" + UtcStamp(info.at_unix_ms);
  for (int i = 2; Exists(kept); i++)
    kept = n_.path + ".diverged-" + UtcStamp(info.at_unix_ms) + "-" + std::to_string(i);
  info.kept = kept;
  n_.sidecar.SetRebuild(info);
  Tell(SQLITE_WARNING, why + "; keeping it as " + kept + " and rebuilding it from the log");
  {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.SetError(why + "; kept as " + kept + "; rebuilding from the log");
  }
  auto failed = [&](const Status& s) {
    info.active = false;
    n_.sidecar.SetRebuild(info);
    Tell(SQLITE_ERROR, "litejet: " + n_.cfg.name + ": rebuild from the log failed: " + s.message());
    std::lock_guard<std::mutex> g(n_.mu);
    n_.SetError(why + "; kept as " + kept + "; the rebuild from the log failed: " + s.message());
    return s;
  };

  // 1. Keep the diverged files, under WAL_WRITE_LOCK: no commit and no WAL
  // restart meanwhile (a checkpoint may copy frames into the database file
  // as it is read: it copies what the WAL copy holds too).
  Status copied = Status::OK();
  Status ls = Status::Error("", SQLITE_BUSY);
  for (int attempt = 0; attempt < 50 && !ls.ok() && !a_.stopping(); attempt++) {
    ls = writer.WithWriteLock(2000, [&] {
      bool c = false;
      copied = CopyFile(n_.path, kept, &c);
      if (copied.ok()) copied = CopyFile(n_.path + "-wal", kept + "-wal", &c);
      if (copied.ok()) copied = CopyFile(n_.path + "-litejet", kept + "-litejet", &c);
      if (copied.ok()) copied = CopyFile(n_.path + "-litejet-log", kept + "-litejet-log", &c);
    });
  }
  if (!ls.ok()) return failed(ls);
  if (!copied.ok()) return failed(copied);

  // 2. The log's state, checked: the newest usable snapshot and the log after it.
  const std::string tmp = n_.path + "-litejet-rebuild";
  struct Remover {
    std::string p;
    ~Remover() { ::unlink(p.c_str()); }
  } remover{tmp};
  RebuiltState st;
  Status s = RestoreLatest(log, tmp, &st);
  if (!s.ok()) return failed(s);

  // 3. Install it: one transaction of the pages that differ.
  size_t written = 0;
  s = Install(writer, db, tmp, st, &written);
  if (!s.ok()) return failed(s);

  {
    // Before the count moves: whoever waits for it reads the outcome.
    std::lock_guard<std::mutex> g(n_.mu);
    n_.primary_seen.clear();
    n_.SetError(why + "; rebuilt from the log at TXID " + std::to_string(st.txid) + " (from " + st.source +
                "); the diverged database is kept as " + kept);
  }
  info.active = false;
  info.count++;
  info.txid = st.txid;
  n_.sidecar.SetRebuild(info);
  Tell(SQLITE_WARNING, "litejet: " + n_.cfg.name + ": rebuilt from the log at TXID " + std::to_string(st.txid) +
                           " (checksum " + checksum::Hex(st.checksum) + ", " + std::to_string(st.db_pages) +
                           " pages, " + std::to_string(written) + " written, from " + st.source + ", " +
                           std::to_string(SteadyMs() - t0) + " ms); the diverged database is kept as " + kept);
  *resume_seq = st.log_seq + 1;
  return Status::OK();
}

}  // namespace litejet
