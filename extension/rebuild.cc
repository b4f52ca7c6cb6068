// Divergence repair (docs/design.md "Divergence"): a database whose history
// is not the log's (its checksum disagrees with the log at its TXID, or it
// holds commits the log never acknowledged while another node wrote the
// log past them) is kept as "<db>.diverged-<UTC time>" with its WAL, sidecar
// and spool, and rebuilt from the log while its readers go on reading:
//
// 1. The log is replayed, page by page, into a private file next to the
//    database ("<db>-litejet-rebuild"), from its first record to the end as
//    it was when the rebuild began, checking that TXIDs follow each other
//    and that each record's checksum-before is the previous checksum-after.
// 2. The file's checksum (the XOR of its page hashes) must be the last
//    record's checksum-after.
// 3. One WAL transaction (WalWriter, as a replica applies a record) writes
//    every page whose hash differs from the sidecar's for the diverged
//    database, and the size; readers see the old database or the rebuilt
//    one, never a mixture, and are never waited for. The sidecar takes the
//    log's position under the same WAL_WRITE_LOCK.
//
// Snapshots (a later issue) will let step 1 start from the newest one.
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
#include "wal-capture/checksum.h"
#include "wal-capture/record.h"

namespace litejet {

namespace {

std::string ErrnoText() { return std::strerror(errno); }

uint64_t NowUnixMs() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
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
// The log's state up to its end (as it was when this began) in the file at
// tmp; *state: its position.
Status Applier::ReplayLog(transport::Log& log, const std::string& tmp, RebuiltState* state) {
  *state = RebuiltState();
  transport::Message last;
  bool found = false;
  Status s = log.Last(5000, &last, &found);
  if (!s.ok()) return s;
  uint64_t end_seq = 0, end_txid = 0;
  if (found) {
    s = n_.LastCompleteTxid(log, last, &end_txid, &end_seq);
    if (!s.ok()) return s;
  }
  if (end_seq == 0) return Status::Error("litejet: the log of \"" + n_.cfg.name + "\" has no complete record to rebuild from");

  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Error("litejet: cannot create " + tmp + ": " + ErrnoText(), SQLITE_CANTOPEN);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  record::Reassembler ra;
  std::string rec;
  uint64_t from = 1;
  Status bad;
  auto apply = [&](const record::Txn& t, uint64_t seq) -> Status {
    if (t.epoch < state->epoch) {
      return Status::Error("litejet: the log of \"" + n_.cfg.name + "\" goes back from epoch " +
                               std::to_string(state->epoch) + " to " + std::to_string(t.epoch) + " at TXID " +
                               std::to_string(t.txid) + " (sequence " + std::to_string(seq) + ")",
                           SQLITE_CORRUPT);
    }
    state->epoch = t.epoch;
    if (t.epoch_marker) {
      if (t.txid != state->txid || t.checksum_after != state->checksum) {
        return Status::Error("litejet: the log of \"" + n_.cfg.name + "\" has an epoch marker at TXID " +
                                 std::to_string(t.txid) + " (checksum " + checksum::Hex(t.checksum_after) +
                                 ") after TXID " + std::to_string(state->txid) + " (checksum " +
                                 checksum::Hex(state->checksum) + ")",
                             SQLITE_CORRUPT);
      }
      state->log_seq = seq;
      return Status::OK();
    }
    if (t.txid <= state->txid) return Status::OK();  // a retried publish's earlier copy
    if (t.txid != state->txid + 1) {
      return Status::Error("litejet: the log of \"" + n_.cfg.name + "\" " +
                               (state->txid == 0 ? "starts at TXID " + std::to_string(t.txid)
                                                 : "jumps from TXID " + std::to_string(state->txid) + " to " +
                                                       std::to_string(t.txid)) +
                               ": a rebuild needs a snapshot",
                           SQLITE_CORRUPT);
    }
    if (t.checksum_before != state->checksum) {
      return Status::Error("litejet: the log of \"" + n_.cfg.name + "\" breaks its checksum chain at TXID " +
                               std::to_string(t.txid) + " (before " + checksum::Hex(t.checksum_before) +
                               ", previous after " + checksum::Hex(state->checksum) + ")",
                           SQLITE_CORRUPT);
    }
    if (t.page_size == 0 || (state->page_size != 0 && t.page_size != state->page_size)) {
      return Status::Error("litejet: the log of \"" + n_.cfg.name + "\" changes page size at TXID " + std::to_string(t.txid),
                           SQLITE_CORRUPT);
    }
    state->page_size = t.page_size;
    for (const record::Page& p : t.pages) {
      if (p.pgno == 0 || p.pgno > t.db_pages || p.data.size() != t.page_size) {
        return Status::Error("litejet: record TXID " + std::to_string(t.txid) + " of \"" + n_.cfg.name +
                                 "\" has a page outside its database (page " + std::to_string(p.pgno) + ")",
                             SQLITE_CORRUPT);
      }
      const off_t off = off_t(p.pgno - 1) * off_t(t.page_size);
      if (::pwrite(fd, p.data.data(), p.data.size(), off) != ssize_t(p.data.size())) {
        return Status::Error("litejet: cannot write " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
      }
    }
    if (::ftruncate(fd, off_t(t.db_pages) * off_t(t.page_size)) != 0) {
      return Status::Error("litejet: cannot size " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
    }
    state->txid = t.txid;
    state->checksum = t.checksum_after;
    state->db_pages = t.db_pages;
    state->log_seq = seq;
    return Status::OK();
  };
  int64_t heard = SteadyMs();
  while (from <= end_seq && bad.ok()) {
    if (a_.stopping()) return Status::Error("litejet: stopping", transport::kUnavailable);
    uint64_t before = from;
    s = log.Read(from, 1000, [&](const transport::Message& m) {
      if (a_.stopping()) return false;
      a_.Beat();
      bool complete = false;
      uint64_t txid = 0;
      Status a = ra.Add(m.data.data(), m.data.size(), &complete, &rec, &txid);
      if (!a.ok()) a = ra.Add(m.data.data(), m.data.size(), &complete, &rec, &txid);  // a retry starts at chunk 0
      from = m.seq + 1;
      if (!a.ok()) {
        // Chunks of a publish that never completed are followed by its
        // retry from chunk 0; anything else is caught by the TXID checks.
        ra.Reset();
        return m.seq < end_seq;
      }
      if (complete) {
        std::vector<std::string> recs;
        a = record::Unbatch(&rec, &recs);
        for (size_t i = 0; a.ok() && i < recs.size(); i++) {
          record::Txn t;
          a = record::Decode(recs[i].data(), recs[i].size(), &t);
          if (a.ok()) a = apply(t, m.seq);
        }
        if (!a.ok()) {
          bad = Status::Error(a.message() + " (sequence " + std::to_string(m.seq) + ")",
                              a.code() == SQLITE_IOERR ? SQLITE_IOERR : SQLITE_CORRUPT);
          return false;
        }
        state->bytes += m.data.size();
      } else {
        state->bytes += m.data.size();
      }
      return m.seq < end_seq;
    });
    if (!bad.ok()) return bad;
    if (from > before) heard = SteadyMs();
    if (!s.ok() && s.code() != transport::kUnavailable) return s;
    if (SteadyMs() - heard > 60000) {  // no message for a minute: the log is unreachable
      return Status::Error("litejet: rebuild of \"" + n_.cfg.name + "\": the log stopped answering at sequence " +
                               std::to_string(from) + " of " + std::to_string(end_seq) +
                               (s.ok() ? std::string() : ": " + s.message()),
                           transport::kUnavailable);
    }
    if (!s.ok() && !a_.Sleep(250)) return Status::Error("litejet: stopping", transport::kUnavailable);
  }
  if (state->txid != end_txid) {
    return Status::Error("litejet: rebuild of \"" + n_.cfg.name + "\" reached TXID " + std::to_string(state->txid) +
                             " but the log ends at TXID " + std::to_string(end_txid),
                         SQLITE_CORRUPT);
  }
  if (::fsync(fd) != 0) return Status::Error("litejet: cannot sync " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
  // The file must be what the log says it is.
  state->hashes.assign(state->db_pages, 0);
  std::string page(state->page_size, '\0');
  uint64_t sum = 0;
  for (uint32_t pg = 1; pg <= state->db_pages; pg++) {
    ssize_t n = ::pread(fd, page.data(), page.size(), off_t(pg - 1) * off_t(state->page_size));
    if (n < 0) return Status::Error("litejet: cannot read " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
    if (size_t(n) < page.size()) std::memset(page.data() + n, 0, page.size() - size_t(n));
    state->hashes[pg - 1] = checksum::PageHash(page.data(), state->page_size, pg);
    sum ^= state->hashes[pg - 1];
  }
  if (sum != state->checksum) {
    return Status::Error("litejet: rebuild of \"" + n_.cfg.name + "\": the pages of the log up to TXID " +
                             std::to_string(state->txid) + " sum to " + checksum::Hex(sum) + ", but its record says " +
                             checksum::Hex(state->checksum),
                         SQLITE_CORRUPT);
  }
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
  for (int i = 2; Exists(kept); i++) kept = n_.path + ".diverged-" + UtcStamp(info.at_unix_ms) + "-" + std::to_string(i);
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

  // 2. The log's state, checked.
  const std::string tmp = n_.path + "-litejet-rebuild";
  RebuiltState st;
  Status s = ReplayLog(log, tmp, &st);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return failed(s);
  }

  // 3. Install it: one transaction of the pages that differ.
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Status os = Status::Error("litejet: cannot read " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
    ::unlink(tmp.c_str());
    return failed(os);
  }
  struct Closer {
    int fd;
    std::string path;
    ~Closer() {
      ::close(fd);
      ::unlink(path.c_str());
    }
  } closer{fd, tmp};
  Status inner;
  size_t written = 0;
  ls = Status::Error("", SQLITE_BUSY);
  for (int attempt = 0; attempt < 50 && !ls.ok() && !a_.stopping(); attempt++) {
    inner = Status::OK();
    ls = writer.WithWriteLock(2000, [&] {
      const sidecar::Position pos = n_.sidecar.Read();
      std::vector<record::Page> pages;
      for (uint32_t pg = 1; pg <= st.db_pages && inner.ok(); pg++) {
        if (pg <= pos.db_pages && pos.page_size == st.page_size && n_.sidecar.Hash(pg) == st.hashes[pg - 1]) continue;
        record::Page p;
        p.pgno = pg;
        p.data.resize(st.page_size);
        if (::pread(fd, p.data.data(), p.data.size(), off_t(pg - 1) * off_t(st.page_size)) != ssize_t(st.page_size)) {
          inner = Status::Error("litejet: cannot read " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
        }
        pages.push_back(std::move(p));
      }
      if (!inner.ok()) return;
      if (pages.empty()) {
        // Only the size differs: a commit needs a frame; page 1 as it is.
        record::Page p;
        p.pgno = 1;
        p.data.resize(st.page_size);
        if (::pread(fd, p.data.data(), p.data.size(), 0) != ssize_t(st.page_size)) {
          inner = Status::Error("litejet: cannot read " + tmp + ": " + ErrnoText(), SQLITE_IOERR);
          return;
        }
        pages.push_back(std::move(p));
      }
      inner = n_.sidecar.BeginUpdate(st.txid, std::max(pos.db_pages, st.db_pages));
      if (!inner.ok()) return;
      inner = writer.AppendLocked(st.page_size, st.db_pages, pages);
      if (!inner.ok()) {
        n_.sidecar.CommitUpdate(pos);  // nothing applied
        return;
      }
      written = pages.size();
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
  if (!ls.ok()) return failed(ls);
  if (!inner.ok()) return failed(inner);

  // Durable before it counts: the WAL synced, then the mark (a power loss
  // must not bring back the diverged TXIDs the mark may name).
  s = writer.Sync();
  if (s.ok()) s = power::MarkApplied(n_, writer, n_.sidecar.Read());  // the position installed above
  if (!s.ok()) return failed(s);

  info.active = false;
  info.count++;
  info.txid = st.txid;
  n_.sidecar.SetRebuild(info);
  Tell(SQLITE_WARNING, "litejet: " + n_.cfg.name + ": rebuilt from the log at TXID " + std::to_string(st.txid) +
                           " (checksum " + checksum::Hex(st.checksum) + ", " + std::to_string(st.db_pages) + " pages, " +
                           std::to_string(written) + " written, " + std::to_string(st.bytes) + " bytes of log read, " +
                           std::to_string(SteadyMs() - t0) + " ms); the diverged database is kept as " + kept);
  {
    std::lock_guard<std::mutex> g(n_.mu);
    n_.primary_seen.clear();
    n_.SetError(why + "; rebuilt from the log at TXID " + std::to_string(st.txid) + "; the diverged database is kept as " +
             kept);
  }
  *resume_seq = st.log_seq + 1;
  return Status::OK();
}

}  // namespace litejet
