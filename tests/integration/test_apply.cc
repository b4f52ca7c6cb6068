// Replica apply: transactions captured on a primary are appended to a
// replica's WAL and wal-index by WalWriter; SQLite itself then reads the
// replica. Pages equal the primary's at every TXID, readers keep their
// snapshot, the WAL restarts after checkpoints, and the WAL on disk is one
// SQLite can recover.
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
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
#include "wal-capture/apply.h"
#include "wal-capture/checksum.h"
#include "wal-capture/wal_format.h"

using namespace litejet;
using namespace litejet::test;

extern char** environ;

namespace {

void ExecOk(sqlite3* db, const std::string& sql) {
  std::string err;
  if (Exec(db, sql, &err) != SQLITE_OK) fail_msg("%s: %s", sql.c_str(), err.c_str());
}

std::string Series(int n) {
  return "(with recursive gs(value) as (select 1 union all select value+1 from gs where value<" + std::to_string(n) +
         ") select value from gs)";
}

// Runs a seeded workload on a replicated primary; returns the oracle page
// hashes at every TXID (index = txid).
std::vector<std::vector<uint64_t>> PrimaryWorkload(const std::string& path, const std::string& dir, uint64_t seed,
                                                   int steps) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return int(rng() % uint64_t(n)); };
  sqlite3* db = OpenReplicated(path);
  ExecOk(db, "pragma cache_size=" + std::to_string(pick(2) ? 3 : 2000));
  std::vector<std::vector<uint64_t>> want{{}};
  auto step = [&](const std::string& sql) {
    int64_t before = QueryInt(db, "select repl_position()");
    ExecOk(db, sql);
    if (QueryInt(db, "select repl_position()") != before) {
      uint32_t ps = 0;
      want.push_back(OraclePages(path, dir, &ps));
    }
  };
  step("create table t(k integer primary key, v blob)");
  for (int i = 0; i < steps; i++) {
    std::string sz = std::to_string(pick(5) == 0 ? 2000 + pick(6000) : pick(300));
    switch (pick(6)) {
      case 0:
        step("insert into t(v) select randomblob(" + sz + ") from " + Series(1 + pick(40)));
        break;
      case 1:
        step("update t set v = randomblob(" + sz + ") where k % " + std::to_string(2 + pick(7)) + " = 0");
        break;
      case 2:
        step("delete from t where k % " + std::to_string(3 + pick(5)) + " = 0");
        break;
      case 3:
        if (pick(5) == 0) step("vacuum");
        break;
      case 4:
        ExecOk(db, "pragma wal_checkpoint(TRUNCATE)");
        break;
      default:
        step("insert into t(v) values(randomblob(" + sz + "))");
    }
  }
  ExecOk(db, "pragma wal_checkpoint(TRUNCATE)");
  sqlite3_close(db);
  return want;
}

void apply_matches_primary_at_every_txid(void**) {
  uint64_t seed = SeedFromEnv("apply_matches_primary_at_every_txid");
  TempDir d;
  std::string prim = d / "p.db", repl = d / "r.db";
  auto want = PrimaryWorkload(prim, d.path(), seed, 150);
  std::vector<record::Txn> txns = ReadCaptured(prim);
  assert_int_equal(txns.size() + 1, want.size());

  apply::WalWriter w;
  Status s = w.Open(repl);
  assert_true(s.ok());
  sqlite3* reader = OpenPlain(repl, SQLITE_OPEN_READONLY);
  std::mt19937_64 rng(seed ^ 0x5a5a);
  sqlite3* ckpt = nullptr;
  for (const record::Txn& t : txns) {
    s = w.Append(t.page_size, t.db_pages, t.pages, 5000);
    if (!s.ok()) fail_msg("txid %llu: %s", (unsigned long long)t.txid, s.message().c_str());
    uint32_t ps = 0;
    std::vector<uint64_t> got = OraclePages(repl, d.path(), &ps);
    std::string diff = DiffPages(want[t.txid], got);
    if (!diff.empty()) fail_msg("txid %llu: %s", (unsigned long long)t.txid, diff.c_str());
    // A reader connection sees it too.
    assert_int_equal(QueryInt(reader, "select count(*) from sqlite_master"),
                     QueryInt(reader, "select count(*) from sqlite_master"));
    if (!ckpt) ckpt = OpenPlain(repl);
    if (rng() % 7 == 0) {
      // Checkpoints let the next Append restart the WAL.
      ExecOk(ckpt, rng() % 2 ? "pragma wal_checkpoint(PASSIVE)" : "pragma wal_checkpoint(TRUNCATE)");
    }
  }
  assert_string_equal(QueryText(reader, "pragma integrity_check").c_str(), "ok");
  sqlite3_close(reader);
  // Recovery: a copy of the replica's db + WAL, opened fresh (no shm), must
  // show the same database: the WAL we wrote is valid on disk.
  uint32_t ps = 0;
  std::vector<uint64_t> live = OraclePages(repl, d.path(), &ps);
  CopyFile(repl, d / "copy.db");
  CopyFile(repl + "-wal", d / "copy.db-wal");
  std::vector<uint64_t> recovered = OraclePages(d / "copy.db", d.path(), &ps);
  std::string diff = DiffPages(live, recovered);
  if (!diff.empty()) fail_msg("recovered copy differs: %s", diff.c_str());
  // After a full checkpoint the files are byte-identical to the primary's.
  ExecOk(ckpt, "pragma wal_checkpoint(TRUNCATE)");
  sqlite3_close(ckpt);
  std::vector<uint64_t> a, b;
  assert_true(checksum::HashFile(prim, &a, &ps).ok());
  assert_true(checksum::HashFile(repl, &b, &ps).ok());
  diff = DiffPages(a, b);
  if (!diff.empty()) fail_msg("checkpointed files differ: %s", diff.c_str());
}

