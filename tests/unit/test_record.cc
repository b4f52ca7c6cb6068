// Unit tests of the transaction record codec and its chunking (wal-capture/record.h):
// roundtrips, exact rejection messages, and damage at every byte.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {  // cmocka 1.1 declares its C functions without C linkage for C++
#include <cmocka.h>
}
#include <xxhash.h>
#include <zstd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "wal-capture/record.h"

using litejet::Status;
using namespace litejet::record;

namespace {

constexpr int kCorrupt = 11;  // SQLITE_CORRUPT

uint64_t g_seed = 0x4C4A5458u;  // overridable with LITEJET_TEST_SEED, printed by main

// Header offsets the tests edit (layout in record.h).
constexpr size_t kOffVersion = 4, kOffDbPages = 36, kOffPageCount = 40, kOffNodeLen = 60, kOffNode = 62;

void Set(std::string* s, size_t off, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) (*s)[off + i] = static_cast<char>(v >> (8 * i));
}
size_t HeaderLen(const std::string& rec) {
  return kMinHeaderSize +
         (static_cast<unsigned char>(rec[kOffNodeLen]) | static_cast<unsigned char>(rec[kOffNodeLen + 1]) << 8);
}
// Recomputes stored_len and both checksums after a test edited a record, so what rejects it is
// the check under test and not a checksum.
void Reseal(std::string* rec) {
  const size_t hl = HeaderLen(*rec);
  Set(rec, hl - 32, rec->size() - hl, 8);
  Set(rec, hl - 16, XXH3_64bits(rec->data() + hl, rec->size() - hl), 8);
  Set(rec, hl - 8, XXH3_64bits(rec->data(), hl - 8), 8);
}

// A txn with the given page numbers; pages are random, or mostly zero when compressible.
Txn MakeTxn(uint32_t page_size, const std::vector<uint32_t>& pgnos, uint32_t db_pages, std::mt19937_64* rng,
            bool compressible = false) {
  Txn t;
  t.txid = (*rng)();
  t.epoch = (*rng)();
  t.timestamp_us = (*rng)();
  t.node = "node-a";
  t.page_size = page_size;
  t.db_pages = db_pages;
  t.checksum_before = (*rng)();
  t.checksum_after = (*rng)();
  for (uint32_t pgno : pgnos) {
    Page p{pgno, std::string(page_size, '\0')};
    const size_t n = compressible ? 16 : page_size;
    for (size_t i = 0; i < n; i++) p.data[i] = static_cast<char>((*rng)());
    t.pages.push_back(std::move(p));
  }
  return t;
}
std::vector<uint32_t> Range(uint32_t first, uint32_t n) {
  std::vector<uint32_t> v;
  for (uint32_t i = 0; i < n; i++) v.push_back(first + i);
  return v;
}

void AssertSameTxn(const Txn& a, const Txn& b) {
  assert_int_equal(a.txid, b.txid);
  assert_int_equal(a.epoch, b.epoch);
  assert_int_equal(a.timestamp_us, b.timestamp_us);
  assert_string_equal(a.node.c_str(), b.node.c_str());
  assert_int_equal(a.page_size, b.page_size);
  assert_int_equal(a.db_pages, b.db_pages);
  assert_int_equal(a.checksum_before, b.checksum_before);
  assert_int_equal(a.checksum_after, b.checksum_after);
  assert_int_equal(a.pages.size(), b.pages.size());
  for (size_t i = 0; i < a.pages.size(); i++) {
    assert_int_equal(a.pages[i].pgno, b.pages[i].pgno);
    assert_true(a.pages[i].data == b.pages[i].data);
  }
}

void AssertError(const Status& s, int code, const char* msg) {
  if (s.ok() || s.code() != code || s.message() != msg)
    fail_msg("expected [%d] \"%s\", got [%d] \"%s\"", code, msg, s.code(), s.message().c_str());
}
void AssertErrorContains(const Status& s, int code, const char* part) {
  if (s.ok() || s.code() != code || s.message().find(part) == std::string::npos)
    fail_msg("expected [%d] containing \"%s\", got [%d] \"%s\"", code, part, s.code(), s.message().c_str());
}

std::string EncodeOk(const Txn& t, Compression c) {
  std::string rec;
  Status s = Encode(t, c, &rec);
  if (!s.ok()) fail_msg("encode: %s", s.message().c_str());
  return rec;
}

