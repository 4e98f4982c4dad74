"""`python -m minimax2 ...` (and `torchrun -m minimax2 train ...`): the `minimax2` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
