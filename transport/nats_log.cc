// transport/nats_log.cc: the Log on NATS JetStream (nats.c). One stream per
// database, appends fenced by the expected last sequence and deduplicated by Nats-Msg-Id, reads through an
// ordered consumer.
#include <nats/nats.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "transport/log.h"
#include "transport/nats_conn.h"

namespace litejet::transport {

namespace {

using internal::Clock;
using internal::MsLeft;
using internal::NatsConn;

// Ordered consumer heartbeats: nats.c recreates the consumer after two are
// missed (10 s), in a thread of its own. Our own stall check (kStallCheckMs)
// comes first; the two must not act at once: nats.c 3.4.1 frees the old
// consumer's name in that thread while our Unsubscribe (jsSub_deleteConsumer)
// may still format an error with it, a use-after-free AddressSanitizer caught
// once when both fired 2 s into a server restart.
constexpr int64_t kHeartbeatNs = 5000LL * 1000 * 1000;
// A consumer nobody listens to (its subscription closed, see CloseSub) is
// removed by the server after this long.
constexpr int64_t kInactiveNs = 10000LL * 1000 * 1000;
constexpr int64_t kDuplicateWindowNs = 120LL * 1000 * 1000 * 1000;
constexpr int64_t kMinApiWaitMs = 2000;       // consumer creation etc. when the caller's wait is shorter
constexpr int64_t kStallCheckMs = 2000;       // a silent consumer with messages waiting this long is recreated
constexpr int64_t kConsumerAttemptMs = 1500;  // one consumer-create request; also nats.c's own recreations
constexpr size_t kMaxMsgId = 256;
constexpr size_t kDefaultServerMaxPayload = 1 << 20;
constexpr int64_t kInterruptPollMs = 10;  // Read: how soon an Interrupt() is seen while waiting for messages

class NatsLog final : public Log {
 public:
  NatsLog(const Options& o)
      : stream_(o.prefix + "_" + o.name),
        subject_(o.prefix + "." + o.name + ".log"),
        advertise_(o.advertise),
        replicas_(o.stream_replicas < 1 ? 1 : o.stream_replicas),
        conn_(o, kConsumerAttemptMs) {}

  ~NatsLog() override {
    std::vector<natsSubscription*> subs;
    {
      std::lock_guard<std::mutex> l(read_mu_);
      if (sub_) subs.push_back(sub_);
      for (auto& r : retired_) subs.push_back(r.first);
    }
    // Subscriptions are freed after the connection (see CloseSub()).
    conn_.Close([subs] {
      for (natsSubscription* sub : subs) natsSubscription_Destroy(sub);
    });
  }

  Status Connect(const Options& o) { return conn_.Start(o); }

  Status Ensure(int64_t timeout_ms) override;
  Status Last(int64_t timeout_ms, Message* out, bool* found) override;
  Status Publish(const std::string& data, uint64_t expect_last, const std::string& msg_id, int64_t timeout_ms,
                 uint64_t* seq) override;
  Status Read(uint64_t from, int64_t wait_ms, const std::function<bool(const Message&)>& fn) override;
  Status Range(int64_t timeout_ms, uint64_t* first, uint64_t* last) override;
  Status PurgeBelow(uint64_t below, int64_t timeout_ms) override;

  bool Connected() const override { return conn_.Connected(); }
  size_t MaxPayload() const override {
    natsConnection* nc = conn_.Conn();
    int64_t server = nc ? natsConnection_GetMaxPayload(nc) : 0;  // 0 until the first connect
    size_t max = server > 0 ? static_cast<size_t>(server) : kDefaultServerMaxPayload;
    return max > kHeaderReserve ? max - kHeaderReserve : 0;
  }
  std::string LastError() const override { return conn_.LastError(); }
  void InterruptAtExit() override { conn_.InterruptAtExit(); }
  void Interrupt() override { conn_.Interrupt(); }

