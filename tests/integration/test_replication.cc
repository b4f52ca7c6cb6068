// Replication semantics with a real nats-server, in one process: sync
// durability, the max_lag_ms bound, fencing of a second primary, a replica's
// refusal to write, and repl_wait on both sides.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
}

#include "include/litejet.h"
#include "tests/harness/nats_server.h"
#include "tests/util/testdb.h"

using namespace litejet;
using namespace litejet::test;

namespace {

struct Fixture {
  std::unique_ptr<NatsServer> server;
  std::unique_ptr<TempDir> dir;
};

int Setup(void** state) {
  auto* f = new Fixture;
  std::string err;
  f->server = NatsServer::Start(&err);
  if (!f->server) {
    std::fprintf(stderr, "nats-server: %s\n", err.c_str());
    delete f;
    return -1;
  }
  f->dir = std::make_unique<TempDir>();
  *state = f;
  return 0;
}

int Teardown(void** state) {
  delete static_cast<Fixture*>(*state);
  return 0;
}

sqlite3* Open(const std::string& path, const std::string& query) {
  sqlite3* db = nullptr;
  std::string uri = "file:" + path + "?" + query;
  if (sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, nullptr) !=
      SQLITE_OK) {
    fail_msg("open %s: %s", uri.c_str(), sqlite3_errmsg(db));
  }
  sqlite3_busy_timeout(db, 2000);
  return db;
}

std::string LastError(sqlite3* db) { return QueryText(db, "select json_extract(repl_status(), '$.last_error')"); }

// Polls fn until it holds or ms of wall time passed (a loaded machine under a
// sanitizer: generous, and only where the event must happen).
bool WaitFor(const std::function<bool()>& fn, int ms = 30000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fn()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return fn();
}

void sync_commit_is_acknowledged_or_fails(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::string q = "nats=" + f->server->url() + "&role=primary&node=p1&durability=sync&name=sync1";
  sqlite3* db = Open(*f->dir / "sync.db", q);
  // The agent connects in the background; a sync commit before that would
  // spend its timeout waiting (slow sanitizer builds).
  WaitFor([&] { return QueryInt(db, "select json_extract(repl_status(), '$.connected')") == 1; });
  assert_int_equal(QueryInt(db, "select json_extract(repl_status(), '$.connected')"), 1);
  assert_int_equal(Exec(db, "create table t(x)"), SQLITE_OK);
  for (int i = 0; i < 20; i++) {
    assert_int_equal(Exec(db, "insert into t values(" + std::to_string(i) + ")"), SQLITE_OK);
    // Returned success: JetStream has it already, no waiting needed.
    int64_t pos = QueryInt(db, "select repl_position()");
    assert_int_equal(QueryInt(db, "select json_extract(repl_status(), '$.acked_txid')"), pos);
  }
  f->server->Stop();
  std::string err;
  assert_int_equal(Exec(db, "insert into t values(-1)", &err) & 0xff, SQLITE_IOERR);
  assert_int_equal(QueryInt(db, "select count(*) from t"), 20);
  assert_int_equal(QueryInt(db, "select repl_position()"), 21);
  const std::string doubt =
      "litejet: database \"sync1\": the outcome of sync commit TXID 22 is unknown until JetStream answers (not "
      "acknowledged within 5000 ms); writes are refused until then";
  assert_string_equal(LastError(db).c_str(), doubt.c_str());
  // Still the primary; writes wait for the log's answer.
  assert_int_equal(QueryInt(db, "select repl_is_primary()"), 1);
  sqlite3_busy_timeout(db, 0);
  assert_int_equal(Exec(db, "insert into t values(-2)", &err), SQLITE_BUSY);
  assert_int_equal(LastError(db).rfind(doubt, 0), 0);
  // JetStream back (same store): the record never reached it, so nothing of
  // TXID 22 remains and the next commit is TXID 22.
  std::string rerr;
  assert_true(f->server->Restart(&rerr));
  sqlite3_busy_timeout(db, 60000);  // writes wait until the primary reconciled with the log
  assert_int_equal(Exec(db, "insert into t values(20)", &err), SQLITE_OK);
  assert_int_equal(QueryInt(db, "select repl_position()"), 22);
  assert_int_equal(QueryInt(db, "select json_extract(repl_status(), '$.acked_txid')"), 22);
  assert_int_equal(QueryInt(db, "select count(*) from t where x < 0"), 0);
  assert_int_equal(QueryInt(db, "select count(*) from t"), 21);
  WaitFor([&] { return LastError(db).empty(); });  // a retried call's error clears on the next success
  assert_string_equal(LastError(db).c_str(), "");
  sqlite3_close(db);
}

void max_lag_refuses_writes_while_unacknowledged(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::string q = "nats=" + f->server->url() + "&role=primary&node=p1&max_lag_ms=300&name=lag1";
  sqlite3* db = Open(*f->dir / "lag.db", q);
  assert_int_equal(Exec(db, "create table t(x)"), SQLITE_OK);
  assert_int_equal(QueryInt(db, "select repl_wait(1, 30000)"), 1);
  f->server->Stop();
  assert_int_equal(Exec(db, "insert into t values(1)"), SQLITE_OK);  // async: returns at once
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  sqlite3_busy_timeout(db, 0);
  std::string err;
  // The refusal sets last_error; the agent's publish retries (every ~200 ms
  // while the server is down) set it too, and a loaded machine can run one
  // between the refusal and the read: each attempt is refused, and one of
  // them must be read back with the refusal's exact text.
  const std::string lag =
      "litejet: database \"lag1\": transaction 2 is unacknowledged for more than max_lag_ms=300; "
      "refusing new writes until JetStream catches up";
  std::string seen;
  WaitFor([&] {
    assert_int_equal(Exec(db, "insert into t values(2)", &err), SQLITE_BUSY);
    seen = LastError(db);
    return seen == lag;
  });
  assert_string_equal(seen.c_str(), lag.c_str());
  // Reads go on.
  assert_int_equal(QueryInt(db, "select count(*) from t"), 1);
  std::string rerr;
  assert_true(f->server->Restart(&rerr));
  assert_int_equal(QueryInt(db, "select repl_wait(2, 30000)"), 1);
  // The agent takes WAL_WRITE_LOCK for a moment after catching up (it empties
  // the spool): like any second writer, so wait for it as apps do.
  sqlite3_busy_timeout(db, 30000);
  assert_int_equal(Exec(db, "insert into t values(3)", &err), SQLITE_OK);
  sqlite3_close(db);
}

