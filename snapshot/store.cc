// snapshot/store.cc: Put, List, Get and Delete of snapshots over any Store,
// the in-memory Store for tests, and the retention plan.
#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <random>

#include "snapshot/snapshot.h"
#include "wal-capture/checksum.h"

namespace litejet::snapshot {

namespace {

using Clock = std::chrono::steady_clock;

int64_t Left(Clock::time_point deadline) {
  return std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
}

uint64_t NowMs() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

uint64_t RandomId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t(rd()) << 32) ^ rd() ^ (NowMs() << 20);
  return id;
}

}  // namespace

// Pages are read in runs of up to chunk_raw bytes; a run whose chunk would
// not fit MaxPayload() is halved until it does (a single page always fits:
// 64 KiB plus zstd's bound and the header is far below any max payload).
Status Put(Store& store, PageSource& src, const PutInfo& info, int64_t timeout_ms, Manifest* out, size_t chunk_raw,
           const ProgressFn& progress) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  const uint32_t ps = src.page_size(), pages = src.db_pages();
  if (pages == 0) return Status::Error("litejet: snapshot: the database has no pages");
  Manifest m;
  m.id = info.id ? info.id : RandomId();
  m.txid = info.txid;
  m.checksum = info.checksum;
  m.page_size = ps;
  m.db_pages = pages;
  m.log_seq = info.log_seq;
  m.epoch = info.epoch;
  m.commit_time_us = info.commit_time_us;
  m.raw_bytes = uint64_t(pages) * ps;
  const std::string what = "snapshot " + IdHex(m.id) + " (TXID " + std::to_string(info.txid) + ")";
  Status s = store.Ensure(Left(deadline));
  if (!s.ok()) return s;
  auto fail = [&](const Status& why) {
    if (m.chunk_count > 0) store.Purge(m.id, 5000);  // best effort: no manifest names them
    return why;
  };
  const uint32_t per_chunk = uint32_t(std::max<size_t>(1, chunk_raw / ps));
  uint64_t sum = 0;
  std::string raw, enc;
  uint32_t pgno = 1;
  uint32_t cap = per_chunk;  // pages per chunk now: smaller after a split, back up when chunks compress well
  while (pgno <= pages) {
    uint32_t n = std::min<uint32_t>(cap, pages - pgno + 1);
    bool split = false;
    raw.resize(size_t(n) * ps);
    for (uint32_t i = 0; i < n; i++) {
      s = src.Read(pgno + i, &raw[size_t(i) * ps]);
      if (!s.ok()) return fail(s);
    }
    // Split what does not fit; the pages not sent now are read again.
    for (;;) {
      s = EncodeChunk(m.id, m.chunk_count, pgno, ps, raw, &enc);
      if (!s.ok()) return fail(s);
      if (enc.size() <= store.MaxPayload() || n == 1) break;
      n = (n + 1) / 2;
      raw.resize(size_t(n) * ps);
      split = true;
    }
    if (split) {
      cap = n;  // incompressible pages: do not compress every chunk twice
    } else if (cap < per_chunk && enc.size() < store.MaxPayload() / 2) {
      cap = std::min(per_chunk, cap * 2);
    }
    if (enc.size() > store.MaxPayload()) {
      return fail(Status::Error("litejet: " + what + ": one page does not fit the server's max payload"));
    }
    for (uint32_t i = 0; i < n; i++) sum ^= checksum::PageHash(&raw[size_t(i) * ps], ps, pgno + i);
    s = store.PublishChunk(m.id, enc, Left(deadline));
    if (!s.ok()) return fail(s);
    m.chunk_count++;
    m.stored_bytes += enc.size();
    pgno += n;
    if (progress) {
      Progress p;
      p.phase = "snapshot";
      p.done = uint64_t(pgno - 1) * ps;
      p.total = m.raw_bytes;
      p.txid = m.txid;
      progress(p);
    }
  }
  if (sum != info.checksum) {
    return fail(Status::Error("litejet: " + what + ": the pages read sum to " + checksum::Hex(sum) +
                                  ", but the checksum at TXID " + std::to_string(info.txid) + " is " +
                                  checksum::Hex(info.checksum) + ": not published",
                              11));
  }
  m.time_ms = NowMs();
  s = store.PublishManifest(m.id, EncodeManifest(m), Left(deadline));
  if (!s.ok()) return fail(s);
  if (out) *out = m;
  return Status::OK();
}

