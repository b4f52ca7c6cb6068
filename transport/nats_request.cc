// Requests over NATS core: a plain request (nats.c's own reply inbox) and a
// synchronous queue subscription read by one serving thread, so that its
// lifetime is the caller's: nothing runs on nats.c's threads.
#include <nats/nats.h>

#include <chrono>
#include <mutex>
#include <string>

#include "transport/nats_conn.h"
#include "transport/request.h"

namespace litejet::transport {

namespace {

using internal::Clock;
using internal::NatsConn;

class NatsRequests final : public Requests {
 public:
  explicit NatsRequests(const Options& o) : conn_(o, 2000), subject_(o.prefix + "." + o.name + ".forward") {}
  ~NatsRequests() override {
    // The subscription goes with the connection, in the background.
    natsSubscription* sub = nullptr;
    {
      std::lock_guard<std::mutex> g(mu_);
      sub = sub_;
      sub_ = nullptr;
    }
    conn_.Close([sub] {
      if (sub) natsSubscription_Destroy(sub);
    });
  }

  Status Start(const Options& o) { return conn_.Start(o); }

  Status Request(const std::string& data, int64_t timeout_ms, std::string* reply) override {
    const std::string what = "request on " + subject_;
    if (!conn_.WaitConnected(Clock::now() + std::chrono::milliseconds(timeout_ms))) return conn_.NotConnected(what);
    natsMsg* msg = nullptr;
    natsStatus s = natsConnection_Request(&msg, conn_.Conn(), subject_.c_str(), data.data(), int(data.size()),
                                          timeout_ms < 1 ? 1 : timeout_ms);
    if (s == NATS_NO_RESPONDERS) {
      nats_GetLastError(nullptr);
      return Status::Error("litejet: nats: " + what + " failed: no node listens on it", kNoResponders);
    }
    if (s != NATS_OK) return conn_.Fail(what, s, 0);
    reply->assign(natsMsg_GetData(msg), size_t(natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
    return Status::OK();
  }

  Status Listen() override {
    std::lock_guard<std::mutex> g(mu_);
    if (sub_) return Status::OK();
    if (interrupted_) return Status::Error("litejet: nats: stopped serving " + subject_);
    const std::string what = "subscribe to " + subject_;
    if (!conn_.Connected()) return conn_.NotConnected(what);
    natsStatus s = natsConnection_QueueSubscribeSync(&sub_, conn_.Conn(), subject_.c_str(), "litejet-forward");
    if (s != NATS_OK) {
      sub_ = nullptr;
      return conn_.Fail(what, s, 0);
    }
    return Status::OK();
  }

  void Unlisten() override {
    std::lock_guard<std::mutex> g(mu_);
    if (!sub_) return;
    natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
    sub_ = nullptr;
  }

  bool Listening() const override {
    std::lock_guard<std::mutex> g(mu_);
    return sub_ != nullptr;
  }

  Status Next(int64_t wait_ms, std::string* data, std::string* reply_to, bool* got) override {
    *got = false;
    natsSubscription* sub = nullptr;
    {
      std::lock_guard<std::mutex> g(mu_);
      sub = sub_;
    }
    if (!sub) return Status::Error("litejet: nats: not listening on " + subject_);
    // Only the serving thread calls Next and Unlisten: sub stays valid here.
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub, wait_ms < 1 ? 1 : wait_ms);
    if (s == NATS_TIMEOUT) {
      nats_GetLastError(nullptr);
      return Status::OK();
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      if (interrupted_) {
        if (msg) natsMsg_Destroy(msg);
        nats_GetLastError(nullptr);
        return Status::Error("litejet: nats: stopped serving " + subject_);
      }
    }
    if (s != NATS_OK) return conn_.Fail("read from " + subject_, s, 0);
    data->assign(natsMsg_GetData(msg), size_t(natsMsg_GetDataLength(msg)));
    const char* r = natsMsg_GetReply(msg);
    reply_to->assign(r ? r : "");
    natsMsg_Destroy(msg);
    *got = true;
    return Status::OK();
  }

  Status Respond(const std::string& reply_to, const std::string& data) override {
    if (reply_to.empty()) return Status::OK();  // a request nobody waits for
    natsStatus s = natsConnection_Publish(conn_.Conn(), reply_to.c_str(), data.data(), int(data.size()));
    if (s != NATS_OK) return conn_.Fail("reply on " + subject_, s, 0);
    return Status::OK();
  }

  bool Connected() const override { return conn_.Connected(); }

  // Unsubscribing (not destroying: the serving thread may be inside
  // NextMsg on it) ends its wait at once.
  void Interrupt() override {
    std::lock_guard<std::mutex> g(mu_);
    interrupted_ = true;
    if (sub_) natsSubscription_Unsubscribe(sub_);
  }

 private:
  NatsConn conn_;
  const std::string subject_;
  mutable std::mutex mu_;
  natsSubscription* sub_ = nullptr;
  bool interrupted_ = false;
};

}  // namespace

Status OpenNatsRequests(const Options& o, std::unique_ptr<Requests>* out) {
  auto r = std::make_unique<NatsRequests>(o);
  Status s = r->Start(o);
  if (!s.ok()) return s;
  *out = std::move(r);
  return Status::OK();
}

}  // namespace litejet::transport
