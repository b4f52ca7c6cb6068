// transport/nats_log.cc: the Log on NATS JetStream (nats.c). One stream per
// database, appends fenced by the expected last sequence and deduplicated by Nats-Msg-Id, reads through an
// ordered consumer.
#include <nats/nats.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "transport/log.h"

namespace litejet::transport {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kReconnectWaitMs = 100;
constexpr int kConnectTimeoutMs = 2000;
// Ordered consumer heartbeats: nats.c recreates the consumer after two are
// missed (10 s), in a thread of its own. Our own stall check (kStallCheckMs)
// comes first; the two must not act at once: nats.c 3.4.1 frees the old
// consumer's name in that thread while our Unsubscribe (jsSub_deleteConsumer)
// may still format an error with it, a use-after-free AddressSanitizer caught
// once when both fired 2 s into a server restart.
constexpr int64_t kHeartbeatNs = 5000LL * 1000 * 1000;
constexpr int64_t kDuplicateWindowNs = 120LL * 1000 * 1000 * 1000;
constexpr int64_t kMinApiWaitMs = 2000;       // consumer creation etc. when the caller's wait is shorter
constexpr int64_t kStallCheckMs = 2000;       // a silent consumer with messages waiting this long is recreated
constexpr int64_t kConsumerAttemptMs = 1500;  // one consumer-create request; also nats.c's own recreations
constexpr size_t kMaxMsgId = 256;
constexpr size_t kDefaultServerMaxPayload = 1 << 20;
constexpr int kStreamOfflineErr = 10118;  // JSStreamOfflineErr, newer than nats.c 3.4's enum
constexpr int64_t kInterruptPollMs = 10;  // Read: how soon an Interrupt() is seen while waiting for messages

// Connection events. nats.c may run a callback after natsConnection_Destroy
// returns, so callbacks get an id, not a pointer, and look the live object up.
// Also what the connect thread hands over (see NatsLog::Connect).
struct Events {
  std::mutex mu;
  std::condition_variable cv;  // connection state changed, connect thread done, or interrupted
  std::string last_error;
  bool interrupted = false;      // Interrupt(): waits return at once
  bool abandoned = false;        // the NatsLog is gone: the connect thread destroys what it made
  bool connect_done = false;     // the connect thread returned
  natsConnection* nc = nullptr;  // its connection, until the NatsLog adopts it
  std::string connect_error;     // its hard failure (not "not connected yet"), if any
  bool close_started = false;    // Interrupt() is closing the connection (in a thread of its own)
  bool close_done = false;       // and has closed it: it may be destroyed

  void Note(std::string e) {
    std::lock_guard<std::mutex> l(mu);
    last_error = std::move(e);
    cv.notify_all();
  }
  void Wake() {
    std::lock_guard<std::mutex> l(mu);
    cv.notify_all();
  }
};

class Registry {
 public:
  static Registry& Get() {
    static Registry* r = new Registry;  // never destroyed: callbacks may run during exit
    return *r;
  }
  void* Add(const std::shared_ptr<Events>& e) {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t id = next_++;
    map_[id] = e;
    return reinterpret_cast<void*>(static_cast<uintptr_t>(id));
  }
  void Remove(void* closure) {
    std::lock_guard<std::mutex> l(mu_);
    map_.erase(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(closure)));
  }
  std::shared_ptr<Events> Find(void* closure) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = map_.find(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(closure)));
    return it == map_.end() ? nullptr : it->second.lock();
  }

 private:
  std::mutex mu_;
  uint64_t next_ = 1;
  std::unordered_map<uint64_t, std::weak_ptr<Events>> map_;
};

// nats.c callbacks: C boundary, nothing may escape.
void OnStateChange(natsConnection*, void* closure) {
  try {
    if (auto e = Registry::Get().Find(closure)) e->Wake();
  } catch (...) {
  }
}
void OnDisconnected(natsConnection*, void* closure) {
  try {
    if (auto e = Registry::Get().Find(closure)) e->Note("litejet: nats: disconnected, reconnecting");
  } catch (...) {
  }
}
void OnClosed(natsConnection*, void* closure) {
  try {
    if (auto e = Registry::Get().Find(closure)) e->Note("litejet: nats: connection closed");
  } catch (...) {
  }
}
void OnAsyncError(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  try {
    if (auto e = Registry::Get().Find(closure)) {
      e->Note(std::string("litejet: nats: asynchronous error: ") + natsStatus_GetText(err));
    }
  } catch (...) {
  }
}

