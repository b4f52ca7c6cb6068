// `litejet log` against a real nats-server: records are crafted here and
// published through the transport (single, batched, chunked, cut, epoch
// markers, broken chains, garbage), then the CLI binary ($LITEJET_BUILD/litejet)
// is run and its text, JSON lines, --check verdicts and exit statuses checked.
#include <nats/nats.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/harness/nats_server.h"
#include "tests/util/cli_run.h"
#include "transport/log.h"
#include "wal-capture/checksum.h"
#include "wal-capture/record.h"

// After the C++ headers: cmocka's fail() macro breaks <ios>.
extern "C" {
#include <cmocka.h>
}

namespace lt = litejet::transport;
namespace rec = litejet::record;
using litejet::test::CliRun;
using litejet::test::NatsServer;

namespace {

CliRun Log(std::vector<std::string> args) {
  CliRun r = litejet::test::RunCli("log", std::move(args));
  print_message("rc=%d (%.2f s)\n--- stdout\n%s--- stderr\n%s", r.rc, r.seconds, r.out.c_str(), r.err.c_str());
  return r;
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

// The checksum after TXID t in the crafted histories (0 before TXID 1).
uint64_t Sum(uint64_t t) { return t * 0x0123456789abcdefULL; }

// TXID t was committed at 2023-11-14T22:13:(20+t).123456Z.
uint64_t Micros(uint64_t t) { return (1700000000 + t) * 1000000 + 123456; }
std::string TimeOf(uint64_t t) {
  assert_true(t < 40);
  char b[64];
  std::snprintf(b, sizeof b, "2023-11-14T22:13:%02d.123Z", int(20 + t));
  return b;
}

// One record as the CLI should show it.
struct Want {
  uint64_t txid = 0, epoch = 1, before = 0, after = 0, seq = 0, bytes = 0;
  std::string node = "node-a";
  size_t pages = 1;
  bool marker = false;
};

rec::Txn TxnOf(const Want& w) {
  rec::Txn t;
  t.txid = w.txid;
  t.epoch = w.epoch;
  t.timestamp_us = Micros(w.txid);
  t.node = w.node;
  t.page_size = 4096;
  t.db_pages = 8;
  t.checksum_before = w.before;
  t.checksum_after = w.after;
  t.epoch_marker = w.marker;
  for (size_t i = 0; i < w.pages; i++)
    t.pages.push_back({static_cast<uint32_t>(i + 1), std::string(4096, char('a' + (w.txid + i) % 26))});
  return t;
}

// A log being written: each call appends messages and records what the CLI
// should list (complete records only).
class Writer {
 public:
  explicit Writer(const lt::Options& o) {
    AssertOk(lt::OpenNats(o, &log_));
    AssertOk(log_->Ensure(10000));
  }

  // TXID t of the chain (before = Sum(t-1), after = Sum(t)), in `chunk`-byte chunks.
  Want Txn(uint64_t t, size_t pages = 1, const std::string& node = "node-a", uint64_t epoch = 1) {
    Want w;
    w.txid = t;
    w.pages = pages;
    w.node = node;
    w.epoch = epoch;
    w.before = Sum(t - 1);
    w.after = Sum(t);
    return w;
  }
  Want Marker(uint64_t t, const std::string& node, uint64_t epoch) {
    Want w = Txn(t, 0, node, epoch);
    w.before = w.after = Sum(t);
    w.marker = true;
    return w;
  }

  // Publishes w whole (chunks of at most max_chunk bytes); `send` < all: only that many chunks (cut).
  void Put(Want w, size_t max_chunk = 1 << 20, size_t send = SIZE_MAX) {
    std::string r;
    AssertOk(rec::Encode(TxnOf(w), rec::Compression::kNone, &r));
    w.bytes = r.size();
    std::vector<std::string> chunks;
    AssertOk(rec::Split(r, w.txid, max_chunk, &chunks));
    if (send < chunks.size()) {
      chunks.resize(send);
    } else {
      send = SIZE_MAX;
    }
    for (const auto& c : chunks) Raw(c);
    w.seq = seq_;
    if (send == SIZE_MAX) want_.push_back(w);
  }

  // Several records in one message (a batch, zstd or not).
  void Batch(std::vector<Want> ws, int zstd_level) {
    std::vector<std::string> recs;
    for (auto& w : ws) {
      recs.emplace_back();
      AssertOk(rec::Encode(TxnOf(w), rec::Compression::kNone, &recs.back()));
      w.bytes = recs.back().size();
    }
    std::string blob;
    AssertOk(rec::EncodeBatch(recs, &blob, zstd_level));
    std::vector<std::string> chunks;
    AssertOk(rec::Split(blob, ws.back().txid, 1 << 20, &chunks));
    for (const auto& c : chunks) Raw(c);
    for (auto& w : ws) {
      w.seq = seq_;
      want_.push_back(w);
    }
  }

  // Any bytes as the next message.
  void Raw(const std::string& data) { AssertOk(log_->Publish(data, seq_, "", 10000, &seq_)); }

  uint64_t seq() const { return seq_; }
  const std::vector<Want>& want() const { return want_; }

 private:
  std::unique_ptr<lt::Log> log_;
  uint64_t seq_ = 0;
  std::vector<Want> want_;
};

const char kHeader[] =
    "      TXID  TIME                      EPOCH  NODE        PAGES       BYTES  CHECKSUM                 SEQ  KIND\n";

// The text report's lines after the header, each split at blanks.
std::vector<std::vector<std::string>> Rows(const std::string& out) {
  assert_true(out.rfind(kHeader, 0) == 0);
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(out.substr(sizeof kHeader - 1));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::vector<std::string> cols;
    std::string c;
    while (f >> c) cols.push_back(c);
    rows.push_back(cols);
  }
  return rows;
}

std::vector<std::string> Row(const Want& w) {
  return {
      std::to_string(w.txid),           TimeOf(w.txid),          std::to_string(w.epoch),         w.node,
      std::to_string(w.pages),          std::to_string(w.bytes), litejet::checksum::Hex(w.after), std::to_string(w.seq),
      w.marker ? "epoch-marker" : "txn"};
}

// The text output lists exactly `ws`, in order.
void AssertRows(const std::string& out, const std::vector<Want>& ws) {
  auto rows = Rows(out);
  assert_int_equal(rows.size(), ws.size());
  for (size_t i = 0; i < ws.size(); i++) {
    auto want = Row(ws[i]);
    if (rows[i] != want) {
      std::string got, exp;
      for (auto& c : rows[i]) got += c + " ";
      for (auto& c : want) exp += c + " ";
      fail_msg("row %zu: got [%s], want [%s]", i, got.c_str(), exp.c_str());
    }
  }
}

// The --json output is exactly `ws`, one object per line, every field.
void AssertJsonLines(const std::string& out, const std::vector<Want>& ws) {
  assert_int_equal(std::count(out.begin(), out.end(), '\n'), ws.size());
  std::string list = "[";
  for (const auto& w : ws) {
    list += "{'txid':" + std::to_string(w.txid) + ",'time':'" + TimeOf(w.txid) +
            "','epoch':" + std::to_string(w.epoch) + ",'node':'" + w.node + "','pages':" + std::to_string(w.pages) +
            ",'bytes':" + std::to_string(w.bytes) + ",'checksum_before':'" + litejet::checksum::Hex(w.before) +
            "','checksum_after':'" + litejet::checksum::Hex(w.after) + "','seq':" + std::to_string(w.seq) +
            ",'kind':'" + (w.marker ? "epoch-marker" : "txn") + "'},";
  }
  list += "]";
  std::string detail;
  if (!litejet::test::JsonHolds(out, "d==" + list, true, &detail)) fail_msg("JSON lines differ:\n%s", detail.c_str());
}

std::vector<Want> Slice(const std::vector<Want>& ws, size_t from, size_t n) {
  from = std::min(from, ws.size());
  return std::vector<Want>(ws.begin() + from, ws.begin() + std::min(ws.size(), from + n));
}

int counter = 0;

lt::Options OptionsFor(const NatsServer& server) {
  lt::Options o;
  o.urls = {server.url()};
  o.name = "lg" + std::to_string(++counter) + "_" + std::to_string(getpid());
  return o;
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

NatsServer& Server(void** state) { return *static_cast<NatsServer*>(*state); }

// Every kind of message a log holds: single records, a batch, an epoch
// marker, a record in chunks, a record cut after its first chunk and then
// published again whole (what a retrying primary does).
void log_lists_every_record_with_its_fields(void** state) {
  lt::Options o = OptionsFor(Server(state));
  Writer w(o);
  w.Put(w.Txn(1, 2));
  w.Put(w.Txn(2));
  w.Batch({w.Txn(3), w.Txn(4, 3)}, 1);
  w.Put(w.Marker(4, "node-b", 2));
  w.Put(w.Txn(5, 3, "node-b", 2), 4096);
  assert_true(w.seq() >= 7);  // TXID 5 took several chunks
  w.Put(w.Txn(6, 2, "node-b", 2), 4096, 1);
  w.Put(w.Txn(6, 2, "node-b", 2), 4096);
  w.Put(w.Txn(7, 1, "node-b", 2));
  const auto& all = w.want();
  assert_int_equal(all.size(), 8);
  const std::string url = Server(state).url();

  CliRun r = Log({"--nats", url, "--name", o.name});
  assert_int_equal(r.rc, 0);
  assert_true(r.err.empty());
  AssertRows(r.out, all);

  r = Log({"--nats", url, "--name", o.name, "--json"});
  assert_int_equal(r.rc, 0);
  AssertJsonLines(r.out, all);

  r = Log({"--nats", url, "--name", o.name, "--check"});
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.out.c_str(),
                      ("7 transactions, TXID 1..7, epochs 1..2, chain ok (1 epoch marker, sequences 1.." +
                       std::to_string(w.seq()) + ", 1 incomplete record skipped)\n")
                          .c_str());
  r = Log({"--nats", url, "--name", o.name, "--check", "--json"});
  assert_int_equal(r.rc, 0);
  std::string detail;
  assert_true(litejet::test::JsonHolds(
      r.out,
      "d=={'ok':True,'transactions':7,'epoch_markers':1,'incomplete_records':1,'first_txid':1,'last_txid':7,"
      "'first_epoch':1,'last_epoch':2,'first_seq':1,'last_seq':" +
          std::to_string(w.seq()) + ",'checksum':'" + litejet::checksum::Hex(Sum(7)) + "'}",
      false, &detail));

  // --from: the marker at TXID 4 comes after TXID 4 itself.
  r = Log({"--nats", url, "--name", o.name, "--from", "4", "--limit=2"});
  assert_int_equal(r.rc, 0);
  AssertRows(r.out, Slice(all, 3, 2));
  r = Log({"--nats", url, "--name", o.name, "--from=5"});
  AssertRows(r.out, Slice(all, 5, 10));
}

// The default is the last 20 records; --limit changes that; --from starts at
// a TXID. Records in chunks here and there, so that the window read at the
// end of the log starts inside one.
void log_shows_the_last_records_from_and_limit(void** state) {
  lt::Options o = OptionsFor(Server(state));
  Writer w(o);
  for (uint64_t t = 1; t <= 30; t++) {
    if (t % 7 == 0) {
      w.Put(w.Txn(t, 3, t % 2 ? "odd" : "even"), 4096);
    } else {
      w.Put(w.Txn(t, 1, t % 2 ? "odd" : "even"));
    }
  }
  const auto& all = w.want();
  const std::string url = Server(state).url();

  CliRun r = Log({"--nats", url, "--name", o.name});
  assert_int_equal(r.rc, 0);
  AssertRows(r.out, Slice(all, 10, 20));
  for (int n : {1, 2, 3, 5, 9, 30, 31}) {
    r = Log({"--nats", url, "--name", o.name, "--limit", std::to_string(n)});
    assert_int_equal(r.rc, 0);
    AssertRows(r.out, Slice(all, 30 - std::min(n, 30), n));
  }
  r = Log({"--nats", url, "--name", o.name, "--limit", "2", "--json"});
  AssertJsonLines(r.out, Slice(all, 28, 2));
  r = Log({"--nats", url, "--name", o.name, "--from", "7", "--limit", "3"});
  AssertRows(r.out, Slice(all, 6, 3));
  r = Log({"--nats", url, "--name", o.name, "--from", "29"});
  AssertRows(r.out, Slice(all, 28, 2));
  r = Log({"--nats", url, "--name", o.name, "--from", "31"});
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.out.c_str(), kHeader);