 private:
  bool Interrupted() const { return conn_.Interrupted(); }
  Status Fail(Status s) { return conn_.Fail(std::move(s)); }
  Status Fail(const std::string& what, natsStatus s, int jerr) { return conn_.Fail(what, s, jerr); }
  Status NotConnected(const std::string& what) { return conn_.NotConnected(what); }
  bool WaitConnected(Clock::time_point deadline) const { return conn_.WaitConnected(deadline); }
  jsCtx* Js() const { return conn_.Js(); }
  Status CheckCompatible(const jsStreamInfo* si);
  bool StoredWithId(uint64_t seq, const std::string& msg_id, int64_t timeout_ms);
  Status Subscribe(uint64_t from, int64_t timeout_ms);
  Status Missing(uint64_t want, uint64_t got);
  bool Stalled();
  // nats.c 3.4.1 looks a subscription up for an inbound message and uses it
  // without a reference (fixed upstream in 0a7dd28b): freeing one while its
  // messages arrive is a use-after-free, seen as a hang in Destroy. So a
  // subscription is unsubscribed now and freed only seconds later, or after
  // the connection is gone.
  // Unsubscribed without deleting its consumer: natsSubscription_Unsubscribe
  // deletes it using the consumer's name after dropping the subscription's
  // lock, while the ordered consumer's recreation thread (after a reconnect)
  // frees and replaces that name: a use-after-free (ASan, e2e_sync_outage_lost).
  // AutoUnsubscribe(1) on a subscription that delivered a message removes it
  // at once and never deletes the consumer (one that delivered none goes at
  // its first message, or when it is freed); the server drops the consumer
  // itself once nobody listens (kInactiveNs).
  void CloseSub() {
    auto now = Clock::now();
    while (!retired_.empty() && now - retired_.front().second > std::chrono::seconds(5)) {
      natsSubscription_Destroy(retired_.front().first);
      retired_.erase(retired_.begin());
    }
    if (!sub_) return;
    natsSubscription_AutoUnsubscribe(sub_, 1);
    retired_.emplace_back(sub_, now);
    sub_ = nullptr;
  }

  const std::string stream_, subject_;
  const std::string advertise_;
  const int replicas_;
  NatsConn conn_;

  std::mutex read_mu_;               // one Read at a time; guards the fields below
  natsSubscription* sub_ = nullptr;  // ordered consumer of the last Read
  uint64_t next_ = 0;                // seq sub_ delivers next
  uint64_t gap_retried_ = 0;         // next_ for which a gap already recreated sub_
  std::vector<std::pair<natsSubscription*, Clock::time_point>> retired_;  // unsubscribed, freed later
  Clock::time_point sub_heard_;                                           // sub_ created or last delivered a message
  Clock::time_point stall_checked_;                                       // last Stalled() query
};

Status NatsLog::CheckCompatible(const jsStreamInfo* si) {
  const jsStreamConfig* c = si->Config;
  bool has_subject = false;
  for (int i = 0; c && i < c->SubjectsLen; i++) has_subject |= subject_ == c->Subjects[i];
  // A mirror of the log (another JetStream domain's, at the edge: see
  // docs/operations.md) holds its messages, subjects and sequences, and
  // takes no publishes of its own: a replica reads it like the log.
  const bool mirror = c && c->Mirror && c->Mirror->Name && stream_ == c->Mirror->Name;
  if (!c || !(has_subject || mirror)) {
    return Fail(Status::Error("litejet: nats: stream " + stream_ + " exists but does not hold subject " + subject_));
  }
  if (c->Storage != js_FileStorage) {
    return Fail(Status::Error("litejet: nats: stream " + stream_ + " exists with memory storage: litejet needs file"));
  }
  // A different replica count is accepted: an operator may have scaled the stream.
  return Status::OK();
}

Status NatsLog::Ensure(int64_t timeout_ms) {
  const std::string what = "ensure stream " + stream_;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!WaitConnected(deadline)) return NotConnected(what);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = std::max<int64_t>(MsLeft(deadline), 1);

  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, Js(), stream_.c_str(), &jo, &jerr);
  if (s == NATS_OK) {
    Status st = CheckCompatible(si);
    jsStreamInfo_Destroy(si);
    return st;
  }
  if (s != NATS_NOT_FOUND) return Fail(what, s, jerr);

  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {subject_.c_str()};
  cfg.Name = stream_.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas_;
  cfg.Duplicates = kDuplicateWindowNs;
  jerr = static_cast<jsErrCode>(0);
  s = js_AddStream(&si, Js(), &cfg, &jo, &jerr);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return Status::OK();
  }
  if (jerr != JSStreamNameExistErr) return Fail(what, s, jerr);
  // Another node created it first (possibly with another config): check it.
  jerr = static_cast<jsErrCode>(0);
  s = js_GetStreamInfo(&si, Js(), stream_.c_str(), &jo, &jerr);
  if (s != NATS_OK) return Fail(what, s, jerr);
  Status st = CheckCompatible(si);
  jsStreamInfo_Destroy(si);
  return st;
}

