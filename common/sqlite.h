// The one place litejet includes SQLite. Built into the loadable extension
// (LITEJET_LOADABLE) every sqlite3_* call goes through the sqlite3_api table
// handed to sqlite3_litejet_init; built into liblitejet.a it calls SQLite directly.
#pragma once

#ifdef LITEJET_LOADABLE
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
#else
#include <sqlite3.h>
#endif
