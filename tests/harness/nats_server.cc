// Test harness: spawn throw-away nats-server (JetStream) processes on loopback.
// See nats_server.h for the contract.
#include "tests/harness/nats_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace litejet {
namespace test {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kHealthTimeoutS = 20.0;
constexpr double kTermWaitS = 10.0;
constexpr double kKillWaitS = 5.0;
constexpr int kStartAttempts = 3;

// ---------------------------------------------------------------------------
// Process-wide registry of live server PIDs and temp dirs, cleaned at exit.
// Leaked on purpose so it outlives static destructors.
struct Registry {
  std::mutex mu;
  std::set<pid_t> pids;
  std::set<std::string> dirs;
};

void AtExitCleanup();

Registry& Reg() {
  static Registry* r = [] {
    auto* reg = new Registry;
    std::atexit(AtExitCleanup);
    return reg;
  }();
  return *r;
}

bool WaitPidBounded(pid_t pid, double wait_s) {
  auto deadline = Clock::now() + std::chrono::duration<double>(wait_s);
  for (;;) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void AtExitCleanup() {
  Registry& reg = Reg();
  std::set<pid_t> pids;
  std::set<std::string> dirs;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    pids.swap(reg.pids);
    dirs.swap(reg.dirs);
  }
  for (pid_t p : pids) kill(p, SIGTERM);
  for (pid_t p : pids) {
    if (!WaitPidBounded(p, kTermWaitS)) {
      kill(p, SIGKILL);
      WaitPidBounded(p, kKillWaitS);
    }
  }
  for (const auto& d : dirs) {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
}

void RegisterPid(pid_t p) {
  Registry& reg = Reg();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.pids.insert(p);
}
bool UnregisterPid(pid_t p) {  // false if someone else already reaped it
  Registry& reg = Reg();
  std::lock_guard<std::mutex> lock(reg.mu);
  return reg.pids.erase(p) > 0;
}
bool PidRegistered(pid_t p) {
  Registry& reg = Reg();
  std::lock_guard<std::mutex> lock(reg.mu);
  return reg.pids.count(p) > 0;
}
void RegisterDir(const std::string& d) {
  Registry& reg = Reg();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.dirs.insert(d);
}
void RemoveDir(const std::string& d) {
  if (d.empty()) return;
  {
    Registry& reg = Reg();
    std::lock_guard<std::mutex> lock(reg.mu);
    reg.dirs.erase(d);
  }
  std::error_code ec;
  fs::remove_all(d, ec);
}

// ---------------------------------------------------------------------------
void SetErr(std::string* err, const std::string& msg) {
  if (err) *err = msg;
}

std::string MakeTempDir(const char* prefix, std::string* err) {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    SetErr(err, "mkdtemp(" + tmpl + "): " + strerror(errno));
    return "";
  }
  std::string d(buf.data());
  RegisterDir(d);
  return d;
}

// The kernel's ephemeral range: local ports of outgoing connections come from
// it. A server port in it can be taken while the server is stopped for a
// restart (a client's reconnect to 127.0.0.1:P can even be given local port
// P: TCP self-connect), so ports are picked below it when there is room.
bool EphemeralLow(int* low) {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int lo = 0, hi = 0;
  if (!(f >> lo >> hi) || lo <= 0) return false;
  *low = lo;
  return true;
}

// Binds fd to 127.0.0.1:port (0: any); the bound port in *got.
bool BindLoopback(int fd, int port, int* got) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return false;
  }
  *got = ntohs(a.sin_port);
  return true;
}

