// Unit tests of write forwarding's layer (forward/forward.h): the request and
// reply codec (exact round trip, every truncation refused) and Execute()'s
// exactly-once: a retried id returns the recorded outcome and runs nothing.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {  // cmocka 1.1 declares its C functions without C linkage for C++
#include <cmocka.h>
}

#include <cmath>
#include <cstring>
#include <string>

#include "forward/forward.h"

using namespace litejet;

namespace {

forward::Request Sample() {
  forward::Request r;
  r.id = forward::NewId();
  r.sql = "INSERT INTO t VALUES (?, ?, ?, ?, ?)";
  forward::Value v;
  v.type = SQLITE_INTEGER;
  v.i = INT64_MIN;
  r.params.push_back(v);
  v = forward::Value();
  v.type = SQLITE_FLOAT;
  v.r = -0.0;
  r.params.push_back(v);
  v = forward::Value();
  v.type = SQLITE_TEXT;
  v.s = std::string("a\0b", 3);
  r.params.push_back(v);
  v = forward::Value();
  v.type = SQLITE_BLOB;
  v.s = "\xff\x00\x01";
  r.params.push_back(v);
  r.params.push_back(forward::Value());  // NULL
  return r;
}

void request_roundtrip_exact(void**) {
  forward::Request r = Sample(), back;
  assert_int_equal(r.id.size(), 32);
  assert_true(forward::Decode(forward::Encode(r), &back).ok());
  assert_string_equal(back.id.c_str(), r.id.c_str());
  assert_string_equal(back.sql.c_str(), r.sql.c_str());
  assert_int_equal(back.params.size(), 5);
  assert_true(back.params[0].i == INT64_MIN);
  assert_true(std::signbit(back.params[1].r));
  assert_true(back.params[2].s == std::string("a\0b", 3));
  assert_int_equal(back.params[3].type, SQLITE_BLOB);
  assert_int_equal(back.params[4].type, SQLITE_NULL);
}

void every_truncation_refused(void**) {
  const std::string enc = forward::Encode(Sample());
  for (size_t n = 0; n < enc.size(); n++) {
    forward::Request back;
    Status s = forward::Decode(enc.substr(0, n), &back);
    assert_false(s.ok());
    assert_int_equal(s.code(), SQLITE_PROTOCOL);
    assert_non_null(std::strstr(s.message().c_str(), "litejet: forwarded request is malformed"));
  }
  forward::Reply rep, rb;
  rep.code = 2067;
  rep.message = "UNIQUE constraint failed: t.v";
  rep.txid = 7;
  rep.changes = -1;
  rep.last_rowid = INT64_MAX;
  rep.duplicate = true;
  rep.node = "n1";
  const std::string re = forward::Encode(rep);
  assert_true(forward::Decode(re, &rb).ok());
  assert_int_equal(rb.code, 2067);
  assert_true(rb.duplicate && !rb.not_primary);
  assert_true(rb.changes == -1 && rb.last_rowid == INT64_MAX && rb.txid == 7);
  for (size_t n = 0; n < re.size(); n++) assert_false(forward::Decode(re.substr(0, n), &rb).ok());
  assert_false(forward::Decode(re + "x", &rb).ok());
}

int Commits(void* p) {
  ++*static_cast<uint64_t*>(p);
  return 0;
}

void execute_once_per_id(void**) {
  sqlite3* db = nullptr;
  assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
  uint64_t txid = 0;
  sqlite3_commit_hook(db, Commits, &txid);
  assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)", nullptr, nullptr, nullptr),
                   SQLITE_OK);
  auto pos = [&] { return txid; };
  forward::Request r;
  r.id = "id-1";
  r.sql = "INSERT INTO t(v) VALUES (?)";
  forward::Value v;
  v.type = SQLITE_TEXT;
  v.s = "x";
  r.params.push_back(v);
  forward::Reply a = forward::Execute(db, r, pos, true, 1000);
  assert_int_equal(a.code, SQLITE_OK);
  assert_int_equal(a.txid, 2);
  assert_int_equal(a.changes, 1);
  assert_int_equal(a.last_rowid, 1);
  assert_false(a.duplicate);
  // The retry: the recorded outcome, nothing runs (a second run would fail
  // the UNIQUE constraint), no transaction.
  forward::Reply b = forward::Execute(db, r, pos, true, 2000);
  assert_int_equal(b.code, SQLITE_OK);
  assert_true(b.duplicate);
  assert_int_equal(b.txid, 2);
  assert_int_equal(b.last_rowid, 1);
  assert_int_equal(txid, 2);
  // Another id with the same statement: runs, fails exactly, records nothing.
  r.id = "id-2";
  forward::Reply c = forward::Execute(db, r, pos, true, 3000);
  assert_int_equal(c.code, SQLITE_CONSTRAINT_UNIQUE);
  assert_string_equal(c.message.c_str(), "UNIQUE constraint failed: t.v");
  sqlite3_stmt* st = nullptr;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM _litejet_forward", -1, &st, nullptr), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 1);
  sqlite3_finalize(st);
  // Ids past the window are forgotten by later writes.
  r.id = "id-3";
  r.params[0].s = "y";
  forward::Reply d = forward::Execute(db, r, pos, true, 1000 + forward::kDedupeWindowMs + 1);
  assert_int_equal(d.code, SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(id) FROM _litejet_forward", -1, &st, nullptr),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "id-3");
  sqlite3_finalize(st);
  // Refusals, before any lock.
  r.sql = "SELECT 1";
  r.params.clear();
  forward::Reply e = forward::Execute(db, r, pos, true, 5000);
  assert_int_equal(e.code, SQLITE_ERROR);
  assert_string_equal(e.message.c_str(), "repl_exec: the statement does not write (run reads locally)");
  r.sql = "   ";
  e = forward::Execute(db, r, pos, true, 5000);
  assert_string_equal(e.message.c_str(), "repl_exec: no SQL statement given");
  r.sql = "DELETE FROM t; DELETE FROM t";
  e = forward::Execute(db, r, pos, true, 5000);
  assert_string_equal(e.message.c_str(), "repl_exec runs exactly one statement; more follow the first");
  r.sql = "DELETE FROM nope";
  e = forward::Execute(db, r, pos, true, 5000);
  assert_string_equal(e.message.c_str(), "no such table: nope");
  assert_int_equal(txid, 3);
  sqlite3_close(db);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(request_roundtrip_exact),
      cmocka_unit_test(every_truncation_refused),
      cmocka_unit_test(execute_once_per_id),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
