/* A plain C app linking liblitejet.a the way include/litejet.h says to:
 * sqlite3_auto_extension(sqlite3_litejet_init), then a replicated URI open. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, unsetenv */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "litejet.h"

static int g_passed, g_failed;

static void check(int cond, const char* name, const char* fmt, ...) {
  if (cond) {
    g_passed++;
    printf("ok - %s\n", name);
    return;
  }
  g_failed++;
  printf("FAIL - %s: ", name);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

/* The first column of the first row of sql as an integer; -1 on error. */
static sqlite3_int64 query_int(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = NULL;
  sqlite3_int64 v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    v = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return v;
}

/* The first column as text into out; the error message instead on failure. */
static int query_text(sqlite3* db, const char* sql, char* out, size_t n) {
  sqlite3_stmt* st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    snprintf(out, n, "%s", t ? (const char*)t : "NULL");
    rc = SQLITE_OK;
  } else {
    snprintf(out, n, "%s", sqlite3_errmsg(db));
    if (rc == SQLITE_DONE) rc = SQLITE_ERROR;
  }
  sqlite3_finalize(st);
  return rc;
}

static int exec(sqlite3* db, const char* sql) {
  char* err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) printf("    %s: %s\n", sql, err ? err : sqlite3_errstr(rc));
  sqlite3_free(err);
  return rc;
}

static int is_hex16(const char* s) {
  if (strlen(s) != 16) return 0;
  for (; *s; s++) {
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
  }
  return 1;
}

int main(void) {
  const char* tmp = getenv("TMPDIR");
  char dir[256];
  char path[512], uri[1024], text[512];
  sqlite3* db = NULL;
  int rc;

  /* Hermetic: no configuration from the caller's environment. */
  unsetenv("LITEJET_NATS_URL");
  unsetenv("LITEJET_ROLE");
  unsetenv("LITEJET_NAME");

  snprintf(dir, sizeof dir, "%s/litejet-c-app-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }

  /* Linked statically, litejet is the default VFS before main() runs. */
  check(sqlite3_vfs_find(NULL) != NULL && strcmp(sqlite3_vfs_find(NULL)->zName, LITEJET_VFS_NAME) == 0,
        "litejet is the default vfs", "default is \"%s\"", sqlite3_vfs_find(NULL)->zName);
  rc = sqlite3_auto_extension((void (*)(void))sqlite3_litejet_init);
  check(rc == SQLITE_OK, "sqlite3_auto_extension", "rc %d", rc);
  check(strcmp(litejet_version(), LITEJET_VERSION) == 0, "litejet_version", "\"%s\"", litejet_version());

  snprintf(path, sizeof path, "%s/app.db", dir);
  snprintf(uri, sizeof uri, "file:%s?nats=nats://127.0.0.1:1&role=primary&node=c-app", path);
  rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
  check(rc == SQLITE_OK, "open a replicated database by URI", "%s", sqlite3_errmsg(db));
  if (rc != SQLITE_OK) goto done;
  {
    sqlite3_vfs* vfs = NULL;
    sqlite3_file_control(db, "main", SQLITE_FCNTL_VFS_POINTER, &vfs);
    check(vfs && strcmp(vfs->zName, "litejet") == 0, "the database is on the litejet vfs", "%s",
          vfs ? vfs->zName : "(none)");
  }
  query_text(db, "PRAGMA journal_mode", text, sizeof text);
  check(strcmp(text, "wal") == 0, "journal_mode is wal", "\"%s\"", text);

  rc = exec(db, "CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB)");
  rc |= exec(db, "INSERT INTO kv VALUES ('a', randomblob(50000))");
  rc |= exec(db, "BEGIN; INSERT INTO kv VALUES ('b', 1); INSERT INTO kv VALUES ('c', 2); COMMIT");
  check(rc == SQLITE_OK, "writes succeed", "rc %d", rc);
  sqlite3_int64 pos = query_int(db, "SELECT repl_position()");
  check(pos == 3, "repl_position counts 3 write transactions", "got %lld", (long long)pos);
  check(query_int(db, "SELECT repl_is_primary()") == 1, "repl_is_primary", "not 1");
  query_text(db, "SELECT repl_primary()", text, sizeof text);
  check(strcmp(text, "c-app") == 0, "repl_primary defaults to the node id", "\"%s\"", text);
  query_text(db, "SELECT repl_checksum()", text, sizeof text);
  check(is_hex16(text), "repl_checksum is 16 hex digits", "\"%s\"", text);
  rc = query_text(db, "SELECT repl_wait('x')", text, sizeof text);
  check(rc != SQLITE_OK && strcmp(text, "repl_wait: txid must be an integer") == 0,
        "a wrong argument type names the function", "\"%s\"", text);
  sqlite3_close(db);
  db = NULL;

  snprintf(uri, sizeof uri, "%s-litejet", path);
  check(access(uri, F_OK) == 0, "sidecar exists", "%s missing", uri);

  /* Without a nats URL the same file name pattern is a pass-through. */
  snprintf(path, sizeof path, "%s/plain.db", dir);
  rc = sqlite3_open(path, &db);
  check(rc == SQLITE_OK, "open a plain database", "%s", sqlite3_errmsg(db));
  exec(db, "CREATE TABLE t(x)");
  rc = query_text(db, "SELECT repl_position()", text, sizeof text);
  check(rc != SQLITE_OK && strstr(text, "not replicated") != NULL, "plain database is not replicated", "\"%s\"", text);
  sqlite3_close(db);
  db = NULL;

  /* A bad value fails the open with a message naming the parameter. */
  snprintf(uri, sizeof uri, "file:%s/bad.db?nats=nats://127.0.0.1:1&role=boss", dir);
  rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
  check(rc == SQLITE_ERROR &&
            strcmp(sqlite3_errmsg(db),
                   "automatic extension loading failed: litejet: role \"boss\" is invalid: use auto, primary or "
                   "replica") == 0,
        "bad role fails the open", "rc %d: %s", rc, sqlite3_errmsg(db));

done:
  sqlite3_close(db);
  snprintf(text, sizeof text, "rm -rf '%s'", dir);
  if (system(text) != 0) printf("warning: could not remove %s\n", dir);
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 && g_passed > 0 ? 0 : 1;
}
