// cli/cli.h: the door between the dispatcher (main.cc) and the commands.
// A command gets the arguments after its name and returns the exit status.
#pragma once

namespace litejet::cli {

// `litejet status`: 0 shown, 1 NATS unreachable or the cluster unreadable, 2 usage.
int RunStatus(int argc, char** argv);
// `litejet log`: 0 shown (or --check passed), 1 a record cannot be decoded or
// --check found a violation, 2 usage, 3 the log cannot be read.
int RunLog(int argc, char** argv);
// `litejet replicate DB [--key value ...]`: the agent in the foreground until
// SIGINT/SIGTERM; 0 stopped by a signal, 1 cannot open, 2 usage.
int RunReplicate(int argc, char** argv);

}  // namespace litejet::cli
