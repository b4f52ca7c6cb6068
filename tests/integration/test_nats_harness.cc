// Proves the nats-server test harness (tests/harness/nats_server.h) with real
// JetStream traffic through nats.c: single node (store survives Restart, Stop
// really stops it) and a 3-node cluster (R3 stream, publish survives the loss
// of one node, killed node rejoins after Restart).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
// cmocka must come after the headers above.  cmocka 1.1.5's header has no
// extern "C" guards, so add them for C++.
extern "C" {
#include <cmocka.h>
}
#include <nats/nats.h>
#include <string.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/harness/nats_server.h"

using litejet::test::NatsCluster;
using litejet::test::NatsServer;

namespace {

using Clock = std::chrono::steady_clock;

// All resources live in the fixture so teardown frees them even when an
// assertion longjmps out of the test body.
struct Fixture {
  std::unique_ptr<NatsServer> server;
  std::unique_ptr<NatsCluster> cluster;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;

  void Disconnect() {
    if (js) jsCtx_Destroy(js);
    js = nullptr;
    if (nc) natsConnection_Destroy(nc);
    nc = nullptr;
  }
  ~Fixture() { Disconnect(); }
};

// Connects to `urls` (comma-separated) without connect retries.
// NB: natsOptions_SetURL() takes ONE url in nats.c 3.4 (a comma list yields
// NATS_NO_SERVER); lists need natsOptions_SetServers() or ConnectTo().
natsStatus Connect(const std::string& urls, natsConnection** nc, jsCtx** js) {
  std::vector<std::string> list;
  for (size_t b = 0; b <= urls.size();) {
    size_t e = urls.find(',', b);
    if (e == std::string::npos) e = urls.size();
    if (e > b) list.push_back(urls.substr(b, e - b));
    b = e + 1;
  }
  std::vector<const char*> servers;
  for (auto& u : list) servers.push_back(u.c_str());
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 2000);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 100);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, 100);
  if (s == NATS_OK) s = natsConnection_Connect(nc, opts);
  natsOptions_Destroy(opts);
  if (s == NATS_OK && js) s = natsConnection_JetStream(js, *nc, nullptr);
  return s;
}

void Check(natsStatus s, const char* what) {
  if (s != NATS_OK) {
    print_error("%s: %s (%s)\n", what, natsStatus_GetText(s), nats_GetLastError(nullptr));
  }
  assert_int_equal(s, NATS_OK);
}

natsStatus AddStream(jsCtx* js, const char* name, const char* subject, int replicas, jsStreamInfo** si,
                     jsErrCode* jerr) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {subject};
  cfg.Name = name;
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas;
  return js_AddStream(si, js, &cfg, nullptr, jerr);
}

uint64_t StreamMsgs(jsCtx* js, const char* stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  Check(js_GetStreamInfo(&si, js, stream, nullptr, &jerr), "js_GetStreamInfo");
  uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

natsStatus Publish(jsCtx* js, const char* subject, const std::string& data, uint64_t* seq) {
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&ack, js, subject, data.data(), static_cast<int>(data.size()), nullptr, &jerr);
  if (s == NATS_OK && seq) *seq = ack->Sequence;
  jsPubAck_Destroy(ack);
  return s;
}

// ---------------------------------------------------------------------------
int SetupSingle(void** state) {
  auto* f = new Fixture;
  std::string err;
  f->server = NatsServer::Start(&err);
  if (!f->server) {
    print_error("NatsServer::Start failed: %s\n", err.c_str());
    delete f;
    return -1;
  }
  *state = f;
  return 0;
}

int SetupCluster(void** state) {
  auto* f = new Fixture;
  std::string err;
  auto t0 = Clock::now();
  f->cluster = NatsCluster::Start(3, &err);
  if (!f->cluster) {
    print_error("NatsCluster::Start failed: %s\n", err.c_str());
    delete f;
    return -1;
  }
  print_message("cluster of %zu ready in %.2f s\n", f->cluster->size(),
                std::chrono::duration<double>(Clock::now() - t0).count());
  *state = f;
  return 0;
}

int Teardown(void** state) {
  delete static_cast<Fixture*>(*state);
  *state = nullptr;
  return 0;
}

