// transport/nats_lease.cc: the LeaseStore and NodeBoard on NATS JetStream KV
// buckets (docs/design.md, "Leases and heartbeats on NATS KV").
//
// The buckets are ordinary KV buckets (stream "KV_<bucket>", subjects
// "$KV.<bucket>.>"), so `nats kv` can show them, but reads and writes are
// plain JetStream requests rather than kvStore_*: those take their wait from
// the context they were bound with (not the call's timeout) and do not return
// the JetStream error code, and a compare-and-set must know "wrong last
// sequence" (10071) from "no answer".
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

#include "transport/lease.h"
#include "transport/lease_codec.h"
#include "transport/nats_conn.h"

namespace litejet::transport {

namespace {

using internal::Clock;
using internal::MsLeft;
using internal::NatsConn;

constexpr const char* kKvOperation = "KV-Operation";  // nats.c's kvOpHeader: "DEL" or "PURGE" on a marker
constexpr const char* kLeaseKey = "primary";
constexpr int64_t kMinNodesMaxAgeMs = 60 * 1000;
constexpr int kMaxListedNodes = 1024;   // List reads at most this many heartbeats
constexpr size_t kMaxLastError = 1024;  // of a heartbeat's last_error, so a value stays under kMaxLeaseValue
constexpr int64_t kMsToNs = 1000 * 1000;

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The last message of one key.
struct KeyMsg {
  bool found = false;   // a put is there
  bool marker = false;  // a delete/purge marker is there (found stays false)
  uint64_t seq = 0;     // its revision
  std::string value;
};

// One connection shared by the store and the board of a database.
class Shared {
 public:
  Shared(const Options& o, int64_t ttl_ms, bool read_only = false)
      : read_only_(read_only),
        conn_(o, 2000),
        lease_bucket_(o.prefix + "_" + o.name + "_lease"),
        nodes_bucket_(o.prefix + "_" + o.name + "_nodes"),
        ttl_ms_(ttl_ms),
        replicas_(o.stream_replicas < 1 ? 1 : o.stream_replicas) {}

  NatsConn& conn() { return conn_; }
  int64_t ttl_ms() const { return ttl_ms_; }
  std::string LeaseSubject() const { return "$KV." + lease_bucket_ + "." + kLeaseKey; }
  std::string NodeSubject(const std::string& node) const {
    return "$KV." + nodes_bucket_ + "." + internal::NodeKey(node);
  }
  std::string LeaseStream() const { return "KV_" + lease_bucket_; }
  std::string NodesStream() const { return "KV_" + nodes_bucket_; }
  const std::string& lease_bucket() const { return lease_bucket_; }
  const std::string& nodes_bucket() const { return nodes_bucket_; }

