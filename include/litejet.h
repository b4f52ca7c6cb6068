/* litejet: replicate a SQLite database over NATS JetStream.
 *
 * Public C header. Apps that link SQLite themselves link liblitejet.a and call
 *
 *     sqlite3_auto_extension((void (*)(void))sqlite3_litejet_init);
 *
 * before opening databases. The loadable extension (litejet.so) exports the
 * same entry point, so `.load litejet` in the sqlite3 shell works.
 * Configuration is by URI parameters and LITEJET_* environment variables;
 * see INTERFACE.md / README.md. */
#ifndef LITEJET_H
#define LITEJET_H

#include <sqlite3.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LITEJET_VERSION "0.1.0"
#define LITEJET_VFS_NAME "litejet"

/* Registers the "litejet" VFS as the default VFS and the repl_* SQL functions
 * on db and on every connection opened afterwards. Returns
 * SQLITE_OK_LOAD_PERMANENTLY on the first successful call. */
int sqlite3_litejet_init(sqlite3* db, char** pzErrMsg, const sqlite3_api_routines* pApi);

/* The library version, LITEJET_VERSION. */
const char* litejet_version(void);

#ifdef __cplusplus
}
#endif

#endif /* LITEJET_H */
