// Sidecar file layout (little-endian, this machine's order; the file is local
// and never shipped):
//   [0, 4096)           Header
//   [4096, +64*slots)   commit ring: CommitEntry for TXID t in slot t % kRingSlots
//   [..., ...)          uint64 page hash for pgno 1, 2, ... (capacity slots)
#include "wal-capture/sidecar.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <thread>

#include "common/durable.h"
#include "common/fence.h"

namespace litejet::sidecar {

namespace {
constexpr uint32_t kMagic = 0x43534A4C;  // "LJSC"
constexpr uint32_t kVersion = 2;
constexpr size_t kHeaderBytes = 4096;
constexpr size_t kRingBytes = kRingSlots * sizeof(CommitEntry);
constexpr size_t kFixedBytes = kHeaderBytes + kRingBytes;  // before the page hashes
constexpr uint64_t kMinCapacity = 1024;
constexpr uint32_t kSegmentShift = 20;  // 2^20 hash slots per mapped segment
constexpr size_t kSegmentBytes = (size_t(1) << kSegmentShift) * 8;
constexpr size_t kSegments = size_t(1) << (32 - kSegmentShift);
static_assert(kFixedBytes % 4096 == 0, "segments are mapped at page-aligned offsets");

template <typename T>
T Load(const T* p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
template <typename T>
void Store(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
}  // namespace

struct Sidecar::Header {
  uint32_t magic;
  uint32_t version;
  uint64_t seq;  // seqlock: odd while the writer (WAL_WRITE_LOCK holder) changes the position
  uint64_t txid;
  uint64_t checksum;
  uint32_t db_pages;
  uint32_t page_size;
  uint64_t epoch;
  uint64_t acked_txid;
  uint64_t pending_txid;  // non-zero between BeginUpdate and CommitUpdate
  uint64_t capacity;      // page-hash slots in the file
  uint64_t log_seq;
  uint32_t pending_salt1, pending_salt2, pending_frame, pending_pid;  // pending_pid: spare bytes (0 in older files)
  uint64_t pending_spool_offset;
  uint64_t spool_end;
  uint64_t spooled_txid;
  // A second seqlock for what the agent writes (acked_txid, log_seq, epoch)
  // without WAL_WRITE_LOCK: one seqlock per writer, or two writers bumping
  // one counter at once leave it odd for good.
  uint64_t seq_ack;
  // Sync durability: a commit whose record may or may not be in the log
  // (added in version 2's spare header bytes, which start zeroed).
  uint64_t indoubt_txid;
  // Power loss (spare bytes of version 2, zero in older files): the last
  // durable state and the boot id of the kernel that last used the file.
  uint64_t mark_txid, mark_checksum, mark_log_seq;
  uint32_t mark_salt1, mark_salt2, mark_frame, mark_db_pages;
  char boot_id[48];
  uint64_t acked_checksum;  // with acked_txid, under seq_ack (spare bytes: zero in older files)
  // role=auto (spare bytes, zero in older files: "may not write"). Written
  // by the host's agent only. write_until_ns alone gates writes (one load
  // per write transaction); the rest is for messages, under seq_role.
  int64_t write_until_ns;  // CLOCK_MONOTONIC: writes allowed before this instant; 0: not primary
  uint64_t seq_role;
  uint32_t role_state, role_primary_len, role_reason_len, role_unused;
  uint64_t role_epoch;
  uint64_t role_primary[kRoleTextMax / 8];  // text, in words: copied with atomic loads and stores
  uint64_t role_reason[kRoleTextMax / 8];
  uint64_t step_down_requests;  // repl_step_down() from any process: the agent acts when it changes
  // Divergence repair (spare bytes, zero in older files: none yet), under seq_rebuild.
  uint64_t seq_rebuild;
  uint64_t rebuild_count, rebuild_active, rebuild_at_unix_ms, rebuild_txid;
  uint32_t rebuild_kept_len, rebuild_reason_len;
  uint64_t rebuild_kept[kRoleTextMax / 8];
  uint64_t rebuild_reason[kRoleTextMax / 8];
  uint64_t pending_pidns;  // the pending committer's PID namespace (spare bytes: 0 in older files)
  // repl_wait wakes on these (a futex on a shared mapping works across
  // processes): bumped after every change of the position or acknowledgement;
  // waiters counts the processes' threads sleeping on it, so that a change
  // makes the wake-up system call only when someone waits.
  uint32_t change_word, change_waiters;
};

Sidecar::~Sidecar() {
  static_assert(sizeof(Header) <= kHeaderBytes, "header fits its page");
  if (segments_) {
    for (size_t i = 0; i < kSegments; i++) {
      if (uint64_t* seg = segments_[i].load()) ::munmap(seg, kSegmentBytes);
    }
  }
  if (base_) ::munmap(base_, mapped_);
  if (fd_ >= 0) ::close(fd_);
}

uint64_t* Sidecar::Slot(uint32_t pgno) {
  const size_t i = size_t(pgno - 1) >> kSegmentShift;
  uint64_t* seg = segments_[i].load(std::memory_order_acquire);
  if (seg == nullptr) {
    std::lock_guard<std::mutex> g(segments_mu_);
    seg = segments_[i].load(std::memory_order_relaxed);
    if (seg == nullptr) {
      // May reach past the file's end: only slots below capacity (which the
      // file holds) are ever touched.
      void* p = ::mmap(nullptr, kSegmentBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_,
                       off_t(kFixedBytes + i * kSegmentBytes));
      if (p == MAP_FAILED) return nullptr;
      seg = static_cast<uint64_t*>(p);
      segments_[i].store(seg, std::memory_order_release);
    }
  }
  return seg + ((pgno - 1) & ((uint32_t(1) << kSegmentShift) - 1));
}

CommitEntry* Sidecar::ring() const { return reinterpret_cast<CommitEntry*>(static_cast<char*>(base_) + kHeaderBytes); }

Status Sidecar::Open(const std::string& path, bool* created, bool* unclean) {
  if (unclean) *unclean = false;
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return Status::Error("litejet: cannot open sidecar " + path + ": " + std::strerror(errno), 14);
  // Initialise under an exclusive flock so two processes opening a new
  // database at once agree on one header.
  if (::flock(fd_, LOCK_EX) != 0) return Status::Error("litejet: cannot lock sidecar " + path, 14);
  struct stat sb;
  ::fstat(fd_, &sb);
  *created = false;
  Status s;
  // A header of zeros: the file was sized, its first page never reached the
  // disk before a power loss. Nothing in it can be trusted: start over.
  bool zeroed = false;
  if (sb.st_size >= off_t(kHeaderBytes)) {
    char head[kHeaderBytes];
    zeroed = ::pread(fd_, head, sizeof head, 0) == ssize_t(sizeof head) &&
             std::all_of(head, head + sizeof head, [](char c) { return c == 0; });
  }
  if (sb.st_size < off_t(kHeaderBytes) || zeroed) {
    uint64_t cap = kMinCapacity;
    if (::ftruncate(fd_, off_t(kFixedBytes + cap * 8)) != 0) {
      s = Status::Error("litejet: cannot size sidecar " + path + ": " + std::strerror(errno), 10);
    } else {
      s = Map(cap);
      if (s.ok()) {
        std::memset(base_, 0, kHeaderBytes);
        hdr()->version = kVersion;
        hdr()->capacity = cap;
        Store(&hdr()->magic, kMagic);
        *created = true;
      }
    }
  } else {
    // (an existing file)
    s = Map(sb.st_size >= off_t(kFixedBytes) ? (uint64_t(sb.st_size) - kFixedBytes) / 8 : 0);
    if (s.ok() && hdr()->magic != kMagic) {
      s = Status::Error("litejet: " + path + " is not a litejet sidecar", 26);
    } else if (s.ok() && hdr()->version != kVersion) {
      s = Status::Error("litejet: sidecar " + path + " has version " + std::to_string(hdr()->version) +
                            ", this litejet reads version " + std::to_string(kVersion) +
                            "; with the database closed everywhere, remove it (the page hashes are rebuilt)",
                        26);
    }
  }
  if (s.ok()) {
    const std::string boot = durable::BootId();
    if (!*created && unclean && boot.compare(0, sizeof hdr()->boot_id - 1, hdr()->boot_id) != 0) {
      *unclean = true;
      return s;  // the flock stays held until EndRecovery
    }
    // Only an engine (which validates) records the boot: a tool that merely
    // looks must not make an unclean sidecar look clean.
    if (unclean || *created) SetBoot(boot);
  }
  ::flock(fd_, LOCK_UN);
  return s;
}

void Sidecar::SetBoot(const std::string& boot) {
  char id[sizeof hdr()->boot_id] = {0};
  std::memcpy(id, boot.data(), std::min(boot.size(), sizeof id - 1));
  if (std::memcmp(id, hdr()->boot_id, sizeof id) != 0) std::memcpy(hdr()->boot_id, id, sizeof id);
}

void Sidecar::EndRecovery(bool validated) {
  if (validated) {
    SetBoot(durable::BootId());
    (void)SyncHeader();
  }
  ::flock(fd_, LOCK_UN);
}

Mark Sidecar::mark() const {
  Mark m;
  const Header* h = hdr();
  m.txid = Load(&h->mark_txid);
  m.checksum = Load(&h->mark_checksum);
  m.log_seq = Load(&h->mark_log_seq);
  m.salt1 = Load(&h->mark_salt1);
  m.salt2 = Load(&h->mark_salt2);
  m.frame = Load(&h->mark_frame);
  m.db_pages = Load(&h->mark_db_pages);
  return m;
}

// One writer at a time (the replica's agent, or a primary's hand-off under
// WAL_WRITE_LOCK); read only at an unclean start, under the flock.
Status Sidecar::SetMark(const Mark& m) {
  Header* h = hdr();
  Store(&h->mark_txid, m.txid);
  Store(&h->mark_checksum, m.checksum);
  Store(&h->mark_log_seq, m.log_seq);
  Store(&h->mark_salt1, m.salt1);
  Store(&h->mark_salt2, m.salt2);
  Store(&h->mark_frame, m.frame);
  Store(&h->mark_db_pages, m.db_pages);
  return SyncHeader();
}

Status Sidecar::SyncHeader() { return durable::SyncMap(base_, kHeaderBytes, path_); }

// The header and the commit ring: what an unclean start needs (the page
// hashes are rebuilt from the database then, so they are not synced).
Status Sidecar::Sync() { return durable::SyncMap(base_, kFixedBytes, path_); }

// The header and ring are mapped once; the page hashes in segments (Slot),
// never moved: growing the file (ftruncate) is all that growth takes. Slots
// past the file's end are never touched: capacity is published only after
// the file grew.
Status Sidecar::Map(uint64_t capacity) {
  if (base_ == nullptr) {
    void* p = ::mmap(nullptr, kFixedBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
    if (p == MAP_FAILED) return Status::Error("litejet: cannot map sidecar " + path_ + ": " + std::strerror(errno), 10);
    base_ = p;
    mapped_ = kFixedBytes;
    segments_.reset(new std::atomic<uint64_t*>[kSegments]());
  }
  capacity_ = capacity;
  return Status::OK();
}

Position Sidecar::Read() const {
  Position p;
  const Header* h = hdr();
  // Retry while a writer is changing the position (odd or moving
  // counters). A counter that stays odd for 100 ms is a writer that died
  // mid-update (the next writer moves past it; a writer that is merely
  // descheduled comes back long before): then take what is there.
  uint64_t stuck_s = 0, stuck_a = 0;  // even: no odd value seen yet
  auto stuck_since = std::chrono::steady_clock::now();
  for (uint64_t spins = 0;; spins++) {
    uint64_t s1 = Load(&h->seq), a1 = Load(&h->seq_ack);
    bool give_up = false;
    if ((s1 | a1) & 1) {
      if (s1 != stuck_s || a1 != stuck_a) {
        stuck_s = s1;
        stuck_a = a1;
        stuck_since = std::chrono::steady_clock::now();
      } else if ((spins & 1023) == 0 &&
                 std::chrono::steady_clock::now() - stuck_since > std::chrono::milliseconds(100)) {
        give_up = true;
      }
      if (!give_up) {
        if ((spins & 1023) == 1023) std::this_thread::yield();
        continue;
      }
    }
    p.txid = Load(&h->txid);
    p.checksum = Load(&h->checksum);
    p.db_pages = Load(&h->db_pages);
    p.page_size = Load(&h->page_size);
    p.epoch = Load(&h->epoch);
    p.acked_txid = Load(&h->acked_txid);
    p.log_seq = Load(&h->log_seq);
    p.spool_end = Load(&h->spool_end);
    p.spooled_txid = Load(&h->spooled_txid);
    p.acked_checksum = Load(&h->acked_checksum);
    Fence(std::memory_order_acquire);
    if ((Load(&h->seq) == s1 && Load(&h->seq_ack) == a1) || give_up) return p;
  }
}

uint64_t Sidecar::Hash(uint32_t pgno) {
  if (pgno == 0 || pgno > hdr()->db_pages) return 0;
  if (pgno > capacity_) {
    // Another process grew the file.
    if (!Map(Load(&hdr()->capacity)).ok() || pgno > capacity_) return 0;
  }
  uint64_t* slot = Slot(pgno);
  return slot ? *slot : 0;
}

PendingCommit Sidecar::pending_commit() const {
  PendingCommit p;
  p.salt1 = Load(&hdr()->pending_salt1);
  p.salt2 = Load(&hdr()->pending_salt2);
  p.commit_frame = Load(&hdr()->pending_frame);
  p.spool_offset = Load(&hdr()->pending_spool_offset);
  p.pid = Load(&hdr()->pending_pid);
  p.pidns = Load(&hdr()->pending_pidns);
  return p;
}

Status Sidecar::BeginUpdate(uint64_t txid, uint32_t max_pgno, const PendingCommit& where) {
  uint64_t cap = Load(&hdr()->capacity);
  if (max_pgno > cap) {
    cap = std::max<uint64_t>(cap, kMinCapacity);  // a zeroed header must not make this loop endless
    while (cap < max_pgno) cap *= 2;
    if (::ftruncate(fd_, off_t(kFixedBytes + cap * 8)) != 0) {
      return Status::Error("litejet: cannot grow sidecar " + path_ + ": " + std::strerror(errno), 10);
    }
    Store(&hdr()->capacity, cap);
  }
  if (cap > capacity_) {
    Status s = Map(cap);
    if (!s.ok()) return s;
  }
  // Every segment the update writes is mapped now, so SetHash cannot fail.
  for (uint64_t pg = 1; max_pgno > 0 && pg <= max_pgno; pg += uint64_t(1) << kSegmentShift) {
    if (Slot(uint32_t(pg)) == nullptr) {
      return Status::Error(
          "litejet: cannot map sidecar " + path_ + " for page " + std::to_string(pg) + ": " + std::strerror(errno), 10);
    }
  }
  Store(&hdr()->pending_salt1, where.salt1);
  Store(&hdr()->pending_salt2, where.salt2);
  Store(&hdr()->pending_frame, where.commit_frame);
  Store(&hdr()->pending_spool_offset, where.spool_offset);
  Store(&hdr()->pending_pid, where.pid);
  Store(&hdr()->pending_pidns, where.pidns);
  Store(&hdr()->pending_txid, txid);
  return Status::OK();
}

void Sidecar::SetHash(uint32_t pgno, uint64_t h) {
  // BeginUpdate grew the file to every page of the update; anything else is
  // a caller's bug, and must not write past the file (SIGBUS) or before it.
  if (pgno == 0 || pgno > capacity_) return;
  if (uint64_t* slot = Slot(pgno)) *slot = h;
}

uint64_t Sidecar::capacity() const { return std::max<uint64_t>(capacity_, Load(&hdr()->capacity)); }

namespace {
// Seqlock write brackets (one writer per seqlock at a time): odd while
// writing. An odd value at Begin is a writer that died mid-update: move on
// from it (to the next odd value) so that readers stop waiting for it.
void Begin(uint64_t* seq) {
  uint64_t v = Load(seq);
  Store(seq, v + 1 + (v & 1));
  Fence(std::memory_order_release);
}
void End(uint64_t* seq) { Store(seq, (Load(seq) | 1) + 1); }
}  // namespace

namespace {
// Text in shared words, copied word by word with atomic accesses (a reader
// may run while the writer changes it: the seqlock tells it to retry).
void TextOut(uint64_t* words, const std::string& s) {
  for (size_t i = 0; i < kRoleTextMax / 8; i++) {
    uint64_t w = 0;
    if (i * 8 < s.size()) std::memcpy(&w, s.data() + i * 8, std::min<size_t>(8, s.size() - i * 8));
    __atomic_store_n(&words[i], w, __ATOMIC_RELAXED);
  }
}
void TextIn(const uint64_t* words, char* out) {
  for (size_t i = 0; i < kRoleTextMax / 8; i++) {
    uint64_t w = __atomic_load_n(&words[i], __ATOMIC_RELAXED);
    std::memcpy(out + i * 8, &w, 8);
  }
}
}  // namespace

uint64_t Sidecar::step_down_requests() const { return Load(&hdr()->step_down_requests); }
void Sidecar::RequestStepDown() { __atomic_add_fetch(&hdr()->step_down_requests, 1, __ATOMIC_ACQ_REL); }

int64_t Sidecar::write_until_ns() const { return Load(&hdr()->write_until_ns); }

void Sidecar::SetWriteUntil(int64_t mono_ns) { Store(&hdr()->write_until_ns, mono_ns); }

namespace {
// Reads a block written by one writer (the host's agent) under seq: retries
// while it is mid-update or moved on. A writer killed mid-update leaves the
// counter odd for good: when it stays odd and unchanged for 100 ms, take
// what is there (these blocks are messages, not positions).
template <typename Fn>
void ReadStable(const uint64_t* seq, Fn&& read) {
  uint64_t stuck = 0;  // even: no odd value seen yet
  auto stuck_since = std::chrono::steady_clock::now();
  for (uint64_t tries = 0;; tries++) {
    uint64_t s1 = Load(seq);
    bool give_up = false;
    if (s1 & 1) {
      if (s1 != stuck) {
        stuck = s1;
        stuck_since = std::chrono::steady_clock::now();
      } else if ((tries & 1023) == 0 &&
                 std::chrono::steady_clock::now() - stuck_since > std::chrono::milliseconds(100)) {
        give_up = true;
      }
      if (!give_up) {
        if ((tries & 255) == 255) std::this_thread::yield();
        continue;
      }
    }
    read();
    Fence(std::memory_order_acquire);
    if (Load(seq) == s1 || give_up) return;
    if ((tries & 255) == 255) std::this_thread::yield();
  }
}
}  // namespace

RoleInfo Sidecar::role() const {
  const Header* h = hdr();
  RoleInfo r;
  char primary[kRoleTextMax], reason[kRoleTextMax];
  uint32_t pl = 0, rl = 0;
  ReadStable(&h->seq_role, [&] {
    r.state = static_cast<RoleState>(std::min<uint32_t>(Load(&h->role_state), 2));
    r.epoch = Load(&h->role_epoch);
    pl = std::min<uint32_t>(Load(&h->role_primary_len), kRoleTextMax);
    rl = std::min<uint32_t>(Load(&h->role_reason_len), kRoleTextMax);
    TextIn(h->role_primary, primary);
    TextIn(h->role_reason, reason);
  });
  r.primary.assign(primary, pl);
  r.reason.assign(reason, rl);
  return r;
}

RebuildInfo Sidecar::rebuild() const {
  const Header* h = hdr();
  RebuildInfo r;
  char kept[kRoleTextMax], reason[kRoleTextMax];
  uint32_t kl = 0, rl = 0;
  ReadStable(&h->seq_rebuild, [&] {
    r.count = Load(&h->rebuild_count);
    r.active = Load(&h->rebuild_active) != 0;
    r.at_unix_ms = Load(&h->rebuild_at_unix_ms);
    r.txid = Load(&h->rebuild_txid);
    kl = std::min<uint32_t>(Load(&h->rebuild_kept_len), kRoleTextMax);
    rl = std::min<uint32_t>(Load(&h->rebuild_reason_len), kRoleTextMax);
    TextIn(h->rebuild_kept, kept);
    TextIn(h->rebuild_reason, reason);
  });
  r.kept.assign(kept, kl);
  r.reason.assign(reason, rl);
  return r;
}

void Sidecar::SetRebuild(const RebuildInfo& r) {
  Header* h = hdr();
  const uint32_t kl = uint32_t(std::min<size_t>(r.kept.size(), kRoleTextMax));
  const uint32_t rl = uint32_t(std::min<size_t>(r.reason.size(), kRoleTextMax));
  Begin(&h->seq_rebuild);
  Store(&h->rebuild_count, r.count);
  Store(&h->rebuild_active, uint64_t(r.active ? 1 : 0));
  Store(&h->rebuild_at_unix_ms, r.at_unix_ms);
  Store(&h->rebuild_txid, r.txid);
  TextOut(h->rebuild_kept, r.kept.substr(0, kl));
  TextOut(h->rebuild_reason, r.reason.substr(0, rl));
  Store(&h->rebuild_kept_len, kl);
  Store(&h->rebuild_reason_len, rl);
  End(&h->seq_rebuild);
}

void Sidecar::SetRole(const RoleInfo& r) {
  Header* h = hdr();
  const uint32_t pl = uint32_t(std::min<size_t>(r.primary.size(), kRoleTextMax));
  const uint32_t rl = uint32_t(std::min<size_t>(r.reason.size(), kRoleTextMax));
  Begin(&h->seq_role);
  Store(&h->role_state, static_cast<uint32_t>(r.state));
  Store(&h->role_epoch, r.epoch);
  TextOut(h->role_primary, r.primary.substr(0, pl));
  TextOut(h->role_reason, r.reason.substr(0, rl));
  Store(&h->role_primary_len, pl);
  Store(&h->role_reason_len, rl);
  End(&h->seq_role);
}

// A process can be killed between any two of these stores (the seqlock
// protects readers from a live writer, not from a dead one): each update
// stores the field that claims progress last, so that a torn update claims
// less than was done, never more. Here: txid last. A torn commit keeps its
// pending mark, and the resolver recomputes the position from the old txid
// and the ring entry's checksum.
void Sidecar::CommitUpdate(const Position& p) {
  Header* h = hdr();
  Begin(&h->seq);
  Store(&h->checksum, p.checksum);
  Store(&h->db_pages, p.db_pages);
  Store(&h->page_size, p.page_size);
  Store(&h->spool_end, p.spool_end);
  Store(&h->spooled_txid, p.spooled_txid);
  Store(&h->txid, p.txid);  // release stores: in this order in memory
  End(&h->seq);
  Store(&h->pending_txid, uint64_t(0));
  Changed();
}

void Sidecar::Changed() {
  Header* h = hdr();
  __atomic_add_fetch(&h->change_word, 1u, __ATOMIC_SEQ_CST);
  // Seq-cst on both sides: a waiter that registered before this load is
  // woken; one that registers after it sees the new word and does not sleep.
  if (__atomic_load_n(&h->change_waiters, __ATOMIC_SEQ_CST) != 0) {
    ::syscall(SYS_futex, &h->change_word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
  }
}

uint32_t Sidecar::change_count() const { return __atomic_load_n(&hdr()->change_word, __ATOMIC_SEQ_CST); }

void Sidecar::WaitChange(uint32_t seen, int64_t timeout_ms) const {
  if (timeout_ms <= 0) return;
  Header* h = hdr();
  __atomic_add_fetch(&h->change_waiters, 1u, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&h->change_word, __ATOMIC_SEQ_CST) == seen) {
    struct timespec ts;
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = long(timeout_ms % 1000) * 1000000L;
    // Not FUTEX_PRIVATE: the word is in a file mapping shared by processes.
    ::syscall(SYS_futex, &h->change_word, FUTEX_WAIT, seen, &ts, nullptr, 0);
  }
  __atomic_sub_fetch(&h->change_waiters, 1u, __ATOMIC_SEQ_CST);
}

uint64_t Sidecar::pending_txid() const { return Load(&hdr()->pending_txid); }

void Sidecar::SetAcked(uint64_t txid, uint64_t log_seq, uint64_t checksum) {
  Header* h = hdr();
  Begin(&h->seq_ack);
  Store(&h->log_seq, log_seq);
  Store(&h->acked_checksum, checksum);
  Store(&h->acked_txid, txid);  // last (see CommitUpdate)
  End(&h->seq_ack);
  Changed();
}

void Sidecar::SetSpoolEnd(uint64_t end) {
  Header* h = hdr();
  Begin(&h->seq);
  Store(&h->spool_end, end);
  End(&h->seq);
}

void Sidecar::SetSpooled(uint64_t spooled_txid, uint64_t end) {
  Header* h = hdr();
  Begin(&h->seq);
  // The end first: killed in between, the segment is readable and its TXIDs
  // are merely handed off again (duplicates are skipped). The other order
  // claimed TXIDs handed off whose segment lay past the spool's end: the WAL
  // then restarted over them and they were lost (e2e_torture, scenario b,
  // 1 round in ~2,500).
  Store(&h->spool_end, end);
  Store(&h->spooled_txid, spooled_txid);
  End(&h->seq);
}

// Word by word with atomic stores: the slot's txid is cleared first and set
// last (release), so a reader that sees the txid it wants before and after
// copying has a whole entry.
void Sidecar::PutCommit(const CommitEntry& e) {
  uint64_t* slot = reinterpret_cast<uint64_t*>(&ring()[e.txid % kRingSlots]);
  uint64_t words[sizeof(CommitEntry) / 8];
  std::memcpy(words, &e, sizeof words);
  Store(&slot[0], uint64_t(0));
  Fence(std::memory_order_release);
  for (size_t i = 1; i < sizeof words / 8; i++) __atomic_store_n(&slot[i], words[i], __ATOMIC_RELAXED);
  Store(&slot[0], e.txid);
}

bool Sidecar::GetCommit(uint64_t txid, CommitEntry* e) const {
  if (txid == 0) return false;
  const uint64_t* slot = reinterpret_cast<const uint64_t*>(&ring()[txid % kRingSlots]);
  if (Load(&slot[0]) != txid) return false;
  uint64_t words[sizeof(CommitEntry) / 8];
  for (size_t i = 1; i < sizeof words / 8; i++) words[i] = __atomic_load_n(&slot[i], __ATOMIC_RELAXED);
  Fence(std::memory_order_acquire);
  if (Load(&slot[0]) != txid) return false;
  words[0] = txid;
  std::memcpy(static_cast<void*>(e), words, sizeof words);
  return true;
}

uint64_t Sidecar::indoubt_txid() const { return Load(&hdr()->indoubt_txid); }

void Sidecar::SetInDoubt(uint64_t txid) { Store(&hdr()->indoubt_txid, txid); }

void Sidecar::SetEpoch(uint64_t epoch) {
  Header* h = hdr();
  Begin(&h->seq_ack);
  Store(&h->epoch, epoch);
  End(&h->seq_ack);
}

}  // namespace litejet::sidecar
