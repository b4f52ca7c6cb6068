// The engine end to end without a server: primary and replica engines in one
// process share an in-memory log (transport::NewMemoryLog) in place of
// JetStream. Replication, an outage of the log, and fencing.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
}

#include "extension/engine.h"
#include "include/litejet.h"
#include "tests/util/testdb.h"
#include "transport/log.h"
#include "wal-capture/sidecar.h"

using namespace litejet;
using namespace litejet::test;

namespace {

std::shared_ptr<transport::MemoryStore> g_store;

sqlite3* Open(const std::string& path, const std::string& query) {
  sqlite3* db = nullptr;
  std::string uri = "file:" + path + "?nats=nats://127.0.0.1:9&name=mem&max_lag_ms=0&" + query;
  if (sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, nullptr) !=
      SQLITE_OK) {
    fail_msg("open %s: %s", uri.c_str(), sqlite3_errmsg(db));
  }
  sqlite3_busy_timeout(db, 2000);
  return db;
}

void ExecOk(sqlite3* db, const std::string& sql) {
  std::string err;
  if (Exec(db, sql, &err) != SQLITE_OK) fail_msg("%s: %s", sql.c_str(), err.c_str());
}

std::string StatusText(sqlite3* db, const char* path) {
  return QueryText(db, std::string("select json_extract(repl_status(), '$.") + path + "')");
}

// Polls fn until it holds or ms of wall time passed (not a count of sleeps:
// each fn() can itself take long on a loaded machine under a sanitizer).
bool WaitFor(const std::function<bool()>& fn, int ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return fn();
}

void engine_replicates_through_memory_log(void**) {
  g_store = transport::NewMemoryStore(64 * 1024);  // small payload: records are chunked
  TempDir d;
  sqlite3* p = Open(d / "p.db", "role=primary&node=p1");
  sqlite3* r = Open(d / "r.db", "role=replica&node=r1");
  ExecOk(p, "create table t(k integer primary key, v blob)");
  for (int i = 0; i < 200; i++) ExecOk(p, "insert into t(v) values(randomblob(" + std::to_string(50 + i * 7) + "))");
  ExecOk(p, "insert into t(v) values(randomblob(300000))");  // > one 64 KiB message
  int64_t pos = QueryInt(p, "select repl_position()");
  assert_int_equal(pos, 202);
  assert_int_equal(QueryInt(p, "select repl_wait(202, 30000)"), 1);
  assert_int_equal(QueryInt(r, "select repl_wait(202, 30000)"), 1);
  assert_string_equal(QueryText(r, "select repl_checksum()").c_str(), QueryText(p, "select repl_checksum()").c_str());
  assert_int_equal(QueryInt(r, "select count(*) from t"), 201);
  assert_string_equal(QueryText(r, "select hex(sha) from (select sum(length(v)) as sha from t)").c_str(),
                      QueryText(p, "select hex(sha) from (select sum(length(v)) as sha from t)").c_str());

  // The log goes away: commits go on (async), the replica waits, then
  // catches up when it is back.
  transport::SetMemoryAvailable(*g_store, false);
  for (int i = 0; i < 20; i++) ExecOk(p, "update t set v = randomblob(10) where k = " + std::to_string(i + 1));
  assert_int_equal(QueryInt(p, "select repl_position()"), 222);
  assert_int_equal(QueryInt(r, "select repl_wait(222, 300)"), 0);
  transport::SetMemoryAvailable(*g_store, true);
  assert_int_equal(QueryInt(r, "select repl_wait(222, 30000)"), 1);
  assert_string_equal(QueryText(r, "select repl_checksum()").c_str(), QueryText(p, "select repl_checksum()").c_str());
  sqlite3_close(r);
  sqlite3_close(p);
}