  // Connected, and the bucket exists (made on first use: opening never waits).
  // Read-only stores never make or check a bucket: a read passes absent and
  // learns whether the bucket is there; a write fails.
  Status Ready(bool lease, Clock::time_point deadline, const std::string& what, bool* absent = nullptr) {
    if (absent) *absent = false;
    if (read_only_ && !absent) {
      return Status::Error("litejet: nats: " + what + " failed: the store was opened read-only");
    }
    if (!conn_.WaitConnected(deadline)) return conn_.NotConnected(what);
    if (read_only_) return Exists(lease ? LeaseStream() : NodesStream(), deadline, what, absent);
    std::atomic<bool>& ready = lease ? lease_ready_ : nodes_ready_;
    if (ready.load()) return Status::OK();
    // One creation at a time, but no caller waits past its own deadline for
    // another's. (A plain mutex polled, not std::timed_mutex: GCC 12's
    // ThreadSanitizer does not see pthread_mutex_clocklock, which that uses,
    // and reports each unlock as one of an unlocked mutex.)
    std::unique_lock<std::mutex> l(ensure_mu_, std::defer_lock);
    while (!l.try_lock()) {
      if (Clock::now() >= deadline) {
        return conn_.Fail(
            Status::Error("litejet: nats: " + what + " failed: timeout (bucket being created)", kUnavailable));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (ready.load()) return Status::OK();
    Status st = lease ? Ensure(lease_bucket_, ttl_ms_, true, deadline)
                      : Ensure(nodes_bucket_, std::max(kMinNodesMaxAgeMs, 10 * ttl_ms_), false, deadline);
    if (st.ok()) ready.store(true);
    return st;
  }

  Status Get(const std::string& stream, const std::string& subject, Clock::time_point deadline, const std::string& what,
             KeyMsg* out);
  // Publishes value to subject if the stream's last sequence is still
  // expect_last (0: the stream never had a message); del: a delete marker.
  // *wrong_last: the expectation failed (nothing stored).
  Status Put(const std::string& subject, const std::string& value, bool del, bool check, uint64_t expect_last,
             Clock::time_point deadline, const std::string& what, uint64_t* seq, bool* wrong_last);
  Status LastSeq(const std::string& stream, Clock::time_point deadline, const std::string& what, uint64_t* last);
  Status Subjects(Clock::time_point deadline, std::vector<std::string>* out);

 private:
  Status Exists(const std::string& stream, Clock::time_point deadline, const std::string& what, bool* absent);

  const bool read_only_;
  Status Ensure(const std::string& bucket, int64_t max_age_ms, bool is_lease, Clock::time_point deadline);

  NatsConn conn_;
  const std::string lease_bucket_, nodes_bucket_;
  const int64_t ttl_ms_;
  const int replicas_;
  std::mutex ensure_mu_;
  std::atomic<bool> lease_ready_{false}, nodes_ready_{false};
};

jsOptions Wait(Clock::time_point deadline) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = std::max<int64_t>(MsLeft(deadline), 1);
  return jo;
}

Status Shared::Ensure(const std::string& bucket, int64_t max_age_ms, bool is_lease, Clock::time_point deadline) {
  const std::string stream = "KV_" + bucket, subjects = "$KV." + bucket + ".>";
  const std::string what = "create KV bucket " + bucket;
  // What js_CreateKeyValue makes (nats.c 3.4.1), with history 1.
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subj[] = {subjects.c_str()};
  cfg.Name = stream.c_str();
  cfg.Subjects = subj;
  cfg.SubjectsLen = 1;
  cfg.MaxMsgsPerSubject = 1;
  cfg.MaxBytes = -1;
  cfg.MaxMsgSize = -1;
  cfg.MaxAge = max_age_ms * kMsToNs;  // nanoseconds
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas_;
  cfg.AllowRollup = true;
  cfg.DenyDelete = true;
  cfg.AllowDirect = true;
  cfg.Discard = js_DiscardNew;
  // Look before creating: a node whose user may not create streams (a
  // least-privilege replica, docs/operations.md) uses the bucket the primary made.
  jsOptions jo = Wait(deadline);
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_.Js(), stream.c_str(), &jo, &jerr);
  if (s == NATS_NOT_FOUND) {
    jo = Wait(deadline);
    jerr = static_cast<jsErrCode>(0);
    s = js_AddStream(&si, conn_.Js(), &cfg, &jo, &jerr);
    if (s == NATS_OK) {
      jsStreamInfo_Destroy(si);
      return Status::OK();
    }
    // Two nodes creating the bucket at once: the loser hears "name in use" or,
    // when the winner's stream is still being set up, "subjects overlap"
    // (10065). Either way the stream is there now: look at it.
    if (jerr != JSStreamNameExistErr && jerr != JSStreamSubjectOverlapErr) return conn_.Fail(what, s, jerr);
    jo = Wait(deadline);
    jerr = static_cast<jsErrCode>(0);
    s = js_GetStreamInfo(&si, conn_.Js(), stream.c_str(), &jo, &jerr);
  }
  if (s != NATS_OK) return conn_.Fail(what, s, jerr);
  // It may exist with another configuration (another node's ttl, an
  // operator's change): usable if its keys expire no sooner than our ttl says.
  const jsStreamConfig* c = si->Config;
  bool has_subjects = false;
  for (int i = 0; c && i < c->SubjectsLen; i++) has_subjects |= subjects == c->Subjects[i];
  int64_t max_age = c ? c->MaxAge : 0;
  int64_t per_subject = c ? c->MaxMsgsPerSubject : 0;
  jsStreamInfo_Destroy(si);
  if (!has_subjects || per_subject < 1) {
    return conn_.Fail(Status::Error("litejet: nats: stream " + stream + " exists but is not KV bucket " + bucket));
  }
  if (is_lease && (max_age <= 0 || max_age < max_age_ms * kMsToNs)) {
    // A shorter max age would expire a holder's key before its own deadline.
    return conn_.Fail(Status::Error("litejet: nats: KV bucket " + bucket + " has max age " +
                                    std::to_string(max_age / kMsToNs) + " ms, but this node's lease ttl is " +
                                    std::to_string(max_age_ms) +
                                    " ms: the bucket must not expire keys sooner "
                                    "(delete the bucket or use the same ttl on every node)"));
  }
  return Status::OK();
}

Status Shared::Exists(const std::string& stream, Clock::time_point deadline, const std::string& what, bool* absent) {
  jsOptions jo = Wait(deadline);
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_.Js(), stream.c_str(), &jo, &jerr);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return Status::OK();
  }
  if (s == NATS_NOT_FOUND && jerr == JSStreamNotFoundErr) {
    *absent = true;
    return Status::OK();
  }
  return conn_.Fail(what, s, jerr);
}

