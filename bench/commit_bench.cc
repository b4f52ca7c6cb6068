// Commit throughput of small write transactions: plain SQLite (unix VFS, WAL)
// against litejet on the same disk, in alternating runs.
//
// Modes (each run: a fresh directory, a fresh database, one connection,
// journal_mode=WAL, synchronous=NORMAL, prepared statements):
//   plain    unix VFS, no litejet in the path
//   vfs      litejet VFS, no nats URL: the pass-through shim only
//   capture  litejet primary, async, shipping to an in-process log that
//            acknowledges at once (transport::NewMemoryLog): the whole commit
//            path and the agent, no network
//   stalled  litejet primary, async, nats=nats://127.0.0.1:9 (nothing
//            listens): nothing ships, so at every WAL restart the backlog
//            is copied to the spool; max_lag_ms=0 so writes are never refused
//   live     litejet primary, async, a live local nats-server: the agent
//            ships while we commit (competes for the 2 cores); after the last
//            commit we also time repl_wait() until JetStream acknowledged all
//
// A transaction is BEGIN; INSERT x rows (~100-byte text each); COMMIT.
// Each round runs every mode once, the order rotating from round to round.
// Reported: median txns/s over rounds per mode, and the median over rounds of
// the per-round ratio mode/plain.
#include <cinttypes>
#include <map>
#include <memory>

#include "bench/bench_common.h"
#include "extension/engine.h"
#include "transport/log.h"

namespace {

using namespace bench;

// Mode capture's log: in this process, acknowledging at once.
constexpr const char* kInProcessUrl = "nats://127.0.0.1:1";

struct Options {
  int rounds = 5;
  int txns = 5000;
  std::vector<int> rows = {1, 10};
  std::vector<std::string> modes = {"plain", "vfs", "capture", "stalled", "live"};
  std::string dir;
  std::string nats;  // empty: start a nats-server when "live" runs
  std::string md;    // markdown fragment output (appended)
};

struct RunResult {
  double txns_per_s = 0;
  double cpu_us = 0;         // CPU time of the committing thread per transaction (user + system)
  double shipped_per_s = 0;  // live: txns / (first commit .. last acknowledged)
  double drain_ms = 0;       // live: last commit -> last acknowledged
};

std::string Payload(int64_t i) {
  // ~100 bytes, different per row (no run-length-friendly constant).
  std::string s = Fmt("row %" PRId64 " ", i);
  uint64_t x = uint64_t(i) * 0x9E3779B97F4A7C15ull + 1;
  while (s.size() < 100) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s += char('a' + x % 26);
  }
  return s;
}