// Records that reach a replica in one batch go into its WAL as one
// transaction (Applier::ApplyRun): each page once, in its last version, yet
// every record's checksum checked in turn. Here 30 rewrites of one page, a
// database that grows, shrinks (VACUUM) and grows again, all in the backlog
// of one outage: the replica ends identical, with far fewer WAL frames than
// the records carry pages.
int64_t WalFrames(const std::string& wal) {
  struct stat st;
  if (::stat(wal.c_str(), &st) != 0 || st.st_size < 32) return 0;
  return (st.st_size - 32) / (24 + 4096);
}

void engine_applies_a_batch_as_one_wal_transaction(void**) {
  g_store = transport::NewMemoryStore();
  TempDir d;
  sqlite3* p = Open(d / "p.db", "role=primary&node=p1");
  sqlite3* r = Open(d / "r.db", "role=replica&node=r1");
  ExecOk(p, "create table t(k integer primary key, v blob); insert into t(v) values(randomblob(100))");
  assert_int_equal(QueryInt(r, "select repl_wait(2, 30000)"), 1);
  const int64_t frames0 = WalFrames(d / "r.db-wal");
  transport::SetMemoryAvailable(*g_store, false);
  for (int i = 0; i < 30; i++) ExecOk(p, "update t set v = randomblob(100) where k = 1");
  ExecOk(p, "insert into t(v) values(randomblob(60000))");  // grows over overflow pages
  ExecOk(p, "delete from t where k = 2");
  ExecOk(p, "vacuum");                                      // shrinks
  ExecOk(p, "insert into t(v) values(randomblob(20000))");  // grows again
  const int64_t pos = QueryInt(p, "select repl_position()");
  assert_int_equal(pos, 2 + 30 + 4);
  transport::SetMemoryAvailable(*g_store, true);
  assert_int_equal(QueryInt(r, "select repl_wait(" + std::to_string(pos) + ", 30000)"), 1);
  assert_int_equal(QueryInt(r, "select repl_position()"), pos);
  assert_string_equal(QueryText(r, "select repl_checksum()").c_str(), QueryText(p, "select repl_checksum()").c_str());
  assert_string_equal(QueryText(r, "pragma integrity_check").c_str(), "ok");
  assert_string_equal(QueryText(r, "select group_concat(k || ':' || hex(v), ',') from t").c_str(),
                      QueryText(p, "select group_concat(k || ':' || hex(v), ',') from t").c_str());
  // The 30 rewrites alone carry 30 pages; merged, the replica's WAL grew by
  // fewer frames than that (the first, shipped alone, and one run).
  const int64_t added = WalFrames(d / "r.db-wal") - frames0;
  if (added <= 0 || added >= 30) fail_msg("replica WAL grew by %lld frames", static_cast<long long>(added));
  sqlite3_close(r);
  sqlite3_close(p);
}

void engine_fences_a_stale_primary(void**) {
  g_store = transport::NewMemoryStore();
  TempDir d;
  sqlite3* a = Open(d / "a.db", "role=primary&node=a");
  ExecOk(a, "create table t(x); insert into t values(1)");
  assert_int_equal(QueryInt(a, "select repl_wait(2, 30000)"), 1);
  sqlite3* b = Open(d / "b.db", "role=primary&node=b");  // empty database, log at TXID 2
  // Its agent finds the log ahead in the background: up to 30 s on a loaded machine.
  WaitFor([&] { return QueryInt(b, "select repl_is_primary()") == 0; }, 30000);
  assert_int_equal(QueryInt(b, "select repl_is_primary()"), 0);
  std::string err;
  assert_int_equal(Exec(b, "create table u(y)", &err), SQLITE_READONLY);
  sqlite3_close(b);
  sqlite3_close(a);
}

