// transport/lease_conformance.h: behaviour every LeaseStore/NodeBoard must
// show (exclusive acquire, compare-and-set renew and release, expiry, growing
// epochs, heartbeats), as checks returning Status so any test framework runs them.
// Each check expects a lease nobody holds and an empty board.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "transport/lease.h"
#include "transport/log_conformance.h"  // LITEJET_CONF_CHECK, LITEJET_CONF_OK

namespace litejet::transport::conformance {

struct LeaseEnv {
  std::function<std::unique_ptr<LeaseStore>()> open_store;  // another node's store on the same lease
  std::function<std::unique_ptr<NodeBoard>()> open_board;   // another node's board on the same board
  // Returns once a lease nobody renews has expired (memory: moves the clock;
  // NATS: waits, boundedly), or an error if it did not.
  std::function<Status(LeaseStore&)> expire;
};

constexpr int64_t kConfWaitMs = 5000;

inline std::string Code(const Status& s) { return "code " + std::to_string(s.code()) + " " + s.message(); }

// First Acquire wins; a second one gets kLeaseHeld and the holder's lease.
inline Status AcquireIsExclusive(const LeaseEnv& env) {
  auto a = env.open_store(), b = env.open_store();
  Lease cur;
  bool found = true;
  LITEJET_CONF_OK(a->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(!found, "a fresh lease has a holder");
  Lease la, lb;
  LITEJET_CONF_OK(a->Acquire("node-a", "a.example:7000", kConfWaitMs, &la));
  LITEJET_CONF_CHECK(la.node == "node-a" && la.advertise == "a.example:7000", "acquired lease has wrong fields");
  LITEJET_CONF_CHECK(la.epoch > 0 && la.epoch == la.revision,
                     "epoch " + std::to_string(la.epoch) + " != revision " + std::to_string(la.revision));
  LITEJET_CONF_CHECK(la.ttl_ms > 0 && la.renewed_unix_ms > 0, "ttl or renewed time missing");
  Status st = b->Acquire("node-b", "b.example:7000", kConfWaitMs, &lb);
  LITEJET_CONF_CHECK(st.code() == kLeaseHeld, "second acquire: " + Code(st));
  LITEJET_CONF_CHECK(
      lb.node == "node-a" && lb.epoch == la.epoch && lb.revision == la.revision && lb.advertise == "a.example:7000",
      "kLeaseHeld did not report the holder's lease");
  // The holder itself cannot acquire twice either.
  Lease again;
  st = a->Acquire("node-a", "a.example:7000", kConfWaitMs, &again);
  LITEJET_CONF_CHECK(st.code() == kLeaseHeld, "holder's second acquire: " + Code(st));
  LITEJET_CONF_OK(b->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(found && cur.node == "node-a" && cur.epoch == la.epoch && cur.revision == la.revision,
                     "Current does not show the holder");
  return Status::OK();
}

// Renew moves the revision and keeps the epoch; a stale revision is kLeaseLost.
inline Status RenewByRevision(const LeaseEnv& env) {
  auto a = env.open_store(), b = env.open_store();
  Lease la;
  LITEJET_CONF_OK(a->Acquire("node-a", "", kConfWaitMs, &la));
  Lease stale = la;
  LITEJET_CONF_OK(a->Renew(&la, kConfWaitMs));
  LITEJET_CONF_CHECK(la.revision > stale.revision && la.epoch == stale.epoch,
                     "renew: revision " + std::to_string(la.revision) + " epoch " + std::to_string(la.epoch));
  LITEJET_CONF_OK(a->Renew(&la, kConfWaitMs));
  Lease cur;
  bool found = false;
  LITEJET_CONF_OK(b->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(found && cur.revision == la.revision && cur.epoch == la.epoch && cur.node == "node-a",
                     "Current after renew differs");
  Status st = a->Renew(&stale, kConfWaitMs);
  LITEJET_CONF_CHECK(st.code() == kLeaseLost, "renew with a stale revision: " + Code(st));
  st = b->Renew(&stale, kConfWaitMs);
  LITEJET_CONF_CHECK(st.code() == kLeaseLost, "another node's renew with a stale revision: " + Code(st));
  // The failed renews changed nothing.
  LITEJET_CONF_OK(b->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(found && cur.revision == la.revision, "a failed renew changed the key");
  LITEJET_CONF_OK(a->Renew(&la, kConfWaitMs));
  return Status::OK();
}

// An unrenewed lease expires; the next holder's epoch is larger and the old
// holder's renew and release fail without touching the new lease.
inline Status ExpiryHandsOver(const LeaseEnv& env) {
  auto a = env.open_store(), b = env.open_store();
  Lease la, lb;
  LITEJET_CONF_OK(a->Acquire("node-a", "", kConfWaitMs, &la));
  LITEJET_CONF_OK(a->Renew(&la, kConfWaitMs));
  LITEJET_CONF_OK(env.expire(*b));
  Lease cur;
  bool found = true;
  LITEJET_CONF_OK(b->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(!found, "expired lease still has a holder");
  LITEJET_CONF_OK(b->Acquire("node-b", "", kConfWaitMs, &lb));
  LITEJET_CONF_CHECK(lb.epoch > la.epoch,
                     "epoch after expiry " + std::to_string(lb.epoch) + " <= " + std::to_string(la.epoch));
  Status st = a->Renew(&la, kConfWaitMs);
  LITEJET_CONF_CHECK(st.code() == kLeaseLost, "old holder's renew after expiry: " + Code(st));
  st = a->Release(la, kConfWaitMs);
  LITEJET_CONF_CHECK(st.code() == kLeaseLost, "old holder's release after expiry: " + Code(st));
  LITEJET_CONF_OK(a->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(found && cur.node == "node-b" && cur.epoch == lb.epoch, "new holder's lease was touched");
  return Status::OK();
}

// Release lets another node acquire at once; a stale release deletes nothing.
inline Status ReleaseHandsOver(const LeaseEnv& env) {
  auto a = env.open_store(), b = env.open_store();
  Lease la, lb;
  LITEJET_CONF_OK(a->Acquire("node-a", "", kConfWaitMs, &la));
  Lease stale = la;
  LITEJET_CONF_OK(a->Renew(&la, kConfWaitMs));
  Status st = a->Release(stale, kConfWaitMs);
  LITEJET_CONF_CHECK(st.code() == kLeaseLost, "release with a stale revision: " + Code(st));
  Lease cur;
  bool found = false;
  LITEJET_CONF_OK(b->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(found && cur.revision == la.revision, "a stale release deleted the lease");
  LITEJET_CONF_OK(a->Release(la, kConfWaitMs));
  LITEJET_CONF_OK(b->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(!found, "released lease still has a holder");
  LITEJET_CONF_OK(b->Acquire("node-b", "", kConfWaitMs, &lb));
  LITEJET_CONF_CHECK(lb.epoch > la.revision, "epoch after release " + std::to_string(lb.epoch));
  st = a->Release(la, kConfWaitMs);
  LITEJET_CONF_CHECK(st.code() == kLeaseLost, "second release of an old lease: " + Code(st));
  st = a->Release(stale, kConfWaitMs);
  LITEJET_CONF_CHECK(st.code() == kLeaseLost, "stale release after a new holder: " + Code(st));
  LITEJET_CONF_OK(a->Current(kConfWaitMs, &cur, &found));
  LITEJET_CONF_CHECK(found && cur.node == "node-b" && cur.revision == lb.revision, "new holder's lease was deleted");
  return Status::OK();
}

// acquire -> release -> acquire -> expire -> acquire -> release -> acquire:
// every epoch larger than the one before.
inline Status EpochsGrow(const LeaseEnv& env) {
  auto a = env.open_store(), b = env.open_store();
  std::vector<uint64_t> epochs;
  Lease l;
  LITEJET_CONF_OK(a->Acquire("node-a", "", kConfWaitMs, &l));
  epochs.push_back(l.epoch);
  LITEJET_CONF_OK(a->Release(l, kConfWaitMs));
  LITEJET_CONF_OK(a->Acquire("node-a", "", kConfWaitMs, &l));  // the same node again
  epochs.push_back(l.epoch);
  LITEJET_CONF_OK(env.expire(*b));
  LITEJET_CONF_OK(b->Acquire("node-b", "", kConfWaitMs, &l));
  epochs.push_back(l.epoch);
  LITEJET_CONF_OK(b->Renew(&l, kConfWaitMs));
  LITEJET_CONF_OK(b->Release(l, kConfWaitMs));
  LITEJET_CONF_OK(a->Acquire("node-a", "", kConfWaitMs, &l));
  epochs.push_back(l.epoch);
  for (size_t i = 1; i < epochs.size(); i++) {
    LITEJET_CONF_CHECK(epochs[i] > epochs[i - 1], "epoch " + std::to_string(i) + " is " + std::to_string(epochs[i]) +
                                                      ", previous " + std::to_string(epochs[i - 1]));
  }
  return Status::OK();
}

// Stores released together race Acquire, round after round: exactly one wins.
inline Status RacingAcquire(const LeaseEnv& env, int nodes, int rounds) {
  std::vector<std::unique_ptr<LeaseStore>> stores;
  for (int i = 0; i < nodes; i++) stores.push_back(env.open_store());
  // Connected, bucket made: on a three-server cluster under load, creating
  // the bucket's stream (a raft proposal) can take longer than one call's
  // wait; the race is about Acquire, not about that.
  for (auto& st : stores) {
    Lease cur;
    bool found = false;
    Status w = st->Current(kConfWaitMs, &cur, &found);
    for (int i = 0; i < 5 && !w.ok(); i++) w = st->Current(kConfWaitMs, &cur, &found);
    if (!w.ok()) return Status::Error("before the race: " + w.message());
  }
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0, generation = 0;
  auto barrier = [&] {
    std::unique_lock<std::mutex> l(mu);
    int gen = generation;
    if (++arrived == nodes) {
      arrived = 0;
      generation++;
      cv.notify_all();
    } else {
      cv.wait(l, [&] { return generation != gen; });
    }
  };
  std::vector<std::vector<Lease>> wins(static_cast<size_t>(rounds));
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int n = 0; n < nodes; n++) {
    threads.emplace_back([&, n] {
      for (int r = 0; r < rounds; r++) {
        barrier();
        Lease l;
        Status st = stores[static_cast<size_t>(n)]->Acquire("node-" + std::to_string(n), "", kConfWaitMs, &l);
        {
          std::lock_guard<std::mutex> g(mu);
          if (st.ok()) {
            wins[static_cast<size_t>(r)].push_back(l);
          } else if (st.code() != kLeaseHeld) {
            errors.push_back(st.message());
          }
        }
        barrier();  // everyone has tried: the winner releases
        if (st.ok()) {
          Status rel = stores[static_cast<size_t>(n)]->Release(l, kConfWaitMs);
          std::lock_guard<std::mutex> g(mu);
          if (!rel.ok()) errors.push_back("release: " + rel.message());
        }
        barrier();
      }
    });
  }
  for (auto& t : threads) t.join();
  LITEJET_CONF_CHECK(errors.empty(), errors.empty() ? "" : errors.front());
  uint64_t last_epoch = 0;
  for (int r = 0; r < rounds; r++) {
    const auto& w = wins[static_cast<size_t>(r)];
    LITEJET_CONF_CHECK(w.size() == 1, "round " + std::to_string(r) + " had " + std::to_string(w.size()) + " winners");
    LITEJET_CONF_CHECK(w[0].epoch > last_epoch, "round " + std::to_string(r) + " epoch did not grow");
    last_epoch = w[0].epoch;
  }
  return Status::OK();
}

// Heartbeats: Put then List shows every node's last state; node ids need no escaping by the caller.
inline Status BoardPutList(const LeaseEnv& env) {
  auto a = env.open_board(), b = env.open_board();
  std::vector<NodeState> list;
  LITEJET_CONF_OK(a->List(kConfWaitMs, &list));
  LITEJET_CONF_CHECK(list.empty(), "a fresh board lists " + std::to_string(list.size()) + " nodes");
  NodeState s1;
  s1.node = "node-a";
  s1.role = "primary";
  s1.advertise = "a:7000";
  s1.txid = 41;
  s1.epoch = 7;
  s1.unix_ms = 1700000000000;
  NodeState s2;
  s2.node = "b node/é.*>=%\n";  // characters no KV key may hold
  s2.role = "replica";
  s2.txid = 40;
  s2.last_error = "litejet: something = wrong\nsecond line";
  LITEJET_CONF_OK(a->Put(s1, kConfWaitMs));
  LITEJET_CONF_OK(b->Put(s2, kConfWaitMs));
  s1.txid = 42;
  LITEJET_CONF_OK(a->Put(s1, kConfWaitMs));  // replaces the first
  LITEJET_CONF_OK(b->List(kConfWaitMs, &list));
  LITEJET_CONF_CHECK(list.size() == 2, "board lists " + std::to_string(list.size()) + " nodes, want 2");
  const NodeState* got1 = nullptr;
  const NodeState* got2 = nullptr;
  for (const auto& s : list) {
    if (s.node == s1.node) got1 = &s;
    if (s.node == s2.node) got2 = &s;
  }
  LITEJET_CONF_CHECK(got1 && got2, "a node is missing from the list");
  LITEJET_CONF_CHECK(got1->role == "primary" && got1->advertise == "a:7000" && got1->txid == 42 && got1->epoch == 7 &&
                         got1->unix_ms == 1700000000000 && got1->last_error.empty(),
                     "node-a's heartbeat differs");
  LITEJET_CONF_CHECK(got2->role == "replica" && got2->txid == 40 && got2->last_error == s2.last_error,
                     "the escaped node's heartbeat differs");
  return Status::OK();
}

}  // namespace litejet::transport::conformance
