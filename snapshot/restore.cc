// snapshot/restore.cc: a database file at a TXID (or time) from the newest
// usable snapshot at or below it plus the log after that snapshot; older
// snapshots, then the whole log, when a snapshot turns out unusable.
#include "common/clock.h"
#include "snapshot/snapshot.h"
#include "wal-capture/checksum.h"

namespace litejet::snapshot {

namespace {

std::string Stripped(const std::string& m) { return m.rfind("litejet: ", 0) == 0 ? m.substr(9) : m; }

}  // namespace

Status Restore(transport::Log& log, Store* store, const RestoreRequest& req, RestoreResult* out,
               const ProgressFn& progress) {
  *out = RestoreResult();
  const std::string who = "\"" + req.name + "\"";
  uint64_t first = 0, last = 0;
  Status s = log.Range(req.timeout_ms, &first, &last);
  if (s.code() == transport::kNoStream) {
    return Status::Error("litejet: no database " + who + " in NATS (no log stream)", transport::kNoStream);
  }
  if (!s.ok()) return s;
  if (first > last) return Status::Error("litejet: the log of " + who + " holds no transaction");

  std::vector<Manifest> all, candidates;
  if (store) {
    s = List(*store, req.timeout_ms, &all);
    if (!s.ok()) out->skipped.push_back("the snapshots could not be listed: " + Stripped(s.message()));
  }
  for (const Manifest& m : all) {
    if (req.txid != 0 && m.txid > req.txid) continue;
    // A snapshot whose TXID's commit time is unknown (0) cannot be placed in time.
    if (req.time_us >= 0 && (m.commit_time_us == 0 || m.commit_time_us > uint64_t(req.time_us))) continue;
    candidates.push_back(m);
  }

  FileBuilder b;
  s = b.Open(req.target);
  if (!s.ok()) return s;
  Status last_err;
  for (size_t c = 0; c <= candidates.size(); c++) {
    const bool snap = c < candidates.size();
    ReplayState st;
    uint64_t records = 0;
    s = b.Reset();
    if (!s.ok()) return s;
    std::string label;
    if (snap) {
      const Manifest& m = candidates[c];
      label = "snapshot " + IdHex(m.id) + " (TXID " + std::to_string(m.txid) + ")";
      uint64_t sum = 0, done = 0;
      s = Get(*store, m, req.timeout_ms, [&](const ChunkHeader& h, const std::string& raw) {
        for (uint32_t i = 0; i < h.page_count; i++) {
          sum ^= checksum::PageHash(raw.data() + size_t(i) * h.page_size, h.page_size, h.first_pgno + i);
        }
        done += raw.size();
        if (progress) {
          Progress p;
          p.phase = "snapshot";
          p.done = done;
          p.total = m.raw_bytes;
          p.txid = m.txid;
          progress(p);
        }
        return b.WritePages(h.first_pgno, h.page_size, raw);
      });
      if (s.ok() && sum != m.checksum) {
        s = Status::Error("litejet: " + label + ": its pages sum to " + checksum::Hex(sum) + ", its manifest says " +
                              checksum::Hex(m.checksum),
                          kBadChunk);
      }
      if (!s.ok()) {
        if (s.code() == 10) return s;  // our own disk failed: no other source helps
        out->skipped.push_back(label + ": " + Stripped(s.message()));
        continue;
      }
      st.txid = m.txid;
      st.checksum = m.checksum;
      st.epoch = m.epoch;
      st.log_seq = m.log_seq;
      st.consumed_seq = m.log_seq - 1;  // the record's batch may hold later TXIDs: read it again
      st.page_size = m.page_size;
      st.db_pages = m.db_pages;
      st.commit_time_us = m.commit_time_us;
    } else {
      label = "the log from its first record";
    }
    // Replay. The message at log_seq may hold later transactions of a batch.
    const uint64_t from = snap ? std::max(st.log_seq, first) : first;
    const bool done_already = req.txid != 0 && st.txid == req.txid;
    if (!done_already && from <= last) {
      s = ScanLog(log, from, last, req.timeout_ms, [&](const record::Txn& t, const LogPos& pos, bool* more) {
        // A transaction past the target ends the replay, unless it does not
        // follow on (then ApplyRecord names the gap).
        const bool fresh = !t.epoch_marker && t.txid == st.txid + 1;
        if (fresh && req.txid != 0 && t.txid > req.txid) {
          *more = false;
          return Status::OK();
        }
        if (fresh && req.time_us >= 0 && t.timestamp_us > uint64_t(req.time_us)) {
          *more = false;
          return Status::OK();
        }
        bool applied = false;
        Status a = ApplyRecord(b.fd(), b.tmp_path(), req.name, t, pos, &st, &applied);
        if (!a.ok()) return a;
        if (applied) records++;
        if (progress) {
          Progress p;
          p.phase = "log";
          p.done = pos.end - from + 1;
          p.total = last - from + 1;
          p.txid = st.txid;
          progress(p);
        }
        if (req.txid != 0 && st.txid == req.txid) *more = false;
        return Status::OK();
      });
      if (!s.ok()) {
        if (s.code() == transport::kUnavailable || s.code() == 10) return s;  // NATS or our disk: no fallback helps
        last_err =
            Status::Error("litejet: " + label + (snap ? " then the log: " : ": ") + Stripped(s.message()), s.code());
        if (snap) out->skipped.push_back(label + ": the log after it: " + Stripped(s.message()));
        continue;
      }
    }
    if (req.txid != 0 && st.txid != req.txid) {
      return Status::Error("litejet: the log of " + who + " ends at TXID " + std::to_string(st.txid) +
                               ", before TXID " + std::to_string(req.txid),
                           transport::kTruncated);
    }
    if (st.txid == 0 || st.db_pages == 0) {
      return Status::Error(std::string("litejet: the log of ") + who + " holds no transaction" +
                           (req.time_us >= 0 ? " committed at or before that time" : ""));
    }
    if (progress) {
      Progress p;
      p.phase = "verify";
      p.txid = st.txid;
      progress(p);
    }
    s = b.Finish(st.db_pages, st.page_size, st.checksum, req.sync, &out->page_hashes);
    if (!s.ok()) return s;
    out->state = st;
    out->from_snapshot = snap;
    if (snap) out->snapshot = candidates[c];
    out->records = records;
    return Status::OK();
  }
  std::string why = last_err.ok() ? "no source" : Stripped(last_err.message());
  std::string skipped;
  for (const std::string& k : out->skipped) skipped += "; " + k;
  return Status::Error("litejet: cannot restore " + who + ": " + why + skipped, 11);
}

}  // namespace litejet::snapshot
