// Page hashing and the from-scratch checksum of a database file.
#include "wal-capture/checksum.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace litejet::checksum {

uint64_t PageHash(const void* page, uint32_t page_size, uint32_t pgno) {
  return XXH3_64bits_withSeed(page, page_size, pgno);
}

uint64_t ZeroPageHash(uint32_t page_size, uint32_t pgno) {
  // Static storage without a destructor: hashes are still taken by the exit
  // handler (the backlog's hand-off) after static destructors ran.
  static const char zeros[65536] = {};
  return XXH3_64bits_withSeed(zeros, page_size, pgno);
}

std::string Hex(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016" PRIx64, v);
  return b;
}

Status HashFile(const std::string& path, std::vector<uint64_t>* hashes, uint32_t* page_size_out) {
  hashes->clear();
  *page_size_out = 0;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("litejet: cannot open " + path + ": " + std::strerror(errno), 14);
  off_t size = ::lseek(fd, 0, SEEK_END);
  Status s;
  if (size > 0) {
    unsigned char hdr[100];
    uint32_t page_size = 0;
    if (::pread(fd, hdr, sizeof hdr, 0) == ssize_t(sizeof hdr)) {
      page_size = (uint32_t(hdr[16]) << 8) | hdr[17];
      if (page_size == 1) page_size = 65536;
    }
    if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1))) {
      s = Status::Error("litejet: " + path + " is not a SQLite database (bad header)", 26);
    } else {
      uint32_t pages = uint32_t(size / page_size);
      std::vector<char> buf(page_size);
      hashes->reserve(pages);
      for (uint32_t pgno = 1; pgno <= pages && s.ok(); pgno++) {
        if (::pread(fd, buf.data(), page_size, off_t(pgno - 1) * page_size) != ssize_t(page_size)) {
          s = Status::Error("litejet: " + path + ": read error", 10);
        } else {
          hashes->push_back(PageHash(buf.data(), page_size, pgno));
        }
      }
      *page_size_out = page_size;
    }
  }
  ::close(fd);
  return s;
}

Status OfFile(const std::string& path, uint64_t* out, uint32_t* db_pages_out, uint32_t* page_size_out) {
  std::vector<uint64_t> hashes;
  uint32_t page_size = 0;
  Status s = HashFile(path, &hashes, &page_size);
  if (!s.ok()) return s;
  uint64_t sum = 0;
  for (uint64_t h : hashes) sum ^= h;
  *out = sum;
  if (db_pages_out) *db_pages_out = uint32_t(hashes.size());
  if (page_size_out) *page_size_out = page_size;
  return Status::OK();
}

}  // namespace litejet::checksum
