// failover/role.cc: RoleMachine, the role state machine over a LeaseStore.
// Pure logic: no threads, no sleeping, time comes from the caller.
#include "failover/role.h"

#include <algorithm>
#include <climits>
#include <utility>

namespace litejet::failover {

namespace lt = litejet::transport;

namespace {

constexpr int64_t kNoDeadline = INT64_MIN;

std::string Ms(int64_t ms) { return std::to_string(ms) + " ms"; }

std::string Holder(const lt::Lease& l) {
  std::string s = l.node.empty() ? std::string("another node") : "node \"" + l.node + "\"";
  if (l.epoch) s += " (epoch " + std::to_string(l.epoch) + ")";
  return s;
}

// Defaults and the clamps that keep the timing guarantees (docs/design.md, "Roles and failover").
RoleOptions Resolve(RoleOptions o) {
  o.ttl_ms = std::max<int64_t>(o.ttl_ms, 2);
  // The margin absorbs clock-rate differences and the time between the
  // caller's `now` and the request: the holder stops writing this much before
  // the store could let another node in.
  if (o.margin_ms <= 0) o.margin_ms = std::max<int64_t>(o.ttl_ms / 10, 100);
  o.margin_ms = std::clamp<int64_t>(o.margin_ms, 1, o.ttl_ms / 2);
  // At least two renewals fit between a success and the deadline, so one lost
  // answer does not fence a healthy primary.
  if (o.renew_ms <= 0) o.renew_ms = o.ttl_ms / 3;
  o.renew_ms = std::clamp<int64_t>(o.renew_ms, 1, std::max<int64_t>((o.ttl_ms - o.margin_ms) / 2, 1));
  if (o.poll_ms <= 0) o.poll_ms = std::clamp<int64_t>(o.ttl_ms / 5, 50, 1000);
  if (o.hold_off_ms <= 0) o.hold_off_ms = o.ttl_ms;
  if (o.call_timeout_ms <= 0) o.call_timeout_ms = std::clamp<int64_t>(o.ttl_ms / 3, 100, 2000);
  return o;
}

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kReplica:
      return "replica";
    case Role::kCandidate:
      return "candidate";
    case Role::kPrimary:
      return "primary";
  }
  return "replica";
}

std::string Transition::ToString() const { return std::string(RoleName(from)) + " -> " + RoleName(to) + ": " + reason; }

RoleMachine::RoleMachine(lt::LeaseStore* store, RoleOptions o)
    : store_(store), o_(Resolve(std::move(o))), write_deadline_(kNoDeadline) {}

std::vector<Transition> RoleMachine::Tick(int64_t now, const Progress& p) {
  if (!closed_) {
    const bool was_primary = role_ == Role::kPrimary;
    if (role_ == Role::kPrimary) TickPrimary(now);
    // Not "else": a primary that just lost the lease reads it again at once.
    // But it does not acquire it again in this Tick: the caller's progress
    // was a primary's (the log's end taken as its own), not read from the
    // log, and the caller must see the demotion before a new term.
    Progress q = p;
    if (was_primary) q.log_last_known = false;
    if (role_ != Role::kPrimary) TickOther(now, q);
  }
  std::vector<Transition> out;
  out.swap(pending_);
  return out;
}

int64_t RoleMachine::NextTickAt() const {
  if (!pending_.empty()) return INT64_MIN;
  if (closed_) return INT64_MAX;
  if (role_ == Role::kPrimary) return std::min(next_renew_, deadline_);
  return next_poll_;
}

void RoleMachine::Move(Role to, int64_t now, std::string reason) {
  last_reason_ = reason;
  pending_.push_back(Transition{role_, to, std::move(reason), now});
  role_ = to;
}

void RoleMachine::Learn(const lt::Lease& l) {
  primary_.known = true;
  primary_.node = l.node;
  primary_.advertise = l.advertise;
  primary_.epoch = l.epoch;
  max_epoch_ = std::max(max_epoch_, l.epoch);
}

void RoleMachine::BecomeReplica(int64_t now, std::string reason) {
  // Writes stop before anything else (a commit checks the atomic, not role_).
  write_deadline_.store(kNoDeadline, std::memory_order_release);
  held_ = lt::Lease();
  if (primary_.node == o_.node) primary_ = PrimaryInfo();
  Move(Role::kReplica, now, std::move(reason));
}

