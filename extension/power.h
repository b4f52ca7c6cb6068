// Power loss: what an engine does at an unclean start (the sidecar was last
// used under another boot of the kernel), and the replica's durable mark.
// docs/design.md, "Power loss", gives the reasoning.
#pragma once

#include <cstdint>

#include "extension/node.h"
#include "wal-capture/apply.h"

namespace litejet::power {

// At an unclean start: validates the sidecar against what SQLite recovers
// and rolls it back, or fails.
Status RecoverAfterPowerLoss(NodeState& n);
// Replica agent: sync the WAL, then record the applied position as durable.
Status SyncApplied(NodeState& n, apply::WalWriter& w);
// Records p as durable (the mark): w synced, its last commit frame holds p.
Status MarkApplied(NodeState& n, const apply::WalWriter& w, const sidecar::Position& p);
Status MarkNewGeneration(NodeState& n, apply::WalWriter& w, uint32_t salt1, uint32_t salt2);

}  // namespace litejet::power
