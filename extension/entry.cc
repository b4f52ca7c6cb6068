// The extension's entry point: registers the litejet VFS (default, permanent)
// and the repl_* functions on this and every later connection, and reports a
// replicated database's configuration error through the opening connection.
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/sqlite.h"
#include "extension/config.h"
#include "extension/engine.h"
#include "extension/forwarding.h"
#include "sql/functions.h"
#include "vfs/vfs.h"

#ifdef LITEJET_LOADABLE
SQLITE_EXTENSION_INIT1
#endif

#define LITEJET_EXPORT extern "C" __attribute__((visibility("default")))

namespace litejet {
namespace {

class Host final : public vfs::Host {
 public:
  Status OpenMain(const char* zName, std::shared_ptr<vfs::DbHooks>* out) override {
    out->reset();
    if (zName == nullptr || *zName == '\0') return Status::OK();  // temp / in-memory
    if (vfs::DbHooks* own = InternalUse::For(zName)) {
      *out = std::shared_ptr<vfs::DbHooks>(std::shared_ptr<vfs::DbHooks>(), own);  // joins, does not hold
      return Status::OK();
    }
    Lookup uri = [zName](const char* key) -> const char* { return sqlite3_uri_parameter(zName, key); };
    Config cfg;
    Status s = ParseConfig(uri, ProcessEnv(), zName, &cfg);
    if (!s.ok() || !cfg.replicated()) return s;
    std::shared_ptr<Engine> e;
    s = Engine::Get(cfg, zName, &e);
    if (!s.ok()) return s;
    *out = e;
    return Status::OK();
  }
  std::shared_ptr<vfs::DbHooks> Find(const std::string& db_path) override {
    if (vfs::DbHooks* own = InternalUse::For(db_path))
      return std::shared_ptr<vfs::DbHooks>(std::shared_ptr<vfs::DbHooks>(), own);
    return Engine::Find(db_path);
  }
};

Host* TheHost() {
  static Host* h = new Host;  // never freed: the VFS outlives every connection
  return h;
}

char* Dup(const std::string& s) { return sqlite3_mprintf("%s", s.c_str()); }

// A file database whose configuration asks for replication: a non-empty
// nats URI parameter, or none and a non-empty LITEJET_NATS_URL (as
// ParseConfig decides; an empty nats= turns replication off).
bool WantsReplication(const char* fn) {
  if (fn == nullptr || *fn == '\0') return false;  // :memory: and temp databases
  if (const char* v = sqlite3_uri_parameter(fn, "nats")) return *v != '\0';
  const char* e = std::getenv("LITEJET_NATS_URL");
  return e != nullptr && *e != '\0';
}

// Runs for every connection (auto extension) and for the loading one.
int ConnectionInit(sqlite3* db, char** pzErrMsg, const sqlite3_api_routines*) {
  int rc = sql::RegisterFunctions(db);
  if (rc != SQLITE_OK) {
    if (pzErrMsg) *pzErrMsg = Dup("litejet: cannot register SQL functions");
    return rc;
  }
  sqlite3_file* f = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || f == nullptr) {
    return SQLITE_OK;
  }
  if (!vfs::IsOurs(f)) {
    // A database that asks for replication (a nats parameter) but was
    // opened before litejet was the default VFS (e.g. Go's database/sql
    // loads extensions into each connection after opening it): its writes
    // would silently not be replicated. Say so, loudly.
    // (A VFS stacked above litejet's has its own files on top: then
    // litejet's engine for the database exists.)
    const char* fn = sqlite3_db_filename(db, "main");
    if (WantsReplication(fn) && !Engine::OpeningHere() && !Engine::Find(fn)) {
      if (pzErrMsg) {
        const char* how =
            sqlite3_uri_parameter(fn, "nats") ? "has a nats parameter" : "is replicated by LITEJET_NATS_URL";
        *pzErrMsg = Dup(std::string("litejet: database \"") + fn + "\" " + how +
                        " but was opened before litejet was loaded, so its writes would not "
                        "be replicated: open it again now that litejet is loaded (or load litejet first, e.g. "
                        "through a connection to :memory:)");
      }
      return SQLITE_ERROR;
    }
    return SQLITE_OK;
  }
  std::string err = vfs::OpenError(f);
  if (!err.empty()) {
    if (pzErrMsg) *pzErrMsg = Dup(err);
    return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

int AutoInit(sqlite3* db, char** pzErrMsg, const sqlite3_api_routines* api) {
  try {
    return ConnectionInit(db, pzErrMsg, api);
  } catch (...) {  // no C++ exception crosses into SQLite
    return SQLITE_NOMEM;
  }
}

}  // namespace
}  // namespace litejet

LITEJET_EXPORT const char* litejet_version(void) { return "0.1.0"; }

LITEJET_EXPORT int sqlite3_litejet_init(sqlite3* db, char** pzErrMsg, const sqlite3_api_routines* pApi) {
#ifdef LITEJET_LOADABLE
  SQLITE_EXTENSION_INIT2(pApi);
#else
  (void)pApi;
#endif
  try {  // no C++ exception crosses into SQLite
    int rc = litejet::vfs::Register(litejet::TheHost());
    if (rc != SQLITE_OK) {
      if (pzErrMsg) *pzErrMsg = sqlite3_mprintf("litejet: cannot register the litejet VFS over the default VFS");
      return rc;
    }
    // Idempotent: SQLite keeps one entry per function pointer.
    rc = sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(litejet::AutoInit));
    if (rc != SQLITE_OK) return rc;
    if (db) {
      rc = litejet::ConnectionInit(db, pzErrMsg, pApi);
      if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK_LOAD_PERMANENTLY;
  } catch (...) {
    if (pzErrMsg) *pzErrMsg = sqlite3_mprintf("litejet: out of memory while loading");
    return SQLITE_NOMEM;
  }
}

#ifndef LITEJET_LOADABLE
// Linked statically, litejet registers its VFS as the default before main()
// runs, so the first connection an app opens (which triggers the auto
// extension) is already on it.
__attribute__((constructor)) static void litejet_static_register() {
  try {
    litejet::vfs::Register(litejet::TheHost());
  } catch (...) {  // sqlite3_litejet_init tries again and reports
  }
}
#endif
