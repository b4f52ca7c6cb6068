// transport/nats_conn.cc: the NATS connection of the transport (see
// nats_conn.h): background connect, bounded waits, background close.
#include "transport/nats_conn.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace litejet::transport::internal {

namespace {

constexpr int kReconnectWaitMs = 100;
constexpr int kConnectTimeoutMs = 2000;
constexpr int kStreamOfflineErr = 10118;  // JSStreamOfflineErr, newer than nats.c 3.4's enum

}  // namespace

// Connection events. nats.c may run a callback after natsConnection_Destroy
// returns, so callbacks get an id, not a pointer, and look the live object up.
// Also what the connect thread hands over (see NatsConn::Start).
struct Events {
  std::mutex mu;
  std::condition_variable cv;  // connection state changed, connect thread done, or interrupted
  std::string last_error;
  bool interrupted = false;      // Interrupt(): waits return at once
  bool abandoned = false;        // the NatsConn is gone: the connect thread destroys what it made
  bool connect_done = false;     // the connect thread returned
  natsConnection* nc = nullptr;  // its connection, until the NatsConn adopts it
  std::string connect_error;     // its hard failure (not "not connected yet"), if any
  std::string connect_cause;     // why a single direct attempt after it failed ("" if it did not)
  std::string violation;         // the server's last permissions violation, in its words
  Clock::time_point violation_at;
  bool close_started = false;  // Interrupt() is closing the connection (in a thread of its own)
  bool close_done = false;     // and has closed it: it may be destroyed

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

namespace {

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
void OnStateChange(natsConnection* nc, void* closure) {
  try {
    if (auto e = Registry::Get().Find(closure)) {
      if (nc && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) {
        std::lock_guard<std::mutex> l(e->mu);
        e->connect_cause.clear();  // the direct attempt's failure is history
      }
      e->Wake();
    }
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
void OnAsyncError(natsConnection* nc, natsSubscription*, natsStatus err, void* closure) {
  try {
    if (auto e = Registry::Get().Find(closure)) {
      // The server's words when it sent them (-ERR 'Permissions Violation
      // for Publish to "..."'), not just "Not Permitted".
      const char* text = nullptr;
      std::string why = natsStatus_GetText(err);
      if (nc && natsConnection_GetLastError(nc, &text) != NATS_OK && text && *text) why = text;
      std::lock_guard<std::mutex> l(e->mu);
      e->last_error = "litejet: nats: server error: " + why;
      if (err == NATS_NOT_PERMITTED || why.find("Violation") != std::string::npos) {
        e->violation = why;
        e->violation_at = Clock::now();
      }
      e->cv.notify_all();
    }
  } catch (...) {
  }
}

}  // namespace

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
  // OpenSSL's words ("SSL handshake error: 20:unable to get local issuer
  // certificate") do not say TLS: an operator looks for that word.
  if (cause.rfind("SSL", 0) == 0) cause = "TLS handshake failed: " + cause;
  if (jerr != 0) cause += " (JetStream error " + std::to_string(jerr) + ")";
  return cause;
}

namespace {

// nkeys (github.com/nats-io/nkeys): RFC 4648 base32 without padding, prefix
// bytes, CRC-16/XMODEM little endian at the end.
constexpr uint8_t kPrefixSeed = 18 << 3, kPrefixUser = 20 << 3;
constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

uint16_t Crc16(const uint8_t* p, size_t n) {
  uint16_t crc = 0;
  for (size_t i = 0; i < n; i++) {
    crc ^= static_cast<uint16_t>(p[i]) << 8;
    for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : crc << 1;
  }
  return crc;
}

bool Base32Decode(const std::string& in, std::vector<uint8_t>* out) {
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    const char* at = std::strchr(kBase32, ch);
    if (ch == '\0' || !at) return false;
    acc = (acc << 5) | static_cast<uint32_t>(at - kBase32);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<uint8_t>(acc >> bits));
    }
  }
  return true;
}

