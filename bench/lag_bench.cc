// Replication lag: a primary process commits small transactions, a replica
// process (same machine) records when each one becomes visible to a new read
// transaction. Both through a live local nats-server (JetStream).
//
//   lag_bench [--seconds S] [--rates 200,1000] [--wait-rates 1000] [--window N]
//             [--burst-seconds S] [--dir DIR] [--nats URL] [--md FILE]
//       the driver: starts nats-server (unless --nats), then for each scenario
//       a fresh directory, a replica process and a primary process (this
//       same binary, subcommands below), and prints the statistics.
//   lag_bench primary --db PATH --nats URL --name N --rate R|0 --seconds S [--window W]
//   lag_bench replica --db PATH --nats URL --name N --csv FILE --wait poll|repl_wait
//
// Scenarios: fixed rates (--rates, --wait-rates) for S seconds; "max
// sustained": as fast as possible for S seconds but never more than N commits
// unacknowledged by JetStream (the bench's own flow control through
// repl_wait), i.e. the highest rate replication keeps up with; "unthrottled
// burst": as fast as possible, no flow control (litejet's default
// max_lag_ms), to show how far an unthrottled primary runs ahead.
//
// Each transaction (BEGIN IMMEDIATE) inserts one row (id, ts, ~100 bytes):
// ts = CLOCK_REALTIME in microseconds read after the write lock is taken,
// just before COMMIT. The replica starts a new read
// transaction, reads every row with id > the last one seen, and stamps each
// with the CLOCK_REALTIME at which the read saw it: lag = visible - ts.
// "poll" re-reads every 100 us when nothing is new; "repl_wait" blocks in
// repl_wait(position + 1, 200) between reads (as an application would).
#include <poll.h>
#include <sys/wait.h>

#include <cctype>
#include <cinttypes>
#include <filesystem>
#include <memory>

#include "bench/bench_common.h"

