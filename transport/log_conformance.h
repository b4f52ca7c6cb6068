// transport/log_conformance.h: behaviour every Log must show (fencing, dedupe,
// ordered reads, outages), as checks returning Status so any test framework can run them.
// Each check expects an empty log; `open` opens another Log on that same log (another node).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "transport/log.h"

namespace litejet::transport::conformance {

using Opener = std::function<std::unique_ptr<Log>()>;
using Clock = std::chrono::steady_clock;

#define LITEJET_CONF_CHECK(cond, msg)                                                   \
  do {                                                                                  \
    if (!(cond)) return ::litejet::Status::Error(std::string(__func__) + ": " + (msg)); \
  } while (0)
#define LITEJET_CONF_OK(expr)                                                                                         \
  do {                                                                                                                \
    ::litejet::Status s_ = (expr);                                                                                    \
    if (!s_.ok()) return ::litejet::Status::Error(std::string(__func__) + ": " #expr ": " + s_.message(), s_.code()); \
  } while (0)

inline std::string Payload(uint64_t seq, size_t pad = 0) {
  return "msg-" + std::to_string(seq) + std::string(pad, 'x');
}

inline double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// Reads [from, to] with Read(); fails on a gap, a duplicate or a wrong payload.
// check(seq, data) returns "" or what is wrong.
inline Status ReadRange(Log& log, uint64_t from, uint64_t to, int64_t wait_ms,
                        const std::function<std::string(const Message&)>& check) {
  uint64_t next = from;
  std::string bad;
  Status st = log.Read(from, wait_ms, [&](const Message& m) {
    if (m.seq != next) {
      bad = "got seq " + std::to_string(m.seq) + ", want " + std::to_string(next);
      return false;
    }
    bad = check(m);
    if (!bad.empty()) return false;
    return ++next <= to;
  });
  LITEJET_CONF_OK(st);
  LITEJET_CONF_CHECK(bad.empty(), bad);
  LITEJET_CONF_CHECK(next == to + 1,
                     "read stopped at " + std::to_string(next) + ", want through " + std::to_string(to));
  return Status::OK();
}

inline std::function<std::string(const Message&)> ExpectPayload(size_t pad = 0) {
  return [pad](const Message& m) {
    return m.data == Payload(m.seq, pad) ? std::string() : "seq " + std::to_string(m.seq) + " has wrong data";
  };
}

// Publishes Payload(seq) for seq = last+1 .. n, retrying kUnavailable with the
// same msg_id and expectation until `deadline`.
inline Status PublishRetrying(Log& log, uint64_t n, Clock::time_point deadline, std::atomic<uint64_t>* done = nullptr,
                              size_t pad = 0, std::atomic<uint64_t>* retries = nullptr, int pace_us = 0) {
  uint64_t last = done ? done->load() : 0;
  while (last < n) {
    uint64_t want = last + 1, seq = 0;
    Status st = log.Publish(Payload(want, pad), last, "conf-" + std::to_string(want), 1000, &seq);
    if (st.code() == kUnavailable && Clock::now() < deadline) {
      if (retries) ++*retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    LITEJET_CONF_OK(st);
    LITEJET_CONF_CHECK(seq == want, "publish returned seq " + std::to_string(seq) + ", want " + std::to_string(want));
    last = seq;
    if (done) done->store(last);
    if (pace_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pace_us));
  }
  return Status::OK();
}

// Ensure twice, from another Log, and from several Logs at once.
inline Status EnsureIdempotent(const Opener& open) {
  auto a = open(), b = open();
  LITEJET_CONF_OK(a->Ensure(5000));
  LITEJET_CONF_OK(a->Ensure(5000));
  LITEJET_CONF_OK(b->Ensure(5000));
  std::vector<Status> results(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); i++) {
    threads.emplace_back([&, i] { results[i] = open()->Ensure(5000); });
  }
  for (auto& t : threads) t.join();
  for (auto& r : results) LITEJET_CONF_OK(r);
  uint64_t seq = 0;
  LITEJET_CONF_OK(b->Publish("x", 0, "", 5000, &seq));
  LITEJET_CONF_CHECK(seq == 1, "first seq is " + std::to_string(seq));
  LITEJET_CONF_OK(a->Ensure(5000));
  Message m;
  bool found = false;
  LITEJET_CONF_OK(a->Last(5000, &m, &found));
  LITEJET_CONF_CHECK(found && m.seq == 1 && m.data == "x", "Ensure on an existing stream changed it");
  return Status::OK();
}

// Two writers: a publish with a stale expect_last gets exactly kFenced.
inline Status FencedChain(const Opener& open) {
  auto a = open(), b = open();
  LITEJET_CONF_OK(a->Ensure(5000));
  Message m;
  bool found = true;
  LITEJET_CONF_OK(a->Last(5000, &m, &found));
  LITEJET_CONF_CHECK(!found, "empty log has a last message");
  uint64_t seq = 0;
  LITEJET_CONF_OK(a->Publish("a1", 0, "a-1", 5000, &seq));
  LITEJET_CONF_CHECK(seq == 1, "first seq " + std::to_string(seq));
  Status st = b->Publish("b1", 0, "b-1", 5000, &seq);
  LITEJET_CONF_CHECK(st.code() == kFenced, "stale expect 0: code " + std::to_string(st.code()) + " " + st.message());
  LITEJET_CONF_CHECK(!b->LastError().empty(), "LastError empty after a fenced publish");
  LITEJET_CONF_OK(a->Publish("a2", 1, "a-2", 5000, &seq));
  LITEJET_CONF_CHECK(seq == 2, "second seq " + std::to_string(seq));
  st = b->Publish("b2", 1, "b-2", 5000, &seq);
  LITEJET_CONF_CHECK(st.code() == kFenced, "stale expect 1: code " + std::to_string(st.code()) + " " + st.message());
  LITEJET_CONF_OK(b->Last(5000, &m, &found));
  LITEJET_CONF_CHECK(found && m.seq == 2 && m.data == "a2", "Last is not a2 at 2");
  // b catches up and takes over; now a is the stale one.
  LITEJET_CONF_OK(b->Publish("b3", 2, "b-3", 5000, &seq));
  LITEJET_CONF_CHECK(seq == 3, "third seq " + std::to_string(seq));
  st = a->Publish("a3", 2, "a-3", 5000, &seq);
  LITEJET_CONF_CHECK(st.code() == kFenced, "a after takeover: code " + std::to_string(st.code()));
  std::vector<std::string> want = {"a1", "a2", "b3"};
  return ReadRange(*a, 1, 3, 2000, [&](const Message& msg) {
    return msg.data == want[msg.seq - 1] ? std::string() : "seq " + std::to_string(msg.seq) + " = " + msg.data;
  });
}

// A retry of a stored msg_id returns the original seq, never kFenced, and stores nothing.
inline Status DedupeRetry(const Opener& open) {
  auto a = open();
  LITEJET_CONF_OK(a->Ensure(5000));
  uint64_t s1 = 0, s2 = 0, again = 0;
  LITEJET_CONF_OK(a->Publish("d1", 0, "id-1", 5000, &s1));
  LITEJET_CONF_OK(a->Publish("d1", 0, "id-1", 5000, &again));
  LITEJET_CONF_CHECK(again == s1, "retry id-1 returned " + std::to_string(again) + ", want " + std::to_string(s1));
  LITEJET_CONF_OK(a->Publish("d2", s1, "id-2", 5000, &s2));
  LITEJET_CONF_CHECK(s2 == s1 + 1, "id-2 got " + std::to_string(s2));
  LITEJET_CONF_OK(a->Publish("d2", s1, "id-2", 5000, &again));
  LITEJET_CONF_CHECK(again == s2, "retry id-2 returned " + std::to_string(again));
  LITEJET_CONF_OK(a->Publish("d1", 0, "id-1", 5000, &again));
  LITEJET_CONF_CHECK(again == s1, "late retry id-1 returned " + std::to_string(again));
  Status st = a->Publish("d3", s1, "id-3", 5000, &again);
  LITEJET_CONF_CHECK(st.code() == kFenced, "new id with stale expect: code " + std::to_string(st.code()));
  // Another node retrying a's msg_id gets the same answer.
  auto b = open();
  LITEJET_CONF_OK(b->Publish("d2", s1, "id-2", 5000, &again));
  LITEJET_CONF_CHECK(again == s2, "retry id-2 from b returned " + std::to_string(again));
  Message m;
  bool found = false;
  LITEJET_CONF_OK(a->Last(5000, &m, &found));
  LITEJET_CONF_CHECK(found && m.seq == s2 && m.data == "d2", "retries stored extra messages");
  return Status::OK();
}

// Reads from 1, from the middle, continuing after fn stopped, and waiting for new ones.
inline Status ReadPositions(const Opener& open) {
  auto w = open(), r = open();
  LITEJET_CONF_OK(w->Ensure(5000));
  std::atomic<uint64_t> done{0};
  LITEJET_CONF_OK(PublishRetrying(*w, 100, Clock::now(), &done));
  LITEJET_CONF_OK(ReadRange(*r, 1, 100, 2000, ExpectPayload()));
  LITEJET_CONF_OK(ReadRange(*r, 50, 100, 2000, ExpectPayload()));
  LITEJET_CONF_OK(ReadRange(*r, 1, 10, 2000, ExpectPayload()));    // stops at 10 ...
  LITEJET_CONF_OK(ReadRange(*r, 11, 100, 2000, ExpectPayload()));  // ... and continues
  // Read(0) is Read(1).
  uint64_t first = 0;
  LITEJET_CONF_OK(r->Read(0, 2000, [&](const Message& m) {
    first = m.seq;
    return false;
  }));
  LITEJET_CONF_CHECK(first == 1, "Read(0) started at " + std::to_string(first));
  // Nothing past the end: returns OK after the wait.
  int extra = 0;
  auto t0 = Clock::now();
  LITEJET_CONF_OK(r->Read(101, 300, [&](const Message&) { return ++extra, true; }));
  LITEJET_CONF_CHECK(extra == 0, "read past the end delivered messages");
  LITEJET_CONF_CHECK(Seconds(t0) >= 0.25, "Read returned before wait_ms");
  // A message published while a reader waits is delivered.
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    (void)PublishRetrying(*w, 101, Clock::now(), &done);
  });
  Status st = ReadRange(*r, 101, 101, 3000, ExpectPayload());
  later.join();
  LITEJET_CONF_OK(st);
  LITEJET_CONF_CHECK(done.load() == 101, "publish of 101 failed");
  return Status::OK();
}

