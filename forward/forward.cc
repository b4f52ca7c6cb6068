// Write forwarding: the request/reply codec and the execution of a request
// in one write transaction with its id recorded (exactly once).
#include "forward/forward.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <random>

namespace litejet::forward {

namespace {

constexpr char kRequestMagic[4] = {'L', 'J', 'F', 'Q'};
constexpr char kReplyMagic[4] = {'L', 'J', 'F', 'R'};
constexpr uint8_t kVersion = 1;
constexpr uint32_t kMaxParams = 32766;  // SQLite's own default limit

void Put8(std::string* o, uint64_t v) {
  for (int i = 0; i < 8; i++) o->push_back(char((v >> (8 * i)) & 0xff));
}
void Put4(std::string* o, uint32_t v) {
  for (int i = 0; i < 4; i++) o->push_back(char((v >> (8 * i)) & 0xff));
}
void PutStr(std::string* o, const std::string& s) {
  Put4(o, uint32_t(s.size()));
  o->append(s);
}

class Reader {
 public:
  explicit Reader(const std::string& d) : d_(d) {}
  bool U8(uint8_t* v) {
    if (left() < 1) return false;
    *v = uint8_t(d_[at_++]);
    return true;
  }
  bool U4(uint32_t* v) {
    if (left() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; i++) *v |= uint32_t(uint8_t(d_[at_ + i])) << (8 * i);
    at_ += 4;
    return true;
  }
  bool U8x(uint64_t* v) {
    if (left() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; i++) *v |= uint64_t(uint8_t(d_[at_ + i])) << (8 * i);
    at_ += 8;
    return true;
  }
  bool Str(std::string* s) {
    uint32_t n = 0;
    if (!U4(&n) || left() < n) return false;
    s->assign(d_, at_, n);
    at_ += n;
    return true;
  }
  bool Magic(const char (&m)[4]) {
    if (left() < 4 || std::memcmp(d_.data() + at_, m, 4) != 0) return false;
    at_ += 4;
    return true;
  }
  size_t left() const { return d_.size() - at_; }

 private:
  const std::string& d_;
  size_t at_ = 0;
};

Status Bad(const char* what, const char* why) {
  return Status::Error(std::string("litejet: forwarded ") + what + " is malformed: " + why, SQLITE_PROTOCOL);
}

}  // namespace

std::string Encode(const Request& r) {
  std::string o(kRequestMagic, 4);
  o.push_back(char(kVersion));
  PutStr(&o, r.id);
  PutStr(&o, r.sql);
  Put4(&o, uint32_t(r.params.size()));
  for (const Value& v : r.params) {
    o.push_back(char(v.type));
    switch (v.type) {
      case SQLITE_INTEGER:
        Put8(&o, uint64_t(v.i));
        break;
      case SQLITE_FLOAT: {
        uint64_t bits = 0;
        std::memcpy(&bits, &v.r, 8);
        Put8(&o, bits);
        break;
      }
      case SQLITE_TEXT:
      case SQLITE_BLOB:
        PutStr(&o, v.s);
        break;
      default:
        break;
    }
  }
  return o;
}

Status Decode(const std::string& data, Request* out) {
  Reader rd(data);
  uint8_t ver = 0;
  if (!rd.Magic(kRequestMagic)) return Bad("request", "not a litejet request");
  if (!rd.U8(&ver) || ver != kVersion) return Bad("request", "unknown version");
  uint32_t n = 0;
  if (!rd.Str(&out->id) || !rd.Str(&out->sql) || !rd.U4(&n)) return Bad("request", "truncated");
  if (out->id.empty() || out->id.size() > 128) return Bad("request", "bad id");
  if (n > kMaxParams) return Bad("request", "too many parameters");
  out->params.clear();
  for (uint32_t k = 0; k < n; k++) {
    Value v;
    uint8_t t = 0;
    if (!rd.U8(&t)) return Bad("request", "truncated");
    v.type = t;
    uint64_t bits = 0;
    switch (t) {
      case SQLITE_INTEGER:
        if (!rd.U8x(&bits)) return Bad("request", "truncated");
        v.i = int64_t(bits);
        break;
      case SQLITE_FLOAT:
        if (!rd.U8x(&bits)) return Bad("request", "truncated");
        std::memcpy(&v.r, &bits, 8);
        break;
      case SQLITE_TEXT:
      case SQLITE_BLOB:
        if (!rd.Str(&v.s)) return Bad("request", "truncated");
        break;
      case SQLITE_NULL:
        break;
      default:
        return Bad("request", "unknown value type");
    }
    out->params.push_back(std::move(v));
  }
  if (rd.left() != 0) return Bad("request", "trailing bytes");
  return Status::OK();
}

std::string Encode(const Reply& r) {
  std::string o(kReplyMagic, 4);
  o.push_back(char(kVersion));
  Put4(&o, uint32_t(r.code));
  o.push_back(char((r.not_primary ? 1 : 0) | (r.duplicate ? 2 : 0)));
  PutStr(&o, r.message);
  Put8(&o, r.txid);
  Put8(&o, uint64_t(r.changes));
  Put8(&o, uint64_t(r.last_rowid));
  PutStr(&o, r.node);
  return o;
}

Status Decode(const std::string& data, Reply* out) {
  Reader rd(data);
  uint8_t ver = 0, flags = 0;
  uint32_t code = 0;
  uint64_t txid = 0, changes = 0, rowid = 0;
  if (!rd.Magic(kReplyMagic)) return Bad("reply", "not a litejet reply");
  if (!rd.U8(&ver) || ver != kVersion) return Bad("reply", "unknown version");
  if (!rd.U4(&code) || !rd.U8(&flags) || !rd.Str(&out->message) || !rd.U8x(&txid) || !rd.U8x(&changes) ||
      !rd.U8x(&rowid) || !rd.Str(&out->node)) {
    return Bad("reply", "truncated");
  }
  if (rd.left() != 0) return Bad("reply", "trailing bytes");
  out->code = int(code);
  out->not_primary = flags & 1;
  out->duplicate = flags & 2;
  out->txid = txid;
  out->changes = int64_t(changes);
  out->last_rowid = int64_t(rowid);
  return Status::OK();
}

std::string NewId() {
  unsigned char b[16];
  bool ok = false;
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ok = ::read(fd, b, sizeof b) == ssize_t(sizeof b);
    ::close(fd);
  }
  if (!ok) {
    std::random_device rd;
    for (auto& c : b) c = static_cast<unsigned char>(rd());
  }
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s.push_back(hex[c >> 4]);
    s.push_back(hex[c & 15]);
  }
  return s;
}

