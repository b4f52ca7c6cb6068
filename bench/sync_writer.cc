// The timed loops of bench/sync_bench.py, in C++ so that the harness's own
// cost stays out of the figures. A benchmark helper, not a test.
//
//   sync_writer commit --db PATH [--query Q | --plain] --n N [--warmup W] [--busy-us U] --out FILE
//       one-row commits (INSERT of a 100-byte blob, autocommit) through the
//       litejet VFS with URI query Q, or plain SQLite (unix VFS); prints
//       "ready", waits for a line on stdin (the start barrier of concurrent
//       writers), commits, writes each commit's wall time (ns) to FILE and
//       prints {"start_us":...,"end_us":...} (CLOCK_REALTIME). --linger:
//       then keeps the database open until another line arrives.
//   sync_writer hold --db PATH --query Q
//       opens the database (the first to open it hosts the litejet agent),
//       prints "ready", closes it when a line arrives on stdin.
//   sync_writer count --db PATH [--query Q | --plain]
//       prints {"rows":..,"position":..} (position -1 for plain SQLite).
//   sync_writer publish --url U --stream S --replicas R --bytes B --n N [--warmup W] --out FILE
//       raw synchronous JetStream publishes (js_Publish with a msg-id and
//       the expected last sequence, to a file-storage stream of R replicas,
//       as litejet's log does); same output as commit.
//   sync_writer streams --url U
//       prints {"msgs":..,"bytes":..} summed over the server's streams (not KV buckets).
#include <nats/nats.h>

#include <iostream>
#include <map>

#include "bench/bench_common.h"

namespace {

using bench::Die;

std::map<std::string, std::string> Args(int argc, char** argv, int from) {
  std::map<std::string, std::string> a;
  for (int i = from; i < argc; i++) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) Die("unexpected argument %s", argv[i]);
    k = k.substr(2);
    if (k == "plain" || k == "linger") {
      a[k] = "1";
    } else if (i + 1 < argc) {
      a[k] = argv[++i];
    } else {
      Die("--%s needs a value", k.c_str());
    }
  }
  return a;
}

std::string Need(std::map<std::string, std::string>& a, const char* k) {
  auto it = a.find(k);
  if (it == a.end()) Die("--%s is required", k);
  return it->second;
}

int Int(std::map<std::string, std::string>& a, const char* k, int dflt) {
  auto it = a.find(k);
  return it == a.end() ? dflt : std::atoi(it->second.c_str());
}

sqlite3* Open(std::map<std::string, std::string>& a) {
  std::string path = Need(a, "db");
  if (a.count("plain")) return bench::OpenPlain(path);
  return bench::OpenLitejet(path, Need(a, "query"));
}

void WaitForGo() {
  std::printf("ready\n");
  std::fflush(stdout);
  std::string line;
  if (!std::getline(std::cin, line)) Die("no start line on stdin");
}

void Report(const std::vector<int64_t>& lat, const std::string& out, int64_t start_us, int64_t end_us) {
  FILE* f = std::fopen(out.c_str(), "w");
  if (!f) Die("%s: %s", out.c_str(), std::strerror(errno));
  for (int64_t x : lat) std::fprintf(f, "%lld\n", (long long)x);
  std::fclose(f);
  std::printf("{\"start_us\": %lld, \"end_us\": %lld, \"n\": %zu}\n", (long long)start_us, (long long)end_us,
              lat.size());
}

// --busy-us N: instead of SQLite's busy handler (sleeps of 1, 2, 5, 10 ...
// ms), retry every N us, up to 10 s: what the write lock's hand-over costs
// between processes without the back-off.
int BusyRetry(void* us, int count) {
  const int64_t each = *static_cast<int64_t*>(us);
  if (int64_t(count) * each >= 10 * 1000000) return 0;
  bench::SleepUs(each);
  return 1;
}

int Commit(std::map<std::string, std::string>& a) {
  const int n = Int(a, "n", 1000), warmup = Int(a, "warmup", 20);
  static int64_t busy_us = Int(a, "busy-us", 0);
  sqlite3* db = Open(a);
  if (busy_us > 0) sqlite3_busy_handler(db, BusyRetry, &busy_us);
  bench::Exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, w INTEGER, v BLOB)");
  sqlite3_stmt* ins = bench::Prepare(db, "INSERT INTO t(w, v) VALUES (?1, randomblob(100))");
  sqlite3_bind_int(ins, 1, ::getpid());
  for (int i = 0; i < warmup; i++) {
    int rc = bench::StepDone(ins);
    if (rc != SQLITE_OK) Die("warm-up commit %d: %s", i, sqlite3_errmsg(db));
  }
  WaitForGo();
  std::vector<int64_t> lat;
  lat.reserve(size_t(n));
  const int64_t start_us = bench::RealUs();
  for (int i = 0; i < n; i++) {
    int64_t t0 = bench::MonoNs();
    int rc = bench::StepDone(ins);
    if (rc != SQLITE_OK) {
      std::string why = sqlite3_errmsg(db);
      if (!a.count("plain")) {  // litejet says more in repl_status()
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db, "SELECT repl_status()", -1, &st, nullptr) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
          why += std::string("; repl_status() ") + reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        }
        sqlite3_finalize(st);
      }
      Die("commit %d: %s (code %d)", i, why.c_str(), rc);
    }
    lat.push_back(bench::MonoNs() - t0);
  }
  const int64_t end_us = bench::RealUs();
  sqlite3_finalize(ins);
  Report(lat, Need(a, "out"), start_us, end_us);
  std::fflush(stdout);
  if (a.count("linger")) {  // the database stays open (the agent here) until told
    std::string line;
    std::getline(std::cin, line);
  }
  sqlite3_close(db);
  return 0;
}

