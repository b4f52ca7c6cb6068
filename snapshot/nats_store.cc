// snapshot/nats_store.cc: the snapshot Store on JetStream: stream
// "<prefix>_<name>_snap" over "<prefix>.<name>.snap.>", chunks on
// "...snap.<id>.c", the manifest on "...snap.<id>.m". Manifests are read by
// get-last-by-subject; chunks stream through an ordered consumer (one direct
// get per chunk costs a round trip each: half the speed on 1 GB).
#include <nats/nats.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "snapshot/snapshot.h"
#include "transport/nats_conn.h"

namespace litejet::snapshot {

namespace {

using transport::internal::Clock;
using transport::internal::MsLeft;
using transport::internal::NatsConn;

constexpr int64_t kApiWaitMs = 2000;
constexpr int64_t kHeartbeatNs = 5000LL * 1000 * 1000;
constexpr int64_t kInactiveNs = 10000LL * 1000 * 1000;  // the server drops a consumer nobody reads
constexpr size_t kDefaultServerMaxPayload = 1 << 20;

class NatsStore final : public Store {
 public:
  explicit NatsStore(const transport::Options& o)
      : stream_(o.prefix + "_" + o.name + "_snap"),
        base_(o.prefix + "." + o.name + ".snap."),
        replicas_(o.stream_replicas < 1 ? 1 : o.stream_replicas),
        conn_(o, kApiWaitMs) {}
  // Subscriptions are freed only after the connection (nats.c 3.4.1 may
  // still use one for an inbound message: see transport/nats_log.cc).
  ~NatsStore() override {
    std::vector<natsSubscription*> subs;
    {
      std::lock_guard<std::mutex> l(mu_);
      subs.swap(retired_);
    }
    conn_.Close([subs] {
      for (natsSubscription* sub : subs) natsSubscription_Destroy(sub);
    });
  }
  Status Start(const transport::Options& o) { return conn_.Start(o); }

  Status Ensure(int64_t timeout_ms) override;
  Status PublishChunk(uint64_t id, const std::string& data, int64_t timeout_ms) override {
    return Publish(Subject(id, "c"), data, timeout_ms, nullptr);
  }
  Status PublishManifest(uint64_t id, const std::string& data, int64_t timeout_ms) override {
    return Publish(Subject(id, "m"), data, timeout_ms, nullptr);
  }
  Status Manifests(int64_t timeout_ms, std::vector<std::string>* out) override;
  Status Chunks(uint64_t id, int64_t timeout_ms, const std::function<bool(const std::string&)>& fn) override;
  Status Purge(uint64_t id, int64_t timeout_ms) override;
  size_t MaxPayload() const override {
    natsConnection* nc = conn_.Conn();
    int64_t server = nc ? natsConnection_GetMaxPayload(nc) : 0;
    size_t max = server > 0 ? size_t(server) : kDefaultServerMaxPayload;
    return max > transport::kHeaderReserve ? max - transport::kHeaderReserve : 0;
  }
  Status Damage(uint64_t id, uint32_t index, const std::string& data, int64_t timeout_ms) override;

 private:
  std::string Subject(uint64_t id, const char* kind) const { return base_ + IdHex(id) + "." + kind; }
  Status Publish(const std::string& subject, const std::string& data, int64_t timeout_ms, uint64_t* seq);
  // The messages of subject from seq on, each to fn with its sequence.
  Status Scan(const std::string& subject, int64_t timeout_ms,
              const std::function<bool(uint64_t seq, const std::string&)>& fn);
  jsOptions Opts(Clock::time_point deadline) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = std::max<int64_t>(MsLeft(deadline), 1);
    return jo;
  }

  const std::string stream_, base_;
  const int replicas_;
  NatsConn conn_;
  std::mutex mu_;
  std::vector<natsSubscription*> retired_;  // unsubscribed, freed with the connection
};

Status NatsStore::Ensure(int64_t timeout_ms) {
  const std::string what = "ensure stream " + stream_;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!conn_.WaitConnected(deadline)) return conn_.NotConnected(what);
  const std::string subject = base_ + ">";
  auto check = [&](jsStreamInfo* si) {
    const jsStreamConfig* c = si->Config;
    bool has = false;
    for (int i = 0; c && i < c->SubjectsLen; i++) has |= subject == c->Subjects[i];
    jsStreamInfo_Destroy(si);
    if (!has) {
      return conn_.Fail(Status::Error("litejet: nats: stream " + stream_ + " exists but does not hold subject " +
                                      subject + " (a database named like this snapshot stream?)"));
    }
    return Status::OK();
  };
  jsOptions jo = Opts(deadline);
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_.Js(), stream_.c_str(), &jo, &jerr);
  if (s == NATS_OK) return check(si);
  if (s != NATS_NOT_FOUND) return conn_.Fail(what, s, jerr);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {subject.c_str()};
  cfg.Name = stream_.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas_;
  cfg.AllowDirect = true;
  jerr = static_cast<jsErrCode>(0);
  s = js_AddStream(&si, conn_.Js(), &cfg, &jo, &jerr);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return Status::OK();
  }
  if (jerr != JSStreamNameExistErr) return conn_.Fail(what, s, jerr);
  s = js_GetStreamInfo(&si, conn_.Js(), stream_.c_str(), &jo, &jerr);
  if (s != NATS_OK) return conn_.Fail(what, s, jerr);
  return check(si);
}