RunResult RunOne(const Options& o, const std::string& mode, int rows, int round, const std::string& url) {
  static int seq = 0;
  std::string name = Fmt("c%d_%s_%dr_%d_%d", round, mode.c_str(), rows, int(getpid()), seq++);
  std::string dir = o.dir + "/" + name;
  RemoveAll(dir);
  MakeDirs(dir);
  std::string path = dir + "/" + name + ".db";
  sqlite3* db = nullptr;
  if (mode == "plain") {
    db = OpenPlain(path);
  } else if (mode == "vfs") {
    db = OpenLitejet(path, "");
  } else if (mode == "capture") {
    db = OpenLitejet(path, std::string("nats=") + kInProcessUrl + "&role=primary&node=b1");
  } else if (mode == "stalled") {
    db = OpenLitejet(path, "nats=nats://127.0.0.1:9&role=primary&node=b1&max_lag_ms=0");
  } else if (mode == "live") {
    db = OpenLitejet(path, "nats=" + url + "&role=primary&node=b1");
  } else {
    Die("unknown mode %s", mode.c_str());
  }
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  sqlite3_stmt* begin = Prepare(db, "BEGIN");
  sqlite3_stmt* commit = Prepare(db, "COMMIT");
  sqlite3_stmt* ins = Prepare(db, "INSERT INTO t(v) VALUES (?1)");
  std::vector<std::string> payloads;
  for (int i = 0; i < 1024; i++) payloads.push_back(Payload(i + int64_t(round) * 7919));
  int64_t row = 0;
  auto txn = [&]() {
    if (StepDone(begin) != SQLITE_OK) Die("BEGIN: %s", sqlite3_errmsg(db));
    for (int r = 0; r < rows; r++) {
      const std::string& p = payloads[size_t(row++ % 1024)];
      sqlite3_bind_text(ins, 1, p.data(), int(p.size()), SQLITE_STATIC);
      if (StepDone(ins) != SQLITE_OK) Die("INSERT: %s", sqlite3_errmsg(db));
    }
    int rc = StepDone(commit);
    if (rc != SQLITE_OK) Die("COMMIT (%s): %s", mode.c_str(), sqlite3_errmsg(db));
  };
  // Warm-up (not timed): page cache, statement caches, WAL file created.
  for (int i = 0; i < 50; i++) txn();
  int64_t warm_pos = 0;
  if (mode == "live" || mode == "capture") {
    // Let the agent connect and ship the warm-up before the clock starts.
    warm_pos = QueryInt(db, "SELECT repl_position()");
    if (QueryInt(db, Fmt("SELECT repl_wait(%" PRId64 ", 20000)", warm_pos).c_str()) != 1) {
      Die("live: warm-up not acknowledged in 20 s (is nats-server up at %s?)", url.c_str());
    }
  }
  int64_t c0 = ThreadCpuNs();
  int64_t t0 = MonoNs();
  for (int i = 0; i < o.txns; i++) txn();
  int64_t t1 = MonoNs();
  int64_t c1 = ThreadCpuNs();
  RunResult r;
  r.txns_per_s = double(o.txns) / (double(t1 - t0) / 1e9);
  r.cpu_us = double(c1 - c0) / 1e3 / o.txns;
  if (mode == "live") {
    int64_t last = QueryInt(db, "SELECT repl_position()");
    if (last != warm_pos + o.txns) Die("live: position %" PRId64 ", expected %" PRId64, last, warm_pos + o.txns);
    if (QueryInt(db, Fmt("SELECT repl_wait(%" PRId64 ", 120000)", last).c_str()) != 1) {
      Die("live: last transaction not acknowledged in 120 s");
    }
    int64_t t2 = MonoNs();
    r.drain_ms = double(t2 - t1) / 1e6;
    r.shipped_per_s = double(o.txns) / (double(t2 - t0) / 1e9);
  }
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_finalize(ins);
  if (sqlite3_close(db) != SQLITE_OK) Die("close: %s", sqlite3_errmsg(db));
  RemoveAll(dir);
  return r;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> v;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) v.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return v;
}