Status List(Store& store, int64_t timeout_ms, std::vector<Manifest>* out) {
  out->clear();
  std::vector<std::string> raw;
  Status s = store.Manifests(timeout_ms, &raw);
  if (s.code() == kNoSnapshot) return Status::OK();
  if (!s.ok()) return s;
  for (const std::string& r : raw) {
    Manifest m;
    if (DecodeManifest(r.data(), r.size(), &m).ok()) out->push_back(m);  // a damaged one is not usable
  }
  std::sort(out->begin(), out->end(), [](const Manifest& a, const Manifest& b) {
    return a.txid != b.txid ? a.txid > b.txid : a.time_ms > b.time_ms;
  });
  return Status::OK();
}

Status Get(Store& store, const Manifest& m, int64_t timeout_ms,
           const std::function<Status(const ChunkHeader&, const std::string& raw)>& sink) {
  const std::string what = "snapshot " + IdHex(m.id);
  uint32_t index = 0, next_pgno = 1;
  Status bad, sunk;
  std::string raw;
  Status s = store.Chunks(m.id, timeout_ms, [&](const std::string& data) {
    ChunkHeader h;
    Status d = DecodeChunk(data.data(), data.size(), &h, &raw);
    const std::string at = what + " chunk " + std::to_string(index) + ": ";
    if (!d.ok()) {
      std::string why = d.message();
      const std::string head = "litejet: snapshot chunk " + std::to_string(index) + ": ";
      if (why.rfind(head, 0) == 0)
        why = why.substr(head.size());
      else if (why.rfind("litejet: snapshot chunk: ", 0) == 0)
        why = why.substr(25);
      bad = Status::Error("litejet: " + at + why, kBadChunk);
    } else if (h.id != m.id || h.index != index) {
      bad = Status::Error(
          "litejet: " + at + "found chunk " + std::to_string(h.index) + " of snapshot " + IdHex(h.id) + " in its place",
          kBadChunk);
    } else if (h.page_size != m.page_size || h.first_pgno != next_pgno ||
               uint64_t(h.first_pgno) + h.page_count - 1 > m.db_pages) {
      bad = Status::Error("litejet: " + at + "pages " + std::to_string(h.first_pgno) + ".." +
                              std::to_string(h.first_pgno + h.page_count - 1) + " do not follow page " +
                              std::to_string(next_pgno - 1) + " of " + std::to_string(m.db_pages),
                          kBadChunk);
    }
    if (!bad.ok()) return false;
    sunk = sink(h, raw);
    if (!sunk.ok()) return false;
    index++;
    next_pgno += h.page_count;
    return index < m.chunk_count;
  });
  if (!bad.ok()) return bad;
  if (!sunk.ok()) return sunk;
  if (!s.ok()) return s;
  if (index < m.chunk_count || next_pgno != m.db_pages + 1) {
    return Status::Error("litejet: " + what + " chunk " + std::to_string(index) + ": missing (" +
                             std::to_string(index) + " of " + std::to_string(m.chunk_count) + " chunks found)",
                         kBadChunk);
  }
  return Status::OK();
}

Status Delete(Store& store, uint64_t id, int64_t timeout_ms) { return store.Purge(id, timeout_ms); }

// ---------------------------------------------------------------- memory store

struct MemoryStore {
  std::mutex mu;
  size_t max_payload;
  bool exists = false;
  std::map<uint64_t, std::vector<std::string>> chunks;
  std::map<uint64_t, std::string> manifests;
};

