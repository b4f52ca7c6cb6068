// snapshot/format.cc: the byte layout of snapshot chunks and manifests
// (snapshot.h), their encoders and verifying decoders.
#include <xxhash.h>
#include <zstd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "snapshot/snapshot.h"

namespace litejet::snapshot {

namespace {

constexpr int kCorrupt = 11;  // SQLITE_CORRUPT

void Put16(std::string* o, size_t at, uint16_t v) {
  for (int i = 0; i < 2; i++) (*o)[at + i] = char(v >> (8 * i));
}
void Put32(std::string* o, size_t at, uint32_t v) {
  for (int i = 0; i < 4; i++) (*o)[at + i] = char(v >> (8 * i));
}
void Put64(std::string* o, size_t at, uint64_t v) {
  for (int i = 0; i < 8; i++) (*o)[at + i] = char(v >> (8 * i));
}
uint16_t Get16(const unsigned char* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t Get32(const unsigned char* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
uint64_t Get64(const unsigned char* p) { return uint64_t(Get32(p)) | (uint64_t(Get32(p + 4)) << 32); }

bool ValidPageSize(uint32_t s) { return s >= 512 && s <= 65536 && (s & (s - 1)) == 0; }

Status Corrupt(const std::string& what, const std::string& why) {
  return Status::Error("litejet: snapshot " + what + ": " + why, kCorrupt);
}

}  // namespace

std::string IdHex(uint64_t id) {
  char b[17];
  std::snprintf(b, sizeof b, "%016" PRIx64, id);
  return b;
}

Status EncodeChunk(uint64_t id, uint32_t index, uint32_t first_pgno, uint32_t page_size, const std::string& raw,
                   std::string* out, int zstd_level) {
  if (!ValidPageSize(page_size) || raw.empty() || raw.size() % page_size != 0 || first_pgno == 0 ||
      raw.size() / page_size > UINT32_MAX - first_pgno) {
    return Status::Error("litejet: snapshot chunk: invalid pages (page size " + std::to_string(page_size) + ", " +
                         std::to_string(raw.size()) + " bytes from page " + std::to_string(first_pgno) + ")");
  }
  size_t bound = ZSTD_compressBound(raw.size());
  out->assign(kChunkHeaderSize + bound, '\0');
  size_t n = ZSTD_compress(&(*out)[kChunkHeaderSize], bound, raw.data(), raw.size(), zstd_level);
  if (ZSTD_isError(n)) return Status::Error(std::string("litejet: snapshot chunk: zstd: ") + ZSTD_getErrorName(n));
  out->resize(kChunkHeaderSize + n);
  Put32(out, 0, kChunkMagic);
  Put16(out, 4, kVersion);
  Put16(out, 6, 0);
  Put64(out, 8, id);
  Put32(out, 16, index);
  Put32(out, 20, first_pgno);
  Put32(out, 24, uint32_t(raw.size() / page_size));
  Put32(out, 28, page_size);
  Put64(out, 32, raw.size());
  Put64(out, 40, XXH64(raw.data(), raw.size(), 0));
  Put64(out, 48, n);
  Put64(out, 56, XXH64(out->data() + kChunkHeaderSize, n, 0));
  Put64(out, 64, XXH64(out->data(), 64, 0));
  return Status::OK();
}

Status DecodeChunk(const void* data, size_t n, ChunkHeader* hdr, std::string* raw) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (n < kChunkHeaderSize) {
    return Corrupt("chunk",
                   "truncated header (" + std::to_string(n) + " of " + std::to_string(kChunkHeaderSize) + " bytes)");
  }
  if (Get32(p) != kChunkMagic) return Corrupt("chunk", "bad magic (not a snapshot chunk)");
  if (Get16(p + 4) != kVersion) {
    return Corrupt("chunk", "version " + std::to_string(Get16(p + 4)) + " (this litejet reads version " +
                                std::to_string(kVersion) + ")");
  }
  if (Get64(p + 64) != XXH64(p, 64, 0)) return Corrupt("chunk", "header checksum mismatch");
  ChunkHeader h;
  h.id = Get64(p + 8);
  h.index = Get32(p + 16);
  h.first_pgno = Get32(p + 20);
  h.page_count = Get32(p + 24);
  h.page_size = Get32(p + 28);
  h.raw_len = Get64(p + 32);
  h.raw_xxh64 = Get64(p + 40);
  h.stored_len = Get64(p + 48);
  h.stored_xxh64 = Get64(p + 56);
  const std::string what = "chunk " + std::to_string(h.index);
  if (Get16(p + 6) != 0 || !ValidPageSize(h.page_size) || h.first_pgno == 0 || h.page_count == 0 ||
      h.raw_len != uint64_t(h.page_count) * h.page_size || h.raw_len > (uint64_t(1) << 30)) {
    return Corrupt(what, "invalid header fields");
  }
  if (n - kChunkHeaderSize < h.stored_len) {
    return Corrupt(what, "truncated (" + std::to_string(n - kChunkHeaderSize) + " of " + std::to_string(h.stored_len) +
                             " stored bytes)");
  }
  if (n - kChunkHeaderSize > h.stored_len) {
    return Corrupt(what, std::to_string(n - kChunkHeaderSize - h.stored_len) + " bytes after its end");
  }
  if (XXH64(p + kChunkHeaderSize, h.stored_len, 0) != h.stored_xxh64) {
    return Corrupt(what, "compressed bytes checksum mismatch");
  }
  unsigned long long size = ZSTD_getFrameContentSize(p + kChunkHeaderSize, h.stored_len);
  if (size != h.raw_len) return Corrupt(what, "zstd frame of the wrong size");
  std::string r(h.raw_len, '\0');
  size_t got = ZSTD_decompress(r.data(), r.size(), p + kChunkHeaderSize, h.stored_len);
  if (ZSTD_isError(got) || got != h.raw_len) return Corrupt(what, "zstd frame does not decompress");
  if (XXH64(r.data(), r.size(), 0) != h.raw_xxh64) return Corrupt(what, "pages checksum mismatch");
  *hdr = h;
  *raw = std::move(r);
  return Status::OK();
}

std::string EncodeManifest(const Manifest& m) {
  std::string o(kManifestSize, '\0');
  Put32(&o, 0, kManifestMagic);
  Put16(&o, 4, kVersion);
  Put64(&o, 8, m.id);
  Put64(&o, 16, m.txid);
  Put64(&o, 24, m.checksum);
  Put32(&o, 32, m.page_size);
  Put32(&o, 36, m.db_pages);
  Put32(&o, 40, m.chunk_count);
  Put64(&o, 48, m.log_seq);
  Put64(&o, 56, m.epoch);
  Put64(&o, 64, m.time_ms);
  Put64(&o, 72, m.commit_time_us);
  Put64(&o, 80, m.raw_bytes);
  Put64(&o, 88, m.stored_bytes);
  Put64(&o, 96, XXH64(o.data(), 96, 0));
  return o;
}

Status DecodeManifest(const void* data, size_t n, Manifest* out) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (n != kManifestSize) {
    return Corrupt("manifest", std::to_string(n) + " bytes, want " + std::to_string(kManifestSize));
  }
  if (Get32(p) != kManifestMagic) return Corrupt("manifest", "bad magic (not a snapshot manifest)");
  if (Get16(p + 4) != kVersion) {
    return Corrupt("manifest", "version " + std::to_string(Get16(p + 4)) + " (this litejet reads version " +
                                   std::to_string(kVersion) + ")");
  }
  if (Get64(p + 96) != XXH64(p, 96, 0)) return Corrupt("manifest", "checksum mismatch");
  Manifest m;
  m.id = Get64(p + 8);
  m.txid = Get64(p + 16);
  m.checksum = Get64(p + 24);
  m.page_size = Get32(p + 32);
  m.db_pages = Get32(p + 36);
  m.chunk_count = Get32(p + 40);
  m.log_seq = Get64(p + 48);
  m.epoch = Get64(p + 56);
  m.time_ms = Get64(p + 64);
  m.commit_time_us = Get64(p + 72);
  m.raw_bytes = Get64(p + 80);
  m.stored_bytes = Get64(p + 88);
  if (Get16(p + 6) != 0 || Get32(p + 44) != 0 || !ValidPageSize(m.page_size) || m.db_pages == 0 || m.chunk_count == 0 ||
      m.chunk_count > m.db_pages || m.txid == 0 || m.raw_bytes != uint64_t(m.db_pages) * m.page_size) {
    return Corrupt("manifest " + IdHex(m.id), "invalid fields");
  }
  *out = m;
  return Status::OK();
}

}  // namespace litejet::snapshot
