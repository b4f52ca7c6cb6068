// cli/restore.cc: `litejet restore` (a database file at a TXID or time from
// the newest usable snapshot and the log, snapshot/snapshot.h) and
// `litejet snapshot` (publish a snapshot of a database file at rest).
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/nats_args.h"
#include "common/json.h"
#include "snapshot/snapshot.h"
#include "wal-capture/checksum.h"
#include "wal-capture/sidecar.h"

namespace litejet::cli {

namespace {

const char kRestoreUsage[] =
    "usage: litejet restore DB --nats URL --name NAME [--txid T | --time UTC] [--force] [--json]\n"
    "\n"
    "Builds DB from the newest usable snapshot at or below the target and the log after it\n"
    "(older snapshots, then the whole log, when a snapshot is damaged), and checks its\n"
    "checksum against the log's at the target before renaming it into place.\n"
    "\n"
    "  --txid T       restore to TXID T (default: the log's last transaction)\n"
    "  --time UTC     restore to the last transaction committed at or before UTC,\n"
    "                 e.g. 2026-11-27T21:00:00Z or 2026-11-27T21:00:00.123Z\n"
    "  --force        replace DB if it exists (with its -wal, -shm and -litejet files)\n"
    "  --json         print the result as one JSON object\n"
    "  --prefix P, --timeout-ms N, --creds F, --token T, --user U, --password P,\n"
    "  --tls-ca F, --tls-cert F, --tls-key F   as for litejet log\n"
    "\n"
    "exit status: 0 restored, 1 cannot restore (no usable source, broken log, checksum\n"
    "mismatch, target past the log's end), 2 bad usage, 3 NATS unreachable or no such\n"
    "database, 4 DB exists and --force was not given\n";

const char kSnapshotUsage[] =
    "usage: litejet snapshot DB --nats URL --name NAME [--json]\n"
    "\n"
    "Publishes a snapshot of DB, a database file at rest (no process has it open, no WAL\n"
    "content: checkpoint it first), to the database's snapshot stream. Its TXID is the\n"
    "sidecar's (DB-litejet) when there is one, else the newest transaction of the log whose\n"
    "checksum equals the file's.\n"
    "\n"
    "exit status: 0 published, 1 DB unreadable or not at any TXID of the log, 2 bad usage,\n"
    "3 NATS unreachable or no such database\n";

const Command kRestore{"restore", kRestoreUsage, true, {"--force"}, {"--txid", "--time"}};
const Command kSnapshot{"snapshot", kSnapshotUsage, true, {}, {}};

constexpr int kFailed = 1, kUnreachable = 3, kExists = 4;

std::string Stripped(const std::string& m) { return m.rfind("litejet: ", 0) == 0 ? m.substr(9) : m; }

// ISO 8601 UTC with optional fraction: 2026-11-27T21:00:00Z, ...00.123Z.
bool ParseUtc(const std::string& s, int64_t* us) {
  struct tm tm {};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return false;
  int64_t frac = 0;
  if (*end == '.') {
    int digits = 0;
    for (end++; *end >= '0' && *end <= '9'; end++, digits++) {
      if (digits < 6) frac = frac * 10 + (*end - '0');
    }
    if (digits == 0) return false;
    for (int d = digits; d < 6; d++) frac *= 10;
  }
  if (std::strcmp(end, "Z") != 0) return false;
  time_t secs = timegm(&tm);
  if (secs < 0) return false;
  *us = int64_t(secs) * 1000000 + frac;
  return true;
}

std::string Time(uint64_t us) {
  time_t secs = time_t(us / 1000000);
  struct tm tm;
  char buf[64];
  if (!gmtime_r(&secs, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm)) return "?";
  char out[80];
  std::snprintf(out, sizeof out, "%s.%03uZ", buf, unsigned(us / 1000 % 1000));
  return out;
}

// DB (the one positional argument) taken out of argv.
int TakeDb(const Command& c, int argc, char** argv, std::string* db, std::vector<char*>* rest) {
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(c.usage, stdout);
      return 0;
    }
    bool valued = a.rfind("--", 0) == 0 && a.find('=') == std::string::npos && a != "--json" && a != "--force";
    if (a.rfind("--", 0) == 0) {
      rest->push_back(argv[i]);
      if (valued && i + 1 < argc) rest->push_back(argv[++i]);
      continue;
    }
    if (!db->empty()) return Usage(c, "one database file, got \"" + *db + "\" and \"" + a + "\"");
    *db = a;
  }
  if (db->empty()) return Usage(c, "DB (the database file) is required");
  return -1;
}

