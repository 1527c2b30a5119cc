"""Entry script of the frozen app: the same `main` as the `diffedit` command."""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch's data loaders spawn workers from the frozen executable
    from diffedit.__main__ import main

    sys.exit(main())
