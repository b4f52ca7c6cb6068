// cli/log.cc: `litejet log`, the transactions in a database's JetStream log,
// one line (or JSON object) each, and `--check`: does the log hold one history?
// It only reads, up to the log's last message as it was when the command started.
#include "transport/log.h"

#include <time.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/nats_args.h"
#include "common/json.h"
#include "wal-capture/checksum.h"
#include "wal-capture/record.h"

namespace litejet::cli {

namespace {

const char kLogUsage[] =
    "usage: litejet log --nats URL --name NAME [options]\n"
    "\n"
    "  --nats URL[,URL...]  NATS servers (required)\n"
    "  --name NAME          the database's replication name (required)\n"
    "  --prefix P           stream prefix (default litejet)\n"
    "  --from T             start at TXID T (default: the last --limit records)\n"
    "  --limit N            at most N records (default 20; with --from or --check: all)\n"
    "  --check              check that the log is one history (TXIDs contiguous, each\n"
    "                       checksum_before the previous checksum_after, epochs never\n"
    "                       decreasing) from its first record (or --from T); prints a summary\n"
    "  --json               JSON lines: one object per record (--check: one object)\n"
    "  --timeout-ms N       give up when NATS does not answer for N ms (default 5000)\n"
    "  --creds F, --token T, --user U, --password P, --tls-ca F, --tls-cert F, --tls-key F,\n"
    "  --nkey-seed F, --js-domain D\n"
    "                       authentication and TLS, as the URI parameters\n"
    "\n"
    "exit status: 0 done (check passed), 1 a record cannot be decoded or the check failed,\n"
    "2 bad usage, 3 the log cannot be read (NATS unreachable, no such database)\n";

const Command kLog{"log", kLogUsage, /*name_required=*/true, {"--check"}, {"--from", "--limit"}};

constexpr int kBroken = 1;      // a message cannot be decoded, or --check found a violation
constexpr int kUnreadable = 3;  // NATS unreachable, no stream, reading stalled

// One record of the log: a transaction or an epoch marker.
struct Entry {
  uint64_t seq = 0;  // stream sequence of the message completing it (a chunked record's last chunk)
  uint64_t txid = 0, epoch = 0, timestamp_us = 0, checksum_before = 0, checksum_after = 0;
  uint64_t bytes = 0;  // the encoded record (header and stored payload)
  size_t pages = 0;
  std::string node;
  bool marker = false;
};

struct Outcome {
  int status = 0;  // 0, kBroken or kUnreadable
  std::string why;
  uint64_t seq = 0;   // kBroken: the message at fault
  std::string where;  // kBroken: "sequence 3", "sequences 5..8" (a record in chunks)
};

std::string Stripped(const std::string& m) { return m.rfind("litejet: ", 0) == 0 ? m.substr(9) : m; }

// Reads messages from..last of the log, reassembling chunks and opening
// batches, and hands each record to fn in log order (false: stop).
class Scanner {
 public:
  Scanner(transport::Log& log, int64_t wait_ms) : log_(log), wait_ms_(wait_ms) {}

  // mid_record: `from` may be inside a record (chunks of it are skipped).
  Outcome Scan(uint64_t from, uint64_t last, bool mid_record, const std::function<bool(const Entry&)>& fn);
  // Records that lost their last chunks (a publisher that died mid-record,
  // or one still publishing at the end): skipped, they are not in the history.
  uint64_t incomplete() const { return incomplete_; }

 private:
  bool Message(const transport::Message& m, const std::function<bool(const Entry&)>& fn);