Status Shared::Get(const std::string& stream, const std::string& subject, Clock::time_point deadline,
                   const std::string& what, KeyMsg* out) {
  *out = KeyMsg();
  jsOptions jo = Wait(deadline);
  natsMsg* m = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  // Not a direct get: on a replicated bucket any replica, a lagging one too,
  // answers those; this request goes to the stream leader.
  natsStatus s = js_GetLastMsg(&m, conn_.Js(), stream.c_str(), subject.c_str(), &jo, &jerr);
  if (s == NATS_NOT_FOUND && jerr == JSNoMessageFoundErr) return Status::OK();
  if (s != NATS_OK) return conn_.Fail(what, s, jerr);
  out->seq = natsMsg_GetSequence(m);
  const char* op = nullptr;
  if (natsMsgHeader_Get(m, kKvOperation, &op) == NATS_OK && op && *op) {
    out->marker = true;
  } else {
    int len = natsMsg_GetDataLength(m);
    if (len < 0 || static_cast<size_t>(len) > internal::kMaxLeaseValue) {
      natsMsg_Destroy(m);
      return conn_.Fail(Status::Error("litejet: nats: " + what + " failed: value of " + subject + " at revision " +
                                      std::to_string(out->seq) + " is " + std::to_string(len) + " bytes (at most " +
                                      std::to_string(internal::kMaxLeaseValue) + ")"));
    }
    out->found = true;
    out->value.assign(natsMsg_GetData(m), static_cast<size_t>(len));
  }
  natsMsg_Destroy(m);
  return Status::OK();
}

Status Shared::Put(const std::string& subject, const std::string& value, bool del, bool check, uint64_t expect_last,
                   Clock::time_point deadline, const std::string& what, uint64_t* seq, bool* wrong_last) {
  *wrong_last = false;
  if (MsLeft(deadline) <= 0)
    return conn_.Fail(Status::Error("litejet: nats: " + what + " failed: timeout", kUnavailable));
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = std::max<int64_t>(MsLeft(deadline), 1);
  // The stream's last sequence, not the key's: a clustered nats-server 2.9
  // checks the per-subject expectation against a store that lags in-flight
  // proposals (see NatsLog::Publish), the stream-level one in raft order. The
  // lease bucket holds one key, so its last sequence is that key's revision.
  if (check) {
    if (expect_last == 0) {
      po.ExpectNoMessage = true;  // ExpectLastSeq = 0 means "unset" to nats.c
    } else {
      po.ExpectLastSeq = expect_last;
    }
  }
  natsMsg* msg = nullptr;
  natsStatus s = natsMsg_Create(&msg, subject.c_str(), nullptr, value.data(), static_cast<int>(value.size()));
  if (s == NATS_OK && del) s = natsMsgHeader_Set(msg, kKvOperation, "DEL");
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  if (s == NATS_OK) s = js_PublishMsg(&ack, conn_.Js(), msg, &po, &jerr);
  natsMsg_Destroy(msg);
  if (s == NATS_OK) {
    *seq = ack->Sequence;
    jsPubAck_Destroy(ack);
    return Status::OK();
  }
  if (jerr == JSStreamWrongLastSequenceErr) *wrong_last = true;
  return conn_.Fail(what, s, jerr);
}

Status Shared::LastSeq(const std::string& stream, Clock::time_point deadline, const std::string& what, uint64_t* last) {
  jsOptions jo = Wait(deadline);
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_.Js(), stream.c_str(), &jo, &jerr);
  if (s != NATS_OK) return conn_.Fail(what, s, jerr);
  *last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return Status::OK();
}

Status Shared::Subjects(Clock::time_point deadline, std::vector<std::string>* out) {
  const std::string stream = NodesStream(), filter = "$KV." + nodes_bucket_ + ".>";
  jsOptions jo = Wait(deadline);
  jo.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_.Js(), stream.c_str(), &jo, &jerr);
  if (s != NATS_OK) return conn_.Fail("list heartbeats in KV bucket " + nodes_bucket_, s, jerr);
  if (si->State.Subjects) {
    for (int i = 0; i < si->State.Subjects->Count && i < kMaxListedNodes; i++) {
      out->push_back(si->State.Subjects->List[i].Subject);
    }
  }
  jsStreamInfo_Destroy(si);
  std::sort(out->begin(), out->end());
  return Status::OK();
}

