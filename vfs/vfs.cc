// The litejet shim VFS: every method forwards to the VFS that was the default
// when litejet registered; replicated databases also report to their DbHooks.
// Layout per file: our LjFile header, then the real file right after it.
#include "vfs/vfs.h"

#include <cstring>
#include <exception>
#include <mutex>
#include <new>

#include "common/durable.h"

namespace litejet::vfs {
namespace {

enum class Kind { kMain, kWal, kOther };

// C++ state of a file, owned by the LjFile (SQLite allocates the LjFile
// itself as raw memory, so the C++ members live behind one pointer).
struct FileState {
  Kind kind = Kind::kOther;
  std::shared_ptr<DbHooks> hooks;  // null: pass-through
  std::string open_error;          // non-empty: poisoned
  ShmView shm;                     // main file: this connection's shm locks and region 0
  std::string path;                // tests keeping a durable image: the file's name
};

struct LjFile {
  sqlite3_file base;
  FileState* st;
};

// The real file follows the header, 8-byte aligned.
constexpr int kHeaderSize = (sizeof(LjFile) + 7) & ~7;

sqlite3_vfs g_vfs;
sqlite3_vfs* g_real = nullptr;
Host* g_host = nullptr;
std::once_flag g_once;

inline sqlite3_file* Real(sqlite3_file* f) {
  return reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kHeaderSize);
}
inline FileState* St(sqlite3_file* f) { return reinterpret_cast<LjFile*>(f)->st; }
// A poisoned file (bad configuration) still answers the header read SQLite
// makes while opening, so that the open completes and the connection's auto
// extension can report the message; every lock, write and shm call fails.
inline bool Poisoned(sqlite3_file* f) { return !St(f)->open_error.empty(); }

// No C++ exception may cross into SQLite: every call into the hooks (and
// anything else that allocates) runs through Guard, which turns one into an
// SQLite code (SQLITE_NOMEM for bad_alloc, else fail_rc) and a log line.
template <typename F>
int Guard(const char* method, int fail_rc, F&& fn) noexcept {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    sqlite3_log(SQLITE_NOMEM, "litejet: %s: out of memory", method);
    return SQLITE_NOMEM;
  } catch (const std::exception& e) {
    sqlite3_log(fail_rc, "litejet: %s: %s", method, e.what());
    return fail_rc;
  } catch (...) {
    sqlite3_log(fail_rc, "litejet: %s: unknown exception", method);
    return fail_rc;
  }
}

// ---- io methods ----------------------------------------------------------

int xClose(sqlite3_file* f) {
  sqlite3_file* r = Real(f);
  if (St(f)->kind == Kind::kMain && St(f)->hooks) {
    Guard("xClose", SQLITE_IOERR_CLOSE, [&] {
      St(f)->hooks->OnClose(r);
      return SQLITE_OK;
    });
  }
  int rc = r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
  delete St(f);
  reinterpret_cast<LjFile*>(f)->st = nullptr;
  return rc;
}

int xRead(sqlite3_file* f, void* buf, int amt, sqlite3_int64 off) {
  sqlite3_file* r = Real(f);
  return r->pMethods->xRead(r, buf, amt, off);
}

int xWrite(sqlite3_file* f, const void* buf, int amt, sqlite3_int64 off) {
  if (Poisoned(f)) return SQLITE_CANTOPEN;
  sqlite3_file* r = Real(f);
  FileState* st = St(f);
  if (st->kind != Kind::kWal || !st->hooks) return r->pMethods->xWrite(r, buf, amt, off);
  int rc = Guard("xWrite", SQLITE_IOERR_WRITE, [&] { return st->hooks->BeforeWalWrite(r, buf, amt, off); });
  if (rc != SQLITE_OK) return rc;
  rc = r->pMethods->xWrite(r, buf, amt, off);
  int after = Guard("xWrite", SQLITE_IOERR_WRITE, [&] {
    st->hooks->AfterWalWrite(r, buf, amt, off, rc);
    return SQLITE_OK;
  });
  return rc != SQLITE_OK ? rc : after;
}

int xTruncate(sqlite3_file* f, sqlite3_int64 size) {
  if (Poisoned(f)) return SQLITE_CANTOPEN;
  sqlite3_file* r = Real(f);
  FileState* st = St(f);
  if (st->kind == Kind::kWal && st->hooks) {
    int rc = Guard("xTruncate", SQLITE_IOERR_TRUNCATE, [&] { return st->hooks->BeforeWalTruncate(size); });
    if (rc != SQLITE_OK) return rc;
  }
  int rc = r->pMethods->xTruncate(r, size);
  if (rc == SQLITE_OK && st->kind == Kind::kWal && st->hooks) {
    rc = Guard("xTruncate", SQLITE_IOERR_TRUNCATE, [&] {
      st->hooks->OnWalTruncate(size);
      return SQLITE_OK;
    });
  }
  return rc;
}

