// Encoder and decoder of transaction log records and of their chunks (layouts in record.h).
// Every length read from the wire is checked against the bytes really there before it is used.
#include "wal-capture/record.h"

#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>

namespace litejet::record {
namespace {

constexpr int kCorrupt = 11;  // SQLITE_CORRUPT, spelled out to keep sqlite3.h out of the codec

// Byte offsets of the fixed part of the header (see record.h).
constexpr size_t kOffVersion = 4, kOffFlags = 6, kOffTxid = 8, kOffEpoch = 16, kOffTime = 24, kOffPageSize = 32,
                 kOffDbPages = 36, kOffPageCount = 40, kOffCkBefore = 44, kOffCkAfter = 52, kOffNodeLen = 60,
                 kOffNode = 62;

// The largest record Split and Reassembler accept: the largest header and a zstd frame of
// kMaxRawLen incompressible bytes.
constexpr uint64_t kMaxRecordLen = kMinHeaderSize + kMaxNodeLen + ZSTD_COMPRESSBOUND(kMaxRawLen);

// Little-endian loads and stores, byte by byte: right on any host and any alignment.
uint16_t Load16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t Load32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t Load64(const unsigned char* p) { return Load32(p) | uint64_t{Load32(p + 4)} << 32; }

void Store32(char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = static_cast<char>(v >> (8 * i));
}
void Store64(char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<char>(v >> (8 * i));
}
void Put16(std::string* s, uint16_t v) {
  const char b[2] = {static_cast<char>(v), static_cast<char>(v >> 8)};
  s->append(b, 2);
}
void Put32(std::string* s, uint32_t v) {
  char b[4];
  Store32(b, v);
  s->append(b, 4);
}
void Put64(std::string* s, uint64_t v) {
  char b[8];
  Store64(b, v);
  s->append(b, 8);
}

const unsigned char* Bytes(const void* p) { return static_cast<const unsigned char*>(p); }
std::string Str(uint64_t v) { return std::to_string(v); }

Status Corrupt(const std::string& msg) { return Status::Error("litejet: record: " + msg, kCorrupt); }
Status ChunkCorrupt(const std::string& msg) { return Status::Error("litejet: chunk: " + msg, kCorrupt); }

// Checks shared by Encode and PeekHeader; returns "" when the shape is valid.
std::string CheckShape(uint32_t page_size, uint32_t db_pages, uint64_t page_count) {
  if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) != 0)
    return "page size " + Str(page_size) + " is not a power of two in 512..65536";
  if (db_pages == 0) return "db_pages is 0 (a database has at least one page)";
  if (page_count > db_pages) return "page count " + Str(page_count) + " exceeds db_pages " + Str(db_pages);
  const uint64_t raw_len = page_count * (4 + uint64_t{page_size});
  if (raw_len > kMaxRawLen) return "payload of " + Str(raw_len) + " bytes exceeds the 4 GiB limit";
  return "";
}

// Checks the page number at index i given the one before it; returns "" when valid.
std::string CheckPgno(size_t i, uint32_t pgno, uint32_t prev, uint32_t db_pages) {
  if (pgno == 0 || pgno > db_pages)
    return "page number " + Str(pgno) + " at index " + Str(i) + " is out of range 1.." + Str(db_pages);
  if (i > 0 && pgno <= prev)
    return "page numbers not strictly increasing at index " + Str(i) + " (pgno " + Str(pgno) + " after " + Str(prev) +
           ")";
  return "";
}

