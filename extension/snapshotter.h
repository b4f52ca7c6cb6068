// Snapshotter: takes a snapshot of this node's database (primary or replica,
// any process: repl_snapshot()) and publishes it to the snapshot store; the
// primary's agent also runs it on a schedule, followed by retention
// (old snapshots deleted, the log purged below what the kept ones need).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"
#include "extension/agent.h"
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

// The primary's automatic snapshots (Config::snapshot_every_txns / _ms)
// and retention after each, in a thread of its own that the host's agent
// starts (never the shipping loop); idle while this node is not primary.
// What it did last is in repl_status().snapshots (NodeState::auto_snap).
class AutoSnapshots {
 public:
  AutoSnapshots(NodeState& n, AgentControl& a) : n_(n), a_(a) {}
  ~AutoSnapshots() { Stop(); }
  void Start();
  void Stop();  // waits for the thread (each call to the server is bounded)

 private:
  void Run();
  bool Due(uint64_t acked, int64_t now_ms) const;
  uint64_t StillNeededTxid() const;  // the lowest position among live other nodes; UINT64_MAX: none

  NodeState& n_;
  AgentControl& a_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                // mu_
  uint64_t last_txid_ = UINT64_MAX;  // TXID of the newest snapshot (UINT64_MAX: not read yet)
  int64_t last_ms_ = 0;              // steady clock of the last snapshot (or of the start)
};

}  // namespace litejet