std::string Base32Encode(const std::vector<uint8_t>& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t byte : in) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += kBase32[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += kBase32[(acc << (5 - bits)) & 31];
  return out;
}

}  // namespace

Status NkeyUserPublicKey(const std::string& seed, std::string* public_key) {
  std::vector<uint8_t> raw;
  struct Wipe {
    std::vector<uint8_t>& v;
    ~Wipe() { OPENSSL_cleanse(v.data(), v.size()); }
  } wipe{raw};
  if (!Base32Decode(seed, &raw) || raw.size() != 36) {
    return Status::Error("litejet: nkey seed is malformed: not 58 base32 characters");
  }
  if (Crc16(raw.data(), 34) != (raw[34] | raw[35] << 8)) {
    return Status::Error("litejet: nkey seed is malformed: its checksum does not match");
  }
  const int kind = ((raw[0] & 7) << 5) | ((raw[1] & 0xf8) >> 3);
  if ((raw[0] & 0xf8) != kPrefixSeed || kind != kPrefixUser) {
    return Status::Error("litejet: nkey seed is not a user seed (it must start with \"SU\")");
  }
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw.data() + 2, 32);
  std::vector<uint8_t> pub(1 + 32 + 2, 0);
  size_t len = 32;
  bool ok = key && EVP_PKEY_get_raw_public_key(key, pub.data() + 1, &len) == 1 && len == 32;
  EVP_PKEY_free(key);
  if (!ok) return Status::Error("litejet: nkey seed: OpenSSL cannot make an ed25519 key of it");
  pub[0] = kPrefixUser;
  const uint16_t crc = Crc16(pub.data(), 33);
  pub[33] = static_cast<uint8_t>(crc & 0xff);
  pub[34] = static_cast<uint8_t>(crc >> 8);
  *public_key = Base32Encode(pub);
  return Status::OK();
}

Status NkeyFromSeedFile(const std::string& path, std::string* public_key) {
  std::ifstream f(path);
  if (!f) {
    return Status::Error("litejet: nats option nkey_seed: cannot read \"" + path + "\": " + std::strerror(errno));
  }
  std::string word, seed;
  while (seed.empty() && f >> word) {
    if (word.rfind("SU", 0) == 0) seed = word;
    OPENSSL_cleanse(word.data(), word.size());
  }
  if (seed.empty()) {
    return Status::Error("litejet: nats option nkey_seed: \"" + path +
                         "\" holds no user nkey seed (a word starting "
                         "with \"SU\")");
  }
  Status st = NkeyUserPublicKey(seed, public_key);
  OPENSSL_cleanse(seed.data(), seed.size());
  if (!st.ok()) return Status::Error("litejet: nats option nkey_seed \"" + path + "\": " + st.message().substr(9));
  return st;
}

