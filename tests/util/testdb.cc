// Test helpers for capture tests (see testdb.h).
#include "tests/util/testdb.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "wal-capture/checksum.h"
#include "wal-capture/local_log.h"
#include "wal-capture/sidecar.h"
#include "wal-capture/spool.h"

namespace litejet::test {

namespace {
[[noreturn]] void Fail(const std::string& m) {
  std::fprintf(stderr, "FATAL: %s\n", m.c_str());
  std::abort();
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/litejet-test-XXXXXX";
  std::vector<char> b(tmpl.begin(), tmpl.end());
  b.push_back('\0');
  if (!::mkdtemp(b.data())) Fail("mkdtemp failed");
  path_ = b.data();
}

TempDir::~TempDir() {
  if (std::getenv("LITEJET_KEEP_TMP")) return;
  // No fork/exec of rm: ThreadSanitizer forbids starting threads after a
  // multi-threaded fork.
  auto rm = [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); };
  if (::nftw(path_.c_str(), rm, 16, FTW_DEPTH | FTW_PHYS) != 0) {
    std::fprintf(stderr, "warning: could not remove %s\n", path_.c_str());
  }
}

void CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
}

sqlite3* OpenReplicated(const std::string& path, const std::string& extra) {
  // No server listens there: max_lag_ms=0, or the primary would refuse writes
  // once its first commit is 10 s unacknowledged (slow sanitizer runs).
  std::string uri = "file:" + path + "?nats=nats://127.0.0.1:9&role=primary&node=test-node&max_lag_ms=0" + extra;
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, nullptr);
  if (rc != SQLITE_OK) Fail("open " + uri + ": " + (db ? sqlite3_errmsg(db) : "?"));
  sqlite3_busy_timeout(db, 10000);
  return db;
}

sqlite3* OpenPlain(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, "unix");
  if (rc != SQLITE_OK) Fail("open plain " + path + ": " + (db ? sqlite3_errmsg(db) : "?"));
  sqlite3_busy_timeout(db, 10000);
  return db;
}

int Exec(sqlite3* db, const std::string& sql, std::string* err) {
  char* e = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &e);
  if (err) *err = e ? e : "";
  sqlite3_free(e);
  return rc;
}

int64_t QueryInt(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) Fail(sql + ": " + sqlite3_errmsg(db));
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) Fail(sql + ": no row: " + sqlite3_errmsg(db));
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

std::string QueryText(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) Fail(sql + ": " + sqlite3_errmsg(db));
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) Fail(sql + ": no row: " + sqlite3_errmsg(db));
  const unsigned char* t = sqlite3_column_text(st, 0);
  std::string v = t ? reinterpret_cast<const char*>(t) : "";
  sqlite3_finalize(st);
  return v;
}

std::vector<record::Txn> ReadCaptured(const std::string& db_path) {
  sidecar::Sidecar sc;
  bool created = false;
  if (!sc.Open(db_path + "-litejet", &created).ok()) Fail("open sidecar of " + db_path);
  locallog::Reader reader;
  Status s = reader.Open(db_path, &sc);
  if (!s.ok()) Fail(s.message());
  std::vector<record::Txn> out;
  sidecar::Position p = sc.Read();
  uint64_t next = p.acked_txid + 1;
  while (next <= p.txid) {
    size_t before = out.size();
    s = reader.Read(next, p.txid, p.txid, p.spool_end, p.spool_end, 100000, SIZE_MAX / 2, "test", &out);
    if (!s.ok()) Fail("reading the local log of " + db_path + ": " + s.message());
    if (out.size() == before) Fail("the local log of " + db_path + " stops at TXID " + std::to_string(next - 1));
    next += out.size() - before;
  }
  return out;
}

std::vector<uint64_t> OraclePages(const std::string& db_path, const std::string& scratch, uint32_t* page_size) {
  // sqlite3_backup copies the pages a reader of the live database sees (db
  // file + WAL through the wal-index), verbatim except for the change
  // counter, schema cookie and version fields it rewrites on the destination.
  // Recovering a copied WAL is not a valid oracle: SQLite 3.40 can leave a
  // broken checksum chain after ROLLBACK TO with spilled pages (see
  // docs/design.md), so recovery would disagree with live readers.
  std::string copy = scratch + "/oracle.db";
  ::unlink(copy.c_str());
  ::unlink((copy + "-journal").c_str());
  sqlite3* src = OpenPlain(db_path, SQLITE_OPEN_READONLY);
  sqlite3* dst = OpenPlain(copy);
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", src, "main");
  if (!b) Fail(std::string("backup_init: ") + sqlite3_errmsg(dst));
  int rc = sqlite3_backup_step(b, -1);
  if (rc != SQLITE_DONE) Fail("backup_step: " + std::to_string(rc));
  sqlite3_backup_finish(b);
  sqlite3_close(dst);
  sqlite3_close(src);
  std::vector<uint64_t> hashes;
  Status s = MaskedPageHashes(copy, &hashes, page_size);
  if (!s.ok()) Fail(s.message());
  return hashes;
}

