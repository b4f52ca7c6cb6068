// transport/memory_log.cc: the in-memory Log for engine tests. It keeps the
// JetStream semantics litejet relies on: fencing, msg-id dedupe, ordered reads, outages.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "transport/log.h"

namespace litejet::transport {

namespace {
using Clock = std::chrono::steady_clock;
constexpr auto kDuplicateWindow = std::chrono::minutes(2);  // JetStream's default
constexpr size_t kMaxMsgId = 256;
}  // namespace

struct MemoryStore {
  explicit MemoryStore(size_t max) : max_payload(max) {}

  const size_t max_payload;
  std::mutex mu;
  std::condition_variable cv;  // a message was appended or availability changed
  bool available = true;
  std::vector<std::string> messages;  // seq = index + 1
  uint64_t first = 1;                 // messages below it were purged (PurgeBelow)
  struct Dedupe {
    std::string id;
    uint64_t seq;
    Clock::time_point at;
  };
  std::deque<Dedupe> dedupe_order;  // oldest first, for expiry
  std::unordered_map<std::string, uint64_t> dedupe;

  void ExpireDedupe(Clock::time_point now) {
    while (!dedupe_order.empty() && now - dedupe_order.front().at > kDuplicateWindow) {
      auto it = dedupe.find(dedupe_order.front().id);
      if (it != dedupe.end() && it->second == dedupe_order.front().seq) dedupe.erase(it);
      dedupe_order.pop_front();
    }
  }
};

namespace {

Status Unavailable(const std::string& what) {
  return Status::Error("litejet: memory log: " + what + " failed: log unavailable", kUnavailable);
}

class MemoryLog final : public Log {
 public:
  explicit MemoryLog(std::shared_ptr<MemoryStore> store) : store_(std::move(store)) {}

  Status Ensure(int64_t) override {
    std::lock_guard<std::mutex> l(store_->mu);
    if (!store_->available) return Fail(Unavailable("ensure"));
    return Status::OK();
  }

  Status Range(int64_t, uint64_t* first, uint64_t* last) override {
    std::lock_guard<std::mutex> l(store_->mu);
    if (!store_->available) return Fail(Unavailable("range"));
    *last = store_->messages.size();
    *first = std::min<uint64_t>(store_->first, *last + 1);
    return Status::OK();
  }

  Status PurgeBelow(uint64_t below, int64_t) override {
    std::lock_guard<std::mutex> l(store_->mu);
    if (!store_->available) return Fail(Unavailable("purge"));
    below = std::min<uint64_t>(below, store_->messages.size() + 1);
    for (uint64_t seq = store_->first; seq < below; seq++) std::string().swap(store_->messages[seq - 1]);
    store_->first = std::max(store_->first, below);
    return Status::OK();
  }

  Status Last(int64_t, Message* out, bool* found) override {
    std::lock_guard<std::mutex> l(store_->mu);
    if (!store_->available) return Fail(Unavailable("last"));
    *found = !store_->messages.empty();
    if (*found) {
      out->seq = store_->messages.size();
      out->data = store_->messages.back();
    }
    return Status::OK();
  }

  Status Publish(const std::string& data, uint64_t expect_last, const std::string& msg_id, int64_t,
                 uint64_t* seq) override {
    if (msg_id.size() > kMaxMsgId) {
      return Fail(Status::Error("litejet: memory log: msg_id longer than " + std::to_string(kMaxMsgId) + " bytes"));
    }
    if (data.size() > store_->max_payload) {
      return Fail(Status::Error("litejet: memory log: message of " + std::to_string(data.size()) +
                                    " bytes exceeds max payload " + std::to_string(store_->max_payload),
                                kTooLarge));
    }
    std::lock_guard<std::mutex> l(store_->mu);
    if (!store_->available) return Fail(Unavailable("publish"));
    auto now = Clock::now();
    store_->ExpireDedupe(now);
    // Like JetStream: the duplicate check comes before the expectation.
    if (!msg_id.empty()) {
      auto it = store_->dedupe.find(msg_id);
      if (it != store_->dedupe.end()) {
        *seq = it->second;
        return Status::OK();
      }
    }
    uint64_t last = store_->messages.size();
    if (last != expect_last) {
      return Fail(Status::Error("litejet: memory log: publish failed: wrong last sequence: " + std::to_string(last) +
                                    " (expected " + std::to_string(expect_last) + ")",
                                kFenced));
    }
    store_->messages.push_back(data);
    *seq = last + 1;
    if (!msg_id.empty()) {
      store_->dedupe[msg_id] = *seq;
      store_->dedupe_order.push_back({msg_id, *seq, now});
    }
    store_->cv.notify_all();
    return Status::OK();
  }

  Status Read(uint64_t from, int64_t wait_ms, const std::function<bool(const Message&)>& fn) override {
    std::lock_guard<std::mutex> rl(read_mu_);
    uint64_t next = from == 0 ? 1 : from;
    Message m;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(store_->mu);
        auto ready = [&] { return store_->available && store_->messages.size() >= next; };
        if (!store_->cv.wait_for(l, std::chrono::milliseconds(wait_ms > 0 ? wait_ms : 0), ready)) {
          if (!store_->available) return Fail(Unavailable("read"));
          return Status::OK();
        }
        if (next < store_->first) {
          return Fail(Status::Error("litejet: memory log: read failed: message " + std::to_string(next) +
                                        " is no longer in the log (first is " + std::to_string(store_->first) + ")",
                                    kTruncated));
        }
        m.seq = next;
        m.data = store_->messages[next - 1];
      }
      // fn runs without the store lock: it may publish to the same store.
      next++;
      if (!fn(m)) return Status::OK();
    }
  }

  bool Connected() const override {
    std::lock_guard<std::mutex> l(store_->mu);
    return store_->available;
  }
  size_t MaxPayload() const override { return store_->max_payload; }
  std::string LastError() const override {
    std::lock_guard<std::mutex> l(err_mu_);
    return last_error_;
  }

 private:
  Status Fail(Status s) {
    std::lock_guard<std::mutex> l(err_mu_);
    last_error_ = s.message();
    return s;
  }

  std::shared_ptr<MemoryStore> store_;
  std::mutex read_mu_;
  mutable std::mutex err_mu_;
  std::string last_error_;
};

}  // namespace

std::shared_ptr<MemoryStore> NewMemoryStore(size_t max_payload) { return std::make_shared<MemoryStore>(max_payload); }

std::unique_ptr<Log> NewMemoryLog(std::shared_ptr<MemoryStore> store) {
  return std::make_unique<MemoryLog>(std::move(store));
}

void SetMemoryAvailable(MemoryStore& store, bool up) {
  std::lock_guard<std::mutex> l(store.mu);
  store.available = up;
  store.cv.notify_all();
}

}  // namespace litejet::transport
