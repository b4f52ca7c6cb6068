// Proves the litejet VFS is a transparent pass-through when no nats URL is set:
// the same deterministic workload run through "unix" and through "litejet"
// leaves byte-identical database files (WAL, mmap, rollback journals, two
// connections, temp files), and litejet is the process's default VFS.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "litejet.h"

// cmocka comes last: its fail() macro would break <ios>, and it needs the
// three C headers just below. cmocka 1.1.5's header has no extern "C"
// guards, so add them for C++.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
extern "C" {
#include <cmocka.h>
}

namespace fs = std::filesystem;

namespace {

// Fixed so a failure reproduces; LITEJET_TEST_SEED overrides it.
constexpr uint64_t kDefaultSeed = 0x6c6974656a6574ULL;

uint64_t Seed() {
  const char* s = getenv("LITEJET_TEST_SEED");
  return s && *s ? strtoull(s, nullptr, 0) : kDefaultSeed;
}

bool Verbose() {
  const char* v = getenv("LITEJET_TEST_VERBOSE");
  return v && *v && strcmp(v, "0") != 0;
}

// splitmix64: same sequence on every platform, unlike <random>'s distributions.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
  int64_t Range(int64_t lo, int64_t hi) { return lo + int64_t(Below(uint64_t(hi - lo + 1))); }
};

// ---- the workload ----------------------------------------------------------

struct Param {
  enum Type { kInt, kText, kBlob } type;
  int64_t i = 0;
  std::string bytes;
};

// One statement, run on connection `conn` (0 or 1). Rows it returns go to the
// transcript, so reads are compared between the two runs too.
struct Op {
  int conn = 0;
  std::string sql;
  std::vector<Param> params;
};

Param Int(int64_t v) { return Param{Param::kInt, v, {}}; }
Param Text(std::string v) { return Param{Param::kText, 0, std::move(v)}; }

Param RandomBlob(Rng& r) {
  // Mostly small rows; a quarter need overflow pages (> ~4061 bytes on a 4096
  // page), a few span dozens of them.
  uint64_t pick = r.Below(100);
  int64_t n = pick < 40   ? r.Range(0, 200)
              : pick < 70 ? r.Range(200, 3000)
              : pick < 95 ? r.Range(3000, 30000)
                          : r.Range(30000, 300000);
  Param p{Param::kBlob, 0, std::string(size_t(n), '\0')};
  for (auto& c : p.bytes) c = char(r.Next());
  return p;
}

std::string RandomText(Rng& r) {
  std::string s;
  int64_t n = r.Range(1, 60);
  for (int64_t i = 0; i < n; i++) s += char('a' + r.Below(26));
  return s;
}

// Reads that summarise the whole database into the transcript.
void AddChecks(std::vector<Op>* ops, int conn) {
  ops->push_back({conn, "SELECT count(*), total(length(v)), total(k), total(length(s)) FROM t1", {}});
  ops->push_back({conn, "SELECT id, k, length(v), substr(hex(v), 1, 24), s FROM t1 ORDER BY id", {}});
  ops->push_back({conn, "SELECT a, length(b), substr(hex(b), 1, 24) FROM t2 ORDER BY a", {}});
  ops->push_back({conn, "PRAGMA integrity_check", {}});
}

void AddWrite(Rng& r, std::vector<Op>* ops, int conn) {
  switch (r.Below(7)) {
    case 0:
    case 1:
    case 2:
      ops->push_back({conn,
                      "INSERT INTO t1(k, v, s) VALUES (?, ?, ?)",
                      {Int(r.Range(0, 999)), RandomBlob(r), Text(RandomText(r))}});
      break;
    case 3:
      ops->push_back({conn,
                      "UPDATE t1 SET v = ?, k = k + 1 WHERE id = (SELECT id FROM t1 ORDER BY id LIMIT 1 OFFSET ?)",
                      {RandomBlob(r), Int(r.Range(0, 40))}});
      break;
    case 4: {
      int64_t lo = r.Range(0, 999);
      ops->push_back({conn, "DELETE FROM t1 WHERE k BETWEEN ? AND ?", {Int(lo), Int(lo + r.Range(0, 30))}});
      break;
    }
    case 5:
      ops->push_back(
          {conn, "INSERT OR REPLACE INTO t2(a, b) VALUES (?, ?)", {Text(RandomText(r).substr(0, 3)), RandomBlob(r)}});
      break;
    default:
      ops->push_back({conn, "DELETE FROM t2 WHERE a < ?", {Text(RandomText(r).substr(0, 1))}});
      break;
  }
}