// ---------------------------------------------------------------------------
void test_single_node(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  NatsServer& srv = *f->server;
  assert_true(srv.pid() > 0);
  assert_true(srv.port() > 0);
  assert_string_equal(srv.url().c_str(), ("nats://127.0.0.1:" + std::to_string(srv.port())).c_str());

  Check(Connect(srv.url(), &f->nc, &f->js), "connect");
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  Check(AddStream(f->js, "HT", "h.test", 1, &si, &jerr), "js_AddStream");
  assert_int_equal(si->Config->Storage, js_FileStorage);
  jsStreamInfo_Destroy(si);

  for (int i = 1; i <= 3; i++) {
    uint64_t seq = 0;
    Check(Publish(f->js, "h.test", "msg-" + std::to_string(i), &seq), "js_Publish");
    assert_int_equal(seq, static_cast<uint64_t>(i));
  }
  assert_int_equal(StreamMsgs(f->js, "HT"), 3);

  // Restart: same port, same store -> stream and messages survive.
  f->Disconnect();
  const int port = srv.port();
  const pid_t old_pid = srv.pid();
  std::string err;
  bool restarted = srv.Restart(&err);
  if (!restarted) print_error("Restart: %s\n", err.c_str());
  assert_true(restarted);
  assert_int_equal(srv.port(), port);
  assert_true(srv.pid() > 0);
  assert_true(srv.pid() != old_pid);
  Check(Connect(srv.url(), &f->nc, &f->js), "reconnect after restart");
  assert_int_equal(StreamMsgs(f->js, "HT"), 3);
  f->Disconnect();

  // Stop: the port refuses, connecting fails.
  srv.Stop();
  assert_int_equal(srv.pid(), -1);
  natsConnection* nc = nullptr;
  natsStatus s = Connect(srv.url(), &nc, nullptr);
  if (nc) natsConnection_Destroy(nc);
  assert_int_not_equal(s, NATS_OK);
  assert_int_equal(s, NATS_NO_SERVER);
}

void test_cluster(void** state) {
  auto* f = static_cast<Fixture*>(*state);
  NatsCluster& cl = *f->cluster;
  assert_int_equal(cl.size(), 3);
  std::string urls = cl.urls();
  assert_non_null(strstr(urls.c_str(), cl.node(2).url().c_str()));

  Check(Connect(urls, &f->nc, &f->js), "connect cluster");
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  Check(AddStream(f->js, "HC", "hc.test", 3, &si, &jerr), "js_AddStream R3");
  assert_int_equal(si->Config->Replicas, 3);
  jsStreamInfo_Destroy(si);

  for (int i = 1; i <= 3; i++) {
    Check(Publish(f->js, "hc.test", "c-" + std::to_string(i), nullptr), "js_Publish");
  }

  // Stream info: leader + 2 current replicas, all in our cluster (bounded wait
  // for followers to report current).
  std::string leader, follower;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    si = nullptr;
    Check(js_GetStreamInfo(&si, f->js, "HC", nullptr, &jerr), "js_GetStreamInfo");
    assert_non_null(si->Cluster);
    assert_string_equal(si->Cluster->Name, "litejet-test");
    assert_int_equal(si->State.Msgs, 3);
    int current = 0;
    for (int i = 0; i < si->Cluster->ReplicasLen; i++) current += si->Cluster->Replicas[i]->Current ? 1 : 0;
    bool done = si->Cluster->Leader && si->Cluster->ReplicasLen == 2 && current == 2;
    if (done) {
      leader = si->Cluster->Leader;
      // Prefer killing a follower we are not connected to.
      char connected[256] = {0};
      natsConnection_GetConnectedUrl(f->nc, connected, sizeof(connected));
      for (int i = 0; i < 2; i++) {
        std::string name = si->Cluster->Replicas[i]->Name;
        int idx = cl.IndexOf(name);
        if (idx >= 0 && (follower.empty() || cl.node(idx).url().find(connected) == std::string::npos)) follower = name;
      }
    }
    jsStreamInfo_Destroy(si);
    if (done || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  assert_false(leader.empty());
  assert_false(follower.empty());
  assert_true(cl.IndexOf(leader) >= 0);
  assert_true(leader != follower);  // 1 leader + 2 replicas = 3 replicas total

  // Kill one follower: quorum (2/3) remains, publishing must still succeed.
  NatsServer& victim = cl.node(cl.IndexOf(follower));
  victim.Kill();
  assert_int_equal(victim.pid(), -1);
  natsStatus s = NATS_ERR;
  uint64_t seq = 0;
  deadline = Clock::now() + std::chrono::seconds(30);
  while ((s = Publish(f->js, "hc.test", "after-kill", &seq)) != NATS_OK && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  Check(s, "js_Publish with one node down");
  assert_int_equal(seq, 4);
  assert_int_equal(StreamMsgs(f->js, "HC"), 4);

  // Restart the killed node (same ports, same store); it must catch up.
  std::string err;
  bool restarted = victim.Restart(&err);
  if (!restarted) print_error("Restart: %s\n", err.c_str());
  assert_true(restarted);
  bool caught_up = false;
  deadline = Clock::now() + std::chrono::seconds(30);
  while (!caught_up && Clock::now() < deadline) {
    si = nullptr;
    if (js_GetStreamInfo(&si, f->js, "HC", nullptr, &jerr) == NATS_OK && si->Cluster) {
      for (int i = 0; i < si->Cluster->ReplicasLen; i++) {
        jsPeerInfo* p = si->Cluster->Replicas[i];
        if (follower == p->Name && p->Current && !p->Offline && p->Lag == 0) caught_up = true;
      }
    }
    jsStreamInfo_Destroy(si);
    if (!caught_up) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  assert_true(caught_up);
}

}  // namespace

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_single_node, SetupSingle, Teardown),
      cmocka_unit_test_setup_teardown(test_cluster, SetupCluster, Teardown),
  };
  int rc = cmocka_run_group_tests_name("nats_harness", tests, nullptr, nullptr);
  nats_CloseAndWait(5000);
  return rc;
}