namespace {

using namespace bench;

std::string Arg(int argc, char** argv, const char* name, const char* def = nullptr) {
  for (int i = 2; i + 1 < argc; i++) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  if (!def) Die("missing %s", name);
  return def;
}

// ---- primary ----------------------------------------------------------------

int PrimaryMain(int argc, char** argv) {
  std::string path = Arg(argc, argv, "--db"), url = Arg(argc, argv, "--nats"), name = Arg(argc, argv, "--name");
  const double rate = std::atof(Arg(argc, argv, "--rate").c_str());
  const double seconds = std::atof(Arg(argc, argv, "--seconds").c_str());
  // > 0: never let more than this many committed transactions wait for their
  // JetStream acknowledgement (the bench's own flow control, via repl_wait).
  const int64_t window = std::atoll(Arg(argc, argv, "--window", "0").c_str());
  sqlite3* db = OpenLitejet(path, "nats=" + url + "&role=primary&node=b1&name=" + name);
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, pad TEXT NOT NULL)");
  // The agent connects in the background: start once the table is shipped.
  if (QueryInt(db, "SELECT repl_wait(repl_position(), 20000)") != 1) Die("primary: no JetStream ack in 20 s");
  const int64_t base_txid = QueryInt(db, "SELECT repl_position()");
  // IMMEDIATE: the write lock (and any max_lag_ms back-pressure) comes
  // before the timestamp is read, so ts is the moment of the commit.
  sqlite3_stmt* begin = Prepare(db, "BEGIN IMMEDIATE");
  sqlite3_stmt* commit = Prepare(db, "COMMIT");
  sqlite3_stmt* ins = Prepare(db, "INSERT INTO t(ts, pad) VALUES (?1, ?2)");
  sqlite3_stmt* wait = Prepare(db, "SELECT repl_wait(?1, 60000)");
  const std::string pad(100, 'p');
  sqlite3_bind_text(ins, 2, pad.data(), int(pad.size()), SQLITE_STATIC);
  std::vector<double> commit_us;
  commit_us.reserve(size_t(rate > 0 ? rate * seconds + 16 : 1 << 20));
  int64_t rows = 0, busy = 0, late = 0, stalls = 0, waits = 0;
  const int64_t start_real = RealUs();
  const int64_t t0 = MonoNs(), end = t0 + int64_t(seconds * 1e9);
  const double period_ns = rate > 0 ? 1e9 / rate : 0;
  for (int64_t i = 0;; i++) {
    int64_t due = t0 + int64_t(double(i) * period_ns);
    if (due >= end) break;
    int64_t now = MonoNs();
    if (now >= end) break;
    if (rate > 0) {
      if (now < due) {
        SleepUntilMonoNs(due);
      } else if (now - due > 1000000) {
        late++;  // more than 1 ms behind schedule
      }
    }
    if (window > 0 && rows % 16 == 0 && rows > window) {
      // Block until at most `window` commits are unacknowledged.
      sqlite3_bind_int64(wait, 1, base_txid + rows - window);
      if (sqlite3_step(wait) != SQLITE_ROW || sqlite3_column_int(wait, 0) != 1) Die("primary: repl_wait timed out");
      sqlite3_reset(wait);
      waits++;
    }
    int64_t c0 = MonoNs();
    int rc = StepDone(begin);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(ins, 1, RealUs());
      rc = StepDone(ins);
      if (rc == SQLITE_OK) rc = StepDone(commit);
    }
    if (rc != SQLITE_OK) {
      // SQLITE_BUSY after the 10 s busy timeout: max_lag_ms refused the write.
      if (rc != SQLITE_BUSY) Die("commit: %s", sqlite3_errmsg(db));
      busy++;
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      continue;
    }
    commit_us.push_back(double(MonoNs() - c0) / 1e3);
    if (commit_us.back() >= 50000) stalls++;  // e.g. held back by max_lag_ms
    rows++;
  }
  const int64_t end_real = RealUs();
  const int64_t t1 = MonoNs();
  const int64_t last = QueryInt(db, "SELECT repl_position()");
  const int64_t acked_at_stop = QueryInt(db, "SELECT json_extract(repl_status(), '$.acked_txid')");
  // Exit only once everything is shipped (the agent stops with the process).
  const int acked = int(QueryInt(db, Fmt("SELECT repl_wait(%" PRId64 ", 120000)", last).c_str()));
  const int64_t t2 = MonoNs();
  std::printf("PRIMARY rows=%" PRId64 " start_us=%" PRId64 " end_us=%" PRId64 " elapsed_s=%.3f busy=%" PRId64
              " late=%" PRId64 " stalls=%" PRId64 " waits=%" PRId64 " unacked_at_stop=%" PRId64
              " acked=%d drain_ms=%.1f commit_p50_us=%.1f commit_p99_us=%.1f commit_max_us=%.1f\n",
              rows, start_real, end_real, double(t1 - t0) / 1e9, busy, late, stalls, waits, last - acked_at_stop, acked,
              double(t2 - t1) / 1e6, Percentile(commit_us, 50), Percentile(commit_us, 99), Percentile(commit_us, 100));
  std::fflush(stdout);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_finalize(ins);
  sqlite3_finalize(wait);
  sqlite3_close(db);
  return 0;
}

// ---- replica ----------------------------------------------------------------

