// Work shared out in chunks that the intra-op threads take from one counter as they finish, for the
// kernels that stream weights. at::parallel_for gives each thread one fixed share, so a step lasts as
// long as its slowest share: when another process runs on one of the cores, the thread there gets
// half its time and the whole product waits for it. Here that thread simply takes fewer chunks (as
// llama.cpp's threads do). Chunks of ~64 KiB of weights keep each read sequential and the counter
// out of the way (one atomic add per few microseconds of work).
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace minimax2 {

// Items per chunk for items of `item_bytes` weight bytes each.
inline int64_t chunk_items(int64_t item_bytes, int64_t target = 65536) {
  return std::max<int64_t>(1, target / std::max<int64_t>(1, item_bytes));
}

// f(b0, b1) over [begin, end) in chunks of `chunk` items, on up to at::get_num_threads() threads.
template <typename F>
inline void dynamic_for(int64_t begin, int64_t end, int64_t chunk, const F& f) {
  if (end <= begin) return;
  chunk = std::max<int64_t>(1, chunk);
  const int64_t chunks = (end - begin + chunk - 1) / chunk;
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
  if (threads <= 1 || at::in_parallel_region()) {
    f(begin, end);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next.fetch_add(1, std::memory_order_relaxed))
      f(begin + c * chunk, std::min(end, begin + (c + 1) * chunk));
  });
}

}  // namespace minimax2
