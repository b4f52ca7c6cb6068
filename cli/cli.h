// cli/cli.h: the door between the dispatcher (main.cc) and the commands.
// A command gets the arguments after its name and returns the exit status.
#pragma once

namespace litejet::cli {

// `litejet status`: 0 shown, 1 NATS unreachable or the cluster unreadable, 2 usage.
int RunStatus(int argc, char** argv);

}  // namespace litejet::cli