int ReplicaMain(int argc, char** argv) {
  std::string path = Arg(argc, argv, "--db"), url = Arg(argc, argv, "--nats"), name = Arg(argc, argv, "--name");
  std::string csv = Arg(argc, argv, "--csv"), wait = Arg(argc, argv, "--wait", "poll");
  const bool use_wait = wait == "repl_wait";
  sqlite3* db = OpenLitejet(path, "nats=" + url + "&role=replica&node=b2&name=" + name, /*wal=*/false);
  struct Seen {
    int64_t id, ts, vis;
  };
  std::vector<Seen> seen;
  seen.reserve(1 << 20);
  sqlite3_stmt* sel = nullptr;
  sqlite3_stmt* pos = Prepare(db, "SELECT repl_position()");
  sqlite3_stmt* wt = Prepare(db, "SELECT repl_wait(?1, 200)");
  int64_t last_id = 0, expect = -1, deadline = 0, read_errors = 0;
  std::string first_error;
  bool stdin_open = true;
  std::printf("READY\n");
  std::fflush(stdout);
  for (;;) {
    bool got = false;
    if (!sel) {
      // The table arrives with the primary's first transaction.
      if (sqlite3_prepare_v2(db, "SELECT id, ts FROM t WHERE id > ?1 ORDER BY id", -1, &sel, nullptr) != SQLITE_OK) {
        sqlite3_finalize(sel);
        sel = nullptr;
      }
    }
    if (sel) {
      sqlite3_bind_int64(sel, 1, last_id);
      int64_t vis = 0;
      int rc;
      while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        if (vis == 0) vis = RealUs();  // the read transaction's snapshot is taken now
        Seen s{sqlite3_column_int64(sel, 0), sqlite3_column_int64(sel, 1), vis};
        seen.push_back(s);
        last_id = s.id;
        got = true;
      }
      if (rc != SQLITE_DONE) {
        // A reader on a replica should never fail; count it, report the
        // first message, and read again.
        if (read_errors++ == 0) {
          first_error = Fmt("%s (extended code %d)", sqlite3_errmsg(db), sqlite3_extended_errcode(db));
          sqlite3_reset(sel);
          sqlite3_stmt* st = nullptr;
          if (sqlite3_prepare_v2(db, "SELECT json_extract(repl_status(), '$.last_error')", -1, &st, nullptr) ==
                  SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
            first_error +=
                std::string("; repl_status().last_error: ") + reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
          }
          sqlite3_finalize(st);
        }
      }
      sqlite3_reset(sel);
    }
    if (stdin_open) {
      struct pollfd p = {0, POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) {
        char buf[64] = {0};
        ssize_t n = ::read(0, buf, sizeof buf - 1);
        stdin_open = false;
        if (n > 0) {
          expect = std::atoll(buf);
          deadline = MonoNs() + int64_t(60e9);
        }
      }
    }
    if (expect >= 0 && (last_id >= expect || MonoNs() > deadline)) break;
    if (!stdin_open && expect < 0) break;  // the driver went away
    if (got) continue;
    if (use_wait) {
      int64_t p = 0;
      if (sqlite3_step(pos) == SQLITE_ROW) p = sqlite3_column_int64(pos, 0);
      sqlite3_reset(pos);
      sqlite3_bind_int64(wt, 1, p + 1);
      sqlite3_step(wt);
      sqlite3_reset(wt);
    } else {
      SleepUs(100);
    }
  }
  FILE* f = std::fopen(csv.c_str(), "w");
  if (!f) Die("cannot write %s", csv.c_str());
  for (auto& s : seen) std::fprintf(f, "%" PRId64 ",%" PRId64 ",%" PRId64 "\n", s.id, s.ts, s.vis);
  std::fclose(f);
  std::printf("REPLICA rows=%zu last_id=%" PRId64 " complete=%d read_errors=%" PRId64 " first_error=%s\n", seen.size(),
              last_id, int(expect >= 0 && last_id >= expect), read_errors,
              first_error.empty() ? "-" : first_error.c_str());
  std::fflush(stdout);
  sqlite3_finalize(sel);
  sqlite3_finalize(pos);
  sqlite3_finalize(wt);
  sqlite3_close(db);
  return 0;
}

// ---- driver -----------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  int in = -1;          // our end of its stdin
  FILE* out = nullptr;  // its stdout
};

Child Spawn(const std::vector<std::string>& args) {
  int pin[2], pout[2];
  if (::pipe(pin) != 0 || ::pipe(pout) != 0) Die("pipe");
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(pin[0], 0);
    ::dup2(pout[1], 1);
    ::close(pin[0]);
    ::close(pin[1]);
    ::close(pout[0]);
    ::close(pout[1]);
    std::vector<char*> av;
    for (auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
    av.push_back(nullptr);
    ::execv("/proc/self/exe", av.data());
    ::_exit(127);
  }
  ::close(pin[0]);
  ::close(pout[1]);
  Child c;
  c.pid = pid;
  c.in = pin[1];
  c.out = ::fdopen(pout[0], "r");
  return c;
}