Status NatsLog::Last(int64_t timeout_ms, Message* out, bool* found) {
  const std::string what = "last message of " + subject_;
  *found = false;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!WaitConnected(deadline)) return NotConnected(what);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = std::max<int64_t>(MsLeft(deadline), 1);
  natsMsg* m = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetLastMsg(&m, Js(), stream_.c_str(), subject_.c_str(), &jo, &jerr);
  if (s == NATS_NOT_FOUND && jerr == JSNoMessageFoundErr) return Status::OK();
  if (s != NATS_OK) return Fail(what, s, jerr);
  out->seq = natsMsg_GetSequence(m);
  out->data.assign(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
  natsMsg_Destroy(m);
  *found = true;
  return Status::OK();
}

Status NatsLog::Range(int64_t timeout_ms, uint64_t* first, uint64_t* last) {
  const std::string what = "read the state of stream " + stream_;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!WaitConnected(deadline)) return NotConnected(what);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = std::max<int64_t>(MsLeft(deadline), 1);
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, Js(), stream_.c_str(), &jo, &jerr);
  if (s == NATS_NOT_FOUND) return Fail(Status::Error("litejet: nats: stream " + stream_ + " not found", kNoStream));
  if (s != NATS_OK) return Fail(what, s, jerr);
  *last = si->State.LastSeq;
  // An empty stream reports FirstSeq 0 (never written) or LastSeq + 1 (purged).
  *first = si->State.Msgs == 0 ? *last + 1 : si->State.FirstSeq;
  jsStreamInfo_Destroy(si);
  return Status::OK();
}

Status NatsLog::PurgeBelow(uint64_t below, int64_t timeout_ms) {
  const std::string what = "purge " + stream_ + " below sequence " + std::to_string(below);
  if (below <= 1) return Status::OK();
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!WaitConnected(deadline)) return NotConnected(what);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = std::max<int64_t>(MsLeft(deadline), 1);
  jo.Stream.Purge.Subject = subject_.c_str();
  jo.Stream.Purge.Sequence = below;  // up to, not including
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PurgeStream(Js(), stream_.c_str(), &jo, &jerr);
  if (s != NATS_OK) return Fail(what, s, jerr);
  return Status::OK();
}

// True if the message at seq carries Nats-Msg-Id msg_id.
bool NatsLog::StoredWithId(uint64_t seq, const std::string& msg_id, int64_t timeout_ms) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = std::max<int64_t>(timeout_ms, 1);
  natsMsg* m = nullptr;
  if (js_GetMsg(&m, Js(), stream_.c_str(), seq, &jo, nullptr) != NATS_OK) return false;
  const char* id = nullptr;
  bool same = natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id && msg_id == id &&
              std::strcmp(natsMsg_GetSubject(m), subject_.c_str()) == 0;
  natsMsg_Destroy(m);
  return same;
}

Status NatsLog::Publish(const std::string& data, uint64_t expect_last, const std::string& msg_id, int64_t timeout_ms,
                        uint64_t* seq) {
  const std::string what = "publish to " + subject_;
  if (msg_id.size() > kMaxMsgId) {
    return Fail(Status::Error("litejet: nats: " + what + " failed: msg_id longer than " + std::to_string(kMaxMsgId)));
  }
  if (data.size() > MaxPayload()) {
    return Fail(Status::Error("litejet: nats: " + what + " failed: message of " + std::to_string(data.size()) +
                                  " bytes exceeds max payload " + std::to_string(MaxPayload()),
                              kTooLarge));
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  // Never hand a publish to nats.c while disconnected: it would sit in the
  // reconnect buffer and reach the server long after we reported it failed.
  if (!WaitConnected(deadline)) return NotConnected(what);

  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = std::max<int64_t>(MsLeft(deadline), 1);
  if (!msg_id.empty()) po.MsgId = msg_id.c_str();
  // The fence. The stream holds only our subject, so its last seq is the
  // subject's. ExpectLastSeq, not ExpectLastSubjectSeq: a clustered
  // nats-server 2.9 checks the per-subject expectation only before proposing,
  // against a store that lags in-flight proposals, so two racing writers can
  // both win (seen in ~20% of rounds on R3); the stream-level one is checked
  // when the entry is applied, in raft order. Both fail with 10071. For an
  // empty log, "subject seq 0" is also checked at apply time.
  if (expect_last == 0) {
    po.ExpectNoMessage = true;  // ExpectLastSeq = 0 means "unset" to nats.c
  } else {
    po.ExpectLastSeq = expect_last;
  }
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s;
  if (advertise_.empty()) {
    s = js_Publish(&ack, Js(), subject_.c_str(), data.data(), static_cast<int>(data.size()), &po, &jerr);
  } else {
    // With the publisher's advertise address as a header, so that replicas can
    // name the primary (repl_primary()).
    natsMsg* msg = nullptr;
    s = natsMsg_Create(&msg, subject_.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, kAdvertiseHeader, advertise_.c_str());
    if (s == NATS_OK) s = js_PublishMsg(&ack, Js(), msg, &po, &jerr);
    natsMsg_Destroy(msg);
  }
  if (s == NATS_OK) {
    *seq = ack->Sequence;
    jsPubAck_Destroy(ack);
    return Status::OK();
  }
  Status st = Fail(what, s, jerr);
  // The server answers a retry of a stored message from its dedupe table
  // before checking the expectation; past the duplicate window (or with a
  // server that checks the other way round) the retry is "fenced" by its own
  // original: look at the message after expect_last.
  if (st.code() == kFenced && !msg_id.empty() &&
      StoredWithId(expect_last + 1, msg_id, std::max<int64_t>(MsLeft(deadline), 500))) {
    *seq = expect_last + 1;
    return Status::OK();
  }
  return st;
}

// Opens an ordered consumer from `from`. A clustered nats-server 2.9 places
// the R1 consumer on a random stream peer, an offline one included, and then
// never answers: so creation is retried with short attempts until the budget ends.
Status NatsLog::Subscribe(uint64_t from, int64_t timeout_ms) {
  CloseSub();
  auto deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, kMinApiWaitMs));
  const std::string what = "read " + subject_ + " from seq " + std::to_string(from) + ": create consumer";
  for (;;) {
    if (!WaitConnected(deadline)) return NotConnected(what);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = std::clamp<int64_t>(MsLeft(deadline), 1, kConsumerAttemptMs);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream_.c_str();
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = from;
    so.Config.Heartbeat = kHeartbeatNs;
    so.Config.InactiveThreshold = kInactiveNs;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_SubscribeSync(&sub_, Js(), subject_.c_str(), &jo, &so, &jerr);
    if (s == NATS_OK) break;
    sub_ = nullptr;
    Status st = Fail(what, s, jerr);
    if (st.code() != kUnavailable || MsLeft(deadline) <= 0) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  next_ = from;
  sub_heard_ = Clock::now();
  return Status::OK();
}

