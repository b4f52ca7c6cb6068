// extension/heartbeat.cc: see heartbeat.h.
#include "extension/heartbeat.h"

#include <algorithm>
#include <chrono>

#include "common/json.h"

namespace litejet {

namespace {
int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void ClusterView::Tick(transport::NodeBoard& board, int64_t now_ms, const std::function<transport::NodeState()>& me) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (now_ms < next_beat_ms_) return;
    next_beat_ms_ = now_ms + kBeatMs;
  }
  transport::NodeState s = me();
  s.unix_ms = UnixMs();
  Status st = board.Put(s, kCallTimeoutMs);
  std::vector<transport::NodeState> nodes;
  const bool list = st.ok() && (beats_++ % 2 == 0);
  if (list) st = board.List(kCallTimeoutMs, &nodes);
  std::lock_guard<std::mutex> g(mu_);
  error_ = st.ok() ? std::string() : st.message();
  if (list && st.ok()) {
    std::sort(nodes.begin(), nodes.end(),
              [](const transport::NodeState& a, const transport::NodeState& b) { return a.node < b.node; });
    nodes_ = std::move(nodes);
    read_unix_ms_ = UnixMs();
  }
}

std::vector<transport::NodeState> ClusterView::Nodes(int64_t* read_unix_ms) const {
  std::lock_guard<std::mutex> g(mu_);
  if (read_unix_ms) *read_unix_ms = read_unix_ms_;
  return nodes_;
}

std::string ClusterView::LastError() const {
  std::lock_guard<std::mutex> g(mu_);
  return error_;
}

std::string ClusterView::Json(int64_t now_unix_ms) const {
  std::vector<transport::NodeState> nodes = Nodes();
  uint64_t top = 0;
  for (const auto& n : nodes) top = std::max(top, n.txid);
  std::string j = "[";
  for (size_t i = 0; i < nodes.size(); i++) {
    const auto& n = nodes[i];
    if (i) j += ",";
    j += "{\"node\":" + JsonString(n.node) + ",\"role\":" + JsonString(n.role) + ",\"txid\":" + std::to_string(n.txid) +
         ",\"lag_txns\":" + std::to_string(top - n.txid) + ",\"epoch\":" + std::to_string(n.epoch) +
         ",\"heartbeat_age_ms\":" + std::to_string(std::max<int64_t>(now_unix_ms - n.unix_ms, 0)) +
         ",\"last_error\":" + (n.last_error.empty() ? std::string("null") : JsonString(n.last_error)) + "}";
  }
  return j + "]";
}

}  // namespace litejet
