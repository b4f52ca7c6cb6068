// RoleLoop: every role transition of a node in one place. The election
// (failover::RoleMachine over the lease store) decides; this loop moves the
// agent between the Applier and the Shipper, tells every process of the
// node through the sidecar's role block (write_until_ns gates writes: closed
// first, opened last), and opens writes only once the log ends where this
// database does and the epoch marker is in.
#pragma once

#include <atomic>
#include <cstdint>

#include "extension/agent.h"
#include "extension/applier.h"
#include "extension/commit.h"
#include "extension/node.h"
#include "extension/ship.h"
#include "transport/lease.h"
#include "transport/log.h"

namespace litejet {

class RoleLoop {
 public:
  RoleLoop(NodeState& n, AgentControl& a, CommitPath& commit, Shipper& ship, Applier& apply)
      : n_(n), a_(a), commit_(commit), ship_(ship), apply_(apply) {}
  // role=auto: the election drives the agent between the two loops.
  void RunAuto(transport::Log& log, transport::LeaseStore* lease);
  // role=primary: the Shipper, holding the lease so that no auto node is
  // elected beside it.
  void RunStaticPrimary(transport::Log& log, transport::LeaseStore* lease);

 private:
  NodeState& n_;
  AgentControl& a_;
  CommitPath& commit_;
  Shipper& ship_;
  Applier& apply_;
  // When SteadyMs() reaches next_ms_ (or a step-down is requested), the
  // loops call the hooks' tick.
  int64_t next_ms_ = INT64_MAX;
  uint64_t step_downs_seen_ = 0;
  // The epoch of the lease this node holds (0: none), for the records it
  // ships before the log has one of that epoch.
  std::atomic<uint64_t> term_epoch_{0};
};

}  // namespace litejet
