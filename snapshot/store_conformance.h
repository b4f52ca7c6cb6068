// snapshot/store_conformance.h: behaviour every snapshot Store must show,
// through Put/List/Get/Delete, as checks returning Status (any test
// framework runs them). Each check expects a store with no snapshots.
#pragma once

#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "snapshot/snapshot.h"
#include "wal-capture/checksum.h"

namespace litejet::snapshot::conformance {

#define LITEJET_SNAP_CHECK(cond, msg)                                                   \
  do {                                                                                  \
    if (!(cond)) return ::litejet::Status::Error(std::string(__func__) + ": " + (msg)); \
  } while (0)
#define LITEJET_SNAP_OK(expr)                                                                                         \
  do {                                                                                                                \
    ::litejet::Status s_ = (expr);                                                                                    \
    if (!s_.ok()) return ::litejet::Status::Error(std::string(__func__) + ": " #expr ": " + s_.message(), s_.code()); \
  } while (0)

// Pages in memory: page i is `fill(i)`.
class VectorSource final : public PageSource {
 public:
  VectorSource(uint32_t page_size, std::vector<std::string> pages) : ps_(page_size), pages_(std::move(pages)) {}
  uint32_t page_size() const override { return ps_; }
  uint32_t db_pages() const override { return uint32_t(pages_.size()); }
  Status Read(uint32_t pgno, void* buf) override {
    std::memcpy(buf, pages_.at(pgno - 1).data(), ps_);
    return Status::OK();
  }
  uint64_t Checksum() const {
    uint64_t s = 0;
    for (uint32_t i = 0; i < pages_.size(); i++) s ^= checksum::PageHash(pages_[i].data(), ps_, i + 1);
    return s;
  }
  const std::vector<std::string>& pages() const { return pages_; }

 private:
  uint32_t ps_;
  std::vector<std::string> pages_;
};

// n pages: compressible (text-like) ones, and random ones when `random`.
inline VectorSource MakePages(uint32_t page_size, uint32_t n, bool random, uint32_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> pages(n, std::string(page_size, '\0'));
  for (uint32_t i = 0; i < n; i++) {
    for (uint32_t j = 0; j < page_size; j += 8) {
      uint64_t v = random ? rng() : (uint64_t(i) * 1000003 + j / 64);
      std::memcpy(&pages[i][j], &v, 8);
    }
  }
  return VectorSource(page_size, std::move(pages));
}

inline Status ReadBack(Store& st, const Manifest& m, std::vector<std::string>* pages, uint32_t* chunks) {
  pages->clear();
  *chunks = 0;
  return Get(st, m, 10000, [&](const ChunkHeader& h, const std::string& raw) {
    (*chunks)++;
    for (uint32_t i = 0; i < h.page_count; i++) pages->push_back(raw.substr(size_t(i) * h.page_size, h.page_size));
    return Status::OK();
  });
}

inline PutInfo InfoFor(const VectorSource& src, uint64_t txid) {
  PutInfo in;
  in.txid = txid;
  in.checksum = src.Checksum();
  in.log_seq = txid * 10;
  in.epoch = 7;
  in.commit_time_us = 1700000000000000ULL + txid;
  return in;
}

// Several chunks; List gives every field back; Get gives the pages in order.
inline Status RoundTrip(Store& st) {
  VectorSource src = MakePages(4096, 300, false);
  Manifest m;
  LITEJET_SNAP_OK(Put(st, src, InfoFor(src, 42), 10000, &m, 64 * 4096));
  LITEJET_SNAP_CHECK(m.chunk_count == 5,
                     "300 pages of 64 per chunk: want 5 chunks, got " + std::to_string(m.chunk_count));
  std::vector<Manifest> list;
  LITEJET_SNAP_OK(List(st, 10000, &list));
  LITEJET_SNAP_CHECK(list.size() == 1, "List: want 1 snapshot, got " + std::to_string(list.size()));
  const Manifest& l = list[0];
  LITEJET_SNAP_CHECK(l.id == m.id && l.txid == 42 && l.checksum == src.Checksum() && l.page_size == 4096 &&
                         l.db_pages == 300 && l.chunk_count == 5 && l.log_seq == 420 && l.epoch == 7 &&
                         l.commit_time_us == 1700000000000042ULL && l.raw_bytes == 300 * 4096 &&
                         l.stored_bytes == m.stored_bytes && l.time_ms == m.time_ms && l.time_ms > 0,
                     "List: the manifest's fields differ from Put's");
  std::vector<std::string> pages;
  uint32_t chunks = 0;
  LITEJET_SNAP_OK(ReadBack(st, l, &pages, &chunks));
  LITEJET_SNAP_CHECK(chunks == 5 && pages == src.pages(), "Get: pages differ");
  return Status::OK();
}

// Incompressible pages in 1 MiB runs do not fit a message: split, each fits.
inline Status IncompressibleSplits(Store& st) {
  VectorSource src = MakePages(4096, 600, true);
  Manifest m;
  LITEJET_SNAP_OK(Put(st, src, InfoFor(src, 5), 20000, &m));
  LITEJET_SNAP_CHECK(m.chunk_count >= 4,
                     "2.4 MB of random pages: want >= 4 chunks, got " + std::to_string(m.chunk_count));
  size_t biggest = 0;
  LITEJET_SNAP_OK(st.Chunks(m.id, 10000, [&](const std::string& c) {
    biggest = std::max(biggest, c.size());
    return true;
  }));
  LITEJET_SNAP_CHECK(biggest <= st.MaxPayload(),
                     "a chunk of " + std::to_string(biggest) + " bytes exceeds max payload");
  std::vector<std::string> pages;
  uint32_t chunks = 0;
  LITEJET_SNAP_OK(ReadBack(st, m, &pages, &chunks));
  LITEJET_SNAP_CHECK(pages == src.pages(), "Get: pages differ");
  return Status::OK();
}

// A checksum that is not the pages': an error naming both, no manifest, no chunks left.
inline Status ChecksumMismatchPublishesNothing(Store& st) {
  VectorSource src = MakePages(1024, 100, false);
  PutInfo in = InfoFor(src, 9);
  in.checksum ^= 1;
  in.id = 0xabc;
  Status s = Put(st, src, in, 10000, nullptr, 20 * 1024);
  const std::string want = "litejet: snapshot 0000000000000abc (TXID 9): the pages read sum to " +
                           checksum::Hex(src.Checksum()) + ", but the checksum at TXID 9 is " +
                           checksum::Hex(in.checksum) + ": not published";
  LITEJET_SNAP_CHECK(!s.ok() && s.message() == want, "want \"" + want + "\", got \"" + s.message() + "\"");
  std::vector<Manifest> list;
  LITEJET_SNAP_OK(List(st, 10000, &list));
  LITEJET_SNAP_CHECK(list.empty(), "a manifest was published");
  int left = 0;
  LITEJET_SNAP_OK(st.Chunks(0xabc, 10000, [&](const std::string&) { return ++left > 0; }));
  LITEJET_SNAP_CHECK(left == 0, std::to_string(left) + " chunks left behind");
  return Status::OK();
}

// Newest first; Delete removes one; a manifest without chunks is listed and
// Get names its first chunk missing.
inline Status ListDeleteAndOrphans(Store& st) {
  VectorSource a = MakePages(512, 10, false, 1), b = MakePages(512, 12, false, 2);
  Manifest ma, mb;
  LITEJET_SNAP_OK(Put(st, a, InfoFor(a, 3), 10000, &ma));
  LITEJET_SNAP_OK(Put(st, b, InfoFor(b, 8), 10000, &mb));
  Manifest orphan = mb;
  orphan.id = 0x77;
  orphan.txid = 5;
  LITEJET_SNAP_OK(st.PublishManifest(orphan.id, EncodeManifest(orphan), 10000));
  std::vector<Manifest> list;
  LITEJET_SNAP_OK(List(st, 10000, &list));
  LITEJET_SNAP_CHECK(list.size() == 3 && list[0].txid == 8 && list[1].txid == 5 && list[2].txid == 3,
                     "List: want TXIDs 8, 5, 3");
  Status g = Get(st, orphan, 10000, [](const ChunkHeader&, const std::string&) { return Status::OK(); });
  const std::string want = "litejet: snapshot 0000000000000077 chunk 0: missing (0 of 1 chunks found)";
  LITEJET_SNAP_CHECK(g.code() == kBadChunk && g.message() == want, "orphan: got \"" + g.message() + "\"");
  LITEJET_SNAP_OK(Delete(st, mb.id, 10000));
  LITEJET_SNAP_OK(Delete(st, orphan.id, 10000));
  LITEJET_SNAP_OK(List(st, 10000, &list));
  LITEJET_SNAP_CHECK(list.size() == 1 && list[0].id == ma.id, "after Delete: want only TXID 3");
  std::vector<std::string> pages;
  uint32_t chunks = 0;
  LITEJET_SNAP_OK(ReadBack(st, list[0], &pages, &chunks));
  LITEJET_SNAP_CHECK(pages == a.pages(), "the kept snapshot's pages differ");
  return Status::OK();
}

// A damaged chunk, a missing middle chunk and a missing last chunk are each
// reported with the snapshot id and chunk index.
inline Status DamageDetected(Store& st) {
  VectorSource src = MakePages(1024, 40, false);
  PutInfo in = InfoFor(src, 11);
  in.id = 0x5eed;
  Manifest m;
  LITEJET_SNAP_OK(Put(st, src, in, 10000, &m, 10 * 1024));  // 4 chunks
  LITEJET_SNAP_CHECK(m.chunk_count == 4, "want 4 chunks");
  auto get = [&] { return Get(st, m, 10000, [](const ChunkHeader&, const std::string&) { return Status::OK(); }); };
  std::string good1;
  uint32_t i = 0;
  LITEJET_SNAP_OK(st.Chunks(m.id, 10000, [&](const std::string& c) {
    if (i++ == 1) good1 = c;
    return true;
  }));
  std::string flipped = good1;
  flipped[flipped.size() - 3] ^= 0x20;
  LITEJET_SNAP_OK(st.Damage(m.id, 1, flipped, 10000));
  Status g = get();
  std::string want = "litejet: snapshot 0000000000005eed chunk 1: compressed bytes checksum mismatch";
  LITEJET_SNAP_CHECK(g.code() == kBadChunk && g.message() == want, "flipped byte: got \"" + g.message() + "\"");
  LITEJET_SNAP_OK(st.Damage(m.id, 1, good1.substr(0, good1.size() - 10), 10000));
  g = get();
  want = "litejet: snapshot 0000000000005eed chunk 1: truncated (" +
         std::to_string(good1.size() - 10 - kChunkHeaderSize) + " of " +
         std::to_string(good1.size() - kChunkHeaderSize) + " stored bytes)";
  LITEJET_SNAP_CHECK(g.code() == kBadChunk && g.message() == want, "truncated: got \"" + g.message() + "\"");
  LITEJET_SNAP_OK(st.Damage(m.id, 1, "", 10000));
  g = get();
  want = "litejet: snapshot 0000000000005eed chunk 1: found chunk 2 of snapshot 0000000000005eed in its place";
  LITEJET_SNAP_CHECK(g.code() == kBadChunk && g.message() == want, "deleted: got \"" + g.message() + "\"");
  return Status::OK();
}

}  // namespace litejet::snapshot::conformance
