// RoleLoop (role=auto): every role transition of a node in one place.
// The election (failover::RoleMachine over the lease store) decides; this
// loop moves the agent between the Applier and the Shipper, tells every
// process of the node through the sidecar's role block (write_until_ns
// gates writes: closed first, opened last), and opens writes only once the
// log ends where this database does and the epoch marker is in.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/clock.h"
#include "extension/role_loop.h"
#include "failover/role.h"
#include "wal-capture/apply.h"
#include "wal-capture/checksum.h"
#include "wal-capture/local_log.h"
#include "wal-capture/record.h"
#include "wal-capture/spool.h"

namespace litejet {

namespace {
failover::RoleOptions RoleOptionsFor(const Config& cfg, failover::Configured configured) {
  failover::RoleOptions ro;
  ro.configured = configured;
  ro.node = cfg.node;
  ro.advertise = cfg.advertise;
  ro.ttl_ms = cfg.lease_ttl_ms;
  return ro;
}
}  // namespace
void RoleLoop::RunAuto(transport::Log& log, transport::LeaseStore* lease) {
  n_.sidecar.SetWriteUntil(0);  // a previous agent's grant is not ours (and CLOCK_MONOTONIC may have restarted)
  if (!lease) {
    n_.Fail("litejet: database \"" + n_.cfg.name +
            "\": role=auto needs the lease bucket, which could not be opened; serving as a replica");
    apply_.Run(log, nullptr);
    return;
  }
  failover::RoleMachine m(lease, RoleOptionsFor(n_.cfg, failover::Configured::kAuto));
  bool writes_open = false;
  // What every process of this node reads: write_until_ns gates writes, so
  // it is closed first and opened last.
  auto publish = [&] {
    sidecar::RoleInfo r;
    r.reason = m.last_reason();
    if (m.role() == failover::Role::kPrimary && writes_open) {
      r.state = sidecar::RoleState::kPrimary;
      r.epoch = m.epoch();
      r.primary = n_.cfg.advertise;
      n_.sidecar.SetRole(r);
      n_.sidecar.SetWriteUntil(m.WriteDeadline() * 1000000);  // SteadyMs and SteadyNs: the same clock
    } else {
      n_.sidecar.SetWriteUntil(0);
      r.state = m.role() == failover::Role::kCandidate || m.role() == failover::Role::kPrimary
                    ? sidecar::RoleState::kCandidate
                    : sidecar::RoleState::kReplica;
      r.epoch = m.max_epoch_seen();
      r.primary = m.primary().known ? (m.primary().advertise.empty() ? m.primary().node : m.primary().advertise) : "";
      n_.sidecar.SetRole(r);
    }
  };
  step_downs_seen_ = n_.sidecar.step_down_requests();
  // repl_step_down(): writes close at once; what is committed ships first
  // (bounded by half a TTL), then the lease goes. Released with a backlog,
  // the next primary would start from the log's end without those commits:
  // acknowledged to the application, lost, and this node diverged.
  bool draining = false;
  int64_t drain_until = 0;
  auto tick = [&]() {
    const int64_t now = SteadyMs();
    const uint64_t sd = n_.sidecar.step_down_requests();
    if (sd != step_downs_seen_) {
      step_downs_seen_ = sd;
      if (m.role() == failover::Role::kPrimary && !draining) {
        writes_open = false;
        n_.sidecar.SetWriteUntil(0);
        draining = true;
        drain_until = now + std::max<int64_t>(n_.cfg.lease_ttl_ms / 2, 1);
      }
    }
    if (draining) {
      const sidecar::Position dp = n_.sidecar.Read();
      if (m.role() != failover::Role::kPrimary) {
        draining = false;
      } else if ((dp.acked_txid >= dp.txid && n_.sidecar.pending_txid() == 0) || now >= drain_until) {
        if (dp.acked_txid < dp.txid) {
          sqlite3_log(SQLITE_WARNING, "litejet: %s: stepping down with TXIDs %llu..%llu not acknowledged after %lld ms",
                      n_.cfg.name.c_str(), (unsigned long long)dp.acked_txid + 1, (unsigned long long)dp.txid,
                      (long long)std::max<int64_t>(n_.cfg.lease_ttl_ms / 2, 1));
        }
        draining = false;
        m.StepDown(now);
      }
    }
    failover::Progress pr;
    const sidecar::Position pos = n_.sidecar.Read();
    pr.applied = pos.txid;
    if (m.role() != failover::Role::kPrimary) {
      // Caught up? The log's last complete record (one request per poll),
      // and has this node read it: equal TXIDs alone could be two histories.
      transport::Message last;
      bool found = false;
      uint64_t t = 0, end_seq = 0;
      if (log.Last(500, &last, &found).ok() && (!found || n_.LastCompleteTxid(log, last, &t, &end_seq).ok())) {
        pr.log_last = found ? t : 0;
        pr.log_last_known = true;
        pr.log_read = pos.log_seq >= end_seq;
        // Commits past the log's end that the log's records did not
        // contradict up to here (ApplyRecord): this node's own, unshipped;
        // it may be elected and ship them.
        if (pr.log_read && pos.txid > pr.log_last && pos.acked_txid <= pr.log_last) pr.applied = pr.log_last;
      }
    } else {
      pr.log_last = pr.applied;
      pr.log_last_known = true;
    }
    for (const failover::Transition& t : m.Tick(now, pr)) {
      sqlite3_log(SQLITE_NOTICE, "litejet: %s: %s", n_.cfg.name.c_str(), t.ToString().c_str());
      if (t.from == failover::Role::kPrimary) writes_open = false;
      // The epoch of every record this node publishes from here on (its
      // unshipped commits' too): the lease's. Kept in memory until the log
      // accepts a record or marker of it: written to the sidecar at once, a
      // term that never appended (its marker refused: a deposed primary's
      // record landed first) would make this node refuse that record.
      if (t.to == failover::Role::kPrimary) term_epoch_ = m.epoch();
      if (t.from == failover::Role::kPrimary) term_epoch_ = 0;
    }
    // A lease call that got no answer or was refused (e.g. a user without
    // the permission to write the lease): say why this node is not primary.
    if (!m.lease_error().empty() && m.role() != failover::Role::kPrimary) n_.Fail(m.lease_error());
    next_ms_ = std::min(m.NextTickAt(), now + 1000);
    if (draining) next_ms_ = std::min(next_ms_, now + 2);  // watch the backlog go
    publish();
  };
  RoleHooks hooks;
  hooks.due = [&] { return SteadyMs() >= next_ms_ || n_.sidecar.step_down_requests() != step_downs_seen_; };
  hooks.term_epoch = [&] { return term_epoch_.load(); };
  hooks.ready = [&](uint64_t* seq) {
    if (m.role() != failover::Role::kPrimary || draining) return false;
    if (n_.sidecar.Read().txid == 0) {
      // An empty database (nothing in the log either): in WAL mode before
      // the first write, as a primary's is at open.
      Status ps = n_.Prepare(false, true);
      if (!ps.ok()) {
        n_.Fail(ps.message());
        return false;
      }
    }
    sidecar::Position pos = n_.sidecar.Read();
    const uint64_t term = std::max(pos.epoch, m.epoch());  // the epoch of this node's records: the lease's
    if (pos.txid > 0) {
      // The epoch marker, expecting the log's end as read: from here on a
      // deposed primary's publish fails the expectation. If it is refused,
      // someone appended after that read: step down and catch up.
      record::Txn mk;
      mk.txid = pos.txid;
      mk.epoch = term;
      mk.timestamp_us = uint64_t(
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count());
      mk.node = n_.cfg.node;
      mk.page_size = pos.page_size;
      mk.db_pages = pos.db_pages;
      mk.checksum_before = mk.checksum_after = pos.checksum;
      mk.epoch_marker = true;
      std::string rec;
      std::vector<std::string> chunks;
      Status ms = record::Encode(mk, record::Compression::kNone, &rec);
      if (ms.ok()) ms = record::Split(rec, mk.txid, std::max<size_t>(log.MaxPayload(), 64 * 1024) - 1024, &chunks);
      uint64_t nseq = *seq;
      for (size_t i = 0; ms.ok() && i < chunks.size(); i++) {
        ms = log.Publish(chunks[i], nseq, n_.cfg.name + ":" + std::to_string(mk.epoch) + ":marker:" + std::to_string(i),
                         2000, &nseq);
      }
      if (!ms.ok()) {
        n_.Fail("litejet: database \"" + n_.cfg.name + "\": elected in epoch " + std::to_string(mk.epoch) +
                " but its epoch marker was not appended (" + ms.message() + "); stepping down");
        return false;
      }
      *seq = nseq;
      n_.sidecar.SetAcked(pos.txid, nseq);
    }
    n_.sidecar.SetEpoch(term);  // the log has the marker (or is empty): the term is real
    writes_open = true;
    publish();
    sqlite3_log(SQLITE_NOTICE, "litejet: %s: primary in epoch %llu at TXID %llu: writes open", n_.cfg.name.c_str(),
                (unsigned long long)m.epoch(), (unsigned long long)n_.sidecar.Read().txid);
    n_.ClearError();
    return true;
  };
  next_ms_ = SteadyMs();
  tick();
  while (!a_.stopping()) {
    if (m.role() == failover::Role::kPrimary) {
      // One term: leave when the role changes or a new lease replaced this
      // one (lost and acquired again: a new epoch needs a new marker).
      const uint64_t term = m.epoch();
      hooks.tick = [&, term] {
        tick();
        return m.role() != failover::Role::kPrimary || m.epoch() != term;
      };
      ship_.Run(log, &hooks);
      if (a_.stopping()) break;
      // Whatever ended it (lost lease, fenced by the log, stopping): no
      // writes from here on, in any process.
      writes_open = false;
      if (m.role() == failover::Role::kPrimary) m.StepDown(SteadyMs());
      tick();
      publish();
      // Commits not shipped (this node may be elected again, ahead of the
      // log, and ship them): out of the WAL before the restart blocker goes,
      // as the guards no longer run for a node that is not primary.
      commit_.MoveBacklog(a_.Locker(), 1000, "the node is no longer primary");
      commit_.DropBlocker();
      n_.fenced = false;  // a replica now: writes are refused as a replica's
    } else {
      hooks.tick = [&] {
        tick();
        return m.role() == failover::Role::kPrimary;
      };
      apply_.Run(log, &hooks);
      if (m.role() != failover::Role::kPrimary && !a_.stopping() && !a_.Sleep(250)) break;
    }
  }
  // A clean stop gives the lease up at once, so another node takes over
  // without waiting for it to expire.
  n_.sidecar.SetWriteUntil(0);
  if (!a_.exiting()) {
    for (const failover::Transition& t : m.Close(SteadyMs())) {
      sqlite3_log(SQLITE_NOTICE, "litejet: %s: %s", n_.cfg.name.c_str(), t.ToString().c_str());
    }
  }
  writes_open = false;
  publish();
}

// role=primary with the lease bucket at hand: primary by configuration (it
// writes whether or not it holds the lease, as before), and it holds the
// lease whenever it is free and never gives it up while it runs, so that no
// role=auto node is elected beside it. Its records carry the lease's epoch.
// If an auto node holds the lease when it starts, the log fences one of them
// (the first to append after the other's marker or record loses).
void RoleLoop::RunStaticPrimary(transport::Log& log, transport::LeaseStore* lease) {
  failover::RoleMachine m(lease, RoleOptionsFor(n_.cfg, failover::Configured::kPrimary));
  step_downs_seen_ = n_.sidecar.step_down_requests();  // not ours: repl_step_down() is for role=auto
  RoleHooks hooks;
  hooks.due = [&] { return SteadyMs() >= next_ms_ || n_.sidecar.step_down_requests() != step_downs_seen_; };
  hooks.tick = [&] {
    const int64_t now = SteadyMs();
    step_downs_seen_ = n_.sidecar.step_down_requests();
    failover::Progress pr;
    pr.applied = pr.log_last = n_.sidecar.Read().txid;  // the log is this node's to write
    pr.log_last_known = true;
    for (const failover::Transition& t : m.Tick(now, pr)) {
      sqlite3_log(SQLITE_NOTICE, "litejet: %s: %s", n_.cfg.name.c_str(), t.ToString().c_str());
      if (t.to == failover::Role::kPrimary) n_.sidecar.SetEpoch(std::max(n_.sidecar.Read().epoch, m.epoch()));
    }
    next_ms_ = std::min(m.NextTickAt(), now + 1000);
    return false;  // never leaves: writes do not depend on the lease
  };
  next_ms_ = SteadyMs();
  ship_.Run(log, &hooks);
  if (!a_.exiting()) {
    for (const failover::Transition& t : m.Close(SteadyMs())) {
      sqlite3_log(SQLITE_NOTICE, "litejet: %s: %s", n_.cfg.name.c_str(), t.ToString().c_str());
    }
  }
}

}  // namespace litejet
