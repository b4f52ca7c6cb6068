// Monotonic milliseconds, for the agent's rate limits and deadlines (never
// compared across processes: the sidecar's commit times are wall-clock).
#pragma once

#include <chrono>
#include <cstdint>

namespace litejet {

inline int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of this
// boot (std::chrono::steady_clock is CLOCK_MONOTONIC on Linux), so an
// instant stored in the sidecar by one process means the same in another.
inline int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace litejet
