// transport/log.h: the door of the transport layer. A Log is the ordered,
// fenced, deduplicated record log of one database: JetStream or an in-memory fake.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace litejet::transport {

// Status codes (Status::code()) beyond SQLite's, so callers can branch on them.
constexpr int kFenced = 1001;       // ExpectLastSubjectSeq failed: someone else appended; stop writing
constexpr int kUnavailable = 1002;  // not connected / timeout / no responders: retry (same msg_id)
constexpr int kTruncated = 1003;    // Read: a message at or after `from` is no longer in the log
constexpr int kTooLarge = 1004;     // Publish: data larger than MaxPayload()
constexpr int kNoStream = 1005;     // Range: the log's stream does not exist (nobody replicated the database)

struct Options {
  std::vector<std::string> urls;  // already validated
  std::string user, password, token, creds, tls_ca, tls_cert, tls_key;
  std::string nkey_seed;  // path of a user nkey seed file ("SU..."): nkey authentication
  std::string js_domain;  // JetStream domain of the log and buckets (a leaf node's hub), "" = the server's own
  std::string prefix = "litejet", name;  // stream "<prefix>_<name>", subject "<prefix>.<name>.log"
  int stream_replicas = 1;
  std::string client_name;  // connection name in server monitoring, e.g. "litejet:<node>:<name>"
  std::string advertise;    // sent as header Litejet-Advertise on every publish (empty: none)
};

constexpr const char* kAdvertiseHeader = "Litejet-Advertise";

struct Message {
  uint64_t seq = 0;
  std::string data;
  std::string advertise;  // the publisher's Litejet-Advertise header, if any
};

// The JetStream log of one database. Thread-safe; Read calls are serialized.
class Log {
 public:
  virtual ~Log() = default;

  // Creates the stream if missing (file storage, stream_replicas, the subject).
  // OK if a compatible stream exists; idempotent and safe to race between nodes.
  virtual Status Ensure(int64_t timeout_ms) = 0;

  // The last message on the subject; *found = false when the log is empty.
  virtual Status Last(int64_t timeout_ms, Message* out, bool* found) = 0;

  // Appends one message if the log's last seq is still expect_last (0 = empty).
  // On NATS the check is the stream's last sequence (the stream holds only the
  // log subject): nats-server 2.9 does not enforce the per-subject one against
  // racing writers on a cluster.
  // msg_id (<= 256 bytes, may be empty) deduplicates a retry within the stream's
  // duplicate window (2 min): a retry of a stored msg_id returns its original seq.
  // kFenced: someone else appended. kUnavailable: the message may or may not be
  // stored; retry with the same msg_id and expect_last. kTooLarge: data > MaxPayload().
  virtual Status Publish(const std::string& data, uint64_t expect_last, const std::string& msg_id, int64_t timeout_ms,
                         uint64_t* seq) = 0;

  // Delivers messages with seq >= from (0 counts as 1) to fn strictly in order,
  // without gaps or duplicates, until fn returns false or no message arrived for
  // wait_ms. Returns OK then, or kUnavailable if the log was unreachable the whole
  // wait, or kTruncated if the next message is gone (retention, deletion). A call
  // whose `from` continues where the previous one stopped reuses its consumer.
  virtual Status Read(uint64_t from, int64_t wait_ms, const std::function<bool(const Message&)>& fn) = 0;

  // The sequences of the first and last messages the log holds now; *first >
  // *last when it holds none. Creates nothing: kNoStream when the log's
  // stream does not exist.
  virtual Status Range(int64_t timeout_ms, uint64_t* first, uint64_t* last) = 0;

  // Retention: removes every message with seq < below (a message at or
  // after it stays). A below at or under the first message is a no-op.
  // Reads from a removed seq fail with kTruncated; Range's first moves up.
  virtual Status PurgeBelow(uint64_t below, int64_t timeout_ms) = 0;

  virtual bool Connected() const = 0;
  // Largest `data` Publish accepts: the server's max payload minus room for the
  // headers litejet adds (kHeaderReserve), so records can be chunked to it.
  virtual size_t MaxPayload() const = 0;
  // The most recent error (failed call or connection event), "" if none.
  virtual std::string LastError() const = 0;
  // The caller is stopping: every wait of this log (for a connection, for
  // messages) returns within a few milliseconds, now and later, with
  // kUnavailable. Callable from any thread while another uses the log.
  virtual void Interrupt() {}
  // The process is exiting: like Interrupt() for every wait that starts from
  // now on, but what is under way (a request waiting for its answer, the
  // connection) is left alone: closing a connection while the process
  // exits races its own teardown with the exit's.
  virtual void InterruptAtExit() { Interrupt(); }
};

// Bytes of a server's max payload kept free for the Nats-Msg-Id and
// Nats-Expected-Last-Subject-Sequence headers.
constexpr size_t kHeaderReserve = 512;

// Opens the JetStream log. Never waits on the network: the connection is made
// by a background thread and calls fail with kUnavailable until it is up
// (then it keeps reconnecting forever). A malformed option (unreadable
// tls_ca/creds file, ...) fails with a Status naming it. Destroying the log
// does not wait on the network either: the connection is closed in the
// background.
Status OpenNats(const Options& o, std::unique_ptr<Log>* out);

// The names of the databases with a log on the servers of o under o.prefix
// (o.name is not used): every stream "<prefix>_<name>" that holds subject
// "<prefix>.<name>.log", name a valid replication name; sorted. Only reads;
// kUnavailable when the servers cannot be reached within timeout_ms.
Status ListNatsDatabases(const Options& o, int64_t timeout_ms, std::vector<std::string>* names);

// Initialises nats.c, and OpenSSL under it, on the calling thread, with
// OpenSSL's own exit-time cleanup turned off (when litejet is the first to
// initialise it): nats.c threads may still be inside OpenSSL while the process
// exits. Call before registering an atexit handler that stops threads using
// the transport, so that handler runs before nats.c's (atexit is LIFO).
Status InitLibrary();

// In-memory fake with the same semantics (fencing, dedupe, ordered reads) for
// engine tests. Logs opened on the same store share one log, like two nodes.
struct MemoryStore;
std::shared_ptr<MemoryStore> NewMemoryStore(size_t max_payload = 1 << 20);  // max_payload = MaxPayload()
std::unique_ptr<Log> NewMemoryLog(std::shared_ptr<MemoryStore> store);
void SetMemoryAvailable(MemoryStore& store, bool up);  // false: calls fail with kUnavailable

}  // namespace litejet::transport
