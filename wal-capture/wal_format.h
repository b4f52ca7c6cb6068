// SQLite's WAL and wal-index byte layouts, named as in src/wal.c so a reader
// can cross-check: the WAL header, frame headers and the WAL checksum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace litejet::wal {

constexpr uint32_t WAL_MAGIC = 0x377f0682;  // | 1 when checksums are big-endian
constexpr int WAL_HDRSIZE = 32;
constexpr int WAL_FRAME_HDRSIZE = 24;
constexpr uint32_t WAL_MAX_VERSION = 3007000;

// xShmLock slots (offsets), as in wal.c.
constexpr int WAL_WRITE_LOCK = 0;
constexpr int WAL_CKPT_LOCK = 1;
constexpr int WAL_RECOVER_LOCK = 2;
constexpr int WAL_READ_LOCK0 = 3;
constexpr int WAL_NREADER = 5;

inline uint32_t Get4(const void* p) {  // big-endian, as every WAL integer
  const uint8_t* b = static_cast<const uint8_t*>(p);
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}
inline void Put4(void* p, uint32_t v) {
  uint8_t* b = static_cast<uint8_t*>(p);
  b[0] = uint8_t(v >> 24);
  b[1] = uint8_t(v >> 16);
  b[2] = uint8_t(v >> 8);
  b[3] = uint8_t(v);
}

struct WalHeader {
  uint32_t magic, version, page_size, ckpt_seq, salt1, salt2, cksum1, cksum2;
  bool big_endian_cksum() const { return magic & 1; }
};

inline bool ParseWalHeader(const void* p, WalHeader* h) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  h->magic = Get4(b);
  h->version = Get4(b + 4);
  h->page_size = Get4(b + 8);
  h->ckpt_seq = Get4(b + 12);
  h->salt1 = Get4(b + 16);
  h->salt2 = Get4(b + 20);
  h->cksum1 = Get4(b + 24);
  h->cksum2 = Get4(b + 28);
  if ((h->magic & ~1u) != WAL_MAGIC || h->version != WAL_MAX_VERSION) return false;
  // Page size 65536 is stored as 65536 in the WAL header (unlike the db header).
  uint32_t ps = h->page_size;
  return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0;
}

struct FrameHeader {
  uint32_t pgno, db_size_after_commit, salt1, salt2, cksum1, cksum2;
  bool is_commit() const { return db_size_after_commit != 0; }
};

inline FrameHeader ParseFrameHeader(const void* p) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  return FrameHeader{Get4(b), Get4(b + 4), Get4(b + 8), Get4(b + 12), Get4(b + 16), Get4(b + 20)};
}

// Byte offset of frame iFrame (1-based) in the WAL file.
inline int64_t FrameOffset(uint32_t iFrame, uint32_t page_size) {
  return WAL_HDRSIZE + int64_t(iFrame - 1) * (WAL_FRAME_HDRSIZE + page_size);
}

// walChecksumBytes: the Fibonacci-weighted checksum over 8-byte units,
// continuing from (*s1, *s2). native == checksum in machine byte order.
inline void WalChecksum(bool native, const void* data, size_t n, uint32_t* s1, uint32_t* s2) {
  const uint8_t* b = static_cast<const uint8_t*>(data);
  uint32_t a = *s1, c = *s2;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint32_t x, y;
    std::memcpy(&x, b + i, 4);
    std::memcpy(&y, b + i + 4, 4);
    if (!native) {
      x = __builtin_bswap32(x);
      y = __builtin_bswap32(y);
    }
    a += x + c;
    c += y + a;
  }
  *s1 = a;
  *s2 = c;
}

// True when the checksums in a WAL header with magic m are in this machine's
// byte order (little-endian x86: magic 0x377f0682).
inline bool NativeChecksum(uint32_t magic) {
  const bool big = (magic & 1) != 0;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return big;
#else
  return !big;
#endif
}

}  // namespace litejet::wal
