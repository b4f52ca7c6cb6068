// RoleMachine driven by a fake lease store and a fake clock: elections,
// renewal, fencing before expiry, step-down and hold-off, epochs, catch-up.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <climits>
#include <memory>
#include <string>
#include <vector>

#include "failover/role.h"

namespace lt = litejet::transport;
namespace fo = litejet::failover;
using litejet::Status;

namespace {

constexpr int64_t kTtl = 3000;
constexpr int64_t kStep = 5;  // the simulation's clock resolution

// The server: one lease key with the store's semantics (lease.h), expiring on
// the shared fake clock. `rev` is the bucket's sequence, so epochs never repeat.
struct World {
  int64_t now = 0;
  uint64_t rev = 0;
  bool exists = false;
  lt::Lease lease;
  int64_t stored_at = 0;  // when the last write reached the store
  void Expire() {
    if (exists && now >= stored_at + kTtl) exists = false;
  }
  int64_t ExpiresAt() const { return stored_at + kTtl; }
};

// One node's connection to the server: it can be cut alone (a partition), and
// its writes reach the store `latency` ms after the request started.
class FakeStore : public lt::LeaseStore {
 public:
  explicit FakeStore(World* w) : w_(w) {}
  bool up = true;
  int64_t latency = 0;
  int acquires = 0, renews = 0, releases = 0, currents = 0;
  std::string refuse_acquire;  // Acquire fails with this (e.g. a permissions violation); reads work

  Status Acquire(const std::string& node, const std::string& advertise, int64_t, lt::Lease* out) override {
    acquires++;
    if (!up) return Unavailable();
    if (!refuse_acquire.empty()) return Status::Error(refuse_acquire, lt::kUnavailable);
    w_->Expire();
    if (w_->exists) {
      *out = w_->lease;
      return Status::Error("lease held by " + w_->lease.node, lt::kLeaseHeld);
    }
    w_->rev++;
    w_->lease = lt::Lease{node, advertise, w_->rev, w_->rev, 0, kTtl};
    w_->exists = true;
    w_->stored_at = w_->now + latency;
    *out = w_->lease;
    return Status::OK();
  }
  Status Renew(lt::Lease* l, int64_t) override {
    renews++;
    if (!up) return Unavailable();
    w_->Expire();
    if (!w_->exists || w_->lease.revision != l->revision) return Status::Error("revision moved", lt::kLeaseLost);
    w_->lease.revision = ++w_->rev;
    w_->stored_at = w_->now + latency;
    *l = w_->lease;
    return Status::OK();
  }
  Status Release(const lt::Lease& l, int64_t) override {
    releases++;
    if (!up) return Unavailable();
    w_->Expire();
    if (!w_->exists || w_->lease.revision != l.revision) return Status::Error("revision moved", lt::kLeaseLost);
    w_->exists = false;
    w_->rev++;  // a delete is a write in a KV bucket
    return Status::OK();
  }
  Status Current(int64_t, lt::Lease* out, bool* found) override {
    currents++;
    if (!up) return Unavailable();
    w_->Expire();
    *found = w_->exists;
    if (w_->exists) *out = w_->lease;
    return Status::OK();
  }

 private:
  static Status Unavailable() { return Status::Error("no answer", lt::kUnavailable); }
  World* w_;
};

struct Node {
  Node(World* w, const std::string& id, fo::Configured c) : store(w), m(&store, Opts(id, c)) {}
  static fo::RoleOptions Opts(const std::string& id, fo::Configured c) {
    fo::RoleOptions o;
    o.configured = c;
    o.node = id;
    o.advertise = "http://" + id;
    o.ttl_ms = kTtl;
    return o;
  }
  FakeStore store;
  fo::RoleMachine m;
  fo::Progress progress{0, 0, true};
  bool alive = true;        // false: the process stopped (killed or paused): it no longer ticks
  int64_t primary_at = -1;  // the last candidate -> primary
  std::vector<fo::Transition> log;
  std::vector<uint64_t> epochs_acquired;
  int became_candidate = 0, became_primary = 0;
};

struct Sim {
  World w;
  std::vector<std::unique_ptr<Node>> nodes;
  std::vector<uint64_t> epochs;  // every acquisition, in order

