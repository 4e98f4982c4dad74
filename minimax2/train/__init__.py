"""Training M2-architecture models: the byte-level BPE tokenizer, random M2-shaped checkpoints, and the
trainer with its recipes (the bundled demo model): synthetic conversations, AdamW with aux-loss-free
expert balancing, data parallel under torchrun, resumable checkpoints, held-out scoring, the exported
checkpoint and its model card. `minimax2 train` runs a recipe (train/cli.py)."""
