// Engine: the replication state of one replicated database in this process,
// shared by all its connections. It is the VFS's DbHooks (capture on the
// primary) and what the SQL functions ask.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"
#include "extension/config.h"
#include "vfs/vfs.h"
#include "wal-capture/capture.h"
#include "wal-capture/sidecar.h"
#include "wal-capture/spool.h"

namespace litejet {

class Engine : public vfs::DbHooks {
 public:
  // The engine of db_path, created on first use. Connections of the process
  // share it.
  static Status Get(const Config& cfg, const std::string& db_path, std::shared_ptr<Engine>* out);
  // The engine of an open database, or null.
  static std::shared_ptr<Engine> Find(const std::string& db_path);
  ~Engine() override;

  const Config& config() const { return cfg_; }
  const std::string& db_path() const { return path_; }

  // --- what the SQL functions report --------------------------------------
  sidecar::Position Position() const { return sidecar_.Read(); }
  bool IsPrimary() const;
  std::string Primary() const;  // advertise of the primary; empty: unknown
  std::string RoleName() const;
  std::string StatusJson() const;
  std::string LastError() const;
  // Waits until the position (replica) / acknowledged position (primary)
  // reaches txid. Returns false on timeout.
  bool Wait(uint64_t txid, int64_t timeout_ms) const;
  bool StepDown();

  // --- DbHooks -------------------------------------------------------------
  void OnShmLock(int offset, int n, int flags) override;
  int BeforeWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off) override;
  void AfterWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off, int rc) override;
  void OnWalTruncate(sqlite3_int64 size) override;
  int OnPragma(const char* name, const char* value, char** errmsg) override;
  int OnOpenRollbackJournal() override;

 private:
  Engine(const Config& cfg, std::string path);
  Status Open();
  Status Prepare(bool sidecar_created);
  void SetError(const std::string& msg);
  // Commit preparation (before the commit frame's data reaches the WAL) and
  // completion (after it did).
  Status PrepareCommit(capture::Captured&& c);
  void FinishCommit(bool ok);

  Config cfg_;
  std::string path_;
  sidecar::Sidecar sidecar_;
  spool::Spool spool_;

  mutable std::mutex mu_;  // guards everything below
  capture::Collector collector_;
  std::string last_error_;
  struct Pending {
    bool active = false;
    sidecar::Position pos;
    std::vector<std::pair<uint32_t, uint64_t>> hashes;  // pgno, new hash
    uint64_t spool_end_before = 0;
  } pending_;
};

}  // namespace litejet
