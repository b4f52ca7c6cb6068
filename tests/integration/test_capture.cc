// Capture: every committed WAL transaction is yielded once, in commit order,
// with the final bytes of every page it changed. Each trap of ARCHITECTURE.md
// ("Primary") has a test; the randomized oracle replays the spool into an
// empty file and compares it page for page with SQLite's own view at every
// TXID.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
}

#include "include/litejet.h"
#include "tests/util/testdb.h"
#include "wal-capture/checksum.h"
#include "wal-capture/local_log.h"
#include "wal-capture/sidecar.h"

using namespace litejet;
using namespace litejet::test;

extern char** environ;

namespace {

const char* g_self = nullptr;

#define CHECK_MSG(cond, msg)                               \
  do {                                                     \
    if (!(cond)) fail_msg("%s", std::string(msg).c_str()); \
  } while (0)

// Debian's libsqlite3 lacks generate_series (only the shell has it):
// rewrite generate_series(1,N) as a recursive CTE.
std::string Expand(std::string sql) {
  const std::string key = "generate_series(1,";
  for (size_t at; (at = sql.find(key)) != std::string::npos;) {
    size_t end = sql.find(')', at);
    std::string n = sql.substr(at + key.size(), end - at - key.size());
    sql.replace(at, end + 1 - at,
                "(with recursive gs(value) as (select 1 union all select value+1 from gs where value<" + n +
                    ") select value from gs)");
  }
  return sql;
}

void ExecOk(sqlite3* db, const std::string& sql0) {
  std::string err;
  std::string sql = Expand(sql0);
  int rc = Exec(db, sql, &err);
  if (rc != SQLITE_OK) fail_msg("%s: %s", sql.c_str(), err.c_str());
}

// Checks the whole spool against the oracle pages recorded per TXID (and the
// primary's repl_checksum at each TXID against the record), then, after a
// full checkpoint of the primary, the replayed file against the database
// file byte for byte and repl_checksum against a from-scratch checksum.
void CheckReplay(sqlite3* probe, const std::string& db_path, const std::string& dir,
                 const std::vector<std::vector<uint64_t>>& want_at, const std::vector<std::string>& sum_at) {
  std::vector<record::Txn> txns = ReadCaptured(db_path);
  CHECK_MSG(txns.size() + 1 == want_at.size(),
            "local log has " + std::to_string(txns.size()) + " txns, expected " + std::to_string(want_at.size() - 1));
  Replayer r(dir + "/replay.db");
  for (const record::Txn& t : txns) {
    std::string e = r.Apply(t);
    CHECK_MSG(e.empty(), e);
    CHECK_MSG(checksum::Hex(t.checksum_after) == sum_at[t.txid],
              "txid " + std::to_string(t.txid) + ": record checksum " + checksum::Hex(t.checksum_after) +
                  " but repl_checksum said " + sum_at[t.txid]);
    std::vector<uint64_t> got = r.MaskedPageHashes();
    std::string d = DiffPages(want_at[t.txid], got);
    if (!d.empty()) {
      std::string in_txn, differ;
      for (const record::Page& p : t.pages) in_txn += " " + std::to_string(p.pgno);
      for (size_t i = 0; i < got.size() && i < want_at[t.txid].size(); i++) {
        if (got[i] != want_at[t.txid][i]) differ += " " + std::to_string(i + 1);
      }
      fail_msg("txid %llu: %s; pages in the record:%s; pages that differ:%s", (unsigned long long)t.txid, d.c_str(),
               in_txn.c_str(), differ.c_str());
    }
  }
  ExecOk(probe, "pragma wal_checkpoint(TRUNCATE)");
  std::vector<uint64_t> file;
  uint32_t ps = 0;
  assert_true(checksum::HashFile(db_path, &file, &ps).ok());
  std::string d = DiffPages(file, r.PageHashes());
  CHECK_MSG(d.empty(), "after a full checkpoint, replay vs database file: " + d);
  CHECK_MSG(QueryText(probe, "select repl_checksum()") == checksum::Hex(XorAll(file)),
            "repl_checksum " + QueryText(probe, "select repl_checksum()") + " != from-scratch " +
                checksum::Hex(XorAll(file)));
}

// Steps a workload: after each statement, the TXID must have advanced by 0
// or 1, and the oracle is recorded at each new TXID.
struct Tracker {
  std::string db_path, dir;
  sqlite3* probe;
  std::vector<std::vector<uint64_t>> want_at{{}};  // index = txid; txid 0 = empty
  std::vector<std::string> sum_at{checksum::Hex(0)};