const char* const kSchema[] = {
    "CREATE TABLE t1(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v BLOB, s TEXT)",
    "CREATE INDEX t1_k ON t1(k)",
    "CREATE TABLE t2(a TEXT PRIMARY KEY, b BLOB) WITHOUT ROWID",
    "CREATE INDEX t2_len ON t2(length(b))",
};

// One connection: transactions, autocommit writes, a rollback, checkpoints,
// index churn, a mass delete and a VACUUM.
std::vector<Op> SingleConnectionWorkload(uint64_t seed) {
  Rng r{seed};
  std::vector<Op> ops;
  for (const char* s : kSchema) ops.push_back({0, s, {}});
  for (int round = 0; round < 60; round++) {
    uint64_t kind = r.Below(10);
    if (kind < 3) {
      AddWrite(r, &ops, 0);  // autocommit
    } else {
      ops.push_back({0, "BEGIN", {}});
      for (int64_t n = r.Range(2, 9); n > 0; n--) AddWrite(r, &ops, 0);
      ops.push_back({0, kind == 9 ? "ROLLBACK" : "COMMIT", {}});
    }
    if (round == 15 || round == 45) ops.push_back({0, "PRAGMA wal_checkpoint(PASSIVE)", {}});
    if (round == 25) {
      ops.push_back({0, "DROP INDEX t1_k", {}});
      ops.push_back({0, "CREATE INDEX t1_ks ON t1(k, s)", {}});
    }
    if (round == 30) {
      ops.push_back({0, "DELETE FROM t1 WHERE id % 3 != 0", {}});
      AddChecks(&ops, 0);
      ops.push_back({0, "VACUUM", {}});
    }
    if (round % 20 == 19) AddChecks(&ops, 0);
  }
  AddChecks(&ops, 0);
  return ops;
}

// Two connections: interleaved write transactions, a reader whose snapshot must
// survive the other's commits, and a checkpoint held back by that reader.
std::vector<Op> TwoConnectionWorkload(uint64_t seed) {
  Rng r{seed ^ 0x2c0};
  std::vector<Op> ops;
  for (const char* s : kSchema) ops.push_back({0, s, {}});
  for (int round = 0; round < 40; round++) {
    int w = int(r.Below(2)), rd = 1 - w;
    ops.push_back({w, "BEGIN", {}});
    for (int64_t n = r.Range(1, 6); n > 0; n--) AddWrite(r, &ops, w);
    // The other connection reads while the write transaction is open: it must
    // see the last committed state.
    ops.push_back({rd, "SELECT count(*), total(length(v)) FROM t1", {}});
    ops.push_back({w, "COMMIT", {}});
    ops.push_back({rd, "SELECT count(*), total(length(v)) FROM t1", {}});
    if (round % 8 == 3) {
      // rd pins a snapshot across w's commit and a checkpoint.
      ops.push_back({rd, "BEGIN", {}});
      ops.push_back({rd, "SELECT count(*), total(length(v)), max(id) FROM t1", {}});
      AddWrite(r, &ops, w);
      AddWrite(r, &ops, w);
      ops.push_back({w, "PRAGMA wal_checkpoint(PASSIVE)", {}});
      ops.push_back({rd, "SELECT count(*), total(length(v)), max(id) FROM t1", {}});
      ops.push_back({rd, "COMMIT", {}});
      ops.push_back({rd, "SELECT count(*), total(length(v)), max(id) FROM t1", {}});
    }
    if (round % 10 == 9) AddChecks(&ops, int(r.Below(2)));
  }
  AddChecks(&ops, 0);
  AddChecks(&ops, 1);
  return ops;
}

