// snapshot/snapshot.h: the door of the snapshot layer. A snapshot is a
// database's pages 1..db_pages at a TXID, chunked and zstd-compressed onto a
// JetStream stream, with a manifest; plus restore (snapshot + log replay) and
// the retention policy. Format and store: docs/design.md, "Snapshots".
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "transport/log.h"
#include "wal-capture/record.h"

namespace litejet::snapshot {

// ---------------------------------------------------------------- format

// Chunk layout, all integers little-endian:
//   offset size
//        0    4  magic "LJSC"
//        4    2  version (1)
//        6    2  reserved, 0
//        8    8  snapshot id
//       16    4  chunk index (0-based)
//       20    4  first pgno (>= 1)
//       24    4  page count (>= 1)
//       28    4  page size (power of two 512..65536)
//       32    8  raw length == page count * page size
//       40    8  XXH64 of the raw pages (seed 0)
//       48    8  stored length (the zstd frame)
//       56    8  XXH64 of the stored bytes (seed 0)
//       64    8  XXH64 of bytes [0, 64) (seed 0)
//       72       stored bytes: one zstd frame of the raw pages
constexpr uint32_t kChunkMagic = 0x43534A4C;     // "LJSC" little-endian
constexpr uint32_t kManifestMagic = 0x4D534A4C;  // "LJSM" little-endian
constexpr uint16_t kVersion = 1;
constexpr size_t kChunkHeaderSize = 72;
// Manifest layout, all integers little-endian, 104 bytes:
//        0    4  magic "LJSM"     4 2 version (1)   6 2 reserved, 0
//        8    8  snapshot id     16 8 txid         24 8 checksum
//       32    4  page size       36 4 db_pages     40 4 chunk count   44 4 reserved, 0
//       48    8  log_seq: stream sequence of the first log message (chunk 0) of the record of txid
//       56    8  epoch of that record
//       64    8  time the snapshot was taken, UTC ms
//       72    8  commit time of the record of txid, UTC us
//       80    8  total raw bytes     88 8 total stored bytes (chunks, headers included)
//       96    8  XXH64 of bytes [0, 96)
constexpr size_t kManifestSize = 104;

// Default raw pages per chunk before compression.
constexpr size_t kDefaultChunkRaw = 1 << 20;

struct ChunkHeader {
  uint64_t id = 0;
  uint32_t index = 0, first_pgno = 0, page_count = 0, page_size = 0;
  uint64_t raw_len = 0, raw_xxh64 = 0, stored_len = 0, stored_xxh64 = 0;
};

struct Manifest {
  uint64_t id = 0, txid = 0, checksum = 0;
  uint32_t page_size = 0, db_pages = 0, chunk_count = 0;
  uint64_t log_seq = 0;  // where replay after this snapshot starts (chunk 0 of the record of txid)
  uint64_t epoch = 0, time_ms = 0, commit_time_us = 0;
  uint64_t raw_bytes = 0, stored_bytes = 0;
};

// id as 16 hex digits: how it appears in subjects and messages.
std::string IdHex(uint64_t id);

// Encodes raw pages (page_count * page_size bytes) of snapshot id as chunk index.
Status EncodeChunk(uint64_t id, uint32_t index, uint32_t first_pgno, uint32_t page_size, const std::string& raw,
                   std::string* out, int zstd_level = 3);
// Decodes and verifies one chunk (header hash, lengths, stored hash, zstd,
// raw hash). Every failure is SQLITE_CORRUPT with a message naming the cause.
Status DecodeChunk(const void* data, size_t n, ChunkHeader* hdr, std::string* raw);
std::string EncodeManifest(const Manifest& m);
Status DecodeManifest(const void* data, size_t n, Manifest* out);

// ---------------------------------------------------------------- pages

// Where Put reads pages from. page_size() and db_pages() are fixed for the
// source's life; Read fills page_size() bytes of page pgno (1..db_pages()).
class PageSource {
 public:
  virtual ~PageSource() = default;
  virtual uint32_t page_size() const = 0;
  virtual uint32_t db_pages() const = 0;
  virtual Status Read(uint32_t pgno, void* buf) = 0;
};

// A plain database file at rest: no WAL content (a restored file, a copy
// after a full checkpoint). Refuses a file with a non-empty "-wal" next to it.
Status OpenFileSource(const std::string& path, std::unique_ptr<PageSource>* out);

// A new database file built at "<target>.litejet-restore" and renamed onto
// target by Finish only after its checksum verified. The destructor removes
// an unfinished file.
class FileBuilder {
 public:
  FileBuilder() = default;
  ~FileBuilder();
  FileBuilder(const FileBuilder&) = delete;
  FileBuilder& operator=(const FileBuilder&) = delete;

