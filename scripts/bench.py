#!/usr/bin/env python3
"""The bench of lsm, LevelDB (plyvel) and RocksDB (rocksdict): the same as
`python -m lsm bench` (see `--help`), runnable from a checkout."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lsm.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
