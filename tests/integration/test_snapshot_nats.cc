// The snapshot Store on JetStream against a real nats-server: the same
// conformance checks as the in-memory store (snapshot/store_conformance.h),
// the stream's layout, and a stream name taken by another kind of stream.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}
#include <unistd.h>

#include <memory>
#include <string>

#include "snapshot/snapshot.h"
#include "snapshot/store_conformance.h"
#include "tests/harness/nats_server.h"
#include "transport/log.h"

namespace sn = litejet::snapshot;
namespace conf = litejet::snapshot::conformance;
namespace lt = litejet::transport;
using litejet::test::NatsServer;

namespace {

std::unique_ptr<NatsServer> g_server;
int g_counter = 0;

void AssertOk(const litejet::Status& st) {
  if (!st.ok()) print_error("%s (code %d)\n", st.message().c_str(), st.code());
  assert_true(st.ok());
}

lt::Options OptionsFor(const std::string& name) {
  lt::Options o;
  o.urls = {g_server->url()};
  o.name = name;
  o.client_name = "litejet:test:" + name;
  return o;
}

std::unique_ptr<sn::Store> Fresh() {
  std::unique_ptr<sn::Store> st;
  AssertOk(sn::OpenNatsStore(OptionsFor("s" + std::to_string(++g_counter) + "_" + std::to_string(getpid())), &st));
  AssertOk(st->Ensure(10000));
  return st;
}

int Setup(void**) {
  std::string err;
  g_server = NatsServer::Start(&err);
  if (!g_server) std::fprintf(stderr, "nats-server: %s\n", err.c_str());
  return g_server ? 0 : -1;
}
int Teardown(void**) {
  g_server.reset();
  return 0;
}

void nats_store_round_trip(void**) { AssertOk(conf::RoundTrip(*Fresh())); }
void nats_store_incompressible_pages_are_split(void**) { AssertOk(conf::IncompressibleSplits(*Fresh())); }
void nats_store_checksum_mismatch_publishes_nothing(void**) {
  AssertOk(conf::ChecksumMismatchPublishesNothing(*Fresh()));
}
void nats_store_list_delete_and_orphans(void**) { AssertOk(conf::ListDeleteAndOrphans(*Fresh())); }
void nats_store_damage_is_detected(void**) { AssertOk(conf::DamageDetected(*Fresh())); }

// No stream yet: List is empty (not an error); a log stream holding the
// snapshot stream's name is refused by name.
void nats_store_missing_and_clashing_streams(void**) {
  std::unique_ptr<sn::Store> st;
  AssertOk(sn::OpenNatsStore(OptionsFor("none_" + std::to_string(getpid())), &st));
  std::vector<sn::Manifest> list;
  AssertOk(sn::List(*st, 10000, &list));
  assert_true(list.empty());
  const std::string db = "clash_" + std::to_string(getpid());
  std::unique_ptr<lt::Log> log;
  AssertOk(lt::OpenNats(OptionsFor(db + "_snap"), &log));
  AssertOk(log->Ensure(10000));
  AssertOk(sn::OpenNatsStore(OptionsFor(db), &st));
  litejet::Status s = st->Ensure(10000);
  std::string want = "litejet: nats: stream litejet_" + db + "_snap exists but does not hold subject litejet." + db +
                     ".snap.> (a database named like this snapshot stream?)";
  if (s.message() != want) print_error("got \"%s\"\n", s.message().c_str());
  assert_string_equal(s.message().c_str(), want.c_str());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nats_store_round_trip),
      cmocka_unit_test(nats_store_incompressible_pages_are_split),
      cmocka_unit_test(nats_store_checksum_mismatch_publishes_nothing),
      cmocka_unit_test(nats_store_list_delete_and_orphans),
      cmocka_unit_test(nats_store_damage_is_detected),
      cmocka_unit_test(nats_store_missing_and_clashing_streams),
  };
  return cmocka_run_group_tests(tests, Setup, Teardown);
}
