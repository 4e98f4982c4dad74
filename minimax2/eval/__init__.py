"""Evaluation harness: repo-level coding tasks built from PyPI releases, an agent loop, grading,
operational metrics and reports; plus a serving load benchmark (`loadgen`)."""
