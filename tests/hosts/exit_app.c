/* A C app on liblitejet.a that commits one row to a replicated database and
 * ends without closing it: `exit_app DB VALUE exit|return` (exit(0) or return
 * from main). Configuration from LITEJET_* in the environment. Driven by
 * tests/e2e/test_exit_without_close.py; prints "committed N" on stderr once
 * the commit returned and "pos N" on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "litejet.h"

static int fail(sqlite3* db, const char* what) {
  fprintf(stderr, "exit_app: %s: %s (extended code %d)\n", what, db ? sqlite3_errmsg(db) : "out of memory",
          db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM);
  return 2;
}

int main(int argc, char** argv) {
  if (argc != 4 || (strcmp(argv[3], "exit") != 0 && strcmp(argv[3], "return") != 0)) {
    fprintf(stderr, "usage: exit_app DB VALUE exit|return\n");
    return 2;
  }
  sqlite3* db = NULL;
  sqlite3_stmt* st = NULL;
  sqlite3_auto_extension((void (*)(void))sqlite3_litejet_init);
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
    return fail(db, "open");
  }
  sqlite3_busy_timeout(db, 5000);
  if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS t(v TEXT)", NULL, NULL, NULL) != SQLITE_OK) {
    return fail(db, "create");
  }
  if (sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?)", -1, &st, NULL) != SQLITE_OK) return fail(db, "prepare");
  sqlite3_bind_text(st, 1, argv[2], -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE) return fail(db, "insert");
  sqlite3_finalize(st);
  if (sqlite3_prepare_v2(db, "SELECT repl_position()", -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
    return fail(db, "repl_position");
  }
  long long pos = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  fprintf(stderr, "committed %lld\n", pos);
  printf("pos %lld\n", pos);
  fflush(stdout);
  /* The database stays open: no sqlite3_close. */
  if (strcmp(argv[3], "exit") == 0) exit(0);
  return 0;
}