  transport::Log& log_;
  const int64_t wait_ms_;
  record::Reassembler ra_;
  uint64_t record_start_ = 0, incomplete_ = 0;
  bool skipping_ = false, stop_ = false;
  std::string rec_;
  Outcome out_;
};

Outcome Scanner::Scan(uint64_t from, uint64_t last, bool mid_record, const std::function<bool(const Entry&)>& fn) {
  ra_.Reset();
  incomplete_ = 0;
  skipping_ = mid_record;
  stop_ = false;
  out_ = Outcome();
  uint64_t next = from;
  while (next <= last && !stop_ && out_.status == 0) {
    const uint64_t before = next;
    litejet::Status st = log_.Read(next, wait_ms_, [&](const transport::Message& m) {
      next = m.seq + 1;
      return Message(m, fn) && m.seq < last;
    });
    if (!st.ok()) {
      out_.status = st.code() == transport::kTruncated ? kBroken : kUnreadable;
      out_.why = Stripped(st.message());
      out_.seq = next;
      out_.where = "sequence " + std::to_string(next);
      return out_;
    }
    if (next == before && !stop_ && out_.status == 0) {
      return {kUnreadable,
              "no message from the log for " + std::to_string(wait_ms_) + " ms at sequence " + std::to_string(next) +
                  " (its last is " + std::to_string(last) + ")",
              next, ""};
    }
  }
  if (ra_.pending() && out_.status == 0 && !stop_) incomplete_++;
  return out_;
}

bool Scanner::Message(const transport::Message& m, const std::function<bool(const Entry&)>& fn) {
  const std::string at = "sequence " + std::to_string(m.seq);
  record::ChunkInfo ci;
  if (skipping_ && record::PeekChunk(m.data.data(), m.data.size(), &ci) && ci.index > 0) return true;
  skipping_ = false;
  const bool was_pending = ra_.pending();
  if (!was_pending) record_start_ = m.seq;
  bool complete = false;
  uint64_t txid = 0;
  litejet::Status st = ra_.Add(m.data.data(), m.data.size(), &complete, &rec_, &txid);
  if (!st.ok() && was_pending) {
    // The record under way lost its last chunks (its publisher died, the
    // next one started over): this message may begin the next record.
    incomplete_++;
    record_start_ = m.seq;
    st = ra_.Add(m.data.data(), m.data.size(), &complete, &rec_, &txid);
  }
  if (!st.ok()) {
    out_ = {kBroken, Stripped(st.message()), m.seq, at};
    return false;
  }
  if (!complete) return true;
  const std::string where =
      record_start_ == m.seq ? at : "sequences " + std::to_string(record_start_) + ".." + std::to_string(m.seq);
  std::vector<std::string> recs;
  st = record::Unbatch(&rec_, &recs);
  if (!st.ok()) {
    out_ = {kBroken, Stripped(st.message()), m.seq, where};
    return false;
  }
  for (size_t i = 0; i < recs.size(); i++) {
    record::Txn t;
    st = record::Decode(recs[i].data(), recs[i].size(), &t);
    if (!st.ok()) {
      std::string which =
          recs.size() > 1 ? " (record " + std::to_string(i + 1) + " of a batch of " + std::to_string(recs.size()) + ")"
                          : "";
      out_ = {kBroken, Stripped(st.message()), m.seq, where + which};
      return false;
    }
    Entry e;
    e.seq = m.seq;
    e.txid = t.txid;
    e.epoch = t.epoch;
    e.timestamp_us = t.timestamp_us;
    e.checksum_before = t.checksum_before;
    e.checksum_after = t.checksum_after;
    e.bytes = recs[i].size();
    e.pages = t.pages.size();
    e.node = std::move(t.node);
    e.marker = t.epoch_marker;
    if (!fn(e)) {
      stop_ = true;
      return false;
    }
  }
  return true;
}

// ISO 8601, UTC, milliseconds: 2024-05-01T12:00:00.123Z.
std::string Time(uint64_t us) {
  time_t secs = time_t(us / 1000000);
  struct tm tm;
  char buf[64];
  if (!gmtime_r(&secs, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm)) return "?";
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03uZ", buf, unsigned(us / 1000 % 1000));
  return out;
}

const char* Kind(const Entry& e) { return e.marker ? "epoch-marker" : "txn"; }

const char kHeader[] =
    "      TXID  TIME                      EPOCH  NODE        PAGES       BYTES  CHECKSUM                 SEQ  KIND\n";

std::string Line(const Entry& e) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%10" PRIu64 "  %-24s  %5" PRIu64 "  %-10s  %5zu  %10" PRIu64 "  %s  %10" PRIu64 "  %s\n", e.txid,
                Time(e.timestamp_us).c_str(), e.epoch, OneLine(e.node).c_str(), e.pages, e.bytes,
                checksum::Hex(e.checksum_after).c_str(), e.seq, Kind(e));
  return buf;
}

std::string JsonLine(const Entry& e) {
  return "{\"txid\":" + std::to_string(e.txid) + ",\"time\":" + JsonString(Time(e.timestamp_us)) +
         ",\"epoch\":" + std::to_string(e.epoch) + ",\"node\":" + JsonString(e.node) +
         ",\"pages\":" + std::to_string(e.pages) + ",\"bytes\":" + std::to_string(e.bytes) +
         ",\"checksum_before\":" + JsonString(checksum::Hex(e.checksum_before)) +
         ",\"checksum_after\":" + JsonString(checksum::Hex(e.checksum_after)) + ",\"seq\":" + std::to_string(e.seq) +
         ",\"kind\":" + JsonString(Kind(e)) + "}\n";
}

std::string Count(uint64_t n, const std::string& what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); }

// --check: one history. Each record against the one before it: a
// transaction has the next TXID, a marker repeats the last one (it changes
// no page); checksum_before is the previous checksum_after; the epoch never
// decreases. The first record read is the baseline, except from the log's
// very first message (where TXIDs start at 1) or --from T (where it is T).
class Checker {
 public:
  Checker(bool from_genesis, uint64_t from_txid) : genesis_(from_genesis), from_txid_(from_txid) {}