// Reserve `count` distinct free loopback ports: random ones in [10000, the
// ephemeral range) that bind, else (no room) bind :0; read, close.
bool PickPorts(int count, std::vector<int>* out, std::string* err) {
  constexpr int kLowest = 10000;
  std::vector<int> fds;
  out->clear();
  int low = 0;
  const bool below = EphemeralLow(&low) && low - kLowest >= 1000;
  std::mt19937 rng(static_cast<uint32_t>(getpid()) * 2654435761u ^
                   static_cast<uint32_t>(Clock::now().time_since_epoch().count()));
  bool ok = true;
  for (int i = 0; i < count && ok; i++) {
    int got = 0;
    bool bound = false;
    for (int attempt = 0; attempt < 200 && !bound; attempt++) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        SetErr(err, std::string("socket: ") + strerror(errno));
        ok = false;
        break;
      }
      const int want = below ? kLowest + static_cast<int>(rng() % static_cast<uint32_t>(low - kLowest)) : 0;
      if (BindLoopback(fd, want, &got)) {
        fds.push_back(fd);
        bound = true;
      } else {
        close(fd);
        if (!below) {
          SetErr(err, std::string("bind/getsockname: ") + strerror(errno));
          ok = false;
        }
      }
    }
    if (ok && !bound) {
      SetErr(err, "no free loopback port below the ephemeral range after 200 tries");
      ok = false;
    }
    if (ok) out->push_back(got);
  }
  for (int fd : fds) close(fd);
  return ok;
}

bool WriteFile(const std::string& path, const std::string& content, std::string* err) {
  std::ofstream f(path, std::ios::trunc);
  f << content;
  f.close();
  if (!f) {
    SetErr(err, "cannot write " + path);
    return false;
  }
  return true;
}

std::string Quote(const std::string& s) {  // nats-server config string literal
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

std::string ServerConfig(const std::string& name, int port, int http_port, const std::string& store_dir,
                         int cluster_port, const std::vector<int>& route_ports) {
  std::ostringstream c;
  c << "server_name: " << Quote(name) << "\n"
    << "listen: \"127.0.0.1:" << port << "\"\n"
    << "http: \"127.0.0.1:" << http_port << "\"\n"
    << "jetstream {\n  store_dir: " << Quote(store_dir) << "\n}\n";
  if (cluster_port > 0) {
    c << "cluster {\n"
      << "  name: \"litejet-test\"\n"
      << "  listen: \"127.0.0.1:" << cluster_port << "\"\n"
      << "  routes: [\n";
    for (int rp : route_ports) c << "    \"nats-route://127.0.0.1:" << rp << "\"\n";
    c << "  ]\n}\n";
  }
  return c.str();
}

std::string ReadTail(const std::string& path, size_t max_bytes, off_t from = 0) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st {};
  std::string out;
  if (fstat(fd, &st) == 0) {
    off_t start = st.st_size > static_cast<off_t>(max_bytes) ? st.st_size - static_cast<off_t>(max_bytes) : 0;
    if (start < from) start = from;
    if (lseek(fd, start, SEEK_SET) == start) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  if (out.size() >= max_bytes) {  // started mid-file: drop the partial first line
    size_t nl = out.find('\n');
    if (nl != std::string::npos) out.erase(0, nl + 1);
  }
  return out;
}

off_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// --- tiny JSON helpers for /jsz (pretty-printed, no strings containing braces)
size_t MatchingClose(const std::string& s, size_t open) {
  char o = s[open], c = (o == '{') ? '}' : ']';
  int depth = 0;
  bool in_str = false;
  for (size_t i = open; i < s.size(); i++) {
    char ch = s[i];
    if (in_str) {
      if (ch == '\\')
        i++;
      else if (ch == '"')
        in_str = false;
      continue;
    }
    if (ch == '"')
      in_str = true;
    else if (ch == o)
      depth++;
    else if (ch == c && --depth == 0)
      return i;
  }
  return std::string::npos;
}

// Finds "key": value within [from, to) and returns the raw value start index.
size_t FindKey(const std::string& s, size_t from, size_t to, const std::string& key) {
  std::string needle = "\"" + key + "\"";
  size_t p = s.find(needle, from);
  while (p != std::string::npos && p < to) {
    size_t q = p + needle.size();
    while (q < to && isspace(static_cast<unsigned char>(s[q]))) q++;
    if (q < to && s[q] == ':') {
      q++;
      while (q < to && isspace(static_cast<unsigned char>(s[q]))) q++;
      return q;
    }
    p = s.find(needle, p + 1);
  }
  return std::string::npos;
}

// Raw scalar token at position p ("abc" -> abc, true, 123).
std::string Token(const std::string& s, size_t p) {
  if (p == std::string::npos || p >= s.size()) return "";
  if (s[p] == '"') {
    size_t e = s.find('"', p + 1);
    return e == std::string::npos ? "" : s.substr(p + 1, e - p - 1);
  }
  size_t e = p;
  while (e < s.size() && s[e] != ',' && s[e] != '}' && s[e] != ']' && !isspace(static_cast<unsigned char>(s[e]))) e++;
  return s.substr(p, e - p);
}

struct MetaInfo {
  std::string leader;
  int cluster_size = 0;
  int current_replicas = 0;  // as seen by the leader (excluding itself)
};

bool ParseMeta(const std::string& jsz, MetaInfo* mi) {
  size_t p = FindKey(jsz, 0, jsz.size(), "meta_cluster");
  if (p == std::string::npos || jsz[p] != '{') return false;
  size_t end = MatchingClose(jsz, p);
  if (end == std::string::npos) return false;
  mi->leader = Token(jsz, FindKey(jsz, p + 1, end, "leader"));
  mi->cluster_size = atoi(Token(jsz, FindKey(jsz, p + 1, end, "cluster_size")).c_str());
  mi->current_replicas = 0;
  size_t r = FindKey(jsz, p + 1, end, "replicas");
  if (r != std::string::npos && jsz[r] == '[') {
    size_t rend = MatchingClose(jsz, r);
    for (size_t q = r; q != std::string::npos && q < rend;) {
      q = FindKey(jsz, q + 1, rend, "current");
      if (q == std::string::npos) break;
      if (Token(jsz, q) == "true") mi->current_replicas++;
    }
  }
  return true;
}

}  // namespace