class NatsLeaseStore final : public LeaseStore {
 public:
  explicit NatsLeaseStore(std::shared_ptr<Shared> sh) : sh_(std::move(sh)) {}

  Status Acquire(const std::string& node, const std::string& advertise, int64_t timeout_ms, Lease* out) override {
    const std::string what = "acquire lease " + sh_->lease_bucket();
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    Status st = sh_->Ready(true, deadline, what);
    if (!st.ok()) return st;
    // The stream's last sequence first, then the key: a put that lands in
    // between is seen by the read; one after it fails our expectation.
    uint64_t last = 0;
    st = sh_->LastSeq(sh_->LeaseStream(), deadline, what, &last);
    if (!st.ok()) return st;
    KeyMsg k;
    st = sh_->Get(sh_->LeaseStream(), sh_->LeaseSubject(), deadline, what, &k);
    if (!st.ok()) return st;
    if (k.found) return Held(k, what, out);
    Lease lease;
    lease.node = node;
    lease.advertise = advertise;
    lease.epoch = 0;  // in the value: "this write's revision"
    lease.renewed_unix_ms = WallMs();
    lease.ttl_ms = sh_->ttl_ms();
    uint64_t seq = 0;
    bool wrong_last = false;
    st = sh_->Put(sh_->LeaseSubject(), internal::EncodeLease(lease), false, true, std::max(last, k.seq), deadline, what,
                  &seq, &wrong_last);
    if (wrong_last) {
      // Someone else got there first: say who, when we can.
      Status read = sh_->Get(sh_->LeaseStream(), sh_->LeaseSubject(), deadline, what, &k);
      if (read.ok() && k.found) return Held(k, what, out);
      *out = Lease();
      return sh_->conn().Fail(
          Status::Error("litejet: nats: " + what + " failed: another node wrote it first", kLeaseHeld));
    }
    if (!st.ok()) return st;
    lease.epoch = lease.revision = seq;
    *out = lease;
    return Status::OK();
  }

  Status Renew(Lease* lease, int64_t timeout_ms) override {
    const std::string what = "renew lease " + sh_->lease_bucket() + " at revision " + std::to_string(lease->revision);
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    Status st = sh_->Ready(true, deadline, what);
    if (!st.ok()) return st;
    Lease next = *lease;
    next.renewed_unix_ms = WallMs();
    next.ttl_ms = sh_->ttl_ms();
    const std::string value = internal::EncodeLease(next);
    uint64_t seq = 0;
    bool wrong_last = false;
    // A renew that timed out may still have landed: the key then holds our
    // epoch at a revision we never learnt, and this fails with kLeaseLost.
    // The caller steps down, which is safe; adopting that revision would not
    // be (its expiry counts from before this call started).
    st = sh_->Put(sh_->LeaseSubject(), value, false, true, lease->revision, deadline, what, &seq, &wrong_last);
    if (wrong_last) {
      return sh_->conn().Fail(Status::Error(
          "litejet: nats: " + what + " failed: the lease is no longer at that revision (expired or taken)",
          kLeaseLost));
    }
    if (!st.ok()) return st;
    lease->revision = seq;
    lease->renewed_unix_ms = next.renewed_unix_ms;
    lease->ttl_ms = next.ttl_ms;
    return Status::OK();
  }

  Status Release(const Lease& lease, int64_t timeout_ms) override {
    const std::string what = "release lease " + sh_->lease_bucket() + " at revision " + std::to_string(lease.revision);
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    Status st = sh_->Ready(true, deadline, what);
    if (!st.ok()) return st;
    uint64_t seq = 0;
    bool wrong_last = false;
    st = sh_->Put(sh_->LeaseSubject(), "", true, true, lease.revision, deadline, what, &seq, &wrong_last);
    if (wrong_last) {
      return sh_->conn().Fail(Status::Error(
          "litejet: nats: " + what + " failed: the lease is no longer at that revision (nothing deleted)", kLeaseLost));
    }
    return st;
  }

  Status Current(int64_t timeout_ms, Lease* out, bool* found) override {
    const std::string what = "read lease " + sh_->lease_bucket();
    *found = false;
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    bool absent = false;
    Status st = sh_->Ready(true, deadline, what, &absent);
    if (!st.ok() || absent) return st;
    KeyMsg k;
    st = sh_->Get(sh_->LeaseStream(), sh_->LeaseSubject(), deadline, what, &k);
    if (!st.ok() || !k.found) return st;
    st = Decode(k, out);
    if (!st.ok()) return sh_->conn().Fail(st);
    *found = true;
    return Status::OK();
  }