std::string ReadLine(Child& c, const char* prefix) {
  char line[1024];
  while (std::fgets(line, sizeof line, c.out)) {
    if (std::strncmp(line, prefix, std::strlen(prefix)) == 0) return line;
  }
  Die("child %d ended without a %s line", int(c.pid), prefix);
}

int Wait(Child& c) {
  int st = 0;
  ::waitpid(c.pid, &st, 0);
  if (c.out) std::fclose(c.out);
  if (c.in >= 0) ::close(c.in);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

double Field(const std::string& line, const char* key) {
  std::string k = std::string(" ") + key + "=";
  size_t p = line.find(k);
  if (p == std::string::npos) Die("no %s in: %s", key, line.c_str());
  return std::atof(line.c_str() + p + k.size());
}

struct Scenario {
  std::string label;
  double rate;     // commits per second; 0: as fast as possible
  double seconds;  // how long the primary commits
  int64_t window;  // > 0: at most this many unacknowledged commits (flow control)
  std::string wait;
};

struct Outcome {
  double rows = 0, commit_rate = 0, commit_p50 = 0, commit_p99 = 0, commit_max = 0, drain_ms = 0;
  double busy = 0, late = 0, stalls = 0, unacked_at_stop = 0;
  double lag_p50 = 0, lag_p99 = 0, lag_max = 0, final_lag = 0, apply_rate = 0, seen_at_end = 0;
  double catchup_ms = 0, read_errors = 0;
  std::string first_error;
  size_t seen = 0;
};

Outcome RunScenario(const Scenario& sc, const std::string& base, const std::string& url, int k,
                    const std::string& keep_dir) {
  std::string name = Fmt("lag%d_%d", int(getpid()), k);
  std::string dir = base + "/" + name;
  RemoveAll(dir);
  MakeDirs(dir + "/p");
  MakeDirs(dir + "/r");
  std::string csv = dir + "/seen.csv";
  Child rep = Spawn({"lag_bench", "replica", "--db", dir + "/r/" + name + ".db", "--nats", url, "--name", name, "--csv",
                     csv, "--wait", sc.wait});
  ReadLine(rep, "READY");
  Child pri =
      Spawn({"lag_bench", "primary", "--db", dir + "/p/" + name + ".db", "--nats", url, "--name", name, "--rate",
             Fmt("%g", sc.rate), "--seconds", Fmt("%g", sc.seconds), "--window", std::to_string(sc.window)});
  std::string pl = ReadLine(pri, "PRIMARY");
  if (Wait(pri) != 0) Die("primary failed");
  std::string n = Fmt("%.0f\n", Field(pl, "rows"));
  if (::write(rep.in, n.data(), n.size()) != ssize_t(n.size())) Die("write to replica");
  std::string rl = ReadLine(rep, "REPLICA");
  if (Wait(rep) != 0) Die("replica failed");

  Outcome o;
  o.rows = Field(pl, "rows");
  o.commit_rate = o.rows / Field(pl, "elapsed_s");
  o.commit_p50 = Field(pl, "commit_p50_us");
  o.commit_p99 = Field(pl, "commit_p99_us");
  o.commit_max = Field(pl, "commit_max_us");
  o.drain_ms = Field(pl, "drain_ms");
  o.busy = Field(pl, "busy");
  o.late = Field(pl, "late");
  o.stalls = Field(pl, "stalls");
  o.unacked_at_stop = Field(pl, "unacked_at_stop");
  const double end_us = Field(pl, "end_us");
  o.read_errors = Field(rl, "read_errors");
  if (o.read_errors > 0) {
    size_t p = rl.find("first_error=");
    o.first_error = rl.substr(p + 12);
    while (!o.first_error.empty() && (o.first_error.back() == '\n' || o.first_error.back() == '\r')) {
      o.first_error.pop_back();
    }
  }
  std::vector<double> lags;
  FILE* f = std::fopen(csv.c_str(), "r");
  if (!f) Die("no %s", csv.c_str());
  int64_t id, ts, vis, first_vis = -1, last_vis = 0, last_ts = 0;
  while (std::fscanf(f, "%" SCNd64 ",%" SCNd64 ",%" SCNd64 "\n", &id, &ts, &vis) == 3) {
    lags.push_back(double(vis - ts) / 1000.0);
    if (first_vis < 0) first_vis = vis;
    last_vis = vis;
    last_ts = ts;
    if (double(vis) <= end_us) o.seen_at_end++;
  }
  std::fclose(f);
  o.seen = lags.size();
  if (!lags.empty()) {
    o.lag_p50 = Percentile(lags, 50);
    o.lag_p99 = Percentile(lags, 99);
    o.lag_max = Percentile(lags, 100);
    o.final_lag = double(last_vis - last_ts) / 1000.0;
    o.apply_rate = last_vis > first_vis ? double(o.seen) / (double(last_vis - first_vis) / 1e6) : 0;
    o.catchup_ms = (double(last_vis) - end_us) / 1000.0;
  }
  std::printf(
      "  %s:\n    primary %.0f txns in %.1f s = %.0f txns/s; commit p50 %.0f us, p99 %.0f us, max %.1f ms; "
      "late %.0f, stalls>=50ms %.0f, refused %.0f; unshipped at stop %.0f; drain %.0f ms\n"
      "    replica saw %zu/%.0f (%.0f when the primary stopped); lag p50 %.1f ms, p99 %.1f ms, max %.1f ms; "
      "apply %.0f txns/s; final lag %.1f ms; last row seen %.0f ms after the primary stopped\n",
      sc.label.c_str(), o.rows, sc.seconds, o.commit_rate, o.commit_p50, o.commit_p99, o.commit_max / 1000, o.late,
      o.stalls, o.busy, o.unacked_at_stop, o.drain_ms, o.seen, o.rows, o.seen_at_end, o.lag_p50, o.lag_p99, o.lag_max,
      o.apply_rate, o.final_lag, o.catchup_ms);
  if (o.seen != size_t(o.rows)) std::printf("    WARNING: the replica did not see every row within 60 s\n");
  if (o.read_errors > 0) {
    std::printf("    WARNING: %.0f replica reads failed (retried), first: %s\n", o.read_errors, o.first_error.c_str());
  }
  std::fflush(stdout);
  if (!keep_dir.empty()) {
    // For bench/plot_lag.py: id, commit time, visible time (µs), one row per transaction.
    std::string slug;
    for (char c : sc.label) slug += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    std::filesystem::copy_file(csv, keep_dir + "/" + slug + ".csv", std::filesystem::copy_options::overwrite_existing);
  }
  RemoveAll(dir);
  return o;
}

std::vector<double> Rates(const std::string& s) {
  std::vector<double> v;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    if (j > i) v.push_back(std::atof(s.substr(i, j - i).c_str()));
    i = j + 1;
  }
  return v;
}

