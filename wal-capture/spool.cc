// Spool file: append and scan.
#include "wal-capture/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace litejet::spool {

namespace {
constexpr uint32_t kMaxEntry = 0xF0000000u;
}

Spool::~Spool() {
  if (fd_ >= 0) ::close(fd_);
}

Status Spool::Open(const std::string& path) {
  path_ = path;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) return Status::Error("litejet: cannot open log spool " + path + ": " + std::strerror(errno), 14);
  return Status::OK();
}

Status Spool::Append(const std::string& record) {
  if (record.size() > kMaxEntry) return Status::Error("litejet: transaction too large for the log spool", 18);
  uint32_t n = uint32_t(record.size());
  unsigned char len[4] = {uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24)};
  // One write per entry (O_APPEND), so entries from different processes,
  // serialised by WAL_WRITE_LOCK, never interleave.
  std::string buf;
  buf.reserve(4 + record.size());
  buf.append(reinterpret_cast<const char*>(len), 4);
  buf.append(record);
  const char* p = buf.data();
  size_t left = buf.size();
  while (left > 0) {
    ssize_t w = ::write(fd_, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::Error("litejet: cannot append to log spool " + path_ + ": " + std::strerror(errno), 10);
    }
    p += w;
    left -= size_t(w);
  }
  return Status::OK();
}

uint64_t Spool::Size() const {
  struct stat sb;
  return ::fstat(fd_, &sb) == 0 ? uint64_t(sb.st_size) : 0;
}

Status Spool::Truncate(uint64_t size) {
  if (::ftruncate(fd_, off_t(size)) != 0) {
    return Status::Error("litejet: cannot truncate log spool " + path_ + ": " + std::strerror(errno), 10);
  }
  return Status::OK();
}

Status Scan(const std::string& path, const std::function<Status(const std::string&, uint64_t)>& fn,
            uint64_t* valid_end) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      if (valid_end) *valid_end = 0;
      return Status::OK();
    }
    return Status::Error("litejet: cannot open log spool " + path + ": " + std::strerror(errno), 14);
  }
  struct stat sb;
  ::fstat(fd, &sb);
  const uint64_t size = uint64_t(sb.st_size);
  uint64_t off = 0;
  std::string rec;
  Status s;
  while (off + 4 <= size) {
    unsigned char len[4];
    if (::pread(fd, len, 4, off_t(off)) != 4) break;
    uint32_t n = uint32_t(len[0]) | (uint32_t(len[1]) << 8) | (uint32_t(len[2]) << 16) | (uint32_t(len[3]) << 24);
    if (n > kMaxEntry) {
      s = Status::Error("litejet: log spool " + path + ": bad entry length at offset " + std::to_string(off), 11);
      break;
    }
    if (off + 4 + n > size) break;  // torn last entry
    rec.resize(n);
    if (::pread(fd, &rec[0], n, off_t(off + 4)) != ssize_t(n)) break;
    s = fn(rec, off);
    if (!s.ok()) break;
    off += 4 + n;
  }
  ::close(fd);
  if (valid_end) *valid_end = off;
  return s;
}

}  // namespace litejet::spool