  void Step(sqlite3* db, const std::string& sql) {
    if (std::getenv("LITEJET_VERBOSE")) std::printf("    step: %s\n", sql.c_str());
    int64_t before = QueryInt(probe, "select repl_position()");
    ExecOk(db, sql);
    int64_t after = QueryInt(probe, "select repl_position()");
    CHECK_MSG(after == before || after == before + 1,
              "one statement moved the TXID from " + std::to_string(before) + " to " + std::to_string(after));
    if (after == before) return;
    uint32_t ps = 0;
    want_at.push_back(OraclePages(db_path, dir, &ps));
    sum_at.push_back(QueryText(probe, "select repl_checksum()"));
    CHECK_MSG(size_t(after) + 1 == want_at.size(), "txid/oracle out of step");
  }
  void Check() { CheckReplay(probe, db_path, dir, want_at, sum_at); }
};

void capture_counts_each_commit_once(void**) {
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db");
  assert_string_equal(QueryText(db, "pragma journal_mode").c_str(), "wal");
  Tracker t{d / "a.db", d.path(), db};
  t.Step(db, "create table t(x integer primary key, y)");
  t.Step(db, "insert into t(y) values('a')");
  t.Step(db, "begin; insert into t(y) values('b'); insert into t(y) values('c'); commit");
  t.Step(db, "delete from t where x > 100");  // changes nothing: no transaction
  t.Step(db, "update t set y = y || y");
  assert_int_equal(QueryInt(db, "select repl_position()"), 4);
  t.Check();
  sqlite3_close(db);
}

void capture_inplace_frame_rewrite(void**) {
  // A tiny cache spills pages to the WAL mid-transaction; changing them again
  // rewrites those frames in place. The record must carry the newest bytes.
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db");
  Tracker t{d / "a.db", d.path(), db};
  ExecOk(db, "pragma cache_size=2");
  t.Step(db, "create table t(x integer primary key, y)");
  t.Step(db,
         "begin;"
         "insert into t(y) select randomblob(300) from generate_series(1,200);"
         "update t set y = randomblob(300);"
         "update t set y = zeroblob(310) where x % 3 = 0;"
         "commit");
  t.Check();
  sqlite3_close(db);
}

void capture_spill_then_rollback(void**) {
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db");
  Tracker t{d / "a.db", d.path(), db};
  ExecOk(db, "pragma cache_size=2");
  t.Step(db, "create table t(x integer primary key, y)");
  t.Step(db, "insert into t(y) values('keep')");
  // Spilled frames of a rolled-back transaction stay in the WAL file.
  t.Step(db, "begin; insert into t(y) select randomblob(500) from generate_series(1,300); rollback");
  assert_int_equal(QueryInt(db, "select repl_position()"), 2);
  // The next, smaller transaction overwrites some of them.
  t.Step(db, "insert into t(y) values('after')");
  t.Step(db, "begin; insert into t(y) select randomblob(100) from generate_series(1,20); commit");
  t.Check();
  sqlite3_close(db);
}

void capture_savepoint_rollbacks(void**) {
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db");
  Tracker t{d / "a.db", d.path(), db};
  ExecOk(db, "pragma cache_size=3");
  t.Step(db, "create table t(x integer primary key, y)");
  t.Step(db,
         "begin;"
         "insert into t(y) select randomblob(400) from generate_series(1,50);"
         "savepoint a;"
         "insert into t(y) select randomblob(400) from generate_series(1,200);"
         "rollback to a;"
         "insert into t(y) values('x');"
         "savepoint b; update t set y = 'z' where x < 10; release b;"
         "savepoint c; delete from t where x > 20; rollback to c; release c;"
         "commit");
  assert_int_equal(QueryInt(db, "select count(*) from t"), 51);
  t.Check();
  sqlite3_close(db);
}

void capture_wal_restart_after_checkpoint(void**) {
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db");
  sqlite3* other = OpenReplicated(d / "a.db");
  Tracker t{d / "a.db", d.path(), db};
  t.Step(db, "create table t(x integer primary key, y)");
  for (int round = 0; round < 4; round++) {
    t.Step(db, "insert into t(y) select randomblob(200) from generate_series(1,30)");
    ExecOk(other, round % 2 ? "pragma wal_checkpoint(TRUNCATE)" : "pragma wal_checkpoint(RESTART)");
    // The next write starts the WAL again from frame 1 with new salts.
    t.Step(other, "update t set y = randomblob(10) where x % 7 = " + std::to_string(round));
  }
  t.Check();
  sqlite3_close(other);
  sqlite3_close(db);
}

void capture_padding_frames(void**) {
  // psow=0 with synchronous=FULL: SQLite pads the WAL to a sector boundary
  // after each commit with copies of the commit frame.
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db", "&psow=0");
  Tracker t{d / "a.db", d.path(), db};
  ExecOk(db, "pragma synchronous=FULL");
  t.Step(db, "create table t(x integer primary key, y)");
  for (int i = 0; i < 10; i++) t.Step(db, "insert into t(y) values(randomblob(" + std::to_string(50 * i) + "))");
  assert_int_equal(QueryInt(db, "select repl_position()"), 11);
  t.Check();
  sqlite3_close(db);
}

void capture_shrinking_database(void**) {
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db");
  Tracker t{d / "a.db", d.path(), db};
  t.Step(db, "create table t(x integer primary key, y)");
  t.Step(db, "insert into t(y) select randomblob(1000) from generate_series(1,400)");
  t.Step(db, "delete from t where x > 20");
  int64_t pages_before = QueryInt(db, "pragma page_count");
  t.Step(db, "vacuum");
  CHECK_MSG(QueryInt(db, "pragma page_count") < pages_before, "vacuum did not shrink");
  t.Check();
  sqlite3_close(db);
}

void capture_incremental_vacuum(void**) {
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db", "");
  Tracker t{d / "a.db", d.path(), db};
  // auto_vacuum must be set before the first table; the connection init
  // already switched to WAL, which is fine for auto_vacuum.
  // auto_vacuum takes effect on a database with page 1 written only
  // through VACUUM.
  t.Step(db, "pragma auto_vacuum=INCREMENTAL");
  t.Step(db, "vacuum");
  assert_int_equal(QueryInt(db, "pragma auto_vacuum"), 2);
  t.Step(db, "create table t(x integer primary key, y)");
  t.Step(db, "insert into t(y) select randomblob(2000) from generate_series(1,300)");
  t.Step(db, "delete from t where x % 2 = 0 or x > 100");
  int64_t free_before = QueryInt(db, "pragma freelist_count");
  CHECK_MSG(free_before > 10, "expected free pages");
  t.Step(db, "pragma incremental_vacuum(10)");
  t.Step(db, "pragma incremental_vacuum");
  assert_int_equal(QueryInt(db, "pragma freelist_count"), 0);
  t.Check();
  sqlite3_close(db);
}

void capture_refuses_leaving_wal(void**) {
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db");
  ExecOk(db, "create table t(x)");
  std::string err;
  assert_int_equal(Exec(db, "pragma journal_mode=DELETE", &err), SQLITE_ERROR);
  assert_string_equal(err.c_str(),
                      "litejet: journal_mode=DELETE is not allowed on replicated database \"a\": replication "
                      "captures the WAL, so the database must stay in WAL mode");
  assert_int_equal(Exec(db, "pragma locking_mode=EXCLUSIVE", &err), SQLITE_ERROR);
  assert_string_equal(err.c_str(),
                      "litejet: locking_mode=EXCLUSIVE is not allowed on replicated database \"a\": it keeps "
                      "the wal-index in private memory, out of replication's sight");
  assert_int_equal(Exec(db, "pragma journal_mode=wal", &err), SQLITE_OK);
  assert_int_equal(Exec(db, "pragma locking_mode=normal", &err), SQLITE_OK);
  assert_string_equal(QueryText(db, "pragma journal_mode").c_str(), "wal");
  // Nothing was lost or half-done: the table is there and writes go on.
  ExecOk(db, "insert into t values(1)");
  assert_int_equal(QueryInt(db, "select repl_position()"), 2);
  sqlite3_close(db);
}

void capture_existing_rollback_db_becomes_wal(void**) {
  TempDir d;
  sqlite3* plain = OpenPlain(d / "a.db");
  ExecOk(plain, "create table t(x); insert into t values(1),(2),(3)");
  assert_string_equal(QueryText(plain, "pragma journal_mode").c_str(), "delete");
  sqlite3_close(plain);
  uint64_t sum_plain = 0;
  assert_true(checksum::OfFile(d / "a.db", &sum_plain).ok());

  sqlite3* db = OpenReplicated(d / "a.db");
  assert_string_equal(QueryText(db, "pragma journal_mode").c_str(), "wal");
  assert_int_equal(QueryInt(db, "select repl_position()"), 0);
  // The base checksum is the database's own (the switch to WAL changed the
  // header's version bytes, so recompute after it).
  ExecOk(db, "pragma wal_checkpoint(TRUNCATE)");
  uint64_t sum_now = 0;
  assert_true(checksum::OfFile(d / "a.db", &sum_now).ok());
  assert_string_equal(QueryText(db, "select repl_checksum()").c_str(), checksum::Hex(sum_now).c_str());
  ExecOk(db, "insert into t values(4)");
  assert_int_equal(QueryInt(db, "select repl_position()"), 1);
  ExecOk(db, "pragma wal_checkpoint(TRUNCATE)");
  assert_true(checksum::OfFile(d / "a.db", &sum_now).ok());
  assert_string_equal(QueryText(db, "select repl_checksum()").c_str(), checksum::Hex(sum_now).c_str());
  sqlite3_close(db);
}

void capture_txid_survives_restart(void**) {
  TempDir d;
  sqlite3* db = OpenReplicated(d / "a.db");
  ExecOk(db, "create table t(x)");
  for (int i = 0; i < 5; i++) ExecOk(db, "insert into t values(" + std::to_string(i) + ")");
  std::string sum = QueryText(db, "select repl_checksum()");
  sqlite3_close(db);
  db = OpenReplicated(d / "a.db");
  assert_int_equal(QueryInt(db, "select repl_position()"), 6);
  assert_string_equal(QueryText(db, "select repl_checksum()").c_str(), sum.c_str());
  ExecOk(db, "insert into t values(99)");
  assert_int_equal(QueryInt(db, "select repl_position()"), 7);
  ExecOk(db, "pragma wal_checkpoint(TRUNCATE)");
  uint64_t s = 0;
  assert_true(checksum::OfFile(d / "a.db", &s).ok());
  assert_string_equal(QueryText(db, "select repl_checksum()").c_str(), checksum::Hex(s).c_str());
  std::vector<record::Txn> txns = ReadCaptured(d / "a.db");
  assert_int_equal(txns.size(), 7);
  for (size_t i = 0; i < txns.size(); i++) assert_int_equal(txns[i].txid, i + 1);
  sqlite3_close(db);
}

// Folds the WAL into path, then replays every captured transaction into a
// fresh file: exactly want_txns of them, pages equal to the database's, and
// repl_checksum() equal to the checksum of those pages.
void ReplayEqualsDatabase(sqlite3* db, const std::string& path, const std::string& replay_path, size_t want_txns) {
  ExecOk(db, "pragma wal_checkpoint(TRUNCATE)");
  std::vector<uint64_t> want;
  uint32_t ps = 0;
  assert_true(checksum::HashFile(path, &want, &ps).ok());
  std::vector<record::Txn> txns = ReadCaptured(path);
  assert_int_equal(txns.size(), want_txns);
  Replayer r(replay_path);
  for (const record::Txn& t : txns) {
    std::string e = r.Apply(t);
    CHECK_MSG(e.empty(), e);
  }
  std::string diff = DiffPages(want, r.PageHashes());
  CHECK_MSG(diff.empty(), diff);
  assert_string_equal(QueryText(db, "select repl_checksum()").c_str(), checksum::Hex(XorAll(want)).c_str());
}

void capture_several_processes(void**) {
  // Writers in separate processes: TXIDs stay consecutive and the spool,
  // replayed, equals the database.
  TempDir d;
  std::string path = d / "a.db";
  {
    sqlite3* db = OpenReplicated(path);
    ExecOk(db, "create table t(p, i, y)");
    sqlite3_close(db);
  }
  const int kProcs = 4, kTxns = 40;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; p++) {
    // A fresh process image (this binary in writer mode), not a bare fork:
    // this process already runs threads.
    std::string ps = std::to_string(p), ns = std::to_string(kTxns);
    char* argv[] = {const_cast<char*>(g_self),     const_cast<char*>("--writer"), const_cast<char*>(path.c_str()),
                    const_cast<char*>(ps.c_str()), const_cast<char*>(ns.c_str()), nullptr};
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, g_self, nullptr, nullptr, argv, environ), 0);
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int st = WaitChild(k);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  sqlite3* db = OpenReplicated(path);
  assert_int_equal(QueryInt(db, "select count(*) from t"), kProcs * kTxns);
  assert_int_equal(QueryInt(db, "select repl_position()"), 1 + kProcs * kTxns);
  ReplayEqualsDatabase(db, path, d / "replay.db", size_t(1 + kProcs * kTxns));
  sqlite3_close(db);
}

