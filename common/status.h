// Status: the error value every litejet layer returns instead of throwing.
// It carries an SQLite result code and a message that names the thing and the cause.
#pragma once

#include <string>
#include <utility>

namespace litejet {

class Status {
 public:
  Status() = default;
  static Status OK() { return Status(); }
  // code is an SQLite result code (SQLITE_ERROR, SQLITE_CORRUPT, ...); 1 == SQLITE_ERROR.
  static Status Error(std::string msg, int code = 1) { return Status(code, std::move(msg)); }

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }
  const std::string& message() const { return msg_; }

 private:
  Status(int code, std::string msg) : code_(code), msg_(std::move(msg)) {}
  int code_ = 0;
  std::string msg_;
};

}  // namespace litejet