void apply_reader_keeps_snapshot(void**) {
  TempDir d;
  std::string prim = d / "p.db", repl = d / "r.db";
  {
    sqlite3* db = OpenReplicated(prim);
    ExecOk(db, "create table acct(id integer primary key, bal integer)");
    ExecOk(db, "insert into acct(bal) select 100 from " + Series(50));
    for (int i = 0; i < 300; i++) {
      // Move money around: the total stays 5000 in every transaction.
      int a = 1 + i % 50, b = 1 + (i * 7) % 50;
      ExecOk(db, "begin; update acct set bal = bal - 3 where id = " + std::to_string(a) +
                     "; update acct set bal = bal + 3 where id = " + std::to_string(b) +
                     "; insert into acct(bal) values(0); commit");
    }
    sqlite3_close(db);
  }
  std::vector<record::Txn> txns = ReadCaptured(prim);
  apply::WalWriter w;
  assert_true(w.Open(repl).ok());
  for (size_t i = 0; i < 3; i++) assert_true(w.Append(txns[i].page_size, txns[i].db_pages, txns[i].pages, 5000).ok());
  sqlite3* old_reader = OpenPlain(repl, SQLITE_OPEN_READONLY);
  ExecOk(old_reader, "begin");
  int64_t rows_then = QueryInt(old_reader, "select count(*) from acct");
  assert_int_equal(QueryInt(old_reader, "select sum(bal) from acct"), 5000);
  sqlite3* other = OpenPlain(repl, SQLITE_OPEN_READONLY);
  for (size_t i = 3; i < txns.size(); i++) {
    Status s = w.Append(txns[i].page_size, txns[i].db_pages, txns[i].pages, 5000);
    if (!s.ok()) fail_msg("%s", s.message().c_str());
    if (i % 25 == 0) {
      // Never blocked, always consistent: a new read sees all of it.
      assert_int_equal(QueryInt(other, "select sum(bal) from acct"), 5000);
      assert_int_equal(QueryInt(other, "select count(*) from acct"), 50 + int64_t(i) - 1);
      // The long reader still sees its snapshot.
      assert_int_equal(QueryInt(old_reader, "select count(*) from acct"), rows_then);
    }
  }
  assert_int_equal(QueryInt(old_reader, "select count(*) from acct"), rows_then);
  ExecOk(old_reader, "commit");
  assert_int_equal(QueryInt(old_reader, "select count(*) from acct"), 50 + 300);
  assert_int_equal(QueryInt(old_reader, "select sum(bal) from acct"), 5000);
  sqlite3_close(other);
  sqlite3_close(old_reader);
}

