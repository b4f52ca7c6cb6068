// Shipper: the primary's agent loop. Ships the local log (the commits'
// frames in the WAL, or in the spool once the WAL was about to lose them) to
// JetStream, one record or a batch per message, fenced by the log's expected
// last sequence; and settles sync commits whose outcome is unknown from what
// the log holds.
#pragma once

#include <cstdint>

#include "extension/agent.h"
#include "extension/commit.h"
#include "extension/node.h"
#include "extension/role_hooks.h"
#include "transport/log.h"

namespace litejet {

class Shipper {
 public:
  Shipper(NodeState& n, AgentControl& a, CommitPath& commit) : n_(n), a_(a), commit_(commit) {}
  // Until the agent stops, the node is fenced, or (hooks) the role changes.
  void Run(transport::Log& log, const RoleHooks* hooks);

 private:
  // Sync durability, after a commit whose outcome is unknown: waits for the
  // log's answer and reconciles (takes the transaction from the log if it
  // landed, else forgets it). *seq: the log's last sequence afterwards.
  // False when the agent stops or the node was fenced.
  bool ReconcileInDoubt(transport::Log& log, uint64_t* seq);
  Status ReconcileOnce(transport::Log& log, uint64_t txid, uint64_t* seq, bool* done);
  Status TakeFromLog(const record::Txn& t, uint64_t seq);
  bool ResetSpool();  // true when the spool was emptied

  NodeState& n_;
  AgentControl& a_;
  CommitPath& commit_;
};

}  // namespace litejet