// Progress: a bar redrawn in place on a terminal, a line per phase and
// quarter otherwise.
class Reporter {
 public:
  explicit Reporter(bool quiet) : tty_(!quiet && isatty(2)), quiet_(quiet) {}
  ~Reporter() { End(); }
  void operator()(const snapshot::Progress& p) {
    if (quiet_) return;
    std::string phase = p.phase;
    int pct = p.total ? int(p.done * 100 / p.total) : 100;
    if (tty_) {
      char bar[41];
      int fill = pct * 40 / 100;
      for (int i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
      bar[40] = 0;
      std::fprintf(stderr, "\r%-8s [%s] %3d%%  TXID %" PRIu64 "  ", phase.c_str(), bar, pct, p.txid);
      drawn_ = true;
      return;
    }
    if (phase != phase_ || pct / 25 > quarter_) {
      if (phase != phase_) quarter_ = -1;
      quarter_ = std::max(quarter_, pct / 25);
      phase_ = phase;
      if (phase == "snapshot") {
        std::fprintf(stderr, "restore: snapshot at TXID %" PRIu64 ": %d%% (%" PRIu64 " of %" PRIu64 " bytes)\n", p.txid,
                     pct, p.done, p.total);
      } else if (phase == "log") {
        std::fprintf(stderr, "restore: log: %d%% (at TXID %" PRIu64 ")\n", pct, p.txid);
      } else {
        std::fprintf(stderr, "restore: %s at TXID %" PRIu64 "\n", phase.c_str(), p.txid);
      }
    }
  }
  void End() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  bool tty_, quiet_, drawn_ = false;
  std::string phase_;
  int quarter_ = -1;
};

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

int OpenLog(const Command& c, const transport::Options& o, int64_t timeout_ms, std::unique_ptr<transport::Log>* log) {
  litejet::Status st = transport::InitLibrary();
  if (st.ok()) st = transport::OpenNats(o, log);
  if (!st.ok()) return Fail(c, st.message(), kUnreachable);
  uint64_t first = 0, last = 0;
  st = (*log)->Range(timeout_ms, &first, &last);
  if (st.code() == transport::kNoStream) {
    return Fail(c,
                "no database \"" + o.name + "\" on " + Redact(o.urls.empty() ? "" : o.urls[0]) + ": stream " +
                    o.prefix + "_" + o.name + " not found",
                kUnreachable);
  }
  if (!st.ok()) return Fail(c, "cannot reach NATS: " + Stripped(st.message()), kUnreachable);
  return -1;
}

// DB, then the NATS options, of restore and snapshot: -1 parsed, else the
// exit status (usage or help).
int ParseDbCommand(const Command& c, int argc, char** argv, std::string* db, NatsArgs* a, transport::Options* o) {
  std::vector<char*> rest;
  int rc = TakeDb(c, argc, argv, db, &rest);
  if (rc >= 0) return rc;
  rc = ParseNatsArgs(c, int(rest.size()), rest.data(), a);
  if (rc >= 0) return rc;
  return NatsOptions(c, *a, o);
}

}  // namespace

