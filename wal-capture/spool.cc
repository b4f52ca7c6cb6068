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

#include "common/durable.h"

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

// The file reaches end (another process may have grown it meanwhile; else
// grow it in big steps, so that most writes land in blocks that exist).
Status Spool::Reserve(uint64_t end) {
  if (end <= allocated_) return Status::OK();
  struct stat sb;
  if (::fstat(fd_, &sb) != 0) return IoError("stat", path_);
  allocated_ = uint64_t(sb.st_size);
  if (end <= allocated_) return Status::OK();
  uint64_t want = (end + kGrowStep - 1) / kGrowStep * kGrowStep;
  int rc = ::posix_fallocate(fd_, off_t(allocated_), off_t(want - allocated_));
  if (rc != 0) {
    errno = rc;
    return IoError("grow", path_);
  }
  allocated_ = want;
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
  Status rs = Reserve(at + total);
  if (!rs.ok()) return rs;
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

Status Spool::WriteSegment(const std::string& head, int src_fd, uint64_t src_off, uint64_t n, uint64_t at,
                           uint64_t* end) {
  const uint64_t total = 4 + head.size() + n;
  if (head.size() + n > kMaxEntry) return Status::Error("litejet: hand-off too large for one spool entry", 18);
  Status rs = Reserve(at + total);
  if (!rs.ok()) return rs;
  uint32_t len = uint32_t(head.size() + n);
  unsigned char lb[4] = {uint8_t(len), uint8_t(len >> 8), uint8_t(len >> 16), uint8_t(len >> 24)};
  struct iovec iov[2] = {{lb, 4}, {const_cast<char*>(head.data()), head.size()}};
  const uint64_t hn = 4 + head.size();
  uint64_t done = 0;
  while (done < hn) {
    struct iovec v[2];
    int cnt = 0;
    if (done < 4) v[cnt++] = {lb + done, size_t(4 - done)};
    size_t hd = done < 4 ? 0 : size_t(done - 4);
    v[cnt++] = {static_cast<char*>(iov[1].iov_base) + hd, head.size() - hd};
    ssize_t w = ::pwritev(fd_, v, cnt, off_t(at + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError("write", path_);
    }
    done += uint64_t(w);
  }
  // The frames: kernel to kernel (copy_file_range), or through a buffer where
  // the file systems cannot.
  off64_t in = off64_t(src_off), out = off64_t(at + hn);
  uint64_t left = n;
  while (left > 0) {
    ssize_t c = ::copy_file_range(src_fd, &in, fd_, &out, size_t(left), 0);
    if (c < 0 && errno == EINTR) continue;
    if (c <= 0) break;
    left -= uint64_t(c);
  }
  if (left > 0) {
    std::string buf(size_t(std::min<uint64_t>(left, 1u << 20)), '\0');
    while (left > 0) {
      size_t want = size_t(std::min<uint64_t>(left, buf.size()));
      ssize_t r = ::pread(src_fd, &buf[0], want, off_t(in));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0)
        return Status::Error("litejet: cannot read the WAL for the log spool " + path_ + ": " +
                                 (r < 0 ? std::strerror(errno) : "short file"),
                             10);
      size_t wdone = 0;
      while (wdone < size_t(r)) {
        ssize_t w = ::pwrite(fd_, buf.data() + wdone, size_t(r) - wdone, off_t(out));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return IoError("write", path_);
        wdone += size_t(w);
        out += w;
      }
      in += r;
      left -= uint64_t(r);
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

Status Spool::Sync() { return durable::SyncFd(fd_, path_); }

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