void AssertRoundtrip(const Txn& t) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    const std::string rec = EncodeOk(t, c);
    Txn back;
    Status s = Decode(rec.data(), rec.size(), &back);
    if (!s.ok()) fail_msg("decode: %s", s.message().c_str());
    AssertSameTxn(t, back);

    Header h;
    size_t hl = 0;
    assert_true(PeekHeader(rec.data(), rec.size(), &h, &hl).ok());
    assert_int_equal(hl, kMinHeaderSize + t.node.size());
    assert_int_equal(h.txid, t.txid);
    assert_int_equal(h.epoch, t.epoch);
    assert_int_equal(h.timestamp_us, t.timestamp_us);
    assert_int_equal(h.checksum_before, t.checksum_before);
    assert_int_equal(h.checksum_after, t.checksum_after);
    assert_int_equal(h.page_size, t.page_size);
    assert_int_equal(h.db_pages, t.db_pages);
    assert_int_equal(h.page_count, t.pages.size());
    assert_string_equal(h.node.c_str(), t.node.c_str());
    assert_int_equal(h.flags, c == Compression::kZstd ? kFlagZstd : 0);
    assert_int_equal(h.raw_len, t.pages.size() * (4 + uint64_t{t.page_size}));
    assert_int_equal(h.stored_len, rec.size() - hl);
  }
}

// --- roundtrips ---

void roundtrip_single_page_keeps_every_field(void**) {
  std::mt19937_64 rng(g_seed);
  AssertRoundtrip(MakeTxn(512, {1}, 1, &rng));
}

void roundtrip_many_pages_keeps_every_field(void**) {
  std::mt19937_64 rng(g_seed + 1);
  std::vector<uint32_t> pgnos;
  for (uint32_t i = 0; i < 300; i++) pgnos.push_back(1 + i * 3);
  AssertRoundtrip(MakeTxn(4096, pgnos, 1000, &rng));
}

void roundtrip_64k_pages_keeps_every_field(void**) {
  std::mt19937_64 rng(g_seed + 2);
  AssertRoundtrip(MakeTxn(65536, {1, 2, 7, 8, 100}, 100, &rng));
}

void roundtrip_zero_pages_and_max_node(void**) {
  std::mt19937_64 rng(g_seed + 3);
  Txn t = MakeTxn(4096, {}, 5, &rng);
  t.node = std::string(255, 'n');
  AssertRoundtrip(t);
}

void zstd_shrinks_compressible_pages(void**) {
  std::mt19937_64 rng(g_seed + 4);
  const Txn t = MakeTxn(4096, Range(1, 64), 64, &rng, true);
  const std::string plain = EncodeOk(t, Compression::kNone);
  const std::string packed = EncodeOk(t, Compression::kZstd);
  assert_int_equal(plain.size(), kMinHeaderSize + 6 + 64 * (4 + 4096));
  assert_true(packed.size() * 10 < plain.size());
}

void encode_appends_to_out(void**) {
  std::mt19937_64 rng(g_seed + 5);
  const Txn a = MakeTxn(512, {1}, 1, &rng), b = MakeTxn(1024, {2}, 2, &rng);
  std::string out = "prefix";
  assert_true(Encode(a, Compression::kZstd, &out).ok());
  const size_t mid = out.size();
  assert_true(Encode(b, Compression::kNone, &out).ok());
  Txn back;
  assert_true(Decode(out.data() + 6, mid - 6, &back).ok());
  AssertSameTxn(a, back);
  assert_true(Decode(out.data() + mid, out.size() - mid, &back).ok());
  AssertSameTxn(b, back);
}

// --- encoder validation ---