  r = Log({"--nats", url, "--name", o.name, "--check"});
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.out.c_str(),
                      ("30 transactions, TXID 1..30, epochs 1..1, chain ok (0 epoch markers, sequences 1.." +
                       std::to_string(w.seq()) + ")\n")
                          .c_str());
  r = Log({"--nats", url, "--name", o.name, "--check", "--from", "10", "--limit", "5"});
  assert_int_equal(r.rc, 0);
  assert_true(Has(r.out, "5 transactions, TXID 10..14, epochs 1..1, chain ok"));
}

// A stream with no message yet.
void log_of_an_empty_log(void** state) {
  lt::Options o = OptionsFor(Server(state));
  Writer w(o);
  const std::string url = Server(state).url();
  CliRun r = Log({"--nats", url, "--name", o.name});
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.out.c_str(), kHeader);
  r = Log({"--nats", url, "--name", o.name, "--json"});
  assert_int_equal(r.rc, 0);
  assert_true(r.out.empty());
  r = Log({"--nats", url, "--name", o.name, "--check"});
  assert_int_equal(r.rc, 0);
  assert_string_equal(r.out.c_str(), "0 transactions, chain ok (0 epoch markers)\n");
}

// Doctored logs: each breaks one rule of a single history; --check names the
// first violation and its sequence (exit 1); listing them is not an error.
void check_names_the_first_violation(void** state) {
  const std::string url = Server(state).url();
  struct Case {
    const char* what;
    std::function<void(Writer&)> write;
    uint64_t seq;
    std::string why;
  };
  std::vector<Case> cases = {
      {"checksum chain",
       [](Writer& w) {
         for (uint64_t t = 1; t <= 3; t++) w.Put(w.Txn(t));
         Want bad = w.Txn(4);
         bad.before = 42;
         w.Put(bad);
         w.Put(w.Txn(5));
       },
       4,
       "TXID 4 has checksum_before 000000000000002a but TXID 3 ended at checksum " + litejet::checksum::Hex(Sum(3)) +
           " (sequence 3)"},
      {"gap",
       [](Writer& w) {
         w.Put(w.Txn(1));
         w.Put(w.Txn(2));
         w.Put(w.Txn(4));
       },
       3, "TXID 4 follows TXID 2 (expected 3)"},
      {"repeated TXID",
       [](Writer& w) {
         w.Put(w.Txn(1));
         w.Put(w.Txn(2));
         w.Put(w.Txn(2, 1, "node-b"));
       },
       3, "TXID 2 follows TXID 2 (expected 3)"},
      {"epoch going back",
       [](Writer& w) {
         w.Put(w.Txn(1, 1, "node-a", 3));
         w.Put(w.Txn(2, 1, "node-z", 2));
       },
       2, "epoch goes back from 3 to 2 (node node-z)"},
      {"marker at another TXID",
       [](Writer& w) {
         w.Put(w.Txn(1));
         w.Put(w.Txn(2));
         w.Put(w.Marker(1, "node-b", 2));
       },
       3, "an epoch marker at TXID 1 follows TXID 2 (a marker repeats the last TXID)"},
      {"log not starting at TXID 1",
       [](Writer& w) {
         w.Put(w.Txn(5));
         w.Put(w.Txn(6));
       },
       1, "the log's first record is TXID 5, not 1"},
  };
  for (const auto& c : cases) {
    print_message("case: %s\n", c.what);
    lt::Options o = OptionsFor(Server(state));
    Writer w(o);
    c.write(w);
    CliRun r = Log({"--nats", url, "--name", o.name, "--check"});
    assert_int_equal(r.rc, 1);
    assert_true(r.out.empty());
    assert_string_equal(
        r.err.c_str(),
        ("litejet: log: check failed at sequence " + std::to_string(c.seq) + ": " + c.why + "\n").c_str());
    r = Log({"--nats", url, "--name", o.name, "--check", "--json"});
    assert_int_equal(r.rc, 1);
    assert_true(OneLine(r.err));
    std::string detail;
    if (!litejet::test::JsonHolds(
            r.out,
            "d['ok']==False and d['seq']==" + std::to_string(c.seq) + " and d['violation']==" + "\"" + c.why + "\"",
            false, &detail)) {
      fail_msg("%s", detail.c_str());
    }
    // Listing does not judge.
    r = Log({"--nats", url, "--name", o.name});
    assert_int_equal(r.rc, 0);
    AssertRows(r.out, w.want());
  }
  // Up to the violation the log is fine: --limit stops before it.
  lt::Options o = OptionsFor(Server(state));
  Writer w(o);
  w.Put(w.Txn(1));
  w.Put(w.Txn(2));
  w.Put(w.Txn(4));
  CliRun r = Log({"--nats", url, "--name", o.name, "--check", "--limit", "2"});
  assert_int_equal(r.rc, 0);
  assert_true(Has(r.out, "2 transactions, TXID 1..2, epochs 1..1, chain ok"));
}

