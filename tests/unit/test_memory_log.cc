// The in-memory Log: the conformance checks every Log must pass (fencing,
// dedupe, ordered reads, outages) plus the fake's own outage switch and payload limit.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <chrono>
#include <thread>

#include "transport/log.h"
#include "transport/log_conformance.h"

namespace lt = litejet::transport;
namespace conf = litejet::transport::conformance;

namespace {

void AssertOk(const litejet::Status& st) {
  if (!st.ok()) print_error("%s (code %d)\n", st.message().c_str(), st.code());
  assert_true(st.ok());
}

conf::Opener OpenerFor(std::shared_ptr<lt::MemoryStore> store) {
  return [store] { return lt::NewMemoryLog(store); };
}

void ensure_is_idempotent(void**) { AssertOk(conf::EnsureIdempotent(OpenerFor(lt::NewMemoryStore()))); }
void stale_writer_is_fenced(void**) { AssertOk(conf::FencedChain(OpenerFor(lt::NewMemoryStore()))); }
void retry_with_same_msg_id_returns_original_seq(void**) {
  AssertOk(conf::DedupeRetry(OpenerFor(lt::NewMemoryStore())));
}
void range_follows_appends(void**) { AssertOk(conf::RangeFollowsAppends(OpenerFor(lt::NewMemoryStore()))); }
void purge_below_keeps_the_rest(void**) { AssertOk(conf::PurgeBelowKeepsTheRest(OpenerFor(lt::NewMemoryStore()))); }
void read_from_any_position_in_order(void**) { AssertOk(conf::ReadPositions(OpenerFor(lt::NewMemoryStore()))); }
void concurrent_reader_sees_every_message_once(void**) {
  AssertOk(conf::ConcurrentReadWrite(OpenerFor(lt::NewMemoryStore()), 2000));
}
void racing_writers_have_one_winner_per_seq(void**) {
  AssertOk(conf::RacingWriters(OpenerFor(lt::NewMemoryStore()), 4, 200));
}
void simultaneous_writers_have_one_winner_per_round(void**) {
  AssertOk(conf::SimultaneousWriters(OpenerFor(lt::NewMemoryStore()), 4, 300));
}
void bulk_messages_read_back_in_order(void**) {
  double pub = 0, read = 0;
  AssertOk(conf::Bulk(OpenerFor(lt::NewMemoryStore()), 20000, &pub, &read));
  print_message("memory log: publish %.0f msg/s, read %.0f msg/s\n", pub, read);
}
void large_message_round_trips(void**) { AssertOk(conf::LargeMessage(OpenerFor(lt::NewMemoryStore()), 900 * 1024)); }

void outage_loses_and_duplicates_nothing(void**) {
  auto store = lt::NewMemoryStore();
  conf::OutageStats stats;
  AssertOk(conf::SurvivesOutage(
      OpenerFor(store), 3000, 100,
      [&] {
        lt::SetMemoryAvailable(*store, false);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        lt::SetMemoryAvailable(*store, true);
      },
      &stats));
  print_message("outage after %llu messages: %llu publish retries, %llu unavailable reads\n",
                static_cast<unsigned long long>(stats.published_before),
                static_cast<unsigned long long>(stats.publish_retries),
                static_cast<unsigned long long>(stats.read_unavailable));
  assert_true(stats.published_before < 3000);
  assert_true(stats.publish_retries > 0);
}

void calls_fail_unavailable_during_outage(void**) {
  auto store = lt::NewMemoryStore();
  auto log = lt::NewMemoryLog(store);
  uint64_t seq = 0;
  AssertOk(log->Publish("one", 0, "1", 1000, &seq));
  lt::SetMemoryAvailable(*store, false);
  assert_false(log->Connected());
  assert_int_equal(log->Ensure(100).code(), lt::kUnavailable);
  lt::Message m;
  bool found = false;
  assert_int_equal(log->Last(100, &m, &found).code(), lt::kUnavailable);
  assert_int_equal(log->Publish("two", 1, "2", 100, &seq).code(), lt::kUnavailable);
  assert_true(log->LastError().find("unavailable") != std::string::npos);
  int delivered = 0;
  auto t0 = conf::Clock::now();
  assert_int_equal(log->Read(1, 200, [&](const lt::Message&) { return ++delivered, true; }).code(), lt::kUnavailable);
  assert_int_equal(delivered, 0);
  assert_true(conf::Seconds(t0) >= 0.15);
  // A reader waiting through the outage gets the message once it ends.
  std::thread back([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    lt::SetMemoryAvailable(*store, true);
  });
  litejet::Status st = log->Read(1, 2000, [&](const lt::Message& msg) {
    delivered++;
    return msg.seq != 1;
  });
  back.join();
  AssertOk(st);
  assert_int_equal(delivered, 1);
  assert_true(log->Connected());
  AssertOk(log->Publish("two", 1, "2", 100, &seq));
  assert_int_equal(seq, 2);
}

void max_payload_is_the_store_limit(void**) {
  auto store = lt::NewMemoryStore(1000);
  auto log = lt::NewMemoryLog(store);
  assert_int_equal(log->MaxPayload(), 1000);
  uint64_t seq = 0;
  AssertOk(log->Publish(std::string(1000, 'a'), 0, "", 100, &seq));
  litejet::Status st = log->Publish(std::string(1001, 'a'), 1, "", 100, &seq);
  assert_int_equal(st.code(), lt::kTooLarge);
  assert_true(st.message().find("1001") != std::string::npos);
  assert_int_equal(log->Publish("x", 1, std::string(257, 'i'), 100, &seq).code(), 1);
}

void logs_on_separate_stores_are_independent(void**) {
  auto a = lt::NewMemoryLog(lt::NewMemoryStore());
  auto b = lt::NewMemoryLog(lt::NewMemoryStore());
  uint64_t seq = 0;
  AssertOk(a->Publish("a", 0, "same-id", 100, &seq));
  AssertOk(b->Publish("b", 0, "same-id", 100, &seq));
  lt::Message m;
  bool found = false;
  AssertOk(b->Last(100, &m, &found));
  assert_true(found);
  assert_string_equal(m.data.c_str(), "b");
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ensure_is_idempotent),
      cmocka_unit_test(stale_writer_is_fenced),
      cmocka_unit_test(retry_with_same_msg_id_returns_original_seq),
      cmocka_unit_test(read_from_any_position_in_order),
      cmocka_unit_test(range_follows_appends),
      cmocka_unit_test(purge_below_keeps_the_rest),
      cmocka_unit_test(concurrent_reader_sees_every_message_once),
      cmocka_unit_test(racing_writers_have_one_winner_per_seq),
      cmocka_unit_test(simultaneous_writers_have_one_winner_per_round),
      cmocka_unit_test(bulk_messages_read_back_in_order),
      cmocka_unit_test(large_message_round_trips),
      cmocka_unit_test(outage_loses_and_duplicates_nothing),
      cmocka_unit_test(calls_fail_unavailable_during_outage),
      cmocka_unit_test(max_payload_is_the_store_limit),
      cmocka_unit_test(logs_on_separate_stores_are_independent),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