void encode_rejects_invalid_txns_with_exact_messages(void**) {
  std::mt19937_64 rng(g_seed + 6);
  const Txn good = MakeTxn(1024, {2, 5}, 10, &rng);
  struct Case {
    const char* msg;
    void (*edit)(Txn*);
  } cases[] = {
      {"litejet: record: page size 1000 is not a power of two in 512..65536", [](Txn* t) { t->page_size = 1000; }},
      {"litejet: record: page size 256 is not a power of two in 512..65536", [](Txn* t) { t->page_size = 256; }},
      {"litejet: record: page size 131072 is not a power of two in 512..65536", [](Txn* t) { t->page_size = 131072; }},
      {"litejet: record: page size 0 is not a power of two in 512..65536", [](Txn* t) { t->page_size = 0; }},
      {"litejet: record: db_pages is 0 (a database has at least one page)",
       [](Txn* t) {
         t->db_pages = 0;
         t->pages.clear();
       }},
      {"litejet: record: page count 2 exceeds db_pages 1", [](Txn* t) { t->db_pages = 1; }},
      {"litejet: record: page numbers not strictly increasing at index 1 (pgno 2 after 5)",
       [](Txn* t) { std::swap(t->pages[0].pgno, t->pages[1].pgno); }},
      {"litejet: record: page numbers not strictly increasing at index 1 (pgno 2 after 2)",
       [](Txn* t) { t->pages[1].pgno = 2; }},
      {"litejet: record: page number 0 at index 0 is out of range 1..10", [](Txn* t) { t->pages[0].pgno = 0; }},
      {"litejet: record: page number 11 at index 1 is out of range 1..10", [](Txn* t) { t->pages[1].pgno = 11; }},
      {"litejet: record: page 5 at index 1 has 1023 bytes, expected page size 1024",
       [](Txn* t) { t->pages[1].data.pop_back(); }},
      {"litejet: record: node name is 256 bytes (max 255)", [](Txn* t) { t->node.assign(256, 'x'); }},
  };
  for (const Case& c : cases) {
    Txn t = good;
    c.edit(&t);
    for (Compression comp : {Compression::kNone, Compression::kZstd}) {
      std::string out = "keep";
      AssertError(Encode(t, comp, &out), 1, c.msg);
      assert_string_equal(out.c_str(), "keep");
    }
  }
  std::string out;
  AssertError(Encode(good, static_cast<Compression>(9), &out), 1, "litejet: record: unknown compression");
}

// --- decoder rejection ---

void decode_rejects_every_truncation(void**) {
  std::mt19937_64 rng(g_seed + 7);
  const Txn t = MakeTxn(512, {1, 3}, 3, &rng);
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    const std::string rec = EncodeOk(t, c);
    const size_t hl = HeaderLen(rec);
    for (size_t n = 0; n < rec.size(); n++) {
      Txn out;
      out.txid = 77;
      const Status s = Decode(rec.data(), n, &out);
      AssertErrorContains(s, kCorrupt, n < hl ? "truncated header" : "truncated payload");
      assert_int_equal(out.txid, 77);  // untouched on failure
    }
    char expect[96];
    std::snprintf(expect, sizeof expect, "litejet: record: truncated header (got 20 of %zu bytes)", kMinHeaderSize);
    Txn out;
    AssertError(Decode(rec.data(), 20, &out), kCorrupt, expect);
    std::snprintf(expect, sizeof expect, "litejet: record: truncated header (got 70 of %zu bytes)", hl);
    AssertError(Decode(rec.data(), 70, &out), kCorrupt, expect);
  }
}

void decode_rejects_every_bit_flip(void**) {
  std::mt19937_64 rng(g_seed + 8);
  const Txn t = MakeTxn(512, {1, 3}, 3, &rng);
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    const std::string rec = EncodeOk(t, c);
    for (size_t i = 0; i < rec.size(); i++) {
      for (int bit = 0; bit < 8; bit++) {
        std::string bad = rec;
        bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
        Txn out;
        const Status s = Decode(bad.data(), bad.size(), &out);
        if (s.ok() || s.code() != kCorrupt || s.message().empty())
          fail_msg("flip of bit %d at byte %zu of %zu was not rejected", bit, i, rec.size());
      }
    }
  }
}

void decode_rejects_checksum_mismatches(void**) {
  std::mt19937_64 rng(g_seed + 9);
  const std::string rec = EncodeOk(MakeTxn(512, {1}, 1, &rng), Compression::kNone);
  Txn out;
  std::string bad = rec;
  bad[kOffNode] ^= 1;  // node name
  AssertError(Decode(bad.data(), bad.size(), &out), kCorrupt, "litejet: record: header checksum mismatch");
  bad = rec;
  bad.back() ^= 1;  // last byte of the last page
  AssertError(Decode(bad.data(), bad.size(), &out), kCorrupt, "litejet: record: payload checksum mismatch");
}

void decode_rejects_bad_magic(void**) {
  std::mt19937_64 rng(g_seed + 10);
  std::string rec = EncodeOk(MakeTxn(512, {1}, 1, &rng), Compression::kNone);
  rec[0] = 'X';
  Reseal(&rec);
  Txn out;
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt, "litejet: record: bad magic");
  AssertError(Decode(rec.data(), 4, &out), kCorrupt, "litejet: record: bad magic");
}

void decode_rejects_unknown_version(void**) {
  std::mt19937_64 rng(g_seed + 11);
  std::string rec = EncodeOk(MakeTxn(512, {1}, 1, &rng), Compression::kZstd);
  Set(&rec, kOffVersion, 7, 2);
  Reseal(&rec);
  Txn out;
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt, "litejet: record: unsupported version 7");
  // Reported even when the rest of a newer header would not parse as ours.
  AssertError(Decode(rec.data(), 6, &out), kCorrupt, "litejet: record: unsupported version 7");
}

