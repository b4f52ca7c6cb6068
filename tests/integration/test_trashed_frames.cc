// Bytes that change on their way to the WAL, and transactions too large to
// replicate, through a real SQLite: a shim VFS stacked on litejet (like
// SQLite's crash-simulation VFS) rewrites the header of a chosen commit
// frame. The commit is refused with a message that names the cause, the
// process lives, and the next honest transaction commits with the next TXID.
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
#include "wal-capture/sidecar.h"
#include "wal-capture/wal_format.h"

using namespace litejet;
using namespace litejet::test;

namespace {

// ---- the trashing VFS: forwards everything to litejet ---------------------

enum class Trash { kNone, kRandomHeader, kHugeSize, kMaxSize };
Trash g_trash = Trash::kNone;

struct TrashFile {
  sqlite3_file base;
  bool wal;
};
constexpr int kTrashHeader = (sizeof(TrashFile) + 7) & ~7;
sqlite3_vfs g_trash_vfs;
sqlite3_vfs* g_below = nullptr;

sqlite3_file* Below(sqlite3_file* f) {
  return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kTrashHeader);
}

int TClose(sqlite3_file* f) { return Below(f)->pMethods->xClose(Below(f)); }
int TRead(sqlite3_file* f, void* b, int n, sqlite3_int64 o) { return Below(f)->pMethods->xRead(Below(f), b, n, o); }
int TWrite(sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
  TrashFile* t = reinterpret_cast<TrashFile*>(f);
  if (t->wal && g_trash != Trash::kNone && n == wal::WAL_FRAME_HDRSIZE &&
      wal::Get4(static_cast<const char*>(b) + 4) != 0) {
    // A commit frame's header: trash it once.
    unsigned char h[wal::WAL_FRAME_HDRSIZE];
    std::memcpy(h, b, sizeof h);
    if (g_trash == Trash::kRandomHeader) {
      for (size_t i = 0; i < sizeof h; i++) h[i] = static_cast<unsigned char>(0x5a ^ (i * 37));
      wal::Put4(h + 4, 2122848170u);
    } else {
      wal::Put4(h + 4, g_trash == Trash::kHugeSize ? 2122848170u : 0xFFFFFFFFu);
    }
    g_trash = Trash::kNone;
    return Below(f)->pMethods->xWrite(Below(f), h, n, o);
  }
  return Below(f)->pMethods->xWrite(Below(f), b, n, o);
}
int TTruncate(sqlite3_file* f, sqlite3_int64 s) { return Below(f)->pMethods->xTruncate(Below(f), s); }
int TSync(sqlite3_file* f, int fl) { return Below(f)->pMethods->xSync(Below(f), fl); }
int TFileSize(sqlite3_file* f, sqlite3_int64* s) { return Below(f)->pMethods->xFileSize(Below(f), s); }
int TLock(sqlite3_file* f, int l) { return Below(f)->pMethods->xLock(Below(f), l); }
int TUnlock(sqlite3_file* f, int l) { return Below(f)->pMethods->xUnlock(Below(f), l); }
int TCheck(sqlite3_file* f, int* r) { return Below(f)->pMethods->xCheckReservedLock(Below(f), r); }
int TFcntl(sqlite3_file* f, int op, void* a) { return Below(f)->pMethods->xFileControl(Below(f), op, a); }
int TSector(sqlite3_file* f) { return Below(f)->pMethods->xSectorSize(Below(f)); }
int TDevice(sqlite3_file* f) { return Below(f)->pMethods->xDeviceCharacteristics(Below(f)); }
int TShmMap(sqlite3_file* f, int p, int sz, int e, void volatile** pp) {
  return Below(f)->pMethods->xShmMap(Below(f), p, sz, e, pp);
}
int TShmLock(sqlite3_file* f, int o, int n, int fl) { return Below(f)->pMethods->xShmLock(Below(f), o, n, fl); }
void TShmBarrier(sqlite3_file* f) { Below(f)->pMethods->xShmBarrier(Below(f)); }
int TShmUnmap(sqlite3_file* f, int d) { return Below(f)->pMethods->xShmUnmap(Below(f), d); }

const sqlite3_io_methods kTrashMethods = {2,        TClose,      TRead,     TWrite,  TTruncate, TSync,   TFileSize,
                                          TLock,    TUnlock,     TCheck,    TFcntl,  TSector,   TDevice, TShmMap,
                                          TShmLock, TShmBarrier, TShmUnmap, nullptr, nullptr};

int TOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out) {
  TrashFile* t = reinterpret_cast<TrashFile*>(f);
  std::memset(t, 0, sizeof *t);
  sqlite3_file* b = Below(f);
  int rc = g_below->xOpen(g_below, name, b, flags, out);
  if (b->pMethods == nullptr) return rc;
  t->wal = (flags & SQLITE_OPEN_WAL) != 0;
  t->base.pMethods = &kTrashMethods;
  return rc;
}
int TDelete(sqlite3_vfs*, const char* z, int s) { return g_below->xDelete(g_below, z, s); }
int TAccess(sqlite3_vfs*, const char* z, int fl, int* o) { return g_below->xAccess(g_below, z, fl, o); }
int TFull(sqlite3_vfs*, const char* z, int n, char* o) { return g_below->xFullPathname(g_below, z, n, o); }
int TRandom(sqlite3_vfs*, int n, char* z) { return g_below->xRandomness(g_below, n, z); }
int TSleep(sqlite3_vfs*, int us) { return g_below->xSleep(g_below, us); }
int TTime(sqlite3_vfs*, double* t) { return g_below->xCurrentTime(g_below, t); }
int TTime64(sqlite3_vfs*, sqlite3_int64* t) { return g_below->xCurrentTimeInt64(g_below, t); }

void RegisterTrashVfs() {
  if (g_below) return;
  g_below = sqlite3_vfs_find("litejet");
  if (!g_below) fail_msg("litejet VFS not registered");
  std::memset(&g_trash_vfs, 0, sizeof g_trash_vfs);
  g_trash_vfs.iVersion = 2;
  g_trash_vfs.szOsFile = kTrashHeader + g_below->szOsFile;
  g_trash_vfs.mxPathname = g_below->mxPathname;
  g_trash_vfs.zName = "trash";
  g_trash_vfs.xOpen = TOpen;
  g_trash_vfs.xDelete = TDelete;
  g_trash_vfs.xAccess = TAccess;
  g_trash_vfs.xFullPathname = TFull;
  g_trash_vfs.xRandomness = TRandom;
  g_trash_vfs.xSleep = TSleep;
  g_trash_vfs.xCurrentTime = TTime;
  g_trash_vfs.xCurrentTimeInt64 = TTime64;
  assert_int_equal(sqlite3_vfs_register(&g_trash_vfs, 0), SQLITE_OK);
}

// ---- helpers ---------------------------------------------------------------

void ExecOk(sqlite3* db, const std::string& sql) {
  std::string err;
  if (Exec(db, sql, &err) != SQLITE_OK) fail_msg("%s: %s", sql.c_str(), err.c_str());
}

std::string LastError(sqlite3* db) { return QueryText(db, "select json_extract(repl_status(), '$.last_error')"); }

// The refused transaction left nothing: no pending commit, no ring entry for
// the next TXID, and what the local log holds is exactly TXIDs 1..position.
void AssertNoTrace(const std::string& path, int64_t position) {
  sidecar::Sidecar sc;
  bool created = false;
  assert_true(sc.Open(path + "-litejet", &created).ok());
  assert_int_equal(sc.pending_txid(), 0);
  assert_int_equal(sc.Read().txid, position);
  sidecar::CommitEntry e;
  assert_false(sc.GetCommit(uint64_t(position) + 1, &e));
  std::vector<record::Txn> txns = ReadCaptured(path);
  assert_int_equal(txns.size(), position);
  for (size_t i = 0; i < txns.size(); i++) assert_int_equal(txns[i].txid, i + 1);
}

// Opens db through the trashing VFS, makes 3 commits, has the 4th commit's
// header trashed with `how`; returns the refusal's last_error.
std::string RefusedCommit(const TempDir& d, Trash how, const std::string& name) {
  RegisterTrashVfs();
  const std::string path = d / (name + ".db");
  sqlite3* db = OpenReplicated(path, "&name=" + name + "&vfs=trash");
  // The repl_* functions find litejet's file under the main schema: ask
  // through a second connection of the same engine, without the shim.
  sqlite3* ctl = OpenReplicated(path, "&name=" + name);
  ExecOk(db, "create table t(k integer primary key, v)");
  ExecOk(db, "insert into t values(1, 'a')");
  ExecOk(db, "insert into t values(2, 'b')");
  assert_int_equal(QueryInt(ctl, "select repl_position()"), 3);

  g_trash = how;
  std::string err;
  int rc = Exec(db, "insert into t values(3, 'trashed')", &err);
  assert_int_equal(g_trash, Trash::kNone);  // the trashing write happened
  assert_int_equal(rc & 0xff, SQLITE_IOERR);
  std::string why = LastError(ctl);
  // The process lives; the database and the position agree.
  assert_int_equal(QueryInt(ctl, "select repl_position()"), 3);
  assert_int_equal(QueryInt(db, "select count(*) from t"), 2);
  AssertNoTrace(path, 3);
  // The next honest transaction commits and gets the next TXID.
  ExecOk(db, "insert into t values(3, 'honest')");
  assert_int_equal(QueryInt(ctl, "select repl_position()"), 4);
  assert_string_equal(QueryText(db, "select v from t where k=3").c_str(), "honest");
  AssertNoTrace(path, 4);
  sqlite3_close(db);
  sqlite3_close(ctl);
  // After WAL recovery (a fresh open), SQLite sees what litejet recorded.
  sqlite3* plain = OpenPlain(path);
  assert_string_equal(QueryText(plain, "pragma integrity_check").c_str(), "ok");
  assert_int_equal(QueryInt(plain, "select count(*) from t"), 3);
  sqlite3_close(plain);
  return why;
}

