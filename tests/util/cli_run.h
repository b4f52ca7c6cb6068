// Test helpers for the CLI tests: run a command with its output captured, and
// check JSON output with Python's parser. Header-only, no test framework.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace litejet::test {

struct CliRun {
  int rc = -1;  // exit status, 128 + signal, or -1 when it could not start (err says why)
  std::string out, err;
  double seconds = 0;
};

inline std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string CliTempPath(const char* what) {
  const char* base = std::getenv("TMPDIR");
  return std::string(base && *base ? base : "/tmp") + "/litejet_cli_test_" + std::to_string(getpid()) + "_" + what;
}

// Runs args[0] (a path) with stdout and stderr captured in files.
inline CliRun Exec(const std::vector<std::string>& args) {
  CliRun r;
  const std::string out = CliTempPath("out"), err = CliTempPath("err");
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
  if (e != 0) {
    r.err = "cannot start " + args[0] + ": " + std::strerror(e);
    return r;
  }
  // Bounded: a CLI that hangs is killed after 120 s (its run then fails with
  // 128 + SIGKILL and says so) instead of holding CI until ctest's timeout.
  int status = 0;
  const auto deadline = t0 + std::chrono::seconds(120);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    usleep(10000);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out);
  r.err = Slurp(err);
  unlink(out.c_str());
  unlink(err.c_str());
  return r;
}

// $LITEJET_BUILD/litejet <command> args...
inline CliRun RunCli(const std::string& command, std::vector<std::string> args) {
  const char* build = std::getenv("LITEJET_BUILD");
  args.insert(args.begin(), {std::string(build ? build : ".") + "/litejet", command});
  return Exec(args);
}

// True when the Python expression expr holds over d, the parsed JSON (with
// lines: the list of the JSON values, one per line). *detail: what Python saw.
inline bool JsonHolds(const std::string& json, const std::string& expr, bool lines, std::string* detail) {
  const char* py = std::getenv("PYTHON3");
  const std::string path = CliTempPath("json");
  std::ofstream(path) << json;
  const std::string load =
      lines ? "d=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]\n" : "d=json.load(open(sys.argv[1]))\n";
  CliRun r = Exec({py && *py ? py : "/usr/bin/python3", "-c",
                   "import json,sys\n" + load + "ok=(" + expr + ")\nprint(d)\nsys.exit(0 if ok else 1)", path});
  unlink(path.c_str());
  *detail = r.out + r.err;
  return r.rc == 0;
}

}  // namespace litejet::test
