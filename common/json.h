// A JSON string literal for any bytes: quotes and backslashes escaped,
// control characters as \u00XX; other bytes (UTF-8) pass through.
#pragma once

#include <cstdio>
#include <string>

namespace litejet {

inline std::string JsonString(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += char(c);
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += char(c);
    }
  }
  return o + "\"";
}

}  // namespace litejet
