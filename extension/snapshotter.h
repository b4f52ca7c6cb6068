// Snapshotter: takes a snapshot of this node's database (primary or replica,
// any process: repl_snapshot()) and publishes it to the snapshot store; the
// primary's agent also runs it on a schedule, followed by retention
// (old snapshots deleted, the log purged below what the kept ones need).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "extension/node.h"
#include "snapshot/snapshot.h"
#include "transport/log.h"

namespace litejet {

class Snapshotter {
 public:
  // wait(txid, timeout_ms): true once txid is in the log (the primary waits
  // for JetStream's acknowledgement; a replica has applied it already).
  using WaitFn = std::function<bool(uint64_t txid, int64_t timeout_ms)>;
  Snapshotter(NodeState& n, WaitFn wait) : n_(n), wait_(std::move(wait)) {}

  // Copies the committed state under a read transaction (writers are never
  // blocked) to "<db>-litejet-snap-<pid>-<n>", finds its TXID by checksum,
  // and publishes it; *out: its manifest. The copy is removed.
  Status Take(transport::Log& log, snapshot::Store& store, int64_t timeout_ms, snapshot::Manifest* out);
  // The same over connections of its own (repl_snapshot()).
  Status TakeNow(int64_t timeout_ms, snapshot::Manifest* out);

  // Retention after a snapshot: deletes the snapshots the policy drops and
  // purges the log below what the oldest kept one needs, and never what a
  // live node at still_needed_txid still reads (the lowest position among
  // the live nodes; UINT64_MAX: none). *summary: what was done.
  Status Retain(transport::Log& log, snapshot::Store& store, const snapshot::RetentionPolicy& policy,
                uint64_t still_needed_txid, int64_t timeout_ms, std::string* summary);

 private:
  // The copy at tmp: pages of the committed state at *txid (checksum *sum).
  Status Copy(const std::string& tmp, uint64_t* txid, uint64_t* sum, std::string* why_retry);

  NodeState& n_;
  WaitFn wait_;
};

}  // namespace litejet
