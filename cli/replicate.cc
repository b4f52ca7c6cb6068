// `litejet replicate DB [--option value ...]`: runs DB's replication agent in
// the foreground, for hosts whose own processes are too short-lived to keep
// one (PHP, cron jobs, CLI tools): it opens DB through litejet with the
// options as URI parameters (--nats URL is nats=URL, --role R is role=R, any
// --key value or --key=value is key=value; the LITEJET_* environment fills
// in what is not given, as for any opener), prints the node's status once,
// and holds the database open until SIGINT or SIGTERM, when it closes it
// (releasing a lease it holds) and exits 0. A bad option or a database that
// cannot be opened: one line on stderr, exit 2 or 1.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/metrics.h"
#include "include/litejet.h"

namespace litejet::cli {

namespace {

std::string UriEscape(const std::string& v) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string o;
  for (unsigned char c : v) {
    if (std::isalnum(c) || std::strchr("-._~:/,@", c)) {
      o += char(c);
    } else {
      o += '%';
      o += kHex[c >> 4];
      o += kHex[c & 15];
    }
  }
  return o;
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "litejet: replicate: %s (usage: litejet replicate DB [--nats URL] [--role R] [--name N] ...)\n",
               why.c_str());
  return 2;
}

}  // namespace

int RunReplicate(int argc, char** argv) {
  std::string path, metrics_addr;
  std::vector<std::pair<std::string, std::string>> params;
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: litejet replicate DB [--nats URL] [--role auto|primary|replica] [--name NAME] [--node ID]\n"
          "                            [--metrics-addr HOST:PORT] [--key value ...]\n"
          "Runs DB's replication agent in the foreground until SIGINT or SIGTERM. Every --key value is the URI\n"
          "parameter key=value (see the README); LITEJET_* environment variables fill in the rest.\n");
      return 0;
    }
    if (a.rfind("--", 0) == 0) {
      std::string key = a.substr(2), value;
      size_t eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return Usage("option --" + key + " needs a value");
      }
      if (key.empty()) return Usage("empty option name");
      for (char c : key) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
          return Usage("bad option name --" + key);
      }
      if (key == "metrics_addr" || key == "metrics-addr") {
        metrics_addr = value;
        continue;
      }
      params.emplace_back(key, value);
    } else if (path.empty()) {
      path = a;
    } else {
      return Usage("unexpected argument \"" + a + "\"");
    }
  }
  if (path.empty()) return Usage("the database path is missing");

  std::string uri = "file:" + UriEscape(path);
  for (size_t i = 0; i < params.size(); i++) {
    uri += (i == 0 ? "?" : "&") + params[i].first + "=" + UriEscape(params[i].second);
  }
  // Signals are taken synchronously (sigwait), so block them first: every
  // thread the agent starts inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(sqlite3_litejet_init));
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, nullptr) !=
      SQLITE_OK) {
    std::fprintf(stderr, "litejet: replicate: cannot open %s: %s\n", path.c_str(),
                 db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return 1;
  }
  std::string status, why;
  if (!QueryText(db, "SELECT repl_status()", &status, &why)) {
    std::fprintf(stderr, "litejet: replicate: %s is not replicated: %s\n", path.c_str(), why.c_str());
    sqlite3_close(db);
    return 1;
  }
  MetricsServer metrics;
  if (!metrics_addr.empty()) {
    Status ms = metrics.Start(metrics_addr, [db] {
      std::string text, err;
      return QueryText(db, "SELECT repl_metrics()", &text, &err) ? text : "# litejet: " + err + "\n";
    });
    if (!ms.ok()) {
      std::fprintf(stderr, "litejet: replicate: %s\n", ms.message().c_str());
      sqlite3_close(db);
      return 2;
    }
  }
  std::printf("litejet: replicating %s: %s\n", path.c_str(), status.c_str());
  if (!metrics_addr.empty()) std::printf("litejet: serving /metrics on port %d\n", metrics.port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  std::printf("litejet: %s: stopping (%s)\n", path.c_str(), sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  metrics.Stop();
  sqlite3_close(db);
  return 0;
}

}  // namespace litejet::cli