bool IsUnavailable(natsStatus s, int jerr) {
  if (jerr == JSClusterNotAvailErr || jerr == JSClusterNotLeaderErr || jerr == kStreamOfflineErr) return true;
  switch (s) {
    case NATS_TIMEOUT:
    case NATS_NO_RESPONDERS:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NOT_YET_CONNECTED:
    case NATS_IO_ERROR:
    case NATS_STALE_CONNECTION:
    case NATS_NO_SERVER:
      return true;
    default:
      return false;
  }
}

// The cause of the last nats.c failure on this thread, in words.
std::string Cause(natsStatus s, int jerr) {
  std::string cause;
  if (s == NATS_TIMEOUT) {
    cause = "timeout";
  } else if (s == NATS_NO_RESPONDERS) {
    cause = "no responders (JetStream not ready or stream unavailable)";
  } else {
    const char* last = nats_GetLastError(nullptr);
    cause = (last && *last) ? last : natsStatus_GetText(s);
    // nats.c prefixes "(file.c:123): ": not for users.
    if (cause.size() > 2 && cause[0] == '(') {
      size_t end = cause.find("): ");
      if (end != std::string::npos && cause.find(".c:") < end) cause.erase(0, end + 3);
    }
  }
  if (jerr != 0) cause += " (JetStream error " + std::to_string(jerr) + ")";
  return cause;
}