// Range: empty (first > last) until the first append, then 1..n, from any Log.
inline Status RangeFollowsAppends(const Opener& open) {
  auto w = open(), r = open();
  LITEJET_CONF_OK(w->Ensure(5000));
  uint64_t first = 7, last = 7;
  LITEJET_CONF_OK(r->Range(5000, &first, &last));
  LITEJET_CONF_CHECK(first > last, "empty log: range " + std::to_string(first) + ".." + std::to_string(last));
  LITEJET_CONF_OK(PublishRetrying(*w, 5, Clock::now() + std::chrono::seconds(5)));
  LITEJET_CONF_OK(r->Range(5000, &first, &last));
  LITEJET_CONF_CHECK(first == 1 && last == 5, "range " + std::to_string(first) + ".." + std::to_string(last));
  return Status::OK();
}

// PurgeBelow (retention): messages below the sequence are gone (Range's
// first moves, a Read from them is kTruncated), the rest read as before,
// appends go on after the last; purging lower again changes nothing.
inline Status PurgeBelowKeepsTheRest(const Opener& open) {
  auto w = open(), r = open();
  LITEJET_CONF_OK(w->Ensure(5000));
  LITEJET_CONF_OK(PublishRetrying(*w, 10, Clock::now() + std::chrono::seconds(5)));
  LITEJET_CONF_OK(w->PurgeBelow(6, 5000));
  uint64_t first = 0, last = 0;
  LITEJET_CONF_OK(r->Range(5000, &first, &last));
  LITEJET_CONF_CHECK(first == 6 && last == 10,
                     "after PurgeBelow(6): range " + std::to_string(first) + ".." + std::to_string(last));
  LITEJET_CONF_OK(ReadRange(*r, 6, 10, 5000, ExpectPayload()));
  Status st = r->Read(3, 5000, [](const Message&) { return true; });
  LITEJET_CONF_CHECK(st.code() == kTruncated, "Read(3) after PurgeBelow(6): want kTruncated, got code " +
                                                  std::to_string(st.code()) + " " + st.message());
  LITEJET_CONF_OK(w->PurgeBelow(2, 5000));
  LITEJET_CONF_OK(r->Range(5000, &first, &last));
  LITEJET_CONF_CHECK(first == 6 && last == 10,
                     "after PurgeBelow(2): range " + std::to_string(first) + ".." + std::to_string(last));
  uint64_t seq = 0;
  LITEJET_CONF_OK(w->Publish(Payload(11), 10, "", 5000, &seq));
  LITEJET_CONF_CHECK(seq == 11, "append after a purge: seq " + std::to_string(seq));
  LITEJET_CONF_OK(ReadRange(*r, 6, 11, 5000, ExpectPayload()));
  return Status::OK();
}

