"""The benchmarks' measuring helpers (minimax2/bench): the page cache held for one checkpoint at a time,
checked with mincore(2), a bandwidth probe on both sides of each timed run, and timed prefills that
are cold even when a run repeats its prompts."""

from __future__ import annotations

import ctypes
import mmap
import os

import pytest

from minimax2.bench.roofline import bracketed
from minimax2.bench.throughput import engine_run, random_prompts, release_page_cache, warm_page_cache


def resident_share(path) -> float:
    """Share of the file's pages in the page cache: mincore(2) on a private mapping of it, untouched (its
    pages are the page cache's until written)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
        first = ctypes.c_char.from_buffer(m)
        rc = libc.mincore(ctypes.addressof(first), size, vec)
        del first
        m.close()
    if rc != 0:
        pytest.skip(f"mincore failed here: errno {ctypes.get_errno()}")
    return sum(v & 1 for v in vec) / pages


def fs_type(path) -> str:
    """The file system type of the mount holding `path` (longest mount point in /proc/mounts)."""
    path, best = os.path.realpath(path), ("", "")
    with open("/proc/mounts") as f:
        for line in f:
            point, kind = line.split()[1:3]
            point = point.replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best[0]):
                best = (point, kind)
    return best[1]


def test_release_drops_a_checkpoint_from_the_page_cache_and_warm_reads_it_back(tmp_path):
    if fs_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the temporary directory is in memory: its pages are the file, nothing can drop them")
    shard = tmp_path / "model-00001-of-00001.safetensors"
    with open(shard, "wb") as f:
        f.write(os.urandom(8 << 20))
        f.flush()
        os.fsync(f.fileno())  # dirty pages are not dropped
    (tmp_path / "notes.txt").write_text("not a shard")
    release_page_cache(tmp_path)
    assert resident_share(shard) < 0.1
    warm_page_cache(tmp_path)
    assert resident_share(shard) > 0.9
    release_page_cache(shard)  # one file works as well as a directory
    assert resident_share(shard) < 0.1


def test_bracketed_probes_on_both_sides_of_exactly_one_run():
    calls = []
    result, bw = bracketed(lambda: calls.append(1) or "ran", repeats=1)
    assert result == "ran" and calls == [1]
    assert 1e8 < bw < 1e13  # bytes/s: a real read, not a placeholder


def test_engine_run_prefills_cold_when_the_prompts_repeat(tiny_llm):
    """Repeating a run's prompts used to find them in the prefix cache, so the median of the repeats timed
    one token per prompt and reported that as prefill speed."""
    eng = tiny_llm.engine
    prompts = random_prompts(2, 40, tiny_llm.cfg.vocab_size, seed=3)
    engine_run(eng, prompts, 2)
    hits = eng.block_manager.prefix_hits
    assert engine_run(eng, prompts, 2)["prefill_tok_s"] > 0
    assert eng.block_manager.prefix_hits == hits


def test_engine_run_refuses_prompts_that_share_a_prefix(tiny_llm):
    eng = tiny_llm.engine
    p = random_prompts(1, 80, tiny_llm.cfg.vocab_size, seed=4)[0]
    with pytest.raises(ValueError, match="prefix cache"):
        engine_run(eng, [p, p + [7]] * 9, 1)  # more prompts than max_num_seqs: the later ones find the earlier