// ===========================================================================
std::string NatsServerBinary() {
  const char* env = getenv("LITEJET_NATS_SERVER");
  if (env && *env && access(env, X_OK) == 0) return env;
  const char* path = getenv("PATH");
  if (path) {
    std::stringstream ss(path);
    std::string d;
    while (std::getline(ss, d, ':')) {
      if (d.empty()) continue;
      std::string cand = d + "/nats-server";
      if (access(cand.c_str(), X_OK) == 0) return cand;
    }
  }
  for (const char* c : {"/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"}) {
    if (access(c, X_OK) == 0) return c;
  }
  return "";
}

int HttpGet(int port, const std::string& path, std::string* body, double timeout_s) {
  if (body) body->clear();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout_s);
  tv.tv_usec = static_cast<suseconds_t>((timeout_s - static_cast<double>(tv.tv_sec)) * 1e6);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return 0;
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return 0;
    }
    off += static_cast<size_t>(n);
  }
  std::string resp;
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      resp.append(buf, static_cast<size_t>(n));
      if (resp.size() > (8u << 20)) break;
    } else if (n == 0) {
      break;
    } else if (errno != EINTR || Clock::now() >= deadline) {
      break;  // timeout or error: parse what we have
    }
  }
  close(fd);
  int code = 0;
  if (resp.compare(0, 5, "HTTP/") == 0) {
    size_t sp = resp.find(' ');
    if (sp != std::string::npos) code = atoi(resp.c_str() + sp + 1);
  }
  size_t hdr_end = resp.find("\r\n\r\n");
  if (body && hdr_end != std::string::npos) *body = resp.substr(hdr_end + 4);
  return code;
}

// ===========================================================================
// NatsServer