struct ZstdFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// Appends the payload of txn to *out as one zstd frame that declares raw_len as its content
// size. Streams the pages in, so the raw payload is never built in memory.
Status CompressPayload(const Txn& txn, uint64_t raw_len, int level, std::string* out) {
  auto fail = [](const char* what, size_t r) {
    return Status::Error(std::string("litejet: record: zstd ") + what + ": " + ZSTD_getErrorName(r));
  };
  // One context per thread, reused: creating one per record was half of the
  // shipper's compression time (docs/performance.md).
  thread_local std::unique_ptr<ZSTD_CCtx, ZstdFree> cctx(ZSTD_createCCtx());
  if (!cctx) return Status::Error("litejet: record: out of memory creating a zstd context", 7);
  ZSTD_CCtx_reset(cctx.get(), ZSTD_reset_session_and_parameters);
  size_t r = ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  if (ZSTD_isError(r)) return fail("level", r);
  r = ZSTD_CCtx_setPledgedSrcSize(cctx.get(), raw_len);
  if (ZSTD_isError(r)) return fail("pledged size", r);

  const size_t at = out->size();
  size_t produced = 0;
  out->resize(at + std::min<uint64_t>(ZSTD_compressBound(raw_len), raw_len / 4 + ZSTD_CStreamOutSize()));
  auto pump = [&](const void* src, size_t len, ZSTD_EndDirective mode) -> Status {
    ZSTD_inBuffer in{src, len, 0};
    for (;;) {
      if (out->size() - at == produced) out->resize(out->size() + (out->size() - at));
      ZSTD_outBuffer ob{&(*out)[at], out->size() - at, produced};
      const size_t rc = ZSTD_compressStream2(cctx.get(), &ob, &in, mode);
      produced = ob.pos;
      if (ZSTD_isError(rc)) return fail("compression failed", rc);
      if (mode == ZSTD_e_end ? rc == 0 : in.pos == in.size) return Status::OK();
    }
  };
  std::string pgnos;
  pgnos.reserve(txn.pages.size() * 4);
  for (const Page& p : txn.pages) Put32(&pgnos, p.pgno);
  Status s = pump(pgnos.data(), pgnos.size(), ZSTD_e_continue);
  for (size_t i = 0; s.ok() && i < txn.pages.size(); i++)
    s = pump(txn.pages[i].data.data(), txn.pages[i].data.size(), ZSTD_e_continue);
  if (s.ok()) s = pump(nullptr, 0, ZSTD_e_end);
  out->resize(at + produced);
  return s;
}

// Reads the raw payload sequentially from the stored bytes, decompressing if needed.
// Output is produced only as the caller asks for it, so a small frame that claims a huge
// raw_len costs memory in proportion to what it really decompresses to.
class PayloadReader {
 public:
  PayloadReader(const unsigned char* p, size_t n, uint64_t raw_len, bool zstd)
      : in_{p, n, 0}, raw_len_(raw_len), zstd_(zstd) {}

  Status Init() {
    if (!zstd_) return Status::OK();
    const unsigned long long fcs = ZSTD_getFrameContentSize(in_.src, in_.size);
    if (fcs == ZSTD_CONTENTSIZE_ERROR) return Corrupt("payload is not a zstd frame");
    if (fcs == ZSTD_CONTENTSIZE_UNKNOWN) return Corrupt("zstd frame does not declare its content size");
    if (fcs != raw_len_) return Corrupt("zstd frame content size " + Str(fcs) + " != raw_len " + Str(raw_len_));
    const size_t frame = ZSTD_findFrameCompressedSize(in_.src, in_.size);
    if (ZSTD_isError(frame)) return Corrupt(std::string("zstd frame is damaged: ") + ZSTD_getErrorName(frame));
    if (frame != in_.size) return Corrupt(Str(in_.size - frame) + " bytes after the zstd frame");
    dctx_.reset(ZSTD_createDCtx());
    if (!dctx_) return Status::Error("litejet: record: out of memory creating a zstd context", 7);
    return Status::OK();
  }

