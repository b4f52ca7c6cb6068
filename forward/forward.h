// forward/forward.h: the door of the write-forwarding layer. A replica's
// repl_exec() becomes a Request (an id, one SQL statement, its parameters);
// the primary runs it with Execute() in one write transaction that also
// records the id in _litejet_forward (so the record replicates with the
// write and a retry, on this primary or the next, never runs it twice), and
// answers with a Reply. The codec is binary and exact (64-bit integers,
// doubles bit for bit, blobs). No NATS here: transport/request.h carries it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "common/status.h"

namespace litejet::forward {

// The table a primary keeps forwarded request ids in (replicated).
constexpr const char* kTable = "_litejet_forward";
// Ids older than this are forgotten (a retry later than that may run again).
constexpr int64_t kDedupeWindowMs = 24LL * 3600 * 1000;

struct Value {
  int type = SQLITE_NULL;  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL
  int64_t i = 0;
  double r = 0;
  std::string s;  // TEXT (UTF-8) or BLOB bytes
};

struct Request {
  std::string id;  // unique per request; a retry reuses it
  std::string sql;
  std::vector<Value> params;
};

struct Reply {
  int code = SQLITE_OK;      // the primary's (extended) result code
  std::string message;       // the primary's error message when code != SQLITE_OK
  bool not_primary = false;  // the node that answered does not take writes now: ask again
  bool duplicate = false;    // the id had run already: its recorded outcome
  uint64_t txid = 0;
  int64_t changes = 0;
  int64_t last_rowid = 0;
  std::string node;  // who ran it
};

std::string Encode(const Request& r);
Status Decode(const std::string& data, Request* out);
std::string Encode(const Reply& r);
Status Decode(const std::string& data, Reply* out);

// A fresh request id: 128 random bits in hex.
std::string NewId();

// Reads a statement's parameters from SQL function arguments (the values as
// the host bound them).
Value FromSql(sqlite3_value* v);

// Runs r on db (a connection through the litejet VFS to the primary's
// database, in autocommit mode) in one write transaction (BEGIN
// IMMEDIATE). position() is the database's committed TXID: read while this
// transaction holds the write lock, its TXID is position() + 1. dedupe: look
// the id up first and record it with the outcome. Refuses anything but one
// statement that writes. The reply's code/message carry SQLite's error.
Reply Execute(sqlite3* db, const Request& r, const std::function<uint64_t()>& position, bool dedupe, int64_t now_ms);

}  // namespace litejet::forward
