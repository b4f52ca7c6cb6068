// repl_* SQL functions. Each takes an optional trailing schema name; the
// schema's main file must be a replicated litejet database.
#include "sql/functions.h"

#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include "common/json.h"
#include "extension/engine.h"
#include "forward/forward.h"
#include "vfs/vfs.h"
#include "wal-capture/checksum.h"

namespace litejet::sql {

namespace {

struct FnSpec {
  const char* name;
  int min_args;  // without the schema
  int max_args;  // without the schema
  void (*fn)(sqlite3_context*, Engine&, int, sqlite3_value**);
};

// Resolves the schema argument (argv[nfixed] when present) to its engine.
// Reports the error on ctx and returns null when there is none.
// The schema is the argument past max_args, or a TEXT last argument past
// min_args (so repl_wait(7, 'aux') names a schema, repl_wait(7, 100) a timeout).
std::shared_ptr<Engine> EngineFor(sqlite3_context* ctx, const char* fname, int argc, sqlite3_value** argv, int min_args,
                                  int max_args, bool* has_schema) {
  *has_schema = false;
  const char* schema = "main";
  if (argc > max_args || (argc > 0 && argc > min_args && sqlite3_value_type(argv[argc - 1]) == SQLITE_TEXT)) {
    sqlite3_value* v = argv[argc - 1];
    if (sqlite3_value_type(v) != SQLITE_TEXT) {
      std::string m = std::string(fname) + ": schema name must be text";
      sqlite3_result_error(ctx, m.c_str(), -1);
      return nullptr;
    }
    schema = reinterpret_cast<const char*>(sqlite3_value_text(v));
    *has_schema = true;
  }
  sqlite3* db = sqlite3_context_db_handle(ctx);
  sqlite3_file* f = nullptr;
  int rc = sqlite3_file_control(db, schema, SQLITE_FCNTL_FILE_POINTER, &f);
  if (rc != SQLITE_OK || f == nullptr) {
    std::string m = std::string(fname) + ": no database named \"" + schema + "\"";
    sqlite3_result_error(ctx, m.c_str(), -1);
    return nullptr;
  }
  auto e = std::dynamic_pointer_cast<Engine>(vfs::HooksOf(f));
  if (!e) {
    std::string m = std::string(fname) + ": database \"" + schema +
                    "\" is not replicated (open it through the litejet VFS with a nats URL)";
    sqlite3_result_error(ctx, m.c_str(), -1);
    return nullptr;
  }
  return e;
}

// An integer, or any value that is a whole number: hosts that bind numbers
// as REAL (better-sqlite3 binds every JS number so) pass 3.0 for TXID 3.
bool IntArg(sqlite3_context* ctx, const char* fname, const char* what, sqlite3_value* v, sqlite3_int64* out) {
  const int t = sqlite3_value_numeric_type(v);
  if (t == SQLITE_INTEGER) {
    *out = sqlite3_value_int64(v);
    return true;
  }
  if (t == SQLITE_FLOAT) {
    const double d = sqlite3_value_double(v);
    // Whole and inside int64 (2^63 is the first double past it).
    if (d == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
        d == static_cast<double>(static_cast<sqlite3_int64>(d))) {
      *out = static_cast<sqlite3_int64>(d);
      return true;
    }
  }
  std::string m = std::string(fname) + ": " + what + " must be an integer";
  sqlite3_result_error(ctx, m.c_str(), -1);
  return false;
}

void Position(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) {
  sqlite3_result_int64(ctx, sqlite3_int64(e.Position().txid));
}

void Wait(sqlite3_context* ctx, Engine& e, int argc, sqlite3_value** argv) {
  sqlite3_int64 txid = 0, timeout = 5000;
  if (!IntArg(ctx, "repl_wait", "txid", argv[0], &txid)) return;
  if (argc > 1 && !IntArg(ctx, "repl_wait", "timeout_ms", argv[1], &timeout)) return;
  if (txid < 0 || timeout < 0) {
    sqlite3_result_error(ctx, "repl_wait: txid and timeout_ms must not be negative", -1);
    return;
  }
  sqlite3_result_int(ctx, e.Wait(uint64_t(txid), timeout) ? 1 : 0);
}

void IsPrimary(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) { sqlite3_result_int(ctx, e.IsPrimary()); }

void Primary(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) {
  std::string p = e.Primary();
  if (p.empty()) {
    sqlite3_result_null(ctx);
  } else {
    sqlite3_result_text(ctx, p.c_str(), int(p.size()), SQLITE_TRANSIENT);
  }
}

void Checksum(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) {
  std::string h = checksum::Hex(e.Position().checksum);
  sqlite3_result_text(ctx, h.c_str(), int(h.size()), SQLITE_TRANSIENT);
}

void StatusFn(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) {
  std::string j = e.StatusJson();
  sqlite3_result_text(ctx, j.c_str(), int(j.size()), SQLITE_TRANSIENT);
}

void MetricsFn(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) {
  std::string m = e.MetricsText();
  sqlite3_result_text(ctx, m.c_str(), int(m.size()), SQLITE_TRANSIENT);
}

void StepDown(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) { sqlite3_result_int(ctx, e.StepDown()); }

// Blocks the calling thread for the copy and the upload (never the
// database's writers: the copy is read under a read transaction).
void Snapshot(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) {
  uint64_t txid = 0;
  Status s = e.Snapshot(10000, &txid);
  if (!s.ok()) {
    std::string m = "repl_snapshot: " + s.message();
    sqlite3_result_error(ctx, m.c_str(), int(m.size()));
    return;
  }
  sqlite3_result_int64(ctx, sqlite3_int64(txid));
}

// ---- repl_exec ------------------------------------------------------------
//
// Per connection: the request whose outcome is unknown (for
// repl_exec_retry()) and the last result (repl_last_exec()). Freed with the
// connection (the functions' destructor).
struct ExecState {
  std::mutex mu;
  bool unknown = false;
  forward::Request pending;
  std::string last_json = "null";
};

std::shared_ptr<ExecState>& StateOf(sqlite3_context* ctx) {
  return *static_cast<std::shared_ptr<ExecState>*>(sqlite3_user_data(ctx));
}

std::shared_ptr<Engine> MainEngine(sqlite3_context* ctx, const char* fname) {
  bool has_schema = false;
  return EngineFor(ctx, fname, 0, nullptr, 0, 0, &has_schema);
}

void RunExec(sqlite3_context* ctx, const char* fname, Engine& e, const forward::Request& req) {
  auto& st = StateOf(ctx);
  if (!sqlite3_get_autocommit(sqlite3_context_db_handle(ctx))) {
    std::string m = std::string(fname) +
                    ": refused inside an open transaction (BEGIN ... COMMIT): the write commits in a transaction of "
                    "its own (on the primary), which could not be atomic with this one; call it outside";
    sqlite3_result_error(ctx, m.c_str(), -1);
    return;
  }
  forward::Reply r;
  Status s = e.Exec(req, &r);
  std::lock_guard<std::mutex> g(st->mu);
  if (!s.ok()) {
    // SQLITE_BUSY_TIMEOUT from Exec: the outcome is unknown (or not applied
    // here yet): keep the request for repl_exec_retry().
    if (s.code() == SQLITE_BUSY_TIMEOUT) {
      st->unknown = true;
      st->pending = req;
    } else {
      st->unknown = false;
    }
    sqlite3_result_error(ctx, s.message().c_str(), -1);
    sqlite3_result_error_code(ctx, s.code());
    return;
  }
  st->unknown = false;
  st->last_json = "{\"txid\":" + std::to_string(r.txid) + ",\"changes\":" + std::to_string(r.changes) +
                  ",\"last_insert_rowid\":" + std::to_string(r.last_rowid) + ",\"node\":" + JsonString(r.node) +
                  ",\"id\":" + JsonString(req.id) + ",\"duplicate\":" + (r.duplicate ? "true" : "false") + "}";
  sqlite3_result_int64(ctx, sqlite3_int64(r.txid));
}

void ExecFn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  try {
    if (argc < 1 || sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
      sqlite3_result_error(ctx, "repl_exec: the first argument must be the SQL text of one statement", -1);
      return;
    }
    std::shared_ptr<Engine> e = MainEngine(ctx, "repl_exec");
    if (!e) return;
    forward::Request req;
    req.id = forward::NewId();
    req.sql.assign(reinterpret_cast<const char*>(sqlite3_value_text(argv[0])), size_t(sqlite3_value_bytes(argv[0])));
    for (int k = 1; k < argc; k++) req.params.push_back(forward::FromSql(argv[k]));
    RunExec(ctx, "repl_exec", *e, req);
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  } catch (const std::exception& ex) {
    sqlite3_result_error(ctx, (std::string("repl_exec: ") + ex.what()).c_str(), -1);
  }
}

void ExecRetryFn(sqlite3_context* ctx, int, sqlite3_value**) {
  try {
    std::shared_ptr<Engine> e = MainEngine(ctx, "repl_exec_retry");
    if (!e) return;
    forward::Request req;
    {
      auto& st = StateOf(ctx);
      std::lock_guard<std::mutex> g(st->mu);
      if (!st->unknown) {
        sqlite3_result_error(ctx, "repl_exec_retry: no repl_exec of this connection has an unknown outcome", -1);
        return;
      }
      req = st->pending;
    }
    RunExec(ctx, "repl_exec_retry", *e, req);
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  } catch (const std::exception& ex) {
    sqlite3_result_error(ctx, (std::string("repl_exec_retry: ") + ex.what()).c_str(), -1);
  }
}

void LastExecFn(sqlite3_context* ctx, int, sqlite3_value**) {
  auto& st = StateOf(ctx);
  std::lock_guard<std::mutex> g(st->mu);
  sqlite3_result_text(ctx, st->last_json.c_str(), int(st->last_json.size()), SQLITE_TRANSIENT);
}

void FreeState(void* p) { delete static_cast<std::shared_ptr<ExecState>*>(p); }

const FnSpec kFns[] = {
    {"repl_position", 0, 0, Position}, {"repl_wait", 1, 2, Wait},          {"repl_is_primary", 0, 0, IsPrimary},
    {"repl_primary", 0, 0, Primary},   {"repl_checksum", 0, 0, Checksum},  {"repl_status", 0, 0, StatusFn},
    {"repl_metrics", 0, 0, MetricsFn}, {"repl_step_down", 0, 0, StepDown}, {"repl_snapshot", 0, 0, Snapshot},
};

void Dispatch(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  const FnSpec* spec = static_cast<const FnSpec*>(sqlite3_user_data(ctx));
  // No C++ exception crosses into SQLite: it becomes the function's error.
  try {
    bool has_schema = false;
    std::shared_ptr<Engine> e = EngineFor(ctx, spec->name, argc, argv, spec->min_args, spec->max_args, &has_schema);
    if (!e) return;
    spec->fn(ctx, *e, has_schema ? argc - 1 : argc, argv);
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  } catch (const std::exception& ex) {
    sqlite3_result_error(ctx, (std::string(spec->name) + ": " + ex.what()).c_str(), -1);
  } catch (...) {
    sqlite3_result_error(ctx, spec->name, -1);
  }
}

}  // namespace