// A crash after the frames were written but before the sidecar moved makes
// the agent apply the same record again: the result must be the same pages.
void apply_same_record_twice_is_idempotent(void**) {
  uint64_t seed = SeedFromEnv("apply_same_record_twice_is_idempotent");
  TempDir d;
  std::string prim = d / "p.db", repl = d / "r.db";
  auto want = PrimaryWorkload(prim, d.path(), seed, 60);
  std::vector<record::Txn> txns = ReadCaptured(prim);
  apply::WalWriter w;
  assert_true(w.Open(repl).ok());
  std::mt19937_64 rng(seed);
  for (const record::Txn& t : txns) {
    int times = rng() % 3 == 0 ? 2 : 1;
    for (int i = 0; i < times; i++) {
      Status s = w.Append(t.page_size, t.db_pages, t.pages, 5000);
      if (!s.ok()) fail_msg("txid %llu: %s", (unsigned long long)t.txid, s.message().c_str());
    }
    uint32_t ps = 0;
    std::string diff = DiffPages(want[t.txid], OraclePages(repl, d.path(), &ps));
    if (!diff.empty()) fail_msg("txid %llu: %s", (unsigned long long)t.txid, diff.c_str());
  }
}

// Other processes open and close the replica between applies. The last one to
// close would checkpoint and delete the WAL and shm unless the writer holds a
// SHARED lock like any connection: then every transaction must stay visible.
void apply_survives_other_processes_closing(void**) {
  TempDir d;
  std::string prim = d / "p.db", repl = d / "r.db";
  {
    sqlite3* db = OpenReplicated(prim);
    ExecOk(db, "create table t(x)");
    for (int i = 0; i < 4; i++) ExecOk(db, "insert into t values(" + std::to_string(i) + ")");
    sqlite3_close(db);
  }
  std::vector<record::Txn> txns = ReadCaptured(prim);
  apply::WalWriter w;
  assert_true(w.Open(repl).ok());
  for (size_t i = 0; i < txns.size(); i++) {
    assert_true(w.Append(txns[i].page_size, txns[i].db_pages, txns[i].pages, 5000).ok());
    if (i == 0) continue;
    char* argv[] = {const_cast<char*>("/proc/self/exe"), const_cast<char*>("--count"), const_cast<char*>(repl.c_str()),
                    nullptr};
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ), 0);
    int st = WaitChild(pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), int(i));  // rows after txn i+1 (the first made the table)
  }
}

// A transaction handed over one page at a time (a bootstrap installs a whole
// database this way, never holding it in memory): the pages come through one
// reused buffer, each asked once and in order (page 0 also first for the
// empty file), and the result is the primary's database at every TXID. A
// source that fails mid-transaction fails the append with its error and
// publishes nothing: readers still see the previous TXID, and the same
// transaction appended again afterwards lands whole.
void apply_page_source_streams_a_transaction(void**) {
  uint64_t seed = SeedFromEnv("apply_page_source_streams_a_transaction");
  TempDir d;
  std::string prim = d / "p.db", repl = d / "r.db";
  auto want = PrimaryWorkload(prim, d.path(), seed, 40);
  std::vector<record::Txn> txns = ReadCaptured(prim);
  assert_true(txns.size() >= 3);
  apply::WalWriter w;
  assert_true(w.Open(repl).ok());
  // The source fails once: in the first transaction after the first one
  // (whose page 1 goes to the empty file) with at least two pages.
  uint64_t fail_txid = 0;
  for (const record::Txn& t : txns) {
    if (t.txid >= 2 && t.pages.size() >= 2) {
      fail_txid = t.txid;
      break;
    }
  }
  assert_true(fail_txid != 0);
  std::string buf;
  bool failed_once = false;
  for (const record::Txn& t : txns) {
    const bool fail_here = t.txid == fail_txid;
    std::vector<size_t> asked;
    Status inner;
    Status s = w.WithWriteLock(5000, [&] {
      inner = w.AppendLocked(t.page_size, t.db_pages, t.pages.size(), [&](size_t i, uint32_t* pgno, const char** data) {
        asked.push_back(i);
        if (fail_here && i == t.pages.size() - 1) return Status::Error("source failed on purpose", SQLITE_IOERR);
        buf.assign(t.pages[i].data);  // the one buffer, overwritten at every call
        *pgno = t.pages[i].pgno;
        *data = buf.data();
        return Status::OK();
      });
    });
    assert_true(s.ok());
    uint32_t ps = 0;
    if (fail_here) {
      failed_once = true;
      assert_int_equal(inner.code(), SQLITE_IOERR);
      assert_string_equal(inner.message().c_str(), "source failed on purpose");
      std::string diff = DiffPages(want[t.txid - 1], OraclePages(repl, d.path(), &ps));
      if (!diff.empty())
        fail_msg("txid %llu: a failed append changed the database: %s", (unsigned long long)t.txid, diff.c_str());
      s = w.Append(t.page_size, t.db_pages, t.pages, 5000);
      if (!s.ok()) fail_msg("txid %llu again: %s", (unsigned long long)t.txid, s.message().c_str());
    } else {
      if (!inner.ok()) fail_msg("txid %llu: %s", (unsigned long long)t.txid, inner.message().c_str());
      std::vector<size_t> in_order;
      if (t.txid == 1) in_order.push_back(0);  // the empty file's page 1 first
      for (size_t i = 0; i < t.pages.size(); i++) in_order.push_back(i);
      assert_true(asked == in_order);
    }
    std::string diff = DiffPages(want[t.txid], OraclePages(repl, d.path(), &ps));
    if (!diff.empty()) fail_msg("txid %llu: %s", (unsigned long long)t.txid, diff.c_str());
  }
  assert_true(failed_once);
  // A page of the wrong size is refused before anything is written.
  record::Txn bad = txns.back();
  bad.pages.front().data.resize(bad.page_size / 2);
  Status s = w.Append(bad.page_size, bad.db_pages, bad.pages, 5000);
  assert_int_equal(s.code(), SQLITE_CORRUPT);
  assert_string_equal(s.message().c_str(),
                      ("litejet: apply: page " + std::to_string(bad.pages.front().pgno) + " has " +
                       std::to_string(bad.page_size / 2) + " bytes, not the page size " + std::to_string(bad.page_size))
                          .c_str());
}

