// libFuzzer target for the record codec and chunk reassembler (wal-capture/record.h): arbitrary
// bytes must be rejected cleanly, and whatever decodes must re-encode to the same transaction.
#include <xxhash.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "wal-capture/record.h"

using namespace litejet::record;

namespace {

constexpr int kCorrupt = 11;  // SQLITE_CORRUPT

// A broken property must crash so libFuzzer records the input.
#define CHECK(cond)                \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

bool SameTxn(const Txn& a, const Txn& b) {
  if (a.txid != b.txid || a.epoch != b.epoch || a.timestamp_us != b.timestamp_us || a.node != b.node ||
      a.page_size != b.page_size || a.db_pages != b.db_pages || a.checksum_before != b.checksum_before ||
      a.checksum_after != b.checksum_after || a.pages.size() != b.pages.size())
    return false;
  for (size_t i = 0; i < a.pages.size(); i++)
    if (a.pages[i].pgno != b.pages[i].pgno || a.pages[i].data != b.pages[i].data) return false;
  return true;
}

// The whole input as one record.
void FuzzDecode(const uint8_t* data, size_t size) {
  Txn t;
  const litejet::Status s = Decode(data, size, &t);
  if (!s.ok()) {
    CHECK(s.code() == kCorrupt && !s.message().empty());
    return;
  }
  Header h;
  size_t hl = 0;
  CHECK(PeekHeader(data, size, &h, &hl).ok());
  CHECK(h.txid == t.txid && h.page_count == t.pages.size() && hl + h.stored_len == size);

  const bool zstd = (h.flags & kFlagZstd) != 0;
  std::string again;
  CHECK(Encode(t, zstd ? Compression::kZstd : Compression::kNone, &again).ok());
  // Without compression the encoding is canonical; a zstd frame may differ byte-wise.
  if (!zstd) CHECK(again == std::string(reinterpret_cast<const char*>(data), size));
  Txn back;
  CHECK(Decode(again.data(), again.size(), &back).ok());
  CHECK(SameTxn(t, back));
}

// The input with stored_len and both checksums rewritten to match, so mutations reach the checks
// behind them (lengths, page numbers, the zstd frame) instead of dying at a checksum.
void FuzzDecodeResealed(const uint8_t* data, size_t size) {
  if (size < kMinHeaderSize) return;
  std::string rec(reinterpret_cast<const char*>(data), size);
  const size_t hl = kMinHeaderSize + (data[60] | data[61] << 8);
  if (size < hl) return;
  auto set64 = [&rec](size_t off, uint64_t v) {
    for (int i = 0; i < 8; i++) rec[off + i] = static_cast<char>(v >> (8 * i));
  };
  set64(hl - 32, size - hl);
  set64(hl - 16, XXH3_64bits(rec.data() + hl, size - hl));
  set64(hl - 8, XXH3_64bits(rec.data(), hl - 8));
  FuzzDecode(reinterpret_cast<const uint8_t*>(rec.data()), rec.size());
}

// The input as a stream of chunks, each prefixed by a little-endian u16 length.
void FuzzReassemble(const uint8_t* data, size_t size) {
  Reassembler r;
  size_t pos = 0;
  while (size - pos >= 2) {
    const size_t len = std::min<size_t>(data[pos] | data[pos + 1] << 8, size - pos - 2);
    pos += 2;
    bool complete = false;
    std::string record;
    uint64_t txid = 0;
    const litejet::Status s = r.Add(data + pos, len, &complete, &record, &txid);
    pos += len;
    if (!s.ok()) {
      CHECK(s.code() == kCorrupt && !complete && !r.pending());
    } else if (complete) {
      CHECK(!r.pending());
      FuzzDecode(reinterpret_cast<const uint8_t*>(record.data()), record.size());
    }
  }
}

// Split then reassemble must give the input back, whatever it holds.
void FuzzSplitRoundtrip(const uint8_t* data, size_t size) {
  const std::string rec(reinterpret_cast<const char*>(data), size);
  const size_t max_chunk = kChunkHeaderSize + 1 + (size > 0 ? data[0] : 0);
  std::vector<std::string> chunks;
  CHECK(Split(rec, 0x1234, max_chunk, &chunks).ok());
  CHECK(!chunks.empty());
  Reassembler r;
  for (size_t i = 0; i < chunks.size(); i++) {
    CHECK(chunks[i].size() <= max_chunk);
    bool complete = false;
    std::string out;
    uint64_t txid = 0;
    CHECK(r.Add(chunks[i].data(), chunks[i].size(), &complete, &out, &txid).ok());
    CHECK(complete == (i + 1 == chunks.size()));
    if (complete) CHECK(out == rec && txid == 0x1234);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzDecode(data, size);
  {
    std::vector<std::string> recs;
    if (litejet::record::DecodeBatch(data, size, &recs).ok()) {
      // A plain batch re-encodes to the same size; a compressed one (version
      // 2) to whatever zstd makes of it, which must decode to the same.
      const bool zstd = size >= 6 && data[4] == litejet::record::kBatchVersionZstd && data[5] == 0;
      std::string again;
      std::vector<std::string> back;
      if (!litejet::record::EncodeBatch(recs, &again, zstd ? 1 : 0).ok()) __builtin_trap();
      if (!zstd && again.size() != size) __builtin_trap();
      if (!litejet::record::DecodeBatch(again.data(), again.size(), &back).ok() || back != recs) __builtin_trap();
    }
  }
  FuzzDecodeResealed(data, size);
  FuzzReassemble(data, size);
  FuzzSplitRoundtrip(data, size);
  return 0;
}
