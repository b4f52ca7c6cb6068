// The NATS KV LeaseStore and NodeBoard against a real nats-server: the lease
// conformance checks with real expiry (the bucket's max age), malformed
// values written behind litejet's back, a bucket with a shorter max age,
// outages, and stores destroyed while the server is down.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}
#include <nats/nats.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "tests/harness/nats_server.h"
#include "transport/lease.h"
#include "transport/lease_conformance.h"

namespace lt = litejet::transport;
namespace conf = litejet::transport::conformance;
using litejet::test::NatsCluster;
using litejet::test::NatsServer;

namespace {

constexpr int64_t kTtl = 1200;

struct Fixture {
  std::unique_ptr<NatsServer> server;
  std::unique_ptr<NatsCluster> cluster;
};

void AssertOk(const litejet::Status& st) {
  if (!st.ok()) print_error("%s (code %d)\n", st.message().c_str(), st.code());
  assert_true(st.ok());
}

int counter = 0;

lt::Options OptionsFor(const std::string& url) {
  lt::Options o;
  o.urls = {url};
  o.name = "l" + std::to_string(++counter) + "_" + std::to_string(getpid());
  o.client_name = "litejet:test:" + o.name;
  return o;
}

std::unique_ptr<lt::LeaseStore> OpenStore(const lt::Options& o, int64_t ttl = kTtl) {
  std::unique_ptr<lt::LeaseStore> store;
  litejet::Status st = lt::OpenNatsLeases(o, ttl, &store, nullptr);
  if (!st.ok()) print_error("OpenNatsLeases: %s\n", st.message().c_str());
  return store;
}

// Expiry: the server drops the key after ttl (within about 2 s more on an
// idle machine; a loaded one is given 30 s), counted from the last write,
// which happened just before this is called.
litejet::Status WaitExpired(lt::LeaseStore& s) {
  auto t0 = conf::Clock::now();
  for (;;) {
    lt::Lease cur;
    bool found = true;
    litejet::Status st = s.Current(1000, &cur, &found);
    if (!st.ok()) return st;
    if (!found) {
      print_message("lease (ttl %lld ms) expired %.2f s after the last write\n", static_cast<long long>(kTtl),
                    conf::Seconds(t0));
      return litejet::Status::OK();
    }
    if (conf::Seconds(t0) > kTtl / 1000.0 + 30) {
      return litejet::Status::Error("lease still held " + std::to_string(conf::Seconds(t0)) +
                                    " s after the last write");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

conf::LeaseEnv EnvFor(const lt::Options& o) {
  conf::LeaseEnv env;
  env.open_store = [o] {
    auto s = OpenStore(o);
    return s ? std::move(s) : lt::NewMemoryLeaseStore(lt::NewMemoryLeases(), 1);
  };
  env.open_board = [o]() -> std::unique_ptr<lt::NodeBoard> {
    std::unique_ptr<lt::NodeBoard> board;
    litejet::Status st = lt::OpenNatsLeases(o, kTtl, nullptr, &board);
    if (!st.ok()) print_error("OpenNatsLeases: %s\n", st.message().c_str());
    return board;
  };
  env.expire = WaitExpired;
  return env;
}

int StartServer(void** state) {
  auto* f = new Fixture;
  std::string err;
  f->server = NatsServer::Start(&err);
  if (!f->server) {
    print_error("NatsServer::Start: %s\n", err.c_str());
    delete f;
    return -1;
  }
  *state = f;
  return 0;
}

int StartCluster(void** state) {
  auto* f = new Fixture;
  std::string err;
  f->cluster = NatsCluster::Start(3, &err);
  if (!f->cluster) {
    print_error("NatsCluster::Start: %s\n", err.c_str());
    delete f;
    return -1;
  }
  *state = f;
  return 0;
}

int Teardown(void** state) {
  delete static_cast<Fixture*>(*state);
  *state = nullptr;
  return 0;
}

Fixture& F(void** state) { return *static_cast<Fixture*>(*state); }
conf::LeaseEnv Env(void** state) { return EnvFor(OptionsFor(F(state).server->url())); }

void acquire_is_exclusive(void** state) { AssertOk(conf::AcquireIsExclusive(Env(state))); }
void renew_by_revision(void** state) { AssertOk(conf::RenewByRevision(Env(state))); }
void expiry_hands_over_with_larger_epoch(void** state) { AssertOk(conf::ExpiryHandsOver(Env(state))); }
void release_hands_over_and_stale_release_deletes_nothing(void** state) {
  AssertOk(conf::ReleaseHandsOver(Env(state)));
}
void epochs_grow_across_holders(void** state) { AssertOk(conf::EpochsGrow(Env(state))); }
void two_racing_stores_have_one_winner(void** state) { AssertOk(conf::RacingAcquire(Env(state), 2, 30)); }
void four_racing_stores_have_one_winner(void** state) { AssertOk(conf::RacingAcquire(Env(state), 4, 20)); }
void board_put_list(void** state) { AssertOk(conf::BoardPutList(Env(state))); }

// A renewed lease does not expire while its holder keeps renewing. (A TTL of
// 3 kTtl: each round also waits for b's refused acquire, and on a loaded
// machine two requests can take longer than kTtl; it still runs past one TTL.)
void renewing_keeps_the_lease(void** state) {
  lt::Options o = OptionsFor(F(state).server->url());
  auto a = OpenStore(o, 3 * kTtl), b = OpenStore(o, 3 * kTtl);
  lt::Lease la, lb;
  AssertOk(a->Acquire("a", "", 5000, &la));
  auto t0 = conf::Clock::now();
  while (conf::Seconds(t0) < 4.5 * kTtl / 1000.0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(kTtl / 4));
    AssertOk(a->Renew(&la, 5000));
    assert_int_equal(b->Acquire("b", "", 5000, &lb).code(), lt::kLeaseHeld);
  }
  assert_int_equal(lb.epoch, la.epoch);
}

// Writes value to the lease key directly, as another program could.
void PutRaw(const std::string& url, const lt::Options& o, const std::string& value) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  assert_int_equal(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK);
  assert_int_equal(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  std::string subject = "$KV." + o.prefix + "_" + o.name + "_lease.primary";
  jsPubAck* ack = nullptr;
  natsStatus s = js_Publish(&ack, js, subject.c_str(), value.data(), static_cast<int>(value.size()), nullptr, nullptr);
  jsPubAck_Destroy(ack);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  assert_int_equal(s, NATS_OK);
}

void malformed_value_is_a_clear_error(void** state) {
  lt::Options o = OptionsFor(F(state).server->url());
  auto a = OpenStore(o);
  lt::Lease l;
  bool found = true;
  AssertOk(a->Current(5000, &l, &found));  // makes the bucket
  assert_false(found);
  for (const std::string& bad :
       {std::string("not a lease"), std::string("litejet-lease v1\nnode=a\nepoch=x\n"), std::string(100 * 1000, 'z')}) {
    PutRaw(F(state).server->url(), o, bad);
    litejet::Status st = a->Current(5000, &l, &found);
    print_message("Current: %s\n", st.message().c_str());
    assert_false(st.ok());
    assert_true(st.code() != lt::kUnavailable && st.code() != lt::kLeaseHeld);
    assert_true(st.message().find("malformed") != std::string::npos ||
                st.message().find("at most") != std::string::npos);
    st = a->Acquire("a", "", 5000, &l);
    print_message("Acquire: %s\n", st.message().c_str());
    assert_false(st.ok());
    assert_true(st.code() != lt::kLeaseHeld && st.code() != lt::kUnavailable);
  }
  // The bad value ages out like any other; then the lease is usable again.
  auto t0 = conf::Clock::now();
  litejet::Status st;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    st = a->Current(1000, &l, &found);
  } while ((!st.ok() || found) && conf::Seconds(t0) < kTtl / 1000.0 + 30);
  AssertOk(st);
  assert_false(found);
  AssertOk(a->Acquire("a", "", 5000, &l));
}

void shorter_bucket_max_age_is_refused(void** state) {
  lt::Options o = OptionsFor(F(state).server->url());
  auto a = OpenStore(o, kTtl);
  lt::Lease l;
  AssertOk(a->Acquire("a", "", 5000, &l));
  auto longer = OpenStore(o, 10 * kTtl);  // this node would trust the key for 12 s; the bucket drops it after 1.2
  litejet::Status st = longer->Acquire("b", "", 5000, &l);
  print_message("%s\n", st.message().c_str());
  assert_int_equal(st.code(), 1);
  assert_true(st.message().find("max age") != std::string::npos);
  auto shorter = OpenStore(o, kTtl / 2);  // safe: the bucket keeps keys longer than this node trusts them
  assert_int_equal(shorter->Acquire("c", "", 5000, &l).code(), lt::kLeaseHeld);
}

// Opening never waits; calls fail with kUnavailable within their timeout
// while the server is down and work once it is back; destroying a store
// while the server is down does not wait.
void outage_is_unavailable_and_bounded(void** state) {
  lt::Options o = OptionsFor(F(state).server->url());
  F(state).server->Stop();
  auto t0 = conf::Clock::now();
  std::unique_ptr<lt::LeaseStore> store;
  std::unique_ptr<lt::NodeBoard> board;
  AssertOk(lt::OpenNatsLeases(o, kTtl, &store, &board));
  // Durations are printed; the bounds below only catch a hang (a call that
  // ignores its timeout), not slowness: CI machines are loaded.
  print_message("open while the server is down: %.3f s\n", conf::Seconds(t0));
  assert_true(conf::Seconds(t0) < 10);
  lt::Lease l;
  t0 = conf::Clock::now();
  litejet::Status st = store->Acquire("a", "", 300, &l);
  assert_int_equal(st.code(), lt::kUnavailable);
  print_message("acquire (300 ms timeout) while down: %.3f s\n", conf::Seconds(t0));
  assert_true(conf::Seconds(t0) < 10);
  print_message("%s\n", st.message().c_str());
  std::vector<lt::NodeState> list;
  assert_int_equal(board->List(300, &list).code(), lt::kUnavailable);
  std::string err;
  assert_true(F(state).server->Restart(&err));
  auto deadline = conf::Clock::now() + std::chrono::seconds(30);
  do {
    st = store->Acquire("a", "", 1000, &l);
  } while (st.code() == lt::kUnavailable && conf::Clock::now() < deadline);
  AssertOk(st);
  AssertOk(board->Put(lt::NodeState{"a"}, 1000));
  F(state).server->Stop();
  assert_int_equal(store->Renew(&l, 300).code(), lt::kUnavailable);
  t0 = conf::Clock::now();
  store.reset();
  board.reset();
  print_message("destroying the store and board while down: %.3f s\n", conf::Seconds(t0));
  assert_true(conf::Seconds(t0) < 10);
}

// An R3 lease bucket on a 3-node cluster: racing acquires still have exactly
// one winner (the expectation is the stream's last sequence, checked in raft
// order; see docs/design.md).
void racing_stores_on_a_cluster_have_one_winner(void** state) {
  lt::Options o;
  std::string urls = F(state).cluster->urls();
  for (size_t b = 0; b < urls.size();) {
    size_t e = urls.find(',', b);
    if (e == std::string::npos) e = urls.size();
    o.urls.push_back(urls.substr(b, e - b));
    b = e + 1;
  }
  o.name = "r3_" + std::to_string(getpid());
  o.stream_replicas = 3;
  conf::LeaseEnv env = EnvFor(o);
  // A new replicated bucket answers once it has a leader: wait, boundedly.
  auto probe = env.open_store();
  auto deadline = conf::Clock::now() + std::chrono::seconds(30);
  litejet::Status st;
  do {
    lt::Lease l;
    bool found = false;
    st = probe->Current(2000, &l, &found);
  } while (!st.ok() && conf::Clock::now() < deadline);
  AssertOk(st);
  AssertOk(conf::RacingAcquire(env, 3, 40));
}

}  // namespace

int main() {
  lt::InitLibrary();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(acquire_is_exclusive, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(renew_by_revision, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(expiry_hands_over_with_larger_epoch, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(release_hands_over_and_stale_release_deletes_nothing, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(epochs_grow_across_holders, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(two_racing_stores_have_one_winner, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(four_racing_stores_have_one_winner, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(board_put_list, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(renewing_keeps_the_lease, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(malformed_value_is_a_clear_error, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(shorter_bucket_max_age_is_refused, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(outage_is_unavailable_and_bounded, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(racing_stores_on_a_cluster_have_one_winner, StartCluster, Teardown),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
