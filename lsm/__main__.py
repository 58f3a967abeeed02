"""Entry point of ``python -m lsm``: hands over to lsm.cli."""
import sys

from .cli import main

sys.exit(main())