void decode_rejects_unknown_flags(void**) {
  std::mt19937_64 rng(g_seed + 12);
  std::string rec = EncodeOk(MakeTxn(512, {1}, 1, &rng), Compression::kNone);
  Set(&rec, 6, 0x0004, 2);
  Reseal(&rec);
  Txn out;
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt, "litejet: record: unknown flags 0x0004");
}

// Epoch markers: no pages, no checksum change; they round-trip with their
// flag; a marker with pages (or a checksum change) is refused both ways.
void epoch_marker_round_trip_and_shape(void**) {
  Txn m;
  m.txid = 41;
  m.epoch = 9;
  m.node = "b";
  m.page_size = 4096;
  m.db_pages = 3;
  m.checksum_before = m.checksum_after = 0x1234;
  m.epoch_marker = true;
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    std::string rec = EncodeOk(m, c);
    Txn out;
    assert_true(Decode(rec.data(), rec.size(), &out).ok());
    assert_true(out.epoch_marker);
    assert_int_equal(out.txid, 41);
    assert_int_equal(out.epoch, 9);
    assert_int_equal(out.pages.size(), 0);
  }
  Txn bad = m;
  bad.checksum_after = 0x4321;
  std::string rec;
  AssertError(Encode(bad, Compression::kNone, &rec), 1,
              "litejet: record: an epoch marker carries no pages and changes no checksum");
  // A plain record with the marker flag set by hand is refused on decode.
  std::mt19937_64 rng(g_seed + 40);
  rec = EncodeOk(MakeTxn(512, {1}, 1, &rng), Compression::kNone);
  Set(&rec, 6, kFlagEpochMarker, 2);
  Reseal(&rec);
  Txn out;
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt,
              "litejet: record: an epoch marker with pages or a checksum change");
}

void decode_rejects_trailing_bytes(void**) {
  std::mt19937_64 rng(g_seed + 13);
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    std::string rec = EncodeOk(MakeTxn(512, {1}, 1, &rng), c);
    rec += "xyz";
    Txn out;
    AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt, "litejet: record: 3 trailing bytes after the record");
  }
}

void decode_rejects_decreasing_page_numbers(void**) {
  std::mt19937_64 rng(g_seed + 14);
  const Txn t = MakeTxn(512, {2, 5, 9}, 10, &rng);
  std::string rec = EncodeOk(t, Compression::kNone);
  const size_t hl = HeaderLen(rec);
  Set(&rec, hl + 4, 9, 4);  // pgnos become 2, 9, 9
  Set(&rec, hl + 8, 5, 4);  // and then 2, 9, 5
  Reseal(&rec);
  Txn out;
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt,
              "litejet: record: page numbers not strictly increasing at index 2 (pgno 5 after 9)");

  // The same check holds behind zstd: a frame holding 2, 2, 9.
  std::string raw;
  for (uint32_t pgno : {2u, 2u, 9u}) {
    raw.append(4, '\0');
    Set(&raw, raw.size() - 4, pgno, 4);
  }
  for (const Page& p : t.pages) raw += p.data;
  std::string frame(ZSTD_compressBound(raw.size()), '\0');
  frame.resize(ZSTD_compress(&frame[0], frame.size(), raw.data(), raw.size(), 1));
  std::string zrec = EncodeOk(t, Compression::kZstd);
  zrec.resize(HeaderLen(zrec));
  zrec += frame;
  Reseal(&zrec);
  AssertError(Decode(zrec.data(), zrec.size(), &out), kCorrupt,
              "litejet: record: page numbers not strictly increasing at index 1 (pgno 2 after 2)");
}

void decode_rejects_page_beyond_db_pages(void**) {
  std::mt19937_64 rng(g_seed + 15);
  std::string rec = EncodeOk(MakeTxn(512, {2, 5}, 5, &rng), Compression::kNone);
  Set(&rec, kOffDbPages, 4, 4);
  Reseal(&rec);
  Txn out;
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt,
              "litejet: record: page number 5 at index 1 is out of range 1..4");
}

void decode_rejects_zero_pages_with_zero_db_pages(void**) {
  std::mt19937_64 rng(g_seed + 16);
  Txn t = MakeTxn(4096, {}, 1, &rng);
  std::string rec = EncodeOk(t, Compression::kNone);
  Set(&rec, kOffDbPages, 0, 4);
  Reseal(&rec);
  Txn out;
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt,
              "litejet: record: db_pages is 0 (a database has at least one page)");
  t.db_pages = 0;
  AssertError(Encode(t, Compression::kNone, &rec), 1,
              "litejet: record: db_pages is 0 (a database has at least one page)");
}

