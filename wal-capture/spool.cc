// Spool file: preallocated writes, compaction, reading entries.
#include "wal-capture/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace litejet::spool {

namespace {
constexpr uint32_t kMaxEntry = 0xF0000000u;
constexpr uint64_t kGrowStep = 4u << 20;

uint32_t Le32(const unsigned char* b) {
  return uint32_t(b[0]) | (uint32_t(b[1]) << 8) | (uint32_t(b[2]) << 16) | (uint32_t(b[3]) << 24);
}

Status IoError(const std::string& what, const std::string& path) {
  return Status::Error("litejet: cannot " + what + " log spool " + path + ": " + std::strerror(errno), 10);
}
}  // namespace

Spool::~Spool() {
  if (fd_ >= 0) ::close(fd_);
}

Status Spool::Open(const std::string& path) {
  path_ = path;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return IoError("open", path);
  struct stat sb;
  if (::fstat(fd_, &sb) != 0) return IoError("stat", path);
  allocated_ = uint64_t(sb.st_size);
  return Status::OK();
}

Status Spool::Write(const std::string& record, uint64_t at, uint64_t* end) {
  if (record.size() > kMaxEntry) return Status::Error("litejet: transaction too large for the log spool", 18);
  const uint64_t n = 4 + record.size();
  if (at + n > allocated_) {
    // Another process may have grown it meanwhile; then grow in big steps so
    // that most commits write into blocks that already exist.
    struct stat sb;
    if (::fstat(fd_, &sb) != 0) return IoError("stat", path_);
    allocated_ = uint64_t(sb.st_size);
    if (at + n > allocated_) {
      uint64_t want = (at + n + kGrowStep - 1) / kGrowStep * kGrowStep;
      int rc = ::posix_fallocate(fd_, off_t(allocated_), off_t(want - allocated_));
      if (rc != 0) {
        errno = rc;
        return IoError("grow", path_);
      }
      allocated_ = want;
    }
  }
  uint32_t len = uint32_t(record.size());
  unsigned char lb[4] = {uint8_t(len), uint8_t(len >> 8), uint8_t(len >> 16), uint8_t(len >> 24)};
  // Length prefix and record in one system call, without copying the record.
  uint64_t done = 0;
  while (done < n) {
    struct iovec iov[2];
    int cnt = 0;
    if (done < 4) iov[cnt++] = {lb + done, size_t(4 - done)};
    uint64_t rdone = done < 4 ? 0 : done - 4;
    iov[cnt++] = {const_cast<char*>(record.data()) + rdone, record.size() - size_t(rdone)};
    ssize_t w = ::pwritev(fd_, iov, cnt, off_t(at + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError("write", path_);
    }
    done += uint64_t(w);
  }
  *end = at + n;
  return Status::OK();
}

Status Spool::Compact(uint64_t from, uint64_t end) {
  if (from > end || end - from > from) return Status::Error("litejet: spool compaction would overlap");
  std::string buf(end - from, '\0');
  if (!buf.empty() && ::pread(fd_, &buf[0], buf.size(), off_t(from)) != ssize_t(buf.size())) {
    return IoError("read", path_);
  }
  if (!buf.empty() && ::pwrite(fd_, buf.data(), buf.size(), 0) != ssize_t(buf.size())) return IoError("write", path_);
  return Status::OK();
}

bool ReadEntry(int fd, uint64_t end, uint64_t* off, std::string* rec) {
  if (*off + 4 > end) return false;
  unsigned char len[4];
  if (::pread(fd, len, 4, off_t(*off)) != 4) return false;
  uint32_t n = Le32(len);
  if (n == 0 || n > kMaxEntry || *off + 4 + n > end) return false;
  rec->resize(n);
  if (n > 0 && ::pread(fd, &(*rec)[0], n, off_t(*off + 4)) != ssize_t(n)) return false;
  *off += 4 + n;
  return true;
}

Status Scan(const std::string& path, uint64_t end, const std::function<Status(const std::string&, uint64_t)>& fn) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::OK();
    return IoError("open", path);
  }
  struct stat sb;
  ::fstat(fd, &sb);
  if (end > uint64_t(sb.st_size)) end = uint64_t(sb.st_size);
  uint64_t off = 0;
  std::string rec;
  Status s;
  for (;;) {
    uint64_t at = off;
    if (!ReadEntry(fd, end, &off, &rec)) break;
    s = fn(rec, at);
    if (!s.ok()) break;
  }
  ::close(fd);
  return s;
}

}  // namespace litejet::spool