// Nothing ships (no server), so every commit stays in the local log while
// the WAL loses its frames every way it can: restarts after automatic and
// TRUNCATE checkpoints, deletion when the last connection closes, and the
// commit ring wrapping (more than kRingSlots unshipped commits). Each time
// the frames go to the spool first; every TXID is still readable and the
// replay equals the database.
void capture_backlog_survives_wal_loss(void**) {
  TempDir d;
  std::string path = d / "a.db";
  // Only SQLite's own doings move frames to the spool here, not the agent's
  // early hand-off of an old backlog (capture_plain_connections_... tests it).
  setenv("LITEJET_TEST_GUARD_MS", "0", 1);
  sqlite3* db = OpenReplicated(path);
  unsetenv("LITEJET_TEST_GUARD_MS");
  ExecOk(db, "create table t(k integer primary key, v blob)");
  auto insert = [&](int i) { ExecOk(db, "insert into t(v) values(randomblob(" + std::to_string(20 + i % 300) + "))"); };
  // 1. No checkpoints: the WAL keeps everything, but the ring wraps.
  ExecOk(db, "pragma wal_autocheckpoint=0");
  const int kRing = int(sidecar::kRingSlots) + 100;
  for (int i = 0; i < kRing; i++) insert(i);
  sidecar::Sidecar sc;
  bool created = false;
  assert_true(sc.Open(path + "-litejet", &created).ok());
  assert_int_equal(sc.Read().spooled_txid, sidecar::kRingSlots);  // handed off when slot 1 was reused
  // 2. The last connection closes: SQLite checkpoints and deletes the WAL.
  sqlite3_close(db);
  setenv("LITEJET_TEST_GUARD_MS", "0", 1);
  db = OpenReplicated(path);
  unsetenv("LITEJET_TEST_GUARD_MS");
  assert_int_equal(sc.Read().spooled_txid, 1 + kRing);
  // 3. Restarts after automatic and TRUNCATE checkpoints.
  const int kMore = 3000;
  for (int i = 0; i < kMore; i++) {
    insert(i);
    if (i % 1100 == 1099) ExecOk(db, "pragma wal_checkpoint(TRUNCATE)");
  }
  const int kTxns = kRing + kMore;
  const int64_t want_txns = 1 + kTxns;
  assert_int_equal(QueryInt(db, "select repl_position()"), want_txns);
  sidecar::Position p = sc.Read();
  std::printf("  %llu commits, %llu of them handed off to the spool (%llu bytes)\n", (unsigned long long)p.txid,
              (unsigned long long)p.spooled_txid, (unsigned long long)p.spool_end);
  assert_true(p.spooled_txid > uint64_t(1 + kRing));
  ReplayEqualsDatabase(db, path, d / "replay.db", size_t(want_txns));
  sqlite3_close(db);
}

