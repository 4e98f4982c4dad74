"""Our engine against llama.cpp on the same weights, at equal bits: decode tok/s at batch 1 and 8, prefill.

    python benchmarks/make_checkpoints.py --out ckpt --shape m2-slice --layers 4
    minimax2 convert --model ckpt/m2-slice-4l-fp8 --out ckpt/m2-slice-4l-fp8-int4 --to int4
    minimax2 convert --model ckpt/m2-slice-4l-fp8 --out ckpt/m2-slice-4l-int4-h6 --to int4 --lm-head int6
    python benchmarks/to_gguf.py --llama-cpp LLAMA --model ckpt/m2-slice-4l-fp8 --out g/q8_0.gguf --type q8_0
    python benchmarks/to_gguf.py --llama-cpp LLAMA --requantize g/q8_0.gguf --out g/q4_0.gguf --type q4_0
    python benchmarks/bench_llamacpp.py --llama-cpp LLAMA \\
        --pair fp8=ckpt/m2-slice-4l-fp8:g/q8_0.gguf --pair fp8+int8head=ckpt/m2-slice-4l-fp8:g/q8_0.gguf \\
        --pair int8=ckpt/m2-slice-4l-fp8:g/q8_0.gguf --pair int4=ckpt/m2-slice-4l-fp8-int4:g/q4_0.gguf \\
        --pair int4+int6head=ckpt/m2-slice-4l-int4-h6:g/q4_0.gguf

Each pair runs `--rounds` times, ours and llama.cpp alternating (the order flips every round, so a drift
of the memory bus hits both sides alike); the table gives medians and their ratio. Both sides run the
same shape of work: a 64-token random prompt per sequence, then 16 decode tokens, at batch 1 and 8, with
the same thread count; and the prefill of one cold 512-token prompt (one chunk on both sides; ours with
the prefix cache emptied first, `engine_run`). llama.cpp runs `llama-batched-bench` (its decode speed
with every sequence's prompt processed first, and S_PP of a 512-token prompt). Both sides memory-map
their weights, so before each run the other checkpoints' pages are dropped from the page cache and this
side's files are read once into it (not timed): otherwise a run faults experts in from disk (the slice's
FP8 and Q8_0 files do not fit in 24 GB together, and the kernel keeps a finished run's mapped pages
before freshly read ones). The roofline share divides tok/s by what the bandwidth allows
(model/projection.py's bytes per step, at a read bandwidth probed in our process); llama.cpp's is given
for OUR byte count, so above 100% means it reads fewer bytes a token: it quantizes the output matrix
(Q8_0 in a Q8_0 file, Q6_K in Q4_0), where our fp8 form keeps the release's bf16 lm_head (1.23 GB of the
slice's 1.87 GB a token) and our int4 form stores it in int8. `--busy 1` keeps one more process busy
beside every timed run (`yes > /dev/null`), for the case of cores shared with other work, as on any
server. `fp8+int8head` serves the release's FP8 with lm_head in int8 (`--lm-head int8`): equal bits with
a Q8_0 file throughout; `int4+int6head` the int4 form with a 6-bit lm_head (`--lm-head int6`, 6.5 bits a
weight): equal bits with a Q4_0 file's Q6_K output matrix. `int8` on an FP8 checkpoint quantises it at
load (minutes on the slice).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from minimax2.bench.throughput import release_page_cache, warm_page_cache

OURS = r"""
import json, statistics, sys
from minimax2 import LLM
from minimax2.bench.roofline import read_bandwidth
from minimax2.bench.throughput import engine_run, random_prompts
from minimax2.model.prequant import form_of, head_of
from minimax2.model.projection import step_bytes
model, threads, form, head, act8 = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] or None, {"a8": True, "a16": False}.get(sys.argv[5])
qc = json.load(open(f"{model}/config.json")).get("quantization_config") or {}
quant = None if form == "fp8" or qc.get("quant_method") == "minimax2" else form  # else quantised at load
llm = LLM(model, kv_cache_gb=0.25, max_num_seqs=8, threads=threads, max_model_len=4096, quantization=quant,
          lm_head=head, int8_activations=act8)
held = head or (head_of(llm.cfg) if form_of(llm.cfg) else None)  # a pre-quantised checkpoint holds its head
engine_run(llm.engine, random_prompts(1, 16, 1000), 4)
out = {"bw": read_bandwidth()}
for batch in (1, 8):
    out[f"b{batch}"] = engine_run(llm.engine, random_prompts(batch, 64, 1000, seed=batch), 16)["decode_tok_s"]
    out[f"bytes_b{batch}"] = step_bytes(llm.cfg, form, batch, context=72, lm_head=held)
out["pp"] = statistics.median(engine_run(llm.engine, random_prompts(1, 512, 1000, seed=30 + i), 1)["prefill_tok_s"]
                              for i in range(2))