int xSync(sqlite3_file* f, int flags) {
  if (Poisoned(f)) return SQLITE_CANTOPEN;
  sqlite3_file* r = Real(f);
  int rc = r->pMethods->xSync(r, flags);
  if (rc == SQLITE_OK && !St(f)->path.empty()) {
    // Tests simulating power loss: what SQLite synced is in the durable image.
    Guard("xSync", SQLITE_IOERR_FSYNC, [&] {
      durable::Synced(St(f)->path);
      return SQLITE_OK;
    });
  }
  return rc;
}

int xFileSize(sqlite3_file* f, sqlite3_int64* size) {
  sqlite3_file* r = Real(f);
  return r->pMethods->xFileSize(r, size);
}

int xLock(sqlite3_file* f, int lock) {
  if (Poisoned(f)) return SQLITE_CANTOPEN;
  sqlite3_file* r = Real(f);
  return r->pMethods->xLock(r, lock);
}

int xUnlock(sqlite3_file* f, int lock) {
  sqlite3_file* r = Real(f);
  return r->pMethods->xUnlock(r, lock);
}

int xCheckReservedLock(sqlite3_file* f, int* out) {
  sqlite3_file* r = Real(f);
  return r->pMethods->xCheckReservedLock(r, out);
}

// Splits "name" / "name=value" as SQLite hands them in azArg[1], azArg[2].
int HandlePragma(sqlite3_file* f, void* arg) {
  FileState* st = St(f);
  if (!st->hooks) return SQLITE_NOTFOUND;
  char** az = static_cast<char**>(arg);
  return Guard("xFileControl", SQLITE_ERROR, [&] { return st->hooks->OnPragma(az[1], az[2], &az[0]); });
}

int xFileControl(sqlite3_file* f, int op, void* arg) {
  if (op == SQLITE_FCNTL_PRAGMA && St(f)->kind == Kind::kMain) {
    int rc = HandlePragma(f, arg);
    if (rc != SQLITE_NOTFOUND) return rc;
  }
  sqlite3_file* r = Real(f);
  int rc = r->pMethods->xFileControl(r, op, arg);
  if (rc == SQLITE_OK && op == SQLITE_FCNTL_VFSNAME) {
    // Shims name themselves in front of the VFS they wrap: "litejet/unix".
    char** name = static_cast<char**>(arg);
    *name = sqlite3_mprintf("litejet/%z", *name);
  }
  return rc;
}

int xSectorSize(sqlite3_file* f) {
  sqlite3_file* r = Real(f);
  return r->pMethods->xSectorSize(r);
}

int xDeviceCharacteristics(sqlite3_file* f) {
  sqlite3_file* r = Real(f);
  return r->pMethods->xDeviceCharacteristics(r);
}

int xShmMap(sqlite3_file* f, int pg, int pgsz, int extend, void volatile** pp) {
  if (Poisoned(f)) return SQLITE_CANTOPEN;
  sqlite3_file* r = Real(f);
  int rc = r->pMethods->xShmMap(r, pg, pgsz, extend, pp);
  if (rc == SQLITE_OK && pg == 0 && *pp) St(f)->shm.region0 = *pp;
  return rc;
}

// Shared locks (read locks) are only recorded; exclusive ones are shown to
// the hooks, before (may refuse) and after.
int xShmLock(sqlite3_file* f, int offset, int n, int flags) {
  sqlite3_file* r = Real(f);
  FileState* st = St(f);
  if (!st->hooks) return r->pMethods->xShmLock(r, offset, n, flags);
  const unsigned bits = ((1u << n) - 1) << offset;
  const bool excl = (flags & SQLITE_SHM_EXCLUSIVE) != 0;
  auto on_lock = [&] {
    return Guard("xShmLock", SQLITE_IOERR_SHMLOCK, [&] {
      st->hooks->OnShmLock(r, st->shm, offset, n, flags);
      return SQLITE_OK;
    });
  };
  if (flags & SQLITE_SHM_UNLOCK) {
    if (excl) on_lock();  // an unlock goes ahead whatever happened
    int rc = r->pMethods->xShmLock(r, offset, n, flags);
    (excl ? st->shm.exclusive : st->shm.shared) &= ~bits;
    return rc;
  }
  if (excl) {
    int rc =
        Guard("xShmLock", SQLITE_IOERR_SHMLOCK, [&] { return st->hooks->BeforeShmLock(r, st->shm, offset, n, flags); });
    if (rc != SQLITE_OK) return rc;
  }
  int rc = r->pMethods->xShmLock(r, offset, n, flags);
  if (rc == SQLITE_OK) {
    (excl ? st->shm.exclusive : st->shm.shared) |= bits;
    if (excl && on_lock() != SQLITE_OK) {
      // The hooks did not see the lock taken: give it back.
      r->pMethods->xShmLock(r, offset, n, (flags & ~SQLITE_SHM_LOCK) | SQLITE_SHM_UNLOCK);
      st->shm.exclusive &= ~bits;
      return SQLITE_IOERR_SHMLOCK;
    }
  }
  return rc;
}

