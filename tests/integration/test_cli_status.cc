// `litejet status` against a real nats-server: the log, lease and heartbeats
// are written here through the transport, then the CLI binary
// ($LITEJET_BUILD/litejet) is run and its text and JSON checked to the value.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "tests/harness/nats_server.h"
#include "tests/util/cli_run.h"
#include "transport/lease.h"
#include "transport/log.h"
#include "wal-capture/record.h"

// After the C++ headers: cmocka's fail() macro breaks <ios>.
extern "C" {
#include <cmocka.h>
}

namespace lt = litejet::transport;
using litejet::test::CliRun;
using litejet::test::NatsServer;

namespace {

using Run = CliRun;

Run Status(std::vector<std::string> args) {
  Run r = litejet::test::RunCli("status", std::move(args));
  print_message("rc=%d (%.2f s)\n--- stdout\n%s--- stderr\n%s", r.rc, r.seconds, r.out.c_str(), r.err.c_str());
  return r;
}

// Checks a JSON text with Python's parser; expr is a Python expression over d.
void AssertJson(const std::string& json, const std::string& expr) {
  std::string detail;
  if (!litejet::test::JsonHolds(json, expr, false, &detail)) {
    fail_msg("JSON check failed: %s\n%s", expr.c_str(), detail.c_str());
  }
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

// Without --name: every database under the prefix, sorted by name, each as
// --name would show it; --json gives an array of those objects.
void status_without_name_lists_every_database(void** state) {
  auto& server = *static_cast<NatsServer*>(*state);
  lt::Options a = OptionsFor(server), b = OptionsFor(server);
  uint64_t seq = 0;
  PublishLog(a, 3, /*cut=*/false, &seq);
  PublishLog(b, 2, /*cut=*/true, &seq);
  std::unique_ptr<lt::LeaseStore> lease;
  std::unique_ptr<lt::NodeBoard> board;
  AssertOk(lt::OpenNatsLeases(b, 5000, &lease, &board));
  lt::Lease held;
  AssertOk(lease->Acquire("node-b", "host-b:1", 10000, &held));
  AssertOk(board->Put({"node-b", "primary", "host-b:1", 2, held.epoch, WallMs(), ""}, 10000));
  if (b.name < a.name) std::swap(a, b);  // the order of the report

  Run r = Status({"--nats", server.url()});
  assert_int_equal(r.rc, 0);
  assert_true(r.err.empty());
  // Two blocks, separated by an empty line, in name order.
  size_t first = r.out.find("database  " + a.name + "\n"), second = r.out.find("database  " + b.name + "\n");
  assert_true(first == 0);
  assert_true(second != std::string::npos && r.out.substr(second - 2, 2) == "\n\n");
  assert_int_equal(std::count(r.out.begin(), r.out.end(), '\n'), 4 + 6 + 1);  // 4 lines, 6 lines (a node), blank
  // Each block is what --name shows.
  for (const auto& o : {a, b}) {
    Run one = Status({"--nats", server.url(), "--name", o.name});
    assert_int_equal(one.rc, 0);
    std::string block = one.out;
    // (The heartbeat's age may have changed between the two runs.)
    block = block.substr(0, block.find("  NODE"));
    assert_true(Has(r.out, block));
  }

  r = Status({"--nats", server.url(), "--json"});
  assert_int_equal(r.rc, 0);
  assert_true(OneLine(r.out));
  AssertJson(r.out,
             "[x['name'] for x in d]==sorted(['" + a.name + "','" + b.name + "']) and " +
                 "sorted((x['log']['txid'],x['log']['seq'],x['primary'] and x['primary']['node'],len(x['nodes']))"
                 " for x in d)==[(2,2,'node-b',1),(3,3,None,0)]");
}

// No database under the prefix (an empty server, or another prefix): said so, exit 0.
void status_without_name_and_no_database_says_so(void** state) {
  auto& server = *static_cast<NatsServer*>(*state);
  Run r = Status({"--nats", server.url()});
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.out.c_str(), ("no databases on NATS at " + server.url() + " (prefix litejet)\n").c_str());
  r = Status({"--nats", server.url(), "--json"});
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.out.c_str(), "[]\n");
  uint64_t seq = 0;
  PublishLog(OptionsFor(server), 1, false, &seq);
  r = Status({"--nats", server.url(), "--prefix", "other"});
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.out.c_str(), ("no databases on NATS at " + server.url() + " (prefix other)\n").c_str());
}

void status_unreachable_is_one_line_and_exit_1_within_the_timeout(void**) {
  Run r = Status({"--nats", "nats://127.0.0.1:1", "--name", "db", "--timeout-ms", "1500"});
  assert_int_equal(r.rc, 1);
  assert_true(OneLine(r.err));
  assert_true(Has(r.err, "litejet: status: cannot reach NATS at nats://127.0.0.1:1"));
  assert_true(r.out.empty());
  assert_true(r.seconds < 1.5 + 30);  // a hang guard; the duration is printed, not checked (loaded CI)
  // The password in a URL is not echoed.
  r = Status({"--nats", "nats://u:secret@127.0.0.1:1", "--name", "db", "--timeout-ms", "300"});
  assert_int_equal(r.rc, 1);
  assert_true(OneLine(r.err));
  assert_true(r.err.find("secret") == std::string::npos);
  // Without --name as well.
  r = Status({"--nats", "nats://u:secret@127.0.0.1:1", "--timeout-ms", "1000"});
  assert_int_equal(r.rc, 1);
  assert_true(OneLine(r.err));
  assert_true(Has(r.err, "litejet: status: cannot reach NATS at nats://***@127.0.0.1:1 within 1000 ms"));
  assert_true(r.err.find("secret") == std::string::npos);
  assert_true(r.out.empty());
  assert_true(r.seconds < 1 + 30);  // a hang guard; the duration is printed, not checked (loaded CI)
}

void status_bad_options_are_usage_errors(void**) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--name", "db"},
                                             {"--nats", "nats://127.0.0.1:1", "--name", "a b"},
                                             {"--nats", "http://x", "--name", "db"},
                                             {"--nats", "nats://127.0.0.1:1", "--name", "db", "--bogus"},
                                             {"--nats", "nats://127.0.0.1:1", "--name", "db", "--timeout-ms", "0"},
                                             {"--nats"}}) {
    Run r = Status(args);
    assert_int_equal(r.rc, 2);
    assert_true(OneLine(r.err));
    assert_true(Has(r.err, "litejet: status: "));
    assert_true(r.seconds < 30);  // a hang guard (a usage error contacts nothing); not a timing check
  }
  assert_true(Has(Status({"--name", "db"}).err, "--nats URL is required"));
  assert_true(Has(Status({"--nats", "nats://127.0.0.1:1", "--limit", "3"}).err, "unknown option \"--limit\""));
}

}  // namespace

int main() {
  lt::InitLibrary();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(status_shows_primary_log_and_each_nodes_lag, StartServer, StopServer),
      cmocka_unit_test_setup_teardown(status_without_lease_says_none_and_creates_nothing, StartServer, StopServer),
      cmocka_unit_test_setup_teardown(status_of_unknown_database_is_an_error, StartServer, StopServer),
      cmocka_unit_test_setup_teardown(status_without_name_lists_every_database, StartServer, StopServer),
      cmocka_unit_test_setup_teardown(status_without_name_and_no_database_says_so, StartServer, StopServer),
      cmocka_unit_test(status_unreachable_is_one_line_and_exit_1_within_the_timeout),
      cmocka_unit_test(status_bad_options_are_usage_errors),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
