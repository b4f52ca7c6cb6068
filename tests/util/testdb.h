// Test helpers shared by the capture tests: temporary directories, opening a
// replicated database through litejet, reading the spool, replaying it, and
// the SQLite-made oracle of what a database holds at a TXID.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"
#include "wal-capture/record.h"

namespace litejet::test {

// A fresh directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Copies a file (no subprocess).
void CopyFile(const std::string& from, const std::string& to);

// Opens path through the litejet VFS as a replicated primary (no server is
// needed for capture; max_lag_ms=0 so the missing server never refuses writes). extra is appended to the URI query
// ("&a=b").
sqlite3* OpenReplicated(const std::string& path, const std::string& extra = "");
// Opens path with the plain unix VFS.
sqlite3* OpenPlain(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);

// Runs sql, returns the SQLite code; on error fills *err when given.
int Exec(sqlite3* db, const std::string& sql, std::string* err = nullptr);
// First column of the first row as int64 / text (aborts the test on error).
int64_t QueryInt(sqlite3* db, const std::string& sql);
std::string QueryText(sqlite3* db, const std::string& sql);

// Every captured transaction of db that is still held locally (none shipped:
// no server), decoded, in order: what the primary's agent would ship, read
// from the spool and the WAL the same way (locallog::Reader).
std::vector<record::Txn> ReadCaptured(const std::string& db_path);

// The database's content as a reader of it sees it now, as page hashes with
// page 1's change counter and version fields masked (see
// MaskedPageHashes): made by sqlite3_backup into scratch_dir. Call with no
// write transaction open.
std::vector<uint64_t> OraclePages(const std::string& db_path, const std::string& scratch_dir, uint32_t* page_size);

// Page hashes of a database file with bytes 24..27, 40..43 and 92..99 of
// page 1 zeroed (the fields sqlite3_backup rewrites).
Status MaskedPageHashes(const std::string& path, std::vector<uint64_t>* hashes, uint32_t* page_size);

// Applies records to a plain file the way a replica would at the page level:
// each page at (pgno-1)*page_size, then truncate to db_pages. Checks the
// checksum chain; returns "" or a message.
class Replayer {
 public:
  explicit Replayer(std::string path);
  std::string Apply(const record::Txn& t);
  std::vector<uint64_t> PageHashes() const;
  std::vector<uint64_t> MaskedPageHashes() const;
  uint64_t checksum() const { return checksum_; }

 private:
  std::string path_;
  uint64_t checksum_ = 0;
  uint64_t txid_ = 0;
};

// First difference between two page-hash vectors, as text; "" when equal.
std::string DiffPages(const std::vector<uint64_t>& want, const std::vector<uint64_t>& got);

uint64_t XorAll(const std::vector<uint64_t>& v);

// A seed from LITEJET_SEED or the clock, printed so a failure can be rerun.
uint64_t SeedFromEnv(const char* test);

// waitpid for a child, bounded: after `seconds` it is SIGKILLed and reaped
// (its status then says so) instead of holding the test until ctest's timeout.
int WaitChild(int pid, int seconds = 120);

}  // namespace litejet::test