void decode_rejects_lengths_that_disagree(void**) {
  std::mt19937_64 rng(g_seed + 17);
  const Txn t = MakeTxn(512, {1, 2}, 2, &rng);
  Txn out;
  // page_count edited: raw_len no longer matches.
  std::string rec = EncodeOk(t, Compression::kNone);
  Set(&rec, kOffPageCount, 1, 4);
  Reseal(&rec);
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt,
              "litejet: record: raw_len 1032 != page_count 1 * (4 + page_size 512)");
  // A zstd frame declaring fewer bytes than raw_len.
  rec = EncodeOk(t, Compression::kZstd);
  const std::string raw(100, 'a');
  std::string frame(ZSTD_compressBound(raw.size()), '\0');
  frame.resize(ZSTD_compress(&frame[0], frame.size(), raw.data(), raw.size(), 1));
  rec.resize(HeaderLen(rec));
  rec += frame;
  Reseal(&rec);
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt,
              "litejet: record: zstd frame content size 100 != raw_len 1032");
  // Stored bytes that are not zstd at all.
  rec.resize(HeaderLen(rec));
  rec += std::string(40, 'z');
  Reseal(&rec);
  AssertError(Decode(rec.data(), rec.size(), &out), kCorrupt, "litejet: record: payload is not a zstd frame");
}

void peek_header_needs_only_the_header(void**) {
  std::mt19937_64 rng(g_seed + 18);
  const Txn t = MakeTxn(2048, Range(3, 10), 20, &rng);
  const std::string rec = EncodeOk(t, Compression::kZstd);
  Header h;
  size_t hl = 0;
  assert_true(PeekHeader(rec.data(), HeaderLen(rec), &h, &hl).ok());
  assert_int_equal(hl, HeaderLen(rec));
  assert_int_equal(h.txid, t.txid);
  assert_int_equal(h.page_count, 10);
  assert_int_equal(h.stored_len, rec.size() - hl);
  assert_int_equal(h.payload_xxh3, XXH3_64bits(rec.data() + hl, rec.size() - hl));
  AssertErrorContains(PeekHeader(rec.data(), hl - 1, &h, &hl), kCorrupt, "truncated header");
}

// --- chunking ---

std::vector<std::string> SplitOk(const std::string& rec, uint64_t txid, size_t max_chunk) {
  std::vector<std::string> chunks;
  Status s = Split(rec, txid, max_chunk, &chunks);
  if (!s.ok()) fail_msg("split: %s", s.message().c_str());
  return chunks;
}

// Feeds chunks in order; returns the record, failing if it completes early or not at all.
std::string Reassemble(Reassembler* r, const std::vector<std::string>& chunks, uint64_t txid) {
  std::string rec;
  for (size_t i = 0; i < chunks.size(); i++) {
    bool complete = false;
    uint64_t got = 0;
    Status s = r->Add(chunks[i].data(), chunks[i].size(), &complete, &rec, &got);
    if (!s.ok()) fail_msg("chunk %zu: %s", i, s.message().c_str());
    assert_int_equal(complete, i + 1 == chunks.size());
    if (complete) assert_int_equal(got, txid);
  }
  assert_false(r->pending());
  return rec;
}

Status AddOne(Reassembler* r, const std::string& chunk) {
  bool complete = true;
  std::string rec;
  uint64_t txid = 0;
  Status s = r->Add(chunk.data(), chunk.size(), &complete, &rec, &txid);
  assert_false(complete && !s.ok());
  return s;
}

void split_small_record_is_one_chunk(void**) {
  std::mt19937_64 rng(g_seed + 19);
  const std::string rec = EncodeOk(MakeTxn(4096, {1}, 1, &rng), Compression::kNone);
  const auto chunks = SplitOk(rec, 42, 1 << 20);
  assert_int_equal(chunks.size(), 1);
  assert_int_equal(chunks[0].size(), kChunkHeaderSize + rec.size());
  Reassembler r;
  assert_true(Reassemble(&r, chunks, 42) == rec);
}