void xShmBarrier(sqlite3_file* f) {
  sqlite3_file* r = Real(f);
  r->pMethods->xShmBarrier(r);
}

int xShmUnmap(sqlite3_file* f, int del) {
  sqlite3_file* r = Real(f);
  St(f)->shm.region0 = nullptr;
  return r->pMethods->xShmUnmap(r, del);
}

int xFetch(sqlite3_file* f, sqlite3_int64 off, int amt, void** pp) {
  sqlite3_file* r = Real(f);
  return r->pMethods->xFetch(r, off, amt, pp);
}

int xUnfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  sqlite3_file* r = Real(f);
  return r->pMethods->xUnfetch(r, off, p);
}

// One method table per io-methods version, so we never advertise methods the
// real file lacks.
sqlite3_io_methods MakeMethods(int version) {
  sqlite3_io_methods m{};
  m.iVersion = version;
  m.xClose = xClose;
  m.xRead = xRead;
  m.xWrite = xWrite;
  m.xTruncate = xTruncate;
  m.xSync = xSync;
  m.xFileSize = xFileSize;
  m.xLock = xLock;
  m.xUnlock = xUnlock;
  m.xCheckReservedLock = xCheckReservedLock;
  m.xFileControl = xFileControl;
  m.xSectorSize = xSectorSize;
  m.xDeviceCharacteristics = xDeviceCharacteristics;
  if (version >= 2) {
    m.xShmMap = xShmMap;
    m.xShmLock = xShmLock;
    m.xShmBarrier = xShmBarrier;
    m.xShmUnmap = xShmUnmap;
  }
  if (version >= 3) {
    m.xFetch = xFetch;
    m.xUnfetch = xUnfetch;
  }
  return m;
}

const sqlite3_io_methods g_methods[3] = {MakeMethods(1), MakeMethods(2), MakeMethods(3)};

bool OurMethods(const sqlite3_io_methods* m) { return m == &g_methods[0] || m == &g_methods[1] || m == &g_methods[2]; }

// ---- vfs methods ---------------------------------------------------------

int Open(sqlite3_filename zName, sqlite3_file* f, int flags, int* outFlags) {
  LjFile* p = reinterpret_cast<LjFile*>(f);
  std::memset(p, 0, sizeof(*p));
  std::unique_ptr<FileState> st(new (std::nothrow) FileState);
  if (!st) return SQLITE_NOMEM;

  if (flags & SQLITE_OPEN_MAIN_DB) {
    st->kind = Kind::kMain;
    Status s = g_host->OpenMain(zName, &st->hooks);
    if (!s.ok()) st->open_error = s.message();
  } else if ((flags & SQLITE_OPEN_WAL) && zName) {
    st->kind = Kind::kWal;
    st->hooks = g_host->Find(sqlite3_filename_database(zName));
  } else if ((flags & SQLITE_OPEN_MAIN_JOURNAL) && zName) {
    std::shared_ptr<DbHooks> h = g_host->Find(sqlite3_filename_database(zName));
    if (h) {
      int rc = h->OnOpenRollbackJournal();
      if (rc != SQLITE_OK) return rc;
    }
  }

  if (durable::Imaging() && zName && st->kind != Kind::kOther) st->path = zName;

  sqlite3_file* r = Real(f);
  int rc = g_real->xOpen(g_real, zName, r, flags, outFlags);
  if (r->pMethods == nullptr) {
    // The real open failed before it set up a file: SQLite will not call
    // xClose, so neither must it find our methods.
    return rc;
  }
  p->st = st.release();
  int v = r->pMethods->iVersion;
  p->base.pMethods = &g_methods[(v < 1 ? 1 : v > 3 ? 3 : v) - 1];
  return rc;
}

int xOpen(sqlite3_vfs*, sqlite3_filename zName, sqlite3_file* f, int flags, int* outFlags) {
  return Guard("xOpen", SQLITE_CANTOPEN, [&] { return Open(zName, f, flags, outFlags); });
}