// A committer killed between announcing its commit (spool, sidecar pending)
// and finishing it: the next writer decides from the wal-index whether the
// commit happened, and the spool and position agree with the database.
// Runs a writer process (five inserts into t) with LITEJET_TEST_CRASH=point
// that kills itself inside TXID 3.
void WriterDiesInTxid3(const std::string& path, const char* point) {
  std::vector<std::string> env_s = {std::string("LITEJET_TEST_CRASH=") + point, "LITEJET_TEST_CRASH_TXID=3"};
  std::vector<char*> envp;
  for (char** e = environ; *e; e++) envp.push_back(*e);
  for (auto& e : env_s) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>(g_self), const_cast<char*>("--writer"), const_cast<char*>(path.c_str()),
                  const_cast<char*>("0"),    const_cast<char*>("5"),        nullptr};
  pid_t pid = 0;
  assert_int_equal(posix_spawn(&pid, g_self, nullptr, nullptr, argv, envp.data()), 0);
  int st = WaitChild(pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 9);  // died inside TXID 3
}

void DeadCommitter(const char* point, int64_t want_position_after_resolve) {
  TempDir d;
  std::string path = d / "a.db";
  {
    sqlite3* db = OpenReplicated(path);
    ExecOk(db, "create table t(p, i, y)");
    sqlite3_close(db);
  }
  WriterDiesInTxid3(path, point);

  sqlite3* db = OpenReplicated(path);
  ExecOk(db, "insert into t(y) values('after')");
  std::printf("  %s: position %lld after the next write\n", point, (long long)QueryInt(db, "select repl_position()"));
  assert_int_equal(QueryInt(db, "select repl_position()"), want_position_after_resolve);
  assert_int_equal(QueryInt(db, "select count(*) from t"), want_position_after_resolve - 1);
  ReplayEqualsDatabase(db, path, d / "replay.db", size_t(want_position_after_resolve));
  sqlite3_close(db);
}

