// transport/request.h: request/reply over NATS core (not JetStream) on one
// subject per database, "<prefix>.<name>.forward": a replica's forwarded
// write goes to whichever node listens (the primary), which answers it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "transport/log.h"

namespace litejet::transport {

constexpr int kNoResponders = 1006;  // Request: nobody listens on the subject now

class Requests {
 public:
  virtual ~Requests() = default;

  // Sends data and waits up to timeout_ms for the answer. kNoResponders:
  // nobody listens (nothing was handled); kUnavailable: not connected, or no
  // answer in time (the request may have been handled: retry the same one).
  virtual Status Request(const std::string& data, int64_t timeout_ms, std::string* reply) = 0;

  // The serving side: Listen() subscribes (in a queue group: one listener
  // gets each request), Unlisten() stops. Next() waits up to wait_ms for a
  // request (*got false: none); Respond() answers it. One thread serves.
  virtual Status Listen() = 0;
  virtual void Unlisten() = 0;
  virtual bool Listening() const = 0;
  virtual Status Next(int64_t wait_ms, std::string* data, std::string* reply_to, bool* got) = 0;
  virtual Status Respond(const std::string& reply_to, const std::string& data) = 0;
  // Any thread: a Next() under way (or the next one) returns at once; the
  // serving side is over (Listen() fails from here on).
  virtual void Interrupt() = 0;
  virtual bool Connected() const = 0;
};

// The subject is "<prefix>.<name>.forward". Never waits on the network.
Status OpenNatsRequests(const Options& o, std::unique_ptr<Requests>* out);

}  // namespace litejet::transport