  Status Read(void* dst, size_t len) {
    if (!zstd_) {
      if (in_.size - in_.pos < len) return Corrupt("payload shorter than raw_len");
      std::copy_n(static_cast<const unsigned char*>(in_.src) + in_.pos, len, static_cast<unsigned char*>(dst));
      in_.pos += len;
      return Status::OK();
    }
    ZSTD_outBuffer ob{dst, len, 0};
    while (ob.pos < ob.size) {
      if (ended_) return Corrupt("zstd frame ends before raw_len");
      Status s = Step(&ob);
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

  // Checks that the payload holds nothing beyond raw_len.
  Status Finish() {
    unsigned char extra;
    while (zstd_ && !ended_) {
      ZSTD_outBuffer ob{&extra, 1, 0};
      Status s = Step(&ob);
      if (!s.ok()) return s;
      if (ob.pos != 0) return Corrupt("zstd frame is longer than raw_len");
    }
    if (in_.pos != in_.size) return Corrupt(Str(in_.size - in_.pos) + " bytes after the payload");
    return Status::OK();
  }

 private:
  Status Step(ZSTD_outBuffer* ob) {
    const size_t in_before = in_.pos, out_before = ob->pos;
    const size_t r = ZSTD_decompressStream(dctx_.get(), ob, &in_);
    if (ZSTD_isError(r)) return Corrupt(std::string("zstd: ") + ZSTD_getErrorName(r));
    ended_ = r == 0;
    if (!ended_ && in_.pos == in_before && ob->pos == out_before) return Corrupt("zstd frame is truncated");
    return Status::OK();
  }

  ZSTD_inBuffer in_;
  uint64_t raw_len_;
  bool zstd_;
  bool ended_ = false;
  std::unique_ptr<ZSTD_DCtx, ZstdFree> dctx_;
};

}  // namespace

Status Encode(const Txn& txn, Compression c, std::string* out, int zstd_level) {
  auto bad = [](const std::string& msg) { return Status::Error("litejet: record: " + msg); };
  if (c != Compression::kNone && c != Compression::kZstd) return bad("unknown compression");
  if (txn.node.size() > kMaxNodeLen) return bad("node name is " + Str(txn.node.size()) + " bytes (max 255)");
  std::string why = CheckShape(txn.page_size, txn.db_pages, txn.pages.size());
  if (!why.empty()) return bad(why);
  if (txn.epoch_marker && (!txn.pages.empty() || txn.checksum_before != txn.checksum_after))
    return bad("an epoch marker carries no pages and changes no checksum");
  for (size_t i = 0; i < txn.pages.size(); i++) {
    const Page& p = txn.pages[i];
    why = CheckPgno(i, p.pgno, i > 0 ? txn.pages[i - 1].pgno : 0, txn.db_pages);
    if (!why.empty()) return bad(why);
    if (p.data.size() != txn.page_size)
      return bad("page " + Str(p.pgno) + " at index " + Str(i) + " has " + Str(p.data.size()) +
                 " bytes, expected page size " + Str(txn.page_size));
  }

  const uint64_t raw_len = txn.pages.size() * (4 + uint64_t{txn.page_size});
  const size_t start = out->size();
  Put32(out, kMagic);
  Put16(out, kVersion);
  Put16(out,
        static_cast<uint16_t>((c == Compression::kZstd ? kFlagZstd : 0) | (txn.epoch_marker ? kFlagEpochMarker : 0)));
  Put64(out, txn.txid);
  Put64(out, txn.epoch);
  Put64(out, txn.timestamp_us);
  Put32(out, txn.page_size);
  Put32(out, txn.db_pages);
  Put32(out, static_cast<uint32_t>(txn.pages.size()));
  Put64(out, txn.checksum_before);
  Put64(out, txn.checksum_after);
  Put16(out, static_cast<uint16_t>(txn.node.size()));
  out->append(txn.node);
  const size_t lens = out->size();  // stored_len, raw_len and both hashes, patched below
  out->append(32, '\0');
  const size_t payload = out->size();

  if (c == Compression::kNone) {
    out->reserve(payload + raw_len);
    for (const Page& p : txn.pages) Put32(out, p.pgno);
    for (const Page& p : txn.pages) out->append(p.data);
  } else {
    Status s = CompressPayload(txn, raw_len, zstd_level, out);
    if (!s.ok()) {
      out->resize(start);
      return s;
    }
  }
  char* h = &(*out)[0];
  Store64(h + lens, out->size() - payload);
  Store64(h + lens + 8, raw_len);
  Store64(h + lens + 16, XXH3_64bits(h + payload, out->size() - payload));
  Store64(h + lens + 24, XXH3_64bits(h + start, lens + 24 - start));
  return Status::OK();
}

Status PeekHeader(const void* data, size_t n, Header* out, size_t* header_len) {
  const unsigned char* p = Bytes(data);
  if (n >= 4 && Load32(p) != kMagic) return Corrupt("bad magic");
  if (n >= kOffFlags && Load16(p + kOffVersion) != kVersion)
    return Corrupt("unsupported version " + Str(Load16(p + kOffVersion)));
  if (n < kOffNode) return Corrupt("truncated header (got " + Str(n) + " of " + Str(kMinHeaderSize) + " bytes)");
  const size_t node_len = Load16(p + kOffNodeLen);
  if (node_len > kMaxNodeLen) return Corrupt("node name length " + Str(node_len) + " exceeds 255");
  const size_t hl = kMinHeaderSize + node_len;
  if (n < hl) return Corrupt("truncated header (got " + Str(n) + " of " + Str(hl) + " bytes)");
  if (XXH3_64bits(p, hl - 8) != Load64(p + hl - 8)) return Corrupt("header checksum mismatch");

  Header h;
  h.flags = Load16(p + kOffFlags);
  if ((h.flags & ~(kFlagZstd | kFlagEpochMarker)) != 0) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%04x", h.flags);
    return Corrupt(std::string("unknown flags ") + hex);
  }
  h.txid = Load64(p + kOffTxid);
  h.epoch = Load64(p + kOffEpoch);
  h.timestamp_us = Load64(p + kOffTime);
  h.page_size = Load32(p + kOffPageSize);
  h.db_pages = Load32(p + kOffDbPages);
  h.page_count = Load32(p + kOffPageCount);
  h.checksum_before = Load64(p + kOffCkBefore);
  h.checksum_after = Load64(p + kOffCkAfter);
  h.node.assign(reinterpret_cast<const char*>(p + kOffNode), node_len);
  h.stored_len = Load64(p + kOffNode + node_len);
  h.raw_len = Load64(p + kOffNode + node_len + 8);
  h.payload_xxh3 = Load64(p + kOffNode + node_len + 16);