  // Creates (truncates) the temporary file.
  Status Open(const std::string& target);
  // Starts over: an empty file again.
  Status Reset();
  Status WritePages(uint32_t first_pgno, uint32_t page_size, const std::string& raw);
  Status Truncate(uint32_t db_pages, uint32_t page_size);
  // fsync (unless !sync); the checksum of pages 1..db_pages must be
  // `checksum`; rename onto the target (replacing it), fsync the directory.
  // Also removes the target's stale "-wal", "-shm" and "-litejet" files
  // (they belong to the database being replaced). hashes (may be null): the
  // page hashes read back for the check, index pgno - 1.
  Status Finish(uint32_t db_pages, uint32_t page_size, uint64_t checksum, bool sync = true,
                std::vector<uint64_t>* hashes = nullptr);
  int fd() const { return fd_; }
  const std::string& tmp_path() const { return tmp_; }

 private:
  std::string target_, tmp_;
  int fd_ = -1;
};

// ---------------------------------------------------------------- replay

// Where a record lies in the log: the first and the last message of the
// record (or batch) holding it, and whether it is the batch's last record.
struct LogPos {
  uint64_t start = 0, end = 0;
  bool last_in_message = true;
};

// Where a replay stands: the position of the file it writes.
struct ReplayState {
  uint64_t txid = 0, checksum = 0, epoch = 0, commit_time_us = 0;
  uint64_t log_seq = 0;  // first message of the record of txid (a manifest's log_seq)
  // The engine's sidecar convention: reading resumes at consumed_seq + 1
  // (the record's last message, or the message before its batch when later
  // records of the batch are not applied: they are read again and skipped).
  uint64_t consumed_seq = 0;
  uint32_t page_size = 0, db_pages = 0;
};

// Applies one decoded record to a plain database file (fd; path for
// messages), checking it continues *st exactly as the rebuild does: epochs
// never go back, an epoch marker repeats the current TXID and checksum,
// TXIDs follow each other (a txid <= st->txid is a retried publish's earlier
// copy: skipped, *applied = false), checksum_before is the previous
// checksum_after, the page size never changes. name names the log in errors.
Status ApplyRecord(int fd, const std::string& path, const std::string& name, const record::Txn& t, const LogPos& pos,
                   ReplayState* st, bool* applied);

// Reads log messages from..last (reassembling chunks, opening batches) and
// hands each record to fn in order with its place (LogPos: the batch's
// records share start and end); *more = false stops.
// Leading chunks of a record begun before `from` are skipped. kTruncated
// when `from` is gone; kUnavailable when no message came for wait_ms.
Status ScanLog(transport::Log& log, uint64_t from, uint64_t last, int64_t wait_ms,
               const std::function<Status(const record::Txn&, const LogPos& pos, bool* more)>& fn);

// The transaction record of txid (not an epoch marker) and its place.
// hint_seq (0: none), e.g. a sidecar's log_seq: a sequence at or a little
// before the record, where the search starts; when the record is not found
// from there (the hint was past it, or gone), the whole log is scanned.
// found = false when the log does not hold it (then last_txid is the log's
// last TXID and first_txid its first).
struct FoundRecord {
  bool found = false;
  record::Txn txn;  // pages dropped
  LogPos pos;
  uint64_t first_txid = 0, last_txid = 0;
};
Status FindRecord(transport::Log& log, uint64_t txid, uint64_t hint_seq, int64_t wait_ms, FoundRecord* out);

// The sequence of the first message (chunk 0) of the record that the log
// message at seq completes (what a manifest's log_seq is): seq minus that
// message's chunk index. For a producer that knows the completing sequence
// (the sidecar's log_seq).
Status RecordStart(transport::Log& log, uint64_t seq, int64_t wait_ms, uint64_t* start);

// ---------------------------------------------------------------- store

// Status codes beyond SQLite's and transport's.
constexpr int kNoSnapshot = 1101;  // no such snapshot / no snapshot stream
constexpr int kBadChunk = 1102;    // a chunk is missing, damaged or out of order

// The raw storage of one database's snapshots (JetStream or in memory).
// Subjects (NATS): "<prefix>.<name>.snap.<id>.c" chunks in order,
// "<prefix>.<name>.snap.<id>.m" the manifest; stream "<prefix>_<name>_snap".
class Store {
 public:
  virtual ~Store() = default;
  // Creates the stream if missing (file storage, stream_replicas); idempotent.
  virtual Status Ensure(int64_t timeout_ms) = 0;
  virtual Status PublishChunk(uint64_t id, const std::string& data, int64_t timeout_ms) = 0;
  virtual Status PublishManifest(uint64_t id, const std::string& data, int64_t timeout_ms) = 0;
  // Every manifest message held (any order). kNoSnapshot: no stream.
  virtual Status Manifests(int64_t timeout_ms, std::vector<std::string>* out) = 0;
  // The chunk messages of id in publish order, to fn (false: stop).
  virtual Status Chunks(uint64_t id, int64_t timeout_ms, const std::function<bool(const std::string&)>& fn) = 0;
  // Removes every message of snapshot id (chunks and manifest).
  virtual Status Purge(uint64_t id, int64_t timeout_ms) = 0;
  // Largest message PublishChunk accepts.
  virtual size_t MaxPayload() const = 0;
  // Test hook: replaces the index-th chunk message of id with data (data
  // empty: deletes it). The NATS store republishes/deletes by sequence.
  virtual Status Damage(uint64_t id, uint32_t index, const std::string& data, int64_t timeout_ms) = 0;
};

Status OpenNatsStore(const transport::Options& o, std::unique_ptr<Store>* out);
struct MemoryStore;
std::shared_ptr<MemoryStore> NewMemoryStore(size_t max_payload = 1 << 20);
std::unique_ptr<Store> NewMemoryStoreClient(std::shared_ptr<MemoryStore> s);

// What Put publishes besides the pages: the position they are at.
// log_seq: the first message of the record of txid (RecordStart; an earlier
// sequence also works, replay skips TXIDs at or below the snapshot's, a later
// one does not: a batch may hold txid and later TXIDs); commit_time_us:
// that record's timestamp_us (0: unknown; restore --time then never uses it).
struct PutInfo {
  uint64_t txid = 0, checksum = 0, log_seq = 0, epoch = 0, commit_time_us = 0;
  uint64_t id = 0;  // 0: a random one
};

struct Progress {
  const char* phase = "";        // "snapshot" (chunks), "log" (replay), "verify"
  uint64_t done = 0, total = 0;  // bytes (snapshot) or TXIDs (log); total 0 if unknown
  uint64_t txid = 0;
};
using ProgressFn = std::function<void(const Progress&)>;

// Publishes the pages of src as snapshot info.txid: chunks (each at most
// store.MaxPayload(), raw at most chunk_raw), then, after the pages read sum
// to info.checksum, the manifest. On any failure (also a checksum mismatch)
// the chunks already published are purged and no manifest is written.
// Memory: one chunk's raw and compressed bytes.
Status Put(Store& store, PageSource& src, const PutInfo& info, int64_t timeout_ms, Manifest* out,
           size_t chunk_raw = kDefaultChunkRaw, const ProgressFn& progress = nullptr);

// Every readable manifest, newest (highest txid, then latest time) first.
// Manifests whose chunks are gone are listed too (Get finds out).
Status List(Store& store, int64_t timeout_ms, std::vector<Manifest>* out);

// Streams the chunks of m in order to sink (first pgno, raw pages), verifying
// each: kBadChunk "snapshot <id> chunk <i>: <why>" on the first bad, missing
// or out-of-place one.
Status Get(Store& store, const Manifest& m, int64_t timeout_ms,
           const std::function<Status(const ChunkHeader&, const std::string& raw)>& sink);

Status Delete(Store& store, uint64_t id, int64_t timeout_ms);

// ---------------------------------------------------------------- restore

struct RestoreRequest {
  std::string target;         // database file to build
  std::string name;           // replication name, for messages
  uint64_t txid = 0;          // 0: the latest complete transaction
  int64_t time_us = -1;       // >= 0: the last transaction committed at or before it (txid must be 0)
  int64_t timeout_ms = 5000;  // no answer from NATS for this long: give up
  // false: the file is not fsynced (a bootstrap copies it into the WAL,
  // syncs that, and deletes it)
  bool sync = true;
};

struct RestoreResult {
  ReplayState state;  // the restored position
  bool from_snapshot = false;
  Manifest snapshot;                  // when from_snapshot
  uint64_t records = 0;               // records applied from the log
  std::vector<std::string> skipped;   // snapshots not used, each "snapshot <id> (TXID t): why"
  std::vector<uint64_t> page_hashes;  // of the restored file, index pgno - 1 (read back for the final check)
};

// Builds req.target (replacing it: the caller checks --force) from the
// newest usable snapshot at or below the target and the log after it; falls
// back to older snapshots, then to the log from its first record. store may
// be null (log only). The file is renamed into place only after its
// checksum equals the log's at the target TXID.
Status Restore(transport::Log& log, Store* store, const RestoreRequest& req, RestoreResult* out,
               const ProgressFn& progress = nullptr);

// ---------------------------------------------------------------- retention

struct RetentionPolicy {
  size_t keep_snapshots = 2;  // keep at least the newest N usable snapshots (>= 1)
  uint64_t keep_txids = 0;    // and every snapshot within this many TXIDs of the newest
  uint64_t keep_ms = 0;       // and every snapshot taken within this many ms of now
};

struct RetentionPlan {
  std::vector<uint64_t> delete_ids;  // snapshots to delete
  // The log may be purged below this sequence (what the oldest kept
  // snapshot needs: its log_seq); 0 = purge nothing (no snapshot kept).
  uint64_t log_purge_below = 0;
};

// Pure: manifests as List returns them (any order), the policy, the time now.
// still_needed_seq (0: none): the log from this sequence on is still read by
// someone (e.g. the lowest resume position among live replicas): it is never
// purged, whatever the snapshots allow.
RetentionPlan PlanRetention(const std::vector<Manifest>& snapshots, const RetentionPolicy& p, uint64_t now_ms,
                            uint64_t still_needed_seq = 0);

}  // namespace litejet::snapshot
