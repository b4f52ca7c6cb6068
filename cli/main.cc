// The litejet command-line tool: dispatches to the commands (cli/cli.h).
// Commands: status, replicate, log, restore, snapshot, verify, metrics, --help, --version.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/cli.h"
#include "include/litejet.h"

namespace {

const char kUsage[] =
    "usage: litejet <command> [options]\n"
    "\n"
    "commands:\n"
    "  replicate DB [--nats URL] [--role R] [--metrics-addr HOST:PORT] [...]\n"
    "                                               run the replication agent for DB (serving /metrics)\n"
    "  restore DB --nats URL --name NAME [--txid T | --time UTC] [--force]\n"
    "                                               build DB from a snapshot and the log (restore --help)\n"
    "  snapshot DB --nats URL --name NAME           publish a snapshot of DB at rest (snapshot --help)\n"
    "  status --nats URL [--name NAME] [--json]     show the cluster (status --help)\n"
    "  verify DB [--nats URL --name NAME]           check DB against the log (verify --help)\n"
    "  log --nats URL --name NAME [--check]         recent transactions (log --help)\n"
    "  metrics DB...                                replication figures in Prometheus' text format\n"
    "\n"
    "options:\n"
    "  --help      show this help\n"
    "  --version   show the version\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version" || cmd == "version") {
    std::printf("litejet %s (SQLite %s)\n", litejet_version(), sqlite3_libversion());
    return 0;
  }
  if (cmd == "status") return litejet::cli::RunStatus(argc - 2, argv + 2);
  if (cmd == "replicate") return litejet::cli::RunReplicate(argc - 2, argv + 2);
  if (cmd == "log") return litejet::cli::RunLog(argc - 2, argv + 2);
  if (cmd == "restore") return litejet::cli::RunRestore(argc - 2, argv + 2);
  if (cmd == "snapshot") return litejet::cli::RunSnapshot(argc - 2, argv + 2);
  if (cmd == "verify") return litejet::cli::RunVerify(argc - 2, argv + 2);
  if (cmd == "metrics") return litejet::cli::RunMetrics(argc - 2, argv + 2);
  std::fprintf(stderr, "litejet: unknown command \"%s\" (try --help)\n", cmd.c_str());
  return 2;
}