print(json.dumps(out))
"""


@contextmanager
def busy(n: int):
    """n processes that keep a core busy each (`yes > /dev/null`) for the duration."""
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]
    try:
        yield
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def only_in_memory(path: Path, others: list[Path]) -> None:
    """The page cache holds `path` for the run, not the other checkpoints: the slice's FP8 and Q8_0 files
    (16 and 17 GB) do not fit in 24 GB together, and pages read once are evicted before pages a previous
    run mapped and used (throughput.release_page_cache), so a warmed side would still fault from disk."""
    for other in others:
        if other != path:
            release_page_cache(other)
    warm_page_cache(path)


def run_ours(model: Path, threads: int, form: str, head: str, act8: str) -> dict:
    r = subprocess.run([sys.executable, "-c", OURS, str(model), str(threads), form, head, act8], capture_output=True,
                       text=True)
    if r.returncode != 0:
        sys.exit(f"our engine failed on {model}:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def batched_bench(llama_cpp: Path, gguf: Path, threads: int, npp: int, ntg: int, npl: str) -> list[list[str]]:
    """The rows of llama-batched-bench's markdown table: PP | TG | B | N_KV | T_PP | S_PP | T_TG | S_TG | T | S."""
    exe = llama_cpp / "build" / "bin" / "llama-batched-bench"
    cmd = [str(exe), "-m", str(gguf), "-c", "2048", "-b", "2048", "-ub", "512", "-npp", str(npp), "-ntg", str(ntg),
           "-npl", npl, "-t", str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"llama-batched-bench failed on {gguf}:\n{r.stderr[-2000:]}")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in (r.stdout + r.stderr).splitlines()]
    return [c for c in rows if len(c) == 10 and c[0].isdigit()]


def run_llama(llama_cpp: Path, gguf: Path, threads: int) -> dict:
    out = {}
    # The trailing 1s: this build's asynchronous logger drops the table's last row at exit now and then.
    for cells in batched_bench(llama_cpp, gguf, threads, 64, 16, "1,8,1"):
        out.setdefault(f"b{cells[2]}", float(cells[7]))
    for cells in batched_bench(llama_cpp, gguf, threads, 512, 1, "1,1"):
        out.setdefault("pp", float(cells[5]))
    if set(out) != {"b1", "b8", "pp"}:
        sys.exit(f"llama-batched-bench gave no batch 1, batch 8 or prefill row for {gguf}: got {sorted(out)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source tree with build/bin")
    ap.add_argument("--pair", action="append", required=True,
                    help="FORM=OUR_CHECKPOINT:GGUF (FORM: fp8, int8 or int4, as our checkpoint serves or is "
                         "quantised to at load; FORM+int8head / +int6head serves lm_head in int8 / "
                         "6 bits, `--lm-head int8|int6`; a further +a8 quantises the activations of the int8, int4 "
                         "and 6-bit matrices to int8, `--int8-activations`, +a16 keeps them int16, "
                         "`--no-int8-activations`; neither: the form's default, int8 under int4 only)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--busy", type=int, default=0,
                    help="run this many busy processes (`yes`) beside every timed run: cores shared, as on a server")
    a = ap.parse_args()
    table = []
    files = sorted({Path(p) for spec in a.pair for p in spec.partition("=")[2].rsplit(":", 1)})
    for spec in a.pair:
        label, _, paths = spec.partition("=")
        form, *extras = label.split("+")
        head = next((x[:-4] for x in extras if x in ("int8head", "int6head")), "")
        act8 = next((x for x in extras if x in ("a8", "a16")), "")
        ours_path, _, gguf = paths.rpartition(":")
        ours, theirs = [], []
        for r in range(a.rounds):
            steps = [(Path(ours_path), lambda: ours.append(run_ours(Path(ours_path), a.threads, form, head, act8))),
                     (Path(gguf), lambda: theirs.append(run_llama(a.llama_cpp, Path(gguf), a.threads)))]
            for path, step in steps if r % 2 == 0 else steps[::-1]:
                only_in_memory(path, files)
                with busy(a.busy):
                    step()
            print(f"{label} round {r + 1}: ours {json.dumps(ours[-1])}  llama.cpp {json.dumps(theirs[-1])}", flush=True)
        row = {"form": label, "gguf": Path(gguf).name}
        for b in (1, 8):
            mine = statistics.median(o[f"b{b}"] for o in ours)
            roof = b * statistics.median(o["bw"] for o in ours) / ours[0][f"bytes_b{b}"]
            row[f"b{b}"] = (mine, statistics.median(t[f"b{b}"] for t in theirs), roof)
        row["pp"] = (statistics.median(o["pp"] for o in ours), statistics.median(t["pp"] for t in theirs))
        table.append(row)
    busy = f", {a.busy} busy process(es) beside each run" if a.busy else ""
    print(f"\nmedians of {a.rounds} alternating rounds, {a.threads} threads, 64-token prompts, 16 decode tokens; "
          f"prefill (pp): one cold 512-token prompt{busy}")
    print(f"{'form':13} {'vs':14} {'b1 ours':>8} {'b1 llama':>9} {'ratio':>6} {'roof ours/llama':>16} "
          f"{'b8 ours':>8} {'b8 llama':>9} {'ratio':>6} {'pp ours':>8} {'pp llama':>9} {'ratio':>6}")
    for row in table:
        (m1, t1, r1), (m8, t8, _), (mp, tp) = row["b1"], row["b8"], row["pp"]
        print(f"{row['form']:13} {row['gguf'][:14]:14} {m1:8.2f} {t1:9.2f} {m1 / t1:6.2f} "
              f"{m1 / r1:7.0%} / {t1 / r1:6.0%} {m8:8.2f} {t8:9.2f} {m8 / t8:6.2f} {mp:8.1f} {tp:9.1f} {mp / tp:6.2f}")


if __name__ == "__main__":
    main()