int64_t MsLeft(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

NatsConn::NatsConn(const Options& o, int64_t js_wait_ms)
    : js_wait_ms_(js_wait_ms), js_domain_(o.js_domain), events_(std::make_shared<Events>()) {
  // For messages only: credentials in a URL (nats://user:password@host)
  // never reach an error message, the log or repl_status().
  for (const auto& u : o.urls) {
    std::string shown = u;
    size_t at = u.rfind('@');
    if (at != std::string::npos) {
      size_t sep = u.find("://");
      size_t start = (sep != std::string::npos && sep < at) ? sep + 3 : 0;
      shown = u.substr(0, start) + "***" + u.substr(at);
    }
    servers_ += (servers_.empty() ? "" : ",") + shown;
  }
  closure_ = Registry::Get().Add(events_);
}

NatsConn::~NatsConn() {
  if (!closed_) Close(nullptr);
}

void NatsConn::Close(std::function<void()> after) {
  if (closed_) return;
  closed_ = true;
  natsConnection* nc = nullptr;
  {
    std::lock_guard<std::mutex> l(events_->mu);
    events_->abandoned = true;  // a connect still under way cleans up after itself
    events_->interrupted = true;
    nc = nc_.load() ? nc_.load() : events_->nc;
    events_->nc = nullptr;
  }
  Registry::Get().Remove(closure_);
  // Closing waits on the network (a flush of up to 500 ms, joining a
  // reconnect attempt that may take the connect timeout): not here, where
  // a database is being closed or the process exits. The connection goes
  // first: once its reader thread is joined, no inbound message can touch
  // what after() frees (see NatsLog::CloseSub()).
  auto close = [events = events_, nc, after = std::move(after), js = js_.load()] {
    {
      std::unique_lock<std::mutex> l(events->mu);
      events->cv.wait(l, [&] { return !events->close_started || events->close_done; });
    }
    if (nc) natsConnection_Destroy(nc);
    if (after) after();
    if (js) jsCtx_Destroy(js);
    nats_ReleaseThreadMemory();
  };
  try {
    std::thread(close).detach();
  } catch (...) {
    close();  // no thread to be had: close here
  }
}

namespace {

// Servers, name, credentials and TLS: what every connection of o needs.
Status SetServerOptions(const Options& o, natsOptions* opts) {
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
  if (!o.nkey_seed.empty()) {
    if (!o.creds.empty()) return Status::Error("litejet: nats options creds and nkey_seed exclude each other: set one");
    std::string pub;
    Status st = NkeyFromSeedFile(o.nkey_seed, &pub);
    if (!st.ok()) return st;
    // nats.c signs the server's nonce with the seed, read from the file at each connect.
    if ((s = natsOptions_SetNKeyFromSeed(opts, pub.c_str(), o.nkey_seed.c_str())) != NATS_OK) {
      return bad("nkey_seed", s);
    }
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

  return Status::OK();
}

}  // namespace

Status NatsConn::Start(const Options& o) {
  if (o.urls.empty()) return Status::Error("litejet: nats: no server URL (option nats)");
  if (o.name.empty() || o.prefix.empty()) return Status::Error("litejet: nats: empty name or prefix");
  if (!o.tls_cert.empty() != !o.tls_key.empty()) {
    return Status::Error("litejet: nats options tls_cert and tls_key must be given together");
  }
  // nats.c reads creds only when connecting (and then retries forever): check up front.
  for (auto [option, path] : {std::pair<const char*, const std::string*>{"creds", &o.creds},
                              {"tls_ca", &o.tls_ca},
                              {"tls_cert", &o.tls_cert},
                              {"tls_key", &o.tls_key},
                              {"nkey_seed", &o.nkey_seed}}) {
    if (!path->empty() && access(path->c_str(), R_OK) != 0) {
      return Status::Error(std::string("litejet: nats option ") + option + ": cannot read \"" + *path +
                           "\": " + std::strerror(errno));
    }
  }

  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) return Status::Error("litejet: nats: cannot create options");
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> owner(opts, natsOptions_Destroy);
  Status st = SetServerOptions(o, opts);
  if (!st.ok()) return st;
  natsStatus s;
  // The same servers and credentials, one attempt, no retry: the retrying
  // connection reports only "No server available for connection"; this one
  // says why (an untrusted certificate, "Authorization Violation", ...).
  natsOptions* probe = nullptr;
  if (natsOptions_Create(&probe) != NATS_OK) return Status::Error("litejet: nats: cannot create options");
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> probe_owner(probe, natsOptions_Destroy);
  st = SetServerOptions(o, probe);
  if (!st.ok()) return st;
  s = natsOptions_SetAllowReconnect(probe, false);
  if (s == NATS_OK) s = natsOptions_SetTimeout(probe, kConnectTimeoutMs);
  if (s != NATS_OK) return Status::Error("litejet: nats: cannot set connection options: " + Cause(s, 0));

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
  // its own does it, so that no caller ever waits on it. Once the NatsConn is
  // gone (abandoned), that thread closes what it made; at process exit it is
  // simply left behind (it touches only nats.c and the shared Events).
  auto connect = [events = events_, opts = owner.release(), probe = probe_owner.release(), servers = servers_] {
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
    if (cs == NATS_NOT_YET_CONNECTED && !orphan) {
      natsConnection* pc = nullptr;
      natsStatus ps = natsConnection_Connect(&pc, probe);
      const std::string cause = ps == NATS_OK ? "" : Cause(ps, 0);
      if (pc) natsConnection_Destroy(pc);
      std::lock_guard<std::mutex> l(events->mu);
      events->connect_cause = cause;
      if (!cause.empty() && events->last_error == err) events->last_error = err + " (" + cause + ")";
    }
    natsOptions_Destroy(probe);
    nats_ReleaseThreadMemory();
  };
  try {
    std::thread(connect).detach();
  } catch (...) {
    connect();  // no thread to be had: connect here
  }
  return Status::OK();
}

bool NatsConn::WaitConnected(Clock::time_point deadline) const {
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

bool NatsConn::Interrupted() const {
  std::lock_guard<std::mutex> l(events_->mu);
  return events_->interrupted;
}

natsConnection* NatsConn::Conn() const {
  if (natsConnection* nc = nc_.load()) return nc;
  std::lock_guard<std::mutex> l(events_->mu);
  return AdoptLocked();
}

// events_->mu held. Takes over the connect thread's connection and makes
// the JetStream context for it.
natsConnection* NatsConn::AdoptLocked() const {
  if (natsConnection* nc = nc_.load()) return nc;
  if (!events_->nc) return nullptr;
  jsOptions jo;  // the default wait of requests nats.c makes by itself (ordered consumer recreation)
  jsOptions_Init(&jo);
  jo.Wait = js_wait_ms_;
  // Every JetStream request of this connection (log and buckets) goes to
  // $JS.<domain>.API: from a leaf node, the hub's JetStream.
  if (!js_domain_.empty()) jo.Domain = js_domain_.c_str();
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

bool NatsConn::ConnectedLocked() const {
  natsConnection* nc = AdoptLocked();
  return nc && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
}

bool NatsConn::Connected() const {
  std::lock_guard<std::mutex> l(events_->mu);
  return ConnectedLocked();
}

Status NatsConn::Fail(Status s) {
  events_->Note(s.message());
  return s;
}

Status NatsConn::Fail(const std::string& what, natsStatus s, int jerr) {
  int code = jerr == JSStreamWrongLastSequenceErr ? kFenced : IsUnavailable(s, jerr) ? kUnavailable : 1;
  std::string cause = Cause(s, jerr);
  // A request the server refused to route gets no answer: its timeout is
  // the permissions violation the server reported meanwhile.
  if (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS) {
    std::lock_guard<std::mutex> l(events_->mu);
    if (!events_->violation.empty() && Clock::now() - events_->violation_at < std::chrono::seconds(10)) {
      cause += " (the server reported: " + events_->violation + ")";
    }
  }
  return Fail(Status::Error("litejet: nats: " + what + " failed: " + cause, code));
}

Status NatsConn::NotConnected(const std::string& what) {
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
  std::string cause;
  {
    std::lock_guard<std::mutex> l(events_->mu);
    cause = events_->connect_cause;
  }
  if (!cause.empty() && why.find(cause) == std::string::npos) {
    why = why.empty() ? " (" + cause + ")" : why.substr(0, why.size() - 1) + "; " + cause + ")";
  }
  return Fail(Status::Error("litejet: nats: " + what + " failed: not connected to " + servers_ + why, kUnavailable));
}

std::string NatsConn::LastError() const {
  std::lock_guard<std::mutex> l(events_->mu);
  return events_->last_error;
}

void NatsConn::InterruptAtExit() {
  std::lock_guard<std::mutex> l(events_->mu);
  events_->interrupted = true;
  events_->cv.notify_all();
}

void NatsConn::Interrupt() {
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

}  // namespace litejet::transport::internal
