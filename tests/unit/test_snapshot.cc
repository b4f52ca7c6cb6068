// Unit tests of the snapshot layer (snapshot/snapshot.h): the chunk and
// manifest codec (round trip, every damage and truncation detected with its
// exact message), the Store conformance on the in-memory store, the
// retention plan, and Restore from an in-memory log with and without a
// snapshot, by TXID and by time, falling back past a damaged chunk.
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>
extern "C" {
#include <cmocka.h>
}

#include <sqlite3.h>

#include "snapshot/snapshot.h"
#include "snapshot/store_conformance.h"
#include "transport/log.h"
#include "wal-capture/checksum.h"
#include "wal-capture/record.h"

namespace sn = litejet::snapshot;
namespace conf = litejet::snapshot::conformance;
namespace lt = litejet::transport;
using litejet::Status;

namespace {

void AssertOk(const Status& st) {
  if (!st.ok()) print_error("%s (code %d)\n", st.message().c_str(), st.code());
  assert_true(st.ok());
}

void AssertError(const Status& st, int code, const std::string& want) {
  if (st.ok() || st.code() != code || st.message() != want) {
    print_error("want code %d \"%s\"\n got code %d \"%s\"\n", code, want.c_str(), st.code(), st.message().c_str());
  }
  assert_false(st.ok());
  assert_int_equal(st.code(), code);
  assert_string_equal(st.message().c_str(), want.c_str());
}

std::string Pages(uint32_t page_size, uint32_t n, char seed) {
  std::string raw(size_t(page_size) * n, '\0');
  for (size_t i = 0; i < raw.size(); i++) raw[i] = char(seed + (i % 251) * ((i / page_size) + 1));
  return raw;
}

// ------------------------------------------------------------ codec

void chunk_round_trips(void**) {
  std::string raw = Pages(4096, 7, 3), enc, back;
  AssertOk(sn::EncodeChunk(0x1234, 5, 11, 4096, raw, &enc));
  sn::ChunkHeader h;
  AssertOk(sn::DecodeChunk(enc.data(), enc.size(), &h, &back));
  assert_true(back == raw);
  assert_true(h.id == 0x1234 && h.index == 5 && h.first_pgno == 11 && h.page_count == 7 && h.page_size == 4096);
  assert_true(h.raw_len == raw.size() && h.stored_len == enc.size() - sn::kChunkHeaderSize);
  assert_true(enc.size() < raw.size() / 4);  // compressed
}

void chunk_damage_at_every_byte_is_detected(void**) {
  std::string raw = Pages(1024, 3, 9), enc, back;
  AssertOk(sn::EncodeChunk(77, 0, 1, 1024, raw, &enc));
  for (size_t i = 0; i < enc.size(); i++) {
    for (int bit : {0, 7}) {
      std::string bad = enc;
      bad[i] ^= char(1 << bit);
      sn::ChunkHeader h;
      Status s = sn::DecodeChunk(bad.data(), bad.size(), &h, &back);
      if (s.ok()) print_error("flipping bit %d of byte %zu went unnoticed\n", bit, i);
      assert_false(s.ok());
      assert_int_equal(s.code(), 11);
    }
  }
  for (size_t n = 0; n < enc.size(); n++) {
    sn::ChunkHeader h;
    assert_false(sn::DecodeChunk(enc.data(), n, &h, &back).ok());
  }
}

void chunk_errors_are_exact(void**) {
  std::string raw = Pages(1024, 2, 1), enc, back;
  AssertOk(sn::EncodeChunk(77, 3, 1, 1024, raw, &enc));
  sn::ChunkHeader h;
  AssertError(sn::DecodeChunk(enc.data(), 50, &h, &back), 11,
              "litejet: snapshot chunk: truncated header (50 of 72 bytes)");
  std::string b = enc;
  b[0] = 'X';
  AssertError(sn::DecodeChunk(b.data(), b.size(), &h, &back), 11,
              "litejet: snapshot chunk: bad magic (not a snapshot chunk)");
  b = enc;
  b[4] = 2;
  AssertError(sn::DecodeChunk(b.data(), b.size(), &h, &back), 11,
              "litejet: snapshot chunk: version 2 (this litejet reads version 1)");
  b = enc;
  b[20] ^= 1;
  AssertError(sn::DecodeChunk(b.data(), b.size(), &h, &back), 11, "litejet: snapshot chunk: header checksum mismatch");
  const size_t stored = enc.size() - sn::kChunkHeaderSize;
  AssertError(sn::DecodeChunk(enc.data(), enc.size() - 1, &h, &back), 11,
              "litejet: snapshot chunk 3: truncated (" + std::to_string(stored - 1) + " of " + std::to_string(stored) +
                  " stored bytes)");
  b = enc + "zz";
  AssertError(sn::DecodeChunk(b.data(), b.size(), &h, &back), 11, "litejet: snapshot chunk 3: 2 bytes after its end");
  b = enc;
  b[b.size() - 1] ^= 1;
  AssertError(sn::DecodeChunk(b.data(), b.size(), &h, &back), 11,
              "litejet: snapshot chunk 3: compressed bytes checksum mismatch");
  AssertError(sn::EncodeChunk(1, 0, 1, 1000, raw, &enc), 1,
              "litejet: snapshot chunk: invalid pages (page size 1000, 2048 bytes from page 1)");
}

void manifest_round_trips_and_damage_is_detected(void**) {
  sn::Manifest m;
  m.id = 0xfeed;
  m.txid = 99;
  m.checksum = 0x0123456789abcdefULL;
  m.page_size = 4096;
  m.db_pages = 10;
  m.chunk_count = 2;
  m.log_seq = 150;
  m.epoch = 4;
  m.time_ms = 1764280800000ULL;
  m.commit_time_us = 1764280799000123ULL;
  m.raw_bytes = 40960;
  m.stored_bytes = 3000;
  std::string enc = sn::EncodeManifest(m);
  assert_int_equal(enc.size(), sn::kManifestSize);
  sn::Manifest back;
  AssertOk(sn::DecodeManifest(enc.data(), enc.size(), &back));
  assert_true(back.id == m.id && back.txid == m.txid && back.checksum == m.checksum && back.page_size == 4096 &&
              back.db_pages == 10 && back.chunk_count == 2 && back.log_seq == 150 && back.epoch == 4 &&
              back.time_ms == m.time_ms && back.commit_time_us == m.commit_time_us && back.raw_bytes == 40960 &&
              back.stored_bytes == 3000);
  for (size_t i = 0; i < enc.size(); i++) {
    std::string bad = enc;
    bad[i] ^= 0x10;
    assert_false(sn::DecodeManifest(bad.data(), bad.size(), &back).ok());
  }
  AssertError(sn::DecodeManifest(enc.data(), 103, &back), 11, "litejet: snapshot manifest: 103 bytes, want 104");
  std::string bad = enc;
  bad[30] ^= 1;
  AssertError(sn::DecodeManifest(bad.data(), bad.size(), &back), 11, "litejet: snapshot manifest: checksum mismatch");
}

// ------------------------------------------------------------ store conformance (memory)

std::unique_ptr<sn::Store> Mem() { return sn::NewMemoryStoreClient(sn::NewMemoryStore()); }
void store_round_trip(void**) { AssertOk(conf::RoundTrip(*Mem())); }
void store_incompressible_pages_are_split(void**) { AssertOk(conf::IncompressibleSplits(*Mem())); }
void store_checksum_mismatch_publishes_nothing(void**) { AssertOk(conf::ChecksumMismatchPublishesNothing(*Mem())); }
void store_list_delete_and_orphans(void**) { AssertOk(conf::ListDeleteAndOrphans(*Mem())); }
void store_damage_is_detected(void**) { AssertOk(conf::DamageDetected(*Mem())); }

// ------------------------------------------------------------ retention

sn::Manifest Snap(uint64_t id, uint64_t txid, uint64_t log_seq, uint64_t time_ms) {
  sn::Manifest m;
  m.id = id;
  m.txid = txid;
  m.log_seq = log_seq;
  m.time_ms = time_ms;
  return m;
}

void retention_keeps_newest_n(void**) {
  std::vector<sn::Manifest> s = {Snap(1, 100, 110, 1000), Snap(2, 300, 320, 3000), Snap(3, 200, 215, 2000),
                                 Snap(4, 400, 430, 4000)};
  sn::RetentionPolicy p;
  p.keep_snapshots = 2;
  sn::RetentionPlan plan = sn::PlanRetention(s, p, 5000);
  assert_true((plan.delete_ids == std::vector<uint64_t>{3, 1}));
  assert_int_equal(plan.log_purge_below, 320);
  p.keep_snapshots = 0;  // at least one is always kept
  plan = sn::PlanRetention(s, p, 5000);
  assert_true((plan.delete_ids == std::vector<uint64_t>{2, 3, 1}));
  assert_int_equal(plan.log_purge_below, 430);
  plan = sn::PlanRetention(s, p, 5000, 400);  // a replica still reads from 400: kept
  assert_int_equal(plan.log_purge_below, 400);
  plan = sn::PlanRetention(s, p, 5000, 500);
  assert_int_equal(plan.log_purge_below, 430);
  plan = sn::PlanRetention({}, p, 5000);
  assert_true(plan.delete_ids.empty());
  assert_int_equal(plan.log_purge_below, 0);
}

void retention_keeps_a_txid_or_time_window(void**) {
  std::vector<sn::Manifest> s = {Snap(1, 100, 110, 1000), Snap(2, 300, 320, 3000), Snap(3, 200, 215, 2000),
                                 Snap(4, 400, 430, 4000)};
  sn::RetentionPolicy p;
  p.keep_snapshots = 1;
  p.keep_txids = 200;  // TXIDs 200..400
  sn::RetentionPlan plan = sn::PlanRetention(s, p, 5000);
  assert_true((plan.delete_ids == std::vector<uint64_t>{1}));
  assert_int_equal(plan.log_purge_below, 215);
  p.keep_txids = 0;
  p.keep_ms = 2500;  // taken at 2500 or later
  plan = sn::PlanRetention(s, p, 5000);
  assert_true((plan.delete_ids == std::vector<uint64_t>{3, 1}));
  assert_int_equal(plan.log_purge_below, 320);
}

// ------------------------------------------------------------ restore from a memory log

// A history of n transactions over page_size pages, with every state kept.
struct History {
  uint32_t page_size = 1024;
  std::vector<std::vector<std::string>> states;  // states[t]: pages after TXID t (states[0] empty)
  std::vector<uint64_t> sums, seqs;              // checksum and log sequence after TXID t
};

uint64_t Sum(const std::vector<std::string>& pages, uint32_t ps) {
  uint64_t s = 0;
  for (uint32_t i = 0; i < pages.size(); i++) s ^= litejet::checksum::PageHash(pages[i].data(), ps, i + 1);
  return s;
}

// TXID t commits at t * 1000 us. Record 4 is chunked, 6..7 are one batch,
// an epoch marker follows 9.
History Publish(lt::Log& log, uint64_t n) {
  History h;
  std::mt19937 rng(7);
  h.states.push_back({});
  h.sums.push_back(0);
  h.seqs.push_back(0);
  uint64_t last = 0, first = 0;  // the last message, the first of the last record
  std::vector<std::string> pending_batch;
  auto send = [&](const std::string& msg) {
    std::vector<std::string> chunks;  // every log message is a chunk; record 4 takes several
    AssertOk(litejet::record::Split(msg, 0, 3000, &chunks));
    for (size_t i = 0; i < chunks.size(); i++) {
      uint64_t seq = 0;
      AssertOk(log.Publish(chunks[i], last, "", 1000, &seq));
      last = seq;
      if (i == 0) first = seq;
    }
  };
  for (uint64_t t = 1; t <= n; t++) {
    std::vector<std::string> pages = h.states.back();
    if (pages.size() < 3 + t) pages.resize(3 + t, std::string(h.page_size, '\0'));
    litejet::record::Txn txn;
    txn.txid = t;
    txn.epoch = t > 9 ? 2 : 1;
    txn.timestamp_us = t * 1000;
    txn.node = "n";
    txn.page_size = h.page_size;
    txn.db_pages = uint32_t(pages.size());
    txn.checksum_before = h.sums.back();
    std::vector<uint32_t> touched = {1, uint32_t(pages.size())};
    if (t == 4) touched = {1, 2, 3, 4, 5, 6, 7};
    for (uint32_t pg : touched) {
      for (auto& c : pages[pg - 1]) c = char(rng());
      txn.pages.push_back({pg, pages[pg - 1]});
    }
    txn.checksum_after = Sum(pages, h.page_size);
    std::string rec;
    AssertOk(litejet::record::Encode(txn, litejet::record::Compression::kNone, &rec));
    if (t == 6) {
      pending_batch.push_back(rec);
    } else if (t == 7) {
      pending_batch.push_back(rec);
      std::string batch;
      AssertOk(litejet::record::EncodeBatch(pending_batch, &batch, 1));
      send(batch);
    } else {
      send(rec);
    }
    h.states.push_back(pages);
    h.sums.push_back(txn.checksum_after);
    h.seqs.push_back(first);
    if (t == 7) h.seqs[6] = first;  // the batch holding 6 and 7
    if (t == 4) {                   // a chunked record: RecordStart finds its first message from its last
      uint64_t start = 0;
      AssertOk(sn::RecordStart(log, last, 1000, &start));
      assert_true(last > first && start == first);
    }
    if (t == 9) {
      litejet::record::Txn mk;
      mk.txid = 9;
      mk.epoch = 2;
      mk.timestamp_us = 9500;
      mk.node = "m";
      mk.page_size = h.page_size;
      mk.db_pages = txn.db_pages;
      mk.checksum_before = mk.checksum_after = txn.checksum_after;
      mk.epoch_marker = true;
      rec.clear();  // Encode appends
      AssertOk(litejet::record::Encode(mk, litejet::record::Compression::kNone, &rec));
      send(rec);
    }
  }
  return h;
}

std::string TempDir() {
  char tmpl[] = "/tmp/litejet-snap-XXXXXX";
  assert_non_null(mkdtemp(tmpl));
  return tmpl;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Joined(const std::vector<std::string>& pages) {
  std::string s;
  for (auto& p : pages) s += p;
  return s;
}

void restore_from_log_and_snapshot(void**) {
  auto ls = lt::NewMemoryStore();
  auto log = lt::NewMemoryLog(ls);
  AssertOk(log->Ensure(1000));
  History h = Publish(*log, 12);
  auto store = Mem();
  const std::string dir = TempDir(), db = dir + "/r.db";

  // Log only: every TXID.
  for (uint64_t t : {1, 4, 6, 7, 12}) {
    sn::RestoreRequest rq;
    rq.target = db;
    rq.name = "x";
    rq.txid = t;
    sn::RestoreResult rr;
    AssertOk(sn::Restore(*log, store.get(), rq, &rr));
    assert_false(rr.from_snapshot);
    assert_int_equal(rr.state.txid, t);
    assert_true(rr.state.checksum == h.sums[t]);
    assert_true(ReadFile(db) == Joined(h.states[t]));
    assert_int_equal(rr.records, t);
    assert_int_equal(rr.state.log_seq, h.seqs[t]);
    // 6 and 7 are one batch in two chunks: after 6, read the batch again; after 7, go on after it.
    uint64_t resume = t == 6    ? h.seqs[6] - 1
                      : t == 7  ? h.seqs[7] + 1
                      : t == 4  ? h.seqs[5] - 1
                      : t == 12 ? 0
                                : h.seqs[t];
    if (t != 12) assert_int_equal(rr.state.consumed_seq, resume);
  }
  // FindRecord: from a hint at or before the record, past it, or none; a TXID the log lacks.
  for (uint64_t hint : {h.seqs[6] - 1, h.seqs[6] + 1, h.seqs[10], uint64_t(0)}) {
    sn::FoundRecord fr;
    AssertOk(sn::FindRecord(*log, 7, hint, 1000, &fr));
    assert_true(fr.found && fr.txn.txid == 7 && fr.txn.checksum_after == h.sums[7] && fr.txn.pages.empty());
    assert_true(fr.pos.start == h.seqs[6] && fr.pos.end == h.seqs[6] + 1 && fr.pos.last_in_message);
    assert_int_equal(fr.txn.timestamp_us, 7000);
  }
  sn::FoundRecord fr;
  AssertOk(sn::FindRecord(*log, 13, h.seqs[12], 1000, &fr));
  assert_false(fr.found);
  assert_int_equal(fr.first_txid, 1);
  assert_int_equal(fr.last_txid, 12);
  AssertOk(sn::FindRecord(*log, 6, 0, 1000, &fr));
  assert_true(fr.found && fr.txn.txid == 6 && !fr.pos.last_in_message);

  // A snapshot at TXID 6 (inside the batch 6..7): restore to 7, 10 and the latest uses it.
  conf::VectorSource src(h.page_size, h.states[6]);
  sn::PutInfo in;
  in.txid = 6;
  in.checksum = h.sums[6];
  in.log_seq = h.seqs[6];
  in.epoch = 1;
  in.commit_time_us = 6000;
  sn::Manifest m;
  AssertOk(sn::Put(*store, src, in, 1000, &m, 4 * 1024));
  for (uint64_t t : {7, 10, 0}) {
    sn::RestoreRequest rq;
    rq.target = db;
    rq.name = "x";
    rq.txid = t;
    sn::RestoreResult rr;
    AssertOk(sn::Restore(*log, store.get(), rq, &rr));
    uint64_t want = t ? t : 12;
    assert_true(rr.from_snapshot);
    assert_int_equal(rr.snapshot.id, m.id);
    assert_int_equal(rr.state.txid, want);
    assert_int_equal(rr.records, want - 6);
    assert_int_equal(rr.state.epoch, want >= 9 ? 2 : 1);
    assert_true(ReadFile(db) == Joined(h.states[want]));
  }
  // By time: the last TXID committed at or before 8.5 ms is 8 (from the snapshot).
  sn::RestoreRequest rq;
  rq.target = db;
  rq.name = "x";
  rq.time_us = 8500;
  sn::RestoreResult rr;
  AssertOk(sn::Restore(*log, store.get(), rq, &rr));
  assert_true(rr.from_snapshot);
  assert_int_equal(rr.state.txid, 8);
  assert_true(ReadFile(db) == Joined(h.states[8]));
  rq.time_us = 5999;  // before the snapshot's commit: the log
  AssertOk(sn::Restore(*log, store.get(), rq, &rr));
  assert_false(rr.from_snapshot);
  assert_int_equal(rr.state.txid, 5);
  rq.time_us = 999;
  AssertError(sn::Restore(*log, store.get(), rq, &rr), 1,
              "litejet: the log of \"x\" holds no transaction committed at or before that time");
  rq.time_us = -1;
  rq.txid = 13;
  AssertError(sn::Restore(*log, store.get(), rq, &rr), lt::kTruncated,
              "litejet: the log of \"x\" ends at TXID 12, before TXID 13");

  // A damaged chunk: back to the log, saying which.
  std::string garbage(100, 'g');
  AssertOk(store->Damage(m.id, 1, garbage, 1000));
  rq.txid = 10;
  AssertOk(sn::Restore(*log, store.get(), rq, &rr));
  assert_false(rr.from_snapshot);
  assert_int_equal(rr.state.txid, 10);
  assert_true(ReadFile(db) == Joined(h.states[10]));
  assert_int_equal(rr.skipped.size(), 1);
  assert_string_equal(rr.skipped[0].c_str(), ("snapshot " + sn::IdHex(m.id) + " (TXID 6): snapshot " + sn::IdHex(m.id) +
                                              " chunk 1: bad magic (not a snapshot chunk)")
                                                 .c_str());
  assert_int_equal(access((db + ".litejet-restore").c_str(), F_OK), -1);
  std::system(("rm -rf " + dir).c_str());
}

// Retention trimmed the log below the snapshot: restore still works from
// it; with the snapshot damaged the error names it, its chunk and the log's start.
void restore_after_the_log_was_trimmed(void**) {
  auto ls = lt::NewMemoryStore();
  auto log = lt::NewMemoryLog(ls);
  History h = Publish(*log, 12);
  auto store = Mem();
  conf::VectorSource src(h.page_size, h.states[6]);
  sn::PutInfo in;
  in.txid = 6;
  in.checksum = h.sums[6];
  in.log_seq = h.seqs[6];
  in.epoch = 1;
  in.commit_time_us = 6000;
  in.id = 0x66;
  sn::Manifest m;
  AssertOk(sn::Put(*store, src, in, 1000, &m, 4 * 1024));
  sn::RetentionPolicy pol;
  pol.keep_snapshots = 1;
  sn::RetentionPlan plan = sn::PlanRetention({m}, pol, 0);
  assert_int_equal(plan.log_purge_below, h.seqs[6]);
  AssertOk(log->PurgeBelow(plan.log_purge_below, 1000));
  const std::string dir = TempDir(), db = dir + "/t.db";
  sn::RestoreRequest rq;
  rq.target = db;
  rq.name = "x";
  rq.txid = 10;
  sn::RestoreResult rr;
  AssertOk(sn::Restore(*log, store.get(), rq, &rr));
  assert_true(rr.from_snapshot);
  assert_int_equal(rr.state.txid, 10);
  assert_true(ReadFile(db) == Joined(h.states[10]));
  const std::string seq =
      "s " + std::to_string(h.seqs[6]) + ".." + std::to_string(h.seqs[6] + 1);  // the batch's chunks
  rq.txid = 3;
  AssertError(sn::Restore(*log, store.get(), rq, &rr), 11,
              "litejet: cannot restore \"x\": the log from its first record: the log of \"x\" starts at TXID 6: a "
              "rebuild needs a snapshot (sequence" +
                  seq + ")");
  AssertOk(store->Damage(m.id, 1, "", 1000));
  rq.txid = 10;
  AssertError(sn::Restore(*log, store.get(), rq, &rr), 11,
              "litejet: cannot restore \"x\": the log from its first record: the log of \"x\" starts at TXID 6: a "
              "rebuild needs a snapshot (sequence" +
                  seq +
                  "); snapshot 0000000000000066 (TXID 6): snapshot "
                  "0000000000000066 chunk 1: found chunk 2 of snapshot 0000000000000066 in its place");
  assert_int_equal(access(db.c_str(), F_OK), 0);  // the earlier restore's file is left alone
  assert_int_equal(access((db + ".litejet-restore").c_str(), F_OK), -1);
  std::system(("rm -rf " + dir).c_str());
}

// A file at rest is a PageSource; one with WAL content is refused. The
// builder renames only a file whose checksum verified.
void file_source_and_builder(void**) {
  const std::string dir = TempDir(), db = dir + "/src.db";
  sqlite3* h = nullptr;
  assert_int_equal(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(h, "CREATE TABLE t(v); INSERT INTO t VALUES (randomblob(5000));", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(h);
  std::unique_ptr<sn::PageSource> src;
  AssertOk(sn::OpenFileSource(db, &src));
  uint64_t want = 0;
  uint32_t pages = 0, ps = 0;
  AssertOk(litejet::checksum::OfFile(db, &want, &pages, &ps));
  assert_int_equal(src->page_size(), ps);
  assert_int_equal(src->db_pages(), pages);
  assert_true(pages >= 3);
  std::string page(ps, '\0');
  uint64_t sum = 0;
  for (uint32_t pg = 1; pg <= pages; pg++) {
    AssertOk(src->Read(pg, page.data()));
    sum ^= litejet::checksum::PageHash(page.data(), ps, pg);
  }
  assert_true(sum == want);
  AssertError(src->Read(pages + 1, page.data()), 1, "litejet: " + db + ": no page " + std::to_string(pages + 1));
  { std::ofstream(db + "-wal") << "frames"; }
  AssertError(sn::OpenFileSource(db, &src), 26,
              "litejet: " + db + " has 6 bytes of WAL in " + db +
                  "-wal: checkpoint it first (PRAGMA wal_checkpoint(TRUNCATE)) with no process open");
  unlink((db + "-wal").c_str());

  const std::string target = dir + "/built.db";
  std::string raw = ReadFile(db);
  {
    sn::FileBuilder b;
    AssertOk(b.Open(target));
    AssertOk(b.WritePages(1, ps, raw));
    AssertError(b.Finish(pages, ps, want ^ 1), 11,
                "litejet: the restored pages sum to " + litejet::checksum::Hex(want) + ", the log says " +
                    litejet::checksum::Hex(want ^ 1));
    assert_int_equal(access(target.c_str(), F_OK), -1);
  }
  assert_int_equal(access((target + ".litejet-restore").c_str(), F_OK), -1);  // removed with the builder
  {
    std::ofstream(target) << "old";
    std::ofstream(target + "-wal") << "old wal";
    sn::FileBuilder b;
    AssertOk(b.Open(target));
    AssertOk(b.WritePages(1, ps, raw + std::string(ps, 'x')));  // a page past the end: cut by Finish
    AssertOk(b.Finish(pages, ps, want));
  }
  assert_true(ReadFile(target) == raw);
  assert_int_equal(access((target + "-wal").c_str(), F_OK), -1);
  {
    // Without the sync, handing back the page hashes it checked: each page's
    // own, in order (a bootstrap uses them instead of hashing the file again).
    sn::FileBuilder b;
    AssertOk(b.Open(target));
    AssertOk(b.WritePages(1, ps, raw));
    std::vector<uint64_t> hashes{42};
    AssertOk(b.Finish(pages, ps, want, /*sync=*/false, &hashes));
    assert_int_equal(hashes.size(), pages);
    for (uint32_t pg = 1; pg <= pages; pg++) {
      assert_true(hashes[pg - 1] == litejet::checksum::PageHash(raw.data() + size_t(pg - 1) * ps, ps, pg));
    }
  }
  assert_true(ReadFile(target) == raw);
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(chunk_round_trips),
      cmocka_unit_test(chunk_damage_at_every_byte_is_detected),
      cmocka_unit_test(chunk_errors_are_exact),
      cmocka_unit_test(manifest_round_trips_and_damage_is_detected),
      cmocka_unit_test(store_round_trip),
      cmocka_unit_test(store_incompressible_pages_are_split),
      cmocka_unit_test(store_checksum_mismatch_publishes_nothing),
      cmocka_unit_test(store_list_delete_and_orphans),
      cmocka_unit_test(store_damage_is_detected),
      cmocka_unit_test(retention_keeps_newest_n),
      cmocka_unit_test(retention_keeps_a_txid_or_time_window),
      cmocka_unit_test(restore_from_log_and_snapshot),
      cmocka_unit_test(restore_after_the_log_was_trimmed),
      cmocka_unit_test(file_source_and_builder),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
