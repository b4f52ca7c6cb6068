// The in-memory LeaseStore and NodeBoard: the lease conformance checks, the
// fake's clock and outage switch, and the value codec the NATS store uses.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <string>

#include "transport/lease.h"
#include "transport/lease_codec.h"
#include "transport/lease_conformance.h"

namespace lt = litejet::transport;
namespace conf = litejet::transport::conformance;

namespace {

constexpr int64_t kTtl = 3000;

void AssertOk(const litejet::Status& st) {
  if (!st.ok()) print_error("%s (code %d)\n", st.message().c_str(), st.code());
  assert_true(st.ok());
}

// The lease expires exactly at ttl on the fake's clock, not a millisecond before.
conf::LeaseEnv EnvFor(std::shared_ptr<lt::MemoryLeases> m) {
  conf::LeaseEnv env;
  env.open_store = [m] { return lt::NewMemoryLeaseStore(m, kTtl); };
  env.open_board = [m] { return lt::NewMemoryNodeBoard(m); };
  env.expire = [m](lt::LeaseStore& s) {
    lt::Lease cur;
    bool found = false;
    lt::AdvanceMemoryLeaseClock(*m, kTtl - 1);
    litejet::Status st = s.Current(100, &cur, &found);
    if (!st.ok()) return st;
    if (!found) return litejet::Status::Error("lease expired before its ttl");
    lt::AdvanceMemoryLeaseClock(*m, 1);
    return litejet::Status::OK();
  };
  return env;
}

void acquire_is_exclusive(void**) { AssertOk(conf::AcquireIsExclusive(EnvFor(lt::NewMemoryLeases()))); }
void renew_by_revision(void**) { AssertOk(conf::RenewByRevision(EnvFor(lt::NewMemoryLeases()))); }
void expiry_hands_over_with_larger_epoch(void**) { AssertOk(conf::ExpiryHandsOver(EnvFor(lt::NewMemoryLeases()))); }
void release_hands_over_and_stale_release_deletes_nothing(void**) {
  AssertOk(conf::ReleaseHandsOver(EnvFor(lt::NewMemoryLeases())));
}
void epochs_grow_across_holders(void**) { AssertOk(conf::EpochsGrow(EnvFor(lt::NewMemoryLeases()))); }
void racing_acquire_has_one_winner(void**) { AssertOk(conf::RacingAcquire(EnvFor(lt::NewMemoryLeases()), 4, 200)); }
void board_put_list(void**) { AssertOk(conf::BoardPutList(EnvFor(lt::NewMemoryLeases()))); }

void renewal_pushes_expiry_back(void**) {
  auto m = lt::NewMemoryLeases();
  auto a = lt::NewMemoryLeaseStore(m, kTtl), b = lt::NewMemoryLeaseStore(m, kTtl);
  lt::Lease la, lb;
  AssertOk(a->Acquire("a", "", 100, &la));
  lt::AdvanceMemoryLeaseClock(*m, kTtl - 10);
  AssertOk(a->Renew(&la, 100));
  lt::AdvanceMemoryLeaseClock(*m, kTtl - 10);
  assert_int_equal(b->Acquire("b", "", 100, &lb).code(), lt::kLeaseHeld);
  lt::AdvanceMemoryLeaseClock(*m, 10);
  AssertOk(b->Acquire("b", "", 100, &lb));
}

void calls_fail_unavailable_during_outage(void**) {
  auto m = lt::NewMemoryLeases();
  auto a = lt::NewMemoryLeaseStore(m, kTtl);
  auto board = lt::NewMemoryNodeBoard(m);
  lt::Lease la;
  AssertOk(a->Acquire("a", "", 100, &la));
  lt::SetMemoryLeasesAvailable(*m, false);
  lt::Lease l;
  bool found = false;
  std::vector<lt::NodeState> list;
  assert_int_equal(a->Acquire("b", "", 100, &l).code(), lt::kUnavailable);
  assert_int_equal(a->Renew(&la, 100).code(), lt::kUnavailable);
  assert_int_equal(a->Release(la, 100).code(), lt::kUnavailable);
  assert_int_equal(a->Current(100, &l, &found).code(), lt::kUnavailable);
  assert_int_equal(board->Put(lt::NodeState{"a"}, 100).code(), lt::kUnavailable);
  assert_int_equal(board->List(100, &list).code(), lt::kUnavailable);
  lt::SetMemoryLeasesAvailable(*m, true);
  AssertOk(a->Renew(&la, 100));  // the outage changed nothing
  AssertOk(a->Release(la, 100));
}

void lease_value_round_trips_with_any_bytes(void**) {
  lt::Lease l;
  l.node = std::string("n\0de=%\n\xff é", 11);
  l.advertise = "host:1 = x";
  l.epoch = 18446744073709551615ULL;
  l.renewed_unix_ms = -5;
  l.ttl_ms = 1500;
  std::string v = lt::internal::EncodeLease(l);
  assert_true(v.rfind("litejet-lease v1\n", 0) == 0);
  lt::Lease d;
  AssertOk(lt::internal::DecodeLease(v, &d));
  assert_true(d.node == l.node && d.advertise == l.advertise && d.epoch == l.epoch &&
              d.renewed_unix_ms == l.renewed_unix_ms && d.ttl_ms == l.ttl_ms);
  lt::NodeState s;
  s.node = "x\ny";
  s.last_error = std::string(300, '=');
  lt::NodeState ds;
  AssertOk(lt::internal::DecodeNodeState(lt::internal::EncodeNodeState(s), &ds));
  assert_true(ds.node == s.node && ds.last_error == s.last_error);
  assert_string_equal(lt::internal::NodeKey("a/b.").c_str(), "n612f622e");
}

void malformed_values_are_clear_errors(void**) {
  const std::string good = lt::internal::EncodeLease(lt::Lease{"a", "", 3, 3, 1, 1000});
  const char* bad[] = {
      "",
      "garbage",
      "litejet-lease v2\nnode=a\n",
      "litejet-lease v1\nnode=a",         // unterminated line
      "litejet-lease v1\nnode\n",         // no '='
      "litejet-lease v1\nadvertise=x\n",  // no node
      "litejet-lease v1\nnode=a%4\n",     // short escape
      "litejet-lease v1\nnode=a%zz\n",    // bad escape
      "litejet-lease v1\nnode=a b\n",     // unescaped space
      "litejet-lease v1\nnode=a\nepoch=-1\n",
      "litejet-lease v1\nnode=a\nepoch=18446744073709551616\n",  // overflows
      "litejet-lease v1\nnode=a\nepoch=\n",
      "litejet-lease v1\nnode=a\nttl_ms=1x\n",
  };
  for (const char* b : bad) {
    lt::Lease d;
    litejet::Status st = lt::internal::DecodeLease(b, &d);
    if (st.ok()) print_error("accepted: %s\n", b);
    assert_false(st.ok());
    assert_true(st.message().find("malformed") != std::string::npos);
  }
  lt::Lease d;
  assert_false(lt::internal::DecodeLease(good + "x=" + std::string(5000, 'y') + "\n", &d).ok());  // too large
  AssertOk(lt::internal::DecodeLease(good + "future_field=1\n", &d));                             // v1 may grow
  lt::NodeState s;
  assert_false(lt::internal::DecodeNodeState(good, &s).ok());  // a lease is not a heartbeat
  // Every truncation and every single-byte corruption is handled (an error or a value), never a crash.
  for (size_t n = 0; n < good.size(); n++) (void)lt::internal::DecodeLease(good.substr(0, n), &d);
  for (size_t i = 0; i < good.size(); i++) {
    for (int c = 0; c < 256; c += 7) {
      std::string v = good;
      v[i] = static_cast<char>(c);
      (void)lt::internal::DecodeLease(v, &d);
    }
  }
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(acquire_is_exclusive),
      cmocka_unit_test(renew_by_revision),
      cmocka_unit_test(expiry_hands_over_with_larger_epoch),
      cmocka_unit_test(release_hands_over_and_stale_release_deletes_nothing),
      cmocka_unit_test(epochs_grow_across_holders),
      cmocka_unit_test(racing_acquire_has_one_winner),
      cmocka_unit_test(board_put_list),
      cmocka_unit_test(renewal_pushes_expiry_back),
      cmocka_unit_test(calls_fail_unavailable_during_outage),
      cmocka_unit_test(lease_value_round_trips_with_any_bytes),
      cmocka_unit_test(malformed_values_are_clear_errors),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