Status MaskedPageHashes(const std::string& path, std::vector<uint64_t>* hashes, uint32_t* page_size) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  hashes->clear();
  if (bytes.size() < 100) return Status::OK();
  uint32_t ps = (uint32_t(uint8_t(bytes[16])) << 8) | uint8_t(bytes[17]);
  if (ps == 1) ps = 65536;
  *page_size = ps;
  std::memset(&bytes[24], 0, 4);  // file change counter
  std::memset(&bytes[40], 0, 4);  // schema cookie (backup sets its own)
  std::memset(&bytes[92], 0, 8);  // version-valid-for, SQLITE_VERSION_NUMBER
  for (size_t off = 0; off + ps <= bytes.size(); off += ps) {
    hashes->push_back(checksum::PageHash(bytes.data() + off, ps, uint32_t(off / ps + 1)));
  }
  return Status::OK();
}

Replayer::Replayer(std::string path) : path_(std::move(path)) {
  int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) Fail("replay open");
  ::close(fd);
}

std::string Replayer::Apply(const record::Txn& t) {
  if (t.txid != txid_ + 1) return "txid " + std::to_string(t.txid) + " follows " + std::to_string(txid_);
  if (t.checksum_before != checksum_) {
    return "txid " + std::to_string(t.txid) + ": checksum_before " + checksum::Hex(t.checksum_before) +
           " but the replay has " + checksum::Hex(checksum_);
  }
  int fd = ::open(path_.c_str(), O_RDWR);
  for (const record::Page& p : t.pages) {
    if (::pwrite(fd, p.data.data(), p.data.size(), off_t(p.pgno - 1) * t.page_size) != ssize_t(p.data.size())) {
      Fail("replay write");
    }
  }
  if (::ftruncate(fd, off_t(t.db_pages) * t.page_size) != 0) Fail("replay truncate");
  ::close(fd);
  txid_ = t.txid;
  checksum_ = XorAll(PageHashes());
  if (checksum_ != t.checksum_after) {
    return "txid " + std::to_string(t.txid) + ": replayed checksum " + checksum::Hex(checksum_) +
           " != checksum_after " + checksum::Hex(t.checksum_after);
  }
  return "";
}

std::vector<uint64_t> Replayer::MaskedPageHashes() const {
  std::vector<uint64_t> h;
  uint32_t ps = 0;
  Status s = test::MaskedPageHashes(path_, &h, &ps);
  if (!s.ok()) Fail(s.message());
  return h;
}

std::vector<uint64_t> Replayer::PageHashes() const {
  std::vector<uint64_t> h;
  uint32_t ps = 0;
  Status s = checksum::HashFile(path_, &h, &ps);
  if (!s.ok()) Fail(s.message());
  return h;
}

std::string DiffPages(const std::vector<uint64_t>& want, const std::vector<uint64_t>& got) {
  if (want.size() != got.size()) {
    return "page count " + std::to_string(got.size()) + ", want " + std::to_string(want.size());
  }
  for (size_t i = 0; i < want.size(); i++) {
    if (want[i] != got[i]) return "page " + std::to_string(i + 1) + " differs";
  }
  return "";
}

uint64_t XorAll(const std::vector<uint64_t>& v) {
  uint64_t x = 0;
  for (uint64_t h : v) x ^= h;
  return x;
}

uint64_t SeedFromEnv(const char* test) {
  const char* e = std::getenv("LITEJET_SEED");
  uint64_t seed = e ? std::strtoull(e, nullptr, 10)
                    : uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) % 1000000007u;
  std::printf("[%s] seed %llu (rerun with LITEJET_SEED=%llu)\n", test, (unsigned long long)seed,
              (unsigned long long)seed);
  std::fflush(stdout);
  return seed;
}

int WaitChild(int pid, int seconds) {
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      std::printf("  child %d still running after %d s: killed\n", pid, seconds);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    ::usleep(10000);
  }
  return status;
}

}  // namespace litejet::test
