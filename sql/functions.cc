// repl_* SQL functions. Each takes an optional trailing schema name; the
// schema's main file must be a replicated litejet database.
#include "sql/functions.h"

#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "extension/engine.h"
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

void StepDown(sqlite3_context* ctx, Engine& e, int, sqlite3_value**) { sqlite3_result_int(ctx, e.StepDown()); }

void Snapshot(sqlite3_context* ctx, Engine&, int, sqlite3_value**) {
  sqlite3_result_error(ctx, "repl_snapshot: snapshots are not implemented yet", -1);
}

const FnSpec kFns[] = {
    {"repl_position", 0, 0, Position},  {"repl_wait", 1, 2, Wait},         {"repl_is_primary", 0, 0, IsPrimary},
    {"repl_primary", 0, 0, Primary},    {"repl_checksum", 0, 0, Checksum}, {"repl_status", 0, 0, StatusFn},
    {"repl_step_down", 0, 0, StepDown}, {"repl_snapshot", 0, 0, Snapshot},
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
  return SQLITE_OK;
}

}  // namespace litejet::sql
