// Config: the replication settings of one database, read from its URI parameters with the
// LITEJET_* environment as fallback, and validated so a bad value fails the open by name.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "transport/log.h"

namespace litejet {

enum class Role { kAuto, kPrimary, kReplica };
enum class Durability { kAsync, kSync };

// Fields derived from defaults (name from the file name, node from the host name) are only
// guaranteed valid when replicated(); a pass-through database never fails on them.
struct Config {
  std::string nats;                    // comma-separated URLs as given (validated); empty = not replicated
  std::vector<std::string> nats_urls;  // nats split at commas, each trimmed
  std::string name, node, prefix = "litejet", advertise;
  Role role = Role::kAuto;
  Durability durability = Durability::kAsync;
  int64_t max_lag_ms = 10000, lease_ttl_ms = 5000;
  // Write forwarding (repl_exec): the primary serves replicas' writes only
  // when forward is on; a replica's repl_exec waits forward_timeout_ms.
  bool forward = false;
  int64_t forward_timeout_ms = 10000;
  int stream_replicas = 1;
  // Automatic snapshots by the primary's agent: after this many TXIDs since
  // the last snapshot, and/or this long since it (with new TXIDs); 0 = off.
  int64_t snapshot_every_txns = 100000, snapshot_every_ms = 0;
  // Retention after each automatic snapshot: keep the newest
  // retain_snapshots, and every one within retain_txns TXIDs of the newest
  // or taken within retain_ms; the log keeps what the oldest kept needs.
  int64_t retain_snapshots = 2, retain_txns = 0, retain_ms = 0;
  std::string creds, token, user, password, tls_ca, tls_cert, tls_key, nkey_seed;
  std::string js_domain;  // JetStream domain to reach (edge replicas on a leaf node: the hub's); "" = local
  bool replicated() const { return !nats.empty(); }
};

// Returns the value of `key`, or nullptr when absent. An empty std::function means "nothing set".
using Lookup = std::function<const char*(const char* key)>;

// uri(key) looks up URI parameter `key` ("role"); env(name) looks up an environment variable
// ("LITEJET_ROLE"; "LITEJET_NATS_URL" for nats). The URI wins. db_path is the database file
// path, for the default name. On error *out is left untouched and the message starts with
// "litejet: " and names the parameter; the code is SQLITE_ERROR.
Status ParseConfig(const Lookup& uri, const Lookup& env, const std::string& db_path, Config* out);

// What the transport needs of a configuration: servers, credentials, TLS,
// prefix, name and stream replicas (the caller names the connection and
// sets advertise).
transport::Options TransportOptions(const Config& c);

const char* RoleName(Role role);
const char* DurabilityName(Durability durability);

// getenv, as a Lookup.
Lookup ProcessEnv();

}  // namespace litejet