void split_3mib_record_reassembles_identically(void**) {
  std::mt19937_64 rng(g_seed + 20);
  const Txn t = MakeTxn(4096, Range(1, 768), 800, &rng);
  const std::string rec = EncodeOk(t, Compression::kNone);
  assert_true(rec.size() > (3u << 20) - 8192 && rec.size() < (3u << 20) + 8192);
  const auto chunks = SplitOk(rec, t.txid, 1 << 20);
  assert_int_equal(chunks.size(), (rec.size() + (1 << 20) - kChunkHeaderSize - 1) / ((1 << 20) - kChunkHeaderSize));
  for (const std::string& c : chunks) assert_true(c.size() <= (1u << 20));
  Reassembler r;
  const std::string back = Reassemble(&r, chunks, t.txid);
  assert_true(back == rec);
  Txn decoded;
  assert_true(Decode(back.data(), back.size(), &decoded).ok());
  AssertSameTxn(t, decoded);
  // The reassembler is reusable for the next transaction.
  assert_true(Reassemble(&r, chunks, t.txid) == rec);
}

void split_honours_the_smallest_chunk_size(void**) {
  std::vector<std::string> chunks;
  AssertError(Split("abc", 1, kChunkHeaderSize, &chunks), 1,
              "litejet: chunk: max_chunk 44 is too small (need at least 45 bytes)");
  chunks = SplitOk("abcdefg", 9, kChunkHeaderSize + 1);
  assert_int_equal(chunks.size(), 7);
  Reassembler r;
  assert_string_equal(Reassemble(&r, chunks, 9).c_str(), "abcdefg");
  chunks = SplitOk("", 10, 100);  // an empty record still makes one chunk
  assert_int_equal(chunks.size(), 1);
  assert_true(Reassemble(&r, chunks, 10).empty());
}

void reassembler_rejects_out_of_order_chunks(void**) {
  const std::string rec(1000, 'r');
  const auto chunks = SplitOk(rec, 5, 300);
  assert_int_equal(chunks.size(), 4);
  Reassembler r;
  assert_true(AddOne(&r, chunks[0]).ok());
  AssertError(AddOne(&r, chunks[2]), kCorrupt, "litejet: chunk: out of order: expected chunk 1 of txid 5, got chunk 2");
  assert_false(r.pending());
  AssertError(AddOne(&r, chunks[1]), kCorrupt,
              "litejet: chunk: chunk 1 of txid 5 arrived without chunk 0 (out of order or a lost "
              "start)");
  assert_true(Reassemble(&r, chunks, 5) == rec);  // recovers from a fresh chunk 0
}

void reassembler_rejects_duplicate_chunks(void**) {
  const auto chunks = SplitOk(std::string(1000, 'd'), 6, 300);
  Reassembler r;
  assert_true(AddOne(&r, chunks[0]).ok());
  assert_true(AddOne(&r, chunks[1]).ok());
  AssertError(AddOne(&r, chunks[1]), kCorrupt, "litejet: chunk: duplicate chunk 1 of txid 6 (chunk 2 expected)");
  assert_false(r.pending());
}

void reassembler_rejects_chunk_of_another_txid(void**) {
  const std::string rec(1000, 'x');
  const auto a = SplitOk(rec, 7, 300), b = SplitOk(rec, 8, 300);
  Reassembler r;
  assert_true(AddOne(&r, a[0]).ok());
  AssertError(AddOne(&r, b[1]), kCorrupt,
              "litejet: chunk: chunk 1 of txid 8 arrived while txid 7 was incomplete (chunk 1 of "
              "4 expected)");
  // Chunk 0 of a new txid (say a retry) can be added again after the error.
  assert_true(AddOne(&r, a[0]).ok());
  AssertErrorContains(AddOne(&r, b[0]), kCorrupt, "arrived while txid 7 was incomplete");
  assert_true(Reassemble(&r, b, 8) == rec);
}

void reassembler_rejects_totals_that_disagree(void**) {
  const auto a = SplitOk(std::string(1000, 'a'), 3, 300), b = SplitOk(std::string(1200, 'b'), 3, 300);
  Reassembler r;
  assert_true(AddOne(&r, a[0]).ok());
  AssertError(AddOne(&r, b[1]), kCorrupt,
              "litejet: chunk: chunk 1 of txid 3 says 5 chunks / 1200 bytes but chunk 0 said 4 "
              "chunks / 1000 bytes");
}

// Rewrites a chunk's total record length and recomputes its hash, as a buggy writer would.
std::string WithTotal(std::string chunk, uint64_t total) {
  Set(&chunk, 24, total, 8);
  const uint64_t seed = XXH3_64bits(chunk.data(), 36);
  Set(&chunk, 36, XXH3_64bits_withSeed(chunk.data() + kChunkHeaderSize, chunk.size() - kChunkHeaderSize, seed), 8);
  return chunk;
}