// ---- tests -----------------------------------------------------------------

// The message with the frame number (which depends on the WAL's history)
// and the generation's salts (random) replaced by N and S.
std::string Generic(std::string m) {
  const std::string f = "WAL frame ";
  size_t at = m.find(f);
  if (at != std::string::npos) {
    size_t end = at + f.size();
    while (end < m.size() && m[end] >= '0' && m[end] <= '9') end++;
    m.replace(at + f.size(), end - at - f.size(), "N");
  }
  const std::string w = "its WAL (";
  at = m.find(w);
  if (at != std::string::npos && m.size() >= at + w.size() + 16) m.replace(at + w.size(), 16, "S");
  return m;
}

void trashed_commit_header_is_refused(void**) {
  TempDir d;
  std::string why = RefusedCommit(d, Trash::kRandomHeader, "trashed");
  char salts[17];
  unsigned char h[16];
  for (int i = 8; i < 16; i++) h[i] = static_cast<unsigned char>(0x5a ^ (i * 37));
  std::snprintf(salts, sizeof salts, "%08x%08x", wal::Get4(h + 8), wal::Get4(h + 12));
  assert_string_equal(Generic(why).c_str(),
                      ("litejet: capture: WAL frame N is written with salts " + std::string(salts) +
                       ", not those of its WAL (S); refused (the bytes were changed on their "
                       "way to the WAL)")
                          .c_str());
}

void commit_claiming_huge_database_is_refused(void**) {
  // Honest salts, a database size of 2,122,848,170 pages: the transaction
  // writes one page, so it cannot have grown that far.
  TempDir d;
  std::string why = RefusedCommit(d, Trash::kHugeSize, "huge");
  assert_string_equal(why.c_str(),
                      "litejet: TXID 4 on \"huge\" claims a database of 2122848170 pages, grown from 2 over "
                      "2122848168 pages it does not write (it writes 1): impossible, refused");
}

void commit_claiming_max_size_is_refused(void**) {
  TempDir d;
  std::string why = RefusedCommit(d, Trash::kMaxSize, "max");
  assert_string_equal(Generic(why).c_str(),
                      "litejet: capture: WAL frame N is written as a commit of page 2 with an impossible database "
                      "size of 4294967295 pages; refused (the bytes were changed on their way to the WAL)");
}

void transaction_over_the_limit_is_refused(void**) {
  // LITEJET_TEST_MAX_TXN_BYTES (set in main, read when the engine is made)
  // stands in for the 2 GiB limit.
  TempDir d;
  const std::string path = d / "big.db";
  sqlite3* db = OpenReplicated(path, "&name=big");
  ExecOk(db, "create table t(k integer primary key, v blob)");
  ExecOk(db, "insert into t values(1, randomblob(1000))");
  std::string err;
  int rc = Exec(db, "insert into t values(2, randomblob(2000000))", &err);
  assert_int_equal(rc & 0xff, SQLITE_IOERR);
  std::string why = LastError(db);
  const std::string head = "litejet: transaction of ";
  const std::string tail = " bytes on \"big\" exceeds the 1048576 bytes limit of one replicated transaction; split it";
  assert_true(why.compare(0, head.size(), head) == 0);
  assert_true(why.size() > head.size() + tail.size() && why.compare(why.size() - tail.size(), tail.size(), tail) == 0);
  const uint64_t bytes = std::strtoull(why.c_str() + head.size(), nullptr, 10);
  assert_true(bytes > 2000000 && bytes < 2200000);
  assert_int_equal(QueryInt(db, "select repl_position()"), 2);
  assert_int_equal(QueryInt(db, "select count(*) from t"), 1);
  AssertNoTrace(path, 2);
  ExecOk(db, "insert into t values(2, randomblob(100000))");
  assert_int_equal(QueryInt(db, "select repl_position()"), 3);
  AssertNoTrace(path, 3);
  sqlite3_close(db);
  sqlite3* plain = OpenPlain(path);
  assert_string_equal(QueryText(plain, "pragma integrity_check").c_str(), "ok");
  assert_int_equal(QueryInt(plain, "select count(*) from t"), 2);
  sqlite3_close(plain);
}

}  // namespace

int main() {
  setenv("LITEJET_TEST_MAX_TXN_BYTES", "1048576", 1);
  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init));
  sqlite3_initialize();
  sqlite3_litejet_init(nullptr, nullptr, nullptr);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(trashed_commit_header_is_refused),
      cmocka_unit_test(commit_claiming_huge_database_is_refused),
      cmocka_unit_test(commit_claiming_max_size_is_refused),
      cmocka_unit_test(transaction_over_the_limit_is_refused),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
