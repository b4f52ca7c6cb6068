// Syncs, the test-only durable image (LITEJET_TEST_DURABLE_DIR), crash points.
#include "common/durable.h"
#include <sys/stat.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>

namespace litejet::durable {

namespace {
// Copies path's current contents to DIR/<basename> (write then rename, so
// the image of a file is always one whole sync's worth).
void Mirror(const std::string& path) {
  static const char* dir = std::getenv("LITEJET_TEST_DURABLE_DIR");
  if (!dir || !*dir) return;
  static std::mutex mu;
  std::lock_guard<std::mutex> g(mu);
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string dst = std::string(dir) + "/" + base, tmp = dst + ".tmp-" + std::to_string(::getpid());
  int in = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return;
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out >= 0) {
    char buf[1 << 16];
    ssize_t n;
    while ((n = ::read(in, buf, sizeof buf)) > 0) {
      if (::write(out, buf, size_t(n)) != n) break;
    }
    ::close(out);
    ::rename(tmp.c_str(), dst.c_str());
  }
  ::close(in);
}
}  // namespace

Status SyncFd(int fd, const std::string& path) {
  while (::fdatasync(fd) != 0) {
    if (errno == EINTR) continue;
    return Status::Error("litejet: cannot sync " + path + ": " + std::strerror(errno), 10);
  }
  Mirror(path);
  return Status::OK();
}

Status SyncMap(void* addr, size_t len, const std::string& path) {
  if (::msync(addr, len, MS_SYNC) != 0) {
    return Status::Error("litejet: cannot sync " + path + ": " + std::strerror(errno), 10);
  }
  Mirror(path);
  return Status::OK();
}

void Synced(const std::string& path) { Mirror(path); }

bool Imaging() {
  static const bool on = std::getenv("LITEJET_TEST_DURABLE_DIR") && *std::getenv("LITEJET_TEST_DURABLE_DIR");
  return on;
}

void CrashPoint(const char* name) {
  static const char* spec = std::getenv("LITEJET_TEST_POWER_CRASH");
  if (!spec || !*spec) return;
  static std::atomic<long> hits{0};
  const char* colon = std::strchr(spec, ':');
  size_t n = colon ? size_t(colon - spec) : std::strlen(spec);
  if (std::strlen(name) != n || std::strncmp(spec, name, n) != 0) return;
  long want = colon ? std::strtol(colon + 1, nullptr, 10) : 1;
  if (++hits >= want) _exit(9);
}

std::string BootId() {
  if (const char* t = std::getenv("LITEJET_TEST_BOOT_ID")) return t;
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  return id;
}

uint64_t PidNamespace() {
  static const uint64_t ns = [] {
    struct stat st;
    return ::stat("/proc/self/ns/pid", &st) == 0 ? uint64_t(st.st_ino) : uint64_t(0);
  }();
  return ns;
}

}  // namespace litejet::durable