// Many rows through a sorter and a temp table with a tiny page cache, so the
// sorter and the temp database spill to temp files.
std::vector<Op> TempStoreWorkload() {
  std::vector<Op> ops;
  const char* sql[] = {
      "PRAGMA temp_store = FILE",
      "PRAGMA main.cache_size = 16",
      "PRAGMA temp.cache_size = 16",
      "CREATE TABLE big(id INTEGER PRIMARY KEY, k INTEGER, s TEXT)",
      "CREATE TEMP TABLE tt(a INTEGER, b INTEGER, c TEXT)",
      "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 150000) "
      "INSERT INTO temp.tt SELECT x, (x * 7919) % 100003, printf('%08x', (x * 2654435761) % 4294967296) || "
      "substr(hex(zeroblob(60)), 1, x % 97) FROM n",
      "SELECT count(*), total(b), total(length(c)) FROM temp.tt",
      "CREATE INDEX temp.tt_c ON tt(c, a)",
      "INSERT INTO big(k, s) SELECT b, c FROM temp.tt ORDER BY c DESC, a",
      "CREATE INDEX big_s ON big(s, k)",
      "SELECT count(*), total(k), min(s), max(s) FROM big",
      // The ordering survived the spill: rowid order is the sort order.
      "SELECT count(*) FROM big AS x JOIN big AS y ON y.id = x.id + 1 WHERE y.s > x.s",
      "SELECT group_concat(k, ',') FROM (SELECT k FROM big ORDER BY s, k LIMIT 50)",
      "SELECT count(DISTINCT s), count(DISTINCT k) FROM big",
      "DROP TABLE temp.tt",
      "PRAGMA integrity_check",
  };
  for (const char* s : sql) ops.push_back({0, s, {}});
  return ops;
}

// ---- running it --------------------------------------------------------------

std::string Describe(const Op& op) {
  std::string d = "[" + std::to_string(op.conn) + "] " + op.sql;
  for (const Param& p : op.params) {
    if (p.type == Param::kInt) d += " | " + std::to_string(p.i);
    if (p.type == Param::kText) d += " | '" + p.bytes + "'";
    if (p.type == Param::kBlob) d += " | blob(" + std::to_string(p.bytes.size()) + ")";
  }
  return d;
}

void PrintWorkload(const char* name, uint64_t seed, const std::vector<Op>& ops) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a over the descriptions
  for (const Op& op : ops) {
    for (unsigned char c : Describe(op)) h = (h ^ c) * 1099511628211ULL;
  }
  printf("# %s: seed 0x%" PRIx64 ", %zu statements, sequence hash %016" PRIx64 " (LITEJET_TEST_VERBOSE=1 lists them)\n",
         name, seed, ops.size(), h);
  if (Verbose()) {
    for (const Op& op : ops) printf("#   %s\n", Describe(op).c_str());
  }
}

std::string QueryText(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  if (rc != SQLITE_OK) {
    print_error("%s: %s\n", sql.c_str(), sqlite3_errmsg(db));
    fail();
  }
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(st, 0);
    out = t ? reinterpret_cast<const char*>(t) : "NULL";
  }
  sqlite3_finalize(st);
  return out;
}

// Runs one statement, appending its rows (one line each) to the transcript.
void RunOp(sqlite3* db, const Op& op, std::vector<std::string>* transcript) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, op.sql.c_str(), -1, &st, nullptr);
  if (rc != SQLITE_OK) {
    print_error("prepare %s: %s\n", Describe(op).c_str(), sqlite3_errmsg(db));
    fail();
  }
  int i = 1;
  for (const Param& p : op.params) {
    if (p.type == Param::kInt) rc = sqlite3_bind_int64(st, i, p.i);
    if (p.type == Param::kText) rc = sqlite3_bind_text(st, i, p.bytes.data(), int(p.bytes.size()), SQLITE_STATIC);
    if (p.type == Param::kBlob) rc = sqlite3_bind_blob(st, i, p.bytes.data(), int(p.bytes.size()), SQLITE_STATIC);
    assert_int_equal(rc, SQLITE_OK);
    i++;
  }
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    std::string row = "[" + std::to_string(op.conn) + "]";
    for (int c = 0; c < sqlite3_column_count(st); c++) {
      const unsigned char* t = sqlite3_column_text(st, c);
      row += " ";
      row += t ? reinterpret_cast<const char*>(t) : "NULL";
    }
    transcript->push_back(row);
  }
  if (rc != SQLITE_DONE) {
    print_error("step %s: %s\n", Describe(op).c_str(), sqlite3_errmsg(db));
    sqlite3_finalize(st);
    fail();
  }
  sqlite3_finalize(st);
}

