// Durability points and their test doubles: every sync litejet does goes
// through here, so a test can keep a "durable image" of each file (its
// contents as of its last sync) and kill the process right after any write
// or sync of the hand-off and apply sequences (docs/design.md, "Power loss").
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace litejet::durable {

// fdatasync(fd) of the file at path.
Status SyncFd(int fd, const std::string& path);
// msync(MS_SYNC) of [addr, addr+len) of the mapping of the file at path.
Status SyncMap(void* addr, size_t len, const std::string& path);
// A sync done by someone else (SQLite's xSync, through the VFS) of path
// succeeded: record it in the durable image (tests only; no-op otherwise).
void Synced(const std::string& path);
// True when tests keep a durable image (LITEJET_TEST_DURABLE_DIR).
bool Imaging();

// Fault injection: LITEJET_TEST_POWER_CRASH=name[:n] ends the process
// (_exit(9), nothing flushed by litejet) the n-th time (default: first) the
// code passes the point called name.
void CrashPoint(const char* name);

// This boot of the kernel (/proc/sys/kernel/random/boot_id; tests override
// it with LITEJET_TEST_BOOT_ID). A sidecar last used under another boot id
// went through a reboot, possibly a power loss.
std::string BootId();

// The inode of this process's PID namespace (/proc/self/ns/pid), 0 when it
// cannot be read: pids are comparable only within one namespace.
uint64_t PidNamespace();

}  // namespace litejet::durable