 private:
  static Status Decode(const KeyMsg& k, Lease* out) {
    Lease l;
    Status st = internal::DecodeLease(k.value, &l);
    if (!st.ok()) {
      return Status::Error(st.message() + " (key " + kLeaseKey + " at revision " + std::to_string(k.seq) + ")");
    }
    l.revision = k.seq;
    if (l.epoch == 0) l.epoch = k.seq;  // the creating write
    if (l.epoch > l.revision) {
      return Status::Error("litejet: nats: lease value is malformed: epoch " + std::to_string(l.epoch) +
                           " after its revision " + std::to_string(k.seq));
    }
    *out = l;
    return Status::OK();
  }
  Status Held(const KeyMsg& k, const std::string& what, Lease* out) {
    Lease holder;
    Status st = Decode(k, &holder);
    if (!st.ok()) return sh_->conn().Fail(st);  // not kLeaseHeld: nobody can tell who holds it
    *out = holder;
    return sh_->conn().Fail(Status::Error("litejet: nats: " + what + ": held by node \"" + holder.node + "\" (epoch " +
                                              std::to_string(holder.epoch) + ")",
                                          kLeaseHeld));
  }

  std::shared_ptr<Shared> sh_;
};

class NatsNodeBoard final : public NodeBoard {
 public:
  explicit NatsNodeBoard(std::shared_ptr<Shared> sh) : sh_(std::move(sh)) {}

  Status Put(const NodeState& s, int64_t timeout_ms) override {
    const std::string what = "put heartbeat of \"" + s.node + "\" in KV bucket " + sh_->nodes_bucket();
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    Status st = sh_->Ready(false, deadline, what);
    if (!st.ok()) return st;
    NodeState bounded = s;
    if (bounded.last_error.size() > kMaxLastError) bounded.last_error.resize(kMaxLastError);
    std::string value = internal::EncodeNodeState(bounded);
    if (value.size() > internal::kMaxLeaseValue) {
      return sh_->conn().Fail(Status::Error("litejet: nats: " + what + " failed: value of " +
                                            std::to_string(value.size()) + " bytes is too large"));
    }
    uint64_t seq = 0;
    bool wrong_last = false;
    return sh_->Put(sh_->NodeSubject(s.node), value, false, false, 0, deadline, what, &seq, &wrong_last);
  }

  Status List(int64_t timeout_ms, std::vector<NodeState>* out) override {
    const std::string what = "list heartbeats in KV bucket " + sh_->nodes_bucket();
    out->clear();
    auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    bool absent = false;
    Status st = sh_->Ready(false, deadline, what, &absent);
    if (!st.ok() || absent) return st;
    std::vector<std::string> subjects;
    st = sh_->Subjects(deadline, &subjects);
    if (!st.ok()) return st;
    for (const auto& subject : subjects) {
      KeyMsg k;
      st = sh_->Get(sh_->NodesStream(), subject, deadline, what, &k);
      if (!st.ok()) return st;
      if (!k.found) continue;  // deleted, or aged out since the listing
      NodeState ns;
      st = internal::DecodeNodeState(k.value, &ns);
      if (!st.ok()) return sh_->conn().Fail(Status::Error(st.message() + " (subject " + subject + ")"));
      out->push_back(std::move(ns));
    }
    return Status::OK();
  }

 private:
  std::shared_ptr<Shared> sh_;
};

}  // namespace

Status OpenNatsLeases(const Options& o, int64_t ttl_ms, std::unique_ptr<LeaseStore>* lease,
                      std::unique_ptr<NodeBoard>* board) {
  if (ttl_ms <= 0) return Status::Error("litejet: nats: lease ttl must be positive, got " + std::to_string(ttl_ms));
  auto sh = std::make_shared<Shared>(o, ttl_ms);
  Status st = sh->conn().Start(o);
  if (!st.ok()) return st;
  if (lease) *lease = std::make_unique<NatsLeaseStore>(sh);
  if (board) *board = std::make_unique<NatsNodeBoard>(sh);
  return Status::OK();
}

Status OpenNatsLeasesReadOnly(const Options& o, std::unique_ptr<LeaseStore>* lease, std::unique_ptr<NodeBoard>* board) {
  auto sh = std::make_shared<Shared>(o, 1, true);
  Status st = sh->conn().Start(o);
  if (!st.ok()) return st;
  if (lease) *lease = std::make_unique<NatsLeaseStore>(sh);
  if (board) *board = std::make_unique<NatsNodeBoard>(sh);
  return Status::OK();
}

}  // namespace litejet::transport