Status NatsStore::Publish(const std::string& subject, const std::string& data, int64_t timeout_ms, uint64_t* seq) {
  const std::string what = "publish to " + subject;
  if (data.size() > MaxPayload()) {
    return conn_.Fail(Status::Error("litejet: nats: " + what + " failed: message of " + std::to_string(data.size()) +
                                        " bytes exceeds max payload " + std::to_string(MaxPayload()),
                                    transport::kTooLarge));
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!conn_.WaitConnected(deadline)) return conn_.NotConnected(what);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = std::max<int64_t>(MsLeft(deadline), 1);
  po.ExpectStream = stream_.c_str();
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&ack, conn_.Js(), subject.c_str(), data.data(), int(data.size()), &po, &jerr);
  if (s != NATS_OK) return conn_.Fail(what, s, jerr);
  if (seq) *seq = ack->Sequence;
  jsPubAck_Destroy(ack);
  return Status::OK();
}

Status NatsStore::Manifests(int64_t timeout_ms, std::vector<std::string>* out) {
  out->clear();
  const std::string what = "list the snapshots in " + stream_;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!conn_.WaitConnected(deadline)) return conn_.NotConnected(what);
  const std::string filter = base_ + "*.m";
  jsOptions jo = Opts(deadline);
  jo.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_.Js(), stream_.c_str(), &jo, &jerr);
  if (s == NATS_NOT_FOUND) return Status::Error("litejet: nats: stream " + stream_ + " not found", kNoSnapshot);
  if (s != NATS_OK) return conn_.Fail(what, s, jerr);
  std::vector<std::string> subjects;
  if (si->State.Subjects) {
    for (int i = 0; i < si->State.Subjects->Count; i++) subjects.push_back(si->State.Subjects->List[i].Subject);
  }
  jsStreamInfo_Destroy(si);
  for (const std::string& subj : subjects) {
    jsOptions go = Opts(deadline);
    natsMsg* m = nullptr;
    jerr = static_cast<jsErrCode>(0);
    s = js_GetLastMsg(&m, conn_.Js(), stream_.c_str(), subj.c_str(), &go, &jerr);
    if (s == NATS_NOT_FOUND) continue;  // purged meanwhile
    if (s != NATS_OK) return conn_.Fail(what, s, jerr);
    out->emplace_back(natsMsg_GetData(m), size_t(natsMsg_GetDataLength(m)));
    natsMsg_Destroy(m);
  }
  return Status::OK();
}

Status NatsStore::Scan(const std::string& subject, int64_t timeout_ms,
                       const std::function<bool(uint64_t seq, const std::string&)>& fn) {
  const std::string what = "read " + subject;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!conn_.WaitConnected(deadline)) return conn_.NotConnected(what);
  uint64_t seq = 1;
  for (;;) {
    jsOptions jo = Opts(deadline);
    jsDirectGetMsgOptions dg;
    jsDirectGetMsgOptions_Init(&dg);
    dg.Sequence = seq;
    dg.NextBySubject = subject.c_str();
    natsMsg* m = nullptr;
    natsStatus s = js_DirectGetMsg(&m, conn_.Js(), stream_.c_str(), &jo, &dg);
    if (s == NATS_NOT_FOUND) return Status::OK();
    if (s != NATS_OK) return conn_.Fail(what + " from sequence " + std::to_string(seq), s, 0);
    uint64_t at = natsMsg_GetSequence(m);
    std::string data(natsMsg_GetData(m), size_t(natsMsg_GetDataLength(m)));
    natsMsg_Destroy(m);
    if (at < seq) return conn_.Fail(Status::Error("litejet: nats: " + what + ": direct get went backwards"));
    // A chunk takes a whole direct-get answer: the deadline is per message.
    deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    if (!fn(at, data)) return Status::OK();
    seq = at + 1;
  }
}

