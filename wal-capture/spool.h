// The spool "<db>-litejet-log": the local, append-only log of captured
// transactions, written in the committing process while it holds
// WAL_WRITE_LOCK. It is what the shipper sends and what survives a crash of
// the process before shipping. Each entry: u32 little-endian length, then one
// uncompressed log record (which carries its own hashes).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace litejet::spool {

class Spool {
 public:
  Spool() = default;
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  Status Open(const std::string& path);
  Status Append(const std::string& record);
  // Current size, and cutting an entry back off (its commit failed).
  uint64_t Size() const;
  Status Truncate(uint64_t size);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Calls fn(record, offset_of_entry) for every complete entry, in order. A
// truncated last entry (a torn append) ends the scan without error and sets
// *valid_end to where it starts; anything else malformed is an error.
Status Scan(const std::string& path, const std::function<Status(const std::string&, uint64_t)>& fn,
            uint64_t* valid_end = nullptr);

}  // namespace litejet::spool