std::unique_ptr<NatsServer> NatsServer::Start(std::string* err) {
  std::string bin = NatsServerBinary();
  if (bin.empty()) {
    SetErr(err, "nats-server binary not found (PATH, /usr/sbin, $LITEJET_NATS_SERVER)");
    return nullptr;
  }
  std::unique_ptr<NatsServer> s(new NatsServer);
  s->dir_ = MakeTempDir("litejet-nats-", err);
  if (s->dir_.empty()) return nullptr;
  s->owns_dir_ = true;
  s->name_ = "litejet-single";
  s->conf_path_ = s->dir_ + "/server.conf";
  s->store_dir_ = s->dir_ + "/store";
  s->log_path_ = s->dir_ + "/server.log";

  std::string last_err;
  for (int attempt = 0; attempt < kStartAttempts; attempt++) {
    std::vector<int> ports;
    if (!PickPorts(2, &ports, err)) return nullptr;
    s->port_ = ports[0];
    s->http_port_ = ports[1];
    s->url_ = "nats://127.0.0.1:" + std::to_string(s->port_);
    if (!WriteFile(s->conf_path_, ServerConfig(s->name_, s->port_, s->http_port_, s->store_dir_, 0, {}), err))
      return nullptr;
    unlink(s->log_path_.c_str());
    if (s->Spawn(&last_err) && s->WaitHealthy(kHealthTimeoutS, &last_err)) return s;
    bool in_use = s->LogSaysAddressInUse();
    s->Stop();
    if (!in_use) break;
  }
  SetErr(err, last_err);
  return nullptr;  // ~NatsServer removes the dir
}

NatsServer::~NatsServer() {
  Stop();
  if (owns_dir_) RemoveDir(dir_);
}

std::string NatsServer::LogTail(size_t max_bytes) const { return ReadTail(log_path_, max_bytes); }

bool NatsServer::LogSaysAddressInUse() const {
  return ReadTail(log_path_, 1 << 16).find("address already in use") != std::string::npos;
}

bool NatsServer::Spawn(std::string* err) {
  if (pid_ > 0) {
    SetErr(err, "server already running");
    return false;
  }
  std::string bin = NatsServerBinary();
  if (bin.empty()) {
    SetErr(err, "nats-server binary not found");
    return false;
  }
  // Everything the child needs is prepared before fork (only async-signal-safe
  // calls happen between fork and exec; the test process may be multithreaded).
  int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    SetErr(err, "open " + log_path_ + ": " + strerror(errno));
    return false;
  }
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    close(log_fd);
    SetErr(err, std::string("open /dev/null: ") + strerror(errno));
    return false;
  }
  std::vector<std::string> args = {bin, "-c", conf_path_};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  // The server runs without the sanitizer runtime that a sanitized test's
  // environment preloads for its host processes: nats-server is a Go program
  // on libc, and with libtsan preloaded it ignores SIGTERM, so every Stop()
  // waited the whole kTermWaitS (most of test_lease_nats' and test_nats_log's
  // time under TSan).
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; e++) {
    if (strncmp(*e, "LD_PRELOAD=", 11) != 0) envp.push_back(*e);
  }
  envp.push_back(nullptr);
  const pid_t parent = getpid();
  static const char kExecFail[] = "litejet harness: execv(nats-server) failed\n";

  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    close(null_fd);
    SetErr(err, std::string("fork: ") + strerror(errno));
    return false;
  }
  if (pid == 0) {
    // Child.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // parent already gone
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
    {
      for (int fd = 3; fd < 4096; fd++) close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv[0], argv.data(), envp.data());
    ssize_t ignored = write(2, kExecFail, sizeof(kExecFail) - 1);
    (void)ignored;
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  pid_ = pid;
  RegisterPid(pid);
  return true;
}

bool NatsServer::ReapIfExited(int* status) {
  if (pid_ <= 0) return true;
  if (!PidRegistered(pid_)) {  // reaped by the atexit hook
    pid_ = -1;
    return true;
  }
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    if (status) *status = st;
    UnregisterPid(pid_);
    pid_ = -1;
    return true;
  }
  return false;
}