int RegisterFunctions(sqlite3* db) {
  for (const FnSpec& f : kFns) {
    // One registration per arity: with and without the schema argument.
    for (int n = f.min_args; n <= f.max_args + 1; n++) {
      int rc = sqlite3_create_function_v2(db, f.name, n, SQLITE_UTF8 | SQLITE_DIRECTONLY, const_cast<FnSpec*>(&f),
                                          Dispatch, nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) return rc;
    }
  }
  // repl_exec and friends share one state per connection.
  auto state = std::make_shared<ExecState>();
  struct {
    const char* name;
    int n;
    void (*fn)(sqlite3_context*, int, sqlite3_value**);
  } const exec_fns[] = {
      {"repl_exec", -1, ExecFn}, {"repl_exec_retry", 0, ExecRetryFn}, {"repl_last_exec", 0, LastExecFn}};
  for (const auto& f : exec_fns) {
    auto* box = new std::shared_ptr<ExecState>(state);
    int rc = sqlite3_create_function_v2(db, f.name, f.n, SQLITE_UTF8 | SQLITE_DIRECTONLY, box, f.fn, nullptr, nullptr,
                                        FreeState);
    if (rc != SQLITE_OK) return rc;  // SQLite called FreeState(box)
  }
  return SQLITE_OK;
}

}  // namespace litejet::sql
