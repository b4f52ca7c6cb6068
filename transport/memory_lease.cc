// transport/memory_lease.cc: the in-memory LeaseStore and NodeBoard for
// election tests: a shared revision counter, expiry on a clock tests move by hand.
#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>

#include "transport/lease.h"

namespace litejet::transport {

namespace {
// The board's max age; the NATS one is max(60 s, 10 x ttl) of the store that
// made the bucket, which the fake does not know.
constexpr int64_t kBoardMaxAgeMs = 60 * 1000;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

struct MemoryLeases {
  std::mutex mu;
  bool available = true;
  int64_t clock_ms = 0;   // the fake's clock: expiry counts on it
  uint64_t last_rev = 0;  // every write (put or delete) takes the next revision, like a stream sequence
  struct Key {
    Lease lease;
    int64_t stored_ms;  // clock_ms when written
  };
  std::optional<Key> key;
  struct Beat {
    NodeState state;
    int64_t stored_ms;
  };
  std::map<std::string, Beat> board;

  // mu held. Drops what has aged out, as the server's max age does.
  void Expire() {
    if (key && clock_ms - key->stored_ms >= key->lease.ttl_ms) key.reset();
    for (auto it = board.begin(); it != board.end();) {
      it = clock_ms - it->second.stored_ms >= kBoardMaxAgeMs ? board.erase(it) : std::next(it);
    }
  }
};

namespace {

Status Unavailable(const std::string& what) {
  return Status::Error("litejet: memory leases: " + what + " failed: store unavailable", kUnavailable);
}

class MemoryLeaseStore final : public LeaseStore {
 public:
  MemoryLeaseStore(std::shared_ptr<MemoryLeases> m, int64_t ttl_ms) : m_(std::move(m)), ttl_ms_(ttl_ms) {}

  Status Acquire(const std::string& node, const std::string& advertise, int64_t, Lease* out) override {
    std::lock_guard<std::mutex> l(m_->mu);
    if (!m_->available) return Unavailable("acquire lease");
    m_->Expire();
    if (m_->key) {
      *out = m_->key->lease;
      return Status::Error(
          "litejet: memory leases: lease held by node \"" + out->node + "\" (epoch " + std::to_string(out->epoch) + ")",
          kLeaseHeld);
    }
    Lease lease;
    lease.node = node;
    lease.advertise = advertise;
    lease.epoch = lease.revision = ++m_->last_rev;
    lease.renewed_unix_ms = WallMs();
    lease.ttl_ms = ttl_ms_;
    m_->key = MemoryLeases::Key{lease, m_->clock_ms};
    *out = lease;
    return Status::OK();
  }

  Status Renew(Lease* lease, int64_t) override {
    std::lock_guard<std::mutex> l(m_->mu);
    if (!m_->available) return Unavailable("renew lease");
    Status st = CheckOurs(*lease, "renew");
    if (!st.ok()) return st;
    lease->revision = ++m_->last_rev;
    lease->renewed_unix_ms = WallMs();
    lease->ttl_ms = ttl_ms_;
    m_->key = MemoryLeases::Key{*lease, m_->clock_ms};
    return Status::OK();
  }

  Status Release(const Lease& lease, int64_t) override {
    std::lock_guard<std::mutex> l(m_->mu);
    if (!m_->available) return Unavailable("release lease");
    Status st = CheckOurs(lease, "release");
    if (!st.ok()) return st;
    ++m_->last_rev;  // the delete marker's revision
    m_->key.reset();
    return Status::OK();
  }

  Status Current(int64_t, Lease* out, bool* found) override {
    std::lock_guard<std::mutex> l(m_->mu);
    *found = false;
    if (!m_->available) return Unavailable("read lease");
    m_->Expire();
    if (m_->key) {
      *out = m_->key->lease;
      *found = true;
    }
    return Status::OK();
  }

 private:
  // mu held.
  Status CheckOurs(const Lease& lease, const char* what) {
    m_->Expire();
    if (m_->key && m_->key->lease.revision == lease.revision) return Status::OK();
    std::string now =
        m_->key ? "held by node \"" + m_->key->lease.node + "\" at revision " + std::to_string(m_->key->lease.revision)
                : "expired or released";
    return Status::Error(std::string("litejet: memory leases: ") + what + " lease at revision " +
                             std::to_string(lease.revision) + " failed: the lease is " + now,
                         kLeaseLost);
  }

  std::shared_ptr<MemoryLeases> m_;
  const int64_t ttl_ms_;
};

class MemoryNodeBoard final : public NodeBoard {
 public:
  explicit MemoryNodeBoard(std::shared_ptr<MemoryLeases> m) : m_(std::move(m)) {}

  Status Put(const NodeState& s, int64_t) override {
    std::lock_guard<std::mutex> l(m_->mu);
    if (!m_->available) return Unavailable("put heartbeat");
    ++m_->last_rev;
    m_->board[s.node] = MemoryLeases::Beat{s, m_->clock_ms};
    return Status::OK();
  }

  Status List(int64_t, std::vector<NodeState>* out) override {
    std::lock_guard<std::mutex> l(m_->mu);
    out->clear();
    if (!m_->available) return Unavailable("list heartbeats");
    m_->Expire();
    for (const auto& [node, beat] : m_->board) out->push_back(beat.state);
    return Status::OK();
  }

 private:
  std::shared_ptr<MemoryLeases> m_;
};

}  // namespace

std::shared_ptr<MemoryLeases> NewMemoryLeases() { return std::make_shared<MemoryLeases>(); }

std::unique_ptr<LeaseStore> NewMemoryLeaseStore(std::shared_ptr<MemoryLeases> m, int64_t ttl_ms) {
  return std::make_unique<MemoryLeaseStore>(std::move(m), ttl_ms);
}

std::unique_ptr<NodeBoard> NewMemoryNodeBoard(std::shared_ptr<MemoryLeases> m) {
  return std::make_unique<MemoryNodeBoard>(std::move(m));
}

void AdvanceMemoryLeaseClock(MemoryLeases& m, int64_t ms) {
  std::lock_guard<std::mutex> l(m.mu);
  m.clock_ms += ms;
}

void SetMemoryLeasesAvailable(MemoryLeases& m, bool up) {
  std::lock_guard<std::mutex> l(m.mu);
  m.available = up;
}

}  // namespace litejet::transport