  const std::string why = CheckShape(h.page_size, h.db_pages, h.page_count);
  if (!why.empty()) return Corrupt(why);
  if (h.raw_len != h.page_count * (4 + uint64_t{h.page_size}))
    return Corrupt("raw_len " + Str(h.raw_len) + " != page_count " + Str(h.page_count) + " * (4 + page_size " +
                   Str(h.page_size) + ")");
  if ((h.flags & kFlagZstd) == 0 && h.stored_len != h.raw_len)
    return Corrupt("uncompressed payload has stored_len " + Str(h.stored_len) + " but raw_len " + Str(h.raw_len));
  *out = std::move(h);
  *header_len = hl;
  return Status::OK();
}

Status Decode(const void* data, size_t n, Txn* out) {
  Header h;
  size_t hl = 0;
  Status s = PeekHeader(data, n, &h, &hl);
  if (!s.ok()) return s;
  const unsigned char* stored = Bytes(data) + hl;
  const size_t avail = n - hl;
  if (avail < h.stored_len)
    return Corrupt("truncated payload (got " + Str(avail) + " of " + Str(h.stored_len) + " bytes)");
  if (avail > h.stored_len) return Corrupt(Str(avail - h.stored_len) + " trailing bytes after the record");
  if (XXH3_64bits(stored, avail) != h.payload_xxh3) return Corrupt("payload checksum mismatch");

  PayloadReader in(stored, avail, h.raw_len, (h.flags & kFlagZstd) != 0);
  s = in.Init();
  if (!s.ok()) return s;

  Txn t;
  t.txid = h.txid;
  t.epoch = h.epoch;
  t.timestamp_us = h.timestamp_us;
  t.node = std::move(h.node);
  t.page_size = h.page_size;
  t.db_pages = h.db_pages;
  t.checksum_before = h.checksum_before;
  t.checksum_after = h.checksum_after;
  t.epoch_marker = (h.flags & kFlagEpochMarker) != 0;
  if (t.epoch_marker && (h.page_count != 0 || t.checksum_before != t.checksum_after))
    return Corrupt("an epoch marker with pages or a checksum change");
  // page_count is only trusted as far as the payload really goes; grow as pages arrive.
  t.pages.reserve(std::min<size_t>(h.page_count, 1024));
  unsigned char block[4096];
  for (size_t i = 0; i < h.page_count;) {
    const size_t k = std::min<size_t>(h.page_count - i, sizeof block / 4);
    s = in.Read(block, k * 4);
    if (!s.ok()) return s;
    for (size_t j = 0; j < k; j++, i++) {
      const uint32_t pgno = Load32(block + 4 * j);
      const std::string why = CheckPgno(i, pgno, i > 0 ? t.pages.back().pgno : 0, t.db_pages);
      if (!why.empty()) return Corrupt(why);
      t.pages.push_back(Page{pgno, std::string()});
    }
  }
  for (Page& p : t.pages) {
    p.data.resize(t.page_size);
    s = in.Read(&p.data[0], t.page_size);
    if (!s.ok()) return s;
  }
  s = in.Finish();
  if (!s.ok()) return s;
  *out = std::move(t);
  return Status::OK();
}

