// The litejet VFS: a shim over the default ("unix") VFS. It forwards every
// call and, for a replicated database, reports the WAL writes and shm locks
// that make up a transaction to that database's DbHooks.
#pragma once

#include <memory>
#include <string>

#include "common/sqlite.h"
#include "common/status.h"

namespace litejet::vfs {

// One connection's view of the shm: the lock slots it holds (bit i = slot i)
// and the wal-index's first region as mapped for it (null until SQLite maps it).
struct ShmView {
  unsigned shared = 0;
  unsigned exclusive = 0;
  void volatile* region0 = nullptr;
};

// What a replicated database wants to see. One instance per database file in
// the process, shared by every connection (like unixInodeInfo). Implemented by
// the extension's engine; the VFS only calls it.
class DbHooks {
 public:
  virtual ~DbHooks() = default;
  // Exclusive xShmLock on the main file (shared ones are only recorded in
  // the view). Before: may refuse a lock (returns an SQLite code). On: for a
  // lock, called after the lock was granted; for an unlock, called before
  // the lock is released. view: the connection's locks before this call.
  virtual int BeforeShmLock(sqlite3_file* main, const ShmView& view, int offset, int n, int flags) = 0;
  virtual void OnShmLock(sqlite3_file* main, const ShmView& view, int offset, int n, int flags) = 0;
  // A main file of this database is closing (identified by its real file).
  virtual void OnClose(sqlite3_file* main) = 0;
  // A write to the -wal file. Before: may refuse the write (returns an SQLite
  // code). After: told the result of the real write.
  // wal is the real (unix) -wal file, for reading its header when needed.
  virtual int BeforeWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off) = 0;
  virtual void AfterWalWrite(sqlite3_file* wal, const void* buf, int amt, sqlite3_int64 off, int rc) = 0;
  // The -wal file is about to be truncated / deleted: may refuse (returns an
  // SQLite code), e.g. when it cannot first save what the WAL still holds.
  virtual int BeforeWalTruncate(sqlite3_int64 size) = 0;
  virtual int BeforeWalDelete() = 0;
  virtual void OnWalTruncate(sqlite3_int64 size) = 0;
  // SQLITE_FCNTL_PRAGMA on the main file: return SQLITE_NOTFOUND to let
  // SQLite handle it, or an error with *errmsg set (sqlite3_malloc'd).
  virtual int OnPragma(const char* name, const char* value, char** errmsg) = 0;
  // Opening a rollback journal means the database is leaving WAL mode.
  virtual int OnOpenRollbackJournal() = 0;
};

// Installed by the extension: decides, per database file, whether it is
// replicated.
class Host {
 public:
  virtual ~Host() = default;
  // zName is the sqlite3_filename of a main database being opened. Sets *out
  // to null for a pass-through database. A non-OK status poisons the file:
  // the open itself succeeds (so SQLite can report the message through the
  // connection), every I/O on it fails, and OpenError() returns the message.
  virtual Status OpenMain(const char* zName, std::shared_ptr<DbHooks>* out) = 0;
  // The hooks of an already open main database, by its full path.
  virtual std::shared_ptr<DbHooks> Find(const std::string& db_path) = 0;
};

// Registers VFS "litejet" over the current default VFS and makes it the
// default. Idempotent. host must outlive the process (it is never freed).
int Register(Host* host);

// The VFS's own structure, or null before Register().
sqlite3_vfs* Get();

// For a file opened through this VFS: its hooks (null when pass-through) and
// its open error (empty when none). Anything else: null / empty.
std::shared_ptr<DbHooks> HooksOf(sqlite3_file* f);
std::string OpenError(sqlite3_file* f);
bool IsOurs(sqlite3_file* f);

// The underlying unix file of one of ours (for direct reads of the WAL / shm
// by the engine, bypassing the hooks).
sqlite3_file* RealFile(sqlite3_file* f);

}  // namespace litejet::vfs
