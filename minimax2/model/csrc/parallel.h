// Work shared out in chunks that the intra-op threads take from one counter as they finish, for the
// kernels that stream weights. at::parallel_for gives each thread one fixed share, so a step lasts as
// long as its slowest share: when another process runs on one of the cores, the thread there gets
// half its time and the whole product waits for it. Here that thread simply takes fewer chunks (as
// llama.cpp's threads do). The smallest chunk is ~64 KiB of weights, which keeps the counter out of
// the way (one atomic operation per few microseconds of work at the least).
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

// f(b0, b1) over [begin, end) on up to at::get_num_threads() threads, in guided chunks: each take is
// half of an even share of what is left (at least `chunk` items), so a thread first reads one long
// run, as a fixed split would (even 64 KiB chunks throughout, interleaving the threads' reads, made
// quiet-machine decode 9% slower), and the last items go to whichever threads are still running.
template <typename F>
inline void dynamic_for(int64_t begin, int64_t end, int64_t chunk, const F& f) {
  if (end <= begin) return;
  chunk = std::max<int64_t>(1, chunk);
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), (end - begin + chunk - 1) / chunk);
  if (threads <= 1 || at::in_parallel_region()) {
    f(begin, end);
    return;
  }
  std::atomic<int64_t> next{begin};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    int64_t a = next.load(std::memory_order_relaxed);
    for (;;) {
      if (a >= end) return;
      const int64_t take = std::max(chunk, (end - a) / (2 * threads));
      if (next.compare_exchange_weak(a, a + take, std::memory_order_relaxed)) {
        f(a, std::min(end, a + take));
        a = next.load(std::memory_order_relaxed);
      }
    }
  });
}

}  // namespace minimax2
