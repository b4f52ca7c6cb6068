// The primary's local log: the WAL first, the spool for what the WAL lost.
#include "wal-capture/local_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/durable.h"
#include "wal-capture/checksum.h"
#include "wal-capture/wal_format.h"

namespace litejet::locallog {

namespace {

std::string TxidStr(uint64_t t) { return "TXID " + std::to_string(t); }

// Reads frames [first, last] with pread.
Status ReadRaw(int fd, const std::string& path, uint32_t first, uint32_t last, uint32_t page_size, std::string* out) {
  const size_t fsz = wal::WAL_FRAME_HDRSIZE + page_size;
  out->resize(size_t(last - first + 1) * fsz);
  size_t done = 0;
  const off_t base = off_t(wal::FrameOffset(first, page_size));
  while (done < out->size()) {
    ssize_t n = ::pread(fd, &(*out)[done], out->size() - done, base + off_t(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Status::Error("litejet: cannot read frames " + std::to_string(first) + "-" + std::to_string(last) +
                               " of " + path + (n < 0 ? ": " + std::string(std::strerror(errno)) : ": short file"),
                           10);
    }
    done += size_t(n);
  }
  return Status::OK();
}

// first and the commits after it, up to TXID last, that follow one another
// in the same WAL generation (padding frames between them are fine): what
// one read of frames first.first_frame.. covers. At most max_count entries;
// stops once their frames span max_bytes.
std::vector<sidecar::CommitEntry> RunFrom(const sidecar::Sidecar& sc, const sidecar::CommitEntry& first, uint64_t last,
                                          size_t max_count, uint64_t max_bytes) {
  const uint64_t fsz = wal::WAL_FRAME_HDRSIZE + first.page_size;
  std::vector<sidecar::CommitEntry> run{first};
  uint64_t bytes = uint64_t(first.commit_frame - first.first_frame + 1) * fsz;
  while (first.txid + run.size() <= last && run.size() < max_count && bytes < max_bytes) {
    sidecar::CommitEntry e;
    if (!sc.GetCommit(first.txid + run.size(), &e) || e.salt1 != first.salt1 || e.salt2 != first.salt2 ||
        e.page_size != first.page_size || e.first_frame <= run.back().commit_frame) {
      break;
    }
    run.push_back(e);
    bytes = uint64_t(e.commit_frame - first.first_frame + 1) * fsz;
  }
  return run;
}

}  // namespace

Status TxnFromFrames(const sidecar::CommitEntry& e, const char* frames, size_t n, uint64_t epoch,
                     const std::string& node, record::Txn* t) {
  const size_t fsz = wal::WAL_FRAME_HDRSIZE + e.page_size;
  const uint32_t count = e.commit_frame - e.first_frame + 1;
  if (e.page_size == 0 || e.commit_frame < e.first_frame || n != size_t(count) * fsz) {
    return Status::Error("litejet: local log: " + TxidStr(e.txid) + " has an invalid frame range", 11);
  }
  // Newest frame per page: from the commit frame down.
  std::vector<std::pair<uint32_t, uint32_t>> newest;  // pgno, index
  newest.reserve(count);
  for (uint32_t k = count; k-- > 0;) {
    const unsigned char* h = reinterpret_cast<const unsigned char*>(frames + size_t(k) * fsz);
    // Frames carry the generation's salts, or zeros: SQLite writes frames
    // after an in-place rewrite with zero salts and checksums and fixes them
    // only after the commit frame (walRewriteChecksums), and 3.40 can leave
    // them so after ROLLBACK TO (docs/design.md). The page-hash check below
    // is what proves the bytes are the committed ones.
    const uint32_t s1 = wal::Get4(h + 8), s2 = wal::Get4(h + 12);
    if ((s1 != e.salt1 || s2 != e.salt2) && (s1 != 0 || s2 != 0)) {
      return Status::Error("litejet: local log: frame " + std::to_string(e.first_frame + k) + " of " + TxidStr(e.txid) +
                               " belongs to another WAL generation: it was overwritten before it was shipped",
                           11);
    }
    uint32_t pgno = wal::Get4(h);
    if (pgno >= 1 && pgno <= e.db_pages) newest.emplace_back(pgno, k);
  }
  std::stable_sort(newest.begin(), newest.end(), [](auto& a, auto& b) { return a.first < b.first; });
  t->txid = e.txid;
  t->epoch = epoch;
  t->timestamp_us = e.timestamp_us;
  t->node = node;
  t->page_size = e.page_size;
  t->db_pages = e.db_pages;
  t->checksum_before = e.checksum_before;
  t->checksum_after = e.checksum_after;
  t->pages.clear();
  t->pages.reserve(newest.size());
  uint64_t delta = 0;
  for (size_t j = 0; j < newest.size(); j++) {
    if (j > 0 && newest[j].first == newest[j - 1].first) continue;
    const char* data = frames + size_t(newest[j].second) * fsz + wal::WAL_FRAME_HDRSIZE;
    delta ^= checksum::PageHash(data, e.page_size, newest[j].first);
    t->pages.push_back(record::Page{newest[j].first, std::string(data, e.page_size)});
  }
  if (delta != e.delta) {
    return Status::Error("litejet: local log: the WAL frames of " + TxidStr(e.txid) +
                             " are not the pages that were committed (page hashes differ): the WAL was changed "
                             "outside litejet before it was shipped",
                         11);
  }
  return Status::OK();
}

Status ReadCommit(const std::string& wal_path, const sidecar::CommitEntry& e, uint64_t epoch, const std::string& node,
                  record::Txn* t) {
  int fd = ::open(wal_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("litejet: cannot open " + wal_path + ": " + std::strerror(errno), 14);
  std::string frames;
  Status s = ReadRaw(fd, wal_path, e.first_frame, e.commit_frame, e.page_size, &frames);
  ::close(fd);
  if (!s.ok()) return s;
  return TxnFromFrames(e, frames.data(), frames.size(), epoch, node, t);
}

Status HandOff(sidecar::Sidecar& sc, spool::Spool& spool, const std::string& wal_path, const std::string&,
               int* copied) {
  *copied = 0;
  sidecar::Position pos = sc.Read();
  uint64_t from = std::max(pos.acked_txid, pos.spooled_txid) + 1;
  if (from > pos.txid) return Status::OK();
  int fd = ::open(wal_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::Error("litejet: hand-off: cannot open " + wal_path + ": " + std::strerror(errno) + " (" +
                             std::to_string(pos.txid - from + 1) + " unshipped transactions are in it)",
                         10);
  }
  // No decoding, no hashing: the ring entries and the WAL bytes of their
  // frames go to the spool as they are (the kernel copies the frames); the
  // reader checks them against the entries' page hashes, as it would in the
  // WAL. One segment per run of commits of one WAL generation.
  Status s;
  uint64_t t = from, end = pos.spool_end;
  while (s.ok() && t <= pos.txid) {
    sidecar::CommitEntry first;
    if (!sc.GetCommit(t, &first)) {
      s = Status::Error("litejet: hand-off: the commit ring no longer holds " + TxidStr(t), 11);
      break;
    }
    std::vector<sidecar::CommitEntry> run = RunFrom(sc, first, pos.txid, SIZE_MAX, uint64_t(1) << 28);
    spool::SegmentHeader h;
    h.magic = spool::kSegmentMagic;
    h.version = 1;
    h.count = uint32_t(run.size());
    h.page_size = first.page_size;
    h.first_frame = first.first_frame;
    h.last_frame = run.back().commit_frame;
    std::string head(sizeof h + run.size() * sizeof(sidecar::CommitEntry), '\0');
    std::memcpy(&head[0], &h, sizeof h);
    std::memcpy(&head[sizeof h], run.data(), run.size() * sizeof(sidecar::CommitEntry));
    const uint64_t n = uint64_t(h.last_frame - h.first_frame + 1) * (wal::WAL_FRAME_HDRSIZE + h.page_size);
    s = spool.WriteSegment(head, fd, uint64_t(wal::FrameOffset(h.first_frame, h.page_size)), n, end, &end);
    durable::CrashPoint("handoff_segment_written");
    t += run.size();
    *copied += int(run.size());
  }
  ::close(fd);
  if (!s.ok()) return s;
  // Power loss (docs/design.md): the segments are on disk before the
  // sidecar says they exist, and both before the caller lets the WAL lose
  // the frames (SQLite's own syncs make the WAL's loss durable soon after).
  s = spool.Sync();
  if (!s.ok()) return s;
  durable::CrashPoint("handoff_spool_synced");
  sc.SetSpooled(pos.txid, end);
  durable::CrashPoint("handoff_spooled");
  s = sc.Sync();
  if (!s.ok()) return s;
  durable::CrashPoint("handoff_sidecar_synced");
  return Status::OK();
}

namespace {
// Parses a segment entry; false when it is not one or is malformed.
bool ParseSegment(const std::string& rec, spool::SegmentHeader* h, const sidecar::CommitEntry** entries,
                  const char** frames, size_t* frames_len) {
  if (rec.size() < sizeof *h) return false;
  std::memcpy(h, rec.data(), sizeof *h);
  if (h->magic != spool::kSegmentMagic) return false;
  const size_t head = sizeof *h + size_t(h->count) * sizeof(sidecar::CommitEntry);
  if (h->version != 1 || h->count == 0 || h->page_size == 0 || h->last_frame < h->first_frame || rec.size() < head) {
    return false;
  }
  const size_t n = size_t(h->last_frame - h->first_frame + 1) * (wal::WAL_FRAME_HDRSIZE + h->page_size);
  if (rec.size() != head + n) return false;
  *entries = reinterpret_cast<const sidecar::CommitEntry*>(rec.data() + sizeof *h);
  *frames = rec.data() + head;
  *frames_len = n;
  return true;
}
}  // namespace

Reader::~Reader() {
  if (spool_fd_ >= 0) ::close(spool_fd_);
}

Status Reader::Open(const std::string& db_path, sidecar::Sidecar* sc) {
  path_ = db_path;
  sc_ = sc;
  std::string sp = db_path + "-litejet-log";
  spool_fd_ = ::open(sp.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
  if (spool_fd_ < 0) return Status::Error("litejet: cannot open the log spool " + sp + ": " + std::strerror(errno), 14);
  wal_ = std::make_unique<apply::WalWriter>();
  return wal_->Open(db_path);
}

Status Reader::Read(uint64_t next, uint64_t last, uint64_t wal_last, uint64_t spool_end, uint64_t spool_limit,
                    size_t max_txns, size_t max_bytes, const std::string& node, std::vector<record::Txn>* out) {
  size_t bytes = 0;
  std::string rec;
  for (int rounds = 0; next <= last && out->size() < max_txns && bytes < max_bytes; rounds++) {
    // The spool first: it holds what the WAL lost, always older than what the
    // WAL holds.
    bool took = false;
    while (next <= last && out->size() < max_txns && bytes < max_bytes) {
      uint64_t at = spool_off_;
      if (!spool::ReadEntry(spool_fd_, spool_limit, &spool_off_, &rec)) break;
      spool::SegmentHeader h;
      const sidecar::CommitEntry* entries = nullptr;
      const char* frames = nullptr;
      size_t frames_len = 0;
      if (rec.size() >= 4 && std::memcmp(rec.data(), &spool::kSegmentMagic, 4) == 0) {
        if (at >= spool_end) {
          spool_off_ = at;  // segments are written below the committed end: these are old bytes
          break;
        }
        if (!ParseSegment(rec, &h, &entries, &frames, &frames_len)) {
          return Status::Error(
              "litejet: log spool " + path_ + "-litejet-log at " + std::to_string(at) + ": malformed segment", 11);
        }
        const uint64_t epoch = sc_->Read().epoch;
        const size_t fsz = wal::WAL_FRAME_HDRSIZE + h.page_size;
        bool later = false, partial = false;
        for (uint32_t i = 0; i < h.count; i++) {
          sidecar::CommitEntry e;
          std::memcpy(static_cast<void*>(&e), &entries[i], sizeof e);
          if (e.txid < next) continue;
          if (e.txid > next) {
            later = true;
            break;
          }
          if (next > last || out->size() >= max_txns || bytes >= max_bytes) {
            partial = true;  // read this segment again next time
            break;
          }
          if (e.page_size != h.page_size || e.first_frame < h.first_frame || e.commit_frame > h.last_frame ||
              e.commit_frame < e.first_frame) {
            return Status::Error("litejet: log spool " + path_ + "-litejet-log at " + std::to_string(at) +
                                     ": segment entry of " + TxidStr(e.txid) + " is outside its frames",
                                 11);
          }
          record::Txn t;
          Status s = TxnFromFrames(e, frames + size_t(e.first_frame - h.first_frame) * fsz,
                                   size_t(e.commit_frame - e.first_frame + 1) * fsz, epoch, node, &t);
          if (!s.ok()) return s;
          bytes += t.pages.size() * t.page_size;
          out->push_back(std::move(t));
          next++;
          took = true;
        }
        if (later || partial) {
          spool_off_ = at;
          break;
        }
        continue;
      }
      record::Txn t;
      Status s = record::Decode(rec.data(), rec.size(), &t);
      if (at >= spool_end && (!s.ok() || t.txid != next)) {
        spool_off_ = at;  // past the committed end: not (yet) the record wanted
        break;
      }
      if (!s.ok())
        return Status::Error(
            "litejet: log spool " + path_ + "-litejet-log at " + std::to_string(at) + ": " + s.message(), 11);
      if (t.txid < next) continue;
      if (t.txid > next) {
        spool_off_ = at;  // later ones: next is in the WAL
        break;
      }
      bytes += t.pages.size() * t.page_size;
      out->push_back(std::move(t));
      next++;
      took = true;
    }
    if (next > last || out->size() >= max_txns || bytes >= max_bytes || next > wal_last) break;
    bool gone = false;
    size_t before = out->size();
    Status s = ReadFromWal(next, std::min(last, wal_last), max_txns - out->size(), max_bytes - bytes, node, out, &gone);
    if (!s.ok()) return s;
    for (size_t i = before; i < out->size(); i++) bytes += (*out)[i].pages.size() * (*out)[i].page_size;
    next += out->size() - before;
    if (!gone) {
      if (out->size() == before && !took) break;  // nothing more now
      continue;
    }
    // The WAL moved on: a hand-off put next into the spool meanwhile.
    sidecar::Position p = sc_->Read();
    if (p.spooled_txid < next || rounds > 3) {
      return Status::Error("litejet: " + TxidStr(next) + " of " + path_ +
                               " was lost before it was shipped: it is neither in the WAL nor in the spool "
                               "(was the WAL reset by a process without litejet?)",
                           11);
    }
    spool_end = std::max(spool_end, p.spool_end);
    spool_limit = std::max(spool_limit, p.spool_end);
  }
  return Status::OK();
}

Status Reader::ReadFromWal(uint64_t next, uint64_t last, size_t max_txns, size_t max_bytes, const std::string& node,
                           std::vector<record::Txn>* out, bool* gone) {
  *gone = false;
  sidecar::CommitEntry first;
  if (!sc_->GetCommit(next, &first)) {
    *gone = true;  // the slot was reused: the entry went to the spool first
    return Status::OK();
  }
  std::vector<sidecar::CommitEntry> run = RunFrom(*sc_, first, last, max_txns, max_bytes);
  Status s = wal_->ReadFrames(first.salt1, first.salt2, first.first_frame, run.back().commit_frame, first.page_size,
                              &buf_, gone);
  if (!s.ok() || *gone) return s;
  const size_t fsz = wal::WAL_FRAME_HDRSIZE + first.page_size;
  const uint64_t epoch = sc_->Read().epoch;
  for (const sidecar::CommitEntry& e : run) {
    record::Txn t;
    s = TxnFromFrames(e, buf_.data() + size_t(e.first_frame - first.first_frame) * fsz,
                      size_t(e.commit_frame - e.first_frame + 1) * fsz, epoch, node, &t);
    if (!s.ok()) {
      // Read while a hand-off and a restart overwrote it? Then it is in the
      // spool now; otherwise the error stands.
      if (sc_->Read().spooled_txid >= e.txid) {
        *gone = true;
        return Status::OK();
      }
      return s;
    }
    out->push_back(std::move(t));
  }
  return Status::OK();
}

}  // namespace litejet::locallog
