// cli/nats_args.cc: the options status and log share, checked as the URI
// parameters are (extension/config), and the one-line errors of both.
#include "cli/nats_args.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "extension/config.h"

namespace litejet::cli {

namespace {

std::string Flatten(const std::string& why) {
  std::string m = why.rfind("litejet: ", 0) == 0 ? why.substr(9) : why;  // one "litejet: " per line
  for (char& ch : m) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  return m;
}

}  // namespace

int Usage(const Command& c, const std::string& why) {
  std::fprintf(stderr, "litejet: %s: %s (see litejet %s --help)\n", c.name, Flatten(why).c_str(), c.name);
  return 2;
}

int Fail(const Command& c, const std::string& why, int status) {
  std::fprintf(stderr, "litejet: %s: %s\n", c.name, Flatten(why).c_str());
  return status;
}

std::string Redact(const std::string& urls) {
  std::string out;
  size_t begin = 0;
  for (;;) {
    size_t comma = urls.find(',', begin);
    std::string u = urls.substr(begin, comma == std::string::npos ? comma : comma - begin);
    size_t sep = u.find("://"), at = u.rfind('@');
    if (at != std::string::npos)
      u = u.substr(0, sep != std::string::npos && sep < at ? sep + 3 : 0) + "***" + u.substr(at);
    out += u;
    if (comma == std::string::npos) return out;
    out += ',';
    begin = comma + 1;
  }
}

std::string OneLine(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

int64_t MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 1 ? 1 : left;
}

bool ParseCount(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  if (s.empty() || s[0] == '-' || s[0] == '+' || s[0] == ' ') return false;
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || end == s.c_str() || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

int ParseNatsArgs(const Command& c, int argc, char** argv, NatsArgs* a) {
  struct Opt {
    const char* name;
    std::string* out;
  } opts[] = {{"--nats", &a->nats},         {"--name", &a->name},           {"--prefix", &a->prefix},
              {"--creds", &a->creds},       {"--token", &a->token},         {"--user", &a->user},
              {"--password", &a->password}, {"--tls-ca", &a->tls_ca},       {"--tls-cert", &a->tls_cert},
              {"--tls-key", &a->tls_key},   {"--nkey-seed", &a->nkey_seed}, {"--js-domain", &a->js_domain}};
  std::string timeout;
  for (int i = 0; i < argc; i++) {
    std::string arg = argv[i], value;
    bool inline_value = false;
    if (arg == "--help" || arg == "-h") {
      std::fputs(c.usage, stdout);
      return 0;
    }
    if (arg == "--json") {
      a->json = true;
      continue;
    }
    bool flag = false;
    for (const auto& f : c.flags) flag |= arg == f;
    if (flag) {
      a->flags.insert(arg);
      continue;
    }
    size_t eq = arg.find('=');
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      inline_value = true;
    }
    std::string* out = arg == "--timeout-ms" ? &timeout : nullptr;
    for (const Opt& o : opts) {
      if (arg == o.name) out = o.out;
    }
    for (const auto& v : c.values) {
      if (arg == v) out = &a->values[v];
    }
    if (!out) return Usage(c, "unknown option \"" + arg + "\"");
    if (!inline_value) {
      if (i + 1 >= argc) return Usage(c, "option " + arg + " needs a value");
      value = argv[++i];
    }
    *out = value;
  }
  if (a->nats.empty()) return Usage(c, "--nats URL is required");
  if (c.name_required && a->name.empty()) return Usage(c, "--name NAME is required");
  if (!timeout.empty() && !ParseCount(timeout, 1, 3600 * 1000, &a->timeout_ms)) {
    return Usage(c, "--timeout-ms must be a whole number of milliseconds from 1 to 3600000, got \"" + timeout + "\"");
  }
  return -1;
}

int NatsOptions(const Command& c, const NatsArgs& a, transport::Options* o) {
  // The CLI is no node: a fixed node id, so that a host name that is not a
  // valid one does not fail it. Without --name, a placeholder (unused).
  auto uri = [&a](const char* key) -> const char* {
    std::string k = key;
    if (k == "node") return "litejet-cli";
    if (k == "name" && a.name.empty()) return "_";
    const std::string* v = k == "nats"        ? &a.nats
                           : k == "name"      ? &a.name
                           : k == "prefix"    ? &a.prefix
                           : k == "creds"     ? &a.creds
                           : k == "token"     ? &a.token
                           : k == "user"      ? &a.user
                           : k == "password"  ? &a.password
                           : k == "tls_ca"    ? &a.tls_ca
                           : k == "tls_cert"  ? &a.tls_cert
                           : k == "tls_key"   ? &a.tls_key
                           : k == "nkey_seed" ? &a.nkey_seed
                           : k == "js_domain" ? &a.js_domain
                                              : nullptr;
    return v && !v->empty() ? v->c_str() : nullptr;
  };
  Config cfg;
  litejet::Status st = ParseConfig(uri, Lookup(), "", &cfg);
  if (!st.ok()) return Usage(c, st.message());
  *o = TransportOptions(cfg);
  if (a.name.empty()) o->name.clear();
  o->client_name = std::string("litejet:") + c.name + (o->name.empty() ? "" : ":" + o->name);
  return -1;
}

}  // namespace litejet::cli