Status Split(const std::string& record, uint64_t txid, size_t max_chunk, std::vector<std::string>* chunks) {
  if (max_chunk < kChunkHeaderSize + 1)
    return Status::Error("litejet: chunk: max_chunk " + Str(max_chunk) + " is too small (need at least " +
                         Str(kChunkHeaderSize + 1) + " bytes)");
  if (record.size() > kMaxRecordLen)
    return Status::Error("litejet: chunk: record of " + Str(record.size()) + " bytes exceeds the limit of " +
                         Str(kMaxRecordLen));
  const uint64_t per = std::min<uint64_t>(max_chunk - kChunkHeaderSize, UINT32_MAX);
  const uint64_t count = record.empty() ? 1 : (record.size() + per - 1) / per;
  if (count > UINT32_MAX)
    return Status::Error("litejet: chunk: record of " + Str(record.size()) + " bytes needs " + Str(count) +
                         " chunks of " + Str(max_chunk) + " bytes (max 4294967295)");
  chunks->clear();
  chunks->reserve(count);
  for (uint64_t i = 0; i < count; i++) {
    const size_t off = i * per;
    const size_t len = std::min<uint64_t>(per, record.size() - off);
    std::string c;
    c.reserve(kChunkHeaderSize + len);
    Put32(&c, kChunkMagic);
    Put16(&c, kChunkVersion);
    Put16(&c, 0);
    Put64(&c, txid);
    Put32(&c, static_cast<uint32_t>(i));
    Put32(&c, static_cast<uint32_t>(count));
    Put64(&c, record.size());
    Put32(&c, static_cast<uint32_t>(len));
    Put64(&c, XXH3_64bits_withSeed(record.data() + off, len, XXH3_64bits(c.data(), c.size())));
    c.append(record, off, len);
    chunks->push_back(std::move(c));
  }
  return Status::OK();
}

void Reassembler::Reset() {
  active_ = false;
  txid_ = 0;
  next_ = count_ = 0;
  total_ = 0;
  std::string().swap(buf_);
}

Status Reassembler::Add(const void* chunk, size_t n, bool* complete, std::string* record, uint64_t* txid) {
  *complete = false;
  Status s = AddChunk(chunk, n, complete, record, txid);
  if (!s.ok()) Reset();
  return s;
}

