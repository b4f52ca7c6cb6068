// WalWriter implementation. Byte layouts follow SQLite's wal.c and the
// walformat document; constants carry SQLite's names.
#include "wal-capture/apply.h"

#include "common/durable.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "common/fence.h"
#include "wal-capture/wal_format.h"

namespace litejet::apply {

namespace {

using wal::Get4;
using wal::Put4;

constexpr int WALINDEX_PGSZ = 32768;
constexpr int HASHTABLE_NPAGE = 4096;
constexpr int HASHTABLE_NSLOT = 2 * HASHTABLE_NPAGE;
constexpr int HASHTABLE_HASH_1 = 383;
constexpr uint32_t READMARK_NOT_USED = 0xffffffff;

// struct WalIndexHdr (48 bytes), machine byte order.
struct WalIndexHdr {
  uint32_t iVersion;
  uint32_t unused;
  uint32_t iChange;
  uint8_t isInit;
  uint8_t bigEndCksum;
  uint16_t szPage;
  uint32_t mxFrame;
  uint32_t nPage;
  uint32_t aFrameCksum[2];
  uint32_t aSalt[2];  // as the bytes appear in the WAL header
  uint32_t aCksum[2];
};
static_assert(sizeof(WalIndexHdr) == 48, "WalIndexHdr layout");

// struct WalCkptInfo, right after the two header copies.
struct WalCkptInfo {
  uint32_t nBackfill;
  uint32_t aReadMark[wal::WAL_NREADER];
  uint8_t aLock[8];
  uint32_t nBackfillAttempted;
  uint32_t notUsed0;
};
static_assert(sizeof(WalCkptInfo) == 40, "WalCkptInfo layout");

constexpr int WALINDEX_HDR_SIZE = 2 * sizeof(WalIndexHdr) + sizeof(WalCkptInfo);  // 136
constexpr int HASHTABLE_NPAGE_ONE = HASHTABLE_NPAGE - WALINDEX_HDR_SIZE / 4;      // 4062

int WalHash(uint32_t pgno) { return int((pgno * HASHTABLE_HASH_1) & (HASHTABLE_NSLOT - 1)); }
int WalNextHash(int k) { return (k + 1) & (HASHTABLE_NSLOT - 1); }

// Which wal-index page (32 KiB region) holds frame iFrame's hash entry.
int WalFramePage(uint32_t iFrame) {
  return int((iFrame + HASHTABLE_NPAGE - HASHTABLE_NPAGE_ONE - 1) / HASHTABLE_NPAGE);
}

struct HashLoc {
  volatile uint16_t* aHash;
  volatile uint32_t* aPgno;  // aPgno[0] is the entry of frame iZero+1
  uint32_t iZero;
};

HashLoc LocOf(volatile char* region, int page) {
  HashLoc l;
  volatile uint32_t* base = reinterpret_cast<volatile uint32_t*>(region);
  l.aHash = reinterpret_cast<volatile uint16_t*>(base + HASHTABLE_NPAGE);
  if (page == 0) {
    l.aPgno = base + WALINDEX_HDR_SIZE / 4;
    l.iZero = 0;
  } else {
    l.aPgno = base;
    l.iZero = uint32_t(HASHTABLE_NPAGE_ONE + (page - 1) * HASHTABLE_NPAGE);
  }
  return l;
}

void HdrChecksum(WalIndexHdr* h) {
  uint32_t s1 = 0, s2 = 0;
  wal::WalChecksum(true, h, offsetof(WalIndexHdr, aCksum), &s1, &s2);
  h->aCksum[0] = s1;
  h->aCksum[1] = s2;
}

bool HdrValid(const WalIndexHdr& h) {
  WalIndexHdr c = h;
  HdrChecksum(&c);
  return h.isInit && h.iVersion == wal::WAL_MAX_VERSION && c.aCksum[0] == h.aCksum[0] && c.aCksum[1] == h.aCksum[1];
}

// A fence, not xShmBarrier: the unix VFS's barrier also takes its global
// mutex, which every connection's file locking in the process contends for.
void ReadHdr(sqlite3_file*, volatile char* shm, WalIndexHdr* h1, WalIndexHdr* h2) {
  Fence(std::memory_order_seq_cst);
  std::memcpy(h1, const_cast<char*>(shm), sizeof *h1);
  std::memcpy(h2, const_cast<char*>(shm) + sizeof(WalIndexHdr), sizeof *h2);
}

// walIndexWriteHdr: copy 2 first, barrier, then copy 1 (readers read 1 then
// 2 and retry when they differ).
void WriteHdr(sqlite3_file* db, volatile char* shm, const WalIndexHdr& h) {
  std::memcpy(const_cast<char*>(shm) + sizeof(WalIndexHdr), &h, sizeof h);
  db->pMethods->xShmBarrier(db);
  std::memcpy(const_cast<char*>(shm), &h, sizeof h);
}

volatile WalCkptInfo* CkptInfo(volatile char* shm) {
  return reinterpret_cast<volatile WalCkptInfo*>(shm + 2 * sizeof(WalIndexHdr));
}

// The checkpoint-info resets of walRestartHdr: nothing backfilled, reader 1
// may use the (empty) WAL, readers 2.. unused.
void ResetCkptInfo(volatile WalCkptInfo* info) {
  info->nBackfill = 0;
  info->nBackfillAttempted = 0;
  info->aReadMark[1] = 0;
  for (int i = 2; i < wal::WAL_NREADER; i++) info->aReadMark[i] = READMARK_NOT_USED;
}

}  // namespace

WalWriter::~WalWriter() {
  if (wal_) {
    if (wal_->pMethods) wal_->pMethods->xClose(wal_);
    std::free(wal_);
  }
  if (db_) {
    if (db_->pMethods) {
      // Unmapping does not give back a shm lock the process still holds.
      ReleaseRestartBlocker();
      db_->pMethods->xUnlock(db_, SQLITE_LOCK_NONE);
      db_->pMethods->xShmUnmap(db_, 0);
      db_->pMethods->xClose(db_);
    }
    std::free(db_);
  }
  if (filename_) sqlite3_free_filename(filename_);
}

Status WalWriter::Open(const std::string& db_path) {
  path_ = db_path;
  vfs_ = sqlite3_vfs_find("unix");
  if (!vfs_) return Status::Error("litejet: apply: the unix VFS is not available");
  db_ = static_cast<sqlite3_file*>(std::calloc(1, size_t(vfs_->szOsFile)));
  wal_ = static_cast<sqlite3_file*>(std::calloc(1, size_t(vfs_->szOsFile)));
  if (!db_ || !wal_) return Status::Error("litejet: apply: out of memory", SQLITE_NOMEM);
  // The VFS keeps the name pointer and reads URI parameters through it: give
  // it a real sqlite3_filename that lives as long as we do.
  std::string journal = path_ + "-journal", walname = path_ + "-wal";
  filename_ = sqlite3_create_filename(path_.c_str(), journal.c_str(), walname.c_str(), 0, nullptr);
  if (!filename_) return Status::Error("litejet: apply: out of memory", SQLITE_NOMEM);
  int out = 0;
  int rc = vfs_->xOpen(vfs_, filename_, db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MAIN_DB, &out);
  if (rc != SQLITE_OK) return Status::Error("litejet: apply: cannot open " + path_, rc);
  rc = vfs_->xOpen(vfs_, sqlite3_filename_wal(filename_), wal_,
                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL, &out);
  if (rc != SQLITE_OK) return Status::Error("litejet: apply: cannot open " + walname, rc);
  // Like any open WAL-mode connection, hold SHARED on the database file: the
  // last connection to close takes EXCLUSIVE to checkpoint and delete the
  // WAL and shm, which must never happen under a writer.
  rc = db_->pMethods->xLock(db_, SQLITE_LOCK_SHARED);
  if (rc != SQLITE_OK) return Status::Error("litejet: apply: cannot take a shared lock on " + path_, rc);
  return Status::OK();
}

Status WalWriter::Lock(int64_t timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (int i = 0;; i++) {
    int rc = db_->pMethods->xShmLock(db_, wal::WAL_WRITE_LOCK, 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE);
    if (rc == SQLITE_OK) return Status::OK();
    if (rc != SQLITE_BUSY) return Status::Error("litejet: apply: cannot take WAL_WRITE_LOCK", rc);
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Error("litejet: apply: WAL_WRITE_LOCK busy for " + std::to_string(timeout_ms) + " ms",
                           SQLITE_BUSY);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(i < 10 ? 50 : 1000));
  }
}