// Keeps the database open (and so, being the first to open it, the host's
// litejet agent) from "ready" until a line arrives on stdin.
int Hold(std::map<std::string, std::string>& a) {
  sqlite3* db = Open(a);
  bench::Exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, w INTEGER, v BLOB)");
  WaitForGo();
  sqlite3_close(db);
  return 0;
}

int Count(std::map<std::string, std::string>& a) {
  sqlite3* db = Open(a);
  long long rows = bench::QueryInt(db, "SELECT count(*) FROM t");
  long long pos = a.count("plain") ? -1 : bench::QueryInt(db, "SELECT repl_position()");
  sqlite3_close(db);
  std::printf("{\"rows\": %lld, \"position\": %lld}\n", rows, pos);
  return 0;
}

void Check(natsStatus s, jsErrCode jerr, const char* what) {
  if (s != NATS_OK) Die("%s: %s (JetStream error %d)", what, natsStatus_GetText(s), int(jerr));
}

struct Nats {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit Nats(const std::string& url) {
    std::vector<std::string> urls;
    for (size_t at = 0; at <= url.size();) {
      size_t comma = std::min(url.find(',', at), url.size());
      urls.push_back(url.substr(at, comma - at));
      at = comma + 1;
    }
    std::vector<const char*> servers;
    for (auto& u : urls) servers.push_back(u.c_str());
    natsOptions* o = nullptr;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetServers(o, servers.data(), int(servers.size()));
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, 5000);
    if (s == NATS_OK) s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    Check(s, jsErrCode(0), ("connect to " + url).c_str());
    Check(natsConnection_JetStream(&js, nc, nullptr), jsErrCode(0), "JetStream context");
  }
  ~Nats() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
};

int Publish(std::map<std::string, std::string>& a) {
  const int n = Int(a, "n", 1000), warmup = Int(a, "warmup", 20), bytes = Int(a, "bytes", 300);
  const std::string stream = Need(a, "stream"), subject = stream + ".log";
  Nats c(Need(a, "url"));
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {subject.c_str()};
  cfg.Name = stream.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = Int(a, "replicas", 1);
  cfg.Duplicates = int64_t(120) * 1000000000;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = jsErrCode(0);
  Check(js_AddStream(&si, c.js, &cfg, nullptr, &jerr), jerr, ("create stream " + stream).c_str());
  jsStreamInfo_Destroy(si);
  std::string payload(size_t(bytes), 'x');
  for (size_t i = 0; i < payload.size(); i++) payload[i] = char('a' + (i * 7919 + 13) % 26);
  uint64_t last = 0;
  auto one = [&]() {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 5000;
    std::string id = stream + ":" + std::to_string(last + 1);
    po.MsgId = id.c_str();
    if (last == 0) {
      po.ExpectNoMessage = true;
    } else {
      po.ExpectLastSeq = last;
    }
    jsPubAck* ack = nullptr;
    jsErrCode e = jsErrCode(0);
    Check(js_Publish(&ack, c.js, subject.c_str(), payload.data(), int(payload.size()), &po, &e), e, "publish");
    last = ack->Sequence;
    jsPubAck_Destroy(ack);
  };
  for (int i = 0; i < warmup; i++) one();
  WaitForGo();
  std::vector<int64_t> lat;
  lat.reserve(size_t(n));
  const int64_t start_us = bench::RealUs();
  for (int i = 0; i < n; i++) {
    int64_t t0 = bench::MonoNs();
    one();
    lat.push_back(bench::MonoNs() - t0);
  }
  const int64_t end_us = bench::RealUs();
  Report(lat, Need(a, "out"), start_us, end_us);
  return 0;
}

int Streams(std::map<std::string, std::string>& a) {
  Nats c(Need(a, "url"));
  jsStreamInfoList* l = nullptr;
  jsErrCode jerr = jsErrCode(0);
  Check(js_Streams(&l, c.js, nullptr, &jerr), jerr, "list streams");
  uint64_t msgs = 0, bytes = 0;
  for (int i = 0; l && i < l->Count; i++) {
    if (std::strncmp(l->List[i]->Config->Name, "KV_", 3) == 0) continue;  // leases, not records
    msgs += l->List[i]->State.Msgs;
    bytes += l->List[i]->State.Bytes;
  }
  if (l) jsStreamInfoList_Destroy(l);
  std::printf("{\"msgs\": %llu, \"bytes\": %llu}\n", (unsigned long long)msgs, (unsigned long long)bytes);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("usage: sync_writer commit|count|publish|streams --...");
  bench::InitLitejet();
  std::string cmd = argv[1];
  auto a = Args(argc, argv, 2);
  if (cmd == "commit") return Commit(a);
  if (cmd == "count") return Count(a);
  if (cmd == "hold") return Hold(a);
  if (cmd == "publish") return Publish(a);
  if (cmd == "streams") return Streams(a);
  Die("unknown command %s", cmd.c_str());
}