Status NatsStore::Chunks(uint64_t id, int64_t timeout_ms, const std::function<bool(const std::string&)>& fn) {
  const std::string subject = Subject(id, "c");
  const std::string what = "read " + subject;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!conn_.WaitConnected(deadline)) return conn_.NotConnected(what);
  // How many there are: a consumer on none would wait for the timeout.
  jsOptions jo = Opts(deadline);
  jo.Stream.Info.SubjectsFilter = subject.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, conn_.Js(), stream_.c_str(), &jo, &jerr);
  if (s == NATS_NOT_FOUND) return Status::OK();  // no stream: no chunk
  if (s != NATS_OK) return conn_.Fail(what, s, jerr);
  uint64_t count = 0;
  if (si->State.Subjects) {
    for (int i = 0; i < si->State.Subjects->Count; i++) count += si->State.Subjects->List[i].Msgs;
  }
  jsStreamInfo_Destroy(si);
  if (count == 0) return Status::OK();

  jsOptions so_jo = Opts(deadline);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream_.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  so.Config.Heartbeat = kHeartbeatNs;
  so.Config.InactiveThreshold = kInactiveNs;
  natsSubscription* sub = nullptr;
  jerr = static_cast<jsErrCode>(0);
  s = js_SubscribeSync(&sub, conn_.Js(), subject.c_str(), &so_jo, &so, &jerr);
  if (s != NATS_OK) return conn_.Fail(what + ": create consumer", s, jerr);
  Status st;
  uint64_t got = 0;
  while (got < count) {
    natsMsg* m = nullptr;
    // The wait is per message: a chunk is at most a max payload.
    s = natsSubscription_NextMsg(&m, sub, std::max<int64_t>(timeout_ms, 1));
    if (s == NATS_SLOW_CONSUMER) continue;  // the ordered consumer resets itself
    if (s != NATS_OK) {
      st = conn_.Fail(what + " (" + std::to_string(got) + " of " + std::to_string(count) + " chunks read)", s, 0);
      break;
    }
    jsMsgMetaData* meta = nullptr;
    uint64_t pending = 0;
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
      pending = meta->NumPending;
      jsMsgMetaData_Destroy(meta);
    }
    std::string data(natsMsg_GetData(m), size_t(natsMsg_GetDataLength(m)));
    natsMsg_Destroy(m);
    got++;
    if (!fn(data) || pending == 0) break;  // pending 0: purged meanwhile, nothing more
  }
  // Never Unsubscribe (it deletes the consumer by a name the ordered
  // consumer's recreation may free meanwhile): gone at its next message,
  // or when freed; the server drops the consumer after kInactiveNs.
  natsSubscription_AutoUnsubscribe(sub, 1);
  std::lock_guard<std::mutex> l(mu_);
  retired_.push_back(sub);
  return st;
}

Status NatsStore::Purge(uint64_t id, int64_t timeout_ms) {
  const std::string filter = base_ + IdHex(id) + ".*";
  const std::string what = "purge " + filter + " from " + stream_;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  if (!conn_.WaitConnected(deadline)) return conn_.NotConnected(what);
  jsOptions jo = Opts(deadline);
  jo.Stream.Purge.Subject = filter.c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PurgeStream(conn_.Js(), stream_.c_str(), &jo, &jerr);
  if (s != NATS_OK) return conn_.Fail(what, s, jerr);
  return Status::OK();
}

// Chunks index.. are deleted and published again, the index-th as data (or
// left out): the order of the others stays.
Status NatsStore::Damage(uint64_t id, uint32_t index, const std::string& data, int64_t timeout_ms) {
  std::vector<std::pair<uint64_t, std::string>> msgs;
  uint32_t i = 0;
  Status s = Scan(Subject(id, "c"), timeout_ms, [&](uint64_t seq, const std::string& d) {
    if (i++ >= index) msgs.emplace_back(seq, d);
    return true;
  });
  if (!s.ok()) return s;
  if (msgs.empty()) return Status::Error("litejet: snapshot " + IdHex(id) + " has no chunk " + std::to_string(index));
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (auto& [seq, d] : msgs) {
    jsOptions jo = Opts(deadline);
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus ns = js_DeleteMsg(conn_.Js(), stream_.c_str(), seq, &jo, &jerr);
    if (ns != NATS_OK) return conn_.Fail("delete message " + std::to_string(seq), ns, jerr);
  }
  msgs[0].second = data;
  for (auto& [seq, d] : msgs) {
    if (d.empty()) continue;
    s = Publish(Subject(id, "c"), d, MsLeft(deadline), nullptr);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

}  // namespace

Status OpenNatsStore(const transport::Options& o, std::unique_ptr<Store>* out) {
  auto st = std::make_unique<NatsStore>(o);
  Status s = st->Start(o);
  if (!s.ok()) return s;
  *out = std::move(st);
  return Status::OK();
}

}  // namespace litejet::snapshot