// A message that is not a litejet record: what came before it is shown, then
// one line naming its sequence and the cause, exit 1.
void undecodable_message_names_its_sequence(void** state) {
  const std::string url = Server(state).url();
  // Not a chunk at all.
  lt::Options o = OptionsFor(Server(state));
  Writer w(o);
  w.Put(w.Txn(1));
  w.Put(w.Txn(2));
  w.Raw("hello, not a litejet chunk");
  w.Put(w.Txn(3));
  for (auto args : std::vector<std::vector<std::string>>{{}, {"--from", "1"}, {"--limit", "10"}}) {
    args.insert(args.begin(), {"--nats", url, "--name", o.name});
    CliRun r = Log(args);
    assert_int_equal(r.rc, 1);
    AssertRows(r.out, Slice(w.want(), 0, 2));
    assert_true(OneLine(r.err));
    assert_string_equal(r.err.c_str(), "litejet: log: sequence 3: chunk: bad magic\n");
  }
  CliRun r = Log({"--nats", url, "--name", o.name, "--check"});
  assert_int_equal(r.rc, 1);
  assert_true(r.out.empty());
  assert_true(OneLine(r.err));
  assert_string_equal(r.err.c_str(), "litejet: log: check failed at sequence 3: chunk: bad magic\n");

  // A sound chunk around a damaged record (its payload hash fails).
  o = OptionsFor(Server(state));
  Writer d(o);
  d.Put(d.Txn(1));
  std::string bad;
  AssertOk(rec::Encode(TxnOf(d.Txn(2)), rec::Compression::kNone, &bad));
  bad[bad.size() - 1] ^= 1;
  std::vector<std::string> chunks;
  AssertOk(rec::Split(bad, 2, 1 << 20, &chunks));
  d.Raw(chunks[0]);
  r = Log({"--nats", url, "--name", o.name});
  assert_int_equal(r.rc, 1);
  AssertRows(r.out, Slice(d.want(), 0, 1));
  assert_true(OneLine(r.err));
  assert_string_equal(r.err.c_str(), "litejet: log: sequence 2: record: payload checksum mismatch\n");
}