void capture_committer_killed_before_commit_frame(void**) { DeadCommitter("before_commit_frame", 3); }
void capture_committer_killed_after_commit_frame(void**) { DeadCommitter("after_commit_frame", 4); }
void capture_committer_killed_after_publish(void**) { DeadCommitter("after_publish", 4); }

// Issue 8, point 1: the reopened database gives the dead committer's commit
// its TXID before anything is written (SQLite shows its row at once). Before
// the fix, only the next writer resolved it: a process that reopened and only
// read saw N+1 rows at position N, and so did the replica, for good if no
// write came. Also with a process that stayed open through the kill and
// never writes: its agent resolves the mark.
void DeadCommitResolvedWithoutWrites(const char* point) {
  TempDir d;
  std::string path = d / "a.db";
  sqlite3* idle = nullptr;
  {
    sqlite3* db = OpenReplicated(path);
    ExecOk(db, "create table t(p, i, y)");
    sqlite3_close(db);
  }
  WriterDiesInTxid3(path, point);
  sqlite3* db = OpenReplicated(path);
  long long rows = QueryInt(db, "select count(*) from t"), pos = QueryInt(db, "select repl_position()");
  std::printf("  %s, reopened: %lld rows, position %lld\n", point, rows, pos);
  assert_int_equal(pos, rows + 1);
  assert_int_equal(pos, std::strcmp(point, "before_commit_frame") == 0 ? 2 : 3);
  ReplayEqualsDatabase(db, path, d / "replay.db", size_t(pos));
  sqlite3_close(db);

  // Again, with a connection of this process open through the kill (the
  // wal-index stays live, no recovery) that never writes.
  TempDir d2;
  path = d2 / "a.db";
  idle = OpenReplicated(path);
  ExecOk(idle, "create table t(p, i, y)");
  WriterDiesInTxid3(path, point);
  long long want = std::strcmp(point, "before_commit_frame") == 0  ? 2
                   : std::strcmp(point, "after_commit_frame") == 0 ? 2
                                                                   : 3;
  sidecar::Sidecar sc;
  bool created = false;
  assert_true(sc.Open(path + "-litejet", &created).ok());
  // The agent looks every 250 ms; a loaded machine gets 30 s of wall time.
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       sc.pending_txid() != 0 && std::chrono::steady_clock::now() < end;) {
    usleep(10000);
  }
  assert_int_equal(sc.pending_txid(), 0);
  rows = QueryInt(idle, "select count(*) from t");
  pos = QueryInt(idle, "select repl_position()");
  std::printf("  %s, idle survivor: %lld rows, position %lld\n", point, rows, pos);
  assert_int_equal(pos, rows + 1);
  assert_int_equal(pos, want);
  ReplayEqualsDatabase(idle, path, d2 / "replay.db", size_t(pos));
  sqlite3_close(idle);
}