Status Reassembler::AddChunk(const void* chunk, size_t n, bool* complete, std::string* record, uint64_t* txid) {
  const unsigned char* p = Bytes(chunk);
  if (n >= 4 && Load32(p) != kChunkMagic) return ChunkCorrupt("bad magic");
  if (n >= 6 && Load16(p + 4) != kChunkVersion) return ChunkCorrupt("unsupported version " + Str(Load16(p + 4)));
  if (n < kChunkHeaderSize)
    return ChunkCorrupt("truncated header (got " + Str(n) + " of " + Str(kChunkHeaderSize) + " bytes)");
  const uint64_t id = Load64(p + 8);
  const uint32_t index = Load32(p + 16), count = Load32(p + 20), len = Load32(p + 32);
  const uint64_t total = Load64(p + 24);
  const std::string what = "chunk " + Str(index) + " of txid " + Str(id);
  if (len != n - kChunkHeaderSize)
    return ChunkCorrupt(what + " says " + Str(len) + " data bytes but carries " + Str(n - kChunkHeaderSize));
  if (XXH3_64bits_withSeed(p + kChunkHeaderSize, len, XXH3_64bits(p, 36)) != Load64(p + 36))
    return ChunkCorrupt(what + " fails its hash check");
  if (Load16(p + 6) != 0) return ChunkCorrupt(what + " has reserved bits set");
  if (index >= count) return ChunkCorrupt(what + " is out of range (count " + Str(count) + ")");
  if (total > kMaxRecordLen)
    return ChunkCorrupt(what + " claims a record of " + Str(total) + " bytes (limit " + Str(kMaxRecordLen) + ")");

  if (!active_) {
    if (index != 0) return ChunkCorrupt(what + " arrived without chunk 0 (out of order or a lost start)");
    active_ = true;
    txid_ = id;
    next_ = 0;
    count_ = count;
    total_ = total;
    buf_.clear();
  } else if (id != txid_) {
    return ChunkCorrupt(what + " arrived while txid " + Str(txid_) + " was incomplete (chunk " + Str(next_) + " of " +
                        Str(count_) + " expected)");
  } else if (index < next_) {
    return ChunkCorrupt("duplicate " + what + " (chunk " + Str(next_) + " expected)");
  } else if (index > next_) {
    return ChunkCorrupt("out of order: expected chunk " + Str(next_) + " of txid " + Str(txid_) + ", got chunk " +
                        Str(index));
  } else if (count != count_ || total != total_) {
    return ChunkCorrupt(what + " says " + Str(count) + " chunks / " + Str(total) + " bytes but chunk 0 said " +
                        Str(count_) + " chunks / " + Str(total_) + " bytes");
  }
  if (len > total_ - buf_.size())
    return ChunkCorrupt("chunks of txid " + Str(txid_) + " carry more than its " + Str(total_) + " bytes");
  buf_.append(reinterpret_cast<const char*>(p + kChunkHeaderSize), len);
  if (++next_ < count_) return Status::OK();
  if (buf_.size() != total_)
    return ChunkCorrupt("txid " + Str(txid_) + " ended after " + Str(count_) + " chunks with " + Str(buf_.size()) +
                        " of " + Str(total_) + " bytes");
  *record = std::move(buf_);
  *txid = txid_;
  *complete = true;
  Reset();
  return Status::OK();
}

Status EncodeBatch(const std::vector<std::string>& records, std::string* out, int zstd_level) {
  if (records.empty()) return Status::Error("litejet: batch: no records");
  std::string body;
  size_t total = 0;
  for (const std::string& r : records) total += 4 + r.size();
  if (total > kMaxBatchRaw) return Status::Error("litejet: batch: too large");
  body.reserve(total);
  for (const std::string& r : records) {
    Put32(&body, static_cast<uint32_t>(r.size()));
    body.append(r);
  }
  std::string b;
  Put32(&b, kBatchMagic);
  Put16(&b, zstd_level == 0 ? kBatchVersion : kBatchVersionZstd);
  Put16(&b, 0);
  Put32(&b, static_cast<uint32_t>(records.size()));
  if (zstd_level == 0) {
    b.append(body);
  } else {
    thread_local std::unique_ptr<ZSTD_CCtx, ZstdFree> cctx(ZSTD_createCCtx());
    if (!cctx) return Status::Error("litejet: batch: out of memory creating a zstd context", 7);
    Put64(&b, body.size());
    const size_t at = b.size();
    b.resize(at + ZSTD_compressBound(body.size()));
    const size_t r = ZSTD_compressCCtx(cctx.get(), &b[at], b.size() - at, body.data(), body.size(), zstd_level);
    if (ZSTD_isError(r)) return Status::Error(std::string("litejet: batch: zstd: ") + ZSTD_getErrorName(r));
    b.resize(at + r);
  }
  Put64(&b, XXH3_64bits(b.data(), b.size()));
  out->swap(b);
  return Status::OK();
}

