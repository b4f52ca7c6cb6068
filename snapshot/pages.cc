// snapshot/pages.cc: pages of a database file at rest (the PageSource of
// `litejet snapshot`) and the FileBuilder that restore writes a new
// database file with, renamed into place only once its checksum verified.
#include <fcntl.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "snapshot/snapshot.h"
#include "wal-capture/checksum.h"

namespace litejet::snapshot {

namespace {

constexpr int kIoErr = 10, kCantOpen = 14, kNotADb = 26, kCorrupt = 11;

std::string Errno() { return std::strerror(errno); }

class FileSource final : public PageSource {
 public:
  ~FileSource() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Open(const std::string& path) {
    path_ = path;
    struct stat st;
    if (::stat((path + "-wal").c_str(), &st) == 0 && st.st_size > 0) {
      return Status::Error("litejet: " + path + " has " + std::to_string(st.st_size) + " bytes of WAL in " + path +
                               "-wal: checkpoint it first (PRAGMA wal_checkpoint(TRUNCATE)) with no process open",
                           kNotADb);
    }
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Status::Error("litejet: cannot open " + path + ": " + Errno(), kCantOpen);
    if (::fstat(fd_, &st) != 0) return Status::Error("litejet: cannot stat " + path + ": " + Errno(), kIoErr);
    unsigned char hdr[100];
    if (st.st_size < 100 || ::pread(fd_, hdr, sizeof hdr, 0) != ssize_t(sizeof hdr) ||
        std::memcmp(hdr, "SQLite format 3", 16) != 0) {
      return Status::Error("litejet: " + path + " is not a SQLite database (bad header)", kNotADb);
    }
    page_size_ = (uint32_t(hdr[16]) << 8) | hdr[17];
    if (page_size_ == 1) page_size_ = 65536;
    if (page_size_ < 512 || (page_size_ & (page_size_ - 1))) {
      return Status::Error("litejet: " + path + " is not a SQLite database (bad page size)", kNotADb);
    }
    if (st.st_size % page_size_ != 0) {
      return Status::Error("litejet: " + path + " is " + std::to_string(st.st_size) +
                               " bytes: not a whole number of pages of " + std::to_string(page_size_),
                           kCorrupt);
    }
    db_pages_ = uint32_t(st.st_size / page_size_);
    return Status::OK();
  }
  uint32_t page_size() const override { return page_size_; }
  uint32_t db_pages() const override { return db_pages_; }
  Status Read(uint32_t pgno, void* buf) override {
    if (pgno == 0 || pgno > db_pages_) return Status::Error("litejet: " + path_ + ": no page " + std::to_string(pgno));
    ssize_t n = ::pread(fd_, buf, page_size_, off_t(pgno - 1) * page_size_);
    if (n != ssize_t(page_size_)) {
      return Status::Error("litejet: cannot read page " + std::to_string(pgno) + " of " + path_ + ": " +
                               (n < 0 ? Errno() : "short read"),
                           kIoErr);
    }
    return Status::OK();
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint32_t page_size_ = 0, db_pages_ = 0;
};

}  // namespace

Status OpenFileSource(const std::string& path, std::unique_ptr<PageSource>* out) {
  auto src = std::make_unique<FileSource>();
  Status s = src->Open(path);
  if (!s.ok()) return s;
  *out = std::move(src);
  return Status::OK();
}

FileBuilder::~FileBuilder() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

Status FileBuilder::Open(const std::string& target) {
  target_ = target;
  tmp_ = target + ".litejet-restore";
  fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) return Status::Error("litejet: cannot create " + tmp_ + ": " + Errno(), kCantOpen);
  return Status::OK();
}

Status FileBuilder::Reset() {
  if (::ftruncate(fd_, 0) != 0) return Status::Error("litejet: cannot truncate " + tmp_ + ": " + Errno(), kIoErr);
  return Status::OK();
}

Status FileBuilder::WritePages(uint32_t first_pgno, uint32_t page_size, const std::string& raw) {
  const char* p = raw.data();
  off_t off = off_t(first_pgno - 1) * page_size;
  for (size_t left = raw.size(); left > 0;) {
    ssize_t w = ::pwrite(fd_, p, left, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::Error("litejet: cannot write " + tmp_ + ": " + Errno(), kIoErr);
    p += w;
    off += w;
    left -= size_t(w);
  }
  return Status::OK();
}

Status FileBuilder::Truncate(uint32_t db_pages, uint32_t page_size) {
  if (::ftruncate(fd_, off_t(db_pages) * page_size) != 0) {
    return Status::Error("litejet: cannot size " + tmp_ + ": " + Errno(), kIoErr);
  }
  return Status::OK();
}

Status FileBuilder::Finish(uint32_t db_pages, uint32_t page_size, uint64_t want, bool sync,
                           std::vector<uint64_t>* hashes) {
  Status s = Truncate(db_pages, page_size);
  if (!s.ok()) return s;
  if (sync && ::fsync(fd_) != 0) return Status::Error("litejet: cannot sync " + tmp_ + ": " + Errno(), kIoErr);
  std::string page(page_size, '\0');
  uint64_t sum = 0;
  if (hashes) {
    hashes->clear();
    hashes->reserve(db_pages);
  }
  for (uint32_t pg = 1; pg <= db_pages; pg++) {
    if (::pread(fd_, page.data(), page_size, off_t(pg - 1) * page_size) != ssize_t(page_size)) {
      return Status::Error("litejet: cannot read " + tmp_ + ": " + Errno(), kIoErr);
    }
    const uint64_t h = checksum::PageHash(page.data(), page_size, pg);
    sum ^= h;
    if (hashes) hashes->push_back(h);
  }
  if (sum != want) {
    return Status::Error(
        "litejet: the restored pages sum to " + checksum::Hex(sum) + ", the log says " + checksum::Hex(want), kCorrupt);
  }
  // The replaced database's WAL, shm and sidecar would be applied to (or
  // describe) the new file: they go first.
  for (const char* ext : {"-wal", "-shm", "-litejet", "-litejet-log"}) {
    std::string p = target_ + ext;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
      return Status::Error("litejet: cannot remove " + p + ": " + Errno(), kIoErr);
    }
  }
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) {
    return Status::Error("litejet: cannot rename " + tmp_ + " to " + target_ + ": " + Errno(), kIoErr);
  }
  ::close(fd_);
  fd_ = -1;
  std::string dir = target_;
  int dfd = ::open(::dirname(dir.data()), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::OK();
}

}  // namespace litejet::snapshot