int RunRestore(int argc, char** argv) {
  const Command& c = kRestore;
  std::string db;
  NatsArgs a;
  transport::Options o;
  int rc = ParseDbCommand(c, argc, argv, &db, &a, &o);
  if (rc >= 0) return rc;
  snapshot::RestoreRequest rq;
  rq.target = db;
  rq.name = o.name;
  rq.timeout_ms = a.timeout_ms;
  auto txid = a.values.find("--txid"), tm = a.values.find("--time");
  if (txid != a.values.end() && tm != a.values.end()) return Usage(c, "--txid and --time exclude each other");
  if (txid != a.values.end()) {
    int64_t t = 0;
    if (!ParseCount(txid->second, 1, INT64_MAX, &t)) {
      return Usage(c, "--txid must be a TXID (a whole number from 1), got \"" + txid->second + "\"");
    }
    rq.txid = uint64_t(t);
  }
  if (tm != a.values.end() && !ParseUtc(tm->second, &rq.time_us)) {
    return Usage(c, "--time must be a UTC time like 2026-11-27T21:00:00Z or 2026-11-27T21:00:00.123Z, got \"" +
                        tm->second + "\"");
  }
  if (Exists(db) && !a.flags.count("--force")) {
    return Fail(c, db + " exists: use --force to replace it", kExists);
  }
  std::unique_ptr<transport::Log> log;
  rc = OpenLog(c, o, a.timeout_ms, &log);
  if (rc >= 0) return rc;
  std::unique_ptr<snapshot::Store> store;
  litejet::Status st = snapshot::OpenNatsStore(o, &store);
  if (!st.ok()) store.reset();
  Reporter rep(a.json);
  snapshot::RestoreResult rr;
  st = snapshot::Restore(*log, store.get(), rq, &rr, [&](const snapshot::Progress& p) { rep(p); });
  rep.End();
  if (!st.ok()) {
    return Fail(c, st.message(), st.code() == transport::kUnavailable ? kUnreachable : kFailed);
  }
  const std::string sum = checksum::Hex(rr.state.checksum);
  if (a.json) {
    std::string skipped = "[";
    for (size_t i = 0; i < rr.skipped.size(); i++) skipped += (i ? "," : "") + JsonString(rr.skipped[i]);
    skipped += "]";
    std::printf("{\"db\":%s,\"txid\":%" PRIu64 ",\"checksum\":\"%s\",\"time\":%s,\"epoch\":%" PRIu64
                ",\"db_pages\":%u,\"page_size\":%u,\"snapshot\":%s,\"records\":%" PRIu64 ",\"skipped\":%s}\n",
                JsonString(db).c_str(), rr.state.txid, sum.c_str(), JsonString(Time(rr.state.commit_time_us)).c_str(),
                rr.state.epoch, rr.state.db_pages, rr.state.page_size,
                rr.from_snapshot ? ("{\"id\":\"" + snapshot::IdHex(rr.snapshot.id) +
                                    "\",\"txid\":" + std::to_string(rr.snapshot.txid) + "}")
                                       .c_str()
                                 : "null",
                rr.records, skipped.c_str());
    return 0;
  }
  for (const std::string& k : rr.skipped) std::printf("skipped %s\n", k.c_str());
  std::string source = rr.from_snapshot ? "snapshot " + snapshot::IdHex(rr.snapshot.id) + " (TXID " +
                                              std::to_string(rr.snapshot.txid) + ") and " + std::to_string(rr.records) +
                                              " transactions of the log"
                                        : "the log (" + std::to_string(rr.records) + " transactions)";
  std::printf("restored %s to TXID %" PRIu64 " (checksum %s, committed %s) from %s\n", db.c_str(), rr.state.txid,
              sum.c_str(), Time(rr.state.commit_time_us).c_str(), source.c_str());
  return 0;
}

