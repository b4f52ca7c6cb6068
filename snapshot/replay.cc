// snapshot/replay.cc: the log's records applied to a plain database file
// (ApplyRecord, the checks extension/rebuild.cc's ReplayLog makes, factored
// out so restore and the rebuild share them) and ScanLog, the log read as
// records whatever their chunking and batching.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "snapshot/snapshot.h"
#include "wal-capture/checksum.h"

namespace litejet::snapshot {

namespace {
constexpr int kCorrupt = 11, kIoErr = 10;
}

Status ApplyRecord(int fd, const std::string& path, const std::string& name, const record::Txn& t, const LogPos& pos,
                   ReplayState* st, bool* applied) {
  const uint64_t seq = pos.start;
  *applied = false;
  const std::string log = "the log of \"" + name + "\"";
  if (t.epoch < st->epoch) {
    return Status::Error("litejet: " + log + " goes back from epoch " + std::to_string(st->epoch) + " to " +
                             std::to_string(t.epoch) + " at TXID " + std::to_string(t.txid) + " (sequence " +
                             std::to_string(seq) + ")",
                         kCorrupt);
  }
  st->epoch = t.epoch;
  if (t.epoch_marker) {
    if (t.txid != st->txid || t.checksum_after != st->checksum) {
      return Status::Error("litejet: " + log + " has an epoch marker at TXID " + std::to_string(t.txid) +
                               " (checksum " + checksum::Hex(t.checksum_after) + ") after TXID " +
                               std::to_string(st->txid) + " (checksum " + checksum::Hex(st->checksum) + ")",
                           kCorrupt);
    }
    st->log_seq = seq;
    st->consumed_seq = pos.last_in_message ? pos.end : pos.start - 1;
    return Status::OK();
  }
  if (t.txid <= st->txid) return Status::OK();  // a retried publish's earlier copy, or before a snapshot
  if (t.txid != st->txid + 1) {
    return Status::Error(
        "litejet: " + log + " " +
            (st->txid == 0 ? "starts at TXID " + std::to_string(t.txid)
                           : "jumps from TXID " + std::to_string(st->txid) + " to " + std::to_string(t.txid)) +
            ": a rebuild needs a snapshot",
        kCorrupt);
  }
  if (t.checksum_before != st->checksum) {
    return Status::Error("litejet: " + log + " breaks its checksum chain at TXID " + std::to_string(t.txid) +
                             " (before " + checksum::Hex(t.checksum_before) + ", previous after " +
                             checksum::Hex(st->checksum) + ")",
                         kCorrupt);
  }
  if (t.page_size == 0 || (st->page_size != 0 && t.page_size != st->page_size)) {
    return Status::Error("litejet: " + log + " changes page size at TXID " + std::to_string(t.txid), kCorrupt);
  }
  for (const record::Page& p : t.pages) {
    if (p.pgno == 0 || p.pgno > t.db_pages || p.data.size() != t.page_size) {
      return Status::Error("litejet: record TXID " + std::to_string(t.txid) + " of \"" + name +
                               "\" has a page outside its database (page " + std::to_string(p.pgno) + ")",
                           kCorrupt);
    }
    const off_t off = off_t(p.pgno - 1) * off_t(t.page_size);
    if (::pwrite(fd, p.data.data(), p.data.size(), off) != ssize_t(p.data.size())) {
      return Status::Error("litejet: cannot write " + path + ": " + std::strerror(errno), kIoErr);
    }
  }
  if (::ftruncate(fd, off_t(t.db_pages) * off_t(t.page_size)) != 0) {
    return Status::Error("litejet: cannot size " + path + ": " + std::strerror(errno), kIoErr);
  }
  st->page_size = t.page_size;
  st->txid = t.txid;
  st->checksum = t.checksum_after;
  st->db_pages = t.db_pages;
  st->log_seq = seq;
  st->consumed_seq = pos.last_in_message ? pos.end : pos.start - 1;
  st->commit_time_us = t.timestamp_us;
  *applied = true;
  return Status::OK();
}

Status ScanLog(transport::Log& log, uint64_t from, uint64_t last, int64_t wait_ms,
               const std::function<Status(const record::Txn&, const LogPos& pos, bool* more)>& fn) {
  if (from == 0) from = 1;
  record::Reassembler ra;
  std::string rec;
  bool leading = true;  // chunks of a record begun before `from` are skipped
  bool more = true;
  uint64_t start = 0;  // first message of the record being reassembled
  Status bad;
  uint64_t next = from;
  while (next <= last && more && bad.ok()) {
    const uint64_t before = next;
    Status s = log.Read(next, wait_ms, [&](const transport::Message& m) {
      next = m.seq + 1;
      record::ChunkInfo ci;
      if (leading && record::PeekChunk(m.data.data(), m.data.size(), &ci) && ci.index > 0) return m.seq < last;
      leading = false;
      bool complete = false;
      uint64_t txid = 0;
      if (!ra.pending()) start = m.seq;
      Status a = ra.Add(m.data.data(), m.data.size(), &complete, &rec, &txid);
      if (!a.ok()) start = m.seq;
      // A record that lost its last chunks (its publisher died) is followed
      // by a retry from chunk 0: start over with this message.
      if (!a.ok()) a = ra.Add(m.data.data(), m.data.size(), &complete, &rec, &txid);
      if (!a.ok()) {
        ra.Reset();
        return m.seq < last;
      }
      if (!complete) return m.seq < last;
      std::vector<std::string> recs;
      a = record::Unbatch(&rec, &recs);
      for (size_t i = 0; a.ok() && more && i < recs.size(); i++) {
        record::Txn t;
        a = record::Decode(recs[i].data(), recs[i].size(), &t);
        LogPos pos;
        pos.start = start;
        pos.end = m.seq;
        pos.last_in_message = i + 1 == recs.size();
        if (a.ok()) a = fn(t, pos, &more);
      }
      if (!a.ok()) {
        bad = Status::Error(a.message() + (start == m.seq ? " (sequence " + std::to_string(m.seq) + ")"
                                                          : " (sequences " + std::to_string(start) + ".." +
                                                                std::to_string(m.seq) + ")"),
                            a.code());
        return false;
      }
      return more && m.seq < last;
    });
    if (!bad.ok()) return bad;
    if (!s.ok()) return s;
    if (next == before && more) {
      return Status::Error("litejet: no message from the log for " + std::to_string(wait_ms) + " ms at sequence " +
                               std::to_string(next) + " (its last is " + std::to_string(last) + ")",
                           transport::kUnavailable);
    }
  }
  return Status::OK();
}

Status FindRecord(transport::Log& log, uint64_t txid, uint64_t hint_seq, int64_t wait_ms, FoundRecord* out) {
  *out = FoundRecord();
  uint64_t first = 0, last = 0;
  Status s = log.Range(wait_ms, &first, &last);
  if (!s.ok()) return s;
  if (first > last) return Status::OK();
  auto scan = [&](uint64_t from, bool whole) {
    bool seen = false;
    return ScanLog(log, from, last, wait_ms, [&](const record::Txn& t, const LogPos& pos, bool* more) {
      if (whole && !seen) out->first_txid = t.txid;
      seen = true;
      out->last_txid = t.txid;
      if (!t.epoch_marker && t.txid == txid) {
        out->found = true;
        out->txn = t;
        out->txn.pages.clear();
        out->pos = pos;
      } else if (t.txid > txid && (out->found || !whole)) {
        *more = false;  // found (a retried copy would have come right after it), or the hint was past it
      }
      return Status::OK();
    });
  };
  if (hint_seq > first && hint_seq <= last) {
    uint64_t start = hint_seq;
    if (!RecordStart(log, hint_seq, wait_ms, &start).ok()) start = hint_seq;
    s = scan(std::max(start, first), false);
    if (s.ok() && out->found) return s;
    if (!s.ok() && s.code() != transport::kTruncated) return s;
  }
  FoundRecord again;
  *out = again;
  return scan(first, true);
}

Status RecordStart(transport::Log& log, uint64_t seq, int64_t wait_ms, uint64_t* start) {
  bool got = false;
  Status bad;
  Status s = log.Read(seq, wait_ms, [&](const transport::Message& m) {
    record::ChunkInfo ci;
    if (m.seq != seq || !record::PeekChunk(m.data.data(), m.data.size(), &ci) || ci.index >= seq) {
      bad = Status::Error("litejet: log message " + std::to_string(seq) + " is not a record's chunk", kCorrupt);
    } else {
      *start = seq - ci.index;
      got = true;
    }
    return false;
  });
  if (!bad.ok()) return bad;
  if (!s.ok()) return s;
  if (!got) {
    return Status::Error(
        "litejet: no log message " + std::to_string(seq) + " within " + std::to_string(wait_ms) + " ms",
        transport::kUnavailable);
  }
  return Status::OK();
}

}  // namespace litejet::snapshot