// Epochs: a replica takes the epoch of the records it applies, and refuses a
// record from an older epoch than one it has seen (a deposed primary's) with
// an error naming both epochs, applying nothing of it. The primary's epoch is
// set here through its sidecar, as the agent does when it wins an election.
void engine_replica_refuses_an_older_epoch(void**) {
  g_store = transport::NewMemoryStore();
  TempDir d;
  sqlite3* p = Open(d / "p.db", "role=primary&node=p1");
  sqlite3* r = Open(d / "r.db", "role=replica&node=r1");
  sidecar::Sidecar side;
  bool created = false;
  assert_true(side.Open(d / "p.db-litejet", &created).ok());
  side.SetEpoch(7);
  ExecOk(p, "create table t(x); insert into t values(1)");
  assert_int_equal(QueryInt(r, "select repl_wait(2, 30000)"), 1);
  assert_int_equal(QueryInt(r, "select json_extract(repl_status(), '$.epoch')"), 7);
  side.SetEpoch(3);  // as if a deposed primary of epoch 3 got a record into the log
  ExecOk(p, "insert into t values(2)");
  assert_int_equal(QueryInt(p, "select repl_wait(3, 30000)"), 1);  // the memory log has no fencing by epoch
  assert_int_equal(QueryInt(r, "select repl_wait(3, 500)"), 0);
  assert_int_equal(QueryInt(r, "select repl_position()"), 2);
  assert_int_equal(QueryInt(r, "select count(*) from t"), 1);
  // The replica refuses the record when it reads it, which a loaded machine
  // can do after the 500 ms above: wait (bounded) for it to say so.
  const char* want = "is from epoch 3, older than epoch 7 already seen";
  WaitFor([&] { return std::strstr(StatusText(r, "last_error").c_str(), want) != nullptr; }, 30000);
  assert_int_equal(QueryInt(r, "select repl_position()"), 2);
  assert_int_equal(QueryInt(r, "select count(*) from t"), 1);
  std::string err = QueryText(r, "select json_extract(repl_status(), '$.last_error')");
  assert_non_null(std::strstr(err.c_str(), want));
  sqlite3_close(r);
  sqlite3_close(p);
}

int64_t RowsIn(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, "unix") != SQLITE_OK) fail_msg("open %s", path.c_str());
  int64_t n = QueryInt(db, "select count(*) from t");
  sqlite3_close(db);
  return n;
}

// Divergence: an old primary with commits the log never acknowledged comes
// back as a replica after another node wrote the log past its last shipped
// TXID. It keeps its database as <db>.diverged-*, rebuilds from the log, says
// so in repl_status() and last_error, and then applies the log as any replica.
void engine_rebuilds_a_diverged_database(void**) {
  g_store = transport::NewMemoryStore();
  TempDir d;
  sqlite3* a = Open(d / "a.db", "role=primary&node=a");
  ExecOk(a, "create table t(k integer primary key, v text); insert into t(v) values('one')");
  assert_int_equal(QueryInt(a, "select repl_wait(2, 30000)"), 1);
  sqlite3* r = Open(d / "r.db", "role=replica&node=r");
  assert_int_equal(QueryInt(r, "select repl_wait(2, 30000)"), 1);
  sqlite3_close(r);
  // The log goes away: two commits of a never reach it.
  transport::SetMemoryAvailable(*g_store, false);
  ExecOk(a, "insert into t(v) values('a3')");
  ExecOk(a, "insert into t(v) values('a4')");
  assert_int_equal(QueryInt(a, "select repl_position()"), 4);
  sqlite3_close(a);
  transport::SetMemoryAvailable(*g_store, true);
  // Another node becomes primary from the log's TXID 2 and writes TXID 3.
  sqlite3* b = Open(d / "r.db", "role=primary&node=b");
  ExecOk(b, "insert into t(v) values('b3')");
  assert_int_equal(QueryInt(b, "select repl_wait(3, 30000)"), 1);
  const std::string sum_b = QueryText(b, "select repl_checksum()");

  // a comes back as a replica: its TXIDs 3 and 4 are not history.
  a = Open(d / "a.db", "role=replica&node=a");
  // (The sidecar's rebuild count is visible before last_error says "rebuilt":
  // wait for both.)
  assert_true(WaitFor(
      [&] {
        return StatusText(a, "rebuild.count") == "1" &&
               std::strstr(StatusText(a, "last_error").c_str(), "rebuilt from the log at TXID") != nullptr;
      },
      30000));
  assert_int_equal(QueryInt(a, "select repl_position()"), 3);
  assert_string_equal(QueryText(a, "select repl_checksum()").c_str(), sum_b.c_str());
  assert_string_equal(QueryText(a, "select group_concat(v) from (select v from t order by k)").c_str(), "one,b3");
  assert_string_equal(QueryText(a, "pragma integrity_check").c_str(), "ok");
  const std::string kept = StatusText(a, "rebuild.kept");
  assert_true(kept.rfind(d / "a.db.diverged-", 0) == 0);
  assert_int_equal(RowsIn(kept), 3);  // the diverged database as it was: one, a3, a4
  assert_int_equal(QueryInt(a, "select json_extract(repl_status(), '$.rebuild.txid')"), 3);
  assert_int_equal(QueryInt(a, "select json_extract(repl_status(), '$.rebuild.active')"), 0);
  const std::string reason = StatusText(a, "rebuild.reason");
  assert_non_null(std::strstr(reason.c_str(), "diverged: its TXID 3 never reached the log, which has node b's TXID 3"));
  const std::string err = StatusText(a, "last_error");
  assert_non_null(std::strstr(err.c_str(), "rebuilt from the log at TXID 3"));

  // From here it is a replica like any other.
  ExecOk(b, "insert into t(v) values('b4')");
  assert_int_equal(QueryInt(a, "select repl_wait(4, 30000)"), 1);
  assert_string_equal(QueryText(a, "select repl_checksum()").c_str(), QueryText(b, "select repl_checksum()").c_str());
  sqlite3_close(a);
  sqlite3_close(b);
}

