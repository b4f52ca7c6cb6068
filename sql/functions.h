// The repl_* SQL functions (INTERFACE.md, "SQL functions").
#pragma once

#include "common/sqlite.h"

namespace litejet::sql {

// Registers every repl_* function on db. Returns an SQLite code.
int RegisterFunctions(sqlite3* db);

}  // namespace litejet::sql