void WalWriter::Unlock() {
  db_->pMethods->xShmLock(db_, wal::WAL_WRITE_LOCK, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
}

// Regions stay mapped until xShmUnmap (our destructor): ask the VFS once
// (xShmMap takes the shm node's mutex, which every shm lock also takes).
Status WalWriter::MapRegion(int region, volatile char** out) {
  if (size_t(region) < regions_.size() && regions_[size_t(region)]) {
    *out = regions_[size_t(region)];
    return Status::OK();
  }
  void volatile* p = nullptr;
  int rc = db_->pMethods->xShmMap(db_, region, WALINDEX_PGSZ, 1, &p);
  if (rc != SQLITE_OK || p == nullptr) {
    return Status::Error("litejet: apply: cannot map wal-index region " + std::to_string(region),
                         rc ? rc : SQLITE_IOERR);
  }
  *out = static_cast<volatile char*>(p);
  if (size_t(region) >= regions_.size()) regions_.resize(size_t(region) + 1, nullptr);
  regions_[size_t(region)] = *out;
  return Status::OK();
}

Status WalWriter::WithWriteLock(int64_t timeout_ms, const std::function<void()>& fn) {
  volatile char* shm0 = nullptr;
  Status s = MapRegion(0, &shm0);
  if (!s.ok()) return s;
  s = Lock(timeout_ms);
  if (!s.ok()) return s;
  struct Unlocker {
    WalWriter* w;
    ~Unlocker() { w->Unlock(); }  // also when fn throws: never keep WAL_WRITE_LOCK
  } unlocker{this};
  fn();
  return Status::OK();
}

namespace {
// The first wal-index header, once both copies agree (a writer publishing
// leaves them different for an instant). False: torn or never written.
bool StableHdr(sqlite3_file* db, volatile char* shm0, WalIndexHdr* h) {
  WalIndexHdr h2;
  for (int tries = 0; tries < 1000; tries++) {
    ReadHdr(db, shm0, h, &h2);
    if (std::memcmp(h, &h2, sizeof h2) == 0 && HdrValid(*h)) return true;
    std::this_thread::yield();
  }
  return false;
}
}  // namespace

// Optimistic, without a lock (a shared read lock here would make writers
// skip WAL restarts and checkpoint again at every commit): frames are only
// ever overwritten after a restart, and a restart changes the wal-index
// header's salts before any frame is written. So: salts as wanted before
// the read and still after it = the bytes read are that generation's.
Status WalWriter::ReadFrames(uint32_t salt1, uint32_t salt2, uint32_t first, uint32_t last, uint32_t page_size,
                             std::string* out, bool* gone) {
  *gone = false;
  if (first == 0 || last < first) return Status::Error("litejet: read frames: empty range", SQLITE_CORRUPT);
  const size_t fsz0 = wal::WAL_FRAME_HDRSIZE + page_size;
  if (uint64_t(last - first + 1) * fsz0 > uint64_t(INT32_MAX)) {
    return Status::Error("litejet: read frames: " + std::to_string(last - first + 1) + " frames in one read",
                         SQLITE_TOOBIG);
  }
  volatile char* shm0 = nullptr;
  Status s = MapRegion(0, &shm0);
  if (!s.ok()) return s;
  WalIndexHdr h;
  if (!StableHdr(db_, shm0, &h)) {
    // SQLite must rebuild the wal-index from the WAL (the caller runs a read
    // and retries).
    return Status::Error("litejet: read frames: the wal-index needs recovery", SQLITE_BUSY_RECOVERY);
  }
  if (Get4(&h.aSalt[0]) != salt1 || Get4(&h.aSalt[1]) != salt2) {
    *gone = true;
    return Status::OK();
  }
  if (h.mxFrame < last) {
    return Status::Error("litejet: read frames: frame " + std::to_string(last) + " is past the WAL's last commit (" +
                             std::to_string(h.mxFrame) + ")",
                         SQLITE_CORRUPT);
  }
  const size_t fsz = wal::WAL_FRAME_HDRSIZE + page_size;
  const size_t need = size_t(last - first + 1) * fsz;
  if (out->size() < need) out->resize(need);  // a reused buffer: no zero-filling each time
  int rc = wal_->pMethods->xRead(wal_, &(*out)[0], int(need), wal::FrameOffset(first, page_size));
  Fence(std::memory_order_seq_cst);
  // A restart (and a truncation, which follows one) changes the salts first.
  if (!StableHdr(db_, shm0, &h)) {
    return Status::Error("litejet: read frames: the wal-index header is being rewritten", SQLITE_BUSY);
  }
  if (Get4(&h.aSalt[0]) != salt1 || Get4(&h.aSalt[1]) != salt2) {
    *gone = true;  // whatever was read, or failed to be read (a short read after a truncation)
    return Status::OK();
  }
  if (rc != SQLITE_OK) return Status::Error("litejet: read frames: cannot read " + path_ + "-wal", rc);
  return Status::OK();
}

bool WalWriter::RestartHdrLocked(volatile char* shm0, void* hdrp, bool with_slot0) {
  WalIndexHdr& hdr = *static_cast<WalIndexHdr*>(hdrp);
  uint32_t salt1 = 0;
  try {
    std::random_device rd;  // before any lock: it may throw
    salt1 = rd();
  } catch (...) {
    salt1 = uint32_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^ 0x9e3779b9u;
  }
  // SQLite's writer restarts while it reads through read lock 0 itself, so
  // it never changes the header under its own read transaction. Anyone else
  // restarting (the primary's agent) must also keep away from readers of
  // lock 0, or their next write fails with SQLITE_BUSY_SNAPSHOT.
  const int first = with_slot0 ? wal::WAL_READ_LOCK0 : wal::WAL_READ_LOCK0 + 1;
  const int n = with_slot0 ? wal::WAL_NREADER : wal::WAL_NREADER - 1;
  int rc = db_->pMethods->xShmLock(db_, first, n, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE);
  if (rc != SQLITE_OK) return false;
  uint32_t s0 = Get4(&hdr.aSalt[0]);
  Put4(&hdr.aSalt[0], s0 + 1);
  std::memcpy(&hdr.aSalt[1], &salt1, 4);
  hdr.mxFrame = 0;
  HdrChecksum(&hdr);
  WriteHdr(db_, shm0, hdr);
  ResetCkptInfo(CkptInfo(shm0));
  db_->pMethods->xShmLock(db_, first, n, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
  return true;
}

Status WalWriter::RestartIfBackfilledLocked(bool* restarted) {
  *restarted = false;
  volatile char* shm0 = nullptr;
  Status s = MapRegion(0, &shm0);
  if (!s.ok()) return s;
  WalIndexHdr h;
  if (!StableHdr(db_, shm0, &h)) return Status::OK();  // being recovered: not now
  if (h.mxFrame == 0 || CkptInfo(shm0)->nBackfill != h.mxFrame) return Status::OK();
  *restarted = RestartHdrLocked(shm0, &h, /*with_slot0=*/true);
  return Status::OK();
}

bool WalWriter::NoReaders() {
  volatile char* shm0 = nullptr;
  if (!MapRegion(0, &shm0).ok()) return false;
  if (db_->pMethods->xShmLock(db_, wal::WAL_READ_LOCK0, wal::WAL_NREADER - 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) !=
      SQLITE_OK) {
    return false;
  }
  db_->pMethods->xShmLock(db_, wal::WAL_READ_LOCK0, wal::WAL_NREADER - 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
  return true;
}

bool WalWriter::Progress(uint32_t* mx_frame, uint32_t* backfilled) {
  volatile char* shm0 = nullptr;
  if (!MapRegion(0, &shm0).ok()) return false;
  WalIndexHdr h;
  if (!StableHdr(db_, shm0, &h)) return false;
  *mx_frame = h.mxFrame;
  *backfilled = CkptInfo(shm0)->nBackfill;
  return true;
}

Status WalWriter::HoldRestartBlocker() {
  if (blocker_held_) return Status::OK();
  volatile char* shm0 = nullptr;
  Status s = MapRegion(0, &shm0);
  if (!s.ok()) return s;
  constexpr int kSlot = wal::WAL_NREADER - 1;
  constexpr int kLock = wal::WAL_READ_LOCK0 + kSlot;
  volatile WalCkptInfo* info = CkptInfo(shm0);
  for (int tries = 0; tries < 3; tries++) {
    if (info->aReadMark[kSlot] != READMARK_NOT_USED) {
      // A reader left its mark here: clear it as a checkpointer does, which
      // needs the slot exclusively (nobody is reading through it then).
      if (db_->pMethods->xShmLock(db_, kLock, 1, SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) != SQLITE_OK) break;
      info->aReadMark[kSlot] = READMARK_NOT_USED;
      db_->pMethods->xShmLock(db_, kLock, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
    }
    if (db_->pMethods->xShmLock(db_, kLock, 1, SQLITE_SHM_LOCK | SQLITE_SHM_SHARED) != SQLITE_OK) break;
    // Nobody can set the mark while we share the slot (that needs it exclusively).
    if (info->aReadMark[kSlot] == READMARK_NOT_USED) {
      blocker_held_ = true;
      return Status::OK();
    }
    db_->pMethods->xShmLock(db_, kLock, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_SHARED);
  }
  return Status::Error("litejet: the WAL restart blocker of " + path_ + " is busy", SQLITE_BUSY);
}

void WalWriter::ReleaseRestartBlocker() {
  if (!blocker_held_) return;
  db_->pMethods->xShmLock(db_, wal::WAL_READ_LOCK0 + wal::WAL_NREADER - 1, 1, SQLITE_SHM_UNLOCK | SQLITE_SHM_SHARED);
  blocker_held_ = false;
}

Status WalWriter::Append(uint32_t page_size, uint32_t db_pages, const std::vector<record::Page>& pages,
                         int64_t lock_timeout_ms) {
  if (pages.empty()) return Status::Error("litejet: apply: a transaction without pages", SQLITE_CORRUPT);
  // The shm must be mapped before its locks can be taken.
  volatile char* shm0 = nullptr;
  Status s = MapRegion(0, &shm0);
  if (!s.ok()) return s;
  s = Lock(lock_timeout_ms);
  if (!s.ok()) return s;
  s = AppendLocked(page_size, db_pages, pages);
  Unlock();
  return s;
}

Status WalWriter::AppendLocked(uint32_t page_size, uint32_t db_pages, const std::vector<record::Page>& pages) {
  for (const record::Page& p : pages) {
    if (p.data.size() != page_size) {
      return Status::Error("litejet: apply: page " + std::to_string(p.pgno) + " has " + std::to_string(p.data.size()) +
                               " bytes, not the page size " + std::to_string(page_size),
                           SQLITE_CORRUPT);
    }
  }
  return AppendLocked(page_size, db_pages, pages.size(), [&](size_t i, uint32_t* pgno, const char** data) {
    *pgno = pages[i].pgno;
    *data = pages[i].data.data();
    return Status::OK();
  });
}

Status WalWriter::AppendLocked(uint32_t page_size, uint32_t db_pages, size_t count, const PageSource& page) {
  if (count == 0) return Status::Error("litejet: apply: a transaction without pages", SQLITE_CORRUPT);
  if (count >= uint64_t(UINT32_MAX) - 1) {
    return Status::Error("litejet: apply: a transaction of " + std::to_string(count) + " pages", SQLITE_CORRUPT);
  }
  volatile char* shm0 = nullptr;
  Status s = MapRegion(0, &shm0);
  if (!s.ok()) return s;

  WalIndexHdr h1, h2;
  ReadHdr(db_, shm0, &h1, &h2);
  const bool valid = std::memcmp(&h1, &h2, sizeof h1) == 0 && HdrValid(h1);
  sqlite3_int64 wal_size = 0;
  wal_->pMethods->xFileSize(wal_, &wal_size);
  WalIndexHdr hdr = h1;
  volatile WalCkptInfo* info = CkptInfo(shm0);

  if (!valid) {
    if (wal_size > wal::WAL_HDRSIZE) {
      // Frames exist that the wal-index does not describe: SQLite must
      // recover it first (the caller runs a read and retries).
      return Status::Error("litejet: apply: the wal-index needs recovery", SQLITE_BUSY_RECOVERY);
    }
    std::memset(&hdr, 0, sizeof hdr);
    info->aReadMark[0] = 0;
    ResetCkptInfo(info);
  } else if (hdr.mxFrame > 0) {
    uint32_t ps = (hdr.szPage & 0xfe00) + ((hdr.szPage & 0x0001) << 16);
    if (ps != page_size) {
      return Status::Error(
          "litejet: apply: page size " + std::to_string(page_size) + " differs from the WAL's " + std::to_string(ps),
          SQLITE_CORRUPT);
    }
  }

  // The database file of a new replica is empty, and SQLite deletes the WAL
  // of a zero-length database: give it page 1 first (it must be in the
  // transaction, which then also puts it in the WAL).
  sqlite3_int64 db_size = 0;
  db_->pMethods->xFileSize(db_, &db_size);
  if (db_size == 0) {
    uint32_t pgno = 0;
    const char* data = nullptr;
    s = page(0, &pgno, &data);
    if (!s.ok()) return s;
    if (pgno != 1) {
      return Status::Error("litejet: apply: an empty database needs page 1 in its first transaction", SQLITE_CORRUPT);
    }
    int rc = db_->pMethods->xWrite(db_, data, int(page_size), 0);
    if (rc != SQLITE_OK) return Status::Error("litejet: apply: cannot write page 1 of " + path_, rc);
  }

  // walRestartLog: when every frame has been checkpointed and no reader uses
  // the WAL (all of read locks 1..N can be had), start the WAL over.
  bool restart = !valid || hdr.mxFrame == 0;
  if (valid && hdr.mxFrame > 0 && info->nBackfill == hdr.mxFrame && RestartHdrLocked(shm0, &hdr, /*with_slot0=*/false))
    restart = true;

  bool native = true;
  uint32_t cksum[2];
  uint32_t mx = hdr.mxFrame;
  if (restart && mx == 0) {
    // A new WAL header: checkpoint sequence from the old header + 1, salts
    // from the wal-index (restart) or fresh.
    unsigned char old[wal::WAL_HDRSIZE];
    uint32_t ckpt_seq = 0;
    if (wal_size >= wal::WAL_HDRSIZE && wal_->pMethods->xRead(wal_, old, sizeof old, 0) == SQLITE_OK) {
      ckpt_seq = Get4(old + 12) + 1;
    }
    if (!valid || (hdr.aSalt[0] == 0 && hdr.aSalt[1] == 0)) {
      std::random_device rd;
      uint32_t a = rd(), b = rd();
      std::memcpy(&hdr.aSalt[0], &a, 4);
      std::memcpy(&hdr.aSalt[1], &b, 4);
    }
    unsigned char wh[wal::WAL_HDRSIZE];
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    Put4(wh, wal::WAL_MAGIC | 1);
#else
    Put4(wh, wal::WAL_MAGIC);
#endif
    Put4(wh + 4, wal::WAL_MAX_VERSION);
    Put4(wh + 8, page_size);
    Put4(wh + 12, ckpt_seq);
    std::memcpy(wh + 16, &hdr.aSalt[0], 4);
    std::memcpy(wh + 20, &hdr.aSalt[1], 4);
    uint32_t s1 = 0, s2 = 0;
    wal::WalChecksum(true, wh, 24, &s1, &s2);
    Put4(wh + 24, s1);
    Put4(wh + 28, s2);
    if (on_new_header_) {
      uint32_t a, b;
      std::memcpy(&a, wh + 16, 4);
      std::memcpy(&b, wh + 20, 4);
      Status hs = on_new_header_(a, b);
      if (!hs.ok()) return hs;
    }
    int rc = wal_->pMethods->xWrite(wal_, wh, sizeof wh, 0);
    if (rc != SQLITE_OK) return Status::Error("litejet: apply: cannot write the WAL header", rc);
    cksum[0] = s1;
    cksum[1] = s2;
    hdr.bigEndCksum = (wh[3] & 1);
  } else {
    native = wal::NativeChecksum(hdr.bigEndCksum ? (wal::WAL_MAGIC | 1) : wal::WAL_MAGIC);
    cksum[0] = hdr.aFrameCksum[0];
    cksum[1] = hdr.aFrameCksum[1];
  }

  // Frames: one write each (header + page). The pages are taken one at a
  // time, so a large transaction (a bootstrap's whole database) is never in
  // memory at once; only the page numbers are kept, for the wal-index.
  const size_t fsz = wal::WAL_FRAME_HDRSIZE + page_size;
  std::string frame(fsz, '\0');
  std::vector<uint32_t> pgnos(count);
  for (size_t i = 0; i < count; i++) {
    const char* data = nullptr;
    s = page(i, &pgnos[i], &data);
    if (!s.ok()) return s;
    unsigned char* f = reinterpret_cast<unsigned char*>(&frame[0]);
    Put4(f, pgnos[i]);
    Put4(f + 4, i + 1 == count ? db_pages : 0);
    std::memcpy(f + 8, &hdr.aSalt[0], 4);
    std::memcpy(f + 12, &hdr.aSalt[1], 4);
    wal::WalChecksum(native, f, 8, &cksum[0], &cksum[1]);
    wal::WalChecksum(native, data, page_size, &cksum[0], &cksum[1]);
    Put4(f + 16, cksum[0]);
    Put4(f + 20, cksum[1]);
    std::memcpy(f + wal::WAL_FRAME_HDRSIZE, data, page_size);
    int rc = wal_->pMethods->xWrite(wal_, frame.data(), int(fsz), wal::FrameOffset(mx + uint32_t(i) + 1, page_size));
    if (rc != SQLITE_OK) return Status::Error("litejet: apply: cannot write a WAL frame", rc);
  }

  // walIndexAppend for each new frame.
  for (size_t i = 0; i < count; i++) {
    uint32_t iFrame = mx + uint32_t(i) + 1;
    int page = WalFramePage(iFrame);
    volatile char* region = nullptr;
    s = MapRegion(page, &region);
    if (!s.ok()) return s;
    HashLoc loc = LocOf(region, page);
    uint32_t idx = iFrame - loc.iZero;
    if (idx == 1) {
      // First entry of this hash table: clear it and its page array.
      size_t nbytes = size_t(reinterpret_cast<volatile char*>(loc.aHash + HASHTABLE_NSLOT) -
                             reinterpret_cast<volatile char*>(loc.aPgno));
      std::memset(const_cast<uint32_t*>(loc.aPgno), 0, nbytes);
    }
    if (loc.aPgno[idx - 1]) {
      // walCleanupHash: remnants of a writer that died after writing frames
      // past mxFrame; drop every entry beyond the last committed frame.
      uint32_t keep = mx > loc.iZero ? mx - loc.iZero : 0;
      for (int k = 0; k < HASHTABLE_NSLOT; k++) {
        if (loc.aHash[k] > keep) loc.aHash[k] = 0;
      }
      uint32_t limit = page == 0 ? uint32_t(HASHTABLE_NPAGE_ONE) : uint32_t(HASHTABLE_NPAGE);
      for (uint32_t k = keep; k < limit; k++) loc.aPgno[k] = 0;
    }
    int key = WalHash(pgnos[i]);
    int collide = int(idx);
    while (loc.aHash[key]) {
      if (collide-- == 0) return Status::Error("litejet: apply: wal-index hash table is corrupt", SQLITE_CORRUPT);
      key = WalNextHash(key);
    }
    loc.aPgno[idx - 1] = pgnos[i];
    __atomic_store_n(const_cast<uint16_t*>(&loc.aHash[key]), uint16_t(idx), __ATOMIC_RELEASE);
  }

  // Publish: the new header makes the transaction visible to new readers.
  hdr.iVersion = wal::WAL_MAX_VERSION;
  hdr.iChange++;
  hdr.isInit = 1;
  hdr.szPage = uint16_t((page_size & 0xff00) | (page_size >> 16));
  hdr.mxFrame = mx + uint32_t(count);
  hdr.nPage = db_pages;
  hdr.aFrameCksum[0] = cksum[0];
  hdr.aFrameCksum[1] = cksum[1];
  HdrChecksum(&hdr);
  WriteHdr(db_, shm0, hdr);
  last_mx_frame_ = hdr.mxFrame;
  std::memcpy(&last_salt1_, &hdr.aSalt[0], 4);
  std::memcpy(&last_salt2_, &hdr.aSalt[1], 4);
  if (mx == 0 && wal_size_limit_ >= 0) {
    // A new generation: what lies past its frames is an older generation's
    // (other salts: neither readers nor a recovery use it). A bootstrap's
    // whole-database transaction left a WAL file of the database's size.
    const sqlite3_int64 keep =
        std::max<sqlite3_int64>(sqlite3_int64(wal::FrameOffset(hdr.mxFrame + 1, page_size)), wal_size_limit_);
    // Only a size: a failure leaves the file as long as it was (SQLite's
    // walLimitSize ignores it too).
    if (wal_size > keep) (void)wal_->pMethods->xTruncate(wal_, keep);
  }
  return Status::OK();
}

Status WalWriter::Sync() {
  int rc = wal_->pMethods->xSync(wal_, SQLITE_SYNC_NORMAL);
  if (rc == SQLITE_OK) rc = db_->pMethods->xSync(db_, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK) return Status::Error("litejet: apply: cannot sync the WAL or database file of " + path_, rc);
  // The durable image (tests) takes both: a checkpoint through another
  // connection synced the database file without telling it.
  durable::Synced(path_);
  durable::Synced(path_ + "-wal");
  return Status::OK();
}

}  // namespace litejet::apply
