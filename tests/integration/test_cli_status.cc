// `litejet status` against a real nats-server: the log, lease and heartbeats
// are written here through the transport, then the CLI binary
// ($LITEJET_BUILD/litejet) is run and its text and JSON checked to the value.
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tests/harness/nats_server.h"
#include "transport/lease.h"
#include "transport/log.h"
#include "wal-capture/record.h"

// After the C++ headers: cmocka's fail() macro breaks <ios>.
extern "C" {
#include <cmocka.h>
}

extern char** environ;

namespace lt = litejet::transport;
using litejet::test::NatsServer;

namespace {

struct Run {
  int rc = -1;
  std::string out, err;
  double seconds = 0;
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string TempPath(const char* what) {
  return std::string("/tmp/litejet_cli_status_") + std::to_string(getpid()) + "_" + what;
}

// Runs a command with stdout and stderr captured in files.
Run Exec(const std::vector<std::string>& args) {
  Run r;
  const std::string out = TempPath("out"), err = TempPath("err");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = -1;
  int e = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (e != 0) fail_msg("cannot start %s: %s", argv[0], strerror(e));
  int status = 0;
  waitpid(pid, &status, 0);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out);
  r.err = Slurp(err);
  unlink(out.c_str());
  unlink(err.c_str());
  return r;
}

Run Status(std::vector<std::string> args) {
  const char* build = std::getenv("LITEJET_BUILD");
  args.insert(args.begin(), {std::string(build ? build : ".") + "/litejet", "status"});
  Run r = Exec(args);
  print_message("rc=%d (%.2f s)\n--- stdout\n%s--- stderr\n%s", r.rc, r.seconds, r.out.c_str(), r.err.c_str());
  return r;
}

// Checks a JSON text with Python's parser; expr is a Python expression over d.
void AssertJson(const std::string& json, const std::string& expr) {
  const char* py = std::getenv("PYTHON3");
  const std::string path = TempPath("json");
  std::ofstream(path) << json;
  Run r = Exec(
      {py && *py ? py : "/usr/bin/python3", "-c",
       "import json,sys\nd=json.load(open(sys.argv[1]))\nok=(" + expr + ")\nprint(d)\nsys.exit(0 if ok else 1)", path});
  unlink(path.c_str());
  if (r.rc != 0) fail_msg("JSON check failed: %s\n%s%s", expr.c_str(), r.out.c_str(), r.err.c_str());
}

void AssertOk(const litejet::Status& st) {
  if (!st.ok()) fail_msg("%s (code %d)", st.message().c_str(), st.code());
}

bool Has(const std::string& s, const std::string& part) {
  if (s.find(part) != std::string::npos) return true;
  print_error("missing: \"%s\"\n", part.c_str());
  return false;
}

int OneLine(const std::string& s) { return !s.empty() && s.find('\n') == s.size() - 1; }

int counter = 0;

lt::Options OptionsFor(const NatsServer& server) {
  lt::Options o;
  o.urls = {server.url()};
  o.name = "st" + std::to_string(++counter) + "_" + std::to_string(getpid());
  return o;
}

std::string Record(uint64_t txid, uint64_t epoch, size_t pages) {
  litejet::record::Txn t;
  t.txid = txid;
  t.epoch = epoch;
  t.node = "node-a";
  t.page_size = 4096;
  t.db_pages = static_cast<uint32_t>(pages ? pages : 1);
  for (size_t i = 0; i < pages; i++)
    t.pages.push_back({static_cast<uint32_t>(i + 1), std::string(4096, char('a' + i))});
  std::string rec;
  AssertOk(litejet::record::Encode(t, litejet::record::Compression::kNone, &rec));
  return rec;
}

// Publishes records 1..n whole, then (cut) the first chunk only of n+1.
void PublishLog(const lt::Options& o, uint64_t n, bool cut, uint64_t* seq) {
  std::unique_ptr<lt::Log> log;
  AssertOk(lt::OpenNats(o, &log));
  AssertOk(log->Ensure(10000));
  *seq = 0;
  for (uint64_t txid = 1; txid <= n + (cut ? 1 : 0); txid++) {
    std::vector<std::string> chunks;
    bool last = txid == n + 1;
    AssertOk(litejet::record::Split(Record(txid, 1, last ? 3 : 0), txid, last ? 2048 : 1 << 20, &chunks));
    if (last) assert_true(chunks.size() > 1);
    for (size_t i = 0; i < (last ? 1 : chunks.size()); i++) {
      AssertOk(log->Publish(chunks[i], *seq, "", 10000, seq));
    }
  }
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int StartServer(void** state) {
  std::string err;
  auto s = NatsServer::Start(&err);
  if (!s) {
    print_error("nats-server: %s\n", err.c_str());
    return -1;
  }
  *state = s.release();
  return 0;
}

int StopServer(void** state) {
  delete static_cast<NatsServer*>(*state);
  return 0;
}

// The whole picture: primary from the lease, the log's last complete TXID
// (a record cut between chunks does not count), both nodes with their lag.
void status_shows_primary_log_and_each_nodes_lag(void** state) {
  auto& server = *static_cast<NatsServer*>(*state);
  lt::Options o = OptionsFor(server);
  uint64_t seq = 0;
  PublishLog(o, 3, /*cut=*/true, &seq);
  assert_int_equal(seq, 4);  // txids 1..3 at seqs 1..3, the first chunk of txid 4 at seq 4

  std::unique_ptr<lt::LeaseStore> lease;
  std::unique_ptr<lt::NodeBoard> board;
  AssertOk(lt::OpenNatsLeases(o, 5000, &lease, &board));
  lt::Lease held;
  AssertOk(lease->Acquire("node-a", "host-a:5001", 10000, &held));
  const int64_t now = WallMs();
  lt::NodeState a{"node-a", "primary", "host-a:5001", 3, held.epoch, now, ""};
  lt::NodeState b{"node-b", "replica", "host-b:5001", 1, held.epoch, now - 2000, "link \"down\"\\ again\n\tx"};
  AssertOk(board->Put(a, 10000));
  AssertOk(board->Put(b, 10000));
  const std::string epoch = std::to_string(held.epoch);

  Run r = Status({"--nats", server.url(), "--name", o.name});
  assert_int_equal(r.rc, 0);
  assert_true(r.err.empty());
  assert_true(Has(r.out, "database  " + o.name + "\n"));
  assert_true(Has(r.out, "primary   node-a (advertise host-a:5001, epoch " + epoch + ")\n"));
  assert_true(Has(r.out, "log       txid 3 (seq 3)\n"));
  assert_true(Has(r.out, "nodes     2\n"));
  // One line per node: node, role, txid, lag, epoch, age.
  for (const auto& [node, role, txid, lag, min_age] :
       std::vector<std::tuple<std::string, std::string, unsigned, long, double>>{{"node-a", "primary", 3, 0, 0},
                                                                                 {"node-b", "replica", 1, 2, 2}}) {
    size_t at = r.out.find("\n  " + node + " ");
    assert_true(at != std::string::npos);
    at++;
    char rl[32];
    unsigned tx = 0, ep = 0;
    long lg = -1;
    double age = -1;
    std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    assert_int_equal(std::sscanf(line.c_str() + 2 + node.size(), " %31s %u %ld %u %lfs", rl, &tx, &lg, &ep, &age), 5);
    assert_string_equal(rl, role.c_str());
    assert_int_equal(tx, txid);
    assert_int_equal(lg, lag);
    assert_int_equal(ep, held.epoch);
    assert_true(age >= min_age && age < min_age + 10);
  }
  assert_true(Has(r.out, "  link \"down\"\\ again\\n\\tx\n"));  // last_error, escaped onto its line
  assert_int_equal(std::count(r.out.begin(), r.out.end(), '\n'), 7);

  r = Status({"--nats", server.url(), "--name", o.name, "--json"});
  assert_int_equal(r.rc, 0);
  assert_true(OneLine(r.out));
  AssertJson(r.out,
             "d['name']=='" + o.name + "' and d['primary']=={'node':'node-a','advertise':'host-a:5001','epoch':" +
                 epoch + "} and d['log']=={'txid':3,'seq':3} and len(d['nodes'])==2 and " +
                 "{k:v for k,v in d['nodes'][0].items() if k!='heartbeat_age_ms'}=={'node':'node-a','role':"
                 "'primary','txid':3,'lag_txns':0,'epoch':" +
                 epoch + ",'last_error':None} and " +
                 "{k:v for k,v in d['nodes'][1].items() if k!='heartbeat_age_ms'}=={'node':'node-b','role':"
                 "'replica','txid':1,'lag_txns':2,'epoch':" +
                 epoch +
                 ",'last_error':'link \"down\"\\\\ again\\n\\tx'}"
                 " and 0<=d['nodes'][0]['heartbeat_age_ms']<10000 and 2000<=d['nodes'][1]['heartbeat_age_ms']<12000");
}

// No lease, no heartbeats: "none" / null, and status creates no bucket.
void status_without_lease_says_none_and_creates_nothing(void** state) {
  auto& server = *static_cast<NatsServer*>(*state);
  lt::Options o = OptionsFor(server);
  uint64_t seq = 0;
  PublishLog(o, 2, /*cut=*/false, &seq);

  Run r = Status({"--nats", server.url(), "--name=" + o.name});
  assert_int_equal(r.rc, 0);
  assert_true(Has(r.out, "primary   none\n"));
  assert_true(Has(r.out, "log       txid 2 (seq 2)\n"));
  assert_true(Has(r.out, "nodes     0\n"));
  r = Status({"--json", "--nats", server.url(), "--name", o.name, "--timeout-ms", "8000"});
  assert_int_equal(r.rc, 0);
  AssertJson(r.out, "d=={'name':'" + o.name + "','primary':None,'log':{'txid':2,'seq':2},'nodes':[]}");

  std::string body;
  assert_int_equal(litejet::test::HttpGet(server.monitor_port(), "/jsz?streams=true", &body), 200);
  assert_true(Has(body, "\"litejet_" + o.name + "\""));
  assert_true(body.find("_lease") == std::string::npos && body.find("_nodes") == std::string::npos);
}

// A name nobody replicates: an error naming it, exit 1.
void status_of_unknown_database_is_an_error(void** state) {
  auto& server = *static_cast<NatsServer*>(*state);
  Run r = Status({"--nats", server.url(), "--name", "nobody_here"});
  assert_int_equal(r.rc, 1);
  assert_true(OneLine(r.err));
  assert_true(Has(r.err, "litejet: status: no database \"nobody_here\""));
  assert_true(r.out.empty());
}

void status_unreachable_is_one_line_and_exit_1_within_the_timeout(void**) {
  Run r = Status({"--nats", "nats://127.0.0.1:1", "--name", "db", "--timeout-ms", "1500"});
  assert_int_equal(r.rc, 1);
  assert_true(OneLine(r.err));
  assert_true(Has(r.err, "litejet: status: cannot reach NATS at nats://127.0.0.1:1"));
  assert_true(r.out.empty());
  assert_true(r.seconds < 1.5 + 2);
  // The password in a URL is not echoed.
  r = Status({"--nats", "nats://u:secret@127.0.0.1:1", "--name", "db", "--timeout-ms", "300"});
  assert_int_equal(r.rc, 1);
  assert_true(OneLine(r.err));
  assert_true(r.err.find("secret") == std::string::npos);
}

void status_bad_options_are_usage_errors(void**) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--name", "db"},
                                             {"--nats", "nats://127.0.0.1:1"},
                                             {"--nats", "nats://127.0.0.1:1", "--name", "a b"},
                                             {"--nats", "http://x", "--name", "db"},
                                             {"--nats", "nats://127.0.0.1:1", "--name", "db", "--bogus"},
                                             {"--nats", "nats://127.0.0.1:1", "--name", "db", "--timeout-ms", "0"},
                                             {"--nats"}}) {
    Run r = Status(args);
    assert_int_equal(r.rc, 2);
    assert_true(OneLine(r.err));
    assert_true(Has(r.err, "litejet: status: "));
    assert_true(r.seconds < 2);
  }
  assert_true(Has(Status({"--name", "db"}).err, "--nats URL is required"));
  assert_true(Has(Status({"--nats", "nats://127.0.0.1:1"}).err, "--name NAME is required"));
}

}  // namespace

int main() {
  lt::InitLibrary();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(status_shows_primary_log_and_each_nodes_lag, StartServer, StopServer),
      cmocka_unit_test_setup_teardown(status_without_lease_says_none_and_creates_nothing, StartServer, StopServer),
      cmocka_unit_test_setup_teardown(status_of_unknown_database_is_an_error, StartServer, StopServer),
      cmocka_unit_test(status_unreachable_is_one_line_and_exit_1_within_the_timeout),
      cmocka_unit_test(status_bad_options_are_usage_errors),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
