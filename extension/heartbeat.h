// extension/heartbeat.h: this node's heartbeat and its view of the cluster.
// The agent writes a NodeState (role, position, epoch, time, last error) to
// the nodes bucket every kBeatMs and reads everyone's every other beat;
// repl_status() shows what it read. Kept out of the engine: the engine hands
// it a function that describes this node, and reads the view.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "transport/lease.h"

namespace litejet {

class ClusterView {
 public:
  static constexpr int64_t kBeatMs = 1000;
  static constexpr int64_t kCallTimeoutMs = 200;  // a slow server delays the agent by this at most per call

  // Agent thread: when due, writes me() and (every other beat) reads the
  // board. Errors are kept for the status, never fatal.
  void Tick(transport::NodeBoard& board, int64_t now_ms, const std::function<transport::NodeState()>& me);

  // Any thread: the nodes as last read (sorted by node id), with the wall
  // clock of that read; empty before the first read.
  std::vector<transport::NodeState> Nodes(int64_t* read_unix_ms = nullptr) const;
  // The board's last error ("" after a successful call).
  std::string LastError() const;

  // JSON array for repl_status(): node, role, txid, lag_txns (behind the
  // furthest node), epoch, heartbeat_age_ms, last_error.
  std::string Json(int64_t now_unix_ms) const;

 private:
  mutable std::mutex mu_;
  std::vector<transport::NodeState> nodes_;
  int64_t read_unix_ms_ = 0;
  std::string error_;
  int64_t next_beat_ms_ = 0;
  uint64_t beats_ = 0;
};

}  // namespace litejet
