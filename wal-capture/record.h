// Transaction log record: one committed SQLite transaction as it travels on JetStream.
// Owns the byte layout, its encoder and decoder, and the chunking of records bigger than a message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace litejet::record {

// Record layout, all integers little-endian:
//   offset  size
//        0     4  magic "LJTX"
//        4     2  version (1)
//        6     2  flags: bit 0 = payload is one zstd frame; bit 1 = epoch marker
//                       (no pages; txid = the TXID it follows); other bits must be 0
//        8     8  txid
//       16     8  epoch
//       24     8  timestamp_us
//       32     4  page_size        power of two 512..65536
//       36     4  db_pages         database size in pages after commit, >= 1
//       40     4  page_count       <= db_pages
//       44     8  checksum_before
//       52     8  checksum_after
//       60     2  node_len         <= 255
//       62     L  node
//     62+L     8  stored_len       payload bytes as stored
//     70+L     8  raw_len          == page_count * (4 + page_size), <= 4 GiB
//     78+L     8  payload_xxh3     XXH3_64bits of the stored payload
//     86+L     8  header_xxh3      XXH3_64bits of bytes [0, 86+L)
//     94+L        payload (raw form): page_count u32 page numbers, then page_count pages
// Version and magic are checked before the header hash so a record from a newer writer is
// reported as such rather than as damage.
constexpr uint32_t kMagic = 0x58544A4C;  // "LJTX" little-endian
constexpr uint16_t kVersion = 1;
constexpr uint16_t kFlagZstd = 1;
// An epoch marker: what a newly elected primary appends before it takes
// writes. It changes no page (txid and checksums are those of the last
// transaction); its epoch fences the log: a deposed primary's publish after
// it fails the log's sequence expectation.
constexpr uint16_t kFlagEpochMarker = 2;
constexpr size_t kMinHeaderSize = 94;  // header with an empty node name
constexpr size_t kMaxNodeLen = 255;
constexpr uint64_t kMaxRawLen = uint64_t{4} << 30;

struct Page {
  uint32_t pgno = 0;
  std::string data;  // data.size() == page_size
};

struct Txn {
  uint64_t txid = 0, epoch = 0, timestamp_us = 0;
  std::string node;        // <= 255 bytes
  uint32_t page_size = 0;  // power of two 512..65536
  uint32_t db_pages = 0;   // database size in pages after commit (>= 1)
  uint64_t checksum_before = 0, checksum_after = 0;
  std::vector<Page> pages;    // strictly increasing pgno, each 1..db_pages
  bool epoch_marker = false;  // kFlagEpochMarker: no pages, checksum_before == checksum_after
};

enum class Compression { kNone, kZstd };

// Appends the record for txn to *out. Rejects an invalid txn (SQLITE_ERROR) and then leaves *out
// as it was. Zero pages are allowed (db_pages must still be >= 1).
Status Encode(const Txn& txn, Compression c, std::string* out, int zstd_level = 1);

// Decodes exactly one record filling [data, data+n). Every failure is SQLITE_CORRUPT with a
// message naming the cause; *out is only written on success.
Status Decode(const void* data, size_t n, Txn* out);

struct Header {
  uint64_t txid = 0, epoch = 0, timestamp_us = 0, checksum_before = 0, checksum_after = 0;
  uint32_t page_size = 0, db_pages = 0, page_count = 0;
  uint16_t flags = 0;
  std::string node;
  uint64_t stored_len = 0, raw_len = 0, payload_xxh3 = 0;
};

// Validates and reads the header only (n may stop right after it); the payload is neither
// checked nor decompressed. *header_len is where the payload starts.
Status PeekHeader(const void* data, size_t n, Header* out, size_t* header_len);

// Chunk layout, all integers little-endian:
//   offset  size
//        0     4  magic "LJCK"
//        4     2  version (1)
//        6     2  reserved, 0
//        8     8  txid
//       16     4  index (0-based)
//       20     4  count
//       24     8  total record length
//       32     4  length of this chunk's data
//       36     8  XXH3_64bits of the data seeded with XXH3_64bits of bytes [0, 36),
//                 so a damaged chunk header is caught as well as damaged data
//       44        data
// A batch: several encoded records in one log message, so that a backlog of
// small transactions ships in one publish. Layout (little-endian): magic
// "LJBT" u32, version u16, reserved u16 (0), count u32 (>= 1), then the body,
// then XXH3_64bits of all bytes before it. The body is count times {u32
// length, record bytes}: as it is in version 1; in version 2 it is a u64 raw
// length and one zstd frame of it (consecutive transactions often rewrite
// the same pages: compressing them together is much smaller and faster than
// one by one). The records keep their own hashes; the batch hash catches a
// damaged message.
constexpr uint32_t kBatchMagic = 0x54424A4C;  // "LJBT" little-endian
constexpr uint16_t kBatchVersion = 1;
constexpr uint16_t kBatchVersionZstd = 2;
constexpr uint64_t kMaxBatchRaw = uint64_t(1) << 30;  // a decoder refuses larger bodies
// zstd_level 0: version 1 (not compressed).
Status EncodeBatch(const std::vector<std::string>& records, std::string* out, int zstd_level = 0);
// *records gets the encoded records, in order; every malformed input (bad
// magic/version/hash, zero count, a length past the end, trailing bytes) is
// SQLITE_CORRUPT with a message.
Status DecodeBatch(const void* data, size_t n, std::vector<std::string>* records);
bool IsBatch(const void* data, size_t n);
// A whole message's record(s): a batch's records (DecodeBatch), or the one
// record itself (moved from *message).
Status Unbatch(std::string* message, std::vector<std::string>* records);

constexpr uint32_t kChunkMagic = 0x4B434A4C;  // "LJCK" little-endian
constexpr uint16_t kChunkVersion = 1;
constexpr size_t kChunkHeaderSize = 44;

// Replaces *chunks with the record cut into chunks of at most max_chunk bytes each, header
// included; always at least one chunk (an empty record gives one empty chunk).
Status Split(const std::string& record, uint64_t txid, size_t max_chunk, std::vector<std::string>* chunks);

// The header fields of a chunk (no hash check): which transaction, which
// piece. False when data is too short or not a chunk.
struct ChunkInfo {
  uint64_t txid = 0;
  uint32_t index = 0, count = 0;
};
bool PeekChunk(const void* data, size_t n, ChunkInfo* out);

// Rebuilds a record from its chunks fed in order. A chunk of another txid, a duplicate or
// out-of-order index, a bad hash or totals that disagree with chunk 0 give SQLITE_CORRUPT and
// reset the reassembler; a caller that wants to start over from the offending chunk (say, chunk 0
// of a retried publish) can Add it again.
class Reassembler {
 public:
  // *complete is set true and *record and *txid are filled when the last chunk arrived.
  Status Add(const void* chunk, size_t n, bool* complete, std::string* record, uint64_t* txid);
  void Reset();
  bool pending() const { return active_; }

 private:
  Status AddChunk(const void* chunk, size_t n, bool* complete, std::string* record, uint64_t* txid);

  bool active_ = false;
  uint64_t txid_ = 0;
  uint32_t next_ = 0, count_ = 0;
  uint64_t total_ = 0;
  std::string buf_;
};

}  // namespace litejet::record