void capture_dead_commit_resolved_at_open(void**) {
  for (const char* point : {"before_commit_frame", "after_commit_frame", "after_publish"}) {
    DeadCommitResolvedWithoutWrites(point);
  }
}

// A committer killed after publishing; the next connection only reads and
// closes (SQLite checkpoints and deletes the WAL) before any writer resolved
// the dead commit: the WAL must be kept, and the next writer finds the commit.
void capture_dead_commit_then_close(void**) {
  TempDir d;
  std::string path = d / "a.db";
  {
    sqlite3* db = OpenReplicated(path);
    ExecOk(db, "create table t(p, i, y)");
    sqlite3_close(db);
  }
  WriterDiesInTxid3(path, "after_publish");
  {
    sqlite3* db = OpenReplicated(path);
    std::printf("  reader sees %lld rows, position %lld\n", (long long)QueryInt(db, "select count(*) from t"),
                (long long)QueryInt(db, "select repl_position()"));
    sqlite3_close(db);  // last connection: checkpoint, delete the WAL
  }
  sqlite3* db = OpenReplicated(path);
  ExecOk(db, "create table u(a)");  // touches page 1 and a new page, not t's leaf
  long long pos = QueryInt(db, "select repl_position()"), rows = QueryInt(db, "select count(*) from t");
  std::printf("  after the next write: position %lld, rows %lld\n", pos, rows);
  assert_int_equal(pos, 4);
  assert_int_equal(rows, 2);
  ReplayEqualsDatabase(db, path, d / "replay.db", size_t(pos));
  sqlite3_close(db);
}

// The shipper's lock-free WAL read racing TRUNCATE checkpoints (the WAL
// shrinks under the read): each read either succeeds or finds the commit in
// the spool; never an error.
void capture_read_races_truncate(void**) {
  TempDir d;
  std::string path = d / "a.db";
  sqlite3* db = OpenReplicated(path);
  ExecOk(db, "create table t(k integer primary key, v blob)");
  ExecOk(db, "pragma wal_autocheckpoint=0");
  sidecar::Sidecar sc;
  bool created = false;
  assert_true(sc.Open(path + "-litejet", &created).ok());
  std::atomic<bool> stop{false};
  std::map<std::string, int> outcomes;
  std::thread reader([&] {
    locallog::Reader r;
    if (!r.Open(path, &sc).ok()) return;
    uint64_t next = 2;
    while (!stop) {
      sidecar::Position p = sc.Read();
      if (p.txid < next) continue;
      next = p.txid;
      usleep(useconds_t(rand() % 3000));
      std::vector<record::Txn> out;
      Status st = r.Read(next, next, p.txid, p.spool_end, p.spool_end, 10, 1 << 30, "n", &out);
      if (st.ok() && out.size() == 1) next++;
      if (!st.ok()) r.set_spool_offset(0);
      std::string k = st.ok() ? (out.size() == 1 ? "ok" : "nothing")
                              : "error " + std::to_string(st.code()) + ": " + st.message().substr(0, 90);
      outcomes[k]++;
    }
  });
  for (int i = 0; i < 150; i++) {
    ExecOk(db, "insert into t(v) values(randomblob(2000000))");
    ExecOk(db, "pragma wal_checkpoint(TRUNCATE)");
  }
  stop = true;
  reader.join();
  int errors = 0;
  for (auto& [k, n] : outcomes) {
    std::printf("  %6d x %s\n", n, k.c_str());
    if (k.rfind("error", 0) == 0) errors += n;
  }
  assert_int_equal(errors, 0);
  assert_true(outcomes["ok"] > 0);
  sqlite3_close(db);
}

// Connections without litejet on a primary whose shipping is stalled: one
// that closes last (checkpoints and deletes the WAL), one that runs a
// TRUNCATE checkpoint. The agent moves a backlog older than 250 ms to the
// spool, and the last litejet connection to close hands off the rest: every
// TXID stays readable.
void capture_plain_connections_cannot_lose_the_backlog(void**) {
  for (int variant = 0; variant < 2; variant++) {
    TempDir d;
    std::string path = d / "a.db";
    sqlite3* plain = OpenPlain(path);
    sqlite3* db = OpenReplicated(path);
    ExecOk(db, "create table t(k integer primary key, v)");
    QueryInt(plain, "select count(*) from t");  // the plain reader holds SHARED from now on
    for (int i = 0; i < 5; i++) ExecOk(db, "insert into t(v) values(randomblob(100))");
    if (variant == 0) {
      sqlite3_close(db);     // not last: no checkpoint; litejet's last connection here
      sqlite3_close(plain);  // last: checkpoint + delete -wal through the unix VFS
      db = OpenReplicated(path);
      QueryInt(db, "select count(*) from t");
    } else {
      usleep(1500000);  // the agent's guard: backlog older than 250 ms, checked every 250 ms
      ExecOk(plain, "pragma wal_checkpoint(TRUNCATE)");
      sqlite3_close(plain);
    }
    sidecar::Sidecar sc;
    bool created = false;
    assert_true(sc.Open(path + "-litejet", &created).ok());
    locallog::Reader r;
    assert_true(r.Open(path, &sc).ok());
    sidecar::Position p = sc.Read();
    std::vector<record::Txn> out;
    Status st = r.Read(1, p.txid, p.txid, p.spool_end, p.spool_end, 1000, 1 << 30, "n", &out);
    std::printf("  %s: position %llu, spooled %llu, read %zu txns: %s\n",
                variant == 0 ? "plain reader closes last" : "plain TRUNCATE checkpoint", (unsigned long long)p.txid,
                (unsigned long long)p.spooled_txid, out.size(), st.ok() ? "ok" : st.message().c_str());
    CHECK_MSG(st.ok(), st.message());
    assert_int_equal(out.size(), 6);
    sqlite3_close(db);
  }
}

