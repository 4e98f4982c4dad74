"""Training: tokenizer training, random M2-shaped checkpoints, and (later) the trainer and demo recipe."""
