// Spool file: preallocated writes, compaction, reading entries.
#include "wal-capture/spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
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
  return WriteMany(std::vector<std::string>{record}, at, end);
}

Status Spool::WriteMany(const std::vector<std::string>& records, uint64_t at, uint64_t* end) {
  uint64_t total = 0;
  for (const std::string& r : records) {
    if (r.size() > kMaxEntry) return Status::Error("litejet: transaction too large for the log spool", 18);
    total += 4 + r.size();
  }
  if (at + total > allocated_) {
    // Another process may have grown it meanwhile; then grow in big steps.
    struct stat sb;
    if (::fstat(fd_, &sb) != 0) return IoError("stat", path_);
    allocated_ = uint64_t(sb.st_size);
    if (at + total > allocated_) {
      uint64_t want = (at + total + kGrowStep - 1) / kGrowStep * kGrowStep;
      int rc = ::posix_fallocate(fd_, off_t(allocated_), off_t(want - allocated_));
      if (rc != 0) {
        errno = rc;
        return IoError("grow", path_);
      }
      allocated_ = want;
    }
  }
  // Length prefixes and records gathered into few system calls, no copies.
  std::vector<unsigned char> lens(records.size() * 4);
  std::vector<struct iovec> iov;
  iov.reserve(records.size() * 2);
  for (size_t i = 0; i < records.size(); i++) {
    uint32_t len = uint32_t(records[i].size());
    unsigned char* lb = &lens[i * 4];
    lb[0] = uint8_t(len);
    lb[1] = uint8_t(len >> 8);
    lb[2] = uint8_t(len >> 16);
    lb[3] = uint8_t(len >> 24);
    iov.push_back({lb, 4});
    iov.push_back({const_cast<char*>(records[i].data()), records[i].size()});
  }
  uint64_t off = at;
  size_t k = 0;
  while (k < iov.size()) {
    int cnt = int(std::min<size_t>(iov.size() - k, IOV_MAX));
    ssize_t w = ::pwritev(fd_, &iov[k], cnt, off_t(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError("write", path_);
    }
    off += uint64_t(w);
    // Skip what was written; a partial write leaves the rest of one iovec.
    size_t left = size_t(w);
    while (k < iov.size() && left >= iov[k].iov_len) left -= iov[k++].iov_len;
    if (left > 0) {
      iov[k].iov_base = static_cast<char*>(iov[k].iov_base) + left;
      iov[k].iov_len -= left;
    }
  }
  *end = at + total;
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