Value FromSql(sqlite3_value* v) {
  Value o;
  o.type = sqlite3_value_type(v);
  switch (o.type) {
    case SQLITE_INTEGER:
      o.i = sqlite3_value_int64(v);
      break;
    case SQLITE_FLOAT:
      o.r = sqlite3_value_double(v);
      break;
    case SQLITE_TEXT:
      o.s.assign(reinterpret_cast<const char*>(sqlite3_value_text(v)), size_t(sqlite3_value_bytes(v)));
      break;
    case SQLITE_BLOB: {
      const void* p = sqlite3_value_blob(v);
      const int n = sqlite3_value_bytes(v);
      if (p && n > 0) o.s.assign(static_cast<const char*>(p), size_t(n));
      break;
    }
    default:
      o.type = SQLITE_NULL;
      break;
  }
  return o;
}

namespace {

// One prepared statement, finalized on scope exit.
struct Stmt {
  sqlite3_stmt* st = nullptr;
  ~Stmt() { sqlite3_finalize(st); }
};

Reply Fail(sqlite3* db, int code, const std::string& msg) {
  Reply r;
  r.code = code;
  r.message = msg.empty() ? std::string(sqlite3_errmsg(db)) : msg;
  return r;
}

int Exec(sqlite3* db, const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }

}  // namespace