int RunSnapshot(int argc, char** argv) {
  const Command& c = kSnapshot;
  std::string db;
  NatsArgs a;
  transport::Options o;
  int rc = ParseDbCommand(c, argc, argv, &db, &a, &o);
  if (rc >= 0) return rc;
  std::unique_ptr<snapshot::PageSource> src;
  litejet::Status st = snapshot::OpenFileSource(db, &src);
  if (!st.ok()) return Fail(c, st.message(), kFailed);
  uint64_t sum = 0;
  st = checksum::OfFile(db, &sum);
  if (!st.ok()) return Fail(c, st.message(), kFailed);
  uint64_t want_txid = 0, hint_seq = 0;
  const bool has_sidecar = Exists(db + "-litejet");
  if (has_sidecar) {
    sidecar::Sidecar sc;
    bool created = false;
    st = sc.Open(db + "-litejet", &created);
    if (!st.ok()) return Fail(c, st.message(), kFailed);
    want_txid = sc.Read().txid;
    hint_seq = sc.Read().log_seq;
  }
  std::unique_ptr<transport::Log> log;
  rc = OpenLog(c, o, a.timeout_ms, &log);
  if (rc >= 0) return rc;
  // The record: the sidecar's TXID, or the newest with the file's checksum.
  snapshot::FoundRecord fr;
  if (has_sidecar) {
    st = snapshot::FindRecord(*log, want_txid, hint_seq, a.timeout_ms, &fr);
  } else {
    uint64_t first = 0, last = 0;
    st = log->Range(a.timeout_ms, &first, &last);
    if (st.ok()) {
      st = snapshot::ScanLog(*log, first, last, a.timeout_ms,
                             [&](const record::Txn& t, const snapshot::LogPos& pos, bool*) {
                               if (!t.epoch_marker && t.checksum_after == sum) {
                                 fr.found = true;
                                 fr.txn = t;
                                 fr.txn.pages.clear();
                                 fr.pos = pos;
                               }
                               return litejet::Status::OK();
                             });
    }
  }
  if (!st.ok()) {
    return Fail(c, st.message(), st.code() == transport::kUnavailable ? kUnreachable : kFailed);
  }
  if (!fr.found) {
    return Fail(c, has_sidecar ? "TXID " + std::to_string(want_txid) + " of " + db +
                                     " (its sidecar's) is not in the log of \"" + o.name + "\""
                               : "no transaction in the log of \"" + o.name + "\" has the checksum of " + db + " (" +
                                     checksum::Hex(sum) + ")");
  }
  if (fr.txn.checksum_after != sum) {
    return Fail(c, db + " at TXID " + std::to_string(want_txid) + " (its sidecar's) has checksum " +
                       checksum::Hex(sum) + ", the log has " + checksum::Hex(fr.txn.checksum_after));
  }
  snapshot::PutInfo in;
  in.txid = fr.txn.txid;
  in.log_seq = fr.pos.start;
  in.epoch = fr.txn.epoch;
  in.commit_time_us = fr.txn.timestamp_us;
  in.checksum = sum;
  std::unique_ptr<snapshot::Store> store;
  st = snapshot::OpenNatsStore(o, &store);
  snapshot::Manifest m;
  if (st.ok()) st = snapshot::Put(*store, *src, in, std::max<int64_t>(a.timeout_ms, 60000), &m);
  if (!st.ok()) return Fail(c, st.message(), st.code() == transport::kUnavailable ? kUnreachable : kFailed);
  if (a.json) {
    std::printf("{\"id\":\"%s\",\"txid\":%" PRIu64
                ",\"checksum\":\"%s\",\"db_pages\":%u,\"page_size\":%u,"
                "\"chunks\":%u,\"raw_bytes\":%" PRIu64 ",\"stored_bytes\":%" PRIu64 ",\"log_seq\":%" PRIu64 "}\n",
                snapshot::IdHex(m.id).c_str(), m.txid, checksum::Hex(m.checksum).c_str(), m.db_pages, m.page_size,
                m.chunk_count, m.raw_bytes, m.stored_bytes, m.log_seq);
  } else {
    std::printf("snapshot %s of %s at TXID %" PRIu64 " (checksum %s): %u pages in %u chunks, %" PRIu64
                " bytes stored of %" PRIu64 "\n",
                snapshot::IdHex(m.id).c_str(), db.c_str(), m.txid, checksum::Hex(m.checksum).c_str(), m.db_pages,
                m.chunk_count, m.stored_bytes, m.raw_bytes);
  }
  return 0;
}

}  // namespace litejet::cli