// A committer killed after its commit frame was written but not published,
// while another process keeps the shm open: the next lock holder (writing
// nothing) decides it did not commit. Its frames are still whole past
// mxFrame; a later recovery of the WAL must not bring it back.
void capture_dead_commit_not_resurrected(void**) {
  TempDir d;
  std::string path = d / "a.db";
  {
    sqlite3* db = OpenReplicated(path);
    ExecOk(db, "create table t(p, i, y)");
    sqlite3_close(db);
  }
  std::string go = d / "go";
  char* hargv[] = {const_cast<char*>(g_self), const_cast<char*>("--holder"), const_cast<char*>(path.c_str()),
                   const_cast<char*>(go.c_str()), nullptr};
  pid_t holder = 0;
  assert_int_equal(posix_spawn(&holder, g_self, nullptr, nullptr, hargv, environ), 0);
  // The holder says when it has the shm open (a fixed 300 ms was a guess a
  // loaded machine can miss).
  const std::string ready = go + ".ready";
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
       access(ready.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < end;) {
    usleep(10000);
  }
  assert_int_equal(access(ready.c_str(), F_OK), 0);
  WriterDiesInTxid3(path, "after_commit_frame");
  FILE* f = std::fopen(go.c_str(), "w");
  std::fclose(f);
  int st = WaitChild(holder);
  std::printf("  holder exit %d\n", WEXITSTATUS(st));
  sqlite3* db = OpenReplicated(path);
  long long rows0 = QueryInt(db, "select count(*) from t");
  ExecOk(db, "create table u(a)");
  const int64_t pos = QueryInt(db, "select repl_position()");
  std::printf("  after recovery: rows %lld, position after next write %lld\n", rows0, (long long)pos);
  assert_int_equal(rows0, 1);
  assert_int_equal(pos, 3);
  ReplayEqualsDatabase(db, path, d / "replay.db", size_t(pos));
  sqlite3_close(db);
}

// ---- the randomized oracle --------------------------------------------------

void RandomWorkload(uint64_t seed, int steps) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return int(rng() % uint64_t(n)); };
  TempDir d;
  std::string path = d / "a.db";
  std::vector<sqlite3*> conns;
  int nconn = 1 + pick(3);
  bool autovac = pick(2) == 0;
  for (int i = 0; i < nconn; i++) {
    std::string uri = pick(4) == 0 ? "&psow=0" : "";
    std::string cache = "pragma cache_size=" + std::to_string(pick(2) ? 2 + pick(8) : 2000);
    bool full = pick(3) == 0;
    if (std::getenv("LITEJET_VERBOSE")) {
      std::printf("    conn %d: %s %s%s\n", i, uri.c_str(), cache.c_str(), full ? " synchronous=FULL" : "");
    }
    conns.push_back(OpenReplicated(path, uri));
    ExecOk(conns.back(), cache);
    if (full) ExecOk(conns.back(), "pragma synchronous=FULL");
  }
  Tracker t{path, d.path(), conns[0]};
  if (autovac) {
    t.Step(conns[0], "pragma auto_vacuum=INCREMENTAL");
    t.Step(conns[0], "vacuum");
  }
  t.Step(conns[0], "begin; create table t(k integer primary key, v blob); create index ti on t(length(v)); commit");
  for (int s = 0; s < steps; s++) {
    int ci = pick(nconn);
    sqlite3* c = conns[size_t(ci)];
    if (std::getenv("LITEJET_VERBOSE")) std::printf("    on conn %d\n", ci);
    int op = pick(12);
    std::string n = std::to_string(1 + pick(60));
    std::string sz = std::to_string(pick(5) == 0 ? 1000 + pick(9000) : pick(400));
    switch (op) {
      case 0:
      case 1:
        t.Step(c, "insert into t(v) select randomblob(" + sz + ") from generate_series(1," + n + ")");
        break;
      case 2:
        t.Step(c, "update t set v = randomblob(" + sz + ") where k % " + std::to_string(2 + pick(9)) + " = 0");
        break;
      case 3:
        t.Step(c, "delete from t where k % " + std::to_string(2 + pick(5)) + " = " + std::to_string(pick(2)));
        break;
      case 4:
        t.Step(c, "begin; insert into t(v) select randomblob(" + sz + ") from generate_series(1," + n +
                      "); update t set v = zeroblob(7) where k < 30; rollback");
        break;
      case 5:
        t.Step(c, "begin; insert into t(v) select randomblob(" + sz + ") from generate_series(1," + n +
                      "); savepoint s1; update t set v = randomblob(64); rollback to s1; "
                      "delete from t where k % 11 = 0; release s1; commit");
        break;
      case 6:
        ExecOk(c, std::string("pragma wal_checkpoint(") +
                      (const char*[]){"PASSIVE", "FULL", "RESTART", "TRUNCATE"}[pick(4)] + ")");
        break;
      case 7:
        if (pick(4) == 0) t.Step(c, "vacuum");
        break;
      case 8:
        if (autovac) t.Step(c, "pragma incremental_vacuum(" + std::to_string(pick(20)) + ")");
        break;
      case 9:
        t.Step(c, "begin; update t set v = randomblob(" + sz +
                      ") where k in (select k from t order by random() limit " + n +
                      "); update t set v = randomblob(3) where k in (select k from t order by random() limit 5); "
                      "commit");
        break;
      case 10:
        t.Step(c, "create table if not exists u" + std::to_string(pick(4)) + "(a, b)");
        break;
      default:
        t.Step(c, "insert into t(v) values(randomblob(" + sz + "))");
        break;
    }
  }
  t.Check();
  for (sqlite3* c : conns) sqlite3_close(c);
}

