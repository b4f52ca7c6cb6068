// Collector implementation. The rules (see ARCHITECTURE.md, "Primary"):
// frames of one transaction are written under one WAL_WRITE_LOCK; a frame may
// be rewritten in place (keep the newest bytes); a commit is complete when the
// page data of a frame whose header has a non-zero "database size after
// commit" has been written; frames after it under the same lock are padding.
#include "wal-capture/capture.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "wal-capture/checksum.h"
#include "wal-capture/wal_format.h"

namespace litejet::capture {

void Collector::Reset() {
  // clear() keeps the vector's capacity (and the frames' buffers go): no
  // allocation per transaction in the usual case.
  frames_.clear();
  lo_ = 0;
}

void Collector::BeginWrite() {
  writing_ = true;
  salts_known_ = false;
  committed_ = false;
  new_generation_ = false;
  Reset();
}

void Collector::EndWrite() {
  writing_ = false;
  committed_ = false;
  new_generation_ = false;
  Reset();
}

void Collector::SetWalHeader(const void* hdr32) {
  wal::WalHeader h;
  if (wal::ParseWalHeader(hdr32, &h)) {
    page_size_ = h.page_size;
    salt1_ = h.salt1;
    salt2_ = h.salt2;
    salts_known_ = true;
  }
}

void Collector::SetSalts(uint32_t salt1, uint32_t salt2) {
  salt1_ = salt1;
  salt2_ = salt2;
  salts_known_ = true;
}

namespace {
std::string Hex8(uint32_t a, uint32_t b) {
  char s[24];
  std::snprintf(s, sizeof s, "%08" PRIx32 "%08" PRIx32, a, b);
  return s;
}
}  // namespace

// A frame header as SQLite writes it: its generation's salts (or zeros: after
// an in-place rewrite SQLite writes frames with zero salts and checksums and
// fixes them after the commit frame, walRewriteChecksums), a page number, and
// for a commit frame a database size that holds that page and that SQLite
// can reach.
Status Collector::CheckHeader(uint32_t iframe, const unsigned char* hdr) const {
  const wal::FrameHeader fh = wal::ParseFrameHeader(hdr);
  const std::string frame = "litejet: capture: WAL frame " + std::to_string(iframe);
  const char* refused = "; refused (the bytes were changed on their way to the WAL)";
  if (salts_known_ && (fh.salt1 != salt1_ || fh.salt2 != salt2_) && (fh.salt1 != 0 || fh.salt2 != 0)) {
    return Status::Error(frame + " is written with salts " + Hex8(fh.salt1, fh.salt2) + ", not those of its WAL (" +
                         Hex8(salt1_, salt2_) + ")" + refused);
  }
  if (fh.pgno == 0) return Status::Error(frame + " is written with page number 0" + refused);
  if (fh.is_commit() && (fh.db_size_after_commit > kMaxPageCount || fh.pgno > fh.db_size_after_commit)) {
    return Status::Error(frame + " is written as a commit of page " + std::to_string(fh.pgno) +
                         " with an impossible database size of " + std::to_string(fh.db_size_after_commit) + " pages" +
                         refused);
  }
  return Status::OK();
}

// Checks a write before any of it is taken: every frame header it completes
// and where its frames lie. Nothing changes when it fails.
Status Collector::Check(const char* p, int64_t o, int64_t left) const {
  const int64_t fsz = wal::WAL_FRAME_HDRSIZE + int64_t(page_size_);
  const uint64_t first = uint64_t(o / fsz) + 1;
  const uint64_t last = uint64_t((o + left - 1) / fsz) + 1;
  if (last > UINT32_MAX) {
    return Status::Error("litejet: capture: WAL write at offset " + std::to_string(o + wal::WAL_HDRSIZE) +
                         " lies past the largest possible WAL");
  }
  if (!frames_.empty() && (first < lo_ || first > uint64_t(lo_) + frames_.size())) {
    // SQLite writes a transaction's frames one after the other (rewriting
    // some in place): a write elsewhere would leave a hole in it.
    return Status::Error("litejet: capture: WAL write to frame " + std::to_string(first) +
                         " is not within or next to this transaction's frames " + std::to_string(lo_) + ".." +
                         std::to_string(lo_ + frames_.size() - 1) + "; refused");
  }
  while (left > 0) {
    const uint32_t iframe = uint32_t(o / fsz) + 1;
    const int64_t within = o % fsz;
    const int64_t n = std::min<int64_t>(left, fsz - within);
    if (within < wal::WAL_FRAME_HDRSIZE && within + n >= 16) {
      // This write completes the salts (bytes 8..15): check the header as it
      // will be.
      unsigned char hdr[wal::WAL_FRAME_HDRSIZE] = {0};
      if (!frames_.empty() && iframe >= lo_ && iframe - lo_ < frames_.size()) {
        std::memcpy(hdr, frames_[iframe - lo_].hdr, sizeof hdr);
      }
      const int64_t k = std::min<int64_t>(n, wal::WAL_FRAME_HDRSIZE - within);
      std::memcpy(hdr + within, p, size_t(k));
      Status s = CheckHeader(iframe, hdr);
      if (!s.ok()) return s;
    }
    p += n;
    o += n;
    left -= n;
  }
  return Status::OK();
}

void Collector::OnTruncate(int64_t size) {
  if (size < wal::WAL_HDRSIZE) page_size_ = 0;  // the next writer writes a new header
}

Collector::Frame& Collector::At(uint32_t iframe) {
  if (frames_.empty()) {
    lo_ = iframe;
  } else if (iframe < lo_) {
    // Not how SQLite writes (frames go up from the first), but harmless.
    frames_.insert(frames_.begin(), lo_ - iframe, Frame());
    lo_ = iframe;
  }
  size_t i = iframe - lo_;
  if (i >= frames_.size()) frames_.resize(i + 1);
  frames_[i].used = true;
  return frames_[i];
}

Status Collector::OnWrite(const void* buf, int amt, int64_t off, bool* committed) {
  *committed = false;
  if (off < wal::WAL_HDRSIZE) {
    if (off != 0 || amt < wal::WAL_HDRSIZE) {
      return Status::Error("litejet: capture: unexpected partial write of the WAL header");
    }
    wal::WalHeader h;
    if (!wal::ParseWalHeader(buf, &h)) return Status::Error("litejet: capture: invalid WAL header written");
    // A restart: a new generation of frames begins at 1.
    page_size_ = h.page_size;
    salt1_ = h.salt1;
    salt2_ = h.salt2;
    new_generation_ = true;
    Reset();
    if (amt == wal::WAL_HDRSIZE) return Status::OK();
    buf = static_cast<const char*>(buf) + wal::WAL_HDRSIZE;
    amt -= wal::WAL_HDRSIZE;
    off = wal::WAL_HDRSIZE;
  }
  if (!writing_) {
    return Status::Error("litejet: capture: WAL frame written without WAL_WRITE_LOCK (locking_mode=EXCLUSIVE?)");
  }
  if (page_size_ == 0) return Status::Error("litejet: capture: WAL page size unknown");
  if (committed_) return Status::OK();  // padding frames and checksum rewrites after the commit
  if (amt <= 0) return Status::OK();

  const int64_t fsz = wal::WAL_FRAME_HDRSIZE + int64_t(page_size_);
  const char* p = static_cast<const char*>(buf);
  int64_t o = off - wal::WAL_HDRSIZE;
  int64_t left = amt;
  Status checked = Check(p, o, left);
  if (!checked.ok()) return checked;
  while (left > 0) {
    uint32_t iframe = uint32_t(o / fsz) + 1;
    int64_t within = o % fsz;
    int64_t n = std::min<int64_t>(left, fsz - within);
    Frame& f = At(iframe);
    const uint32_t old_pgno = wal::Get4(f.hdr);
    int64_t i = 0;
    for (; i < n && within + i < wal::WAL_FRAME_HDRSIZE; i++) f.hdr[within + i] = uint8_t(p[i]);
    if (i > 0 && wal::Get4(f.hdr) != old_pgno) {
      // A new frame in this slot (after ROLLBACK TO, SQLite reuses frames):
      // its data follows; until then what is known of the slot is stale.
      f.hashed = false;
      f.data.clear();
      f.data_lo = f.data_hi = 0;
    }
    if (i < n) {
      size_t at = size_t(within + i - wal::WAL_FRAME_HDRSIZE);
      size_t len = size_t(n - i);
      if (f.data_hi == f.data_lo || at > f.data_hi || at + len < f.data_lo) {
        f.data_lo = uint32_t(at);  // the first piece, or one apart from the others
        f.data_hi = uint32_t(at + len);
      } else {
        f.data_lo = std::min(f.data_lo, uint32_t(at));
        f.data_hi = std::max(f.data_hi, uint32_t(at + len));
      }
      if (at == 0 && len == page_size_ && !keep_pages_) {
        // The usual case: a whole page in one write, its header (and so its
        // page number) already written. Hash it where it is.
        f.hash = checksum::PageHash(p + i, page_size_, wal::Get4(f.hdr));
        f.hashed = true;
        f.data.clear();
      } else {
        if (f.data.size() != page_size_) f.data.resize(page_size_);
        std::memcpy(&f.data[at], p + i, len);
        f.hashed = false;
      }
    }
    p += n;
    o += n;
    left -= n;
  }
  if (o % fsz != 0) return Status::OK();
  const uint32_t last = uint32_t(o / fsz);
  const Frame& lf = frames_[last - lo_];
  wal::FrameHeader fh = wal::ParseFrameHeader(lf.hdr);
  if (!fh.is_commit()) return Status::OK();
  const uint64_t span = uint64_t(last - lo_ + 1) * uint64_t(fsz);
  if (span > max_txn_bytes_) {
    // Refused before the commit frame's data reaches the WAL: the
    // transaction does not happen.
    const std::string limit = max_txn_bytes_ % (uint64_t(1) << 30) == 0 ? std::to_string(max_txn_bytes_ >> 30) + " GiB"
                                                                        : std::to_string(max_txn_bytes_) + " bytes";
    return Status::Error("litejet: transaction of " + std::to_string(span) + " bytes on \"" + name_ +
                             "\" exceeds the " + limit + " limit of one replicated transaction; split it",
                         18 /* SQLITE_TOOBIG */);
  }

  // The commit frame's data is written: the transaction is the frames from
  // the first one written under this lock up to this one. Later frames with
  // the same page replace earlier ones; pages past the new end are dropped.
  // Into ready_, whose buffers are reused from commit to commit.
  Captured& c = ready_;
  c.page_size = page_size_;
  c.db_pages = fh.db_size_after_commit;
  c.first_frame = lo_;
  c.commit_frame = last;
  c.new_generation = new_generation_;
  c.salt1 = salt1_;
  c.salt2 = salt2_;
  c.hashes.clear();
  c.pages.clear();
  // Newest frame per page: walk the frames from the commit frame down.
  std::vector<std::pair<uint32_t, uint32_t>>& newest = newest_;  // pgno, frame index
  newest.clear();
  for (uint32_t k = last - lo_ + 1; k-- > 0;) {
    const Frame& f = frames_[k];
    if (!f.used) continue;
    uint32_t pgno = wal::Get4(f.hdr);
    if (pgno >= 1 && pgno <= c.db_pages) newest.emplace_back(pgno, k);
  }
  if (newest.size() > 1) {
    std::stable_sort(newest.begin(), newest.end(), [](auto& a, auto& b) { return a.first < b.first; });
  }
  for (size_t j = 0; j < newest.size(); j++) {
    if (j > 0 && newest[j].first == newest[j - 1].first) continue;  // an older frame of the same page
    Frame& f = frames_[newest[j].second];
    const uint32_t pgno = newest[j].first;
    if ((f.data.size() != page_size_ && !f.hashed) || f.data_lo != 0 || f.data_hi != page_size_) {
      return Status::Error("litejet: capture: WAL frame " + std::to_string(lo_ + newest[j].second) +
                           " of the commit has a header but " + std::to_string(f.data_hi - f.data_lo) + " of its " +
                           std::to_string(page_size_) + " bytes of page data");
    }
    uint64_t h = f.hashed ? f.hash : checksum::PageHash(f.data.data(), page_size_, pgno);
    c.hashes.emplace_back(pgno, h);
    if (keep_pages_) c.pages.push_back(record::Page{pgno, std::move(f.data)});
  }
  committed_ = true;
  Reset();
  *committed = true;
  return Status::OK();
}

Captured& Collector::Take() { return ready_; }

}  // namespace litejet::capture