// One writer, one concurrent reader: the reader sees 1..n exactly once.
inline Status ConcurrentReadWrite(const Opener& open, uint64_t n) {
  auto w = open(), r = open();
  LITEJET_CONF_OK(w->Ensure(5000));
  Status wst;
  std::thread writer([&] { wst = PublishRetrying(*w, n, Clock::now() + std::chrono::seconds(20)); });
  uint64_t next = 1;
  std::string bad;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  Status rst;
  while (next <= n && bad.empty() && Clock::now() < deadline) {
    rst = r->Read(next, 500, [&](const Message& m) {
      if (m.seq != next || m.data != Payload(m.seq))
        bad = "got seq " + std::to_string(m.seq) + " at " + std::to_string(next);
      next++;
      return bad.empty() && next <= n;
    });
    if (!rst.ok()) break;
  }
  writer.join();
  LITEJET_CONF_OK(wst);
  LITEJET_CONF_OK(rst);
  LITEJET_CONF_CHECK(bad.empty(), bad);
  LITEJET_CONF_CHECK(next == n + 1, "reader stopped at " + std::to_string(next));
  return Status::OK();
}

// Writers racing with Last + Publish: every seq has exactly one winner.
inline Status RacingWriters(const Opener& open, int writers, int attempts) {
  auto a = open();
  LITEJET_CONF_OK(a->Ensure(5000));
  std::mutex mu;
  std::vector<std::pair<uint64_t, std::string>> wins;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; w++) {
    threads.emplace_back([&, w] {
      auto log = open();
      for (int i = 0; i < attempts; i++) {
        Message last;
        bool found = false;
        Status st = log->Last(5000, &last, &found);
        std::string data = "w" + std::to_string(w) + "-" + std::to_string(i);
        uint64_t seq = 0;
        if (st.ok()) st = log->Publish(data, found ? last.seq : 0, data, 5000, &seq);
        std::lock_guard<std::mutex> l(mu);
        if (st.ok()) {
          wins.emplace_back(seq, data);
        } else if (st.code() != kFenced) {
          errors.push_back(st.message());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  LITEJET_CONF_CHECK(errors.empty(), errors.empty() ? "" : errors.front());
  std::sort(wins.begin(), wins.end());
  for (size_t i = 0; i < wins.size(); i++) {
    LITEJET_CONF_CHECK(wins[i].first == i + 1, "two winners or a hole at seq " + std::to_string(i + 1));
  }
  LITEJET_CONF_CHECK(!wins.empty(), "no publish succeeded");
  return ReadRange(*a, 1, wins.size(), 2000, [&](const Message& m) {
    return m.data == wins[m.seq - 1].second ? std::string() : "seq " + std::to_string(m.seq) + " is " + m.data;
  });
}

// Writers released together, all with the same expect_last, round after
// round: exactly one wins each round (the fence holds under a true race).
inline Status SimultaneousWriters(const Opener& open, int writers, int rounds) {
  std::vector<std::unique_ptr<Log>> logs;
  for (int w = 0; w < writers; w++) logs.push_back(open());
  LITEJET_CONF_OK(logs[0]->Ensure(5000));
  // A new replicated stream answers only once it has a leader (on a loaded
  // machine that can take seconds): wait for it, boundedly.
  {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    for (;;) {
      Message m;
      bool found = false;
      Status st = logs[0]->Last(1000, &m, &found);
      if (st.ok()) break;
      if (std::chrono::steady_clock::now() >= until) return st;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0, generation = 0;
  auto barrier = [&] {
    std::unique_lock<std::mutex> l(mu);
    int gen = generation;
    if (++arrived == writers) {
      arrived = 0;
      generation++;
      cv.notify_all();
    } else {
      cv.wait(l, [&] { return generation != gen; });
    }
  };
  std::vector<int> winners(static_cast<size_t>(rounds));
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; w++) {
    threads.emplace_back([&, w] {
      for (int r = 0; r < rounds; r++) {
        barrier();
        uint64_t seq = 0;
        std::string id = "r" + std::to_string(r) + "w" + std::to_string(w);
        Status st = logs[static_cast<size_t>(w)]->Publish(id, static_cast<uint64_t>(r), id, 5000, &seq);
        std::lock_guard<std::mutex> l(mu);
        if (st.ok()) {
          winners[static_cast<size_t>(r)]++;
          if (seq != static_cast<uint64_t>(r) + 1) errors.push_back(id + " got seq " + std::to_string(seq));
        } else if (st.code() != kFenced) {
          errors.push_back(st.message());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  LITEJET_CONF_CHECK(errors.empty(), errors.empty() ? "" : errors.front());
  for (int r = 0; r < rounds; r++) {
    LITEJET_CONF_CHECK(
        winners[static_cast<size_t>(r)] == 1,
        "round " + std::to_string(r) + " had " + std::to_string(winners[static_cast<size_t>(r)]) + " winners");
  }
  Message m;
  bool found = false;
  LITEJET_CONF_OK(logs[0]->Last(5000, &m, &found));
  LITEJET_CONF_CHECK(found && m.seq == static_cast<uint64_t>(rounds), "log has " + std::to_string(m.seq) + " messages");
  return Status::OK();
}

// n small messages: published, then read back in order; rates in messages/s.
inline Status Bulk(const Opener& open, uint64_t n, double* publish_rate, double* read_rate) {
  auto w = open(), r = open();
  LITEJET_CONF_OK(w->Ensure(5000));
  auto t0 = Clock::now();
  LITEJET_CONF_OK(PublishRetrying(*w, n, Clock::now() + std::chrono::seconds(30), nullptr, 40));
  *publish_rate = static_cast<double>(n) / Seconds(t0);
  t0 = Clock::now();
  LITEJET_CONF_OK(ReadRange(*r, 1, n, 2000, ExpectPayload(40)));
  *read_rate = static_cast<double>(n) / Seconds(t0);
  return Status::OK();
}

// A message of `size` bytes (all byte values) round-trips; MaxPayload()+1 is kTooLarge.
inline Status LargeMessage(const Opener& open, size_t size) {
  auto w = open();
  LITEJET_CONF_OK(w->Ensure(5000));
  LITEJET_CONF_CHECK(w->MaxPayload() >= size,
                     "MaxPayload " + std::to_string(w->MaxPayload()) + " < " + std::to_string(size));
  std::string big(size, '\0');
  for (size_t i = 0; i < size; i++) big[i] = static_cast<char>((i * 131 + i / 977) & 0xff);
  uint64_t seq = 0;
  LITEJET_CONF_OK(w->Publish(big, 0, "big", 10000, &seq));
  Status st = w->Publish(std::string(w->MaxPayload() + 1, 'y'), seq, "too-big", 10000, &seq);
  LITEJET_CONF_CHECK(st.code() == kTooLarge,
                     "oversized publish: code " + std::to_string(st.code()) + " " + st.message());
  Message m;
  bool found = false;
  LITEJET_CONF_OK(w->Last(10000, &m, &found));
  LITEJET_CONF_CHECK(found && m.seq == 1 && m.data == big, "Last differs from the large message");
  auto r = open();
  return ReadRange(*r, 1, 1, 5000,
                   [&](const Message& msg) { return msg.data == big ? "" : std::string("read differs"); });
}

struct OutageStats {
  uint64_t published_before = 0;  // messages published when disrupt() was called
  uint64_t publish_retries = 0;   // kUnavailable answers the writer retried
  uint64_t read_unavailable = 0;  // kUnavailable answers of Read
  double max_stall_s = 0;         // longest time between two successful publishes
};

// Publishing (one message per pace_us) and reading through an outage:
// disrupt() runs once a third is published. The reader must see 1..n exactly
// once with the right data, and the log must hold exactly n messages.
inline Status SurvivesOutage(const Opener& open, uint64_t n, int pace_us, const std::function<void()>& disrupt,
                             OutageStats* stats) {
  auto w = open(), r = open();
  LITEJET_CONF_OK(w->Ensure(5000));
  std::atomic<uint64_t> published{0}, retries{0};
  std::atomic<bool> writer_done{false}, reader_done{false};
  Status wst, rst;
  std::atomic<double> max_stall{0};
  std::thread watch([&] {  // samples the writer's progress
    auto since = Clock::now();
    uint64_t seen = 0;
    while (!writer_done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (published.load() != seen) {
        seen = published.load();
        since = Clock::now();
      } else {
        max_stall = std::max(max_stall.load(), Seconds(since));
      }
    }
  });
  std::thread writer([&] {
    wst = PublishRetrying(*w, n, Clock::now() + std::chrono::seconds(40), &published, 0, &retries, pace_us);
    writer_done = true;
  });
  uint64_t next = 1, unavailable = 0;
  std::string bad;
  std::thread reader([&] {
    auto deadline = Clock::now() + std::chrono::seconds(45);
    while (next <= n && bad.empty() && Clock::now() < deadline) {
      Status st = r->Read(next, 300, [&](const Message& m) {
        if (m.seq != next) {
          bad = "got seq " + std::to_string(m.seq) + ", want " + std::to_string(next);
        } else if (m.data != Payload(m.seq)) {
          bad = "seq " + std::to_string(m.seq) + " has wrong data";
        }
        next++;
        return bad.empty() && next <= n;
      });
      if (st.code() == kUnavailable) {
        unavailable++;
      } else if (!st.ok()) {
        rst = st;
        break;
      }
    }
    reader_done = true;
  });
  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (published.load() < n / 3 && !writer_done && !reader_done && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stats->published_before = published.load();
  disrupt();
  writer.join();
  reader.join();
  watch.join();
  stats->max_stall_s = max_stall.load();
  stats->publish_retries = retries.load();
  stats->read_unavailable = unavailable;
  LITEJET_CONF_OK(wst);
  LITEJET_CONF_OK(rst);
  LITEJET_CONF_CHECK(bad.empty(), bad);
  LITEJET_CONF_CHECK(next == n + 1, "reader stopped at " + std::to_string(next) + " of " + std::to_string(n));
  Message m;
  bool found = false;
  LITEJET_CONF_OK(w->Last(5000, &m, &found));
  LITEJET_CONF_CHECK(found && m.seq == n, "log has " + std::to_string(m.seq) + " messages, want " + std::to_string(n));
  return Status::OK();
}

}  // namespace litejet::transport::conformance