// With a WAL size limit (the replica's applier sets one), an append that
// starts a new WAL generation cuts the file down to its own frames (limit 0
// here), as SQLite does at its first commit after a restart; without one the
// file keeps its largest size. The database is the primary's either way.
void apply_wal_file_cut_at_restart(void**) {
  uint64_t seed = SeedFromEnv("apply_wal_file_cut_at_restart");
  TempDir d;
  std::string prim = d / "p.db";
  auto want = PrimaryWorkload(prim, d.path(), seed, 80);
  std::vector<record::Txn> txns = ReadCaptured(prim);
  for (int64_t limit : {int64_t(-1), int64_t(0)}) {
    std::string repl = d / ("r" + std::to_string(limit + 1) + ".db");
    apply::WalWriter w;
    assert_true(w.Open(repl).ok());
    w.set_wal_size_limit(limit);
    sqlite3* ckpt = OpenPlain(repl);
    int64_t largest = 0;
    int cut = 0;
    for (const record::Txn& t : txns) {
      Status s = w.Append(t.page_size, t.db_pages, t.pages, 5000);
      if (!s.ok()) fail_msg("txid %llu: %s", (unsigned long long)t.txid, s.message().c_str());
      struct stat st;
      assert_int_equal(::stat((repl + "-wal").c_str(), &st), 0);
      const int64_t frames_end = wal::FrameOffset(w.wal_frames() + 1, t.page_size);
      if (limit < 0) {
        assert_true(st.st_size >= largest);  // never smaller
      } else if (w.wal_frames() == t.pages.size()) {
        // This append started the generation: the file ends at its frames.
        assert_int_equal(st.st_size, frames_end);
        if (largest > frames_end) cut++;
      }
      largest = std::max<int64_t>(largest, st.st_size);
      uint32_t ps = 0;
      std::string diff = DiffPages(want[t.txid], OraclePages(repl, d.path(), &ps));
      if (!diff.empty())
        fail_msg("limit %lld, txid %llu: %s", (long long)limit, (unsigned long long)t.txid, diff.c_str());
      ExecOk(ckpt, "pragma wal_checkpoint(PASSIVE)");  // so that the next append restarts the WAL
    }
    if (limit == 0 && cut == 0) fail_msg("no append cut the WAL file (largest %lld bytes)", (long long)largest);
    sqlite3_close(ckpt);
  }
}

}  // namespace

// --count PATH: exit status = rows in t, read by a fresh connection that then
// closes (the "last connection" path).
int CountMain(const char* path) {
  sqlite3* db = OpenPlain(path, SQLITE_OPEN_READWRITE);  // read-write: its close may checkpoint
  int64_t n = QueryInt(db, "select count(*) from t");
  sqlite3_close(db);
  return int(n);
}

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--count") return CountMain(argv[2]);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(apply_matches_primary_at_every_txid),
      cmocka_unit_test(apply_reader_keeps_snapshot),
      cmocka_unit_test(apply_same_record_twice_is_idempotent),
      cmocka_unit_test(apply_survives_other_processes_closing),
      cmocka_unit_test(apply_page_source_streams_a_transaction),
      cmocka_unit_test(apply_wal_file_cut_at_restart),
  };
  if (const char* f = std::getenv("LITEJET_TEST_FILTER")) cmocka_set_test_filter(f);
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