int DriverMain(int argc, char** argv) {
  double seconds = 10, burst = 2;
  int64_t window = 500;
  std::string rates = "200,1000", wait_rates = "1000", dir = "bench-data", url, md, keep;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) Die("%s needs a value", a.c_str());
      return argv[++i];
    };
    if (a == "--seconds")
      seconds = std::atof(val().c_str());
    else if (a == "--rates")
      rates = val();
    else if (a == "--wait-rates")
      wait_rates = val();
    else if (a == "--window")
      window = std::atoll(val().c_str());
    else if (a == "--burst-seconds")
      burst = std::atof(val().c_str());
    else if (a == "--dir")
      dir = val();
    else if (a == "--nats")
      url = val();
    else if (a == "--md")
      md = val();
    else if (a == "--keep-csv")
      keep = val();
    else {
      std::fprintf(stderr,
                   "usage: lag_bench [--seconds S] [--rates 200,1000] [--wait-rates 1000] [--window N]\n"
                   "                 [--burst-seconds S] [--dir DIR] [--nats URL] [--md FILE] [--keep-csv DIR]\n"
                   "  --window N         sustained scenario: at most N unacknowledged commits (0: skip it)\n"
                   "  --burst-seconds S  unthrottled scenario length (0: skip it)\n"
                   "  --keep-csv DIR     keep each scenario's rows (id,commit_us,visible_us) as DIR/<scenario>.csv\n");
      return 2;
    }
  }
  dir = std::filesystem::absolute(dir).string();
  MakeDirs(dir);
  std::unique_ptr<NatsServer> server;
  if (url.empty()) {
    server = std::make_unique<NatsServer>();
    server->Start(dir + "/lag-nats");
    url = server->url();
  }
  std::vector<Scenario> scs;
  for (double r : Rates(rates)) scs.push_back({Fmt("%g/s, poll", r), r, seconds, 0, "poll"});
  for (double r : Rates(wait_rates)) scs.push_back({Fmt("%g/s, repl_wait", r), r, seconds, 0, "repl_wait"});
  if (window > 0) {
    scs.push_back(
        {Fmt("max sustained (<= %lld unacked), poll", static_cast<long long>(window)), 0, seconds, window, "poll"});
  }
  if (burst > 0) scs.push_back({Fmt("unthrottled burst %g s, poll", burst), 0, burst, 0, "poll"});
  std::printf("lag_bench: primary and replica processes on this machine (%ld cores), nats %s\n",
              sysconf(_SC_NPROCESSORS_ONLN), url.c_str());
  std::vector<Outcome> outs;
  for (size_t k = 0; k < scs.size(); k++) outs.push_back(RunScenario(scs[k], dir, url, int(k), keep));

  std::string m;
  m += "### Replication lag (one primary and one replica process on this machine, local nats-server)\n\n";
  m += "| scenario | s | primary txns/s | commit p50 / p99 µs | lag p50 ms | lag p99 ms | lag max ms "
       "| replica apply txns/s | final lag ms | primary drain ms |\n";
  m += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (size_t k = 0; k < scs.size(); k++) {
    const Outcome& o = outs[k];
    m += Fmt("| %s | %g | %.0f | %.0f / %.0f | %.1f | %.1f | %.1f | %.0f | %.1f | %.0f |\n", scs[k].label.c_str(),
             scs[k].seconds, o.commit_rate, o.commit_p50, o.commit_p99, o.lag_p50, o.lag_p99, o.lag_max, o.apply_rate,
             o.final_lag, o.drain_ms);
  }
  for (size_t k = 0; k < scs.size(); k++) {
    const Outcome& o = outs[k];
    if (scs[k].rate == 0) {
      m += Fmt(
          "\n*%s*: %.0f txns in %g s (%.0f txns/s); when the primary stopped the replica had %.0f of them "
          "(%.0f%%), %.0f were not yet acknowledged by JetStream; the replica applied %.0f txns/s and saw the "
          "last one %.0f ms after the primary stopped (final lag %.0f ms).",
          scs[k].label.c_str(), o.rows, scs[k].seconds, o.commit_rate, o.seen_at_end,
          o.rows > 0 ? 100.0 * o.seen_at_end / o.rows : 0, o.unacked_at_stop, o.apply_rate, o.catchup_ms, o.final_lag);
      if (o.stalls > 0 || o.busy > 0) {
        m += Fmt(" %.0f commits waited 50 ms or more (longest %.1f s), %.0f were refused.", o.stalls,
                 o.commit_max / 1e6, o.busy);
      }
      m += "\n";
    }
    if (o.read_errors > 0) {
      m += Fmt("\n**%s: %.0f reads on the replica failed** (retried; first error: `%s`).\n", scs[k].label.c_str(),
               o.read_errors, o.first_error.c_str());
    }
    if (o.seen != size_t(o.rows)) {
      m += Fmt("\n**%s: the replica saw only %zu of %.0f rows.**\n", scs[k].label.c_str(), o.seen, o.rows);
    }
  }
  m += "\n";
  AppendFile(md, m);
  if (server) server->Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  InitLitejet();
  if (argc > 1 && std::strcmp(argv[1], "primary") == 0) return PrimaryMain(argc, argv);
  if (argc > 1 && std::strcmp(argv[1], "replica") == 0) return ReplicaMain(argc, argv);
  return DriverMain(argc, argv);
}
