"""Engine benchmark; the same as `minimax2 bench engine`. Build the checkpoints first:

    python benchmarks/make_checkpoints.py --out checkpoints
    python benchmarks/bench_engine.py --model checkpoints/m2-small --out results/bench-m2-small.json
"""

import sys

from minimax2.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "engine", *sys.argv[1:]]))