  // False at the first violation (then why()).
  bool Add(const Entry& e) {
    if (n_ == 0) {
      first_ = e;
      if (from_txid_ && e.txid != from_txid_) {
        return Violation(e, "--from " + std::to_string(from_txid_) + ": the first record at or after it is TXID " +
                                std::to_string(e.txid));
      }
      if (genesis_ && e.txid != (e.marker ? 0 : 1)) {
        return Violation(e, "the log's first record is TXID " + std::to_string(e.txid) + ", not 1");
      }
    } else if (e.epoch < prev_.epoch) {
      return Violation(e, "epoch goes back from " + std::to_string(prev_.epoch) + " to " + std::to_string(e.epoch) +
                              " (node " + OneLine(e.node) + ")");
    } else if (e.marker && e.txid != prev_.txid) {
      return Violation(e, "an epoch marker at TXID " + std::to_string(e.txid) + " follows TXID " +
                              std::to_string(prev_.txid) + " (a marker repeats the last TXID)");
    } else if (!e.marker && e.txid != prev_.txid + 1) {
      return Violation(e, "TXID " + std::to_string(e.txid) + " follows TXID " + std::to_string(prev_.txid) +
                              " (expected " + std::to_string(prev_.txid + 1) + ")");
    } else if (e.checksum_before != prev_.checksum_after) {
      return Violation(e, "TXID " + std::to_string(e.txid) + " has checksum_before " +
                              checksum::Hex(e.checksum_before) + " but TXID " + std::to_string(prev_.txid) +
                              " ended at checksum " + checksum::Hex(prev_.checksum_after) + " (sequence " +
                              std::to_string(prev_.seq) + ")");
    }
    n_++;
    (e.marker ? markers_ : txns_)++;
    prev_ = e;
    return true;
  }

  const std::string& why() const { return why_; }
  uint64_t seq() const { return seq_; }

  // "N transactions, TXID a..b, epochs x..y, chain ok (...)"
  std::string Summary(uint64_t incomplete) const {
    std::string s = Count(txns_, "transaction");
    if (n_) {
      s += ", TXID " + std::to_string(first_.txid) + ".." + std::to_string(prev_.txid) + ", epochs " +
           std::to_string(first_.epoch) + ".." + std::to_string(prev_.epoch);
    }
    s += ", chain ok (" + Count(markers_, "epoch marker");
    if (n_) s += ", sequences " + std::to_string(first_.seq) + ".." + std::to_string(prev_.seq);
    if (incomplete) s += ", " + Count(incomplete, "incomplete record") + " skipped";
    return s + ")";
  }

  std::string Json(uint64_t incomplete) const {
    std::string j = "{\"ok\":true,\"transactions\":" + std::to_string(txns_) +
                    ",\"epoch_markers\":" + std::to_string(markers_) +
                    ",\"incomplete_records\":" + std::to_string(incomplete);
    if (n_) {
      j += ",\"first_txid\":" + std::to_string(first_.txid) + ",\"last_txid\":" + std::to_string(prev_.txid) +
           ",\"first_epoch\":" + std::to_string(first_.epoch) + ",\"last_epoch\":" + std::to_string(prev_.epoch) +
           ",\"first_seq\":" + std::to_string(first_.seq) + ",\"last_seq\":" + std::to_string(prev_.seq) +
           ",\"checksum\":" + JsonString(checksum::Hex(prev_.checksum_after));
    }
    return j + "}\n";
  }

 private:
  bool Violation(const Entry& e, const std::string& why) {
    why_ = why;
    seq_ = e.seq;
    return false;
  }

  const bool genesis_;
  const uint64_t from_txid_;
  uint64_t n_ = 0, txns_ = 0, markers_ = 0, seq_ = 0;
  Entry first_, prev_;
  std::string why_;
};

int Put(const std::string& s) {
  if (std::fputs(s.c_str(), stdout) < 0) return Fail(kLog, "cannot write: " + std::string(std::strerror(errno)));
  return 0;
}

struct Request {
  std::string where;                  // "NATS at <servers>"
  uint64_t from_txid = 0, limit = 0;  // 0: none
  bool check = false, json = false;
  int64_t timeout_ms = 0;
};

