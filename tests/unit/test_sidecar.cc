// Sidecar and local-log units: the position seqlock with its two writers (the
// committer and the agent) at once, the commit ring, and building a record
// from WAL frames (what is accepted, what is refused and why).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "tests/util/testdb.h"
#include "wal-capture/checksum.h"
#include "wal-capture/local_log.h"
#include "wal-capture/sidecar.h"
#include "wal-capture/wal_format.h"

using namespace litejet;

namespace {

// The committer (CommitUpdate, under WAL_WRITE_LOCK) and the agent (SetAcked)
// write the header at the same time; a reader must always see a whole
// position (checksum == 3 * txid, log_seq == 5 * acked) and never wait long.
void sidecar_two_writers_and_a_reader(void**) {
  test::TempDir dir;  // removed at the end of the test
  std::string path = dir / "db-litejet";
  sidecar::Sidecar a, b, r;
  bool created = false;
  assert_true(a.Open(path, &created).ok());
  assert_true(created);
  assert_true(b.Open(path, &created).ok());
  assert_true(r.Open(path, &created).ok());
  std::atomic<bool> stop{false};
  std::thread committer([&] {
    for (uint64_t t = 1; !stop; t++) {
      sidecar::Position p = a.Read();
      p.txid = t;
      p.checksum = 3 * t;
      a.CommitUpdate(p);
    }
  });
  std::thread agent([&] {
    for (uint64_t t = 1; !stop; t++) b.SetAcked(t, 5 * t);
  });
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  uint64_t reads = 0, slowest_ns = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto t0 = std::chrono::steady_clock::now();
    sidecar::Position p = r.Read();
    auto ns =
        uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    if (ns > slowest_ns) slowest_ns = ns;
    reads++;
    if (p.checksum != 3 * p.txid || p.log_seq != 5 * p.acked_txid) {
      std::printf("torn read: txid %llu checksum %llu acked %llu log_seq %llu\n", (unsigned long long)p.txid,
                  (unsigned long long)p.checksum, (unsigned long long)p.acked_txid, (unsigned long long)p.log_seq);
      fail();
    }
  }
  stop = true;
  committer.join();
  agent.join();
  std::printf("  %llu consistent reads\n", (unsigned long long)reads);
  // After both writers stopped, reading is immediate (no seqlock left odd).
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; i++) r.Read();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  1000 reads after the writers stopped: %lld us\n", (long long)us);
  // A seqlock left odd makes every read wait 100 ms before it gives up:
  // 1000 reads would take 100 s. The bound is far from both that and a
  // normal run (milliseconds), so a descheduled thread on a loaded CI
  // machine under TSan cannot trip it.
  assert_true(us < 10000000);
}

void sidecar_ring_keeps_entries_until_reused(void**) {
  test::TempDir dir;  // removed at the end of the test
  std::string path = dir / "db-litejet";
  sidecar::Sidecar s;
  bool created = false;
  assert_true(s.Open(path, &created).ok());
  sidecar::CommitEntry e;
  assert_false(s.GetCommit(1, &e));
  assert_false(s.GetCommit(0, &e));
  for (uint64_t t = 1; t <= sidecar::kRingSlots + 10; t++) {
    sidecar::CommitEntry w;
    w.txid = t;
    w.checksum_after = t * 7;
    w.first_frame = uint32_t(t);
    w.commit_frame = uint32_t(t + 1);
    s.PutCommit(w);
  }
  assert_false(s.GetCommit(10, &e));  // its slot holds kRingSlots + 10 now
  assert_true(s.GetCommit(11, &e));
  assert_int_equal(e.checksum_after, 77);
  assert_true(s.GetCommit(sidecar::kRingSlots + 10, &e));
  assert_int_equal(e.txid, sidecar::kRingSlots + 10);
  assert_int_equal(e.commit_frame, sidecar::kRingSlots + 11);
}

// Frames of one commit: pgno 2, 1, 2 (an older and a newer copy of page 2).
struct Frames {
  sidecar::CommitEntry e;
  std::string bytes;
  std::string page(uint32_t pgno, char fill) { return std::string(4096, fill) + std::to_string(pgno); }
  Frames() {
    e.txid = 9;
    e.salt1 = 0x11111111;
    e.salt2 = 0x22222222;
    e.first_frame = 5;
    e.commit_frame = 7;
    e.db_pages = 2;
    e.page_size = 4096;
    const uint32_t pg[3] = {2, 1, 2};
    const char fill[3] = {'a', 'b', 'c'};
    for (int i = 0; i < 3; i++) {
      unsigned char h[24] = {0};
      wal::Put4(h, pg[i]);
      wal::Put4(h + 4, i == 2 ? 2 : 0);
      wal::Put4(h + 8, e.salt1);
      wal::Put4(h + 12, e.salt2);
      bytes.append(reinterpret_cast<char*>(h), 24);
      std::string data(4096, fill[i]);
      bytes.append(data);
    }
    e.delta = checksum::PageHash(std::string(4096, 'b').data(), 4096, 1) ^
              checksum::PageHash(std::string(4096, 'c').data(), 4096, 2);
  }
};