// A message deleted from the middle of the stream: the history has a hole.
void deleted_message_is_a_broken_log(void** state) {
  const std::string url = Server(state).url();
  lt::Options o = OptionsFor(Server(state));
  Writer w(o);
  for (uint64_t t = 1; t <= 3; t++) w.Put(w.Txn(t));
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  assert_int_equal(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK);
  assert_int_equal(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  natsStatus s = js_DeleteMsg(js, ("litejet_" + o.name).c_str(), 2, nullptr, nullptr);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  assert_int_equal(s, NATS_OK);
  for (const char* flag : {"--check", "--json"}) {
    CliRun r = Log({"--nats", url, "--name", o.name, flag});
    assert_int_equal(r.rc, 1);
    assert_true(OneLine(r.err));
    assert_true(Has(r.err, "sequence 2: "));
    assert_true(Has(r.err, "message 2 is no longer in the log"));
  }
}

void log_of_unknown_database_is_exit_3(void** state) {
  const std::string url = Server(state).url();
  CliRun r = Log({"--nats", url, "--name", "nobody_here"});
  assert_int_equal(r.rc, 3);
  assert_true(r.out.empty());
  assert_string_equal(r.err.c_str(), ("litejet: log: no database \"nobody_here\" on NATS at " + url +
                                      ": stream litejet_nobody_here not found\n")
                                         .c_str());
}

void log_unreachable_is_one_line_and_exit_3_within_the_timeout(void**) {
  CliRun r = Log({"--nats", "nats://u:secret@127.0.0.1:1", "--name", "db", "--timeout-ms", "1500"});
  assert_int_equal(r.rc, 3);
  assert_true(OneLine(r.err));
  assert_true(Has(r.err, "litejet: log: cannot reach NATS at nats://***@127.0.0.1:1 within 1500 ms"));
  assert_true(r.err.find("secret") == std::string::npos);
  assert_true(r.out.empty());
  assert_true(r.seconds < 1.5 + 30);  // a hang guard; the duration is printed, not checked (loaded CI)
  r = Log({"--nats", "nats://127.0.0.1:1", "--name", "db", "--check"});  // the default timeout, 5 s
  assert_int_equal(r.rc, 3);
  assert_true(r.seconds < 5 + 30);  // a hang guard; the duration is printed, not checked (loaded CI)
}

void log_bad_options_are_usage_errors(void**) {
  const std::string u = "nats://127.0.0.1:1";
  for (const auto& [args, why] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--name", "db"}, "--nats URL is required"},
           {{"--nats", u}, "--name NAME is required"},
           {{"--nats", u, "--name", "a b"}, "name \"a b\" is invalid"},
           {{"--nats", "http://x", "--name", "db"}, "nats"},
           {{"--nats", u, "--name", "db", "--bogus"}, "unknown option \"--bogus\""},
           {{"--nats", u, "--name", "db", "--limit", "0"}, "--limit must be a whole number from 1, got \"0\""},
           {{"--nats", u, "--name", "db", "--limit", "x"}, "--limit must be"},
           {{"--nats", u, "--name", "db", "--limit"}, "option --limit needs a value"},
           {{"--nats", u, "--name", "db", "--from", "0"}, "--from must be a TXID"},
           {{"--nats", u, "--name", "db", "--from=-3"}, "--from must be a TXID"},
           {{"--nats", u, "--name", "db", "--timeout-ms", "0"}, "--timeout-ms must be"},
       }) {
    CliRun r = Log(args);
    assert_int_equal(r.rc, 2);
    assert_true(OneLine(r.err));
    assert_true(Has(r.err, "litejet: log: " + why));
    assert_true(r.out.empty());
    assert_true(r.seconds < 30);  // a hang guard (a usage error contacts nothing); not a timing check
  }
  CliRun r = Log({"--help"});
  assert_int_equal(r.rc, 0);
  assert_true(Has(r.out, "usage: litejet log --nats URL --name NAME"));
  assert_true(Has(r.out, "--check"));
}

}  // namespace

int main() {
  lt::InitLibrary();
  const struct CMUnitTest shared[] = {
      cmocka_unit_test(log_lists_every_record_with_its_fields),
      cmocka_unit_test(log_shows_the_last_records_from_and_limit),
      cmocka_unit_test(log_of_an_empty_log),
      cmocka_unit_test(check_names_the_first_violation),
      cmocka_unit_test(undecodable_message_names_its_sequence),
      cmocka_unit_test(deleted_message_is_a_broken_log),
      cmocka_unit_test(log_of_unknown_database_is_exit_3),
  };
  const struct CMUnitTest alone[] = {
      cmocka_unit_test(log_unreachable_is_one_line_and_exit_3_within_the_timeout),
      cmocka_unit_test(log_bad_options_are_usage_errors),
  };
  int failed = cmocka_run_group_tests_name("cli_log_one_server", shared, StartServer, StopServer);
  failed += cmocka_run_group_tests_name("cli_log_no_server", alone, nullptr, nullptr);
  return failed;
}