int64_t MsLeft(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

class NatsLog final : public Log {
 public:
  NatsLog(const Options& o)
      : stream_(o.prefix + "_" + o.name),
        subject_(o.prefix + "." + o.name + ".log"),
        advertise_(o.advertise),
        replicas_(o.stream_replicas < 1 ? 1 : o.stream_replicas),
        events_(std::make_shared<Events>()) {
    for (const auto& u : o.urls) servers_ += (servers_.empty() ? "" : ",") + u;
    closure_ = Registry::Get().Add(events_);
  }

  ~NatsLog() override {
    natsConnection* nc = nullptr;
    {
      std::lock_guard<std::mutex> l(events_->mu);
      events_->abandoned = true;  // a connect still under way cleans up after itself
      events_->interrupted = true;
      nc = nc_.load() ? nc_.load() : events_->nc;
      events_->nc = nullptr;
    }
    Registry::Get().Remove(closure_);
    std::vector<natsSubscription*> subs;
    {
      std::lock_guard<std::mutex> l(read_mu_);
      if (sub_) subs.push_back(sub_);
      for (auto& r : retired_) subs.push_back(r.first);
    }
    // Closing waits on the network (a flush of up to 500 ms, joining a
    // reconnect attempt that may take the connect timeout): not here, where
    // a database is being closed or the process exits. The connection goes
    // first: once its reader thread is joined, no inbound message can touch
    // a subscription we free (see CloseSub()).
    auto close = [events = events_, nc, subs, js = js_.load()] {
      {
        std::unique_lock<std::mutex> l(events->mu);
        events->cv.wait(l, [&] { return !events->close_started || events->close_done; });
      }
      if (nc) natsConnection_Destroy(nc);
      for (natsSubscription* sub : subs) natsSubscription_Destroy(sub);
      if (js) jsCtx_Destroy(js);
      nats_ReleaseThreadMemory();
    };
    try {
      std::thread(close).detach();
    } catch (...) {
      close();  // no thread to be had: close here
    }
  }

  Status Connect(const Options& o);

  Status Ensure(int64_t timeout_ms) override;
  Status Last(int64_t timeout_ms, Message* out, bool* found) override;
  Status Publish(const std::string& data, uint64_t expect_last, const std::string& msg_id, int64_t timeout_ms,
                 uint64_t* seq) override;
  Status Read(uint64_t from, int64_t wait_ms, const std::function<bool(const Message&)>& fn) override;

  bool Connected() const override {
    std::lock_guard<std::mutex> l(events_->mu);
    return ConnectedLocked();
  }
  size_t MaxPayload() const override {
    natsConnection* nc = Conn();
    int64_t server = nc ? natsConnection_GetMaxPayload(nc) : 0;  // 0 until the first connect
    size_t max = server > 0 ? static_cast<size_t>(server) : kDefaultServerMaxPayload;
    return max > kHeaderReserve ? max - kHeaderReserve : 0;
  }
  std::string LastError() const override {
    std::lock_guard<std::mutex> l(events_->mu);
    return events_->last_error;
  }
  void InterruptAtExit() override {
    std::lock_guard<std::mutex> l(events_->mu);
    events_->interrupted = true;
    events_->cv.notify_all();
  }
  void Interrupt() override {
    natsConnection* nc = nullptr;
    {
      std::lock_guard<std::mutex> l(events_->mu);
      events_->interrupted = true;
      events_->cv.notify_all();
      nc = nc_.load();
      if (!nc || events_->close_started) return;
      events_->close_started = true;
    }
    // A request already sent waits for its answer (or its timeout, from a
    // server that does not answer); closing the connection ends it at once.
    // natsConnection_Close may flush and joins nats.c's threads: not here.
    auto close = [events = events_, nc] {
      natsConnection_Close(nc);
      nats_ReleaseThreadMemory();
      std::lock_guard<std::mutex> l(events->mu);
      events->close_done = true;
      events->cv.notify_all();
    };
    try {
      std::thread(close).detach();
    } catch (...) {
      std::lock_guard<std::mutex> l(events_->mu);
      events_->close_done = true;  // no thread: the request ends at its timeout
    }
  }

 private:
  bool Interrupted() const {
    std::lock_guard<std::mutex> l(events_->mu);
    return events_->interrupted;
  }
  // The connection, once the connect thread has made it (null until then).
  natsConnection* Conn() const {
    if (natsConnection* nc = nc_.load()) return nc;
    std::lock_guard<std::mutex> l(events_->mu);
    return AdoptLocked();
  }
  // events_->mu held. Takes over the connect thread's connection and makes
  // the JetStream context for it.
  natsConnection* AdoptLocked() const {
    if (natsConnection* nc = nc_.load()) return nc;
    if (!events_->nc) return nullptr;
    jsOptions jo;  // the default wait of requests nats.c makes by itself (ordered consumer recreation)
    jsOptions_Init(&jo);
    jo.Wait = kConsumerAttemptMs;
    jsCtx* js = nullptr;
    natsStatus s = natsConnection_JetStream(&js, events_->nc, &jo);
    if (s != NATS_OK) {
      events_->last_error = "litejet: nats: JetStream context failed: " + Cause(s, 0);
      return nullptr;  // tried again on the next call
    }
    js_.store(js);
    nc_.store(events_->nc);
    events_->nc = nullptr;
    return nc_.load();
  }
  bool ConnectedLocked() const {
    natsConnection* nc = AdoptLocked();
    return nc && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
  }

  Status Fail(Status s) {
    events_->Note(s.message());
    return s;
  }
  Status Fail(const std::string& what, natsStatus s, int jerr) {
    int code = jerr == JSStreamWrongLastSequenceErr ? kFenced : IsUnavailable(s, jerr) ? kUnavailable : 1;
    return Fail(Status::Error("litejet: nats: " + what + " failed: " + Cause(s, jerr), code));
  }
  Status NotConnected(const std::string& what) {
    // Say why, when nats.c knows (e.g. "Authorization Violation").
    std::string why;
    const char* last = nullptr;
    natsConnection* nc = Conn();
    if (nc && natsConnection_GetLastError(nc, &last) != NATS_OK && last && *last) {
      why = std::string(" (") + last + ")";
    } else if (!nc) {
      std::lock_guard<std::mutex> l(events_->mu);
      if (events_->interrupted) {
        why = " (stopping)";
      } else if (!events_->connect_error.empty()) {
        why = " (" + events_->connect_error + ")";
      }
    }
    return Fail(
        Status::Error("litejet: nats: " + what + " failed: not connected to " + servers_ + why, kUnavailable));
  }
  bool WaitConnected(Clock::time_point deadline) const;
  jsCtx* Js() const { return js_.load(); }
  Status CheckCompatible(const jsStreamInfo* si);
  bool StoredWithId(uint64_t seq, const std::string& msg_id, int64_t timeout_ms);
  Status Subscribe(uint64_t from, int64_t timeout_ms);
  Status Missing(uint64_t want, uint64_t got);
  bool Stalled();
  // nats.c 3.4.1 looks a subscription up for an inbound message and uses it
  // without a reference (fixed upstream in 0a7dd28b): freeing one while its
  // messages arrive is a use-after-free, seen as a hang in Destroy. So a
  // subscription is unsubscribed now (which also deletes its consumer) and
  // freed only seconds later, or after the connection is gone.
  void CloseSub() {
    auto now = Clock::now();
    while (!retired_.empty() && now - retired_.front().second > std::chrono::seconds(5)) {
      natsSubscription_Destroy(retired_.front().first);
      retired_.erase(retired_.begin());
    }
    if (!sub_) return;
    natsSubscription_Unsubscribe(sub_);
    retired_.emplace_back(sub_, now);
    sub_ = nullptr;
  }

  const std::string stream_, subject_;
  const std::string advertise_;
  const int replicas_;
  std::string servers_;
  std::shared_ptr<Events> events_;
  void* closure_ = nullptr;
  // Set once, by the first call that finds the connect thread done (see
  // AdoptLocked()); read without a lock afterwards.
  mutable std::atomic<natsConnection*> nc_{nullptr};
  mutable std::atomic<jsCtx*> js_{nullptr};

  std::mutex read_mu_;               // one Read at a time; guards the fields below
  natsSubscription* sub_ = nullptr;  // ordered consumer of the last Read
  uint64_t next_ = 0;                // seq sub_ delivers next
  uint64_t gap_retried_ = 0;         // next_ for which a gap already recreated sub_
  std::vector<std::pair<natsSubscription*, Clock::time_point>> retired_;  // unsubscribed, freed later
  Clock::time_point sub_heard_;                                           // sub_ created or last delivered a message
  Clock::time_point stall_checked_;                                       // last Stalled() query
};

Status NatsLog::Connect(const Options& o) {
  if (o.urls.empty()) return Status::Error("litejet: nats: no server URL (option nats)");
  if (o.name.empty() || o.prefix.empty()) return Status::Error("litejet: nats: empty name or prefix");
  if (!o.tls_cert.empty() != !o.tls_key.empty()) {
    return Status::Error("litejet: nats options tls_cert and tls_key must be given together");
  }
  // nats.c reads creds only when connecting (and then retries forever): check up front.
  for (auto [option, path] : {std::pair<const char*, const std::string*>{"creds", &o.creds},
                              {"tls_ca", &o.tls_ca},
                              {"tls_cert", &o.tls_cert},
                              {"tls_key", &o.tls_key}}) {
    if (!path->empty() && access(path->c_str(), R_OK) != 0) {
      return Status::Error(std::string("litejet: nats option ") + option + ": cannot read \"" + *path +
                           "\": " + std::strerror(errno));
    }
  }

  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return Status::Error("litejet: nats: cannot create options");
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> owner(opts, natsOptions_Destroy);
  auto bad = [&](const std::string& option, natsStatus s) {
    return Status::Error("litejet: nats option " + option + ": " + Cause(s, 0));
  };
  natsStatus s;

  std::vector<const char*> servers;
  for (const auto& u : o.urls) servers.push_back(u.c_str());
  if ((s = natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()))) != NATS_OK) {
    return bad("nats (server URLs)", s);
  }
  if (!o.client_name.empty() && (s = natsOptions_SetName(opts, o.client_name.c_str())) != NATS_OK) {
    return bad("client name", s);
  }
  if (!o.user.empty() || !o.password.empty()) {
    if ((s = natsOptions_SetUserInfo(opts, o.user.c_str(), o.password.c_str())) != NATS_OK) return bad("user", s);
  }
  if (!o.token.empty() && (s = natsOptions_SetToken(opts, o.token.c_str())) != NATS_OK) return bad("token", s);
  if (!o.creds.empty() && (s = natsOptions_SetUserCredentialsFromFiles(opts, o.creds.c_str(), nullptr)) != NATS_OK) {
    return bad("creds", s);
  }
  if (!o.tls_ca.empty() || !o.tls_cert.empty()) {
    if ((s = natsOptions_SetSecure(opts, true)) != NATS_OK) return bad("tls_ca (TLS support in nats.c)", s);
  }
  if (!o.tls_ca.empty() && (s = natsOptions_LoadCATrustedCertificates(opts, o.tls_ca.c_str())) != NATS_OK) {
    return bad("tls_ca \"" + o.tls_ca + "\"", s);
  }
  if (!o.tls_cert.empty() &&
      (s = natsOptions_LoadCertificatesChain(opts, o.tls_cert.c_str(), o.tls_key.c_str())) != NATS_OK) {
    return bad("tls_cert/tls_key \"" + o.tls_cert + "\", \"" + o.tls_key + "\"", s);
  }

  // Keep connecting forever in the background; pending requests fail at once
  // on a disconnect instead of waiting for their timeout.
  s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, kReconnectWaitMs);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, kConnectTimeoutMs);
  if (s == NATS_OK) s = natsOptions_SetPingInterval(opts, 5000);
  if (s == NATS_OK) s = natsOptions_SetMaxPingsOut(opts, 3);
  if (s == NATS_OK) s = natsOptions_SetFailRequestsOnDisconnect(opts, true);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(opts, true, OnStateChange, closure_);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, OnStateChange, closure_);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts, OnDisconnected, closure_);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, OnClosed, closure_);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, OnAsyncError, closure_);
  if (s != NATS_OK) return Status::Error("litejet: nats: cannot set connection options: " + Cause(s, 0));

  // nats.c makes the first attempt on every server in the calling thread
  // (up to kConnectTimeoutMs each when a server does not answer): a thread of
  // its own does it, so that no caller ever waits on it. Once the NatsLog is
  // gone (abandoned), that thread closes what it made; at process exit it is
  // simply left behind (it touches only nats.c and the shared Events).
  auto connect = [events = events_, opts = owner.release(), servers = servers_] {
    natsConnection* nc = nullptr;
    natsStatus cs = natsConnection_Connect(&nc, opts);
    std::string err;
    if (cs == NATS_NOT_YET_CONNECTED) {
      err = "litejet: nats: not connected to " + servers + " yet, retrying";
    } else if (cs != NATS_OK) {
      err = "litejet: nats: connect to " + servers + " failed: " + Cause(cs, 0);
    }
    natsOptions_Destroy(opts);
    bool orphan = false;
    {
      std::lock_guard<std::mutex> l(events->mu);
      orphan = events->abandoned;
      if (!orphan) events->nc = nc;
      events->connect_done = true;
      if (cs != NATS_OK && cs != NATS_NOT_YET_CONNECTED) events->connect_error = err;
      if (!err.empty()) events->last_error = err;
      events->cv.notify_all();
    }
    if (orphan && nc) natsConnection_Destroy(nc);
    nats_ReleaseThreadMemory();
  };
  try {
    std::thread(connect).detach();
  } catch (...) {
    connect();  // no thread to be had: connect here
  }
  return Status::OK();
}