bool NatsServer::WaitHealthy(double timeout_s, std::string* err) {
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(timeout_s);
  std::string body;
  int code = 0;
  for (;;) {
    int st = 0;
    if (ReapIfExited(&st)) {
      std::string how = WIFEXITED(st)     ? "exited with status " + std::to_string(WEXITSTATUS(st))
                        : WIFSIGNALED(st) ? "killed by signal " + std::to_string(WTERMSIG(st))
                                          : "not running";
      SetErr(err, "nats-server " + name_ + " " + how + " before becoming healthy; log tail:\n" + LogTail(2048));
      return false;
    }
    code = HttpGet(http_port_, "/healthz?js-enabled-only=true", &body, 1.0);
    if (code == 200 && body.find("ok") != std::string::npos) return true;
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  SetErr(err, "nats-server " + name_ + " not healthy after " + std::to_string(timeout_s) +
                  " s (last /healthz: " + std::to_string(code) + " " + body + "); log tail:\n" + LogTail(2048));
  return false;
}

void NatsServer::Signal(int sig, double wait_s) {
  if (pid_ <= 0) return;
  if (!PidRegistered(pid_)) {
    pid_ = -1;
    return;
  }
  kill(pid_, sig);
  auto deadline = Clock::now() + std::chrono::duration<double>(wait_s);
  while (!ReapIfExited(nullptr)) {
    if (Clock::now() >= deadline) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void NatsServer::Stop() {
  if (pid_ <= 0) return;
  Signal(SIGTERM, kTermWaitS);
  if (pid_ > 0) Signal(SIGKILL, kKillWaitS);
  if (pid_ > 0) {
    fprintf(stderr, "litejet harness: could not reap nats-server pid %d\n", static_cast<int>(pid_));
  }
}

void NatsServer::Kill() {
  if (pid_ <= 0) return;
  Signal(SIGKILL, kKillWaitS);
  if (pid_ > 0) {
    fprintf(stderr, "litejet harness: could not reap nats-server pid %d\n", static_cast<int>(pid_));
  }
}

bool NatsServer::Restart(std::string* err) {
  Stop();
  if (pid_ > 0) {
    SetErr(err, "previous nats-server process could not be reaped");
    return false;
  }
  std::string last_err;
  for (int attempt = 0; attempt < kStartAttempts; attempt++) {
    off_t log_off = FileSize(log_path_);
    if (Spawn(&last_err) && WaitHealthy(kHealthTimeoutS, &last_err)) return true;
    bool in_use = ReadTail(log_path_, 1 << 16, log_off).find("address already in use") != std::string::npos;
    Stop();
    if (!in_use) break;
    // Same ports are required; give whoever holds them a moment.
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  SetErr(err, last_err);
  return false;
}

// ===========================================================================
// NatsCluster

std::unique_ptr<NatsCluster> NatsCluster::Start(int n, std::string* err) {
  if (n < 1) {
    SetErr(err, "cluster size must be >= 1");
    return nullptr;
  }
  if (NatsServerBinary().empty()) {
    SetErr(err, "nats-server binary not found (PATH, /usr/sbin, $LITEJET_NATS_SERVER)");
    return nullptr;
  }
  std::string last_err;
  for (int attempt = 0; attempt < kStartAttempts; attempt++) {
    std::unique_ptr<NatsCluster> c(new NatsCluster);
    c->dir_ = MakeTempDir("litejet-natscluster-", err);
    if (c->dir_.empty()) return nullptr;
    std::vector<int> ports;
    if (!PickPorts(3 * n, &ports, err)) return nullptr;
    std::vector<int> route_ports(ports.begin() + 2 * n, ports.end());
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
      std::unique_ptr<NatsServer> s(new NatsServer);
      s->name_ = "n" + std::to_string(i);
      s->dir_ = c->dir_ + "/" + s->name_;
      s->owns_dir_ = false;
      s->conf_path_ = s->dir_ + "/server.conf";
      s->store_dir_ = s->dir_ + "/store";
      s->log_path_ = s->dir_ + "/server.log";
      s->port_ = ports[static_cast<size_t>(i)];
      s->http_port_ = ports[static_cast<size_t>(n + i)];
      s->cluster_port_ = route_ports[static_cast<size_t>(i)];
      s->url_ = "nats://127.0.0.1:" + std::to_string(s->port_);
      std::vector<int> others;
      for (int j = 0; j < n; j++)
        if (j != i) others.push_back(route_ports[static_cast<size_t>(j)]);
      std::error_code ec;
      fs::create_directories(s->dir_, ec);
      ok = !ec && WriteFile(s->conf_path_,
                            ServerConfig(s->name_, s->port_, s->http_port_, s->store_dir_, s->cluster_port_, others),
                            &last_err);
      if (ec) last_err = "mkdir " + s->dir_ + ": " + ec.message();
      c->nodes_.push_back(std::move(s));
    }
    for (size_t i = 0; i < c->nodes_.size() && ok; i++) ok = c->nodes_[i]->Spawn(&last_err);
    auto deadline = Clock::now() + std::chrono::duration<double>(kHealthTimeoutS);
    for (size_t i = 0; i < c->nodes_.size() && ok; i++) {
      double left = std::chrono::duration<double>(deadline - Clock::now()).count();
      ok = c->nodes_[i]->WaitHealthy(left > 0.5 ? left : 0.5, &last_err);
    }
    if (ok) {
      double left = std::chrono::duration<double>(deadline - Clock::now()).count();
      ok = c->WaitMetaLeader(left > 1.0 ? left : 1.0, 0, &last_err);
    }
    if (ok) return c;
    bool in_use = false;
    for (auto& s : c->nodes_) in_use = in_use || s->LogSaysAddressInUse();
    if (!in_use) break;
    // ~NatsCluster stops the nodes and removes the dir before the retry.
  }
  SetErr(err, last_err);
  return nullptr;
}

NatsCluster::~NatsCluster() {
  // Stop all first (SIGTERM everyone, then reap) so shutdown is parallel-ish.
  for (auto& s : nodes_) {
    if (s->pid_ > 0 && PidRegistered(s->pid_)) kill(s->pid_, SIGTERM);
  }
  nodes_.clear();  // each Stop() waits/reaps (and escalates to SIGKILL)
  RemoveDir(dir_);
}

std::string NatsCluster::urls() const {
  std::string out;
  for (const auto& s : nodes_) {
    if (!out.empty()) out += ",";
    out += s->url();
  }
  return out;
}

int NatsCluster::IndexOf(const std::string& server_name) const {
  for (size_t i = 0; i < nodes_.size(); i++)
    if (nodes_[i]->name() == server_name) return static_cast<int>(i);
  return -1;
}

bool NatsCluster::WaitMetaLeader(double timeout_s, int expect_current, std::string* err) {
  const int n = static_cast<int>(nodes_.size());
  if (expect_current <= 0) expect_current = n;
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  std::string why;
  for (;;) {
    std::string leader;
    bool agree = true;
    int running = 0;
    for (auto& s : nodes_) {
      if (!s->running()) continue;
      running++;
      std::string body;
      MetaInfo mi;
      if (HttpGet(s->monitor_port(), "/jsz", &body, 1.0) != 200 || !ParseMeta(body, &mi)) {
        agree = false;
        why = s->name() + ": /jsz unavailable";
        break;
      }
      if (mi.leader.empty() || mi.cluster_size != n || (!leader.empty() && mi.leader != leader)) {
        agree = false;
        why = s->name() + ": leader='" + mi.leader + "' cluster_size=" + std::to_string(mi.cluster_size);
        break;
      }
      leader = mi.leader;
    }
    if (agree && running > 0) {
      int li = IndexOf(leader);
      std::string body;
      MetaInfo mi;
      if (li >= 0 && nodes_[static_cast<size_t>(li)]->running() &&
          HttpGet(nodes_[static_cast<size_t>(li)]->monitor_port(), "/jsz", &body, 1.0) == 200 && ParseMeta(body, &mi)) {
        if (mi.current_replicas + 1 >= expect_current) return true;
        why = "leader " + leader + " sees " + std::to_string(mi.current_replicas + 1) + " current peers, want " +
              std::to_string(expect_current);
      } else {
        why = "leader " + leader + " not reachable";
      }
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string tails;
  for (auto& s : nodes_) tails += "--- " + s->name() + " log tail:\n" + s->LogTail(1024) + "\n";
  SetErr(err, "JetStream meta leader not ready after " + std::to_string(timeout_s) + " s (" + why + ")\n" + tails);
  return false;
}

}  // namespace test
}  // namespace litejet