int Show(const Request& q, const transport::Options& o, transport::Log& log) {
  // The range is fixed now: records appended while reading are not shown.
  uint64_t first = 0, last = 0;
  litejet::Status st = log.Range(q.timeout_ms, &first, &last);
  if (!st.ok()) {
    if (st.code() == transport::kNoStream) {
      return Fail(kLog,
                  "no database \"" + o.name + "\" on " + q.where + ": stream " + o.prefix + "_" + o.name + " not found",
                  kUnreadable);
    }
    if (!log.Connected()) {
      return Fail(
          kLog,
          "cannot reach " + q.where + " within " + std::to_string(q.timeout_ms) + " ms: " + Stripped(st.message()),
          kUnreadable);
    }
    return Fail(kLog, st.message(), kUnreadable);
  }
  Scanner scan(log, q.timeout_ms);
  Outcome out;
  auto failed = [&]() {
    if (out.status == kBroken) return Fail(kLog, out.where + ": " + out.why, kBroken);
    return Fail(kLog, "reading stream " + o.prefix + "_" + o.name + " on " + q.where + ": " + out.why, out.status);
  };
  uint64_t n = 0;  // records taken
  auto more = [&] { return q.limit == 0 || ++n < q.limit; };

  if (q.check) {
    // From the first record (or --from T), linearly, up to --limit records.
    Checker checker(first == 1 && q.from_txid == 0, q.from_txid);
    bool violated = false;
    if (first <= last) {
      out = scan.Scan(first, last, false, [&](const Entry& e) {
        if (e.txid < q.from_txid) return true;
        violated = !checker.Add(e);
        return !violated && more();
      });
    }
    if (out.status == kUnreadable) return failed();
    if (!violated && out.status == 0) {
      return Put(q.json ? checker.Json(scan.incomplete()) : checker.Summary(scan.incomplete()) + "\n");
    }
    const std::string why = violated ? checker.why() : out.why;
    const uint64_t at = violated ? checker.seq() : out.seq;
    const std::string where = violated ? "sequence " + std::to_string(at) : out.where;
    if (q.json) Put("{\"ok\":false,\"seq\":" + std::to_string(at) + ",\"violation\":" + JsonString(why) + "}\n");
    return Fail(kLog, "check failed at " + where + ": " + why, kBroken);
  }

  if (!q.json && Put(kHeader) != 0) return 1;
  auto print = [&](const Entry& e) { return Put(q.json ? JsonLine(e) : Line(e)) == 0; };
  if (q.from_txid) {
    // Linear from the first message: TXIDs are not indexed by sequence.
    if (first <= last) {
      out = scan.Scan(first, last, false, [&](const Entry& e) {
        if (e.txid < q.from_txid) return true;
        return print(e) && more();
      });
    }
    return out.status ? failed() : 0;
  }

  // The last `limit` records: read a window at the log's end, wider each
  // time until it holds that many or starts at the first message. What came
  // before an undecodable message is still shown.
  const uint64_t want = q.limit ? q.limit : 20;
  std::deque<Entry> tail;
  for (uint64_t window = want + 2; first <= last; window *= 8) {
    const uint64_t start = last - first + 1 <= window ? first : last - window + 1;
    tail.clear();
    out = scan.Scan(start, last, start > first, [&](const Entry& e) {
      tail.push_back(e);
      if (tail.size() > want) tail.pop_front();
      return true;
    });
    if (out.status != 0 || tail.size() >= want || start == first) break;
  }
  for (const Entry& e : tail) {
    if (!print(e)) return 1;
  }
  return out.status ? failed() : 0;
}

}  // namespace

int RunLog(int argc, char** argv) {
  NatsArgs a;
  int rc = ParseNatsArgs(kLog, argc, argv, &a);
  if (rc >= 0) return rc;
  Request q;
  int64_t v = 0;
  if (a.values.count("--from")) {
    if (!ParseCount(a.values["--from"], 1, INT64_MAX, &v)) {
      return Usage(kLog, "--from must be a TXID (a whole number from 1), got \"" + a.values["--from"] + "\"");
    }
    q.from_txid = uint64_t(v);
  }
  if (a.values.count("--limit")) {
    if (!ParseCount(a.values["--limit"], 1, INT64_MAX, &v)) {
      return Usage(kLog, "--limit must be a whole number from 1, got \"" + a.values["--limit"] + "\"");
    }
    q.limit = uint64_t(v);
  }
  q.check = a.flags.count("--check") > 0;
  q.json = a.json;
  q.timeout_ms = a.timeout_ms;
  q.where = "NATS at " + Redact(a.nats);
  transport::Options o;
  rc = NatsOptions(kLog, a, &o);
  if (rc >= 0) return rc;

  litejet::Status st = transport::InitLibrary();
  std::unique_ptr<transport::Log> log;
  if (st.ok()) st = transport::OpenNats(o, &log);
  if (!st.ok()) return Fail(kLog, st.message(), kUnreadable);
  rc = Show(q, o, *log);
  if (std::fflush(stdout) != 0 && rc == 0) rc = Fail(kLog, "cannot write: " + std::string(std::strerror(errno)));
  return rc;
}

}  // namespace litejet::cli