void reassembler_rejects_chunks_that_miss_their_total(void**) {
  const auto chunks = SplitOk("abcdef", 12, 100);
  Reassembler r;
  AssertError(AddOne(&r, WithTotal(chunks[0], 10)), kCorrupt,
              "litejet: chunk: txid 12 ended after 1 chunks with 6 of 10 bytes");
  AssertError(AddOne(&r, WithTotal(chunks[0], 3)), kCorrupt,
              "litejet: chunk: chunks of txid 12 carry more than its 3 bytes");
  assert_false(r.pending());
  assert_string_equal(Reassemble(&r, chunks, 12).c_str(), "abcdef");
}

void reassembler_rejects_every_corrupted_byte(void**) {
  const auto chunks = SplitOk("a small record", 11, kChunkHeaderSize + 8);
  assert_int_equal(chunks.size(), 2);
  for (size_t i = 0; i < chunks[0].size(); i++) {
    std::string bad = chunks[0];
    bad[i] ^= 0x10;
    Reassembler r;
    const Status s = AddOne(&r, bad);
    if (s.ok() || s.code() != kCorrupt) fail_msg("flip at byte %zu of chunk 0 accepted", i);
    assert_false(r.pending());
  }
  std::string bad = chunks[0];
  bad.back() ^= 1;
  Reassembler r;
  AssertError(AddOne(&r, bad), kCorrupt, "litejet: chunk: chunk 0 of txid 11 fails its hash check");
  bad = chunks[0];
  bad.pop_back();
  AssertError(AddOne(&r, bad), kCorrupt, "litejet: chunk: chunk 0 of txid 11 says 8 data bytes but carries 7");
  AssertError(AddOne(&r, bad.substr(0, 10)), kCorrupt, "litejet: chunk: truncated header (got 10 of 44 bytes)");
  bad = chunks[0];
  bad[0] = 'x';
  AssertError(AddOne(&r, bad), kCorrupt, "litejet: chunk: bad magic");
}

}  // namespace

// PeekChunk reads a chunk's txid, index and count as Split wrote them.
static void peek_chunk_reads_split_headers(void** state) {
  (void)state;
  std::string rec(10000, 'r');
  std::vector<std::string> chunks;
  assert_true(litejet::record::Split(rec, 77, 4096, &chunks).ok());
  assert_true(chunks.size() > 2);
  for (size_t i = 0; i < chunks.size(); i++) {
    litejet::record::ChunkInfo ci;
    assert_true(litejet::record::PeekChunk(chunks[i].data(), chunks[i].size(), &ci));
    assert_int_equal(ci.txid, 77);
    assert_int_equal(ci.index, i);
    assert_int_equal(ci.count, chunks.size());
  }
  litejet::record::ChunkInfo ci;
  assert_false(litejet::record::PeekChunk(rec.data(), rec.size(), &ci));
  assert_false(litejet::record::PeekChunk(chunks[0].data(), 10, &ci));
}

// Batches: several records in one message.
static void batch_roundtrip_and_rejects_damage(void** state) {
  (void)state;
  std::vector<std::string> recs = {"first", std::string(1000, 'x'), "third"};
  std::string b;
  assert_true(litejet::record::EncodeBatch(recs, &b).ok());
  assert_true(litejet::record::IsBatch(b.data(), b.size()));
  std::vector<std::string> back;
  assert_true(litejet::record::DecodeBatch(b.data(), b.size(), &back).ok());
  assert_true(back == recs);
  // Every truncation and every single-byte change is rejected.
  for (size_t n = 0; n < b.size(); n++) assert_false(litejet::record::DecodeBatch(b.data(), n, &back).ok());
  for (size_t i = 0; i < b.size(); i++) {
    std::string c = b;
    c[i] = static_cast<char>(c[i] ^ 0x20);
    assert_false(litejet::record::DecodeBatch(c.data(), c.size(), &back).ok());
  }
  litejet::Status s = litejet::record::DecodeBatch("LJBT", 4, &back);
  assert_string_equal(s.message().c_str(), "litejet: batch: truncated (4 bytes)");
  assert_false(litejet::record::EncodeBatch({}, &b).ok());
}