void capture_oracle_random(void**) {
  uint64_t base = SeedFromEnv("capture_oracle_random");
  const char* n = std::getenv("LITEJET_SEEDS");
  int seeds = n ? std::atoi(n) : 8;
  const char* st = std::getenv("LITEJET_STEPS");
  int steps = st ? std::atoi(st) : 120;
  for (int i = 0; i < seeds; i++) {
    std::printf("  workload seed %llu\n", (unsigned long long)(base + uint64_t(i)));
    std::fflush(stdout);
    RandomWorkload(base + uint64_t(i), steps);
  }
}

}  // namespace

// Writer mode for capture_several_processes: PATH PROC TXNS.
int WriterMain(const char* path, int p, int txns) {
  sqlite3* db = OpenReplicated(path);
  if (Exec(db, "pragma cache_size=5") != SQLITE_OK) return 2;
  for (int i = 0; i < txns; i++) {
    std::string sql = "insert into t values(" + std::to_string(p) + "," + std::to_string(i) + ", randomblob(" +
                      std::to_string(100 + 37 * i) + "))";
    if (Exec(db, sql) != SQLITE_OK) return 3;
    if (i % 9 == 0 && Exec(db, "pragma wal_checkpoint(PASSIVE)") != SQLITE_OK) return 4;
  }
  sqlite3_close(db);
  return 0;
}

// Holds the database (and its shm) open until told to go; exits without
// closing, so that nothing checkpoints.
int HolderMain(const char* path, const char* go) {
  sqlite3* db = OpenReplicated(path);
  if (QueryInt(db, "select count(*) from t") < 0) return 2;
  FILE* ready = std::fopen((std::string(go) + ".ready").c_str(), "w");
  if (ready == nullptr) return 4;
  std::fclose(ready);
  // Bounded: a parent that failed before saying go must not leave it behind.
  for (int i = 0; access(go, F_OK) != 0; i++) {
    if (i > 12000) _exit(5);
    usleep(10000);
  }
  if (Exec(db, "begin immediate; commit") != SQLITE_OK) return 3;
  std::fflush(stdout);
  _exit(0);  // no close: no checkpoint
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init));
  g_self = "/proc/self/exe";
  if (argc == 4 && std::string(argv[1]) == "--holder") return HolderMain(argv[2], argv[3]);
  if (argc == 5 && std::string(argv[1]) == "--writer")
    return WriterMain(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(capture_counts_each_commit_once),
      cmocka_unit_test(capture_inplace_frame_rewrite),
      cmocka_unit_test(capture_spill_then_rollback),
      cmocka_unit_test(capture_savepoint_rollbacks),
      cmocka_unit_test(capture_wal_restart_after_checkpoint),
      cmocka_unit_test(capture_padding_frames),
      cmocka_unit_test(capture_shrinking_database),
      cmocka_unit_test(capture_incremental_vacuum),
      cmocka_unit_test(capture_refuses_leaving_wal),
      cmocka_unit_test(capture_existing_rollback_db_becomes_wal),
      cmocka_unit_test(capture_txid_survives_restart),
      cmocka_unit_test(capture_backlog_survives_wal_loss),
      cmocka_unit_test(capture_several_processes),
      cmocka_unit_test(capture_committer_killed_before_commit_frame),
      cmocka_unit_test(capture_committer_killed_after_commit_frame),
      cmocka_unit_test(capture_committer_killed_after_publish),
      cmocka_unit_test(capture_dead_commit_resolved_at_open),
      cmocka_unit_test(capture_oracle_random),
      cmocka_unit_test(capture_dead_commit_then_close),
      cmocka_unit_test(capture_dead_commit_not_resurrected),
      cmocka_unit_test(capture_plain_connections_cannot_lose_the_backlog),
      cmocka_unit_test(capture_read_races_truncate),
  };
  if (const char* f = std::getenv("LITEJET_TEST_FILTER")) cmocka_set_test_filter(f);
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