bool NatsLog::WaitConnected(Clock::time_point deadline) const {
  std::unique_lock<std::mutex> l(events_->mu);
  // Once interrupted, nothing more is sent (the connection may be closing).
  while (events_->interrupted || !ConnectedLocked()) {
    auto now = Clock::now();
    if (now >= deadline || events_->interrupted) return false;
    // The callbacks wake us; the poll bound covers a state change they do not report.
    events_->cv.wait_until(l, std::min(deadline, now + std::chrono::milliseconds(50)));
  }
  return true;
}

Status NatsLog::CheckCompatible(const jsStreamInfo* si) {
  const jsStreamConfig* c = si->Config;
  bool has_subject = false;
  for (int i = 0; c && i < c->SubjectsLen; i++) has_subject |= subject_ == c->Subjects[i];
  if (!c || !has_subject) {
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
  for (;;) {
    if (Interrupted()) return NotConnected("read " + subject_);
    int64_t left = wait_ms - std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - idle_since).count();
    if (left <= 0) {
      // Keep sub_ either way: nats.c resubscribes and recreates the ordered
      // consumer (missed heartbeats) once the server is back.
      if (!Connected()) return NotConnected("read " + subject_);
      return Status::OK();
    }
    if (!sub_) {
      Status st = Subscribe(next_, left);
      if (!st.ok() && st.code() != kUnavailable) return st;
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

}  // namespace litejet::transport
