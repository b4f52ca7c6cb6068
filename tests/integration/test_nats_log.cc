// The JetStream Log against real nats-server processes: the conformance checks
// on one server, a restart while publishing and reading, opening while the
// server is down, and an R3 stream on a 3-node cluster that loses its leader.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}
#include <nats/nats.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/nats_server.h"
#include "transport/log.h"
#include "transport/log_conformance.h"

namespace lt = litejet::transport;
namespace conf = litejet::transport::conformance;
using litejet::test::NatsCluster;
using litejet::test::NatsServer;

namespace {

struct Fixture {
  std::unique_ptr<NatsServer> server;
  std::unique_ptr<NatsCluster> cluster;
  std::vector<std::unique_ptr<lt::Log>> logs;  // freed by teardown even if an assert longjmps
};

void AssertOk(const litejet::Status& st) {
  if (!st.ok()) print_error("%s (code %d)\n", st.message().c_str(), st.code());
  assert_true(st.ok());
}

int counter = 0;

lt::Options OptionsFor(const std::vector<std::string>& urls, int replicas = 1) {
  lt::Options o;
  o.urls = urls;
  o.name = "t" + std::to_string(++counter) + "_" + std::to_string(getpid());
  o.stream_replicas = replicas;
  o.client_name = "litejet:test:" + o.name;
  return o;
}

std::vector<std::string> Split(const std::string& csv) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= csv.size()) {
    size_t e = csv.find(',', b);
    if (e == std::string::npos) e = csv.size();
    if (e > b) out.push_back(csv.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

// Every call opens another Log (another "node") on the same stream.
conf::Opener OpenerFor(const lt::Options& o) {
  return [o]() -> std::unique_ptr<lt::Log> {
    std::unique_ptr<lt::Log> log;
    litejet::Status st = lt::OpenNats(o, &log);
    if (!st.ok()) {
      print_error("OpenNats: %s\n", st.message().c_str());
      return lt::NewMemoryLog(lt::NewMemoryStore(0));  // fails every check loudly
    }
    return log;
  };
}

bool WaitFor(const std::function<bool()>& cond, double seconds) {
  auto deadline = conf::Clock::now() + std::chrono::duration<double>(seconds);
  while (!cond()) {
    if (conf::Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

int StartServer(void** state) {
  auto* f = new Fixture;
  std::string err;
  f->server = NatsServer::Start(&err);
  if (!f->server) {
    print_error("NatsServer::Start: %s\n", err.c_str());
    delete f;
    return -1;
  }
  *state = f;
  return 0;
}

int StartCluster(void** state) {
  auto* f = new Fixture;
  std::string err;
  f->cluster = NatsCluster::Start(3, &err);
  if (!f->cluster) {
    print_error("NatsCluster::Start: %s\n", err.c_str());
    delete f;
    return -1;
  }
  *state = f;
  return 0;
}

int Teardown(void** state) {
  delete static_cast<Fixture*>(*state);
  *state = nullptr;
  return 0;
}

int NoFixture(void** state) {
  *state = new Fixture;
  return 0;
}

Fixture& F(void** state) { return *static_cast<Fixture*>(*state); }
conf::Opener Single(void** state) { return OpenerFor(OptionsFor({F(state).server->url()})); }

// --- conformance on one server ------------------------------------------------
void ensure_is_idempotent(void** state) { AssertOk(conf::EnsureIdempotent(Single(state))); }
void stale_writer_is_fenced(void** state) { AssertOk(conf::FencedChain(Single(state))); }
void retry_with_same_msg_id_returns_original_seq(void** state) { AssertOk(conf::DedupeRetry(Single(state))); }
void read_from_any_position_in_order(void** state) { AssertOk(conf::ReadPositions(Single(state))); }
void range_follows_appends(void** state) { AssertOk(conf::RangeFollowsAppends(Single(state))); }
void purge_below_keeps_the_rest(void** state) { AssertOk(conf::PurgeBelowKeepsTheRest(Single(state))); }
void concurrent_reader_sees_every_message_once(void** state) {
  AssertOk(conf::ConcurrentReadWrite(Single(state), 2000));
}
void racing_writers_have_one_winner_per_seq(void** state) { AssertOk(conf::RacingWriters(Single(state), 4, 100)); }
void simultaneous_writers_have_one_winner_per_round(void** state) {
  AssertOk(conf::SimultaneousWriters(Single(state), 4, 200));
}
void bulk_messages_read_back_in_order(void** state) {
  double pub = 0, read = 0;
  AssertOk(conf::Bulk(Single(state), 20000, &pub, &read));
  print_message("nats log, 20000 x 46 B: publish %.0f msg/s (sync, one at a time), read %.0f msg/s\n", pub, read);
  assert_true(read >= 5000);
}
void large_message_round_trips(void** state) {
  AssertOk(conf::LargeMessage(Single(state), 900 * 1024));
  std::unique_ptr<lt::Log> log;
  AssertOk(lt::OpenNats(OptionsFor({F(state).server->url()}), &log));
  assert_int_equal(log->MaxPayload(), (1 << 20) - lt::kHeaderReserve);
}

void ensure_rejects_an_incompatible_stream(void** state) {
  // A stream with litejet's name exists but holds other subjects: not ours to use.
  lt::Options o = OptionsFor({F(state).server->url()});
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  assert_int_equal(natsConnection_ConnectTo(&nc, F(state).server->url().c_str()), NATS_OK);
  assert_int_equal(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  std::string stream = "litejet_handmade" + std::to_string(getpid());
  const char* subjects[] = {"elsewhere.>"};
  cfg.Name = stream.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  jsStreamInfo* si = nullptr;
  natsStatus s = js_AddStream(&si, js, &cfg, nullptr, nullptr);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  assert_int_equal(s, NATS_OK);
  o.name = "handmade" + std::to_string(getpid());
  std::unique_ptr<lt::Log> bad;
  AssertOk(lt::OpenNats(o, &bad));
  litejet::Status st = bad->Ensure(5000);
  print_message("incompatible: %s\n", st.message().c_str());
  assert_false(st.ok());
  assert_true(st.message().find("does not hold subject litejet.handmade") != std::string::npos);
}

// A stream made by hand (not through the Log), on the fixture's server.
void AddStream(void** state, const std::string& name, const std::string& subject) {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  assert_int_equal(natsConnection_ConnectTo(&nc, F(state).server->url().c_str()), NATS_OK);
  assert_int_equal(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {subject.c_str()};
  cfg.Name = name.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  jsStreamInfo* si = nullptr;
  natsStatus s = js_AddStream(&si, js, &cfg, nullptr, nullptr);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  assert_int_equal(s, NATS_OK);
}

void range_of_a_missing_stream_is_no_stream(void** state) {
  std::unique_ptr<lt::Log> log;
  AssertOk(lt::OpenNats(OptionsFor({F(state).server->url()}), &log));
  uint64_t first = 0, last = 0;
  litejet::Status st = log->Range(5000, &first, &last);
  print_message("missing: %s\n", st.message().c_str());
  assert_int_equal(st.code(), lt::kNoStream);
}

// Under a prefix of its own: the logs made through the Log, not a stream
// that only starts alike (other subject, a longer prefix's log, a KV bucket).
void list_databases_names_only_the_prefixs_logs(void** state) {
  const std::string prefix = "lst" + std::to_string(getpid());
  lt::Options o = OptionsFor({F(state).server->url()});
  o.prefix = prefix;
  std::vector<std::string> names;
  AssertOk(lt::ListNatsDatabases(o, 5000, &names));
  assert_true(names.empty());
  for (const char* db : {"zeta", "alpha_1", "b-2"}) {
    lt::Options one = o;
    one.name = db;
    std::unique_ptr<lt::Log> log;
    AssertOk(lt::OpenNats(one, &log));
    AssertOk(log->Ensure(5000));
  }
  AddStream(state, prefix + "_fake", prefix + "_elsewhere.fake");
  AddStream(state, prefix + "_more_db", prefix + "_more.db.log");  // db "db" under prefix "<prefix>_more"
  AddStream(state, "KV_" + prefix + "_zeta_lease", "$KV." + prefix + "_zeta_lease.>");
  o.name.clear();  // not needed
  AssertOk(lt::ListNatsDatabases(o, 5000, &names));
  assert_int_equal(names.size(), 3);
  assert_string_equal(names[0].c_str(), "alpha_1");
  assert_string_equal(names[1].c_str(), "b-2");
  assert_string_equal(names[2].c_str(), "zeta");
  o.prefix = prefix + "_more";
  AssertOk(lt::ListNatsDatabases(o, 5000, &names));
  assert_int_equal(names.size(), 1);
  assert_string_equal(names[0].c_str(), "db");
}

void list_databases_unreachable_is_unavailable(void**) {
  lt::Options o = OptionsFor({"nats://127.0.0.1:1"});
  std::vector<std::string> names;
  auto t0 = conf::Clock::now();
  litejet::Status st = lt::ListNatsDatabases(o, 500, &names);
  assert_int_equal(st.code(), lt::kUnavailable);
  print_message("unreachable, 500 ms timeout: %.3f s\n", conf::Seconds(t0));
  assert_true(conf::Seconds(t0) < 10);  // bounded: a hang guard, not a timing check (loaded CI)
}

// --- server restart while publishing and reading ----------------------------------
void restart_loses_and_duplicates_nothing(void** state) {
  NatsServer& srv = *F(state).server;
  const pid_t old_pid = srv.pid();
  auto t0 = conf::Clock::now();
  conf::OutageStats stats;
  litejet::Status st = conf::SurvivesOutage(
      Single(state), 3000, 300,
      [&] {
        std::string err;
        if (!srv.Restart(&err)) print_error("Restart: %s\n", err.c_str());
      },
      &stats);
  print_message(
      "3000 messages through a restart after %llu in %.2f s: writer stalled %.2f s, %llu publish retries, "
      "%llu unavailable reads\n",
      static_cast<unsigned long long>(stats.published_before), conf::Seconds(t0), stats.max_stall_s,
      static_cast<unsigned long long>(stats.publish_retries), static_cast<unsigned long long>(stats.read_unavailable));
  AssertOk(st);
  assert_true(srv.pid() > 0 && srv.pid() != old_pid);
  assert_true(stats.published_before < 3000);
  // (That the writer went through the outage is shown by published_before <
  // 3000 above; stall durations are printed, not asserted: timings belong in
  // bench/, not in tests.)
}

void crash_loses_and_duplicates_nothing(void** state) {
  NatsServer& srv = *F(state).server;
  conf::OutageStats stats;
  litejet::Status st = conf::SurvivesOutage(
      Single(state), 3000, 300,
      [&] {
        srv.Kill();  // SIGKILL: no goodbye to clients, consumers lost
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        std::string err;
        if (!srv.Restart(&err)) print_error("Restart: %s\n", err.c_str());
      },
      &stats);
  print_message(
      "3000 messages through a kill -9 after %llu: writer stalled %.2f s, %llu publish retries, "
      "%llu unavailable reads\n",
      static_cast<unsigned long long>(stats.published_before), stats.max_stall_s,
      static_cast<unsigned long long>(stats.publish_retries), static_cast<unsigned long long>(stats.read_unavailable));
  AssertOk(st);
  assert_true(stats.publish_retries > 0);
  assert_true(stats.read_unavailable > 0);
}

// --- open while the server is down -------------------------------------------
void open_succeeds_while_server_is_down(void** state) {
  NatsServer& srv = *F(state).server;
  lt::Options o = OptionsFor({srv.url()});
  srv.Stop();
  std::unique_ptr<lt::Log> log;
  AssertOk(lt::OpenNats(o, &log));
  F(state).logs.push_back(std::move(log));
  lt::Log& l = *F(state).logs.back();
  assert_false(l.Connected());
  uint64_t seq = 0;
  auto t0 = conf::Clock::now();
  litejet::Status st = l.Publish("x", 0, "x", 300, &seq);
  assert_int_equal(st.code(), lt::kUnavailable);
  assert_true(conf::Seconds(t0) < 10.0);  // bounded: a 300 ms timeout never hangs
  print_message("while down: %s\n", st.message().c_str());
  assert_true(st.message().find("publish to litejet.") != std::string::npos);
  assert_int_equal(l.Ensure(200).code(), lt::kUnavailable);
  assert_int_equal(l.Read(1, 200, [](const lt::Message&) { return true; }).code(), lt::kUnavailable);
  assert_false(l.LastError().empty());

  std::string err;
  assert_true(srv.Restart(&err));
  t0 = conf::Clock::now();
  assert_true(WaitFor([&] { return l.Connected(); }, 30));
  print_message("connected %.2f s after the server came up\n", conf::Seconds(t0));
  AssertOk(l.Ensure(5000));
  AssertOk(l.Publish("x", 0, "x", 5000, &seq));
  assert_int_equal(seq, 1);
}

void bad_options_name_the_option(void**) {
  lt::Options o;
  o.urls = {"nats://127.0.0.1:1"};
  o.name = "opts";
  std::unique_ptr<lt::Log> log;

  lt::Options ca = o;
  ca.tls_ca = "/nonexistent/ca.pem";
  litejet::Status st = lt::OpenNats(ca, &log);
  print_message("tls_ca: %s\n", st.message().c_str());
  assert_false(st.ok());
  assert_true(st.message().find("tls_ca") != std::string::npos);

  lt::Options creds = o;
  creds.creds = "/nonexistent/user.creds";
  st = lt::OpenNats(creds, &log);
  print_message("creds: %s\n", st.message().c_str());
  assert_false(st.ok());
  assert_true(st.message().find("creds") != std::string::npos);
  assert_true(st.message().find("/nonexistent/user.creds") != std::string::npos);

  lt::Options half = o;
  half.tls_cert = "/nonexistent/cert.pem";
  st = lt::OpenNats(half, &log);
  assert_false(st.ok());
  assert_true(st.message().find("tls_key") != std::string::npos);

  lt::Options none = o;
  none.urls.clear();
  st = lt::OpenNats(none, &log);
  assert_false(st.ok());
  assert_true(st.message().find("nats") != std::string::npos);
  assert_null(log.get());
}

// --- 3-node cluster, R3 stream ---------------------------------------------------
void r3_stream_survives_losing_its_leader(void** state) {
  NatsCluster& cl = *F(state).cluster;
  lt::Options o = OptionsFor(Split(cl.urls()), 3);
  auto open = OpenerFor(o);
  AssertOk(conf::EnsureIdempotent(open));  // stream now has "x" at seq 1
  F(state).logs.push_back(open());
  F(state).logs.push_back(open());
  lt::Log& w = *F(state).logs[0];
  lt::Log& r = *F(state).logs[1];

  // Fencing and dedupe on the cluster (nats-server checks the expectation first there).
  uint64_t seq = 0;
  assert_int_equal(w.Publish("stale", 0, "stale", 5000, &seq).code(), lt::kFenced);
  AssertOk(w.Publish("msg-2", 1, "c-2", 5000, &seq));
  assert_int_equal(seq, 2);
  uint64_t again = 0;
  AssertOk(w.Publish("msg-2", 1, "c-2", 5000, &again));
  assert_int_equal(again, 2);

  std::atomic<uint64_t> done{2};
  AssertOk(conf::PublishRetrying(w, 200, conf::Clock::now() + std::chrono::seconds(30), &done));
  AssertOk(conf::ReadRange(r, 2, 200, 5000, conf::ExpectPayload()));

  // The fence holds under a true race on R3 (with ExpectLastSubjectSeq it did not).
  // Before the kill: creating a new R3 stream with a node down may time out.
  lt::Options race = OptionsFor(Split(cl.urls()), 3);
  AssertOk(conf::SimultaneousWriters(OpenerFor(race), 4, 100));

  // Kill the node leading the stream.
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::vector<std::string> urls = Split(cl.urls());
  std::vector<const char*> servers;
  for (auto& u : urls) servers.push_back(u.c_str());
  natsOptions* no = nullptr;
  natsOptions_Create(&no);
  natsOptions_SetServers(no, servers.data(), static_cast<int>(servers.size()));
  assert_int_equal(natsConnection_Connect(&nc, no), NATS_OK);
  natsOptions_Destroy(no);
  assert_int_equal(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  jsStreamInfo* si = nullptr;
  std::string stream = o.prefix + "_" + o.name;
  assert_int_equal(js_GetStreamInfo(&si, js, stream.c_str(), nullptr, nullptr), NATS_OK);
  std::string leader = si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "";
  assert_int_equal(si->Config->Replicas, 3);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  int victim = cl.IndexOf(leader);
  assert_true(victim >= 0);
  print_message("killing stream leader %s (node %d)\n", leader.c_str(), victim);
  auto t0 = conf::Clock::now();
  cl.node(victim).Kill();

  AssertOk(conf::PublishRetrying(w, 400, conf::Clock::now() + std::chrono::seconds(30), &done));
  print_message("publishing resumed; 200 more published %.2f s after the kill\n", conf::Seconds(t0));
  AssertOk(conf::ReadRange(r, 201, 400, 10000, conf::ExpectPayload()));
  // A fresh reader from the start sees the whole log.
  F(state).logs.push_back(open());
  AssertOk(conf::ReadRange(*F(state).logs.back(), 2, 400, 10000, conf::ExpectPayload()));
  AssertOk(F(state).logs.back()->Ensure(10000));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) cmocka_set_test_filter(argv[1]);  // e.g. "r3_*"
  const struct CMUnitTest shared_server[] = {
      cmocka_unit_test(ensure_is_idempotent),
      cmocka_unit_test(stale_writer_is_fenced),
      cmocka_unit_test(retry_with_same_msg_id_returns_original_seq),
      cmocka_unit_test(read_from_any_position_in_order),
      cmocka_unit_test(concurrent_reader_sees_every_message_once),
      cmocka_unit_test(racing_writers_have_one_winner_per_seq),
      cmocka_unit_test(simultaneous_writers_have_one_winner_per_round),
      cmocka_unit_test(bulk_messages_read_back_in_order),
      cmocka_unit_test(large_message_round_trips),
      cmocka_unit_test(ensure_rejects_an_incompatible_stream),
      cmocka_unit_test(range_follows_appends),
      cmocka_unit_test(purge_below_keeps_the_rest),
      cmocka_unit_test(range_of_a_missing_stream_is_no_stream),
      cmocka_unit_test(list_databases_names_only_the_prefixs_logs),
  };
  const struct CMUnitTest own_servers[] = {
      cmocka_unit_test_setup_teardown(restart_loses_and_duplicates_nothing, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(crash_loses_and_duplicates_nothing, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(open_succeeds_while_server_is_down, StartServer, Teardown),
      cmocka_unit_test_setup_teardown(bad_options_name_the_option, NoFixture, Teardown),
      cmocka_unit_test_setup_teardown(list_databases_unreachable_is_unavailable, NoFixture, Teardown),
      cmocka_unit_test_setup_teardown(r3_stream_survives_losing_its_leader, StartCluster, Teardown),
  };
  int failed = cmocka_run_group_tests_name("nats_log_single_server", shared_server, StartServer, Teardown);
  failed += cmocka_run_group_tests_name("nats_log_own_servers", own_servers, nullptr, nullptr);
  nats_CloseAndWait(10000);
  return failed;
}
