// cli/verify.cc: `litejet verify DB`: the local database's position (TXID
// and checksum) against the log's record at that TXID.
//
// Where the local position comes from: the sidecar (DB-litejet) holds the
// TXID and the checksum the node maintains page by page; when DB has no WAL
// content (no DB-wal, or an empty one) the checksum is also computed from
// the file itself, which catches a file changed behind litejet's back (its
// sidecar then disagrees). Without a sidecar the file's checksum is looked
// up in the log. A live database's WAL is not read: its sidecar is the truth.
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/nats_args.h"
#include "common/json.h"
#include "snapshot/snapshot.h"
#include "wal-capture/checksum.h"
#include "wal-capture/sidecar.h"

namespace litejet::cli {

namespace {

const char kVerifyUsage[] =
    "usage: litejet verify DB [--nats URL] [--name NAME] [--json]\n"
    "\n"
    "Checks DB's TXID and checksum against the log's record at that TXID. The position is\n"
    "the sidecar's (DB-litejet); when DB has no WAL content the file's own checksum must\n"
    "equal it too. Without a sidecar, the file's checksum must be some TXID's in the log.\n"
    "\n"
    "  --nats URL     NATS servers (default: $LITEJET_NATS_URL)\n"
    "  --name NAME    replication name (default: $LITEJET_NAME, else DB's file name\n"
    "                 without directory and extension)\n"
    "  --json         one JSON object\n"
    "  --prefix P, --timeout-ms N, credentials and TLS as for litejet log\n"
    "\n"
    "exit status: 0 DB matches the log, 1 it differs (the message names the TXID and\n"
    "both checksums) or DB cannot be read, 2 bad usage, 3 NATS unreachable or no such\n"
    "database\n";

const Command kVerify{"verify", kVerifyUsage, true, {}, {}};
constexpr int kDiffers = 1, kUnreachable = 3;

bool Size(const std::string& p, off_t* size) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return false;
  *size = st.st_size;
  return true;
}

std::string DefaultName(const std::string& db) {
  std::string base = db.substr(db.find_last_of('/') == std::string::npos ? 0 : db.find_last_of('/') + 1);
  size_t dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

}  // namespace

int RunVerify(int argc, char** argv) {
  const Command& c = kVerify;
  std::string db;
  std::vector<std::string> args;
  bool has_nats = false, has_name = false;
  for (int i = 0; i < argc; i++) {
    std::string s = argv[i];
    if (s == "--help" || s == "-h") {
      std::fputs(c.usage, stdout);
      return 0;
    }
    if (s.rfind("--", 0) == 0) {
      has_nats |= s.rfind("--nats", 0) == 0;
      has_name |= s.rfind("--name", 0) == 0;
      args.push_back(s);
      if (s != "--json" && s.find('=') == std::string::npos && i + 1 < argc) args.push_back(argv[++i]);
      continue;
    }
    if (!db.empty()) return Usage(c, "one database file, got \"" + db + "\" and \"" + s + "\"");
    db = s;
  }
  if (db.empty()) return Usage(c, "DB (the database file) is required");
  if (!has_nats && std::getenv("LITEJET_NATS_URL"))
    args.insert(args.end(), {"--nats", std::getenv("LITEJET_NATS_URL")});
  if (!has_name)
    args.insert(args.end(), {"--name", std::getenv("LITEJET_NAME") ? std::getenv("LITEJET_NAME") : DefaultName(db)});
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  NatsArgs a;
  int rc = ParseNatsArgs(c, int(argp.size()), argp.data(), &a);
  if (rc >= 0) return rc;
  transport::Options o;
  rc = NatsOptions(c, a, &o);
  if (rc >= 0) return rc;

  // --json: a verdict object on stdout too, when the answer is "differs".
  auto fail = [&](const std::string& why, int status) {
    if (a.json) {
      std::string w = why.rfind("litejet: ", 0) == 0 ? why.substr(9) : why;
      std::printf("{\"db\":%s,\"ok\":false,\"error\":%s}\n", JsonString(db).c_str(), JsonString(w).c_str());
    }
    return Fail(c, why, status);
  };
  off_t size = 0, wal = 0;
  if (!Size(db, &size)) return fail("cannot open " + db + ": no such file", kDiffers);
  const bool at_rest = !Size(db + "-wal", &wal) || wal == 0;
  uint64_t file_sum = 0;
  if (at_rest) {
    litejet::Status st = checksum::OfFile(db, &file_sum);
    if (!st.ok()) return fail(st.message(), kDiffers);
  }
  bool has_sidecar = Size(db + "-litejet", &wal);
  uint64_t txid = 0, sum = file_sum, hint_seq = 0;
  if (has_sidecar) {
    sidecar::Sidecar sc;
    bool created = false;
    litejet::Status st = sc.Open(db + "-litejet", &created);
    if (!st.ok()) return fail(st.message(), kDiffers);
    sidecar::Position p = sc.Read();
    txid = p.txid;
    sum = p.checksum;
    hint_seq = p.log_seq;
    if (at_rest && file_sum != sum) {
      return fail(db + " at TXID " + std::to_string(txid) + ": the file's pages sum to " + checksum::Hex(file_sum) +
                      ", its sidecar says " + checksum::Hex(sum) + " (changed behind litejet's back)",
                  kDiffers);
    }
  } else if (!at_rest) {
    return fail(db + " has no sidecar (" + db + "-litejet) and WAL content: checkpoint it first", kDiffers);
  }

  litejet::Status st = transport::InitLibrary();
  std::unique_ptr<transport::Log> log;
  if (st.ok()) st = transport::OpenNats(o, &log);
  uint64_t first = 0, last = 0;
  if (st.ok()) st = log->Range(a.timeout_ms, &first, &last);
  if (st.code() == transport::kNoStream) {
    return fail("no database \"" + o.name + "\": stream " + o.prefix + "_" + o.name + " not found", kUnreachable);
  }
  if (!st.ok())
    return fail(
        "cannot reach NATS: " + (st.message().rfind("litejet: ", 0) == 0 ? st.message().substr(9) : st.message()),
        kUnreachable);
  bool found = false;
  uint64_t log_sum = 0, first_txid = 0, last_txid = 0;
  if (has_sidecar) {
    // The sidecar's log_seq is where its TXID's record is (or just before it).
    snapshot::FoundRecord fr;
    st = snapshot::FindRecord(*log, txid, hint_seq, a.timeout_ms, &fr);
    found = fr.found;
    log_sum = fr.txn.checksum_after;
    first_txid = fr.first_txid;
    last_txid = fr.last_txid;
  } else {
    st = snapshot::ScanLog(*log, first, last, a.timeout_ms, [&](const record::Txn& t, const snapshot::LogPos&, bool*) {
      if (!t.epoch_marker && t.checksum_after == sum) {
        found = true;
        txid = t.txid;
        log_sum = t.checksum_after;
      }
      return litejet::Status::OK();
    });
  }
  if (!st.ok()) return fail(st.message(), st.code() == transport::kUnavailable ? kUnreachable : kDiffers);
  const char* source = has_sidecar ? (at_rest ? "sidecar and file" : "sidecar") : "file";
  if (!found) {
    if (!has_sidecar) {
      return fail(
          "no transaction in the log of \"" + o.name + "\" has the checksum of " + db + " (" + checksum::Hex(sum) + ")",
          kDiffers);
    }
    if (txid == 0 && sum == 0) {
      // An empty database at TXID 0: nothing to compare.
    } else if (txid > last_txid) {
      return fail(db + " is at TXID " + std::to_string(txid) + " but the log of \"" + o.name + "\" ends at TXID " +
                      std::to_string(last_txid),
                  kDiffers);
    } else {
      return fail("TXID " + std::to_string(txid) + " of " + db + " is no longer in the log of \"" + o.name +
                      "\" (it starts at TXID " + std::to_string(first_txid) + ")",
                  kDiffers);
    }
  } else if (log_sum != sum) {
    return fail(db + " at TXID " + std::to_string(txid) + " has checksum " + checksum::Hex(sum) + ", the log has " +
                    checksum::Hex(log_sum),
                kDiffers);
  }
  if (a.json) {
    std::printf("{\"db\":%s,\"txid\":%" PRIu64 ",\"checksum\":\"%s\",\"source\":\"%s\",\"ok\":true}\n",
                JsonString(db).c_str(), txid, checksum::Hex(sum).c_str(), source);
  } else {
    std::printf("%s: TXID %" PRIu64 ", checksum %s (from the %s) matches the log\n", db.c_str(), txid,
                checksum::Hex(sum).c_str(), source);
  }
  return 0;
}

}  // namespace litejet::cli
