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
// `litejet restore DB --nats URL --name NAME [--txid T | --time UTC] [--force]`:
// 0 restored (checksum verified at the target), 1 cannot restore (no usable
// source, broken log, checksum mismatch, target past the log's end), 2 usage,
// 3 NATS unreachable or no such database, 4 DB exists and no --force.
int RunRestore(int argc, char** argv);
// `litejet snapshot DB --nats URL --name NAME`: publishes a snapshot of a
// database file at rest; 0 published, 1 DB unreadable or at no TXID of the
// log, 2 usage, 3 NATS unreachable or no such database.
int RunSnapshot(int argc, char** argv);
// `litejet verify DB [--nats URL] [--name NAME]`: 0 DB matches the log at its
// TXID, 1 it differs (naming TXID and checksums) or cannot be read, 2 usage,
// 3 NATS unreachable or no such database.
int RunVerify(int argc, char** argv);
// `litejet metrics DB...`: each database's figures in Prometheus' text
// format; 0 printed, 1 a database cannot be opened or is not replicated, 2 usage.
int RunMetrics(int argc, char** argv);

}  // namespace litejet::cli
