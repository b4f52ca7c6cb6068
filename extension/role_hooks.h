// RoleHooks: how the role loop steers the primary's and the replica's loops
// (role=auto, and role=primary holding the lease). Null: the role is static.
#pragma once

#include <cstdint>
#include <functional>

namespace litejet {

struct RoleHooks {
  std::function<bool()> due;   // time to call tick()
  std::function<bool()> tick;  // the election's turn; true: the role changed, leave the loop
  // Primary: opens writes once the log ends where this database does (the
  // epoch marker goes in after *seq). Null: writes need no opening.
  std::function<bool(uint64_t* seq)> ready;
  // The epoch of the lease this node holds (0: none), for the records it
  // ships before the log has one of that epoch. Null: 0.
  std::function<uint64_t()> term_epoch;
};

}  // namespace litejet