void second_primary_is_fenced(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::string q1 = "nats=" + f->server->url() + "&role=primary&node=p1&name=fence1";
  std::string q2 = "nats=" + f->server->url() + "&role=primary&node=p2&name=fence1";
  sqlite3* a = Open(*f->dir / "fa.db", q1);
  assert_int_equal(Exec(a, "create table t(x); insert into t values(1)"), SQLITE_OK);
  assert_int_equal(QueryInt(a, "select repl_wait(2, 30000)"), 1);
  // Another node claims to be primary of the same log with a database that
  // is behind it: it must not append.
  sqlite3* b = Open(*f->dir / "fb.db", q2);
  // Its agent looks at the log in the background: this local commit happens
  // before that (and never reaches the log), or is refused because the node
  // is already fenced (at the write lock: READONLY; during the commit: IOERR).
  std::string cerr;
  int rc = Exec(b, "create table t(x)", &cerr);
  std::printf("  create on the second primary: %d %s\n", rc, cerr.c_str());
  if (rc != SQLITE_OK) {
    assert_true(rc == SQLITE_READONLY || rc == SQLITE_IOERR);
    assert_int_equal(QueryInt(b, "select repl_is_primary()"), 0);
    assert_true(LastError(b).find("this node does not write") != std::string::npos ||
                LastError(b).find("no longer primary (fenced)") != std::string::npos);
    assert_int_equal(QueryInt(b, "select repl_position()"), 0);
    assert_int_equal(Exec(b, "create table t(x)"), SQLITE_READONLY);
    sqlite3_close(b);
    assert_int_equal(Exec(a, "insert into t values(3)"), SQLITE_OK);
    assert_int_equal(QueryInt(a, "select repl_wait(3, 30000)"), 1);
    sqlite3_close(a);
    return;
  }
  WaitFor([&] { return QueryInt(b, "select repl_is_primary()") == 0; });  // its agent reads the log: loaded machines
  assert_int_equal(QueryInt(b, "select repl_is_primary()"), 0);
  std::string err;
  assert_int_equal(Exec(b, "insert into t values(2)", &err), SQLITE_READONLY);
  // The first primary goes on appending.
  assert_int_equal(Exec(a, "insert into t values(3)"), SQLITE_OK);
  assert_int_equal(QueryInt(a, "select repl_wait(3, 30000)"), 1);
  sqlite3_close(b);
  sqlite3_close(a);
}

void replica_refuses_writes_and_names_the_primary(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::string base = "nats=" + f->server->url() + "&name=ro1";
  sqlite3* p = Open(*f->dir / "rop.db", base + "&role=primary&node=prim-7&advertise=http://prim-7:8080");
  assert_int_equal(Exec(p, "create table t(x); insert into t values(42)"), SQLITE_OK);
  assert_string_equal(QueryText(p, "select repl_primary()").c_str(), "http://prim-7:8080");
  sqlite3* r = Open(*f->dir / "ror.db", base + "&role=replica&node=rep-1");
  assert_int_equal(QueryInt(r, "select repl_wait(2, 30000)"), 1);
  assert_int_equal(QueryInt(r, "select x from t"), 42);
  assert_int_equal(QueryInt(r, "select repl_is_primary()"), 0);
  // The replica names the primary by its advertise value (carried in a header).
  assert_string_equal(QueryText(r, "select repl_primary()").c_str(), "http://prim-7:8080");
  assert_string_equal(QueryText(r, "select repl_checksum()").c_str(), QueryText(p, "select repl_checksum()").c_str());
  std::string err;
  assert_int_equal(Exec(r, "insert into t values(1)", &err), SQLITE_READONLY);
  assert_string_equal(err.c_str(), "attempt to write a readonly database");
  assert_string_equal(LastError(r).c_str(),
                      "litejet: database \"ro1\" is a replica: write on the primary http://prim-7:8080");
  // A checkpoint on the replica is allowed.
  assert_int_equal(Exec(r, "pragma wal_checkpoint(TRUNCATE)", &err), SQLITE_OK);
  assert_int_equal(QueryInt(r, "select repl_wait(2, 0)"), 1);
  assert_int_equal(QueryInt(r, "select repl_wait(3, 100)"), 0);
  sqlite3_close(r);
  sqlite3_close(p);
}

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(sync_commit_is_acknowledged_or_fails, Setup, Teardown),
      cmocka_unit_test_setup_teardown(max_lag_refuses_writes_while_unacknowledged, Setup, Teardown),
      cmocka_unit_test_setup_teardown(second_primary_is_fenced, Setup, Teardown),
      cmocka_unit_test_setup_teardown(replica_refuses_writes_and_names_the_primary, Setup, Teardown),
  };
  if (const char* f = std::getenv("LITEJET_TEST_FILTER")) cmocka_set_test_filter(f);
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
