// failover/role.h: the door to roles. RoleMachine is the one home of a node's
// role transitions (replica -> candidate -> primary -> replica) over a LeaseStore.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "transport/lease.h"

namespace litejet::failover {

// What the node is configured as (the `role` option).
enum class Configured {
  kAuto,     // elects: acquires the lease when it is free and the node is caught up
  kPrimary,  // static: acquires whenever the lease is free, releases only on StepDown/Close; never yields
             // to an auto node, and waits out one that holds the lease (released or expired)
  kReplica,  // never acquires; only reads the lease to know the primary
};

// Where the node is now.
enum class Role { kReplica, kCandidate, kPrimary };
const char* RoleName(Role r);  // "replica", "candidate", "primary" (repl_status's words)

struct RoleOptions {
  Configured configured = Configured::kAuto;
  std::string node;       // this node's id (the lease's holder field)
  std::string advertise;  // what repl_primary() returns while this node holds the lease
  int64_t ttl_ms = 5000;  // lease_ttl_ms: the store forgets a lease not renewed for this long
  // 0 = the default named; values are clamped so the guarantees hold (role.cc, Resolve).
  int64_t renew_ms = 0;         // renew every ttl/3 (at most (ttl - margin)/2: two tries before the deadline)
  int64_t margin_ms = 0;        // max(ttl/10, 100), at most ttl/2: the write deadline is this much before ttl
  int64_t poll_ms = 0;          // not primary: read the lease every ttl/5, bounded to [50, 1000]
  int64_t hold_off_ms = 0;      // after StepDown, not a candidate for one ttl
  int64_t call_timeout_ms = 0;  // each store call: ttl/3 bounded to [100, 2000] (Renew: also <= the deadline)
};

// The caller's position, in one unit (TXIDs or log sequences).
struct Progress {
  uint64_t applied = 0;         // the last record this node applied (or committed)
  uint64_t log_last = 0;        // the log's last record, as last read
  bool log_last_known = false;  // false: the log could not be read
  // The node has read (and checked against its own history) every complete
  // record in the log: a TXID equal to the log's is not enough, the log's
  // last records may be another history's (a new primary's after this
  // node's unshipped commits).
  bool log_read = true;
  // Exactly equal: a node ahead of the log holds commits the log does not
  // (the caller passes the log's end as applied when those commits extend
  // the log's history, which it checked by reading the log to its end).
  bool CaughtUp() const { return log_last_known && log_read && applied == log_last; }
};

struct Transition {
  Role from = Role::kReplica, to = Role::kReplica;
  std::string reason;            // why, in words; also the node's last_error when it loses writes
  int64_t at_ms = 0;             // the caller's monotonic clock
  std::string ToString() const;  // "replica -> candidate: the lease is free and ..."
};

// What this node knows about the current primary (the last Current, Acquire
// or Renew answer), for repl_primary() and repl_status().
struct PrimaryInfo {
  bool known = false;  // false: nobody holds the lease, or it could not be read yet
  std::string node, advertise;
  uint64_t epoch = 0;
};

// Not thread-safe: one thread (the replication agent's) calls Tick, StepDown
// and Close; except MayWrite and WriteDeadline, which read one atomic and may
// be called from any thread (the commit path). Every time argument is the
// caller's monotonic clock in ms, read just before the call (a stale, earlier
// `now` is safe: deadlines only get earlier).
class RoleMachine {
 public:
  // store must outlive the machine.
  RoleMachine(transport::LeaseStore* store, RoleOptions o);

  // Does what is due at now (poll, acquire, renew, fence) and returns every
  // transition since the last Tick, oldest first (StepDown's included).
  std::vector<Transition> Tick(int64_t now_ms, const Progress& progress);
  // When Tick has something to do next; at or before now: at once.
  int64_t NextTickAt() const;

  // True only while primary and now < the write deadline (the start of the
  // last successful Acquire/Renew + ttl - margin). Thread-safe.
  bool MayWrite(int64_t now_ms) const { return now_ms < write_deadline_.load(std::memory_order_acquire); }
  int64_t WriteDeadline() const { return write_deadline_.load(std::memory_order_acquire); }  // INT64_MIN: none

  // If primary: releases the lease, becomes replica and is not a candidate
  // for hold_off_ms, so another node takes the lease. Returns whether this
  // node held the lease (it no longer does). The transition comes with the next Tick.
  bool StepDown(int64_t now_ms);
  // Releases the lease if held; the machine does nothing afterwards. Returns
  // the transitions not yet returned by Tick.
  std::vector<Transition> Close(int64_t now_ms);

  Role role() const { return role_; }
  Configured configured() const { return o_.configured; }
  uint64_t epoch() const { return role_ == Role::kPrimary ? held_.epoch : 0; }  // the held lease's; 0 if none
  uint64_t max_epoch_seen() const { return max_epoch_; }                        // only grows
  const PrimaryInfo& primary() const { return primary_; }
  const std::string& last_reason() const { return last_reason_; }  // the last transition's reason
  // The last lease call's failure in the store's words ("" once a call is
  // answered): what keeps a candidate from the lease (e.g. the server's
  // permissions violation), for the caller's last_error.
  const std::string& lease_error() const { return lease_error_; }
  const RoleOptions& options() const { return o_; }  // with defaults resolved

 private:
  void Move(Role to, int64_t now, std::string reason);
  void Learn(const transport::Lease& l);  // primary_ and max_epoch_ from a lease read from the store
  void BecomeReplica(int64_t now, std::string reason);
  void TickPrimary(int64_t now);
  void TickOther(int64_t now, const Progress& p);
  bool Eligible(int64_t now, const Progress& p) const;

  transport::LeaseStore* store_;
  RoleOptions o_;
  Role role_ = Role::kReplica;
  bool closed_ = false;
  transport::Lease held_;       // valid while primary
  int64_t next_renew_ = 0;      // primary: next Renew
  int64_t deadline_ = 0;        // primary: the write deadline (mirrored in write_deadline_)
  int64_t next_poll_ = 0;       // not primary: next Current
  int64_t hold_off_until_ = 0;  // not a candidate before this
  uint64_t max_epoch_ = 0;
  PrimaryInfo primary_;
  std::string last_reason_;
  std::string lease_error_;
  std::vector<Transition> pending_;
  std::atomic<int64_t> write_deadline_;
};

}  // namespace litejet::failover