// The ordered consumer can die without nats.c noticing for good: its
// recreation lands on an offline peer (see Subscribe()) or fails while the
// server restarts. True when sub_ has been silent for kStallCheckMs although
// the stream holds message next_.
bool NatsLog::Stalled() {
  auto now = Clock::now();
  auto quiet = std::chrono::milliseconds(kStallCheckMs);
  if (!Connected() || now - sub_heard_ < quiet || now - stall_checked_ < quiet) return false;
  stall_checked_ = now;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = kConsumerAttemptMs;
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, Js(), stream_.c_str(), &jo, nullptr) != NATS_OK) return false;
  uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  if (last < next_) return false;  // nothing to deliver: idle, not stalled
  Fail(Status::Error("litejet: nats: read " + subject_ + ": consumer silent with messages " + std::to_string(next_) +
                         ".." + std::to_string(last) + " waiting, recreating it",
                     kUnavailable));
  return true;
}

// The consumer skipped from `want` to `got`: the log no longer has `want`.
Status NatsLog::Missing(uint64_t want, uint64_t got) {
  std::string why = "message " + std::to_string(want) + " is no longer in the log (next is " + std::to_string(got);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = kMinApiWaitMs;
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, Js(), stream_.c_str(), &jo, nullptr) == NATS_OK) {
    why += ", first is " + std::to_string(si->State.FirstSeq);
    jsStreamInfo_Destroy(si);
  }
  return Fail(Status::Error("litejet: nats: read " + subject_ + " failed: " + why + ")", kTruncated));
}

