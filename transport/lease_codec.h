// transport/lease_codec.h (internal to transport/): the text values of the
// lease key and the heartbeat keys on NATS KV (docs/design.md, "Leases and heartbeats on NATS KV").
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "transport/lease.h"

namespace litejet::transport::internal {

// Longest value read or written: a larger one is rejected unread.
constexpr size_t kMaxLeaseValue = 4096;

// "litejet-lease v1\n" then "field=value\n" lines. Values are percent-escaped
// (every byte outside 0x21..0x7e, and '%', '='), so a line is always one field.
// epoch=0 on the write that created the key: its own revision is the epoch.
std::string EncodeLease(const Lease& l);
// Fills node, advertise, epoch (0: not stored, the caller uses the revision),
// renewed_unix_ms and ttl_ms. Bounded and strict: any malformed byte is an error naming the field.
Status DecodeLease(const std::string& value, Lease* out);

// "litejet-node v1\n" then the NodeState fields, the same way.
std::string EncodeNodeState(const NodeState& s);
Status DecodeNodeState(const std::string& value, NodeState* out);

// A KV key for a node id: "n" then the id's bytes in lowercase hex (KV keys
// allow only [A-Za-z0-9_=/.-] and node ids are free text).
std::string NodeKey(const std::string& node);

}  // namespace litejet::transport::internal