struct Mode {
  const char* name;
  std::vector<std::string> pragmas;  // run on each connection right after open
  int connections = 1;
  bool uses_temp = false;  // the workload opens the temp database
};

// What one run leaves behind, compared field by field between the two VFSes.
struct Outcome {
  std::string vfs_of_main;  // SQLITE_FCNTL_VFS_POINTER of "main"
  std::string vfs_of_temp;  // ... of "temp" (the temp store's files)
  std::vector<std::string> transcript;
  int64_t wal_before_close = -1;  // -1: absent
  int64_t shm_before_close = -1;
  int64_t journal_before_close = -1;
  int64_t wal_after_close = -1;
  int64_t journal_after_close = -1;
  std::string db_before_close;  // only when a TRUNCATE checkpoint ran
  std::string db;               // the whole database file after closing
  std::vector<std::string> files;
};

int64_t SizeOf(const std::string& path) {
  struct stat sb;
  return stat(path.c_str(), &sb) == 0 ? int64_t(sb.st_size) : -1;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string VfsOf(sqlite3* db, const char* schema) {
  sqlite3_vfs* v = nullptr;
  if (sqlite3_file_control(db, schema, SQLITE_FCNTL_VFS_POINTER, &v) != SQLITE_OK || !v) return "?";
  return v->zName;
}

Outcome Run(const std::string& dir, const char* vfs, const Mode& mode, const std::vector<Op>& ops,
            bool truncate_at_end) {
  const std::string path = dir + "/" + vfs + ".db";
  Outcome o;
  sqlite3* db[2] = {nullptr, nullptr};
  for (int c = 0; c < mode.connections; c++) {
    int rc = sqlite3_open_v2(path.c_str(), &db[c], SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    if (rc != SQLITE_OK) {
      print_error("open %s with vfs %s: %s\n", path.c_str(), vfs, sqlite3_errmsg(db[c]));
      fail();
    }
    for (const std::string& p : mode.pragmas) RunOp(db[c], Op{c, p, {}}, &o.transcript);
  }
  o.vfs_of_main = VfsOf(db[0], "main");
  for (const Op& op : ops) RunOp(db[op.conn], op, &o.transcript);
  o.vfs_of_temp = VfsOf(db[0], "temp");
  if (truncate_at_end) {
    RunOp(db[0], Op{0, "PRAGMA wal_checkpoint(TRUNCATE)", {}}, &o.transcript);
    o.db_before_close = Slurp(path);
  }
  o.wal_before_close = SizeOf(path + "-wal");
  o.shm_before_close = SizeOf(path + "-shm");
  o.journal_before_close = SizeOf(path + "-journal");
  for (int c = mode.connections - 1; c >= 0; c--) assert_int_equal(sqlite3_close(db[c]), SQLITE_OK);
  o.wal_after_close = SizeOf(path + "-wal");
  o.journal_after_close = SizeOf(path + "-journal");
  o.db = Slurp(path);
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind(std::string(vfs) + ".db", 0) == 0) o.files.push_back(n.substr(strlen(vfs)));  // suffix only
  }
  std::sort(o.files.begin(), o.files.end());
  return o;
}

// Fails with the first differing byte, its page and (for the header) field.
void AssertSameBytes(const char* what, const std::string& a, const std::string& b) {
  if (a == b) return;
  print_error("%s: unix file is %zu bytes, litejet file is %zu bytes\n", what, a.size(), b.size());
  size_t n = std::min(a.size(), b.size());
  size_t page = a.size() >= 18 ? (size_t(uint8_t(a[16])) << 8 | uint8_t(a[17])) : 4096;
  if (page == 1) page = 65536;
  for (size_t i = 0; i < n; i++) {
    if (a[i] != b[i]) {
      print_error("%s: first difference at offset %zu (page %zu, byte %zu): unix %02x, litejet %02x%s\n", what, i,
                  i / page + 1, i % page, uint8_t(a[i]), uint8_t(b[i]), i < 100 ? " (in the database header)" : "");
      break;
    }
  }
  fail();
}

void AssertSameTranscript(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; i++) {
    if (a[i] != b[i]) {
      print_error("result row %zu differs:\n  unix:    %.300s\n  litejet: %.300s\n", i, a[i].c_str(), b[i].c_str());
      fail();
    }
  }
  assert_int_equal(a.size(), b.size());
}

