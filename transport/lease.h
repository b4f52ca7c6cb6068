// transport/lease.h: the door to leases and heartbeats. A LeaseStore is the
// one key that says which node is primary for a database, with an epoch that
// grows with every new holder; a NodeBoard is where each node says how it is
// doing. On NATS both are JetStream KV buckets; an in-memory fake with the
// same semantics drives elections in unit tests without a server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "transport/log.h"

namespace litejet::transport {

// Status codes beyond log.h's.
constexpr int kLeaseHeld = 1101;  // Acquire: another node holds the lease (out = its lease, if readable)
constexpr int kLeaseLost = 1102;  // Renew/Release: the key is not at our revision any more (expired, taken, deleted)

struct Lease {
  std::string node;             // the holder's node id
  std::string advertise;        // what repl_primary() returns while it holds the lease
  uint64_t epoch = 0;           // the key's revision when the holder created it; never reused
  uint64_t revision = 0;        // the key's current revision: the compare-and-set token of Renew/Release
  int64_t renewed_unix_ms = 0;  // the holder's wall clock at its last write (informational only)
  int64_t ttl_ms = 0;           // the TTL the store was opened with
};

// One database's lease. Expiry is the store's: a key not renewed for ttl_ms
// disappears (NATS: the bucket's max age, which nats-server 2.9 enforces), so
// another node's Acquire then succeeds. A holder must stop writing before
// its own deadline: the start of its last successful Renew (or Acquire) plus
// ttl_ms minus a safety margin, measured on its monotonic clock; that instant
// is always before the store's expiry (which counts from when the write was
// stored, later than the request's start).
// Thread-safe. Calls never wait longer than their timeout.
class LeaseStore {
 public:
  virtual ~LeaseStore() = default;

  // Creates the lease key if it is absent (never written, expired, deleted).
  // OK: *out is the new lease, epoch == revision. kLeaseHeld: someone holds
  // it; *out is their lease when it could be read. kUnavailable: no answer.
  virtual Status Acquire(const std::string& node, const std::string& advertise, int64_t timeout_ms, Lease* out) = 0;

  // Rewrites the key if it is still at lease->revision (compare-and-set);
  // on OK lease->revision and renewed_unix_ms are updated. kLeaseLost: it is
  // not (the lease expired, or another node holds it now). kUnavailable: no
  // answer (the caller's deadline still runs from its last success; the write
  // may have landed anyway, and then the next Renew is kLeaseLost: step down).
  virtual Status Renew(Lease* lease, int64_t timeout_ms) = 0;

  // Deletes the key if it is still at lease.revision, so another node can
  // acquire at once. kLeaseLost if it was not (nothing deleted).
  virtual Status Release(const Lease& lease, int64_t timeout_ms) = 0;

  // The current holder; *found = false when nobody holds the lease.
  virtual Status Current(int64_t timeout_ms, Lease* out, bool* found) = 0;
};

// What a node reports about itself (its heartbeat), one key per node.
struct NodeState {
  std::string node;
  std::string role;  // "primary", "replica", "candidate"
  std::string advertise;
  uint64_t txid = 0;       // its position
  uint64_t epoch = 0;      // the newest epoch it has seen
  int64_t unix_ms = 0;     // its wall clock when it wrote this
  std::string last_error;  // "" if none
};

class NodeBoard {
 public:
  virtual ~NodeBoard() = default;
  virtual Status Put(const NodeState& s, int64_t timeout_ms) = 0;
  // Every node's last heartbeat (a node that stopped writing for long enough
  // disappears: the bucket's max age).
  virtual Status List(int64_t timeout_ms, std::vector<NodeState>* out) = 0;
};

// NATS: bucket "<prefix>_<name>_lease" (history 1, max age ttl_ms, file
// storage, stream_replicas) with one key "primary"; bucket
// "<prefix>_<name>_nodes" (history 1, max age max(60 s, 10 x ttl)) with one
// key per node. Created when missing. The value encodings are in
// docs/design.md. Uses its own connection to the servers in o; never waits
// on the network when opened (calls fail with kUnavailable until connected).
Status OpenNatsLeases(const Options& o, int64_t ttl_ms, std::unique_ptr<LeaseStore>* lease,
                      std::unique_ptr<NodeBoard>* board);

// For readers such as `litejet status`: Current and List never create or
// check a bucket, and a missing one reads as no lease / no heartbeats;
// Acquire, Renew, Release and Put fail.
Status OpenNatsLeasesReadOnly(const Options& o, std::unique_ptr<LeaseStore>* lease, std::unique_ptr<NodeBoard>* board);

// In-memory fake: stores opened on the same MemoryLeases share one key and
// one board, like nodes sharing a server. Expiry runs on the fake's clock,
// which tests move by hand.
struct MemoryLeases;
std::shared_ptr<MemoryLeases> NewMemoryLeases();
std::unique_ptr<LeaseStore> NewMemoryLeaseStore(std::shared_ptr<MemoryLeases> m, int64_t ttl_ms);
std::unique_ptr<NodeBoard> NewMemoryNodeBoard(std::shared_ptr<MemoryLeases> m);
void AdvanceMemoryLeaseClock(MemoryLeases& m, int64_t ms);  // expiry happens on this clock
void SetMemoryLeasesAvailable(MemoryLeases& m, bool up);    // false: calls fail with kUnavailable

}  // namespace litejet::transport