void RoleMachine::TickPrimary(int64_t now) {
  if (now >= deadline_) {
    // Fenced: the store may still hold the key, but another node may acquire
    // it soon after this instant, so this lease is over. Writes already
    // stopped at the deadline (MayWrite); only a fresh Acquire (a new epoch)
    // makes this node primary again.
    lt::Lease old = held_;
    int64_t since = now - (deadline_ - (o_.ttl_ms - o_.margin_ms));
    BecomeReplica(now, "could not renew the lease within lease_ttl_ms (" + Ms(o_.ttl_ms) + "): last renewed " +
                           Ms(since) + " ago, writes stopped " + Ms(o_.margin_ms) + " before the lease expires");
    // Best effort, by revision: if the store is reachable again (a paused
    // process) the others need not wait for the expiry.
    (void)store_->Release(old, std::min(o_.call_timeout_ms, o_.poll_ms));
    next_poll_ = now;
    return;
  }
  if (now < next_renew_) return;
  lt::Lease l = held_;
  Status st = store_->Renew(&l, std::max<int64_t>(1, std::min(o_.call_timeout_ms, deadline_ - now)));
  lease_error_ = st.ok() || st.code() == lt::kLeaseHeld || st.code() == lt::kLeaseLost ? "" : st.message();
  if (st.ok()) {
    held_ = l;
    Learn(l);
    // From the request's start (no later than now), never from its answer.
    deadline_ = now + o_.ttl_ms - o_.margin_ms;
    write_deadline_.store(deadline_, std::memory_order_release);
    next_renew_ = now + o_.renew_ms;
    return;
  }
  if (st.code() == lt::kLeaseHeld || st.code() == lt::kLeaseLost) {
    BecomeReplica(now, "lost the lease (epoch " + std::to_string(held_.epoch) +
                           "): it expired or another node holds it: " + st.message());
    next_poll_ = now;
    return;
  }
  // No answer: retry soon, but the deadline still runs from the last success.
  next_renew_ = std::min(now + std::min(o_.poll_ms, o_.renew_ms), deadline_);
}

bool RoleMachine::Eligible(int64_t now, const Progress& p) const {
  return o_.configured != Configured::kReplica && now >= hold_off_until_ && p.CaughtUp();
}

void RoleMachine::TickOther(int64_t now, const Progress& p) {
  if (role_ == Role::kCandidate && !Eligible(now, p)) {
    Move(Role::kReplica, now,
         "no longer caught up with the log (applied " + std::to_string(p.applied) + ", log at " +
             (p.log_last_known ? std::to_string(p.log_last) : std::string("unknown")) +
             (p.log_read ? "" : ", not read to its end") + ")");
  }
  if (now < next_poll_) return;
  next_poll_ = now + o_.poll_ms;
  lt::Lease cur;
  bool found = false;
  Status cs = store_->Current(o_.call_timeout_ms, &cur, &found);
  if (!cs.ok()) {
    lease_error_ = cs.message();
    return;  // keep what we knew; retry next poll
  }
  lease_error_.clear();
  if (found) {
    // A key with this node's id that this machine does not hold (it fenced
    // itself, or a previous process of this node) is waited out like any other.
    Learn(cur);
    if (role_ == Role::kCandidate) Move(Role::kReplica, now, Holder(cur) + " holds the lease");
    return;
  }
  primary_ = PrimaryInfo();
  if (!Eligible(now, p)) return;
  if (role_ == Role::kReplica) {
    Move(Role::kCandidate, now,
         "the lease is free and the log is applied to its end (at " + std::to_string(p.applied) + ")");
  }
  lt::Lease got;
  Status st = store_->Acquire(o_.node, o_.advertise, o_.call_timeout_ms, &got);
  lease_error_ = st.ok() || st.code() == lt::kLeaseHeld ? "" : st.message();
  if (st.ok()) {
    held_ = got;
    Learn(got);
    deadline_ = now + o_.ttl_ms - o_.margin_ms;  // now is before the request started
    next_renew_ = now + o_.renew_ms;
    write_deadline_.store(deadline_, std::memory_order_release);
    Move(Role::kPrimary, now,
         "acquired the lease, epoch " + std::to_string(got.epoch) + "; renewing every " + Ms(o_.renew_ms));
    return;
  }
  if (st.code() == lt::kLeaseHeld) {
    if (!got.node.empty()) Learn(got);
    Move(Role::kReplica, now, Holder(got) + " acquired the lease first");
    return;
  }
  // No answer: stay a candidate and try again at the next poll.
}

bool RoleMachine::StepDown(int64_t now) {
  if (closed_ || role_ != Role::kPrimary) return false;
  bool live = now < deadline_;
  write_deadline_.store(kNoDeadline, std::memory_order_release);  // stop writes before the key goes
  uint64_t epoch = held_.epoch;
  Status st = store_->Release(held_, o_.call_timeout_ms);
  std::string why = "stepped down from epoch " + std::to_string(epoch);
  if (st.ok()) {
    why += ": released the lease";
  } else if (st.code() == lt::kLeaseLost) {
    why += ": the lease was already lost (" + st.message() + ")";
    live = false;
  } else {
    why += ": could not release the lease (" + st.message() + "), it expires within " + Ms(o_.ttl_ms);
  }
  hold_off_until_ = now + o_.hold_off_ms;
  next_poll_ = now + o_.poll_ms;
  BecomeReplica(now, why + "; not a candidate for " + Ms(o_.hold_off_ms));
  return live;
}

std::vector<Transition> RoleMachine::Close(int64_t now) {
  if (!closed_ && role_ == Role::kPrimary) {
    write_deadline_.store(kNoDeadline, std::memory_order_release);
    Status st = store_->Release(held_, o_.call_timeout_ms);
    BecomeReplica(now, st.ok() ? std::string("closed: released the lease")
                               : "closed: could not release the lease (" + st.message() + ")");
  } else if (!closed_ && role_ == Role::kCandidate) {
    Move(Role::kReplica, now, "closed");
  }
  closed_ = true;
  std::vector<Transition> out;
  out.swap(pending_);
  return out;
}

}  // namespace litejet::failover
