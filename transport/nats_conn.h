// transport/nats_conn.h: one NATS connection as litejet's transport keeps it
// (internal to transport/): made in the background, waited for with a bound,
// closed in the background. Shared by the JetStream log and the KV leases.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "transport/log.h"

namespace litejet::transport::internal {

using Clock = std::chrono::steady_clock;

// True when a nats.c failure means "no answer" (retry), not "wrong request".
bool IsUnavailable(natsStatus s, int jerr);
// The cause of the last nats.c failure on this thread, in words.
std::string Cause(natsStatus s, int jerr);
int64_t MsLeft(Clock::time_point deadline);
// The public key ("U...", 56 characters) of a NATS user nkey seed ("SU...",
// 58 characters): base32 of a prefix, the ed25519 key and a CRC-16. The error
// never shows the seed.
Status NkeyUserPublicKey(const std::string& seed, std::string* public_key);
// Reads the user seed from a seed file (the first word starting with "SU")
// and derives its public key; errors name the file and the cause.
Status NkeyFromSeedFile(const std::string& path, std::string* public_key);

struct Events;

// The rules (each learned the hard way; see nats_conn.cc): Start() never
// waits on the network (a detached thread connects); every wait is bounded;
// Close() (or the destructor) never waits on the network (the connection is
// destroyed in a thread of its own); nothing at process exit closes a
// connection (InterruptAtExit()).
class NatsConn {
 public:
  // js_wait_ms: the default wait of the JetStream context (requests nats.c
  // makes by itself); calls of the owner pass their own waits.
  NatsConn(const Options& o, int64_t js_wait_ms);
  ~NatsConn();  // Close(nullptr) unless the owner closed already
  NatsConn(const NatsConn&) = delete;
  NatsConn& operator=(const NatsConn&) = delete;

  // Checks the options and starts connecting in the background.
  Status Start(const Options& o);
  // Destroys the connection in the background, then runs after() there (the
  // owner's nats.c objects that must outlive the connection), then the
  // JetStream context. Returns at once.
  void Close(std::function<void()> after);

  // The connection / JetStream context once connected at least once (null until then).
  natsConnection* Conn() const;
  jsCtx* Js() const { return js_.load(); }
  bool Connected() const;
  // Waits (until deadline) for the connection; false if it is not up, or interrupted.
  bool WaitConnected(Clock::time_point deadline) const;
  bool Interrupted() const;
  const std::string& servers() const { return servers_; }  // credentials shown as ***

  // Records s as the last error and returns it.
  Status Fail(Status s);
  // "litejet: nats: <what> failed: <cause>"; code kUnavailable, kFenced (10071) or 1.
  Status Fail(const std::string& what, natsStatus s, int jerr);
  // kUnavailable, saying why when known (auth failure, stopping, ...).
  Status NotConnected(const std::string& what);
  std::string LastError() const;

  void Interrupt();
  void InterruptAtExit();

 private:
  natsConnection* AdoptLocked() const;
  bool ConnectedLocked() const;

  std::string servers_;
  const int64_t js_wait_ms_;
  const std::string js_domain_;
  std::shared_ptr<Events> events_;
  void* closure_ = nullptr;
  bool closed_ = false;
  // Set once, by the first call that finds the connect thread done (see
  // AdoptLocked()); read without a lock afterwards.
  mutable std::atomic<natsConnection*> nc_{nullptr};
  mutable std::atomic<jsCtx*> js_{nullptr};
};

}  // namespace litejet::transport::internal
