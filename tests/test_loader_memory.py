"""Loading streams tensor by tensor: peak anonymous memory stays near the model's own size.

(The checkpoint file is memory-mapped; its pages are reclaimable page cache, not a second copy, so
we watch RssAnon, not the total RSS.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from minimax2.train.random_init import build_random_checkpoint

PROBE = r"""
import json, sys, threading, time, torch
from minimax2.model.loader import load_model
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) * 1024
_warm = load_model(sys.argv[1], torch.float32)  # pay one-time library initialisation first
del _warm
base, peak, done = anon(), [0], [False]
def watch():
    while not done[0]:
        peak[0] = max(peak[0], anon()); time.sleep(0.005)
t = threading.Thread(target=watch); t.start()
m = load_model(sys.argv[1], torch.float32)
done[0] = True; t.join()
size = sum(p.numel() * p.element_size() for p in m.parameters())
print(json.dumps({"extra": max(peak[0], anon()) - base, "size": size}))
"""


def test_peak_memory_near_model_size(tmp_path):
    shape = dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2, head_dim=64,
                 rotary_dim=32, num_local_experts=16, num_experts_per_tok=2, intermediate_size=512, vocab_size=1024)
    path = build_random_checkpoint(tmp_path / "ckpt", shape, dtype=torch.float32)
    r = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True)
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m["size"] > 150e6
    assert m["extra"] < 1.15 * m["size"], m  # a second full copy would need 2x
