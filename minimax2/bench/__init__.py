"""Benchmarks: the memory-bandwidth roofline, engine and transformers throughput, quantisation quality,
and the `minimax2 bench engine` run that puts them in one report. The scripts in benchmarks/ import
their measurements from here; `minimax2 bench serve` (load against a running server) lives with the
eval harness (minimax2/eval/loadgen.py)."""