Status NatsLog::Read(uint64_t from, int64_t wait_ms, const std::function<bool(const Message&)>& fn) {
  std::lock_guard<std::mutex> l(read_mu_);
  if (from == 0) from = 1;
  if (wait_ms < 1) wait_ms = 1;
  if (from != next_) {
    CloseSub();
    next_ = from;
  }
  auto idle_since = Clock::now();
  Status no_consumer;  // why the last consumer creation failed, while there is none
  for (;;) {
    if (Interrupted()) return NotConnected("read " + subject_);
    int64_t left = wait_ms - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - idle_since).count();
    if (left <= 0) {
      // Keep sub_ either way: nats.c resubscribes and recreates the ordered
      // consumer (missed heartbeats) once the server is back.
      if (!Connected()) return NotConnected("read " + subject_);
      // Connected, but no consumer the whole wait (e.g. the server refuses
      // to create one: a permissions violation): the log was unreachable.
      if (!sub_ && !no_consumer.ok()) return no_consumer;
      return Status::OK();
    }
    if (!sub_) {
      Status st = Subscribe(next_, left);
      if (!st.ok() && st.code() != kUnavailable) return st;
      no_consumer = st;
      continue;  // on kUnavailable, again until the wait is over
    }
    natsMsg* m = nullptr;
    // Short waits, so that an Interrupt() is seen at once.
    natsStatus s = natsSubscription_NextMsg(&m, sub_, std::min({left, kStallCheckMs, kInterruptPollMs}));
    if (s == NATS_TIMEOUT) {
      if (Stalled()) CloseSub();
      continue;
    }
    if (s == NATS_SLOW_CONSUMER) continue;  // dropped messages: the ordered consumer resets itself
    if (s != NATS_OK) {
      Status st = Fail("read " + subject_, s, 0);
      CloseSub();
      return st;
    }
    jsMsgMetaData* meta = nullptr;
    s = natsMsg_GetMetaData(&meta, m);
    if (s != NATS_OK) {
      Status st = Fail("read " + subject_ + ": message metadata", s, 0);
      natsMsg_Destroy(m);
      CloseSub();
      return st;
    }
    uint64_t seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    idle_since = sub_heard_ = Clock::now();
    if (seq < next_) {  // redelivered around a consumer reset
      natsMsg_Destroy(m);
      continue;
    }
    if (seq > next_) {
      // Either the consumer misbehaved around a reset (recreate it once) or
      // the message is gone from the stream.
      natsMsg_Destroy(m);
      if (gap_retried_ == next_) return Missing(next_, seq);
      gap_retried_ = next_;
      CloseSub();
      continue;
    }
    Message msg;
    msg.seq = seq;
    msg.data.assign(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
    const char* adv = nullptr;
    if (natsMsgHeader_Get(m, kAdvertiseHeader, &adv) == NATS_OK && adv) msg.advertise = adv;
    natsMsg_Destroy(m);
    next_ = seq + 1;
    if (!fn(msg)) return Status::OK();
  }
}

}  // namespace

Status InitLibrary() {
  // First, so that no atexit(OPENSSL_cleanup) is registered: a connect or
  // close still running in a nats.c thread at exit would use freed state. A
  // no-op when the host initialised OpenSSL before (its cleanup then runs
  // after litejet's exit handler, which is registered later).
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);
  natsStatus s = nats_Open(-1);
  if (s != NATS_OK) {
    return Status::Error(std::string("litejet: nats: cannot initialise nats.c: ") + natsStatus_GetText(s));
  }
  return Status::OK();
}

Status OpenNats(const Options& o, std::unique_ptr<Log>* out) {
  auto log = std::make_unique<NatsLog>(o);
  Status st = log->Connect(o);
  if (!st.ok()) return st;
  *out = std::move(log);
  return Status::OK();
}

Status ListNatsDatabases(const Options& o, int64_t timeout_ms, std::vector<std::string>* names) {
  names->clear();
  Options any = o;
  if (any.name.empty()) any.name = "-";  // Start() insists on one; the listing uses none
  NatsConn conn(any, kMinApiWaitMs);
  Status st = conn.Start(any);
  if (!st.ok()) return st;
  const std::string what = "list the streams";
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!conn.WaitConnected(deadline)) return conn.NotConnected(what);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = std::max<int64_t>(MsLeft(deadline), 1);
  jsStreamInfoList* list = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Streams(&list, conn.Js(), &jo, &jerr);
  if (s == NATS_NOT_FOUND) return Status::OK();  // nats.c's answer when there is no stream at all
  if (s != NATS_OK) return conn.Fail(what, s, jerr);
  const std::string head = o.prefix + "_";
  for (int i = 0; i < list->Count; i++) {
    const jsStreamConfig* c = list->List[i] ? list->List[i]->Config : nullptr;
    if (!c || !c->Name || std::strncmp(c->Name, head.c_str(), head.size()) != 0) continue;
    const std::string name = c->Name + head.size();
    bool valid = !name.empty() && name.size() <= 64;
    for (unsigned char ch : name) valid = valid && (std::isalnum(ch) || ch == '_' || ch == '-');
    // The subject tells a log from another stream that merely starts alike
    // (a longer prefix's: "litejet_x_db" is db "db" under prefix "litejet_x").
    const std::string subject = o.prefix + "." + name + ".log";
    bool holds = false;
    for (int j = 0; j < c->SubjectsLen; j++) holds |= c->Subjects[j] && subject == c->Subjects[j];
    if (valid && holds) names->push_back(name);
  }
  jsStreamInfoList_Destroy(list);
  std::sort(names->begin(), names->end());
  return Status::OK();
}

}  // namespace litejet::transport