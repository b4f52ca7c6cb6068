// The Collector trusts a frame only after checking it: trashed frame headers
// (foreign salts, page 0, impossible commit sizes), writes outside the
// transaction's frames, partial page data and transactions over the size
// limit are refused with a message that names the cause, and leave the
// Collector able to take the next honest commit.
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
}

#include "wal-capture/capture.h"
#include "wal-capture/wal_format.h"

using namespace litejet;

namespace {

constexpr uint32_t kPage = 4096;
constexpr uint32_t kSalt1 = 0x11223344, kSalt2 = 0x55667788;
constexpr int64_t kFrame = wal::WAL_FRAME_HDRSIZE + kPage;

int64_t Off(uint32_t iframe) { return wal::FrameOffset(iframe, kPage); }

std::string WalHeader() {
  std::string h(wal::WAL_HDRSIZE, '\0');
  wal::Put4(&h[0], wal::WAL_MAGIC);
  wal::Put4(&h[4], wal::WAL_MAX_VERSION);
  wal::Put4(&h[8], kPage);
  wal::Put4(&h[16], kSalt1);
  wal::Put4(&h[20], kSalt2);
  return h;
}

std::string FrameHeader(uint32_t pgno, uint32_t commit, uint32_t s1 = kSalt1, uint32_t s2 = kSalt2) {
  std::string h(wal::WAL_FRAME_HDRSIZE, '\0');
  wal::Put4(&h[0], pgno);
  wal::Put4(&h[4], commit);
  wal::Put4(&h[8], s1);
  wal::Put4(&h[12], s2);
  return h;
}

// A Collector inside a write transaction of a WAL with known salts.
struct Fixture {
  capture::Collector c;
  Fixture() {
    c.set_name("v");
    c.BeginWrite();
    c.SetSalts(kSalt1, kSalt2);
    std::string h = WalHeader();
    c.SetWalHeader(h.data());
  }
  // Header then page data, as SQLite writes a frame.
  Status Frame(uint32_t iframe, const std::string& hdr, bool* committed, char fill = 'x') {
    bool dummy = false;
    Status s = c.OnWrite(hdr.data(), int(hdr.size()), Off(iframe), &dummy);
    if (!s.ok()) return s;
    std::string page(kPage, fill);
    return c.OnWrite(page.data(), int(page.size()), Off(iframe) + wal::WAL_FRAME_HDRSIZE, committed);
  }
};

void collector_refuses_frame_with_foreign_salts(void**) {
  Fixture f;
  bool committed = false;
  assert_true(f.Frame(5, FrameHeader(2, 0), &committed).ok());
  // Trashed header: random salts and size, as SQLite's crash VFS writes.
  Status s = f.Frame(6, FrameHeader(3, 2122848170u, 0xdeadbeef, 0x01020304), &committed);
  assert_false(s.ok());
  assert_false(committed);
  assert_string_equal(s.message().c_str(),
                      "litejet: capture: WAL frame 6 is written with salts deadbeef01020304, not those of its WAL "
                      "(1122334455667788); refused (the bytes were changed on their way to the WAL)");
  // Nothing of the refused write was taken: the honest commit frame in the
  // same slot commits frames 5..6.
  assert_true(f.Frame(6, FrameHeader(3, 3), &committed).ok());
  assert_true(committed);
  capture::Captured& t = f.c.Take();
  assert_int_equal(t.db_pages, 3);
  assert_int_equal(t.first_frame, 5);
  assert_int_equal(t.commit_frame, 6);
  assert_int_equal(t.hashes.size(), 2);
}

void collector_accepts_zero_salts(void**) {
  // After an in-place rewrite SQLite writes frames (the commit frame too)
  // with zero salts and fixes them later: not a trashed frame.
  Fixture f;
  bool committed = false;
  assert_true(f.Frame(1, FrameHeader(1, 0, 0, 0), &committed).ok());
  assert_true(f.Frame(2, FrameHeader(2, 2, 0, 0), &committed).ok());
  assert_true(committed);
  assert_int_equal(f.c.Take().db_pages, 2);
}

void collector_salts_follow_the_generation(void**) {
  // The generation's salts come from the wal-index at BeginWrite; a WAL
  // header written under the lock (restart) replaces them.
  capture::Collector c;
  c.BeginWrite();
  c.SetSalts(1, 2);
  std::string h = WalHeader();  // salts kSalt1/kSalt2
  bool committed = false;
  assert_true(c.OnWrite(h.data(), int(h.size()), 0, &committed).ok());
  std::string fh = FrameHeader(1, 1);
  assert_true(c.OnWrite(fh.data(), int(fh.size()), Off(1), &committed).ok());
  std::string page(kPage, 'p');
  assert_true(c.OnWrite(page.data(), int(page.size()), Off(1) + 24, &committed).ok());
  assert_true(committed);
  assert_true(c.Take().new_generation);
}

void collector_refuses_impossible_commit_sizes(void**) {
  struct Case {
    uint32_t pgno, commit;
    const char* want;
  } cases[] = {
      {1, 0xFFFFFFFFu,
       "litejet: capture: WAL frame 1 is written as a commit of page 1 with an impossible database size of "
       "4294967295 pages; refused (the bytes were changed on their way to the WAL)"},
      {9, 8,
       "litejet: capture: WAL frame 1 is written as a commit of page 9 with an impossible database size of 8 "
       "pages; refused (the bytes were changed on their way to the WAL)"},
      {0, 0,
       "litejet: capture: WAL frame 1 is written with page number 0; refused (the bytes were changed on their way "
       "to the WAL)"},
  };
  for (const Case& k : cases) {
    Fixture f;
    bool committed = false;
    Status s = f.Frame(1, FrameHeader(k.pgno, k.commit), &committed);
    assert_false(s.ok());
    assert_false(committed);
    assert_string_equal(s.message().c_str(), k.want);
    assert_true(f.Frame(1, FrameHeader(1, 1), &committed).ok());
    assert_true(committed);
  }
}

void collector_refuses_writes_outside_the_transaction(void**) {
  Fixture f;
  bool committed = false;
  assert_true(f.Frame(10, FrameHeader(1, 0), &committed).ok());
  // Far past the frames written (a size taken from garbage would make this
  // allocate for every frame in between).
  std::string hdr = FrameHeader(2, 2);
  Status s = f.c.OnWrite(hdr.data(), int(hdr.size()), Off(2000000000u), &committed);
  assert_false(s.ok());
  assert_string_equal(s.message().c_str(),
                      "litejet: capture: WAL write to frame 2000000000 is not within or next to this transaction's "
                      "frames 10..10; refused");
  s = f.c.OnWrite(hdr.data(), int(hdr.size()), Off(3), &committed);
  assert_false(s.ok());
  s = f.c.OnWrite(hdr.data(), int(hdr.size()), int64_t(1) << 62, &committed);
  assert_false(s.ok());
  assert_string_equal(s.message().c_str(),
                      "litejet: capture: WAL write at offset 4611686018427387904 lies past the largest possible WAL");
  assert_true(f.Frame(11, FrameHeader(2, 2), &committed).ok());
  assert_true(committed);
}

void collector_refuses_partial_page_data(void**) {
  Fixture f;
  bool committed = false;
  std::string hdr = FrameHeader(1, 1);
  assert_true(f.c.OnWrite(hdr.data(), int(hdr.size()), Off(1), &committed).ok());
  std::string half(kPage / 2, 'h');
  Status s = f.c.OnWrite(half.data(), int(half.size()), Off(1) + 24 + kPage / 2, &committed);
  assert_false(s.ok());
  assert_false(committed);
  assert_string_equal(s.message().c_str(),
                      "litejet: capture: WAL frame 1 of the commit has a header but 2048 of its 4096 bytes of page "
                      "data");
}

void collector_refuses_transaction_over_the_limit(void**) {
  Fixture f;
  f.c.set_max_txn_bytes(3 * kFrame);
  bool committed = false;
  assert_true(f.Frame(1, FrameHeader(1, 0), &committed).ok());
  assert_true(f.Frame(2, FrameHeader(2, 0), &committed).ok());
  assert_true(f.Frame(3, FrameHeader(3, 0), &committed).ok());
  Status s = f.Frame(4, FrameHeader(4, 4), &committed);
  assert_false(s.ok());
  assert_false(committed);
  assert_int_equal(s.code(), 18);  // SQLITE_TOOBIG
  assert_string_equal(s.message().c_str(),
                      "litejet: transaction of 16480 bytes on \"v\" exceeds the 12360 bytes limit of one replicated "
                      "transaction; split it");
  // At the limit it commits; the default limit is 2 GiB.
  Fixture g;
  g.c.set_max_txn_bytes(2 * kFrame);
  assert_true(g.Frame(1, FrameHeader(1, 0), &committed).ok());
  assert_true(g.Frame(2, FrameHeader(2, 2), &committed).ok());
  assert_true(committed);
  assert_int_equal(capture::kMaxTxnBytes, uint64_t(2) << 30);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(collector_refuses_frame_with_foreign_salts),
      cmocka_unit_test(collector_accepts_zero_salts),
      cmocka_unit_test(collector_salts_follow_the_generation),
      cmocka_unit_test(collector_refuses_impossible_commit_sizes),
      cmocka_unit_test(collector_refuses_writes_outside_the_transaction),
      cmocka_unit_test(collector_refuses_partial_page_data),
      cmocka_unit_test(collector_refuses_transaction_over_the_limit),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
