// Position checksum: XOR over all pages of XXH3_64bits_withSeed(page, size, pgno).
// Updated incrementally from per-page hashes; recomputed from scratch to check.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace litejet::checksum {

uint64_t PageHash(const void* page, uint32_t page_size, uint32_t pgno);

// Hash of an all-zero page (a page the database grew over without writing).
uint64_t ZeroPageHash(uint32_t page_size, uint32_t pgno);

// Page hashes of a plain database file (no WAL content): hashes[i] is the
// hash of page i+1. Reads the page size from the database header.
Status HashFile(const std::string& path, std::vector<uint64_t>* hashes, uint32_t* page_size);

// Checksum of a plain database file (no WAL content): the first db_pages
// pages of page_size bytes. Reads page size and size from the header when 0.
Status OfFile(const std::string& path, uint64_t* out, uint32_t* db_pages = nullptr, uint32_t* page_size = nullptr);

// "%016llx"
std::string Hex(uint64_t v);

}  // namespace litejet::checksum