struct Fixture {
  std::string dir;
};

int Setup(void** state) {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/litejet-passthrough-XXXXXX";
  if (!mkdtemp(tmpl.data())) return -1;
  *state = new Fixture{tmpl};
  return 0;
}

int Teardown(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  std::error_code ec;
  fs::remove_all(f->dir, ec);
  delete f;
  return 0;
}

// Runs ops through both VFSes and asserts every observable outcome is equal.
void Compare(void** state, const Mode& mode, uint64_t seed, const std::vector<Op>& ops, bool truncate_at_end) {
  const std::string& dir = static_cast<Fixture*>(*state)->dir;
  PrintWorkload(mode.name, seed, ops);
  Outcome u = Run(dir, "unix", mode, ops, truncate_at_end);
  Outcome l = Run(dir, "litejet", mode, ops, truncate_at_end);
  printf("#   unix: db %zu bytes, -wal %" PRId64 ", -shm %" PRId64 ", -journal %" PRId64
         " before close; %zu result rows\n",
         u.db.size(), u.wal_before_close, u.shm_before_close, u.journal_before_close, u.transcript.size());
  printf("#   litejet: db %zu bytes, -wal %" PRId64 ", -shm %" PRId64 ", -journal %" PRId64
         " before close; %zu result rows\n",
         l.db.size(), l.wal_before_close, l.shm_before_close, l.journal_before_close, l.transcript.size());

  assert_string_equal(u.vfs_of_main.c_str(), "unix");
  assert_string_equal(l.vfs_of_main.c_str(), "litejet");
  if (mode.uses_temp) {
    assert_string_equal(u.vfs_of_temp.c_str(), "unix");
    assert_string_equal(l.vfs_of_temp.c_str(), "litejet");
  }

  AssertSameTranscript(u.transcript, l.transcript);
  assert_int_equal(u.wal_before_close, l.wal_before_close);
  assert_int_equal(u.shm_before_close, l.shm_before_close);
  assert_int_equal(u.journal_before_close, l.journal_before_close);
  assert_int_equal(u.wal_after_close, l.wal_after_close);
  assert_int_equal(u.journal_after_close, l.journal_after_close);
  if (truncate_at_end) {
    assert_int_equal(l.wal_before_close, 0);  // TRUNCATE leaves an empty WAL
    AssertSameBytes("database file after wal_checkpoint(TRUNCATE), still open", u.db_before_close, l.db_before_close);
  }
  AssertSameBytes("database file after close", u.db, l.db);
  assert_true(u.db.size() > 100 * 1024);  // the workload really wrote something

  // Pass-through: no replication sidecar, spool or any other extra file.
  assert_int_equal(u.files.size(), l.files.size());
  for (size_t i = 0; i < u.files.size(); i++) assert_string_equal(u.files[i].c_str(), l.files[i].c_str());
}

// ---- tests -----------------------------------------------------------------