  Node& Add(const std::string& id, fo::Configured c = fo::Configured::kAuto) {
    nodes.push_back(std::make_unique<Node>(&w, id, c));
    return *nodes.back();
  }
  Node* Primary() {
    Node* p = nullptr;
    for (auto& n : nodes)
      if (n->m.MayWrite(w.now)) p = n.get();
    return p;
  }
  void TickOne(Node& n) {
    for (auto& t : n.m.Tick(w.now, n.progress)) Record(n, t);
  }
  void Record(Node& n, const fo::Transition& t) {
    if (t.to == fo::Role::kCandidate) n.became_candidate++;
    if (t.to == fo::Role::kPrimary) {
      n.became_primary++;
      n.primary_at = t.at_ms;
      n.epochs_acquired.push_back(n.m.epoch());
      epochs.push_back(n.m.epoch());
    }
    n.log.push_back(t);
  }
  // The fencing invariant, checked at every instant: at most one node may
  // write, and a node that may write holds the key in the store right now
  // (so no other node could acquire it). Dead nodes count: a paused process
  // that resumes asks MayWrite with the real time.
  void CheckSafety() {
    w.Expire();
    int writers = 0;
    for (auto& n : nodes) {
      if (!n->m.MayWrite(w.now)) continue;
      writers++;
      if (!w.exists || w.lease.node != n->m.options().node || w.lease.epoch != n->m.epoch()) {
        fail_msg("t=%lld: %s may write but the store %s", static_cast<long long>(w.now), n->m.options().node.c_str(),
                 w.exists ? "has another holder" : "has no lease");
      }
    }
    assert_true(writers <= 1);
  }
  // Advances the clock to `until`, ticking every live node when it asks to be.
  // stop (optional) ends the run early when it returns true.
  template <typename F>
  void RunUntil(int64_t until, F stop) {
    for (; w.now <= until; w.now += kStep) {
      for (auto& n : nodes)
        if (n->alive && w.now >= n->m.NextTickAt()) TickOne(*n);
      CheckSafety();
      if (stop()) return;
    }
  }
  void Run(int64_t duration) {
    RunUntil(w.now + duration, [] { return false; });
  }
};

int64_t Poll() { return std::min<int64_t>(std::max<int64_t>(kTtl / 5, 50), 1000); }

void three_auto_nodes_elect_exactly_one_primary(void**) {
  Sim s;
  s.Add("a");
  s.Add("b");
  s.Add("c");
  s.Run(10 * kTtl);
  int primaries = 0, acquisitions = 0;
  for (auto& n : s.nodes) {
    primaries += n->m.role() == fo::Role::kPrimary;
    acquisitions += n->became_primary;
  }
  assert_int_equal(primaries, 1);
  assert_int_equal(acquisitions, 1);  // and it kept the lease for 10 TTLs
  Node* p = s.Primary();
  assert_non_null(p);
  for (auto& n : s.nodes) {
    assert_true(n->m.primary().known);
    assert_string_equal(n->m.primary().advertise.c_str(), p->m.options().advertise.c_str());
    assert_int_equal(n->m.primary().epoch, p->m.epoch());
    assert_int_equal(n->m.max_epoch_seen(), p->m.epoch());
    if (n.get() != p) assert_int_equal(n->m.role(), fo::Role::kReplica);
  }
  // Renewed about every ttl/3.
  assert_true(p->store.renews >= static_cast<int>(9 * kTtl / (kTtl / 3)));
}

void replica_role_never_acquires(void**) {
  Sim s;
  Node& r = s.Add("r", fo::Configured::kReplica);
  s.Run(5 * kTtl);  // the lease is free all along
  assert_int_equal(r.store.acquires, 0);
  assert_int_equal(r.became_candidate, 0);
  assert_int_equal(r.m.role(), fo::Role::kReplica);
  assert_false(r.m.primary().known);
  assert_true(r.store.currents >= static_cast<int>(5 * kTtl / Poll()) - 1);
  assert_false(r.m.StepDown(s.w.now));

  Node& a = s.Add("a");
  s.Run(2 * kTtl);
  assert_int_equal(a.m.role(), fo::Role::kPrimary);
  assert_int_equal(r.store.acquires, 0);
  assert_true(r.m.primary().known);
  assert_string_equal(r.m.primary().advertise.c_str(), "http://a");
}

void static_primary_gets_the_free_lease_and_keeps_it(void**) {
  Sim s;
  Node& p = s.Add("p", fo::Configured::kPrimary);  // ticks first: the lease is free
  Node& a = s.Add("a");
  Node& b = s.Add("b");
  s.Run(10 * kTtl);
  assert_int_equal(p.m.role(), fo::Role::kPrimary);
  assert_int_equal(p.became_primary, 1);
  assert_int_equal(a.became_primary + b.became_primary, 0);
  assert_true(p.m.MayWrite(s.w.now));
}

void static_primary_waits_out_an_auto_holder(void**) {
  Sim s;
  Node& a = s.Add("a");
  Node& p = s.Add("p", fo::Configured::kPrimary);
  p.progress = {0, 1, true};  // still catching up while a is elected
  s.Run(2 * kTtl);
  assert_int_equal(a.m.role(), fo::Role::kPrimary);
  p.progress = {1, 1, true};
  s.Run(5 * kTtl);  // the static primary does not push the auto holder out
  assert_int_equal(a.m.role(), fo::Role::kPrimary);
  assert_int_equal(a.became_primary, 1);
  assert_int_equal(p.became_primary, 0);
  assert_string_equal(p.m.primary().node.c_str(), "a");
  a.alive = false;  // ... and takes the lease once it expires
  int64_t killed = s.w.now;
  s.RunUntil(s.w.now + 3 * kTtl, [&] { return p.m.role() == fo::Role::kPrimary; });
  assert_int_equal(p.m.role(), fo::Role::kPrimary);
  assert_true(p.primary_at <= killed + kTtl + Poll());
}

void killed_holder_is_replaced_within_ttl_and_one_poll(void**) {
  Sim s;
  s.Add("a");
  s.Add("b");
  s.Add("c");
  s.Run(2 * kTtl + 123);
  Node* old = s.Primary();
  assert_non_null(old);
  old->alive = false;  // SIGKILL: it stops ticking mid-term
  int64_t killed = s.w.now, expires = s.w.ExpiresAt();
  uint64_t old_epoch = old->m.epoch();
  Node* next = nullptr;
  s.RunUntil(killed + 3 * kTtl, [&] {
    for (auto& n : s.nodes)
      if (n.get() != old && n->m.role() == fo::Role::kPrimary) next = n.get();
    return next != nullptr;
  });
  assert_non_null(next);
  print_message("killed at %lld, lease expired at %lld, new primary at %lld\n", static_cast<long long>(killed),
                static_cast<long long>(expires), static_cast<long long>(next->primary_at));
  assert_true(next->primary_at >= expires);  // not before the store let it in
  assert_true(next->primary_at <= killed + kTtl + Poll());
  assert_true(next->m.epoch() > old_epoch);
  assert_false(old->m.MayWrite(s.w.now));
}

void partitioned_primary_is_fenced_before_another_can_acquire(void**) {
  Sim s;
  s.Add("a");
  s.Add("b");
  s.Add("c");
  for (auto& n : s.nodes) n->store.latency = 40;  // a write reaches the store after its request started
  s.Run(2 * kTtl + 77);
  Node* old = s.Primary();
  assert_non_null(old);
  uint64_t old_epoch = old->m.epoch();
  old->store.up = false;                    // cut off from the store; the others still reach it
  const int64_t expires = s.w.ExpiresAt();  // its last renewal is the key's last write
  int64_t fenced = -1, fence_reported = -1, taken = -1;
  Node* next = nullptr;
  s.RunUntil(s.w.now + 3 * kTtl, [&] {
    if (fenced < 0 && !old->m.MayWrite(s.w.now)) fenced = s.w.now;
    if (fence_reported < 0 && old->m.role() == fo::Role::kReplica) fence_reported = s.w.now;
    for (auto& n : s.nodes)
      if (n.get() != old && n->m.role() == fo::Role::kPrimary) next = n.get();
    if (next && taken < 0) taken = next->primary_at;
    return next != nullptr;
  });
  assert_non_null(next);
  print_message("fenced at %lld (reported %lld), lease expired at %lld, taken over at %lld\n",
                static_cast<long long>(fenced), static_cast<long long>(fence_reported), static_cast<long long>(expires),
                static_cast<long long>(taken));
  assert_true(fenced >= 0);
  assert_true(fenced < expires);  // the ordering fencing is for: no write once another could acquire
  assert_true(expires <= taken);
  assert_true(fence_reported >= 0 && fence_reported < taken);
  assert_int_equal(old->m.role(), fo::Role::kReplica);
  assert_true(old->m.last_reason().find("could not renew the lease within lease_ttl_ms") != std::string::npos);
  assert_true(next->m.epoch() > old_epoch);

  old->store.up = true;  // healed: it learns the new primary and stays a replica
  s.Run(2 * kTtl);
  assert_int_equal(old->m.role(), fo::Role::kReplica);
  assert_false(old->m.MayWrite(s.w.now));
  assert_string_equal(old->m.primary().node.c_str(), next->m.options().node.c_str());
  assert_int_equal(old->m.max_epoch_seen(), next->m.epoch());
}

// Cut off past its deadline but healed before the store expired the key: the
// key is still its own, yet it writes again only after a fresh Acquire.
void fenced_node_writes_again_only_under_a_new_epoch(void**) {
  Sim s;
  Node& a = s.Add("a");
  s.Run(kTtl);
  uint64_t first = a.m.epoch();
  assert_true(first > 0);
  a.store.up = false;
  s.RunUntil(s.w.now + 2 * kTtl, [&] { return a.m.role() == fo::Role::kReplica; });
  assert_int_equal(a.m.role(), fo::Role::kReplica);
  s.w.Expire();
  assert_true(s.w.exists);  // the margin: fenced while the key still lives
  a.store.up = true;
  int64_t healed = s.w.now;
  s.RunUntil(s.w.now + 2 * kTtl, [&] { return a.m.role() == fo::Role::kPrimary; });
  assert_int_equal(a.m.role(), fo::Role::kPrimary);
  assert_true(a.primary_at > healed);
  assert_true(a.m.epoch() > first);
}

void lost_lease_makes_a_replica_at_once(void**) {
  Sim s;
  Node& a = s.Add("a");
  s.Run(kTtl);
  assert_int_equal(a.m.role(), fo::Role::kPrimary);
  // The key moved under it (an operator deleted it and another node acquired).
  FakeStore intruder(&s.w);
  lt::Lease dummy;
  assert_true(intruder.Release(s.w.lease, 100).ok());
  assert_true(intruder.Acquire("x", "http://x", 100, &dummy).ok());
  // a is still within its deadline: the invariant check would flag it, so
  // tick a directly at its next renewal.
  s.w.now = a.m.NextTickAt();
  auto ts = a.m.Tick(s.w.now, a.progress);
  assert_true(ts.size() >= 1);
  assert_int_equal(ts[0].from, fo::Role::kPrimary);
  assert_int_equal(ts[0].to, fo::Role::kReplica);
  assert_true(ts[0].reason.find("lost the lease") != std::string::npos);
  assert_false(a.m.MayWrite(s.w.now));
  assert_int_equal(a.m.role(), fo::Role::kReplica);
  // The same Tick read the lease again: it knows the new holder.
  assert_string_equal(a.m.primary().node.c_str(), "x");
  assert_int_equal(a.m.max_epoch_seen(), dummy.epoch);
}

void step_down_hands_over_within_one_poll(void**) {
  Sim s;
  s.Add("a");
  s.Add("b");
  s.Add("c");
  s.Run(2 * kTtl);
  Node* old = s.Primary();
  assert_non_null(old);
  int candidacies = old->became_candidate;
  int64_t at = s.w.now;
  assert_true(old->m.StepDown(at));
  assert_false(old->m.MayWrite(at));
  assert_false(s.w.exists);                // released, not left to expire
  assert_true(old->m.NextTickAt() <= at);  // the transition waits in the next Tick
  Node* next = nullptr;
  s.RunUntil(at + 2 * kTtl, [&] {
    for (auto& n : s.nodes)
      if (n.get() != old && n->m.role() == fo::Role::kPrimary) next = n.get();
    return next != nullptr;
  });
  assert_non_null(next);
  assert_true(next->primary_at <= at + Poll());
  assert_int_equal(old->log.back().from, fo::Role::kPrimary);
  assert_true(old->log.back().reason.rfind("stepped down from epoch", 0) == 0);
  assert_int_equal(old->log.back().at_ms, at);
  assert_false(old->m.StepDown(s.w.now));  // not primary any more

  // During its hold-off the stepped-down node is never a candidate, even with the lease free.
  next->alive = false;
  assert_true(next->m.StepDown(s.w.now));
  for (auto& n : s.nodes)
    if (n.get() != old) n->alive = false;
  s.RunUntil(at + old->m.options().hold_off_ms - kStep, [] { return false; });
  assert_int_equal(old->became_candidate, candidacies);
  assert_int_equal(old->m.role(), fo::Role::kReplica);
  s.Run(Poll() + kStep);  // after it, it is
  assert_int_equal(old->m.role(), fo::Role::kPrimary);
}

void epochs_strictly_increase_across_primaries(void**) {
  Sim s;
  s.Add("a");
  s.Add("b");
  s.Add("c");
  s.Run(kTtl);
  std::vector<uint64_t> seen_max(3, 0);
  for (int round = 0; round < 12; round++) {
    Node* p = s.Primary();
    assert_non_null(p);
    if (round % 3 == 0) {
      p->alive = false;  // killed; revived (a new process would start as replica) after the takeover
    } else if (round % 3 == 1) {
      p->m.StepDown(s.w.now);
    } else {
      p->store.up = false;  // partitioned
    }
    s.Run(2 * kTtl);
    for (auto& n : s.nodes) {
      n->alive = true;
      n->store.up = true;
    }
    for (size_t i = 0; i < 3; i++) {
      assert_true(s.nodes[i]->m.max_epoch_seen() >= seen_max[i]);
      seen_max[i] = s.nodes[i]->m.max_epoch_seen();
    }
  }
  assert_true(s.epochs.size() >= 12);
  for (size_t i = 1; i < s.epochs.size(); i++) assert_true(s.epochs[i] > s.epochs[i - 1]);
}

void not_caught_up_is_never_a_candidate(void**) {
  const fo::Progress behind[] = {{5, 7, true}, {0, 0, false}, {9, 7, true}};  // behind, log unknown, ahead
  for (const auto& p : behind) {
    Sim s;
    Node& a = s.Add("a");
    a.progress = p;
    s.Run(5 * kTtl);
    assert_int_equal(a.store.acquires, 0);
    assert_int_equal(a.became_candidate, 0);
    a.progress = {7, 7, true};  // caught up: elected within a poll
    int64_t at = s.w.now;
    s.Run(Poll() + kStep);
    assert_int_equal(a.m.role(), fo::Role::kPrimary);
    assert_true(a.primary_at <= at + Poll());
  }
}

// An outage shorter than the deadline's slack costs nothing.
void brief_outage_does_not_fence(void**) {
  Sim s;
  Node& a = s.Add("a");
  s.Run(kTtl);
  a.store.up = false;
  s.Run(kTtl / 2);
  assert_true(a.m.MayWrite(s.w.now));
  a.store.up = true;
  s.Run(2 * kTtl);
  assert_int_equal(a.became_primary, 1);
  assert_true(a.m.MayWrite(s.w.now));
}

// A candidate the store refuses (a NATS user without the right to write the
// lease) says why in lease_error() and stays a replica; once allowed, it is
// elected and the error is gone.
void refused_acquire_is_reported(void**) {
  Sim s;
  Node& a = s.Add("a");
  const std::string why =
      "litejet: nats: acquire the lease failed: timeout (the server reported: Permissions Violation for Publish to "
      "\"$KV.litejet_db_lease.lease\")";
  a.store.refuse_acquire = why;
  s.Run(kTtl);
  assert_int_equal(a.became_primary, 0);
  assert_false(a.m.MayWrite(s.w.now));
  assert_string_equal(a.m.lease_error().c_str(), why.c_str());
  a.store.refuse_acquire.clear();
  s.Run(kTtl);
  assert_int_equal(a.became_primary, 1);
  assert_string_equal(a.m.lease_error().c_str(), "");
}

void close_releases_the_lease(void**) {
  Sim s;
  Node& a = s.Add("a");
  Node& b = s.Add("b");
  s.Run(kTtl);
  assert_int_equal(a.m.role(), fo::Role::kPrimary);
  int64_t at = s.w.now;
  auto ts = a.m.Close(at);
  a.alive = false;
  assert_int_equal(ts.size(), 1);
  assert_string_equal(ts[0].ToString().c_str(), "primary -> replica: closed: released the lease");
  assert_false(a.m.MayWrite(at));
  s.Run(Poll() + kStep);
  assert_int_equal(b.m.role(), fo::Role::kPrimary);
  assert_true(b.primary_at <= at + Poll());
}

void transitions_read_as_sentences(void**) {
  Sim s;
  Node& a = s.Add("a");
  s.Run(kStep);
  assert_int_equal(a.log.size(), 2);
  assert_string_equal(a.log[0].ToString().c_str(),
                      "replica -> candidate: the lease is free and the log is applied to its end (at 0)");
  assert_true(a.log[1].ToString().rfind("candidate -> primary: acquired the lease, epoch 1", 0) == 0);
  fo::RoleOptions o = a.m.options();
  assert_int_equal(o.renew_ms, kTtl / 3);
  assert_int_equal(o.margin_ms, 300);
  assert_int_equal(o.poll_ms, 600);
  assert_int_equal(o.hold_off_ms, kTtl);
  assert_int_equal(a.m.WriteDeadline(), 0 + kTtl - 300);
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(three_auto_nodes_elect_exactly_one_primary),
      cmocka_unit_test(replica_role_never_acquires),
      cmocka_unit_test(static_primary_gets_the_free_lease_and_keeps_it),
      cmocka_unit_test(static_primary_waits_out_an_auto_holder),
      cmocka_unit_test(killed_holder_is_replaced_within_ttl_and_one_poll),
      cmocka_unit_test(partitioned_primary_is_fenced_before_another_can_acquire),
      cmocka_unit_test(fenced_node_writes_again_only_under_a_new_epoch),
      cmocka_unit_test(lost_lease_makes_a_replica_at_once),
      cmocka_unit_test(step_down_hands_over_within_one_poll),
      cmocka_unit_test(epochs_strictly_increase_across_primaries),
      cmocka_unit_test(not_caught_up_is_never_a_candidate),
      cmocka_unit_test(brief_outage_does_not_fence),
      cmocka_unit_test(refused_acquire_is_reported),
      cmocka_unit_test(close_releases_the_lease),
      cmocka_unit_test(transitions_read_as_sentences),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
