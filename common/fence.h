// Memory fences for memory shared between processes (the sidecar, the shm).
// ThreadSanitizer does not model fences (GCC rejects them under
// -fsanitize=thread): there a read-modify-write of one shared word stands in,
// which orders at least as strongly for the threads of one process.
#pragma once

#include <atomic>

namespace litejet {

#if defined(__SANITIZE_THREAD__)
inline std::atomic<unsigned>& FenceWord() {
  static std::atomic<unsigned> w{0};
  return w;
}
inline void Fence(std::memory_order o) {
  FenceWord().fetch_add(0, o == std::memory_order_seq_cst ? o : std::memory_order_acq_rel);
}
#else
inline void Fence(std::memory_order o) { std::atomic_thread_fence(o); }
#endif

}  // namespace litejet