Reply Execute(sqlite3* db, const Request& req, const std::function<uint64_t()>& position, bool dedupe, int64_t now_ms) {
  // The statement first, outside the transaction: a syntax error or a
  // statement that does not write costs no lock.
  Stmt s;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db, req.sql.c_str(), int(req.sql.size()), &s.st, &tail);
  if (rc != SQLITE_OK) return Fail(db, sqlite3_extended_errcode(db), "");
  if (s.st == nullptr) return Fail(db, SQLITE_ERROR, "repl_exec: no SQL statement given");
  for (const char* t = tail; t && *t; t++) {
    if (!std::strchr(" \t\r\n;", *t)) {
      return Fail(db, SQLITE_ERROR, "repl_exec runs exactly one statement; more follow the first");
    }
  }
  if (sqlite3_stmt_readonly(s.st)) {
    return Fail(db, SQLITE_ERROR, "repl_exec: the statement does not write (run reads locally)");
  }
  const int want = sqlite3_bind_parameter_count(s.st);
  if (want != int(req.params.size())) {
    return Fail(db, SQLITE_RANGE,
                "repl_exec: the statement has " + std::to_string(want) + " parameters, " +
                    std::to_string(req.params.size()) + " given");
  }
  for (int k = 0; k < want; k++) {
    const Value& v = req.params[size_t(k)];
    switch (v.type) {
      case SQLITE_INTEGER:
        rc = sqlite3_bind_int64(s.st, k + 1, v.i);
        break;
      case SQLITE_FLOAT:
        rc = sqlite3_bind_double(s.st, k + 1, v.r);
        break;
      case SQLITE_TEXT:
        rc = sqlite3_bind_text(s.st, k + 1, v.s.data(), int(v.s.size()), SQLITE_TRANSIENT);
        break;
      case SQLITE_BLOB:
        rc = sqlite3_bind_blob(s.st, k + 1, v.s.data(), int(v.s.size()), SQLITE_TRANSIENT);
        break;
      default:
        rc = sqlite3_bind_null(s.st, k + 1);
        break;
    }
    if (rc != SQLITE_OK) return Fail(db, sqlite3_extended_errcode(db), "");
  }
  if (!sqlite3_get_autocommit(db))
    return Fail(db, SQLITE_ERROR, "repl_exec: the executing connection is in a transaction");
  rc = Exec(db, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) return Fail(db, sqlite3_extended_errcode(db), "");
  auto rollback = [&](Reply r) {
    Exec(db, "ROLLBACK");
    return r;
  };
  // Holding the write lock: this transaction's TXID, if it commits.
  const uint64_t txid = position() + 1;
  if (dedupe) {
    std::string ddl = std::string("CREATE TABLE IF NOT EXISTS ") + kTable +
                      "(id TEXT PRIMARY KEY, txid INTEGER NOT NULL, changes INTEGER NOT NULL, "
                      "last_rowid INTEGER NOT NULL, at_ms INTEGER NOT NULL) WITHOUT ROWID";
    if (Exec(db, ddl.c_str()) != SQLITE_OK) return rollback(Fail(db, sqlite3_extended_errcode(db), ""));
    std::string idx = std::string("CREATE INDEX IF NOT EXISTS ") + kTable + "_at ON " + kTable + "(at_ms)";
    if (Exec(db, idx.c_str()) != SQLITE_OK) return rollback(Fail(db, sqlite3_extended_errcode(db), ""));
    Stmt q;
    std::string sel = std::string("SELECT txid, changes, last_rowid FROM ") + kTable + " WHERE id = ?1";
    if (sqlite3_prepare_v2(db, sel.c_str(), -1, &q.st, nullptr) != SQLITE_OK) {
      return rollback(Fail(db, sqlite3_extended_errcode(db), ""));
    }
    sqlite3_bind_text(q.st, 1, req.id.data(), int(req.id.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(q.st) == SQLITE_ROW) {
      Reply r;
      r.duplicate = true;
      r.txid = uint64_t(sqlite3_column_int64(q.st, 0));
      r.changes = sqlite3_column_int64(q.st, 1);
      r.last_rowid = sqlite3_column_int64(q.st, 2);
      return rollback(r);
    }
  }
  while ((rc = sqlite3_step(s.st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) {
    Reply r = Fail(db, sqlite3_extended_errcode(db), "");
    sqlite3_reset(s.st);
    return rollback(r);
  }
  Reply out;
  out.changes = sqlite3_changes64(db);
  out.last_rowid = sqlite3_last_insert_rowid(db);
  out.txid = txid;
  if (dedupe) {
    Stmt ins;
    std::string sql =
        std::string("INSERT INTO ") + kTable + "(id, txid, changes, last_rowid, at_ms) VALUES(?1, ?2, ?3, ?4, ?5)";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &ins.st, nullptr) != SQLITE_OK) {
      return rollback(Fail(db, sqlite3_extended_errcode(db), ""));
    }
    sqlite3_bind_text(ins.st, 1, req.id.data(), int(req.id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins.st, 2, int64_t(txid));
    sqlite3_bind_int64(ins.st, 3, out.changes);
    sqlite3_bind_int64(ins.st, 4, out.last_rowid);
    sqlite3_bind_int64(ins.st, 5, now_ms);
    if (sqlite3_step(ins.st) != SQLITE_DONE) return rollback(Fail(db, sqlite3_extended_errcode(db), ""));
    // Forget ids past the window, a few at a time, in the same transaction.
    Stmt del;
    std::string ds =
        std::string("DELETE FROM ") + kTable + " WHERE id IN (SELECT id FROM " + kTable + " WHERE at_ms < ?1 LIMIT 16)";
    if (sqlite3_prepare_v2(db, ds.c_str(), -1, &del.st, nullptr) == SQLITE_OK) {
      sqlite3_bind_int64(del.st, 1, now_ms - kDedupeWindowMs);
      sqlite3_step(del.st);
    }
  }
  rc = Exec(db, "COMMIT");
  if (rc != SQLITE_OK) return rollback(Fail(db, sqlite3_extended_errcode(db), ""));
  const uint64_t now = position();
  if (now < txid) {
    // Nothing was written (a statement that changed no page and no dedupe
    // record): no transaction, no new TXID.
    out.txid = now;
  }
  return out;
}

}  // namespace litejet::forward