// Compressed batches (version 2): consecutive transactions rewriting the
// same page shrink together; damage, a lying length and oversized bodies are
// rejected.
static void batch_zstd_roundtrip_and_rejects_damage(void** state) {
  (void)state;
  std::vector<std::string> recs;
  std::string page(4096, '\0');
  for (int i = 0; i < 50; i++) {
    for (size_t k = 0; k < page.size(); k += 97) page[k] = static_cast<char>('a' + (k * 7 + size_t(i)) % 26);
    page[size_t(i) * 13 % page.size()] = static_cast<char>(i);
    recs.push_back(page);
  }
  std::string plain, packed;
  assert_true(litejet::record::EncodeBatch(recs, &plain).ok());
  assert_true(litejet::record::EncodeBatch(recs, &packed, 1).ok());
  std::printf("  50 similar 4 KiB records: plain batch %zu bytes, compressed %zu\n", plain.size(), packed.size());
  assert_true(packed.size() * 10 < plain.size());
  std::vector<std::string> back;
  assert_true(litejet::record::DecodeBatch(packed.data(), packed.size(), &back).ok());
  assert_true(back == recs);
  for (size_t n = 0; n < packed.size(); n++) assert_false(litejet::record::DecodeBatch(packed.data(), n, &back).ok());
  for (size_t i = 0; i < packed.size(); i++) {
    std::string c = packed;
    c[i] = static_cast<char>(c[i] ^ 0x01);
    assert_false(litejet::record::DecodeBatch(c.data(), c.size(), &back).ok());
  }
  // A body length that disagrees with the zstd frame, or one over the limit,
  // resealed with a valid batch hash: still rejected, with the reason.
  auto reseal = [](std::string b) {
    uint64_t h = XXH3_64bits(b.data(), b.size() - 8);
    for (int k = 0; k < 8; k++) b[b.size() - 8 + size_t(k)] = static_cast<char>(h >> (8 * k));
    return b;
  };
  std::string lie = packed;
  lie[12] = static_cast<char>(lie[12] + 1);
  litejet::Status s = litejet::record::DecodeBatch(reseal(lie).data(), lie.size(), &back);
  assert_string_equal(s.message().c_str(), "litejet: batch: compressed body does not declare its length");
  std::string huge = packed;
  huge[12 + 7] = 0x7f;
  s = litejet::record::DecodeBatch(reseal(huge).data(), huge.size(), &back);
  assert_non_null(std::strstr(s.message().c_str(), "is larger than allowed"));
  assert_int_equal(s.code(), 11);  // SQLITE_CORRUPT
}

int main() {
  if (const char* env = std::getenv("LITEJET_TEST_SEED")) g_seed = std::strtoull(env, nullptr, 0);
  std::printf("test_record: seed 0x%" PRIx64 " (set LITEJET_TEST_SEED to replay)\n", g_seed);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(roundtrip_single_page_keeps_every_field),
      cmocka_unit_test(roundtrip_many_pages_keeps_every_field),
      cmocka_unit_test(roundtrip_64k_pages_keeps_every_field),
      cmocka_unit_test(roundtrip_zero_pages_and_max_node),
      cmocka_unit_test(zstd_shrinks_compressible_pages),
      cmocka_unit_test(encode_appends_to_out),
      cmocka_unit_test(encode_rejects_invalid_txns_with_exact_messages),
      cmocka_unit_test(decode_rejects_every_truncation),
      cmocka_unit_test(decode_rejects_every_bit_flip),
      cmocka_unit_test(decode_rejects_checksum_mismatches),
      cmocka_unit_test(decode_rejects_bad_magic),
      cmocka_unit_test(decode_rejects_unknown_version),
      cmocka_unit_test(decode_rejects_unknown_flags),
      cmocka_unit_test(epoch_marker_round_trip_and_shape),
      cmocka_unit_test(decode_rejects_trailing_bytes),
      cmocka_unit_test(decode_rejects_decreasing_page_numbers),
      cmocka_unit_test(decode_rejects_page_beyond_db_pages),
      cmocka_unit_test(decode_rejects_zero_pages_with_zero_db_pages),
      cmocka_unit_test(decode_rejects_lengths_that_disagree),
      cmocka_unit_test(peek_header_needs_only_the_header),
      cmocka_unit_test(split_small_record_is_one_chunk),
      cmocka_unit_test(split_3mib_record_reassembles_identically),
      cmocka_unit_test(split_honours_the_smallest_chunk_size),
      cmocka_unit_test(reassembler_rejects_out_of_order_chunks),
      cmocka_unit_test(reassembler_rejects_duplicate_chunks),
      cmocka_unit_test(reassembler_rejects_chunk_of_another_txid),
      cmocka_unit_test(reassembler_rejects_totals_that_disagree),
      cmocka_unit_test(reassembler_rejects_chunks_that_miss_their_total),
      cmocka_unit_test(reassembler_rejects_every_corrupted_byte),
      cmocka_unit_test(batch_roundtrip_and_rejects_damage),
      cmocka_unit_test(batch_zstd_roundtrip_and_rejects_damage),
      cmocka_unit_test(peek_chunk_reads_split_headers),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