namespace {

class MemoryClient final : public Store {
 public:
  explicit MemoryClient(std::shared_ptr<MemoryStore> s) : s_(std::move(s)) {}
  Status Ensure(int64_t) override {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->exists = true;
    return Status::OK();
  }
  Status PublishChunk(uint64_t id, const std::string& data, int64_t) override {
    std::lock_guard<std::mutex> l(s_->mu);
    if (!s_->exists) return Status::Error("litejet: snapshot stream not found", kNoSnapshot);
    if (data.size() > s_->max_payload) return Status::Error("litejet: chunk exceeds max payload", transport::kTooLarge);
    s_->chunks[id].push_back(data);
    return Status::OK();
  }
  Status PublishManifest(uint64_t id, const std::string& data, int64_t) override {
    std::lock_guard<std::mutex> l(s_->mu);
    if (!s_->exists) return Status::Error("litejet: snapshot stream not found", kNoSnapshot);
    s_->manifests[id] = data;
    return Status::OK();
  }
  Status Manifests(int64_t, std::vector<std::string>* out) override {
    std::lock_guard<std::mutex> l(s_->mu);
    out->clear();
    if (!s_->exists) return Status::Error("litejet: snapshot stream not found", kNoSnapshot);
    for (auto& [id, m] : s_->manifests) out->push_back(m);
    return Status::OK();
  }
  Status Chunks(uint64_t id, int64_t, const std::function<bool(const std::string&)>& fn) override {
    std::vector<std::string> copy;
    {
      std::lock_guard<std::mutex> l(s_->mu);
      auto it = s_->chunks.find(id);
      if (it != s_->chunks.end()) copy = it->second;
    }
    for (auto& c : copy) {
      if (c.empty()) continue;  // deleted by Damage
      if (!fn(c)) break;
    }
    return Status::OK();
  }
  Status Purge(uint64_t id, int64_t) override {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->chunks.erase(id);
    s_->manifests.erase(id);
    return Status::OK();
  }
  size_t MaxPayload() const override { return s_->max_payload; }
  Status Damage(uint64_t id, uint32_t index, const std::string& data, int64_t) override {
    std::lock_guard<std::mutex> l(s_->mu);
    auto it = s_->chunks.find(id);
    if (it == s_->chunks.end() || index >= it->second.size()) return Status::Error("no such chunk", kNoSnapshot);
    it->second[index] = data;
    return Status::OK();
  }

 private:
  std::shared_ptr<MemoryStore> s_;
};

}  // namespace

std::shared_ptr<MemoryStore> NewMemoryStore(size_t max_payload) {
  auto s = std::make_shared<MemoryStore>();
  s->max_payload = max_payload;
  return s;
}

std::unique_ptr<Store> NewMemoryStoreClient(std::shared_ptr<MemoryStore> s) {
  return std::make_unique<MemoryClient>(std::move(s));
}

// ---------------------------------------------------------------- retention

RetentionPlan PlanRetention(const std::vector<Manifest>& snapshots, const RetentionPolicy& p, uint64_t now_ms,
                            uint64_t still_needed_seq) {
  std::vector<Manifest> s = snapshots;
  std::sort(s.begin(), s.end(), [](const Manifest& a, const Manifest& b) {
    return a.txid != b.txid ? a.txid > b.txid : a.time_ms > b.time_ms;
  });
  RetentionPlan plan;
  if (s.empty()) return plan;
  const size_t keep_n = std::max<size_t>(1, p.keep_snapshots);
  const uint64_t newest = s[0].txid;
  uint64_t oldest_kept_seq = 0;
  for (size_t i = 0; i < s.size(); i++) {
    bool keep = i < keep_n || (p.keep_txids > 0 && newest - s[i].txid <= p.keep_txids) ||
                (p.keep_ms > 0 && s[i].time_ms + p.keep_ms >= now_ms);
    if (keep) {
      oldest_kept_seq = oldest_kept_seq == 0 ? s[i].log_seq : std::min(oldest_kept_seq, s[i].log_seq);
    } else {
      plan.delete_ids.push_back(s[i].id);
    }
  }
  // Replay from a snapshot starts at its log_seq (that message may hold
  // later transactions of a batch): keep it.
  plan.log_purge_below = oldest_kept_seq;
  if (still_needed_seq != 0) plan.log_purge_below = std::min(plan.log_purge_below, still_needed_seq);
  return plan;
}

}  // namespace litejet::snapshot