// A primary made a replica (role=replica) with commits the log never
// acknowledged, and nobody wrote after them: it is ahead of the log and would
// never ship them. Rebuilt to the log's end.
void engine_rebuilds_a_replica_ahead_of_the_log(void**) {
  g_store = transport::NewMemoryStore();
  TempDir d;
  sqlite3* a = Open(d / "a.db", "role=primary&node=a");
  ExecOk(a, "create table t(k integer primary key, v text); insert into t(v) values('one')");
  assert_int_equal(QueryInt(a, "select repl_wait(2, 30000)"), 1);
  const std::string sum2 = QueryText(a, "select repl_checksum()");
  transport::SetMemoryAvailable(*g_store, false);
  ExecOk(a, "insert into t(v) values('a3')");
  sqlite3_close(a);
  transport::SetMemoryAvailable(*g_store, true);
  a = Open(d / "a.db", "role=replica&node=a");
  assert_true(WaitFor([&] { return StatusText(a, "rebuild.count") == "1"; }, 30000));
  assert_int_equal(QueryInt(a, "select repl_position()"), 2);
  assert_string_equal(QueryText(a, "select repl_checksum()").c_str(), sum2.c_str());
  assert_int_equal(QueryInt(a, "select count(*) from t"), 1);
  assert_non_null(
      std::strstr(StatusText(a, "rebuild.reason").c_str(), "ahead of the log (TXIDs 3..3 never reached it)"));
  sqlite3_close(a);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  Engine::SetLogFactoryForTesting([](const transport::Options&, std::unique_ptr<transport::Log>* out) {
    *out = transport::NewMemoryLog(g_store);
    return Status::OK();
  });
  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(engine_replicates_through_memory_log),
      cmocka_unit_test(engine_applies_a_batch_as_one_wal_transaction),
      cmocka_unit_test(engine_fences_a_stale_primary),
      cmocka_unit_test(engine_replica_refuses_an_older_epoch),
      cmocka_unit_test(engine_rebuilds_a_diverged_database),
      cmocka_unit_test(engine_rebuilds_a_replica_ahead_of_the_log),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
