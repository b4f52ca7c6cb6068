// cli/nats_args.h: what the commands that read NATS (status, log) share: their
// options (--nats, --name, --prefix, credentials, --json, --timeout-ms), the
// validation of those as URI parameters, and their one-line errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "transport/log.h"

namespace litejet::cli {

using Clock = std::chrono::steady_clock;

// What one command accepts besides the shared options.
struct Command {
  const char* name;   // "status"
  const char* usage;  // printed by --help
  bool name_required = true;
  std::vector<std::string> flags;   // e.g. "--check"
  std::vector<std::string> values;  // options with a value, e.g. "--limit"
};

struct NatsArgs {
  std::string nats, name, prefix, creds, token, user, password, tls_ca, tls_cert, tls_key, nkey_seed, js_domain;
  bool json = false;
  int64_t timeout_ms = 5000;
  std::set<std::string> flags;                // the command's flags given
  std::map<std::string, std::string> values;  // the command's valued options given
};

// "--opt value" and "--opt=value". Returns -1 to go on, else the exit status:
// 0 after --help, 2 after a usage error (reported).
int ParseNatsArgs(const Command& c, int argc, char** argv, NatsArgs* a);

// Checks the options as the URI parameters are checked and fills *o (name
// empty when none was given). -1 to go on, else 2 (reported).
int NatsOptions(const Command& c, const NatsArgs& a, transport::Options* o);

// One line on stderr, "litejet: <command>: <why>" (a "litejet: " that why
// starts with is dropped, line breaks become spaces). Usage() returns 2.
int Usage(const Command& c, const std::string& why);
int Fail(const Command& c, const std::string& why, int status = 1);

// A URL list for a message: userinfo (it may hold a password) as ***.
std::string Redact(const std::string& urls);
// Text on one line of a plain report: control bytes escaped (\n, \t, \xNN).
std::string OneLine(const std::string& s);
// Milliseconds until deadline, at least 1.
int64_t MsLeft(Clock::time_point deadline);
// A whole number from lo to hi, or false.
bool ParseCount(const std::string& s, int64_t lo, int64_t hi, int64_t* out);

}  // namespace litejet::cli
