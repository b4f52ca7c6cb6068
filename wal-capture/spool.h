// The spool "<db>-litejet-log": committed transactions that are not shipped
// yet and that the WAL is about to lose (see local_log.h), and the record of
// a sync commit being shipped before its commit frame is written. Written
// while holding WAL_WRITE_LOCK. Each entry: u32 little-endian length, then
// either one uncompressed log record (which carries its own hashes) or a
// segment: commits copied verbatim from the WAL (SegmentHeader, the commits'
// ring entries, then their frames as they were in the WAL).
//
// The file is preallocated and reused: where the valid entries end is not
// the file's size but the spool end kept in the sidecar (advanced only when a
// commit completes), so an entry of a commit that failed or whose process
// died is simply overwritten by the next one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace litejet::spool {

class Spool {
 public:
  Spool() = default;
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  Status Open(const std::string& path);
  // Writes one entry at offset at (the current spool end); *end is set to the
  // offset after it. Grows the file in large steps so that commits rarely
  // allocate.
  Status Write(const std::string& record, uint64_t at, uint64_t* end);
  // Writes several entries at once, from offset at.
  Status WriteMany(const std::vector<std::string>& records, uint64_t at, uint64_t* end);
  // Writes one segment entry at offset at: head (SegmentHeader + entries)
  // followed by n bytes of src_fd from src_off, copied by the kernel.
  Status WriteSegment(const std::string& head, int src_fd, uint64_t src_off, uint64_t n, uint64_t at, uint64_t* end);
  // Moves [from, end) to the front (the shipped entries before it are
  // dropped). Call under WAL_WRITE_LOCK, with from >= end - from.
  Status Compact(uint64_t from, uint64_t end);
  const std::string& path() const { return path_; }
  // fdatasync: what was written is on disk.
  Status Sync();

 private:
  Status Reserve(uint64_t end);

  std::string path_;
  int fd_ = -1;
  uint64_t allocated_ = 0;  // file size as last seen
};

// A segment entry's header (this machine's byte order: the spool is local).
struct SegmentHeader {
  uint32_t magic;  // kSegmentMagic
  uint32_t version;
  uint32_t count;  // ring entries that follow (64 bytes each)
  uint32_t page_size;
  uint32_t first_frame, last_frame;  // the frames that follow the entries
};
constexpr uint32_t kSegmentMagic = 0x47534A4C;  // "LJSG"

// Reads the entry at *off if it ends at or before end; advances *off.
// Returns false (no error) when no complete entry is there.
bool ReadEntry(int fd, uint64_t end, uint64_t* off, std::string* rec);

// Calls fn(record, offset_of_entry) for every entry in [0, end), in order.
// end = UINT64_MAX: up to the file's size, stopping at a torn entry.
Status Scan(const std::string& path, uint64_t end, const std::function<Status(const std::string&, uint64_t)>& fn);

}  // namespace litejet::spool