int xDelete(sqlite3_vfs*, const char* z, int syncDir) {
  // The -wal of a replicated database may still hold unshipped commits.
  size_t n = z ? std::strlen(z) : 0;
  if (g_host && n > 4 && std::strcmp(z + n - 4, "-wal") == 0) {
    int rc = Guard("xDelete", SQLITE_IOERR_DELETE, [&] {
      std::shared_ptr<DbHooks> h = g_host->Find(std::string(z, n - 4));
      return h ? h->BeforeWalDelete() : SQLITE_OK;
    });
    if (rc != SQLITE_OK) return rc;
  }
  return g_real->xDelete(g_real, z, syncDir);
}
int xAccess(sqlite3_vfs*, const char* z, int flags, int* out) { return g_real->xAccess(g_real, z, flags, out); }
int xFullPathname(sqlite3_vfs*, const char* z, int n, char* out) { return g_real->xFullPathname(g_real, z, n, out); }
void* xDlOpen(sqlite3_vfs*, const char* z) { return g_real->xDlOpen(g_real, z); }
void xDlError(sqlite3_vfs*, int n, char* z) { g_real->xDlError(g_real, n, z); }
void (*xDlSym(sqlite3_vfs*, void* p, const char* z))(void) { return g_real->xDlSym(g_real, p, z); }
void xDlClose(sqlite3_vfs*, void* p) { g_real->xDlClose(g_real, p); }
int xRandomness(sqlite3_vfs*, int n, char* z) { return g_real->xRandomness(g_real, n, z); }
int xSleep(sqlite3_vfs*, int us) { return g_real->xSleep(g_real, us); }
int xCurrentTime(sqlite3_vfs*, double* t) { return g_real->xCurrentTime(g_real, t); }
int xGetLastError(sqlite3_vfs*, int n, char* z) {
  return g_real->xGetLastError ? g_real->xGetLastError(g_real, n, z) : 0;
}
int xCurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* t) { return g_real->xCurrentTimeInt64(g_real, t); }
int xSetSystemCall(sqlite3_vfs*, const char* z, sqlite3_syscall_ptr p) { return g_real->xSetSystemCall(g_real, z, p); }
sqlite3_syscall_ptr xGetSystemCall(sqlite3_vfs*, const char* z) { return g_real->xGetSystemCall(g_real, z); }
const char* xNextSystemCall(sqlite3_vfs*, const char* z) { return g_real->xNextSystemCall(g_real, z); }

}  // namespace

int Register(Host* host) {
  int rc = SQLITE_OK;
  std::call_once(g_once, [&] {
    g_real = sqlite3_vfs_find(nullptr);
    if (!g_real || g_real->iVersion < 3) {
      rc = SQLITE_ERROR;  // need xCurrentTimeInt64 and the syscall methods
      return;
    }
    g_host = host;
    std::memset(&g_vfs, 0, sizeof(g_vfs));
    g_vfs.iVersion = 3;
    g_vfs.szOsFile = kHeaderSize + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    g_vfs.zName = "litejet";
    g_vfs.xOpen = xOpen;
    g_vfs.xDelete = xDelete;
    g_vfs.xAccess = xAccess;
    g_vfs.xFullPathname = xFullPathname;
    g_vfs.xDlOpen = xDlOpen;
    g_vfs.xDlError = xDlError;
    g_vfs.xDlSym = xDlSym;
    g_vfs.xDlClose = xDlClose;
    g_vfs.xRandomness = xRandomness;
    g_vfs.xSleep = xSleep;
    g_vfs.xCurrentTime = xCurrentTime;
    g_vfs.xGetLastError = xGetLastError;
    g_vfs.xCurrentTimeInt64 = xCurrentTimeInt64;
    g_vfs.xSetSystemCall = xSetSystemCall;
    g_vfs.xGetSystemCall = xGetSystemCall;
    g_vfs.xNextSystemCall = xNextSystemCall;
    rc = sqlite3_vfs_register(&g_vfs, 1);
  });
  if (rc == SQLITE_OK && g_host == nullptr) rc = SQLITE_ERROR;
  // Loaded again after sqlite3_shutdown() + sqlite3_initialize(), which made
  // "unix" the default again: the default once more, as on the first load.
  if (rc == SQLITE_OK && sqlite3_vfs_find(nullptr) != &g_vfs) rc = sqlite3_vfs_register(&g_vfs, 1);
  return rc;
}

sqlite3_vfs* Get() { return g_host ? &g_vfs : nullptr; }

bool IsOurs(sqlite3_file* f) { return f && OurMethods(f->pMethods); }

std::shared_ptr<DbHooks> HooksOf(sqlite3_file* f) { return IsOurs(f) ? St(f)->hooks : nullptr; }

std::string OpenError(sqlite3_file* f) { return IsOurs(f) ? St(f)->open_error : std::string(); }

sqlite3_file* RealFile(sqlite3_file* f) { return IsOurs(f) ? Real(f) : nullptr; }

}  // namespace litejet::vfs
