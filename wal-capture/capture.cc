// Collector implementation. The rules (see ARCHITECTURE.md, "Primary"):
// frames of one transaction are written under one WAL_WRITE_LOCK; a frame may
// be rewritten in place (keep the newest bytes); a commit is complete when the
// page data of a frame whose header has a non-zero "database size after
// commit" has been written; frames after it under the same lock are padding.
#include "wal-capture/capture.h"

#include <algorithm>
#include <cstring>

#include "wal-capture/wal_format.h"

namespace litejet::capture {

void Collector::BeginWrite() {
  writing_ = true;
  committed_ = false;
  frames_.clear();
}

void Collector::EndWrite() {
  writing_ = false;
  committed_ = false;
  frames_.clear();
}

void Collector::SetWalHeader(const void* hdr32) {
  wal::WalHeader h;
  if (wal::ParseWalHeader(hdr32, &h)) {
    page_size_ = h.page_size;
    salt1_ = h.salt1;
    salt2_ = h.salt2;
  }
}

void Collector::OnTruncate(int64_t size) {
  if (size < wal::WAL_HDRSIZE) page_size_ = 0;  // the next writer writes a new header
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
    frames_.clear();
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

  const int64_t fsz = wal::WAL_FRAME_HDRSIZE + int64_t(page_size_);
  const char* p = static_cast<const char*>(buf);
  int64_t o = off - wal::WAL_HDRSIZE;
  int64_t left = amt;
  while (left > 0) {
    uint32_t iframe = uint32_t(o / fsz) + 1;
    int64_t within = o % fsz;
    int64_t n = std::min<int64_t>(left, fsz - within);
    Frame& f = frames_[iframe];
    int64_t i = 0;
    for (; i < n && within + i < wal::WAL_FRAME_HDRSIZE; i++) f.hdr[within + i] = uint8_t(p[i]);
    if (i < n) {
      size_t at = size_t(within + i - wal::WAL_FRAME_HDRSIZE);
      size_t len = size_t(n - i);
      if (at == 0 && len == page_size_) {
        f.data.assign(p + i, len);  // the usual case: a whole page in one write
      } else {
        if (f.data.size() != page_size_) f.data.resize(page_size_);
        std::memcpy(&f.data[at], p + i, len);
      }
    }
    p += n;
    o += n;
    left -= n;
  }
  if (o % fsz != 0) return Status::OK();
  uint32_t last = uint32_t(o / fsz);
  auto it = frames_.find(last);
  wal::FrameHeader fh = wal::ParseFrameHeader(it->second.hdr);
  if (!fh.is_commit()) return Status::OK();

  // The commit frame's data is written: the transaction is the frames from
  // the first one written under this lock up to this one. Later frames with
  // the same page replace earlier ones; pages past the new end are dropped.
  Captured c;
  c.page_size = page_size_;
  c.db_pages = fh.db_size_after_commit;
  c.commit_frame = last;
  // Salts as this process last saw them; the engine replaces them with the
  // WAL header's on disk (another process may have restarted the WAL, and
  // frame headers carry zero salts until walRewriteChecksums fills them in).
  c.salt1 = salt1_;
  c.salt2 = salt2_;
  std::map<uint32_t, Frame*> newest;
  for (auto f = frames_.begin(); f != frames_.end() && f->first <= last; ++f) {
    uint32_t pgno = wal::Get4(f->second.hdr);
    if (pgno >= 1 && pgno <= c.db_pages) newest[pgno] = &f->second;
  }
  c.pages.reserve(newest.size());
  for (auto& [pgno, frame] : newest) {
    if (frame->data.size() != page_size_) frame->data.resize(page_size_);
    c.pages.push_back(record::Page{pgno, std::move(frame->data)});
  }
  ready_ = std::move(c);
  committed_ = true;
  frames_.clear();
  *committed = true;
  return Status::OK();
}

Captured Collector::Take() { return std::move(ready_); }

}  // namespace litejet::capture