bool IsBatch(const void* data, size_t n) { return n >= 4 && Load32(Bytes(data)) == kBatchMagic; }

Status Unbatch(std::string* message, std::vector<std::string>* records) {
  records->clear();
  if (IsBatch(message->data(), message->size())) return DecodeBatch(message->data(), message->size(), records);
  records->push_back(std::move(*message));
  return Status::OK();
}

Status DecodeBatch(const void* data, size_t n, std::vector<std::string>* records) {
  const unsigned char* p = Bytes(data);
  auto bad = [](const std::string& m) { return Status::Error("litejet: batch: " + m, kCorrupt); };
  if (n < 12 + 8) return bad("truncated (" + Str(n) + " bytes)");
  if (Load32(p) != kBatchMagic) return bad("bad magic");
  const uint16_t version = Load16(p + 4);
  if (version != kBatchVersion && version != kBatchVersionZstd) return bad("unsupported version " + Str(version));
  if (XXH3_64bits(p, n - 8) != Load64(p + n - 8)) return bad("checksum mismatch");
  const uint32_t count = Load32(p + 8);
  if (count == 0) return bad("no records");
  const unsigned char* body = p + 12;
  size_t body_len = n - 8 - 12;
  std::string raw;
  if (version == kBatchVersionZstd) {
    if (body_len < 8) return bad("truncated compressed body");
    const uint64_t raw_len = Load64(body);
    if (raw_len > kMaxBatchRaw) return bad("body of " + Str(raw_len) + " bytes is larger than allowed");
    const unsigned long long declared = ZSTD_getFrameContentSize(body + 8, body_len - 8);
    if (declared != raw_len) return bad("compressed body does not declare its length");
    thread_local std::unique_ptr<ZSTD_DCtx, ZstdFree> dctx(ZSTD_createDCtx());
    if (!dctx) return Status::Error("litejet: batch: out of memory creating a zstd context", 7);
    raw.resize(size_t(raw_len));
    const size_t r =
        ZSTD_decompressDCtx(dctx.get(), raw.empty() ? nullptr : &raw[0], raw.size(), body + 8, body_len - 8);
    if (ZSTD_isError(r) || r != raw_len) {
      return bad(std::string("compressed body: ") + (ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short"));
    }
    body = reinterpret_cast<const unsigned char*>(raw.data());
    body_len = raw.size();
  }
  std::vector<std::string> out;
  size_t off = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (body_len - off < 4) return bad("record " + Str(i) + " truncated");
    const uint32_t len = Load32(body + off);
    off += 4;
    if (body_len - off < len) return bad("record " + Str(i) + " runs past the end");
    out.emplace_back(reinterpret_cast<const char*>(body + off), len);
    off += len;
  }
  if (off != body_len) return bad("trailing bytes");
  records->swap(out);
  return Status::OK();
}

bool PeekChunk(const void* data, size_t n, ChunkInfo* out) {
  const unsigned char* p = Bytes(data);
  if (n < kChunkHeaderSize || Load32(p) != kChunkMagic) return false;
  out->txid = Load64(p + 8);
  out->index = Load32(p + 16);
  out->count = Load32(p + 20);
  return true;
}

}  // namespace litejet::record