void locallog_builds_the_newest_page_of_each(void**) {
  Frames f;
  record::Txn t;
  assert_true(locallog::TxnFromFrames(f.e, f.bytes.data(), f.bytes.size(), 3, "n1", &t).ok());
  assert_int_equal(t.txid, 9);
  assert_int_equal(t.epoch, 3);
  assert_int_equal(t.pages.size(), 2);
  assert_int_equal(t.pages[0].pgno, 1);
  assert_int_equal(t.pages[1].pgno, 2);
  assert_true(t.pages[1].data == std::string(4096, 'c'));  // the newer frame of page 2
  // Zero salts are SQLite's own (frames written after an in-place rewrite).
  std::memset(&f.bytes[24 + 4096 + 8], 0, 8);
  assert_true(locallog::TxnFromFrames(f.e, f.bytes.data(), f.bytes.size(), 3, "n1", &t).ok());
}

void locallog_refuses_changed_or_foreign_frames(void**) {
  Frames f;
  record::Txn t;
  std::string changed = f.bytes;
  changed[2 * (24 + 4096) + 24 + 100] ^= 1;  // a byte of the commit frame's page
  Status s = locallog::TxnFromFrames(f.e, changed.data(), changed.size(), 0, "n1", &t);
  assert_false(s.ok());
  assert_string_equal(s.message().c_str(),
                      "litejet: local log: the WAL frames of TXID 9 are not the pages that were committed (page "
                      "hashes differ): the WAL was changed outside litejet before it was shipped");
  std::string foreign = f.bytes;
  wal::Put4(&foreign[24 + 4096 + 8], 0x33333333);  // another generation's salt
  s = locallog::TxnFromFrames(f.e, foreign.data(), foreign.size(), 0, "n1", &t);
  assert_string_equal(s.message().c_str(),
                      "litejet: local log: frame 6 of TXID 9 belongs to another WAL generation: it was "
                      "overwritten before it was shipped");
  s = locallog::TxnFromFrames(f.e, f.bytes.data(), f.bytes.size() - 1, 0, "n1", &t);
  assert_string_equal(s.message().c_str(), "litejet: local log: TXID 9 has an invalid frame range");
}

}  // namespace

// role=auto: the agent's role block. A new sidecar says "may not write";
// what the agent stores is what every other opener reads, texts are cut at
// kRoleTextMax, and a reader racing the writer sees one whole description
// (primary and reason always from the same update), never a mix.
void sidecar_role_block(void**) {
  test::TempDir dir;  // removed at the end of the test
  std::string path = dir / "db-litejet";
  sidecar::Sidecar a, b;
  bool created = false;
  assert_true(a.Open(path, &created).ok());
  assert_true(b.Open(path, &created).ok());
  assert_int_equal(b.write_until_ns(), 0);
  sidecar::RoleInfo none = b.role();
  assert_int_equal(static_cast<int>(none.state), static_cast<int>(sidecar::RoleState::kReplica));
  assert_true(none.primary.empty() && none.reason.empty());

  a.SetWriteUntil(123456789);
  sidecar::RoleInfo r;
  r.state = sidecar::RoleState::kPrimary;
  r.epoch = 42;
  r.primary = "node-a:8080";
  r.reason = "candidate -> primary: lease acquired";
  a.SetRole(r);
  assert_int_equal(b.write_until_ns(), 123456789);
  sidecar::RoleInfo got = b.role();
  assert_int_equal(static_cast<int>(got.state), static_cast<int>(sidecar::RoleState::kPrimary));
  assert_int_equal(got.epoch, 42);
  assert_string_equal(got.primary.c_str(), "node-a:8080");
  assert_string_equal(got.reason.c_str(), r.reason.c_str());

  r.primary = std::string(1000, 'p');
  r.reason = "";
  a.SetRole(r);
  got = b.role();
  assert_int_equal(got.primary.size(), sidecar::kRoleTextMax);
  assert_true(got.reason.empty());

  // Racing: every update pairs primary "P<i>" with reason "R<i>".
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; i++) {
      sidecar::RoleInfo w;
      w.epoch = uint64_t(i);
      w.primary = "P" + std::to_string(i) + std::string(size_t(i % 200), 'x');
      w.reason = "R" + std::to_string(i);
      a.SetRole(w);
      std::this_thread::yield();  // (the real writer changes roles a few times a minute at most)
    }
  });
  for (int k = 0; k < 200000; k++) {
    sidecar::RoleInfo x = b.role();
    if (x.reason.empty()) continue;  // the truncation step above
    std::string n = x.reason.substr(1);
    assert_true(x.primary.compare(0, n.size() + 1, "P" + n) == 0);
    assert_int_equal(x.primary.size(), n.size() + 1 + size_t(std::stoi(n) % 200));
    assert_int_equal(x.epoch, uint64_t(std::stoi(n)));
  }
  stop = true;
  writer.join();

  // Kept across a reopen (the agent clears write_until itself when it starts).
  sidecar::Sidecar c;
  assert_true(c.Open(path, &created).ok());
  assert_false(created);
  assert_int_equal(c.write_until_ns(), 123456789);
}

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sidecar_two_writers_and_a_reader),
      cmocka_unit_test(sidecar_role_block),
      cmocka_unit_test(sidecar_ring_keeps_entries_until_reused),
      cmocka_unit_test(locallog_builds_the_newest_page_of_each),
      cmocka_unit_test(locallog_refuses_changed_or_foreign_frames),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