void litejet_is_the_default_vfs(void**) {
  sqlite3_vfs* def = sqlite3_vfs_find(nullptr);
  assert_non_null(def);
  assert_string_equal(def->zName, LITEJET_VFS_NAME);
  assert_ptr_equal(sqlite3_vfs_find("litejet"), def);
  assert_non_null(sqlite3_vfs_find("unix"));
  assert_ptr_not_equal(sqlite3_vfs_find("unix"), def);

  // A connection opened without naming a VFS lands on litejet.
  sqlite3* db = nullptr;
  assert_int_equal(sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/litejet-default-XXXXXX";
  int fd = mkstemp(tmpl.data());
  assert_true(fd >= 0);
  close(fd);
  const char* path = tmpl.c_str();
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_string_equal(VfsOf(db, "main").c_str(), "litejet");
  // The SQL functions came with the auto extension; this file is not replicated.
  char* err = nullptr;
  assert_int_not_equal(sqlite3_exec(db, "SELECT repl_position()", nullptr, nullptr, &err), SQLITE_OK);
  assert_non_null(err);
  assert_non_null(strstr(err, "not replicated"));
  sqlite3_free(err);
  sqlite3_close(db);
  unlink(path);
  assert_string_equal(litejet_version(), LITEJET_VERSION);
}

void wal_truncate_checkpoint_same_bytes(void** state) {
  Mode m{"wal", {"PRAGMA journal_mode = WAL"}};
  Compare(state, m, Seed(), SingleConnectionWorkload(Seed()), true);
}

void wal_mmap_same_bytes(void** state) {
  Mode m{"wal+mmap", {"PRAGMA mmap_size = 268435456", "PRAGMA journal_mode = WAL"}};
  Compare(state, m, Seed() + 1, SingleConnectionWorkload(Seed() + 1), false);
}

void wal_exclusive_locking_same_bytes(void** state) {
  // No shm file: the wal-index lives in heap memory.
  Mode m{"wal+exclusive", {"PRAGMA locking_mode = EXCLUSIVE", "PRAGMA journal_mode = WAL"}};
  Compare(state, m, Seed() + 2, SingleConnectionWorkload(Seed() + 2), false);
}

void rollback_delete_same_bytes(void** state) {
  Mode m{"journal_mode=DELETE", {"PRAGMA journal_mode = DELETE"}};
  Compare(state, m, Seed() + 3, SingleConnectionWorkload(Seed() + 3), false);
}

void rollback_truncate_same_bytes(void** state) {
  Mode m{"journal_mode=TRUNCATE", {"PRAGMA journal_mode = TRUNCATE"}};
  Compare(state, m, Seed() + 4, SingleConnectionWorkload(Seed() + 4), false);
}

void rollback_persist_same_bytes(void** state) {
  Mode m{"journal_mode=PERSIST", {"PRAGMA journal_mode = PERSIST"}};
  Compare(state, m, Seed() + 5, SingleConnectionWorkload(Seed() + 5), false);
}

void two_connections_wal_same_bytes(void** state) {
  Mode m{"two connections, wal", {"PRAGMA journal_mode = WAL"}, 2};
  Compare(state, m, Seed(), TwoConnectionWorkload(Seed()), true);
}

void temp_store_file_same_bytes(void** state) {
  Mode m{"temp_store=FILE", {"PRAGMA journal_mode = WAL"}, 1, true};
  std::vector<Op> ops = TempStoreWorkload();
  Compare(state, m, 0, ops, true);  // seed 0: fixed SQL, nothing random
  // The results themselves are right, not merely equal between the runs.
  const std::string& dir = static_cast<Fixture*>(*state)->dir;
  sqlite3* db = nullptr;
  assert_int_equal(sqlite3_open_v2((dir + "/litejet.db").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  assert_string_equal(QueryText(db, "SELECT count(*) FROM big").c_str(), "150000");
  assert_string_equal(
      QueryText(db, "SELECT count(*) FROM big AS x JOIN big AS y ON y.id = x.id + 1 WHERE y.s > x.s").c_str(), "0");
  assert_string_equal(QueryText(db, "PRAGMA integrity_check").c_str(), "ok");
  sqlite3_close(db);
}

}  // namespace

int main() {
  // Not replicated: no nats URL anywhere.
  unsetenv("LITEJET_NATS_URL");
  // As an app would: the functions on every connection (the VFS itself is
  // already the default, registered by liblitejet.a's constructor).
  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init));
  printf("# seed 0x%" PRIx64 " (set LITEJET_TEST_SEED to change it)\n", Seed());

  const struct CMUnitTest tests[] = {
      cmocka_unit_test(litejet_is_the_default_vfs),
      cmocka_unit_test_setup_teardown(wal_truncate_checkpoint_same_bytes, Setup, Teardown),
      cmocka_unit_test_setup_teardown(wal_mmap_same_bytes, Setup, Teardown),
      cmocka_unit_test_setup_teardown(wal_exclusive_locking_same_bytes, Setup, Teardown),
      cmocka_unit_test_setup_teardown(rollback_delete_same_bytes, Setup, Teardown),
      cmocka_unit_test_setup_teardown(rollback_truncate_same_bytes, Setup, Teardown),
      cmocka_unit_test_setup_teardown(rollback_persist_same_bytes, Setup, Teardown),
      cmocka_unit_test_setup_teardown(two_connections_wal_same_bytes, Setup, Teardown),
      cmocka_unit_test_setup_teardown(temp_store_file_same_bytes, Setup, Teardown),
  };
  return cmocka_run_group_tests_name("passthrough", tests, nullptr, nullptr);
}