void Usage() {
  std::fprintf(stderr,
               "usage: commit_bench [--rounds N] [--txns N] [--rows 1,10] [--modes plain,vfs,capture,stalled,live]\n"
               "                    [--dir DIR] [--nats URL] [--md FILE]\n"
               "  --dir   where the databases go (default ./bench-data); use the disk you care about\n"
               "  --nats  an existing JetStream server for mode live (default: start /usr/sbin/nats-server)\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  InitLitejet();
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Usage();
      return argv[++i];
    };
    if (a == "--rounds")
      o.rounds = std::atoi(val().c_str());
    else if (a == "--txns")
      o.txns = std::atoi(val().c_str());
    else if (a == "--rows") {
      o.rows.clear();
      for (auto& s : Split(val())) o.rows.push_back(std::atoi(s.c_str()));
    } else if (a == "--modes")
      o.modes = Split(val());
    else if (a == "--dir")
      o.dir = val();
    else if (a == "--nats")
      o.nats = val();
    else if (a == "--md")
      o.md = val();
    else
      Usage();
  }
  if (o.rounds < 1 || o.txns < 1 || o.rows.empty() || o.modes.empty()) Usage();
  if (o.dir.empty()) o.dir = "bench-data";
  o.dir = std::filesystem::absolute(o.dir).string();
  MakeDirs(o.dir);

  // Mode capture ships to an in-process log; every other URL is real.
  litejet::Engine::SetLogFactoryForTesting(
      [](const litejet::transport::Options& lo, std::unique_ptr<litejet::transport::Log>* out) {
        if (lo.urls.size() == 1 && lo.urls[0] == kInProcessUrl) {
          *out = litejet::transport::NewMemoryLog(litejet::transport::NewMemoryStore());
          return litejet::Status::OK();
        }
        return litejet::transport::OpenNats(lo, out);
      });
  std::unique_ptr<NatsServer> server;
  std::string url = o.nats;
  bool want_live = std::find(o.modes.begin(), o.modes.end(), "live") != o.modes.end();
  if (want_live && url.empty()) {
    server = std::make_unique<NatsServer>();
    server->Start(o.dir + "/commit-nats");
    url = server->url();
  }

  std::printf("commit_bench: %d rounds x %d txns per mode, synchronous=NORMAL, WAL, dir %s\n", o.rounds, o.txns,
              o.dir.c_str());
  std::string md;
  md += Fmt("### Commit throughput (%d rounds x %d transactions per mode, alternating; SQLite %s)\n\n", o.rounds,
            o.txns, sqlite3_libversion());
  md += "| rows/txn |";
  for (auto& m : o.modes) md += " " + m + " txns/s |";
  for (auto& m : o.modes) {
    if (m != "plain") md += " " + m + "/plain |";
  }
  if (want_live) md += " live shipped txns/s | live drain ms |";
  md += "\n|---:|";
  for (size_t i = 0; i < o.modes.size(); i++) md += "---:|";
  for (auto& m : o.modes) {
    if (m != "plain") md += "---:|";
  }
  if (want_live) md += "---:|---:|";
  md += "\n";

  // Second table: CPU time of the committing thread per transaction. Less
  // sensitive to other jobs on the machine than wall time (it leaves out time
  // spent waiting for a core, and the checkpoints' fsync waits).
  std::string cpu_md =
      "\nCPU time of the committing thread (user + system), µs per transaction, median over rounds; "
      "ratio = plain CPU / mode CPU, per round, median (min–max):\n\n| rows/txn |";
  for (auto& m : o.modes) cpu_md += " " + m + " µs |";
  for (auto& m : o.modes) {
    if (m != "plain") cpu_md += " " + m + "/plain |";
  }
  cpu_md += "\n|---:|";
  for (auto& m : o.modes) cpu_md += m != "plain" ? "---:|---:|" : "---:|";
  cpu_md += "\n";

  for (int rows : o.rows) {
    std::map<std::string, std::vector<RunResult>> res;
    std::map<std::string, std::vector<double>> ratio, cpu_ratio;
    for (int round = 0; round < o.rounds; round++) {
      std::printf("  rows=%d round %d:", rows, round + 1);
      std::map<std::string, double> this_round, this_cpu;
      for (size_t k = 0; k < o.modes.size(); k++) {
        const std::string& m = o.modes[(k + size_t(round)) % o.modes.size()];
        RunResult r = RunOne(o, m, rows, round, url);
        res[m].push_back(r);
        this_round[m] = r.txns_per_s;
        this_cpu[m] = r.cpu_us;
        std::printf(" %s=%.0f", m.c_str(), r.txns_per_s);
        if (m == "live") std::printf(" (shipped %.0f/s)", r.shipped_per_s);
        std::fflush(stdout);
      }
      std::printf("\n");
      if (this_round.count("plain")) {
        for (auto& [m, v] : this_round) ratio[m].push_back(v / this_round["plain"]);
        for (auto& [m, v] : this_cpu) cpu_ratio[m].push_back(this_cpu["plain"] / v);
      }
    }
    std::printf("  rows=%d median:", rows);
    md += Fmt("| %d |", rows);
    for (auto& m : o.modes) {
      std::vector<double> v;
      for (auto& r : res[m]) v.push_back(r.txns_per_s);
      double med = Median(v);
      std::printf(" %s=%.0f", m.c_str(), med);
      md += Fmt(" %.0f |", med);
    }
    for (auto& m : o.modes) {
      if (m == "plain" || !ratio.count(m)) continue;
      auto& v = ratio[m];
      double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
      std::printf(" %s/plain=%.2f [%.2f..%.2f]", m.c_str(), Median(v), lo, hi);
      md += Fmt(" %.2f (%.2f–%.2f) |", Median(v), lo, hi);
    }
    if (want_live) {
      std::vector<double> s, d;
      for (auto& r : res["live"]) {
        s.push_back(r.shipped_per_s);
        d.push_back(r.drain_ms);
      }
      std::printf(" live-shipped=%.0f/s drain=%.0fms", Median(s), Median(d));
      md += Fmt(" %.0f | %.0f |", Median(s), Median(d));
    }
    std::printf("\n  rows=%d CPU us/txn:", rows);
    cpu_md += Fmt("| %d |", rows);
    for (auto& m : o.modes) {
      std::vector<double> v;
      for (auto& r : res[m]) v.push_back(r.cpu_us);
      std::printf(" %s=%.1f", m.c_str(), Median(v));
      cpu_md += Fmt(" %.1f |", Median(v));
    }
    for (auto& m : o.modes) {
      if (m == "plain" || !cpu_ratio.count(m)) continue;
      auto& v = cpu_ratio[m];
      double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
      std::printf(" %s/plain=%.2f [%.2f..%.2f]", m.c_str(), Median(v), lo, hi);
      cpu_md += Fmt(" %.2f (%.2f–%.2f) |", Median(v), lo, hi);
    }
    std::printf("\n");
    md += "\n";
    cpu_md += "\n";
  }
  md += cpu_md + "\n";
  AppendFile(o.md, md);
  if (server) server->Stop();
  return 0;
}
